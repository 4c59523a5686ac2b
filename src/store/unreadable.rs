//! Unreadable input that names no conversation ([`switchboard_channel::Unreadable`]): kept raw
//! before its channel acknowledges it, and marked once its notice reached the admin room.

use sqlx::Row;
use switchboard_channel::Unreadable;

use super::{now_ms, Store, StoreError};

/// One kept input whose notice is still to be posted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadableRow {
    pub id: i64,
    pub channel: String,
    pub input: Unreadable,
}

impl Store {
    /// Keep an unreadable input; `false` when the same one (channel and dedup key) was kept before.
    pub async fn unreadable_insert(
        &self,
        channel: &str,
        input: &Unreadable,
    ) -> Result<bool, StoreError> {
        let id = self.new_id().await?;
        let done = sqlx::query(
            "INSERT INTO unreadable_input (id, channel, dedup_key, what, reason, raw, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(channel)
        .bind(&input.dedup_key)
        .bind(&input.what)
        .bind(&input.reason)
        .bind(&input.raw)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Kept inputs whose notice has not been posted yet, oldest first.
    pub async fn unreadable_unposted(&self, limit: i64) -> Result<Vec<UnreadableRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, channel, dedup_key, what, reason, raw, received_at FROM unreadable_input
             WHERE posted_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(UnreadableRow {
                    id: r.try_get("id")?,
                    channel: r.try_get("channel")?,
                    input: Unreadable {
                        dedup_key: r.try_get("dedup_key")?,
                        conversation: None,
                        sender: None,
                        timestamp_ms: r.try_get("received_at")?,
                        what: r.try_get("what")?,
                        reason: r.try_get("reason")?,
                        raw: r.try_get("raw")?,
                    },
                })
            })
            .collect()
    }

    pub async fn unreadable_mark_posted(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE unreadable_input SET posted_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forget inputs whose notice was posted before `before_ms`; those still to be posted stay.
    pub async fn prune_unreadable(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM unreadable_input WHERE posted_at IS NOT NULL AND posted_at < $1",
        )
        .bind(before_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::super::temp_store;
    use super::*;

    #[tokio::test]
    async fn kept_once_and_posted_once() {
        let (_dir, _url, store) = temp_store(1).await;
        let input = Unreadable::new("k1", "a Viber callback", "no sender", b"{\"x\":1}", 7);
        assert!(store
            .unreadable_insert("viber", &input)
            .await
            .expect("insert"));
        assert!(!store
            .unreadable_insert("viber", &input)
            .await
            .expect("again"));
        assert!(store
            .unreadable_insert("vk", &input)
            .await
            .expect("other channel"));
        let rows = store.unreadable_unposted(10).await.expect("unposted");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].input.raw, "{\"x\":1}");
        store
            .unreadable_mark_posted(rows[0].id)
            .await
            .expect("mark");
        assert_eq!(
            store.unreadable_unposted(10).await.expect("unposted").len(),
            1
        );
        // Pruning forgets only what was posted before the cut-off, never what waits for its notice.
        assert_eq!(store.prune_unreadable(0).await.expect("prune"), 0);
        assert_eq!(
            store.prune_unreadable(now_ms() + 1).await.expect("prune"),
            1
        );
        assert_eq!(
            store.unreadable_unposted(10).await.expect("unposted").len(),
            1
        );
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM unreadable_input")
            .fetch_one(store.pool())
            .await
            .expect("count");
        assert_eq!(left, 1);
    }
}
