//! The `channels.whatsapp` section of the bridge's configuration.
//!
//! One business phone number of the WhatsApp Business Cloud API: its `phone_number_id` (the
//! account of every conversation), a system-user `access_token` for the Graph API, the app's
//! `app_secret` (webhook signatures) and the `verify_token` chosen when the webhook was set up in
//! the App Dashboard. Everything else has a default. Unknown keys are rejected
//! (`deny_unknown_fields`) so a typo fails at start naming the key; [`WhatsAppConfig::validate`]
//! checks what serde cannot.

/// The public Graph API. A test fake (or a proxy) is another base URL.
pub const DEFAULT_API_URL: &str = "https://graph.facebook.com";

/// The Graph API version the requests name (`/v21.0/…`).
pub const DEFAULT_API_VERSION: &str = "v21.0";

/// Largest file the Cloud API takes (documents: 100 MB; images 5 MB, audio and video 16 MB are
/// sent as documents when larger).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 100 * 1024 * 1024;

/// Largest customer file fetched from the Cloud API (its own limit is 100 MB).
pub const DEFAULT_MAX_DOWNLOAD_SIZE: u64 = 100 * 1024 * 1024;

/// Longest text message the Cloud API accepts, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

switchboard_kit::config_section! {
    /// Configuration of the WhatsApp channel.
    #[derive(Clone, PartialEq, Eq)]
    pub struct WhatsAppConfig for "WhatsApp" {
        common: {
            /// The Graph API's base, without the version.
            api_url: DEFAULT_API_URL,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_download_size: DEFAULT_MAX_DOWNLOAD_SIZE,
        },
        own: {
            /// The business phone number's id (WhatsApp Manager → API Setup), not the number itself.
            pub phone_number_id: String = String::new(),
            /// A (system user) access token with `whatsapp_business_messaging`.
            pub access_token: String = String::new(),
            /// The Meta app's secret: webhook deliveries are signed with it (`X-Hub-Signature-256`).
            pub app_secret: String = String::new(),
            /// The string typed into the App Dashboard as the webhook's "Verify token".
            pub verify_token: String = String::new(),
            /// Graph API version, like `v21.0`.
            pub api_version: String = DEFAULT_API_VERSION.to_owned(),
            /// Template language when the operator names none (`!sb template <name>` without `lang=`).
            pub default_template_language: String = "en_US".to_owned(),
            /// Let WhatsApp render a preview of the first link in operators' text messages.
            pub preview_url: bool = false,
            /// Tell WhatsApp when an operator has read the customer's messages (blue ticks).
            pub read_receipts: bool = true,
        },
    }
}

impl std::fmt::Debug for WhatsAppConfig {
    // The token and the secrets never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsAppConfig")
            .field("enabled", &self.enabled)
            .field("phone_number_id", &self.phone_number_id)
            .field("api_url", &self.api_url)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

pub use switchboard_kit::config::ConfigError;
use switchboard_kit::config::Section;

/// Where this channel's settings live: `channels.whatsapp`.
const SECTION: Section = Section("whatsapp");

impl WhatsAppConfig {
    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.phone_number_id.is_empty()
            || !self.phone_number_id.bytes().all(|b| b.is_ascii_digit())
        {
            return SECTION.invalid(
                "phone_number_id",
                "must be the numeric phone number id from WhatsApp Manager (not the phone number)",
            );
        }
        SECTION.required(
            "access_token",
            &self.access_token,
            " (a system user token with whatsapp_business_messaging)",
        )?;
        SECTION.required(
            "app_secret",
            &self.app_secret,
            ": webhook deliveries are checked with it",
        )?;
        SECTION.required(
            "verify_token",
            &self.verify_token,
            ": the App Dashboard's webhook verification sends it",
        )?;
        self.check_common(SECTION)?;
        switchboard_kit::meta::check_graph_api(SECTION, &self.api_url, &self.api_version)?;
        if self.default_template_language.is_empty() {
            return SECTION.invalid(
                "default_template_language",
                "must be a language code such as en_US",
            );
        }
        Ok(())
    }

    /// `<api_url>/<api_version>`, without a trailing slash.
    pub fn versioned_base(&self) -> String {
        switchboard_kit::meta::graph_base(&self.api_url, &self.api_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> WhatsAppConfig {
        WhatsAppConfig {
            enabled: true,
            phone_number_id: "1122334455667".into(),
            access_token: "EAAG…".into(),
            app_secret: "s3cret".into(),
            verify_token: "meatyhamhock".into(),
            ..WhatsAppConfig::default()
        }
    }

    #[test]
    fn defaults_point_at_the_graph_api() {
        let c = WhatsAppConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.versioned_base(), "https://graph.facebook.com/v21.0");
        assert!(complete().validate().is_ok());
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = WhatsAppConfig {
            phone_number_id: "+1 555".into(),
            ..complete()
        };
        assert_eq!(c.validate().unwrap_err().key, "phone_number_id");
        // The size limits are the kit's shared keys: zero refused (max_download_size was
        // accepted before).
        for (key, zero) in complete().zero_limits() {
            assert_eq!(zero.validate().unwrap_err().key, key);
        }
        let c = WhatsAppConfig {
            app_secret: String::new(),
            ..complete()
        };
        assert_eq!(c.validate().unwrap_err().key, "app_secret");
        let c = WhatsAppConfig {
            api_version: "21".into(),
            ..complete()
        };
        assert_eq!(c.validate().unwrap_err().key, "api_version");
        let c = WhatsAppConfig {
            api_url: "nope".into(),
            ..complete()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn unknown_keys_are_rejected_and_secrets_not_printed() {
        let err = serde_json::from_value::<WhatsAppConfig>(serde_json::json!({"acess_token": "x"}))
            .unwrap_err();
        assert!(err.to_string().contains("acess_token"));
        let printed = format!("{:?}", complete());
        assert!(
            !printed.contains("s3cret") && !printed.contains("EAAG"),
            "{printed}"
        );
    }
}
