//! The timer worker: stored deadlines, checked against the bridge's clock. Reminders go to the
//! owner, escalations to the whole team (invited to the portal and mentioned in the lobby),
//! snoozes end by reopening, weekly report digests go to team lobbies, rating questions go out
//! after their delay ([`crate::csat`]). Nothing lives only in memory, so timers survive restarts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::bridge::Bridge;
use crate::matrix::content;
use crate::store::routing::ConversationState;
use crate::store::routing::RoutingRow;

/// How often waiting times in the lobbies are checked (an entry is edited only when its waiting
/// time crosses into the next step, see [`super::lobby::WAIT_BUCKETS`]).
const LOBBY_REFRESH: Duration = Duration::from_secs(30);

/// Timer passes, for [`settle`]: how many have started, and the number of the last one that
/// finished (per process: one bridge, one timer worker).
static PASSES_STARTED: AtomicU64 = AtomicU64::new(0);

fn passes_finished() -> &'static watch::Sender<u64> {
    static FINISHED: OnceLock<watch::Sender<u64>> = OnceLock::new();
    FINISHED.get_or_init(|| watch::channel(0).0)
}

/// Wake the worker and wait until a whole pass that started after this call has finished: every
/// timer due by the clock as it is now has fired (its notices sent) when this returns `true`.
/// `false`: no pass finished within `timeout` (the worker is not running yet). The test clock
/// uses it, so a test that moved the clock knows what fired before the move and what after.
pub async fn settle(bridge: &Bridge, timeout: Duration) -> bool {
    let target = PASSES_STARTED.load(Ordering::SeqCst) + 1;
    let mut finished = passes_finished().subscribe();
    bridge.wake_timers.notify_one();
    let finished = async move { finished.wait_for(|done| *done >= target).await.is_ok() };
    tokio::time::timeout(timeout, finished)
        .await
        .unwrap_or(false)
}

pub async fn run(bridge: Arc<Bridge>) {
    let mut last_refresh = std::time::Instant::now();
    let mut last_clock = bridge.clock.now_ms();
    let mut digests = crate::reports::digest::Digests::default();
    loop {
        let pass = PASSES_STARTED.fetch_add(1, Ordering::SeqCst) + 1;
        // Every LOBBY_REFRESH, or at once when a test moved the clock.
        let clock = bridge.clock.now_ms();
        if last_refresh.elapsed() >= LOBBY_REFRESH
            || (clock - last_clock).abs() > 60_000 + LOBBY_REFRESH.as_millis() as i64
        {
            super::lobby::refresh_waiting(&bridge).await;
            last_refresh = std::time::Instant::now();
            last_clock = clock;
        }
        let now = bridge.clock.now_ms();
        match bridge.store.routing_due(now).await {
            Ok(rows) => {
                for row in rows {
                    if !bridge.leader.holds() {
                        break;
                    }
                    fire(&bridge, row, now).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read timers"),
        }
        // The weekly digests to team lobbies (durable: see `reports::digest`).
        digests.tick(&bridge).await;
        crate::csat::run_due(&bridge).await;
        passes_finished().send_replace(pass);
        let _ =
            tokio::time::timeout(Duration::from_millis(500), bridge.wake_timers.notified()).await;
    }
}

async fn fire(bridge: &Bridge, mut row: RoutingRow, now: i64) {
    let Ok(Some(conversation)) = bridge.store.conversation(row.conversation_id).await else {
        return;
    };
    let Some(room_id) = conversation.room_id.clone() else {
        return;
    };
    let calendar = super::waiting::calendar_of(bridge, row.team.as_deref()).await;
    let waited = row
        .unworked_since
        .map(|s| super::waiting::waited(&calendar, s, now).describe())
        .unwrap_or_default();
    if row.state == ConversationState::Snoozed && row.snooze_until.is_some_and(|t| t <= now) {
        row.state = ConversationState::Open;
        row.snooze_until = None;
        if row.unworked_since.is_none() {
            row.unworked_since = Some(now);
            super::arm_timers(bridge, &mut row).await;
        }
        let _ = save(bridge, &row).await;
        notice(
            bridge,
            &room_id,
            "⏰ Snooze over: this conversation is open again.",
            &format!("snooze-{}-{now}", row.conversation_id),
        )
        .await;
        bridge.lobby_queue.touch(conversation.id);
        return;
    }
    if row.unworked_since.is_none() {
        return;
    }
    if !row.escalated && row.escalate_at.is_some_and(|t| t <= now) {
        row.escalated = true;
        row.reminded = true;
        if save(bridge, &row).await.is_err() {
            return;
        }
        super::apply_visibility(bridge, &conversation, &row, false, &[]).await;
        let everyone = super::visible_to(bridge, &row).await.unwrap_or_default();
        let team = row.team.clone();
        let who = team.clone().unwrap_or_else(|| "everyone".into());
        let line = super::lobby::line(bridge, &conversation, &row).await;
        let text = format!("🚨 unanswered for {waited}; now with {who}: {line}");
        if let Err(e) = super::lobby::mention(
            bridge,
            team.as_deref(),
            &everyone,
            &text,
            &format!(
                "sb-escalate-{}-{}",
                row.conversation_id,
                row.unworked_since.unwrap_or(0)
            ),
        )
        .await
        {
            tracing::warn!(error = %e, "escalation not announced in the lobby");
        }
        notice(
            bridge,
            &room_id,
            &format!("🚨 Escalated to {who}: the customer has waited {waited}."),
            &format!(
                "escalate-{}-{}",
                row.conversation_id,
                row.unworked_since.unwrap_or(0)
            ),
        )
        .await;
        bridge.lobby_queue.touch(conversation.id);
        return;
    }
    if !row.reminded && row.remind_at.is_some_and(|t| t <= now) {
        row.reminded = true;
        if save(bridge, &row).await.is_err() {
            return;
        }
        if let Some(owner) = row.owner.clone() {
            let left = row
                .escalate_at
                .map(|e| super::waiting::until(&calendar, now, e))
                .unwrap_or_default();
            let line = super::lobby::line(bridge, &conversation, &row).await;
            let text = format!(
                "⏰ waiting for your answer for {waited}; the team sees it in {left}: {line}"
            );
            if let Err(e) = super::lobby::mention(
                bridge,
                row.team.as_deref(),
                &[owner],
                &text,
                &format!(
                    "sb-remind-{}-{}",
                    row.conversation_id,
                    row.unworked_since.unwrap_or(0)
                ),
            )
            .await
            {
                tracing::warn!(error = %e, "reminder not sent");
            }
        }
    }
}

async fn save(bridge: &Bridge, row: &RoutingRow) -> Result<(), ()> {
    bridge
        .store
        .put_routing(row, &bridge.stamp(None))
        .await
        .map(drop)
        .map_err(|e| tracing::error!(error = %e, "cannot store timer state"))
}

async fn notice(bridge: &Bridge, room_id: &str, text: &str, txn: &str) {
    if let Err(e) = bridge
        .homeserver
        .send(
            room_id,
            "m.room.message",
            &format!("sb-{txn}"),
            &content::notice(text),
            None,
            None,
        )
        .await
    {
        tracing::warn!(error = %e, "notice not sent");
    }
}
