//! The `channels.telegram` section of the bridge's configuration.
//!
//! Every field has a default so a section with only `enabled: true` and `token` works: long
//! polling against the public Bot API, group chats bridged. Unknown keys are rejected
//! (`deny_unknown_fields`) so a typo fails at start naming the key. [`TelegramConfig::validate`]
//! checks what serde cannot (a token that looks like one, a webhook secret Telegram accepts).

use serde::Deserialize;

/// The public Bot API. A self-hosted Bot API server (or a test fake) is another base URL.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// Largest file the public Bot API lets a bot upload (sendDocument & co.), in bytes.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 50 * 1024 * 1024;

/// Largest file the public Bot API lets a bot download (getFile), in bytes.
pub const DEFAULT_MAX_DOWNLOAD_SIZE: u64 = 20 * 1024 * 1024;

/// Longest message text Telegram accepts, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// How updates reach the bridge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The bridge asks (`getUpdates` with a long timeout). Works behind NAT; the default.
    #[default]
    Polling,
    /// Telegram posts to `<public_url>/telegram/webhook` with the secret-token header.
    Webhook,
}

switchboard_kit::config_section! {
    /// Configuration of the Telegram channel.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct TelegramConfig for "Telegram" {
        common: {
            /// The Bot API's base, without `/bot<token>`.
            api_url: DEFAULT_API_URL,
            request_timeout_secs: 60,
            /// 50 MB on the public Bot API; a local Bot API server allows 2000 MB.
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            /// 20 MB on the public Bot API.
            max_download_size: DEFAULT_MAX_DOWNLOAD_SIZE,
            avatars: true,
        },
        own: {
            /// The bot's token from @BotFather (`123456:ABC…`).
            pub token: String = String::new(),
            pub mode: Mode = Mode::Polling,
            /// Webhook mode: the value Telegram sends in `X-Telegram-Bot-Api-Secret-Token`
            /// (1–256 characters of `A-Z a-z 0-9 _ -`). Required in webhook mode.
            pub webhook_secret: Option<String> = None,
            /// Webhook mode: the bridge's public base URL as Telegram reaches it; the webhook is
            /// `<public_url>/telegram/webhook`. The core fills it from `appservice.public_url`.
            pub public_url: Option<String> = None,
            /// Webhook mode: call `setWebhook` at start (off when the webhook is managed elsewhere).
            pub register_webhook: bool = true,
            /// Bridge group chats the bot is a member of (one conversation per group).
            pub groups: bool = true,
            /// In group chats, also start each message with the sender's name. Each member speaks as
            /// a ghost of their own in the group's room, so this is off by default; it helps only
            /// operators whose client does not show who sent a message.
            pub group_sender_prefix: bool = false,
            /// Long-polling timeout given to `getUpdates`, in seconds. The `getUpdates` call gets
            /// this timeout on top of a small slack, not `request_timeout_secs`.
            pub poll_timeout_secs: u32 = 25,
        },
    }
}

pub use switchboard_kit::config::ConfigError;
use switchboard_kit::config::Section;

/// Where this channel's settings live: `channels.telegram`.
const SECTION: Section = Section("telegram");

impl TelegramConfig {
    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bot_id().is_none() {
            return SECTION.invalid(
                "token",
                "must be the bot token from @BotFather, like 123456:ABC-DEF…",
            );
        }
        self.check_common(SECTION)?;
        if self.poll_timeout_secs > 50 {
            return SECTION.invalid("poll_timeout_secs", "must be at most 50");
        }
        if self.mode == Mode::Webhook {
            let Some(secret) = self.webhook_secret.as_deref() else {
                return SECTION.invalid("webhook_secret", "is required in webhook mode");
            };
            let ok_chars = secret
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if secret.is_empty() || secret.len() > 256 || !ok_chars {
                return SECTION.invalid(
                    "webhook_secret",
                    "must be 1-256 characters of A-Z, a-z, 0-9, _ and -",
                );
            }
            if self.register_webhook && self.public_url.is_none() {
                return SECTION.invalid(
                    "public_url",
                    "is required in webhook mode to register the webhook",
                );
            }
        }
        Ok(())
    }

    /// The bot's numeric id: the part of the token before the colon. It names the account of
    /// every conversation, so it must not change when the token is revoked and reissued (it
    /// does not: the id is the bot's, the secret after the colon is what changes).
    pub fn bot_id(&self) -> Option<&str> {
        let (id, secret) = self.token.split_once(':')?;
        let numeric = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
        (numeric && !secret.is_empty()).then_some(id)
    }

    /// Where Telegram posts updates in webhook mode.
    pub fn webhook_url(&self) -> Option<String> {
        self.public_url
            .as_deref()
            .map(|base| format!("{}/telegram/webhook", base.trim_end_matches('/')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token() -> TelegramConfig {
        TelegramConfig {
            enabled: true,
            token: "123456:ABC-DEF".into(),
            ..TelegramConfig::default()
        }
    }

    #[test]
    fn defaults_are_polling_with_groups() {
        let c = TelegramConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.mode, Mode::Polling);
        assert!(c.groups);
        assert_eq!(c.api_url, DEFAULT_API_URL);
        assert!(with_token().validate().is_ok());
        assert_eq!(with_token().bot_id(), Some("123456"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = TelegramConfig {
            token: "nonsense".into(),
            ..with_token()
        };
        assert_eq!(c.validate().unwrap_err().key, "token");
        // Zero limits (the kit's check of the shared keys; max_download_size is new here).
        for (key, zero) in with_token().zero_limits() {
            assert_eq!(zero.validate().unwrap_err().key, key);
        }
        let c = TelegramConfig {
            mode: Mode::Webhook,
            ..with_token()
        };
        assert_eq!(c.validate().unwrap_err().key, "webhook_secret");
        let c = TelegramConfig {
            mode: Mode::Webhook,
            webhook_secret: Some("has space".into()),
            public_url: Some("https://b.example".into()),
            ..with_token()
        };
        assert!(c.validate().is_err());
        let c = TelegramConfig {
            mode: Mode::Webhook,
            webhook_secret: Some("s3cret_-".into()),
            public_url: Some("https://b.example/".into()),
            ..with_token()
        };
        assert!(c.validate().is_ok());
        assert_eq!(
            c.webhook_url().as_deref(),
            Some("https://b.example/telegram/webhook")
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err =
            serde_json::from_value::<TelegramConfig>(serde_json::json!({"tokn": "x"})).unwrap_err();
        assert!(err.to_string().contains("tokn"));
    }
}
