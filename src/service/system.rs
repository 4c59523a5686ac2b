//! The bridge's status and its channels: their state as the last check found it, the last
//! error, and a fresh check through each channel's own [`switchboard_channel::Channel::check`]
//! (what `switchboard doctor` runs). A check's result is stored, so every instance and every
//! restart shows the last one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{authorize, Action, Actor, ServiceError};
use crate::bridge::Bridge;

/// Where the last check of each channel is kept (`channel_state`, under a name no channel has).
const CHECKS_STATE: &str = "_checks";

/// The bridge at a glance.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Status {
    pub version: String,
    /// The bot is registered and the workers run.
    pub ready: bool,
    /// Enabled channels.
    pub channels: Vec<String>,
    pub teams: Vec<String>,
    /// Conversations waiting for an answer, and how long the oldest has waited (wall clock, ms).
    pub unworked: u64,
    pub oldest_unworked_ms: Option<i64>,
    /// Operator messages waiting for delivery.
    pub outbox_pending: i64,
    /// Operator messages that could not be delivered.
    pub dead_letters: i64,
}

pub async fn status(bridge: &Bridge, actor: &Actor) -> Result<Status, ServiceError> {
    authorize(actor, Action::Status)?;
    let now = bridge.clock.now_ms();
    let unworked = bridge.store.routing_unworked().await?;
    let (outbox_pending, dead_letters) = bridge.store.outbox_counts().await?;
    let mut channels: Vec<String> = bridge.channels.keys().map(|c| c.to_string()).collect();
    channels.sort();
    Ok(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        ready: bridge.ready.load(std::sync::atomic::Ordering::SeqCst),
        channels,
        teams: bridge.teams.iter().map(|t| t.name.clone()).collect(),
        unworked: unworked.len() as u64,
        oldest_unworked_ms: unworked
            .iter()
            .filter_map(|r| r.unworked_since)
            .min()
            .map(|since| (now - since).max(0)),
        outbox_pending,
        dead_letters,
    })
}

/// One check of a channel against its network.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckView {
    /// What was checked, e.g. "bot token (getMe)".
    pub what: String,
    /// What was found.
    pub found: String,
    /// What to change, when it does not hold.
    pub fix: Option<String>,
    pub holds: bool,
}

/// The last check of a channel, as stored.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LastCheck {
    /// When it ran (ms since the epoch).
    pub at: i64,
    pub checks: Vec<CheckView>,
}

/// A channel's state.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChannelView {
    pub name: String,
    /// `ok` (every check of the last run held), `failing` (one did not) or `unchecked`.
    pub state: String,
    /// The last check's first failure, else the newest dead letter's reason.
    pub last_error: Option<String>,
    pub last_check: Option<LastCheck>,
    /// Operator messages on this channel that could not be delivered (of the newest 1000).
    pub dead_letters: u64,
}

async fn view(bridge: &Bridge, name: &str) -> Result<ChannelView, ServiceError> {
    let last_check: Option<LastCheck> = bridge
        .store
        .state_get(CHECKS_STATE, name)
        .await?
        .and_then(|v| serde_json::from_str(&v).ok());
    let dead: Vec<_> = bridge
        .store
        .outbox_dead_letters(1000)
        .await?
        .into_iter()
        .filter(|d| d.channel == name)
        .collect();
    let failed_check = last_check
        .as_ref()
        .and_then(|c| c.checks.iter().find(|c| !c.holds))
        .map(|c| format!("{}: {}", c.what, c.found));
    Ok(ChannelView {
        name: name.to_string(),
        state: match &last_check {
            None => "unchecked",
            Some(_) if failed_check.is_some() => "failing",
            Some(_) => "ok",
        }
        .into(),
        last_error: failed_check.or_else(|| dead.first().and_then(|d| d.last_error.clone())),
        last_check,
        dead_letters: dead.len() as u64,
    })
}

/// Every enabled channel's state.
pub async fn channels(bridge: &Bridge, actor: &Actor) -> Result<Vec<ChannelView>, ServiceError> {
    authorize(actor, Action::Status)?;
    let mut names: Vec<&str> = bridge.channels.keys().copied().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        out.push(view(bridge, name).await?);
    }
    Ok(out)
}

/// Check one channel against its network now (admins); its state afterwards.
pub async fn check_channel(
    bridge: &Bridge,
    actor: &Actor,
    name: &str,
) -> Result<ChannelView, ServiceError> {
    authorize(actor, Action::CheckChannels)?;
    let channel = bridge.channel(name).ok_or_else(|| {
        ServiceError::NotFound(format!("No channel `{name}` is enabled on this bridge."))
    })?;
    let mut checks: Vec<CheckView> = channel
        .check()
        .await
        .into_iter()
        .map(|c| CheckView {
            holds: c.holds(),
            what: c.what,
            found: c.found,
            fix: c.fix,
        })
        .collect();
    if checks.is_empty() {
        checks.push(CheckView {
            what: "network".into(),
            found: "this channel has no checks of its own yet".into(),
            fix: None,
            holds: true,
        });
    }
    let last = LastCheck {
        at: bridge.clock.now_ms(),
        checks,
    };
    let value = serde_json::to_string(&last).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    bridge.store.state_put(CHECKS_STATE, name, &value).await?;
    view(bridge, name).await
}
