//! Lobby rooms: one per team (and one for conversations with no team), where the bot keeps one
//! message per conversation — customer, channel, owner, state, waiting time — edited in place as
//! things change, and where it mentions exactly the people a reminder or escalation concerns.
//! Waiting times are shown in working time, and say so.

use serde_json::{json, Value};

use crate::bridge::Bridge;
use crate::clock::to_datetime;
use crate::portal::customer_name;
use crate::store::conversations::Conversation;
use crate::store::routing::ConversationState;
use crate::store::routing::RoutingRow;
use crate::store::StoreError;

/// The lobby of a team ("" for no team), created and stored the first time it is needed.
pub async fn room(bridge: &Bridge, team: Option<&str>) -> Result<String, LobbyError> {
    let key = team.unwrap_or("");
    if let Some(room) = bridge.store.team_lobby(key).await? {
        return Ok(room);
    }
    // Conversations are worked on in parallel: without this, each of them that finds no lobby
    // yet creates one (the crash test saw 20 lobbies). Creation is rare, so one lock will do.
    static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _creating = CREATING.lock().await;
    if let Some(room) = bridge.store.team_lobby(key).await? {
        return Ok(room);
    }
    let team_ref = team.and_then(|t| bridge.teams.get(t));
    if let Some(configured) = team_ref.and_then(|t| t.config.lobby.clone()) {
        bridge
            .homeserver
            .join(&configured, &bridge.namespace.bot)
            .await?;
        bridge.store.set_team_lobby(key, &configured).await?;
        return Ok(configured);
    }
    let invite: Vec<String> = match team_ref {
        Some(t) => super::teams::members(bridge, t)
            .await?
            .into_iter()
            .map(|(u, _)| u)
            .collect(),
        None => super::all_operators(bridge).await,
    };
    let name = match team {
        Some(t) => format!("Switchboard · {t} lobby"),
        None => "Switchboard · lobby".to_string(),
    };
    let room_id = bridge
        .homeserver
        .create_room(&json!({
            "preset": "private_chat",
            "name": name,
            "topic": "Open conversations, their owners and waiting times. `!sb queue` lists the unanswered ones.",
            "invite": invite,
            "initial_state": [{"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}}],
        }))
        .await?;
    bridge.store.set_team_lobby(key, &room_id).await?;
    Ok(room_id)
}

#[derive(Debug, thiserror::Error)]
pub enum LobbyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Matrix(#[from] crate::matrix::MatrixError),
}

/// The one-line summary of a conversation.
pub async fn line(bridge: &Bridge, conversation: &Conversation, row: &RoutingRow) -> String {
    let customer = match bridge
        .store
        .contact(&conversation.channel, &conversation.contact_id)
        .await
    {
        Ok(Some(c)) => customer_name(&c),
        _ => conversation.contact_id.clone(),
    };
    let owner = row.owner.clone().unwrap_or_else(|| "nobody".into());
    let calendar = super::waiting::calendar_of(bridge, row.team.as_deref()).await;
    let now = bridge.clock.now_ms();
    let state = match (row.state, row.unworked_since) {
        (ConversationState::Open, Some(since)) => {
            let waited = super::waiting::waited(&calendar, since, now);
            format!(
                "waiting {} of working time (since {})",
                WAIT_BUCKETS[wait_bucket(waited.working.num_milliseconds())].1,
                waited.since
            )
        }
        (ConversationState::Snoozed, _) => format!(
            "snoozed until {}",
            super::waiting::local(&calendar, to_datetime(row.snooze_until.unwrap_or(0)))
        ),
        (s, _) => s.as_str().to_owned(),
    };
    let room = conversation.room_id.clone().unwrap_or_default();
    format!(
        "💬 {customer} · {} · owner: {owner} · {state} · https://matrix.to/#/{room}",
        conversation.channel
    )
}

/// Waiting-time steps the lobby shows (from, label), in working time (the time escalation
/// counts): an entry is edited when its conversation crosses into the next step, so the lobby
/// stays current without an edit a minute (and without any while the team is closed).
pub const WAIT_BUCKETS: [(i64, &str); 10] = [
    (0, "under 5 min"),
    (5 * MINUTE, "5 min+"),
    (15 * MINUTE, "15 min+"),
    (30 * MINUTE, "30 min+"),
    (60 * MINUTE, "1 h+"),
    (120 * MINUTE, "2 h+"),
    (240 * MINUTE, "4 h+"),
    (480 * MINUTE, "8 h+"),
    (1440 * MINUTE, "1 day+"),
    (2880 * MINUTE, "2 days+"),
];
const MINUTE: i64 = 60_000;

/// The step of [`WAIT_BUCKETS`] a waiting time falls in.
pub fn wait_bucket(waiting_ms: i64) -> usize {
    WAIT_BUCKETS
        .iter()
        .rposition(|(from, _)| waiting_ms >= *from)
        .unwrap_or(0)
}

/// The step each conversation's lobby entry last showed (in memory: after a restart each
/// waiting entry is refreshed once).
fn shown_buckets() -> &'static std::sync::Mutex<std::collections::HashMap<i64, usize>> {
    static SHOWN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<i64, usize>>> =
        std::sync::OnceLock::new();
    SHOWN.get_or_init(Default::default)
}

/// The step an entry shows now: `None` when it shows no waiting time.
async fn current_bucket(bridge: &Bridge, row: &RoutingRow) -> Option<usize> {
    let since = row
        .unworked_since
        .filter(|_| row.state == ConversationState::Open)?;
    let calendar = super::waiting::calendar_of(bridge, row.team.as_deref()).await;
    let waited = super::waiting::waited(&calendar, since, bridge.clock.now_ms());
    Some(wait_bucket(waited.working.num_milliseconds()))
}

async fn remember_bucket(bridge: &Bridge, row: &RoutingRow) {
    let bucket = current_bucket(bridge, row).await;
    let mut shown = shown_buckets().lock().unwrap_or_else(|e| e.into_inner());
    match bucket {
        Some(b) => {
            shown.insert(row.conversation_id, b);
        }
        None => {
            shown.remove(&row.conversation_id);
        }
    }
}

/// Edit the entries of waiting conversations whose waiting time crossed into a new step.
pub async fn refresh_waiting(bridge: &Bridge) {
    let rows = match bridge.store.routing_unworked().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read waiting conversations for the lobby");
            return;
        }
    };
    for row in rows {
        if row.lobby_event.is_none() {
            continue;
        }
        let Some(bucket) = current_bucket(bridge, &row).await else {
            continue;
        };
        let stale = {
            let shown = shown_buckets().lock().unwrap_or_else(|e| e.into_inner());
            match shown.get(&row.conversation_id) {
                Some(b) => *b != bucket,
                // First look since the bridge started: what the entry shows is unknown, so it is
                // refreshed once unless it cannot have changed yet (one edit per waiting
                // conversation per restart).
                None => bucket > 0,
            }
        };
        if stale {
            bridge.lobby_queue.touch(row.conversation_id);
        }
    }
}

/// Post or edit the conversation's lobby entry (best effort: the lobby is a view). Called by
/// [`super::lobby_queue`] only, one call per conversation at a time; everything else touches
/// the conversation there.
pub(super) async fn update(bridge: &Bridge, conversation: &Conversation, row: &RoutingRow) {
    match try_update(bridge, conversation, row).await {
        Ok(()) => remember_bucket(bridge, row).await,
        Err(e) => {
            tracing::warn!(conversation = conversation.id, error = %e, "lobby entry not updated")
        }
    }
}

async fn try_update(
    bridge: &Bridge,
    conversation: &Conversation,
    row: &RoutingRow,
) -> Result<(), LobbyError> {
    let lobby = room(bridge, row.team.as_deref()).await?;
    let text = line(bridge, conversation, row).await;
    let mut stored = bridge
        .store
        .routing(conversation.id)
        .await?
        .unwrap_or_else(|| row.clone());
    let txn = format!("sb-lobby-{}-{}", conversation.id, crate::store::next_id());
    match (&stored.lobby_room, &stored.lobby_event) {
        (Some(r), Some(e)) if *r == lobby => {
            let new = json!({"msgtype": "m.notice", "body": text});
            let edit = crate::matrix::content::replacement(new, e);
            bridge
                .homeserver
                .send(&lobby, "m.room.message", &txn, &edit, None, None)
                .await?;
        }
        _ => {
            let event = bridge
                .homeserver
                .send(
                    &lobby,
                    "m.room.message",
                    &txn,
                    &json!({"msgtype": "m.notice", "body": text}),
                    None,
                    None,
                )
                .await?;
            stored.lobby_room = Some(lobby);
            stored.lobby_event = Some(event);
            bridge
                .store
                .put_routing(&stored, &bridge.stamp(None))
                .await?;
        }
    }
    Ok(())
}

/// A message in the lobby that mentions (and so notifies) exactly these users.
pub async fn mention(
    bridge: &Bridge,
    team: Option<&str>,
    users: &[String],
    text: &str,
    txn: &str,
) -> Result<(), LobbyError> {
    let lobby = room(bridge, team).await?;
    for u in users {
        let _ = bridge.homeserver.invite(&lobby, u).await;
    }
    let names: Vec<String> = users.to_vec();
    let body = format!("{} {text}", names.join(" "));
    let links: Vec<String> = users
        .iter()
        .map(|u| format!("<a href=\"https://matrix.to/#/{u}\">{u}</a>"))
        .collect();
    let content: Value = json!({
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": format!("{} {}", links.join(" "), crate::matrix::content::escape_html(text)),
        "m.mentions": {"user_ids": users},
    });
    bridge
        .homeserver
        .send(&lobby, "m.room.message", txn, &content, None, None)
        .await?;
    Ok(())
}
