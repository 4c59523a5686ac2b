//! Long polling: `getUpdates` in a loop, each update confirmed only after it is stored, and
//! never with an offset that could confirm an update we have not seen.
//!
//! Telegram keeps an update until a `getUpdates` call asks for an offset above its id; that
//! call *confirms* it and Telegram forgets it. Telegram's ids are not a counter we can keep:
//! after a week without updates the next id is chosen at random, so it may be far *below* the
//! last one we saw, and any offset remembered from before (in the store, or in memory across a
//! quiet week) would confirm — drop — the new updates unread. So the loop never asks with an
//! offset it did not just compute from updates it holds:
//!
//! 1. `getUpdates` *without* an offset (long poll): Telegram returns its unconfirmed updates,
//!    whatever their ids, and confirms nothing.
//! 2. For each update, in order: fetch its file, `Host::receive` (or `Host::unreadable` when it
//!    cannot be read), so it is in the store.
//! 3. Only then `getUpdates(offset = highest stored id + 1, timeout = 0)`: this confirms exactly
//!    the updates just stored (ids are ascending within one answer), and returns at once; if it
//!    brings more, they are handled the same way; when it brings none, the loop is back at 1.
//!
//! A crash anywhere before 3 means the next run gets the same updates again from 1; the inbox
//! drops the ones it already has (dedup keys), so nothing is lost and nothing doubled. If one
//! update cannot be stored (a file download failed, the store is down) only the updates before
//! it are confirmed, and the rest is asked for again after a pause. Nothing is kept in the
//! channel's state: an offset stored by an earlier version (state key `offset`) is not read.
//!
//! Updates are read as raw JSON (not through teloxide's `Update`, which turns a message it
//! cannot read into an empty error and loses it), so [`crate::inbound::read_update`] sees
//! every byte Telegram sent.
//!
//! Flood control (`429` with `retry_after`) is waited out exactly; a conflicting webhook or a
//! second poller (409) and network trouble back off up to 30 s.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use teloxide::errors::{ApiError, RequestError};
use teloxide::prelude::Requester;
use teloxide::requests::{JsonRequest, Payload};
use teloxide::types::AllowedUpdate;

use crate::Shared;

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The updates we handle (also given to `setWebhook`). `message_reaction` must be named:
/// Telegram leaves it out of the default list ("all update types except chat_member,
/// message_reaction, and message_reaction_count").
pub fn allowed_updates() -> Vec<AllowedUpdate> {
    vec![
        AllowedUpdate::Message,
        AllowedUpdate::EditedMessage,
        AllowedUpdate::MessageReaction,
        AllowedUpdate::CallbackQuery,
    ]
}

/// `getUpdates`, answered as raw JSON values.
#[derive(Serialize)]
struct GetRawUpdates {
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    timeout: u32,
    allowed_updates: Vec<AllowedUpdate>,
}

impl Payload for GetRawUpdates {
    type Output = Vec<serde_json::Value>;
    const NAME: &'static str = "getUpdates";

    fn timeout_hint(&self) -> Option<Duration> {
        Some(Duration::from_secs(u64::from(self.timeout)))
    }
}

/// The offset that confirms the first `stored` of `ids` (in the order Telegram sent them) and
/// nothing else: one above the highest of them, unless an update not yet stored has an id at
/// or below that (ids out of order after a reset), in which case nothing is confirmed.
pub fn confirming_offset(ids: &[Option<i64>], stored: usize) -> Option<i64> {
    let highest = ids[..stored].iter().flatten().max()?;
    let rest_above = ids[stored..]
        .iter()
        .all(|id| id.is_some_and(|id| id > *highest));
    rest_above.then_some(highest + 1)
}

/// The polling loop; runs for the life of the process.
pub async fn run(shared: Arc<Shared>) {
    // A webhook left from webhook mode makes getUpdates fail with 409; polling mode removes it
    // (without dropping pending updates).
    if let Err(e) = shared.bot.delete_webhook().await {
        tracing::warn!(error = %e, "telegram: deleteWebhook failed; polling anyway");
    }
    tracing::info!("telegram: polling for updates");
    let mut backoff = Duration::from_millis(500);
    // The offset confirming what the last answer brought and we stored; asked once, at once.
    let mut confirm: Option<i64> = None;
    loop {
        let request = GetRawUpdates {
            offset: confirm,
            timeout: if confirm.is_some() {
                0
            } else {
                shared.config.poll_timeout_secs
            },
            allowed_updates: allowed_updates(),
        };
        let updates = match JsonRequest::new(shared.bot.clone(), request).await {
            Ok(u) => {
                backoff = Duration::from_millis(500);
                u
            }
            Err(RequestError::RetryAfter(s)) => {
                tracing::warn!(
                    seconds = s.seconds(),
                    "telegram: flood control on getUpdates; waiting"
                );
                tokio::time::sleep(s.duration()).await;
                continue;
            }
            Err(e) => {
                match &e {
                    RequestError::Api(ApiError::TerminatedByOtherGetUpdates) => {
                        tracing::warn!(
                            "telegram: another getUpdates or a webhook is active for this bot"
                        )
                    }
                    RequestError::Api(ApiError::InvalidToken) => {
                        tracing::error!(
                            "telegram: the bot token is refused; check channels.telegram.token"
                        )
                    }
                    _ => tracing::warn!(error = %e, "telegram: getUpdates failed"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let ids: Vec<Option<i64>> = updates
            .iter()
            .map(|u| crate::lenient::int(u.get("update_id")))
            .collect();
        let mut stored = 0;
        let mut failed = false;
        for update in &updates {
            let raw = serde_json::to_vec(update).unwrap_or_default();
            match crate::handle_update(&shared, &raw).await {
                Ok(()) => stored += 1,
                Err(e) => {
                    tracing::warn!(update_id = ?ids[stored], error = %e, "telegram: update not stored yet; it will be asked for again");
                    failed = true;
                    break;
                }
            }
        }
        confirm = confirming_offset(&ids, stored);
        if failed {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirms_only_what_was_stored() {
        let ids = [Some(10), Some(11), Some(12)];
        assert_eq!(confirming_offset(&ids, 3), Some(13));
        assert_eq!(confirming_offset(&ids, 1), Some(11));
        assert_eq!(confirming_offset(&ids, 0), None);
        // After a reset the ids in one answer may not ascend: an unstored lower id is never
        // confirmed by a stored higher one.
        assert_eq!(confirming_offset(&[Some(900), Some(5)], 1), None);
        assert_eq!(confirming_offset(&[Some(900), None], 1), None);
        assert_eq!(confirming_offset(&[None, Some(7)], 2), Some(8));
    }
}
