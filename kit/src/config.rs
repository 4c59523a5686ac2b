//! Checking a channel's configuration section: what serde cannot check (a token's shape, a URL
//! that must be a base, a limit that must not be zero), reported the same way for every channel,
//! as `channels.<channel>.<key>: <what is wrong>`, so an administrator reads one kind of message.
//!
//! The keys most channels share (`enabled`, `api_url`, `request_timeout_secs`, `max_file_size`,
//! `max_download_size`, `avatars`) are declared once, with their documentation and their checks,
//! by [`config_section!`](crate::config_section): each channel names its defaults and adds its
//! own keys.

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

/// Declares a channel's configuration section: a struct read with serde (every key has a
/// default; unknown keys are refused, `deny_unknown_fields`, so a typo fails at start naming the
/// key), its `Default`, and `check_common(section)`, the checks of the shared keys that the
/// channel's `validate` calls.
///
/// The shared keys, documented here for every channel (`network` names the channel's network
/// in their documentation):
///
/// * `enabled: bool` (default `false`): whether the core starts the channel at all;
/// * `api_url: String`: the network's API base URL — an http(s) URL that paths join to;
/// * `request_timeout_secs: u32` (optional): a call's timeout — at least 1;
/// * `max_file_size: u64`: the largest file sent — at least 1;
/// * `max_download_size: u64`: the largest file fetched — at least 1;
/// * `avatars: bool` (optional): fetch customers' pictures for their ghosts.
///
/// `api_url`, `max_file_size` and `max_download_size` may carry doc comments of the channel's
/// own, shown after the shared one. Then come the channel's own keys, each `name: Type = default`.
/// The struct's other derives (`Debug`, …) are the channel's choice; `Clone` it needs. In the
/// channel's unit tests, `zero_limits()` gives the section with each shared limit at zero.
///
/// ```
/// switchboard_kit::config_section! {
///     /// Configuration of the Example channel.
///     #[derive(Clone, Debug, PartialEq, Eq)]
///     pub struct ExampleConfig for "Example" {
///         common: {
///             /// Paths such as `/v1/send` are joined to it.
///             api_url: "https://api.example.com",
///             request_timeout_secs: 60,
///             max_file_size: 10 * 1024 * 1024,
///             max_download_size: 20 * 1024 * 1024,
///             avatars: true,
///         },
///         own: {
///             /// The bot's token.
///             pub token: String = String::new(),
///         },
///     }
/// }
/// let c = ExampleConfig::default();
/// assert!(!c.enabled && c.avatars && c.request_timeout_secs == 60);
/// let section = switchboard_kit::config::Section("example");
/// assert!(c.check_common(section).is_ok());
/// ```
#[macro_export]
macro_rules! config_section {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident for $network:literal {
            common: {
                $(#[$api_doc:meta])*
                api_url: $api_url:expr,
                $(request_timeout_secs: $timeout:expr,)?
                $(#[$file_doc:meta])*
                max_file_size: $max_file:expr,
                $(#[$download_doc:meta])*
                max_download_size: $max_download:expr,
                $(avatars: $avatars:expr,)?
            },
            own: {
                $(
                    $(#[$own_attr:meta])*
                    $own_vis:vis $own:ident : $own_ty:ty = $own_default:expr
                ),* $(,)?
            } $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(::serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        $vis struct $name {
            /// Whether the core starts this channel at all.
            pub enabled: bool,
            #[doc = concat!("Base URL of the ", $network, " API (a test fake, or a proxy, is another).")]
            $(#[$api_doc])*
            pub api_url: ::std::string::String,
            $(
                $(#[$own_attr])*
                $own_vis $own: $own_ty,
            )*
            $(
                #[doc = concat!(
                    "A call to ", $network, " that has not answered after this many seconds ",
                    "counts as failed (a send is retried)."
                )]
                pub request_timeout_secs: $crate::__config_type!(u32, $timeout),
            )?
            #[doc = concat!("Largest file sent to ", $network, ", in bytes.")]
            $(#[$file_doc])*
            pub max_file_size: u64,
            #[doc = concat!(
                "Largest file fetched from ", $network,
                ", in bytes; a bigger one becomes a line of text saying so."
            )]
            $(#[$download_doc])*
            pub max_download_size: u64,
            $(
                #[doc = concat!("Fetch customers' ", $network, " pictures for their ghosts.")]
                pub avatars: $crate::__config_type!(bool, $avatars),
            )?
        }

        impl ::std::default::Default for $name {
            fn default() -> Self {
                Self {
                    enabled: false,
                    api_url: ::std::convert::From::from($api_url),
                    $($own: $own_default,)*
                    $(request_timeout_secs: $timeout,)?
                    max_file_size: $max_file,
                    max_download_size: $max_download,
                    $(avatars: $avatars,)?
                }
            }
        }

        impl $name {
            /// Check the keys every channel shares: `api_url` is a base http(s) URL (the
            /// default is shown as the example), the timeout and the size limits are at least 1.
            pub fn check_common(
                &self,
                section: $crate::config::Section,
            ) -> ::std::result::Result<(), $crate::config::ConfigError> {
                let example: ::std::string::String = ::std::convert::From::from($api_url);
                section.base_url("api_url", &self.api_url, &example)?;
                $(
                    $crate::__config_ignore!($timeout);
                    section.at_least("request_timeout_secs", self.request_timeout_secs.into(), 1)?;
                )?
                section.at_least("max_file_size", self.max_file_size, 1)?;
                section.at_least("max_download_size", self.max_download_size, 1)?;
                Ok(())
            }
        }

        #[cfg(test)]
        impl $name {
            /// For the channel's tests of `validate`: this section with one shared limit at
            /// zero, for each limit it has, with that limit's key (`validate` must name it).
            #[allow(clippy::vec_init_then_push)] // the timeout is pushed only where it is a key
            pub fn zero_limits(&self) -> ::std::vec::Vec<(&'static str, Self)> {
                let mut all = ::std::vec::Vec::new();
                $(
                    $crate::__config_ignore!($timeout);
                    all.push((
                        "request_timeout_secs",
                        Self { request_timeout_secs: 0, ..::std::clone::Clone::clone(self) },
                    ));
                )?
                all.push((
                    "max_file_size",
                    Self { max_file_size: 0, ..::std::clone::Clone::clone(self) },
                ));
                all.push((
                    "max_download_size",
                    Self { max_download_size: 0, ..::std::clone::Clone::clone(self) },
                ));
                all
            }
        }
    };
}

/// `config_section!`'s helper: the type `$ty`, whatever follows (a default that says the key
/// is there).
#[doc(hidden)]
#[macro_export]
macro_rules! __config_type {
    ($ty:ty, $($present:tt)*) => {
        $ty
    };
}

/// `config_section!`'s helper: nothing, whatever it is given.
#[doc(hidden)]
#[macro_export]
macro_rules! __config_ignore {
    ($($present:tt)*) => {};
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::config_section! {
        /// A section for the tests.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct FullConfig for "Full" {
            common: {
                /// Its own words on the URL.
                api_url: "https://api.full.example/v1",
                request_timeout_secs: 30,
                max_file_size: 10,
                max_download_size: 20,
                avatars: true,
            },
            own: {
                /// A token.
                pub token: String = "t".to_owned(),
                pub groups: bool = true,
            },
        }
    }

    crate::config_section! {
        /// A section without the optional shared keys.
        #[derive(Clone, Debug)]
        struct BareConfig for "Bare" {
            common: {
                api_url: "https://bare.example",
                max_file_size: 1,
                max_download_size: 2,
            },
            own: {},
        }
    }

    /// The shared keys get the channel's defaults next to its own, `enabled` is off, and a
    /// section without the optional keys refuses them as unknown.
    #[test]
    fn a_declared_section_has_the_shared_keys_and_its_own() {
        let c = FullConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.api_url, "https://api.full.example/v1");
        assert_eq!(
            (c.request_timeout_secs, c.max_file_size, c.max_download_size),
            (30, 10, 20)
        );
        assert!(c.avatars && c.groups);
        assert_eq!(c.token, "t");
        let read: FullConfig = serde_json::from_value(serde_json::json!({
            "enabled": true, "token": "x", "max_download_size": 5, "avatars": false
        }))
        .unwrap();
        assert_eq!(
            read,
            FullConfig {
                enabled: true,
                token: "x".into(),
                max_download_size: 5,
                avatars: false,
                ..FullConfig::default()
            }
        );
        let typo = serde_json::from_value::<FullConfig>(serde_json::json!({"max_file_sise": 1}));
        assert!(typo.unwrap_err().to_string().contains("max_file_sise"));
        let bare = BareConfig::default();
        assert_eq!((bare.max_file_size, bare.max_download_size), (1, 2));
        assert!(bare.check_common(Section("bare")).is_ok());
        for key in ["request_timeout_secs", "avatars"] {
            let mut section = serde_json::Map::new();
            section.insert(key.to_owned(), 1.into());
            let err = serde_json::from_value::<BareConfig>(section.into());
            assert!(err.unwrap_err().to_string().contains(key), "{key} accepted");
        }
    }

    /// Every shared key is checked, the strictest rule of the channels' old copies for all:
    /// zero is refused for the timeout and both size limits (the download limit was not
    /// checked at all before).
    #[test]
    fn the_shared_keys_are_checked() {
        let s = Section("full");
        let good = FullConfig::default();
        assert!(good.check_common(s).is_ok());
        let key = |c: FullConfig| c.check_common(s).unwrap_err().key;
        let url = key(FullConfig {
            api_url: "not a url".into(),
            ..good.clone()
        });
        assert_eq!(url, "api_url");
        let e = FullConfig {
            api_url: "mailto:x@example.com".into(),
            ..good.clone()
        }
        .check_common(s)
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "channels.full.api_url: must be an http(s) URL such as https://api.full.example/v1"
        );
        let timeout = FullConfig {
            request_timeout_secs: 0,
            ..good.clone()
        };
        assert_eq!(key(timeout), "request_timeout_secs");
        let file = FullConfig {
            max_file_size: 0,
            ..good.clone()
        };
        assert_eq!(key(file), "max_file_size");
        let download = FullConfig {
            max_download_size: 0,
            ..good.clone()
        };
        assert_eq!(key(download), "max_download_size");
        let bare = BareConfig {
            max_download_size: 0,
            ..BareConfig::default()
        };
        assert_eq!(
            bare.check_common(Section("bare")).unwrap_err().to_string(),
            "channels.bare.max_download_size: must be at least 1"
        );
        fn keys<C>(limits: Vec<(&'static str, C)>) -> Vec<&'static str> {
            limits.into_iter().map(|(k, _)| k).collect()
        }
        let zeros = good.zero_limits();
        assert_eq!(
            keys(zeros.clone()),
            ["request_timeout_secs", "max_file_size", "max_download_size"]
        );
        for (k, zero) in zeros {
            assert_eq!(key(zero), k);
        }
        assert_eq!(
            keys(BareConfig::default().zero_limits()),
            ["max_file_size", "max_download_size"]
        );
    }

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
