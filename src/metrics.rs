//! Prometheus metrics: every name the bridge exports, the helpers the code records through, the
//! `/metrics` listener (`metrics.listen`, off unless set) and the periodic reader of the store.
//!
//! Recording goes through the `metrics` facade; `metrics-exporter-prometheus` renders the text
//! format. Without `metrics.listen` no recorder is installed and every call here is a no-op.
//!
//! Two kinds of figures:
//! - **Events counted as they happen** in this process (messages relayed, delivery failures,
//!   latencies, appservice transactions, homeserver requests): counters and histograms that start
//!   at zero with the process, as Prometheus expects of counters.
//! - **States read from the store** every `metrics.refresh` ([`watch`]): queue depths and the age
//!   of their oldest item, unworked conversations per team, and first responses (from
//!   `conversation_events`), so they are true across restarts and agree between instances.
//!
//! Labels are bounded: channel names, teams, directions, outcome classes, homeserver route
//! templates (never a raw path with ids in it). No conversation, contact, room or user id is ever
//! a label; those belong in the logs (see the spans in [`crate::relay`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::bridge::Bridge;
use crate::config::Config;

/// Messages relayed, by `channel` and `direction` (`inbound`: a customer's message posted in
/// its room; `outbound`: an operator's message accepted by the channel).
pub const MESSAGES: &str = "switchboard_messages_total";
/// Failed delivery attempts, by `channel` and `class` ([`FailureClass`]).
pub const DELIVERY_FAILURES: &str = "switchboard_delivery_failures_total";
/// Items in a durable queue, by `queue` (`inbox`, `matrix_events`, `outbox`, `dead_letters`).
pub const QUEUE_DEPTH: &str = "switchboard_queue_depth";
/// Age of the oldest item of a queue in seconds (0 when empty), by `queue`.
pub const QUEUE_OLDEST_AGE: &str = "switchboard_queue_oldest_age_seconds";
/// From stored to relayed, by `direction`: inbound from the channel's hand-over to the event in
/// the room; outbound from the outbox to the channel's acceptance (retries included).
pub const RELAY_LATENCY: &str = "switchboard_relay_latency_seconds";
/// Conversations waiting for an operator's answer, by `team` (`(none)`: no team).
pub const UNWORKED: &str = "switchboard_unworked_conversations";
/// How long the longest-waiting of them has waited, in the team's working time (what
/// escalation counts), by `team`.
pub const UNWORKED_OLDEST_WAIT: &str = "switchboard_unworked_oldest_wait_seconds";
/// A team's escalation time (`teams.<name>.escalate_after` or an admin's change), by `team`: the
/// threshold the alert compares the oldest wait with.
pub const TEAM_ESCALATE_AFTER: &str = "switchboard_team_escalate_after_seconds";
/// From a conversation's start (or reopening) to its first operator answer, wall clock, by
/// `team`; read from `conversation_events`.
pub const FIRST_RESPONSE: &str = "switchboard_first_response_seconds";
/// Transactions the homeserver pushed, by `outcome` ([`TxnOutcome`]).
pub const APPSERVICE_TRANSACTIONS: &str = "switchboard_appservice_transactions_total";
/// Requests to the homeserver, by `endpoint` (the route template) and `status` (the HTTP status,
/// or `error` when there was no answer).
pub const HOMESERVER_REQUESTS: &str = "switchboard_homeserver_requests_total";
/// Homeserver request duration in seconds, by `endpoint`.
pub const HOMESERVER_REQUEST_DURATION: &str = "switchboard_homeserver_request_duration_seconds";
/// 1 while a channel is connected, 0 while it is down, by `channel` (see [`channel_up`]).
pub const CHANNEL_UP: &str = "switchboard_channel_up";
/// 1 while this instance is the leader (runs the workers, pollers and timers), 0 while it
/// stands by ([`crate::leader`]).
pub const LEADER: &str = "switchboard_leader";
/// Always 1; the labels say which build runs (`version`).
pub const BUILD_INFO: &str = "switchboard_build_info";
/// When the process started (Unix seconds).
pub const START_TIME: &str = "switchboard_start_time_seconds";

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Customer → room.
    Inbound,
    /// Operator → customer.
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Why a delivery attempt failed, in the classes an operator acts on differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// An outage, timeout, 5xx or rate limit: retried later.
    Transient,
    /// Still failing after `bridge.max_attempts`: a dead letter.
    GaveUp,
    /// The network refused this message for good (blocked, closed window, bad content).
    Refused,
    /// Not sent at all: the channel cannot carry it (too large, no such feature) or is not
    /// enabled.
    Unsupported,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::GaveUp => "gave_up",
            FailureClass::Refused => "refused",
            FailureClass::Unsupported => "unsupported",
        }
    }
}

/// What became of a homeserver transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Its events were stored (answered 200).
    Stored,
    /// Seen before; nothing stored again (answered 200).
    Replay,
    /// Refused once so the homeserver re-sends a missing earlier one first (503).
    HeldForGap,
    /// Missing or wrong hs_token (401/403).
    Unauthorized,
    /// Not a transaction body, or too large (400/413).
    Malformed,
    /// The store refused it (500; the homeserver retries).
    StoreError,
}

impl TxnOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TxnOutcome::Stored => "stored",
            TxnOutcome::Replay => "replay",
            TxnOutcome::HeldForGap => "held_for_gap",
            TxnOutcome::Unauthorized => "unauthorized",
            TxnOutcome::Malformed => "malformed",
            TxnOutcome::StoreError => "store_error",
        }
    }
}

/// One message relayed.
pub fn message(channel: &str, direction: Direction) {
    counter!(MESSAGES, "channel" => channel.to_string(), "direction" => direction.as_str())
        .increment(1);
}

/// One failed delivery attempt.
pub fn delivery_failure(channel: &str, class: FailureClass) {
    counter!(DELIVERY_FAILURES, "channel" => channel.to_string(), "class" => class.as_str())
        .increment(1);
}

/// A message relayed that entered its queue at `queued_at_ms`.
pub fn relay_latency(direction: Direction, queued_at_ms: i64) {
    let ms = (crate::store::now_ms() - queued_at_ms).max(0);
    histogram!(RELAY_LATENCY, "direction" => direction.as_str()).record(ms as f64 / 1000.0);
}

/// A homeserver transaction's outcome.
pub fn appservice_transaction(outcome: TxnOutcome) {
    counter!(APPSERVICE_TRANSACTIONS, "outcome" => outcome.as_str()).increment(1);
}

/// A request to the homeserver: its method and path (reduced to the route template here), its
/// status (`None`: no answer) and how long it took.
pub fn homeserver_request(method: &str, path: &str, status: Option<u16>, took: Duration) {
    let endpoint = endpoint(method, path);
    let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
    counter!(HOMESERVER_REQUESTS, "endpoint" => endpoint, "status" => status).increment(1);
    histogram!(HOMESERVER_REQUEST_DURATION, "endpoint" => endpoint).record(took.as_secs_f64());
}

/// A channel's connection state. The core sees a channel through what it does: started (up),
/// a send that failed in a way that passes, i.e. an outage, timeout or rate limit (down), a send
/// accepted or an event received (up again).
/// This instance became the leader (`true`) or stepped down.
pub fn leader(leading: bool) {
    gauge!(LEADER).set(if leading { 1.0 } else { 0.0 });
}

pub fn channel_up(channel: &str, up: bool) {
    gauge!(CHANNEL_UP, "channel" => channel.to_string()).set(if up { 1.0 } else { 0.0 });
}

/// The client-server API routes the bridge calls, as templates. A path that matches none is
/// `other`: the label set stays bounded whatever is called.
const ROUTES: &[&str] = &[
    "/_matrix/client/v3/account/whoami",
    "/_matrix/client/v3/register",
    "/_matrix/client/v3/createRoom",
    "/_matrix/client/v3/profile/{userId}/displayname",
    "/_matrix/client/v3/profile/{userId}/avatar_url",
    "/_matrix/client/v3/rooms/{roomId}/join",
    "/_matrix/client/v3/rooms/{roomId}/leave",
    "/_matrix/client/v3/rooms/{roomId}/invite",
    "/_matrix/client/v3/rooms/{roomId}/kick",
    "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}",
    "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}",
    "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/",
    "/_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}",
    "/_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}",
    "/_matrix/client/v3/rooms/{roomId}/typing/{userId}",
    "/_matrix/client/v3/rooms/{roomId}/members",
    "/_matrix/client/v3/rooms/{roomId}/joined_members",
    "/_matrix/client/v3/rooms/{roomId}/messages",
    "/_matrix/client/v3/presence/{userId}/status",
    "/_matrix/client/v3/directory/room/{roomAlias}",
    "/_matrix/client/v1/appservice/{appserviceId}/ping",
    "/_matrix/media/v3/upload",
    "/_matrix/client/v1/media/download/{serverName}/{mediaId}",
    "/_matrix/media/v3/download/{serverName}/{mediaId}",
];

/// `METHOD /route/{template}` for a request path (query string ignored).
pub fn endpoint(method: &str, path: &str) -> &'static str {
    /// Each route's segments and its label per method, made once (a fixed, small set).
    type Route = (Vec<&'static str>, [(&'static str, &'static str); 4]);
    static TABLE: std::sync::OnceLock<Vec<Route>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        ROUTES
            .iter()
            .map(|route| {
                let label = |m: &'static str| -> (&'static str, &'static str) {
                    (m, Box::leak(format!("{m} {route}").into_boxed_str()))
                };
                (
                    route.split('/').collect(),
                    [label("GET"), label("POST"), label("PUT"), label("DELETE")],
                )
            })
            .collect()
    });
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    table
        .iter()
        .filter(|(route, _)| {
            route.len() == segments.len()
                && route
                    .iter()
                    .zip(&segments)
                    .all(|(r, s)| (r.starts_with('{') && !s.is_empty()) || r == s)
        })
        .find_map(|(_, labels)| labels.iter().find(|(m, _)| *m == method))
        .map_or("other", |(_, label)| label)
}

/// Histogram buckets (seconds): relay latency, from a few milliseconds to minutes (retries).
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// First-response buckets (seconds): a minute to a day.
const FIRST_RESPONSE_BUCKETS: &[f64] = &[
    30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
];

/// With `metrics.listen` set: install the recorder, record the build, and serve `/metrics` on
/// that address (bound before this returns, so a taken port fails start-up with its key).
pub async fn start(config: &Config) -> anyhow::Result<Option<PrometheusHandle>> {
    let Some(listen) = config.metrics.listen else {
        return Ok(None);
    };
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(RELAY_LATENCY.into()), LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(HOMESERVER_REQUEST_DURATION.into()),
                LATENCY_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(FIRST_RESPONSE.into()), FIRST_RESPONSE_BUCKETS)
        })
        .context("metrics: histogram buckets")?
        .install_recorder()
        .context("metrics: cannot install the recorder")?;
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    gauge!(START_TIME).set(started);
    leader(false);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("metrics.listen: cannot listen on {listen}"))?;
    tracing::info!(address = %listen, "metrics at /metrics");
    tokio::spawn(serve(listener, handle.clone()));
    Ok(Some(handle))
}

async fn serve(listener: tokio::net::TcpListener, handle: PrometheusHandle) {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics listener stopped");
    }
}

/// Help texts, shown by Prometheus and Grafana.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(MESSAGES, "Messages relayed, by channel and direction");
    describe_counter!(
        DELIVERY_FAILURES,
        "Failed delivery attempts to a channel, by reason class"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Items in a durable queue (read from the store)"
    );
    describe_gauge!(
        QUEUE_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest item in a queue (0 when empty)"
    );
    describe_histogram!(
        RELAY_LATENCY,
        Unit::Seconds,
        "From stored to relayed, per direction"
    );
    describe_gauge!(
        UNWORKED,
        "Conversations waiting for an operator's answer, per team"
    );
    describe_gauge!(
        UNWORKED_OLDEST_WAIT,
        Unit::Seconds,
        "Working time the longest-waiting unworked conversation has waited, per team"
    );
    describe_gauge!(
        TEAM_ESCALATE_AFTER,
        Unit::Seconds,
        "A team's escalation time (working time)"
    );
    describe_histogram!(
        FIRST_RESPONSE,
        Unit::Seconds,
        "From a conversation's start or reopening to its first answer, per team"
    );
    describe_counter!(
        APPSERVICE_TRANSACTIONS,
        "Transactions pushed by the homeserver, by outcome"
    );
    describe_counter!(
        HOMESERVER_REQUESTS,
        "Requests to the homeserver, by route template and status"
    );
    describe_histogram!(
        HOMESERVER_REQUEST_DURATION,
        Unit::Seconds,
        "Homeserver request duration, by route template"
    );
    describe_gauge!(
        CHANNEL_UP,
        "1 while a channel is connected, 0 while it is down"
    );
    describe_gauge!(
        LEADER,
        "1 while this instance is the leader, 0 while it stands by"
    );
    describe_gauge!(BUILD_INFO, "The running build (labels)");
    describe_gauge!(START_TIME, Unit::Seconds, "When the process started");
}

/// The label of conversations with no team.
pub const NO_TEAM: &str = "(none)";

/// How many first responses are read from the store at a time.
const FIRST_RESPONSE_BATCH: i64 = 1000;

/// Read the store's figures every `metrics.refresh`, forever. First responses are read from the
/// start of `conversation_events` on, so the histogram holds every first response the store has,
/// whenever the process started.
pub async fn watch(bridge: Arc<Bridge>) {
    let mut first_after = 0i64;
    let mut tick = tokio::time::interval(bridge.config.metrics.refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = refresh(&bridge, &mut first_after).await {
            tracing::warn!(error = %e, "cannot read the store's figures for the metrics");
        }
    }
}

async fn refresh(bridge: &Bridge, first_after: &mut i64) -> Result<(), crate::store::StoreError> {
    let now = crate::store::now_ms();
    let q = bridge.store.queue_figures().await?;
    for (name, f) in [
        ("inbox", q.inbox),
        ("matrix_events", q.matrix_events),
        ("outbox", q.outbox),
        ("dead_letters", q.dead_letters),
    ] {
        gauge!(QUEUE_DEPTH, "queue" => name).set(f.depth as f64);
        let age = f.oldest_at.map_or(0, |at| (now - at).max(0));
        gauge!(QUEUE_OLDEST_AGE, "queue" => name).set(age as f64 / 1000.0);
    }

    let unworked = bridge.store.unworked_by_team().await?;
    let clock_now = bridge.clock.now_ms();
    // Every configured team and "no team" is reported, at 0 when nothing waits: a series that
    // vanishes cannot be told from one that was never scraped.
    let mut teams: Vec<Option<String>> =
        bridge.teams.iter().map(|t| Some(t.name.clone())).collect();
    teams.push(None);
    for u in &unworked {
        if !teams.contains(&u.team) {
            teams.push(u.team.clone());
        }
    }
    for team in &teams {
        let label = team.clone().unwrap_or_else(|| NO_TEAM.to_string());
        let found = unworked.iter().find(|u| &u.team == team);
        let (count, wait) = match found {
            Some(u) => {
                let calendar = crate::routing::waiting::calendar_of(bridge, team.as_deref()).await;
                let waited = crate::routing::waiting::waited(&calendar, u.oldest_since, clock_now);
                (u.count, waited.working.num_milliseconds().max(0))
            }
            None => (0, 0),
        };
        gauge!(UNWORKED, "team" => label.clone()).set(count as f64);
        gauge!(UNWORKED_OLDEST_WAIT, "team" => label.clone()).set(wait as f64 / 1000.0);
    }
    for team in bridge.teams.iter() {
        let after = crate::routing::teams::escalate_after(bridge, team).await;
        gauge!(TEAM_ESCALATE_AFTER, "team" => team.name.clone()).set(after.as_secs_f64());
    }

    loop {
        let batch = bridge
            .store
            .first_responses_after(*first_after, FIRST_RESPONSE_BATCH)
            .await?;
        for f in &batch {
            let team = f.team.clone().unwrap_or_else(|| NO_TEAM.to_string());
            histogram!(FIRST_RESPONSE, "team" => team).record(f.waited_ms as f64 / 1000.0);
            *first_after = f.id;
        }
        if (batch.len() as i64) < FIRST_RESPONSE_BATCH {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths with ids become their route template; anything else is `other`, never the path.
    #[test]
    fn homeserver_paths_become_route_templates() {
        assert_eq!(
            endpoint(
                "PUT",
                "/_matrix/client/v3/rooms/%21abc%3Ahs/send/m.room.message/sb-in-17-0?user_id=%40x"
            ),
            "PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"
        );
        assert_eq!(
            endpoint("POST", "/_matrix/client/v3/createRoom"),
            "POST /_matrix/client/v3/createRoom"
        );
        assert_eq!(
            endpoint(
                "GET",
                "/_matrix/client/v3/profile/%40sb_web_1%3Ahs/displayname"
            ),
            "GET /_matrix/client/v3/profile/{userId}/displayname"
        );
        assert_eq!(
            endpoint("GET", "/_matrix/client/v3/rooms/%21abc/unknown/x"),
            "other"
        );
        assert_eq!(
            endpoint("GET", "/_matrix/client/v3/rooms//members"),
            "other"
        );
    }
}
