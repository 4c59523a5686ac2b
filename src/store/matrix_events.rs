//! Events pushed by the homeserver: stored with their transaction id in one database transaction
//! before the homeserver gets its 200, then worked through in arrival order within each room
//! (rooms in parallel, see [`crate::queue`]).

use sqlx::Row;

use super::{next_id, now_ms, Store, StoreError};

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
        let mut tx = self.pool().begin().await?;
        if !Store::mark_txn(&mut *tx, txn_id).await? {
            return Ok(false);
        }
        for (event_id, room_id, raw) in events {
            sqlx::query(
                "INSERT INTO matrix_events (event_id, seq, room_id, payload, state, received_at)
                 VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT DO NOTHING",
            )
            .bind(event_id)
            .bind(next_id())
            .bind(room_id)
            .bind(raw)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Rooms with pending events, the room with the oldest pending event first.
    pub async fn matrix_rooms_pending(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT room_id, MIN(seq) AS first FROM matrix_events WHERE state = 'pending'
             GROUP BY room_id ORDER BY first LIMIT $1",
        )
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
             WHERE state = 'pending' AND room_id = $1 ORDER BY seq LIMIT $2",
        )
        .bind(room_id)
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
