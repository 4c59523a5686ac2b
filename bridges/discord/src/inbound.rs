//! Gateway dispatches → the core's inbound events.
//!
//! Two steps, as in the other channels:
//!
//! 1. [`parse_dispatch`] (pure, fuzzed): a dispatch's name and `d` → what it means for the
//!    bridge ([`Parsed`]): which conversation (account = the bot's user id, chat = the channel
//!    id, a DM channel for customers), who, when, which text/HTML, which attachments to fetch,
//!    which message it answers. Dispatches the bridge does not bridge (the bot's own messages,
//!    guild messages unless configured, READY, presence…) are `None`.
//! 2. [`realize`]: fetch the attachments and store them with `Host::put_media`, and build the
//!    `Inbound`. An attachment Discord will not hand out becomes a line of text saying so; a
//!    transient failure is an error, and the gateway loop tries again before moving on.
//!
//! Dedup keys: `msg:<channel>:<id>`, `edit:<channel>:<id>:<edited_timestamp>`,
//! `del:<channel>:<id>`. A message the gateway redelivers after a resume is stored once.
//! Reactions (`MESSAGE_REACTION_ADD` / `_REMOVE`) have no id of their own: their key carries
//! the time they were read, and [`crate::handle_dispatch`] drops the repeats by the customer's
//! current reaction, which it keeps (Discord keeps one per emoji, the contract one per
//! message: a removal counts only for the emoji the customer's reaction is now).
//!
//! A press on a button of a rating question is an `INTERACTION_CREATE` of type 3
//! (MESSAGE_COMPONENT) whose `data.custom_id` is the rating payload: a [`ParsedKind::Choice`]
//! keyed `press:<channel>:<interaction id>`, carrying what is needed to answer it
//! ([`Answer`], see [`crate::rating`]). Interactions need no intent; in a DM they name the
//! presser in `user`, in a guild in `member.user`.

use std::sync::Arc;

use serde_json::Value;
use switchboard_channel::{
    Attachment as CoreAttachment, ContactProfile, Content, ConversationKey, Group, Host, HostError,
    Inbound, InboundEvent, MediaRef, Unreadable,
};

use crate::markdown;
use crate::model::{self, Attachment, Message, MessageDelete, TypingStart, User};
use crate::rest::{Rest, RestError};

/// What parsing needs to know.
#[derive(Clone, Debug, Default)]
pub struct ParseOptions {
    /// The bot's user id: the account of every conversation, and whose messages are not bridged.
    pub account: String,
    /// Bridge guild channels too.
    pub guilds: bool,
    /// With `guilds`: only these channels (empty: all).
    pub guild_channels: Vec<String>,
}

/// A message's content before its files are fetched.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedContent {
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
}

/// What a dispatch means.
#[derive(Clone, Debug, PartialEq)]
pub enum ParsedKind {
    Message {
        remote_id: String,
        content: ParsedContent,
        reply_to: Option<String>,
        notice: bool,
    },
    Edit {
        remote_id: String,
        content: ParsedContent,
    },
    Delete {
        remote_id: String,
    },
    /// The customer added (`added`) or removed their reaction `emoji` on `remote_id`.
    Reaction {
        remote_id: String,
        emoji: String,
        added: bool,
    },
    Typing,
    /// The customer pressed a button of a rating question: `remote_id` is the interaction,
    /// `payload` the button's `custom_id`.
    Choice {
        remote_id: String,
        payload: String,
        answer: Answer,
    },
}

/// What answering an interaction needs (`POST /interactions/{id}/{token}/callback`).
#[derive(Clone, PartialEq)]
pub struct Answer {
    /// The interaction's continuation token (valid 15 minutes; the first answer is due
    /// within 3 seconds).
    pub token: String,
    /// The message the pressed button is on, and its components as Discord sent them.
    pub message: Option<(String, Value)>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token lets whoever holds it answer as the bot: kept out of logs.
        f.debug_struct("Answer")
            .field("token", &"…")
            .field("message", &self.message.as_ref().map(|(id, _)| id))
            .finish()
    }
}

/// A dispatch the bridge acts on.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub conversation: ConversationKey,
    /// The author when the dispatch names them (not for deletions; typing has only the id).
    pub sender: Option<User>,
    /// The author's id when only that is known.
    pub sender_id: Option<String>,
    pub timestamp_ms: i64,
    pub dedup_key: String,
    pub kind: ParsedKind,
    /// A guild channel: one conversation of many members, each speaking as themselves.
    pub group: bool,
}

fn is_snowflake(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether a message in `channel` (of `guild`) is bridged at all.
fn wanted(options: &ParseOptions, channel: &str, guild: Option<&str>) -> bool {
    if !is_snowflake(channel) {
        return false;
    }
    match guild {
        None => true,
        Some(_) => {
            options.guilds
                && (options.guild_channels.is_empty()
                    || options.guild_channels.iter().any(|c| c == channel))
        }
    }
}

fn conversation(options: &ParseOptions, channel: &str) -> ConversationKey {
    ConversationKey {
        account: options.account.clone(),
        chat: channel.to_owned(),
    }
}

/// Names of the users mentioned, for `<@id>`.
fn names(m: &Message) -> markdown::Names {
    m.mentions
        .iter()
        .map(|u| (u.id.clone(), u.display_name().to_owned()))
        .collect()
}

/// Message types that are someone writing: DEFAULT and REPLY (and a chat-input command's
/// output is the bot's own). Everything else is a system message.
fn is_plain_message(kind: u16) -> bool {
    matches!(kind, 0 | 19)
}

/// The text, HTML and files of a message; `notice` when it is something the bridge shows only
/// as a description (a system message, a poll, an embed-only message).
fn content_of(m: &Message, raw: &Value) -> (ParsedContent, bool) {
    let names = names(m);
    let mut content = m.content.clone().unwrap_or_default();
    let mut notice = false;
    if m.message_reference.as_ref().is_some_and(|r| r.kind == 1) {
        // A forward: the forwarded text is in message_snapshots.
        let forwarded = raw["message_snapshots"][0]["message"]["content"]
            .as_str()
            .unwrap_or("");
        content = format!("Forwarded message:\n{forwarded}");
    }
    for sticker in &m.sticker_items {
        let name = sticker["name"].as_str().unwrap_or("sticker");
        content.push_str(&format!(
            "{}[sticker: {name}]",
            if content.is_empty() { "" } else { "\n" }
        ));
    }
    if !raw["poll"].is_null() {
        let question = raw["poll"]["question"]["text"].as_str().unwrap_or("");
        content = format!("[a poll: {question}] (polls are not bridged)");
        notice = true;
    }
    if !is_plain_message(m.kind) {
        notice = true;
        if content.is_empty() {
            content = format!("[a Discord system message of type {}]", m.kind);
        }
    }
    let attachments = m.attachments.clone().unwrap_or_default();
    if content.is_empty() && attachments.is_empty() && !m.embeds.is_empty() {
        content = "[a message with embeds only, which the bridge does not show]".into();
        notice = true;
    }
    let text = markdown::to_plain(&content, &names);
    let html = markdown::to_html(&content, &names);
    (
        ParsedContent {
            text,
            html,
            attachments,
        },
        notice,
    )
}

fn timestamp(m: &Message) -> i64 {
    m.timestamp
        .as_deref()
        .and_then(model::parse_timestamp)
        .or_else(|| model::snowflake_ms(&m.id))
        .unwrap_or(0)
}

/// A customer's message (`MESSAGE_CREATE`) that [`parse_dispatch`] could not read because a
/// field has a type the model does not expect: kept and shown raw ([`Host::unreadable`]), in its
/// conversation when its channel can be read, instead of dropped. `None` for dispatches that read
/// fine (and were bridged or deliberately skipped), for other events, for our own messages and
/// for channels that are not bridged.
pub fn unreadable_dispatch(event: &str, d: &Value, options: &ParseOptions) -> Option<Unreadable> {
    if event != "MESSAGE_CREATE" {
        return None;
    }
    let error = serde_json::from_value::<Message>(d.clone()).err()?;
    let author = d
        .get("author")
        .and_then(|a| a.get("id"))
        .and_then(Value::as_str);
    if author.is_some_and(|a| a == options.account) {
        return None;
    }
    let raw = d.to_string();
    let key = match d
        .get("id")
        .and_then(Value::as_str)
        .filter(|i| is_snowflake(i))
    {
        Some(id) => format!("unreadable:{id}"),
        None => Unreadable::digest_key(raw.as_bytes()),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_millis() as i64)
        .unwrap_or(0);
    let input = Unreadable::new(
        key,
        "a Discord message",
        format!("a field has an unexpected type: {error}"),
        raw.as_bytes(),
        now,
    );
    let channel = d.get("channel_id").and_then(Value::as_str);
    let guild = d.get("guild_id").and_then(Value::as_str);
    // The author speaks for it when their id can be read (a DM channel's id is not theirs).
    let sender = author.filter(|a| is_snowflake(a)).map(|id| ContactProfile {
        id: id.to_owned(),
        display_name: d
            .get("author")
            .and_then(|a| {
                let name = |k: &str| a.get(k).and_then(Value::as_str);
                name("global_name").or_else(|| name("username"))
            })
            .map(str::to_owned),
        ..ContactProfile::default()
    });
    match channel {
        Some(c) if wanted(options, c, guild) => {
            Some(input.in_conversation(conversation(options, c), sender))
        }
        Some(c) if is_snowflake(c) => None,
        _ => Some(input),
    }
}

/// One dispatch (`t`, `d`) → what it means, or `None` when it is not bridged.
pub fn parse_dispatch(event: &str, d: &Value, options: &ParseOptions) -> Option<Parsed> {
    match event {
        "MESSAGE_CREATE" => {
            let m: Message = serde_json::from_value(d.clone()).ok()?;
            let author = m.author.clone()?;
            if !is_snowflake(&m.id) || !is_snowflake(&author.id) || author.id == options.account {
                return None;
            }
            if !wanted(options, &m.channel_id, m.guild_id.as_deref()) {
                return None;
            }
            let (content, notice) = content_of(&m, d);
            if content.text.is_empty() && content.attachments.is_empty() {
                return None;
            }
            let reply_to = m
                .message_reference
                .as_ref()
                .filter(|r| r.kind == 0 && m.kind == 19)
                .and_then(|r| r.message_id.clone())
                .filter(|id| is_snowflake(id));
            Some(Parsed {
                conversation: conversation(options, &m.channel_id),
                sender_id: Some(author.id.clone()),
                sender: Some(author),
                timestamp_ms: timestamp(&m),
                dedup_key: format!("msg:{}:{}", m.channel_id, m.id),
                kind: ParsedKind::Message {
                    remote_id: m.id.clone(),
                    content,
                    reply_to,
                    notice,
                },
                group: m.guild_id.is_some(),
            })
        }
        "MESSAGE_UPDATE" => {
            let m: Message = serde_json::from_value(d.clone()).ok()?;
            // Updates without new text (an embed being unfurled) or without an author (we cannot
            // tell whose message it is) change nothing a customer wrote.
            let author = m.author.clone()?;
            m.content.as_ref()?;
            if !is_snowflake(&m.id) || !is_snowflake(&author.id) || author.id == options.account {
                return None;
            }
            if !wanted(options, &m.channel_id, m.guild_id.as_deref()) {
                return None;
            }
            let edited = m.edited_timestamp.clone()?;
            let (content, _) = content_of(&m, d);
            Some(Parsed {
                conversation: conversation(options, &m.channel_id),
                sender_id: Some(author.id.clone()),
                sender: Some(author),
                timestamp_ms: model::parse_timestamp(&edited).unwrap_or_else(|| timestamp(&m)),
                dedup_key: format!("edit:{}:{}:{edited}", m.channel_id, m.id),
                kind: ParsedKind::Edit {
                    remote_id: m.id.clone(),
                    content,
                },
                group: m.guild_id.is_some(),
            })
        }
        "MESSAGE_DELETE" => {
            let del: MessageDelete = serde_json::from_value(d.clone()).ok()?;
            if !is_snowflake(&del.id) || !wanted(options, &del.channel_id, del.guild_id.as_deref())
            {
                return None;
            }
            Some(Parsed {
                conversation: conversation(options, &del.channel_id),
                sender: None,
                sender_id: None,
                timestamp_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
                dedup_key: format!("del:{}:{}", del.channel_id, del.id),
                kind: ParsedKind::Delete { remote_id: del.id },
                group: del.guild_id.is_some(),
            })
        }
        "MESSAGE_REACTION_ADD" | "MESSAGE_REACTION_REMOVE" => {
            // <https://discord.com/developers/docs/events/gateway-events#message-reaction-add>
            let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            let (user, channel, message) = (
                text(d, "user_id")?,
                text(d, "channel_id")?,
                text(d, "message_id")?,
            );
            if user == options.account || !is_snowflake(&user) || !is_snowflake(&message) {
                return None; // our own reactions come back too
            }
            if !wanted(options, &channel, d.get("guild_id").and_then(Value::as_str)) {
                return None;
            }
            // A custom emoji (with an id) has no Unicode form; its name is what can be shown.
            let emoji = d.get("emoji")?;
            let name = text(emoji, "name").filter(|n| !n.is_empty())?;
            let emoji = match text(emoji, "id") {
                Some(_) => format!(":{name}:"),
                None => name,
            };
            let added = event == "MESSAGE_REACTION_ADD";
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            Some(Parsed {
                conversation: conversation(options, &channel),
                sender: None,
                dedup_key: format!(
                    "reaction:{channel}:{message}:{user}:{emoji}:{}:{now}",
                    if added { "add" } else { "remove" }
                ),
                sender_id: Some(user),
                timestamp_ms: now,
                kind: ParsedKind::Reaction {
                    remote_id: message,
                    emoji,
                    added,
                },
                group: d.get("guild_id").and_then(Value::as_str).is_some(),
            })
        }
        "INTERACTION_CREATE" => parse_interaction(d, options),
        "TYPING_START" => {
            let typing: TypingStart = serde_json::from_value(d.clone()).ok()?;
            if typing.user_id == options.account || !is_snowflake(&typing.user_id) {
                return None;
            }
            if !wanted(options, &typing.channel_id, typing.guild_id.as_deref()) {
                return None;
            }
            Some(Parsed {
                conversation: conversation(options, &typing.channel_id),
                sender: None,
                sender_id: Some(typing.user_id),
                timestamp_ms: typing.timestamp.saturating_mul(1000),
                dedup_key: String::new(),
                kind: ParsedKind::Typing,
                group: typing.guild_id.is_some(),
            })
        }
        _ => None,
    }
}

/// `INTERACTION_CREATE` (<https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object>):
/// only a button press (type 3, `data.component_type` 2) whose `custom_id` is a rating payload
/// is bridged; the bridge sends no other component, so anything else is not ours.
fn parse_interaction(d: &Value, options: &ParseOptions) -> Option<Parsed> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    if d.get("type").and_then(Value::as_u64) != Some(3) {
        return None;
    }
    let data = d.get("data")?;
    if data.get("component_type").and_then(Value::as_u64) != Some(2) {
        return None;
    }
    let payload = text(data, "custom_id")?;
    switchboard_kit::rating::parse_payload(&payload)?;
    let (id, token) = (text(d, "id")?, text(d, "token")?);
    let channel = text(d, "channel_id").or_else(|| d.get("channel").and_then(|c| text(c, "id")))?;
    let guild = text(d, "guild_id");
    if !is_snowflake(&id) || token.is_empty() || !wanted(options, &channel, guild.as_deref()) {
        return None;
    }
    // `user` in a DM, `member.user` in a guild.
    let user = d
        .get("user")
        .filter(|u| !u.is_null())
        .or_else(|| d.get("member").and_then(|m| m.get("user")))?;
    let user: User = serde_json::from_value(user.clone()).ok()?;
    if !is_snowflake(&user.id) || user.id == options.account || user.bot {
        return None;
    }
    let message = d.get("message").and_then(|m| {
        let id = text(m, "id").filter(|i| is_snowflake(i))?;
        Some((id, m.get("components").cloned().unwrap_or(Value::Null)))
    });
    Some(Parsed {
        conversation: conversation(options, &channel),
        sender_id: Some(user.id.clone()),
        sender: Some(user),
        timestamp_ms: model::snowflake_ms(&id).unwrap_or(0),
        dedup_key: format!("press:{channel}:{id}"),
        kind: ParsedKind::Choice {
            remote_id: id,
            payload,
            answer: Answer { token, message },
        },
        group: guild.is_some(),
    })
}

/// [`parse_dispatch`] on a raw gateway frame (`{"op":0,"t":…,"d":…}`), for the fuzzer.
pub fn parse_frame(frame: &[u8], options: &ParseOptions) -> Option<Parsed> {
    let payload: model::Payload = serde_json::from_slice(frame).ok()?;
    if payload.op != model::op::DISPATCH {
        return None;
    }
    parse_dispatch(payload.t.as_deref()?, &payload.d, options)
}

/// Why an event could not be stored yet.
#[derive(Debug, thiserror::Error)]
pub enum RealizeError {
    #[error("fetching an attachment: {0}")]
    Fetch(String),
    #[error(transparent)]
    Host(#[from] HostError),
}

/// What [`realize`] needs besides the parsed event.
pub struct Realizer<'a> {
    pub rest: &'a Rest,
    pub host: &'a Arc<dyn Host>,
    pub max_download: u64,
}

/// File names are the kit's (re-exported for the fuzz target).
pub use switchboard_kit::safe_file_name;

fn human_size(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

impl Realizer<'_> {
    async fn content(&self, parsed: ParsedContent) -> Result<Content, RealizeError> {
        let mut notes: Vec<String> = Vec::new();
        let mut attachments = Vec::new();
        for a in parsed.attachments {
            let name = safe_file_name(&a.filename, &format!("attachment-{}", a.id));
            let mut note = |line: String| notes.push(line);
            if a.size > self.max_download {
                note(format!(
                    "[{name}: {} — file too large to bridge]",
                    human_size(a.size)
                ));
                continue;
            }
            match self.rest.download(&a.url, self.max_download).await {
                Ok((bytes, served)) => {
                    let mime = a
                        .content_type
                        .clone()
                        .or(served)
                        .unwrap_or_else(|| "application/octet-stream".into());
                    let mime = mime
                        .split(';')
                        .next()
                        .unwrap_or("application/octet-stream")
                        .trim()
                        .to_owned();
                    let size = bytes.len() as u64;
                    let media = self.host.put_media(bytes, &mime, &name).await?;
                    attachments.push(CoreAttachment {
                        media,
                        name,
                        mime,
                        size,
                    });
                }
                Err(RestError::TooLarge(n)) => note(format!(
                    "[{name}: {} — file too large to bridge]",
                    human_size(n)
                )),
                Err(RestError::Api { status, .. }) if status.is_client_error() => note(format!(
                    "[{name}: Discord no longer serves this attachment ({status})]"
                )),
                Err(e) => return Err(RealizeError::Fetch(e.to_string())),
            }
        }
        let mut text = parsed.text;
        let mut html = parsed.html;
        for line in notes {
            if let Some(h) = html.as_mut() {
                h.push_str("<br>");
                h.push_str(&markdown::escape(&line));
            }
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&line);
        }
        Ok(Content {
            text,
            html,
            attachments,
        })
    }
}

/// Turn a parsed dispatch into the core's `Inbound` (typing excluded: it is not stored).
pub async fn realize(
    parsed: Parsed,
    sender: ContactProfile,
    r: &Realizer<'_>,
) -> Result<Inbound, RealizeError> {
    let group = parsed.group;
    let event = match parsed.kind {
        ParsedKind::Message {
            remote_id,
            content,
            reply_to,
            notice,
        } => {
            let content = r.content(content).await?;
            if notice {
                InboundEvent::Notice { remote_id, content }
            } else {
                InboundEvent::Message {
                    remote_id,
                    content,
                    reply_to,
                }
            }
        }
        ParsedKind::Edit { remote_id, content } => InboundEvent::Edit {
            remote_id,
            content: r.content(content).await?,
        },
        ParsedKind::Delete { remote_id } => InboundEvent::Delete { remote_id },
        ParsedKind::Reaction {
            remote_id,
            emoji,
            added,
        } => InboundEvent::Reaction {
            remote_id,
            key: added.then_some(emoji),
        },
        ParsedKind::Choice {
            remote_id, payload, ..
        } => InboundEvent::Choice { remote_id, payload },
        ParsedKind::Typing => return Err(RealizeError::Fetch("typing is not stored".into())),
    };
    Ok(Inbound {
        conversation: parsed.conversation,
        sender,
        timestamp_ms: parsed.timestamp_ms,
        dedup_key: parsed.dedup_key,
        event,
        addressed_to: None,
        // Discord names no channel in its events: the caller fills in the guild channel's name
        // (`GET /channels/{id}`), else the room is named after its first writer.
        group: group.then(Group::default),
    })
}

/// The ghost's profile for a Discord user (avatar filled in by the caller).
pub fn profile(user: &User) -> ContactProfile {
    ContactProfile {
        id: user.id.clone(),
        display_name: Some(user.display_name().to_owned()),
        email: None,
        phone: None,
        avatar: None::<MediaRef>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Option<Value> {
        let bytes = switchboard_kit::test_host::fixture("discord", name)?;
        Some(serde_json::from_slice(&bytes).expect("a JSON fixture"))
    }

    fn options() -> ParseOptions {
        ParseOptions {
            account: "1100000000000000001".into(),
            ..ParseOptions::default()
        }
    }

    /// Issue 14: a message with a field of an unexpected type is not dropped: it is kept and
    /// shown raw in its conversation.
    #[test]
    fn a_wrongly_typed_message_is_unreadable_not_dropped() {
        let d = json!({"id": "1200000000000000001", "channel_id": "1300000000000000001",
            "author": {"id": "1400000000000000001", "username": "ann"},
            "content": "hello", "type": "default", "timestamp": "2026-01-01T00:00:00Z"});
        assert!(parse_dispatch("MESSAGE_CREATE", &d, &options()).is_none());
        let u = unreadable_dispatch("MESSAGE_CREATE", &d, &options()).expect("kept");
        assert_eq!(
            u.conversation.map(|c| c.chat).as_deref(),
            Some("1300000000000000001")
        );
        assert!(u.raw.contains("hello"));
        let sender = u.sender.expect("the author");
        assert_eq!(
            (sender.id.as_str(), sender.display_name.as_deref()),
            ("1400000000000000001", Some("ann"))
        );
        let fine = json!({"id": "1200000000000000002", "channel_id": "1300000000000000001",
            "author": {"id": "1400000000000000001", "username": "ann"}, "content": "hi", "type": 0});
        assert!(unreadable_dispatch("MESSAGE_CREATE", &fine, &options()).is_none());
    }

    #[test]
    fn dm_fixtures_become_messages() {
        for name in [
            "gateway_message_create_dm_user_client_2023.json",
            "gateway_message_create_dm_2026_shape.json",
        ] {
            let Some(frame) = fixture(name) else { return };
            let parsed = parse_frame(frame.to_string().as_bytes(), &options()).expect(name);
            let d = &frame["d"];
            assert_eq!(parsed.conversation.chat, d["channel_id"].as_str().unwrap());
            assert_eq!(parsed.conversation.account, "1100000000000000001");
            assert_eq!(
                parsed.sender.as_ref().unwrap().id,
                d["author"]["id"].as_str().unwrap()
            );
            assert_eq!(
                parsed.dedup_key,
                format!(
                    "msg:{}:{}",
                    d["channel_id"].as_str().unwrap(),
                    d["id"].as_str().unwrap()
                )
            );
            let ParsedKind::Message {
                content,
                notice: false,
                reply_to: None,
                ..
            } = &parsed.kind
            else {
                panic!("{parsed:?}")
            };
            assert_eq!(content.text, d["content"].as_str().unwrap());
        }
        let frame = fixture("gateway_message_create_dm_2026_shape.json").unwrap();
        let parsed = parse_frame(frame.to_string().as_bytes(), &options()).unwrap();
        assert_eq!(parsed.sender.unwrap().display_name(), "AT");
        assert_eq!(
            parsed.timestamp_ms,
            model::parse_timestamp("2026-04-29T00:00:00.000000+00:00").unwrap()
        );
    }

    #[test]
    fn typing_fixture_and_own_messages() {
        if let Some(frame) = fixture("gateway_typing_start_dm_2023.json") {
            let parsed = parse_frame(frame.to_string().as_bytes(), &options()).unwrap();
            assert_eq!(parsed.kind, ParsedKind::Typing);
            assert_eq!(parsed.sender_id.as_deref(), Some("1026009799596462102"));
        }
        // The bot's own message (our reply echoed by the gateway) is not bridged back.
        if let Some(mut frame) = fixture("rest_create_message_response_dm_reconstruction.json") {
            frame["id"] = "1500000000000000301".into();
            assert!(parse_dispatch("MESSAGE_CREATE", &frame, &options()).is_none());
        }
        for name in [
            "gateway_ready_bot_reconstruction.json",
            "gateway_channel_create_dm_2023.json",
            "gateway_hello.json",
        ] {
            if let Some(frame) = fixture(name) {
                assert!(
                    parse_frame(frame.to_string().as_bytes(), &options()).is_none(),
                    "{name}"
                );
            }
        }
    }

    fn message(extra: Value) -> Value {
        let mut m = json!({
            "id": "1300000000000000001", "channel_id": "1200000000000000009", "type": 0,
            "content": "hi", "timestamp": "2026-05-01T10:00:00.000000+00:00",
            "author": {"id": "1400000000000000001", "username": "jane", "global_name": "Jane Doe", "avatar": null},
            "mentions": [], "attachments": [],
        });
        if let (Some(m), Value::Object(e)) = (m.as_object_mut(), extra) {
            m.extend(e);
        }
        m
    }

    #[test]
    fn reactions_of_customers_not_of_the_bot() {
        let d = serde_json::json!({
            "user_id": "1400000000000000001", "channel_id": "1400000000007000001",
            "message_id": "1500000000000000003", "emoji": {"id": null, "name": "❤️"},
        });
        let p = parse_dispatch("MESSAGE_REACTION_ADD", &d, &options()).unwrap();
        assert_eq!(
            p.kind,
            ParsedKind::Reaction {
                remote_id: "1500000000000000003".into(),
                emoji: "❤️".into(),
                added: true
            }
        );
        assert_eq!(p.sender_id.as_deref(), Some("1400000000000000001"));
        let p = parse_dispatch("MESSAGE_REACTION_REMOVE", &d, &options()).unwrap();
        assert!(matches!(p.kind, ParsedKind::Reaction { added: false, .. }));
        let mut custom = d.clone();
        custom["emoji"] = serde_json::json!({"id": "123", "name": "blobcat"});
        let p = parse_dispatch("MESSAGE_REACTION_ADD", &custom, &options()).unwrap();
        assert!(matches!(p.kind, ParsedKind::Reaction { ref emoji, .. } if emoji == ":blobcat:"));
        let mut own = d.clone();
        own["user_id"] = options().account.into();
        assert!(parse_dispatch("MESSAGE_REACTION_ADD", &own, &options()).is_none());
    }

    #[test]
    fn replies_guilds_edits_deletes() {
        let reply = message(
            json!({"type": 19, "message_reference": {"type": 0, "message_id": "1300000000000000000", "channel_id": "1200000000000000009"}}),
        );
        let parsed = parse_dispatch("MESSAGE_CREATE", &reply, &options()).unwrap();
        let ParsedKind::Message { reply_to, .. } = parsed.kind else {
            panic!()
        };
        assert_eq!(reply_to.as_deref(), Some("1300000000000000000"));

        let guild = message(json!({"guild_id": "1"}));
        assert!(parse_dispatch("MESSAGE_CREATE", &guild, &options()).is_none());
        let with_guilds = ParseOptions {
            guilds: true,
            ..options()
        };
        let parsed = parse_dispatch("MESSAGE_CREATE", &guild, &with_guilds).unwrap();
        // A group: the member speaks as themselves, their words without their name.
        assert!(parsed.group);
        let ParsedKind::Message { content, .. } = parsed.kind else {
            panic!()
        };
        assert_eq!(content.text, "hi");
        let only_other = ParseOptions {
            guilds: true,
            guild_channels: vec!["5".into()],
            ..options()
        };
        assert!(parse_dispatch("MESSAGE_CREATE", &guild, &only_other).is_none());

        let edit = message(
            json!({"content": "hi **there**", "edited_timestamp": "2026-05-01T10:01:00.000000+00:00"}),
        );
        let parsed = parse_dispatch("MESSAGE_UPDATE", &edit, &options()).unwrap();
        assert!(!parsed.group, "a DM is no group");
        assert!(parsed
            .dedup_key
            .starts_with("edit:1200000000000000009:1300000000000000001:"));
        let ParsedKind::Edit { content, .. } = parsed.kind else {
            panic!()
        };
        assert_eq!(content.html.as_deref(), Some("hi <b>there</b>"));
        // An embed unfurl: no content, no author.
        assert!(parse_dispatch(
            "MESSAGE_UPDATE",
            &json!({"id": "1", "channel_id": "2", "embeds": [{}]}),
            &options()
        )
        .is_none());

        let del = parse_dispatch(
            "MESSAGE_DELETE",
            &json!({"id": "1300000000000000001", "channel_id": "1200000000000000009"}),
            &options(),
        )
        .unwrap();
        assert_eq!(
            del.kind,
            ParsedKind::Delete {
                remote_id: "1300000000000000001".into()
            }
        );

        let system = message(json!({"type": 7, "content": ""}));
        let parsed = parse_dispatch("MESSAGE_CREATE", &system, &options()).unwrap();
        assert!(matches!(
            parsed.kind,
            ParsedKind::Message { notice: true, .. }
        ));

        let sticker = message(
            json!({"content": "", "sticker_items": [{"id": "1", "name": "wave", "format_type": 1}]}),
        );
        let ParsedKind::Message {
            content,
            notice: false,
            ..
        } = parse_dispatch("MESSAGE_CREATE", &sticker, &options())
            .unwrap()
            .kind
        else {
            panic!()
        };
        assert_eq!(content.text, "[sticker: wave]");
        let forward = message(
            json!({"content": "", "message_reference": {"type": 1, "message_id": "9", "channel_id": "8"},
            "message_snapshots": [{"message": {"content": "the original"}}]}),
        );
        let ParsedKind::Message {
            content,
            reply_to: None,
            ..
        } = parse_dispatch("MESSAGE_CREATE", &forward, &options())
            .unwrap()
            .kind
        else {
            panic!()
        };
        assert_eq!(content.text, "Forwarded message:\nthe original");
        let embeds_only = message(json!({"content": "", "embeds": [{"title": "x"}]}));
        assert!(matches!(
            parse_dispatch("MESSAGE_CREATE", &embeds_only, &options())
                .unwrap()
                .kind,
            ParsedKind::Message { notice: true, .. }
        ));
        let poll = message(json!({"content": "", "poll": {"question": {"text": "Which?"}}}));
        let ParsedKind::Message {
            content,
            notice: true,
            ..
        } = parse_dispatch("MESSAGE_CREATE", &poll, &options())
            .unwrap()
            .kind
        else {
            panic!()
        };
        assert!(content.text.contains("Which?"));

        let mention = message(
            json!({"content": "ask <@1500000000000000001>", "mentions": [{"id": "1500000000000000001", "username": "bob"}]}),
        );
        let ParsedKind::Message { content, .. } =
            parse_dispatch("MESSAGE_CREATE", &mention, &options())
                .unwrap()
                .kind
        else {
            panic!()
        };
        assert_eq!(content.text, "ask @bob");
    }

    /// A button press in a DM, as the interaction reference documents it.
    fn press(extra: Value) -> Value {
        let mut d = json!({
            "id": "1600000000000000001", "application_id": "1100000000000000001", "type": 3,
            "token": "aW50ZXJhY3Rpb246MTYwMDAwMDAwMDAwMDAwMDAwMTpzZWNyZXQ", "version": 1,
            "channel_id": "7000000000000000001", "channel": {"id": "7000000000000000001", "type": 1},
            "user": {"id": "1400000000000000001", "username": "jane_d", "global_name": "Jane Doe"},
            "data": {"custom_id": "sbr1:a1B2c3D4e5F6g7H8:4", "component_type": 2},
            "message": {"id": "1500000000000000009", "channel_id": "7000000000000000001", "type": 0,
                "author": {"id": "1100000000000000001", "username": "bot", "bot": true},
                "content": "How did we do?",
                "components": [{"type": 1, "components": [
                    {"type": 2, "style": 2, "label": "4 ⭐⭐⭐⭐", "custom_id": "sbr1:a1B2c3D4e5F6g7H8:4"}]}]},
            "app_permissions": "0", "locale": "en-US", "entitlements": [],
            "authorizing_integration_owners": {"0": "0"}, "context": 1,
        });
        if let (Some(d), Value::Object(e)) = (d.as_object_mut(), extra) {
            d.extend(e);
        }
        d
    }

    #[test]
    fn button_presses_are_choices() {
        let p = parse_dispatch("INTERACTION_CREATE", &press(json!({})), &options()).unwrap();
        assert_eq!(p.conversation.chat, "7000000000000000001");
        assert_eq!(p.dedup_key, "press:7000000000000000001:1600000000000000001");
        assert_eq!(
            p.sender.as_ref().map(|u| u.id.as_str()),
            Some("1400000000000000001")
        );
        let ParsedKind::Choice {
            remote_id,
            payload,
            answer,
        } = p.kind
        else {
            panic!()
        };
        assert_eq!(remote_id, "1600000000000000001");
        assert_eq!(payload, "sbr1:a1B2c3D4e5F6g7H8:4");
        assert_eq!(
            answer.message.as_ref().map(|m| m.0.as_str()),
            Some("1500000000000000009")
        );
        assert!(
            !format!("{answer:?}").contains("aW50"),
            "the token is not logged"
        );
        // Not ours, not a button, not a press, a guild the bridge does not bridge: nothing.
        for other in [
            json!({"data": {"custom_id": "like", "component_type": 2}}),
            json!({"data": {"custom_id": "sbr1:a1B2c3D4e5F6g7H8:4", "component_type": 3}}),
            json!({"type": 2}),
            json!({"guild_id": "1200000000000000001", "user": null,
                   "member": {"user": {"id": "1400000000000000001", "username": "jane_d"}}}),
            json!({"token": ""}),
        ] {
            assert!(
                parse_dispatch("INTERACTION_CREATE", &press(other.clone()), &options()).is_none(),
                "{other}"
            );
        }
        // In a bridged guild the presser is `member.user`.
        let guilds = ParseOptions {
            guilds: true,
            ..options()
        };
        let p = parse_dispatch(
            "INTERACTION_CREATE",
            &press(
                json!({"guild_id": "1200000000000000001", "user": null, "context": 0,
                          "member": {"user": {"id": "1400000000000000002", "username": "max"}}}),
            ),
            &guilds,
        )
        .unwrap();
        assert!(p.group);
        assert_eq!(p.sender.map(|u| u.id), Some("1400000000000000002".into()));
    }

    #[test]
    fn file_names_are_made_safe() {
        assert_eq!(safe_file_name("../../etc/passwd", "x"), "passwd");
        assert_eq!(safe_file_name(". .bashrc", "x"), "bashrc");
        assert_eq!(safe_file_name("", "x"), "x");
        // The kit's stricter rule: reserved Windows characters, trailing dots, device names,
        // at most 255 bytes with the extension kept.
        assert_eq!(safe_file_name("a:b?.png. ", "x"), "a_b_.png");
        assert_eq!(safe_file_name("aux.txt", "x"), "_aux.txt");
        let long = safe_file_name(&format!("{}.pdf", "ж".repeat(150)), "x");
        assert!(long.len() <= 255 && long.ends_with(".pdf"), "{long}");
        // HTML escaping is the kit's: quotes of both kinds are escaped.
        assert_eq!(markdown::escape("<'\"&>"), "&lt;&#39;&quot;&amp;&gt;");
    }
}
