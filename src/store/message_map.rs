//! Remote message ids ↔ Matrix event ids, per conversation: what replies, edits, deletions,
//! receipts and deduplication look up.

use sqlx::{Any, Executor, Row};

use super::{Store, StoreError};

/// Which way a message travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the customer into Matrix.
    In,
    /// From an operator out to the customer.
    Out,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

pub async fn insert<'c, E: Executor<'c, Database = Any>>(
    executor: E,
    conversation_id: i64,
    remote_id: &str,
    part: i64,
    event_id: &str,
    direction: Direction,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO message_map (conversation_id, remote_id, part, event_id, direction)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(conversation_id)
    .bind(remote_id)
    .bind(part)
    .bind(event_id)
    .bind(direction.as_str())
    .execute(executor)
    .await?;
    Ok(())
}

impl Store {
    /// All events a remote message became, in part order.
    pub async fn events_for_remote(
        &self,
        conversation_id: i64,
        remote_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT event_id FROM message_map WHERE conversation_id = $1 AND remote_id = $2 ORDER BY part",
        )
        .bind(conversation_id)
        .bind(remote_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| r.try_get("event_id")).collect()
    }

    /// Every remote message an event became (an operator's long answer is sent as several),
    /// in order.
    pub async fn remotes_for_event(
        &self,
        conversation_id: i64,
        event_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT remote_id FROM message_map WHERE conversation_id = $1 AND event_id = $2
             ORDER BY part",
        )
        .bind(conversation_id)
        .bind(event_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| r.try_get("remote_id")).collect()
    }

    /// The remote message an event belongs to, within a conversation (the first, when the
    /// event became several).
    pub async fn remote_for_event(
        &self,
        conversation_id: i64,
        event_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT remote_id FROM message_map WHERE conversation_id = $1 AND event_id = $2
             ORDER BY part LIMIT 1",
        )
        .bind(conversation_id)
        .bind(event_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| r.try_get("remote_id")).transpose()
    }
}
