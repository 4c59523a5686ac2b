//! The integration-test rig: real processes on loopback, driven the way people and servers drive them.
//!
//! Each integration test file says `mod rig;` and gets:
//!
//! - [`synapse`]: a real Synapse homeserver (from the project's cached virtualenv) on a free port,
//!   SQLite, generous rate limits, the test's appservice registration; killed on drop.
//! - [`postgres`]: a fresh PostgreSQL database per test (server from `SWITCHBOARD_TEST_POSTGRES`,
//!   else 127.0.0.1:5432, else a private cluster started by `scripts/ensure-postgres.sh`).
//! - [`bridge`]: the `switchboard` binary itself, configured in a temp dir, spawned, killed and
//!   restarted like an operator of the service would.
//! - [`operator`]: a Matrix user acting through a real client (matrix-sdk), with bounded waits for
//!   invites, messages, receipts and state — never the bridge's internals.
//! - [`env`]: [`env::TestEnv`] wires the three above together, plus [`env::Visitor`], a client of
//!   the web chat JSON API.
//! - [`browser`]: real headless Chromium driven by playwright-core through a small Node driver.
//! - [`ha`]: [`ha::HaEnv`], two bridge instances on one PostgreSQL database behind a
//!   [`balancer`], for the leadership tests.
//! - [`mail`]: a private Dovecot (IMAP, LMTP) and Postfix (SMTP) on loopback for the email channel.
//!
//! When a test fails, its captured output ends with the bridge log's last lines and Synapse's
//! recent warnings (printed on drop; libtest shows them for failed tests only).
//! `SWITCHBOARD_TEST_KEEP=1` keeps the temp dirs; `SWITCHBOARD_TEST_LOG` sets the bridge's log
//! filter.
//!
//! Rules the rig keeps: every wait is a poll with a deadline that names what it waited for; no
//! fixed sleeps as synchronisation; outside input is never `unwrap()`ed; every child process lives
//! in its own process group and is killed when its owner drops.
#![allow(dead_code)]

/// Runs each scenario `async fn name(backend: Backend) -> anyhow::Result<()>` of the test file
/// twice, as `name::sqlite` and `name::postgres` (a test file says `#[macro_use] mod rig;`).
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() -> anyhow::Result<()> {
                    super::$name($crate::rig::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() -> anyhow::Result<()> {
                    super::$name($crate::rig::Backend::Postgres).await
                }
            }
        )*
    };
}

pub mod balancer;
pub mod bridge;
pub mod browser;
pub mod env;
pub mod ha;
pub mod mail;
pub mod operator;
pub mod postgres;
pub mod steps;
pub mod synapse;
pub mod whisper;

#[allow(unused_imports)]
pub use bridge::{Backend, Bridge, BridgeOptions};
#[allow(unused_imports)]
pub use browser::Browser;
#[allow(unused_imports)]
pub use env::{TestEnv, Visitor};
#[allow(unused_imports)]
pub use operator::{Operator, RoomMessage};
#[allow(unused_imports)]
pub use steps::Steps;
#[allow(unused_imports)]
pub use synapse::Synapse;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Default deadline for anything the rig waits for.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// `SWITCHBOARD_TEST_KEEP=1` keeps the bridge's and Synapse's temp dirs (config, databases,
/// logs) after the test, and prints where they are.
pub fn keep_dirs() -> bool {
    std::env::var_os("SWITCHBOARD_TEST_KEEP").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Root of the repository (where the top Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Cache directory shared by the scripts and the rig (`SWITCHBOARD_CACHE`, default
/// `~/.cache/switchboard`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SWITCHBOARD_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache").join("switchboard")
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for a server a test starts (Synapse,
/// the bridge, Dovecot, Postfix).
///
/// The port is drawn at random from below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`): a port taken from inside it (what binding port 0 gives)
/// can be handed by the kernel to any outgoing connection on the machine between the moment
/// it is read and the moment the server binds it — a CI run once lost Synapse that way
/// ("Address already in use"). Ports handed out by this process are never handed out again,
/// and each candidate is bound once to check that nobody holds it now.
pub fn free_port() -> anyhow::Result<u16> {
    use rand::Rng;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = if ephemeral_low > 12_000 {
        (10_000, ephemeral_low)
    } else {
        // An unusual machine whose ephemeral range starts low: above it, then.
        (61_000, 65_000)
    };
    let mut given = GIVEN
        .lock()
        .map_err(|_| anyhow::anyhow!("the port list is poisoned"))?;
    for _ in 0..1000 {
        let port = rand::rng().random_range(low..high);
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    bail!("no free port between {low} and {high} after 1000 tries")
}

/// The last `lines` lines of a text file, or a note saying why there are none.
pub fn tail_file(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(e) => format!("(no log at {}: {e})", path.display()),
    }
}

/// Removes ANSI escape sequences (terminal colours) from log text.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters and intermediates, then one final byte in '@'..='~'.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Polls `check` until it returns `Ok(Some(value))`, failing after `timeout` with a message that
/// says what was awaited (`what`) and the last error `check` returned, if any.
///
/// `check` returning `Err` is not fatal: the error is remembered and polling goes on (a server
/// that is still starting refuses connections). Polling starts fast and backs off to 250 ms.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(20);
    let mut last_err: Option<anyhow::Error> = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            match last_err {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {e:#}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_millis(250));
    }
}

/// A recognisable file: `tag`'s bytes (a magic prefix such as `"%PDF"`, or a name to tell files
/// apart), then `len` bytes of a fixed pattern. The same arguments give the same bytes, so a
/// test can compare what arrived with what was sent.
pub fn blob(tag: &str, len: usize) -> Vec<u8> {
    tag.bytes()
        .chain((0..len as u32).map(|i| (i * 31 % 251) as u8))
        .collect()
}

/// A valid 1×1 PNG (transparent), for where a real image is needed (thumbnails, avatars).
pub fn tiny_png() -> Vec<u8> {
    vec![
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f,
        0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8,
        0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00,
        0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ]
}

/// Random lowercase hex string of `bytes` random bytes.
pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Runs a script from `scripts/` once per test process and returns its trimmed stdout
/// (the scripts print a path or URL). The result is cached; a failure is not, so a later test
/// can try again.
pub(crate) async fn run_script_cached(
    cell: &'static tokio::sync::Mutex<Option<String>>,
    script: &str,
) -> anyhow::Result<String> {
    let mut guard = cell.lock().await;
    if let Some(v) = guard.as_ref() {
        return Ok(v.clone());
    }
    let path = repo_root().join("scripts").join(script);
    let out = tokio::process::Command::new("bash")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {}", path.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}):\n{}\n{}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .with_context(|| format!("{} printed nothing on stdout", path.display()))?;
    *guard = Some(value.clone());
    Ok(value)
}

/// Sends `signal` to the process group `pgid` (children are spawned with `process_group(0)`, so
/// their pid is their group id). Errors (group already gone) are ignored.
pub(crate) fn kill_process_group(pgid: u32, signal: i32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    let Ok(pid) = i32::try_from(pgid) else { return };
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; it has no memory effects.
    unsafe {
        kill(-pid, signal);
    }
}

pub(crate) const SIGKILL: i32 = 9;
pub(crate) const SIGTERM: i32 = 15;
/// Freeze a process (it keeps its sockets and memory, runs nothing) until [`SIGCONT`].
pub const SIGSTOP: i32 = 19;
pub const SIGCONT: i32 = 18;

/// Waits (blocking, bounded) for a std child to exit after a signal; SIGKILLs the group if it
/// does not. Used from `Drop`, where there is no async.
pub(crate) fn reap_child(child: &mut std::process::Child, grace: Duration) {
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => {}
        }
        if Instant::now() >= deadline {
            kill_process_group(child.id(), SIGKILL);
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `GET url` until it answers 2xx, failing early if `child` exits and after `timeout`
/// otherwise. Used for "is the server up yet" after spawning one.
pub(crate) async fn wait_http_ok(
    what: &str,
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
    child: &mut std::process::Child,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(20);
    let mut last;
    loop {
        if let Some(status) = child.try_wait().context("checking the child process")? {
            bail!("the process exited ({status}) while waiting for {what}");
        }
        match http.get(url).timeout(Duration::from_secs(5)).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => last = format!("HTTP {}", resp.status()),
            Err(e) => last = format!("{e}"),
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what} (GET {url}: {last})");
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_millis(200));
    }
}

/// Milliseconds of a UTC wall-clock time (for the bridge's test clock).
pub fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

/// An operator sends a bot command in a room; returns the bot's answer (the notice replying to
/// it).
pub async fn command(op: &operator::Operator, room: &str, text: &str) -> anyhow::Result<String> {
    let event = op.send_text(room, text).await?;
    let answer = op
        .wait_for_message(room, |m| {
            m.is_notice() && m.in_reply_to() == Some(event.as_str())
        })
        .await?;
    Ok(answer.body)
}

/// A user's membership in a list of `(user, membership)` pairs (see `Operator::memberships`).
pub fn membership(members: &[(String, String)], user: &str) -> Option<String> {
    members
        .iter()
        .find(|(u, _)| u == user)
        .map(|(_, m)| m.clone())
}

/// One number read from a bridge's store (`sql` may use `$1`, `$2`, … for `args`): what the
/// bridge has durably recorded, for the tests that must see it rather than the log.
pub async fn store_count(
    backend: Backend,
    database_url: &str,
    sql: &'static str,
    args: &[&str],
) -> anyhow::Result<i64> {
    use sqlx::Connection;
    Ok(match backend {
        Backend::Sqlite => {
            let mut db = sqlx::SqliteConnection::connect(database_url).await?;
            let mut query = sqlx::query_scalar::<_, i64>(sql);
            for a in args {
                query = query.bind(a.to_string());
            }
            query.fetch_one(&mut db).await?
        }
        Backend::Postgres => {
            let mut db = sqlx::PgConnection::connect(database_url).await?;
            let mut query = sqlx::query_scalar::<_, i64>(sql);
            for a in args {
                query = query.bind(a.to_string());
            }
            query.fetch_one(&mut db).await?
        }
    })
}
