//! The Bot API client: teloxide's `Bot` pointed at the configured base URL, and what its errors
//! mean for us.
//!
//! The base URL is the only thing that differs between production (`https://api.telegram.org`),
//! a self-hosted Bot API server and the test suite's fake: every request, file download
//! included, is built by teloxide from it.
//!
//! teloxide reads the JSON error envelope (`{"ok":false,"error_code":…,"description":…,
//! "parameters":{…}}`) into [`RequestError`]; [`classify`] sorts those into what the core's
//! outbox understands: *retryable* (flood control with Telegram's own `retry_after`, server
//! errors, network trouble) and *permanent* with a reason written for operators ("the customer
//! has blocked the bot").

use std::time::Duration;

use futures::StreamExt;
use switchboard_channel::SendError;
use teloxide::errors::{ApiError, RequestError};
use teloxide::net::Download;
use teloxide::prelude::Requester;
use teloxide::types::FileId;
use teloxide::Bot;

use crate::config::TelegramConfig;

/// Extra time on top of the long-poll timeout before a `getUpdates` counts as hung.
const HTTP_SLACK: Duration = Duration::from_secs(5);

/// A Bot API client for this configuration.
pub fn bot(config: &TelegramConfig) -> Result<Bot, String> {
    let api_url = url::Url::parse(&config.api_url).map_err(|e| format!("api_url: {e}"))?;
    // teloxide's default client times out after 17 s, less than a long poll may take.
    let poll = Duration::from_secs(u64::from(config.poll_timeout_secs)) + HTTP_SLACK;
    let client = teloxide::net::default_reqwest_settings()
        .timeout(poll.max(Duration::from_secs(u64::from(config.request_timeout_secs))))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    Ok(Bot::with_client(config.token.clone(), client).set_api_url(api_url))
}

/// Telegram's description of errors teloxide does not name, lowercased, e.g.
/// "internal server error".
fn unknown_description(error: &ApiError) -> Option<String> {
    match error {
        ApiError::Unknown(text) => Some(text.to_ascii_lowercase()),
        _ => None,
    }
}

/// Whether an API error is Telegram having trouble (worth retrying) rather than a refusal.
/// teloxide drops the numeric `error_code`, so this goes by the description Telegram sends with
/// 5xx answers ("Internal Server Error", "Bad Gateway", …).
pub fn is_server_trouble(error: &ApiError) -> bool {
    unknown_description(error).is_some_and(|d| {
        [
            "internal server error",
            "bad gateway",
            "service unavailable",
            "gateway timeout",
            "too many requests",
            "restart",
        ]
        .iter()
        .any(|p| d.contains(p))
    })
}

/// What a failed request means for an outbound item.
pub fn classify(error: RequestError) -> SendError {
    let retry = |reason: String, retry_after: Option<Duration>| SendError::Retryable {
        reason,
        retry_after,
    };
    let permanent = |reason: &str| SendError::Permanent {
        reason: reason.to_owned(),
    };
    match error {
        RequestError::RetryAfter(seconds) => {
            let after = seconds.duration();
            retry(format!("Telegram asks to slow down (retry after {} s)", after.as_secs()), Some(after))
        }
        RequestError::Network(e) => retry(format!("cannot reach Telegram: {e}"), None),
        RequestError::InvalidJson { .. } => retry("Telegram answered with something that is not the Bot API".into(), None),
        RequestError::Io(e) => retry(format!("I/O error while sending: {e}"), None),
        RequestError::MigrateToChatId(_) => {
            permanent("the group was upgraded to a supergroup; the customer needs to write again from it")
        }
        RequestError::Api(api) => match api {
            ApiError::BotBlocked => permanent("the customer has blocked the bot"),
            ApiError::UserDeactivated => permanent("the customer's Telegram account was deleted"),
            ApiError::ChatNotFound => permanent("the chat no longer exists on Telegram"),
            ApiError::CantInitiateConversation | ApiError::CantTalkWithBots => {
                permanent("Telegram does not let the bot write to this user first")
            }
            ApiError::BotKicked | ApiError::BotKickedFromSupergroup => permanent("the bot was removed from the group"),
            ApiError::InvalidToken => permanent("the bot token was refused by Telegram (check channels.telegram.token)"),
            ApiError::RequestEntityTooLarge => permanent("the file is too large for the Telegram Bot API"),
            ApiError::MessageTextIsEmpty => permanent("Telegram refuses an empty message"),
            ApiError::MessageIsTooLong => permanent("the message is too long for Telegram (4096 characters at most)"),
            ApiError::MessageToEditNotFound => permanent("the message to edit no longer exists on Telegram"),
            ApiError::MessageCantBeEdited => permanent("Telegram does not allow editing this message any more"),
            ApiError::MessageCantBeDeleted => {
                permanent("Telegram does not allow deleting this message (bots can delete only within 48 hours)")
            }
            other if is_server_trouble(&other) => retry(format!("Telegram is having trouble: {other}"), None),
            other => SendError::Permanent { reason: format!("Telegram refused the message: {other}") },
        },
        // `RequestError` is non-exhaustive; anything new is assumed transient.
        #[allow(unreachable_patterns)]
        other => retry(format!("Telegram request failed: {other}"), None),
    }
}

/// Why a file could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Telegram will never hand this file to a bot (too big for getFile, unknown id).
    #[error("{0}")]
    Refused(String),
    /// Worth trying again later.
    #[error("{0}")]
    Transient(String),
}

/// `getFile`, then download the bytes from `<base>/file/bot<token>/<file_path>`, refusing more
/// than `max` bytes.
pub async fn fetch_file(bot: &Bot, file_id: &str, max: u64) -> Result<Vec<u8>, FetchError> {
    let file = bot
        .get_file(FileId(file_id.to_owned()))
        .await
        .map_err(|e| match e {
            RequestError::Api(ApiError::Unknown(d))
                if d.to_ascii_lowercase().contains("file is too big") =>
            {
                FetchError::Refused("file too large for the Bot API".into())
            }
            RequestError::Api(ApiError::RequestEntityTooLarge) => {
                FetchError::Refused("file too large for the Bot API".into())
            }
            RequestError::Api(api) if !is_server_trouble(&api) => {
                FetchError::Refused(format!("Telegram refused the file: {api}"))
            }
            other => FetchError::Transient(format!("getFile: {other}")),
        })?;
    let mut bytes = Vec::new();
    let mut stream = bot.download_file_stream(&file.path);
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| FetchError::Transient(format!("downloading {}: {e}", file.path)))?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > max {
            return Err(FetchError::Refused("file too large for the Bot API".into()));
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use teloxide::types::Seconds;

    #[test]
    fn errors_sort_into_retryable_and_permanent() {
        match classify(RequestError::RetryAfter(Seconds::from_seconds(5))) {
            SendError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(5)))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(RequestError::Api(ApiError::BotBlocked)),
            SendError::Permanent {
                reason: "the customer has blocked the bot".into()
            }
        );
        assert!(matches!(
            classify(RequestError::Api(ApiError::ChatNotFound)),
            SendError::Permanent { .. }
        ));
        assert!(matches!(
            classify(RequestError::Api(ApiError::Unknown(
                "Internal Server Error".into()
            ))),
            SendError::Retryable { .. }
        ));
        assert!(matches!(
            classify(RequestError::Api(ApiError::Unknown(
                "Bad Request: something odd".into()
            ))),
            SendError::Permanent { .. }
        ));
    }

    /// The fixture bodies parse into the errors `classify` expects (teloxide reads the
    /// envelope's `description` and `parameters`).
    #[test]
    fn fixture_envelopes_parse() {
        let read = |name: &str| switchboard_kit::test_host::fixture_text("telegram", name);
        let Some(blocked) = read("error_403_bot_blocked.json") else {
            return;
        };
        let v: serde_json::Value = serde_json::from_str(&blocked).unwrap();
        let api: ApiError = serde_json::from_value(v["description"].clone()).unwrap();
        assert_eq!(api, ApiError::BotBlocked);
        if let Some(deactivated) = read("error_403_user_deactivated.json") {
            let v: serde_json::Value = serde_json::from_str(&deactivated).unwrap();
            let api: ApiError = serde_json::from_value(v["description"].clone()).unwrap();
            assert_eq!(api, ApiError::UserDeactivated);
        }
    }
}
