//! The contract between Switchboard's core and its channels.
//!
//! A *channel* is one kind of remote network (web chat, email, Telegram, …). Each lives in its own
//! crate under `bridges/<name>/` and implements [`Channel`]. The core knows channels only through
//! this trait; a channel knows nothing of Matrix, rooms or routing. It talks to the core through
//! the [`Host`] it is handed at start:
//!
//! * **Inbound**: the channel turns what its network delivers into an [`Inbound`] and calls
//!   [`Host::receive`]. That call returns only once the event is durably stored, so the channel
//!   acknowledges its source (the webhook's 2xx, the IMAP flag, the poll offset) *after* it returns
//!   `Ok`, never before. Receiving the same event twice is harmless: events are deduplicated by
//!   [`Inbound::dedup_key`].
//! * **Outbound**: the core calls [`Channel::send`] from its durable outbox. The channel delivers
//!   and returns the remote id, or a [`SendError`] saying whether a retry can help.
//! * **Capabilities** tell the core what the network can carry (file size, edits, …) so the core
//!   refuses what cannot be delivered with a notice instead of guessing.
//! * **State**: a channel keeps its durable bookkeeping (poll offsets, visitor records, its own
//!   transcript) through [`Host`]'s key-value and log methods, never in files of its own.
//!
//! The full guide for writing a channel is `docs/channels.md`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One conversation on the remote side: the company's account and the remote chat within it.
///
/// For the web chat the account is the site and the chat is the visitor; for Telegram it would be
/// the bot and the chat id; for email the mailbox and the thread root.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConversationKey {
    pub account: String,
    pub chat: String,
}

/// What the channel knows of the customer behind a contact. Becomes the ghost's profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactProfile {
    /// Stable id of the contact on the channel (a visitor id, a Telegram user id, an address).
    pub id: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub avatar: Option<MediaRef>,
}

/// A file the core has stored durably (in the homeserver's media repository). Opaque to channels:
/// fetch the bytes with [`Host::get_media`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MediaRef(pub String);

/// A file carried by a message, in either direction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub media: MediaRef,
    pub name: String,
    pub mime: String,
    pub size: u64,
}

/// Message content as both sides understand it: plain text always, HTML when the source had
/// formatting. HTML handed to a channel is already sanitised by the core.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// An event from the remote network, as stored in the core's inbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboundEvent {
    /// The customer sent a message.
    Message {
        remote_id: String,
        content: Content,
        /// Remote id of the message this one answers, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    /// Something automated from the customer's side (an auto-reply, a bounce, list mail): shown
    /// to operators as a notice; it neither reopens the conversation nor counts as unanswered,
    /// and nothing is ever sent back automatically because of it.
    Notice { remote_id: String, content: Content },
    /// The customer changed an earlier message.
    Edit { remote_id: String, content: Content },
    /// The customer deleted an earlier message.
    Delete { remote_id: String },
    /// The customer has seen our messages up to and including `remote_id`.
    Read { remote_id: String },
    /// The network confirms it delivered our message (used by channels whose status arrives later).
    Delivered { remote_id: String },
    /// The network reports that our message, accepted earlier, failed after all (a bounce).
    Failed { remote_id: String, reason: String },
    /// The customer reacted to a message (`remote_id`, theirs or ours) with `key` (an emoji), or
    /// took their reaction back (`key: None`). One reaction per customer and message, as on the
    /// networks that have them (WhatsApp, Messenger, Instagram): a new key replaces the old one.
    Reaction {
        remote_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// The customer pressed one of the choices of a [`OutboundAction::RatingRequest`] (a
    /// Telegram callback button, a WhatsApp list row, a Messenger quick reply, a VK or Viber
    /// keyboard button, a Discord component, the web chat's stars). `payload` is the choice's
    /// payload exactly as the network gave it back ([`RatingChoice::payload`]); the core checks
    /// it and turns it into a rating, so a stale or forged one changes nothing. `remote_id`
    /// names the press (the network's callback or message id).
    Choice { remote_id: String, payload: String },
}

/// One inbound event with where it belongs and who caused it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    pub conversation: ConversationKey,
    pub sender: ContactProfile,
    /// Milliseconds since the Unix epoch when the remote network says it happened.
    pub timestamp_ms: i64,
    /// Unique per event on this channel and account; the same key twice is stored once.
    pub dedup_key: String,
    pub event: InboundEvent,
    /// The operator the customer wrote to personally (a Matrix user id from the channel's own
    /// config, e.g. the owner of the personal mailbox the mail arrived in), when the channel
    /// knows. Routing gives an unowned conversation to that operator while they are on shift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addressed_to: Option<String>,
    /// Set when the conversation is a group: several remote people write in the one chat that
    /// [`Inbound::conversation`] names (a Telegram group, a Discord guild channel, an email
    /// thread with several customer addresses). Each [`Inbound::sender`] then speaks through a
    /// ghost of their own in the conversation's room, while the conversation, its routing and
    /// its answers stay keyed by the group. `None`: one customer per conversation, whose first
    /// contact speaks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
}

/// What a channel knows of a group conversation (see [`Inbound::group`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The group's own name (a Telegram group's title, a Discord channel's name), which names
    /// the room; `None`: the room is named after the first person who wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Other remote people the event names as being in the group besides its sender (an
    /// email's other customer addresses in To and Cc). They join the room as their own ghosts
    /// before they ever write, so operators see whom an answer reaches, and may remove someone
    /// by removing their ghost from the room.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<ContactProfile>,
}

/// Outside input a channel received but cannot turn into an [`Inbound`] event: JSON of a shape
/// it does not know, a message without the id that names its chat, a body that is not JSON.
/// Handed to [`Host::unreadable`], which keeps it and shows it (a notice in the conversation's
/// room when [`Unreadable::conversation`] is known, else in the bridge's admin room), so nothing
/// a network delivered is acknowledged and then lost without a trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    /// Unique per input on this channel (the network's update or message id when it could be
    /// read, else a digest of the raw bytes): the same input twice is kept and shown once.
    pub dedup_key: String,
    /// The conversation it belongs to, when that much could be read.
    pub conversation: Option<ConversationKey>,
    /// Who sent it, when that could be read (else the conversation's chat id speaks for it).
    pub sender: Option<ContactProfile>,
    /// Milliseconds since the Unix epoch when it arrived (or when the network says it happened).
    pub timestamp_ms: i64,
    /// What arrived, in words: "a Telegram update", "a Viber message".
    pub what: String,
    /// Why it could not be shown, in words an operator can act on.
    pub reason: String,
    /// The input as it arrived (lossy UTF-8), clipped to [`Unreadable::MAX_RAW`] bytes.
    pub raw: String,
}

impl Unreadable {
    /// Most bytes of raw input kept.
    pub const MAX_RAW: usize = 16 * 1024;
    /// Most characters of raw input quoted in a notice.
    pub const MAX_SHOWN: usize = 2000;

    /// Input that could not be read, with no conversation known yet. The raw bytes are kept as
    /// lossy UTF-8, clipped to [`Unreadable::MAX_RAW`] on a character boundary.
    pub fn new(
        dedup_key: impl Into<String>,
        what: impl Into<String>,
        reason: impl Into<String>,
        raw: &[u8],
        timestamp_ms: i64,
    ) -> Unreadable {
        Unreadable {
            dedup_key: dedup_key.into(),
            conversation: None,
            sender: None,
            timestamp_ms,
            what: what.into(),
            reason: reason.into(),
            raw: clip(&String::from_utf8_lossy(raw), Self::MAX_RAW),
        }
    }

    /// The same input, placed in a conversation (and, when known, with its sender).
    pub fn in_conversation(
        mut self,
        conversation: ConversationKey,
        sender: Option<ContactProfile>,
    ) -> Unreadable {
        self.conversation = Some(conversation);
        self.sender = sender;
        self
    }

    /// A dedup key for input that has no id of its own: a digest of its bytes (FNV-1a, 64 bit;
    /// stable across processes and versions).
    pub fn digest_key(raw: &[u8]) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in raw {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("raw:{h:016x}:{}", raw.len())
    }

    /// The notice operators read: what arrived, why it is not shown, and the input itself.
    pub fn notice_text(&self) -> String {
        format!(
            "⚠️ {} arrived that the bridge cannot show ({}). As received:\n{}",
            capitalized(&self.what),
            self.reason,
            clip(&self.raw, Self::MAX_SHOWN)
        )
    }

    /// The notice as an inbound event in its conversation; `None` when no conversation is known.
    pub fn to_notice(&self) -> Option<Inbound> {
        let conversation = self.conversation.clone()?;
        let sender = self.sender.clone().unwrap_or_else(|| ContactProfile {
            id: conversation.chat.clone(),
            ..ContactProfile::default()
        });
        Some(Inbound {
            conversation,
            sender,
            timestamp_ms: self.timestamp_ms,
            dedup_key: format!("unreadable:{}", self.dedup_key),
            event: InboundEvent::Notice {
                remote_id: format!("unreadable:{}", self.dedup_key),
                content: Content {
                    text: self.notice_text(),
                    html: None,
                    attachments: Vec::new(),
                },
            },
            addressed_to: None,
            group: None,
        })
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `s` cut to at most `max` bytes on a character boundary, saying how much was cut.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &s[..end], s.len())
}

/// What an operator asked to be done on the remote side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboundAction {
    Message {
        content: Content,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    Edit {
        remote_id: String,
        content: Content,
    },
    Delete {
        remote_id: String,
    },
    /// React to the remote message `remote_id` with `key` (an emoji), or remove our reaction
    /// (`key: None`). Only sent to channels whose [`Capabilities::reactions`] is set.
    React {
        remote_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// Send the pre-approved message template `name` (WhatsApp's way to speak first or after the
    /// reply window closed), filled with `params` in order. Only sent to channels whose
    /// [`Capabilities::templates`] is set; the operator asks for it with `!sb template`.
    Template {
        name: String,
        /// Language code of the template (`en_US`); `None` lets the channel use its default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        params: Vec<String>,
    },
    /// Ask the customer to rate the conversation with the network's own choice buttons. Only
    /// sent to channels whose [`Capabilities::rating`] is [`RatingStyle::Native`]; the others
    /// get the question as a plain message asking for a digit.
    RatingRequest(RatingRequest),
}

/// A rating question with its choices, as a channel with native buttons shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingRequest {
    /// The question, in the customer's language.
    pub question: String,
    /// The choices, worst first (1 to 5).
    pub choices: Vec<RatingChoice>,
}

/// One choice of a [`RatingRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingChoice {
    /// The score it stands for (1–5).
    pub score: u8,
    /// What the button says (`⭐⭐⭐⭐ 4`); short enough for every network's buttons.
    pub label: String,
    /// What the network must hand back when it is pressed ([`InboundEvent::Choice`]): at most
    /// 64 bytes of ASCII, fit for Telegram's `callback_data` and every other network's payload.
    pub payload: String,
}

/// How a channel presents a rating request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatingStyle {
    /// As text asking for a reply with a digit (e-mail, SMS).
    #[default]
    Digits,
    /// With the network's own buttons ([`OutboundAction::RatingRequest`]); presses come back
    /// as [`InboundEvent::Choice`].
    Native,
}

/// One outbound item from the core's outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outbound {
    pub conversation: ConversationKey,
    /// Stable across retries (derived from the Matrix event id): a channel whose network accepts an
    /// idempotency key should pass it on so a retry after a crash cannot double-send.
    pub idempotency_key: String,
    pub action: OutboundAction,
    /// In a group conversation ([`Inbound::group`]), the remote people it includes, as contact
    /// ids ([`ContactProfile::id`]): whoever wrote last first, then the others by how recently
    /// they wrote; people an operator removed from the room are left out (until they write
    /// again). Empty for a one-customer conversation. A channel that addresses each message to
    /// people (email: To and Cc) sends to these; one whose group is a chat sends to the chat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<String>,
}

/// How to begin a conversation the core continues on another channel
/// ([`Channel::send_continued`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Begin {
    /// The customer's address on this channel (an e-mail address).
    pub address: String,
    /// The customer's name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A subject or title, for networks that have one.
    pub subject: String,
}

/// A successful send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The remote id of the message created (for edits and deletes: of the message affected).
    pub remote_id: String,
    /// True when the network already confirmed delivery to the customer's device.
    pub delivered: bool,
}

impl Delivery {
    /// The network confirmed delivery to the customer as it took the message.
    pub fn delivered(remote_id: impl Into<String>) -> Delivery {
        Delivery {
            remote_id: remote_id.into(),
            delivered: true,
        }
    }

    /// The network took the message; delivery to the customer is reported later (a status
    /// event), if at all.
    pub fn sent(remote_id: impl Into<String>) -> Delivery {
        Delivery {
            remote_id: remote_id.into(),
            delivered: false,
        }
    }
}

/// Why a send did not happen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again: outage, timeout, rate limit. `retry_after` is the network's own hint.
    #[error("{reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will never work as asked; `reason` is shown to operators as it is, so make it readable.
    #[error("{reason}")]
    Permanent { reason: String },
    /// The bridge's own side failed ([`HostError`]: its store, the media repository), not the
    /// network: nothing was refused. The core waits it out and never counts it against
    /// `bridge.max_attempts`, so trouble in the bridge's own store never turns an answer into a
    /// dead letter. Made by `switchboard_kit::send::host_unavailable`.
    #[error("{reason}")]
    HostUnavailable { reason: String },
}

/// Errors a channel can see from the core.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("store unavailable: {0}")]
    Store(String),
    #[error("media repository: {0}")]
    Media(String),
    #[error("not found")]
    NotFound,
}

/// Errors a channel reports at start.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("{0}")]
    Other(String),
}

/// How a channel shows formatted text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Formatting {
    /// Plain text only: the core sends `Content::text` and no HTML.
    #[default]
    Plain,
    /// A sanitised HTML subset (bold, italic, code, links, lists, quotes).
    Html,
}

/// How a network counts the length of a text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextUnit {
    /// Unicode characters (code points).
    #[default]
    Chars,
    /// UTF-16 code units: a character outside the Basic Multilingual Plane (most emoji)
    /// counts twice (Telegram).
    Utf16,
}

/// What the remote network can carry. The core consults these before sending and tells the room
/// when an operator asks for something the channel cannot do. The default is a network that
/// carries plain text of any length and nothing more: a channel declares what it has on top
/// (`Capabilities { edits: true, ..Capabilities::default() }`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub formatting: Formatting,
    /// Largest file the network accepts, in bytes.
    pub max_file_size: Option<u64>,
    /// Longest text of one message, counted in [`Capabilities::text_unit`]. A longer answer is
    /// sent as several messages, cut by the core.
    pub max_text_length: Option<usize>,
    /// Longest caption a file can carry (`None`: as long as a text). A longer one is sent as a
    /// message of its own before the files.
    pub max_caption_length: Option<usize>,
    /// How the network counts the length of a text.
    pub text_unit: TextUnit,
    pub edits: bool,
    pub deletes: bool,
    pub replies: bool,
    pub reactions: bool,
    pub read_receipts: bool,
    pub typing: bool,
    /// After the customer's last message, how long free-form replies are allowed (24 h on Meta).
    /// The core enforces it: a free-form reply outside the window is not queued and the room is
    /// told why (and, with [`Capabilities::templates`], that `!sb template` still works).
    pub reply_window: Option<Duration>,
    /// The network has pre-approved message templates ([`OutboundAction::Template`]).
    pub templates: bool,
    /// How the network shows a rating request (buttons, or a question answered with a digit).
    pub rating: RatingStyle,
}

/// Whether this instance of the bridge is the leader: several instances may serve one store,
/// all of them taking webhooks, but only the leader runs what must run once (a poller, an IMAP
/// IDLE session, a gateway connection). Run such work with
/// `switchboard_kit::lifecycle::while_leading`, which starts and stops it as this changes.
#[derive(Clone, Debug)]
pub struct Leading(tokio::sync::watch::Receiver<bool>);

impl Leading {
    /// Follows the value of a watch the core sets.
    pub fn new(receiver: tokio::sync::watch::Receiver<bool>) -> Leading {
        Leading(receiver)
    }

    /// Leading for good (a host with one instance only, unit tests).
    pub fn always() -> Leading {
        let (tx, rx) = tokio::sync::watch::channel(true);
        drop(tx);
        Leading(rx)
    }

    /// Whether this instance leads now.
    pub fn now(&self) -> bool {
        *self.0.borrow()
    }

    /// Wait until leading is `leading` (at once when it is). Never returns when that cannot
    /// happen any more.
    pub async fn until(&mut self, leading: bool) {
        if self.0.wait_for(|v| *v == leading).await.is_err() && *self.0.borrow() != leading {
            std::future::pending::<()>().await;
        }
    }
}

/// A channel's own records of an inbound event, stored with it by [`Host::receive_recorded`]:
/// an entry of one of the channel's logs (idempotent by `key`, as [`Host::log_append`]) and
/// state values, which may name the entry's sequence number.
pub struct Recorded<'a> {
    pub stream: &'a str,
    pub key: &'a str,
    pub body: &'a serde_json::Value,
    /// The state values to write (as [`Host::state_put`]), given the entry's sequence number;
    /// an error stores nothing.
    pub state: &'a (dyn Fn(i64) -> Result<Vec<(String, String)>, HostError> + Send + Sync),
}

/// What the core offers a channel. Scoped to that channel: keys and logs of one channel are
/// invisible to another.
#[async_trait]
pub trait Host: Send + Sync + 'static {
    /// Durably store an inbound event. Acknowledge the source only after this returns `Ok`.
    /// Returns `false` when the event was already stored (a redelivery).
    async fn receive(&self, inbound: Inbound) -> Result<bool, HostError>;

    /// [`Host::receive`], with the channel's own records of the event ([`Recorded`]) stored in
    /// the same transaction: one durable commit where three would be, and never an event
    /// without its records or records without their event. Returns whether the event was new
    /// and the log entry's sequence number (the earlier one's for a key logged before).
    /// Acknowledge the source only after this returns `Ok`. This default writes them one after
    /// the other (the event first), for a host without transactions.
    async fn receive_recorded(
        &self,
        inbound: Inbound,
        record: Recorded<'_>,
    ) -> Result<(bool, i64), HostError> {
        let fresh = self.receive(inbound).await?;
        Ok((fresh, self.log_append_recorded(record).await?))
    }

    /// Whether this instance leads (see [`Leading`]); the default leads for good.
    fn leading(&self) -> Leading {
        Leading::always()
    }

    /// Show or hide the contact's typing indicator in the conversation's room. Best effort.
    async fn typing(&self, conversation: &ConversationKey, sender: &ContactProfile, active: bool);

    /// Store a file durably and get a reference to it.
    async fn put_media(&self, data: Bytes, mime: &str, name: &str) -> Result<MediaRef, HostError>;

    /// Fetch a stored file: its bytes and mime type.
    async fn get_media(&self, media: &MediaRef) -> Result<(Bytes, String), HostError>;

    /// Read a value of the channel's durable key-value state.
    async fn state_get(&self, key: &str) -> Result<Option<String>, HostError>;

    /// Write a value of the channel's durable key-value state.
    async fn state_put(&self, key: &str, value: &str) -> Result<(), HostError>;

    /// Store `value` under `key` unless a value is there already, and return the value stored
    /// now either way: for what every instance on one store must share, such as a secret made
    /// on first use. The core's host does it atomically; this default (read, then write) is
    /// only right for a host that one task uses at a time.
    async fn state_put_if_absent(&self, key: &str, value: &str) -> Result<String, HostError> {
        if let Some(stored) = self.state_get(key).await? {
            return Ok(stored);
        }
        self.state_put(key, value).await?;
        Ok(value.to_string())
    }

    /// Write a value that the core deletes once `expires_at_ms` has passed, unless it is written
    /// again with [`Host::state_put`] before (which keeps it for good). For records of things
    /// that may never matter (a web chat session in which nobody writes). A host without expiry
    /// keeps the value.
    async fn state_put_expiring(
        &self,
        key: &str,
        value: &str,
        expires_at_ms: i64,
    ) -> Result<(), HostError> {
        let _ = expires_at_ms;
        self.state_put(key, value).await
    }

    /// Append to one of the channel's durable logs; idempotent by `key` within the stream: when the
    /// key is already there, nothing is written and the existing entry's sequence number is
    /// returned. Sequence numbers increase within a stream.
    async fn log_append(
        &self,
        stream: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> Result<i64, HostError>;

    /// [`Host::log_append`] with state values that may name the entry's sequence number
    /// ([`Recorded`]), in one transaction: one durable commit, and the entry and the values
    /// visible together. This default writes them one after the other (the entry first), for a
    /// host without transactions.
    async fn log_append_recorded(&self, record: Recorded<'_>) -> Result<i64, HostError> {
        let seq = self
            .log_append(record.stream, record.key, record.body)
            .await?;
        for (key, value) in (record.state)(seq)? {
            self.state_put(&key, &value).await?;
        }
        Ok(seq)
    }

    /// Read log entries with a sequence number above `after`, oldest first.
    async fn log_read(
        &self,
        stream: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, serde_json::Value)>, HostError>;

    /// Keep and show input that could not be read (see [`Unreadable`]). Acknowledge the
    /// source only after this returns `Ok`, exactly as after [`Host::receive`]. The default
    /// stores it as a notice in its conversation and refuses input with no conversation; the
    /// bridge's host also keeps the latter and shows it in its admin room.
    async fn unreadable(&self, input: Unreadable) -> Result<(), HostError> {
        match input.to_notice() {
            Some(notice) => self.receive(notice).await.map(|_| ()),
            None => Err(HostError::Store(format!(
                "no place to keep {} that names no conversation",
                input.what
            ))),
        }
    }

    /// The signature the people handling `conversation` sign their outgoing messages with (a
    /// team's own, from the core's configuration), for channels that sign messages (email).
    /// `None` when there is none; the channel then uses its own default, if any.
    async fn signature(
        &self,
        _conversation: &ConversationKey,
    ) -> Result<Option<String>, HostError> {
        Ok(None)
    }

    /// What a customer of `account` is told before they write ([`Availability`]). The default
    /// (a host with no teams): open, nothing known of answer times.
    async fn availability(&self, _account: &str) -> Result<Availability, HostError> {
        Ok(Availability {
            open_now: true,
            ..Availability::default()
        })
    }
}

/// What a customer is told before they write (the web chat's header): whether the people who
/// would answer them work now, when they work next, and how soon they usually answer. The core
/// derives it from the team that new conversations of the account go to (its working calendar)
/// and from the first responses stored over the last days; a channel only shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// The team works now (inside its hours, not on a holiday). With no team, always.
    pub open_now: bool,
    /// When closed: when the team opens next (ms since the Unix epoch), if within a fortnight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_open_ms: Option<i64>,
    /// The team's usual first response, in working time, rounded up for humans (60 s, 2 min,
    /// 5 min, 10 min, …): "usually answers within 10 minutes". `None` when too few answers
    /// were recorded to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usually_within_secs: Option<u64>,
}

/// One result of [`Channel::check`] (and of `switchboard doctor`'s own checks): what was
/// checked, what was found, and — when it does not hold — what to change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. "bot token (getMe)".
    pub what: String,
    /// What was found: the account it names when it holds, the network's words when not.
    pub found: String,
    /// `None` when the check holds; otherwise what the administrator should change.
    pub fix: Option<String>,
}

impl Check {
    /// A check that holds.
    pub fn ok(what: impl Into<String>, found: impl Into<String>) -> Check {
        Check {
            what: what.into(),
            found: found.into(),
            fix: None,
        }
    }

    /// A check that fails: what was found, and the fix.
    pub fn failed(
        what: impl Into<String>,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            what: what.into(),
            found: found.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn holds(&self) -> bool {
        self.fix.is_none()
    }
}

/// A channel: one kind of remote network.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    /// Short lowercase name: used in ghost ids (`@sb_<name>_…`), config and routes.
    fn name(&self) -> &'static str;

    /// What the network can carry.
    fn capabilities(&self) -> Capabilities;

    /// Spawn background work (polling, gateways) and return the HTTP routes to mount on the
    /// bridge's shared server under `/<name>`. Called once, before the server starts listening.
    async fn start(
        self: Arc<Self>,
        host: Arc<dyn Host>,
    ) -> Result<Option<axum::Router>, ChannelError>;

    /// Deliver one outbound item.
    async fn send(&self, outbound: &Outbound) -> Result<Delivery, SendError>;

    /// Deliver an item of a conversation the core continues here from another channel (an
    /// answer to a web chat visitor who has left, by e-mail): the conversation named by
    /// `outbound` may not exist on this channel yet; then begin it with `begin`'s address.
    /// Later items of it come here too, and the customer's answers come back under
    /// `outbound.conversation` as usual. The default: a channel that cannot begin
    /// conversations sends as usual (and fails when it does not know the conversation).
    async fn send_continued(
        &self,
        outbound: &Outbound,
        begin: &Begin,
    ) -> Result<Delivery, SendError> {
        let _ = begin;
        self.send(outbound).await
    }

    /// An operator started or stopped typing. Best effort; default does nothing.
    async fn typing(&self, _conversation: &ConversationKey, _active: bool) {}

    /// An operator has read the customer's messages up to `remote_id`. Best effort.
    async fn mark_read(&self, _conversation: &ConversationKey, _remote_id: &str) {}

    /// When the customer left (ms since the Unix epoch), for a channel whose customers are
    /// there only while a page is open (the web chat): `Some` once nobody has had the
    /// conversation open for the channel's configured time, so the core may continue it by
    /// another channel the customer gave an address for. `None`: reachable as usual (the
    /// default, and every channel whose network keeps messages for the customer).
    async fn customer_left(&self, _conversation: &ConversationKey) -> Option<i64> {
        None
    }

    /// Check the configuration against the network itself (`switchboard doctor`): that the
    /// credentials are accepted, the account is the one meant, and the network can reach the
    /// bridge — through read-only calls, never writing to anyone. Works before [`Channel::start`].
    /// Each failed [`Check`] names its fix. The default checks nothing.
    async fn check(&self) -> Vec<Check> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_input_is_clipped_on_a_character_boundary_and_shown() {
        let raw = "é".repeat(Unreadable::MAX_RAW);
        let u = Unreadable::new("k", "a Telegram update", "odd", raw.as_bytes(), 5);
        assert!(u.raw.len() < Unreadable::MAX_RAW + 40, "{}", u.raw.len());
        assert!(u.raw.ends_with(&format!("({} bytes in all)", raw.len())));
        assert!(u.to_notice().is_none(), "no conversation, no room notice");
        let key = ConversationKey {
            account: "a".into(),
            chat: "c".into(),
        };
        let notice = u
            .in_conversation(key.clone(), None)
            .to_notice()
            .expect("a notice");
        assert_eq!(notice.conversation, key);
        assert_eq!(notice.sender.id, "c");
        assert_eq!(notice.dedup_key, "unreadable:k");
        let InboundEvent::Notice { content, .. } = notice.event else {
            panic!()
        };
        assert!(
            content.text.starts_with("⚠️ A Telegram update arrived"),
            "{}",
            content.text
        );
        assert!(content.text.len() < Unreadable::MAX_SHOWN + 200);
    }

    #[test]
    fn group_fields_are_optional_on_the_wire() {
        // Inbox and outbox rows stored before groups existed still read.
        let old: Inbound = serde_json::from_value(serde_json::json!({
            "conversation": {"account": "a", "chat": "c"},
            "sender": {"id": "u"},
            "timestamp_ms": 1,
            "dedup_key": "k",
            "event": {"type": "delete", "remote_id": "r"},
        }))
        .expect("an inbound without group");
        assert_eq!(old.group, None);
        let grouped = Inbound {
            group: Some(Group {
                title: Some("Acme".into()),
                members: vec![ContactProfile {
                    id: "b@x".into(),
                    ..ContactProfile::default()
                }],
            }),
            ..old
        };
        let back: Inbound =
            serde_json::from_str(&serde_json::to_string(&grouped).unwrap()).unwrap();
        assert_eq!(back, grouped);
        let out: Outbound = serde_json::from_value(serde_json::json!({
            "conversation": {"account": "a", "chat": "c"},
            "idempotency_key": "i",
            "action": {"type": "delete", "remote_id": "r"},
        }))
        .expect("an outbound without participants");
        assert!(out.participants.is_empty());
    }

    #[test]
    fn digest_keys_are_stable() {
        assert_eq!(Unreadable::digest_key(b""), "raw:cbf29ce484222325:0");
        assert_ne!(Unreadable::digest_key(b"a"), Unreadable::digest_key(b"b"));
    }
}
