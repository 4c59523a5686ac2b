//! Channels' own durable state: a key-value map and append-only logs, each scoped to one channel.

use sqlx::Row;

use super::{Store, StoreError};

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
             ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value, expires_at = NULL",
        )
        .bind(channel)
        .bind(key)
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Store `value` under `key` unless a value is there already; the value stored now either
    /// way. Atomic: of instances racing on one store, every one gets the first writer's value
    /// (a per-installation secret made by two instances starting at once is one secret).
    pub async fn state_put_if_absent(
        &self,
        channel: &str,
        key: &str,
        value: &str,
    ) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO channel_state (channel, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (channel, key) DO NOTHING",
        )
        .bind(channel)
        .bind(key)
        .bind(value)
        .execute(self.pool())
        .await?;
        let stored: String =
            sqlx::query_scalar("SELECT value FROM channel_state WHERE channel = $1 AND key = $2")
                .bind(channel)
                .bind(key)
                .fetch_one(self.pool())
                .await?;
        Ok(stored)
    }

    /// Write a value that is deleted at `expires_at` (ms) unless [`Store::state_put`] writes it
    /// again before.
    pub async fn state_put_expiring(
        &self,
        channel: &str,
        key: &str,
        value: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO channel_state (channel, key, value, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value,
                                                      expires_at = excluded.expires_at",
        )
        .bind(channel)
        .bind(key)
        .bind(value)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Delete the state values whose time ran out before `now_ms`; how many.
    pub async fn prune_expired_state(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM channel_state WHERE expires_at IS NOT NULL AND expires_at < $1",
        )
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Append an entry; when `key` is already in the stream, return the existing entry's seq.
    ///
    /// Readers page through a stream with `seq > after`, so an entry must never become visible
    /// after one with a higher seq: appends to one stream are serialised (seq taken and row
    /// committed under one lock), and a seq is always above the stream's last one, whatever the
    /// clock did across a restart.
    pub async fn log_append(
        &self,
        channel: &str,
        stream: &str,
        key: &str,
        body: &str,
    ) -> Result<i64, StoreError> {
        {
            let _stream = self.log_lock(channel, stream).lock().await;
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(seq) FROM channel_log WHERE channel = $1 AND stream = $2",
            )
            .bind(channel)
            .bind(stream)
            .fetch_one(self.pool())
            .await?;
            let id = self.new_id().await?;
            let seq = last.map_or(id, |last| id.max(last + 1));
            // A new entry says its seq at once; only a key written before is looked up.
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO channel_log (channel, stream, seq, key, body) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING RETURNING seq",
            )
            .bind(channel)
            .bind(stream)
            .bind(seq)
            .bind(key)
            .bind(body)
            .fetch_optional(self.pool())
            .await?;
            if let Some(seq) = inserted {
                return Ok(seq);
            }
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    /// Instances starting at once on one store each make a secret and store it if none is
    /// there: all of them end up with the same one, the first writer's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_writers_of_an_absent_value_all_get_the_first_one() {
        let (_dir, _, store) = crate::store::temp_store(4).await;
        let store = Arc::new(store);
        let mut racers = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            racers.push(tokio::spawn(async move {
                store
                    .state_put_if_absent("webchat", "session_key", &format!("key-{i}"))
                    .await
                    .expect("put if absent")
            }));
        }
        let mut got = Vec::new();
        for racer in racers {
            got.push(racer.await.expect("racer"));
        }
        let stored = store
            .state_get("webchat", "session_key")
            .await
            .expect("get")
            .expect("stored");
        assert!(
            got.iter().all(|v| *v == stored),
            "racers got {got:?}, the store holds {stored}"
        );
        // A value already there is kept, not replaced.
        assert_eq!(
            store
                .state_put_if_absent("webchat", "session_key", "later")
                .await
                .expect("again"),
            stored
        );
    }

    /// Many writers append to one stream at once while a reader pages with `seq > after`, as
    /// the web chat's widget does: the reader ends up with every entry, none skipped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_reader_paging_by_seq_never_skips_a_concurrent_append() {
        let (_dir, _, store) = crate::store::temp_store(4).await;
        let store = Arc::new(store);
        const WRITERS: usize = 8;
        const EACH: usize = 40;
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..EACH {
                    store
                        .log_append("chat", "visitor", &format!("{w}-{i}"), "{}")
                        .await
                        .expect("append");
                }
            }));
        }
        let mut seen = std::collections::HashSet::new();
        let mut after = 0;
        let mut writing = true;
        while writing || seen.len() < WRITERS * EACH {
            writing = !writers.iter().all(|w| w.is_finished());
            let page = store
                .log_read("chat", "visitor", after, 1000)
                .await
                .expect("read");
            for (seq, _) in &page {
                seen.insert(*seq);
                after = after.max(*seq);
            }
            if !writing && page.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        for w in writers {
            w.await.expect("writer");
        }
        assert_eq!(seen.len(), WRITERS * EACH, "the reader skipped entries");
    }
}
