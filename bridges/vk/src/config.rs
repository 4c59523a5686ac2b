//! The `channels.vk` section of the bridge's configuration.
//!
//! A VK community (a "group") answers its customers through community messages. The bridge needs
//! the community's id, an access token with the `messages`, `photos` and `docs` rights, and the
//! two strings of the Callback API server set up in the community's settings: the confirmation
//! code VK asks for once, and the secret key VK then puts into every event. Unknown keys are
//! rejected (`deny_unknown_fields`) so a typo fails at start naming the key.

use serde::Deserialize;

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

/// Configuration of the VK channel.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VkConfig {
    pub enabled: bool,
    /// Base URL of the API methods (`<api_url>/messages.send`).
    pub api_url: String,
    /// The `v` parameter of every call.
    pub api_version: String,
    /// The community access token (Manage → API usage → Access tokens).
    pub access_token: String,
    /// The community's numeric id (positive, without the minus sign of its owner id).
    pub group_id: u64,
    /// The "Secret key" of the Callback API server: VK sends it as `secret` in every event.
    pub secret: String,
    /// The string VK asks the server to return for `type: confirmation`.
    pub confirmation: String,
    /// Bridge group chats the community is a member of (one conversation per chat).
    pub chats: bool,
    /// A call that has not answered after this many seconds counts as failed (and is retried).
    pub request_timeout_secs: u32,
    /// Largest file sent to VK, in bytes.
    pub max_file_size: u64,
    /// Largest file fetched from VK, in bytes; bigger ones become a line of text.
    pub max_download_size: u64,
    /// Look customers up with `users.get` for their ghosts' names and avatars.
    pub profiles: bool,
}

impl Default for VkConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            api_url: DEFAULT_API_URL.to_owned(),
            api_version: DEFAULT_API_VERSION.to_owned(),
            access_token: String::new(),
            group_id: 0,
            secret: String::new(),
            confirmation: String::new(),
            chats: true,
            request_timeout_secs: 60,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_download_size: 50 * 1024 * 1024,
            profiles: true,
        }
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
        SECTION.base_url("api_url", &self.api_url, "https://api.vk.com/method")?;
        SECTION.at_least("request_timeout_secs", self.request_timeout_secs.into(), 1)?;
        SECTION.at_least("max_file_size", self.max_file_size.into(), 1)?;
        Ok(())
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
