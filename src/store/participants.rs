//! The people of group conversations (`conversation_participants`): who wrote in a group or
//! was addressed in it, when each last wrote, and whom an operator removed. Written in the
//! inbox transaction that stores the message ([`super::inbox`]); read when an answer is sent,
//! so it reaches everyone in the group who is still in it ([`Store::participants`]).

use sqlx::{Any, Executor, Row};

use super::{Store, StoreError};

/// `contact_id` wrote in the group at `at_ms`: they are (again) a participant, and the latest
/// writer when nobody wrote later.
pub async fn wrote<'c, E: Executor<'c, Database = Any>>(
    executor: E,
    conversation_id: i64,
    contact_id: &str,
    at_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO conversation_participants (conversation_id, contact_id, last_message_at, removed)
         VALUES ($1, $2, $3, 0)
         ON CONFLICT (conversation_id, contact_id) DO UPDATE SET removed = 0,
           last_message_at = CASE WHEN excluded.last_message_at > conversation_participants.last_message_at
                                  THEN excluded.last_message_at
                                  ELSE conversation_participants.last_message_at END",
    )
    .bind(conversation_id)
    .bind(contact_id)
    .bind(at_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// `contact_id` is in the group without having written (addressed in it, or reacting): a
/// participant unless an operator removed them, and nothing changes for one already known.
pub async fn present<'c, E: Executor<'c, Database = Any>>(
    executor: E,
    conversation_id: i64,
    contact_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO conversation_participants (conversation_id, contact_id, last_message_at, removed)
         VALUES ($1, $2, 0, 0) ON CONFLICT (conversation_id, contact_id) DO NOTHING",
    )
    .bind(conversation_id)
    .bind(contact_id)
    .execute(executor)
    .await?;
    Ok(())
}

impl Store {
    /// The contact ids of a group conversation's participants not removed, whoever wrote last
    /// first (then by how recently they wrote; those who never wrote last, in a stable order).
    /// Empty for a conversation that never was a group.
    pub async fn group_participants(
        &self,
        conversation_id: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT contact_id FROM conversation_participants
             WHERE conversation_id = $1 AND removed = 0
             ORDER BY last_message_at DESC, contact_id",
        )
        .bind(conversation_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| r.try_get("contact_id")).collect()
    }

    /// Whether an operator removed `contact_id` from the group conversation.
    pub async fn participant_removed(
        &self,
        conversation_id: i64,
        contact_id: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT removed FROM conversation_participants
             WHERE conversation_id = $1 AND contact_id = $2",
        )
        .bind(conversation_id)
        .bind(contact_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>("removed"))
            .transpose()?
            .is_some_and(|r| r != 0))
    }

    /// An operator removed `contact_id` from the group conversation (`!sb remove`). Whether
    /// they were in it.
    pub async fn participant_remove(
        &self,
        conversation_id: i64,
        contact_id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE conversation_participants SET removed = 1
             WHERE conversation_id = $1 AND contact_id = $2",
        )
        .bind(conversation_id)
        .bind(contact_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// An operator removed the ghost `ghost_user_id` from the portal `room_id`: the person it
    /// speaks for is no longer answered there (until they write again). Whether it was one.
    pub async fn participant_removed_by_ghost(
        &self,
        room_id: &str,
        ghost_user_id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE conversation_participants SET removed = 1
             WHERE conversation_id IN (SELECT id FROM conversations WHERE room_id = $1)
               AND contact_id IN (SELECT k.contact_id FROM contacts k JOIN conversations c
                                  ON c.channel = k.channel
                                  WHERE c.room_id = $1 AND k.ghost_user_id = $2)",
        )
        .bind(room_id)
        .bind(ghost_user_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
