//! The outbox: operator messages waiting for delivery to their channel, with attempts, backoff
//! and the final outcome. Written in the same database transaction that marks the Matrix event
//! handled, so an event becomes exactly one outbox entry.

use sqlx::Row;
use switchboard_channel::Outbound;

use super::{message_map, now_ms, Store, StoreError};

#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub id: i64,
    pub conversation_id: i64,
    pub event_id: String,
    pub room_id: String,
    pub outbound: Outbound,
    pub attempts: i64,
    /// Times the delivery waited for the bridge's own store ([`Store::outbox_wait`]): not
    /// attempts, but they space the next try.
    pub host_waits: i64,
    /// Remote sends of this entry already made (a long message is several; see
    /// [`crate::relay::outbox_to_channel`]).
    pub steps_done: i64,
    /// When it was queued (ms since the epoch): where relay latency starts.
    pub created_at: i64,
}

/// An item that could not be delivered ([`Store::outbox_dead_letters`]).
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub id: i64,
    pub conversation_id: i64,
    pub event_id: String,
    pub room_id: String,
    pub channel: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub failed_at: i64,
}

impl Store {
    /// Queue an outbound item for a Matrix event, index it for search (a message, by `author`)
    /// and mark the event handled, atomically. An operator's answer (`answer`: its stamp) is
    /// recorded as an `operator_answer` event in the same transaction, and as the
    /// `first_response` too when it is the first since the conversation was created or reopened.
    pub async fn outbox_enqueue(
        &self,
        conversation_id: i64,
        event_id: &str,
        room_id: &str,
        author: &str,
        outbound: &Outbound,
        answer: Option<&super::events::Stamp<'_>>,
    ) -> Result<(), StoreError> {
        let payload =
            serde_json::to_string(outbound).map_err(|e| StoreError::Encode(Box::new(e)))?;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let id = super::new_id(&mut tx).await?;
        sqlx::query(
            "INSERT INTO outbox (id, conversation_id, event_id, room_id, payload, state, next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6, $6) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(conversation_id)
        .bind(event_id)
        .bind(room_id)
        .bind(payload)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        super::search::index_outbound(&mut tx, conversation_id, event_id, author, outbound).await?;
        sqlx::query("UPDATE matrix_events SET state = 'done' WHERE event_id = $1")
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        if let Some(stamp) = answer {
            use super::events::{insert_with_routing, is_first_response, EventKind};
            let first = is_first_response(&mut *tx, conversation_id).await?;
            let new = insert_with_routing(
                &mut *tx,
                conversation_id,
                stamp,
                EventKind::OperatorAnswer,
                Some(&format!("out:{event_id}")),
            )
            .await?;
            if new && first {
                insert_with_routing(
                    &mut *tx,
                    conversation_id,
                    stamp,
                    EventKind::FirstResponse,
                    Some(&format!("first:{event_id}")),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Conversations whose oldest pending outbox item is due now.
    pub async fn outbox_ready(&self, limit: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.conversation_id FROM outbox o
             WHERE o.state = 'pending' AND o.next_attempt_at <= $1
               AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.conversation_id = o.conversation_id
                               AND p.state = 'pending' AND p.id < o.id)
             ORDER BY o.id LIMIT $2",
        )
        .bind(now_ms())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| r.try_get("conversation_id")).collect()
    }

    /// The oldest pending item of a conversation, if it is due.
    pub async fn outbox_next(&self, conversation_id: i64) -> Result<Option<OutboxRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, conversation_id, event_id, room_id, payload, attempts, host_waits, next_attempt_at, steps_done, created_at FROM outbox
             WHERE conversation_id = $1 AND state = 'pending' ORDER BY id LIMIT 1",
        )
        .bind(conversation_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        if row.try_get::<i64, _>("next_attempt_at")? > now_ms() {
            return Ok(None);
        }
        let payload: String = row.try_get("payload")?;
        Ok(Some(OutboxRow {
            id: row.try_get("id")?,
            conversation_id: row.try_get("conversation_id")?,
            event_id: row.try_get("event_id")?,
            room_id: row.try_get("room_id")?,
            outbound: serde_json::from_str(&payload)
                .map_err(|e| StoreError::Decode(Box::new(e)))?,
            attempts: row.try_get("attempts")?,
            host_waits: row.try_get("host_waits")?,
            steps_done: row.try_get("steps_done")?,
            created_at: row.try_get("created_at")?,
        }))
    }

    /// Claim a due item for one sending attempt under this leader's epoch, right before the
    /// remote send: refused ([`super::lease::is_fenced`]) unless this instance still leads, so a
    /// deposed leader that wakes up cannot start a send. `false`: no longer pending (handled).
    ///
    /// On SQLite there is one instance (its lock file) and one drain per conversation, so no one
    /// else can start this send: the claim only reads that the item is still pending, and makes
    /// no commit (an `fsync` on the way to the customer) and no `claimed_epoch`.
    pub async fn outbox_claim(&self, id: i64) -> Result<bool, StoreError> {
        if self.sqlite {
            let pending: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM outbox WHERE id = $1 AND state = 'pending'")
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await?;
            return Ok(pending.is_some());
        }
        let epoch = match self.fence() {
            super::lease::Fence::Leader { epoch, .. } => Some(epoch),
            _ => None,
        };
        let mut tx = self.pool().begin().await?;
        self.check_fence(&mut tx).await?;
        let done =
            sqlx::query("UPDATE outbox SET claimed_epoch = $1 WHERE id = $2 AND state = 'pending'")
                .bind(epoch)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Delivered: record the remote id and map it to the event, atomically. Fenced, like every
    /// outcome below: only the leader under its epoch records one.
    ///
    /// Redoable ([`Store::redoable`]): the channel has already stored, durably, its own record
    /// that the network took the item (the kit's `SentRecord`, the e-mail's `sent:` key, the web
    /// chat's transcript entry under the idempotency key), so an item whose outcome a crash of
    /// the machine undid is sent again only as far as asking the channel, which answers from
    /// that record without a second send, and the outcome is recorded again.
    pub async fn outbox_sent(
        &self,
        row: &OutboxRow,
        remote_id: &str,
        map_event: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.redoable().begin().await?;
        self.check_fence(&mut tx).await?;
        sqlx::query("UPDATE outbox SET state = 'sent', remote_id = $1, attempts = attempts + 1, updated_at = $2 WHERE id = $3")
            .bind(remote_id)
            .bind(now_ms())
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        if map_event {
            message_map::insert(
                &mut *tx,
                row.conversation_id,
                remote_id,
                0,
                &row.event_id,
                message_map::Direction::Out,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One remote send of a several-part entry made: count it and, for a new message, map its
    /// remote id to `event_id` as `part` of it, atomically.
    pub async fn outbox_step_done(
        &self,
        row: &OutboxRow,
        steps_done: i64,
        map: Option<(&str, &str, i64)>, // (remote id, event id, part)
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        self.check_fence(&mut tx).await?;
        sqlx::query("UPDATE outbox SET steps_done = $1, updated_at = $2 WHERE id = $3")
            .bind(steps_done)
            .bind(now_ms())
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        if let Some((remote_id, event_id, part)) = map {
            message_map::insert(
                &mut *tx,
                row.conversation_id,
                remote_id,
                part,
                event_id,
                message_map::Direction::Out,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The channel failed in a way that passes: try again at `next_attempt_at`, one attempt
    /// more.
    pub async fn outbox_retry(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), StoreError> {
        self.outbox_reschedule(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, updated_at = $3 WHERE id = $4",
            id,
            error,
            next_attempt_at,
        )
        .await
    }

    /// The delivery could not go on for the bridge's own store's sake (not the channel's): try
    /// again at `next_attempt_at`, without counting an attempt.
    pub async fn outbox_wait(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), StoreError> {
        self.outbox_reschedule(
            "UPDATE outbox SET host_waits = host_waits + 1, last_error = $1, next_attempt_at = $2, updated_at = $3 WHERE id = $4",
            id,
            error,
            next_attempt_at,
        )
        .await
    }

    /// Fenced: `update` (one of the two above) sets the error and the time of the next try.
    async fn outbox_reschedule(
        &self,
        update: &'static str,
        id: i64,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        self.check_fence(&mut tx).await?;
        sqlx::query(update)
            .bind(error)
            .bind(next_attempt_at)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn outbox_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        self.check_fence(&mut tx).await?;
        sqlx::query("UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = $1, updated_at = $2 WHERE id = $3")
            .bind(error)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Put failed items of a room back in the queue (the `!sb retry` command). Returns how many.
    pub async fn outbox_requeue_failed(&self, room_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $1
             WHERE room_id = $2 AND state = 'failed'",
        )
        .bind(now_ms())
        .bind(room_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
    /// Dead letters: items that could not be delivered and wait for someone to resend them
    /// (newest first, at most `limit`), with their conversation's channel.
    pub async fn outbox_dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, o.conversation_id, o.event_id, o.room_id, o.attempts, o.last_error,
                    o.updated_at, c.channel
             FROM outbox o JOIN conversations c ON c.id = o.conversation_id
             WHERE o.state = 'failed' ORDER BY o.updated_at DESC, o.id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    id: r.try_get("id")?,
                    conversation_id: r.try_get("conversation_id")?,
                    event_id: r.try_get("event_id")?,
                    room_id: r.try_get("room_id")?,
                    channel: r.try_get("channel")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    failed_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Put one dead letter back in the queue; its room when it was one (`None`: no failed item
    /// with that id).
    pub async fn outbox_requeue_one(&self, id: i64) -> Result<Option<String>, StoreError> {
        let room: Option<String> =
            sqlx::query("SELECT room_id FROM outbox WHERE id = $1 AND state = 'failed'")
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .map(|r| r.try_get("room_id"))
                .transpose()?;
        if room.is_none() {
            return Ok(None);
        }
        let done = sqlx::query(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $1
             WHERE id = $2 AND state = 'failed'",
        )
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(room.filter(|_| done.rows_affected() > 0))
    }

    /// How many items wait for delivery and how many are dead letters.
    pub async fn outbox_counts(&self) -> Result<(i64, i64), StoreError> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending') AS pending,
                    (SELECT COUNT(*) FROM outbox WHERE state = 'failed') AS failed",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((r.try_get("pending")?, r.try_get("failed")?))
    }
}
