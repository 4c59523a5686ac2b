//! Conversations continued on another channel (`continued_conversations`): when an answer to a
//! customer who left a live channel (the web chat) goes out by another one (e-mail,
//! [`crate::relay::continued`]), the conversation gets a second key — the one that channel
//! knows it by. A reply arriving under that key is stored in the first conversation
//! ([`continued_under`], read by [`super::conversations::ensure_conversation`]), so it lands in
//! the same room, routing and history.

use sqlx::{Any, Executor, Row};

use super::{Store, StoreError};

/// Where a conversation is continued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continued {
    pub channel: String,
    pub account: String,
    pub chat: String,
    pub address: String,
}

/// The conversation that `channel`'s key (`account`, `chat`) continues, if any.
pub async fn continued_under<'c, E: Executor<'c, Database = Any>>(
    conn: E,
    channel: &str,
    account: &str,
    chat: &str,
) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "SELECT conversation_id FROM continued_conversations
         WHERE channel = $1 AND account = $2 AND chat = $3",
    )
    .bind(channel)
    .bind(account)
    .bind(chat)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some(r) => Some(r.try_get("conversation_id")?),
        None => None,
    })
}

impl Store {
    /// Where `conversation_id` is continued on `channel`, if it is.
    pub async fn continued(
        &self,
        conversation_id: i64,
        channel: &str,
    ) -> Result<Option<Continued>, StoreError> {
        let row = sqlx::query(
            "SELECT channel, account, chat, address FROM continued_conversations
             WHERE conversation_id = $1 AND channel = $2",
        )
        .bind(conversation_id)
        .bind(channel)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(Continued {
                channel: r.try_get("channel")?,
                account: r.try_get("account")?,
                chat: r.try_get("chat")?,
                address: r.try_get("address")?,
            })
        })
        .transpose()
    }

    /// Continue `conversation_id` on `c.channel` under `c`'s key (once: the first one stays).
    /// Returns the one in force.
    pub async fn continue_on(
        &self,
        conversation_id: i64,
        c: &Continued,
    ) -> Result<Continued, StoreError> {
        sqlx::query(
            "INSERT INTO continued_conversations
               (conversation_id, channel, account, chat, address, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(conversation_id)
        .bind(&c.channel)
        .bind(&c.account)
        .bind(&c.chat)
        .bind(&c.address)
        .bind(super::now_ms())
        .execute(self.pool())
        .await?;
        self.continued(conversation_id, &c.channel)
            .await?
            .ok_or_else(|| StoreError::Protocol("a continued conversation vanished".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_continued_conversation_is_found_by_its_second_key() {
        let (_dir, _url, store) = crate::store::temp_store(1).await;
        let c = Continued {
            channel: "email".into(),
            account: "support@example.test".into(),
            chat: "continued.7".into(),
            address: "dora@example.com".into(),
        };
        assert_eq!(store.continue_on(7, &c).await.unwrap(), c);
        let other = Continued {
            chat: "continued.other".into(),
            ..c.clone()
        };
        assert_eq!(
            store.continue_on(7, &other).await.unwrap(),
            c,
            "the first stays"
        );
        let found = continued_under(store.pool(), "email", "support@example.test", "continued.7")
            .await
            .unwrap();
        assert_eq!(found, Some(7));
        assert_eq!(
            continued_under(
                store.pool(),
                "webchat",
                "support@example.test",
                "continued.7"
            )
            .await
            .unwrap(),
            None
        );
    }
}
