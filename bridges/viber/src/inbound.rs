//! Viber callbacks → the core's [`Inbound`] events.
//!
//! Two steps, so the part that reads outside input is pure and can be fuzzed on its own:
//!
//! 1. [`parse_callback_json`] / [`parse_event`] say what one callback means. No I/O.
//! 2. [`realize`] fetches the message's file from its `media` URL into the media store and
//!    builds the [`Inbound`]. A file that can never be fetched becomes a line of text; a
//!    transient failure is an error, so the callback is answered 5xx and Viber delivers again.
//!
//! What is bridged: `message` (text, picture, video, file, sticker, location, contact, url; other
//! types as a notice naming them), `delivered` → Delivered, `seen` → Read and `failed` → Failed
//! with Viber's `desc`, all three about our own message by its `message_token`; `unsubscribed` →
//! a notice (operators should know replies will fail). `subscribed` and `conversation_started`
//! are acknowledged and not bridged: they carry no message, and a room for everyone who merely
//! opened the bot's chat would be noise (the customer's first message opens the conversation).
//! `webhook` (Viber checking the URL) is answered 200 and nothing else. A `text` message that is
//! exactly a rating payload is the customer pressing a rating keyboard's `reply` button (Viber
//! sends the button's `ActionBody` as their message): a [`ParsedKind::Choice`].
//!
//! Ids: a message's remote id is its `message_token` (a 64-bit number, unique per bot; ours come
//! back from `send_message`). Dedup keys are `msg:<token>`, `delivered:<token>`, `seen:<token>`,
//! `failed:<token>`, `unsubscribed:<user>:<token>`.

use std::sync::Arc;

use serde_json::Value;
use switchboard_channel::{
    ContactProfile, Content, ConversationKey, Host, Inbound, InboundEvent, Unreadable,
};
use switchboard_kit::media;

use switchboard_kit::mime::{mime_for_name, mime_for_name_or_binary};
use switchboard_kit::now_ms;

use crate::api::Api;

/// A file the message carries, still on Viber's side.
pub use switchboard_kit::media::RemoteFile;

/// The sender as Viber describes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sender {
    pub id: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    /// E.164 (`+<digits>`), when Viber gave a phone number.
    pub phone: Option<String>,
}

/// What a callback means, before any I/O.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub conversation: ConversationKey,
    pub sender: Sender,
    pub timestamp_ms: i64,
    pub dedup_key: String,
    pub kind: ParsedKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ParsedKind {
    Message {
        remote_id: String,
        text: String,
        file: Option<RemoteFile>,
    },
    Notice {
        remote_id: String,
        text: String,
    },
    Delivered {
        remote_id: String,
    },
    Read {
        remote_id: String,
    },
    Failed {
        remote_id: String,
        reason: String,
    },
    /// A rating keyboard's `reply` button pressed: Viber sends its `ActionBody` (the kit's
    /// payload) as the customer's text message, `remote_id` being that message's token.
    Choice {
        remote_id: String,
        payload: String,
    },
}

/// What one callback asks of us.
#[derive(Clone, Debug, PartialEq)]
pub enum Callback {
    /// Store this, then answer 200.
    Event(Box<Parsed>),
    /// Answer 200 and forget it.
    Ignored(&'static str),
    /// Keep and show it raw (`Host::unreadable`), then answer 200: Viber sent something the
    /// bridge cannot place as an event (no sender, no token, an event kind it does not know).
    Unreadable(Box<Unreadable>),
}

/// Input that could not be read: in the conversation of `user` when that much is known.
fn unreadable(v: &Value, account: &str, user: Option<&str>, reason: String) -> Callback {
    let raw = v.to_string();
    let key = match token(v) {
        Some(t) => format!("{}:{t}", s(v, "event").unwrap_or("event")),
        None => Unreadable::digest_key(raw.as_bytes()),
    };
    let input = Unreadable::new(
        key,
        "a Viber callback",
        reason,
        raw.as_bytes(),
        timestamp(v),
    );
    let input = match user {
        Some(user) => input.in_conversation(
            ConversationKey {
                account: account.to_owned(),
                chat: user.to_owned(),
            },
            None,
        ),
        None => input,
    };
    Callback::Unreadable(Box::new(input))
}

/// An id Viber documents as a string, also when it arrives as a number.
fn id(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
    .filter(|i| !i.is_empty() && i.len() <= 256)
}

/// Text Viber documents as a string, also when it arrives as a number or a boolean.
fn text_of(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A message token as text: Viber sends a 64-bit number (some proxies turn it into a string,
/// which is taken as it is when it is short and printable).
fn token(v: &Value) -> Option<String> {
    match v.get("message_token")? {
        Value::Number(n) => n
            .as_u64()
            .map(|t| t.to_string())
            .or_else(|| n.as_i64().map(|t| t.to_string())),
        Value::String(t)
            if !t.trim().is_empty() && t.len() <= 64 && t.chars().all(|c| c.is_ascii_graphic()) =>
        {
            Some(t.clone())
        }
        _ => None,
    }
}

fn timestamp(v: &Value) -> i64 {
    let t = match v.get("timestamp") {
        Some(Value::String(t)) => t.trim().parse().ok(),
        Some(t) => t.as_i64(),
        None => None,
    };
    match t {
        Some(t) if t > 0 && t < 100_000_000_000_000 => t,
        _ => now_ms(),
    }
}

/// A phone number in E.164 (`+<7-15 digits>`), if `raw` is one: spaces, dashes, dots and
/// brackets dropped, a leading `00` read as `+`.
pub fn e164(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let international = trimmed.starts_with('+') || trimmed.starts_with("00");
    if trimmed
        .chars()
        .any(|c| !(c.is_ascii_digit() || " -.()+/".contains(c)))
    {
        return None;
    }
    let mut digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if trimmed.starts_with("00") {
        digits.drain(..2);
    }
    if !international && digits.len() < 8 {
        return None;
    }
    (7..=15)
        .contains(&digits.len())
        .then(|| format!("+{digits}"))
}

fn sender_of(v: &Value) -> Option<Sender> {
    let id = id(v, "id")?;
    let name = text_of(v, "name")
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(200).collect());
    let avatar_url = s(v, "avatar")
        .filter(|a| a.starts_with("https://") || a.starts_with("http://"))
        .map(str::to_owned);
    let phone = s(v, "phone_number")
        .or_else(|| s(v, "phone"))
        .and_then(e164);
    Some(Sender {
        id,
        name,
        avatar_url,
        phone,
    })
}

/// Parse a raw callback body (after its signature was checked). `Err` for JSON that is not a
/// Viber callback.
pub fn parse_callback_json(body: &[u8], account: &str) -> Result<Callback, serde_json::Error> {
    let value: Value = serde_json::from_slice(body)?;
    if s(&value, "event").is_none() {
        return Err(serde::de::Error::missing_field("event"));
    }
    Ok(parse_event(&value, account))
}

/// What one callback means.
pub fn parse_event(v: &Value, account: &str) -> Callback {
    let Some(kind) = s(v, "event") else {
        return Callback::Ignored("not a callback");
    };
    let key = |chat: &str| ConversationKey {
        account: account.to_owned(),
        chat: chat.to_owned(),
    };
    let status = |kind: &str, make: &dyn Fn(String) -> ParsedKind| -> Callback {
        let (Some(user), Some(t)) = (id(v, "user_id"), token(v)) else {
            return unreadable(
                v,
                account,
                id(v, "user_id").as_deref(),
                format!("a {kind} status without a user or message token"),
            );
        };
        Callback::Event(Box::new(Parsed {
            conversation: key(&user),
            sender: Sender {
                id: user.clone(),
                ..Sender::default()
            },
            timestamp_ms: timestamp(v),
            dedup_key: format!("{kind}:{t}"),
            kind: make(t),
        }))
    };
    match kind {
        "webhook" => Callback::Ignored("Viber checking the webhook"),
        "subscribed" => Callback::Ignored("subscribed: the first message opens the conversation"),
        "conversation_started" => Callback::Ignored("conversation started: nothing said yet"),
        "delivered" => status("delivered", &|t| ParsedKind::Delivered { remote_id: t }),
        "seen" => status("seen", &|t| ParsedKind::Read { remote_id: t }),
        "failed" => {
            let desc = s(v, "desc")
                .filter(|d| !d.trim().is_empty())
                .unwrap_or("no reason given")
                .chars()
                .take(500)
                .collect::<String>();
            status("failed", &|t| ParsedKind::Failed {
                remote_id: t,
                reason: format!("Viber: {desc}"),
            })
        }
        "unsubscribed" => {
            let (Some(user), Some(t)) = (id(v, "user_id"), token(v)) else {
                return unreadable(
                    v,
                    account,
                    id(v, "user_id").as_deref(),
                    "an unsubscription without a user or token".into(),
                );
            };
            Callback::Event(Box::new(Parsed {
                conversation: key(&user),
                sender: Sender { id: user.clone(), ..Sender::default() },
                timestamp_ms: timestamp(v),
                dedup_key: format!("unsubscribed:{user}:{t}"),
                kind: ParsedKind::Notice {
                    remote_id: format!("unsubscribed:{t}"),
                    text: "The customer unsubscribed from the bot; Viber will refuse replies until they write again.".into(),
                },
            }))
        }
        "message" => message(v, account),
        other => {
            let user = id(v, "user_id").or_else(|| v.get("sender").and_then(|s| id(s, "id")));
            unreadable(
                v,
                account,
                user.as_deref(),
                format!("an event kind the bridge does not know: {other:?}"),
            )
        }
    }
}

fn message(v: &Value, account: &str) -> Callback {
    let Some(sender) = v.get("sender").and_then(sender_of) else {
        return unreadable(v, account, None, "a message without a sender id".into());
    };
    let Some(t) = token(v) else {
        return unreadable(
            v,
            account,
            Some(&sender.id),
            "a message without a message token".into(),
        );
    };
    let m = v.get("message").unwrap_or(&Value::Null);
    let kind = s(m, "type").unwrap_or("");
    let text = text_of(m, "text").unwrap_or_default();
    let media = s(m, "media").map(str::to_owned);
    let size = m.get("size").and_then(Value::as_u64);
    let file = |name: String, mime: &str| {
        media.clone().map(|url| RemoteFile {
            url,
            name: switchboard_kit::safe_file_name(&name, "file"),
            mime: mime.to_owned(),
            size,
        })
    };
    let remote_id = t.clone();
    let (text, file, notice) = match kind {
        "text" => (text, None, false),
        "picture" => {
            let name = s(m, "file_name")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("picture_{t}.jpg"));
            // Viber's pictures are JPEG, PNG, GIF or WebP; a name that says otherwise is JPEG.
            let mime = mime_for_name(&name)
                .filter(|m| matches!(*m, "image/png" | "image/gif" | "image/webp"))
                .unwrap_or("image/jpeg");
            (text, file(name, mime), false)
        }
        "video" => (text, file(format!("video_{t}.mp4"), "video/mp4"), false),
        "file" => {
            let name = s(m, "file_name")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("file_{t}"));
            // The type by the name as it is kept (`x.doc. ` is `x.doc`).
            let mime = mime_for_name_or_binary(&switchboard_kit::safe_file_name(&name, "file"));
            (text, file(name, mime), false)
        }
        "sticker" => {
            let id = m
                .get("sticker_id")
                .map(Value::to_string)
                .unwrap_or_default();
            (
                String::new(),
                file(format!("sticker_{id}.png"), "image/png"),
                false,
            )
        }
        "location" => {
            let loc = m.get("location").unwrap_or(&Value::Null);
            match (loc.get("lat").and_then(Value::as_f64), loc.get("lon").and_then(Value::as_f64)) {
                (Some(lat), Some(lon)) if lat.is_finite() && lon.is_finite() => (
                    format!("Location: geo:{lat:.6},{lon:.6} https://www.openstreetmap.org/?mlat={lat:.6}&mlon={lon:.6}"),
                    None,
                    false,
                ),
                _ => ("[a location without coordinates]".into(), None, true),
            }
        }
        "contact" => {
            let c = m.get("contact").unwrap_or(&Value::Null);
            let name = s(c, "name").unwrap_or("").trim().to_owned();
            let phone =
                s(c, "phone_number").map(|p| e164(p).unwrap_or_else(|| p.trim().to_owned()));
            let parts: Vec<String> = [Some(name).filter(|n| !n.is_empty()), phone]
                .into_iter()
                .flatten()
                .collect();
            (format!("Contact: {}", parts.join(", ")), None, false)
        }
        "url" => (media.clone().unwrap_or(text), None, false),
        other => (
            format!(
                "[a Viber {} message the bridge cannot show]",
                if other.is_empty() { "unknown" } else { other }
            ),
            None,
            true,
        ),
    };
    let press = (kind == "text")
        .then(|| switchboard_kit::rating::press_in_text(&text))
        .flatten()
        .map(str::to_owned);
    let kind = if let Some(payload) = press {
        ParsedKind::Choice { remote_id, payload }
    } else if notice {
        ParsedKind::Notice { remote_id, text }
    } else if text.is_empty() && file.is_none() {
        ParsedKind::Notice {
            remote_id,
            text: "[an empty Viber message]".into(),
        }
    } else {
        ParsedKind::Message {
            remote_id,
            text,
            file,
        }
    };
    Callback::Event(Box::new(Parsed {
        conversation: ConversationKey {
            account: account.to_owned(),
            chat: sender.id.clone(),
        },
        sender,
        timestamp_ms: timestamp(v),
        dedup_key: format!("msg:{t}"),
        kind,
    }))
}

/// Why an event could not be stored yet (the source is not acknowledged and sends it again).
pub use switchboard_kit::media::MediaError as RealizeError;

/// Fetch the message's file and build the core's [`Inbound`].
pub async fn realize(
    parsed: Parsed,
    profile: ContactProfile,
    api: &Api,
    host: &Arc<dyn Host>,
    max_download: u64,
) -> Result<Inbound, RealizeError> {
    let plain = |text: String| Content {
        text,
        ..Content::default()
    };
    let event = match parsed.kind {
        ParsedKind::Message {
            remote_id,
            text,
            file,
        } => {
            let files = file.into_iter().collect();
            let fetched = media::fetch_remote(
                host.as_ref(),
                "viber",
                files,
                max_download,
                api.endpoint().http(),
            )
            .await?;
            InboundEvent::Message {
                remote_id,
                content: fetched.into_content(&text),
                reply_to: None,
            }
        }
        ParsedKind::Notice { remote_id, text } => InboundEvent::Notice {
            remote_id,
            content: plain(text),
        },
        ParsedKind::Delivered { remote_id } => InboundEvent::Delivered { remote_id },
        ParsedKind::Read { remote_id } => InboundEvent::Read { remote_id },
        ParsedKind::Failed { remote_id, reason } => InboundEvent::Failed { remote_id, reason },
        ParsedKind::Choice { remote_id, payload } => InboundEvent::Choice { remote_id, payload },
    };
    Ok(Inbound {
        conversation: parsed.conversation,
        sender: profile,
        timestamp_ms: parsed.timestamp_ms,
        dedup_key: parsed.dedup_key,
        event,
        addressed_to: None,
        group: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Option<Callback> {
        let body = switchboard_kit::test_host::fixture("viber", name)?;
        Some(parse_callback_json(&body, "bot").expect("a callback"))
    }

    fn event(c: Callback) -> Parsed {
        match c {
            Callback::Event(p) => *p,
            other => panic!("not an event: {other:?}"),
        }
    }

    /// A text that is exactly a rating payload is a press of the rating keyboard; anything
    /// more, or a forged payload, is an ordinary message.
    #[test]
    fn rating_presses_are_choices() {
        let msg = |text: &str| {
            serde_json::json!({"event": "message", "timestamp": 1457764197627_i64,
                "message_token": 4912661846655238145_i64, "sender": {"id": "01234567890A=", "name": "Jane"},
                "message": {"type": "text", "text": text}})
        };
        let p = event(parse_event(&msg("sbr1:abc123:5"), "bot"));
        assert_eq!(
            p.kind,
            ParsedKind::Choice {
                remote_id: "4912661846655238145".into(),
                payload: "sbr1:abc123:5".into()
            }
        );
        for text in ["sbr1:abc123:5 thanks", "sbr1:abc123:7", "5"] {
            let p = event(parse_event(&msg(text), "bot"));
            assert!(
                matches!(p.kind, ParsedKind::Message { .. }),
                "{text}: {:?}",
                p.kind
            );
        }
    }

    /// Issue 14: ids and tokens in other JSON types than documented are read, not dropped.
    #[test]
    fn wrongly_typed_ids_and_tokens_are_read() {
        let v = serde_json::json!({"event": "message", "timestamp": "1457764197627",
            "message_token": "tok-5", "sender": {"id": 12345, "name": 7},
            "message": {"type": "text", "text": 42}});
        let p = event(parse_event(&v, "bot"));
        assert_eq!(p.conversation.chat, "12345");
        assert_eq!(p.sender.name.as_deref(), Some("7"));
        assert_eq!(p.dedup_key, "msg:tok-5");
        assert_eq!(p.timestamp_ms, 1457764197627);
        assert!(matches!(p.kind, ParsedKind::Message { ref text, .. } if text == "42"));
    }

    /// Issue 14: what cannot be placed as an event is kept and shown, never only ignored: in
    /// the sender's conversation when the sender is known.
    #[test]
    fn what_cannot_be_read_is_unreadable_not_ignored() {
        let no_token = serde_json::json!({"event": "message", "sender": {"id": "u1"},
            "message": {"type": "text", "text": "hi"}});
        let Callback::Unreadable(u) = parse_event(&no_token, "bot") else {
            panic!()
        };
        assert_eq!(u.conversation.as_ref().map(|c| c.chat.as_str()), Some("u1"));
        assert!(u.raw.contains("\"hi\""));
        let no_sender = serde_json::json!({"event": "message", "message_token": 5,
            "sender": {"id": {"odd": 1}}, "message": {"type": "text", "text": "hi"}});
        let Callback::Unreadable(u) = parse_event(&no_sender, "bot") else {
            panic!()
        };
        assert!(u.conversation.is_none());
        let unknown = serde_json::json!({"event": "client_status_v9", "user_id": "u2",
            "message_token": 6});
        let Callback::Unreadable(u) = parse_event(&unknown, "bot") else {
            panic!()
        };
        assert!(u.reason.contains("client_status_v9"), "{}", u.reason);
    }

    #[test]
    fn text_picture_file_video() {
        let Some(c) = fixture("message_text_docs.json") else {
            return;
        };
        let p = event(c);
        assert_eq!(
            p.conversation,
            ConversationKey {
                account: "bot".into(),
                chat: "01234567890A=".into()
            }
        );
        assert_eq!(p.sender.name.as_deref(), Some("John McClane"));
        assert_eq!(
            p.sender.avatar_url.as_deref(),
            Some("http://avatar.example.com")
        );
        assert_eq!(p.timestamp_ms, 1457764197627);
        assert_eq!(p.dedup_key, "msg:4912661846655238145");
        assert_eq!(
            p.kind,
            ParsedKind::Message {
                remote_id: "4912661846655238145".into(),
                text: "a message to the service".into(),
                file: None
            }
        );
        let ParsedKind::Message {
            text,
            file: Some(f),
            ..
        } = event(fixture("message_picture.json").unwrap()).kind
        else {
            panic!()
        };
        assert_eq!(text, "photo caption");
        assert_eq!(
            (f.name.as_str(), f.mime.as_str(), f.size),
            ("IMG_20240101_120000.jpg", "image/jpeg", Some(184512))
        );
        let ParsedKind::Message { file: Some(f), .. } =
            event(fixture("message_file.json").unwrap()).kind
        else {
            panic!()
        };
        assert_eq!(
            (f.name.as_str(), f.mime.as_str()),
            ("invoice.pdf", "application/pdf")
        );
        let ParsedKind::Message { file: Some(f), .. } =
            event(fixture("message_video.json").unwrap()).kind
        else {
            panic!()
        };
        assert_eq!(f.mime, "video/mp4");
        let p = event(fixture("message_text_unicode_sdk_fixture.json").unwrap());
        assert!(p.sender.name.unwrap().starts_with("ふで"));
    }

    #[test]
    fn statuses_and_subscriptions() {
        let Some(c) = fixture("raw_seen.json") else {
            return;
        };
        let p = event(c);
        assert_eq!(
            p.kind,
            ParsedKind::Read {
                remote_id: "5466297467809468529".into()
            }
        );
        assert_eq!(p.conversation.chat, "3SQNc4FPUQmysaM/AQEhXg==");
        assert_eq!(
            event(fixture("raw_delivered.json").unwrap()).kind,
            ParsedKind::Delivered {
                remote_id: "5466297578174182639".into()
            }
        );
        assert!(
            matches!(event(fixture("failed.json").unwrap()).kind, ParsedKind::Failed { ref reason, .. } if reason.contains("failure description"))
        );
        assert!(matches!(
            event(fixture("raw_unsubscribed.json").unwrap()).kind,
            ParsedKind::Notice { .. }
        ));
        assert!(matches!(
            fixture("subscribed.json"),
            Some(Callback::Ignored(_))
        ));
        assert!(matches!(
            fixture("raw_conversation_started.json"),
            Some(Callback::Ignored(_))
        ));
        assert!(matches!(
            fixture("raw_conversation_started_cyrillic_escaped.json"),
            Some(Callback::Ignored(_))
        ));
        assert!(matches!(
            fixture("raw_webhook_check.json"),
            Some(Callback::Ignored(_))
        ));
    }

    #[test]
    fn phones_and_odd_messages() {
        assert_eq!(e164("+44 7700 900123").as_deref(), Some("+447700900123"));
        assert_eq!(
            e164("0044 (7700) 900-123").as_deref(),
            Some("+447700900123")
        );
        assert_eq!(e164("380501234567").as_deref(), Some("+380501234567"));
        assert_eq!(e164("12"), None);
        assert_eq!(e164("call me"), None);
        let contact = br#"{"event":"message","message_token":1,"sender":{"id":"u"},"message":{"type":"contact","contact":{"name":"Bo","phone_number":"+47 123 45 678"}}}"#;
        let ParsedKind::Message { text, .. } =
            event(parse_callback_json(contact, "b").unwrap()).kind
        else {
            panic!()
        };
        assert_eq!(text, "Contact: Bo, +4712345678");
        let rich = br#"{"event":"message","message_token":"2","sender":{"id":"u"},"message":{"type":"rich_media"}}"#;
        assert!(matches!(
            event(parse_callback_json(rich, "b").unwrap()).kind,
            ParsedKind::Notice { .. }
        ));
        for body in [&b"{}"[..], b"[]", b"{\"event\":1}", b"{\"event\":\"message\",\"sender\":{\"id\":\"\"}}",
                     b"{\"event\":\"message\",\"message_token\":-1,\"sender\":{\"id\":\"x\"},\"message\":{\"type\":\"location\",\"location\":{\"lat\":1e999}}}"] {
            let _ = parse_callback_json(body, "b");
        }
    }

    /// File names go through the kit's sanitiser (reserved Windows characters, trailing dots,
    /// device names, 255 bytes) and types through the kit's table (`.doc` is known now).
    #[test]
    fn file_names_and_types_follow_the_kit() {
        let name = |file_name: &str| {
            let body = serde_json::json!({"event": "message", "message_token": 9,
                "sender": {"id": "u"}, "message": {"type": "file", "media": "https://x/f",
                "file_name": file_name}});
            let ParsedKind::Message { file: Some(f), .. } =
                event(parse_callback_json(body.to_string().as_bytes(), "b").unwrap()).kind
            else {
                panic!()
            };
            (f.name, f.mime)
        };
        assert_eq!(name("a:b?.doc. ").0, "a_b_.doc");
        assert_eq!(name("a:b?.doc. ").1, "application/msword");
        assert_eq!(name("CON.pdf").0, "_CON.pdf");
        assert_eq!(name("invoice\u{202E}fdp.exe").0, "invoicefdp.exe");
        let long = name(&format!("{}.pdf", "ж".repeat(150))).0;
        assert!(long.len() <= 255 && long.ends_with(".pdf"), "{long}");
        assert_eq!(name("..").0, "file");
    }
}
