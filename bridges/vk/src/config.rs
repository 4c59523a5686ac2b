//! The `channels.vk` section of the bridge's configuration.
//!
//! A VK community (a "group") answers its customers through community messages. The bridge needs
//! the community's id, an access token with the `messages`, `photos` and `docs` rights, and the
//! two strings of the Callback API server set up in the community's settings: the confirmation
//! code VK asks for once, and the secret key VK then puts into every event. Unknown keys are
//! rejected (`deny_unknown_fields`) so a typo fails at start naming the key.

/// The public VK API.
pub const DEFAULT_API_URL: &str = "https://api.vk.com/method";
/// The API version every call names (and the Callback API server should be set to).
pub const DEFAULT_API_VERSION: &str = "5.199";
/// Longest message text VK accepts, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;
/// Largest document VK takes (`docs.getMessagesUploadServer`), in bytes.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 200 * 1024 * 1024;
/// Largest photo `photos.getMessagesUploadServer` takes; bigger images go as documents.
pub const MAX_PHOTO_BYTES: u64 = 50 * 1024 * 1024;

switchboard_kit::config_section! {
    /// Configuration of the VK channel.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct VkConfig for "VK" {
        common: {
            /// API methods are called at `<api_url>/messages.send`.
            api_url: DEFAULT_API_URL,
            request_timeout_secs: 60,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_download_size: 50 * 1024 * 1024,
        },
        own: {
            /// The `v` parameter of every call.
            pub api_version: String = DEFAULT_API_VERSION.to_owned(),
            /// The community access token (Manage → API usage → Access tokens).
            pub access_token: String = String::new(),
            /// The community's numeric id (positive, without the minus sign of its owner id).
            pub group_id: u64 = 0,
            /// The "Secret key" of the Callback API server: VK sends it as `secret` in every event.
            pub secret: String = String::new(),
            /// The string VK asks the server to return for `type: confirmation`.
            pub confirmation: String = String::new(),
            /// Bridge group chats the community is a member of (one conversation per chat).
            pub chats: bool = true,
            /// Look customers up with `users.get` for their ghosts' names and avatars.
            pub profiles: bool = true,
        },
    }
}

pub use switchboard_kit::config::ConfigError;
use switchboard_kit::config::Section;

/// Where this channel's settings live: `channels.vk`.
const SECTION: Section = Section("vk");

impl VkConfig {
    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        SECTION.required(
            "access_token",
            &self.access_token,
            " (a community access token with the messages right)",
        )?;
        if self.group_id == 0 {
            return SECTION.invalid("group_id", "is required (the community's numeric id)");
        }
        SECTION.required(
            "secret",
            &self.secret,
            ": set a secret key on the Callback API server and copy it here",
        )?;
        SECTION.required(
            "confirmation",
            &self.confirmation,
            ": the string the Callback API settings page asks to return",
        )?;
        self.check_common(SECTION)
    }

    /// The account of every conversation: the community's id.
    pub fn account(&self) -> String {
        self.group_id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> VkConfig {
        VkConfig {
            enabled: true,
            access_token: "vk1.a.token".into(),
            group_id: 193668024,
            secret: "s".into(),
            confirmation: "c0ffee".into(),
            ..VkConfig::default()
        }
    }

    #[test]
    fn defaults_and_validation() {
        assert_eq!(VkConfig::default().api_url, DEFAULT_API_URL);
        assert_eq!(VkConfig::default().api_version, "5.199");
        assert!(good().validate().is_ok());
        // The kit's checks of the shared limits: each at zero is refused, naming it (the
        // download limit was not checked here before).
        for (key, zero) in good().zero_limits() {
            assert_eq!(zero.validate().unwrap_err().key, key);
        }
        let e = VkConfig {
            secret: String::new(),
            ..good()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("channels.vk.secret"));
        // A secret or confirmation of blanks is as missing as an empty one (the kit's rule;
        // this copy used to accept blanks).
        for blank in [
            VkConfig {
                secret: "  ".into(),
                ..good()
            },
            VkConfig {
                confirmation: " ".into(),
                ..good()
            },
        ] {
            assert!(blank.validate().is_err());
        }
        assert!(VkConfig {
            group_id: 0,
            ..good()
        }
        .validate()
        .is_err());
        assert!(VkConfig {
            api_url: "ftp://x".into(),
            ..good()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err =
            serde_json::from_value::<VkConfig>(serde_json::json!({"grop_id": 1})).unwrap_err();
        assert!(err.to_string().contains("grop_id"));
    }
}
