//! Events pushed by the homeserver: stored with their transaction id in one database transaction
//! before the homeserver gets its 200, then worked through in order within each room (rooms in
//! parallel, see [`crate::relay::queue`]).
//!
//! "In order" is the homeserver's order, which is not always arrival order: when sending a
//! transaction fails (the bridge was down, or died mid-request), Synapse may send the next one
//! straight away and the failed one only when its recoverer retries, seconds later, and it can
//! leave one unsent until a later one fails. Transaction ids that are numbers (Synapse counts
//! them) are therefore remembered: a jump of at most [`MAX_GAP`] leaves the skipped ids as gaps.
//! The transaction that shows a gap is refused once ([`Store::gap_to_nudge`]), which has the
//! homeserver send the missing one first; events of transactions after a gap that stays open are
//! held until every earlier gap is filled (then they are put back in transaction order, after
//! the late events) or the oldest gap has waited [`GAP_WAIT_MS`]. Ids that are not numbers are
//! taken in arrival order.
//!
//! A transaction id is not trusted to be unique forever: homeservers restart their numbering
//! (Synapse on SQLite counts from 1 again after a restart, element-hq/synapse#14556; a restored
//! backup or a migrated server does the same). The events decide what is a replay: a known id
//! whose events are all stored is one (answered with no effect); a known id with new events, an
//! id below the highest one that is not a missing one, or a jump past [`MAX_GAP`] starts a new
//! numbering ("epoch"), which is never a reason to hold or drop events.

use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// How long events after a missing transaction wait for it before they are worked on anyway.
/// Synapse's recoverer retries after 2, 4, 8, 16 s (and at once when the bridge pings it).
pub const GAP_WAIT_MS: i64 = 30_000;

/// How long a gap that was not nudged when it opened may stay open before the next transaction
/// is refused once, so that the homeserver re-sends the missing one ([`Store::gap_to_nudge`]).
pub const GAP_NUDGE_MS: i64 = 5_000;

/// How long a gap is remembered after it stopped being waited for: a transaction that arrives
/// later than [`GAP_WAIT_MS`] is still recognised as a late one (not a new numbering).
pub const GAP_FORGET_MS: i64 = 24 * 3600 * 1000;

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
    ///
    /// Returns `false` for a genuine replay: a transaction id seen before whose events are all
    /// stored already (nothing changes). The id alone decides nothing: a homeserver whose
    /// numbering went back (Synapse on SQLite restarts at 1, a restored backup, a migration)
    /// reuses ids with new events, and those events are stored like any others (events are
    /// idempotent by event id). A numbered id that is neither the next one, nor a missing one,
    /// nor a small jump forward starts a new *epoch*: the old numbering is forgotten, nothing is
    /// held behind its gaps, and the gaps of the new numbering are tracked from there.
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
        let seen = !Store::mark_txn(&mut *tx, txn_id, txn_num).await?;
        let mut fresh = Vec::with_capacity(events.len());
        for event in events {
            let known: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM matrix_events WHERE event_id = $1")
                    .bind(&event.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            if known.is_none()
                && !fresh
                    .iter()
                    .any(|e: &&(String, String, String)| e.0 == event.0)
            {
                fresh.push(event);
            }
        }
        if fresh.is_empty() && (seen || !events.is_empty()) {
            // A replay: every event is here already (under this id, or under another one the
            // homeserver sent them in before). Nothing changes.
            tx.rollback().await?;
            return Ok(false);
        }
        if seen {
            tracing::info!(
                txn_id,
                new_events = fresh.len(),
                "the homeserver reused a transaction id with new events; storing them"
            );
            sqlx::query("UPDATE appservice_txns SET received_at = $1 WHERE txn_id = $2")
                .bind(now)
                .bind(txn_id)
                .execute(&mut *tx)
                .await?;
        }
        let mut hold_until = 0;
        let mut release = false;
        let mut new_epoch = false;
        if let Some(n) = txn_num {
            // Gaps are remembered well past the wait, so that a transaction arriving late is
            // still known as late rather than taken for a new numbering.
            sqlx::query("DELETE FROM appservice_txn_gaps WHERE opened_at < $1")
                .bind(now - GAP_FORGET_MS)
                .execute(&mut *tx)
                .await?;
            let was_gap = sqlx::query("DELETE FROM appservice_txn_gaps WHERE txn_num = $1")
                .bind(n)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            let highest: Option<i64> =
                sqlx::query_scalar("SELECT MAX(txn_num) FROM appservice_txns WHERE txn_id <> $1")
                    .bind(txn_id)
                    .fetch_one(&mut *tx)
                    .await?;
            release |= was_gap;
            new_epoch = !was_gap && (seen || highest.is_some_and(|h| n <= h || n - h > MAX_GAP));
            if new_epoch {
                tracing::info!(
                    txn_id,
                    highest_before = highest,
                    "the homeserver's transaction numbering went back or jumped; \
                     taking it as a new numbering"
                );
                sqlx::query(
                    "DELETE FROM appservice_txns WHERE txn_num IS NOT NULL AND txn_id <> $1",
                )
                .bind(txn_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM appservice_txn_gaps")
                    .execute(&mut *tx)
                    .await?;
                release = true;
            } else if let Some(h) = highest.filter(|h| n > h + 1) {
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
            let first_gap = first_gap(&mut tx, now).await?;
            if let Some((gap, opened_at)) = first_gap.filter(|(gap, _)| n > *gap) {
                hold_until = opened_at + GAP_WAIT_MS;
                tracing::info!(
                    txn_id,
                    missing = gap,
                    "transaction arrived after a gap; its events wait for the missing one"
                );
            }
        }
        if release && new_epoch {
            // The old numbering's held events were sent before this transaction: they go first.
            release_held(&mut tx, now).await?;
        }
        for (event_id, room_id, raw) in fresh {
            let seq = super::new_id(&mut tx).await?;
            sqlx::query(
                "INSERT INTO matrix_events (event_id, seq, room_id, payload, state, received_at, txn_num, hold_until)
                 VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(event_id)
            .bind(seq)
            .bind(room_id)
            .bind(raw)
            .bind(now)
            .bind(txn_num)
            .bind(hold_until)
            .execute(&mut *tx)
            .await?;
        }
        if release && !new_epoch {
            // A late transaction: what was held behind it goes after it.
            release_held(&mut tx, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A missing transaction to have the homeserver re-send by refusing `txn_id`, the
    /// transaction at hand, once (the caller answers it with an error). Synapse re-sends a
    /// refused transaction through its recoverer, which sends the oldest unsent one first, so
    /// the missing one comes before the refused one. Two cases, each gap nudged once:
    /// - `txn_id` opens a gap (a number past the next one, not past [`MAX_GAP`]): refused at
    ///   once, and the skipped numbers are remembered as gaps already nudged. A gap seen with
    ///   later transactions is one Synapse sent out of order after a failure (its recoverer has
    ///   it), or one it created during its recovery and will never send until its next failure
    ///   (its recoverer marked the service up after finding nothing left, while its queuer
    ///   created one more without sending it). Only a failure sends the second kind, and the
    ///   transaction that shows the gap may be the last one for a long time: waiting for a
    ///   later one to refuse lost an operator's reply in the crash test (`tests/faults.rs`).
    /// - an older gap open longer than [`GAP_NUDGE_MS`] and not nudged yet (remembered before
    ///   this rule, or opened when this check failed), however late.
    ///
    /// The missing one itself (or an older one) is never refused; after its nudge, a gap that
    /// stays open (a number the homeserver skipped) holds later events for [`GAP_WAIT_MS`].
    pub async fn gap_to_nudge(&self, txn_id: &str) -> Result<Option<i64>, StoreError> {
        let Some(n) = txn_id.parse::<i64>().ok().filter(|n| *n >= 0) else {
            return Ok(None);
        };
        let _order = self.txn_order.lock().await;
        let now = now_ms();
        // One statement: this runs for every transaction.
        let row = sqlx::query(
            "SELECT (SELECT MIN(txn_num) FROM appservice_txn_gaps
                     WHERE nudged_at = 0 AND opened_at < $1) AS stuck,
                    (SELECT MAX(txn_num) FROM appservice_txns) AS highest,
                    (SELECT MAX(txn_num) FROM appservice_txn_gaps) AS last_gap",
        )
        .bind(now - GAP_NUDGE_MS)
        .fetch_one(self.pool())
        .await?;
        let stuck: Option<i64> = row.try_get("stuck")?;
        let highest: Option<i64> = row.try_get("highest")?;
        let last_gap: Option<i64> = row.try_get("last_gap")?;
        if let Some(h) = highest.filter(|h| n > h + 1 && n - h <= MAX_GAP) {
            if last_gap.map_or(true, |g| g <= h) {
                let mut tx = self.pool().begin().await?;
                for missing in h + 1..n {
                    sqlx::query(
                        "INSERT INTO appservice_txn_gaps (txn_num, opened_at, nudged_at)
                         VALUES ($1, $2, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(missing)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                return Ok(Some(h + 1));
            }
        }
        let Some(gap) = stuck.filter(|gap| n > *gap) else {
            return Ok(None);
        };
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
                    payload: crate::matrix::event_json::read(&payload)
                        .map_err(|e| StoreError::Decode(Box::new(e)))?,
                })
            })
            .collect()
    }

    /// Fenced ([`super::lease`]): only the leader under its epoch records it.
    pub async fn matrix_event_done(&self, event_id: &str, state: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        self.check_fence(&mut tx).await?;
        sqlx::query("UPDATE matrix_events SET state = $1 WHERE event_id = $2")
            .bind(state)
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
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

/// The oldest missing transaction still waited for (opened less than [`GAP_WAIT_MS`] ago), and
/// since when.
async fn first_gap(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    now: i64,
) -> Result<Option<(i64, i64)>, StoreError> {
    let row = sqlx::query(
        "SELECT txn_num, opened_at FROM appservice_txn_gaps WHERE opened_at >= $1
         ORDER BY txn_num LIMIT 1",
    )
    .bind(now - GAP_WAIT_MS)
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
    let first_gap = first_gap(tx, now).await?.map(|(gap, _)| gap);
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
        let seq = super::new_id(&mut **tx).await?;
        sqlx::query("UPDATE matrix_events SET seq = $1, hold_until = 0 WHERE event_id = $2")
            .bind(seq)
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

    /// A gap that was not nudged when it opened (stored directly here) is nudged once when it
    /// has been open past the nudge time.
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
            store.gap_to_nudge("4").await.expect("nudge"),
            None,
            "nudged twice"
        );
        txn(&store, "2", &["$b"]).await;
        assert_eq!(workable(&store).await, ["$a", "$b", "$c"]);
    }

    /// A transaction that opens a gap is refused at once, before it is stored: the
    /// homeserver's recoverer then sends the missing one first (Synapse may never send it
    /// otherwise, and the transaction that shows the gap may be the last for a long time).
    #[tokio::test]
    async fn a_transaction_that_opens_a_gap_is_refused_once() {
        let (_dir, store) = store().await;
        txn(&store, "1", &["$a"]).await;
        assert_eq!(
            store.gap_to_nudge("2").await.expect("nudge"),
            None,
            "the next one"
        );
        txn(&store, "2", &["$b"]).await;
        assert_eq!(store.gap_to_nudge("5").await.expect("nudge"), Some(3));
        // Re-sent by the recoverer in order: nothing held, nothing refused again.
        for (id, event) in [("3", "$c"), ("4", "$d"), ("5", "$e")] {
            assert_eq!(store.gap_to_nudge(id).await.expect("nudge"), None, "{id}");
            txn(&store, id, &[event]).await;
        }
        assert_eq!(workable(&store).await, ["$a", "$b", "$c", "$d", "$e"]);
        // A number the homeserver skipped: refused once only, then held behind the gap.
        assert_eq!(store.gap_to_nudge("7").await.expect("nudge"), Some(6));
        assert_eq!(store.gap_to_nudge("7").await.expect("nudge"), None, "twice");
        txn(&store, "7", &["$g"]).await;
        assert_eq!(workable(&store).await, ["$a", "$b", "$c", "$d", "$e"]);
        // Not a gap: a jump past MAX_GAP (a new numbering) and an id that is not a number.
        assert_eq!(store.gap_to_nudge("1000").await.expect("nudge"), None);
        assert_eq!(store.gap_to_nudge("abc").await.expect("nudge"), None);
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
    async fn stored(store: &Store, id: &str, events: &[&str]) -> bool {
        let rows: Vec<_> = events
            .iter()
            .map(|e| (e.to_string(), "!room:hs".to_string(), "{}".to_string()))
            .collect();
        store.store_transaction(id, &rows).await.expect("store")
    }

    /// Synapse on SQLite counts its transactions from 1 again after a restart: the reused ids
    /// carry new events, which are stored and worked at once; a true replay still changes
    /// nothing, in either numbering.
    #[tokio::test]
    async fn a_numbering_that_starts_again_loses_nothing() {
        let (_dir, store) = store().await;
        for i in 1..=6 {
            txn(&store, &i.to_string(), &[&format!("$old{i}")]).await;
        }
        assert!(
            !stored(&store, "4", &["$old4"]).await,
            "a replay was stored"
        );
        // The homeserver restarted: 1, 2, 3 again, with new events.
        for i in 1..=3 {
            assert!(
                stored(&store, &i.to_string(), &[&format!("$new{i}")]).await,
                "reused id {i} was taken for a replay"
            );
        }
        let mut expected: Vec<String> = (1..=6).map(|i| format!("$old{i}")).collect();
        expected.extend((1..=3).map(|i| format!("$new{i}")));
        assert_eq!(workable(&store).await, expected, "held or dropped");
        // Replays of either numbering change nothing.
        assert!(!stored(&store, "2", &["$new2"]).await);
        assert!(!stored(&store, "5", &["$old5"]).await);
        // The new numbering goes on past the old one's ids without gaps or holds.
        for i in 4..=8 {
            assert!(stored(&store, &i.to_string(), &[&format!("$new{i}")]).await);
        }
        expected.extend((4..=8).map(|i| format!("$new{i}")));
        assert_eq!(workable(&store).await, expected);
        assert_eq!(store.gap_to_nudge("9").await.expect("nudge"), None);
    }

    /// Events held behind a gap of the old numbering are not held hostage by it: a new
    /// numbering releases them, before its own events.
    #[tokio::test]
    async fn a_new_numbering_releases_what_an_old_gap_held() {
        let (_dir, store) = store().await;
        txn(&store, "7", &["$a"]).await;
        txn(&store, "9", &["$c"]).await;
        assert_eq!(workable(&store).await, ["$a"]);
        assert!(stored(&store, "1", &["$x"]).await);
        assert_eq!(workable(&store).await, ["$a", "$c", "$x"]);
        // A far jump is a new numbering too.
        txn(&store, "3", &["$y"]).await;
        assert!(stored(&store, "5000", &["$far"]).await);
        assert!(stored(&store, "5001", &["$far2"]).await);
        assert_eq!(
            workable(&store).await,
            ["$a", "$c", "$x", "$y", "$far", "$far2"]
        );
    }

    /// A transaction later than the gap wait is still a late one (not a new numbering): the
    /// ids after it are not taken for missing ones.
    #[tokio::test]
    async fn a_very_late_transaction_is_still_late() {
        let (_dir, store) = store().await;
        txn(&store, "1", &["$a"]).await;
        txn(&store, "3", &["$c"]).await;
        for sql in [
            "UPDATE appservice_txn_gaps SET opened_at = opened_at - 30001",
            "UPDATE matrix_events SET hold_until = hold_until - 30001 WHERE hold_until > 0",
        ] {
            sqlx::query(sql).execute(store.pool()).await.expect("age");
        }
        txn(&store, "2", &["$b"]).await;
        txn(&store, "4", &["$d"]).await;
        assert_eq!(workable(&store).await, ["$a", "$c", "$b", "$d"]);
        let gaps: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM appservice_txn_gaps")
            .fetch_one(store.pool())
            .await
            .expect("gaps");
        assert_eq!(gaps, 0, "ids already received were taken for missing ones");
    }
}
