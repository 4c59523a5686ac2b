//! A real Synapse homeserver for one test, on 127.0.0.1, with SQLite in a temp dir.
//!
//! Synapse comes from the project's cached virtualenv (`scripts/install-synapse.sh`, run once per
//! test process; it installs on first use and only prints the path afterwards). A stock config is
//! generated with Synapse's own `--generate-config` once per test process and copied into each
//! homeserver's dir; `start` then edits it as YAML: a single client
//! listener on a free loopback port, no key servers (there is no internet), rate limits far above
//! anything a test does, the test's appservice registration, and a registration shared secret so
//! users are made through the admin API (`register_user`). The homeserver runs in its own process
//! group with its output in `synapse.out` beside `homeserver.log`; dropping the handle kills it.
//!
//! `stop` / `start_again` keep the config, database and port, for tests of a homeserver outage.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use hmac::{Hmac, Mac};
use serde_yaml::{Mapping, Value};
use tempfile::TempDir;

use super::{free_port, kill_process_group, random_hex, reap_child, tail_file};

/// How long Synapse may take to answer `/_matrix/client/versions` after being spawned.
const START_TIMEOUT: Duration = Duration::from_secs(60);

static VENV: tokio::sync::Mutex<Option<String>> = tokio::sync::Mutex::const_new(None);

/// Path of the Synapse virtualenv, installing it on first use (idempotent, flock-protected).
pub async fn ensure_venv() -> anyhow::Result<PathBuf> {
    let venv = super::run_script_cached(&VENV, "install-synapse.sh").await?;
    Ok(PathBuf::from(venv))
}

/// A running Synapse. Killed (process group, SIGKILL) on drop.
pub struct Synapse {
    dir: TempDir,
    venv: PathBuf,
    port: u16,
    shared_secret: String,
    server_name: String,
    child: Option<Child>,
    http: reqwest::Client,
    /// How long the last (re)start took until `/versions` answered.
    pub startup_time: Duration,
}

/// What `--generate-config` writes, generated once per test process (it takes ~2 s) and
/// copied, with paths moved, into each Synapse's own dir.
struct Template {
    dir: String,
    config: String,
    log_config: String,
    signing_key: Vec<u8>,
}

static TEMPLATE: tokio::sync::OnceCell<Template> = tokio::sync::OnceCell::const_new();

async fn template(venv: &Path) -> anyhow::Result<&'static Template> {
    TEMPLATE
        .get_or_try_init(|| async {
            let dir = tempfile::Builder::new()
                .prefix("sb-synapse-template-")
                .tempdir()
                .context("creating a temp dir for the Synapse config template")?;
            let config_path = dir.path().join("homeserver.yaml");
            let python = venv.join("bin").join("python");
            let out = tokio::process::Command::new(&python)
                .args([
                    "-m",
                    "synapse.app.homeserver",
                    "--server-name",
                    "localhost",
                    "--config-path",
                ])
                .arg(&config_path)
                .arg("--data-directory")
                .arg(dir.path())
                .args(["--generate-config", "--report-stats=no"])
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .output()
                .await
                .with_context(|| {
                    format!("running {} to generate a Synapse config", python.display())
                })?;
            if !out.status.success() {
                bail!(
                    "Synapse --generate-config failed ({}):\n{}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let read = |name: &str| {
                std::fs::read(dir.path().join(name))
                    .with_context(|| format!("reading generated {name}"))
            };
            Ok(Template {
                dir: dir.path().to_string_lossy().into_owned(),
                config: String::from_utf8_lossy(&read("homeserver.yaml")?).into_owned(),
                log_config: String::from_utf8_lossy(&read("localhost.log.config")?).into_owned(),
                signing_key: read("localhost.signing.key")?,
            })
        })
        .await
}

impl Synapse {
    /// Generates a config for `server_name = localhost` that loads `registration_path` as an
    /// appservice, starts Synapse and waits until it answers.
    pub async fn start(registration_path: &Path) -> anyhow::Result<Synapse> {
        Self::start_with(&[registration_path.to_path_buf()], |_| {}).await
    }

    /// Like [`Synapse::start`] with any number of appservice registrations and a hook that may
    /// edit the final `homeserver.yaml` (as a YAML value) before Synapse starts.
    pub async fn start_with(
        registrations: &[PathBuf],
        edit: impl FnOnce(&mut Value),
    ) -> anyhow::Result<Synapse> {
        let venv = ensure_venv().await?;
        let template = template(&venv).await?;
        let dir = tempfile::Builder::new()
            .prefix("sb-synapse-")
            .tempdir()
            .context("creating Synapse temp dir")?;
        let mut dir = dir;
        if super::keep_dirs() {
            dir.disable_cleanup(true);
        }
        let config_path = dir.path().join("homeserver.yaml");
        let here = dir.path().to_string_lossy().into_owned();
        // The template's own paths point into the dir it was generated in: move them here.
        // Unbuffered logging: a killed Synapse's last lines are the interesting ones.
        let log_config = template
            .log_config
            .replace(&template.dir, &here)
            .replace("handlers: [buffer]", "handlers: [file]");
        std::fs::write(dir.path().join("localhost.log.config"), log_config)
            .context("writing log config")?;
        std::fs::write(
            dir.path().join("localhost.signing.key"),
            &template.signing_key,
        )
        .context("writing signing key")?;
        let text = template.config.replace(&template.dir, &here);

        let port = free_port()?;
        let shared_secret = random_hex(32);
        let mut config: Value =
            serde_yaml::from_str(&text).context("parsing generated homeserver.yaml")?;
        configure(&mut config, dir.path(), port, &shared_secret, registrations)?;
        edit(&mut config);
        std::fs::write(
            &config_path,
            serde_yaml::to_string(&config).context("serialising homeserver.yaml")?,
        )
        .with_context(|| format!("writing {}", config_path.display()))?;

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building HTTP client")?;
        let mut synapse = Synapse {
            dir,
            venv,
            port,
            shared_secret,
            server_name: "localhost".into(),
            child: None,
            http,
            startup_time: Duration::ZERO,
        };
        synapse.start_again().await?;
        Ok(synapse)
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server name (`localhost`): the part after the colon in user ids.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temp dir holding config, database, media and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("homeserver.yaml")
    }

    /// The last lines of Synapse's stdout/stderr and of its `homeserver.log`.
    pub fn log_tail(&self) -> String {
        format!(
            "--- synapse.out ---\n{}\n--- homeserver.log ---\n{}",
            tail_file(&self.dir.path().join("synapse.out"), 40),
            tail_file(&self.dir.path().join("homeserver.log"), 60)
        )
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops Synapse (SIGTERM to its process group, SIGKILL after 10 s). Data and port are kept.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            kill_process_group(child.id(), super::SIGTERM);
            tokio::task::spawn_blocking(move || reap_child(&mut child, Duration::from_secs(10)))
                .await
                .context("waiting for Synapse to exit")?;
        }
        Ok(())
    }

    /// Starts Synapse (again) with the same config, data and port and waits until it answers.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("Synapse is already running on port {}", self.port);
        }
        let started = Instant::now();
        let out_path = self.dir.path().join("synapse.out");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out_path)
            .with_context(|| format!("opening {}", out_path.display()))?;
        let err = out.try_clone().context("duplicating log file handle")?;
        let python = self.venv.join("bin").join("python");
        let mut cmd = std::process::Command::new(&python);
        cmd.args(["-m", "synapse.app.homeserver", "--config-path"])
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", python.display()))?;
        self.child = Some(child);

        let url = format!("{}/_matrix/client/versions", self.base_url());
        let result = match self.child.as_mut() {
            Some(child) => {
                super::wait_http_ok(
                    "Synapse to answer /_matrix/client/versions",
                    &self.http,
                    &url,
                    START_TIMEOUT,
                    child,
                )
                .await
            }
            None => Err(anyhow!("Synapse child vanished")),
        };
        if let Err(e) = result {
            self.kill();
            bail!(
                "Synapse on port {} did not start: {e:#}\n{}",
                self.port,
                self.log_tail()
            );
        }
        self.startup_time = started.elapsed();
        Ok(())
    }

    /// Kills Synapse at once (SIGKILL to its process group) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_process_group(child.id(), super::SIGKILL);
            reap_child(&mut child, Duration::from_secs(5));
        }
    }

    /// Registers a user through the shared-secret admin API and returns the full user id.
    pub async fn register_user(
        &self,
        localpart: &str,
        password: &str,
        admin: bool,
    ) -> anyhow::Result<String> {
        let url = format!("{}/_synapse/admin/v1/register", self.base_url());
        let nonce_resp: serde_json::Value = self
            .http
            .get(&url)
            .send()
            .await
            .context("GET /_synapse/admin/v1/register")?
            .error_for_status()
            .context("GET /_synapse/admin/v1/register")?
            .json()
            .await
            .context("parsing nonce response")?;
        let nonce = nonce_resp
            .get("nonce")
            .and_then(|n| n.as_str())
            .with_context(|| format!("no nonce in {nonce_resp}"))?
            .to_string();

        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(self.shared_secret.as_bytes())
            .map_err(|e| anyhow!("HMAC key: {e}"))?;
        mac.update(nonce.as_bytes());
        mac.update(b"\0");
        mac.update(localpart.as_bytes());
        mac.update(b"\0");
        mac.update(password.as_bytes());
        mac.update(b"\0");
        mac.update(if admin {
            b"admin" as &[u8]
        } else {
            b"notadmin"
        });
        let digest = hex::encode(mac.finalize().into_bytes());

        let body = serde_json::json!({
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": digest,
        });
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .context("POST /_synapse/admin/v1/register")?;
        let status = resp.status();
        let json: serde_json::Value = resp.json().await.context("parsing register response")?;
        if !status.is_success() {
            bail!("registering {localpart} failed: {status} {json}");
        }
        json.get("user_id")
            .and_then(|u| u.as_str())
            .map(str::to_string)
            .with_context(|| format!("no user_id in {json}"))
    }

    /// Logs a user in with the plain client API and returns its access token (for raw HTTP calls
    /// in tests that want to bypass matrix-sdk).
    pub async fn login_token(&self, user: &str, password: &str) -> anyhow::Result<String> {
        let url = format!("{}/_matrix/client/v3/login", self.base_url());
        let body = serde_json::json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        });
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .context("POST /login")?;
        let status = resp.status();
        let json: serde_json::Value = resp.json().await.context("parsing login response")?;
        if !status.is_success() {
            bail!("login of {user} failed: {status} {json}");
        }
        json.get("access_token")
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .with_context(|| format!("no access_token in {json}"))
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.kill();
        // Shown by libtest only when the test fails: Synapse's recent warnings and errors.
        let log = tail_file(&self.dir.path().join("homeserver.log"), 2000);
        let problems: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" - WARNING - ") || l.contains(" - ERROR - "))
            .filter(|l| !l.contains("synapse.config.logger")) // the startup banner
            .collect();
        let start = problems.len().saturating_sub(15);
        if !problems[start..].is_empty() {
            eprintln!(
                "--- Synapse warnings/errors (last {}) ---\n{}",
                problems.len() - start,
                problems[start..].join("\n")
            );
        }
        if super::keep_dirs() {
            eprintln!("kept Synapse dir {}", self.dir.path().display());
        }
    }
}

fn set(map: &mut Mapping, key: &str, value: Value) {
    map.insert(Value::String(key.into()), value);
}

fn yaml(v: serde_json::Value) -> anyhow::Result<Value> {
    serde_yaml::to_value(v).context("converting JSON to YAML")
}

/// Rate limit far above anything a test does.
fn generous() -> serde_json::Value {
    serde_json::json!({"per_second": 10000, "burst_count": 100000})
}

fn configure(
    config: &mut Value,
    dir: &Path,
    port: u16,
    shared_secret: &str,
    registrations: &[PathBuf],
) -> anyhow::Result<()> {
    let map = config
        .as_mapping_mut()
        .context("homeserver.yaml is not a mapping")?;
    let d = |name: &str| dir.join(name).to_string_lossy().into_owned();

    set(
        map,
        "listeners",
        yaml(serde_json::json!([{
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": false,
            "x_forwarded": false,
            "resources": [{"names": ["client"], "compress": false}],
        }]))?,
    );
    set(
        map,
        "database",
        yaml(serde_json::json!({"name": "sqlite3", "args": {"database": d("homeserver.db")}}))?,
    );
    set(map, "media_store_path", Value::String(d("media_store")));
    set(map, "pid_file", Value::String(d("homeserver.pid")));
    set(map, "trusted_key_servers", Value::Sequence(vec![]));
    set(map, "suppress_key_server_warning", Value::Bool(true));
    set(map, "report_stats", Value::Bool(false));
    set(map, "enable_registration", Value::Bool(false));
    set(
        map,
        "registration_shared_secret",
        Value::String(shared_secret.into()),
    );
    set(map, "max_upload_size", Value::String("50M".into()));
    set(map, "url_preview_enabled", Value::Bool(false));
    set(map, "enable_metrics", Value::Bool(false));
    set(map, "presence", yaml(serde_json::json!({"enabled": true}))?);
    set(
        map,
        "user_directory",
        yaml(serde_json::json!({"enabled": true, "search_all_users": true}))?,
    );
    set(
        map,
        "app_service_config_files",
        Value::Sequence(
            registrations
                .iter()
                .map(|p| Value::String(p.to_string_lossy().into_owned()))
                .collect(),
        ),
    );

    for key in [
        "rc_message",
        "rc_registration",
        "rc_registration_token_validity",
        "rc_admin_redaction",
        "rc_joins_per_room",
        "rc_key_requests",
        "rc_3pid_validation",
        "rc_third_party_invite",
        "rc_media_create",
        "rc_delayed_event_mgmt",
        "rc_room_creation",
        "rc_reports",
        "rc_user_directory",
        "rc_profile",
    ] {
        set(map, key, yaml(generous())?);
    }
    set(
        map,
        "rc_login",
        yaml(
            serde_json::json!({"address": generous(), "account": generous(), "failed_attempts": generous()}),
        )?,
    );
    set(
        map,
        "rc_joins",
        yaml(serde_json::json!({"local": generous(), "remote": generous()}))?,
    );
    set(
        map,
        "rc_invites",
        yaml(
            serde_json::json!({"per_room": generous(), "per_user": generous(), "per_issuer": generous()}),
        )?,
    );
    set(
        map,
        "rc_presence",
        yaml(serde_json::json!({"per_user": generous()}))?,
    );
    Ok(())
}

/// The requests in a piece of Synapse's access log (`homeserver.log`), by kind: `METHOD /path
/// (who)`, ids in the path replaced by `{id}` (rooms, events, users, transactions), `who` being
/// `bridge` (the bot or a ghost: the appservice's token), `client` (a test's or benchmark's
/// users) or `-`. Used by the inbound cost test and the relay benchmark's profiles.
#[allow(dead_code)] // not every test binary that includes the rig counts requests
pub fn request_counts(log: &str) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for line in log.lines() {
        let Some(at) = line.find(" Processed request: ") else {
            continue;
        };
        // `… - {@user:localhost} Processed request: … "PUT /path HTTP/1.1" …`
        let who = line[..at]
            .rsplit_once('{')
            .map(|(_, w)| w.trim_end_matches('}'))
            .unwrap_or("");
        let who = if who.contains("sb_") || who.contains("switchboard") {
            "bridge"
        } else if who.starts_with('@') {
            "client"
        } else {
            "-"
        };
        let Some(req) = line[at..].split('"').nth(1) else {
            continue;
        };
        let mut parts = req.split_whitespace();
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            continue;
        };
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        let mut shape = Vec::with_capacity(segments.len());
        for (i, seg) in segments.iter().enumerate() {
            let after_send = i >= 2 && matches!(segments[i - 2], "send" | "redact");
            let id_like = ['!', '$', '@', '#', '%']
                .iter()
                .any(|c| seg.starts_with(*c))
                || (i >= 1
                    && matches!(
                        segments[i - 1],
                        "transactions" | "m.read" | "m.read.private"
                    ));
            shape.push(if id_like || after_send { "{id}" } else { seg });
        }
        *counts
            .entry(format!("{method} {} ({who})", shape.join("/")))
            .or_default() += 1;
    }
    counts
}

/// The pauses (ms) between two sends in one room by one sender, from a piece of Synapse's access
/// log: per room, the start of a `PUT …/send/…/{txn}` (its answer's time less the time it took)
/// less the answer to the one before. Only sends whose transaction id is `txn_prefix` followed
/// by a digit count (the relay benchmark's `t…`, `ta…`, the bridge's `sb-in-…`); pauses of
/// `longest_ms` or more (between bursts) are left out. Used by the relay benchmark's profiles.
#[allow(dead_code)] // not every test binary that includes the rig reads pauses
pub fn send_pauses(log: &str, txn_prefix: &str, longest_ms: f64) -> Vec<f64> {
    let mut sends: std::collections::HashMap<&str, Vec<(f64, f64)>> = Default::default();
    for line in log.lines() {
        let Some(at) = line.find(" Processed request: ") else {
            continue;
        };
        // `2026-12-07 04:04:30,228 - … Processed request: 0.163sec/0.000sec … "PUT /path HTTP/1.1"`
        let Some(answered) = line
            .get(..23)
            .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S,%3f").ok())
        else {
            continue;
        };
        let rest = &line[at + " Processed request: ".len()..];
        let Some(took) = rest.split("sec").next().and_then(|s| s.parse::<f64>().ok()) else {
            continue;
        };
        let Some(path) = rest
            .split('"')
            .nth(1)
            .and_then(|r| r.strip_prefix("PUT /_matrix/client/v3/rooms/"))
            .and_then(|r| r.split_whitespace().next())
        else {
            continue;
        };
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        let (Some(room), Some(&"send"), Some(txn)) =
            (segments.first(), segments.get(1), segments.get(3))
        else {
            continue;
        };
        let ours = txn
            .strip_prefix(txn_prefix)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
        if !ours {
            continue;
        }
        let end = answered.and_utc().timestamp_millis() as f64;
        sends
            .entry(room)
            .or_default()
            .push((end - took * 1000.0, end));
    }
    let mut pauses = Vec::new();
    for times in sends.values_mut() {
        times.sort_by(|a, b| a.0.total_cmp(&b.0));
        for pair in times.windows(2) {
            let pause = pair[1].0 - pair[0].1;
            if (0.0..longest_ms).contains(&pause) {
                pauses.push(pause);
            }
        }
    }
    pauses.sort_by(f64::total_cmp);
    pauses
}
