//! The `channels.webchat` section of the bridge's configuration.
//!
//! Every field has a default, so an empty section (or none) gives a working web chat. Unknown keys
//! are rejected (`deny_unknown_fields`) so a typo such as `max_upload_byte` fails at start naming the
//! key instead of silently using the default. [`WebchatConfig::validate`] checks what serde cannot
//! (non-zero limits, well-formed origins); the channel calls it from `start`.

use axum::http::HeaderValue;
use serde::Deserialize;

/// Longest visitor or agent text the web chat carries, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;

/// Configuration of the web chat channel.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebchatConfig {
    /// Whether the core starts this channel at all.
    pub enabled: bool,
    /// The `ConversationKey::account` of every web chat conversation (one site per bridge).
    pub account: String,
    /// Shown in the widget's header.
    pub site_name: String,
    /// Base URL of the bridge as visitors' browsers see it, without the `/webchat` suffix, e.g.
    /// `https://bridge.example`. Used to build absolute download URLs. The core fills it from
    /// `appservice.public_url` when it is absent; when still absent, URLs are root-relative.
    pub public_url: Option<String>,
    /// Origins allowed to call the API from a browser (CORS). `"*"` allows any origin.
    pub allowed_origins: Vec<String>,
    /// Largest file a visitor may upload, in bytes.
    pub max_upload_bytes: u64,
    /// Sustained posts (messages, files, edits, deletes) per visitor per minute.
    pub rate_limit_per_minute: u32,
    /// Posts a visitor may make in a burst before the per-minute rate applies.
    pub rate_limit_burst: u32,
    /// Text shown at the top of the widget before the conversation, when no entry of
    /// `greetings` fits the visitor's languages (the default greeting).
    pub greeting: Option<String>,
    /// The greeting per language (`en`, `ru`, `pt-BR`: a BCP 47 tag, matched without regard to
    /// case; `pt` also serves a visitor who reads `pt-BR`). The visitor's languages are the
    /// browser's (the widget sends `navigator.languages`; else the `Accept-Language` header),
    /// tried in their order of preference.
    pub greetings: std::collections::BTreeMap<String, String>,
    /// New sessions one client address may open per minute (bursts of as many). A real visitor
    /// opens one per browser; an office behind one address a few.
    pub sessions_per_address_per_minute: u32,
    /// New sessions per minute from all addresses together (ten seconds' worth at once, then
    /// evenly spread).
    pub sessions_per_minute: u32,
    /// New conversations (a session's first message: a new room for the team) one client
    /// address may start per minute.
    pub new_conversations_per_address_per_minute: u32,
    /// New conversations per minute from all addresses together: what the team is shown at
    /// most (ten seconds' worth at once, then evenly spread). Beyond it visitors get 429 with
    /// `Retry-After` and the widget tries again.
    pub new_conversations_per_minute: u32,
    /// Uploads one client address may make per minute (besides the per-visitor rate).
    pub uploads_per_address_per_minute: u32,
    /// Open event streams per visitor (tabs of one browser) and in total.
    pub event_streams_per_visitor: u32,
    pub event_streams_total: u32,
    /// A session in which the visitor never wrote is forgotten after this many seconds from its
    /// start: its (signed) token is refused from then on, and records it stored (a change of
    /// name or e-mail) expire. A new session stores nothing until the visitor writes.
    pub silent_session_ttl_secs: u64,
    /// Addresses of reverse proxies in front of the bridge. Only when the peer is one of them is
    /// `X-Forwarded-For` believed (its last address that is not a trusted proxy is the client).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Proof of work a browser must do before a new session (leading zero bits of a SHA-256,
    /// 2^bits tries on average; 0 = none). 16 costs a visitor's browser well under a second
    /// and a script opening sessions in bulk that much per session. At most 24.
    pub proof_of_work_bits: u8,
    /// A visitor with no chat page open for this many seconds has left: an operator's answer
    /// then goes by e-mail when they gave an address and the bridge continues conversations
    /// elsewhere (`bridge.continue_by`).
    pub away_after_secs: u64,
}

impl Default for WebchatConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            account: "website".to_owned(),
            site_name: "Support".to_owned(),
            public_url: None,
            allowed_origins: Vec::new(),
            max_upload_bytes: 10 * 1024 * 1024,
            rate_limit_per_minute: 30,
            rate_limit_burst: 10,
            greeting: None,
            greetings: std::collections::BTreeMap::new(),
            sessions_per_address_per_minute: 20,
            sessions_per_minute: 600,
            new_conversations_per_address_per_minute: 5,
            new_conversations_per_minute: 60,
            uploads_per_address_per_minute: 30,
            event_streams_per_visitor: 5,
            event_streams_total: 5000,
            silent_session_ttl_secs: 24 * 3600,
            trusted_proxies: Vec::new(),
            proof_of_work_bits: 0,
            away_after_secs: 120,
        }
    }
}

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("channels.webchat.{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl WebchatConfig {
    /// Check what serde cannot: limits must be non-zero, origins must be valid header values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.account.trim().is_empty() {
            return invalid("account", "must not be empty");
        }
        if self.max_upload_bytes == 0 {
            return invalid("max_upload_bytes", "must be greater than 0");
        }
        if self.rate_limit_per_minute == 0 {
            return invalid("rate_limit_per_minute", "must be greater than 0");
        }
        if self.rate_limit_burst == 0 {
            return invalid("rate_limit_burst", "must be greater than 0");
        }
        for (key, value) in [
            (
                "sessions_per_address_per_minute",
                self.sessions_per_address_per_minute,
            ),
            ("sessions_per_minute", self.sessions_per_minute),
            (
                "new_conversations_per_address_per_minute",
                self.new_conversations_per_address_per_minute,
            ),
            (
                "new_conversations_per_minute",
                self.new_conversations_per_minute,
            ),
            (
                "uploads_per_address_per_minute",
                self.uploads_per_address_per_minute,
            ),
            ("event_streams_per_visitor", self.event_streams_per_visitor),
            ("event_streams_total", self.event_streams_total),
        ] {
            if value == 0 {
                return invalid(key, "must be greater than 0");
            }
        }
        if self.silent_session_ttl_secs == 0 {
            return invalid("silent_session_ttl_secs", "must be greater than 0");
        }
        if self.proof_of_work_bits > crate::challenge::MAX_BITS {
            return invalid("proof_of_work_bits", "must be at most 24");
        }
        for origin in &self.allowed_origins {
            if origin != "*" && HeaderValue::from_str(origin).is_err() {
                return Err(ConfigError::Invalid {
                    key: "allowed_origins",
                    reason: format!("{origin:?} is not a valid origin"),
                });
            }
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid("public_url", "must start with http:// or https://");
            }
        }
        Ok(())
    }

    /// The greeting for a visitor who reads `languages` (most preferred first), with the
    /// language it is in: the first language with a greeting of its own (exactly, else its
    /// primary subtag: `de-AT` → `de`), else the default greeting (language `None`).
    pub fn greeting_for(&self, languages: &[String]) -> (Option<String>, Option<String>) {
        let find = |tag: &str| {
            self.greetings
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(tag))
                .map(|(k, v)| (Some(k.clone()), Some(v.clone())))
        };
        for language in languages {
            if let Some(found) = find(language) {
                return found;
            }
            if let Some((primary, _)) = language.split_once('-') {
                if let Some(found) = find(primary) {
                    return found;
                }
            }
        }
        (None, self.greeting.clone())
    }

    /// The base URL every public link of this channel starts with, e.g.
    /// `https://bridge.example/webchat` (or `/webchat` when no public URL is known).
    pub fn channel_base(&self) -> String {
        let root = self
            .public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/');
        format!("{root}/webchat")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_base() {
        let config = WebchatConfig::default();
        assert!(config.validate().is_ok());
        assert_eq!(config.channel_base(), "/webchat");
        let config = WebchatConfig {
            public_url: Some("http://127.0.0.1:29340/".into()),
            ..WebchatConfig::default()
        };
        assert_eq!(config.channel_base(), "http://127.0.0.1:29340/webchat");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let parsed = serde_json::from_str::<WebchatConfig>(r#"{"max_upload_byte": 5}"#);
        let message = parsed.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("max_upload_byte"), "{message}");
        let parsed = serde_json::from_str::<WebchatConfig>(r#"{"site_name": "Acme"}"#).ok();
        assert_eq!(parsed.map(|c| c.max_upload_bytes), Some(10 * 1024 * 1024));
    }

    #[test]
    fn greetings_follow_the_visitor_s_languages() {
        let config = WebchatConfig {
            greeting: Some("Hello!".into()),
            greetings: [("ru", "Здравствуйте!"), ("pt-BR", "Olá!"), ("de", "Hallo!")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..WebchatConfig::default()
        };
        let langs = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            config.greeting_for(&langs(&["ru-RU", "en"])),
            (Some("ru".into()), Some("Здравствуйте!".into()))
        );
        assert_eq!(
            config.greeting_for(&langs(&["fr", "DE-at"])),
            (Some("de".into()), Some("Hallo!".into()))
        );
        assert_eq!(
            config.greeting_for(&langs(&["pt-br"])).1.as_deref(),
            Some("Olá!")
        );
        assert_eq!(
            config.greeting_for(&langs(&["pt-PT"])).1.as_deref(),
            Some("Hello!")
        );
        assert_eq!(config.greeting_for(&[]), (None, Some("Hello!".into())));
    }

    #[test]
    fn rejects_zero_limits() {
        let config = WebchatConfig {
            rate_limit_burst: 0,
            ..WebchatConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
