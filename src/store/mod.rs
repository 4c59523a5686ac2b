//! The store: every piece of state the bridge keeps, in SQLite (embedded default) or PostgreSQL.
//!
//! Both run through sqlx's `Any` driver with one set of migrations (`migrations/`), written in the
//! subset both databases share: BIGINT and TEXT columns, `$n` placeholders, `ON CONFLICT DO
//! NOTHING`. Row ids are assigned here rather than by the database's auto-increment (the two
//! disagree on it): [`new_id`]. On PostgreSQL, which several instances may share, they come from
//! the sequence `switchboard_ids`, one for every writer, so they stay unique and ordered by
//! arrival across instances. On SQLite (one instance only, see [`crate::leader`]) [`next_id`] is
//! strictly increasing within the process and, being derived from the clock and started above
//! the highest stored id, across restarts (even when the clock stepped back meanwhile). Either
//! way ordering by id is ordering by arrival.
//!
//! Submodules group the queries by the table they own.

pub mod availability;
pub mod canned;
pub mod channel_state;
pub mod continued;
pub mod conversations;
pub mod csat;
pub mod customers;
pub mod digests;
pub mod events;
pub mod figures;
pub mod inbox;
pub mod lease;
pub mod matrix_events;
pub mod media_jobs;
pub mod message_map;
pub mod outbox;
pub mod participants;
pub mod queues;
pub mod report_reads;
pub mod routing;
pub mod search;
pub mod unreadable;

use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use sqlx::Error as StoreError;

/// The database handle shared by every part of the bridge.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Connections whose commits do not wait for the disk ([`Store::redoable`]).
    redoable: AnyPool,
    /// SQLite (else PostgreSQL): the few queries the two write differently ask
    /// ([`search`]'s full-text index).
    sqlite: bool,
    /// Serialises the storing of homeserver transactions, whose ordering bookkeeping
    /// ([`matrix_events`]) reads what the previous one wrote.
    txn_order: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Striped locks serialising appends per channel log stream ([`channel_state`]).
    log_locks: std::sync::Arc<[tokio::sync::Mutex<()>; LOG_LOCKS]>,
    /// Who may commit workers' results ([`lease`]).
    fence: lease::SharedFence,
    /// The search term list is complete, so prefixes are looked up as terms ([`search`]).
    search_terms_ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

const LOG_LOCKS: usize = 64;

/// Connections of the [`Store::redoable`] pool: its transactions are short, and on SQLite they
/// share the one write lock with the main pool's anyway.
const REDOABLE_CONNECTIONS: u32 = 2;

/// Whether a pool's commits wait until the database has them on disk.
#[derive(Clone, Copy, PartialEq)]
enum Durability {
    /// A commit returns once it would survive a crash of the machine (SQLite
    /// `synchronous = FULL`: the WAL is `fsync`ed at each commit; PostgreSQL's default).
    Flushed,
    /// A commit returns once it is in the log, before the disk has it (SQLite
    /// `synchronous = NORMAL` in WAL mode, PostgreSQL `synchronous_commit = off`). A crash of
    /// the process loses nothing; a crash of the machine or the database server may lose the
    /// last such commits, never a part of one and never one that a later flushed commit
    /// follows (the log is written in order, and flushing it flushes all before).
    Redoable,
}

/// How long PostgreSQL lets one of the pool's sessions sit idle inside a transaction before it
/// ends the session (see [`Store::connect`]): the default `ha.lease`, so a frozen leader's lock
/// delays a takeover by at most this much after its lease ran out.
pub const IDLE_IN_TRANSACTION: std::time::Duration = std::time::Duration::from_secs(5);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Connect (creating the SQLite file when missing) and bring the schema up to date.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let url = if sqlite && !url.contains("mode=") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_string()
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = Store::pool_options(sqlite, Durability::Flushed)
            .max_connections(if sqlite {
                max_connections.clamp(1, 4)
            } else {
                max_connections.max(1)
            })
            .connect_with(options.clone())
            .await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(Box::new(e)))?;
        let terms_ready = search::ensure_index(&pool, sqlite).await?;
        seed_ids(&pool, sqlite).await?;
        // Connected on first use, after the schema is in place.
        let redoable = Store::pool_options(sqlite, Durability::Redoable)
            .max_connections(REDOABLE_CONNECTIONS)
            .connect_lazy_with(options);
        Ok(Store {
            pool,
            redoable,
            sqlite,
            txn_order: Default::default(),
            log_locks: std::sync::Arc::new(std::array::from_fn(|_| tokio::sync::Mutex::new(()))),
            fence: std::sync::Arc::new(std::sync::RwLock::new(lease::Fence::Unmanaged)),
            search_terms_ready: std::sync::Arc::new(terms_ready.into()),
        })
    }

    /// A pool's settings, but for its size: every connection set up alike (its journal, how it
    /// waits for a lock, and how long it may sit in a transaction), with commits as `durability`
    /// says.
    fn pool_options(sqlite: bool, durability: Durability) -> AnyPoolOptions {
        AnyPoolOptions::new()
            // sqlx pings a connection before every acquire by default. A SQLite connection is a
            // file in this process and cannot drop like a socket, so for SQLite the ping is only
            // an extra round trip to the connection's worker thread before every query: about a
            // fifth of the bridge's CPU per relayed message (bench/relay.rs). A query that fails
            // is an error like any other: the callers retry or refuse upstream.
            .test_before_acquire(!sqlite)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if sqlite {
                        // WAL lets readers run beside the writer; FULL makes a commit survive a
                        // crash of the machine, not only of the process: "stored" means stored.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute(match durability {
                            Durability::Flushed => "PRAGMA synchronous = FULL",
                            Durability::Redoable => "PRAGMA synchronous = NORMAL",
                        })
                        .await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    } else {
                        // A transaction never waits on the network or on anything but the
                        // database, so one left open this long belongs to a process that was
                        // frozen (SIGSTOP, a paused VM) or lost: the server ends it, and with it
                        // the share lock it held on the lease row (lease::check_fence), which
                        // would otherwise keep a standby from ever taking over.
                        let ms = IDLE_IN_TRANSACTION.as_millis();
                        // A constant of ours, not outside input.
                        let set = format!("SET idle_in_transaction_session_timeout = {ms}");
                        conn.execute(sqlx::query(sqlx::AssertSqlSafe(set))).await?;
                        if durability == Durability::Redoable {
                            conn.execute("SET synchronous_commit = off").await?;
                        }
                    }
                    Ok(())
                })
            })
    }

    /// For `switchboard doctor`: connect to the store at `url` without creating or migrating
    /// anything, and say which of this build's migrations it lacks (empty: up to date).
    pub async fn missing_migrations(url: &str) -> Result<Vec<String>, StoreError> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let applied: Vec<i64> = match sqlx::query_scalar::<_, i64>(
            "SELECT version FROM _sqlx_migrations WHERE success = TRUE",
        )
        .fetch_all(&pool)
        .await
        {
            Ok(versions) => versions,
            // No bookkeeping table yet: nothing applied.
            Err(sqlx::Error::Database(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        pool.close().await;
        Ok(MIGRATOR
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
            .collect())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for writes that redo themselves: bookkeeping after an effect that is safe to
    /// repeat, which a crash may undo only to have the same work done again with the same
    /// outcome. Its commits do not wait for the disk ([`Durability::Redoable`]), so they do not
    /// queue for the disk behind the homeserver's commits (issue 23). A machine crash can undo
    /// only the last of them, in order, and never one that a flushed commit came after.
    ///
    /// Never for what acknowledges anything to anyone (a stored inbound message, a homeserver
    /// transaction, an outbox entry), nor for a record after which something that cannot be
    /// repeated is done: those go through [`Store::pool`].
    pub fn redoable(&self) -> &AnyPool {
        &self.redoable
    }

    /// Whether this store is SQLite (else PostgreSQL).
    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// The lock of one channel log stream (shared with the streams that hash alike).
    fn log_lock(&self, channel: &str, stream: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (channel, stream).hash(&mut h);
        &self.log_locks[(h.finish() % LOG_LOCKS as u64) as usize]
    }

    /// Remember a homeserver transaction id; `false` when it was seen before.
    pub async fn mark_txn<'c, E>(
        executor: E,
        txn_id: &str,
        txn_num: Option<i64>,
    ) -> Result<bool, StoreError>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        let done = sqlx::query(
            "INSERT INTO appservice_txns (txn_id, received_at, txn_num) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(txn_id)
        .bind(now_ms())
        .bind(txn_num)
        .execute(executor)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn txn_seen(&self, txn_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS one FROM appservice_txns WHERE txn_id = $1")
            .bind(txn_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }
}

/// Milliseconds since the Unix epoch.
pub use switchboard_kit::now_ms;

static LAST_ID: AtomicI64 = AtomicI64::new(0);

/// Make new ids continue above every id the store holds: [`next_id`] on SQLite, so a clock that
/// stepped back while the bridge was down cannot put new messages before older ones; the
/// sequence on PostgreSQL (created here: SQLite has none), so a store written before the
/// sequence existed (ids from the clock) goes on above them. Each is an index lookup.
async fn seed_ids(pool: &AnyPool, sqlite: bool) -> Result<(), StoreError> {
    let mut highest = 0;
    for query in [
        "SELECT MAX(id) FROM inbox",
        "SELECT MAX(id) FROM outbox",
        "SELECT MAX(id) FROM conversations",
        "SELECT MAX(id) FROM customers",
        "SELECT MAX(seq) FROM matrix_events",
        "SELECT MAX(id) FROM unreadable_input",
        "SELECT MAX(id) FROM search_docs",
        "SELECT MAX(id) FROM media_jobs",
    ] {
        let max: Option<i64> = sqlx::query_scalar(query).fetch_one(pool).await?;
        if let Some(max) = max {
            highest = highest.max(max);
        }
    }
    if sqlite {
        LAST_ID.fetch_max(highest, Ordering::SeqCst);
        return Ok(());
    }
    // Instances starting together: one moves the sequence at a time.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7215063914)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE SEQUENCE IF NOT EXISTS switchboard_ids")
        .execute(&mut *tx)
        .await?;
    let last: i64 = sqlx::query_scalar("SELECT last_value FROM switchboard_ids")
        .fetch_one(&mut *tx)
        .await?;
    if highest > last {
        sqlx::query("SELECT setval('switchboard_ids', $1)")
            .bind(highest)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A new row id (see the module docs): from the sequence `switchboard_ids` on PostgreSQL, shared
/// by every instance on the store; [`next_id`] on SQLite. `conn` may be inside a transaction
/// (a sequence is not rolled back with it: ids of rolled-back rows are skipped, never reused).
pub async fn new_id(conn: &mut sqlx::AnyConnection) -> Result<i64, StoreError> {
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query_scalar("SELECT nextval('switchboard_ids')")
            .fetch_one(conn)
            .await
    } else {
        Ok(next_id())
    }
}

impl Store {
    /// A new row id, from the pool (see [`new_id`]).
    pub async fn new_id(&self) -> Result<i64, StoreError> {
        if self.sqlite {
            return Ok(next_id());
        }
        sqlx::query_scalar("SELECT nextval('switchboard_ids')")
            .fetch_one(self.pool())
            .await
    }
}

/// A new row id of this process: microseconds since the epoch, bumped to stay strictly
/// increasing (the ids of a SQLite store; see [`new_id`]).
pub fn next_id() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let mut last = LAST_ID.load(Ordering::Relaxed);
    loop {
        let candidate = now.max(last + 1);
        match LAST_ID.compare_exchange_weak(last, candidate, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return candidate,
            Err(actual) => last = actual,
        }
    }
}

/// A store in a fresh SQLite file (a real database, as the bridge runs it) for unit tests: the
/// file's directory (removed when dropped), the store's URL (to open it again) and the store.
#[cfg(test)]
pub(crate) async fn temp_store(max_connections: u32) -> (tempfile::TempDir, String, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    let store = Store::connect(&url, max_connections).await.expect("store");
    (dir, url, store)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clock stepped back an hour while the bridge was down: new ids still come after the
    /// stored ones (ordering by id stays ordering by arrival).
    #[tokio::test]
    async fn ids_continue_above_the_stored_ones_after_a_clock_step_back() {
        let (_dir, url, store) = temp_store(1).await;
        let written_before = next_id() + 3_600_000_000;
        sqlx::query(
            "INSERT INTO conversations (id, channel, account, chat, contact_id, created_at)
             VALUES ($1, 'web', 'site', 'chat', 'c', 0)",
        )
        .bind(written_before)
        .execute(store.pool())
        .await
        .expect("insert");
        store.pool().close().await;
        let _reopened = Store::connect(&url, 1).await.expect("reopen");
        assert!(next_id() > written_before);
    }

    /// On SQLite the acknowledging pool `fsync`s every commit (FULL, 2) and the redoable one
    /// leaves it to the next flushed commit or checkpoint (NORMAL, 1), on one database: what the
    /// redoable pool commits, the other reads at once.
    #[tokio::test]
    async fn bookkeeping_commits_do_not_wait_for_the_disk_and_acknowledgements_do() {
        let (_dir, _url, store) = temp_store(2).await;
        let setting = |pool: &AnyPool| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
                    .fetch_one(&pool)
                    .await
                    .expect("pragma")
            }
        };
        assert_eq!(setting(store.pool()).await, 2);
        assert_eq!(setting(store.redoable()).await, 1);
        sqlx::query(
            "INSERT INTO conversations (id, channel, account, chat, contact_id, created_at)
             VALUES (7, 'web', 'site', 'chat', 'c', 0)",
        )
        .execute(store.redoable())
        .await
        .expect("insert");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM conversations WHERE id = 7")
            .fetch_one(store.pool())
            .await
            .expect("count");
        assert_eq!(n, 1);
    }

    #[test]
    fn ids_strictly_increase() {
        let mut prev = next_id();
        for _ in 0..10_000 {
            let id = next_id();
            assert!(id > prev);
            prev = id;
        }
    }
}
