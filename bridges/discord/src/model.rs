//! The parts of Discord's objects the bridge reads, as serde types.
//!
//! Deliberately lenient: every field the bridge can live without has a default, unknown fields
//! are ignored, and snowflakes are strings (as Discord sends them). A payload that still does
//! not fit is skipped by the gateway with a log line instead of stopping it. The shapes follow
//! <https://discord.com/developers/docs/resources/message> and `…/topics/gateway-events`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Gateway opcodes (<https://discord.com/developers/docs/topics/opcodes-and-status-codes>).
pub mod op {
    pub const DISPATCH: u8 = 0;
    pub const HEARTBEAT: u8 = 1;
    pub const IDENTIFY: u8 = 2;
    pub const RESUME: u8 = 6;
    pub const RECONNECT: u8 = 7;
    pub const INVALID_SESSION: u8 = 9;
    pub const HELLO: u8 = 10;
    pub const HEARTBEAT_ACK: u8 = 11;
}

/// Gateway intents the bridge asks for.
pub mod intents {
    pub const GUILD_MESSAGES: u64 = 1 << 9;
    pub const GUILD_MESSAGE_REACTIONS: u64 = 1 << 10;
    pub const GUILD_MESSAGE_TYPING: u64 = 1 << 11;
    pub const DIRECT_MESSAGES: u64 = 1 << 12;
    pub const DIRECT_MESSAGE_REACTIONS: u64 = 1 << 13;
    pub const DIRECT_MESSAGE_TYPING: u64 = 1 << 14;
    pub const MESSAGE_CONTENT: u64 = 1 << 15;
}

/// One gateway frame: `{"op":…,"d":…,"s":…,"t":…}`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Payload {
    pub op: u8,
    #[serde(default)]
    pub d: Value,
    #[serde(default)]
    pub s: Option<u64>,
    #[serde(default)]
    pub t: Option<String>,
}

/// `d` of HELLO.
#[derive(Clone, Debug, Deserialize)]
pub struct Hello {
    pub heartbeat_interval: u64,
}

/// `d` of the READY dispatch.
#[derive(Clone, Debug, Deserialize)]
pub struct Ready {
    pub session_id: String,
    #[serde(default)]
    pub resume_gateway_url: Option<String>,
    pub user: User,
    #[serde(default)]
    pub application: Option<Application>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Application {
    pub id: String,
}

/// The answer of `GET /gateway/bot`.
#[derive(Clone, Debug, Deserialize)]
pub struct GatewayBot {
    pub url: String,
}

/// A Discord user.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub global_name: Option<String>,
    #[serde(default)]
    pub avatar: Option<String>,
    #[serde(default)]
    pub bot: bool,
}

impl User {
    /// What people see: the display name (`global_name`), else the username.
    pub fn display_name(&self) -> &str {
        match self.global_name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => name,
            _ => &self.username,
        }
    }
}

/// A file attached to a message.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Attachment {
    pub id: String,
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub url: String,
}

/// `message_reference` of a reply (or a forward).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct MessageReference {
    /// 0 = DEFAULT (a reply), 1 = FORWARD.
    #[serde(default, rename = "type")]
    pub kind: u8,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
}

/// A message (MESSAGE_CREATE, MESSAGE_UPDATE, REST answers). In MESSAGE_UPDATE everything but
/// `id` and `channel_id` may be missing.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Message {
    pub id: String,
    pub channel_id: String,
    #[serde(default)]
    pub guild_id: Option<String>,
    #[serde(default)]
    pub author: Option<User>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub edited_timestamp: Option<String>,
    #[serde(default)]
    pub attachments: Option<Vec<Attachment>>,
    #[serde(default)]
    pub mentions: Vec<User>,
    #[serde(default)]
    pub message_reference: Option<MessageReference>,
    #[serde(default, rename = "type")]
    pub kind: u16,
    #[serde(default)]
    pub webhook_id: Option<String>,
    #[serde(default)]
    pub sticker_items: Vec<Value>,
    #[serde(default)]
    pub embeds: Vec<Value>,
}

/// MESSAGE_DELETE.
#[derive(Clone, Debug, Deserialize)]
pub struct MessageDelete {
    pub id: String,
    pub channel_id: String,
    #[serde(default)]
    pub guild_id: Option<String>,
}

/// TYPING_START.
#[derive(Clone, Debug, Deserialize)]
pub struct TypingStart {
    pub channel_id: String,
    #[serde(default)]
    pub guild_id: Option<String>,
    pub user_id: String,
    /// Unix seconds.
    #[serde(default)]
    pub timestamp: i64,
}

/// Discord's error envelope: `{"code":50007,"message":"…","retry_after":…,"global":…}`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub retry_after: Option<f64>,
    #[serde(default)]
    pub global: bool,
}

/// Milliseconds since the epoch of an ISO 8601 timestamp as Discord writes them
/// (`2023-03-28T01:07:30.576000+00:00`), `None` when it is not one.
pub fn parse_timestamp(ts: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Milliseconds since the epoch encoded in a snowflake (Discord epoch 2015-01-01).
pub fn snowflake_ms(id: &str) -> Option<i64> {
    let n: u64 = id.parse().ok()?;
    i64::try_from((n >> 22) + 1_420_070_400_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_snowflakes() {
        assert_eq!(
            parse_timestamp("2023-03-28T01:07:30.576000+00:00"),
            Some(1_679_965_650_576)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(snowflake_ms("175928847299117063"), Some(1_462_015_105_796));
        assert_eq!(snowflake_ms("x"), None);
    }
}
