//! Contacts (customer identities and their ghosts) and conversations (portals).

use sqlx::{Any, Executor, Row};

use super::{now_ms, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    pub id: i64,
    pub channel: String,
    pub account: String,
    pub chat: String,
    pub contact_id: String,
    pub room_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub channel: String,
    pub contact_id: String,
    pub ghost_user_id: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub registered: bool,
    /// The display name last set on the homeserver.
    pub synced_name: Option<String>,
    /// The customer's avatar, as the channel last reported it.
    pub avatar: Option<String>,
    /// The avatar last set on the ghost.
    pub synced_avatar: Option<String>,
}

/// `SELECT … FROM conversations WHERE <condition>` with the columns [`conversation`] reads.
macro_rules! select_conversation {
    ($cond:literal) => {
        concat!(
            "SELECT id, channel, account, chat, contact_id, room_id FROM conversations WHERE ",
            $cond
        )
    };
}

pub(super) fn conversation_row(row: &sqlx::any::AnyRow) -> Result<Conversation, StoreError> {
    Ok(Conversation {
        id: row.try_get("id")?,
        channel: row.try_get("channel")?,
        account: row.try_get("account")?,
        chat: row.try_get("chat")?,
        contact_id: row.try_get("contact_id")?,
        room_id: row.try_get("room_id")?,
    })
}

/// Insert or refresh a contact's profile (what the channel last told us).
pub async fn upsert_contact<'c, E: Executor<'c, Database = Any>>(
    executor: E,
    channel: &str,
    profile: &switchboard_channel::ContactProfile,
    ghost_user_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO contacts (channel, contact_id, ghost_user_id, display_name, email, phone, avatar)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (channel, contact_id) DO UPDATE SET
           display_name = COALESCE(excluded.display_name, contacts.display_name),
           email = COALESCE(excluded.email, contacts.email),
           phone = COALESCE(excluded.phone, contacts.phone),
           avatar = COALESCE(excluded.avatar, contacts.avatar)",
    )
    .bind(channel)
    .bind(&profile.id)
    .bind(ghost_user_id)
    .bind(profile.display_name.as_deref())
    .bind(profile.email.as_deref())
    .bind(profile.phone.as_deref())
    .bind(profile.avatar.as_ref().map(|a| a.0.as_str()))
    .execute(executor)
    .await?;
    Ok(())
}

/// The conversation for a remote chat, created when new. Returns its id.
pub async fn ensure_conversation(
    conn: &mut sqlx::AnyConnection,
    channel: &str,
    key: &switchboard_channel::ConversationKey,
    contact_id: &str,
) -> Result<i64, StoreError> {
    // A key another conversation is continued under (a web chat answered by e-mail): the
    // customer's reply belongs there.
    if let Some(id) =
        super::continued::continued_under(&mut *conn, channel, &key.account, &key.chat).await?
    {
        return Ok(id);
    }
    // Known already (every message after a conversation's first): no id drawn, no insert.
    if let Some(id) = conversation_under(&mut *conn, channel, key).await? {
        return Ok(id);
    }
    let id = super::new_id(&mut *conn).await?;
    sqlx::query(
        "INSERT INTO conversations (id, channel, account, chat, contact_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (channel, account, chat) DO NOTHING",
    )
    .bind(id)
    .bind(channel)
    .bind(&key.account)
    .bind(&key.chat)
    .bind(contact_id)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    // Ours, or the one a concurrent writer inserted first.
    Ok(conversation_under(&mut *conn, channel, key)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?)
}

/// The conversation stored for a remote chat, if any.
async fn conversation_under(
    conn: &mut sqlx::AnyConnection,
    channel: &str,
    key: &switchboard_channel::ConversationKey,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM conversations WHERE channel = $1 AND account = $2 AND chat = $3",
    )
    .bind(channel)
    .bind(&key.account)
    .bind(&key.chat)
    .fetch_optional(&mut *conn)
    .await?)
}

impl Store {
    pub async fn conversation(&self, id: i64) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query(select_conversation!("id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(conversation_row).transpose()
    }

    pub async fn conversation_by_room(
        &self,
        room_id: &str,
    ) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query(select_conversation!("room_id = $1"))
            .bind(room_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(conversation_row).transpose()
    }

    pub async fn conversation_by_key(
        &self,
        channel: &str,
        key: &switchboard_channel::ConversationKey,
    ) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query(select_conversation!(
            "channel = $1 AND account = $2 AND chat = $3"
        ))
        .bind(channel)
        .bind(&key.account)
        .bind(&key.chat)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(conversation_row).transpose()
    }

    pub async fn set_room(&self, conversation_id: i64, room_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE conversations SET room_id = $1 WHERE id = $2")
            .bind(room_id)
            .bind(conversation_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Record a customer message: its time as the channel gave it (never moves backwards:
    /// events may be replayed) and, in the same transaction, its `customer_message` event
    /// (once per `dedup` key, however often it is replayed), and the Matrix events it became
    /// (`mapped`: its remote id and its events in part order) in the message map.
    pub async fn note_customer_message(
        &self,
        conversation_id: i64,
        at_ms: i64,
        stamp: &super::events::Stamp<'_>,
        dedup: &str,
        mapped: (&str, &[String]),
    ) -> Result<(), StoreError> {
        // Redoable: until the inbox row is done (a later commit) the message is sent again
        // under the same transaction ids, the homeserver answers with the same events, and
        // this is written again (idempotent by message map key and `dedup`).
        let mut tx = self.redoable().begin().await?;
        let (remote_id, events) = mapped;
        for (part, event_id) in events.iter().enumerate() {
            super::message_map::insert(
                &mut *tx,
                conversation_id,
                remote_id,
                part as i64,
                event_id,
                super::message_map::Direction::In,
            )
            .await?;
        }
        sqlx::query(
            "UPDATE conversations SET last_customer_message_at = $1
             WHERE id = $2 AND (last_customer_message_at IS NULL OR last_customer_message_at < $1)",
        )
        .bind(at_ms)
        .bind(conversation_id)
        .execute(&mut *tx)
        .await?;
        super::events::insert_with_routing(
            &mut *tx,
            conversation_id,
            stamp,
            super::events::EventKind::CustomerMessage,
            Some(dedup),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// When the customer last wrote, if ever (ms since the epoch).
    pub async fn last_customer_message_at(
        &self,
        conversation_id: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT last_customer_message_at FROM conversations WHERE id = $1")
            .bind(conversation_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row
            .map(|r| r.try_get::<Option<i64>, _>("last_customer_message_at"))
            .transpose()?
            .flatten())
    }

    pub async fn count_conversations(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM conversations")
            .fetch_one(self.pool())
            .await?;
        row.try_get("n")
    }

    pub async fn contact(
        &self,
        channel: &str,
        contact_id: &str,
    ) -> Result<Option<Contact>, StoreError> {
        let row = sqlx::query(
            "SELECT channel, contact_id, ghost_user_id, display_name, email, phone, registered, synced_name,
                    avatar, synced_avatar
             FROM contacts WHERE channel = $1 AND contact_id = $2",
        )
        .bind(channel)
        .bind(contact_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Contact {
            channel: row.try_get("channel")?,
            contact_id: row.try_get("contact_id")?,
            ghost_user_id: row.try_get("ghost_user_id")?,
            display_name: row.try_get("display_name")?,
            email: row.try_get("email")?,
            phone: row.try_get("phone")?,
            registered: row.try_get::<i64, _>("registered")? != 0,
            synced_name: row.try_get("synced_name")?,
            avatar: row.try_get("avatar")?,
            synced_avatar: row.try_get("synced_avatar")?,
        }))
    }

    /// The ghost carries this avatar.
    pub async fn contact_avatar_synced(
        &self,
        channel: &str,
        contact_id: &str,
        avatar: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE contacts SET synced_avatar = $1 WHERE channel = $2 AND contact_id = $3",
        )
        .bind(avatar)
        .bind(channel)
        .bind(contact_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The ghost exists on the homeserver with this display name.
    pub async fn contact_synced(
        &self,
        channel: &str,
        contact_id: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE contacts SET registered = 1, synced_name = $1 WHERE channel = $2 AND contact_id = $3")
            .bind(name)
            .bind(channel)
            .bind(contact_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
