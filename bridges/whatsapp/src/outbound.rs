//! Operators' actions delivered to the customer: `Channel::send` and `Channel::mark_read`.
//!
//! Everything is a `POST /{phone-number-id}/messages` with `messaging_product: whatsapp`,
//! `recipient_type: individual` and `to: <wa_id>`:
//!
//! * **Text**: `type: text` with `text.body` (the operator's HTML rewritten as WhatsApp markup)
//!   and `preview_url` as configured; a reply names the customer's message in
//!   `context.message_id`.
//! * **Files**: uploaded first (`POST /{phone-number-id}/media`, multipart), then sent by media
//!   id as `image` (JPEG/PNG up to 5 MB), `audio` (AAC/AMR/MP3/M4A/OGG up to 16 MB), `video`
//!   (MP4/3GPP up to 16 MB) or `document` (anything else, with its file name). The text rides
//!   as the caption when the kind has one and it fits (1024 characters), else it goes first as
//!   a message of its own.
//! * **Reactions**: `type: reaction` with the target's wamid and the emoji, `""` to remove.
//! * **Templates**: `type: template` with the name, `language.code` and the parameters as the
//!   body component's text parameters.
//! * **Rating requests** ([`rating_message`]): `type: interactive`. Reply buttons
//!   (`interactive.type: button`) take at most 3 choices, so the five scores go as a list
//!   (`interactive.type: list`): the question as the body, a button that opens the list, and one
//!   section whose rows are the choices (row `id` = the kit's payload, `title` = the label). A
//!   tap comes back as a message of type `interactive` (`list_reply` / `button_reply`) carrying
//!   the row's id ([`crate::payload`]). Interactive messages are free-form: only within the
//!   24-hour customer-service window, which the core checks before asking.
//! * **Idempotency**: the Cloud API has no idempotency key, so each part of an item is
//!   remembered under `out:<idempotency key>#<part>` in the channel's state once WhatsApp
//!   accepted it, and a retry (after a crash, or after a later part failed) skips what was
//!   already sent. Only a crash in the instant between WhatsApp's answer and that write can
//!   repeat a message.
//! * **Errors** go through [`api::classify`](crate::api::classify).

use serde_json::{json, Value};
use switchboard_channel::{
    Attachment, Content, ConversationKey, Delivery, Host, Outbound, OutboundAction, SendError,
};

use switchboard_kit::rating;

use crate::api::{classify, Graph};
use crate::config::WhatsAppConfig;
use crate::format;

/// WhatsApp's caption limit, in characters.
const MAX_CAPTION_CHARS: usize = 1024;
// Sizes and types: "Supported media types",
// <https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types>.
const MAX_IMAGE_BYTES: u64 = 5 * 1024 * 1024;
const MAX_AUDIO_VIDEO_BYTES: u64 = 16 * 1024 * 1024;

/// The only types the media upload takes (any other is Graph error 100 "Param file must be a
/// file with one of the following types: …"), with the file name extensions that stand for
/// them when a client labelled the file `application/octet-stream` or not at all.
const UPLOAD_TYPES: &[(&str, &[&str])] = &[
    ("audio/aac", &["aac"]),
    ("audio/mp4", &["m4a"]),
    ("audio/mpeg", &["mp3"]),
    ("audio/amr", &["amr"]),
    ("audio/ogg", &["ogg", "oga"]),
    ("audio/opus", &["opus"]),
    ("application/vnd.ms-powerpoint", &["ppt"]),
    ("application/msword", &["doc"]),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        &["docx"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        &["pptx"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &["xlsx"],
    ),
    ("application/pdf", &["pdf"]),
    ("text/plain", &["txt"]),
    ("application/vnd.ms-excel", &["xls"]),
    ("image/jpeg", &["jpg", "jpeg"]),
    ("image/png", &["png"]),
    ("image/webp", &["webp"]),
    ("video/mp4", &["mp4"]),
    ("video/3gpp", &["3gp", "3gpp"]),
];

/// The type to upload a file as: its own when WhatsApp takes it, else the one its name's
/// extension stands for (a `.pdf` sent as `application/octet-stream`), else `None`: WhatsApp
/// takes no such file (a GIF, a ZIP), under any message type.
pub fn upload_type(mime: &str, name: &str) -> Option<&'static str> {
    let essence = switchboard_kit::mime::essence(mime);
    if let Some((t, _)) = UPLOAD_TYPES.iter().find(|(t, _)| *t == essence) {
        return Some(t);
    }
    let unlabelled = essence.is_empty() || essence == "application/octet-stream";
    let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
    UPLOAD_TYPES
        .iter()
        .find(|(_, exts)| unlabelled && exts.contains(&extension.as_str()))
        .map(|(t, _)| *t)
}

/// What `send` needs.
pub struct Outgoing<'a> {
    pub graph: &'a Graph,
    pub host: &'a dyn Host,
    pub config: &'a WhatsAppConfig,
}

use switchboard_kit::send::{attachment_bytes, permanent, SentRecord};

/// The customer's wa_id, after checking the conversation is on our number.
fn recipient<'a>(
    out: &Outgoing<'_>,
    conversation: &'a ConversationKey,
) -> Result<&'a str, SendError> {
    if conversation.account != out.config.phone_number_id {
        return Err(permanent(format!(
            "this bridge's WhatsApp number is {}, not {}",
            out.config.phone_number_id, conversation.account
        )));
    }
    Ok(conversation.chat.as_str())
}

/// The common fields of every message to `to`.
fn envelope(to: &str, kind: &str, reply_to: Option<&str>) -> Value {
    let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": kind});
    if let Some(id) = reply_to {
        body["context"] = json!({"message_id": id});
    }
    body
}

/// The text as WhatsApp shows it.
pub fn text_of(content: &Content) -> String {
    match &content.html {
        Some(h) => format::html_to_whatsapp(h),
        None => content.text.clone(),
    }
}

/// How a file goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Audio,
    Video,
    Document,
}

impl MediaKind {
    pub fn for_file(mime: &str, size: u64) -> MediaKind {
        let mime = mime.to_ascii_lowercase();
        let essence = mime.split(';').next().unwrap_or("").trim();
        match essence {
            "image/jpeg" | "image/png" if size <= MAX_IMAGE_BYTES => MediaKind::Image,
            "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" | "audio/opus"
                if size <= MAX_AUDIO_VIDEO_BYTES =>
            {
                MediaKind::Audio
            }
            "video/mp4" | "video/3gpp" if size <= MAX_AUDIO_VIDEO_BYTES => MediaKind::Video,
            _ => MediaKind::Document,
        }
    }

    fn name(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
        }
    }

    fn has_caption(self) -> bool {
        self != MediaKind::Audio
    }
}

/// One message of an item, in the order they go out.
enum Part<'a> {
    Text(String),
    File {
        attachment: &'a Attachment,
        caption: Option<String>,
    },
}

fn plan(content: &Content) -> Vec<Part<'_>> {
    let text = text_of(content);
    let has_text = !text.trim().is_empty();
    let mut parts = Vec::new();
    let Some(first) = content.attachments.first() else {
        if has_text {
            parts.push(Part::Text(text));
        }
        return parts;
    };
    let first_kind = upload_type(&first.mime, &first.name)
        .map_or(MediaKind::Document, |t| MediaKind::for_file(t, first.size));
    let caption_fits = first_kind.has_caption() && text.chars().count() <= MAX_CAPTION_CHARS;
    let mut caption = None;
    if has_text {
        if caption_fits {
            caption = Some(text);
        } else {
            parts.push(Part::Text(text));
        }
    }
    for (i, attachment) in content.attachments.iter().enumerate() {
        parts.push(Part::File {
            attachment,
            caption: if i == 0 { caption.take() } else { None },
        });
    }
    parts
}

/// `Channel::send`.
pub async fn send(out: &Outgoing<'_>, outbound: &Outbound) -> Result<Delivery, SendError> {
    let to = recipient(out, &outbound.conversation)?;
    match &outbound.action {
        OutboundAction::Message { content, reply_to } => {
            let parts = plan(content);
            if parts.is_empty() {
                return Err(permanent("there was nothing to send"));
            }
            let mut first = None;
            for (i, part) in parts.iter().enumerate() {
                let record = SentRecord::part(out.host, "whatsapp", outbound, &format!("#{i}"));
                let reply = if i == 0 { reply_to.as_deref() } else { None };
                let wamid = match record.recall().await? {
                    Some(done) => done,
                    None => {
                        let wamid = send_part(out, to, part, reply).await?;
                        record.remember(&wamid).await;
                        wamid
                    }
                };
                first.get_or_insert(wamid);
            }
            let remote_id = first.ok_or_else(|| permanent("there was nothing to send"))?;
            Ok(Delivery::sent(remote_id))
        }
        OutboundAction::React { remote_id, key } => {
            let mut body = envelope(to, "reaction", None);
            body["reaction"] =
                json!({"message_id": remote_id, "emoji": key.as_deref().unwrap_or("")});
            let wamid = out.graph.send(&body).await.map_err(classify)?;
            Ok(Delivery::sent(wamid))
        }
        OutboundAction::Template {
            name,
            language,
            params,
        } => {
            let record = SentRecord::part(out.host, "whatsapp", outbound, "#0");
            if let Some(done) = record.recall().await? {
                return Ok(Delivery::sent(done));
            }
            let mut body = envelope(to, "template", None);
            let code = language
                .as_deref()
                .unwrap_or(&out.config.default_template_language);
            body["template"] = json!({"name": name, "language": {"code": code}});
            if !params.is_empty() {
                let parameters: Vec<Value> = params
                    .iter()
                    .map(|p| json!({"type": "text", "text": p}))
                    .collect();
                body["template"]["components"] =
                    json!([{"type": "body", "parameters": parameters}]);
            }
            let wamid = out.graph.send(&body).await.map_err(classify)?;
            record.remember(&wamid).await;
            Ok(Delivery::sent(wamid))
        }
        OutboundAction::Edit { .. } => Err(permanent(
            "WhatsApp does not let a business change a sent message",
        )),
        OutboundAction::Delete { .. } => Err(permanent(
            "WhatsApp does not let a business delete a sent message",
        )),
        OutboundAction::RatingRequest(request) => {
            let record = SentRecord::part(out.host, "whatsapp", outbound, "#0");
            if let Some(done) = record.recall().await? {
                return Ok(Delivery::sent(done));
            }
            let mut body = envelope(to, "interactive", None);
            body["interactive"] = rating_message(request)?;
            let wamid = out.graph.send(&body).await.map_err(classify)?;
            record.remember(&wamid).await;
            Ok(Delivery::sent(wamid))
        }
    }
}

/// The list's button, which opens the rows. It says nothing in words, so it needs no
/// translation: the question above it is in the customer's language.
pub const RATING_LIST_BUTTON: &str = "⭐ 1–5";

/// Reply buttons (<https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/interactive-reply-buttons-messages>):
/// 1–3 buttons, each a `reply` with an `id` of at most 256 characters and a `title` of at most
/// 20; the body at most 1024 characters.
const REPLY_BUTTONS: rating::Buttons = rating::Buttons {
    message: "a WhatsApp reply-button message",
    network: "WhatsApp",
    max_buttons: 3,
    max_label: 20,
    max_payload: 256,
};
const MAX_BUTTONS_BODY: usize = 1024;

/// List messages (<https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/interactive-list-messages>):
/// at most 10 rows in all, a row `id` of at most 200 characters and a `title` of at most 24;
/// the body at most 4096 characters, the button at most 20.
const LIST_ROWS: rating::Buttons = rating::Buttons {
    message: "a WhatsApp list",
    network: "WhatsApp",
    max_buttons: 10,
    max_label: 24,
    max_payload: 200,
};
const MAX_LIST_BODY: usize = 4096;

/// The `interactive` object of a rating request: reply buttons when the choices fit them (3 at
/// most), else a list with one section.
pub fn rating_message(request: &switchboard_channel::RatingRequest) -> Result<Value, SendError> {
    if REPLY_BUTTONS.check(request).is_ok() {
        let buttons: Vec<Value> = request
            .choices
            .iter()
            .map(|c| json!({"type": "reply", "reply": {"id": c.payload, "title": c.label}}))
            .collect();
        return Ok(json!({
            "type": "button",
            "body": {"text": rating::clip(&request.question, MAX_BUTTONS_BODY, "⭐")},
            "action": {"buttons": buttons},
        }));
    }
    LIST_ROWS.check(request)?;
    let rows: Vec<Value> = request
        .choices
        .iter()
        .map(|c| json!({"id": c.payload, "title": c.label}))
        .collect();
    Ok(json!({
        "type": "list",
        "body": {"text": rating::clip(&request.question, MAX_LIST_BODY, "⭐")},
        "action": {"button": RATING_LIST_BUTTON, "sections": [{"rows": rows}]},
    }))
}

async fn send_part(
    out: &Outgoing<'_>,
    to: &str,
    part: &Part<'_>,
    reply_to: Option<&str>,
) -> Result<String, SendError> {
    match part {
        Part::Text(text) => {
            let mut body = envelope(to, "text", reply_to);
            body["text"] = json!({"preview_url": out.config.preview_url, "body": text});
            out.graph.send(&body).await.map_err(classify)
        }
        Part::File {
            attachment,
            caption,
        } => {
            let (bytes, mime) = attachment_bytes(out.host, attachment).await?;
            // WhatsApp takes a fixed list of types, documents included: a GIF or a ZIP cannot
            // go out at all, so the operator is told which kinds of file can.
            let Some(upload_mime) = upload_type(&mime, &attachment.name) else {
                return Err(permanent(format!(
                    "WhatsApp does not accept files of type {} ({}): it takes JPEG or PNG images, MP4 or 3GPP videos, AAC, AMR, MP3, M4A or OGG audio, WebP, and PDF, Word, Excel, PowerPoint or plain-text documents",
                    if mime.is_empty() { "unknown" } else { mime.as_str() },
                    attachment.name
                )));
            };
            let kind = MediaKind::for_file(upload_mime, bytes.len() as u64);
            let media_id = out
                .graph
                .upload(bytes, upload_mime, &attachment.name)
                .await
                .map_err(classify)?;
            let mut media = json!({"id": media_id});
            if let Some(c) = caption.as_ref().filter(|_| kind.has_caption()) {
                media["caption"] = c.clone().into();
            }
            if kind == MediaKind::Document {
                media["filename"] = attachment.name.clone().into();
            }
            let mut body = envelope(to, kind.name(), reply_to);
            body[kind.name()] = media;
            out.graph.send(&body).await.map_err(classify)
        }
    }
}

/// `Channel::mark_read`: blue ticks on the customer's message.
pub async fn mark_read(
    graph: &Graph,
    config: &WhatsAppConfig,
    conversation: &ConversationKey,
    remote_id: &str,
) {
    if conversation.account != config.phone_number_id
        || remote_id.is_empty()
        || remote_id.starts_with(char::is_control)
    {
        return;
    }
    let body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": remote_id});
    if let Err(e) = graph.post_messages(&body).await {
        tracing::debug!(error = %e, "whatsapp: read status not sent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_channel::MediaRef;
    use switchboard_kit::test_host::{check_retries_answered_from_record, MemoryHost};

    /// An item already sent (its key remembered) is answered from state, without a request: the
    /// Graph API behind this client is unreachable, so any request would fail.
    #[tokio::test]
    async fn a_retry_of_a_sent_item_does_not_send_again() {
        let config = WhatsAppConfig {
            enabled: true,
            phone_number_id: "42".into(),
            access_token: "t".into(),
            app_secret: "s".into(),
            verify_token: "v".into(),
            api_url: "http://127.0.0.1:9".into(),
            ..WhatsAppConfig::default()
        };
        let graph = Graph::new(&config).unwrap();
        let host = MemoryHost::default();
        host.state_put("out:$event1#0", "wamid.sent").await.unwrap();
        let out = Outgoing {
            graph: &graph,
            host: &host,
            config: &config,
        };
        let conversation = ConversationKey {
            account: "42".into(),
            chat: "4915112345678".into(),
        };
        check_retries_answered_from_record(&conversation, "wamid.sent", |item| {
            let out = &out;
            async move { send(out, &item).await }
        })
        .await;
    }

    fn attachment(name: &str, mime: &str, size: u64) -> Attachment {
        Attachment {
            media: MediaRef("mxc://x/y".into()),
            name: name.into(),
            mime: mime.into(),
            size,
        }
    }

    #[test]
    fn five_choices_go_as_a_list_three_as_buttons() {
        let request = rating::request("How did we do?", "n0nce");
        let list = rating_message(&request).unwrap();
        assert_eq!(list["type"], "list");
        assert_eq!(list["body"]["text"], "How did we do?");
        assert_eq!(list["action"]["button"], RATING_LIST_BUTTON);
        assert!(RATING_LIST_BUTTON.chars().count() <= 20);
        let rows = list["action"]["sections"][0]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[4]["id"], "sbr1:n0nce:5");
        assert_eq!(rows[4]["title"], "5 ⭐⭐⭐⭐⭐");
        let mut three = request.clone();
        three.choices.truncate(3);
        let buttons = rating_message(&three).unwrap();
        assert_eq!(buttons["type"], "button");
        assert_eq!(
            buttons["action"]["buttons"][2]["reply"]["id"],
            "sbr1:n0nce:3"
        );
        let mut eleven = request.clone();
        while eleven.choices.len() < 11 {
            eleven.choices.push(request.choices[0].clone());
        }
        assert!(matches!(
            rating_message(&eleven),
            Err(SendError::Permanent { .. })
        ));
    }

    #[test]
    fn only_types_whatsapp_takes_are_uploaded() {
        assert_eq!(upload_type("image/png", "a.png"), Some("image/png"));
        assert_eq!(upload_type("IMAGE/JPG", "a.jpg"), Some("image/jpeg"));
        assert_eq!(
            upload_type("audio/ogg; codecs=opus", "v.ogg"),
            Some("audio/ogg")
        );
        assert_eq!(
            upload_type("application/octet-stream", "Invoice.PDF"),
            Some("application/pdf")
        );
        assert_eq!(upload_type("", "notes.txt"), Some("text/plain"));
        // A labelled type WhatsApp refuses is not relabelled after the name.
        assert_eq!(upload_type("image/gif", "dance.gif"), None);
        assert_eq!(upload_type("image/gif", "dance.png"), None);
        assert_eq!(upload_type("application/zip", "a.zip"), None);
        assert_eq!(upload_type("application/octet-stream", "noext"), None);
    }

    #[test]
    fn files_pick_their_kind() {
        assert_eq!(MediaKind::for_file("image/jpeg", 1000), MediaKind::Image);
        assert_eq!(
            MediaKind::for_file("image/png", 6 * 1024 * 1024),
            MediaKind::Document
        );
        assert_eq!(MediaKind::for_file("image/gif", 10), MediaKind::Document);
        assert_eq!(
            MediaKind::for_file("audio/ogg; codecs=opus", 1000),
            MediaKind::Audio
        );
        assert_eq!(MediaKind::for_file("video/mp4", 1000), MediaKind::Video);
        assert_eq!(
            MediaKind::for_file("application/pdf", 1000),
            MediaKind::Document
        );
    }

    #[test]
    fn captions_ride_along_when_they_can() {
        let content = Content {
            text: "the label".into(),
            html: None,
            attachments: vec![attachment("l.png", "image/png", 10)],
        };
        let parts = plan(&content);
        assert!(
            matches!(parts.as_slice(), [Part::File { caption: Some(c), .. }] if c == "the label")
        );
        let content = Content {
            text: "listen".into(),
            html: None,
            attachments: vec![attachment("a.ogg", "audio/ogg", 10)],
        };
        assert!(
            matches!(plan(&content).as_slice(), [Part::Text(t), Part::File { caption: None, .. }] if t == "listen")
        );
        let content = Content {
            text: "x".repeat(2000),
            html: None,
            attachments: vec![attachment("d.pdf", "application/pdf", 10)],
        };
        assert!(matches!(
            plan(&content).as_slice(),
            [Part::Text(_), Part::File { caption: None, .. }]
        ));
        let content = Content {
            text: "plain".into(),
            html: Some("<b>bold</b>".into()),
            attachments: vec![],
        };
        assert!(matches!(plan(&content).as_slice(), [Part::Text(t)] if t == "*bold*"));
        assert!(plan(&Content::default()).is_empty());
    }
}
