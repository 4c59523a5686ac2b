//! The `channels.viber` section of the bridge's configuration.
//!
//! A Viber bot needs its auth token (from the Viber Admin Panel or the bot's "Edit info"
//! screen) and the name it sends under; everything else has a default. Viber delivers events to
//! a webhook that must be reachable over HTTPS, `<public_url>/viber/callback`, and fetches the
//! files operators send from `<public_url>/viber/media/…`, so the bridge needs a public URL (the
//! core fills it from `appservice.public_url`). Unknown keys are rejected.

/// The public Viber REST bot API.
pub const DEFAULT_API_URL: &str = "https://chatapi.viber.com/pa";
/// Longest text message Viber takes, in characters.
pub const MAX_TEXT_CHARS: usize = 7000;
/// Largest file a `file` message may carry.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 50 * 1024 * 1024;
/// Longest sender name Viber shows.
pub const MAX_NAME_CHARS: usize = 28;

switchboard_kit::config_section! {
    /// Configuration of the Viber channel.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ViberConfig for "Viber" {
        common: {
            /// The REST bot API's methods are at `<api_url>/send_message` and so on.
            api_url: DEFAULT_API_URL,
            request_timeout_secs: 60,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_download_size: 50 * 1024 * 1024,
            avatars: true,
        },
        own: {
            /// The bot's auth token (`X-Viber-Auth-Token`; also the key of the callback signatures).
            pub auth_token: String = String::new(),
            /// The name messages are sent under (at most 28 characters).
            pub bot_name: String = "Support".to_owned(),
            /// An avatar URL for the sender (optional; Viber wants at most 100 kB, 720×720).
            pub bot_avatar: Option<String> = None,
            /// The account id of every conversation. Default: the first part of the auth token (the
            /// bot's id, which stays when the token is regenerated… mostly; set it to keep it stable).
            pub account: Option<String> = None,
            /// The bridge's public base URL as Viber reaches it; filled from `appservice.public_url`.
            pub public_url: Option<String> = None,
            /// Call `set_webhook` at start (off when the webhook is managed elsewhere).
            pub register_webhook: bool = true,
            /// Key of the signed media links; default: derived from the auth token.
            pub media_secret: Option<String> = None,
            /// How long a media link stays valid, in seconds.
            pub media_link_ttl_secs: u64 = 24 * 60 * 60,
        },
    }
}

pub use switchboard_kit::config::ConfigError;
use switchboard_kit::config::{is_base_url, Section};

/// Where this channel's settings live: `channels.viber`.
const SECTION: Section = Section("viber");

impl ViberConfig {
    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        SECTION.required(
            "auth_token",
            &self.auth_token,
            " (the bot's token from the Viber Admin Panel)",
        )?;
        let name = self.bot_name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return SECTION.invalid("bot_name", "must be 1-28 characters");
        }
        self.check_common(SECTION)?;
        match self.public_url.as_deref() {
            Some(u) if is_base_url(u, &["http", "https"]) => {}
            _ => return SECTION.invalid("public_url", "must be the bridge's public http(s) URL (Viber posts events and fetches files there)"),
        }
        SECTION.at_least("media_link_ttl_secs", self.media_link_ttl_secs, 1)?;
        Ok(())
    }

    /// The account of every conversation.
    pub fn account(&self) -> String {
        match self.account.as_deref().filter(|a| !a.trim().is_empty()) {
            Some(a) => a.trim().to_owned(),
            None => self
                .auth_token
                .split('-')
                .next()
                .unwrap_or("viber")
                .to_owned(),
        }
    }

    /// Where Viber posts events.
    pub fn webhook_url(&self) -> Option<String> {
        self.public_url
            .as_deref()
            .map(|b| format!("{}/viber/callback", b.trim_end_matches('/')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> ViberConfig {
        ViberConfig {
            enabled: true,
            auth_token: "44dafb7e0f40021e-61a47a1e6778d187-f2c5a676a07050b3".into(),
            public_url: Some("https://bridge.example/".into()),
            ..ViberConfig::default()
        }
    }

    #[test]
    fn defaults_and_validation() {
        assert_eq!(ViberConfig::default().api_url, DEFAULT_API_URL);
        assert!(good().validate().is_ok());
        assert_eq!(good().account(), "44dafb7e0f40021e");
        assert_eq!(
            good().webhook_url().as_deref(),
            Some("https://bridge.example/viber/callback")
        );
        let long = ViberConfig {
            bot_name: "x".repeat(29),
            ..good()
        };
        assert_eq!(long.validate().unwrap_err().key, "bot_name");
        // A zero timeout or size limit cannot work; max_download_size is checked since the
        // kit declares the section.
        for (key, zero) in good().zero_limits() {
            assert_eq!(zero.validate().unwrap_err().key, key);
        }
        assert!(ViberConfig {
            public_url: None,
            ..good()
        }
        .validate()
        .is_err());
        assert!(ViberConfig {
            auth_token: " ".into(),
            ..good()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err =
            serde_json::from_value::<ViberConfig>(serde_json::json!({"token": "x"})).unwrap_err();
        assert!(err.to_string().contains("token"));
    }
}
