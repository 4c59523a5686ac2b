//! The `channels.discord` section of the bridge's configuration.
//!
//! A section with only `enabled: true` and `token` works: direct messages to the bot through the
//! public API (`https://discord.com`) and gateway (whatever `GET /gateway/bot` hands out), guild
//! messages ignored. Unknown keys are rejected (`deny_unknown_fields`) so a typo fails at start
//! naming the key; [`DiscordConfig::validate`] checks what serde cannot.

/// Discord's public HTTP host. The REST API is `<api_url>/api/v10/…`; a test fake (or an HTTP
/// proxy in front of Discord) is another base URL.
pub const DEFAULT_API_URL: &str = "https://discord.com";

/// Discord's CDN: avatars (`/avatars/<user>/<hash>.png`). Attachments carry their own URL.
pub const DEFAULT_CDN_URL: &str = "https://cdn.discordapp.com";

/// Largest file a bot may upload without a boosted guild, in bytes (10 MiB since 2024).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;

/// Largest attachment fetched from Discord, in bytes (Nitro users can send 500 MiB).
pub const DEFAULT_MAX_DOWNLOAD_SIZE: u64 = 100 * 1024 * 1024;

/// Longest message content Discord accepts from a bot, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

switchboard_kit::config_section! {
    /// Configuration of the Discord channel.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct DiscordConfig for "Discord" {
        common: {
            /// The HTTP host, without `/api/v10`.
            api_url: DEFAULT_API_URL,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_download_size: DEFAULT_MAX_DOWNLOAD_SIZE,
            avatars: true,
        },
        own: {
            /// The bot's token from the Developer Portal (sent as `Authorization: Bot <token>`).
            pub token: String = String::new(),
            /// Base URL of the CDN for avatars.
            pub cdn_url: String = DEFAULT_CDN_URL.to_owned(),
            /// Gateway URL to use instead of asking `GET /gateway/bot` (rarely needed).
            pub gateway_url: Option<String> = None,
            /// Bridge messages in guild channels too (one conversation per channel). Off by default:
            /// the bot answers direct messages. Needs the GUILD_MESSAGES intent.
            pub guilds: bool = false,
            /// When `guilds` is on, only these guild channel ids (empty: every channel the bot sees).
            pub guild_channels: Vec<String> = Vec::new(),
        },
    }
}

pub use switchboard_kit::config::ConfigError;
use switchboard_kit::config::Section;

/// Where this channel's settings live: `channels.discord`.
const SECTION: Section = Section("discord");

impl DiscordConfig {
    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let token = self.token.trim();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return SECTION.invalid(
                "token",
                "must be the bot token from the Discord Developer Portal",
            );
        }
        if token.starts_with("Bot ") {
            return SECTION.invalid("token", "give the token alone, without the \"Bot \" prefix");
        }
        self.check_common(SECTION)?;
        SECTION.base_url("cdn_url", &self.cdn_url, "https://cdn.discordapp.com")?;
        if let Some(g) = &self.gateway_url {
            if !switchboard_kit::config::is_base_url(g, &["ws", "wss"]) {
                return SECTION.invalid(
                    "gateway_url",
                    "must be a ws(s) URL such as wss://gateway.discord.gg",
                );
            }
        }
        if self
            .guild_channels
            .iter()
            .any(|c| c.is_empty() || !c.bytes().all(|b| b.is_ascii_digit()))
        {
            return SECTION.invalid(
                "guild_channels",
                "must be channel ids (snowflakes: digits only)",
            );
        }
        Ok(())
    }

    /// `<api_url>/api/v10` without a trailing slash.
    pub fn api_base(&self) -> String {
        format!("{}/api/v10", self.api_url.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token() -> DiscordConfig {
        DiscordConfig {
            enabled: true,
            token: "MTE.fake.token".into(),
            ..DiscordConfig::default()
        }
    }

    #[test]
    fn defaults_are_dms_against_discord() {
        let c = with_token();
        assert!(c.validate().is_ok());
        assert!(!c.guilds);
        // Stricter since the kit declares the section: a zero max_download_size is refused,
        // like a zero max_file_size.
        for (key, zero) in c.zero_limits() {
            assert_eq!(zero.validate().unwrap_err().key, key);
        }
        assert_eq!(c.api_base(), "https://discord.com/api/v10");
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = DiscordConfig {
            token: "Bot abc".into(),
            ..with_token()
        };
        assert_eq!(c.validate().unwrap_err().key, "token");
        let c = DiscordConfig {
            api_url: "discord.com".into(),
            ..with_token()
        };
        assert_eq!(c.validate().unwrap_err().key, "api_url");
        let c = DiscordConfig {
            gateway_url: Some("http://x".into()),
            ..with_token()
        };
        assert_eq!(c.validate().unwrap_err().key, "gateway_url");
        let c = DiscordConfig {
            guild_channels: vec!["general".into()],
            ..with_token()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err =
            serde_json::from_value::<DiscordConfig>(serde_json::json!({"tokn": "x"})).unwrap_err();
        assert!(err.to_string().contains("tokn"));
    }
}
