//! Checking a channel's configuration section: what serde cannot check (a token's shape, a URL
//! that must be a base, a limit that must not be zero), reported the same way for every channel,
//! as `channels.<channel>.<key>: <what is wrong>`, so an administrator reads one kind of message.

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("channels.{channel}.{key}: {reason}")]
pub struct ConfigError {
    /// The channel's section (`telegram`, `sms`, …).
    pub channel: &'static str,
    /// The key inside it.
    pub key: &'static str,
    /// What is wrong, and what would be right.
    pub reason: String,
}

/// The checks of one channel's section: `Section("telegram").base_url(…)?`.
#[derive(Clone, Copy, Debug)]
pub struct Section(pub &'static str);

impl Section {
    /// `key` cannot work, for `reason`.
    pub fn invalid(self, key: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
        Err(ConfigError {
            channel: self.0,
            key,
            reason: reason.into(),
        })
    }

    /// `value` must be an http(s) URL that paths can be joined to (an API's base URL);
    /// `example` is shown in the message.
    pub fn base_url(
        self,
        key: &'static str,
        value: &str,
        example: &str,
    ) -> Result<(), ConfigError> {
        if is_base_url(value, &["http", "https"]) {
            Ok(())
        } else {
            self.invalid(key, format!("must be an http(s) URL such as {example}"))
        }
    }

    /// A setting without which the channel cannot work (a token, a secret): `value` must hold
    /// more than blanks. One rule for every channel: a secret of spaces is as missing as an
    /// empty one (some copies used to accept it). `reason` says where the value comes from.
    pub fn required(self, key: &'static str, value: &str, reason: &str) -> Result<(), ConfigError> {
        if value.trim().is_empty() {
            self.invalid(key, format!("is required{reason}"))
        } else {
            Ok(())
        }
    }

    /// `value` must be at least `min` (a timeout, a size, a count).
    pub fn at_least(self, key: &'static str, value: u64, min: u64) -> Result<(), ConfigError> {
        if value >= min {
            Ok(())
        } else {
            self.invalid(key, format!("must be at least {min}"))
        }
    }
}

/// Whether `value` parses as a URL of one of `schemes` that paths can be joined to.
pub fn is_base_url(value: &str, schemes: &[&str]) -> bool {
    url::Url::parse(value).is_ok_and(|u| schemes.contains(&u.scheme()) && !u.cannot_be_a_base())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blank is missing, whitespace included (the strictest of the channels' old copies).
    #[test]
    fn required_values_refuse_blanks() {
        let s = Section("vk");
        assert!(s.required("secret", "s3cret", " (x)").is_ok());
        for blank in ["", "   ", "\t\n"] {
            let e = s
                .required("secret", blank, " (the Callback API's secret key)")
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                "channels.vk.secret: is required (the Callback API's secret key)"
            );
        }
    }

    #[test]
    fn messages_name_the_section_and_key() {
        let sms = Section("sms");
        let err = sms.at_least("request_timeout_secs", 0, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "channels.sms.request_timeout_secs: must be at least 1"
        );
        assert!(sms.at_least("request_timeout_secs", 1, 1).is_ok());
        let err = sms
            .base_url("api_url", "mailto:x@example.com", "https://api.twilio.com")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "channels.sms.api_url: must be an http(s) URL such as https://api.twilio.com"
        );
        assert!(sms.base_url("api_url", "http://127.0.0.1:9/", "x").is_ok());
        assert!(sms.base_url("api_url", "ftp://example.com/", "x").is_err());
        assert!(sms.base_url("api_url", "not a url", "x").is_err());
    }
}
