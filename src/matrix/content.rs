//! Message content between Matrix and channels.
//!
//! Out: an operator's `m.room.message` (parsed with ruma's types) becomes channel [`Content`]:
//! plain text always, sanitised HTML when the channel shows formatting, files as attachments,
//! reply fallbacks removed, operator attribution applied as configured.
//! In: channel [`Content`] becomes `m.room.message` events: one for the text and one per file.

use ruma::events::room::message::{
    AudioInfo, AudioMessageEventContent, FileInfo, FileMessageEventContent,
    ImageMessageEventContent, MessageType, RoomMessageEventContent, VideoInfo,
    VideoMessageEventContent,
};
use ruma::events::room::{ImageInfo, MediaSource};
use ruma::{OwnedMxcUri, UInt};
use serde_json::{json, Value};
use switchboard_channel::{Attachment, Content, Formatting, MediaRef};

use crate::config::Attribution;

/// An operator's message, ready for a channel.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorMessage {
    pub content: Content,
    /// The event this one answers.
    pub reply_to: Option<String>,
    /// The event this one edits (`m.replace`).
    pub replaces: Option<String>,
}

/// Why an operator's message cannot be relayed as it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unrelayable {
    #[error("encrypted files cannot be relayed; send the file unencrypted")]
    EncryptedFile,
    #[error("{0} messages cannot be sent to the customer")]
    Unsupported(String),
    #[error("not a valid message: {0}")]
    Invalid(String),
}

/// Parse an `m.room.message` content. `Ok(None)` means "nothing to relay" (notices).
pub fn parse_operator_message(content: &Value) -> Result<Option<OperatorMessage>, Unrelayable> {
    let relates = content.get("m.relates_to");
    let replaces = relates
        .filter(|r| r.get("rel_type").and_then(Value::as_str) == Some("m.replace"))
        .and_then(|r| r.get("event_id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let reply_to = relates
        .and_then(|r| r.get("m.in_reply_to"))
        .and_then(|r| r.get("event_id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let effective = match (&replaces, content.get("m.new_content")) {
        (Some(_), Some(new)) => new.clone(),
        _ => content.clone(),
    };
    let parsed: RoomMessageEventContent =
        serde_json::from_value(effective).map_err(|e| Unrelayable::Invalid(e.to_string()))?;
    let content = match parsed.msgtype {
        MessageType::Text(t) => text(
            &t.body,
            t.formatted.as_ref().map(|f| f.body.as_str()),
            reply_to.is_some(),
        ),
        MessageType::Emote(t) => {
            let mut c = text(
                &t.body,
                t.formatted.as_ref().map(|f| f.body.as_str()),
                reply_to.is_some(),
            );
            c.text = format!("* {}", c.text);
            c.html = c.html.map(|h| format!("* {h}"));
            c
        }
        MessageType::Notice(_) => return Ok(None),
        MessageType::Image(m) => file(
            m.body,
            m.filename,
            m.source,
            m.info.as_ref().and_then(|i| i.mimetype.clone()),
            m.info.as_ref().and_then(|i| i.size),
        )?,
        MessageType::File(m) => file(
            m.body,
            m.filename,
            m.source,
            m.info.as_ref().and_then(|i| i.mimetype.clone()),
            m.info.as_ref().and_then(|i| i.size),
        )?,
        MessageType::Audio(m) => file(
            m.body,
            m.filename,
            m.source,
            m.info.as_ref().and_then(|i| i.mimetype.clone()),
            m.info.as_ref().and_then(|i| i.size),
        )?,
        MessageType::Video(m) => file(
            m.body,
            m.filename,
            m.source,
            m.info.as_ref().and_then(|i| i.mimetype.clone()),
            m.info.as_ref().and_then(|i| i.size),
        )?,
        other => return Err(Unrelayable::Unsupported(other.msgtype().to_string())),
    };
    Ok(Some(OperatorMessage {
        content,
        reply_to,
        replaces,
    }))
}

fn text(body: &str, html: Option<&str>, is_reply: bool) -> Content {
    let body = if is_reply {
        ruma::events::room::message::sanitize::remove_plain_reply_fallback(body)
    } else {
        body
    };
    Content {
        text: body.to_string(),
        html: html
            .map(|h| sanitize_html(&strip_reply_fallback(h)))
            .filter(|h| !h.trim().is_empty()),
        attachments: Vec::new(),
    }
}

fn file(
    body: String,
    filename: Option<String>,
    source: MediaSource,
    mime: Option<String>,
    size: Option<UInt>,
) -> Result<Content, Unrelayable> {
    let MediaSource::Plain(url) = source else {
        return Err(Unrelayable::EncryptedFile);
    };
    // With a `filename`, `body` is a caption; without, `body` is the file name.
    let (name, caption) = match filename {
        Some(f) if f != body => (f, body),
        Some(f) => (f, String::new()),
        None => (body, String::new()),
    };
    Ok(Content {
        text: caption,
        html: None,
        attachments: vec![Attachment {
            media: MediaRef(url.to_string()),
            name: safe_file_name(&name),
            mime: mime.unwrap_or_else(|| "application/octet-stream".into()),
            size: size.map(u64::from).unwrap_or(0),
        }],
    })
}

/// An operator's file name made safe to hand to a channel (the kit's one rule).
pub fn safe_file_name(name: &str) -> String {
    switchboard_kit::safe_file_name(name, "file")
}

/// Remove the `<mx-reply>` quote a client may put before a reply's HTML.
fn strip_reply_fallback(html: &str) -> String {
    match (html.find("<mx-reply>"), html.find("</mx-reply>")) {
        (Some(start), Some(end)) if end > start => {
            format!("{}{}", &html[..start], &html[end + "</mx-reply>".len()..])
        }
        _ => html.to_string(),
    }
}

/// Keep only harmless formatting: emphasis, code, lists, quotes, line breaks and http(s)/mailto
/// links. Scripts, styles, images, event handlers and other URL schemes are removed.
pub fn sanitize_html(html: &str) -> String {
    ammonia::Builder::empty()
        .add_tags([
            "b",
            "strong",
            "i",
            "em",
            "u",
            "s",
            "del",
            "code",
            "pre",
            "br",
            "p",
            "ul",
            "ol",
            "li",
            "blockquote",
            "a",
            "details",
            "summary",
            "span",
        ])
        .add_tag_attributes("a", ["href"])
        // Spoilers (Discord's ||text||, Telegram's spoiler entity): clients hide them until clicked.
        .add_tag_attributes("span", ["data-mx-spoiler"])
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer"))
        .clean(html)
        .to_string()
}

/// Put the operator's name on the message as configured.
pub fn attribute(content: &mut Content, attribution: Attribution, name: &str) {
    let escaped = escape_html(name);
    match attribution {
        Attribution::None => {}
        Attribution::Prefix => {
            content.text = format!("{name}: {}", content.text);
            content.html = content
                .html
                .take()
                .map(|h| format!("<b>{escaped}:</b> {h}"));
        }
        Attribution::Signature => {
            content.text = format!("{}\n— {name}", content.text);
            content.html = content.html.take().map(|h| format!("{h}<br>— {escaped}"));
        }
    }
}

/// Escape text for inclusion in HTML (the kit's one rule).
pub use switchboard_kit::escape_html;

/// Fit content to what the channel shows.
pub fn for_channel(mut content: Content, formatting: Formatting) -> Content {
    if formatting == Formatting::Plain {
        content.html = None;
    }
    content
}

/// The Matrix events a customer's message becomes: the text (when any), then one per file.
pub fn to_matrix(content: &Content) -> Vec<Value> {
    let mut events = Vec::new();
    if !content.text.is_empty() || content.attachments.is_empty() {
        let msg = match &content.html {
            Some(html) => {
                RoomMessageEventContent::text_html(content.text.clone(), sanitize_html(html))
            }
            None => RoomMessageEventContent::text_plain(content.text.clone()),
        };
        events.push(
            serde_json::to_value(&msg)
                .unwrap_or_else(|_| json!({"msgtype": "m.text", "body": content.text})),
        );
    }
    for a in &content.attachments {
        events.push(attachment_to_matrix(a));
    }
    events
}

fn attachment_to_matrix(a: &Attachment) -> Value {
    let url: OwnedMxcUri = a.media.0.clone().into();
    let size = UInt::new(a.size);
    let msgtype = if a.mime.starts_with("image/") {
        let mut info = ImageInfo::new();
        info.mimetype = Some(a.mime.clone());
        info.size = size;
        let mut m = ImageMessageEventContent::plain(a.name.clone(), url);
        m.info = Some(Box::new(info));
        m.filename = Some(a.name.clone());
        MessageType::Image(m)
    } else if a.mime.starts_with("audio/") {
        let mut info = AudioInfo::new();
        info.mimetype = Some(a.mime.clone());
        info.size = size;
        let mut m = AudioMessageEventContent::plain(a.name.clone(), url);
        m.info = Some(Box::new(info));
        m.filename = Some(a.name.clone());
        MessageType::Audio(m)
    } else if a.mime.starts_with("video/") {
        let mut info = VideoInfo::new();
        info.mimetype = Some(a.mime.clone());
        info.size = size;
        let mut m = VideoMessageEventContent::plain(a.name.clone(), url);
        m.info = Some(Box::new(info));
        m.filename = Some(a.name.clone());
        MessageType::Video(m)
    } else {
        let mut info = FileInfo::new();
        info.mimetype = Some(a.mime.clone());
        info.size = size;
        let mut m = FileMessageEventContent::plain(a.name.clone(), url);
        m.info = Some(Box::new(info));
        m.filename = Some(a.name.clone());
        MessageType::File(m)
    };
    serde_json::to_value(RoomMessageEventContent::new(msgtype)).unwrap_or(Value::Null)
}

/// Add `m.in_reply_to` to an event content.
pub fn with_reply(mut content: Value, event_id: &str) -> Value {
    if let Some(obj) = content.as_object_mut() {
        obj.insert(
            "m.relates_to".into(),
            json!({"m.in_reply_to": {"event_id": event_id}}),
        );
    }
    content
}

/// An edit (`m.replace`) of `event_id` with new content.
pub fn replacement(new_content: Value, event_id: &str) -> Value {
    let mut outer = new_content.clone();
    if let Some(obj) = outer.as_object_mut() {
        let body = obj
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        obj.insert("body".into(), Value::String(format!("* {body}")));
        if let Some(fb) = obj
            .get("formatted_body")
            .and_then(Value::as_str)
            .map(str::to_string)
        {
            obj.insert("formatted_body".into(), Value::String(format!("* {fb}")));
        }
        obj.insert("m.new_content".into(), new_content);
        obj.insert(
            "m.relates_to".into(),
            json!({"rel_type": "m.replace", "event_id": event_id}),
        );
    }
    outer
}

/// A notice from the bot.
pub fn notice(text: &str) -> Value {
    json!({"msgtype": "m.notice", "body": text})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_html_is_sanitised_and_reply_fallback_removed() {
        let c = json!({
            "msgtype": "m.text",
            "body": "> <@v:x> hi\n\n**ok** <script>",
            "format": "org.matrix.custom.html",
            "formatted_body": "<mx-reply><blockquote>hi</blockquote></mx-reply><b>ok</b><script>alert(1)</script><img src=x onerror=alert(1)><a href=\"javascript:alert(1)\">x</a>",
            "m.relates_to": {"m.in_reply_to": {"event_id": "$e"}}
        });
        let m = parse_operator_message(&c).unwrap().unwrap();
        assert_eq!(m.reply_to.as_deref(), Some("$e"));
        assert_eq!(m.content.text, "**ok** <script>");
        let html = m.content.html.unwrap();
        assert!(html.starts_with("<b>ok</b>"), "{html}");
        assert!(
            !html.contains("script")
                && !html.contains("img")
                && !html.contains("javascript")
                && !html.contains("blockquote"),
            "{html}"
        );
    }

    #[test]
    fn spoilers_survive_and_other_spans_lose_their_attributes() {
        let html = sanitize_html(
            r#"<span data-mx-spoiler="">secret</span> <span style="color:red" onclick="x()">red</span>"#,
        );
        assert_eq!(
            html,
            r#"<span data-mx-spoiler="">secret</span> <span>red</span>"#
        );
    }

    #[test]
    fn edits_take_the_new_content() {
        let c = json!({
            "msgtype": "m.text", "body": "* fixed",
            "m.new_content": {"msgtype": "m.text", "body": "fixed"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$orig"}
        });
        let m = parse_operator_message(&c).unwrap().unwrap();
        assert_eq!(m.replaces.as_deref(), Some("$orig"));
        assert_eq!(m.content.text, "fixed");
    }

    #[test]
    fn files_keep_name_mime_and_size_and_encrypted_ones_are_refused() {
        let c = json!({"msgtype": "m.file", "body": "../../etc/passwd", "url": "mxc://hs/abc", "info": {"mimetype": "text/plain", "size": 12}});
        let m = parse_operator_message(&c).unwrap().unwrap();
        let a = &m.content.attachments[0];
        assert_eq!(
            (a.name.as_str(), a.mime.as_str(), a.size, a.media.0.as_str()),
            ("passwd", "text/plain", 12, "mxc://hs/abc")
        );
        let enc = json!({"msgtype": "m.file", "body": "x", "file": {"url": "mxc://hs/abc", "key": {"kty":"oct","key_ops":["encrypt","decrypt"],"alg":"A256CTR","k":"qcHVMSgYg-71CauWBezXI5qkaRb0LuIy-Wx5kIaHMIA","ext":true}, "iv": "X85+XgHN+HEAAAAAAAAAAA", "hashes": {"sha256": "2TvE4dOFbsxQjCzlTkPSpMtbQpuU0xwh2M3uXo2jJSE"}, "v": "v2"}});
        assert_eq!(
            parse_operator_message(&enc).unwrap_err(),
            Unrelayable::EncryptedFile
        );
        let notice = json!({"msgtype": "m.notice", "body": "bot"});
        assert_eq!(parse_operator_message(&notice).unwrap(), None);
    }

    #[test]
    fn attribution_modes() {
        let base = Content {
            text: "Hello".into(),
            html: Some("<i>Hello</i>".into()),
            attachments: vec![],
        };
        let mut p = base.clone();
        attribute(&mut p, Attribution::Prefix, "Alice <A>");
        assert_eq!(p.text, "Alice <A>: Hello");
        assert_eq!(
            p.html.as_deref(),
            Some("<b>Alice &lt;A&gt;:</b> <i>Hello</i>")
        );
        let mut s = base.clone();
        attribute(&mut s, Attribution::Signature, "Alice");
        assert_eq!(s.text, "Hello\n— Alice");
        let mut n = base.clone();
        attribute(&mut n, Attribution::None, "Alice");
        assert_eq!(n, base);
    }

    #[test]
    fn customer_content_becomes_text_then_files() {
        let c = Content {
            text: "see <this>".into(),
            html: None,
            attachments: vec![Attachment {
                media: MediaRef("mxc://hs/f".into()),
                name: "a.png".into(),
                mime: "image/png".into(),
                size: 3,
            }],
        };
        let evs = to_matrix(&c);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0]["body"], "see <this>");
        assert!(evs[0].get("formatted_body").is_none());
        assert_eq!(evs[1]["msgtype"], "m.image");
        assert_eq!(evs[1]["info"]["mimetype"], "image/png");
        assert_eq!(evs[1]["info"]["size"], 3);
        assert_eq!(evs[1]["url"], "mxc://hs/f");
    }
}
