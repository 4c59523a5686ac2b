//! The inbox: events from channels, written before the source is acknowledged and drained in
//! order per conversation by the inbound worker (`src/inbound.rs`).

use sqlx::Row;
use switchboard_channel::{Inbound, Recorded};

use super::{
    channel_state, conversations, customers, now_ms, participants, search, Store, StoreError,
};

#[derive(Clone, Debug)]
pub struct InboxRow {
    pub id: i64,
    pub conversation_id: i64,
    pub channel: String,
    pub inbound: Inbound,
    pub attempts: i64,
    /// When the channel handed it over (ms since the epoch): where relay latency starts.
    pub received_at: i64,
}

impl Store {
    /// Store an inbound event (with its contact and conversation, and its rows in the search
    /// index) in one transaction.
    /// Returns `false` when the event was stored before (a redelivery).
    pub async fn inbox_insert(
        &self,
        channel: &str,
        ghost_user_id: &str,
        inbound: &Inbound,
    ) -> Result<bool, StoreError> {
        self.inbox_insert_group(channel, ghost_user_id, &[], inbound)
            .await
    }

    /// [`Store::inbox_insert`] for an event that may come from a group conversation
    /// ([`Inbound::group`]): the sender and the group's other members named with it (their
    /// ghosts in `member_ghosts`, in the order of `group.members`) become contacts and
    /// participants of the conversation in the same transaction.
    pub async fn inbox_insert_group(
        &self,
        channel: &str,
        ghost_user_id: &str,
        member_ghosts: &[String],
        inbound: &Inbound,
    ) -> Result<bool, StoreError> {
        self.inbox_insert_recorded(channel, ghost_user_id, member_ghosts, inbound, None)
            .await
            .map(|(fresh, _)| fresh)
    }

    /// [`Store::inbox_insert_group`], with the channel's own records of the event
    /// ([`Recorded`]: a log entry and state values) written in the same transaction; the log
    /// entry's seq with whether the event was new.
    pub async fn inbox_insert_recorded(
        &self,
        channel: &str,
        ghost_user_id: &str,
        member_ghosts: &[String],
        inbound: &Inbound,
        record: Option<&Recorded<'_>>,
    ) -> Result<(bool, Option<i64>), StoreError> {
        let payload =
            serde_json::to_string(inbound).map_err(|e| StoreError::Encode(Box::new(e)))?;
        let body = match record {
            Some(r) => {
                Some(serde_json::to_string(r.body).map_err(|e| StoreError::Encode(Box::new(e)))?)
            }
            None => None,
        };
        // The log's order lock before the transaction, held until it is committed.
        let _stream = match record {
            Some(r) => Some(self.log_lock(channel, r.stream).lock().await),
            None => None,
        };
        let mut tx = self.pool().begin().await?;
        conversations::upsert_contact(&mut *tx, channel, &inbound.sender, ghost_user_id).await?;
        customers::link_contact(&mut tx, channel, &inbound.sender.id).await?;
        let conversation_id = conversations::ensure_conversation(
            &mut tx,
            channel,
            &inbound.conversation,
            &inbound.sender.id,
        )
        .await?;
        let id = super::new_id(&mut tx).await?;
        let done = sqlx::query(
            "INSERT INTO inbox (id, channel, account, dedup_key, conversation_id, payload, state, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(channel)
        .bind(&inbound.conversation.account)
        .bind(&inbound.dedup_key)
        .bind(conversation_id)
        .bind(payload)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let fresh = done.rows_affected() == 1;
        if let (true, Some(group)) = (fresh, &inbound.group) {
            for (member, ghost) in group.members.iter().zip(member_ghosts) {
                if member.id == inbound.sender.id {
                    continue;
                }
                conversations::upsert_contact(&mut *tx, channel, member, ghost).await?;
                customers::link_contact(&mut tx, channel, &member.id).await?;
                participants::present(&mut *tx, conversation_id, &member.id).await?;
            }
            // Only their own message makes someone the latest writer (and brings back one an
            // operator removed); a reaction or a receipt only says they are there.
            match inbound.event {
                switchboard_channel::InboundEvent::Message { .. } => {
                    participants::wrote(
                        &mut *tx,
                        conversation_id,
                        &inbound.sender.id,
                        inbound.timestamp_ms,
                    )
                    .await?
                }
                _ => participants::present(&mut *tx, conversation_id, &inbound.sender.id).await?,
            }
        }
        if fresh {
            search::index_inbound(&mut tx, conversation_id, inbound).await?;
        }
        let seq = match (record, &body) {
            (Some(r), Some(body)) => {
                let seq =
                    channel_state::log_append_in(&mut tx, channel, r.stream, r.key, body).await?;
                channel_state::state_put_all(&mut tx, channel, r, seq).await?;
                Some(seq)
            }
            _ => None,
        };
        tx.commit().await?;
        Ok((fresh, seq))
    }

    /// Conversations whose oldest pending inbox event is due now.
    pub async fn inbox_ready(&self, per_channel: i64) -> Result<Vec<(String, i64)>, StoreError> {
        // Up to `per_channel` conversations per channel, oldest head first within a channel and
        // interleaved across channels (every channel's first, then every channel's second, …):
        // the fair order the inbound stage schedules in (src/relay/queue.rs).
        let rows = sqlx::query(
            "SELECT channel, conversation_id FROM (
                 SELECT i.channel, i.conversation_id, i.id,
                        ROW_NUMBER() OVER (PARTITION BY i.channel ORDER BY i.id) AS turn
                 FROM inbox i
                 WHERE i.state = 'pending' AND i.next_attempt_at <= $1
                   AND NOT EXISTS (SELECT 1 FROM inbox j WHERE j.conversation_id = i.conversation_id
                                   AND j.state = 'pending' AND j.id < i.id)
             ) heads
             WHERE turn <= $2
             ORDER BY turn, id",
        )
        .bind(now_ms())
        .bind(per_channel)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("channel")?, r.try_get("conversation_id")?)))
            .collect()
    }

    /// The oldest pending event of a conversation after the row `after` (the one still being
    /// finished while the next is sent; `None`: from the start), if it is due.
    pub async fn inbox_next(
        &self,
        conversation_id: i64,
        after: Option<i64>,
    ) -> Result<Option<InboxRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, conversation_id, channel, payload, attempts, next_attempt_at, received_at FROM inbox
             WHERE conversation_id = $1 AND state = 'pending' AND id > $2 ORDER BY id LIMIT 1",
        )
        .bind(conversation_id)
        .bind(after.unwrap_or(i64::MIN))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        if row.try_get::<i64, _>("next_attempt_at")? > now_ms() {
            return Ok(None);
        }
        let payload: String = row.try_get("payload")?;
        let inbound =
            serde_json::from_str(&payload).map_err(|e| StoreError::Decode(Box::new(e)))?;
        Ok(Some(InboxRow {
            id: row.try_get("id")?,
            conversation_id: row.try_get("conversation_id")?,
            channel: row.try_get("channel")?,
            inbound,
            attempts: row.try_get("attempts")?,
            received_at: row.try_get("received_at")?,
        }))
    }

    /// Redoable ([`Store::redoable`]): an inbox row undone by a crash of the machine is worked
    /// again, and working a row again repeats nothing (its Matrix events go under the same
    /// transaction ids, its bookkeeping is idempotent), as after a crash of the process.
    pub async fn inbox_done(&self, id: i64) -> Result<(), StoreError> {
        self.inbox_set(self.redoable(), id, "done", None, 0).await
    }

    pub async fn inbox_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        self.inbox_set(self.pool(), id, "failed", Some(error), 0)
            .await
    }

    pub async fn inbox_retry(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), StoreError> {
        self.inbox_set(self.pool(), id, "pending", Some(error), next_attempt_at)
            .await
    }

    async fn inbox_set(
        &self,
        pool: &sqlx::AnyPool,
        id: i64,
        state: &str,
        error: Option<&str>,
        next_at: i64,
    ) -> Result<(), StoreError> {
        // Fenced: only the leader under its epoch records what became of an event.
        let mut tx = pool.begin().await?;
        self.check_fence(&mut tx).await?;
        sqlx::query(
            "UPDATE inbox SET state = $1, last_error = COALESCE($2, last_error), next_attempt_at = $3,
             attempts = attempts + (CASE WHEN $2 IS NULL THEN 0 ELSE 1 END) WHERE id = $4",
        )
        .bind(state)
        .bind(error)
        .bind(next_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events still waiting to reach Matrix (for health and tests).
    pub async fn inbox_pending_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM inbox WHERE state = 'pending'")
            .fetch_one(self.pool())
            .await?;
        row.try_get("n")
    }
}
