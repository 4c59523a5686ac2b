//! Conversations: assign, transfer, resolve; the unworked queue; dead letters and their resending.
//! The chat's `assign`, `transfer`, `resolve`, `queue` and `retry` and the admin API's
//! conversation endpoints are these functions. Each returns the sentence the chat answers with.

use serde::Serialize;
use utoipa::ToSchema;

use super::{authorize, Action, Actor, ServiceError};
use crate::bridge::Bridge;
use crate::commands::{user_arg, Command};
use crate::config::Level;
use crate::routing::waiting;
use crate::store::conversations::Conversation;
use crate::store::routing::{ConversationState, RoutingRow};

/// The conversation with id `id`.
pub async fn find(bridge: &Bridge, id: i64) -> Result<Conversation, ServiceError> {
    bridge
        .store
        .conversation(id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("There is no conversation {id}.")))
}

/// The conversation's routing row (a conversation not routed yet counts as open).
pub async fn routing(
    bridge: &Bridge,
    conversation: &Conversation,
) -> Result<RoutingRow, ServiceError> {
    Ok(bridge
        .store
        .routing(conversation.id)
        .await?
        .unwrap_or(RoutingRow {
            conversation_id: conversation.id,
            state: ConversationState::Open,
            ..Default::default()
        }))
}

/// Store a changed routing row (with a conversation event by `actor`) and refresh the lobby.
pub async fn save(
    bridge: &Bridge,
    actor: &Actor,
    conversation: &Conversation,
    row: &RoutingRow,
) -> Result<(), ServiceError> {
    bridge
        .store
        .put_routing(row, &bridge.stamp(Some(&actor.user)))
        .await?;
    bridge.lobby_queue.touch(conversation.id);
    Ok(())
}

/// `assign`: give the conversation to an operator (leads and admins).
pub async fn assign(
    bridge: &Bridge,
    actor: &Actor,
    conversation: &Conversation,
    user: &str,
) -> Result<String, ServiceError> {
    authorize(actor, Action::Command(Command::Assign))?;
    let user = user_arg(bridge, user)
        .ok_or_else(|| ServiceError::Invalid("Usage: `!sb assign @user:server`.".into()))?;
    if crate::routing::level(bridge, &user).await.is_none() {
        return Err(ServiceError::Invalid(format!(
            "{user} is not an operator of this bridge."
        )));
    }
    let mut row = routing(bridge, conversation).await?;
    row.owner = Some(user.clone());
    row.escalated = false;
    crate::routing::arm_timers(bridge, &mut row).await;
    save(bridge, actor, conversation, &row).await?;
    let _ = bridge
        .store
        .mark_assigned(&user, bridge.clock.now_ms())
        .await;
    let remove = bridge.config.routing.remove_uninvolved_on_claim;
    crate::routing::apply_visibility(bridge, conversation, &row, remove, &[&actor.user]).await;
    Ok(format!("Assigned to {user} by {}.", actor.user))
}

/// `transfer`: hand the conversation to an operator (`@user`) or a team (its name). Its owner
/// may; others need lead rights.
pub async fn transfer(
    bridge: &Bridge,
    actor: &Actor,
    conversation: &Conversation,
    target: &str,
) -> Result<String, ServiceError> {
    authorize(actor, Action::Command(Command::Transfer))?;
    let mut row = routing(bridge, conversation).await?;
    if let Some(owner) = &row.owner {
        if *owner != actor.user && actor.level < Level::Lead {
            return Err(ServiceError::Forbidden(format!(
                "Only {owner} (the owner) or a lead can transfer this conversation."
            )));
        }
    }
    let target = target.trim();
    if target.is_empty() {
        return Err(ServiceError::Invalid(
            "Usage: `!sb transfer @user:server` or `!sb transfer <team>`.".into(),
        ));
    }
    let what = if let Some(team) = bridge.teams.get(target) {
        row.team = Some(team.name.clone());
        row.owner = None;
        format!("team {}", team.name)
    } else if let Some(user) = user_arg(bridge, target).filter(|_| target.starts_with('@')) {
        if crate::routing::level(bridge, &user).await.is_none() {
            return Err(ServiceError::Invalid(format!(
                "{user} is not an operator of this bridge."
            )));
        }
        row.owner = Some(user.clone());
        user
    } else {
        let names: Vec<&str> = bridge.teams.iter().map(|t| t.name.as_str()).collect();
        return Err(ServiceError::NotFound(format!(
            "No team or user `{target}`. Teams: {}.",
            names.join(", ")
        )));
    };
    row.escalated = false;
    crate::routing::arm_timers(bridge, &mut row).await;
    // The entry moves to the new team's lobby.
    row.lobby_event = None;
    save(bridge, actor, conversation, &row).await?;
    crate::routing::apply_visibility(bridge, conversation, &row, false, &[]).await;
    Ok(format!("Transferred to {what} by {}.", actor.user))
}

/// `resolve`: close the conversation; a new customer message reopens it.
pub async fn resolve(
    bridge: &Bridge,
    actor: &Actor,
    conversation: &Conversation,
) -> Result<String, ServiceError> {
    authorize(actor, Action::Command(Command::Resolve))?;
    let mut row = routing(bridge, conversation).await?;
    crate::routing::mark_worked(&mut row);
    row.state = ConversationState::Resolved;
    row.snooze_until = None;
    save(bridge, actor, conversation, &row).await?;
    Ok(format!(
        "Resolved by {}. A new message from the customer reopens it.",
        actor.user
    ))
}

/// One conversation waiting for an answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct QueueEntry {
    pub conversation_id: i64,
    pub channel: String,
    /// The portal room (none while it is being created).
    pub room_id: Option<String>,
    pub team: Option<String>,
    pub owner: Option<String>,
    /// `open`, `pending`, `snoozed` or `resolved`.
    pub state: String,
    /// When the oldest unanswered customer message arrived (ms since the epoch).
    pub unworked_since: i64,
    /// How long it has waited in its team's working time (ms).
    pub waited_working_ms: i64,
    /// The same, as the chat says it (working time, and since when on the wall clock).
    pub waited: String,
    /// The conversation's line in the lobby (customer, channel, owner, state).
    pub summary: String,
}

/// `queue`: every conversation waiting for an answer, oldest first.
pub async fn queue(bridge: &Bridge, actor: &Actor) -> Result<Vec<QueueEntry>, ServiceError> {
    authorize(actor, Action::Command(Command::Queue))?;
    let now = bridge.clock.now_ms();
    let mut out = Vec::new();
    for row in bridge.store.routing_unworked().await? {
        let Some(conversation) = bridge.store.conversation(row.conversation_id).await? else {
            continue;
        };
        let summary = crate::routing::lobby::line(bridge, &conversation, &row).await;
        let calendar = waiting::calendar_of(bridge, row.team.as_deref()).await;
        let since = row.unworked_since.unwrap_or(now);
        let waited = waiting::waited(&calendar, since, now);
        out.push(QueueEntry {
            conversation_id: conversation.id,
            channel: conversation.channel.clone(),
            room_id: conversation.room_id.clone(),
            team: row.team.clone(),
            owner: row.owner.clone(),
            state: row.state.as_str().to_string(),
            unworked_since: since,
            waited_working_ms: waited.working.num_milliseconds(),
            waited: waited.describe(),
            summary,
        });
    }
    Ok(out)
}

/// `retry`: put the room's dead letters back in the outbox; how many.
pub async fn retry_room(
    bridge: &Bridge,
    actor: &Actor,
    room_id: &str,
) -> Result<u64, ServiceError> {
    authorize(actor, Action::Command(Command::Retry))?;
    Ok(bridge.requeue_failed(room_id).await?)
}

/// A message that could not be delivered.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    pub id: i64,
    pub conversation_id: i64,
    pub channel: String,
    pub room_id: String,
    /// The operator's Matrix event that was not delivered.
    pub event_id: String,
    pub attempts: i64,
    /// Why, as the channel said it.
    pub last_error: Option<String>,
    /// When it was given up (ms since the epoch).
    pub failed_at: i64,
}

/// Dead letters across every conversation, newest first.
pub async fn dead_letters(
    bridge: &Bridge,
    actor: &Actor,
    limit: i64,
) -> Result<Vec<DeadLetterView>, ServiceError> {
    authorize(actor, Action::DeadLetters)?;
    Ok(bridge
        .store
        .outbox_dead_letters(limit.clamp(1, 1000))
        .await?
        .into_iter()
        .map(|d| DeadLetterView {
            id: d.id,
            conversation_id: d.conversation_id,
            channel: d.channel,
            room_id: d.room_id,
            event_id: d.event_id,
            attempts: d.attempts,
            last_error: d.last_error,
            failed_at: d.failed_at,
        })
        .collect())
}

/// Resend one dead letter (the right `retry` needs); the room it belongs to.
pub async fn resend(bridge: &Bridge, actor: &Actor, id: i64) -> Result<String, ServiceError> {
    authorize(actor, Action::Command(Command::Retry))?;
    let room = bridge
        .store
        .outbox_requeue_one(id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("There is no dead letter {id}.")))?;
    bridge.wake_outbound.notify_one();
    Ok(room)
}
