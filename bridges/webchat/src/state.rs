//! What every request handler and the [`Channel`](switchboard_channel::Channel) impl share once
//! the channel has started: the configuration, the store on top of the core's [`Host`], the live
//! hub and the rate limiter.

use std::sync::Arc;

use switchboard_channel::{ConversationKey, Host};

use crate::challenge::Challenges;
use crate::config::WebchatConfig;
use crate::hub::Hub;
use crate::limits::Limits;
use crate::ratelimit::Limiter;
use crate::session::Sessions;
use crate::store::Store;

/// Shared by all handlers (as axum state) and by `Channel::send`.
pub struct Shared {
    pub config: WebchatConfig,
    pub store: Store,
    pub hub: Hub,
    pub limiter: Limiter,
    /// Per-address and overall limits, event stream counts.
    pub limits: Limits,
    /// Proofs of work for new sessions (when configured).
    pub challenges: Challenges,
    /// Signed session tokens (new sessions store nothing until the visitor writes).
    pub sessions: Sessions,
    /// `<public_url>/webchat`: the prefix of every public link we hand out.
    pub base: String,
    /// When this instance started (ms): a visitor with no stream open here since reads as
    /// gone since then.
    pub started_at: i64,
}

impl Shared {
    pub fn new(config: WebchatConfig, host: Arc<dyn Host>) -> Self {
        let limiter = Limiter::new(config.rate_limit_per_minute, config.rate_limit_burst);
        let base = config.channel_base();
        let limits = Limits::new(&config);
        let challenges = Challenges::new(config.proof_of_work_bits);
        Self {
            config,
            store: Store::new(host),
            hub: Hub::default(),
            limiter,
            limits,
            challenges,
            sessions: Sessions::default(),
            base,
            started_at: switchboard_kit::now_ms(),
        }
    }

    pub fn host(&self) -> &Arc<dyn Host> {
        self.store.host()
    }

    /// How long a session in which nobody wrote lasts (its token, and any records it has), ms.
    pub fn silent_ttl_ms(&self) -> i64 {
        i64::try_from(self.config.silent_session_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// When the visitor of `conversation` left, once no stream of theirs has been open for
    /// `away_after_secs` (`Channel::customer_left`).
    pub fn customer_left(&self, conversation: &ConversationKey) -> Option<i64> {
        if conversation.account != self.config.account {
            return None;
        }
        let left = self.limits.left_at(&conversation.chat, self.started_at)?;
        let away =
            i64::try_from(self.config.away_after_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        (switchboard_kit::now_ms().saturating_sub(left) >= away).then_some(left)
    }

    /// The conversation of a visitor.
    pub fn conversation(&self, visitor_id: &str) -> ConversationKey {
        ConversationKey {
            account: self.config.account.clone(),
            chat: visitor_id.to_owned(),
        }
    }
}

/// The axum state of the channel's router.
pub type AppState = Arc<Shared>;
