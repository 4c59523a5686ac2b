//! Events pushed by the homeserver: stored with their transaction id in one database transaction
//! before the homeserver gets its 200, then worked through in order within each room (rooms in
//! parallel, see [`crate::queue`]).
//!
//! "In order" is the homeserver's order, which is not always arrival order: when sending a
//! transaction fails (the bridge was down, or died mid-request), Synapse may send the next one
//! straight away and the failed one only when its recoverer retries, seconds later. Transaction
//! ids that are numbers (Synapse counts them) are therefore remembered: a jump of at most
//! [`MAX_GAP`] leaves the skipped ids as gaps, and events of later transactions are held until
//! every earlier gap is filled (then they are put back in transaction order, after the late
//! events) or the oldest gap has waited [`GAP_WAIT`]. Ids that are not numbers, or jump further,
//! are taken in arrival order.

use sqlx::Row;

use super::{next_id, now_ms, Store, StoreError};

/// How long events after a missing transaction wait for it before they are worked on anyway.
/// Synapse's recoverer retries after 2, 4, 8, 16 s (and at once when the bridge pings it).
pub const GAP_WAIT_MS: i64 = 30_000;

/// How long a gap may stay open before the next transaction is refused once, so that the
/// homeserver re-sends the missing one. Synapse can leave a transaction created during its
/// recovery unsent until its next failure (its recoverer marks the service up after finding
/// nothing left, while the queuer created one more without sending it); a refused transaction
/// starts a recoverer, which sends the oldest unsent transaction first.
pub const GAP_NUDGE_MS: i64 = 5_000;

/// The largest jump between transaction ids taken as skipped transactions; a larger one is a
/// homeserver that numbers them otherwise.
pub const MAX_GAP: i64 = 100;

#[derive(Clone, Debug)]
pub struct MatrixEventRow {
    pub event_id: String,
    pub room_id: String,
    pub payload: serde_json::Value,
}

impl Store {
    /// Store the events of one transaction and remember its id, atomically.
    /// Returns `false` when the transaction was processed before (nothing is stored again).
    pub async fn store_transaction(
        &self,
        txn_id: &str,
        events: &[(String, String, String)], // (event_id, room_id, raw json)
    ) -> Result<bool, StoreError> {
        let _order = self.txn_order.lock().await;
        let txn_num = txn_id.parse::<i64>().ok().filter(|n| *n >= 0);
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // Write first: a SQLite transaction that reads before its first write cannot take the
        // write lock once another connection has committed meanwhile (SQLITE_BUSY_SNAPSHOT).
        if !Store::mark_txn(&mut *tx, txn_id, txn_num).await? {
            return Ok(false);
        }
        let highest: Option<i64> = match txn_num {
            Some(_) => {
                sqlx::query_scalar("SELECT MAX(txn_num) FROM appservice_txns WHERE txn_id <> $1")
                    .bind(txn_id)
                    .fetch_one(&mut *tx)
                    .await?
            }
            None => None,
        };
        let mut hold_until = 0;
        let mut gaps_closed = false;
        if let Some(n) = txn_num {
            gaps_closed |=
                sqlx::query("DELETE FROM appservice_txn_gaps WHERE txn_num = $1 OR opened_at < $2")
                    .bind(n)
                    .bind(now - GAP_WAIT_MS)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0;
            if let Some(h) = highest.filter(|h| n > h + 1 && n - h <= MAX_GAP) {
                for missing in h + 1..n {
                    sqlx::query(
                        "INSERT INTO appservice_txn_gaps (txn_num, opened_at) VALUES ($1, $2)
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(missing)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            let first_gap = first_gap(&mut tx).await?;
            if let Some((gap, opened_at)) = first_gap.filter(|(gap, _)| n > *gap) {
                hold_until = opened_at + GAP_WAIT_MS;
                tracing::info!(
                    txn_id,
                    missing = gap,
                    "transaction arrived after a gap; its events wait for the missing one"
                );
            }
        }
        for (event_id, room_id, raw) in events {
            sqlx::query(
                "INSERT INTO matrix_events (event_id, seq, room_id, payload, state, received_at, txn_num, hold_until)
                 VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(event_id)
            .bind(next_id())
            .bind(room_id)
            .bind(raw)
            .bind(now)
            .bind(txn_num)
            .bind(hold_until)
            .execute(&mut *tx)
            .await?;
        }
        if gaps_closed {
            release_held(&mut tx, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The oldest gap open longer than [`GAP_NUDGE_MS`] and not nudged yet, now marked nudged:
    /// the caller refuses the transaction at hand so that the homeserver re-sends the missing
    /// one. Each gap is nudged once.
    /// `txn_id` is the transaction at hand: the missing one itself (or an older one) is never
    /// refused.
    pub async fn gap_to_nudge(&self, txn_id: &str) -> Result<Option<i64>, StoreError> {
        let _order = self.txn_order.lock().await;
        let now = now_ms();
        let gap: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(txn_num) FROM appservice_txn_gaps WHERE nudged_at = 0 AND opened_at < $1",
        )
        .bind(now - GAP_NUDGE_MS)
        .fetch_one(self.pool())
        .await?;
        let Some(gap) = gap else { return Ok(None) };
        if txn_id.parse::<i64>().map_or(true, |n| n <= gap) {
            return Ok(None);
        }
        sqlx::query("UPDATE appservice_txn_gaps SET nudged_at = $1 WHERE txn_num = $2")
            .bind(now)
            .bind(gap)
            .execute(self.pool())
            .await?;
        Ok(Some(gap))
    }

    /// Rooms with pending events, the room with the oldest pending event first.
    pub async fn matrix_rooms_pending(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT room_id, MIN(seq) AS first FROM matrix_events
             WHERE state = 'pending' AND hold_until <= $1
             GROUP BY room_id ORDER BY first LIMIT $2",
        )
        .bind(now_ms())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| r.try_get("room_id")).collect()
    }

    /// The oldest pending events of one room, in arrival order.
    pub async fn matrix_events_pending_in(
        &self,
        room_id: &str,
        limit: i64,
    ) -> Result<Vec<MatrixEventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT event_id, room_id, payload FROM matrix_events
             WHERE state = 'pending' AND room_id = $1 AND hold_until <= $2
             ORDER BY seq LIMIT $3",
        )
        .bind(room_id)
        .bind(now_ms())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let payload: String = r.try_get("payload")?;
                Ok(MatrixEventRow {
                    event_id: r.try_get("event_id")?,
                    room_id: r.try_get("room_id")?,
                    payload: serde_json::from_str(&payload)
                        .map_err(|e| StoreError::Decode(Box::new(e)))?,
                })
            })
            .collect()
    }

    pub async fn matrix_event_done(&self, event_id: &str, state: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE matrix_events SET state = $1 WHERE event_id = $2")
            .bind(state)
            .bind(event_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forget handled (done or failed) events and homeserver transaction ids received before
    /// `before_ms`. Pending events are never pruned. Returns (events, transactions) removed.
    pub async fn prune_matrix_history(&self, before_ms: i64) -> Result<(u64, u64), StoreError> {
        let events =
            sqlx::query("DELETE FROM matrix_events WHERE state <> 'pending' AND received_at < $1")
                .bind(before_ms)
                .execute(self.pool())
                .await?
                .rows_affected();
        let txns = sqlx::query("DELETE FROM appservice_txns WHERE received_at < $1")
            .bind(before_ms)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok((events, txns))
    }
}

/// The oldest missing transaction still waited for, and since when.
async fn first_gap(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<Option<(i64, i64)>, StoreError> {
    let row =
        sqlx::query("SELECT txn_num, opened_at FROM appservice_txn_gaps ORDER BY txn_num LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    row.map(|r| Ok((r.try_get("txn_num")?, r.try_get("opened_at")?)))
        .transpose()
}

/// Release held events that no longer wait for a gap (all earlier transactions are here), in
/// transaction order, after everything stored so far.
async fn release_held(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    now: i64,
) -> Result<(), StoreError> {
    let first_gap = first_gap(tx).await?.map(|(gap, _)| gap);
    let rows = sqlx::query(
        "SELECT event_id, txn_num FROM matrix_events
         WHERE state = 'pending' AND hold_until > $1 ORDER BY txn_num, seq",
    )
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        let txn_num: Option<i64> = row.try_get("txn_num")?;
        if let (Some(gap), Some(n)) = (first_gap, txn_num) {
            if n > gap {
                break;
            }
        }
        let event_id: String = row.try_get("event_id")?;
        sqlx::query("UPDATE matrix_events SET seq = $1, hold_until = 0 WHERE event_id = $2")
            .bind(next_id())
            .bind(event_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let (dir, _, store) = crate::store::temp_store(2).await;
        (dir, store)
    }

    async fn txn(store: &Store, id: &str, events: &[&str]) {
        let rows: Vec<_> = events
            .iter()
            .map(|e| (e.to_string(), "!room:hs".to_string(), "{}".to_string()))
            .collect();
        assert!(store.store_transaction(id, &rows).await.expect("store"));
    }

    async fn workable(store: &Store) -> Vec<String> {
        store
            .matrix_events_pending_in("!room:hs", 50)
            .await
            .expect("pending")
            .into_iter()
            .map(|e| e.event_id)
            .collect()
    }

    /// Synapse sent 3 and 4 before re-sending 2 (which failed while the bridge was down): 3
    /// and 4 wait, and once 2 is here the room's events are worked in the homeserver's order.
    #[tokio::test]
    async fn a_late_transaction_is_worked_before_the_ones_sent_after_it() {
        let (_dir, store) = store().await;
        txn(&store, "1", &["$a"]).await;
        txn(&store, "3", &["$c1", "$c2"]).await;
        txn(&store, "4", &["$d"]).await;
        assert_eq!(
            workable(&store).await,
            ["$a"],
            "events after a gap were not held"
        );
        assert_eq!(
            store.matrix_rooms_pending(10).await.expect("rooms").len(),
            1
        );
        txn(&store, "2", &["$b"]).await;
        assert_eq!(workable(&store).await, ["$a", "$b", "$c1", "$c2", "$d"]);
        txn(&store, "5", &["$e"]).await;
        assert_eq!(
            workable(&store).await,
            ["$a", "$b", "$c1", "$c2", "$d", "$e"]
        );
    }

    /// Transactions stored while the workers mark events handled on other connections: none
    /// is refused (a transaction that read before writing could not take SQLite's write lock).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn storing_goes_on_beside_other_writers() {
        let (_dir, store) = store().await;
        let worker = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..300 {
                    let _ = store.matrix_event_done(&format!("$e{i}"), "done").await;
                    tokio::task::yield_now().await;
                }
            })
        };
        for i in 0..300 {
            let rows = [(format!("$e{i}"), "!room:hs".to_string(), "{}".to_string())];
            store
                .store_transaction(&i.to_string(), &rows)
                .await
                .unwrap_or_else(|e| panic!("transaction {i} refused: {e}"));
        }
        worker.await.expect("worker");
    }

    /// A gap left open past the nudge time is nudged once.
    #[tokio::test]
    async fn a_stuck_gap_is_nudged_once() {
        let (_dir, store) = store().await;
        txn(&store, "1", &["$a"]).await;
        txn(&store, "3", &["$c"]).await;
        assert_eq!(
            store.gap_to_nudge("4").await.expect("nudge"),
            None,
            "nudged at once"
        );
        sqlx::query("UPDATE appservice_txn_gaps SET opened_at = opened_at - 5001")
            .execute(store.pool())
            .await
            .expect("age");
        assert_eq!(
            store.gap_to_nudge("2").await.expect("nudge"),
            None,
            "the missing one refused"
        );
        assert_eq!(store.gap_to_nudge("4").await.expect("nudge"), Some(2));
        assert_eq!(
            store.gap_to_nudge("5").await.expect("nudge"),
            None,
            "nudged twice"
        );
        txn(&store, "2", &["$b"]).await;
        assert_eq!(workable(&store).await, ["$a", "$b", "$c"]);
    }

    /// Two gaps: filling the first releases what came before the second only.
    #[tokio::test]
    async fn each_gap_releases_what_came_before_the_next() {
        let (_dir, store) = store().await;
        txn(&store, "10", &["$10"]).await;
        txn(&store, "12", &["$12"]).await;
        txn(&store, "14", &["$14"]).await;
        txn(&store, "11", &["$11"]).await;
        assert_eq!(workable(&store).await, ["$10", "$11", "$12"]);
        txn(&store, "13", &["$13"]).await;
        assert_eq!(workable(&store).await, ["$10", "$11", "$12", "$13", "$14"]);
    }

    /// A transaction that never comes holds nothing up for longer than the gap wait, and ids
    /// that are not counters (or jump far) are taken in arrival order.
    #[tokio::test]
    async fn gaps_expire_and_other_ids_keep_arrival_order() {
        let (_dir, store) = store().await;
        txn(&store, "1", &["$a"]).await;
        txn(&store, "3", &["$c"]).await;
        assert_eq!(workable(&store).await, ["$a"]);
        // The gap wait passes.
        for sql in [
            "UPDATE appservice_txn_gaps SET opened_at = opened_at - 30001",
            "UPDATE matrix_events SET hold_until = hold_until - 30001 WHERE hold_until > 0",
        ] {
            sqlx::query(sql).execute(store.pool()).await.expect("age");
        }
        assert_eq!(workable(&store).await, ["$a", "$c"]);
        txn(&store, "4", &["$d"]).await;
        txn(&store, "1000", &["$far"]).await;
        txn(&store, "txn-b", &["$x"]).await;
        txn(&store, "txn-a", &["$y"]).await;
        assert_eq!(
            workable(&store).await,
            ["$a", "$c", "$d", "$far", "$x", "$y"]
        );
        // The late one still counts once, after everything.
        txn(&store, "2", &["$b"]).await;
        assert_eq!(workable(&store).await.len(), 7);
    }
}
