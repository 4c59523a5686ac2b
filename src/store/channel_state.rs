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
        state_put_in(&mut *self.pool().acquire().await?, channel, key, value).await
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
        let _stream = self.log_lock(channel, stream).lock().await;
        log_append_in(
            &mut *self.pool().acquire().await?,
            channel,
            stream,
            key,
            body,
        )
        .await
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

impl Store {
    /// [`Store::log_append`] with the state values `record` gives for the entry's seq, in one
    /// transaction ([`switchboard_channel::Host::log_append_recorded`]).
    pub async fn log_append_recorded(
        &self,
        channel: &str,
        record: &switchboard_channel::Recorded<'_>,
    ) -> Result<i64, StoreError> {
        let body =
            serde_json::to_string(record.body).map_err(|e| StoreError::Encode(Box::new(e)))?;
        let _stream = self.log_lock(channel, record.stream).lock().await;
        let mut tx = self.pool().begin().await?;
        let seq = log_append_in(&mut tx, channel, record.stream, record.key, &body).await?;
        state_put_all(&mut tx, channel, record, seq).await?;
        tx.commit().await?;
        Ok(seq)
    }
}

/// The state values `record` gives for `seq`, written on `conn`.
pub(super) async fn state_put_all(
    conn: &mut sqlx::AnyConnection,
    channel: &str,
    record: &switchboard_channel::Recorded<'_>,
    seq: i64,
) -> Result<(), StoreError> {
    let state = (record.state)(seq).map_err(|e| StoreError::Encode(Box::new(e)))?;
    for (key, value) in state {
        state_put_in(conn, channel, &key, &value).await?;
    }
    Ok(())
}

/// [`Store::state_put`] on `conn` (in a transaction when `conn` is one).
pub(super) async fn state_put_in(
    conn: &mut sqlx::AnyConnection,
    channel: &str,
    key: &str,
    value: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO channel_state (channel, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value, expires_at = NULL",
    )
    .bind(channel)
    .bind(key)
    .bind(value)
    .execute(conn)
    .await?;
    Ok(())
}

/// [`Store::log_append`] on `conn`; the caller holds the stream's lock ([`Store::log_lock`])
/// until the entry is committed, so that no entry becomes visible after one with a higher seq.
pub(super) async fn log_append_in(
    conn: &mut sqlx::AnyConnection,
    channel: &str,
    stream: &str,
    key: &str,
    body: &str,
) -> Result<i64, StoreError> {
    let id = super::new_id(conn).await?;
    // Above the stream's last seq, in the statement that writes: a transaction that read first
    // and wrote after would, on SQLite, fail at once ("database is locked", not waited out)
    // when another connection committed in between. A new entry says its seq at once; only a
    // key written before is looked up.
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO channel_log (channel, stream, seq, key, body)
         SELECT $1, $2, CASE WHEN MAX(seq) IS NULL OR MAX(seq) < $3 THEN $3 ELSE MAX(seq) + 1 END,
                $4, $5
         FROM channel_log WHERE channel = $1 AND stream = $2
         ON CONFLICT DO NOTHING RETURNING seq",
    )
    .bind(channel)
    .bind(stream)
    .bind(id)
    .bind(key)
    .bind(body)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(seq) = inserted {
        return Ok(seq);
    }
    sqlx::query_scalar(
        "SELECT seq FROM channel_log WHERE channel = $1 AND stream = $2 AND key = $3",
    )
    .bind(channel)
    .bind(stream)
    .bind(key)
    .fetch_one(conn)
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use switchboard_channel::{
        ContactProfile, Content, ConversationKey, HostError, Inbound, InboundEvent, Recorded,
    };

    fn message(id: &str) -> Inbound {
        Inbound {
            conversation: ConversationKey {
                account: "site".into(),
                chat: "visitor-1".into(),
            },
            sender: ContactProfile {
                id: "visitor-1".into(),
                ..Default::default()
            },
            timestamp_ms: 1_700_000_000_000,
            dedup_key: id.into(),
            event: InboundEvent::Message {
                remote_id: id.into(),
                content: Content {
                    text: format!("text of {id}"),
                    ..Default::default()
                },
                reply_to: None,
            },
            addressed_to: None,
            group: None,
        }
    }

    async fn inbox_rows(store: &crate::store::Store, dedup_key: &str) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE dedup_key = $1")
            .bind(dedup_key)
            .fetch_one(store.pool())
            .await
            .expect("count")
    }

    /// A channel's records of an inbound event (its log entry and the state naming the entry's
    /// seq) are stored with the event or not at all; a redelivery stores nothing twice and
    /// answers with the same seq.
    #[tokio::test]
    async fn an_event_and_its_records_are_stored_together_or_not_at_all() {
        let (_dir, _, store) = crate::store::temp_store(4).await;
        let body = serde_json::json!({"text": "text of m1"});
        let state = |seq: i64| Ok(vec![("msg:m1".to_string(), seq.to_string())]);
        let record = Recorded {
            stream: "transcript:visitor-1",
            key: "m1",
            body: &body,
            state: &state,
        };
        let (fresh, seq) = store
            .inbox_insert_recorded("webchat", "@ghost:hs", &[], &message("m1"), Some(&record))
            .await
            .expect("stored");
        let seq = seq.expect("a seq");
        assert!(fresh);
        assert_eq!(inbox_rows(&store, "m1").await, 1);
        let log = store
            .log_read("webchat", "transcript:visitor-1", 0, 10)
            .await
            .expect("log");
        assert_eq!(log, vec![(seq, body.to_string())]);
        assert_eq!(
            store.state_get("webchat", "msg:m1").await.expect("state"),
            Some(seq.to_string())
        );

        // The same event again (the source retried): nothing new, the same seq.
        let again = store
            .inbox_insert_recorded("webchat", "@ghost:hs", &[], &message("m1"), Some(&record))
            .await
            .expect("stored again");
        assert_eq!(again, (false, Some(seq)));
        assert_eq!(inbox_rows(&store, "m1").await, 1);
        let log = store
            .log_read("webchat", "transcript:visitor-1", 0, 10)
            .await
            .expect("log");
        assert_eq!(log.len(), 1);

        // Records that cannot be made: neither the event nor its entry is stored.
        let broken = |_: i64| Err(HostError::Store("cannot encode".into()));
        let record = Recorded {
            stream: "transcript:visitor-1",
            key: "m2",
            body: &body,
            state: &broken,
        };
        store
            .inbox_insert_recorded("webchat", "@ghost:hs", &[], &message("m2"), Some(&record))
            .await
            .expect_err("refused");
        assert_eq!(
            inbox_rows(&store, "m2").await,
            0,
            "the event without its records"
        );
        let log = store
            .log_read("webchat", "transcript:visitor-1", 0, 10)
            .await
            .expect("log");
        assert_eq!(log.len(), 1, "an entry without its event: {log:?}");
    }

    /// Appends with their state, on many streams at once beside other writers, all succeed on
    /// SQLite: none reads before it writes in its transaction, which would fail at once when
    /// another connection committed in between (SQLITE_BUSY_SNAPSHOT, "database is locked").
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn appends_with_state_beside_other_writers_all_succeed() {
        let (_dir, _, store) = crate::store::temp_store(4).await;
        let store = Arc::new(store);
        let mut tasks = Vec::new();
        for w in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let body = serde_json::json!({"writer": w});
                for i in 0..25 {
                    let stream = format!("transcript:visitor-{w}");
                    let key = format!("a{i}");
                    let state = |seq: i64| Ok(vec![(format!("msg:{w}.{i}"), seq.to_string())]);
                    let record = Recorded {
                        stream: &stream,
                        key: &key,
                        body: &body,
                        state: &state,
                    };
                    store.log_append_recorded("webchat", &record).await?;
                    store
                        .state_put("webchat", &format!("other:{w}"), &i.to_string())
                        .await?;
                }
                Ok::<_, crate::store::StoreError>(())
            }));
        }
        for task in tasks {
            task.await.expect("task").expect("every append stored");
        }
        for w in 0..8 {
            let log = store
                .log_read("webchat", &format!("transcript:visitor-{w}"), 0, 100)
                .await
                .expect("log");
            assert_eq!(log.len(), 25);
            assert!(
                log.windows(2).all(|p| p[0].0 < p[1].0),
                "seqs rise: {log:?}"
            );
        }
    }

    /// A log entry and the state naming its seq are written together or not at all.
    #[tokio::test]
    async fn a_log_entry_and_its_state_are_stored_together_or_not_at_all() {
        let (_dir, _, store) = crate::store::temp_store(4).await;
        let body = serde_json::json!({"text": "an agent's answer"});
        let broken = |_: i64| Err(HostError::Store("cannot encode".into()));
        let record = Recorded {
            stream: "transcript:visitor-1",
            key: "a1",
            body: &body,
            state: &broken,
        };
        store
            .log_append_recorded("webchat", &record)
            .await
            .expect_err("refused");
        let log = store
            .log_read("webchat", "transcript:visitor-1", 0, 10)
            .await
            .expect("log");
        assert!(log.is_empty(), "an entry without its state: {log:?}");

        let state = |seq: i64| Ok(vec![("msg:a1".to_string(), seq.to_string())]);
        let record = Recorded {
            state: &state,
            ..record
        };
        let seq = store
            .log_append_recorded("webchat", &record)
            .await
            .expect("stored");
        assert_eq!(
            store.state_get("webchat", "msg:a1").await.expect("state"),
            Some(seq.to_string())
        );
        // Idempotent by key, as a plain append.
        assert_eq!(
            store
                .log_append_recorded("webchat", &record)
                .await
                .expect("again"),
            seq
        );
    }

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
