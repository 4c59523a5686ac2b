//! Callback API events → the core's [`Inbound`] events.
//!
//! Two steps, so the part that reads outside input is pure and can be fuzzed on its own:
//!
//! 1. [`parse_event`] (and [`parse_callback_json`] for raw bytes) says what one event means:
//!    which conversation, who, when, which text and which files to fetch. No I/O.
//! 2. [`realize`] does the I/O: fetch the files from their attachment URLs into the media store
//!    and build the [`Inbound`]. A file that can never be fetched (gone, too large) becomes a line
//!    of text; a transient failure is an error, so the callback is answered 5xx and VK delivers
//!    the event again.
//!
//! Ids: a message's remote id is its `conversation_message_id` (the id VK gives communities for
//! every message, also in group chats where the global `id` is 0). It is unique within a peer,
//! and a conversation is a peer, so replies, edits and read marks map through it both ways;
//! `messages.send` with `peer_ids` returns it for our own messages. Dedup keys add the peer and,
//! for edits, the event id, so a redelivery is stored once and a second edit is a new event.
//!
//! What is bridged: `message_new` (text, photos at their largest size, documents, voice
//! messages, stickers, replies, forwarded messages as quoted text, other attachments as a line
//! naming them), `message_edit` (the customer's edits), `message_read` (the customer read our
//! messages), `message_typing_state`, `message_event` whose payload is a rating button's
//! (`{"rating": "sbr1:…"}`: a [`ParsedKind::Choice`], answered with
//! `messages.sendMessageEventAnswer` once stored); `message_reply` is our own outgoing message
//! echoed back and is never bridged. Other events about a customer (`message_deny`,
//! `message_allow`, other button presses, anything new) become notices in their room; events about nobody in
//! particular (wall posts, group joins) are acknowledged and dropped.

use std::sync::Arc;

use serde_json::Value;
use switchboard_channel::{
    ContactProfile, Content, ConversationKey, Host, Inbound, InboundEvent, Unreadable,
};
use switchboard_kit::media;

use switchboard_kit::mime::mime_for_name_or_binary;
use switchboard_kit::{now_ms, safe_file_name};

use crate::api::Api;

/// Peer ids of group chats start here (`2000000000 + chat id`).
pub const CHAT_PEER_BASE: i64 = 2_000_000_000;

/// What the parser needs to know about the deployment.
#[derive(Clone, Debug)]
pub struct ParseOptions {
    /// The community's id (the account).
    pub group_id: i64,
    /// Bridge group chats.
    pub chats: bool,
}

/// A file the message carries, still on VK's side.
pub use switchboard_kit::media::RemoteFile;

/// What an event means, before any I/O.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub conversation: ConversationKey,
    /// The VK user behind it (the ghost).
    pub user_id: i64,
    /// The conversation is a group chat: messages start with the member's name.
    pub in_chat: bool,
    pub timestamp_ms: i64,
    pub dedup_key: String,
    pub kind: ParsedKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ParsedKind {
    Message {
        remote_id: String,
        text: String,
        files: Vec<RemoteFile>,
        reply_to: Option<String>,
    },
    Edit {
        remote_id: String,
        text: String,
    },
    Read {
        remote_id: String,
    },
    Typing,
    Notice {
        remote_id: String,
        text: String,
    },
    /// A rating button pressed (`message_event`): `remote_id` is the question's
    /// `conversation_message_id`, `payload` the kit's rating payload, `event_id` what
    /// `messages.sendMessageEventAnswer` answers.
    Choice {
        remote_id: String,
        payload: String,
        event_id: String,
    },
}

/// What one callback asks of us.
#[derive(Clone, Debug, PartialEq)]
pub enum Callback {
    /// `type: confirmation`: answer the confirmation string.
    Confirmation,
    /// Store this, then answer `ok`.
    Event(Box<Parsed>),
    /// Answer `ok` and forget it (our own echo, an event about nobody).
    Ignored(&'static str),
    /// Keep and show it raw (`Host::unreadable`), then answer `ok`: a customer's message the
    /// bridge cannot place (no peer, no id).
    Unreadable(Box<Unreadable>),
}

/// A message that could not be read: in the conversation of `peer` when that much is known.
fn unreadable(body: &Value, options: &ParseOptions, peer: Option<i64>, reason: &str) -> Callback {
    let raw = body.to_string();
    let key = match s(body, "event_id") {
        Some(e) => format!("event:{e}"),
        None => Unreadable::digest_key(raw.as_bytes()),
    };
    let input = Unreadable::new(key, "a VK message", reason, raw.as_bytes(), now_ms());
    Callback::Unreadable(Box::new(match peer.filter(|p| *p > 0) {
        Some(peer) => input.in_conversation(
            ConversationKey {
                account: options.group_id.to_string(),
                chat: peer.to_string(),
            },
            None,
        ),
        None => input,
    }))
}

/// The fields read before anything else: the kind, the community and the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub kind: String,
    pub group_id: Option<i64>,
    pub secret: Option<String>,
}

/// Read the head of a callback body. `None` when it is not a JSON object with a `type`.
pub fn head(body: &Value) -> Option<Head> {
    let kind = body.get("type")?.as_str()?.to_owned();
    Some(Head {
        kind,
        group_id: body.get("group_id").and_then(int),
        secret: body
            .get("secret")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn i(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(int)
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Text VK documents as a string, also when it arrives as a number.
fn text_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(t) => Some(t.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn ms(date: Option<i64>) -> i64 {
    match date {
        Some(d) if d > 0 && d < 100_000_000_000 => d * 1000,
        _ => now_ms(),
    }
}

/// Parse a raw callback body (after its secret was checked). `Err` for JSON that is not a
/// callback.
pub fn parse_callback_json(
    body: &[u8],
    options: &ParseOptions,
) -> Result<Callback, serde_json::Error> {
    let value: Value = serde_json::from_slice(body)?;
    if head(&value).is_none() {
        return Err(serde::de::Error::missing_field("type"));
    }
    Ok(parse_event(&value, options))
}

/// What one callback means.
pub fn parse_event(body: &Value, options: &ParseOptions) -> Callback {
    let Some(head) = head(body) else {
        return Callback::Ignored("not a callback");
    };
    let object = body.get("object").cloned().unwrap_or(Value::Null);
    let event_id = s(body, "event_id").map(str::to_owned);
    match head.kind.as_str() {
        "confirmation" => Callback::Confirmation,
        "message_new" => {
            // Since API 5.103 the message is wrapped (`object.message` + `client_info`); older
            // servers send the bare message with `user_id` and `body`.
            let read = match object.get("message") {
                Some(m) if m.is_object() => message_new(m, options),
                _ => legacy_message_new(&object, options),
            };
            match read {
                Callback::Ignored(
                    why @ ("a message without a peer or sender"
                    | "a message without a sender"
                    | "a message without an id"),
                ) => {
                    let m = object
                        .get("message")
                        .filter(|m| m.is_object())
                        .unwrap_or(&object);
                    let peer = i(m, "peer_id")
                        .or_else(|| i(m, "user_id"))
                        .or_else(|| i(m, "from_id"));
                    unreadable(
                        body,
                        options,
                        peer.filter(|p| *p < CHAT_PEER_BASE || options.chats),
                        why,
                    )
                }
                other => other,
            }
        }
        "message_reply" => Callback::Ignored("our own message echoed back"),
        "message_edit" => message_edit(&object, options, event_id.as_deref()),
        "message_read" => {
            let (Some(peer), Some(cmid)) =
                (i(&object, "peer_id"), i(&object, "conversation_message_id"))
            else {
                return Callback::Ignored("a read mark without a peer or message");
            };
            let user = i(&object, "from_id").unwrap_or(peer);
            event(
                options,
                peer,
                user,
                now_ms(),
                format!("read:{peer}:{cmid}"),
                ParsedKind::Read {
                    remote_id: cmid.to_string(),
                },
            )
        }
        "message_typing_state" => {
            let (Some(user), Some(state)) = (i(&object, "from_id"), s(&object, "state")) else {
                return Callback::Ignored("a typing state without a sender");
            };
            if state != "typing" {
                return Callback::Ignored("not typing");
            }
            let peer = user; // typing states are sent for private chats only
            event(
                options,
                peer,
                user,
                now_ms(),
                format!("typing:{peer}:{}", event_id.unwrap_or_default()),
                ParsedKind::Typing,
            )
        }
        "message_event" => match rating_press(&object) {
            Some((payload, press_id)) => {
                let (Some(user), Some(peer)) = (i(&object, "user_id"), i(&object, "peer_id"))
                else {
                    return Callback::Ignored("a button press without a user or peer");
                };
                // Without a cmid (a keyboard not in a message) the press names no question.
                let remote_id = i(&object, "conversation_message_id")
                    .map(|c| c.to_string())
                    .unwrap_or_default();
                event(
                    options,
                    peer,
                    user,
                    now_ms(),
                    format!("press:{peer}:{press_id}"),
                    ParsedKind::Choice {
                        remote_id,
                        payload,
                        event_id: press_id,
                    },
                )
            }
            None => notice_event("message_event", &object, options, event_id.as_deref()),
        },
        other => notice_event(other, &object, options, event_id.as_deref()),
    }
}

/// A `message_event`'s rating payload (`{"rating": "sbr1:…"}`, as the bridge's buttons carry
/// it) and the press's own `event_id`; `None` for any other button.
fn rating_press(object: &Value) -> Option<(String, String)> {
    let payload = object.get("payload")?;
    // VK hands the payload back as the object it was; tolerate it arriving as a JSON string.
    let payload: Value = match payload {
        Value::String(t) => serde_json::from_str(t).ok()?,
        other => other.clone(),
    };
    let rating = payload.get("rating")?.as_str()?;
    switchboard_kit::rating::parse_payload(rating)?;
    let press_id = s(object, "event_id")?.to_owned();
    Some((rating.to_owned(), press_id))
}

fn event(
    options: &ParseOptions,
    peer: i64,
    user: i64,
    timestamp_ms: i64,
    dedup_key: String,
    kind: ParsedKind,
) -> Callback {
    if user <= 0 || peer <= 0 {
        return Callback::Ignored("not from a VK user");
    }
    let in_chat = peer >= CHAT_PEER_BASE;
    if in_chat && !options.chats {
        return Callback::Ignored("group chats are not bridged");
    }
    Callback::Event(Box::new(Parsed {
        conversation: ConversationKey {
            account: options.group_id.to_string(),
            chat: peer.to_string(),
        },
        user_id: user,
        in_chat,
        timestamp_ms,
        dedup_key,
        kind,
    }))
}

/// What a message says and carries: its text (with forwarded messages quoted and unsupported
/// attachments named), its files, and the attachments it had that we could not show.
fn content_of(m: &Value) -> (String, Vec<RemoteFile>, usize) {
    let mut lines: Vec<String> = Vec::new();
    if let Some(text) = text_field(m, "text")
        .or_else(|| text_field(m, "body"))
        .filter(|t| !t.is_empty())
    {
        lines.push(text);
    }
    let mut files = Vec::new();
    let mut unsupported = 0;
    if let Some(attachments) = m.get("attachments").and_then(Value::as_array) {
        for a in attachments {
            match attachment(a) {
                Attached::File(f) => files.push(f),
                Attached::Line(l) => {
                    lines.push(l);
                    unsupported += 1;
                }
            }
        }
    }
    if let Some(forwarded) = m.get("fwd_messages").and_then(Value::as_array) {
        for f in forwarded.iter().take(20) {
            let (text, inner, _) = content_of_shallow(f);
            let who = i(f, "from_id")
                .map(|id| format!("id{id}"))
                .unwrap_or_default();
            let mut quoted = format!("> Forwarded from {who}:");
            for l in text.lines() {
                quoted.push_str("\n> ");
                quoted.push_str(l);
            }
            if inner > 0 {
                quoted.push_str(&format!("\n> [{inner} attachment(s)]"));
            }
            lines.push(quoted);
        }
    }
    (lines.join("\n"), files, unsupported)
}

/// A forwarded message's text and how many attachments it had (not fetched, not recursed).
fn content_of_shallow(m: &Value) -> (String, usize, ()) {
    let text = text_field(m, "text").unwrap_or_default();
    let n = m
        .get("attachments")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    (text, n, ())
}

enum Attached {
    File(RemoteFile),
    Line(String),
}

/// Width × height of a size, never overflowing on hostile numbers.
fn area(size: &Value) -> i64 {
    i(size, "width")
        .unwrap_or(0)
        .max(0)
        .saturating_mul(i(size, "height").unwrap_or(0).max(0))
}

/// The largest of a list of sizes (`[{url, width, height}]`).
fn largest(sizes: &Value) -> Option<&str> {
    sizes
        .as_array()?
        .iter()
        .filter_map(|sz| Some((area(sz), s(sz, "url")?)))
        .max_by_key(|(area, _)| *area)
        .map(|(_, url)| url)
}

fn attachment(a: &Value) -> Attached {
    let kind = s(a, "type").unwrap_or("");
    let body = a.get(kind).unwrap_or(&Value::Null);
    let id = i(body, "id").unwrap_or(0);
    let owner = i(body, "owner_id").unwrap_or(0);
    let file = |url: &str, name: String, mime: &str, size: Option<u64>| {
        Attached::File(RemoteFile {
            url: url.to_owned(),
            name: safe_file_name(&name, "file"),
            mime: mime.to_owned(),
            size,
        })
    };
    match kind {
        "photo" => {
            let from_sizes = body.get("sizes").and_then(|sz| {
                let url = largest(sz)?;
                let area = sz
                    .as_array()?
                    .iter()
                    .filter(|x| s(x, "url") == Some(url))
                    .map(area)
                    .next()?;
                Some((url, area))
            });
            let orig = body
                .get("orig_photo")
                .and_then(|o| Some((s(o, "url")?, area(o))));
            let best = match (from_sizes, orig) {
                (Some(a), Some(b)) => Some(if b.1 > a.1 { b.0 } else { a.0 }),
                (a, b) => a.or(b).map(|x| x.0),
            };
            match best {
                Some(url) => file(url, format!("photo_{owner}_{id}.jpg"), "image/jpeg", None),
                None => Attached::Line("[photo]".into()),
            }
        }
        "doc" => {
            let title = s(body, "title").unwrap_or("document");
            let ext = s(body, "ext").unwrap_or("");
            let name = if ext.is_empty()
                || title
                    .to_ascii_lowercase()
                    .ends_with(&format!(".{}", ext.to_ascii_lowercase()))
            {
                title.to_owned()
            } else {
                format!("{title}.{ext}")
            };
            let size = i(body, "size").and_then(|n| u64::try_from(n).ok());
            match s(body, "url") {
                Some(url) => {
                    let mime = mime_for_name_or_binary(&safe_file_name(&name, "file"));
                    file(url, name, mime, size)
                }
                None => Attached::Line(format!("[document: {}]", safe_file_name(&name, "file"))),
            }
        }
        "audio_message" => match (s(body, "link_ogg"), s(body, "link_mp3")) {
            (Some(ogg), _) => file(ogg, format!("voice_{id}.ogg"), "audio/ogg", None),
            (None, Some(mp3)) => file(mp3, format!("voice_{id}.mp3"), "audio/mpeg", None),
            _ => Attached::Line("[voice message]".into()),
        },
        "sticker" => {
            let sticker_id = i(body, "sticker_id").unwrap_or(0);
            match body
                .get("images")
                .and_then(largest)
                .or_else(|| body.get("images_with_background").and_then(largest))
            {
                Some(url) => file(url, format!("sticker_{sticker_id}.png"), "image/png", None),
                None => Attached::Line("[sticker]".into()),
            }
        }
        "graffiti" => match s(body, "url") {
            Some(url) => file(url, format!("graffiti_{id}.png"), "image/png", None),
            None => Attached::Line("[graffiti]".into()),
        },
        "link" => Attached::Line(
            s(body, "url").map_or_else(|| "[link]".to_owned(), |u| format!("[link: {u}]")),
        ),
        "video" => Attached::Line(format!("[video: https://vk.com/video{owner}_{id}]")),
        "wall" => {
            let owner = i(body, "owner_id")
                .or_else(|| i(body, "to_id"))
                .or_else(|| i(body, "from_id"))
                .unwrap_or(0);
            Attached::Line(format!("[wall post: https://vk.com/wall{owner}_{id}]"))
        }
        "audio" => {
            let artist = s(body, "artist").unwrap_or("");
            let title = s(body, "title").unwrap_or("");
            Attached::Line(format!("[audio: {artist} – {title}]"))
        }
        "market" => Attached::Line(format!("[product: {}]", s(body, "title").unwrap_or("?"))),
        "poll" => Attached::Line(format!("[poll: {}]", s(body, "question").unwrap_or("?"))),
        "gift" => Attached::Line("[gift]".into()),
        "" => Attached::Line("[attachment]".into()),
        other => Attached::Line(format!("[VK {other}]")),
    }
}

fn message_new(m: &Value, options: &ParseOptions) -> Callback {
    let peer = i(m, "peer_id");
    // In a private chat the peer is the customer: a sender that cannot be read is the peer.
    let from = i(m, "from_id").or_else(|| peer.filter(|p| *p > 0 && *p < CHAT_PEER_BASE));
    let (Some(peer), Some(from)) = (peer, from) else {
        return Callback::Ignored("a message without a peer or sender");
    };
    if from == -options.group_id || i(m, "out") == Some(1) {
        return Callback::Ignored("our own message");
    }
    let Some(cmid) = i(m, "conversation_message_id")
        .filter(|c| *c > 0)
        .or_else(|| i(m, "id").filter(|c| *c > 0))
    else {
        return Callback::Ignored("a message without an id");
    };
    let (mut text, files, unsupported) = content_of(m);
    let mut reply_to = None;
    if let Some(r) = m.get("reply_message").filter(|r| r.is_object()) {
        match i(r, "conversation_message_id").filter(|c| *c > 0) {
            Some(c) if i(r, "peer_id").is_none_or(|p| p == peer) => reply_to = Some(c.to_string()),
            _ => {
                let quoted: String = s(r, "text")
                    .unwrap_or("")
                    .lines()
                    .map(|l| format!("> {l}\n"))
                    .collect();
                text = format!("{quoted}{text}");
            }
        }
    }
    let remote_id = cmid.to_string();
    let kind = if files.is_empty()
        && unsupported > 0
        && text_field(m, "text").unwrap_or_default().is_empty()
    {
        // Only things we cannot show: a notice naming them, never an "unanswered" message.
        ParsedKind::Notice { remote_id, text }
    } else if files.is_empty() && text.is_empty() {
        ParsedKind::Notice {
            remote_id,
            text: "[an empty VK message]".into(),
        }
    } else {
        ParsedKind::Message {
            remote_id,
            text,
            files,
            reply_to,
        }
    };
    event(
        options,
        peer,
        from,
        ms(i(m, "date")),
        format!("msg:{peer}:{cmid}"),
        kind,
    )
}

/// API versions before 5.103 (`object` is the message, `user_id` + `body`).
fn legacy_message_new(m: &Value, options: &ParseOptions) -> Callback {
    let Some(user) = i(m, "user_id").or_else(|| i(m, "from_id")) else {
        return Callback::Ignored("a message without a sender");
    };
    let peer = i(m, "peer_id").unwrap_or(user);
    if i(m, "out") == Some(1) {
        return Callback::Ignored("our own message");
    }
    let Some(id) = i(m, "conversation_message_id")
        .or_else(|| i(m, "id"))
        .filter(|c| *c > 0)
    else {
        return Callback::Ignored("a message without an id");
    };
    let (text, files, _) = content_of(m);
    let kind = if files.is_empty() && text.is_empty() {
        ParsedKind::Notice {
            remote_id: id.to_string(),
            text: "[an empty VK message]".into(),
        }
    } else {
        ParsedKind::Message {
            remote_id: id.to_string(),
            text,
            files,
            reply_to: None,
        }
    };
    event(
        options,
        peer,
        user,
        ms(i(m, "date")),
        format!("msg:{peer}:{id}"),
        kind,
    )
}

fn message_edit(m: &Value, options: &ParseOptions, event_id: Option<&str>) -> Callback {
    let (Some(peer), Some(from)) = (i(m, "peer_id"), i(m, "from_id")) else {
        return Callback::Ignored("an edit without a peer or sender");
    };
    if from == -options.group_id || i(m, "out") == Some(1) {
        return Callback::Ignored("our own edit");
    }
    let Some(cmid) = i(m, "conversation_message_id").filter(|c| *c > 0) else {
        return Callback::Ignored("an edit without an id");
    };
    let (text, _, _) = content_of(m);
    let version = event_id
        .map(str::to_owned)
        .or_else(|| i(m, "update_time").map(|t| t.to_string()))
        .unwrap_or_else(|| i(m, "date").unwrap_or(0).to_string());
    let at = ms(i(m, "update_time").or_else(|| i(m, "date")));
    event(
        options,
        peer,
        from,
        at,
        format!("edit:{peer}:{cmid}:{version}"),
        ParsedKind::Edit {
            remote_id: cmid.to_string(),
            text,
        },
    )
}

/// Any other event: a notice in the customer's room when it names a customer, else dropped.
fn notice_event(
    kind: &str,
    object: &Value,
    options: &ParseOptions,
    event_id: Option<&str>,
) -> Callback {
    let Some(user) = i(object, "user_id")
        .or_else(|| i(object, "from_id"))
        .filter(|u| *u > 0)
    else {
        return Callback::Ignored("an event about no customer");
    };
    let peer = i(object, "peer_id").unwrap_or(user);
    let text = match kind {
        "message_deny" => {
            "The customer no longer allows messages from the community; replies will fail."
                .to_owned()
        }
        "message_allow" => "The customer allowed messages from the community.".to_owned(),
        "message_event" => {
            let payload = object
                .get("payload")
                .map(Value::to_string)
                .unwrap_or_default();
            format!("[VK button pressed: {payload}]")
        }
        other => format!("[VK event {other}]"),
    };
    let key = event_id.map_or_else(
        || format!("{kind}:{peer}:{}", now_ms()),
        |e| format!("event:{e}"),
    );
    let remote_id = format!("event:{}", event_id.unwrap_or(kind));
    event(
        options,
        peer,
        user,
        now_ms(),
        key,
        ParsedKind::Notice { remote_id, text },
    )
}

/// Why an event could not be stored yet (the source is not acknowledged and sends it again).
pub use switchboard_kit::media::MediaError as RealizeError;

/// Fetch the event's files and build the core's [`Inbound`].
pub async fn realize(
    parsed: Parsed,
    sender: ContactProfile,
    api: &Api,
    host: &Arc<dyn Host>,
    max_download: u64,
) -> Result<Option<Inbound>, RealizeError> {
    let prefix = |text: String| -> String {
        if parsed.in_chat {
            let name = sender
                .display_name
                .clone()
                .unwrap_or_else(|| format!("id{}", parsed.user_id));
            if text.is_empty() {
                text
            } else {
                format!("{name}: {text}")
            }
        } else {
            text
        }
    };
    let event = match parsed.kind.clone() {
        ParsedKind::Message {
            remote_id,
            text,
            files,
            reply_to,
        } => {
            let mut content = media::fetch_remote(
                host.as_ref(),
                "vk",
                files,
                max_download,
                api.endpoint().http(),
            )
            .await?
            .into_content(&text);
            if parsed.in_chat && !content.text.is_empty() {
                content.text = prefix(content.text);
            }
            InboundEvent::Message {
                remote_id,
                content,
                reply_to,
            }
        }
        ParsedKind::Edit { remote_id, text } => InboundEvent::Edit {
            remote_id,
            content: Content {
                text: prefix(text),
                ..Content::default()
            },
        },
        ParsedKind::Read { remote_id } => InboundEvent::Read { remote_id },
        ParsedKind::Notice { remote_id, text } => InboundEvent::Notice {
            remote_id,
            content: Content {
                text: prefix(text),
                ..Content::default()
            },
        },
        ParsedKind::Typing => {
            host.typing(&parsed.conversation, &sender, true).await;
            return Ok(None);
        }
        ParsedKind::Choice {
            remote_id, payload, ..
        } => InboundEvent::Choice { remote_id, payload },
    };
    Ok(Some(Inbound {
        conversation: parsed.conversation,
        sender,
        timestamp_ms: parsed.timestamp_ms,
        dedup_key: parsed.dedup_key,
        event,
        addressed_to: None,
        group: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ParseOptions {
        ParseOptions {
            group_id: 193668024,
            chats: true,
        }
    }

    fn fixture(name: &str) -> Option<Vec<u8>> {
        switchboard_kit::test_host::fixture("vk", name)
    }

    fn parsed(name: &str) -> Option<Callback> {
        Some(parse_callback_json(&fixture(name)?, &options()).expect("a callback"))
    }

    fn event_of(c: Callback) -> Parsed {
        match c {
            Callback::Event(p) => *p,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn confirmation_and_echo() {
        let Some(c) = parsed("callback_confirmation.json") else {
            return;
        };
        assert_eq!(c, Callback::Confirmation);
        assert_eq!(
            parsed("callback_confirmation_full.json"),
            Some(Callback::Confirmation)
        );
        assert!(matches!(
            parsed("callback_message_reply.json"),
            Some(Callback::Ignored(_))
        ));
    }

    #[test]
    fn text_message() {
        let Some(c) = parsed("callback_message_new_text.json") else {
            return;
        };
        let p = event_of(c);
        assert_eq!(
            p.conversation,
            ConversationKey {
                account: "193668024".into(),
                chat: "228970688".into()
            }
        );
        assert_eq!(p.user_id, 228970688);
        assert_eq!(p.timestamp_ms, 1586054794000);
        assert_eq!(p.dedup_key, "msg:228970688:127");
        assert_eq!(
            p.kind,
            ParsedKind::Message {
                remote_id: "127".into(),
                text: "ПриВеТ".into(),
                files: vec![],
                reply_to: None
            }
        );
    }

    #[test]
    fn doc_and_photo_take_the_largest_size() {
        let Some(c) = parsed("callback_message_new_doc_and_photo.json") else {
            return;
        };
        let ParsedKind::Message { text, files, .. } = event_of(c).kind else {
            panic!()
        };
        assert_eq!(text, "Документы во вложении");
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].name, "Счёт №15.pdf");
        assert_eq!(files[0].mime, "application/pdf");
        assert_eq!(files[0].size, Some(183422));
        assert_eq!(files[1].mime, "image/jpeg");
        assert!(files[1].url.contains("z.jpg"), "{}", files[1].url);
    }

    #[test]
    fn voice_reply_to_our_message() {
        let Some(c) = parsed("callback_message_new_audio_message_reply.json") else {
            return;
        };
        let ParsedKind::Message {
            files, reply_to, ..
        } = event_of(c).kind
        else {
            panic!()
        };
        assert_eq!(reply_to.as_deref(), Some("127"));
        assert_eq!(files[0].mime, "audio/ogg");
        assert!(files[0].url.ends_with(".ogg"));
    }

    #[test]
    fn read_mark_and_button_notice() {
        let Some(c) = parsed("callback_message_read.json") else {
            return;
        };
        let p = event_of(c);
        assert_eq!(
            p.kind,
            ParsedKind::Read {
                remote_id: "130".into()
            }
        );
        assert_eq!(p.dedup_key, "read:228970688:130");
        let p = event_of(parsed("callback_message_event_button.json").unwrap());
        assert!(matches!(p.kind, ParsedKind::Notice { ref text, .. } if text.contains("confirm")));
    }

    /// A rating button's press is a choice (with the press's event id to answer); any other
    /// payload, or a forged rating payload, stays a notice.
    #[test]
    fn rating_presses_are_choices() {
        let options = ParseOptions {
            group_id: 42,
            chats: false,
        };
        let press = |payload: serde_json::Value| {
            parse_event(
                &serde_json::json!({"type": "message_event", "group_id": 42, "event_id": "ev1",
                    "object": {"user_id": 7, "peer_id": 7, "event_id": "3f1a2b", "payload": payload,
                               "conversation_message_id": 12}}),
                &options,
            )
        };
        let p = event_of(press(serde_json::json!({"rating": "sbr1:abc123:4"})));
        assert_eq!(
            p.kind,
            ParsedKind::Choice {
                remote_id: "12".into(),
                payload: "sbr1:abc123:4".into(),
                event_id: "3f1a2b".into()
            }
        );
        assert_eq!(p.dedup_key, "press:7:3f1a2b");
        let p = event_of(press(serde_json::json!(r#"{"rating":"sbr1:abc123:2"}"#)));
        assert!(
            matches!(p.kind, ParsedKind::Choice { ref payload, .. } if payload == "sbr1:abc123:2")
        );
        for other in [
            serde_json::json!({"rating": "sbr1:abc123:9"}),
            serde_json::json!({"button": "1"}),
        ] {
            let p = event_of(press(other));
            assert!(matches!(p.kind, ParsedKind::Notice { .. }), "{:?}", p.kind);
        }
    }

    #[test]
    fn legacy_payload_still_reads() {
        let Some(c) = parsed("callback_message_new_doc_legacy_api_5_80.json") else {
            return;
        };
        let p = event_of(c);
        assert_eq!(p.conversation.chat, "207690737");
        let ParsedKind::Message { files, .. } = p.kind else {
            panic!()
        };
        assert_eq!(files[0].name, "PDF.pdf");
    }

    #[test]
    fn chat_messages_and_wall_posts() {
        let Some(body) = fixture("longpoll_message_new_wall_repost_chat.json") else {
            return;
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        let update = &v["updates"][0];
        let p = event_of(parse_event(
            update,
            &ParseOptions {
                group_id: 183287114,
                chats: true,
            },
        ));
        assert!(p.in_chat);
        let ParsedKind::Message { text, .. } = p.kind else {
            panic!()
        };
        assert!(
            text.contains("[wall post: https://vk.com/wall212080679_3362]"),
            "{text}"
        );
        assert!(matches!(
            parse_event(
                update,
                &ParseOptions {
                    group_id: 183287114,
                    chats: false
                }
            ),
            Callback::Ignored(_)
        ));
    }

    #[test]
    fn stickers_graffiti_links_and_typing() {
        let body = br#"{"type":"message_new","group_id":1,"object":{"message":{"peer_id":5,"from_id":5,"conversation_message_id":9,"text":"",
            "attachments":[{"type":"sticker","sticker":{"sticker_id":163,"images":[{"url":"https://v/s128.png","width":128,"height":128},{"url":"https://v/s512.png","width":512,"height":512}]}},
                           {"type":"link","link":{"url":"https://example.com/a"}}]}}}"#;
        let p = event_of(
            parse_callback_json(
                body,
                &ParseOptions {
                    group_id: 1,
                    chats: true,
                },
            )
            .unwrap(),
        );
        let ParsedKind::Message { text, files, .. } = p.kind else {
            panic!()
        };
        assert_eq!(files[0].url, "https://v/s512.png");
        assert_eq!(files[0].mime, "image/png");
        assert_eq!(text, "[link: https://example.com/a]");
        let only_wall = br#"{"type":"message_new","group_id":1,"object":{"message":{"peer_id":5,"from_id":5,"conversation_message_id":10,"text":"",
            "attachments":[{"type":"wall","wall":{"id":3,"owner_id":-7}}]}}}"#;
        let p = event_of(
            parse_callback_json(
                only_wall,
                &ParseOptions {
                    group_id: 1,
                    chats: true,
                },
            )
            .unwrap(),
        );
        assert_eq!(
            p.kind,
            ParsedKind::Notice {
                remote_id: "10".into(),
                text: "[wall post: https://vk.com/wall-7_3]".into()
            }
        );
        let typing = br#"{"type":"message_typing_state","group_id":1,"event_id":"t1","object":{"state":"typing","from_id":5,"to_id":-1}}"#;
        assert_eq!(
            event_of(
                parse_callback_json(
                    typing,
                    &ParseOptions {
                        group_id: 1,
                        chats: true
                    }
                )
                .unwrap()
            )
            .kind,
            ParsedKind::Typing
        );
        let own = br#"{"type":"message_new","group_id":1,"object":{"message":{"peer_id":5,"from_id":-1,"conversation_message_id":11,"text":"x"}}}"#;
        assert!(matches!(
            parse_callback_json(
                own,
                &ParseOptions {
                    group_id: 1,
                    chats: true
                }
            )
            .unwrap(),
            Callback::Ignored(_)
        ));
    }

    /// Issue 14: ids and text in other JSON types than documented are read; a message whose id
    /// cannot be read is kept and shown in its conversation, never only acknowledged.
    #[test]
    fn wrongly_typed_fields_degrade_and_unplaceable_messages_are_unreadable() {
        let body = br#"{"type":"message_new","group_id":1,"event_id":"e1","object":{"message":{"peer_id":"5","from_id":5,"conversation_message_id":"12","date":"1700000000","text":77}}}"#;
        let Callback::Event(p) = parse_callback_json(body, &options()).unwrap() else {
            panic!()
        };
        assert_eq!(p.dedup_key, "msg:5:12");
        assert!(
            matches!(p.kind, ParsedKind::Message { ref text, .. } if text == "77"),
            "{:?}",
            p.kind
        );
        let no_from = br#"{"type":"message_new","group_id":1,"object":{"message":{"peer_id":5,"conversation_message_id":13,"text":"hi"}}}"#;
        let Callback::Event(p) = parse_callback_json(no_from, &options()).unwrap() else {
            panic!()
        };
        assert_eq!(p.user_id, 5);
        let no_id = br#"{"type":"message_new","group_id":1,"event_id":"e2","object":{"message":{"peer_id":5,"from_id":5,"conversation_message_id":"twelve","text":"hi there"}}}"#;
        let Callback::Unreadable(u) = parse_callback_json(no_id, &options()).unwrap() else {
            panic!()
        };
        assert_eq!(u.conversation.as_ref().map(|c| c.chat.as_str()), Some("5"));
        assert_eq!(u.dedup_key, "event:e2");
        assert!(u.raw.contains("hi there"));
        let nobody = br#"{"type":"message_new","group_id":1,"object":{"message":{"text":"hi"}}}"#;
        let Callback::Unreadable(u) = parse_callback_json(nobody, &options()).unwrap() else {
            panic!()
        };
        assert!(u.conversation.is_none());
    }

    #[test]
    fn garbage_is_not_a_panic() {
        let huge = br#"{"type":"message_new","object":{"message":{"peer_id":1,"from_id":1,"conversation_message_id":1,"attachments":[{"type":"photo","photo":{"sizes":[{"url":"a","width":9223372036854775807,"height":9223372036854775807}],"orig_photo":{"url":"b","width":-9223372036854775808,"height":2}}}]}}}"#;
        assert!(matches!(
            parse_callback_json(huge, &options()),
            Ok(Callback::Event(_))
        ));
        for body in [&b"{}"[..], b"[]", b"null", b"{\"type\":5}", b"{\"type\":\"message_new\",\"object\":{\"message\":7}}",
                     b"{\"type\":\"message_new\",\"object\":{\"message\":{\"peer_id\":\"x\",\"from_id\":1e300}}}"] {
            let _ = parse_callback_json(body, &options());
        }
        assert_eq!(safe_file_name("../. .bashrc", "file"), "bashrc");
    }

    /// Documents' names go through the kit's sanitiser (reserved Windows characters, trailing
    /// dots, device names, 255 bytes) and their types through the kit's table.
    #[test]
    fn document_names_and_types_follow_the_kit() {
        let doc = |title: &str, ext: &str| {
            let body = serde_json::json!({"type": "message_new", "group_id": 193668024,
                "object": {"message": {"date": 1, "from_id": 7, "peer_id": 7,
                "conversation_message_id": 3, "text": "",
                "attachments": [{"type": "doc", "doc": {"id": 1, "owner_id": 7,
                "title": title, "ext": ext, "url": "https://vk.example/doc", "size": 10}}]}}});
            let ParsedKind::Message { files, .. } =
                event_of(parse_callback_json(body.to_string().as_bytes(), &options()).unwrap())
                    .kind
            else {
                panic!()
            };
            let f = files.into_iter().next().expect("a file");
            (f.name, f.mime)
        };
        assert_eq!(
            doc("what?", "pptx"),
            (
                "what_.pptx".to_owned(),
                "application/vnd.openxmlformats-officedocument.presentationml.presentation"
                    .to_owned()
            )
        );
        assert_eq!(doc("nul", "txt").0, "_nul.txt");
        assert_eq!(doc("scan.pdf", "").1, "application/pdf");
        let long = doc(&"ж".repeat(150), "pdf").0;
        assert!(long.len() <= 255 && long.ends_with(".pdf"), "{long}");
    }
}
