//! Telegram updates → the core's [`Inbound`] events.
//!
//! Two steps, so the part that reads outside input is pure and can be fuzzed on its own:
//!
//! 1. [`parse_update`] (and [`parse_update_json`] for raw bytes) looks at one update and says
//!    what it means: which conversation, who, when, which text/HTML, which file to fetch. It
//!    does no I/O. Updates we do not bridge (channel posts, service messages, groups when
//!    `groups: false`) give `None` and are simply acknowledged.
//! 2. [`realize`] does the I/O: fetch the file (`getFile` + download) into the media store,
//!    look up the sender's profile photo, and build the [`Inbound`]. A file Telegram will never
//!    hand to a bot (over the 20 MB getFile limit) becomes a line of text saying so; a transient
//!    failure is an error, so the caller does *not* acknowledge the update and it comes again.
//!
//! Ids: a message's remote id is its Telegram `message_id` (unique within a chat, and a
//! conversation is a chat). Dedup keys add the chat and, for edits, the edit time, so an edit
//! redelivered is stored once and a second edit is a new event.

use std::sync::Arc;

use bytes::Bytes;
use switchboard_channel::{
    Attachment, ContactProfile, Content, ConversationKey, Group, Host, HostError, Inbound,
    InboundEvent, Unreadable,
};
use teloxide::types::{Chat, Message, MessageEntity, MessageKind, Update, UpdateKind, User};
use teloxide::Bot;

use crate::client::{self, FetchError};
use crate::format;

/// What the parser needs to know about the deployment.
#[derive(Clone, Debug)]
pub struct ParseOptions {
    /// The `ConversationKey::account` (the bot's id).
    pub account: String,
    /// Bridge group chats.
    pub groups: bool,
    /// Also start group messages with the sender's name (each member has a ghost of their own
    /// anyway; for operators' clients that do not show senders).
    pub group_sender_prefix: bool,
}

/// A file the message carries, still on Telegram's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    pub file_id: String,
    pub name: String,
    pub mime: String,
    /// What Telegram says the size is, when it says.
    pub size: Option<u64>,
}

/// What an update means, before any I/O.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub conversation: ConversationKey,
    pub sender: ContactProfile,
    /// The sender's Telegram user id (for the profile photo).
    pub user_id: Option<u64>,
    pub timestamp_ms: i64,
    pub dedup_key: String,
    pub kind: ParsedKind,
    /// Set for a group chat: each member speaks as themselves in the group's one conversation.
    pub group: Option<Group>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ParsedKind {
    Message {
        remote_id: String,
        text: String,
        html: Option<String>,
        file: Option<RemoteFile>,
        reply_to: Option<String>,
    },
    Edit {
        remote_id: String,
        text: String,
        html: Option<String>,
    },
    /// A message of a kind the bridge cannot show, named for the operators.
    Notice { remote_id: String, text: String },
    /// The customer's reaction to a message (`key: None`: taken back).
    Reaction {
        remote_id: String,
        key: Option<String>,
    },
    /// The customer pressed an inline keyboard button (a `callback_query`): `remote_id` is the
    /// message it is on, `payload` its `callback_data`; `callback_id` is answered
    /// (`answerCallbackQuery`) once the press is stored.
    Choice {
        remote_id: String,
        payload: String,
        callback_id: String,
    },
}

/// What one raw update means.
#[derive(Clone, Debug, PartialEq)]
pub enum Read {
    /// Bridge this.
    Parsed(Parsed),
    /// Acknowledge and forget it: a kind or chat we do not bridge, by design or configuration.
    Skip(&'static str),
    /// Keep and show it raw ([`Host::unreadable`]): nothing of it can be placed otherwise.
    Unreadable(Unreadable),
}

/// The wall clock in milliseconds (when an unreadable update was received).
pub(crate) fn now_ms() -> i64 {
    switchboard_kit::now_ms()
}

/// Read one raw update (a webhook body, one element of `getUpdates`), as leniently as Telegram
/// may send it: teloxide reads it first (after [`crate::lenient::repair`]); what teloxide
/// refuses is read field by field ([`crate::lenient::read_message`]); only input that names
/// no update or no chat is [`Read::Unreadable`] without a conversation. Pure, fuzzed.
pub fn read_update(body: &[u8], options: &ParseOptions) -> Read {
    let now_ms = now_ms();
    let unreadable = |reason: String| {
        Read::Unreadable(Unreadable::new(
            Unreadable::digest_key(body),
            "a Telegram update",
            reason,
            body,
            now_ms,
        ))
    };
    let mut value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return unreadable(format!("it is not JSON: {e}")),
    };
    let Some(fields) = value.as_object_mut() else {
        return unreadable("it is not a JSON object".into());
    };
    let Some(update_id) =
        crate::lenient::int(fields.get("update_id")).and_then(|i| u64::try_from(i).ok())
    else {
        return unreadable("it has no update_id".into());
    };
    if let Some(reaction) = fields.get("message_reaction") {
        return crate::lenient::read_reaction(update_id, reaction, options, body);
    }
    if let Some(query) = fields.get("callback_query") {
        return crate::lenient::read_callback_query(update_id, query, options, body);
    }
    let Some(kind) = BRIDGED_KINDS.into_iter().find(|k| fields.contains_key(*k)) else {
        return Read::Skip("an update kind we do not bridge");
    };
    fields.retain(|key, _| key == "update_id" || key == kind);
    let edited = kind.starts_with("edited_");
    let Some(message) = fields.get_mut(kind).filter(|m| m.is_object()) else {
        return unreadable(format!("its {kind} is not an object"));
    };
    crate::lenient::repair(message);
    let strict = serde_json::to_vec(&value)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Update>(&bytes).ok())
        .filter(|u| !matches!(u.kind, UpdateKind::Error(_)));
    let Some(update) = strict else {
        return crate::lenient::read_message(update_id, &value[kind], options, edited, body);
    };
    if let Some(parsed) = parse_update(&update, options) {
        return Read::Parsed(parsed);
    }
    // Not bridged as read. A service message (a join, a pin) is meant to be skipped; a message
    // teloxide knows no kind for (`Empty`) or a customer's message of a kind without a
    // rendering here (a game, an invoice) is read field by field, which names what it holds.
    match &update.kind {
        UpdateKind::Message(m)
        | UpdateKind::EditedMessage(m)
        | UpdateKind::BusinessMessage(m)
        | UpdateKind::EditedBusinessMessage(m)
            if matches!(m.kind, MessageKind::Empty {} | MessageKind::Common(_)) =>
        {
            crate::lenient::read_message(update_id, &value[kind], options, edited, body)
        }
        _ => Read::Skip("a service message or a chat we do not bridge"),
    }
}

/// Parse raw update JSON (a webhook body, one element of `getUpdates`). `Err` for JSON that is
/// not an update; `Ok(None)` for an update we do not bridge.
pub fn parse_update_json(
    body: &[u8],
    options: &ParseOptions,
) -> Result<Option<Parsed>, serde_json::Error> {
    decode_update(body)?;
    Ok(match read_update(body, options) {
        Read::Parsed(parsed) => Some(parsed),
        Read::Skip(_) | Read::Unreadable(_) => None,
    })
}

/// The update kinds [`parse_update`] bridges.
const BRIDGED_KINDS: [&str; 4] = [
    "message",
    "edited_message",
    "business_message",
    "edited_business_message",
];

/// Decode raw update JSON; `Ok(None)` for an update of a kind we never bridge. Only the update
/// id and the bridged kind are handed to teloxide's decoder: it panics on some malformed kinds
/// we do not even use (teloxide-core 0.13 unwraps the actor of a `message_reaction` that has
/// neither `user` nor `actor_chat`), and a panic in the webhook would drop the connection, so
/// Telegram would redeliver the same update forever. Found by the `telegram_update` fuzz target.
pub fn decode_update(body: &[u8]) -> Result<Option<Update>, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(body)?;
    if let Some(fields) = value.as_object_mut() {
        let Some(kind) = BRIDGED_KINDS.into_iter().find(|k| fields.contains_key(*k)) else {
            // Still an error when it is not an update at all.
            return match fields.get("update_id").map(serde_json::Value::is_u64) {
                Some(true) => Ok(None),
                _ => Err(serde::de::Error::missing_field("update_id")),
            };
        };
        fields.retain(|key, _| key == "update_id" || key == kind);
    }
    // From bytes, not `from_value`: teloxide decodes some kinds through borrowed raw JSON.
    serde_json::from_slice(&serde_json::to_vec(&value)?).map(Some)
}

/// What one update means for the core, if anything.
pub fn parse_update(update: &Update, options: &ParseOptions) -> Option<Parsed> {
    match &update.kind {
        UpdateKind::Message(m) | UpdateKind::BusinessMessage(m) => parse_message(m, options, false),
        UpdateKind::EditedMessage(m) | UpdateKind::EditedBusinessMessage(m) => {
            parse_message(m, options, true)
        }
        _ => None,
    }
}

/// The name a Telegram user goes by: "First Last", else "@username", else the id.
pub fn display_name(user: &User) -> String {
    let full = user.full_name();
    if !full.trim().is_empty() {
        return full.trim().to_owned();
    }
    match &user.username {
        Some(u) if !u.is_empty() => format!("@{u}"),
        _ => user.id.0.to_string(),
    }
}

fn profile(user: &User) -> ContactProfile {
    ContactProfile {
        id: user.id.0.to_string(),
        display_name: Some(display_name(user)),
        ..ContactProfile::default()
    }
}

/// Whether the chat is one we bridge.
fn bridged(chat: &Chat, options: &ParseOptions) -> bool {
    chat.is_private() || (options.groups && (chat.is_group() || chat.is_supergroup()))
}

fn parse_message(m: &Message, options: &ParseOptions, edited: bool) -> Option<Parsed> {
    if !bridged(&m.chat, options) {
        return None;
    }
    // Messages without a user (anonymous group admins, channels posting into a group) have a
    // sender chat; they are spoken for by the group itself.
    let sender = match m.from.as_ref() {
        Some(user) if !user.is_bot || m.chat.is_private() => profile(user),
        Some(_) => return None, // other bots in a group, our own echoes
        None => {
            let chat = m.sender_chat.as_ref().unwrap_or(&m.chat);
            ContactProfile {
                id: chat.id.0.to_string(),
                display_name: Some(chat.title().unwrap_or("Anonymous").to_owned()),
                ..ContactProfile::default()
            }
        }
    };
    let user_id = m.from.as_ref().map(|u| u.id.0);
    let chat_id = m.chat.id.0.to_string();
    let conversation = ConversationKey {
        account: options.account.clone(),
        chat: chat_id.clone(),
    };
    let remote_id = m.id.0.to_string();
    let group = (!m.chat.is_private()).then(|| Group {
        title: m.chat.title().map(str::to_owned),
        ..Group::default()
    });
    let (mut text, mut html, file) = content_of(m)?;
    if !m.chat.is_private() && options.group_sender_prefix {
        let name = sender.display_name.clone().unwrap_or_default();
        let body_html = html
            .take()
            .unwrap_or_else(|| format::escape(&text).replace('\n', "<br>"));
        html = Some(format!("<b>{}</b>: {body_html}", format::escape(&name)));
        text = format!("{name}: {text}");
    }
    if edited {
        let at = m.edit_date().copied().unwrap_or(m.date);
        return Some(Parsed {
            conversation,
            sender,
            user_id,
            timestamp_ms: at.timestamp_millis(),
            dedup_key: format!("edit:{chat_id}:{remote_id}:{}", at.timestamp()),
            kind: ParsedKind::Edit {
                remote_id,
                text,
                html,
            },
            group,
        });
    }
    let reply_to = m
        .reply_to_message()
        .filter(|r| r.chat.id == m.chat.id)
        .map(|r| r.id.0.to_string());
    Some(Parsed {
        conversation,
        sender,
        user_id,
        timestamp_ms: m.date.timestamp_millis(),
        dedup_key: format!("msg:{chat_id}:{remote_id}"),
        kind: ParsedKind::Message {
            remote_id,
            text,
            html,
            file,
            reply_to,
        },
        group,
    })
}

/// A file name a customer chose, made safe to show and store (the kit's one rule).
pub fn safe_file_name(name: &str) -> String {
    switchboard_kit::safe_file_name(name, "file")
}

fn file(meta: &teloxide::types::FileMeta, name: String, mime: String) -> RemoteFile {
    // teloxide fills a missing file_size with u32::MAX.
    let size = (meta.size != u32::MAX).then_some(u64::from(meta.size));
    RemoteFile {
        file_id: meta.id.0.clone(),
        name: safe_file_name(&name),
        mime,
        size,
    }
}

fn mime_or<M: AsRef<str>>(m: Option<&M>, default: &str) -> String {
    m.map(|m| {
        m.as_ref()
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
    .filter(|m| m.contains('/'))
    .unwrap_or_else(|| default.to_owned())
}

/// The text and file of a message. `None` for service messages (joins, pins, title changes…).
fn content_of(m: &Message) -> Option<(String, Option<String>, Option<RemoteFile>)> {
    let rendered = |text: &str, entities: Option<&[MessageEntity]>| {
        (
            text.to_owned(),
            entities.and_then(|e| format::entities_to_html(text, e)),
        )
    };
    if let Some(text) = m.text() {
        let (t, h) = rendered(text, m.entities());
        return Some((t, h, None));
    }
    let (caption, caption_html) = match m.caption() {
        Some(c) => rendered(c, m.caption_entities()),
        None => (String::new(), None),
    };
    let unique = |meta: &teloxide::types::FileMeta| meta.unique_id.0.clone();
    let with_file = |f: RemoteFile| Some((caption.clone(), caption_html.clone(), Some(f)));
    if let Some(sizes) = m.photo() {
        // The largest size is the last; pick the biggest the server lists.
        let best = sizes
            .iter()
            .max_by_key(|p| u64::from(p.width) * u64::from(p.height))?;
        return with_file(file(
            &best.file,
            format!("photo_{}.jpg", unique(&best.file)),
            "image/jpeg".into(),
        ));
    }
    if let Some(v) = m.voice() {
        let mime = mime_or(v.mime_type.as_ref(), "audio/ogg");
        return with_file(file(
            &v.file,
            format!("voice_{}.ogg", unique(&v.file)),
            mime,
        ));
    }
    if let Some(v) = m.video_note() {
        return with_file(file(
            &v.file,
            format!("video_note_{}.mp4", unique(&v.file)),
            "video/mp4".into(),
        ));
    }
    // Files the customer may have named (else `<kind>_<unique id><extension>`), of the mime
    // type Telegram gives, else the one of the extension. Looked for in this order.
    let kinds = [
        m.video()
            .map(|v| (&v.file, &v.file_name, &v.mime_type, "video", ".mp4")),
        m.animation()
            .map(|a| (&a.file, &a.file_name, &a.mime_type, "animation", ".mp4")),
        m.audio()
            .map(|a| (&a.file, &a.file_name, &a.mime_type, "audio", ".mp3")),
        m.document()
            .map(|d| (&d.file, &d.file_name, &d.mime_type, "document", "")),
    ];
    if let Some((meta, name, mime, kind, extension)) = kinds.into_iter().flatten().next() {
        let name = name
            .clone()
            .unwrap_or_else(|| format!("{kind}_{}{extension}", unique(meta)));
        let usual = switchboard_kit::mime::mime_for_name_or_binary(extension);
        return with_file(file(meta, name, mime_or(mime.as_ref(), usual)));
    }
    if let Some(s) = m.sticker() {
        let emoji = s.emoji.clone().unwrap_or_default();
        // Static stickers are WebP images. Animated (Lottie .tgs) and video (.webm) stickers
        // are not images: their thumbnail is, when there is one.
        let image = if s.is_static() {
            Some(file(
                &s.file,
                format!("sticker_{}.webp", unique(&s.file)),
                "image/webp".into(),
            ))
        } else {
            s.thumbnail.as_ref().map(|t| {
                file(
                    &t.file,
                    format!("sticker_{}.webp", unique(&t.file)),
                    "image/webp".into(),
                )
            })
        };
        return match image {
            Some(f) => Some((String::new(), None, Some(f))),
            None => Some((format!("[sticker {emoji}]"), None, None)),
        };
    }
    if let Some(v) = m.venue() {
        let (lat, lon) = (v.location.latitude, v.location.longitude);
        let text = format!("📍 {}, {}\n{}", v.title, v.address, map_link(lat, lon));
        return Some((text, None, None));
    }
    if let Some(l) = m.location() {
        let text = format!("📍 Location: {}", map_link(l.latitude, l.longitude));
        return Some((text, None, None));
    }
    if let Some(c) = m.contact() {
        let name = match &c.last_name {
            Some(last) if !last.is_empty() => format!("{} {last}", c.first_name),
            _ => c.first_name.clone(),
        };
        return Some((
            format!("👤 Contact: {name}, {}", c.phone_number),
            None,
            None,
        ));
    }
    if let Some(d) = m.dice() {
        return Some((format!("[dice: {:?} {}]", d.emoji, d.value), None, None));
    }
    if let Some(p) = m.poll() {
        return Some((format!("[poll: {}]", p.question), None, None));
    }
    if m.story().is_some() {
        return Some((
            "[a story was shared; open Telegram to see it]".into(),
            None,
            None,
        ));
    }
    None
}

/// A geo URI and a map link for a point.
fn map_link(lat: f64, lon: f64) -> String {
    format!("geo:{lat:.6},{lon:.6} https://www.openstreetmap.org/?mlat={lat:.6}&mlon={lon:.6}#map=16/{lat:.6}/{lon:.6}")
}

/// Why an update could not be handed to the core yet. The caller does not acknowledge it.
#[derive(Debug, thiserror::Error)]
pub enum RealizeError {
    #[error("fetching a file from Telegram: {0}")]
    Fetch(String),
    #[error(transparent)]
    Host(#[from] HostError),
}

/// Human file size.
pub fn human_size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else if bytes >= 1024 {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} bytes")
    }
}

fn append_line(text: &mut String, html: &mut Option<String>, line: &str) {
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(line);
    if let Some(h) = html {
        h.push_str("<br>");
        h.push_str(&format::escape(line));
    }
}

/// Do the I/O a parsed update needs and build the [`Inbound`].
pub async fn realize(
    parsed: Parsed,
    bot: &Bot,
    host: &Arc<dyn Host>,
    max_download: u64,
    avatar: Option<switchboard_channel::MediaRef>,
) -> Result<Inbound, RealizeError> {
    let mut sender = parsed.sender;
    sender.avatar = avatar;
    let event = match parsed.kind {
        ParsedKind::Reaction { remote_id, key } => InboundEvent::Reaction { remote_id, key },
        ParsedKind::Choice {
            remote_id, payload, ..
        } => InboundEvent::Choice { remote_id, payload },
        ParsedKind::Notice { remote_id, text } => InboundEvent::Notice {
            remote_id,
            content: Content {
                text,
                html: None,
                attachments: Vec::new(),
            },
        },
        ParsedKind::Edit {
            remote_id,
            text,
            html,
        } => InboundEvent::Edit {
            remote_id,
            content: Content {
                text,
                html,
                attachments: Vec::new(),
            },
        },
        ParsedKind::Message {
            remote_id,
            mut text,
            mut html,
            file,
            reply_to,
        } => {
            let mut attachments = Vec::new();
            if let Some(f) = file {
                match fetch(bot, host, &f, max_download).await? {
                    Some(attachment) => attachments.push(attachment),
                    None => {
                        let size = f
                            .size
                            .map(human_size)
                            .unwrap_or_else(|| "size unknown".into());
                        append_line(
                            &mut text,
                            &mut html,
                            &format!("[file too large for the Bot API: {}, {size}]", f.name),
                        );
                    }
                }
            }
            InboundEvent::Message {
                remote_id,
                content: Content {
                    text,
                    html,
                    attachments,
                },
                reply_to,
            }
        }
    };
    Ok(Inbound {
        conversation: parsed.conversation,
        sender,
        timestamp_ms: parsed.timestamp_ms,
        dedup_key: parsed.dedup_key,
        event,
        addressed_to: None,
        group: parsed.group,
    })
}

/// Fetch a file into the media store. `Ok(None)` when Telegram will never give it to a bot.
async fn fetch(
    bot: &Bot,
    host: &Arc<dyn Host>,
    f: &RemoteFile,
    max: u64,
) -> Result<Option<Attachment>, RealizeError> {
    if f.size.is_some_and(|s| s > max) {
        return Ok(None);
    }
    let bytes = match client::fetch_file(bot, &f.file_id, max).await {
        Ok(b) => b,
        Err(FetchError::Refused(reason)) => {
            tracing::info!(file = %f.name, %reason, "telegram: file not fetched");
            return Ok(None);
        }
        Err(FetchError::Transient(e)) => return Err(RealizeError::Fetch(e)),
    };
    let size = bytes.len() as u64;
    let media = host.put_media(Bytes::from(bytes), &f.mime, &f.name).await?;
    Ok(Some(Attachment {
        media,
        name: f.name.clone(),
        mime: f.mime.clone(),
        size,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ParseOptions {
        ParseOptions {
            account: "42".into(),
            groups: true,
            group_sender_prefix: true,
        }
    }

    fn fixture(name: &str) -> Option<Vec<u8>> {
        switchboard_kit::test_host::fixture("telegram", name)
    }

    /// A bare message fixture wrapped into an update.
    fn as_update(message: &[u8], id: u32) -> Vec<u8> {
        let m: serde_json::Value = serde_json::from_slice(message).unwrap();
        serde_json::to_vec(&serde_json::json!({"update_id": id, "message": m})).unwrap()
    }

    #[test]
    fn kinds_we_do_not_bridge_are_not_decoded() {
        // teloxide-core 0.13 panics decoding this reaction (no `user`, no `actor_chat`); it is
        // read field by field instead, spoken for by the group itself.
        let reaction = br#"{"update_id": 1, "message_reaction": {"chat": {"id": -1, "title": "T", "type": "supergroup"},
            "message_id": 35, "date": 1721306082, "old_reaction": [], "new_reaction": []}}"#;
        let parsed = parse_update_json(reaction, &options()).unwrap();
        assert!(
            matches!(&parsed, Some(p) if p.sender.id == "-1" && matches!(p.kind, ParsedKind::Reaction { key: None, .. })),
            "{parsed:?}"
        );
        assert!(decode_update(br#"{"update_id": 2, "poll": 5}"#)
            .unwrap()
            .is_none());
        assert!(decode_update(b"{}").is_err());
        assert!(decode_update(b"[]").is_err());
    }

    #[test]
    fn private_text() {
        let Some(body) = fixture("update_text.json") else {
            return;
        };
        let p = parse_update_json(&body, &options()).unwrap().unwrap();
        assert_eq!(
            p.conversation,
            ConversationKey {
                account: "42".into(),
                chat: "218485655".into()
            }
        );
        assert_eq!(p.sender.id, "218485655");
        assert_eq!(p.sender.display_name.as_deref(), Some("Waffle"));
        assert_eq!(p.dedup_key, "msg:218485655:6557");
        assert_eq!(p.timestamp_ms, 1569518342000);
        match p.kind {
            ParsedKind::Message {
                remote_id,
                text,
                html,
                file,
                reply_to,
            } => {
                assert_eq!((remote_id.as_str(), text.as_str()), ("6557", "hello there"));
                assert!(html.is_none() && file.is_none() && reply_to.is_none());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn group_photo_with_prefix() {
        let Some(body) = fixture("update_photo.json") else {
            return;
        };
        let p = parse_update_json(&body, &options()).unwrap().unwrap();
        assert_eq!(p.conversation.chat, "-1003986727769");
        let ParsedKind::Message { text, file, .. } = p.kind else {
            panic!()
        };
        assert_eq!(text, "Mark: OK - some mages");
        let f = file.unwrap();
        assert_eq!(f.mime, "image/jpeg");
        assert_eq!(f.size, Some(151590), "the largest size is chosen");
        let no_groups = ParseOptions {
            groups: false,
            ..options()
        };
        assert!(parse_update_json(&body, &no_groups).unwrap().is_none());
    }

    #[test]
    fn voice_sticker_and_edit() {
        if let Some(body) = fixture("update_voice.json") {
            let p = parse_update_json(&body, &options()).unwrap().unwrap();
            let ParsedKind::Message { file, .. } = p.kind else {
                panic!()
            };
            let f = file.unwrap();
            assert_eq!((f.mime.as_str(), f.size), ("audio/ogg", Some(94966)));
        }
        if let Some(body) = fixture("message_sticker.json") {
            let p = parse_update_json(&as_update(&body, 1), &options())
                .unwrap()
                .unwrap();
            assert_eq!(p.sender.display_name.as_deref(), Some("Андрей Власов"));
            let ParsedKind::Message { file, .. } = p.kind else {
                panic!()
            };
            // An animated sticker: its thumbnail is the image.
            assert_eq!(file.unwrap().mime, "image/webp");
        }
        if let Some(body) = fixture("update_edited.json") {
            let p = parse_update_json(&body, &options()).unwrap().unwrap();
            assert_eq!(p.dedup_key, "edit:714862471:121:1709661075");
            assert!(
                matches!(p.kind, ParsedKind::Edit { ref remote_id, ref text, .. } if remote_id == "121" && text == "/start")
            );
        }
    }

    #[test]
    fn locations_and_contacts_become_text() {
        let update = serde_json::json!({"update_id": 5, "message": {
            "message_id": 7, "date": 1700000000,
            "from": {"id": 9, "is_bot": false, "first_name": "Ann", "username": "ann"},
            "chat": {"id": 9, "type": "private", "first_name": "Ann"},
            "location": {"latitude": 59.9139, "longitude": 10.7522}}});
        let p = parse_update_json(&serde_json::to_vec(&update).unwrap(), &options())
            .unwrap()
            .unwrap();
        let ParsedKind::Message { text, .. } = p.kind else {
            panic!()
        };
        assert!(
            text.contains("geo:59.913900,10.752200") && text.contains("openstreetmap"),
            "{text}"
        );
        let update = serde_json::json!({"update_id": 6, "message": {
            "message_id": 8, "date": 1700000000,
            "from": {"id": 9, "is_bot": false, "first_name": "", "username": "ann"},
            "chat": {"id": 9, "type": "private", "first_name": "Ann"},
            "contact": {"phone_number": "+4712345678", "first_name": "Bo", "last_name": "Ek"}}});
        let p = parse_update_json(&serde_json::to_vec(&update).unwrap(), &options())
            .unwrap()
            .unwrap();
        assert_eq!(
            p.sender.display_name.as_deref(),
            Some("@ann"),
            "falls back to the username"
        );
        let ParsedKind::Message { text, .. } = p.kind else {
            panic!()
        };
        assert_eq!(text, "👤 Contact: Bo Ek, +4712345678");
    }

    #[test]
    fn every_fixture_parses_or_is_skipped_without_panic() {
        let Some(Ok(dir)) =
            switchboard_kit::test_host::fixtures_dir("telegram").map(std::fs::read_dir)
        else {
            return;
        };
        for entry in dir.flatten() {
            let Ok(body) = std::fs::read(entry.path()) else {
                continue;
            };
            let _ = parse_update_json(&body, &options());
            let _ = parse_update_json(&as_update_or_same(&body), &options());
        }
    }

    fn as_update_or_same(body: &[u8]) -> Vec<u8> {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) if v.get("message_id").is_some() => {
                serde_json::to_vec(&serde_json::json!({"update_id": 1, "message": v})).unwrap()
            }
            _ => body.to_vec(),
        }
    }

    #[test]
    fn reactions_are_read_field_by_field() {
        let chat = serde_json::json!({"id": 42, "type": "private", "first_name": "Jane"});
        let user = serde_json::json!({"id": 42, "is_bot": false, "first_name": "Jane"});
        let r = read(serde_json::json!({"update_id": 1, "message_reaction": {
            "chat": chat, "message_id": 7, "user": user, "date": 1700000000,
            "old_reaction": [], "new_reaction": [
                {"type": "custom_emoji", "custom_emoji_id": "5"}, {"type": "emoji", "emoji": "🔥"}
            ],
        }}));
        let Read::Parsed(p) = r else { panic!("{r:?}") };
        assert_eq!(
            p.kind,
            ParsedKind::Reaction {
                remote_id: "7".into(),
                key: Some("🔥".into())
            }
        );
        assert_eq!(p.sender.id, "42");
        assert_eq!(p.timestamp_ms, 1_700_000_000_000);
        assert!(p.dedup_key.starts_with("reaction:42:7:42:"));
        // Only custom or paid reactions: nothing Matrix can show, so none.
        let r = read(serde_json::json!({"update_id": 2, "message_reaction": {
            "chat": chat, "message_id": "7", "actor_chat": {"id": -100, "title": "Shop"},
            "date": 1, "new_reaction": [{"type": "paid"}],
        }}));
        let Read::Parsed(p) = r else { panic!("{r:?}") };
        assert!(matches!(p.kind, ParsedKind::Reaction { key: None, .. }));
        assert_eq!(p.sender.display_name.as_deref(), Some("Shop"));
        // A bot's reaction is skipped; one naming no message is kept raw.
        let bot = serde_json::json!({"id": 9, "is_bot": true, "first_name": "B"});
        assert!(matches!(
            read(serde_json::json!({"update_id": 3, "message_reaction": {
                "chat": chat, "message_id": 7, "user": bot, "date": 1, "new_reaction": [],
            }})),
            Read::Skip(_)
        ));
        assert!(matches!(
            read(serde_json::json!({"update_id": 4, "message_reaction": {"chat": chat}})),
            Read::Unreadable(_)
        ));
    }

    fn read(update: serde_json::Value) -> Read {
        read_update(&serde_json::to_vec(&update).unwrap(), &options())
    }

    fn parsed_message(r: Read) -> (Parsed, String, Option<String>) {
        let Read::Parsed(p) = r else {
            panic!("not parsed: {r:?}")
        };
        match p.kind.clone() {
            ParsedKind::Message { text, html, .. } => (p, text, html),
            other => panic!("{other:?}"),
        }
    }

    /// An entity type teloxide does not know is left out of the formatting; the text, the
    /// known entities and the message itself come through (strictly read, so files too).
    #[test]
    fn an_unknown_entity_keeps_the_message_and_its_other_formatting() {
        let (p, text, html) = parsed_message(read(serde_json::json!({"update_id": 9, "message": {
            "message_id": 7, "date": 1700000000,
            "from": {"id": 9, "is_bot": false, "first_name": "Ann"},
            "chat": {"id": 9, "type": "private", "first_name": "Ann"},
            "text": "see my new thing here",
            "entities": [{"type": "shiny_new_entity", "offset": 0, "length": 3},
                         {"type": "bold", "offset": "4", "length": 2}]}})));
        assert_eq!(text, "see my new thing here");
        assert_eq!(html.as_deref(), Some("see <b>my</b> new thing here"));
        assert_eq!(p.dedup_key, "msg:9:7");
    }

    /// A chat type Telegram added later: kept, and the chat bridged (like a private chat when
    /// its id is the sender's, like a group otherwise).
    #[test]
    fn an_unknown_chat_type_is_bridged() {
        let (p, text, _) = parsed_message(read(serde_json::json!({"update_id": 9, "message": {
            "message_id": 8, "date": 1700000000,
            "from": {"id": 9, "is_bot": false, "first_name": "Ann"},
            "chat": {"id": 9, "type": "hyperchat", "first_name": "Ann"},
            "text": "hello from the future"}})));
        assert_eq!(
            (p.conversation.chat.as_str(), text.as_str()),
            ("9", "hello from the future")
        );
        let (p, text, _) = parsed_message(read(serde_json::json!({"update_id": 10, "message": {
            "message_id": 8, "date": 1700000000,
            "from": {"id": 9, "is_bot": false, "first_name": "Ann"},
            "chat": {"id": -100, "type": "hyperchat", "title": "T"},
            "text": "hi all"}})));
        assert_eq!(
            (p.conversation.chat.as_str(), text.as_str()),
            ("-100", "Ann: hi all")
        );
    }

    /// The same fallback names through teloxide's own reading (the strict path, with every
    /// field Telegram sends; a minimal object falls to the field-by-field reader instead).
    #[test]
    fn named_files_fall_back_to_their_kind_when_read_strictly() {
        let strictly = |field: &str, object: serde_json::Value| {
            let mut update = serde_json::json!({"update_id": 9, "message": {
                "message_id": 7, "date": 1700000000,
                "from": {"id": 9, "is_bot": false, "first_name": "Ann"},
                "chat": {"id": 9, "type": "private", "first_name": "Ann"}}});
            update["message"][field] = object;
            // As a webhook body is read (from bytes: teloxide's untagged kinds read numbers
            // from a `Value` differently).
            let bytes = serde_json::to_vec(&update).expect("json");
            let update: Update = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{field}: teloxide refused it: {e}"));
            assert!(
                matches!(&update.kind, UpdateKind::Message(m) if !matches!(m.kind, MessageKind::Empty {})),
                "{field}: teloxide read no kind"
            );
            match parse_update(&update, &options()).map(|p| p.kind) {
                Some(ParsedKind::Message { file: Some(f), .. }) => (f.name, f.mime),
                other => panic!("{field}: {other:?}"),
            }
        };
        let pair = |name: &str, mime: &str| (name.to_owned(), mime.to_owned());
        let media = |extra: serde_json::Value| {
            let mut o = serde_json::json!({"file_id": "F", "file_unique_id": "U", "file_size": 10});
            for (k, v) in extra.as_object().into_iter().flatten() {
                o[k] = v.clone();
            }
            o
        };
        // Telegram sends the type with every file (teloxide refuses a file without one).
        let visual =
            serde_json::json!({"width": 2, "height": 2, "duration": 3, "mime_type": "video/mp4"});
        assert_eq!(
            strictly("video", media(visual.clone())),
            pair("video_U.mp4", "video/mp4")
        );
        assert_eq!(
            strictly("animation", media(visual.clone())),
            pair("animation_U.mp4", "video/mp4")
        );
        assert_eq!(
            strictly(
                "audio",
                media(serde_json::json!({"duration": 3, "mime_type": "audio/mpeg"}))
            ),
            pair("audio_U.mp3", "audio/mpeg")
        );
        assert_eq!(
            strictly(
                "document",
                media(serde_json::json!({"mime_type": "application/pdf"}))
            ),
            pair("document_U", "application/pdf")
        );
        assert_eq!(
            strictly(
                "audio",
                media(
                    serde_json::json!({"duration": 3, "file_name": "song.flac", "mime_type": "audio/flac"})
                )
            ),
            pair("song.flac", "audio/flac")
        );
    }

    /// Videos, animations, audio and documents keep the name and mime type the customer's
    /// client gave; without them, `<kind>_<unique id><extension>` of the extension's type.
    #[test]
    fn named_files_fall_back_to_their_kind() {
        let file_of = |field: &str, given: serde_json::Value| {
            let mut f = serde_json::json!({"file_id": "F", "file_unique_id": "U", "file_size": 10,
                "width": 1, "height": 1, "duration": 1});
            for (k, v) in given.as_object().unwrap() {
                f[k] = v.clone();
            }
            let mut m = serde_json::json!({"message_id": 7, "date": 1700000000,
                "from": {"id": 9, "is_bot": false, "first_name": "Ann"},
                "chat": {"id": 9, "type": "private", "first_name": "Ann"}});
            m[field] = f;
            let Read::Parsed(p) = read(serde_json::json!({"update_id": 9, "message": m})) else {
                panic!("{field}: not parsed")
            };
            match p.kind {
                ParsedKind::Message { file: Some(f), .. } => (f.name, f.mime),
                other => panic!("{field}: {other:?}"),
            }
        };
        let pair = |name: &str, mime: &str| (name.to_owned(), mime.to_owned());
        let none = serde_json::json!({});
        assert_eq!(
            file_of("video", none.clone()),
            pair("video_U.mp4", "video/mp4")
        );
        assert_eq!(
            file_of("animation", none.clone()),
            pair("animation_U.mp4", "video/mp4")
        );
        assert_eq!(
            file_of("audio", none.clone()),
            pair("audio_U.mp3", "audio/mpeg")
        );
        assert_eq!(
            file_of("document", none),
            pair("document_U", "application/octet-stream")
        );
        let given =
            serde_json::json!({"file_name": "Clip.mov", "mime_type": "Video/QuickTime; x=1"});
        assert_eq!(
            file_of("video", given.clone()),
            pair("Clip.mov", "video/quicktime")
        );
        assert_eq!(
            file_of("document", given),
            pair("Clip.mov", "video/quicktime")
        );
    }

    /// Fields of another JSON type degrade on their own: ids sent as strings are still ids.
    #[test]
    fn wrongly_typed_fields_degrade_alone() {
        let (p, text, _) = parsed_message(read(serde_json::json!({"update_id": "11", "message": {
            "message_id": "12", "date": "1700000000",
            "from": {"id": "9", "is_bot": "false", "first_name": "Ann", "last_name": 7},
            "chat": {"id": "9", "type": "private"},
            "text": "strings everywhere",
            "reply_to_message": {"message_id": "5", "chat": {"id": 9, "type": "private"}}}})));
        assert_eq!(text, "strings everywhere");
        assert_eq!(p.dedup_key, "msg:9:12");
        assert_eq!(p.sender.id, "9");
        assert_eq!(p.sender.display_name.as_deref(), Some("Ann 7"));
        assert_eq!(p.timestamp_ms, 1_700_000_000_000);
        let ParsedKind::Message { reply_to, .. } = p.kind else {
            panic!()
        };
        assert_eq!(reply_to.as_deref(), Some("5"));
        // A photo whose message id is unreadable still brings its file.
        let Read::Parsed(p) = read(serde_json::json!({"update_id": 13, "message": {
            "message_id": {"odd": true}, "date": 1700000000,
            "from": {"id": 9, "is_bot": false, "first_name": "Ann"},
            "chat": {"id": 9, "type": "private"},
            "photo": [{"file_id": "small", "file_unique_id": "s", "width": 9, "height": 9},
                      {"file_id": "big", "file_unique_id": "b", "width": "90", "height": 90, "file_size": "100"}],
            "caption": "the box"}}))
        else {
            panic!()
        };
        let ParsedKind::Message {
            remote_id,
            file,
            text,
            ..
        } = p.kind
        else {
            panic!()
        };
        assert_eq!((remote_id.as_str(), text.as_str()), ("u13", "the box"));
        let f = file.expect("the photo");
        assert_eq!((f.file_id.as_str(), f.size), ("big", Some(100)));
    }

    /// A message kind nobody knows: a notice naming it, in the customer's room.
    #[test]
    fn an_unknown_message_kind_is_a_notice() {
        let Read::Parsed(p) = read(serde_json::json!({"update_id": 14, "message": {
            "message_id": 15, "date": 1700000000,
            "from": {"id": 9, "is_bot": false, "first_name": "Ann"},
            "chat": {"id": 9, "type": "private"},
            "hologram": {"id": "h1"}}}))
        else {
            panic!()
        };
        assert_eq!(p.conversation.chat, "9");
        let ParsedKind::Notice { text, .. } = p.kind else {
            panic!("{:?}", p.kind)
        };
        assert!(text.contains("hologram"), "{text}");
    }

    /// Only what names no chat is unreadable without a conversation; and never a skip.
    #[test]
    fn what_names_no_chat_is_unreadable() {
        let r =
            read(serde_json::json!({"update_id": 16, "message": {"message_id": 1, "text": "hi"}}));
        let Read::Unreadable(u) = r else {
            panic!("{r:?}")
        };
        assert!(
            u.conversation.is_none() && u.raw.contains("\"text\":\"hi\""),
            "{u:?}"
        );
        let Read::Unreadable(u) = read_update(b"{not json", &options()) else {
            panic!()
        };
        assert!(
            u.reason.contains("not JSON") && u.dedup_key.starts_with("raw:"),
            "{u:?}"
        );
        assert!(matches!(
            read(serde_json::json!({"update_id": 1, "poll": {}})),
            Read::Skip(_)
        ));
    }

    #[test]
    fn file_names_are_made_safe() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(safe_file_name(".hidden"), "hidden");
        assert_eq!(safe_file_name("  "), "file");
        assert_eq!(safe_file_name(&"x".repeat(300)).len(), 200);
    }

    #[test]
    fn truncated_and_mutated_input_never_panics() {
        let Some(body) = fixture("update_photo.json") else {
            return;
        };
        for cut in 0..body.len() {
            let _ = parse_update_json(&body[..cut], &options());
        }
        let mut bytes = body.clone();
        for i in 0..bytes.len() {
            let saved = bytes[i];
            bytes[i] = bytes[i].wrapping_add(1);
            let _ = parse_update_json(&bytes, &options());
            bytes[i] = saved;
        }
    }
}
