//! The `switchboard` binary under test, run as a child process exactly as it is deployed.
//!
//! [`Bridge::prepare`] makes a temp dir with `config.yaml` (SQLite file in the same dir or a fresh
//! PostgreSQL database, a free loopback port for `appservice.listen`, operators `@alice:localhost`
//! admin and `@bob:localhost` operator, short retry delays) and runs
//! `switchboard generate-registration`, so the registration exists before the homeserver that
//! loads it starts. [`Bridge::set_homeserver`] then points the config at that homeserver, and
//! [`Bridge::spawn`] + [`Bridge::wait_ready`] run `switchboard run -c config.yaml` until
//! `/_switchboard/health` answers 200. The child's stdout and stderr go (appended, across
//! restarts) to `bridge.log`; [`Bridge::log_tail`] shows its end in failure messages.
//!
//! [`Bridge::kill`] is SIGKILL — the crash the durability tests want — and [`Bridge::restart`] is
//! kill + spawn + wait_ready on the same config, database and port.
//!
//! `SWITCHBOARD_*` variables of the test's environment (such as `SWITCHBOARD_CACHE`) are removed
//! from the child's, because the bridge reads `SWITCHBOARD_<SECTION>__<KEY>` as config overrides.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_yaml::Value;
use tempfile::TempDir;

use super::{free_port, kill_process_group, reap_child, tail_file, SIGKILL, SIGTERM};

/// How long the bridge may take to answer `/_switchboard/health` after being spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Which store the bridge runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Both backends, for tests that run the same body against each.
    pub const ALL: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
}

/// A hook that edits the generated `config.yaml` before it is written.
pub type ConfigHook = Box<dyn Fn(&mut Value) + Send + Sync>;

/// What a test may vary in the bridge's config. `Default` is what most tests want.
pub struct BridgeOptions {
    pub backend: Backend,
    /// `none`, `prefix` or `signature`.
    pub attribution: String,
    pub max_attempts: u32,
    /// A duration like `200ms`.
    pub retry_base: String,
    /// A duration like `2s`.
    pub retry_max: String,
    pub max_upload_bytes: u64,
    /// Operators besides `@alice:localhost` (admin) and `@bob:localhost` (operator):
    /// (user id, level).
    pub extra_operators: Vec<(String, String)>,
    /// `logging.filter`; the environment variable `SWITCHBOARD_TEST_LOG` overrides it.
    pub log_filter: String,
    /// Last word on the config: called with the whole YAML value before it is written.
    pub edit_config: Option<ConfigHook>,
}

impl Default for BridgeOptions {
    fn default() -> Self {
        BridgeOptions {
            backend: Backend::Sqlite,
            attribution: "none".into(),
            max_attempts: 4,
            retry_base: "200ms".into(),
            retry_max: "2s".into(),
            max_upload_bytes: 10 * 1024 * 1024,
            extra_operators: Vec::new(),
            log_filter:
                "switchboard=debug,switchboard_webchat=debug,switchboard_channel=debug,info".into(),
            edit_config: None,
        }
    }
}

impl BridgeOptions {
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    pub fn attribution(mut self, attribution: &str) -> Self {
        self.attribution = attribution.into();
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    pub fn retry_base(mut self, d: &str) -> Self {
        self.retry_base = d.into();
        self
    }

    pub fn max_upload_bytes(mut self, n: u64) -> Self {
        self.max_upload_bytes = n;
        self
    }

    pub fn operator(mut self, user_id: &str, level: &str) -> Self {
        self.extra_operators.push((user_id.into(), level.into()));
        self
    }

    /// Change the generated config before the bridge starts; hooks given in several calls all
    /// run, in order.
    /// Enables a channel: `section` (JSON) becomes `channels.<name>` of the config, and the
    /// channel crate logs at debug level.
    pub fn channel(mut self, name: &str, section: serde_json::Value) -> Self {
        let value = serde_yaml::to_value(&section).unwrap_or(Value::Null);
        let key = name.to_string();
        self.log_filter = format!("{},switchboard_{name}=debug", self.log_filter);
        self.edit_config(move |config| {
            if let Some(channels) = config.get_mut("channels").and_then(Value::as_mapping_mut) {
                channels.insert(key.as_str().into(), value.clone());
            }
        })
    }

    /// Sets keys of the web chat's section (`channels.webchat`), keeping the others.
    pub fn webchat(self, keys: serde_json::Value) -> Self {
        self.edit_config(move |config| {
            let Some(section) = config
                .get_mut("channels")
                .and_then(|c| c.get_mut("webchat"))
                .and_then(Value::as_mapping_mut)
            else {
                return;
            };
            for (k, v) in keys.as_object().into_iter().flatten() {
                let v = serde_yaml::to_value(v).unwrap_or(Value::Null);
                section.insert(k.as_str().into(), v);
            }
        })
    }

    pub fn edit_config(mut self, hook: impl Fn(&mut Value) + Send + Sync + 'static) -> Self {
        self.edit_config = Some(match self.edit_config.take() {
            Some(earlier) => Box::new(move |c: &mut Value| {
                earlier(c);
                hook(c);
            }),
            None => Box::new(hook),
        });
        self
    }
}

/// The bridge under test: its temp dir (config, registration, SQLite db, log) and child process.
pub struct Bridge {
    dir: TempDir,
    port: u16,
    database_url: String,
    child: Option<Child>,
    http: reqwest::Client,
}

/// The `switchboard` binary built from this checkout, or `SWITCHBOARD_TEST_BINARY` when set.
///
/// Checkouts (git worktrees) that share one build dir share its `target/debug/switchboard`:
/// the last build from any of them wins, and a suite could run another checkout's bridge, or
/// have it swapped mid-suite. So the rig asks the binary which checkout built it and, when it is
/// this one, pins it: a hard link private to this test process (an inode no later build
/// replaces; links of processes that are gone are removed). When another checkout's build holds
/// the shared path, it runs the newest `target/debug/deps/switchboard-<hash>` built from this
/// checkout instead.
pub fn binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(path) = std::env::var_os("SWITCHBOARD_TEST_BINARY") {
        return PathBuf::from(path);
    }
    BINARY.get_or_init(pinned_binary).clone()
}

fn pinned_binary() -> PathBuf {
    let uplifted = PathBuf::from(env!("CARGO_BIN_EXE_switchboard"));
    let ours = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built_here = |candidate: &Path| {
        // The unit-test binary of the crate has the same name; these arguments make it list
        // no test and exit at once.
        std::process::Command::new(candidate)
            .args(["--list", "--exact", "rig-probe"])
            .env("SWITCHBOARD_PRINT_SOURCE_DIR", "1")
            .output()
            .ok()
            .filter(|out| out.status.success())
            .is_some_and(|out| Path::new(String::from_utf8_lossy(&out.stdout).trim()) == ours)
    };
    let dir = uplifted.parent().map(Path::to_path_buf).unwrap_or_default();
    // Pins of test processes that have ended.
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("switchboard-rig-pin-"));
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if built_here(&uplifted) {
        let pin = dir.join(format!("switchboard-rig-pin-{}", std::process::id()));
        let _ = std::fs::remove_file(&pin);
        if std::fs::hard_link(&uplifted, &pin).is_ok() && built_here(&pin) {
            return pin;
        }
    }
    let mut candidates: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir.join("deps"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("switchboard-"))
                .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    // Newest first: the latest build from this checkout.
    candidates.sort_by(|a, b| b.0.cmp(&a.0));
    let chosen = candidates
        .into_iter()
        .map(|(_, p)| p)
        .find(|p| built_here(p));
    eprintln!(
        "rig: {} was built from another checkout; running {:?}",
        uplifted.display(),
        chosen
    );
    chosen.unwrap_or(uplifted)
}

fn yaml(v: serde_json::Value) -> anyhow::Result<Value> {
    serde_yaml::to_value(v).context("converting JSON to YAML")
}

impl Bridge {
    /// Writes config.yaml and registration.yaml in a new temp dir. The homeserver URL is a
    /// placeholder until [`Bridge::set_homeserver`].
    pub async fn prepare(options: &BridgeOptions) -> anyhow::Result<Bridge> {
        let dir = tempfile::Builder::new()
            .prefix("sb-bridge-")
            .tempdir()
            .context("creating bridge temp dir")?;
        let mut dir = dir;
        if super::keep_dirs() {
            dir.disable_cleanup(true);
        }
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let database_url = match options.backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("switchboard.db").display()),
            Backend::Postgres => super::postgres::fresh_database_url().await?,
        };
        let mut operators = serde_json::Map::new();
        operators.insert("@alice:localhost".into(), "admin".into());
        operators.insert("@bob:localhost".into(), "operator".into());
        for (user, level) in &options.extra_operators {
            operators.insert(user.clone(), level.clone().into());
        }
        let log_filter =
            std::env::var("SWITCHBOARD_TEST_LOG").unwrap_or_else(|_| options.log_filter.clone());
        let mut config = yaml(serde_json::json!({
            "homeserver": {"url": "http://127.0.0.1:9", "domain": "localhost"},
            "appservice": {
                "listen": format!("127.0.0.1:{port}"),
                "url": base,
                "public_url": base,
                "id": "switchboard",
                "bot_localpart": "switchboard",
                "bot_displayname": "Switchboard",
                "ghost_prefix": "sb_",
                "registration": dir.path().join("registration.yaml").to_string_lossy(),
            },
            "database": {"url": database_url},
            // A fixed name: a restarted bridge takes its lease back at once (docs/ha.md).
            "ha": {"instance_id": format!("rig-{port}")},
            "bridge": {
                "attribution": options.attribution,
                "operators": operators,
                "max_attempts": options.max_attempts,
                "retry_base": options.retry_base,
                "retry_max": options.retry_max,
            },
            "channels": {
                "webchat": {
                    "enabled": true,
                    "site_name": "Acme Support",
                    "allowed_origins": [base],
                    "max_upload_bytes": options.max_upload_bytes,
                    "rate_limit_per_minute": 600,
                    "rate_limit_burst": 100,
                    // Every test visitor comes from 127.0.0.1: the per-address and overall
                    // limits are the flood tests' to set (tests/abuse.rs).
                    "sessions_per_address_per_minute": 100_000,
                    "sessions_per_minute": 100_000,
                    "new_conversations_per_address_per_minute": 100_000,
                    "new_conversations_per_minute": 100_000,
                    "uploads_per_address_per_minute": 100_000,
                }
            },
            "logging": {"filter": log_filter},
        }))?;
        if let Some(hook) = &options.edit_config {
            hook(&mut config);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building HTTP client")?;
        let bridge = Bridge {
            dir,
            port,
            database_url,
            child: None,
            http,
        };
        bridge.write_config(&config)?;

        let out = tokio::process::Command::new(binary())
            .arg("generate-registration")
            .arg("-c")
            .arg(bridge.config_path())
            .arg("-r")
            .arg(bridge.registration_path())
            .current_dir(bridge.dir())
            .env_clear_switchboard()
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {} generate-registration", binary().display()))?;
        if !out.status.success() || !bridge.registration_path().exists() {
            bail!(
                "switchboard generate-registration failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(bridge)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A second instance of this bridge, for the HA tests: its own temp dir and port, the same
    /// config otherwise (the same database, registration and tokens).
    pub fn twin(&self) -> anyhow::Result<Bridge> {
        let dir = tempfile::Builder::new()
            .prefix("sb-bridge-twin-")
            .tempdir()
            .context("creating the twin's temp dir")?;
        let mut dir = dir;
        if super::keep_dirs() {
            dir.disable_cleanup(true);
        }
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        std::fs::copy(
            self.registration_path(),
            dir.path().join("registration.yaml"),
        )
        .context("copying the registration")?;
        let mut config = self.config()?;
        if let Some(ha) = config.get_mut("ha").and_then(Value::as_mapping_mut) {
            ha.insert("instance_id".into(), format!("rig-{port}").into());
        }
        if let Some(a) = config.get_mut("appservice").and_then(Value::as_mapping_mut) {
            a.insert("listen".into(), format!("127.0.0.1:{port}").into());
            a.insert("public_url".into(), base.clone().into());
            a.insert(
                "registration".into(),
                dir.path()
                    .join("registration.yaml")
                    .to_string_lossy()
                    .into(),
            );
        }
        let twin = Bridge {
            dir,
            port,
            database_url: self.database_url.clone(),
            child: None,
            http: self.http.clone(),
        };
        twin.write_config(&config)?;
        Ok(twin)
    }

    /// Sets the registration's `url` (where the homeserver pushes transactions), before the
    /// homeserver that loads it starts.
    pub fn set_registration_url(&self, url: &str) -> anyhow::Result<()> {
        let mut reg = self.registration()?;
        if let Some(m) = reg.as_mapping_mut() {
            m.insert("url".into(), url.into());
        }
        let text = serde_yaml::to_string(&reg).context("serialising registration.yaml")?;
        std::fs::write(self.registration_path(), text).context("writing registration.yaml")
    }

    /// Sends a signal to the bridge's process group (SIGSTOP, SIGCONT, …).
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            kill_process_group(child.id(), signal);
        }
    }

    /// The exit status, once the process has exited (`None` while it runs or was never started).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    pub fn registration_path(&self) -> PathBuf {
        self.dir.path().join("registration.yaml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("bridge.log")
    }

    /// `sqlite://…` or `postgres://…`, as written in the config.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The registration as YAML (tokens: `as_token`, `hs_token`).
    pub fn registration(&self) -> anyhow::Result<Value> {
        let text = std::fs::read_to_string(self.registration_path())
            .context("reading registration.yaml")?;
        serde_yaml::from_str(&text).context("parsing registration.yaml")
    }

    /// The config as YAML.
    pub fn config(&self) -> anyhow::Result<Value> {
        let text = std::fs::read_to_string(self.config_path()).context("reading config.yaml")?;
        serde_yaml::from_str(&text).context("parsing config.yaml")
    }

    pub fn write_config(&self, config: &Value) -> anyhow::Result<()> {
        let text = serde_yaml::to_string(config).context("serialising config.yaml")?;
        std::fs::write(self.config_path(), text).context("writing config.yaml")
    }

    /// Edits config.yaml in place (takes effect on the next spawn/restart).
    pub fn edit_config(&self, edit: impl FnOnce(&mut Value)) -> anyhow::Result<()> {
        let mut config = self.config()?;
        edit(&mut config);
        self.write_config(&config)
    }

    /// Points the bridge at a homeserver.
    pub fn set_homeserver(&self, url: &str, domain: &str) -> anyhow::Result<()> {
        let url = url.to_string();
        let domain = domain.to_string();
        self.edit_config(move |c| {
            if let Some(hs) = c.get_mut("homeserver").and_then(Value::as_mapping_mut) {
                hs.insert("url".into(), url.into());
                hs.insert("domain".into(), domain.into());
            }
        })
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts `switchboard run -c config.yaml` (does not wait; see [`Bridge::wait_ready`]).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("the bridge is already running");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening bridge.log")?;
        let err = log.try_clone().context("duplicating log handle")?;
        let filter = self
            .config()
            .ok()
            .and_then(|c| {
                c.get("logging")?
                    .get("filter")?
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "info".into());
        let mut cmd = std::process::Command::new(binary());
        cmd.arg("run")
            .arg("-c")
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .env("RUST_LOG", filter)
            .env("RUST_BACKTRACE", "1")
            .env("NO_COLOR", "1");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                cmd.env_remove(key);
            }
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", binary().display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until `/_switchboard/health` answers 200; fails early if the process exits.
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let url = format!("{}/_switchboard/health", self.base_url());
        let Some(child) = self.child.as_mut() else {
            bail!("the bridge is not running")
        };
        if let Err(e) = super::wait_http_ok(
            "the bridge's /_switchboard/health",
            &self.http,
            &url,
            READY_TIMEOUT,
            child,
        )
        .await
        {
            bail!("{e:#}\n--- bridge.log ---\n{}", self.log_tail());
        }
        Ok(())
    }

    /// spawn + wait_ready.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.spawn()?;
        self.wait_ready().await
    }

    /// SIGKILL: the crash durability tests want. Reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_process_group(child.id(), SIGKILL);
            reap_child(&mut child, Duration::from_secs(5));
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(&mut self, grace: Duration) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            kill_process_group(child.id(), SIGTERM);
            tokio::task::spawn_blocking(move || reap_child(&mut child, grace))
                .await
                .context("waiting for the bridge to exit")?;
        }
        Ok(())
    }

    /// kill + spawn + wait_ready, same config, database and port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.start().await
    }

    /// The last 80 lines of bridge.log (colour codes removed).
    pub fn log_tail(&self) -> String {
        super::strip_ansi(&tail_file(&self.log_path(), 80))
    }

    /// The whole bridge.log, colour codes removed (for tests that assert the bridge logged
    /// something).
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| super::strip_ansi(&String::from_utf8_lossy(&b)))
            .unwrap_or_default()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
        // libtest shows a test's captured output only when the test fails, so this costs nothing
        // on success and saves a rerun on failure (also for tests that fail by returning Err).
        eprintln!(
            "--- bridge.log (last lines) ---\n{}\n--- end of bridge.log ---",
            self.log_tail()
        );
        if super::keep_dirs() {
            eprintln!("kept bridge dir {}", self.dir.path().display());
        }
    }
}

/// Removes `SWITCHBOARD_*` variables from a command's environment (see the module doc).
trait EnvClearSwitchboard {
    fn env_clear_switchboard(&mut self) -> &mut Self;
}

impl EnvClearSwitchboard for tokio::process::Command {
    fn env_clear_switchboard(&mut self) -> &mut Self {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                self.env_remove(key);
            }
        }
        self
    }
}
