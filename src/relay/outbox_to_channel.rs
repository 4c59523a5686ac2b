//! Outbox → channel: delivers operators' messages, in order per conversation, and writes the
//! outcome back into the room.
//!
//! Before sending, the item is checked against the channel's capabilities (a file over the size
//! limit fails at once with a notice naming both sizes). Text longer than the channel carries is
//! sent as several messages ([`crate::split`]), each recorded as it goes, so a retry never sends
//! a part twice; edits and deletions of such a message reach every part. A retryable failure is retried with
//! exponential backoff, never sooner than the channel's Retry-After; after `bridge.max_attempts`
//! it becomes a failure. Trouble in the bridge's own store ([`SendError::HostUnavailable`]) is
//! no attempt: it is waited out with the same backoff, however long, and never becomes a
//! failure; once it has waited `max_attempts` times a notice says so under the message. Every outcome is visible in the room: success as the bot's read receipt
//! on the operator's message (a receipt costs the homeserver no timeline event, and a burst
//! needs one per second or fewer: [`crate::relay::delivery_receipts`]; with
//! `bridge.delivery_status: events` also a `com.beeper.message_send_status` event), failure as a
//! notice replying to the operator's message (with the reason and how to resend) plus a failed
//! status event.

use std::sync::Arc;

use serde_json::json;
use switchboard_channel::{Capabilities, Channel, Delivery, Outbound, OutboundAction, SendError};
use tracing::Instrument;

use crate::bridge::Bridge;
use crate::config::DeliveryStatus;
use crate::matrix::content;
use crate::metrics;
use crate::relay::queue;
use crate::split;
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
    let _busy = bridge.relay_activity.enter();
    loop {
        if !bridge.leader.holds() {
            return;
        }
        let row = match bridge.store.outbox_next(conversation_id).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(conversation_id, error = %e, "cannot read outbox");
                return;
            }
        };
        let span = tracing::info_span!(
            "outbound",
            conversation_id = row.conversation_id,
            outbox_id = row.id,
            event_id = %row.event_id,
            channel = tracing::field::Empty,
        );
        if !deliver(bridge, &row).instrument(span).await {
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
    tracing::Span::current().record("channel", channel_name.as_str());
    // Refused before any send (not enabled, beyond the channel's capabilities), or by the
    // network: the two are told apart in the metrics.
    let mut unsupported = true;
    let result = match bridge.channel(&channel_name) {
        None => Err(SendError::Permanent {
            reason: format!("the {channel_name} channel is not enabled on this bridge"),
        }),
        Some(channel) => {
            let caps = channel.capabilities();
            match check(&caps, &row.outbound.action) {
                Err(reason) => Err(SendError::Permanent { reason }),
                Ok(()) => {
                    unsupported = false;
                    // Claimed under this leader's epoch right before the send: a leader that
                    // lost its lease (frozen, cut off) is refused here and sends nothing.
                    match bridge.store.outbox_claim(row.id).await {
                        Ok(true) if bridge.leader.holds() => {}
                        Ok(true) => return false,
                        Ok(false) => return true,
                        Err(e) => {
                            tracing::warn!(outbox = row.id, error = %e, "not sending");
                            return false;
                        }
                    }
                    // A customer who has left a live channel is answered by another one
                    // ([`crate::relay::continued`]).
                    match crate::relay::continued::elsewhere(
                        bridge,
                        &conversation,
                        channel.as_ref(),
                        row,
                    )
                    .await
                    {
                        Some(elsewhere) => elsewhere.result,
                        None => send_steps(bridge, channel.as_ref(), &caps, row).await,
                    }
                }
            }
        }
    };
    match result {
        Ok(delivery) => {
            let map = matches!(
                row.outbound.action,
                OutboundAction::Message { .. }
                    | OutboundAction::Template { .. }
                    | OutboundAction::RatingRequest(_)
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
            metrics::channel_up(&channel_name, true);
            if map {
                metrics::message(&channel_name, metrics::Direction::Outbound);
                metrics::relay_latency(metrics::Direction::Outbound, row.created_at);
            }
            if !matches!(
                row.outbound.action,
                OutboundAction::Delete { .. } | OutboundAction::React { .. }
            ) {
                show_delivered(bridge, &row.room_id, &row.event_id, &channel_name).await;
            }
            true
        }
        Err(SendError::Retryable {
            reason,
            retry_after,
        }) => {
            let attempts = row.attempts as u32 + 1;
            metrics::delivery_failure(&channel_name, metrics::FailureClass::Transient);
            metrics::channel_up(&channel_name, false);
            if attempts >= bridge.config.bridge.max_attempts {
                let reason = format!("{reason} (gave up after {attempts} attempts)");
                metrics::delivery_failure(&channel_name, metrics::FailureClass::GaveUp);
                fail(bridge, row, &channel_name, &reason, Failure::GaveUp).await
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
        Err(SendError::HostUnavailable { reason }) => {
            // The bridge's own store (or media repository) failed, not the channel: nothing was
            // refused, so it is waited out with backoff and never made a dead letter. The
            // channel is not marked down for it.
            let delay = queue::backoff(
                row.host_waits.clamp(0, 20) as u32,
                bridge.config.bridge.retry_base,
                bridge.config.bridge.retry_max,
                None,
            );
            tracing::warn!(outbox = row.id, waits = row.host_waits + 1, %reason, retry_in = ?delay, "delivery waits for the bridge's store");
            if row.host_waits + 1 == i64::from(bridge.config.bridge.max_attempts) {
                waiting_notice(bridge, row, &reason).await;
            }
            if let Err(e) = bridge
                .store
                .outbox_wait(row.id, &reason, now_ms() + delay.as_millis() as i64)
                .await
            {
                tracing::error!(outbox = row.id, error = %e, "cannot record the wait");
            }
            false
        }
        Err(SendError::Permanent { reason }) => {
            let class = if unsupported {
                metrics::FailureClass::Unsupported
            } else {
                metrics::FailureClass::Refused
            };
            metrics::delivery_failure(&channel_name, class);
            fail(bridge, row, &channel_name, &reason, Failure::Refused).await
        }
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
        OutboundAction::RatingRequest(_) => {
            return if caps.rating == switchboard_channel::RatingStyle::Native {
                Ok(())
            } else {
                Err("this channel has no rating buttons".into())
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
    // Text over the channel's length is not refused: it is sent in parts (`send_steps`).
    Ok(())
}

/// One remote send an outbox entry needs.
struct Step {
    outbound: Outbound,
    /// For a new remote message: the event it belongs to and which part of it it is.
    map: Option<(String, i64)>,
}

/// The remote sends an entry needs, in order. Most entries are one send. A message longer than
/// the channel carries is several ([`split`]); an edit of a message that was sent in parts edits
/// each part (sending the new text's extra parts as new messages, and deleting the parts it no
/// longer needs, or blanking them where the channel cannot delete); a deletion deletes every
/// part. Computed the same on every attempt, so `steps_done` says where to go on.
async fn plan(
    bridge: &Bridge,
    caps: &Capabilities,
    row: &OutboxRow,
) -> Result<Vec<Step>, SendError> {
    let o = &row.outbound;
    // Who a group conversation includes now (not when the answer was queued): someone who
    // wrote meanwhile is answered too, someone removed meanwhile is not.
    let participants = bridge
        .store
        .group_participants(row.conversation_id)
        .await
        .map_err(super::store_unavailable)?;
    let step = |i: usize, action: OutboundAction, map: Option<(String, i64)>| Step {
        outbound: Outbound {
            conversation: o.conversation.clone(),
            idempotency_key: match i {
                0 => o.idempotency_key.clone(),
                i => format!("{}:part{i}", o.idempotency_key),
            },
            action,
            participants: participants.clone(),
        },
        map,
    };
    // The other parts of the message `remote_id` is the first of, and the event they map to.
    let siblings = |remote_id: String| async move {
        let event = bridge
            .store
            .events_for_remote(row.conversation_id, &remote_id)
            .await
            .map_err(super::store_unavailable)?
            .into_iter()
            .next();
        let remotes = match &event {
            Some(e) => bridge
                .store
                .remotes_for_event(row.conversation_id, e)
                .await
                .map_err(super::store_unavailable)?,
            None => Vec::new(),
        };
        let remotes = if remotes.first() == Some(&remote_id) {
            remotes
        } else {
            vec![remote_id]
        };
        Ok::<_, SendError>((event, remotes))
    };
    Ok(match &o.action {
        OutboundAction::Message { content, reply_to } => split::split_content(content, caps)
            .into_iter()
            .enumerate()
            .map(|(i, content)| {
                let reply_to = if i == 0 { reply_to.clone() } else { None };
                let map = Some((row.event_id.clone(), i as i64));
                step(i, OutboundAction::Message { content, reply_to }, map)
            })
            .collect(),
        OutboundAction::Edit { remote_id, content } => {
            let (event, remotes) = siblings(remote_id.clone()).await?;
            let parts = split::split_content(content, caps);
            (0..parts.len().max(remotes.len()))
                .map(|i| match (remotes.get(i), parts.get(i)) {
                    (Some(remote_id), Some(content)) => {
                        let action = OutboundAction::Edit {
                            remote_id: remote_id.clone(),
                            content: content.clone(),
                        };
                        step(i, action, None)
                    }
                    (None, Some(content)) => {
                        let action = OutboundAction::Message {
                            content: content.clone(),
                            reply_to: None,
                        };
                        step(i, action, event.clone().map(|e| (e, i as i64)))
                    }
                    (Some(remote_id), None) if caps.deletes => {
                        let action = OutboundAction::Delete {
                            remote_id: remote_id.clone(),
                        };
                        step(i, action, None)
                    }
                    (Some(remote_id), None) => {
                        let action = OutboundAction::Edit {
                            remote_id: remote_id.clone(),
                            content: switchboard_channel::Content {
                                text: "…".into(),
                                ..Default::default()
                            },
                        };
                        step(i, action, None)
                    }
                    (None, None) => unreachable!("i is below one of the two lengths"),
                })
                .collect()
        }
        OutboundAction::Delete { remote_id } => {
            let (_, remotes) = siblings(remote_id.clone()).await?;
            remotes
                .into_iter()
                .enumerate()
                .map(|(i, remote_id)| step(i, OutboundAction::Delete { remote_id }, None))
                .collect()
        }
        _ => vec![step(0, o.action.clone(), None)],
    })
}

/// Send what the entry needs, going on from the steps done on earlier attempts. The delivery
/// names the first remote message.
async fn send_steps(
    bridge: &Bridge,
    channel: &dyn Channel,
    caps: &Capabilities,
    row: &OutboxRow,
) -> Result<Delivery, SendError> {
    let steps = plan(bridge, caps, row).await?;
    if steps.len() == 1 && row.steps_done == 0 {
        return channel.send(&steps[0].outbound).await;
    }
    let mut first: Option<Delivery> = None;
    for (i, step) in steps.iter().enumerate() {
        if (i as i64) < row.steps_done {
            continue;
        }
        if !bridge.leader.holds() {
            return Err(SendError::Retryable {
                reason: "this instance stepped down; the next leader sends the rest".into(),
                retry_after: None,
            });
        }
        let delivery = channel.send(&step.outbound).await?;
        let map = step
            .map
            .as_ref()
            .map(|(event, part)| (delivery.remote_id.as_str(), event.as_str(), *part));
        bridge
            .store
            .outbox_step_done(row, i as i64 + 1, map)
            .await
            .map_err(super::store_unavailable)?;
        tracing::debug!(
            outbox = row.id,
            step = i,
            of = steps.len(),
            remote_id = delivery.remote_id,
            "part delivered"
        );
        first.get_or_insert(delivery);
    }
    // The first remote message: sent now, or on an earlier attempt.
    let remote_id = match &row.outbound.action {
        OutboundAction::Edit { remote_id, .. } | OutboundAction::Delete { remote_id } => {
            remote_id.clone()
        }
        _ if row.steps_done == 0 => first
            .as_ref()
            .map(|d| d.remote_id.clone())
            .unwrap_or_default(),
        _ => bridge
            .store
            .remotes_for_event(row.conversation_id, &row.event_id)
            .await
            .map_err(super::store_unavailable)?
            .into_iter()
            .next()
            .unwrap_or_default(),
    };
    Ok(Delivery {
        remote_id,
        delivered: first.is_none_or(|d| d.delivered),
    })
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

/// Why a message became a dead letter, which decides what the notice advises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// The channel kept failing in a way that passes (down, slow, rate-limited): a retry later
    /// may well go through.
    GaveUp,
    /// The network refused this message (a type it does not take, a closed reply window, a
    /// blocked bot): sent again unchanged, it is refused again.
    Refused,
}

/// The dead-letter notice under an operator's message.
fn failure_notice(reason: &str, failure: Failure) -> String {
    let advice = match failure {
        Failure::GaveUp => "Send `!sb retry` to try again.",
        Failure::Refused => {
            "Sent again unchanged it would be refused again: fix the cause first, then send \
             `!sb retry`, or write a new message."
        }
    };
    format!("⚠️ Not delivered to the customer: {reason}. {advice}")
}

async fn fail(
    bridge: &Bridge,
    row: &OutboxRow,
    channel: &str,
    reason: &str,
    failure: Failure,
) -> bool {
    tracing::warn!(
        outbox = row.id,
        reason,
        ?failure,
        "delivery failed for good"
    );
    if let Err(e) = bridge.store.outbox_failed(row.id, reason).await {
        tracing::error!(outbox = row.id, error = %e, "cannot record failure");
        return false;
    }
    let txn = format!("sb-fail-{}-{}", row.id, row.attempts);
    notice_under(bridge, row, &txn, &failure_notice(reason, failure)).await;
    send_status(bridge, &row.room_id, &row.event_id, channel, Some(reason)).await;
    true
}

/// Said once under an operator's message whose delivery has waited for the bridge's store as
/// many times as a channel's failures would be tried (best effort; posting needs only the
/// homeserver): the answer is not lost and needs nothing from the operator.
async fn waiting_notice(bridge: &Bridge, row: &OutboxRow, reason: &str) {
    let text = format!(
        "⏳ Waiting to deliver: {reason}. The answer goes to the customer as soon as the \
         bridge's store works again; nothing to do."
    );
    notice_under(bridge, row, &format!("sb-wait-{}", row.id), &text).await;
}

/// A notice replying to the operator's message (best effort), under transaction id `txn`.
async fn notice_under(bridge: &Bridge, row: &OutboxRow, txn: &str, text: &str) {
    let notice = content::with_reply(content::notice(text), &row.event_id);
    if let Err(e) = bridge
        .homeserver
        .send(&row.room_id, "m.room.message", txn, &notice, None, None)
        .await
    {
        tracing::error!(outbox = row.id, error = %e, notice = text, "cannot post the notice");
    }
}

/// Show that the outbox delivered an operator's message (best effort): the bot's read receipt
/// on it, one per room at a time ([`crate::relay::delivery_receipts`]: the outbox delivers in
/// order per conversation, so the newest delivered is the one to mark), and with
/// `bridge.delivery_status: events` also a `SUCCESS` status event.
async fn show_delivered(bridge: &Bridge, room_id: &str, event_id: &str, channel: &str) {
    bridge.delivery_receipts.delivered(room_id, event_id);
    if bridge.config.bridge.delivery_status == DeliveryStatus::Events {
        status_event(bridge, room_id, event_id, channel, None).await;
    }
}

/// Show an outcome the channel reported later (best effort): success as the bot's read receipt
/// on the message (posted at once: such reports come in any order, and the homeserver keeps
/// the receipt on the newest event), with `bridge.delivery_status: events` also a `SUCCESS`
/// status event; a failure as a `FAIL_PERMANENT` `com.beeper.message_send_status` event.
pub async fn send_status(
    bridge: &Bridge,
    room_id: &str,
    event_id: &str,
    channel: &str,
    failure: Option<&str>,
) {
    if failure.is_none() {
        if let Err(e) = bridge
            .homeserver
            .read_receipt(room_id, event_id, &bridge.homeserver.bot)
            .await
        {
            tracing::warn!(room_id, error = %e, "cannot post the delivery receipt");
        }
        if bridge.config.bridge.delivery_status == DeliveryStatus::Receipts {
            return;
        }
    }
    status_event(bridge, room_id, event_id, channel, failure).await;
}

/// A `com.beeper.message_send_status` event on an operator's message.
async fn status_event(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failure_that_passes_is_worth_a_plain_retry() {
        let gave_up = failure_notice("HTTP 502 (gave up after 5 attempts)", Failure::GaveUp);
        assert!(
            gave_up.ends_with("Send `!sb retry` to try again."),
            "{gave_up}"
        );
        let refused = failure_notice("outside the 24-hour window", Failure::Refused);
        assert!(
            refused.contains("would be refused again") && !refused.contains("to try again"),
            "{refused}"
        );
    }
}
