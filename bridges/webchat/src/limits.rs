//! What one client address, and everyone together, may do to the web chat: open sessions, start
//! conversations (a session's first message is a new room for the team), upload files, hold
//! event streams. Per visitor, posts have their own rate ([`crate::ratelimit`]).
//!
//! A request over a limit is answered `429 rate_limited` with `Retry-After` (the widget waits
//! and tries again with the same client id, so nothing the visitor wrote is lost) — never
//! queued. The limits live in memory (GCRA limiters from governor, swept with the visitor
//! limiter); a restart forgets them, which is harmless.
//!
//! **The client address** is the TCP peer (the core's server hands it to every request as
//! axum's `ConnectInfo`). Only when the peer is a configured trusted proxy is
//! `X-Forwarded-For` read, from the right: the first address that is not itself a trusted proxy
//! is the client (a client cannot forge the addresses the proxies appended). IPv6 clients are
//! counted per /64, the block one host usually has.
//!
//! Every refusal is logged through the kit's [`RefusalLog`]: the first of its kind at once,
//! the rest counted.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use switchboard_kit::RefusalLog;

use crate::config::WebchatConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// The address a client is counted under: its IP (IPv6: its /64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    fn key(self) -> IpAddr {
        match self.0 {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
            v4 => v4,
        }
    }
}

/// The client of a request: the peer, or what trusted proxies say in `X-Forwarded-For`.
pub fn client_addr(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> ClientAddr {
    if !trusted.contains(&peer) {
        return ClientAddr(peer);
    }
    let mut client = peer;
    for hop in forwarded_for.unwrap_or("").rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            // Garbage where an address should be: the last proxy's view is all we trust.
            break;
        };
        client = ip;
        if !trusted.contains(&ip) {
            break;
        }
    }
    ClientAddr(client)
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Without the server's ConnectInfo (a router driven directly, in unit tests), the
        // requests share one address.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        Ok(client_addr(peer, forwarded, &state.config.trusted_proxies))
    }
}

/// Per address: a minute's worth at once (a real visitor, or an office behind one address,
/// never notices).
fn quota(per_minute: u32) -> Quota {
    let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(n).allow_burst(n)
}

/// For everyone together: ten seconds' worth at once, then evenly spread, so a flood reaches
/// the homeserver (a new room, invites, a lobby line per conversation) as a trickle rather
/// than a minute's worth in one go, which would slow every other channel's messages there.
fn overall_quota(per_minute: u32) -> Quota {
    let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_minute / 6).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(n).allow_burst(burst)
}

/// The per-address and overall limiters and the event stream counts.
pub struct Limits {
    sessions_per_address: DefaultKeyedRateLimiter<IpAddr>,
    sessions: DefaultDirectRateLimiter,
    conversations_per_address: DefaultKeyedRateLimiter<IpAddr>,
    conversations: DefaultDirectRateLimiter,
    uploads_per_address: DefaultKeyedRateLimiter<IpAddr>,
    streams_per_visitor: u32,
    streams_total_max: u32,
    streams: Arc<Streams>,
    clock: DefaultClock,
    pub refusals: RefusalLog,
}

#[derive(Default)]
struct Streams {
    per_visitor: Mutex<HashMap<String, u32>>,
    total: AtomicU32,
    /// When each visitor's last open stream closed (ms), for [`Limits::left_at`].
    left: Mutex<HashMap<String, i64>>,
}

/// One open event stream, counted until it is dropped (when the stream ends).
pub struct StreamSlot {
    streams: Arc<Streams>,
    visitor: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut per_visitor = self
            .streams
            .per_visitor
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_visitor.get_mut(&self.visitor) {
            *n -= 1;
            if *n == 0 {
                per_visitor.remove(&self.visitor);
                self.streams
                    .left
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(self.visitor.clone(), switchboard_kit::now_ms());
            }
        }
        self.streams.total.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Limits {
    pub fn new(config: &WebchatConfig) -> Self {
        Self {
            sessions_per_address: RateLimiter::keyed(quota(config.sessions_per_address_per_minute)),
            sessions: RateLimiter::direct(overall_quota(config.sessions_per_minute)),
            conversations_per_address: RateLimiter::keyed(quota(
                config.new_conversations_per_address_per_minute,
            )),
            conversations: RateLimiter::direct(overall_quota(config.new_conversations_per_minute)),
            uploads_per_address: RateLimiter::keyed(quota(config.uploads_per_address_per_minute)),
            streams_per_visitor: config.event_streams_per_visitor,
            streams_total_max: config.event_streams_total,
            streams: Arc::default(),
            clock: DefaultClock::default(),
            refusals: RefusalLog::new(),
        }
    }

    fn refuse(&self, kind: &'static str, addr: ClientAddr, wait: std::time::Duration) -> ApiError {
        self.refusals.refused(kind, &addr.0.to_string());
        ApiError::RateLimited(wait)
    }

    fn keyed(
        &self,
        limiter: &DefaultKeyedRateLimiter<IpAddr>,
        kind: &'static str,
        addr: ClientAddr,
    ) -> Result<(), ApiError> {
        limiter
            .check_key(&addr.key())
            .map_err(|n| self.refuse(kind, addr, n.wait_time_from(self.clock.now())))
    }

    /// Both limits of one kind: the address's first (so one address cannot spend the shared
    /// budget once it is over its own), then everyone's.
    fn both(
        &self,
        per_address: &DefaultKeyedRateLimiter<IpAddr>,
        overall: &DefaultDirectRateLimiter,
        kind: &'static str,
        addr: ClientAddr,
    ) -> Result<(), ApiError> {
        self.keyed(per_address, kind, addr)?;
        overall
            .check()
            .map_err(|n| self.refuse(kind, addr, n.wait_time_from(self.clock.now())))
    }

    /// A new session from `addr`.
    pub fn new_session(&self, addr: ClientAddr) -> Result<(), ApiError> {
        self.both(
            &self.sessions_per_address,
            &self.sessions,
            "webchat_sessions",
            addr,
        )
    }

    /// A session's first message from `addr`: a new conversation for the team.
    pub fn new_conversation(&self, addr: ClientAddr) -> Result<(), ApiError> {
        self.both(
            &self.conversations_per_address,
            &self.conversations,
            "webchat_new_conversations",
            addr,
        )
    }

    /// An upload from `addr`.
    pub fn upload(&self, addr: ClientAddr) -> Result<(), ApiError> {
        self.keyed(&self.uploads_per_address, "webchat_uploads", addr)
    }

    /// An event stream for `visitor`, counted until the slot is dropped; refused over the
    /// per-visitor or the total cap.
    pub fn open_stream(&self, visitor: &str, addr: ClientAddr) -> Result<StreamSlot, ApiError> {
        let mut per_visitor = self
            .streams
            .per_visitor
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mine = per_visitor.get(visitor).copied().unwrap_or(0);
        let total = self.streams.total.load(Ordering::SeqCst);
        if mine >= self.streams_per_visitor || total >= self.streams_total_max {
            let kind = if mine >= self.streams_per_visitor {
                "webchat_streams_per_visitor"
            } else {
                "webchat_streams_total"
            };
            return Err(self.refuse(kind, addr, std::time::Duration::from_secs(5)));
        }
        *per_visitor.entry(visitor.to_owned()).or_insert(0) += 1;
        self.streams.total.fetch_add(1, Ordering::SeqCst);
        Ok(StreamSlot {
            streams: self.streams.clone(),
            visitor: visitor.to_owned(),
        })
    }

    /// Forget addresses whose limits have fully recovered. Call now and then.
    /// When the visitor left: `None` while a stream of theirs is open on this instance; else
    /// when their last one closed, or `since` (this instance's start) when none was open here
    /// since then.
    pub fn left_at(&self, visitor: &str, since: i64) -> Option<i64> {
        let per_visitor = self
            .streams
            .per_visitor
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if per_visitor.get(visitor).is_some_and(|n| *n > 0) {
            return None;
        }
        let left = self.streams.left.lock().unwrap_or_else(|e| e.into_inner());
        Some(left.get(visitor).copied().unwrap_or(since).max(since))
    }

    /// Forget departures older than `before` (they read as "left when this instance started",
    /// which is earlier still).
    pub fn forget_departures(&self, before: i64) {
        self.streams
            .left
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, at| *at >= before);
    }

    pub fn sweep(&self) {
        for limiter in [
            &self.sessions_per_address,
            &self.conversations_per_address,
            &self.uploads_per_address,
        ] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_visitor_has_left_once_their_last_stream_closed() {
        let limits = Limits::new(&crate::config::WebchatConfig::default());
        let addr = ClientAddr(ip("203.0.113.9"));
        assert_eq!(
            limits.left_at("v1", 5),
            Some(5),
            "never here: gone since the start"
        );
        let a = limits.open_stream("v1", addr).unwrap();
        let b = limits.open_stream("v1", addr).unwrap();
        assert_eq!(limits.left_at("v1", 5), None);
        drop(a);
        assert_eq!(limits.left_at("v1", 5), None, "one tab still open");
        drop(b);
        let left = limits.left_at("v1", 5).unwrap();
        assert!(left > 5, "left when the last tab closed");
        limits.forget_departures(left + 1);
        assert_eq!(limits.left_at("v1", 5), Some(5));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        // A direct client cannot claim another address.
        assert_eq!(
            client_addr(ip("203.0.113.9"), Some("198.51.100.1"), &proxies).0,
            ip("203.0.113.9")
        );
        // Through two proxies: the last address they did not add themselves.
        assert_eq!(
            client_addr(
                ip("10.0.0.1"),
                Some("1.2.3.4, 198.51.100.7, 10.0.0.2"),
                &proxies
            )
            .0,
            ip("198.51.100.7")
        );
        // A proxy without the header: the proxy is all we know.
        assert_eq!(
            client_addr(ip("10.0.0.1"), None, &proxies).0,
            ip("10.0.0.1")
        );
        // Garbage in the header: stop at the last proxy.
        assert_eq!(
            client_addr(ip("10.0.0.1"), Some("evil, junk"), &proxies).0,
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let a = ClientAddr(ip("2001:db8:1:2::1")).key();
        let b = ClientAddr(ip("2001:db8:1:2:ffff::9")).key();
        let c = ClientAddr(ip("2001:db8:1:3::1")).key();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(ClientAddr(ip("::ffff:192.0.2.1")).key(), ip("192.0.2.1"));
    }

    #[test]
    fn sessions_per_address_then_overall() {
        let config = WebchatConfig {
            sessions_per_address_per_minute: 2,
            // Ten seconds' worth at once: 3.
            sessions_per_minute: 18,
            ..WebchatConfig::default()
        };
        let limits = Limits::new(&config);
        let a = ClientAddr(ip("192.0.2.1"));
        let b = ClientAddr(ip("192.0.2.2"));
        assert!(limits.new_session(a).is_ok());
        assert!(limits.new_session(a).is_ok());
        assert!(matches!(
            limits.new_session(a),
            Err(ApiError::RateLimited(_))
        ));
        assert!(limits.new_session(b).is_ok());
        // Everyone's budget (3) is spent now.
        assert!(matches!(
            limits.new_session(ClientAddr(ip("192.0.2.3"))),
            Err(ApiError::RateLimited(_))
        ));
    }

    #[test]
    fn stream_caps_per_visitor_and_total_free_on_drop() {
        let config = WebchatConfig {
            event_streams_per_visitor: 2,
            event_streams_total: 3,
            ..WebchatConfig::default()
        };
        let limits = Limits::new(&config);
        let a = ClientAddr(ip("192.0.2.1"));
        let s1 = limits.open_stream("v1", a).unwrap();
        let _s2 = limits.open_stream("v1", a).unwrap();
        assert!(limits.open_stream("v1", a).is_err());
        let _s3 = limits.open_stream("v2", a).unwrap();
        assert!(limits.open_stream("v3", a).is_err(), "the total cap");
        drop(s1);
        assert!(limits.open_stream("v1", a).is_ok());
    }
}
