//! Webhook payloads → what they mean ([`parse_webhook`]): pure, no I/O, fuzzed.
//!
//! A delivery is `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages",
//! "value":{…}}]}]}`; one `value` carries the business number (`metadata.phone_number_id`, the
//! account of every conversation), the customers' profiles (`contacts[]`: `wa_id` and
//! `profile.name`), and any number of `messages[]` (what customers sent) and `statuses[]` (what
//! happened to ours: sent, delivered, read, failed).
//!
//! The payload is walked as JSON values rather than decoded into strict types: Meta adds fields
//! and message types over time, and one odd field must not make a whole delivery (maybe several
//! customers' messages) unreadable. A message of a type we do not show, or one Meta itself marks
//! with `errors`, becomes a [`ParsedKind::Notice`] carrying the error text, so the operators see
//! that something arrived; it never blocks the rest.
//!
//! Ids: the remote id of a message is its `wamid`, unique across WhatsApp, so it is also the
//! dedup key (`msg:<wamid>`); reactions are `reaction:<wamid>` and statuses
//! `status:<wamid>:<status>`, so Meta's redeliveries are stored once and each status once.
//!
//! A tap on a row of one of our lists or on a reply button arrives as a message of type
//! `interactive` (`list_reply` / `button_reply`, with the row's or button's `id` and `title`).
//! When the id is a rating payload (`switchboard_kit::rating`) it is a [`ParsedKind::Choice`];
//! any other tap is shown as the text the customer saw (its title).

use serde_json::Value;
use switchboard_channel::{ContactProfile, ConversationKey};

/// The `object` of a WhatsApp Business Account delivery.
pub const OBJECT: &str = "whatsapp_business_account";

/// A file the customer sent, still on WhatsApp's side (fetched by id through the Graph API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteMedia {
    pub media_id: String,
    pub mime: String,
    /// A safe file name: the document's own, else one made from the kind and the mime type.
    pub name: String,
}

/// What one event of a delivery means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParsedKind {
    /// A customer message: its text (or caption) and at most one file.
    Message {
        remote_id: String,
        text: String,
        media: Option<RemoteMedia>,
        reply_to: Option<String>,
    },
    /// Something the bridge cannot show as a message (an unsupported type, Meta's error).
    Notice { remote_id: String, text: String },
    /// The customer picked a choice of a rating question (a list row or reply button whose id
    /// is a rating payload); `remote_id` is the tap's own message.
    Choice { remote_id: String, payload: String },
    /// The customer reacted to `remote_id`; `key: None` removed their reaction.
    Reaction {
        remote_id: String,
        key: Option<String>,
    },
    /// Our message `remote_id` reached WhatsApp or the customer's phone.
    Delivered { remote_id: String },
    /// The customer read our message `remote_id`.
    Read { remote_id: String },
    /// Our message `remote_id` could not be delivered after all.
    Failed { remote_id: String, reason: String },
}

/// One event with where it belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub conversation: ConversationKey,
    pub sender: ContactProfile,
    /// Milliseconds since the epoch, when the payload says.
    pub timestamp_ms: Option<i64>,
    pub dedup_key: String,
    pub kind: ParsedKind,
}

/// Everything a delivery holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub events: Vec<Parsed>,
    /// What was left out and why (logged): other fields, account-level errors without a chat.
    pub skipped: Vec<String>,
}

/// Why a body is not a WhatsApp delivery at all.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a WhatsApp Business Account delivery (object {0:?})")]
    NotWhatsApp(String),
}

/// Parse a webhook body.
pub fn parse_webhook(body: &[u8]) -> Result<Batch, PayloadError> {
    let root: Value = serde_json::from_slice(body)?;
    let object = root
        .get("object")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if object != OBJECT {
        return Err(PayloadError::NotWhatsApp(object.chars().take(64).collect()));
    }
    let mut batch = Batch::default();
    for entry in array(&root, "entry") {
        for change in array(entry, "changes") {
            let field = change
                .get("field")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if field != "messages" {
                batch.skipped.push(format!(
                    "change of field {:?} (only \"messages\" is bridged)",
                    clip(field, 64)
                ));
                continue;
            }
            if let Some(value) = change.get("value") {
                parse_value(value, &mut batch);
            }
        }
    }
    Ok(batch)
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn string<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// An id we put in keys and URLs: printable, no spaces, bounded.
fn id(v: &Value, key: &str) -> Option<String> {
    let s = match v.get(key)? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let ok = !s.is_empty() && s.len() <= 512 && s.chars().all(|c| c.is_ascii_graphic());
    ok.then_some(s)
}

/// Meta's timestamps are seconds, as a string (sometimes a number).
fn timestamp_ms(v: &Value) -> Option<i64> {
    let secs = match v.get("timestamp")? {
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    secs.checked_mul(1000).filter(|ms| *ms > 0)
}

/// A WhatsApp id (`wa_id`, `from`) is the phone number in digits, without `+`.
pub fn e164(wa_id: &str) -> Option<String> {
    let digits = wa_id.strip_prefix('+').unwrap_or(wa_id);
    let ok = (5..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then(|| format!("+{digits}"))
}

/// Text of Meta's `errors[]` items: `title: details (code N)`.
pub fn errors_text(errors: &[Value]) -> Option<String> {
    let parts: Vec<String> = errors
        .iter()
        .map(error_text)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn error_text(e: &Value) -> String {
    let title = string(e, "title")
        .or_else(|| string(e, "message"))
        .unwrap_or("error");
    let details = e
        .get("error_data")
        .and_then(|d| string(d, "details"))
        .filter(|d| *d != title);
    let mut text = clip(title, 300);
    if let Some(d) = details {
        text.push_str(": ");
        text.push_str(&clip(d, 500));
    }
    if let Some(code) = e.get("code").and_then(Value::as_i64) {
        text.push_str(&format!(" (code {code})"));
    }
    text
}

fn parse_value(value: &Value, batch: &mut Batch) {
    let Some(account) = value.get("metadata").and_then(|m| id(m, "phone_number_id")) else {
        batch
            .skipped
            .push("a change without metadata.phone_number_id".into());
        return;
    };
    let value_errors = errors_text(array(value, "errors"));
    let messages = array(value, "messages");
    let statuses = array(value, "statuses");
    if messages.is_empty() && statuses.is_empty() {
        if let Some(errors) = &value_errors {
            batch.skipped.push(format!(
                "WhatsApp reported errors for the account {account}: {errors}"
            ));
        }
    }
    let contacts = array(value, "contacts");
    for m in messages {
        match parse_message(&account, m, contacts, value_errors.as_deref()) {
            Some(p) => batch.events.push(p),
            None => batch.skipped.push("a message without id or sender".into()),
        }
    }
    for s in statuses {
        match parse_status(&account, s) {
            Some(p) => batch.events.push(p),
            None => batch.skipped.push(format!(
                "status {:?}",
                s.get("status").and_then(Value::as_str).map(|s| clip(s, 32))
            )),
        }
    }
}

fn profile(wa_id: &str, contacts: &[Value]) -> ContactProfile {
    let name = contacts
        .iter()
        .find(|c| id(c, "wa_id").as_deref() == Some(wa_id))
        .or(match contacts {
            // One profile and no wa_id on it: it is the sender's.
            [only] if only.get("wa_id").is_none() => Some(only),
            _ => None,
        })
        .and_then(|c| c.get("profile"))
        .and_then(|p| string(p, "name"))
        .map(|n| clean_line(n, 100))
        .filter(|n| !n.is_empty());
    ContactProfile {
        id: wa_id.to_owned(),
        display_name: name,
        phone: e164(wa_id),
        ..ContactProfile::default()
    }
}

/// One line of customer-provided text: no control characters, bounded.
fn clean_line(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect::<String>()
        .trim()
        .to_owned()
}

pub use switchboard_kit::safe_file_name;

fn default_mime(kind: &str) -> &'static str {
    match kind {
        "image" => "image/jpeg",
        "sticker" => "image/webp",
        "audio" => "audio/ogg",
        "video" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// The mime type as given, if it looks like one; else the kind's usual type.
fn mime_of(media: &Value, kind: &str) -> String {
    match string(media, "mime_type") {
        Some(m)
            if m.len() <= 128
                && m.contains('/')
                && m.chars().all(|c| c.is_ascii_graphic() || c == ' ') =>
        {
            m.to_owned()
        }
        _ => default_mime(kind).to_owned(),
    }
}

fn parse_message(
    account: &str,
    m: &Value,
    contacts: &[Value],
    value_errors: Option<&str>,
) -> Option<Parsed> {
    let remote_id = id(m, "id")?;
    let from = id(m, "from")?;
    let sender = profile(&from, contacts);
    let conversation = ConversationKey {
        account: account.to_owned(),
        chat: from,
    };
    let timestamp_ms = timestamp_ms(m);
    let kind_name = m.get("type").and_then(Value::as_str).unwrap_or("unknown");
    let reply_to = m.get("context").and_then(|c| id(c, "id"));
    let message_errors = errors_text(array(m, "errors"));
    let make = |dedup_key: String, kind: ParsedKind| Parsed {
        conversation: conversation.clone(),
        sender: sender.clone(),
        timestamp_ms,
        dedup_key,
        kind,
    };
    let notice = |text: String| {
        make(
            format!("msg:{remote_id}"),
            ParsedKind::Notice {
                remote_id: remote_id.clone(),
                text,
            },
        )
    };
    let unsupported = || {
        let mut text = format!(
            "The customer sent a WhatsApp message the bridge cannot show (type \"{}\").",
            clip(kind_name, 40)
        );
        for errors in [message_errors.as_deref(), value_errors]
            .into_iter()
            .flatten()
        {
            text.push_str(&format!(" WhatsApp says: {errors}"));
        }
        notice(text)
    };
    if message_errors.is_some() {
        return Some(unsupported());
    }
    let message = |text: String, media: Option<RemoteMedia>| {
        make(
            format!("msg:{remote_id}"),
            ParsedKind::Message {
                remote_id: remote_id.clone(),
                text,
                media,
                reply_to: reply_to.clone(),
            },
        )
    };
    let body = m.get(kind_name);
    let parsed = match (kind_name, body) {
        ("text", Some(t)) => match t.get("body").and_then(Value::as_str) {
            Some(text) if !text.trim().is_empty() => message(text.to_owned(), None),
            _ => unsupported(),
        },
        ("image" | "video" | "document" | "audio" | "sticker", Some(media)) => {
            let Some(media_id) = id(media, "id") else {
                return Some(unsupported());
            };
            let mime = mime_of(media, kind_name);
            let voice =
                kind_name == "audio" && media.get("voice").and_then(Value::as_bool) == Some(true);
            let stem = if voice { "voice message" } else { kind_name };
            let fallback = format!(
                "{stem}.{}",
                switchboard_kit::mime::extension_for(&mime).unwrap_or("bin")
            );
            let name = match string(media, "filename") {
                Some(f) => safe_file_name(f, &fallback),
                None => fallback,
            };
            let caption = media
                .get("caption")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            message(
                caption,
                Some(RemoteMedia {
                    media_id,
                    mime,
                    name,
                }),
            )
        }
        ("location", Some(l)) => match location_text(l) {
            Some(text) => message(text, None),
            None => unsupported(),
        },
        ("contacts", Some(Value::Array(cards))) if !cards.is_empty() => {
            message(contacts_text(cards), None)
        }
        ("button", Some(b)) => match string(b, "text") {
            Some(t) => message(t.to_owned(), None),
            None => unsupported(),
        },
        ("interactive", Some(i)) => match (rating_choice(i), interactive_text(i)) {
            (Some(payload), _) => make(
                format!("msg:{remote_id}"),
                ParsedKind::Choice {
                    remote_id: remote_id.clone(),
                    payload,
                },
            ),
            (None, Some(t)) => message(t, None),
            (None, None) => unsupported(),
        },
        ("reaction", Some(r)) => {
            let Some(target) = id(r, "message_id") else {
                return Some(unsupported());
            };
            let key = string(r, "emoji").map(|e| clip(e, 16));
            make(
                format!("reaction:{remote_id}"),
                ParsedKind::Reaction {
                    remote_id: target,
                    key,
                },
            )
        }
        ("system", Some(s)) => {
            let text = string(s, "body")
                .map(|b| clip(b, 1000))
                .unwrap_or_else(|| "The customer's WhatsApp account changed.".into());
            notice(text)
        }
        _ => unsupported(),
    };
    Some(parsed)
}

fn location_text(l: &Value) -> Option<String> {
    let lat = l
        .get("latitude")
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite() && v.abs() <= 90.0)?;
    let lon = l
        .get("longitude")
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite() && v.abs() <= 180.0)?;
    let label: Vec<String> = ["name", "address"]
        .iter()
        .filter_map(|k| string(l, k))
        .map(|s| clean_line(s, 200))
        .collect();
    let mut text = String::from("📍 Location");
    if !label.is_empty() {
        text.push_str(": ");
        text.push_str(&label.join(", "));
    }
    text.push_str(&format!(
        "\ngeo:{lat:.6},{lon:.6}\nhttps://www.openstreetmap.org/?mlat={lat:.6}&mlon={lon:.6}#map=16/{lat:.6}/{lon:.6}"
    ));
    Some(text)
}

fn contacts_text(cards: &[Value]) -> String {
    let lines: Vec<String> = cards
        .iter()
        .take(20)
        .map(|card| {
            let name = card
                .get("name")
                .and_then(|n| {
                    string(n, "formatted_name").map(str::to_owned).or_else(|| {
                        let parts: Vec<&str> = ["first_name", "last_name"]
                            .iter()
                            .filter_map(|k| string(n, k))
                            .collect();
                        (!parts.is_empty()).then(|| parts.join(" "))
                    })
                })
                .map(|n| clean_line(&n, 100))
                .unwrap_or_else(|| "(no name)".into());
            let mut fields = vec![name];
            fields.extend(
                array(card, "phones")
                    .iter()
                    .filter_map(|p| string(p, "phone"))
                    .map(|p| clean_line(p, 40)),
            );
            fields.extend(
                array(card, "emails")
                    .iter()
                    .filter_map(|e| string(e, "email"))
                    .map(|e| clean_line(e, 100)),
            );
            format!("Contact: {}", fields.join(", "))
        })
        .collect();
    lines.join("\n")
}

/// The rating payload a tap on one of our list rows or reply buttons carries, if it is one.
fn rating_choice(i: &Value) -> Option<String> {
    ["list_reply", "button_reply"]
        .iter()
        .filter_map(|key| i.get(*key))
        .filter_map(|reply| reply.get("id").and_then(Value::as_str))
        .find(|id| switchboard_kit::rating::parse_payload(id).is_some())
        .map(str::to_owned)
}

/// A tap on one of our buttons or list rows: its title (and description).
fn interactive_text(i: &Value) -> Option<String> {
    for key in ["button_reply", "list_reply"] {
        if let Some(reply) = i.get(key) {
            let title = string(reply, "title")?;
            return Some(match string(reply, "description") {
                Some(d) => format!("{title} — {d}"),
                None => title.to_owned(),
            });
        }
    }
    None
}

fn parse_status(account: &str, s: &Value) -> Option<Parsed> {
    let remote_id = id(s, "id")?;
    let recipient = id(s, "recipient_id")?;
    let status = s.get("status").and_then(Value::as_str)?;
    let kind = match status {
        "sent" | "delivered" => ParsedKind::Delivered {
            remote_id: remote_id.clone(),
        },
        "read" => ParsedKind::Read {
            remote_id: remote_id.clone(),
        },
        "failed" => {
            let reason =
                errors_text(array(s, "errors")).unwrap_or_else(|| "WhatsApp gave no reason".into());
            ParsedKind::Failed {
                remote_id: remote_id.clone(),
                reason,
            }
        }
        _ => return None,
    };
    let sender = ContactProfile {
        id: recipient.clone(),
        phone: e164(&recipient),
        ..ContactProfile::default()
    };
    Some(Parsed {
        conversation: ConversationKey {
            account: account.to_owned(),
            chat: recipient,
        },
        sender,
        timestamp_ms: timestamp_ms(s),
        dedup_key: format!("status:{remote_id}:{status}"),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Option<Vec<u8>> {
        let dir = crate::fixtures_dir("whatsapp")?;
        std::fs::read(dir.join(name)).ok()
    }

    fn one(name: &str) -> Option<Parsed> {
        let body = fixture(name)?;
        let batch = parse_webhook(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(batch.events.len(), 1, "{name}: {batch:?}");
        batch.events.into_iter().next()
    }

    #[test]
    fn text_with_profile_and_phone() {
        let Some(p) = one("text.json") else { return };
        assert_eq!(
            p.conversation,
            ConversationKey {
                account: "1122334455667".into(),
                chat: "972987654321".into()
            }
        );
        assert_eq!(p.sender.display_name.as_deref(), Some("Test Name"));
        assert_eq!(p.sender.phone.as_deref(), Some("+972987654321"));
        assert_eq!(p.timestamp_ms, Some(1_697_043_223_000));
        assert_eq!(p.dedup_key, "msg:wamid.xyzxyz");
        assert_eq!(
            p.kind,
            ParsedKind::Message {
                remote_id: "wamid.xyzxyz".into(),
                text: "Body Text".into(),
                media: None,
                reply_to: None
            }
        );
    }

    #[test]
    fn media_of_every_kind() {
        let cases = [
            ("image.json", "65463453", "image/jpeg", "image.jpg", ""),
            (
                "audio.json",
                "1234567890987654321",
                "audio/ogg; codecs=opus",
                "audio.ogg",
                "",
            ),
            (
                "voice.json",
                "1234567890987654321",
                "audio/ogg; codecs=opus",
                "voice message.ogg",
                "",
            ),
            (
                "video.json",
                "765756756",
                "video/mp4",
                "video.mp4",
                "caption",
            ),
            (
                "document.json",
                "1234567890987654321",
                "application/pdf",
                "filename.pdf",
                "caption",
            ),
            (
                "sticker.json",
                "1234567890987654321",
                "image/webp",
                "sticker.webp",
                "",
            ),
        ];
        for (file, media_id, mime, name, caption) in cases {
            let Some(p) = one(file) else { return };
            match p.kind {
                ParsedKind::Message {
                    text,
                    media: Some(m),
                    reply_to: None,
                    ..
                } => {
                    assert_eq!(
                        (m.media_id.as_str(), m.mime.as_str(), m.name.as_str()),
                        (media_id, mime, name),
                        "{file}"
                    );
                    assert_eq!(text, caption, "{file}");
                }
                other => panic!("{file}: {other:?}"),
            }
        }
    }

    #[test]
    fn location_contacts_reply_and_reaction() {
        let Some(p) = one("location.json") else {
            return;
        };
        let ParsedKind::Message { text, .. } = p.kind else {
            panic!()
        };
        assert!(
            text.contains("geo:12.250890,43.905390") && text.contains("openstreetmap.org"),
            "{text}"
        );
        let Some(p) = one("contacts.json") else {
            return;
        };
        let ParsedKind::Message { text, .. } = p.kind else {
            panic!()
        };
        assert!(
            text.starts_with(
                "Contact: Chandler Bing, +1 555-555-5555\nContact: Monica, +1 666-666-6666"
            ),
            "{text}"
        );
        let Some(p) = one("reply_text.json") else {
            return;
        };
        let ParsedKind::Message { reply_to, text, .. } = p.kind else {
            panic!()
        };
        assert_eq!(
            (reply_to.as_deref(), text.as_str()),
            (Some("wamid.xyzxyz=="), "replied text")
        );
        let Some(p) = one("forwarded_text.json") else {
            return;
        };
        assert!(matches!(p.kind, ParsedKind::Message { reply_to: None, .. }));
        let Some(p) = one("reaction.json") else {
            return;
        };
        assert_eq!(p.dedup_key, "reaction:wamid.xyzxyz");
        assert_eq!(
            p.kind,
            ParsedKind::Reaction {
                remote_id: "wamid.yzxyzx=".into(),
                key: Some("😮".into())
            }
        );
    }

    #[test]
    fn unsupported_and_errors_become_notices() {
        let Some(p) = one("unsupported_with_error.json") else {
            return;
        };
        let ParsedKind::Notice { text, .. } = p.kind else {
            panic!()
        };
        assert!(
            text.contains("unsupported")
                && text.contains(
                    "Message type unknown: Message type is currently not supported. (code 131051)"
                ),
            "{text}"
        );
        let Some(p) = one("interactive_with_error.json") else {
            return;
        };
        let ParsedKind::Notice { text, .. } = p.kind else {
            panic!()
        };
        assert!(
            text.contains("Unsupported webhook payload (code 131000)"),
            "{text}"
        );
        let Some(body) = fixture("webhook_value_errors_rate_limit.json") else {
            return;
        };
        let batch = parse_webhook(&body).unwrap();
        assert!(batch.events.is_empty());
        assert!(
            batch.skipped.iter().any(|s| s.contains("Rate limit hit")),
            "{:?}",
            batch.skipped
        );
    }

    /// The channel's own fixtures (`bridges/whatsapp/fixtures`), always there.
    fn own(name: &str) -> Parsed {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let batch = parse_webhook(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(batch.events.len(), 1, "{name}: {batch:?}");
        batch.events.into_iter().next().unwrap()
    }

    #[test]
    fn taps_on_rating_rows_and_buttons_are_choices() {
        let p = own("interactive_list_reply_rating.json");
        assert_eq!(
            p.kind,
            ParsedKind::Choice {
                remote_id: "wamid.HBgMOTcyOTg3NjU0MzIxFQIAEhgUM0FGQUtFTElTVFJFUExZMDAwMQA=".into(),
                payload: "sbr1:a1B2c3D4e5F6g7H8:4".into(),
            }
        );
        assert_eq!(
            p.dedup_key,
            "msg:wamid.HBgMOTcyOTg3NjU0MzIxFQIAEhgUM0FGQUtFTElTVFJFUExZMDAwMQA="
        );
        assert_eq!(p.conversation.chat, "972987654321");
        assert_eq!(p.sender.display_name.as_deref(), Some("Test Name"));
        let p = own("interactive_button_reply_rating.json");
        assert!(
            matches!(&p.kind, ParsedKind::Choice { payload, .. } if payload == "sbr1:a1B2c3D4e5F6g7H8:2"),
            "{p:?}"
        );
        // A row that is not a rating reads as what the customer saw.
        let p = own("interactive_list_reply_other.json");
        assert!(
            matches!(&p.kind, ParsedKind::Message { text, .. } if text == "Express — Next Day to 2 Days"),
            "{p:?}"
        );
    }

    #[test]
    fn statuses() {
        let Some(p) = one("status_read.json") else {
            return;
        };
        assert_eq!(
            p.kind,
            ParsedKind::Read {
                remote_id: "wamid.xyzxyz".into()
            }
        );
        assert_eq!(p.dedup_key, "status:wamid.xyzxyz:read");
        assert_eq!(p.conversation.chat, "972987654321");
        for f in [
            "status_sent.json",
            "status_delivered.json",
            "status_delivered_real_2025.json",
            "raw_status_sent_compact.json",
        ] {
            let Some(p) = one(f) else { return };
            assert!(matches!(p.kind, ParsedKind::Delivered { .. }), "{f}: {p:?}");
        }
        let Some(p) = one("status_failed.json") else {
            return;
        };
        let ParsedKind::Failed { reason, .. } = p.kind else {
            panic!()
        };
        assert!(
            reason.contains("User's number is part of an experiment: Failed to send message")
                && reason.contains("130472"),
            "{reason}"
        );
    }

    #[test]
    fn every_fixture_parses_without_panicking() {
        let Some(dir) = crate::fixtures_dir("whatsapp") else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let body = std::fs::read(e.path()).unwrap();
            let _ = parse_webhook(&body);
        }
        assert!(matches!(
            parse_webhook(b"{\"object\":\"page\"}"),
            Err(PayloadError::NotWhatsApp(_))
        ));
        assert!(matches!(parse_webhook(b"nope"), Err(PayloadError::Json(_))));
    }

    #[test]
    fn odd_values_are_tolerated() {
        let body = serde_json::json!({"object": OBJECT, "entry": [{"changes": [{"field": "messages", "value": {
            "metadata": {"phone_number_id": "1"},
            "contacts": [{"profile": {"name": "  Ann\u{7}  "}, "wa_id": "4915112345678"}],
            "messages": [
                {"from": "4915112345678", "id": "w1", "timestamp": 5, "type": "document",
                 "document": {"id": "9", "filename": "../../.bashrc", "mime_type": "x"}},
                {"from": "4915112345678", "id": "w2", "type": "reaction", "reaction": {"message_id": "w1", "emoji": ""}},
                {"from": "4915112345678", "id": "w3", "type": "location", "location": {"latitude": 500, "longitude": 1}},
                {"id": "w4", "type": "text", "text": {"body": "no sender"}},
            ],
        }}]}]});
        let batch = parse_webhook(body.to_string().as_bytes()).unwrap();
        assert_eq!(batch.events.len(), 3);
        assert_eq!(batch.events[0].sender.display_name.as_deref(), Some("Ann"));
        let ParsedKind::Message { media: Some(m), .. } = &batch.events[0].kind else {
            panic!()
        };
        assert_eq!(
            (m.name.as_str(), m.mime.as_str()),
            ("bashrc", "application/octet-stream")
        );
        assert_eq!(
            batch.events[1].kind,
            ParsedKind::Reaction {
                remote_id: "w1".into(),
                key: None
            }
        );
        assert!(matches!(batch.events[2].kind, ParsedKind::Notice { .. }));
        assert_eq!(e164("0123"), None);
        assert_eq!(e164("+4915112345678").as_deref(), Some("+4915112345678"));
    }
}
