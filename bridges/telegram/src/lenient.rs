//! Reading what teloxide's strict types refuse, so an update Telegram sends in a shape we do not
//! know still reaches the room with what could be read.
//!
//! Telegram adds entity types, chat types and message kinds every few releases, and teloxide
//! turns a message with any field it does not know or expects of another JSON type into
//! `UpdateKind::Error`, losing all of it. Two steps here keep the rest:
//!
//! 1. [`repair`] runs before teloxide: entities it cannot read (an unknown `type`, an offset
//!    sent as a string) are read leniently or dropped: they only format the text, so the
//!    message keeps its text, files and everything else.
//! 2. [`read_message`] runs when teloxide still refuses (an unknown chat type, an id sent as a
//!    string, a new message kind): it reads the raw JSON field by field, each field degrading
//!    on its own (a number or a numeric string is an id; a missing date is "now"; an unknown
//!    chat type is kept and the chat bridged like a group, or like a private chat when its id
//!    is the sender's), and says what it could not show. Only a message that names no chat at
//!    all is [`Unreadable`] without a conversation.
//!
//! Pure, no I/O; part of the `telegram_update` fuzz target through
//! [`crate::inbound::read_update`].

use serde_json::Value;
use switchboard_channel::{ContactProfile, ConversationKey, Group, Unreadable};
use teloxide::types::MessageEntity;

use crate::format;
use crate::inbound::{safe_file_name, ParseOptions, Parsed, ParsedKind, Read, RemoteFile};

/// An integer sent as a JSON number or as a numeric string.
pub fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Text sent as a string, or as a number or boolean (read as its JSON spelling).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn boolean(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// One entity, read leniently: `offset` and `length` may be numeric strings. `None` for an
/// entity teloxide does not know (a new type): it formats nothing and is left out.
fn entity(v: &Value) -> Option<MessageEntity> {
    let mut v = v.clone();
    let fields = v.as_object_mut()?;
    for key in ["offset", "length"] {
        let n = int(fields.get(key))?;
        fields.insert(key.into(), Value::from(n.max(0)));
    }
    serde_json::from_value(v).ok()
}

/// The entities of `key` that can be read.
fn entities(m: &Value, key: &str) -> Vec<MessageEntity> {
    m.get(key)
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(entity).collect())
        .unwrap_or_default()
}

/// Make a message's entity lists readable by teloxide: known entities with lenient numbers are
/// rewritten strictly, unknown ones are dropped. Returns how many were dropped.
pub fn repair(m: &mut Value) -> usize {
    let mut dropped = 0;
    for key in ["entities", "caption_entities"] {
        let Some(list) = m.get(key).and_then(Value::as_array) else {
            continue;
        };
        let kept: Vec<Value> = list
            .iter()
            .filter_map(entity)
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect();
        dropped += list.len() - kept.len();
        m[key] = Value::Array(kept);
    }
    if let Some(reply) = m.get_mut("reply_to_message").filter(|r| r.is_object()) {
        dropped += repair(reply);
    }
    dropped
}

/// The sender as far as it can be read.
fn profile(user: &Value) -> Option<(ContactProfile, bool)> {
    let id = int(user.get("id"))?;
    let first = text(user.get("first_name")).unwrap_or_default();
    let last = text(user.get("last_name")).unwrap_or_default();
    let full = format!("{first} {last}").trim().to_owned();
    let name = if !full.is_empty() {
        full
    } else {
        match text(user.get("username")) {
            Some(u) if !u.is_empty() => format!("@{u}"),
            _ => id.to_string(),
        }
    };
    Some((
        ContactProfile {
            id: id.to_string(),
            display_name: Some(name),
            ..ContactProfile::default()
        },
        boolean(user.get("is_bot")),
    ))
}

/// Kinds of files a message can carry: (field, default name prefix, extension, mime).
const FILES: [(&str, &str, &str, &str); 8] = [
    ("photo", "photo", ".jpg", "image/jpeg"),
    ("document", "document", "", "application/octet-stream"),
    ("video", "video", ".mp4", "video/mp4"),
    ("animation", "animation", ".mp4", "video/mp4"),
    ("audio", "audio", ".mp3", "audio/mpeg"),
    ("voice", "voice", ".ogg", "audio/ogg"),
    ("video_note", "video_note", ".mp4", "video/mp4"),
    ("sticker", "sticker", ".webp", "image/webp"),
];

/// The first file the message carries, read field by field.
fn file(m: &Value) -> Option<RemoteFile> {
    for (field, prefix, ext, default_mime) in FILES {
        let Some(mut f) = m.get(field) else { continue };
        if let Some(sizes) = f.as_array() {
            // Photo sizes: the largest.
            f = sizes.iter().max_by_key(|p| {
                int(p.get("width"))
                    .unwrap_or(0)
                    .saturating_mul(int(p.get("height")).unwrap_or(0))
            })?;
        }
        let Some(file_id) = text(f.get("file_id")).filter(|i| !i.is_empty()) else {
            continue;
        };
        let unique = text(f.get("file_unique_id")).unwrap_or_else(|| "file".into());
        let name = text(f.get("file_name")).unwrap_or_else(|| format!("{prefix}_{unique}{ext}"));
        let mime = text(f.get("mime_type"))
            .map(|m| {
                m.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|m| m.contains('/'))
            .unwrap_or_else(|| default_mime.to_owned());
        return Some(RemoteFile {
            file_id,
            name: safe_file_name(&name),
            mime,
            size: int(f.get("file_size")).and_then(|s| u64::try_from(s).ok()),
        });
    }
    None
}

/// Fields every message has, which say nothing about its content.
const METADATA: [&str; 24] = [
    "message_id",
    "message_thread_id",
    "from",
    "sender_chat",
    "sender_boost_count",
    "sender_business_bot",
    "date",
    "business_connection_id",
    "chat",
    "forward_origin",
    "is_topic_message",
    "is_automatic_forward",
    "reply_to_message",
    "external_reply",
    "quote",
    "reply_to_story",
    "via_bot",
    "edit_date",
    "has_protected_content",
    "is_from_offline",
    "media_group_id",
    "author_signature",
    "entities",
    "caption_entities",
];

/// A `message_reaction` update (<https://core.telegram.org/bots/api#messagereactionupdated>):
/// a person changed their reactions to a message. It is read here, field by field, and never
/// by teloxide, whose decoder panics on one without `user` and `actor_chat`. The contract keeps
/// one reaction per customer and message: the first emoji of `new_reaction` is it; an empty
/// list (or one of only custom or paid reactions, which Matrix cannot show) takes it back.
pub fn read_reaction(update_id: u64, r: &Value, options: &ParseOptions, raw: &[u8]) -> Read {
    let (Some(chat_id), Some(message_id)) = (
        r.get("chat").and_then(|c| int(c.get("id"))),
        int(r.get("message_id")),
    ) else {
        return Read::Unreadable(Unreadable::new(
            format!("update:{update_id}"),
            "a Telegram reaction",
            "it names no chat or message the bridge can read",
            raw,
            crate::inbound::now_ms(),
        ));
    };
    let chat = &r["chat"];
    let chat_type = text(chat.get("type")).unwrap_or_else(|| "unknown".into());
    match chat_type.as_str() {
        "private" => {}
        "group" | "supergroup" if options.groups => {}
        "group" | "supergroup" => return Read::Skip("group chats are not bridged"),
        _ => return Read::Skip("a reaction in a chat we do not bridge"),
    }
    let (sender, user_id) = match r.get("user").and_then(profile) {
        Some((_, true)) => return Read::Skip("a bot's reaction"),
        Some((p, false)) => {
            let id = p.id.parse::<u64>().ok();
            (p, id)
        }
        None => {
            // Anonymous: the chat on whose behalf the reaction was set, else the chat itself.
            let speaker = r
                .get("actor_chat")
                .filter(|c| int(c.get("id")).is_some())
                .unwrap_or(chat);
            let profile = ContactProfile {
                id: int(speaker.get("id")).unwrap_or(chat_id).to_string(),
                display_name: Some(
                    text(speaker.get("title")).unwrap_or_else(|| "Anonymous".into()),
                ),
                ..ContactProfile::default()
            };
            (profile, None)
        }
    };
    let key = r
        .get("new_reaction")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("emoji"))
        .find_map(|t| text(t.get("emoji")).filter(|e| !e.is_empty()));
    let date = int(r.get("date")).unwrap_or_default();
    Read::Parsed(Parsed {
        conversation: ConversationKey {
            account: options.account.clone(),
            chat: chat_id.to_string(),
        },
        dedup_key: format!(
            "reaction:{chat_id}:{message_id}:{}:{date}:{}",
            sender.id,
            key.as_deref().unwrap_or("-")
        ),
        sender,
        user_id,
        timestamp_ms: date.saturating_mul(1000),
        kind: ParsedKind::Reaction {
            remote_id: message_id.to_string(),
            key,
        },
        group: group_of(chat, chat_type != "private"),
    })
}

/// A `callback_query` update (<https://core.telegram.org/bots/api#callbackquery>): the
/// customer pressed an inline keyboard button of one of the bot's messages. Read field by
/// field: `id` and `from` are required; `message` (absent for inline-mode messages, which the
/// bridge never sends) names the chat and the message the button is on; `data` is the button's
/// `callback_data`. A press in a chat the bridge does not bridge is skipped; one without data
/// (a game button) too. Whatever the payload says, the core decides whether it counts.
pub fn read_callback_query(update_id: u64, q: &Value, options: &ParseOptions, raw: &[u8]) -> Read {
    let message = q.get("message");
    let chat = message.and_then(|m| m.get("chat"));
    let (Some(id), Some(chat_id), Some(message_id)) = (
        text(q.get("id")).filter(|i| !i.is_empty()),
        chat.and_then(|c| int(c.get("id"))),
        message.and_then(|m| int(m.get("message_id"))),
    ) else {
        return Read::Unreadable(Unreadable::new(
            format!("update:{update_id}"),
            "a Telegram button press",
            "it names no query id, chat or message the bridge can read",
            raw,
            crate::inbound::now_ms(),
        ));
    };
    let chat_type = chat
        .and_then(|c| text(c.get("type")))
        .unwrap_or_else(|| "unknown".into());
    match chat_type.as_str() {
        "private" => {}
        "group" | "supergroup" if options.groups => {}
        _ => return Read::Skip("a button press in a chat we do not bridge"),
    }
    let Some(payload) = text(q.get("data")).filter(|d| !d.is_empty()) else {
        return Read::Skip("a button press without callback data");
    };
    let Some((sender, false)) = q.get("from").and_then(profile) else {
        return Read::Skip("a button press by no user, or by a bot");
    };
    let user_id = sender.id.parse::<u64>().ok();
    Read::Parsed(Parsed {
        conversation: ConversationKey {
            account: options.account.clone(),
            chat: chat_id.to_string(),
        },
        dedup_key: format!("callback:{id}"),
        group: chat.and_then(|c| group_of(c, chat_type != "private")),
        sender,
        user_id,
        // A callback query carries no date of its own: it happened now.
        timestamp_ms: crate::inbound::now_ms(),
        kind: ParsedKind::Choice {
            remote_id: message_id.to_string(),
            payload,
            callback_id: id,
        },
    })
}

/// Read a message teloxide refused. `update_id` names it when its own id cannot be read;
/// `raw` is the whole update, shown when nothing of the message can be placed.
pub fn read_message(
    update_id: u64,
    m: &Value,
    options: &ParseOptions,
    edited: bool,
    raw: &[u8],
) -> Read {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let Some(chat_id) = m.get("chat").and_then(|c| int(c.get("id"))) else {
        return Read::Unreadable(Unreadable::new(
            format!("update:{update_id}"),
            "a Telegram update",
            "its message names no chat the bridge can read",
            raw,
            now_ms,
        ));
    };
    let chat = &m["chat"];
    let chat_value = chat;
    let chat_type = text(chat.get("type")).unwrap_or_else(|| "unknown".into());
    let from = m.get("from").and_then(profile);
    let private = chat_type == "private"
        || (!matches!(chat_type.as_str(), "group" | "supergroup" | "channel")
            && from
                .as_ref()
                .is_some_and(|(p, _)| p.id == chat_id.to_string()));
    if chat_type == "channel" {
        return Read::Skip("a channel post");
    }
    if !private && !options.groups {
        return Read::Skip("group chats are not bridged");
    }
    let sender = match from {
        Some((_, true)) if !private => return Read::Skip("another bot in a group"),
        Some((p, _)) => p,
        None => {
            let speaker = m
                .get("sender_chat")
                .filter(|c| int(c.get("id")).is_some())
                .unwrap_or(chat);
            ContactProfile {
                id: int(speaker.get("id")).unwrap_or(chat_id).to_string(),
                display_name: Some(
                    text(speaker.get("title")).unwrap_or_else(|| "Anonymous".into()),
                ),
                ..ContactProfile::default()
            }
        }
    };
    let user_id = m
        .get("from")
        .and_then(|u| int(u.get("id")))
        .and_then(|i| u64::try_from(i).ok());
    let conversation = ConversationKey {
        account: options.account.clone(),
        chat: chat_id.to_string(),
    };
    let remote_id = int(m.get("message_id"))
        .map(|i| i.to_string())
        .unwrap_or_else(|| format!("u{update_id}"));
    let (mut body, entity_key) = match text(m.get("text")) {
        Some(t) => (t, "entities"),
        None => (
            text(m.get("caption")).unwrap_or_default(),
            "caption_entities",
        ),
    };
    let mut html = format::entities_to_html(&body, &entities(m, entity_key));
    let file = if edited { None } else { file(m) };
    let mut notice = false;
    if body.is_empty() && file.is_none() {
        let kinds: Vec<&str> = m
            .as_object()
            .map(|o| {
                o.keys()
                    .map(String::as_str)
                    .filter(|k| !METADATA.contains(k))
                    .collect()
            })
            .unwrap_or_default();
        body = if kinds.is_empty() {
            "[a Telegram message the bridge cannot show]".to_owned()
        } else {
            format!(
                "[a Telegram message the bridge cannot show: {}]",
                kinds.join(", ")
            )
        };
        notice = true;
    }
    if !private && options.group_sender_prefix {
        let name = sender.display_name.clone().unwrap_or_default();
        let body_html = html
            .take()
            .unwrap_or_else(|| format::escape(&body).replace('\n', "<br>"));
        html = Some(format!("<b>{}</b>: {body_html}", format::escape(&name)));
        body = format!("{name}: {body}");
    }
    let chat = chat_id.to_string();
    if edited {
        let at = int(m.get("edit_date")).or_else(|| int(m.get("date")));
        return Read::Parsed(Parsed {
            conversation,
            sender,
            user_id,
            timestamp_ms: at.map_or(now_ms, |s| s.saturating_mul(1000)),
            dedup_key: format!("edit:{chat}:{remote_id}:{}", at.unwrap_or(0)),
            kind: ParsedKind::Edit {
                remote_id,
                text: body,
                html,
            },
            group: group_of(chat_value, !private),
        });
    }
    let reply_to = m
        .get("reply_to_message")
        .filter(|r| {
            r.get("chat")
                .is_none_or(|c| int(c.get("id")) == Some(chat_id))
        })
        .and_then(|r| int(r.get("message_id")))
        .map(|i| i.to_string());
    let kind = if notice {
        ParsedKind::Notice {
            remote_id: remote_id.clone(),
            text: body,
        }
    } else {
        ParsedKind::Message {
            remote_id: remote_id.clone(),
            text: body,
            html,
            file,
            reply_to,
        }
    };
    Read::Parsed(Parsed {
        conversation,
        sender,
        user_id,
        timestamp_ms: int(m.get("date")).map_or(now_ms, |s| s.saturating_mul(1000)),
        dedup_key: format!("msg:{chat}:{remote_id}"),
        kind,
        group: group_of(chat_value, !private),
    })
}

/// The group a chat is, when it is one: named by its title.
fn group_of(chat: &Value, is_group: bool) -> Option<Group> {
    is_group.then(|| Group {
        title: text(chat.get("title")),
        ..Group::default()
    })
}
