//! Leadership: which one of the instances sharing a store runs what must run once.
//!
//! Every instance serves HTTP (homeserver transactions, channel webhooks, the web chat) and
//! writes what it receives to the store. Exactly one, the **leader**, also runs the workers:
//! the relay stages, timers, housekeeping, and the channels' pollers and gateways (through
//! [`switchboard_channel::Leading`] and `switchboard_kit::lifecycle::while_leading`).
//!
//! **Election** ([`run`]): a lease in the database (`leases`, [`crate::store::lease`]) with an
//! epoch, the fencing token. On a session of its own (PostgreSQL `application_name`
//! `switchboard/<instance>/election`), a standby tries every half `ha.renew_every` to take the
//! lease once it is free or expired; the leader renews it every `ha.renew_every` for `ha.lease`.
//!
//! **Stepping down before the lease can expire.** The leader counts its lease as good only until
//! `ha.lease − ha.renew_every` after the moment it *sent* its last successful renewal (the
//! database set the expiry later than that, so this ends first). At that point, or at the first
//! renewal refused, failed or timed out (its session may be gone: it cannot know whether its
//! lease still stands), it stops its workers, and only then tries again as a candidate — after
//! giving up the lease it held and letting the others try first when its session was lost.
//!
//! **Fencing.** Workers ask [`Leadership::holds`] (the local deadline above) before each step
//! that reaches outside; the store refuses their commits and outbox claims under an epoch that is
//! over. What neither can stop is a request already on the wire when the lease is lost: see
//! docs/ha.md for what reaches a network twice and what each channel's idempotency key prevents.
//!
//! A SQLite store serves one instance: [`lock_sqlite`] makes a second one refuse to start, and
//! that one instance leads from the start, with no lease to renew ([`run`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sqlx::{AnyConnection, Connection};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::bridge::Bridge;
use crate::store::lease::Fence;
use crate::store::Store;

/// This instance's part in the election, shared by its tasks.
pub struct Leadership {
    instance: String,
    leading: watch::Sender<bool>,
    /// Until when the lease is surely ours, on this process's monotonic clock (`None`: standby).
    valid_until: Mutex<Option<Instant>>,
    /// The epoch of the lease held (0: none).
    epoch: AtomicI64,
}

impl Leadership {
    pub fn new(instance: String) -> Leadership {
        Leadership {
            instance,
            leading: watch::channel(false).0,
            valid_until: Mutex::new(None),
            epoch: AtomicI64::new(0),
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether this instance leads and its lease surely still stands. Workers ask before each
    /// step that reaches outside the process (a send to a network or to the homeserver).
    pub fn holds(&self) -> bool {
        self.deadline().is_some_and(|until| Instant::now() < until)
    }

    fn deadline(&self) -> Option<Instant> {
        *self.valid_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `leader` or `standby`, as `/_switchboard/health` says it.
    pub fn role(&self) -> &'static str {
        if self.holds() {
            "leader"
        } else {
            "standby"
        }
    }

    /// The epoch of the lease this instance holds, if it leads.
    pub fn epoch(&self) -> Option<i64> {
        Some(self.epoch.load(Ordering::SeqCst)).filter(|e| *e > 0 && self.holds())
    }

    /// For the channels: whether this instance leads, and a way to wait for a change.
    pub fn watch(&self) -> switchboard_channel::Leading {
        switchboard_channel::Leading::new(self.leading.subscribe())
    }

    fn begin(&self, epoch: i64, until: Instant) {
        self.epoch.store(epoch, Ordering::SeqCst);
        *self.valid_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
        crate::metrics::leader(true);
        self.leading.send_replace(true);
    }

    fn extend(&self, until: Instant) {
        *self.valid_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
    }

    fn end(&self) {
        *self.valid_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.epoch.store(0, Ordering::SeqCst);
        crate::metrics::leader(false);
        self.leading.send_replace(false);
    }
}

/// The instance id: `ha.instance_id`, else the host name, process id and a random suffix.
pub fn instance_id(configured: Option<&str>) -> String {
    if let Some(id) = configured.filter(|id| !id.trim().is_empty()) {
        return id.trim().to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchboard".into());
    let suffix: u16 = rand::random();
    format!("{host}-{}-{suffix:04x}", std::process::id())
}

/// A PostgreSQL URL with `application_name` set, so an administrator (and the tests) can tell
/// the sessions of each instance apart in `pg_stat_activity`. Other URLs are returned as given.
pub fn with_application_name(url: &str, name: &str) -> String {
    if !url.starts_with("postgres") {
        return url.to_string();
    }
    match url::Url::parse(url) {
        Ok(mut u) => {
            let kept: Vec<(String, String)> = u
                .query_pairs()
                .filter(|(k, _)| k != "application_name")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            u.query_pairs_mut()
                .clear()
                .extend_pairs(kept)
                .append_pair("application_name", name);
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// Lock a SQLite store for this process: a lock file beside the database, held until the
/// process ends. A second instance on the same file refuses to start, saying why; other URLs
/// need no lock (`None`).
pub fn lock_sqlite(url: &str) -> anyhow::Result<Option<std::fs::File>> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Ok(None);
    };
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Ok(None);
    }
    let lock_path = format!("{path}.lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("database.url: cannot open the lock file {lock_path}"))?;
    match file.try_lock() {
        Ok(()) => {
            use std::io::{Seek, Write};
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = writeln!(file, "{}", std::process::id());
            Ok(Some(file))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            let holder = holder.trim();
            anyhow::bail!(
                "database.url: another switchboard instance{} already runs on the SQLite store {path}. \
                 A SQLite store serves one instance; to run several (a standby that takes over), \
                 put them on one PostgreSQL database (docs/ha.md)",
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (process {holder})")
                }
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("database.url: cannot lock {lock_path}"))
        }
    }
}

/// What the election starts at every takeover; it aborts all of them at every step-down.
pub type StartWorkers = fn(&Arc<Bridge>) -> Vec<JoinHandle<()>>;

/// How a term as leader ended.
#[derive(Debug)]
enum Ended {
    /// The process is stopping: the lease was given up for a standby to take at once.
    Stopped,
    /// Another instance holds the lease now.
    Lost,
    /// The lease's local deadline passed before a renewal came through (the process was
    /// frozen, or its renewals were slow).
    Expired,
    /// The election session failed or timed out: the lease may or may not still stand.
    SessionLost(String),
}

/// Run the election until `stop` turns true (see the module docs). On a graceful stop the
/// workers are stopped and the lease is given up before this returns.
pub async fn run(bridge: Arc<Bridge>, start: StartWorkers, mut stop: watch::Receiver<bool>) {
    let leadership = &bridge.leader;
    let every = bridge.config.ha.renew_every;
    let mut session: Option<AnyConnection> = None;
    // An epoch this instance may still hold in the store after losing its session.
    let mut to_release: Option<i64> = None;
    bridge.store.set_fence(Fence::Standby);
    if bridge.store.is_sqlite() {
        lead_alone(&bridge, start, &mut stop).await;
        return;
    }
    loop {
        if *stop.borrow() {
            return;
        }
        let conn = match session.as_mut() {
            Some(conn) => conn,
            None => match connect(&bridge).await {
                Ok(conn) => session.insert(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "election: cannot open a database session; retrying");
                    if pause(&mut stop, every).await {
                        return;
                    }
                    continue;
                }
            },
        };
        if let Some(epoch) = to_release.take() {
            // Lost the session while leading: give the lease up and let the others try first.
            let _ = Store::lease_release(conn, leadership.instance(), epoch).await;
            if pause(&mut stop, every * 2).await {
                return;
            }
            continue;
        }
        let sent = Instant::now();
        let acquired = tokio::time::timeout(
            every,
            Store::lease_acquire(
                conn,
                bridge.store.is_sqlite(),
                leadership.instance(),
                lease_ms(&bridge),
            ),
        )
        .await;
        match acquired {
            Ok(Ok(Some(epoch))) => match lead(&bridge, start, conn, epoch, sent, &mut stop).await {
                Ended::Stopped => {
                    let released = tokio::time::timeout(
                        every,
                        Store::lease_release(conn, leadership.instance(), epoch),
                    )
                    .await;
                    match released {
                        Ok(Ok(())) => {
                            tracing::info!(epoch, "leadership handed over: lease given up")
                        }
                        _ => tracing::warn!(
                            epoch,
                            "could not give the lease up: a standby takes over once it expires"
                        ),
                    }
                    return;
                }
                Ended::SessionLost(why) => {
                    tracing::warn!(epoch, reason = %why, "stepped down: the election session failed; the lease may still stand");
                    session = None;
                    to_release = Some(epoch);
                }
                Ended::Lost => {
                    tracing::warn!(epoch, "stepped down: another instance holds the lease")
                }
                Ended::Expired => tracing::warn!(
                    epoch,
                    "stepped down: the lease could not be renewed in time"
                ),
            },
            Ok(Ok(None)) => {
                if pause(&mut stop, every / 2).await {
                    return;
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "election: the lease cannot be read; reconnecting");
                session = None;
                if pause(&mut stop, every).await {
                    return;
                }
            }
            Err(_) => {
                tracing::warn!("election: taking the lease timed out; reconnecting");
                session = None;
            }
        }
    }
}

/// One term as leader: workers start, the lease is renewed until something ends the term, and
/// the workers are stopped (all of them, before this returns).
async fn lead(
    bridge: &Arc<Bridge>,
    start: StartWorkers,
    conn: &mut AnyConnection,
    epoch: i64,
    sent: Instant,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let leadership = &bridge.leader;
    let (lease, every) = (bridge.config.ha.lease, bridge.config.ha.renew_every);
    // Good until a renewal interval before the database's expiry at the earliest.
    let good_for = lease.saturating_sub(every);
    let mut valid_until = sent + good_for;
    bridge.store.set_fence(Fence::Leader {
        holder: leadership.instance().to_string(),
        epoch,
    });
    leadership.begin(epoch, valid_until);
    tracing::info!(
        epoch,
        instance = leadership.instance(),
        "took the lease: leading"
    );
    let workers = start(bridge);
    let ended = loop {
        let next = (Instant::now() + every).min(valid_until);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => break Ended::Stopped,
        }
        if Instant::now() >= valid_until {
            break Ended::Expired;
        }
        let sent = Instant::now();
        let renewed = tokio::time::timeout(
            every,
            Store::lease_renew(
                conn,
                bridge.store.is_sqlite(),
                leadership.instance(),
                epoch,
                lease_ms(bridge),
            ),
        )
        .await;
        match renewed {
            Ok(Ok(true)) => {
                valid_until = sent + good_for;
                leadership.extend(valid_until);
            }
            Ok(Ok(false)) => break Ended::Lost,
            Ok(Err(e)) => break Ended::SessionLost(e.to_string()),
            Err(_) => break Ended::SessionLost("renewal timed out".into()),
        }
    };
    // Workers first: nothing of this term runs once the term is over.
    leadership.end();
    bridge.store.set_fence(Fence::Standby);
    for worker in &workers {
        worker.abort();
    }
    for worker in workers {
        let _ = tokio::time::timeout(Duration::from_secs(1), worker).await;
    }
    ended
}

/// The one instance of a SQLite store (locked by [`lock_sqlite`]) leads until it stops: nobody
/// else can, and a lease renewed in the file would only compete with the workers' writes.
async fn lead_alone(bridge: &Arc<Bridge>, start: StartWorkers, stop: &mut watch::Receiver<bool>) {
    let leadership = &bridge.leader;
    bridge.store.set_fence(Fence::Leader {
        holder: leadership.instance().to_string(),
        epoch: 1,
    });
    // As good as forever (an Instant that far ahead is still representable).
    leadership.begin(
        1,
        Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600),
    );
    tracing::info!(
        instance = leadership.instance(),
        "leading: the only instance of a SQLite store"
    );
    let workers = start(bridge);
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    leadership.end();
    bridge.store.set_fence(Fence::Standby);
    for worker in &workers {
        worker.abort();
    }
    tracing::info!("stopped leading: the process stops");
}

fn lease_ms(bridge: &Bridge) -> i64 {
    bridge.config.ha.lease.as_millis() as i64
}

/// The election's own database session.
async fn connect(bridge: &Bridge) -> Result<AnyConnection, sqlx::Error> {
    election_session(
        &bridge.config.database.url,
        bridge.leader.instance(),
        bridge.config.ha.renew_every,
    )
    .await
}

/// Open an election session for `instance` on the PostgreSQL store at `url`. Its statements
/// are cancelled by the server after `every`, the time the election waits for them: a take
/// that waited on a lock (a frozen leader's transaction) and was given up must not complete
/// later, bumping the epoch behind the back of the instance that took the lease meanwhile.
pub async fn election_session(
    url: &str,
    instance: &str,
    every: Duration,
) -> Result<AnyConnection, sqlx::Error> {
    let url = with_application_name(url, &format!("switchboard/{instance}/election"));
    let mut conn = AnyConnection::connect(&url).await?;
    if url.starts_with("postgres") {
        let ms = every.as_millis().clamp(1, i32::MAX as u128);
        // A number from the config, not outside input.
        sqlx::query(sqlx::AssertSqlSafe(format!("SET statement_timeout = {ms}")))
            .execute(&mut conn)
            .await?;
    }
    Ok(conn)
}

/// Wait `d`; `true` when the process is stopping meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_named_on_postgres_only() {
        assert_eq!(
            with_application_name("postgres://u@h/db?sslmode=disable", "switchboard/a"),
            "postgres://u@h/db?sslmode=disable&application_name=switchboard%2Fa"
        );
        assert_eq!(
            with_application_name("sqlite://x.db", "switchboard/a"),
            "sqlite://x.db"
        );
    }

    /// A second lock on the same SQLite store is refused with a message that names the store
    /// and the way to run several instances.
    #[test]
    fn a_second_instance_on_one_sqlite_file_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let held = lock_sqlite(&url).expect("first").expect("a lock");
        let refused = lock_sqlite(&url).expect_err("second");
        let text = format!("{refused:#}");
        assert!(text.contains("another switchboard instance"), "{text}");
        assert!(text.contains("PostgreSQL"), "{text}");
        drop(held);
        assert!(lock_sqlite(&url).expect("after").is_some());
    }
}
