//! Channels' own durable state: a key-value map and append-only logs, each scoped to one channel.

use sqlx::Row;

use super::{next_id, Store, StoreError};

impl Store {
    pub async fn state_get(&self, channel: &str, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM channel_state WHERE channel = $1 AND key = $2")
            .bind(channel)
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.try_get("value")).transpose()
    }

    pub async fn state_put(&self, channel: &str, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO channel_state (channel, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value",
        )
        .bind(channel)
        .bind(key)
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Append an entry; when `key` is already in the stream, return the existing entry's seq.
    pub async fn log_append(
        &self,
        channel: &str,
        stream: &str,
        key: &str,
        body: &str,
    ) -> Result<i64, StoreError> {
        sqlx::query(
            "INSERT INTO channel_log (channel, stream, seq, key, body) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(channel)
        .bind(stream)
        .bind(next_id())
        .bind(key)
        .bind(body)
        .execute(self.pool())
        .await?;
        let row = sqlx::query(
            "SELECT seq FROM channel_log WHERE channel = $1 AND stream = $2 AND key = $3",
        )
        .bind(channel)
        .bind(stream)
        .bind(key)
        .fetch_one(self.pool())
        .await?;
        row.try_get("seq")
    }

    pub async fn log_read(
        &self,
        channel: &str,
        stream: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, body FROM channel_log WHERE channel = $1 AND stream = $2 AND seq > $3
             ORDER BY seq LIMIT $4",
        )
        .bind(channel)
        .bind(stream)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("seq")?, r.try_get("body")?)))
            .collect()
    }
}
