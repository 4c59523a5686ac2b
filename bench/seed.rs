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
