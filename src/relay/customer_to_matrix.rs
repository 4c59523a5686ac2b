//! Channel → Matrix: drains the inbox, in order per conversation, fairly across channels (a
//! flood on one channel queues behind itself: [`queue::run_fair`]).
//!
//! Each stored event becomes Matrix events sent by the contact's ghost (with `?ts=` set to when
//! the customer acted). In a group conversation (`Inbound::group`) that is the sender's own
//! ghost, joined to the group's room when it first acts there ([`portal::group_speaker`]). Transaction ids are derived from the inbox row, so a retry after a crash
//! or an outage re-sends with the same id and the homeserver does not duplicate. Only when the
//! Matrix side is done is the row marked done. A customer's message is finished (mapped, noted,
//! routed) while the conversation's next one is sent ([`Posted`]). A homeserver outage is retried with backoff for as
//! long as it lasts; an event Matrix refuses for good is marked failed with the reason, after a
//! notice in the room where possible.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchboard_channel::{Content, InboundEvent};
use tracing::Instrument;

use crate::bridge::Bridge;
use crate::matrix::{content, MatrixError};
use crate::metrics;
use crate::portal::{self, Portal, PortalError};
use crate::relay::queue;
use crate::store::conversations::Conversation;
use crate::store::inbox::InboxRow;
use crate::store::message_map::{self, Direction};
use crate::store::{now_ms, StoreError};

pub async fn run(bridge: Arc<Bridge>) {
    let b = bridge.clone();
    let ready = move || {
        let b = b.clone();
        async move { b.store.inbox_ready(CONVERSATIONS_IN_PARALLEL as i64).await }
    };
    let b = bridge.clone();
    let drain = move |conversation: i64| {
        let b = b.clone();
        async move { drain(&b, conversation).await }
    };
    queue::run_fair(
        "inbound",
        &bridge.wake_inbound,
        ready,
        drain,
        CONVERSATIONS_IN_PARALLEL,
        PER_CHANNEL,
    )
    .await;
}

/// How many conversations have their inbound events worked on at once. Each one sends to the
/// homeserver one event at a time (order within a conversation), with the bridge's own reads
/// between two sends (its commits overlap the sends: [`Posted`]); the more conversations send
/// at once, the more of their events the homeserver takes in one go, and the fewer times it
/// wakes the operators' `/sync` per message.
/// With 16 (12 for a channel alone) the relay benchmark's 16 busy web chat conversations cost
/// Synapse 1.25-1.35x a plain client's CPU per message and 0.35-0.36 `/sync` answers per
/// message; with 24 (18 alone) 1.12-1.16x and 0.13-0.15 (docs/performance.md, "In flight at
/// once").
const CONVERSATIONS_IN_PARALLEL: usize = 24;

/// One channel's share of those, and how many slots a channel beyond its share leaves free for
/// the others ([`queue::run_fair`]): a channel busy alone may hold three quarters (eighteen
/// customers writing at once on one channel are relayed together, not six: the relay
/// benchmark's inbound throughput was 0.53x a plain client's with a hard cap of four of
/// sixteen), and a customer of any other channel always finds a free slot at once.
const PER_CHANNEL: usize = CONVERSATIONS_IN_PARALLEL / 4;

async fn drain(bridge: &Bridge, conversation_id: i64) {
    let _busy = bridge.relay_activity.enter();
    // A customer's message whose events are in the room and whose bookkeeping is still to do:
    // it is done while the conversation's next message is sent ([`Posted`]).
    let mut posted: Option<(InboxRow, Posted)> = None;
    loop {
        // A leader that stepped down posts nothing more (its commits are fenced too).
        if !bridge.leader.holds() {
            return;
        }
        let after = posted.as_ref().map(|(row, _)| row.id);
        let row = match bridge.store.inbox_next(conversation_id, after).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                // The queue looks empty; once the last message is finished, look again (more
                // may have come meanwhile).
                let Some((row, p)) = posted.take() else {
                    return;
                };
                if finish(bridge, &row, p).await {
                    continue;
                }
                return;
            }
            Err(e) => {
                tracing::error!(conversation_id, error = %e, "cannot read inbox");
                if let Some((row, p)) = posted.take() {
                    finish(bridge, &row, p).await;
                }
                return;
            }
        };
        // Only a message that does not reply to it may go ahead of the previous one's
        // bookkeeping: everything else (an edit, a deletion, a status, a reaction…) may name
        // the previous message, whose events are mapped by that bookkeeping.
        if let Some((prev, p)) = posted.take_if(|(prev, _)| !may_overtake(&row, prev)) {
            if !finish(bridge, &prev, p).await {
                return;
            }
        }
        let earlier = async {
            match posted.take() {
                Some((prev, p)) => finish(bridge, &prev, p).await,
                None => true,
            }
        };
        let (result, earlier_finished) =
            futures::join!(process(bridge, &row).instrument(span(&row)), earlier);
        if !earlier_finished {
            // The earlier message is to be retried, so this one waits behind it; its events,
            // if they were sent, are sent again under the same transaction ids (no duplicate).
            return;
        }
        match result {
            Ok(Some(p)) => posted = Some((row, p)),
            Ok(None) => {
                if !record(bridge, &row, Ok(())).instrument(span(&row)).await {
                    return;
                }
            }
            Err(e) => {
                if !record(bridge, &row, Err(e)).instrument(span(&row)).await {
                    return;
                }
            }
        }
    }
}

fn span(row: &InboxRow) -> tracing::Span {
    tracing::info_span!(
        "inbound",
        channel = %row.channel,
        conversation_id = row.conversation_id,
        inbox_id = row.id
    )
}

/// Whether `row` may be sent before `prev`'s bookkeeping is done: a message that does not reply
/// to `prev` (a reply needs the event `prev` became, which that bookkeeping maps).
fn may_overtake(row: &InboxRow, prev: &InboxRow) -> bool {
    let InboundEvent::Message { reply_to, .. } = &row.inbound.event else {
        return false;
    };
    let InboundEvent::Message { remote_id, .. } = &prev.inbound.event else {
        return false;
    };
    reply_to.as_deref() != Some(remote_id.as_str())
}

/// A posted message's bookkeeping done and the row's outcome stored; whether the conversation's
/// queue may go on.
async fn finish(bridge: &Bridge, row: &InboxRow, posted: Posted) -> bool {
    let done = posted.finish(bridge, row).instrument(span(row)).await;
    record(bridge, row, done).instrument(span(row)).await
}

/// One inbox row's outcome stored; whether the conversation's queue may go on (not when the row
/// is to be retried: order within a conversation).
async fn record(bridge: &Bridge, row: &InboxRow, result: Result<(), InboundError>) -> bool {
    let relayed = result.is_ok();
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
                return false;
            }
            r
        }
        Err(e) => {
            tracing::error!(inbox = row.id, error = %e, "inbound event refused by Matrix");
            show_refused(bridge, row, &e).await;
            bridge.store.inbox_failed(row.id, &e.to_string()).await
        }
    };
    if let Err(e) = stored {
        tracing::error!(inbox = row.id, error = %e, "cannot update inbox");
        return false;
    }
    if relayed {
        tracing::debug!("posted in the room");
        if matches!(row.inbound.event, InboundEvent::Message { .. }) {
            metrics::message(&row.channel, metrics::Direction::Inbound);
            metrics::relay_latency(metrics::Direction::Inbound, row.received_at);
        }
    }
    true
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

/// One inbox row on its way into its room: the event, its conversation and its portal.
struct Arrival<'a> {
    bridge: &'a Bridge,
    row: &'a InboxRow,
    conversation: Conversation,
    portal: Portal,
}

impl Arrival<'_> {
    fn room_id(&self) -> &str {
        &self.portal.room_id
    }

    fn ghost(&self) -> Option<&str> {
        self.portal.ghost.as_deref()
    }

    /// When the customer acted (the `ts` the homeserver is given).
    fn ts(&self) -> Option<i64> {
        Some(self.row.inbound.timestamp_ms)
    }

    /// The transaction id of the `part`-th Matrix event this row becomes: the same on every
    /// retry, so the homeserver never duplicates.
    fn txn(&self, part: usize) -> String {
        format!("sb-in-{}-{part}", self.row.id)
    }

    /// The first Matrix event a remote message became, if it reached the room.
    async fn first_event(&self, remote_id: &str) -> Result<Option<String>, InboundError> {
        Ok(self
            .bridge
            .store
            .events_for_remote(self.conversation.id, remote_id)
            .await?
            .into_iter()
            .next())
    }

    /// Send each event as the customer, without remembering yet which remote message it came
    /// from (the caller does, in a transaction of its own). Returns the events, in order.
    async fn send_parts_unmapped(
        &self,
        events: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<String>, InboundError> {
        let mut sent = Vec::new();
        for (part, event) in events.into_iter().enumerate() {
            sent.push(
                send_as_customer(
                    self.bridge,
                    &self.portal,
                    &self.txn(part),
                    &event,
                    self.ts(),
                )
                .await?,
            );
        }
        Ok(sent)
    }

    /// Send each event as the customer and remember which remote message it came from.
    /// Returns the events, in order.
    async fn send_parts(
        &self,
        remote_id: &str,
        events: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<String>, InboundError> {
        let mut sent = Vec::new();
        for (part, event) in events.into_iter().enumerate() {
            let event_id = send_as_customer(
                self.bridge,
                &self.portal,
                &self.txn(part),
                &event,
                self.ts(),
            )
            .await?;
            message_map::insert(
                self.bridge.store.pool(),
                self.conversation.id,
                remote_id,
                part as i64,
                &event_id,
                Direction::In,
            )
            .await?;
            sent.push(event_id);
        }
        Ok(sent)
    }
}

/// One inbox row: its portal is made sure of (created on a conversation's first message), then
/// the event is worked by the function for its kind. A customer's message comes back
/// [`Posted`], with its bookkeeping still to do.
async fn process(bridge: &Bridge, row: &InboxRow) -> Result<Option<Posted>, InboundError> {
    let conversation = bridge
        .store
        .conversation(row.conversation_id)
        .await?
        .ok_or(InboundError::NoConversation(row.conversation_id))?;
    let first_text = match &row.inbound.event {
        InboundEvent::Message { content, .. } => content.text.as_str(),
        _ => "",
    };
    let group = row.inbound.group.as_ref();
    let mut portal = portal::ensure_portal(
        bridge,
        &conversation,
        first_text,
        row.inbound.addressed_to.as_deref(),
        group.and_then(|g| g.title.as_deref()),
    )
    .await?;
    if let Some(group) = group {
        // A group: the people the event names join as themselves, and its sender speaks as
        // their own ghost; the room, routing and answers stay the group's.
        for member in group
            .members
            .iter()
            .filter(|m| m.id != row.inbound.sender.id)
        {
            portal::join_member(bridge, &portal, conversation.id, &row.channel, &member.id).await?;
        }
        portal =
            portal::group_speaker(bridge, &portal, &row.channel, &row.inbound.sender.id).await?;
    }
    let conversation = Conversation {
        room_id: Some(portal.room_id.clone()),
        ..conversation
    };
    let arrival = Arrival {
        bridge,
        row,
        conversation,
        portal,
    };
    let done = match &row.inbound.event {
        InboundEvent::Message {
            content, reply_to, ..
        } => {
            return on_message(&arrival, content, reply_to.as_deref())
                .await
                .map(Some)
        }
        InboundEvent::Notice { remote_id, content } => {
            on_notice(&arrival, remote_id, content).await
        }
        InboundEvent::Edit { remote_id, content } => on_edit(&arrival, remote_id, content).await,
        InboundEvent::Delete { remote_id } => on_delete(&arrival, remote_id).await,
        InboundEvent::Read { remote_id } => on_read(&arrival, remote_id).await,
        InboundEvent::Delivered { remote_id } => on_delivered(&arrival, remote_id).await,
        InboundEvent::Failed { remote_id, reason } => on_failed(&arrival, remote_id, reason).await,
        InboundEvent::Reaction { remote_id, key } => {
            on_reaction(&arrival, remote_id, key.as_deref()).await
        }
        InboundEvent::Choice { payload, .. } => Ok(crate::csat::on_choice(
            bridge,
            &arrival.conversation,
            arrival.room_id(),
            payload,
            &format!("in:{}", row.id),
        )
        .await?),
    };
    done.map(|()| None)
}

/// A customer's message: its events in the room (the first one replying where the customer
/// replied). The rest is [`Posted::finish`].
async fn on_message(
    a: &Arrival<'_>,
    c: &Content,
    reply_to: Option<&str>,
) -> Result<Posted, InboundError> {
    let reply_event = match reply_to {
        Some(r) => a.first_event(r).await?,
        None => None,
    };
    let mut events = content::to_matrix(c);
    if let (Some(first), Some(e)) = (events.first_mut(), &reply_event) {
        *first = content::with_reply(first.take(), e);
    }
    // Its events are mapped to its remote id when it is finished, in the transaction that
    // notes the message (one commit less per message). Until then a retry re-sends under the
    // same transaction ids, and the homeserver answers with the same events.
    let events = a.send_parts_unmapped(events).await?;
    Ok(Posted {
        conversation: a.conversation.clone(),
        room_id: a.room_id().to_string(),
        events,
    })
}

/// A customer's message whose events are in the room, with its bookkeeping still to do: its
/// media jobs, the rating it may answer, its mapping and note in the record, and routing.
///
/// That bookkeeping is done while the conversation's next message is sent (`drain`): the
/// homeserver is given a conversation's messages back to back, as a client types them, instead
/// of one per round of the bridge's own reads and commits (issue 23: those pauses split the
/// homeserver's batches, and it woke the operators' `/sync` three times as often per message as
/// for a plain client). Sends stay one at a time and in order; a reply to the message waits for
/// it to be finished ([`may_overtake`]); and until the row is done a crash or a retry re-sends
/// under the same transaction ids, so nothing is doubled. The bot's own answers to the message
/// (a rating's thanks, the out-of-hours reply) may come after the customer's next message.
struct Posted {
    conversation: Conversation,
    room_id: String,
    events: Vec<String>,
}

impl Posted {
    async fn finish(self, bridge: &Bridge, row: &InboxRow) -> Result<(), InboundError> {
        let InboundEvent::Message {
            remote_id,
            content: c,
            ..
        } = &row.inbound.event
        else {
            return Ok(());
        };
        let (conversation, room_id, sent) = (&self.conversation, &self.room_id, &self.events);
        // Its voice notes and images are transcribed / read after it is relayed, never before.
        crate::media::enqueue_inbound(
            bridge,
            conversation.id,
            room_id,
            remote_id,
            c,
            sent,
            &row.inbound.sender.id,
            row.inbound.timestamp_ms,
        )
        .await?;
        let key = format!("in:{}", row.id);
        // The answer to a rating question (or the comment on it) does not reopen the conversation.
        let rating = crate::csat::on_message(bridge, conversation, room_id, &c.text, &key).await?;
        bridge
            .store
            .note_customer_message(
                conversation.id,
                row.inbound.timestamp_ms,
                &bridge.stamp(None),
                &key,
                (remote_id, sent),
            )
            .await?;
        if rating {
            return Ok(());
        }
        crate::routing::on_customer_message(
            bridge,
            conversation,
            room_id,
            row.inbound.addressed_to.as_deref(),
        )
        .await?;
        Ok(())
    }
}

/// Something the channel says about the conversation (not the customer's words): a notice.
async fn on_notice(a: &Arrival<'_>, remote_id: &str, c: &Content) -> Result<(), InboundError> {
    let mut events = content::to_matrix(c);
    if let Some(obj) = events.first_mut().and_then(Value::as_object_mut) {
        obj.insert("msgtype".into(), Value::String("m.notice".into()));
    }
    a.send_parts(remote_id, events).await.map(|_| ())
}

/// The customer edited a message: a replacement of its first event (text only).
async fn on_edit(a: &Arrival<'_>, remote_id: &str, c: &Content) -> Result<(), InboundError> {
    let Some(target) = a.first_event(remote_id).await? else {
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
        send_as_customer(a.bridge, &a.portal, &a.txn(0), &event, a.ts()).await?;
    }
    Ok(())
}

/// The customer deleted a message: every event it became is redacted.
async fn on_delete(a: &Arrival<'_>, remote_id: &str) -> Result<(), InboundError> {
    let events = a
        .bridge
        .store
        .events_for_remote(a.conversation.id, remote_id)
        .await?;
    // Without a ghost the bot posted the message, and takes it back itself. In a group the bot
    // does too: a network may not say who deleted (Discord), and a ghost cannot redact another's.
    let redactor = match a.row.inbound.group {
        Some(_) => None,
        None => a.ghost(),
    };
    for (i, event_id) in events.iter().enumerate() {
        a.bridge
            .homeserver
            .redact(a.room_id(), event_id, &a.txn(i), redactor)
            .await?;
    }
    Ok(())
}

/// The customer read an operator's message: the ghost's read receipt on its last part.
async fn on_read(a: &Arrival<'_>, remote_id: &str) -> Result<(), InboundError> {
    let Some(ghost) = a.ghost() else {
        // A receipt is the ghost's own; the bot cannot give one for the customer.
        return Ok(());
    };
    if let Some(event_id) = mapped_event(a.bridge, a.row, a.conversation.id, remote_id)
        .await?
        .last()
    {
        a.bridge
            .homeserver
            .read_receipt(a.room_id(), event_id, ghost)
            .await?;
    }
    Ok(())
}

/// The network delivered an operator's message: a success status on it.
async fn on_delivered(a: &Arrival<'_>, remote_id: &str) -> Result<(), InboundError> {
    if let Some(event_id) = mapped_event(a.bridge, a.row, a.conversation.id, remote_id)
        .await?
        .first()
    {
        crate::relay::outbox_to_channel::send_status(
            a.bridge,
            a.room_id(),
            event_id,
            &a.conversation.channel,
            None,
        )
        .await;
    }
    Ok(())
}

/// The network gave up on an operator's message after accepting it: a notice replying to it
/// with the reason, and a failed status.
async fn on_failed(a: &Arrival<'_>, remote_id: &str, reason: &str) -> Result<(), InboundError> {
    let event_id = mapped_event(a.bridge, a.row, a.conversation.id, remote_id)
        .await?
        .into_iter()
        .next();
    let text = format!("⚠️ Not delivered to the customer: {reason}");
    let mut notice = content::notice(&text);
    if let Some(e) = &event_id {
        notice = content::with_reply(notice, e);
        crate::relay::outbox_to_channel::send_status(
            a.bridge,
            a.room_id(),
            e,
            &a.conversation.channel,
            Some(reason),
        )
        .await;
    }
    a.bridge
        .homeserver
        .send(
            a.room_id(),
            "m.room.message",
            &a.txn(0),
            &notice,
            None,
            None,
        )
        .await?;
    Ok(())
}

/// The customer reacted (or took a reaction back: `key` is `None`). One reaction per customer
/// and message: the earlier one is redacted first.
async fn on_reaction(
    a: &Arrival<'_>,
    remote_id: &str,
    key: Option<&str>,
) -> Result<(), InboundError> {
    let Some(ghost) = a.ghost() else {
        tracing::info!(
            remote_id,
            "the customer reacted, but has no ghost to react with; not shown"
        );
        return Ok(());
    };
    let (bridge, row, room_id) = (a.bridge, a.row, a.room_id());
    // The events a reaction became are kept under a key of their own, one part per inbox row,
    // so a new one replaces (redacts) the old.
    let reaction_key = format!("reaction:{}:{remote_id}", row.inbound.sender.id);
    let earlier = bridge
        .store
        .events_for_remote(a.conversation.id, &reaction_key)
        .await?;
    for (i, old) in earlier.iter().enumerate() {
        bridge
            .homeserver
            .redact(
                room_id,
                old,
                &format!("sb-in-{}-unreact-{i}", row.id),
                Some(ghost),
            )
            .await?;
    }
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return Ok(());
    };
    let Some(target) = a.first_event(remote_id).await? else {
        tracing::info!(
            remote_id,
            "reaction to a message that never reached Matrix; ignored"
        );
        return Ok(());
    };
    let event = serde_json::json!({
        "m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}
    });
    let txn = a.txn(0);
    let event_id = match bridge
        .homeserver
        .send(room_id, "m.reaction", &txn, &event, Some(ghost), a.ts())
        .await
    {
        Err(MatrixError::Api { status: 403, .. }) => {
            portal::ensure_joined(bridge, room_id, ghost).await?;
            bridge
                .homeserver
                .send(room_id, "m.reaction", &txn, &event, Some(ghost), a.ts())
                .await?
        }
        other => other?,
    };
    message_map::insert(
        bridge.store.pool(),
        a.conversation.id,
        &reaction_key,
        row.id,
        &event_id,
        Direction::In,
    )
    .await?;
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
