//! Operators' actions delivered to the customer: `Channel::send` (messages, files, edits,
//! deletions), `Channel::typing` and `Channel::mark_read`.
//!
//! * **Messages** go out with `messages.send` to `peer_ids=<peer>` (so VK answers with the
//!   `conversation_message_id`, the id inbound events use), the text as `message`, files as
//!   `attachment`, and a reply as `forward={"peer_id":…,"conversation_message_ids":[…],
//!   "is_reply":1}` (the form VK accepts for communities, where the global message id is 0).
//! * **Idempotency**: `random_id` is derived from the outbox item's idempotency key (the first
//!   31 bits of its SHA-256), so VK itself drops a retry of a message it already has. On top, the
//!   channel remembers `out:<key>` → remote id and answers a retry from that without a request.
//! * **Files**: images up to 50 MB go through `photos.getMessagesUploadServer` → multipart upload
//!   (field `photo`) → `photos.saveMessagesPhoto` → `photo<owner>_<id>[_<access key>]`; anything
//!   else through `docs.getMessagesUploadServer` → upload (field `file`) → `docs.save` →
//!   `doc<owner>_<id>[_<access key>]`. Up to 10 attachments per message, the text with the first ten.
//! * **Edits**: `messages.edit` by `conversation_message_id`. **Deletions**: `messages.delete`
//!   with `cmids` and `delete_for_all=1` (VK allows it for 24 hours).
//! * **Rating requests** (CSAT) go out as one `messages.send` with an inline `keyboard`: one
//!   `callback` button per row (an inline keyboard takes 6 rows), its `label` the choice's
//!   (≤ 40 characters) and its `payload` the JSON `{"rating": "<kit payload>"}` (≤ 255). A press
//!   comes back as a `message_event` ([`crate::inbound`]), answered with
//!   `messages.sendMessageEventAnswer` once stored.
//! * **Errors** go through [`api::classify`].

use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchboard_channel::{
    Attachment, ConversationKey, Delivery, Host, Outbound, OutboundAction, SendError,
};
use switchboard_kit::mime::essence;
use switchboard_kit::send::{attachment_bytes, permanent, SentRecord};

use crate::api::{classify, classify_vk, Api, ApiError};
use crate::config::MAX_PHOTO_BYTES;

/// VK takes at most ten attachments per message.
const MAX_ATTACHMENTS: usize = 10;

/// What `send` needs.
pub struct Outgoing {
    pub api: Api,
    pub host: Arc<dyn Host>,
    pub account: String,
    pub group_id: i64,
}

/// The `random_id` for an outbox item: stable across retries, positive 31 bits, never 0.
pub fn random_id(idempotency_key: &str, part: usize) -> i64 {
    let digest = Sha256::digest(format!("{idempotency_key}#{part}").as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x7fff_ffff;
    i64::from(n.max(1))
}

fn peer_of(out: &Outgoing, conversation: &ConversationKey) -> Result<i64, SendError> {
    if conversation.account != out.account {
        return Err(permanent(format!(
            "this bridge's VK community is {}, not {}",
            out.account, conversation.account
        )));
    }
    conversation
        .chat
        .parse::<i64>()
        .map_err(|_| permanent(format!("{:?} is not a VK peer id", conversation.chat)))
}

fn cmid(remote_id: &str) -> Result<i64, SendError> {
    remote_id
        .parse::<i64>()
        .map_err(|_| permanent(format!("{remote_id:?} is not a VK message id")))
}

/// `Channel::send`.
pub async fn send(out: &Outgoing, outbound: &Outbound) -> Result<Delivery, SendError> {
    let peer = peer_of(out, &outbound.conversation)?;
    match &outbound.action {
        OutboundAction::Message { content, reply_to } => {
            // VK's random_id also covers a retry.
            let record = SentRecord::new(out.host.as_ref(), "vk", outbound);
            if let Some(done) = record.recall().await? {
                return Ok(Delivery::delivered(done));
            }
            let reply = reply_to.as_deref().map(cmid).transpose()?;
            let mut attachments = Vec::new();
            for a in &content.attachments {
                attachments.push(upload(out, peer, a).await?);
            }
            let mut first: Option<i64> = None;
            let chunks: Vec<&[String]> = if attachments.is_empty() {
                vec![&[][..]]
            } else {
                attachments.chunks(MAX_ATTACHMENTS).collect()
            };
            for (part, chunk) in chunks.into_iter().enumerate() {
                let text = if part == 0 { content.text.as_str() } else { "" };
                let id = send_one(
                    out,
                    peer,
                    text,
                    chunk,
                    if part == 0 { reply } else { None },
                    random_id(&outbound.idempotency_key, part),
                )
                .await?;
                first.get_or_insert(id);
            }
            let remote_id = first
                .map(|c| c.to_string())
                .ok_or_else(|| permanent("there was nothing to send"))?;
            record.remember(&remote_id).await;
            Ok(Delivery::delivered(remote_id))
        }
        OutboundAction::Edit { remote_id, content } => {
            let params = [
                ("peer_id", peer.to_string()),
                ("conversation_message_id", cmid(remote_id)?.to_string()),
                ("message", content.text.clone()),
                ("keep_forward_messages", "1".into()),
                ("keep_snippets", "1".into()),
            ];
            changed(out, "messages.edit", &params, remote_id).await
        }
        OutboundAction::Delete { remote_id } => {
            let params = [
                ("peer_id", peer.to_string()),
                ("cmids", cmid(remote_id)?.to_string()),
                ("delete_for_all", "1".into()),
            ];
            changed(out, "messages.delete", &params, remote_id).await
        }
        OutboundAction::React { .. } | OutboundAction::Template { .. } => {
            Err(permanent("reactions and templates are not bridged to VK"))
        }
        OutboundAction::RatingRequest(request) => {
            let record = SentRecord::new(out.host.as_ref(), "vk", outbound);
            if let Some(done) = record.recall().await? {
                return Ok(Delivery::delivered(done));
            }
            let keyboard = rating_keyboard(request)?;
            let id = send_one_with(
                out,
                peer,
                &request.question,
                &[],
                None,
                random_id(&outbound.idempotency_key, 0),
                Some(keyboard),
            )
            .await?;
            let remote_id = id.to_string();
            record.remember(&remote_id).await;
            Ok(Delivery::delivered(remote_id))
        }
    }
}

/// A `callback` button's longest label (characters) and payload (characters of JSON).
pub const MAX_BUTTON_LABEL: usize = 40;
pub const MAX_BUTTON_PAYLOAD: usize = 255;
/// The key of a rating button's payload object.
pub const RATING_KEY: &str = "rating";

/// An inline keyboard of one `callback` button per row: at most 6 rows, labels of at most 40
/// characters, payloads of at most 255 — less the JSON wrapper (`{"rating":"…"}`) the kit's
/// payload goes in.
const RATING_BUTTONS: switchboard_kit::rating::Buttons = switchboard_kit::rating::Buttons {
    message: "a VK inline keyboard",
    network: "VK",
    max_buttons: 6,
    max_label: MAX_BUTTON_LABEL,
    max_payload: MAX_BUTTON_PAYLOAD - r#"{"rating":""}"#.len(),
};

/// The inline keyboard of a rating request: one `callback` button per row, worst first.
pub fn rating_keyboard(request: &switchboard_channel::RatingRequest) -> Result<String, SendError> {
    RATING_BUTTONS.check(request)?;
    let rows: Vec<Value> = request
        .choices
        .iter()
        .map(|c| {
            json!([{
                "action": {
                    "type": "callback",
                    "label": c.label,
                    "payload": json!({ RATING_KEY: c.payload }).to_string(),
                },
                "color": "secondary",
            }])
        })
        .collect();
    Ok(json!({"inline": true, "buttons": rows}).to_string())
}

/// One `messages.send`; returns the new message's `conversation_message_id`.
async fn send_one(
    out: &Outgoing,
    peer: i64,
    text: &str,
    attachments: &[String],
    reply: Option<i64>,
    random_id: i64,
) -> Result<i64, SendError> {
    send_one_with(out, peer, text, attachments, reply, random_id, None).await
}

/// [`send_one`] with a `keyboard` (JSON).
async fn send_one_with(
    out: &Outgoing,
    peer: i64,
    text: &str,
    attachments: &[String],
    reply: Option<i64>,
    random_id: i64,
    keyboard: Option<String>,
) -> Result<i64, SendError> {
    let mut params = vec![
        ("peer_ids", peer.to_string()),
        ("random_id", random_id.to_string()),
    ];
    if !text.is_empty() {
        params.push(("message", text.to_owned()));
    }
    if !attachments.is_empty() {
        params.push(("attachment", attachments.join(",")));
    }
    if let Some(c) = reply {
        params.push((
            "forward",
            json!({"peer_id": peer, "conversation_message_ids": [c], "is_reply": 1}).to_string(),
        ));
    }
    if let Some(k) = keyboard {
        params.push(("keyboard", k));
    }
    let answer = out
        .api
        .call("messages.send", &params)
        .await
        .map_err(classify)?;
    sent_cmid(&answer, peer)
}

/// Read `messages.send`'s answer for `peer_ids`: `[{"peer_id":…,"conversation_message_id":…}]`,
/// or the per-peer `"error": {"code": …, "description": …}`.
pub fn sent_cmid(answer: &Value, peer: i64) -> Result<i64, SendError> {
    let items = answer.as_array().ok_or_else(|| SendError::Retryable {
        reason: format!("unexpected answer from VK: {answer}"),
        retry_after: None,
    })?;
    let item = items
        .iter()
        .find(|i| i.get("peer_id").and_then(Value::as_i64) == Some(peer))
        .or_else(|| items.first())
        .ok_or_else(|| SendError::Retryable {
            reason: "VK answered without the message".into(),
            retry_after: None,
        })?;
    if let Some(error) = item.get("error") {
        let code = error
            .get("code")
            .or_else(|| error.get("error_code"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let message = error
            .get("description")
            .or_else(|| error.get("error_msg"))
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        return Err(classify_vk(code, message));
    }
    item.get("conversation_message_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| SendError::Retryable {
            reason: format!("VK answered without a message id: {item}"),
            retry_after: None,
        })
}

/// Upload one file for a message; returns its `attachment` string.
async fn upload(out: &Outgoing, peer: i64, attachment: &Attachment) -> Result<String, SendError> {
    let (bytes, mime) = attachment_bytes(out.host.as_ref(), attachment).await?;
    let essence = essence(&mime);
    let photo = matches!(essence.as_str(), "image/jpeg" | "image/png" | "image/gif")
        && bytes.len() as u64 <= MAX_PHOTO_BYTES;
    let file = UploadFile {
        name: &attachment.name,
        mime: &essence,
        bytes: bytes.to_vec(),
    };
    if photo {
        let params = [("peer_id", peer.to_string())];
        let server = "photos.getMessagesUploadServer";
        let uploaded = upload_to_server(out, server, &params, "photo", "photo", file).await?;
        let field = |k: &str| {
            uploaded
                .get(k)
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_default()
        };
        let saved = out
            .api
            .call(
                "photos.saveMessagesPhoto",
                &[
                    ("photo", field("photo")),
                    ("server", field("server")),
                    ("hash", field("hash")),
                ],
            )
            .await
            .map_err(classify)?;
        attachment_string("photo", saved.as_array().and_then(|a| a.first()))
    } else {
        let params = [("type", "doc".into()), ("peer_id", peer.to_string())];
        let server = "docs.getMessagesUploadServer";
        let uploaded = upload_to_server(out, server, &params, "file", "document", file).await?;
        let file = uploaded
            .get("file")
            .and_then(Value::as_str)
            .ok_or_else(|| permanent("VK's upload server kept no file"))?;
        let saved = out
            .api
            .call(
                "docs.save",
                &[
                    ("file", file.to_owned()),
                    ("title", attachment.name.clone()),
                ],
            )
            .await
            .map_err(classify)?;
        let doc = saved
            .get("doc")
            .or_else(|| saved.as_array().and_then(|a| a.first()));
        attachment_string("doc", doc)
    }
}

/// A file on its way to one of VK's upload servers.
struct UploadFile<'a> {
    name: &'a str,
    mime: &'a str,
    bytes: Vec<u8>,
}

/// The first two steps of every upload: ask `server_method` for an upload server, and post
/// the file to it as the multipart field `field`; returns the upload server's answer, which
/// the matching `…save…` method takes. `what` names the kind of file in errors.
async fn upload_to_server(
    out: &Outgoing,
    server_method: &str,
    params: &[(&str, String)],
    field: &str,
    what: &str,
    file: UploadFile<'_>,
) -> Result<Value, SendError> {
    let server = out
        .api
        .call(server_method, params)
        .await
        .map_err(classify)?;
    let url = server
        .get("upload_url")
        .and_then(Value::as_str)
        .ok_or_else(|| permanent(format!("VK gave no {what} upload URL")))?;
    out.api
        .upload(url, field, file.name, file.mime, file.bytes)
        .await
        .map_err(|e| match e {
            ApiError::Vk { code: 0, message } => {
                permanent(format!("VK refused the file {}: {message}", file.name))
            }
            other => classify(other),
        })
}

/// The `attachment` string of what a `…save…` method saved (`kind`: `photo`, `doc`):
/// `<kind><owner>_<id>`, with `_<access key>` when VK gave one.
pub fn attachment_string(kind: &str, saved: Option<&Value>) -> Result<String, SendError> {
    let what = if kind == "photo" { "photo" } else { "document" };
    let saved = saved.ok_or_else(|| permanent(format!("VK did not save the {what}")))?;
    let (Some(owner), Some(id)) = (
        saved.get("owner_id").and_then(Value::as_i64),
        saved.get("id").and_then(Value::as_i64),
    ) else {
        return Err(permanent(format!("VK did not say which {what} it saved")));
    };
    Ok(match saved.get("access_key").and_then(Value::as_str) {
        Some(k) if !k.is_empty() => format!("{kind}{owner}_{id}_{k}"),
        _ => format!("{kind}{owner}_{id}"),
    })
}

/// An edit or a deletion of the message `remote_id`: delivered once VK accepts `method`.
async fn changed(
    out: &Outgoing,
    method: &str,
    params: &[(&str, String)],
    remote_id: &str,
) -> Result<Delivery, SendError> {
    out.api.call(method, params).await.map_err(classify)?;
    Ok(Delivery::delivered(remote_id.to_owned()))
}

/// `Channel::typing`: VK shows "typing…" for about ten seconds; nothing to send on stop.
pub async fn typing(out: &Outgoing, conversation: &ConversationKey, active: bool) {
    if !active {
        return;
    }
    let typing = ("type", "typing".into());
    courtesy(
        out,
        conversation,
        "messages.setActivity",
        typing,
        "typing not shown",
    )
    .await;
}

/// A call about one conversation whose failure costs only a courtesy to the customer (a
/// "typing…", a read mark): `param` goes beside the conversation's peer and the community;
/// a failure is logged as `failed`, never retried.
async fn courtesy(
    out: &Outgoing,
    conversation: &ConversationKey,
    method: &str,
    param: (&'static str, String),
    failed: &str,
) {
    let Ok(peer) = peer_of(out, conversation) else {
        return;
    };
    let params = [
        ("peer_id", peer.to_string()),
        param,
        ("group_id", out.group_id.to_string()),
    ];
    if let Err(e) = out.api.call(method, &params).await {
        tracing::debug!(error = %e, method, "vk: {failed}");
    }
}

/// Answer a `message_event` (a `callback` button pressed) so the customer's client stops
/// showing its spinner. VK takes the answer within a minute of the press; a late or failed
/// answer costs nothing but the spinner, so it is only logged.
pub async fn answer_event(out: &Outgoing, event_id: &str, user_id: i64, peer_id: i64) {
    let params = [
        ("event_id", event_id.to_owned()),
        ("user_id", user_id.to_string()),
        ("peer_id", peer_id.to_string()),
    ];
    if let Err(e) = out
        .api
        .call("messages.sendMessageEventAnswer", &params)
        .await
    {
        tracing::warn!(error = %e, "vk: button press not answered");
    }
}

/// `Channel::mark_read`: mark the whole conversation read (VK's marks go by global message
/// ids, which communities do not get for every message).
pub async fn mark_read(out: &Outgoing, conversation: &ConversationKey) {
    let all = ("mark_conversation_as_read", "1".into());
    courtesy(
        out,
        conversation,
        "messages.markAsRead",
        all,
        "read mark not sent",
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rating keyboard is inline, one callback button per row, each within VK's limits,
    /// its payload the JSON wrapper around the kit's payload.
    #[test]
    fn rating_keyboard_fits_vk() {
        let request = switchboard_kit::rating::request("How did we do?", "abc123");
        let k: Value = serde_json::from_str(&rating_keyboard(&request).unwrap()).unwrap();
        assert_eq!(k["inline"], true);
        let rows = k["buttons"].as_array().unwrap();
        assert_eq!(rows.len(), 5);
        for (row, choice) in rows.iter().zip(&request.choices) {
            let action = &row[0]["action"];
            assert_eq!(action["type"], "callback");
            assert_eq!(action["label"], choice.label.as_str());
            let payload = action["payload"].as_str().unwrap();
            assert!(payload.chars().count() <= MAX_BUTTON_PAYLOAD);
            let inner: Value = serde_json::from_str(payload).unwrap();
            assert_eq!(inner[RATING_KEY], choice.payload.as_str());
        }
        let mut long = request.clone();
        long.choices[0].label = "x".repeat(41);
        assert!(rating_keyboard(&long).is_err());
        // The wrapper is counted: it is exactly what the payload goes in.
        assert_eq!(
            RATING_BUTTONS.max_payload,
            MAX_BUTTON_PAYLOAD - json!({ RATING_KEY: "" }).to_string().len()
        );
        // An inline keyboard takes 6 rows; a seventh choice is refused before VK sees it
        // (this copy used to count only labels and payloads).
        let mut many = request.clone();
        while many.choices.len() < 7 {
            many.choices.push(many.choices[0].clone());
        }
        assert!(matches!(
            rating_keyboard(&many),
            Err(SendError::Permanent { reason }) if reason.contains("at most 6 buttons")
        ));
    }

    /// A saved photo and a saved document name themselves the same way: owner, id, and the
    /// access key when VK gives one (the photo copy used to be the only one to pass it on).
    #[test]
    fn saved_files_become_attachment_strings() {
        let photo = json!({"owner_id": -1, "id": 2, "access_key": "ak2"});
        assert_eq!(
            attachment_string("photo", Some(&photo)).unwrap(),
            "photo-1_2_ak2"
        );
        let doc = json!({"owner_id": -1, "id": 3, "access_key": "ak3"});
        assert_eq!(attachment_string("doc", Some(&doc)).unwrap(), "doc-1_3_ak3");
        let bare = json!({"owner_id": -1, "id": 4, "access_key": ""});
        assert_eq!(attachment_string("doc", Some(&bare)).unwrap(), "doc-1_4");
        assert!(matches!(
            attachment_string("doc", None),
            Err(SendError::Permanent { reason }) if reason == "VK did not save the document"
        ));
        assert!(matches!(
            attachment_string("photo", Some(&json!({"id": 5}))),
            Err(SendError::Permanent { reason }) if reason == "VK did not say which photo it saved"
        ));
    }

    #[test]
    fn random_ids_are_stable_and_positive() {
        let a = random_id("$event:server", 0);
        assert_eq!(a, random_id("$event:server", 0));
        assert_ne!(a, random_id("$event:server", 1));
        assert_ne!(a, random_id("$other:server", 0));
        assert!(a > 0 && a <= i64::from(i32::MAX));
    }

    #[test]
    fn send_answers_read() {
        assert_eq!(
            sent_cmid(
                &json!([{"peer_id": 5, "message_id": 0, "conversation_message_id": 131}]),
                5
            )
            .unwrap(),
            131
        );
        if let Some(text) =
            switchboard_kit::test_host::fixture_text("vk", "messages_send_response_peer_ids.json")
        {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(sent_cmid(&v["response"], 228970688).unwrap(), 131);
            match sent_cmid(&v["response"], 100000002) {
                Err(SendError::Permanent { reason }) => {
                    assert!(reason.contains("without permission"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            sent_cmid(&json!(6342), 5),
            Err(SendError::Retryable { .. })
        ));
    }
}
