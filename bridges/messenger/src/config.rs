//! The `channels.messenger` and `channels.instagram` sections of the bridge's configuration.
//!
//! Both channels take the same keys: the Page access token that sends and reads profiles, the
//! app secret that signs webhook deliveries, the verify token of the subscription handshake, and
//! the Graph API's base URL and version. Unknown keys are rejected (`deny_unknown_fields`) so a
//! typo fails at start naming the key; [`MetaConfig::validate`] checks what serde cannot.

/// Meta's Graph API. A test fake is another base URL.
pub const DEFAULT_API_URL: &str = "https://graph.facebook.com";

/// The Graph API version the requests name (`/v21.0/me/messages`).
pub const DEFAULT_API_VERSION: &str = "v21.0";

/// Largest attachment the Send API takes (25 MB for audio, video and files; images are 8 MB on
/// Instagram, which Meta itself refuses with a readable error).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 25 * 1024 * 1024;

/// Largest customer attachment fetched from Meta's CDN.
pub const DEFAULT_MAX_DOWNLOAD_SIZE: u64 = 25 * 1024 * 1024;

switchboard_kit::config_section! {
    /// Configuration of the Messenger or the Instagram channel. `request_timeout_secs` holds
    /// for Graph API calls and file downloads alike: a send that times out is retried, a
    /// webhook delivery answered 503.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct MetaConfig for "Messenger or Instagram" {
        common: {
            /// The Graph API's base, without the version.
            api_url: DEFAULT_API_URL,
            request_timeout_secs: 60,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_download_size: DEFAULT_MAX_DOWNLOAD_SIZE,
            avatars: true,
        },
        own: {
            /// The Page access token (for Instagram: of the Page linked to the Instagram professional
            /// account), with `pages_messaging` / `instagram_manage_messages`.
            pub access_token: String = String::new(),
            /// The app secret: webhook deliveries are signed with it (`X-Hub-Signature-256`).
            pub app_secret: String = String::new(),
            /// The token typed into the app dashboard's webhook subscription; Meta echoes it in the
            /// `GET` verification handshake.
            pub verify_token: String = String::new(),
            /// The Page id (Messenger) or Instagram account id whose conversations this bridge owns.
            /// Empty: any account the token's webhooks deliver (normally the one).
            pub account_id: String = String::new(),
            /// Graph API version, like `v21.0`.
            pub api_version: String = DEFAULT_API_VERSION.to_owned(),
        },
    }
}

pub use switchboard_kit::config::ConfigError;
use switchboard_kit::config::Section;

impl MetaConfig {
    /// Check what serde cannot; `channel` names the section in the message.
    pub fn validate(&self, channel: &'static str) -> Result<(), ConfigError> {
        let section = Section(channel);
        section.required(
            "access_token",
            &self.access_token,
            " (the Page access token)",
        )?;
        section.required(
            "app_secret",
            &self.app_secret,
            " (webhook deliveries are verified with it)",
        )?;
        section.required(
            "verify_token",
            &self.verify_token,
            " (the webhook subscription's verify token)",
        )?;
        if !self.account_id.is_empty() && !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return section.invalid(
                "account_id",
                "must be the numeric Page or Instagram account id",
            );
        }
        self.check_common(section)?;
        switchboard_kit::meta::check_graph_api(section, &self.api_url, &self.api_version)
    }

    /// `<api_url>/<api_version>`, the base of every request.
    pub fn graph_base(&self) -> String {
        switchboard_kit::meta::graph_base(&self.api_url, &self.api_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> MetaConfig {
        MetaConfig {
            enabled: true,
            access_token: "EAAG-token".into(),
            app_secret: "secret".into(),
            verify_token: "verify".into(),
            ..MetaConfig::default()
        }
    }

    #[test]
    fn defaults_point_at_the_graph_api() {
        assert!(good().validate("messenger").is_ok());
        assert_eq!(good().graph_base(), "https://graph.facebook.com/v21.0");
        let c = MetaConfig {
            api_url: "http://127.0.0.1:9/".into(),
            api_version: "v19.0".into(),
            ..good()
        };
        assert_eq!(c.graph_base(), "http://127.0.0.1:9/v19.0");
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = MetaConfig {
            app_secret: String::new(),
            ..good()
        }
        .validate("instagram")
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "channels.instagram.app_secret: is required (webhook deliveries are verified with it)"
        );
        // The timeout and both size limits must be at least 1: max_download_size only since
        // the section is declared by the kit.
        for (key, zero) in good().zero_limits() {
            assert_eq!(zero.validate("messenger").unwrap_err().key, key);
        }
        assert!(MetaConfig {
            api_version: "21".into(),
            ..good()
        }
        .validate("messenger")
        .is_err());
        assert!(MetaConfig {
            api_url: "ftp://x".into(),
            ..good()
        }
        .validate("messenger")
        .is_err());
        assert!(MetaConfig {
            account_id: "page".into(),
            ..good()
        }
        .validate("messenger")
        .is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_value::<MetaConfig>(serde_json::json!({"app_secert": "x"}))
            .unwrap_err();
        assert!(err.to_string().contains("app_secert"));
    }
}
