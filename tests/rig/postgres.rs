//! A fresh PostgreSQL database for each test.
//!
//! The server is, in this order: the one named by `SWITCHBOARD_TEST_POSTGRES` (a URL to any
//! database on it, e.g. `postgres://postgres@127.0.0.1:5432/postgres`); the one on
//! 127.0.0.1:5432 with trust auth that development and CI machines run, if it accepts a
//! connection; else a private cluster that `scripts/ensure-postgres.sh` installs (Debian's
//! `postgresql`) and starts, printing its URL. The server is chosen once per test process.
//!
//! Each call creates a new database `sb_test_<unix time hex>_<random hex>` and returns its URL.
//! Databases are left behind when a test ends (a failed test's data can be inspected); each call
//! drops `sb_test_*` databases created more than six hours ago, so they do not pile up.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use sqlx::Connection;

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const STALE_AFTER: Duration = Duration::from_secs(6 * 3600);

static SERVER: tokio::sync::Mutex<Option<String>> = tokio::sync::Mutex::const_new(None);
static SCRIPT: tokio::sync::Mutex<Option<String>> = tokio::sync::Mutex::const_new(None);

async fn connect(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    match tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(anyhow::Error::new(e).context(format!("connecting to {url}"))),
        Err(_) => bail!("connecting to {url} timed out"),
    }
}

/// URL of the PostgreSQL server the tests use (see the module doc for the order of choice).
pub async fn server_url() -> anyhow::Result<String> {
    let mut guard = SERVER.lock().await;
    if let Some(url) = guard.as_ref() {
        return Ok(url.clone());
    }
    let url = if let Ok(url) = std::env::var("SWITCHBOARD_TEST_POSTGRES") {
        connect(&url)
            .await
            .context("SWITCHBOARD_TEST_POSTGRES names a server that does not answer")?;
        url
    } else if connect(DEFAULT_SERVER).await.is_ok() {
        DEFAULT_SERVER.to_string()
    } else {
        let url = super::run_script_cached(&SCRIPT, "ensure-postgres.sh").await?;
        connect(&url)
            .await
            .context("the cluster started by scripts/ensure-postgres.sh does not answer")?;
        url
    };
    *guard = Some(url.clone());
    Ok(url)
}

/// Replaces the database part (path) of a postgres URL.
fn with_database(server: &str, db: &str) -> anyhow::Result<String> {
    let mut url =
        url::Url::parse(server).with_context(|| format!("parsing postgres URL {server}"))?;
    url.set_path(&format!("/{db}"));
    Ok(url.to_string())
}

/// Creates a new, empty database on the test server and returns its URL.
pub async fn fresh_database_url() -> anyhow::Result<String> {
    let server = server_url().await?;
    let mut conn = connect(&server).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let name = format!("sb_test_{now:x}_{}", super::random_hex(6));
    // The name is ours (hex and underscores), not outside input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .with_context(|| format!("CREATE DATABASE {name} on {server}"))?;
    drop_stale(&mut conn, now).await;
    let _ = conn.close().await;
    with_database(&server, &name)
}

/// Best effort: drops test databases whose name says they are older than [`STALE_AFTER`].
async fn drop_stale(conn: &mut sqlx::PgConnection, now: u64) {
    let names: Vec<(String,)> =
        match sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'sb\\_test\\_%'")
            .fetch_all(&mut *conn)
            .await
        {
            Ok(n) => n,
            Err(_) => return,
        };
    for (name,) in names {
        let Some(ts) = name
            .strip_prefix("sb_test_")
            .and_then(|r| r.split('_').next())
        else {
            continue;
        };
        let Ok(created) = u64::from_str_radix(ts, 16) else {
            continue;
        };
        if now.saturating_sub(created) > STALE_AFTER.as_secs() {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}
