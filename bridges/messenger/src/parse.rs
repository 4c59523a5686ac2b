//! A webhook delivery → what it means, without any I/O: [`parse_body`] is pure (and fuzzed).
//!
//! Meta posts `{"object":"page"|"instagram","entry":[{"id":<account>,"time":…,"messaging":[…]}]}`;
//! each `messaging` item is one event from one customer (`sender.id`, a Page-scoped id on
//! Messenger, an Instagram-scoped id on Instagram) to the account (`recipient.id`). What an item
//! carries decides what it becomes:
//!
//! | item | becomes |
//! |---|---|
//! | `message` with text / attachments / sticker / quick reply / `reply_to` | [`Kind::Message`] (story replies and shares as text with their link) |
//! | `message` with `is_echo` | nothing: our own sends (or the Page inbox's) coming back |
//! | `message` with `is_deleted` (Instagram) | [`Kind::Delete`] |
//! | `message_edit` (Instagram) | [`Kind::Edit`] when the new text is given, else a notice |
//! | `reaction` (`react` / `unreact`) | [`Kind::Reaction`] |
//! | `read` (`watermark` on Messenger, `mid` on Instagram) | [`Kind::Read`] |
//! | `delivery` (`mids`, `watermark`) | one [`Kind::Delivered`] per mid |
//! | `postback` (a button the customer tapped) | [`Kind::Message`] with the button's title |
//! | anything else with a sender (referral, optin, …) | [`Kind::Notice`] saying what it was |
//!
//! An item without a usable sender, or an `entry` with `changes` instead of `messaging`
//! (Instagram comments and mentions), has no conversation and is skipped (counted). A malformed
//! item never spoils the others.

use serde_json::Value;

/// Which of Meta's two messaging networks a delivery comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Platform {
    /// A Facebook Page through the Messenger Platform.
    Messenger,
    /// An Instagram professional account through the Instagram Messaging API.
    Instagram,
}

impl Platform {
    /// The channel's name: config section, ghost ids, route prefix.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Messenger => "messenger",
            Platform::Instagram => "instagram",
        }
    }

    /// What the network is called in sentences for operators.
    pub fn label(self) -> &'static str {
        match self {
            Platform::Messenger => "Messenger",
            Platform::Instagram => "Instagram",
        }
    }

    /// The `object` field of this network's webhook deliveries.
    pub fn object(self) -> &'static str {
        match self {
            Platform::Messenger => "page",
            Platform::Instagram => "instagram",
        }
    }
}

/// Kinds of files a message can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Audio,
    Video,
    File,
}

impl MediaKind {
    /// The Send API's attachment `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::File => "file",
        }
    }

    /// The kind for a file of this mime type, when we send one.
    pub fn for_mime(mime: &str) -> MediaKind {
        let mime = mime.to_ascii_lowercase();
        if mime.starts_with("image/") {
            MediaKind::Image
        } else if mime.starts_with("audio/") {
            MediaKind::Audio
        } else if mime.starts_with("video/") {
            MediaKind::Video
        } else {
            MediaKind::File
        }
    }
}

/// A file in a customer's message: fetched from `url` (Meta's CDN, signed URLs, no token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    pub kind: MediaKind,
    pub url: String,
    /// Set for stickers: they arrive as images.
    pub sticker: bool,
}

/// Which of our messages a read or delivery receipt covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mark {
    /// This message (Instagram's `read.mid`, Messenger's `delivery.mids`).
    Mid(String),
    /// Everything we sent up to this time, in ms (Messenger's `watermark`).
    Watermark(i64),
}

/// What one event means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Message {
        mid: String,
        text: String,
        files: Vec<RemoteFile>,
        reply_to: Option<String>,
    },
    Notice {
        mid: String,
        text: String,
    },
    Edit {
        mid: String,
        text: String,
    },
    Delete {
        mid: String,
    },
    /// `emoji: None` takes the reaction back.
    Reaction {
        mid: String,
        emoji: Option<String>,
    },
    /// A tapped quick reply of a rating request (its payload is the kit's rating payload).
    Choice {
        mid: String,
        payload: String,
    },
    Read(Mark),
    Delivered(Mark),
}

/// One event of a delivery, with where it belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The Page id or Instagram account id (`entry.id`).
    pub account: String,
    /// The customer's PSID / IGSID.
    pub contact: String,
    pub timestamp_ms: i64,
    /// Unique per event: `msg:<mid>`, `edit:<mid>:<n>`, `reaction:…`, `read:…`, `delivered:…`.
    pub dedup_key: String,
    pub kind: Kind,
}

/// What a delivery held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub events: Vec<Event>,
    /// Our own messages echoed back (`is_echo`), never bridged.
    pub echoes: usize,
    /// Items without a conversation (comments, mentions, optins without a sender, malformed).
    pub skipped: usize,
}

/// Why a body is not a delivery of this network at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not a webhook delivery (no object/entry)")]
    NotADelivery,
    #[error("a delivery for {0:?}, not for this channel")]
    WrongObject(String),
}

/// Longest id or mid we accept (Instagram mids are ~200 characters).
const MAX_ID_LEN: usize = 512;

/// An id as Meta sends it: a string (or, in old payloads, a number) of printable ASCII.
fn id_of(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let ok = !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(s)
}

/// A customer id: digits and letters only (PSIDs and IGSIDs are numbers).
fn contact_of(v: Option<&Value>) -> Option<String> {
    id_of(v).filter(|s| {
        s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Text as shown in Matrix: control characters other than newlines and tabs removed.
fn clean_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// Meta's timestamps are ms; a few old payloads (postbacks) carry seconds.
fn timestamp_ms(v: Option<&Value>) -> Option<i64> {
    let t = v?.as_i64().or_else(|| v?.as_f64().map(|f| f as i64))?;
    if t <= 0 {
        return None;
    }
    Some(if t < 100_000_000_000 {
        t.saturating_mul(1000)
    } else {
        t
    })
}

/// Emoji for the reaction names Messenger uses when `emoji` is absent.
fn emoji_for(name: &str) -> Option<&'static str> {
    Some(match name {
        "love" => "❤️",
        "like" => "👍",
        "dislike" => "👎",
        "smile" => "😆",
        "wow" => "😮",
        "sad" => "😢",
        "angry" => "😠",
        _ => return None,
    })
}

/// Parse a webhook body for `platform`.
pub fn parse_body(body: &[u8], platform: Platform) -> Result<Parsed, ParseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    parse_value(&value, platform)
}

/// [`parse_body`] on a parsed value.
pub fn parse_value(value: &Value, platform: Platform) -> Result<Parsed, ParseError> {
    let (Some(object), Some(entries)) = (
        str_of(value, "object"),
        value.get("entry").and_then(Value::as_array),
    ) else {
        return Err(ParseError::NotADelivery);
    };
    if object != platform.object() {
        return Err(ParseError::WrongObject(object.chars().take(40).collect()));
    }
    let mut parsed = Parsed::default();
    for entry in entries {
        let account = id_of(entry.get("id"));
        let entry_time = timestamp_ms(entry.get("time"));
        let Some(items) = entry.get("messaging").and_then(Value::as_array) else {
            // `changes` (comments, mentions) and entries of other fields: no conversation.
            parsed.skipped += 1;
            continue;
        };
        let Some(account) = account else {
            parsed.skipped += items.len().max(1);
            continue;
        };
        for item in items {
            parse_item(item, &account, entry_time, platform, &mut parsed);
        }
    }
    Ok(parsed)
}

fn parse_item(
    item: &Value,
    account: &str,
    entry_time: Option<i64>,
    platform: Platform,
    out: &mut Parsed,
) {
    let message = item.get("message").filter(|m| m.is_object());
    if message.is_some_and(|m| m.get("is_echo").and_then(Value::as_bool) == Some(true)) {
        out.echoes += 1;
        return;
    }
    let Some(contact) = contact_of(item.get("sender").and_then(|s| s.get("id"))) else {
        out.skipped += 1;
        return;
    };
    if contact == account {
        // The account itself as sender without `is_echo`: still ours.
        out.echoes += 1;
        return;
    }
    let timestamp_ms = timestamp_ms(item.get("timestamp"))
        .or(entry_time)
        .unwrap_or(0);
    let mut push = |dedup_key: String, kind: Kind| {
        out.events.push(Event {
            account: account.to_owned(),
            contact: contact.clone(),
            timestamp_ms,
            dedup_key,
            kind,
        });
    };
    if let Some(message) = message {
        let Some(mid) = id_of(message.get("mid")) else {
            out.skipped += 1;
            return;
        };
        let (key, kind) = message_kind(message, mid, platform);
        push(key, kind);
    } else if let Some(edit) = item.get("message_edit").filter(|e| e.is_object()) {
        let Some(mid) = id_of(edit.get("mid")) else {
            out.skipped += 1;
            return;
        };
        let n = edit.get("num_edit").and_then(Value::as_i64).unwrap_or(0);
        let key = format!("edit:{mid}:{n}:{timestamp_ms}");
        match str_of(edit, "text")
            .map(clean_text)
            .filter(|t| !t.trim().is_empty())
        {
            Some(text) => push(key, Kind::Edit { mid, text }),
            None => push(
                key,
                Kind::Notice {
                    mid: format!("edit:{mid}:{n}"),
                    text: format!(
                        "The customer edited a message on {}; the new text was not given.",
                        platform.label()
                    ),
                },
            ),
        }
    } else if let Some(reaction) = item.get("reaction").filter(|r| r.is_object()) {
        let Some(mid) = id_of(reaction.get("mid")) else {
            out.skipped += 1;
            return;
        };
        let action = str_of(reaction, "action").unwrap_or("react");
        let emoji = if action == "unreact" {
            None
        } else {
            let given = str_of(reaction, "emoji")
                .map(clean_text)
                .filter(|e| !e.trim().is_empty() && e.len() <= 64);
            let named = str_of(reaction, "reaction")
                .and_then(emoji_for)
                .map(str::to_owned);
            match given.or(named) {
                Some(e) => Some(e),
                None => {
                    out.skipped += 1;
                    return;
                }
            }
        };
        let key = format!(
            "reaction:{contact}:{mid}:{action}:{}:{timestamp_ms}",
            emoji.as_deref().unwrap_or("")
        );
        push(key, Kind::Reaction { mid, emoji });
    } else if let Some(read) = item.get("read").filter(|r| r.is_object()) {
        if let Some(mid) = id_of(read.get("mid")) {
            push(format!("read:{contact}:{mid}"), Kind::Read(Mark::Mid(mid)));
        } else if let Some(w) = read
            .get("watermark")
            .and_then(Value::as_i64)
            .filter(|w| *w > 0)
        {
            push(
                format!("read:{contact}:w{w}"),
                Kind::Read(Mark::Watermark(w)),
            );
        } else {
            out.skipped += 1;
        }
    } else if let Some(delivery) = item.get("delivery").filter(|d| d.is_object()) {
        let mids: Vec<String> = delivery
            .get("mids")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|m| id_of(Some(m))).collect())
            .unwrap_or_default();
        if !mids.is_empty() {
            for mid in mids {
                push(format!("delivered:{mid}"), Kind::Delivered(Mark::Mid(mid)));
            }
        } else if let Some(w) = delivery
            .get("watermark")
            .and_then(Value::as_i64)
            .filter(|w| *w > 0)
        {
            push(
                format!("delivered:{contact}:w{w}"),
                Kind::Delivered(Mark::Watermark(w)),
            );
        } else {
            out.skipped += 1;
        }
    } else if let Some(postback) = item.get("postback").filter(|p| p.is_object()) {
        let title = str_of(postback, "title")
            .map(clean_text)
            .filter(|t| !t.trim().is_empty());
        let payload = str_of(postback, "payload")
            .map(clean_text)
            .filter(|t| !t.trim().is_empty());
        let text = match (title, payload) {
            (Some(t), _) => t,
            (None, Some(p)) => format!("[button: {p}]"),
            (None, None) => "[tapped a button]".to_owned(),
        };
        let mid = id_of(postback.get("mid"))
            .unwrap_or_else(|| format!("postback:{contact}:{timestamp_ms}"));
        push(
            format!("postback:{mid}"),
            Kind::Message {
                mid,
                text,
                files: Vec::new(),
                reply_to: None,
            },
        );
    } else {
        let what = item
            .as_object()
            .and_then(|o| {
                o.keys()
                    .find(|k| !matches!(k.as_str(), "sender" | "recipient" | "timestamp"))
                    .cloned()
            })
            .unwrap_or_else(|| "event".to_owned());
        let what: String = what
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        let detail = match what.as_str() {
            "referral" => {
                let r = &item["referral"];
                let parts: Vec<String> = ["source", "type", "ref"]
                    .iter()
                    .filter_map(|k| str_of(r, k).map(|v| format!("{k} {}", clean_text(v))))
                    .collect();
                format!(
                    "The customer arrived through a link or ad ({}).",
                    parts.join(", ")
                )
            }
            "optin" => "The customer opted in to messages.".to_owned(),
            other => format!(
                "{} sent an event Switchboard does not show ({other}).",
                platform.label()
            ),
        };
        let mid = format!("{what}:{contact}:{timestamp_ms}");
        push(format!("event:{mid}"), Kind::Notice { mid, text: detail });
    }
}

/// A `message` item (not an echo) → its dedup key and meaning.
fn message_kind(message: &Value, mid: String, platform: Platform) -> (String, Kind) {
    let key = format!("msg:{mid}");
    if message.get("is_deleted").and_then(Value::as_bool) == Some(true) {
        return (format!("delete:{mid}"), Kind::Delete { mid });
    }
    if message.get("is_unsupported").and_then(Value::as_bool) == Some(true) {
        let text = format!(
            "The customer sent a kind of message {} does not let Switchboard show.",
            platform.label()
        );
        return (key, Kind::Notice { mid, text });
    }
    let mut lines: Vec<String> = Vec::new();
    let mut files = Vec::new();
    let mut unknown = Vec::new();
    let reply_to_value = message.get("reply_to");
    if let Some(story) = reply_to_value.and_then(|r| r.get("story")) {
        match str_of(story, "url") {
            Some(url) => lines.push(format!("↩️ Replied to your story: {}", clean_text(url))),
            None => lines.push("↩️ Replied to your story".to_owned()),
        }
    }
    let reply_to = reply_to_value.and_then(|r| id_of(r.get("mid")));
    let text = str_of(message, "text")
        .map(clean_text)
        .filter(|t| !t.trim().is_empty());
    let quick_reply = message
        .get("quick_reply")
        .and_then(|q| str_of(q, "payload"))
        .map(clean_text);
    // A rating request's quick reply: the core reads the payload (the title is only its label).
    if let Some(payload) = quick_reply
        .as_deref()
        .filter(|p| switchboard_kit::rating::parse_payload(p).is_some())
    {
        return (
            key,
            Kind::Choice {
                mid,
                payload: payload.to_owned(),
            },
        );
    }
    match (text, quick_reply) {
        (Some(t), _) => lines.push(t),
        (None, Some(p)) if !p.trim().is_empty() => lines.push(format!("[quick reply: {p}]")),
        _ => {}
    }
    let sticker = message.get("sticker_id").is_some();
    for attachment in message
        .get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = str_of(attachment, "type").unwrap_or("");
        let payload = attachment.get("payload");
        let url = payload
            .and_then(|p| str_of(p, "url"))
            .map(clean_text)
            .filter(|u| u.starts_with("http"));
        let title = str_of(attachment, "title")
            .or_else(|| payload.and_then(|p| str_of(p, "title")))
            .map(clean_text);
        let media = match kind {
            "image" => Some(MediaKind::Image),
            "audio" => Some(MediaKind::Audio),
            "video" => Some(MediaKind::Video),
            "file" => Some(MediaKind::File),
            _ => None,
        };
        match (media, url) {
            (Some(kind), Some(url)) => {
                let is_sticker = sticker || payload.is_some_and(|p| p.get("sticker_id").is_some());
                files.push(RemoteFile {
                    kind,
                    url,
                    sticker: is_sticker,
                });
            }
            (None, Some(url)) => {
                let label = match kind {
                    "share" => "Shared a post",
                    "story_mention" => "Mentioned you in their story",
                    "ig_reel" | "reel" => "Shared a reel",
                    "ig_post" => "Shared a post",
                    "fallback" => "Shared a link",
                    _ => "Sent",
                };
                match title.filter(|t| !t.trim().is_empty()) {
                    Some(t) => lines.push(format!("{label}: {t} {url}")),
                    None => lines.push(format!("{label}: {url}")),
                }
            }
            (_, None) if kind == "location" => {
                let c = payload.and_then(|p| p.get("coordinates"));
                let lat = c.and_then(|c| c.get("lat")).and_then(Value::as_f64);
                let long = c.and_then(|c| c.get("long")).and_then(Value::as_f64);
                match (lat, long) {
                    (Some(lat), Some(long)) => lines.push(format!(
                        "Location: geo:{lat:.6},{long:.6} https://www.openstreetmap.org/?mlat={lat:.6}&mlon={long:.6}"
                    )),
                    _ => unknown.push("location".to_owned()),
                }
            }
            _ => unknown.push(
                kind.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(40)
                    .collect(),
            ),
        }
    }
    if lines.is_empty() && files.is_empty() {
        let what = if unknown.is_empty() {
            "an empty message".to_owned()
        } else {
            format!("a {} attachment", unknown.join(", "))
        };
        let text = format!("The customer sent {what}, which Switchboard cannot show.");
        return (key, Kind::Notice { mid, text });
    }
    for u in unknown {
        lines.push(format!("[{u} attachment not shown]"));
    }
    (
        key,
        Kind::Message {
            mid,
            text: lines.join("\n"),
            files,
            reply_to,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures")
                .join(path),
        )
        .unwrap()
    }

    fn one(path: &str, platform: Platform) -> Event {
        let parsed = parse_body(&fixture(path), platform).unwrap();
        assert_eq!(parsed.events.len(), 1, "{path}: {parsed:?}");
        parsed.events.into_iter().next().unwrap()
    }

    #[test]
    fn messenger_text_and_reply() {
        let e = one("messenger/text.json", Platform::Messenger);
        assert_eq!(
            (e.account.as_str(), e.contact.as_str(), e.timestamp_ms),
            ("100000000000001", "7000000000000001", 1458692752478)
        );
        assert_eq!(e.dedup_key, "msg:m_1457764197618:41d102a3e1ae206a38");
        assert_eq!(
            e.kind,
            Kind::Message {
                mid: "m_1457764197618:41d102a3e1ae206a38".into(),
                text: "hello, world!".into(),
                files: vec![],
                reply_to: None
            }
        );
        let e = one("messenger/reply_to.json", Platform::Messenger);
        let Kind::Message { reply_to, .. } = e.kind else {
            panic!()
        };
        assert_eq!(
            reply_to.as_deref(),
            Some("m_1fTq8oLumEyIp3Q2MR-aY7IfLZDamVrALniheU")
        );
        let e = one("messenger/quick_reply.json", Platform::Messenger);
        assert!(matches!(e.kind, Kind::Message { ref text, .. } if text == "hello, world!"));
        let e = one("messenger/legacy_text_with_nlp.json", Platform::Messenger);
        assert!(
            matches!(e.kind, Kind::Message { ref text, .. } if text == "bye, see you tomorrow at 4pm")
        );
    }

    #[test]
    fn messenger_attachments() {
        for (file, kind) in [
            ("messenger/attachment_image.json", MediaKind::Image),
            ("messenger/attachment_audio.json", MediaKind::Audio),
            ("messenger/attachment_file.json", MediaKind::File),
            (
                "messenger/legacy_image_attachment_2017.json",
                MediaKind::Image,
            ),
        ] {
            let e = one(file, Platform::Messenger);
            let Kind::Message { files, text, .. } = e.kind else {
                panic!("{file}")
            };
            assert_eq!(files.len(), 1, "{file}");
            assert_eq!(files[0].kind, kind);
            assert!(files[0].url.starts_with("https://"), "{}", files[0].url);
            assert!(text.is_empty());
        }
    }

    #[test]
    fn messenger_statuses_reactions_postbacks() {
        let e = one("messenger/reaction.json", Platform::Messenger);
        assert_eq!(
            e.kind,
            Kind::Reaction {
                mid: "m_1457764197618:41d102a3e1ae206a38".into(),
                emoji: Some("❤️".into())
            }
        );
        let e = one("messenger/read.json", Platform::Messenger);
        assert_eq!(e.kind, Kind::Read(Mark::Watermark(1458668856253)));
        let e = one("messenger/delivery.json", Platform::Messenger);
        assert_eq!(
            e.kind,
            Kind::Delivered(Mark::Mid("mid.1458668856218:ed81099e15d3f4f233".into()))
        );
        let e = one("messenger/postback.json", Platform::Messenger);
        assert_eq!(e.timestamp_ms, 1527459824000, "seconds become ms");
        assert!(
            matches!(e.kind, Kind::Message { ref text, ref mid, .. } if text == "TITLE-FOR-THE-CTA" && mid == "m_MESSAGE-ID")
        );
        let e = one("messenger/legacy_postback.json", Platform::Messenger);
        assert!(matches!(e.kind, Kind::Message { ref text, .. } if text == "[button: MY_PAYLOAD]"));
        let e = one("messenger/legacy_referral.json", Platform::Messenger);
        assert!(
            matches!(e.kind, Kind::Notice { ref text, .. } if text.contains("ref MY_REF")),
            "{e:?}"
        );
        // An optin without a sender has no conversation.
        let p = parse_body(&fixture("messenger/legacy_optin.json"), Platform::Messenger).unwrap();
        assert_eq!((p.events.len(), p.skipped), (0, 1));
    }

    #[test]
    fn echoes_are_not_bridged() {
        for (file, platform) in [
            ("messenger/echo_text.json", Platform::Messenger),
            ("messenger/legacy_echo_2016.json", Platform::Messenger),
            ("instagram/echo_text.json", Platform::Instagram),
        ] {
            let p = parse_body(&fixture(file), platform).unwrap();
            assert!(p.events.is_empty(), "{file}");
            assert_eq!(p.echoes, 1, "{file}");
        }
    }

    #[test]
    fn instagram_kinds() {
        let e = one("instagram/raw_text.json", Platform::Instagram);
        assert_eq!(
            (e.account.as_str(), e.contact.as_str()),
            ("17841472110558136", "489760440872775")
        );
        assert!(matches!(e.kind, Kind::Message { ref text, .. } if text == "Omg"));
        let e = one("instagram/raw_image.json", Platform::Instagram);
        assert!(
            matches!(e.kind, Kind::Message { ref files, .. } if files.len() == 1 && files[0].kind == MediaKind::Image)
        );
        let e = one("instagram/deleted.json", Platform::Instagram);
        assert!(matches!(e.kind, Kind::Delete { .. }));
        assert!(e.dedup_key.starts_with("delete:"));
        let e = one("instagram/raw_message_edit.json", Platform::Instagram);
        assert!(
            matches!(e.kind, Kind::Notice { ref text, .. } if text.contains("edited")),
            "no text in the fixture: {e:?}"
        );
        let e = one("instagram/reaction.json", Platform::Instagram);
        assert!(matches!(e.kind, Kind::Reaction { emoji: Some(ref x), .. } if x == "❤️"));
        let e = one("instagram/unreaction.json", Platform::Instagram);
        assert!(matches!(e.kind, Kind::Reaction { emoji: None, .. }));
        let e = one("instagram/read.json", Platform::Instagram);
        assert!(matches!(e.kind, Kind::Read(Mark::Mid(_))));
        let e = one("instagram/share_post.json", Platform::Instagram);
        assert!(
            matches!(e.kind, Kind::Message { ref text, ref files, .. } if text.starts_with("Shared a post: https://lookaside") && files.is_empty())
        );
        let e = one("instagram/story_reply.json", Platform::Instagram);
        let Kind::Message { text, .. } = e.kind else {
            panic!()
        };
        assert!(
            text.starts_with("↩️ Replied to your story: https://")
                && text.ends_with("\nNice story!"),
            "{text}"
        );
        let p = parse_body(
            &fixture("instagram/raw_changes_mentions.json"),
            Platform::Instagram,
        )
        .unwrap();
        assert_eq!((p.events.len(), p.skipped), (0, 1));
    }

    #[test]
    fn edits_with_text_become_edits() {
        let body = br#"{"object":"instagram","entry":[{"id":"1","time":1,"messaging":[{"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":1740157200421,"message_edit":{"mid":"m1","text":"new words","num_edit":1}}]}]}"#;
        let p = parse_body(body, Platform::Instagram).unwrap();
        assert_eq!(
            p.events[0].kind,
            Kind::Edit {
                mid: "m1".into(),
                text: "new words".into()
            }
        );
    }

    /// Every fixture, truncated at every byte and with bytes replaced, parses without panicking
    /// into events that keep the fuzz target's invariants (a cheap stand-in for the fuzzer).
    #[test]
    fn survives_truncation_and_mutation() {
        let dirs = ["messenger", "instagram"];
        let mut bodies = Vec::new();
        for d in dirs {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures")
                .join(d);
            for e in std::fs::read_dir(dir).unwrap() {
                bodies.push(std::fs::read(e.unwrap().path()).unwrap());
            }
        }
        let check = |body: &[u8]| {
            for platform in [Platform::Messenger, Platform::Instagram] {
                let Ok(p) = parse_body(body, platform) else {
                    continue;
                };
                for e in p.events {
                    assert!(!e.account.is_empty() && e.contact != e.account && e.timestamp_ms >= 0);
                    let texts: Vec<&str> = match &e.kind {
                        Kind::Message { text, .. }
                        | Kind::Notice { text, .. }
                        | Kind::Edit { text, .. } => vec![text],
                        Kind::Reaction { emoji: Some(x), .. } => vec![x],
                        _ => vec![],
                    };
                    for t in texts {
                        assert!(
                            !t.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
                            "{t:?}"
                        );
                    }
                }
            }
        };
        for body in &bodies {
            for cut in 0..body.len() {
                check(&body[..cut]);
            }
            for (i, replacement) in body
                .iter()
                .enumerate()
                .map(|(i, _)| (i, [b'"', b'0', b'{', b'\\', 0xff][i % 5]))
            {
                let mut m = body.clone();
                m[i] = replacement;
                check(&m);
            }
        }
    }

    #[test]
    fn wrong_objects_and_garbage() {
        assert!(matches!(
            parse_body(&fixture("messenger/text.json"), Platform::Instagram),
            Err(ParseError::WrongObject(_))
        ));
        assert!(matches!(
            parse_body(b"{", Platform::Messenger),
            Err(ParseError::NotJson(_))
        ));
        assert_eq!(
            parse_body(b"[]", Platform::Messenger),
            Err(ParseError::NotADelivery)
        );
        // One malformed item does not spoil the next.
        let body = br#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"message":{"text":"no mid"}},{"sender":{"id":"2"},"timestamp":5,"message":{"mid":"m2","text":"ok"}}]}]}"#;
        let p = parse_body(body, Platform::Messenger).unwrap();
        assert_eq!((p.events.len(), p.skipped), (1, 1));
        // Unknown attachment types become a notice.
        let body = br#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"timestamp":5,"message":{"mid":"m3","attachments":[{"type":"hologram","payload":{}}]}}]}]}"#;
        let p = parse_body(body, Platform::Messenger).unwrap();
        assert!(
            matches!(p.events[0].kind, Kind::Notice { ref text, .. } if text.contains("hologram"))
        );
    }
}
