//! Operators' messages delivered to the customer: `Channel::send`.
//!
//! * **Text** goes out as `send_message` `type: text` with `sender: {name, avatar}`.
//! * **Files**: Viber takes files only by URL, so each is published as a signed, expiring link
//!   `<public_url>/viber/media/<token>` (see `signing` and `media`) and sent as `picture` (JPEG,
//!   PNG or still GIF up to 1 MB, with the text as its caption when that fits Viber's 120
//!   characters; the link ends in .jpeg/.png/.gif as Viber requires), `video` (MP4 up to 26 MB,
//!   with its `size`; the link ends in .mp4) or `file` (anything else, an animated GIF too,
//!   with `size` and `file_name`). Text that does not fit a caption goes first as a message of
//!   its own.
//! * **Idempotency**: Viber has no idempotency key, so the channel remembers `out:<key>` → the
//!   first `message_token` and answers a retry from that. Only a crash in the instant between
//!   Viber accepting the message and that write can repeat it. The media links of an item are
//!   derived from its key, so a retry publishes the same links.
//! * **Rating requests** (CSAT): the question as a `text` message with a `keyboard` (`Type:
//!   keyboard`), one full-width `reply` button per choice, worst first: its `Text` the choice's
//!   label, its `ActionBody` the kit's payload. A press comes back as the customer's `text`
//!   message whose text is that `ActionBody` ([`crate::inbound`] makes it a choice). The basic
//!   keyboard and `reply` buttons need no client newer than `min_api_version: 1`.
//! * **Errors** go through [`api::classify`]. Viber has no edits, deletions or reactions.

use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchboard_channel::{Attachment, Delivery, Host, Outbound, OutboundAction, SendError};
use switchboard_kit::mime::essence;
use switchboard_kit::send::{attachment_bytes, host_unavailable, permanent, SentRecord};

use crate::api::{classify, Api};
use crate::media::Publisher;

/// Longest caption of a picture message.
const MAX_CAPTION_CHARS: usize = 120;
/// Largest picture Viber shows as one; bigger images go as files.
const MAX_PICTURE_BYTES: u64 = 1024 * 1024;
/// Largest video Viber takes as one; bigger videos go as files.
const MAX_VIDEO_BYTES: u64 = 26 * 1024 * 1024;

/// What `send` needs.
pub struct Outgoing {
    pub api: Api,
    pub host: Arc<dyn Host>,
    pub account: String,
    pub sender: Value,
    pub media: Publisher,
}

/// How a file goes out.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Picture,
    Video,
    File,
}

pub fn kind_for(mime: &str, size: u64) -> Kind {
    match essence(mime).as_str() {
        "image/jpeg" | "image/png" | "image/gif" if size <= MAX_PICTURE_BYTES => Kind::Picture,
        "video/mp4" if size <= MAX_VIDEO_BYTES => Kind::Video,
        _ => Kind::File,
    }
}

/// `Channel::send`.
pub async fn send(out: &Outgoing, outbound: &Outbound) -> Result<Delivery, SendError> {
    if outbound.conversation.account != out.account {
        return Err(permanent(format!(
            "this bridge's Viber bot is {}, not {}",
            out.account, outbound.conversation.account
        )));
    }
    let receiver = outbound.conversation.chat.as_str();
    if let OutboundAction::RatingRequest(request) = &outbound.action {
        return send_rating(out, receiver, outbound, request).await;
    }
    let OutboundAction::Message { content, .. } = &outbound.action else {
        return Err(permanent(
            "Viber has no edits, deletions, reactions or templates for bots",
        ));
    };
    let record = SentRecord::new(out.host.as_ref(), "viber", outbound);
    if let Some(done) = record.recall().await? {
        return Ok(Delivery::sent(done));
    }
    let text = content.text.trim();
    let first_is_picture = content
        .attachments
        .first()
        .is_some_and(|a| kind_for(&a.mime, a.size) == Kind::Picture);
    let caption_fits = first_is_picture && text.chars().count() <= MAX_CAPTION_CHARS;
    let mut tokens = Vec::new();
    if !text.is_empty() && !caption_fits {
        tokens.push(send_message(out, receiver, json!({"type": "text", "text": text})).await?);
    }
    for (i, attachment) in content.attachments.iter().enumerate() {
        let caption = if i == 0 && caption_fits { text } else { "" };
        tokens.push(
            send_file(
                out,
                receiver,
                attachment,
                caption,
                &format!("{}#{i}", outbound.idempotency_key),
            )
            .await?,
        );
    }
    let remote_id = tokens
        .into_iter()
        .next()
        .ok_or_else(|| permanent("there was nothing to send"))?;
    record.remember(&remote_id).await;
    // Viber confirms delivery later with a `delivered` callback.
    Ok(Delivery::sent(remote_id))
}

/// A keyboard button's longest `Text` (characters) and `ActionBody` (the kit's payload is far
/// shorter than either).
pub const MAX_BUTTON_TEXT: usize = 250;
pub const MAX_ACTION_BODY: usize = 250;

/// The keyboard of a rating request: one full-width (6 columns) `reply` button per choice.
pub fn rating_keyboard(request: &switchboard_channel::RatingRequest) -> Result<Value, SendError> {
    switchboard_kit::rating::check_fits(request, "Viber", MAX_BUTTON_TEXT, MAX_ACTION_BODY)?;
    let buttons: Vec<Value> = request
        .choices
        .iter()
        .map(|c| {
            json!({"Columns": 6, "Rows": 1, "ActionType": "reply",
                   "ActionBody": c.payload, "Text": c.label})
        })
        .collect();
    Ok(json!({"Type": "keyboard", "DefaultHeight": false, "Buttons": buttons}))
}

/// `Channel::send` of a rating request: the question with its keyboard, once per item.
async fn send_rating(
    out: &Outgoing,
    receiver: &str,
    outbound: &Outbound,
    request: &switchboard_channel::RatingRequest,
) -> Result<Delivery, SendError> {
    let record = SentRecord::new(out.host.as_ref(), "viber", outbound);
    if let Some(done) = record.recall().await? {
        return Ok(Delivery::sent(done));
    }
    let body = json!({"type": "text", "text": request.question,
                      "keyboard": rating_keyboard(request)?});
    let remote_id = send_message(out, receiver, body).await?;
    record.remember(&remote_id).await;
    Ok(Delivery::sent(remote_id))
}

/// One `send_message`; returns the `message_token`.
async fn send_message(
    out: &Outgoing,
    receiver: &str,
    mut body: Value,
) -> Result<String, SendError> {
    body["receiver"] = receiver.into();
    body["min_api_version"] = 1.into();
    body["sender"] = out.sender.clone();
    let answer = out
        .api
        .call("send_message", &body)
        .await
        .map_err(classify)?;
    match answer.get("message_token") {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(SendError::Retryable {
            reason: format!("Viber answered without a message token: {answer}"),
            retry_after: None,
        }),
    }
}

/// A GIF that loops (the NETSCAPE2.0 application extension) or holds more than one frame.
fn is_animated_gif(bytes: &[u8]) -> bool {
    bytes.starts_with(b"GIF8")
        && (bytes.windows(11).any(|w| w == b"NETSCAPE2.0")
            || bytes.windows(2).filter(|w| w == b"\x00\x2c").count() > 1)
}

/// The extension a picture's URL ends in (`kind_for` made it a JPEG, PNG or GIF).
/// Viber names `.jpeg` (not the usual `.jpg`), so this is Viber's own table.
fn picture_extension(mime: &str) -> &'static str {
    match essence(mime).as_str() {
        "image/png" => "png",
        "image/gif" => "gif",
        _ => "jpeg",
    }
}

/// A record id for an item's attachment: stable across retries.
fn media_id(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..16])
}

async fn send_file(
    out: &Outgoing,
    receiver: &str,
    attachment: &Attachment,
    caption: &str,
    key: &str,
) -> Result<String, SendError> {
    let (bytes, _) = attachment_bytes(out.host.as_ref(), attachment).await?;
    let (size, animated) = (bytes.len() as u64, is_animated_gif(&bytes));
    // A picture is a still image: "Animated GIFs can be sent as URL messages or file messages".
    let kind = match kind_for(&attachment.mime, size) {
        Kind::Picture if animated => Kind::File,
        kind => kind,
    };
    // A file has no caption: text meant for the picture goes first, on its own.
    if kind == Kind::File && !caption.is_empty() {
        send_message(out, receiver, json!({"type": "text", "text": caption})).await?;
    }
    // "The URL must have a resource with a .jpeg, .png or .gif file extension as the last path
    // segment" (picture) / "with a .mp4 file extension" (video):
    // <https://developers.viber.com/docs/api/rest-bot-api/#message-types>.
    let extension = match kind {
        Kind::Picture => Some(picture_extension(&attachment.mime)),
        Kind::Video => Some("mp4"),
        Kind::File => None,
    };
    let url = out
        .media
        .publish(&media_id(key), attachment, extension)
        .await
        .map_err(host_unavailable)?;
    let body = match kind {
        Kind::Picture => json!({"type": "picture", "text": caption, "media": url}),
        Kind::Video => json!({"type": "video", "media": url, "size": size}),
        Kind::File => {
            json!({"type": "file", "media": url, "size": size, "file_name": attachment.name})
        }
    };
    send_message(out, receiver, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One full-width reply button per choice, worst first, its ActionBody the kit's payload.
    #[test]
    fn rating_keyboard_is_reply_buttons() {
        let request = switchboard_kit::rating::request("How did we do?", "abc123");
        let k = rating_keyboard(&request).unwrap();
        assert_eq!(k["Type"], "keyboard");
        let buttons = k["Buttons"].as_array().unwrap();
        assert_eq!(buttons.len(), 5);
        for (b, c) in buttons.iter().zip(&request.choices) {
            assert_eq!(b["ActionType"], "reply");
            assert_eq!(b["ActionBody"], c.payload.as_str());
            assert_eq!(b["Text"], c.label.as_str());
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(kind_for("image/jpeg", 1000), Kind::Picture);
        // An alias of JPEG is a JPEG (the kit's `essence`).
        assert_eq!(kind_for("Image/JPG; q=1", 1000), Kind::Picture);
        assert_eq!(picture_extension("image/pjpeg"), "jpeg");
        assert_eq!(picture_extension("IMAGE/PNG"), "png");
        assert_eq!(kind_for("image/png", 2 * 1024 * 1024), Kind::File);
        assert_eq!(kind_for("image/webp", 10), Kind::File);
        assert_eq!(kind_for("video/mp4", 1000), Kind::Video);
        assert_eq!(kind_for("application/pdf", 1000), Kind::File);
        assert_eq!(media_id("k#0"), media_id("k#0"));
        assert_ne!(media_id("k#0"), media_id("k#1"));
    }
}
