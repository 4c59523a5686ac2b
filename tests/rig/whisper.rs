//! A real Whisper speech-to-text server for one test: `scripts/whisper-server.py` (the
//! OpenAI-compatible `POST /v1/audio/transcriptions` over faster-whisper and the multilingual
//! Whisper "base" model) from the project's cached virtualenv (`scripts/install-whisper.sh`,
//! run once per test process; it installs on first use). It listens on a loopback port of its
//! own, in its own process group, in the idle CPU and I/O classes (`chrt -i 0 ionice -c 3`, as
//! the README says to start a self-hosted engine beside the bridge), with its log in a temp
//! dir; dropping the handle kills it.
//! Each request it answers is one line of its log, so a test can count the engine's runs.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tempfile::TempDir;

use super::{free_port, kill_process_group, reap_child, tail_file};

/// Loading the model takes a few seconds; a loaded machine more.
const START_TIMEOUT: Duration = Duration::from_secs(120);

static VENV: tokio::sync::Mutex<Option<String>> = tokio::sync::Mutex::const_new(None);

/// Path of the Whisper virtualenv (its model is in `model/`), installing it on first use.
pub async fn ensure_venv() -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(
        super::run_script_cached(&VENV, "install-whisper.sh").await?,
    ))
}

/// A running Whisper server.
pub struct Whisper {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl Whisper {
    /// Start on a free port; `max_seconds` is the longest audio it transcribes.
    pub async fn start(max_seconds: u32) -> anyhow::Result<Whisper> {
        Self::start_on(free_port()?, max_seconds).await
    }

    /// Start on `port` (a port a bridge was already told about, say).
    pub async fn start_on(port: u16, max_seconds: u32) -> anyhow::Result<Whisper> {
        Self::start_scheduled(port, max_seconds, true).await
    }

    /// Start on `port`, in the idle classes or (`idle` false: what the media bench compares
    /// with) in the caller's own, at the server's `--nice 10` only.
    pub async fn start_scheduled(
        port: u16,
        max_seconds: u32,
        idle: bool,
    ) -> anyhow::Result<Whisper> {
        let venv = ensure_venv().await?;
        let dir = tempfile::Builder::new().prefix("sb-whisper-").tempdir()?;
        let log = std::fs::File::create(dir.path().join("whisper.log"))?;
        // chrt and ionice exec the server: the child's pid is the server's.
        let python = venv.join("bin/python");
        let mut cmd = if idle {
            let mut cmd = std::process::Command::new("chrt");
            cmd.args(["-i", "0", "ionice", "-c", "3"]).arg(python);
            cmd
        } else {
            std::process::Command::new(python)
        };
        cmd.arg(super::repo_root().join("scripts/whisper-server.py"))
            .arg("--model")
            .arg(venv.join("model"))
            .args(["--port", &port.to_string()])
            .args(["--max-seconds", &max_seconds.to_string()])
            .env("HF_HUB_OFFLINE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().context("spawning whisper-server.py")?;
        let mut server = Whisper {
            dir,
            port,
            child: Some(child),
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let http = reqwest::Client::new();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    bail!(
                        "whisper-server.py exited ({status}):\n{}",
                        tail_file(&self.log_path(), 30)
                    );
                }
            }
            let health = format!("http://127.0.0.1:{}/health", self.port);
            if let Ok(r) = http.get(&health).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "whisper-server.py not ready within {START_TIMEOUT:?}:\n{}",
                    tail_file(&self.log_path(), 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The transcription endpoint, as `media.transcription.url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/audio/transcriptions", self.port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("whisper.log")
    }

    /// Transcription requests answered so far (each is one access-log line).
    pub fn transcriptions(&self) -> usize {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("POST /v1/audio/transcriptions"))
            .count()
    }
}

impl Drop for Whisper {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_process_group(child.id(), super::SIGKILL);
            reap_child(&mut child, Duration::from_secs(5));
        }
    }
}
