//! Outbox → channel: delivers operators' messages, in order per conversation, and writes the
//! outcome back into the room.
//!
//! Before sending, the item is checked against the channel's capabilities (a file over the size
//! limit fails at once with a notice naming both sizes). A retryable failure is retried with
//! exponential backoff, never sooner than the channel's Retry-After; after `bridge.max_attempts`
//! it becomes a failure. Every outcome is visible in the room: success as a
//! `com.beeper.message_send_status` event, failure as a notice replying to the operator's message
//! (with the reason and how to resend) plus a failed status.

use std::sync::Arc;

use serde_json::json;
use switchboard_channel::{Capabilities, OutboundAction, SendError};

use crate::bridge::Bridge;
use crate::matrix::content;
use crate::queue;
use crate::store::now_ms;
use crate::store::outbox::OutboxRow;

pub async fn run(bridge: Arc<Bridge>) {
    let b = bridge.clone();
    let ready = move || {
        let b = b.clone();
        async move { b.store.outbox_ready(200).await }
    };
    let b = bridge.clone();
    let drain = move |conversation: i64| {
        let b = b.clone();
        async move { drain(&b, conversation).await }
    };
    queue::run("outbound", &bridge.wake_outbound, ready, drain, 16).await;
}

async fn drain(bridge: &Bridge, conversation_id: i64) {
    loop {
        let row = match bridge.store.outbox_next(conversation_id).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(conversation_id, error = %e, "cannot read outbox");
                return;
            }
        };
        if !deliver(bridge, &row).await {
            return;
        }
    }
}

/// One attempt. Returns whether the conversation's queue may move on now.
async fn deliver(bridge: &Bridge, row: &OutboxRow) -> bool {
    let Some(conversation) = bridge
        .store
        .conversation(row.conversation_id)
        .await
        .ok()
        .flatten()
    else {
        return false;
    };
    let channel_name = conversation.channel.clone();
    let result = match bridge.channel(&channel_name) {
        None => Err(SendError::Permanent {
            reason: format!("the {channel_name} channel is not enabled on this bridge"),
        }),
        Some(channel) => match check(&channel.capabilities(), &row.outbound.action) {
            Err(reason) => Err(SendError::Permanent { reason }),
            Ok(()) => channel.send(&row.outbound).await,
        },
    };
    match result {
        Ok(delivery) => {
            let map = matches!(
                row.outbound.action,
                OutboundAction::Message { .. } | OutboundAction::Template { .. }
            );
            if let Err(e) = bridge
                .store
                .outbox_sent(row, &delivery.remote_id, map)
                .await
            {
                // Sent but not recorded: the retry will pass the same idempotency key.
                tracing::error!(outbox = row.id, error = %e, "delivered but cannot record it");
                return false;
            }
            tracing::debug!(outbox = row.id, remote_id = delivery.remote_id, "delivered");
            if !matches!(
                row.outbound.action,
                OutboundAction::Delete { .. } | OutboundAction::React { .. }
            ) {
                send_status(bridge, &row.room_id, &row.event_id, &channel_name, None).await;
            }
            true
        }
        Err(SendError::Retryable {
            reason,
            retry_after,
        }) => {
            let attempts = row.attempts as u32 + 1;
            if attempts >= bridge.config.bridge.max_attempts {
                let reason = format!("{reason} (gave up after {attempts} attempts)");
                fail(bridge, row, &channel_name, &reason).await
            } else {
                let delay = queue::backoff(
                    attempts - 1,
                    bridge.config.bridge.retry_base,
                    bridge.config.bridge.retry_max,
                    retry_after,
                );
                tracing::warn!(outbox = row.id, attempts, %reason, retry_in = ?delay, "delivery failed; will retry");
                if let Err(e) = bridge
                    .store
                    .outbox_retry(row.id, &reason, now_ms() + delay.as_millis() as i64)
                    .await
                {
                    tracing::error!(outbox = row.id, error = %e, "cannot record retry");
                }
                false
            }
        }
        Err(SendError::Permanent { reason }) => fail(bridge, row, &channel_name, &reason).await,
    }
}

/// Refuse before sending what the channel cannot carry.
fn check(caps: &Capabilities, action: &OutboundAction) -> Result<(), String> {
    let content = match action {
        OutboundAction::Message { content, .. } | OutboundAction::Edit { content, .. } => content,
        OutboundAction::Delete { .. } => {
            return if caps.deletes {
                Ok(())
            } else {
                Err("this channel cannot delete a sent message".into())
            };
        }
        OutboundAction::React { .. } => {
            return if caps.reactions {
                Ok(())
            } else {
                Err("this channel has no reactions".into())
            };
        }
        OutboundAction::Template { .. } => {
            return if caps.templates {
                Ok(())
            } else {
                Err("this channel has no message templates".into())
            };
        }
    };
    if let Some(max) = caps.max_file_size {
        for a in &content.attachments {
            if a.size > max {
                return Err(format!(
                    "the file {} is {} but this channel accepts at most {}",
                    a.name,
                    human_size(a.size),
                    human_size(max)
                ));
            }
        }
    }
    if let Some(max) = caps.max_text_length {
        let len = content.text.chars().count();
        if len > max {
            return Err(format!(
                "the message is {len} characters long but this channel accepts at most {max}"
            ));
        }
    }
    Ok(())
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else if bytes >= 1024 {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} bytes")
    }
}

async fn fail(bridge: &Bridge, row: &OutboxRow, channel: &str, reason: &str) -> bool {
    tracing::warn!(outbox = row.id, reason, "delivery failed for good");
    if let Err(e) = bridge.store.outbox_failed(row.id, reason).await {
        tracing::error!(outbox = row.id, error = %e, "cannot record failure");
        return false;
    }
    let text =
        format!("⚠️ Not delivered to the customer: {reason}. Send `!sb retry` to try again.");
    let notice = content::with_reply(content::notice(&text), &row.event_id);
    let txn = format!("sb-fail-{}-{}", row.id, row.attempts);
    if let Err(e) = bridge
        .homeserver
        .send(&row.room_id, "m.room.message", &txn, &notice, None, None)
        .await
    {
        tracing::error!(outbox = row.id, error = %e, "cannot post the failure notice");
    }
    send_status(bridge, &row.room_id, &row.event_id, channel, Some(reason)).await;
    true
}

/// Post a `com.beeper.message_send_status` event for an operator's message (best effort).
pub async fn send_status(
    bridge: &Bridge,
    room_id: &str,
    event_id: &str,
    channel: &str,
    failure: Option<&str>,
) {
    let body = match failure {
        None => json!({
            "m.relates_to": {"rel_type": "m.reference", "event_id": event_id},
            "network": channel,
            "status": "SUCCESS",
        }),
        Some(reason) => json!({
            "m.relates_to": {"rel_type": "m.reference", "event_id": event_id},
            "network": channel,
            "status": "FAIL_PERMANENT",
            "reason": "m.foreign_network_error",
            "error": reason,
            "message": reason,
        }),
    };
    let txn = format!(
        "sb-status-{event_id}-{}",
        if failure.is_some() { "fail" } else { "ok" }
    );
    if let Err(e) = bridge
        .homeserver
        .send(
            room_id,
            "com.beeper.message_send_status",
            &txn,
            &body,
            None,
            None,
        )
        .await
    {
        tracing::warn!(room_id, error = %e, "cannot post delivery status");
    }
}
