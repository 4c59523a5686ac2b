//! Operators' actions delivered to the customer: `Channel::send`, typing and `mark_seen`.
//!
//! * **Text** goes out as `POST /me/messages` with `recipient.id`, `messaging_type: RESPONSE`
//!   and `message.text`.
//! * **Files** are uploaded with the Attachment Upload API (multipart `filedata`, the bytes from
//!   `Host::get_media`), then sent as `message.attachment {type, payload.attachment_id}`. The
//!   Send API takes no text with an attachment, so a caption goes first as its own message.
//! * **Reactions**: `sender_action: react` with `payload {message_id, reaction}`, `unreact` with
//!   `payload {message_id}`, as the Sender Actions reference documents.
//! * **Idempotency**: the Send API has no idempotency key, so every part of an item that went
//!   out is remembered under `out:<idempotency_key>:<part>` (and the whole item under
//!   `out:<idempotency_key>`); a retry after a crash or a failure halfway sends only what is
//!   missing. A crash in the instant between Meta accepting a message and that write can still
//!   repeat it; nothing on the client side can close that window.
//! * **Watermarks**: Messenger reports reads and deliveries as "everything up to time T", so the
//!   ids of our recent messages and when they were sent are kept under `sent:<account>:<chat>`
//!   (the last [`SENT_LOG_LEN`]) to turn T back into a message id. The time noted is taken
//!   *before* the request, so it is never later than Meta's own timestamp of the message.
//! * **Errors** go through [`crate::graph::classify`].

use serde_json::{json, Value};
use switchboard_channel::{
    ConversationKey, Delivery, HostError, Outbound, OutboundAction, SendError,
};

use crate::graph::classify;
use crate::parse::MediaKind;
use crate::Shared;

/// How many of our messages per conversation are kept for resolving watermarks.
pub const SENT_LOG_LEN: usize = 50;

use switchboard_kit::now_ms;
use switchboard_kit::send::{host_unavailable, SentRecord};

/// The customer's id, after checking the conversation belongs to this channel's account.
fn recipient<'a>(shared: &Shared, conversation: &'a ConversationKey) -> Result<&'a str, SendError> {
    let configured = &shared.config.account_id;
    if !configured.is_empty() && &conversation.account != configured {
        return Err(SendError::Permanent {
            reason: format!(
                "this conversation belongs to {} account {}, but the bridge is configured for {}",
                shared.platform.label(),
                conversation.account,
                configured
            ),
        });
    }
    Ok(&conversation.chat)
}

/// Deliver one outbound item.
pub async fn send(shared: &Shared, outbound: &Outbound) -> Result<Delivery, SendError> {
    let to = recipient(shared, &outbound.conversation)?;
    let net = shared.platform.label();
    match &outbound.action {
        OutboundAction::Message {
            content,
            reply_to: _,
        } => {
            let record = SentRecord::new(shared.host.as_ref(), net, outbound);
            if let Some(done) = record.recall().await? {
                return Ok(Delivery::sent(done));
            }
            let mut first: Option<String> = None;
            let mut part = 0usize;
            if !content.text.trim().is_empty() {
                let message = json!({"text": content.text});
                let mid =
                    send_part(shared, outbound, part, to, || async { Ok(message.clone()) }).await?;
                first.get_or_insert(mid);
            }
            for attachment in &content.attachments {
                part += 1;
                let mid = send_part(shared, outbound, part, to, || async {
                    let (bytes, stored_mime) = shared
                        .host
                        .get_media(&attachment.media)
                        .await
                        .map_err(host_unavailable)?;
                    let mime = if attachment.mime.is_empty() {
                        stored_mime
                    } else {
                        attachment.mime.clone()
                    };
                    if bytes.len() as u64 > shared.config.max_file_size {
                        return Err(SendError::Permanent {
                            reason: format!("{} is too large for {net}", attachment.name),
                        });
                    }
                    let kind = MediaKind::for_mime(&mime).as_str();
                    let id = shared
                        .graph
                        .upload(kind, bytes, &mime, &attachment.name)
                        .await
                        .map_err(|e| classify(e, shared.platform))?;
                    Ok(json!({"attachment": {"type": kind, "payload": {"attachment_id": id}}}))
                })
                .await?;
                first.get_or_insert(mid);
            }
            let Some(remote_id) = first else {
                return Err(SendError::Permanent {
                    reason: "nothing to send (an empty message)".into(),
                });
            };
            record.remember(&remote_id).await;
            Ok(Delivery::sent(remote_id))
        }
        OutboundAction::React { remote_id, key } => {
            let body = match key {
                Some(emoji) => json!({
                    "recipient": {"id": to},
                    "sender_action": "react",
                    "payload": {"message_id": remote_id, "reaction": emoji},
                }),
                None => json!({
                    "recipient": {"id": to},
                    "sender_action": "unreact",
                    "payload": {"message_id": remote_id},
                }),
            };
            shared
                .graph
                .post_messages(&body)
                .await
                .map_err(|e| classify(e, shared.platform))?;
            Ok(Delivery::sent(remote_id.clone()))
        }
        OutboundAction::Edit { .. } => Err(SendError::Permanent {
            reason: format!("{net} cannot edit sent messages"),
        }),
        OutboundAction::Delete { .. } => Err(SendError::Permanent {
            reason: format!("{net} does not let a Page delete its messages"),
        }),
        OutboundAction::Template { .. } => Err(SendError::Permanent {
            reason: format!("message templates are not available on {net}"),
        }),
        OutboundAction::RatingRequest(request) => {
            // Quick replies: up to 13 buttons above the composer, each a title (20 characters)
            // and a payload that comes back in the `messages` event of the tap.
            let quick_replies: Vec<Value> = request
                .choices
                .iter()
                .map(|c| json!({"content_type": "text", "title": c.label, "payload": c.payload}))
                .collect();
            let message = json!({"text": request.question, "quick_replies": quick_replies});
            let mid = send_part(shared, outbound, 0, to, || async { Ok(message.clone()) }).await?;
            Ok(Delivery::sent(mid))
        }
    }
}

/// Send one part of an item (unless an earlier attempt did), remember it, and return its mid.
async fn send_part<F, Fut>(
    shared: &Shared,
    outbound: &Outbound,
    part: usize,
    to: &str,
    message: F,
) -> Result<String, SendError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Value, SendError>>,
{
    let record = SentRecord::part(
        shared.host.as_ref(),
        shared.platform.label(),
        outbound,
        &format!(":{part}"),
    );
    if let Some(mid) = record.recall().await? {
        return Ok(mid);
    }
    let message = message().await?;
    let body = json!({"recipient": {"id": to}, "messaging_type": "RESPONSE", "message": message});
    let sent_at = now_ms();
    let answer = shared
        .graph
        .post_messages(&body)
        .await
        .map_err(|e| classify(e, shared.platform))?;
    let Some(mid) = answer
        .get("message_id")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    else {
        return Err(SendError::Retryable {
            reason: format!("the Send API answered without a message_id: {answer}"),
            retry_after: None,
        });
    };
    record.remember(mid).await;
    if let Err(e) = remember_sent(shared, &outbound.conversation, mid, sent_at).await {
        tracing::warn!(error = %e, "cannot note the message for read receipts");
    }
    Ok(mid.to_owned())
}

fn sent_key(conversation: &ConversationKey) -> String {
    format!("sent:{}:{}", conversation.account, conversation.chat)
}

async fn sent_log(
    shared: &Shared,
    conversation: &ConversationKey,
) -> Result<Vec<(i64, String)>, HostError> {
    let raw = shared.host.state_get(&sent_key(conversation)).await?;
    Ok(raw
        .and_then(|r| serde_json::from_str(&r).ok())
        .unwrap_or_default())
}

async fn remember_sent(
    shared: &Shared,
    conversation: &ConversationKey,
    mid: &str,
    at: i64,
) -> Result<(), HostError> {
    let mut log = sent_log(shared, conversation).await?;
    log.push((at, mid.to_owned()));
    let excess = log.len().saturating_sub(SENT_LOG_LEN);
    log.drain(..excess);
    let text = serde_json::to_string(&log).unwrap_or_else(|_| "[]".into());
    shared.host.state_put(&sent_key(conversation), &text).await
}

/// The newest message we sent in the conversation at or before `watermark` (ms).
pub async fn sent_up_to(
    shared: &Shared,
    conversation: &ConversationKey,
    watermark: i64,
) -> Result<Option<String>, HostError> {
    let log = sent_log(shared, conversation).await?;
    Ok(log
        .into_iter()
        .filter(|(at, _)| *at <= watermark)
        .max_by_key(|(at, _)| *at)
        .map(|(_, mid)| mid))
}

/// A best-effort `sender_action` (typing_on, typing_off, mark_seen).
pub async fn sender_action(shared: &Shared, conversation: &ConversationKey, action: &str) {
    let Ok(to) = recipient(shared, conversation) else {
        return;
    };
    let body = json!({"recipient": {"id": to}, "sender_action": action});
    if let Err(e) = shared.graph.post_messages(&body).await {
        tracing::debug!(action, error = %e, "sender action not delivered");
    }
}
