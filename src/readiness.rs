//! Readiness: whether this bridge can do its work right now, kept in one place.
//!
//! The doctor's checks of the parts outside the process run in the background of the running
//! bridge — at start (never delaying or failing it) and again every `bridge.check_interval`
//! (default 5 min): the store answers a query, the homeserver answers `whoami` for the bot, and
//! each enabled channel's own [`Channel::check`] holds (its credentials accepted by its
//! network). A check that starts failing is logged as a warning with its fix, and once more
//! when it holds again.
//!
//! [`Readiness`] holds the latest results; it is the one place to read them from
//! (`Bridge::readiness`): `GET /_switchboard/ready` answers from it (200 when everything
//! holds, else 503 with a JSON body naming what fails and its fix), and an admin API can show
//! a channel's state and last error from [`Readiness::latest`] or check one channel again
//! with [`Readiness::check_channel`]. `/_switchboard/health` (is the process up and serving) is
//! a different question and stays as it is.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use switchboard_channel::{Channel, Check};

use crate::bridge::Bridge;

/// How long one channel's checks may take before they count as failed (a network that does
/// not answer must not hold up the others' results).
const CHANNEL_TIMEOUT: Duration = Duration::from_secs(60);

/// The latest results of every check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latest {
    /// When the last round finished (ms since the Unix epoch); `None` before the first.
    pub checked_at_ms: Option<i64>,
    /// The store's check; `None` before the first round.
    pub store: Option<Check>,
    /// The homeserver's check; `None` before the first round.
    pub homeserver: Option<Check>,
    /// Each enabled channel's checks, by channel name.
    pub channels: BTreeMap<String, Vec<Check>>,
}

impl Latest {
    /// The failing parts as `(area, check)`; a part not checked yet counts as failing.
    pub fn failures(&self) -> Vec<(String, Check)> {
        let mut failing = Vec::new();
        for (area, check) in [("store", &self.store), ("homeserver", &self.homeserver)] {
            match check {
                Some(c) if c.holds() => {}
                Some(c) => failing.push((area.to_owned(), c.clone())),
                None => failing.push((
                    area.to_owned(),
                    Check::failed(
                        "checked",
                        "not checked yet",
                        "wait for the first round of checks",
                    ),
                )),
            }
        }
        for (name, checks) in &self.channels {
            failing.extend(
                checks
                    .iter()
                    .filter(|c| !c.holds())
                    .map(|c| (name.clone(), c.clone())),
            );
        }
        failing
    }
}

/// The latest results, shared by the background checks, the readiness endpoint and whoever
/// else reads them.
#[derive(Debug, Default)]
pub struct Readiness {
    latest: RwLock<Latest>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the latest results.
    pub fn latest(&self) -> Latest {
        self.latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Check one channel now, keep and return its results (an admin's "check again").
    pub async fn check_channel(&self, channel: &dyn Channel) -> Vec<Check> {
        let name = channel.name();
        let checks = match tokio::time::timeout(CHANNEL_TIMEOUT, channel.check()).await {
            Ok(checks) => checks,
            Err(_) => vec![Check::failed(
                "network",
                format!("no result within {} s", CHANNEL_TIMEOUT.as_secs()),
                format!("check that channels.{name}'s network is reachable from this machine"),
            )],
        };
        let before = self
            .latest()
            .channels
            .get(name)
            .cloned()
            .unwrap_or_default();
        log_changes(name, &before, &checks);
        self.latest
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .channels
            .insert(name.to_owned(), checks.clone());
        checks
    }

    /// One round: the store, the homeserver, and every channel (concurrently).
    pub async fn check_all(&self, bridge: &Bridge) {
        let store = match bridge.store.state_get("_readiness", "probe").await {
            Ok(_) => Check::ok("store", "answers"),
            Err(e) => Check::failed(
                "store",
                format!("does not answer: {e}"),
                "check that the database behind database.url is up and reachable",
            ),
        };
        let homeserver = match bridge.homeserver.whoami().await {
            Ok(user) => Check::ok("homeserver (whoami)", format!("answers; the bot is {user}")),
            Err(e) => Check::failed(
                "homeserver (whoami)",
                format!("no answer for the bot: {e}"),
                "check that the homeserver at homeserver.url is up and has this registration",
            ),
        };
        let before = self.latest();
        log_changes(
            "store",
            before.store.as_slice(),
            std::slice::from_ref(&store),
        );
        log_changes(
            "homeserver",
            before.homeserver.as_slice(),
            std::slice::from_ref(&homeserver),
        );
        {
            let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
            latest.store = Some(store);
            latest.homeserver = Some(homeserver);
        }
        let mut channels: Vec<&Arc<dyn Channel>> = bridge.channels.values().collect();
        channels.sort_by_key(|c| c.name());
        futures::future::join_all(channels.into_iter().map(|c| self.check_channel(c.as_ref())))
            .await;
        self.latest
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .checked_at_ms = Some(crate::store::now_ms());
    }

    /// What `GET /_switchboard/ready` answers.
    pub fn answer(&self) -> (StatusCode, Value) {
        let latest = self.latest();
        let failing = latest.failures();
        let body = json!({
            "ready": failing.is_empty(),
            "checked_at_ms": latest.checked_at_ms,
            "failing": failing.iter().map(|(area, c)| json!({
                "area": area, "what": c.what, "found": c.found, "fix": c.fix,
            })).collect::<Vec<_>>(),
            "channels": latest.channels.iter().map(|(name, checks)| {
                (name.clone(), json!(checks.iter().all(Check::holds)))
            }).collect::<serde_json::Map<_, _>>(),
        });
        let status = if failing.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, body)
    }
}

/// Warn about each check of `area` that fails now and did not fail the same way before; say
/// when a part that failed holds again.
fn log_changes(area: &str, before: &[Check], now: &[Check]) {
    let failed_before = |c: &Check| {
        before
            .iter()
            .any(|b| !b.holds() && b.what == c.what && b.found == c.found)
    };
    for check in now.iter().filter(|c| !c.holds() && !failed_before(c)) {
        tracing::warn!(
            area,
            what = %check.what,
            found = %check.found,
            fix = check.fix.as_deref().unwrap_or(""),
            "readiness check failed"
        );
    }
    if before.iter().any(|c| !c.holds()) && now.iter().all(Check::holds) {
        tracing::info!(area, "readiness checks hold again");
    }
}

/// Run the checks now and then every `bridge.check_interval`, forever (spawned at start).
pub async fn run(bridge: Arc<Bridge>) {
    let interval = bridge
        .config
        .bridge
        .check_interval
        .max(Duration::from_secs(1));
    loop {
        bridge.readiness.check_all(&bridge).await;
        tokio::time::sleep(interval).await;
    }
}

/// `GET /_switchboard/ready`.
pub async fn ready(State(bridge): State<Arc<Bridge>>) -> (StatusCode, Json<Value>) {
    let (status, body) = bridge.readiness.answer();
    (status, Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_part_was_checked_and_holds() {
        let readiness = Readiness::new();
        let (status, body) = readiness.answer();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["failing"][0]["area"], "store");
        {
            let mut latest = readiness.latest.write().unwrap();
            latest.store = Some(Check::ok("store", "answers"));
            latest.homeserver = Some(Check::ok("homeserver", "answers"));
            latest
                .channels
                .insert("vk".into(), vec![Check::ok("token", "fine")]);
        }
        assert_eq!(readiness.answer().0, StatusCode::OK);
        readiness.latest.write().unwrap().channels.insert(
            "viber".into(),
            vec![Check::failed(
                "auth token",
                "refused",
                "set channels.viber.auth_token",
            )],
        );
        let (status, body) = readiness.answer();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["failing"][0]["area"], "viber");
        assert_eq!(body["failing"][0]["fix"], "set channels.viber.auth_token");
        assert_eq!(body["channels"]["vk"], true);
        assert_eq!(body["channels"]["viber"], false);
    }
}
