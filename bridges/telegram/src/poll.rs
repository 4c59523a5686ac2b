//! Long polling: `getUpdates` in a loop, with the offset stored only after the updates are.
//!
//! Telegram keeps an update until a `getUpdates` call asks for an offset above its id; that
//! call *confirms* it and Telegram forgets it. So the order here is the durability contract:
//!
//! 1. `getUpdates(offset = stored offset)` — returns the unconfirmed updates.
//! 2. For each update, in order: fetch its file, `Host::receive` (stored in the inbox).
//! 3. Only when all of them are stored: `state_put("offset", last id + 1)`, and only then the
//!    next `getUpdates` with that offset, which confirms them to Telegram.
//!
//! A crash anywhere before 3 means the next run asks with the old offset and gets the same
//! updates again; the inbox drops the ones it already has (dedup keys), so nothing is lost and
//! nothing doubled. If one update cannot be stored (a file download failed, the store is down)
//! the offset advances past the updates before it only, and the rest is asked for again after
//! a pause.
//!
//! Flood control (`429` with `retry_after`) is waited out exactly; a conflicting webhook or a
//! second poller (409) and network trouble back off up to 30 s.

use std::sync::Arc;
use std::time::Duration;

use teloxide::errors::{ApiError, RequestError};
use teloxide::payloads::GetUpdatesSetters;
use teloxide::prelude::Requester;
use teloxide::types::AllowedUpdate;

use crate::Shared;

/// The state key of the next update id to ask for.
pub const OFFSET_KEY: &str = "offset";
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The updates we handle (also given to `setWebhook`).
pub fn allowed_updates() -> Vec<AllowedUpdate> {
    vec![AllowedUpdate::Message, AllowedUpdate::EditedMessage]
}

async fn read_offset(shared: &Shared) -> Option<i32> {
    let mut pause = Duration::from_millis(200);
    loop {
        match shared.host.state_get(OFFSET_KEY).await {
            Ok(v) => return v.and_then(|s| s.trim().parse().ok()),
            Err(e) => {
                tracing::warn!(error = %e, "telegram: cannot read the stored offset; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Store the offset, retrying until the store takes it: asking Telegram with an offset we
/// could not store would confirm updates behind our back (harmless, as they are stored, but
/// the stored offset must never run *ahead* of the inbox, and this keeps them in step).
async fn write_offset(shared: &Shared, offset: i32) {
    let mut pause = Duration::from_millis(200);
    while let Err(e) = shared.host.state_put(OFFSET_KEY, &offset.to_string()).await {
        tracing::warn!(error = %e, "telegram: cannot store the offset; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_BACKOFF);
    }
}

/// The polling loop; runs for the life of the process.
pub async fn run(shared: Arc<Shared>) {
    // A webhook left from webhook mode makes getUpdates fail with 409; polling mode removes it
    // (without dropping pending updates).
    if let Err(e) = shared.bot.delete_webhook().await {
        tracing::warn!(error = %e, "telegram: deleteWebhook failed; polling anyway");
    }
    let mut offset = read_offset(&shared).await;
    tracing::info!(?offset, "telegram: polling for updates");
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut request = shared
            .bot
            .get_updates()
            .timeout(shared.config.poll_timeout_secs)
            .allowed_updates(allowed_updates());
        if let Some(o) = offset {
            request = request.offset(o);
        }
        let updates = match request.await {
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
        let mut stored_up_to: Option<i32> = None;
        let mut failed = false;
        for update in &updates {
            let id = i32::try_from(update.id.0).unwrap_or(i32::MAX);
            match crate::handle_update(&shared, update).await {
                Ok(()) => stored_up_to = Some(id.saturating_add(1)),
                Err(e) => {
                    tracing::warn!(update_id = id, error = %e, "telegram: update not stored yet; it will be asked for again");
                    failed = true;
                    break;
                }
            }
        }
        if let Some(next) = stored_up_to {
            write_offset(&shared, next).await;
            offset = Some(next);
        }
        if failed {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
