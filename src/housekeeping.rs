//! Housekeeping: the store keeps what the bridge still needs and forgets what only guarded
//! against replays. Homeserver events that were handled, and the ids of transactions already
//! answered, are kept for [`RETENTION`] (a homeserver re-sends an unanswered transaction within
//! minutes, never days later) and then deleted, so these tables stay as small as the traffic of
//! one week however long the bridge runs.
//!
//! Unreadable input whose notice reached the admin room is kept for [`UNREADABLE_RETENTION`]
//! (the raw bytes, for an administrator who follows up), then deleted; input still waiting for
//! its notice is never pruned.
//!
//! Channel records written to expire ([`switchboard_channel::Host::state_put_expiring`]: a web
//! chat session in which nobody wrote) are deleted once their time has passed.
//!
//! Customer messages, operator replies, dead letters and the message map are the conversation's
//! record and are never pruned here.

use std::sync::Arc;
use std::time::Duration;

use crate::bridge::Bridge;
use crate::store::Store;

/// How long handled homeserver events and transaction ids are kept.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long unreadable input is kept after its notice was posted.
pub const UNREADABLE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often the store is pruned (and once at start).
const EVERY: Duration = Duration::from_secs(3600);

pub async fn run(bridge: Arc<Bridge>) {
    loop {
        prune(&bridge.store, crate::store::now_ms()).await;
        tokio::time::sleep(EVERY).await;
    }
}

/// Prune everything older than [`RETENTION`] before `now_ms`.
pub async fn prune(store: &Store, now_ms: i64) {
    let before = now_ms - RETENTION.as_millis() as i64;
    match store.prune_matrix_history(before).await {
        Ok((0, 0)) => {}
        Ok((events, transactions)) => {
            tracing::info!(events, transactions, "pruned handled homeserver events")
        }
        Err(e) => tracing::warn!(error = %e, "cannot prune handled homeserver events"),
    }
    let before = now_ms - UNREADABLE_RETENTION.as_millis() as i64;
    match store.prune_unreadable(before).await {
        Ok(0) => {}
        Ok(inputs) => tracing::info!(inputs, "pruned unreadable input shown a month ago"),
        Err(e) => tracing::warn!(error = %e, "cannot prune unreadable input"),
    }
    // Channel records written to expire (web chat sessions in which nobody wrote).
    match store.prune_expired_state(now_ms).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(records = n, "pruned expired channel records"),
        Err(e) => tracing::warn!(error = %e, "cannot prune expired channel records"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a real SQLite file: handled events and transaction ids younger than a week stay; a
    /// week on they go, but a still pending event is never pruned.
    #[tokio::test]
    async fn prunes_only_old_handled_history() {
        let (_dir, _, store) = crate::store::temp_store(2).await;
        let event = |id: &str| (id.to_string(), "!room:hs".to_string(), "{}".to_string());
        let events = [event("$handled"), event("$failed"), event("$pending")];
        assert!(store.store_transaction("t1", &events).await.expect("store"));
        store
            .matrix_event_done("$handled", "done")
            .await
            .expect("done");
        store
            .matrix_event_done("$failed", "failed")
            .await
            .expect("failed");
        let count = || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM matrix_events")
                .fetch_one(store.pool())
                .await
                .expect("count")
        };

        prune(&store, crate::store::now_ms()).await;
        assert_eq!(count().await, 3, "pruned history younger than a week");
        assert!(store.txn_seen("t1").await.expect("seen"));

        let eight_days_on = crate::store::now_ms() + 8 * 24 * 3600 * 1000;
        prune(&store, eight_days_on).await;
        assert_eq!(
            count().await,
            1,
            "handled events older than a week are kept"
        );
        let pending = store
            .matrix_events_pending_in("!room:hs", 10)
            .await
            .expect("pending");
        assert_eq!(pending.len(), 1, "the pending event was pruned");
        assert_eq!(pending[0].event_id, "$pending");
        assert!(!store.txn_seen("t1").await.expect("seen"));
    }
}
