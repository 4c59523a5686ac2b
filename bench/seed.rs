//! Fills a stopped bridge's SQLite store with conversations that look like finished ones, for
//! the idle-memory and start-time measurements.
//!
//! Each seeded conversation is a web chat visitor with one message each way, so every table the
//! bridge keeps gets its share: the contact (ghost registered and named), the conversation with a
//! (fake) portal room id, one inbox row done, one outbox row sent, one Matrix event handled, two
//! `message_map` rows, and the web chat's own records (visitor, conversation marker, two message
//! records, two transcript entries). The rows are generated inside SQLite with a recursive CTE,
//! so a hundred thousand conversations (1.3 million rows) take seconds.
//!
//! Seeded ids are small integers (real ones are microsecond timestamps) and visitor ids start
//! with `5eed`, so seeding again tops up to a new total without touching real rows.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Row};

/// Tops the store at `database_url` (a `sqlite://` URL) up to `total` conversations. Returns how
/// many were added and how long it took.
pub async fn seed_conversations(database_url: &str, total: u64) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let options = SqliteConnectOptions::from_str(database_url)
        .with_context(|| format!("parsing {database_url}"))?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .context("opening the bridge's store")?;
    let existing: i64 = sqlx::query("SELECT COUNT(*) AS n FROM conversations")
        .fetch_one(&mut conn)
        .await?
        .try_get("n")?;
    let seeded: i64 =
        sqlx::query("SELECT COALESCE(MAX(id), 0) AS n FROM conversations WHERE chat LIKE '5eed%'")
            .fetch_one(&mut conn)
            .await?
            .try_get("n")?;
    let account: String =
        sqlx::query("SELECT account FROM conversations WHERE channel = 'webchat' LIMIT 1")
            .fetch_optional(&mut conn)
            .await?
            .map(|r| r.try_get("account"))
            .transpose()?
            .unwrap_or_else(|| "website".to_string());
    let want = total as i64 - existing;
    if want <= 0 {
        return Ok((0, started.elapsed()));
    }
    let (from, to) = (seeded + 1, seeded + want);
    let now = switchboard::store::now_ms();

    // `n(i)`: the seeded conversation numbers; `v`: the derived ids each statement needs.
    let cte = "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2),
               v AS (SELECT i, printf('5eed%012x', i) AS vid, printf('%064x', i) AS hash,
                            printf('!seed%d', i) AS room, ?3 AS account, ?4 AS now FROM n)";
    let statements: [&str; 10] = [
        "INSERT INTO contacts (channel, contact_id, ghost_user_id, display_name, email, phone, registered, synced_name)
         SELECT 'webchat', vid, '@sb_webchat_' || vid || ':localhost', 'Seed ' || i, 'seed' || i || '@example.com',
                NULL, 1, 'Seed ' || i FROM v",
        "INSERT INTO conversations (id, channel, account, chat, contact_id, room_id, created_at)
         SELECT i, 'webchat', account, vid, vid, room, now FROM v",
        "INSERT INTO inbox (id, channel, account, dedup_key, conversation_id, payload, state, attempts, next_attempt_at, received_at)
         SELECT i, 'webchat', account, 'v.' || vid || '.c1', i,
                '{\"seeded\":true}', 'done', 0, 0, now FROM v",
        "INSERT INTO matrix_events (event_id, seq, room_id, payload, state, received_at)
         SELECT '$seed-out-' || i, i, room, '{\"seeded\":true}', 'done', now FROM v",
        "INSERT INTO outbox (id, conversation_id, event_id, room_id, payload, state, attempts, next_attempt_at, remote_id, created_at, updated_at)
         SELECT i, i, '$seed-out-' || i, room, '{\"seeded\":true}', 'sent', 1, now, 'a.seed' || i, now, now FROM v",
        "INSERT INTO message_map (conversation_id, remote_id, part, event_id, direction)
         SELECT i, 'v.' || vid || '.c1', 0, '$seed-in-' || i, 'in' FROM v
         UNION ALL SELECT i, 'a.seed' || i, 0, '$seed-out-' || i, 'out' FROM v",
        "INSERT INTO channel_state (channel, key, value)
         SELECT 'webchat', 'chat:' || vid, hash FROM v
         UNION ALL SELECT 'webchat', 'visitor:' || hash,
                printf('{\"id\":\"%s\",\"name\":\"Seed %d\",\"email\":\"seed%d@example.com\",\"created_ms\":%d}', vid, i, i, now) FROM v",
        "INSERT INTO channel_state (channel, key, value)
         SELECT 'webchat', 'msg:v.' || vid || '.c1', printf('{\"visitor\":\"%s\",\"from\":\"visitor\",\"seq\":%d,\"deleted\":false}', vid, 2 * i) FROM v
         UNION ALL SELECT 'webchat', 'msg:a.seed' || i, printf('{\"visitor\":\"%s\",\"from\":\"agent\",\"seq\":%d,\"deleted\":false}', vid, 2 * i + 1) FROM v",
        "INSERT INTO channel_log (channel, stream, seq, key, body)
         SELECT 'webchat', 'conv:' || vid, 2 * i, 'v.' || vid || '.c1',
                printf('{\"type\":\"message\",\"id\":\"v.%s.c1\",\"from\":\"visitor\",\"text\":\"Hello, where is my order %d?\",\"ts\":%d}', vid, i, now) FROM v",
        "INSERT INTO channel_log (channel, stream, seq, key, body)
         SELECT 'webchat', 'conv:' || vid, 2 * i + 1, 'out.a.seed' || i,
                printf('{\"type\":\"message\",\"id\":\"a.seed%d\",\"from\":\"agent\",\"text\":\"It left the warehouse today.\",\"ts\":%d}', i, now) FROM v",
    ];
    let mut tx = conn.begin().await?;
    for body in statements {
        // Built from the constants above only.
        let sql = sqlx::AssertSqlSafe(format!("{cte} {body}"));
        sqlx::query(sql)
            .bind(from)
            .bind(to)
            .bind(&account)
            .bind(now)
            .execute(&mut *tx)
            .await
            .with_context(|| {
                format!(
                    "seeding: {}",
                    body.split_whitespace()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            })?;
    }
    tx.commit().await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok((want as u64, started.elapsed()))
}

/// Tops the store at `database_url` (`sqlite://` or `postgres://`) up with `conversations`
/// finished web chat conversations of `per_conversation` messages each (alternately the
/// visitor's and an operator's, the first one the visitor's), for the growth rounds: history
/// the relay must not slow down with.
///
/// Every table the relay touches for a message gets its rows, as the bridge writes them: the
/// contact and the conversation (with a fake portal room id); per visitor message an inbox row
/// (done); per operator message a Matrix event (done) and an outbox row (sent); per message a
/// `message_map` row, a search document (indexed by the FTS5 triggers on SQLite, the GIN index
/// on PostgreSQL), the web chat's message record and transcript entry; per conversation the
/// web chat's visitor and conversation markers and a conversation event (`created`; per
/// message `customer_message` or `operator_answer`, marked as already counted in the report
/// figures, whose own tables are not seeded). The rows
/// are generated inside the database (a recursive CTE on SQLite, `generate_series` on
/// PostgreSQL) in one transaction. Returns (rows written, time taken).
///
/// Seeded visitor ids start with `6eed`; ids are small integers, below the real ones on SQLite
/// (microsecond timestamps) and above the sequence `switchboard_ids` on PostgreSQL (which the
/// bridge moves past the highest id at start), so seeding again adds after the last seeded
/// conversation.
pub async fn seed_history(
    database_url: &str,
    conversations: u64,
    per_conversation: u64,
) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let sqlite = database_url.starts_with("sqlite:");
    let mut conn = if sqlite {
        let options = SqliteConnectOptions::from_str(database_url)
            .with_context(|| format!("parsing {database_url}"))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        AnyConn::Sqlite(
            sqlx::SqliteConnection::connect_with(&options)
                .await
                .context("opening the bridge's store")?,
        )
    } else {
        AnyConn::Pg(
            sqlx::PgConnection::connect(database_url)
                .await
                .context("opening the bridge's store")?,
        )
    };
    let per = per_conversation.max(1) as i64;
    let first: i64 = conn
        .scalar("SELECT COALESCE(MAX(id), 0) FROM conversations WHERE chat LIKE '6eed%'")
        .await?;
    // On PostgreSQL the bridge's ids come from the sequence `switchboard_ids` (small numbers):
    // seeded ones start above it (the bridge moves it past them at its next start).
    let first = if sqlite {
        first
    } else {
        first.max(
            conn.scalar("SELECT last_value FROM switchboard_ids")
                .await?
                + 1_000,
        )
    };
    let account: String = conn
        .text(
            "SELECT COALESCE(MAX(account), 'website') FROM conversations WHERE channel = 'webchat'",
        )
        .await?;
    // Conversation numbers `from..=to`; conversation `i` has id `i` and its messages have ids
    // (and sequence numbers) `i * per + j`, j < per: disjoint from the conversation ids as long
    // as per >= 2 (a conversation's id is only a key in `conversations`).
    let (from, to) = (first + 1, first + conversations as i64);
    let now = switchboard::store::now_ms();
    let series = |lo: &str, hi: &str| {
        if sqlite {
            format!(
                "WITH RECURSIVE s(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM s WHERE i < {hi})"
            )
        } else {
            format!("WITH s(i) AS (SELECT generate_series(({lo})::bigint, ({hi})::bigint))")
        }
    };
    let hex12 = |col: &str| {
        if sqlite {
            format!("printf('%012x', {col})")
        } else {
            format!("lpad(to_hex({col}), 12, '0')")
        }
    };
    let hex64 = if sqlite {
        "printf('%064x', i)"
    } else {
        "lpad(to_hex(i), 64, '0')"
    };
    // `c`: one row per conversation; `m`: one per message, `j` its number in the conversation
    // (even: the visitor's, `rid` its web chat id; odd: an operator's, `eid` its event).
    let conv_cte = format!(
        "{}, c AS (SELECT i, '6eed' || {} AS vid, {hex64} AS hash, '!hist' || i || ':seed' AS room,
                          CAST($3 AS TEXT) AS account, CAST($4 AS BIGINT) AS now,
                          CAST($5 AS BIGINT) AS per FROM s)",
        series("$1", "$2"),
        hex12("i"),
    );
    let msg_cte = format!(
        "{}, m0 AS (SELECT i / $5 AS cv, i % $5 AS j, i AS k FROM s),
         m AS (SELECT cv AS i, j, k, '6eed' || {hex} AS vid, '!hist' || cv || ':seed' AS room,
                      CASE WHEN j % 2 = 0 THEN 'v.6eed' || {hex} || '.h' || j ELSE 'a.hist' || k END AS rid,
                      '$hist-' || k AS eid, CAST($3 AS TEXT) AS account,
                      CAST($4 AS BIGINT) - ($2 * $5 - k) * 1000 AS ts FROM m0)",
        series("$1 * $5", "$2 * $5 + $5 - 1"),
        hex = hex12("cv"),
    );
    let conv_statements = [
        "INSERT INTO contacts (channel, contact_id, ghost_user_id, display_name, email, phone, registered, synced_name)
         SELECT 'webchat', vid, '@sb_webchat_' || vid || ':localhost', 'History ' || i, 'history' || i || '@example.com',
                NULL, 1, 'History ' || i FROM c",
        "INSERT INTO conversations (id, channel, account, chat, contact_id, room_id, created_at)
         SELECT i, 'webchat', account, vid, vid, room, now FROM c",
        "INSERT INTO channel_state (channel, key, value)
         SELECT 'webchat', 'chat:' || vid, hash FROM c
         UNION ALL SELECT 'webchat', 'visitor:' || hash,
                '{\"id\":\"' || vid || '\",\"name\":\"History ' || i || '\",\"email\":\"history' || i || '@example.com\",\"created_ms\":' || now || '}' FROM c",
        "INSERT INTO conversation_events (id, conversation_id, at, kind, actor, team, owner, detail, dedup, figured)
         SELECT i, i, now - 86400000, 'created', NULL, NULL, NULL, NULL, NULL, 1 FROM c",
    ];
    let msg_statements = [
        "INSERT INTO inbox (id, channel, account, dedup_key, conversation_id, payload, state, attempts, next_attempt_at, received_at)
         SELECT k, 'webchat', account, rid, i, '{\"seeded\":true}', 'done', 0, 0, ts FROM m WHERE j % 2 = 0",
        "INSERT INTO matrix_events (event_id, seq, room_id, payload, state, received_at)
         SELECT eid, k, room, '{\"seeded\":true}', 'done', ts FROM m WHERE j % 2 = 1",
        "INSERT INTO outbox (id, conversation_id, event_id, room_id, payload, state, attempts, next_attempt_at, remote_id, created_at, updated_at)
         SELECT k, i, eid, room, '{\"seeded\":true}', 'sent', 1, ts, rid, ts, ts FROM m WHERE j % 2 = 1",
        // Ids above the conversations' `created` events (`i`); `figured`: the report figures of
        // a store's past are long counted (a start-up would otherwise backfill them all).
        "INSERT INTO conversation_events (id, conversation_id, at, kind, actor, team, owner, detail, dedup, figured)
         SELECT ($2 + 1) * $5 + k, i, ts, CASE WHEN j % 2 = 0 THEN 'customer_message' ELSE 'operator_answer' END,
                CASE WHEN j % 2 = 0 THEN NULL ELSE '@alice:localhost' END, NULL, NULL, NULL, rid, 1 FROM m",
        "INSERT INTO message_map (conversation_id, remote_id, part, event_id, direction)
         SELECT i, rid, 0, eid, CASE WHEN j % 2 = 0 THEN 'in' ELSE 'out' END FROM m",
        "INSERT INTO channel_state (channel, key, value)
         SELECT 'webchat', 'msg:' || rid,
                '{\"visitor\":\"' || vid || '\",\"from\":\"' || CASE WHEN j % 2 = 0 THEN 'visitor' ELSE 'agent' END
                || '\",\"seq\":' || k || ',\"deleted\":false}' FROM m",
        "INSERT INTO channel_log (channel, stream, seq, key, body)
         SELECT 'webchat', 'conv:' || vid, k, CASE WHEN j % 2 = 0 THEN rid ELSE 'out.' || rid END,
                '{\"type\":\"message\",\"id\":\"' || rid || '\",\"from\":\"' || CASE WHEN j % 2 = 0 THEN 'visitor' ELSE 'agent' END
                || '\",\"text\":\"' || CASE WHEN j % 2 = 0 THEN 'Hello, where is my order ' || k || '?' ELSE 'It left the warehouse on day ' || j || '.' END
                || '\",\"ts\":' || ts || '}' FROM m",
        "INSERT INTO search_docs (id, conversation_id, remote_id, part, event_id, kind, sender, media, ts, body, terms, analyzer)
         SELECT k, i, CASE WHEN j % 2 = 0 THEN rid END, 0, CASE WHEN j % 2 = 1 THEN eid END,
                CASE WHEN j % 2 = 0 THEN 'in' ELSE 'out' END,
                CASE WHEN j % 2 = 0 THEN '@sb_webchat_' || vid || ':localhost' ELSE '@alice:localhost' END,
                NULL, ts,
                CASE WHEN j % 2 = 0 THEN 'Hello, where is my order ' || k || '?' ELSE 'It left the warehouse on day ' || j || '.' END,
                CASE WHEN j % 2 = 0 THEN 'hello where is my order ' || k ELSE 'it left the warehouse on day ' || j END,
                1 FROM m",
    ];
    let mut rows = 0u64;
    conn.exec("BEGIN").await?;
    for (cte, body) in conv_statements
        .iter()
        .map(|b| (&conv_cte, *b))
        .chain(msg_statements.iter().map(|b| (&msg_cte, *b)))
    {
        let sql = format!("{cte} {body}");
        rows += conn
            .run(&sql, from, to, &account, now, per)
            .await
            .with_context(|| {
                format!(
                    "seeding history: {}",
                    body.split_whitespace()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            })?;
    }
    conn.exec("COMMIT").await?;
    if sqlite {
        conn.exec("PRAGMA wal_checkpoint(TRUNCATE)").await?;
    } else {
        // What autovacuum would have done long before a real store held this much.
        conn.exec("ANALYZE").await?;
    }
    conn.close().await?;
    Ok((rows, started.elapsed()))
}

/// One connection to either backend (the bench needs only these few calls).
enum AnyConn {
    Sqlite(sqlx::SqliteConnection),
    Pg(sqlx::PgConnection),
}

impl AnyConn {
    async fn exec(&mut self, sql: &'static str) -> anyhow::Result<()> {
        match self {
            AnyConn::Sqlite(c) => sqlx::query(sql).execute(c).await.map(|_| ())?,
            AnyConn::Pg(c) => sqlx::query(sql).execute(c).await.map(|_| ())?,
        }
        Ok(())
    }

    async fn scalar(&mut self, sql: &'static str) -> anyhow::Result<i64> {
        Ok(match self {
            AnyConn::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await?,
            AnyConn::Pg(c) => sqlx::query_scalar(sql).fetch_one(c).await?,
        })
    }

    async fn text(&mut self, sql: &'static str) -> anyhow::Result<String> {
        Ok(match self {
            AnyConn::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await?,
            AnyConn::Pg(c) => sqlx::query_scalar(sql).fetch_one(c).await?,
        })
    }

    /// Runs one seeding statement ($1 first conversation, $2 last, $3 account, $4 now,
    /// $5 messages per conversation); returns the rows written.
    async fn run(
        &mut self,
        sql: &str,
        from: i64,
        to: i64,
        account: &str,
        now: i64,
        per: i64,
    ) -> anyhow::Result<u64> {
        // Built from the constants in `seed_history` only.
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        Ok(match self {
            AnyConn::Sqlite(c) => sqlx::query(sql)
                .bind(from)
                .bind(to)
                .bind(account)
                .bind(now)
                .bind(per)
                .execute(c)
                .await?
                .rows_affected(),
            AnyConn::Pg(c) => sqlx::query(sql)
                .bind(from)
                .bind(to)
                .bind(account)
                .bind(now)
                .bind(per)
                .execute(c)
                .await?
                .rows_affected(),
        })
    }

    async fn close(self) -> anyhow::Result<()> {
        match self {
            AnyConn::Sqlite(c) => c.close().await?,
            AnyConn::Pg(c) => c.close().await?,
        }
        Ok(())
    }
}
