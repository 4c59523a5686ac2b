//! Channel → Matrix: drains the inbox, in order per conversation.
//!
//! Each stored event becomes Matrix events sent by the contact's ghost (with `?ts=` set to when
//! the customer acted). Transaction ids are derived from the inbox row, so a retry after a crash
//! or an outage re-sends with the same id and the homeserver does not duplicate. Only when the
//! Matrix side is done is the row marked done. A homeserver outage is retried with backoff for as
//! long as it lasts; an event Matrix refuses for good is marked failed with the reason, after a
//! notice in the room where possible.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchboard_channel::{Content, InboundEvent};

use crate::bridge::Bridge;
use crate::matrix::{content, MatrixError};
use crate::portal::{self, PortalError};
use crate::relay::queue;
use crate::store::inbox::InboxRow;
use crate::store::message_map::{self, Direction};
use crate::store::{now_ms, StoreError};

pub async fn run(bridge: Arc<Bridge>) {
    let b = bridge.clone();
    let ready = move || {
        let b = b.clone();
        async move { b.store.inbox_ready(200).await }
    };
    let b = bridge.clone();
    let drain = move |conversation: i64| {
        let b = b.clone();
        async move { drain(&b, conversation).await }
    };
    queue::run("inbound", &bridge.wake_inbound, ready, drain, 16).await;
}

async fn drain(bridge: &Bridge, conversation_id: i64) {
    loop {
        let row = match bridge.store.inbox_next(conversation_id).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(conversation_id, error = %e, "cannot read inbox");
                return;
            }
        };
        let result = process(bridge, &row).await;
        let stored = match result {
            Ok(()) => bridge.store.inbox_done(row.id).await,
            // A refusal is tried a few times too: membership races after a crash (a ghost whose
            // invite the homeserver had not sent yet) clear up.
            Err(e) if e.is_retryable() || row.attempts < REFUSED_ATTEMPTS => {
                // Inbound events are never given up on for a transient reason: the customer's
                // message must arrive once the homeserver is back.
                let delay = queue::backoff(
                    row.attempts.clamp(0, 30) as u32,
                    Duration::from_millis(250),
                    Duration::from_secs(30),
                    e.retry_after(),
                );
                tracing::warn!(inbox = row.id, error = %e, retry_in = ?delay, "inbound event not delivered to Matrix yet");
                let r = bridge
                    .store
                    .inbox_retry(row.id, &e.to_string(), now_ms() + delay.as_millis() as i64)
                    .await;
                if r.is_ok() {
                    return;
                }
                r
            }
            Err(e) => {
                tracing::error!(inbox = row.id, error = %e, "inbound event refused by Matrix");
                show_refused(bridge, &row, &e).await;
                bridge.store.inbox_failed(row.id, &e.to_string()).await
            }
        };
        if let Err(e) = stored {
            tracing::error!(inbox = row.id, error = %e, "cannot update inbox");
            return;
        }
    }
}

/// How often a status (read, delivered, failed) is tried while the message it is about has no
/// remote id recorded yet: networks report "sent" within milliseconds, sometimes before the
/// outbox has stored the id their send answered with.
const UNMAPPED_STATUS_ATTEMPTS: i64 = 6;

/// The events a remote message became; for a status about a message not mapped yet, a
/// retryable error for the first few attempts (then: nothing, and the status applies to no event).
async fn mapped_event(
    bridge: &Bridge,
    row: &InboxRow,
    conversation_id: i64,
    remote_id: &str,
) -> Result<Vec<String>, InboundError> {
    let events = bridge
        .store
        .events_for_remote(conversation_id, remote_id)
        .await?;
    if events.is_empty() && row.attempts + 1 < UNMAPPED_STATUS_ATTEMPTS {
        return Err(InboundError::NotMappedYet(remote_id.to_string()));
    }
    Ok(events)
}

/// How often an event the homeserver refuses (not an outage) is tried before it is given up.
const REFUSED_ATTEMPTS: i64 = 5;

/// An event given up on is still shown to the operators, by the bot, with its text: a customer's
/// words are never only in a log.
async fn show_refused(bridge: &Bridge, row: &InboxRow, error: &InboundError) {
    let Ok(Some(conversation)) = bridge.store.conversation(row.conversation_id).await else {
        return;
    };
    let Some(room_id) = conversation.room_id else {
        return;
    };
    let (InboundEvent::Message { content: c, .. }
    | InboundEvent::Notice { content: c, .. }
    | InboundEvent::Edit { content: c, .. }) = &row.inbound.event
    else {
        return;
    };
    let who = row
        .inbound
        .sender
        .display_name
        .as_deref()
        .unwrap_or(&row.inbound.sender.id);
    let text = format!(
        "⚠️ A message from {who} could not be posted as them ({error}). It said:\n{}",
        c.text
    );
    let notice = content::notice(&text);
    if let Err(e) = bridge
        .homeserver
        .send(
            &room_id,
            "m.room.message",
            &format!("sb-in-{}-refused", row.id),
            &notice,
            None,
            None,
        )
        .await
    {
        tracing::error!(inbox = row.id, error = %e, "cannot show a refused inbound event either");
    }
}

#[derive(Debug, thiserror::Error)]
enum InboundError {
    #[error(transparent)]
    Portal(#[from] PortalError),
    #[error(transparent)]
    Matrix(#[from] MatrixError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("conversation {0} vanished")]
    NoConversation(i64),
    #[error("the message {0} is not known yet")]
    NotMappedYet(String),
}

impl InboundError {
    fn is_retryable(&self) -> bool {
        match self {
            InboundError::Portal(e) => e.is_retryable(),
            InboundError::Matrix(e) => e.is_retryable(),
            InboundError::Store(_) => true,
            InboundError::NoConversation(_) => false,
            InboundError::NotMappedYet(_) => true,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            InboundError::Matrix(e) => e.retry_after(),
            InboundError::Portal(PortalError::Matrix(e)) => e.retry_after(),
            _ => None,
        }
    }
}

async fn process(bridge: &Bridge, row: &InboxRow) -> Result<(), InboundError> {
    let conversation = bridge
        .store
        .conversation(row.conversation_id)
        .await?
        .ok_or(InboundError::NoConversation(row.conversation_id))?;
    let first_text = match &row.inbound.event {
        InboundEvent::Message { content, .. } => content.text.as_str(),
        _ => "",
    };
    let portal = portal::ensure_portal(
        bridge,
        &conversation,
        first_text,
        row.inbound.addressed_to.as_deref(),
    )
    .await?;
    let room_id = portal.room_id.clone();
    let conversation = crate::store::conversations::Conversation {
        room_id: Some(room_id.clone()),
        ..conversation
    };
    let ghost = portal.ghost.as_deref();
    let ts = Some(row.inbound.timestamp_ms);
    let txn = |part: usize| format!("sb-in-{}-{part}", row.id);
    match &row.inbound.event {
        InboundEvent::Message {
            remote_id,
            content: c,
            reply_to,
        } => {
            let reply_event = match reply_to {
                Some(r) => bridge
                    .store
                    .events_for_remote(conversation.id, r)
                    .await?
                    .into_iter()
                    .next(),
                None => None,
            };
            for (part, mut event) in content::to_matrix(c).into_iter().enumerate() {
                if part == 0 {
                    if let Some(e) = &reply_event {
                        event = content::with_reply(event, e);
                    }
                }
                let event_id = send_as_customer(bridge, &portal, &txn(part), &event, ts).await?;
                message_map::insert(
                    bridge.store.pool(),
                    conversation.id,
                    remote_id,
                    part as i64,
                    &event_id,
                    Direction::In,
                )
                .await?;
            }
            bridge
                .store
                .note_customer_message(conversation.id, row.inbound.timestamp_ms)
                .await?;
            crate::routing::on_customer_message(
                bridge,
                &conversation,
                &room_id,
                row.inbound.addressed_to.as_deref(),
            )
            .await?;
        }
        InboundEvent::Notice {
            remote_id,
            content: c,
        } => {
            for (part, mut event) in content::to_matrix(c).into_iter().enumerate() {
                if part == 0 {
                    if let Some(obj) = event.as_object_mut() {
                        obj.insert("msgtype".into(), Value::String("m.notice".into()));
                    }
                }
                let event_id = send_as_customer(bridge, &portal, &txn(part), &event, ts).await?;
                message_map::insert(
                    bridge.store.pool(),
                    conversation.id,
                    remote_id,
                    part as i64,
                    &event_id,
                    Direction::In,
                )
                .await?;
            }
        }
        InboundEvent::Edit {
            remote_id,
            content: c,
        } => {
            let Some(target) = bridge
                .store
                .events_for_remote(conversation.id, remote_id)
                .await?
                .into_iter()
                .next()
            else {
                tracing::warn!(
                    remote_id,
                    "edit of a message that never reached Matrix; ignored"
                );
                return Ok(());
            };
            let text_only = Content {
                attachments: Vec::new(),
                ..c.clone()
            };
            if let Some(new) = content::to_matrix(&text_only).into_iter().next() {
                let event = content::replacement(new, &target);
                send_as_customer(bridge, &portal, &txn(0), &event, ts).await?;
            }
        }
        InboundEvent::Delete { remote_id } => {
            for (i, event_id) in bridge
                .store
                .events_for_remote(conversation.id, remote_id)
                .await?
                .iter()
                .enumerate()
            {
                // Without a ghost the bot posted the message, and takes it back itself.
                bridge
                    .homeserver
                    .redact(&room_id, event_id, &txn(i), ghost)
                    .await?;
            }
        }
        InboundEvent::Read { remote_id } => {
            let Some(ghost) = ghost else {
                // A receipt is the ghost's own; the bot cannot give one for the customer.
                return Ok(());
            };
            if let Some(event_id) = mapped_event(bridge, row, conversation.id, remote_id)
                .await?
                .last()
            {
                bridge
                    .homeserver
                    .read_receipt(&room_id, event_id, ghost)
                    .await?;
            }
        }
        InboundEvent::Delivered { remote_id } => {
            if let Some(event_id) = mapped_event(bridge, row, conversation.id, remote_id)
                .await?
                .first()
            {
                crate::relay::outbox_to_channel::send_status(
                    bridge,
                    &room_id,
                    event_id,
                    &conversation.channel,
                    None,
                )
                .await;
            }
        }
        InboundEvent::Failed { remote_id, reason } => {
            let event_id = mapped_event(bridge, row, conversation.id, remote_id)
                .await?
                .into_iter()
                .next();
            let text = format!("⚠️ Not delivered to the customer: {reason}");
            let mut notice = content::notice(&text);
            if let Some(e) = &event_id {
                notice = content::with_reply(notice, e);
                crate::relay::outbox_to_channel::send_status(
                    bridge,
                    &room_id,
                    e,
                    &conversation.channel,
                    Some(reason),
                )
                .await;
            }
            bridge
                .homeserver
                .send(&room_id, "m.room.message", &txn(0), &notice, None, None)
                .await?;
        }
        InboundEvent::Reaction { remote_id, key } => {
            let Some(ghost) = ghost else {
                tracing::info!(
                    remote_id,
                    "the customer reacted, but has no ghost to react with; not shown"
                );
                return Ok(());
            };
            // One reaction per customer and message: the events it became are kept under a key
            // of their own, one part per inbox row, so a new one replaces (redacts) the old.
            let reaction_key = format!("reaction:{}:{remote_id}", row.inbound.sender.id);
            for (i, old) in bridge
                .store
                .events_for_remote(conversation.id, &reaction_key)
                .await?
                .iter()
                .enumerate()
            {
                bridge
                    .homeserver
                    .redact(
                        &room_id,
                        old,
                        &format!("sb-in-{}-unreact-{i}", row.id),
                        Some(ghost),
                    )
                    .await?;
            }
            let Some(key) = key.as_deref().filter(|k| !k.is_empty()) else {
                return Ok(());
            };
            let Some(target) = bridge
                .store
                .events_for_remote(conversation.id, remote_id)
                .await?
                .into_iter()
                .next()
            else {
                tracing::info!(
                    remote_id,
                    "reaction to a message that never reached Matrix; ignored"
                );
                return Ok(());
            };
            let event = serde_json::json!({
                "m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}
            });
            let event_id = match bridge
                .homeserver
                .send(&room_id, "m.reaction", &txn(0), &event, Some(ghost), ts)
                .await
            {
                Err(MatrixError::Api { status: 403, .. }) => {
                    portal::ensure_joined(bridge, &room_id, ghost).await?;
                    bridge
                        .homeserver
                        .send(&room_id, "m.reaction", &txn(0), &event, Some(ghost), ts)
                        .await?
                }
                other => other?,
            };
            message_map::insert(
                bridge.store.pool(),
                conversation.id,
                &reaction_key,
                row.id,
                &event_id,
                Direction::In,
            )
            .await?;
        }
    }
    Ok(())
}

/// Send as the customer: as their ghost, joining it first when it is not in the room (a join
/// that failed earlier, or it was kicked); when the ghost cannot speak there at all, the bot
/// posts the message with the customer's name ([`on_behalf`]), so it still reaches the room.
async fn send_as_customer(
    bridge: &Bridge,
    portal: &portal::Portal,
    txn_id: &str,
    event: &Value,
    ts: Option<i64>,
) -> Result<String, MatrixError> {
    let room_id = portal.room_id.as_str();
    if let Some(ghost) = portal.ghost.as_deref() {
        match bridge
            .homeserver
            .send(room_id, "m.room.message", txn_id, event, Some(ghost), ts)
            .await
        {
            Err(MatrixError::Api { status: 403, .. }) => {
                match portal::ensure_joined(bridge, room_id, ghost).await {
                    Ok(()) => {
                        return bridge
                            .homeserver
                            .send(room_id, "m.room.message", txn_id, event, Some(ghost), ts)
                            .await
                    }
                    Err(e) if e.is_retryable() => return Err(e),
                    Err(e) => tracing::warn!(
                        room_id,
                        ghost,
                        error = %e,
                        "the customer's ghost cannot join; the bot posts for them"
                    ),
                }
            }
            other => return other,
        }
    }
    let event = on_behalf(event, &portal.name);
    bridge
        .homeserver
        .send(
            room_id,
            "m.room.message",
            &format!("{txn_id}-bot"),
            &event,
            None,
            ts,
        )
        .await
}

/// A customer's message event as the bot posts it for them: their name first. A file keeps
/// its name in `filename` and the body becomes its caption.
fn on_behalf(event: &Value, name: &str) -> Value {
    let mut event = event.clone();
    let Some(obj) = event.as_object_mut() else {
        return event;
    };
    let body = obj
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let is_file = obj
        .get("msgtype")
        .and_then(Value::as_str)
        .is_some_and(|t| !matches!(t, "m.text" | "m.notice" | "m.emote"));
    if is_file && !obj.contains_key("filename") {
        obj.insert("filename".into(), Value::String(body.clone()));
    }
    obj.insert("body".into(), Value::String(format!("{name}: {body}")));
    if let Some(html) = obj.get("formatted_body").and_then(Value::as_str) {
        let html = format!("<b>{}</b>: {html}", content::escape_html(name));
        obj.insert("formatted_body".into(), Value::String(html));
    }
    event
}
