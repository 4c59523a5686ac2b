//! `switchboard doctor`: checks an installation before customers write, and names the fix for
//! everything that would not work.
//!
//! In order: the configuration agrees with the registration the homeserver loaded; the store
//! connects and has every migration of this build; the homeserver answers, accepts the
//! appservice token as the bridge's bot, and reaches the bridge back (an appservice ping
//! received by this process when the bridge is not running, or answered by the running bridge);
//! then each enabled channel checks itself against its network ([`Channel::check`]).
//!
//! Each failure belongs to a [`Class`], and the exit status is that of the first class that
//! failed, so a script can tell a configuration error from a network that refuses a token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use switchboard_channel::{Channel, Check};

use crate::config::Config;
use crate::matrix::Homeserver;
use crate::registration::Registration;
use crate::store::Store;

/// What a failed check is about; the process exits with the code of the first class that
/// failed (in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// The configuration or the registration (exit 2).
    Config,
    /// The store (exit 3).
    Store,
    /// The homeserver, or the way between it and the bridge (exit 4).
    Homeserver,
    /// A channel's network (exit 5).
    Channel,
}

impl Class {
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Config => 2,
            Class::Store => 3,
            Class::Homeserver => 4,
            Class::Channel => 5,
        }
    }
}

/// One check's result, with where it belongs.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub class: Class,
    /// "config", "store", "homeserver", or the channel's name.
    pub area: String,
    #[serde(flatten)]
    pub check: Check,
}

/// Everything the doctor found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, class: Class, area: &str, check: Check) {
        self.findings.push(Finding {
            class,
            area: area.to_owned(),
            check,
        });
    }

    /// 0 when everything holds; otherwise the code of the first failing class.
    pub fn exit_code(&self) -> u8 {
        self.findings
            .iter()
            .filter(|f| !f.check.holds())
            .map(|f| f.class)
            .min()
            .map_or(0, Class::exit_code)
    }

    /// For a person: one line per check, the fix under each failure.
    pub fn human(&self) -> String {
        let failed = self.findings.iter().filter(|f| !f.check.holds()).count();
        let mut out = String::new();
        for f in &self.findings {
            let mark = if f.check.holds() { "ok  " } else { "FAIL" };
            out.push_str(&format!(
                "{mark} {}: {} — {}\n",
                f.area, f.check.what, f.check.found
            ));
            if let Some(fix) = &f.check.fix {
                out.push_str(&format!("     fix: {fix}\n"));
            }
        }
        out.push_str(&match failed {
            0 => format!("All {} checks hold.\n", self.findings.len()),
            n => format!("{n} of {} checks failed.\n", self.findings.len()),
        });
        out
    }

    /// For a script.
    pub fn json(&self) -> serde_json::Value {
        json!({
            "ok": self.exit_code() == 0,
            "exit_code": self.exit_code(),
            "checks": self.findings.iter().map(|f| {
                let mut v = serde_json::to_value(f).unwrap_or_default();
                v["holds"] = json!(f.check.holds());
                v
            }).collect::<Vec<_>>(),
        })
    }
}

/// Run every check.
pub async fn run(config: &Config, channels: &[Arc<dyn Channel>]) -> Report {
    let mut report = Report::default();
    let tokens = registration(config, &mut report);
    store(config, &mut report).await;
    if let Some((as_token, hs_token)) = tokens {
        homeserver(config, &as_token, &hs_token, &mut report).await;
    }
    for channel in channels {
        let checks = channel.check().await;
        if checks.is_empty() {
            report.add(
                Class::Channel,
                channel.name(),
                Check::ok("network", "this channel has no checks of its own yet"),
            );
        }
        for check in checks {
            report.add(Class::Channel, channel.name(), check);
        }
    }
    report
}

/// The registration agrees with the configuration; returns the tokens to talk with.
fn registration(config: &Config, report: &mut Report) -> Option<(String, String)> {
    let path = &config.appservice.registration;
    let what = format!("registration ({})", path.display());
    let reg = match Registration::read(path) {
        Ok(reg) => reg,
        Err(e) => {
            if let (Some(a), Some(h)) = (&config.appservice.as_token, &config.appservice.hs_token) {
                report.add(
                    Class::Config,
                    "config",
                    Check::ok(what, "not read; the tokens come from the configuration"),
                );
                return Some((a.clone(), h.clone()));
            }
            report.add(
                Class::Config,
                "config",
                Check::failed(
                    what,
                    format!("cannot be read: {e}"),
                    "run `switchboard generate-registration -c <config>` and give the file to the homeserver (app_service_config_files)",
                ),
            );
            return None;
        }
    };
    let expected = Registration::generate(config);
    let mut differences = Vec::new();
    if reg.id != expected.id {
        differences.push(format!("id {:?} (config: {:?})", reg.id, expected.id));
    }
    if reg.url.trim_end_matches('/') != expected.url {
        differences.push(format!("url {:?} (config: {:?})", reg.url, expected.url));
    }
    if reg.sender_localpart != expected.sender_localpart {
        differences.push(format!(
            "sender_localpart {:?} (config: {:?})",
            reg.sender_localpart, expected.sender_localpart
        ));
    }
    let namespaces = |r: &Registration| serde_json::to_value(&r.namespaces).unwrap_or_default();
    if namespaces(&reg) != namespaces(&expected) {
        differences.push("the user and alias namespaces".to_owned());
    }
    let as_token = config.appservice.as_token.clone().unwrap_or(reg.as_token);
    let hs_token = config.appservice.hs_token.clone().unwrap_or(reg.hs_token);
    if differences.is_empty() {
        report.add(
            Class::Config,
            "config",
            Check::ok(what, "agrees with the configuration"),
        );
    } else {
        report.add(
            Class::Config,
            "config",
            Check::failed(
                what,
                format!("differs from the configuration: {}", differences.join("; ")),
                "generate the registration again from this configuration and restart the homeserver with it",
            ),
        );
    }
    Some((as_token, hs_token))
}

/// The store connects and has every migration of this build.
async fn store(config: &Config, report: &mut Report) {
    let url = &config.database.url;
    let what = format!("store ({})", crate::startup::redact_url(url));
    let check = match Store::missing_migrations(url).await {
        Ok(missing) if missing.is_empty() => Check::ok(what, "connects; every migration applied"),
        Ok(missing) => Check::ok(
            what,
            format!(
                "connects; {} migration(s) will be applied at the next start ({})",
                missing.len(),
                missing.join(", ")
            ),
        ),
        Err(e) => Check::failed(
            what,
            format!("cannot connect: {e}"),
            "fix database.url (a SQLite file is created by the first `switchboard run`; a PostgreSQL database must exist and accept this user)",
        ),
    };
    report.add(Class::Store, "store", check);
}

/// The homeserver answers, takes the token as our bot, and reaches the bridge back.
async fn homeserver(config: &Config, as_token: &str, hs_token: &str, report: &mut Report) {
    let base = &config.homeserver.url;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build();
    let versions = match http {
        Ok(http) => http
            .get(format!(
                "{}/_matrix/client/versions",
                base.as_str().trim_end_matches('/')
            ))
            .send()
            .await
            .and_then(|r| r.error_for_status()),
        Err(e) => Err(e),
    };
    let versions = match versions {
        Ok(answer) => answer.json::<serde_json::Value>().await.ok(),
        Err(e) => {
            report.add(
                Class::Homeserver,
                "homeserver",
                Check::failed(
                    format!("reachable ({base})"),
                    format!("no answer: {}", e.without_url()),
                    "set homeserver.url to the homeserver's client API as this machine reaches it",
                ),
            );
            return;
        }
    };
    let newest = versions
        .as_ref()
        .and_then(|v| v.get("versions"))
        .and_then(|v| v.as_array())
        .and_then(|v| v.last())
        .and_then(|v| v.as_str())
        .unwrap_or("unknown")
        .to_owned();
    report.add(
        Class::Homeserver,
        "homeserver",
        Check::ok(
            format!("reachable ({base})"),
            format!("speaks the client API up to {newest}"),
        ),
    );
    let homeserver = Homeserver::new(
        base,
        as_token,
        &config.homeserver.domain,
        &config.appservice.bot_localpart,
    );
    let bot = format!(
        "@{}:{}",
        config.appservice.bot_localpart, config.homeserver.domain
    );
    match homeserver.whoami().await {
        Ok(user) if user == bot => report.add(
            Class::Homeserver,
            "homeserver",
            Check::ok("appservice token (whoami)", format!("accepted as {user}")),
        ),
        Ok(user) => report.add(
            Class::Homeserver,
            "homeserver",
            Check::failed(
                "appservice token (whoami)",
                format!("accepted as {user}, not as the bot {bot}"),
                "appservice.bot_localpart and homeserver.domain must match the registration's sender_localpart and the homeserver's server_name",
            ),
        ),
        Err(e) => {
            report.add(
                Class::Homeserver,
                "homeserver",
                Check::failed(
                    "appservice token (whoami)",
                    format!("refused: {e}"),
                    "give the homeserver this registration (app_service_config_files) and restart it; the as_token must match",
                ),
            );
            return;
        }
    }
    report.add(
        Class::Homeserver,
        "homeserver",
        ping(config, &homeserver, hs_token).await,
    );
}

/// An appservice ping: received by this process when the bridge's address is free, otherwise
/// answered by the bridge running there.
async fn ping(config: &Config, homeserver: &Homeserver, hs_token: &str) -> Check {
    let what = format!(
        "the homeserver reaches the bridge ({})",
        config.appservice.url
    );
    let fix = "appservice.url (the registration's url) must reach this bridge from the homeserver's machine, and appservice.listen must be where it listens";
    let txn = format!("sb-doctor-{}", crate::store::now_ms());
    let listener = tokio::net::TcpListener::bind(config.appservice.listen).await;
    let received = Arc::new(AtomicBool::new(false));
    let server = match listener {
        Ok(listener) => {
            let app = Router::new()
                .route("/_matrix/app/v1/ping", post(answer_ping))
                .with_state((hs_token.to_owned(), received.clone()));
            Some(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }))
        }
        Err(_) => None,
    };
    let result = homeserver
        .ping_appservice(&config.appservice.id, &txn)
        .await;
    let running_bridge = server.is_none();
    if let Some(server) = server {
        server.abort();
    }
    match result {
        Ok(()) if running_bridge => Check::ok(
            what,
            format!(
                "the ping was answered by the bridge already listening on {}",
                config.appservice.listen
            ),
        ),
        Ok(()) if received.load(Ordering::SeqCst) => Check::ok(
            what,
            "the homeserver's ping reached this process",
        ),
        Ok(()) => Check::failed(
            what,
            format!(
                "the homeserver says the ping went through, but not to this process (listening on {})",
                config.appservice.listen
            ),
            fix,
        ),
        Err(e) => Check::failed(what, format!("the ping failed: {e}"), fix),
    }
}

/// `POST /_matrix/app/v1/ping`, answered as the spec asks (an empty JSON object) when the
/// homeserver presents the hs_token.
async fn answer_ping(
    State((hs_token, received)): State<(String, Arc<AtomicBool>)>,
    headers: HeaderMap,
) -> (StatusCode, Json<serde_json::Value>) {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|t| switchboard_kit::constant_time_eq(t.as_bytes(), hs_token.as_bytes()))
    {
        received.store(true, Ordering::SeqCst);
        (StatusCode::OK, Json(json!({})))
    } else {
        (
            StatusCode::FORBIDDEN,
            Json(json!({"errcode": "M_FORBIDDEN", "error": "wrong hs_token"})),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failing_class_decides_the_exit_code() {
        let mut report = Report::default();
        report.add(Class::Config, "config", Check::ok("a", "fine"));
        assert_eq!(report.exit_code(), 0);
        report.add(
            Class::Channel,
            "telegram",
            Check::failed("token", "refused", "fix it"),
        );
        assert_eq!(report.exit_code(), 5);
        report.add(
            Class::Store,
            "store",
            Check::failed("store", "gone", "fix it"),
        );
        assert_eq!(report.exit_code(), 3);
        let text = report.human();
        assert!(
            text.contains("FAIL telegram: token — refused\n     fix: fix it"),
            "{text}"
        );
        assert!(text.ends_with("2 of 3 checks failed.\n"), "{text}");
        let json = report.json();
        assert_eq!(json["exit_code"], 3);
        assert_eq!(json["checks"][1]["area"], "telegram");
        assert_eq!(json["checks"][1]["holds"], false);
        assert_eq!(json["checks"][1]["fix"], "fix it");
    }
}
