//! The `channels.sms` section of the bridge's configuration.
//!
//! The minimum is `enabled`, `account_sid`, `auth_token` and either the company's `numbers` or a
//! `messaging_service_sid`; `public_url` (the bridge as Twilio reaches it, which Twilio signs)
//! is filled by the core from `appservice.public_url` when left out. Unknown keys are rejected
//! (`deny_unknown_fields`) so a typo fails at start naming the key; [`SmsConfig::validate`]
//! checks what serde cannot.

use std::collections::BTreeMap;

use crate::phone;

/// Twilio's REST API. A test fake is another base URL.
pub const DEFAULT_API_URL: &str = "https://api.twilio.com";

/// Longest body Twilio accepts for one message, in characters (it splits it into segments).
pub const MAX_TEXT_CHARS: usize = 1600;

/// Twilio's limit for the media of one MMS, in bytes.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 5 * 1024 * 1024;

switchboard_kit::config_section! {
    /// Configuration of the SMS channel.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct SmsConfig for "Twilio" {
        common: {
            /// The REST API's base: the part before `/2010-04-01`.
            api_url: DEFAULT_API_URL,
            /// Operators' files go as MMS media.
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            /// Customers' MMS media.
            max_download_size: 20 * 1024 * 1024,
        },
        own: {
            /// The account's SID (`AC…`): the user name of the REST API's Basic auth.
            pub account_sid: String = String::new(),
            /// The account's auth token: the REST API's password and the key of webhook signatures.
            pub auth_token: String = String::new(),
            /// The company's Twilio numbers, in E.164 or any form [`phone::normalize`] understands.
            /// A reply goes out from the number the customer wrote to.
            pub numbers: Vec<String> = Vec::new(),
            /// A Messaging Service (`MG…`) to send from when the conversation's number is not listed in
            /// `numbers` (Twilio picks the sender from the service's pool).
            pub messaging_service_sid: Option<String> = None,
            /// The bridge's public base URL as Twilio reaches it. Twilio signs the full URL it posts
            /// to, so this must be exactly what is configured in the Twilio console (before
            /// `/sms/incoming`). Filled from `appservice.public_url` when missing.
            pub public_url: Option<String> = None,
            /// Region (ISO 3166 alpha-2, like `US` or `DE`) of numbers written without a country code.
            pub default_region: String = "US".to_owned(),
            /// Names of customers known by number (`"+14155550100": "Jane Doe"`); others are shown as
            /// their formatted number.
            pub contacts: BTreeMap<String, String> = BTreeMap::new(),
            /// How long a link to an operator's file (`<public_url>/sms/media/<token>`) stays valid,
            /// in seconds. Twilio fetches it when it sends the MMS, usually within seconds.
            pub media_link_ttl_secs: u64 = 24 * 3600,
            /// Key of the media links' HMAC. Defaults to one derived from the auth token.
            pub media_link_secret: Option<String> = None,
        },
    }
}

pub use switchboard_kit::config::ConfigError;
use switchboard_kit::config::Section;

/// Where this channel's settings live: `channels.sms`.
const SECTION: Section = Section("sms");

fn is_sid(value: &str, prefix: &str) -> bool {
    value.len() == 34
        && value.starts_with(prefix)
        && value[2..].bytes().all(|b| b.is_ascii_alphanumeric())
}

impl SmsConfig {
    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_sid(&self.account_sid, "AC") {
            return SECTION.invalid(
                "account_sid",
                "must be the account SID from the Twilio console (AC followed by 32 characters)",
            );
        }
        SECTION.required(
            "auth_token",
            &self.auth_token,
            " (the account's auth token)",
        )?;
        self.check_common(SECTION)?;
        if phone::Region::parse(&self.default_region).is_none() {
            return SECTION.invalid(
                "default_region",
                format!(
                    "{:?} is not a region this bridge knows (use a code like US, GB, DE)",
                    self.default_region
                ),
            );
        }
        if self.numbers.is_empty() && self.messaging_service_sid.is_none() {
            return SECTION.invalid(
                "numbers",
                "list the company's Twilio numbers, or set messaging_service_sid",
            );
        }
        for n in &self.numbers {
            if phone::normalize(n, self.region()).is_err() {
                return SECTION.invalid("numbers", format!("{n:?} is not a phone number"));
            }
        }
        if let Some(sid) = &self.messaging_service_sid {
            if !is_sid(sid, "MG") {
                return SECTION.invalid(
                    "messaging_service_sid",
                    "must be a Messaging Service SID (MG followed by 32 characters)",
                );
            }
        }
        match self.public_url.as_deref().map(url::Url::parse) {
            Some(Ok(u)) if u.scheme() == "http" || u.scheme() == "https" => {}
            Some(_) => return SECTION.invalid("public_url", "must be an http(s) URL"),
            None => return SECTION.invalid(
                "public_url",
                "is required: Twilio signs the URL it posts to (defaults to appservice.public_url)",
            ),
        }
        if self.media_link_ttl_secs < 60 {
            return SECTION.invalid("media_link_ttl_secs", "must be at least 60");
        }
        Ok(())
    }

    /// The default region (validated at start; `US` if it is not one).
    pub fn region(&self) -> phone::Region {
        phone::Region::parse(&self.default_region).unwrap_or(phone::Region::US)
    }

    /// The company's numbers in E.164.
    pub fn own_numbers(&self) -> Vec<String> {
        self.numbers
            .iter()
            .filter_map(|n| phone::normalize(n, self.region()).ok())
            .collect()
    }

    /// The public base URL without a trailing slash.
    pub fn public_base(&self) -> String {
        self.public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_owned()
    }

    /// Where Twilio posts incoming messages: configure this on the number (or Messaging Service).
    pub fn incoming_url(&self) -> String {
        format!("{}/sms/incoming", self.public_base())
    }

    /// Where Twilio posts status callbacks; sent with every message as `StatusCallback`.
    pub fn status_url(&self) -> String {
        format!("{}/sms/status", self.public_base())
    }

    /// The name a known customer goes by, looked up by E.164 number.
    pub fn contact_name(&self, e164: &str) -> Option<String> {
        self.contacts
            .iter()
            .find(|(number, _)| phone::normalize(number, self.region()).is_ok_and(|n| n == e164))
            .map(|(_, name)| name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn valid() -> SmsConfig {
        SmsConfig {
            enabled: true,
            account_sid: format!("AC{}", "a".repeat(32)),
            auth_token: "token".into(),
            numbers: vec!["+1 (415) 555-0100".into()],
            public_url: Some("https://bridge.example/".into()),
            ..SmsConfig::default()
        }
    }

    #[test]
    fn a_minimal_section_is_valid() {
        let c = valid();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.own_numbers(), vec!["+14155550100".to_string()]);
        assert_eq!(c.incoming_url(), "https://bridge.example/sms/incoming");
        assert_eq!(c.status_url(), "https://bridge.example/sms/status");
        assert_eq!(c.api_url, DEFAULT_API_URL);
    }

    #[test]
    fn bad_values_name_their_key() {
        let check = |c: SmsConfig, key: &str| {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(&format!("channels.sms.{key}")), "{e}");
        };
        // Neither size limit may be zero (the download limit went unchecked before the kit).
        for (limit, zero) in valid().zero_limits() {
            check(zero, limit);
        }
        check(
            SmsConfig {
                account_sid: "nope".into(),
                ..valid()
            },
            "account_sid",
        );
        check(
            SmsConfig {
                auth_token: " ".into(),
                ..valid()
            },
            "auth_token",
        );
        check(
            SmsConfig {
                numbers: vec![],
                ..valid()
            },
            "numbers",
        );
        check(
            SmsConfig {
                numbers: vec!["call me".into()],
                ..valid()
            },
            "numbers",
        );
        check(
            SmsConfig {
                messaging_service_sid: Some("MGshort".into()),
                ..valid()
            },
            "messaging_service_sid",
        );
        check(
            SmsConfig {
                public_url: None,
                ..valid()
            },
            "public_url",
        );
        check(
            SmsConfig {
                default_region: "XX".into(),
                ..valid()
            },
            "default_region",
        );
        let service = SmsConfig {
            numbers: vec![],
            messaging_service_sid: Some(format!("MG{}", "b".repeat(32))),
            ..valid()
        };
        assert_eq!(service.validate(), Ok(()));
    }

    #[test]
    fn known_contacts_are_found_by_any_spelling() {
        let mut c = valid();
        c.contacts
            .insert("(415) 555-0199".into(), "Jane Doe".into());
        assert_eq!(c.contact_name("+14155550199").as_deref(), Some("Jane Doe"));
        assert_eq!(c.contact_name("+14155550198"), None);
    }

    /// The section of `config/config.example.yaml`, uncommented.
    #[test]
    fn the_example_section_is_valid() {
        let c: SmsConfig = serde_json::from_value(serde_json::json!({
            "enabled": true, "account_sid": "ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "auth_token": "change-me",
            "api_url": "https://api.twilio.com", "numbers": ["+14155550100"], "default_region": "US",
            "contacts": {"+1 415 555 0199": "Jane Doe"}, "max_file_size": 5242880, "max_download_size": 20971520,
            "media_link_ttl_secs": 86400, "public_url": "https://bridge.example.com",
        }))
        .unwrap();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.contact_name("+14155550199").as_deref(), Some("Jane Doe"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_value::<SmsConfig>(serde_json::json!({"acount_sid": "x"}))
            .unwrap_err();
        assert!(err.to_string().contains("acount_sid"));
    }
}
