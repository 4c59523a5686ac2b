//! Matrix → outbox: works through the events the homeserver pushed, in arrival order within
//! each room; rooms are worked on in parallel (the scheduling of [`crate::relay::queue`]), so one busy
//! or failing room does not hold up the others.
//!
//! In a portal, an operator's message becomes one outbox item (written in the same database
//! transaction that marks the event handled, so it is queued exactly once); `!sb …` commands are
//! run and never relayed; redactions of relayed messages become deletions. The bot joins rooms
//! an operator invites it to (a DM with the bot is where bare commands work, a lobby can be
//! moved there) and declines every other invite: a stranger on the homeserver cannot pull the
//! bot into rooms of their own.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchboard_channel::{Content, Outbound, OutboundAction};
use tracing::Instrument;

use crate::bridge::Bridge;
use crate::commands;
use crate::matrix::content::{self, Unrelayable};
use crate::relay::queue;
use crate::store::conversations::Conversation;
use crate::store::matrix_events::MatrixEventRow;

/// How often one event is tried when the homeserver answers with an error that may pass (5xx,
/// 429) before it is given up with a notice in its room. An outage (homeserver unreachable) or a
/// store error is not counted: nothing else could be handled meanwhile either, and giving up
/// would lose operators' messages that only wait for the outage to end.
const MAX_EVENT_ATTEMPTS: u32 = 8;

/// How many rooms have their events worked on at once.
const ROOMS_IN_PARALLEL: usize = 16;

/// How many pending events of one room are read from the store at a time.
const BATCH: i64 = 50;

pub async fn run(bridge: Arc<Bridge>) {
    let b = bridge.clone();
    let ready = move || {
        let b = b.clone();
        async move { b.store.matrix_rooms_pending(200).await }
    };
    let b = bridge.clone();
    let drain = move |room_id: String| {
        let b = b.clone();
        async move { drain(&b, &room_id).await }
    };
    queue::run(
        "matrix",
        &bridge.wake_matrix,
        ready,
        drain,
        ROOMS_IN_PARALLEL,
    )
    .await;
}

/// Work through one room's pending events in arrival order. An event that cannot be handled yet
/// holds up its own room only (later events of the room may depend on it: an edit on its
/// message, a command after it); other rooms go on.
async fn drain(bridge: &Bridge, room_id: &str) {
    let _busy = bridge.relay_activity.enter();
    loop {
        let rows = match bridge.store.matrix_events_pending_in(room_id, BATCH).await {
            Ok(rows) if rows.is_empty() => return,
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(room_id, error = %e, "cannot read pending Matrix events");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        };
        for row in rows {
            if !bridge.leader.holds() {
                return;
            }
            // Every line logged while the event is worked names it (and its conversation, once
            // known: [`queue`] records it).
            let span = tracing::info_span!(
                "matrix_event",
                event_id = %row.event_id,
                room_id = %row.room_id,
                conversation_id = tracing::field::Empty,
                channel = tracing::field::Empty,
            );
            let state = match handle_with_retries(bridge, &row).instrument(span).await {
                Some(state) => state,
                None => continue,
            };
            if let Err(e) = bridge.store.matrix_event_done(&row.event_id, state).await {
                tracing::error!(room_id, error = %e, "cannot mark event handled");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        }
    }
}

/// Handle one event, retrying what may pass. Returns the state to record, or `None` when the
/// event was marked done together with its outbox item.
async fn handle_with_retries(bridge: &Bridge, row: &MatrixEventRow) -> Option<&'static str> {
    // Attempts that count towards the limit, and all tries (for the backoff).
    let (mut attempts, mut tries) = (0u32, 0u32);
    loop {
        if !bridge.leader.holds() {
            // Stepped down: the next leader handles the event.
            return None;
        }
        tries += 1;
        match handle(bridge, row).await {
            Ok(Handled::Queued) => return None,
            Ok(Handled::Done) => return Some("done"),
            Err(e) if e.retryable => {
                if e.counted {
                    attempts += 1;
                }
                if e.counted && attempts >= MAX_EVENT_ATTEMPTS {
                    tracing::error!(event_id = row.event_id, attempts, error = %e.message, "giving up on an event");
                    give_up(bridge, row, &e.message).await;
                    return Some("failed");
                }
                let delay = e
                    .retry_after
                    .unwrap_or_else(|| Duration::from_secs(1 << tries.min(5)));
                tracing::warn!(event_id = row.event_id, attempts, error = %e.message, retry_in = ?delay, "event not handled yet; retrying");
                tokio::time::sleep(delay.min(Duration::from_secs(60))).await;
            }
            Err(e) => {
                tracing::error!(event_id = row.event_id, error = %e.message, "event could not be handled");
                return Some("failed");
            }
        }
    }
}

/// Tell the room an operator's event was dropped after [`MAX_EVENT_ATTEMPTS`] (best effort: the
/// homeserver just failed us repeatedly).
async fn give_up(bridge: &Bridge, row: &MatrixEventRow, reason: &str) {
    let is_message = row.payload.get("type").and_then(Value::as_str) == Some("m.room.message");
    let from_ghost = row
        .payload
        .get("sender")
        .and_then(Value::as_str)
        .is_some_and(|s| bridge.namespace.is_ours(s));
    if !is_message || from_ghost {
        return;
    }
    let text = format!("⚠️ Switchboard could not handle this message ({reason}); it was not sent. Please send it again.");
    if let Err(e) = notify(bridge, row, &text).await {
        tracing::warn!(error = %e.message, "could not tell the room about a dropped event");
    }
}

enum Handled {
    /// Marked done together with its outbox item.
    Queued,
    /// Nothing more to store; mark done.
    Done,
}

#[derive(Debug)]
struct HandleError {
    retryable: bool,
    /// Counts towards [`MAX_EVENT_ATTEMPTS`] (not an outage of the homeserver or the store).
    counted: bool,
    retry_after: Option<Duration>,
    message: String,
}

impl From<crate::matrix::MatrixError> for HandleError {
    fn from(e: crate::matrix::MatrixError) -> Self {
        let counted = !matches!(e, crate::matrix::MatrixError::Unreachable(_));
        HandleError {
            retryable: e.is_retryable(),
            counted,
            retry_after: e.retry_after(),
            message: e.to_string(),
        }
    }
}

impl From<crate::store::StoreError> for HandleError {
    fn from(e: crate::store::StoreError) -> Self {
        HandleError {
            retryable: true,
            counted: false,
            retry_after: None,
            message: e.to_string(),
        }
    }
}

/// The conversation whose portal `room_id` is, or `None` for a room that is none (a lobby, an
/// operator's direct chat with the bot), or an error that makes the event wait.
///
/// A portal is stored only once its creation finished (`portal::ensure_portal`), and a bridge
/// stopped in between finds the room again by its alias after the restart: an operator invited
/// at creation may already have answered there. A room the store does not know is therefore
/// looked up by its alias (`#<prefix><channel>_<conversation id>`), which names the
/// conversation:
/// * its portal not stored yet: the event waits (retried, counted, for up to
///   [`MAX_EVENT_ATTEMPTS`] growing pauses, some minutes), instead of being dropped;
/// * stored as this room since the first lookup (the creation finished meanwhile): this is the
///   portal. Taking such a room for "no portal" lost an operator's reply that arrived as its
///   creation ended (the SIGKILL crash test, 1 of 2,000 replies, in a reused portal);
/// * anything else: no portal. Such rooms are remembered, since a room never becomes one later.
async fn portal_of(bridge: &Bridge, room_id: &str) -> Result<Option<Conversation>, HandleError> {
    if let Some(conversation) = bridge.store.conversation_by_room(room_id).await? {
        return Ok(Some(conversation));
    }
    static NOT_PORTALS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::LazyLock::new(Default::default);
    let not_portals = || NOT_PORTALS.lock().unwrap_or_else(|e| e.into_inner());
    if not_portals().contains(room_id) {
        return Ok(None);
    }
    // A room the bot may not read (it is no member: an operator invited only a ghost) is
    // none of its portals: the bot created every portal and stays in it.
    let alias = match bridge
        .homeserver
        .state(room_id, "m.room.canonical_alias", "")
        .await
    {
        Ok(state) => state.and_then(|v| v.get("alias").and_then(Value::as_str).map(str::to_owned)),
        Err(e) if e.is_retryable() => return Err(e.into()),
        Err(_) => None,
    };
    let conversation_id = alias
        .as_deref()
        .and_then(|a| portal_alias_conversation(bridge, a));
    if let Some(id) = conversation_id {
        if let Some(conversation) = bridge.store.conversation(id).await? {
            match by_alias(conversation.room_id.as_deref(), room_id) {
                ByAlias::Portal => {
                    tracing::info!(
                        room_id,
                        conversation = id,
                        "the portal was stored while the event was looked up; relaying it there"
                    );
                    return Ok(Some(conversation));
                }
                // Counted, with the growing pause: a creation that never finishes (its inbound
                // item failed for good) ends in the notice every dropped event gets, minutes
                // later, not in an event that waits for ever.
                ByAlias::InCreation => {
                    return Err(HandleError {
                        retryable: true,
                        counted: true,
                        retry_after: None,
                        message: format!(
                            "the portal of conversation {id} is still being created; the event waits for it"
                        ),
                    })
                }
                ByAlias::NotAPortal => {}
            }
        }
    }
    tracing::debug!(
        room_id,
        ?alias,
        "a room that is no portal: its messages are not relayed to any customer"
    );
    not_portals().insert(room_id.to_owned());
    Ok(None)
}

/// What a room is, given the room its alias's conversation has stored.
#[derive(Debug, PartialEq, Eq)]
enum ByAlias {
    /// The conversation's portal (stored since the store was first asked).
    Portal,
    /// The conversation's portal, its creation not finished.
    InCreation,
    /// Another room (an older room that carried the alias): no portal.
    NotAPortal,
}

fn by_alias(stored_room: Option<&str>, room_id: &str) -> ByAlias {
    match stored_room {
        None => ByAlias::InCreation,
        Some(stored) if stored == room_id => ByAlias::Portal,
        Some(_) => ByAlias::NotAPortal,
    }
}

/// The conversation a portal's alias names (`#<prefix><channel>_<id>:<our domain>`).
fn portal_alias_conversation(bridge: &Bridge, alias: &str) -> Option<i64> {
    let (local, domain) = alias.strip_prefix('#')?.split_once(':')?;
    if domain != bridge.namespace.domain {
        return None;
    }
    let (_, id) = local
        .strip_prefix(bridge.namespace.prefix.as_str())?
        .rsplit_once('_')?;
    id.parse().ok()
}

/// The bot was invited: it joins when the inviter is an operator (any level, configured or a team
/// member) and declines otherwise. The bot's own rooms (portals, lobbies) need no invite: it
/// created them.
async fn on_bot_invited(bridge: &Bridge, room_id: &str, inviter: &str) {
    let bot = &bridge.namespace.bot;
    if crate::routing::level(bridge, inviter).await.is_some() {
        if let Err(e) = bridge.homeserver.join(room_id, bot).await {
            tracing::warn!(room_id, error = %e, "could not accept an invite");
        }
        return;
    }
    tracing::info!(
        room_id,
        inviter,
        "declining an invite from someone who is not an operator"
    );
    if let Err(e) = bridge.homeserver.leave(room_id, bot).await {
        tracing::warn!(room_id, error = %e, "could not decline an invite");
    }
}

/// Someone removed (kicked or banned) a customer's ghost from a portal: in a group conversation
/// the person it speaks for is no longer answered there (no Cc of theirs on an email answer)
/// until they write again. The room is told, so the operators know what removing did.
async fn on_ghost_removed(
    bridge: &Bridge,
    row: &MatrixEventRow,
    sender: &str,
    ghost: &str,
) -> Result<(), HandleError> {
    // A ghost leaving of its own accord is the bridge's doing, never an operator's choice.
    if sender == ghost || ghost == bridge.namespace.bot || !bridge.namespace.is_ours(ghost) {
        return Ok(());
    }
    if bridge
        .store
        .participant_removed_by_ghost(&row.room_id, ghost)
        .await?
    {
        tracing::info!(ghost, by = sender, "a group participant was removed");
        notify(
            bridge,
            row,
            &format!("{ghost} is removed from this group conversation: answers no longer go to them, until they write again."),
        )
        .await?;
    }
    Ok(())
}

async fn handle(bridge: &Bridge, row: &MatrixEventRow) -> Result<Handled, HandleError> {
    let event = &row.payload;
    let event_type = event.get("type").and_then(Value::as_str).unwrap_or("");
    let sender = event.get("sender").and_then(Value::as_str).unwrap_or("");
    let empty = Value::Null;
    let body = event.get("content").unwrap_or(&empty);
    match event_type {
        "m.room.member" => {
            let target = event.get("state_key").and_then(Value::as_str);
            let membership = body.get("membership").and_then(Value::as_str);
            if target == Some(bridge.namespace.bot.as_str()) && membership == Some("invite") {
                on_bot_invited(bridge, &row.room_id, sender).await;
            }
            if let (Some(ghost), Some("leave" | "ban")) = (target, membership) {
                on_ghost_removed(bridge, row, sender, ghost).await?;
            }
            Ok(Handled::Done)
        }
        "m.room.message" => {
            let conversation = portal_of(bridge, &row.room_id).await?;
            let reply_to = body
                .get("m.relates_to")
                .and_then(|r| r.get("m.in_reply_to"))
                .and_then(|r| r.get("event_id"))
                .and_then(Value::as_str);
            let mut text = body.get("body").and_then(Value::as_str).unwrap_or("");
            if reply_to.is_some() {
                // A client that still writes the quoted reply fallback puts it before the command.
                text = ruma::events::room::message::sanitize::remove_plain_reply_fallback(text);
            }
            if let Some(invocation) = commands::parse(text, conversation.is_some()) {
                commands::run(
                    bridge,
                    &row.room_id,
                    &row.event_id,
                    reply_to,
                    sender,
                    conversation.as_ref(),
                    invocation,
                )
                .await?;
                return Ok(Handled::Done);
            }
            let Some(conversation) = conversation else {
                return Ok(Handled::Done);
            };
            relay_message(bridge, row, &conversation, sender, body).await
        }
        "m.room.redaction" => {
            let Some(conversation) = portal_of(bridge, &row.room_id).await? else {
                return Ok(Handled::Done);
            };
            let redacts = event
                .get("redacts")
                .or_else(|| body.get("redacts"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let Some(remote_id) = bridge
                .store
                .remote_for_event(conversation.id, redacts)
                .await?
            else {
                return Ok(Handled::Done);
            };
            if let Some(target) = remote_id.strip_prefix(REACTION_PREFIX) {
                // An operator took back a reaction.
                let action = OutboundAction::React {
                    remote_id: target.to_string(),
                    key: None,
                };
                return queue(bridge, row, &conversation, action).await;
            }
            queue(
                bridge,
                row,
                &conversation,
                OutboundAction::Delete { remote_id },
            )
            .await
        }
        "m.reaction" => {
            let Some(conversation) = portal_of(bridge, &row.room_id).await? else {
                return Ok(Handled::Done);
            };
            relay_reaction(bridge, row, &conversation, sender, body).await
        }
        _ => Ok(Handled::Done),
    }
}

async fn relay_message(
    bridge: &Bridge,
    row: &MatrixEventRow,
    conversation: &Conversation,
    sender: &str,
    body: &Value,
) -> Result<Handled, HandleError> {
    let Some(level) = crate::routing::level(bridge, sender).await else {
        notify(
            bridge,
            row,
            &format!("⚠️ Not delivered: {sender} is not an operator of this bridge."),
        )
        .await?;
        return Ok(Handled::Done);
    };
    let Some(channel) = bridge.channel(&conversation.channel) else {
        notify(
            bridge,
            row,
            &format!(
                "⚠️ Not delivered: the {} channel is not enabled on this bridge.",
                conversation.channel
            ),
        )
        .await?;
        return Ok(Handled::Done);
    };
    let caps = channel.capabilities();
    let mut message = match content::parse_operator_message(body) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(Handled::Done),
        Err(
            e
            @ (Unrelayable::EncryptedFile | Unrelayable::Unsupported(_) | Unrelayable::Invalid(_)),
        ) => {
            notify(bridge, row, &format!("⚠️ Not delivered: {e}.")).await?;
            return Ok(Handled::Done);
        }
    };
    // `::name` references to canned replies are filled in; one that cannot be (an unknown
    // name, a variable with no value) stops the whole message.
    match crate::canned::expand(
        bridge,
        conversation,
        sender,
        level,
        &message.content.text,
        message.content.html.as_deref(),
        caps.max_file_size,
    )
    .await
    {
        Ok(None) => {}
        Ok(Some(expanded)) => {
            message.content.text = expanded.text;
            message.content.html = expanded.html;
            message.content.attachments.extend(expanded.attachments);
        }
        Err(crate::canned::CannedError::Store(e)) => return Err(e.into()),
        Err(e) => {
            notify(bridge, row, &format!("⚠️ Not sent: {e}.")).await?;
            return Ok(Handled::Done);
        }
    }
    let mut c: Content = content::for_channel(message.content, caps.formatting);
    let name = match bridge.config.bridge.attribution {
        crate::config::Attribution::None => String::new(),
        _ => bridge
            .homeserver
            .displayname(sender)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| operator_name(sender)),
    };
    if !c.text.is_empty() {
        content::attribute(&mut c, bridge.config.bridge.attribution, &name);
    }
    let action = if let Some(original) = &message.replaces {
        if !caps.edits {
            notify(
                bridge,
                row,
                "⚠️ Edit not delivered: this channel cannot change a sent message.",
            )
            .await?;
            return Ok(Handled::Done);
        }
        let Some(remote_id) = bridge
            .store
            .remote_for_event(conversation.id, original)
            .await?
        else {
            // An edit of something never relayed (a note, a failed message): nothing to change.
            return Ok(Handled::Done);
        };
        OutboundAction::Edit {
            remote_id,
            content: c,
        }
    } else {
        let reply_to = match &message.reply_to {
            Some(e) if caps.replies => bridge.store.remote_for_event(conversation.id, e).await?,
            _ => None,
        };
        if let Err(why) = reply_window_open(bridge, conversation, &caps).await? {
            notify(bridge, row, &why).await?;
            return Ok(Handled::Done);
        }
        OutboundAction::Message {
            content: c,
            reply_to,
        }
    };
    if matches!(action, OutboundAction::Message { .. }) {
        // Routing first: queueing marks the event handled, so a crash between the two must not
        // leave an answered conversation counted as unworked (and escalated). Replayed after a
        // crash, the routing update finds nothing to change.
        crate::routing::on_operator_message(bridge, conversation, sender).await?;
    }
    queue(bridge, row, conversation, action).await
}

/// Where an operator's reaction is remembered in the message map (`<prefix><target remote id>`),
/// so redacting the reaction takes it back on the remote side.
const REACTION_PREFIX: &str = "\u{1}reaction:";

async fn relay_reaction(
    bridge: &Bridge,
    row: &MatrixEventRow,
    conversation: &Conversation,
    sender: &str,
    body: &Value,
) -> Result<Handled, HandleError> {
    let relates = body.get("m.relates_to");
    let target = relates
        .and_then(|r| r.get("event_id"))
        .and_then(Value::as_str);
    let key = relates
        .and_then(|r| r.get("key"))
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty() && k.len() <= 64);
    let (Some(target), Some(key)) = (target, key) else {
        return Ok(Handled::Done);
    };
    if crate::routing::level(bridge, sender).await.is_none() {
        return Ok(Handled::Done);
    }
    let Some(channel) = bridge.channel(&conversation.channel) else {
        return Ok(Handled::Done);
    };
    if !channel.capabilities().reactions {
        // Reactions among operators are theirs (acknowledgements, votes); nothing to relay.
        return Ok(Handled::Done);
    }
    let Some(remote_id) = bridge
        .store
        .remote_for_event(conversation.id, target)
        .await?
    else {
        return Ok(Handled::Done);
    };
    if remote_id.starts_with(REACTION_PREFIX) {
        return Ok(Handled::Done);
    }
    crate::store::message_map::insert(
        bridge.store.pool(),
        conversation.id,
        &format!("{REACTION_PREFIX}{remote_id}"),
        0,
        &row.event_id,
        crate::store::message_map::Direction::Out,
    )
    .await?;
    queue(
        bridge,
        row,
        conversation,
        OutboundAction::React {
            remote_id,
            key: Some(key.to_string()),
        },
    )
    .await
}

/// With a reply window (24 h on Meta's networks), whether a free-form message may still go out;
/// `Err` holds the notice telling the room why not.
pub async fn reply_window_open(
    bridge: &Bridge,
    conversation: &Conversation,
    caps: &switchboard_channel::Capabilities,
) -> Result<Result<(), String>, crate::store::StoreError> {
    let Some(window) = caps.reply_window else {
        return Ok(Ok(()));
    };
    let last = bridge
        .store
        .last_customer_message_at(conversation.id)
        .await?;
    let now = bridge.clock.now_ms();
    let open = last.is_some_and(|at| now.saturating_sub(at) < window.as_millis() as i64);
    if open {
        return Ok(Ok(()));
    }
    let hours = window.as_secs() / 3600;
    let mut why = match last {
        Some(_) => format!(
            "⚠️ Not sent: the customer last wrote more than {hours} h ago, and {} allows free-form messages only within {hours} h of the customer's last message.",
            conversation.channel
        ),
        None => format!("⚠️ Not sent: the customer has not written yet, and {} allows free-form messages only as answers.", conversation.channel),
    };
    if caps.templates {
        why.push_str(" Send an approved template instead: `!sb template <name> [params…]`.");
    }
    Ok(Err(why))
}

async fn queue(
    bridge: &Bridge,
    row: &MatrixEventRow,
    conversation: &Conversation,
    action: OutboundAction,
) -> Result<Handled, HandleError> {
    let outbound = Outbound {
        conversation: switchboard_channel::ConversationKey {
            account: conversation.account.clone(),
            chat: conversation.chat.clone(),
        },
        idempotency_key: row.event_id.clone(),
        participants: Vec::new(),
        action,
    };
    // The sender is an operator here (checked before anything is queued); a message counts as
    // their answer.
    let sender = row.payload.get("sender").and_then(Value::as_str);
    let span = tracing::Span::current();
    span.record("conversation_id", conversation.id);
    span.record("channel", conversation.channel.as_str());
    bridge
        .queue_outbound(
            conversation.id,
            &row.event_id,
            &row.room_id,
            sender.unwrap_or(""),
            &outbound,
            sender,
        )
        .await?;
    tracing::debug!("queued in the outbox");
    Ok(Handled::Queued)
}

/// A notice from the bot in reply to the event (deduplicated by the event id).
async fn notify(bridge: &Bridge, row: &MatrixEventRow, text: &str) -> Result<(), HandleError> {
    let notice = content::with_reply(content::notice(text), &row.event_id);
    bridge
        .homeserver
        .send(
            &row.room_id,
            "m.room.message",
            &format!("sb-notice-{}", row.event_id),
            &notice,
            None,
            None,
        )
        .await?;
    Ok(())
}

/// The operator's name for attribution when they have no display name: the localpart, capitalised (`@alice:x` → `Alice`).
pub fn operator_name(user_id: &str) -> String {
    let local = user_id
        .trim_start_matches('@')
        .split(':')
        .next()
        .unwrap_or(user_id);
    let mut chars = local.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => local.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_found_by_its_alias_is_the_portal_once_stored_as_it() {
        // Not stored yet: the event waits for the creation to finish.
        assert_eq!(by_alias(None, "!new:hs"), ByAlias::InCreation);
        // Stored as this very room between the two lookups: it is the portal (taking it for
        // none dropped the operator's reply that arrived as the creation ended).
        assert_eq!(by_alias(Some("!new:hs"), "!new:hs"), ByAlias::Portal);
        // The conversation's portal is another room: this one is not a portal.
        assert_eq!(by_alias(Some("!other:hs"), "!new:hs"), ByAlias::NotAPortal);
    }
}
