//! Routing: who sees each conversation and who must answer it, by when.
//!
//! A new conversation gets a team from the rules ([`teams`]), then an owner: the customer's
//! previous owner when on shift (sticky; not when the customer's latest rating of them was 2 or
//! less), a round-robin pick when the team works that way (optionally the better rated first),
//! or none. Only the people concerned are invited: the owner; else the team (its leads in lead-only
//! mode); with no team, every operator. Every customer message makes the conversation unworked
//! until an operator answers or dismisses it (`done`); while it is unworked, stored timers run in
//! working time: a reminder to the owner, then escalation to the whole team ([`timers`]); every
//! text about them measures in working time and says so ([`waiting`]). The team's lobby room
//! lists each conversation in one message that is edited as it changes ([`lobby`]).

pub mod calendar;
pub mod lobby;
pub mod lobby_queue;
pub mod teams;
pub mod timers;
pub mod waiting;

use chrono::Duration as ChronoDuration;

use crate::bridge::Bridge;
use crate::config::AssignMode;
use crate::matrix::content;
use crate::store::conversations::{Contact, Conversation};
use crate::store::routing::ConversationState;
use crate::store::routing::RoutingRow;
use crate::store::StoreError;
use teams::Team;

pub use teams::{all_operators, is_operator_fast, level};

/// Who a new portal invites, and the routing it starts with.
pub struct Plan {
    pub row: RoutingRow,
    pub invite: Vec<String>,
}

/// Decide team, owner and invitations for a new conversation (stored before the room exists,
/// so a retry after a crash decides the same).
pub async fn plan_new(
    bridge: &Bridge,
    conversation: &Conversation,
    contact: &Contact,
    first_text: &str,
    addressed_to: Option<&str>,
) -> Result<Plan, StoreError> {
    if let Some(row) = bridge.store.routing(conversation.id).await? {
        let invite = visible_to(bridge, &row).await?;
        return Ok(Plan { row, invite });
    }
    let now = bridge.clock.now();
    let team = decide_team(bridge, conversation, contact, true, &[], first_text).await?;
    let mut row = RoutingRow {
        conversation_id: conversation.id,
        team: team.map(|t| t.name.clone()),
        state: ConversationState::Open,
        ..Default::default()
    };
    // Written to an operator personally (their own address), if they are on shift.
    row.owner = addressee_on_shift(bridge, addressed_to, team, now).await?;
    // Sticky: the operator who handled this customer last, if on shift, unless the customer's
    // latest rating of them was 2 or less (then the next rule decides).
    if row.owner.is_none() {
        if let Some(previous) = bridge
            .store
            .last_owner(&contact.channel, &contact.contact_id)
            .await?
        {
            let rated_low = bridge
                .store
                .csat_latest_score_for(&contact.channel, &contact.contact_id, &previous)
                .await?
                .is_some_and(|score| score <= 2);
            if rated_low {
                tracing::info!(
                    conversation = conversation.id,
                    operator = previous,
                    "not sticky: the customer rated this operator 2 or less"
                );
            } else if on_shift(bridge, &previous, team, now).await? {
                row.owner = Some(previous);
            }
        }
    }
    if row.owner.is_none() {
        if let Some(team) = team.filter(|t| t.config.mode == AssignMode::RoundRobin) {
            row.owner = round_robin(bridge, team, now).await?;
        }
    }
    if let Some(owner) = &row.owner {
        bridge
            .store
            .mark_assigned(owner, bridge.clock.now_ms())
            .await?;
    }
    bridge.store.put_routing(&row, &bridge.stamp(None)).await?;
    let invite = visible_to(bridge, &row).await?;
    Ok(Plan { row, invite })
}

/// The team a new conversation goes to: the first team (config order) whose rules match the
/// conversation, its contact, the customer's segment tags (those stored for a `stored_contact`,
/// plus `extra_tags`) and the first message; `None` is the unknown segment. Real routing
/// ([`plan_new`]) and the admin API's dry run (`crate::service::teams::dry_run`) both decide
/// here, so the dry run cannot drift from what happens.
pub async fn decide_team<'b>(
    bridge: &'b Bridge,
    conversation: &Conversation,
    contact: &Contact,
    stored_contact: bool,
    extra_tags: &[String],
    first_text: &str,
) -> Result<Option<&'b Team>, StoreError> {
    let mut tags = Vec::new();
    if stored_contact {
        let customer = bridge
            .store
            .customer_of(&contact.channel, &contact.contact_id)
            .await?;
        tags = bridge.store.customer_tags(customer).await?;
    }
    tags.extend(extra_tags.iter().cloned());
    Ok(teams::route(bridge, conversation, contact, &tags, first_text).await)
}

/// The operator a message was addressed to personally, when that is an operator of this bridge
/// and on shift now (otherwise the usual routing applies: the team sees it).
async fn addressee_on_shift(
    bridge: &Bridge,
    addressed_to: Option<&str>,
    team: Option<&Team>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<String>, StoreError> {
    let Some(user) = addressed_to else {
        return Ok(None);
    };
    if level(bridge, user).await.is_none() {
        tracing::warn!(
            user,
            "a message addressed to someone who is not an operator of this bridge"
        );
        return Ok(None);
    }
    Ok(on_shift(bridge, user, team, now)
        .await?
        .then(|| user.to_string()))
}

/// Who should see a conversation now: the owner; else the team (leads only in lead-only mode);
/// with no team, every operator. After escalation, the whole team.
pub async fn visible_to(bridge: &Bridge, row: &RoutingRow) -> Result<Vec<String>, StoreError> {
    let team = row.team.as_deref().and_then(|t| bridge.teams.get(t));
    if let Some(owner) = &row.owner {
        if !row.escalated {
            return Ok(vec![owner.clone()]);
        }
    }
    Ok(match team {
        Some(team) => {
            let members = teams::members(bridge, team).await?;
            let lead_only = team.config.mode == AssignMode::LeadOnly && !row.escalated;
            members
                .into_iter()
                .filter(|(_, lead)| !lead_only || *lead)
                .map(|(u, _)| u)
                .collect()
        }
        None => all_operators(bridge).await,
    })
}

/// Is the operator at work now: inside the hours of a team they belong to (the given team
/// first), or, belonging to no team, always.
pub async fn on_shift(
    bridge: &Bridge,
    user: &str,
    team: Option<&Team>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, StoreError> {
    let mut in_any = false;
    for t in team.into_iter().chain(bridge.teams.iter()) {
        if teams::members(bridge, t)
            .await?
            .iter()
            .any(|(u, _)| u == user)
        {
            in_any = true;
            if teams::calendar(bridge, t).await.is_open(now) {
                return Ok(true);
            }
        }
    }
    Ok(!in_any && bridge.config.bridge.operators.contains_key(user))
}

/// How far back an operator's ratings count when a team prefers the better rated.
pub const RATING_WINDOW_MS: i64 = 90 * 86_400_000;

/// An operator's average rating over [`RATING_WINDOW_MS`], in hundredths (300 for one not
/// rated in that time: neither preferred nor passed over).
pub async fn rating_rank(bridge: &Bridge, user: &str) -> Result<i64, StoreError> {
    let since = bridge.clock.now_ms() - RATING_WINDOW_MS;
    let (n, total) = bridge.store.csat_operator_since(user, since).await?;
    Ok(if n == 0 { 300 } else { total * 100 / n })
}

/// The member to hand the next conversation to: online (Matrix presence), on shift, under the
/// open-conversation limit; with `prefer_better_rated`, the best average rating of the last 90
/// days ([`rating_rank`]); then the longest without a new one.
async fn round_robin(
    bridge: &Bridge,
    team: &Team,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<String>, StoreError> {
    if !teams::calendar(bridge, team).await.is_open(now) {
        return Ok(None);
    }
    // Smallest key wins: (minus the rating rank when preferred, last assignment).
    let mut best: Option<((i64, i64), String)> = None;
    for (user, _) in teams::members(bridge, team).await? {
        let online = matches!(
            bridge
                .homeserver
                .presence(&user)
                .await
                .ok()
                .flatten()
                .as_deref(),
            Some("online")
        );
        if !online {
            continue;
        }
        if let Some(limit) = team.config.max_open_per_operator {
            if bridge.store.routing_open_count(&user).await? >= limit as i64 {
                continue;
            }
        }
        let last = bridge.store.last_assigned(&user).await?;
        let rank = if team.config.prefer_better_rated {
            -rating_rank(bridge, &user).await?
        } else {
            0
        };
        let key = (rank, last);
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, user));
        }
    }
    Ok(best.map(|(_, u)| u))
}

/// Compute the stored timers of an unworked conversation.
pub async fn arm_timers(bridge: &Bridge, row: &mut RoutingRow) {
    let Some(since) = row.unworked_since else {
        row.remind_at = None;
        row.escalate_at = None;
        return;
    };
    let calendar = waiting::calendar_of(bridge, row.team.as_deref()).await;
    let (after, remind_before) = match row.team.as_deref().and_then(|t| bridge.teams.get(t)) {
        Some(t) => (
            teams::escalate_after(bridge, t).await,
            t.config.remind_before,
        ),
        None => (
            std::time::Duration::from_secs(7200),
            std::time::Duration::from_secs(900),
        ),
    };
    let start = crate::clock::to_datetime(since);
    let after = ChronoDuration::from_std(after).unwrap_or(ChronoDuration::hours(2));
    let before = ChronoDuration::from_std(remind_before).unwrap_or(ChronoDuration::minutes(15));
    row.escalate_at = Some(calendar.add_working(start, after).timestamp_millis());
    row.remind_at = if row.owner.is_some() && after > before {
        Some(
            calendar
                .add_working(start, after - before)
                .timestamp_millis(),
        )
    } else {
        None
    };
    row.reminded = false;
    row.escalated = false;
}

/// A customer wrote: the conversation is open and unworked; out of hours the team's auto-reply
/// goes out, once per conversation per day.
pub async fn on_customer_message(
    bridge: &Bridge,
    conversation: &Conversation,
    room_id: &str,
    addressed_to: Option<&str>,
) -> Result<(), StoreError> {
    let stored = bridge.store.routing(conversation.id).await?;
    let before = stored.as_ref().map(summary);
    let mut row = stored.clone().unwrap_or(RoutingRow {
        conversation_id: conversation.id,
        state: ConversationState::Open,
        ..Default::default()
    });
    row.state = ConversationState::Open;
    row.snooze_until = None;
    // Nobody owns it, and this message was written to an operator personally: theirs now.
    let mut newly_owned = false;
    if row.owner.is_none() {
        let team = row.team.as_deref().and_then(|t| bridge.teams.get(t));
        if let Some(user) =
            addressee_on_shift(bridge, addressed_to, team, bridge.clock.now()).await?
        {
            bridge
                .store
                .mark_assigned(&user, bridge.clock.now_ms())
                .await?;
            row.owner = Some(user);
            row.escalated = false;
            newly_owned = true;
            if row.unworked_since.is_some() {
                arm_timers(bridge, &mut row).await;
            }
        }
    }
    if row.unworked_since.is_none() {
        row.unworked_since = Some(bridge.clock.now_ms());
        arm_timers(bridge, &mut row).await;
    }
    if let Some(team) = row.team.as_deref().and_then(|t| bridge.teams.get(t)) {
        let now = bridge.clock.now();
        let calendar = teams::calendar(bridge, team).await;
        if !calendar.is_open(now) {
            if let Some(text) = teams::auto_reply(bridge, team).await {
                let today = calendar.local_date(now).to_string();
                if row.auto_reply_day.as_deref() != Some(today.as_str()) {
                    row.auto_reply_day = Some(today.clone());
                    row = bridge.store.put_routing(&row, &bridge.stamp(None)).await?;
                    send_auto_reply(bridge, conversation, room_id, &text, &today).await;
                }
            }
        }
    }
    // A message to a conversation that is open and waiting already changes nothing: no write
    // (issue 23: a transaction per customer message that rewrote the same row). The row read
    // above is what the write would have been diffed against too; a change an operator
    // commits in between stands instead of being overwritten by this stale copy.
    if stored.as_ref() != Some(&row) {
        bridge.store.put_routing(&row, &bridge.stamp(None)).await?;
    }
    if newly_owned {
        apply_visibility(bridge, conversation, &row, false, &[]).await;
    }
    if before != Some(summary(&row)) {
        bridge.lobby_queue.touch(conversation.id);
    }
    Ok(())
}

/// What the lobby line shows besides the waiting time: the lobby is edited only when this
/// changes, not on every message (a busy conversation must not flood the lobby room).
fn summary(
    row: &RoutingRow,
) -> (
    Option<String>,
    Option<String>,
    ConversationState,
    bool,
    Option<String>,
) {
    (
        row.team.clone(),
        row.owner.clone(),
        row.state,
        row.unworked_since.is_some(),
        row.lobby_event.clone(),
    )
}

/// The auto-reply: shown in the room as the bot's notice, and queued for the customer with that
/// notice as its outbox event (so it is delivered once, with the usual retries and status).
async fn send_auto_reply(
    bridge: &Bridge,
    conversation: &Conversation,
    room_id: &str,
    text: &str,
    day: &str,
) {
    let notice = content::notice(&format!(
        "↩️ Auto-reply sent (outside working hours): {text}"
    ));
    let txn = format!("sb-autoreply-{}-{day}", conversation.id);
    match bridge
        .homeserver
        .send(room_id, "m.room.message", &txn, &notice, None, None)
        .await
    {
        Ok(event_id) => {
            let outbound = switchboard_channel::Outbound {
                conversation: switchboard_channel::ConversationKey {
                    account: conversation.account.clone(),
                    chat: conversation.chat.clone(),
                },
                idempotency_key: event_id.clone(),
                participants: Vec::new(),
                action: switchboard_channel::OutboundAction::Message {
                    content: switchboard_channel::Content {
                        text: text.to_string(),
                        html: None,
                        attachments: vec![],
                    },
                    reply_to: None,
                },
            };
            if let Err(e) = bridge
                .queue_outbound(
                    conversation.id,
                    &event_id,
                    room_id,
                    &bridge.namespace.bot,
                    &outbound,
                    None,
                )
                .await
            {
                tracing::error!(error = %e, "cannot queue the auto-reply");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot post the auto-reply notice"),
    }
}

/// An operator answered: the conversation is worked (pending the customer); an unowned one now
/// belongs to whoever answered.
pub async fn on_operator_message(
    bridge: &Bridge,
    conversation: &Conversation,
    sender: &str,
) -> Result<(), StoreError> {
    bridge
        .store
        .add_participant(conversation.id, sender)
        .await?;
    let stored = bridge.store.routing(conversation.id).await?;
    let before = stored.as_ref().map(summary);
    let mut row = stored.clone().unwrap_or(RoutingRow {
        conversation_id: conversation.id,
        state: ConversationState::Open,
        ..Default::default()
    });
    mark_worked(&mut row);
    if row.owner.is_none() {
        row.owner = Some(sender.to_string());
    }
    // The owner answered: the customer's next conversation comes back to them (sticky).
    if row.owner.as_deref() == Some(sender)
        && bridge
            .store
            .last_owner(&conversation.channel, &conversation.contact_id)
            .await?
            .as_deref()
            != Some(sender)
    {
        bridge
            .store
            .set_last_owner(&conversation.channel, &conversation.contact_id, sender)
            .await?;
    }
    if before == Some(summary(&row)) {
        return Ok(());
    }
    bridge
        .store
        .put_routing(&row, &bridge.stamp(Some(sender)))
        .await?;
    bridge.lobby_queue.touch(conversation.id);
    Ok(())
}

/// Answered or dismissed: no longer waiting for us.
pub fn mark_worked(row: &mut RoutingRow) {
    row.unworked_since = None;
    row.remind_at = None;
    row.escalate_at = None;
    if row.state == ConversationState::Open {
        row.state = ConversationState::Pending;
    }
}

/// Put the portal's membership in line with who should see it now: invite those missing and,
/// when `remove_others`, remove operators who should not see it, have not taken part and are not
/// in `keep` (whoever gave the command stays).
pub async fn apply_visibility(
    bridge: &Bridge,
    conversation: &Conversation,
    row: &RoutingRow,
    remove_others: bool,
    keep: &[&str],
) {
    let Some(room_id) = &conversation.room_id else {
        return;
    };
    let should = match visible_to(bridge, row).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "cannot compute visibility");
            return;
        }
    };
    for user in &should {
        if let Err(e) = bridge.homeserver.invite(room_id, user).await {
            tracing::debug!(user, error = %e, "invite");
        }
    }
    if !remove_others {
        return;
    }
    let participants = bridge
        .store
        .participants(conversation.id)
        .await
        .unwrap_or_default();
    let members = bridge.homeserver.members(room_id).await.unwrap_or_default();
    for (user, membership) in members {
        if bridge.namespace.is_ours(&user)
            || should.contains(&user)
            || participants.contains(&user)
            || keep.contains(&user.as_str())
        {
            continue;
        }
        if membership == "join" || membership == "invite" {
            let reason = match &row.owner {
                Some(o) => format!("{o} has taken this conversation"),
                None => "moved to another team".to_string(),
            };
            if let Err(e) = bridge.homeserver.kick(room_id, &user, &reason).await {
                tracing::warn!(user, error = %e, "cannot remove from portal");
            }
        }
    }
}
