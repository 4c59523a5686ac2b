//! Catching up after a session that could not be resumed.
//!
//! While the gateway session can be resumed, Discord replays what the bridge missed (see
//! [`crate::gateway`]). When it cannot — INVALID_SESSION `false`, close codes 4007/4009, or a
//! session that expired while the bridge was down — the bridge identifies afresh and Discord
//! replays nothing: a customer's direct message sent in between would never reach the room.
//!
//! So the bridge remembers, per DM channel, the id of the newest message it stored, and after a
//! fresh READY asks each of those channels for what came after it (`GET
//! /channels/{id}/messages?after=`, 100 a page), oldest first, through the same path as live
//! messages — before any live event of the new session is taken. Message ids are snowflakes,
//! which grow with time, and messages are deduplicated by id, so a message seen both ways is
//! stored once. Guild channels are not caught up (a REST message does not say its guild, and a
//! busy server channel could hold thousands).

use std::time::Duration;

use serde_json::Value;
use tokio::time::sleep;

use crate::Shared;

/// The channel's state key listing the DM channels caught up after a fresh session.
const CHANNELS_KEY: &str = "catchup_channels";
/// Messages asked for per request (Discord's maximum).
const PAGE: usize = 100;

fn last_key(channel: &str) -> String {
    format!("catchup_last:{channel}")
}

fn snowflake(id: &str) -> u64 {
    id.parse().unwrap_or(0)
}

/// After a message was stored: remember it as the newest of its DM channel.
pub(crate) async fn remember(shared: &Shared, event: &str, data: &Value) {
    if event != "MESSAGE_CREATE" || data.get("guild_id").is_some_and(|g| !g.is_null()) {
        return;
    }
    let (Some(channel), Some(id)) = (
        data.get("channel_id").and_then(Value::as_str),
        data.get("id").and_then(Value::as_str),
    ) else {
        return;
    };
    if snowflake(id) == 0 || snowflake(channel) == 0 {
        return;
    }
    let key = last_key(channel);
    let known = match shared.host.state_get(&key).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "discord: cannot read the catch-up position");
            return;
        }
    };
    if known
        .as_deref()
        .is_some_and(|k| snowflake(k) >= snowflake(id))
    {
        return;
    }
    if let Err(e) = shared.host.state_put(&key, id).await {
        tracing::warn!(error = %e, "discord: cannot record the catch-up position");
        return;
    }
    if known.is_none() {
        let mut channels = channels(shared).await;
        if !channels.iter().any(|c| c == channel) {
            channels.push(channel.to_owned());
            let value = serde_json::to_string(&channels).unwrap_or_default();
            if let Err(e) = shared.host.state_put(CHANNELS_KEY, &value).await {
                tracing::warn!(error = %e, "discord: cannot record a DM channel for catch-up");
            }
        }
    }
}

async fn channels(shared: &Shared) -> Vec<String> {
    match shared.host.state_get(CHANNELS_KEY).await {
        Ok(Some(v)) => serde_json::from_str(&v).unwrap_or_default(),
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(error = %e, "discord: cannot read the DM channels to catch up");
            Vec::new()
        }
    }
}

/// After a fresh READY: store what every known DM channel received since its newest stored
/// message. A channel Discord will not list (the DM closed, a network failure that outlasts the
/// retries) is logged and skipped; the others still catch up.
pub(crate) async fn run(shared: &Shared) {
    let channels = channels(shared).await;
    let mut caught = 0usize;
    for channel in &channels {
        let Ok(Some(mut after)) = shared.host.state_get(&last_key(channel)).await else {
            continue;
        };
        loop {
            let mut page = match page(shared, channel, &after).await {
                Some(page) => page,
                None => break,
            };
            page.sort_by_key(|m| snowflake(m.get("id").and_then(Value::as_str).unwrap_or("")));
            let full = page.len() >= PAGE;
            for message in page {
                let Some(id) = message.get("id").and_then(Value::as_str).map(str::to_owned) else {
                    continue;
                };
                let mut attempt = 0u32;
                while let Err(e) = crate::handle_dispatch(shared, "MESSAGE_CREATE", &message).await
                {
                    attempt += 1;
                    tracing::warn!(error = %e, channel, attempt, "discord: a caught-up message is not stored yet; trying again");
                    sleep(Duration::from_millis(250 * u64::from(attempt.min(20)))).await;
                }
                remember(shared, "MESSAGE_CREATE", &message).await;
                caught += 1;
                after = id;
            }
            if !full {
                break;
            }
        }
    }
    if caught > 0 {
        tracing::info!(
            channels = channels.len(),
            messages = caught,
            "discord: caught up with messages sent while no session could be resumed"
        );
    }
}

/// One page of a channel's messages after `after`, retried a few times on network trouble.
async fn page(shared: &Shared, channel: &str, after: &str) -> Option<Vec<Value>> {
    for attempt in 1..=5u32 {
        match shared.rest.messages_after(channel, after, PAGE).await {
            Ok(page) => return Some(page),
            Err(e) => {
                tracing::warn!(error = %e, channel, attempt, "discord: cannot list a DM channel to catch up");
                sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
        }
    }
    None
}
