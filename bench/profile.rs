//! Where Synapse's time goes: py-spy (a sampling profiler for Python, from PyPI) recording
//! Synapse's stacks while one throughput path runs, reduced to the functions that took the
//! samples.
//!
//! py-spy is installed into the cached Synapse virtualenv on first use (`pip install py-spy`);
//! it reads the target's memory with ptrace, which needs root or `CAP_SYS_PTRACE` (or
//! `kernel.yama.ptrace_scope` 0). When it cannot be installed or attach, the profile is left
//! out with a warning, not the run.
//!
//! A recording is `py-spy record --format raw --nolineno --nonblocking`: collapsed stacks
//! (`frame;frame;… count`, one line per distinct stack, idle threads left out), stopped with
//! SIGINT at the end of the path. [`summarise`] ranks functions by own samples (the frame on
//! top of the stack) and by total samples (anywhere on the stack, once per stack), writes the
//! top ones to `bench/results/synapse-profile-<path>.txt` and returns them for the JSON.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// Functions kept per ranking.
pub const TOP: usize = 25;

/// `py-spy` from the Synapse virtualenv, installed there if missing.
pub async fn ensure() -> anyhow::Result<PathBuf> {
    let venv = crate::rig::synapse::ensure_venv().await?;
    let bin = venv.join("bin").join("py-spy");
    if bin.exists() {
        return Ok(bin);
    }
    let pip = venv.join("bin").join("pip");
    let out = tokio::process::Command::new(&pip)
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "py-spy",
        ])
        .output()
        .await
        .with_context(|| format!("running {}", pip.display()))?;
    if !out.status.success() || !bin.exists() {
        bail!(
            "pip install py-spy failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(bin)
}

/// A py-spy recording of one process; [`Recording::stop`] ends it and writes the raw file.
pub struct Recording {
    child: Child,
    raw: PathBuf,
    log: PathBuf,
}

impl Recording {
    pub fn start(py_spy: &Path, pid: u32, raw: PathBuf) -> anyhow::Result<Recording> {
        let log = raw.with_extension("log");
        let child = Command::new(py_spy)
            .args(["record", "--format", "raw", "--nolineno", "--nonblocking"])
            .args(["--rate", "100", "--pid", &pid.to_string(), "--output"])
            .arg(&raw)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", py_spy.display()))?;
        Ok(Recording { child, raw, log })
    }

    /// SIGINT (py-spy writes its file on it), then waits up to 20 s for the file.
    pub async fn stop(mut self) -> anyhow::Result<PathBuf> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait()? {
                if !self.raw.exists() {
                    bail!(
                        "py-spy exited ({status}) without a profile: {}",
                        std::fs::read_to_string(&self.log)
                            .unwrap_or_default()
                            .trim()
                    );
                }
                return Ok(self.raw.clone());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        bail!("py-spy did not stop in 20 s")
    }
}

/// A frame as py-spy names it, `function (file)`, shortened to `file:function`.
fn frame_name(frame: &str) -> String {
    match frame.rsplit_once(" (") {
        Some((func, file)) => format!("{}:{func}", file.trim_end_matches(')')),
        None => frame.to_string(),
    }
}

/// Where Synapse's code that a busy sample was in was entered: for a database thread, the
/// transaction function it ran (the frame after `DatabasePool.new_transaction`; a commit's
/// samples name no function, since Synapse commits after the function returned); for the
/// reactor thread, the outermost frame of Synapse's request handlers, handlers, appservice
/// sender, notifier, event persistence or push code. `None`: none of those (the reactor's own
/// bookkeeping, metrics, garbage collection…).
fn entry(frames: &[String]) -> Option<String> {
    if let Some(at) = frames
        .iter()
        .position(|f| f.ends_with(":DatabasePool.new_transaction"))
    {
        let rest = &frames[at + 1..];
        if rest
            .first()
            .is_some_and(|f| f.ends_with(":LoggingDatabaseConnection.commit"))
        {
            return Some("database: commit (any transaction)".into());
        }
        return rest
            .iter()
            .find(|f| !f.starts_with("synapse/storage/database.py:"))
            .map(|f| format!("database: {}", short(f)));
    }
    const HANDLERS: [&str; 9] = [
        "synapse/rest/",
        "synapse/handlers/",
        "synapse/appservice/",
        "synapse/notifier.py:",
        "synapse/storage/controllers/",
        "synapse/push/",
        "synapse/federation/",
        "synapse/replication/",
        "synapse/events/",
    ];
    frames
        .iter()
        .find(|f| HANDLERS.iter().any(|h| f.starts_with(h)))
        .map(|f| short(f))
}

/// `synapse/handlers/sync.py:SyncHandler.wait_for_sync_for_user` → `handlers/sync.py:SyncHandler.wait_for_sync_for_user`.
fn short(frame: &str) -> String {
    frame.trim_start_matches("synapse/").to_string()
}

/// Reads a raw (collapsed) py-spy file; writes the rankings to `out` (a text file) and returns
/// them as JSON: total samples, the top functions by own and by total samples with their
/// share of all samples, and the busy samples by where they entered Synapse's code ([`entry`])
/// per 1,000 of the burst's `messages` (100 samples are a second of one thread's time).
pub fn summarise(raw: &Path, out: &Path, title: &str, messages: u64) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(raw).with_context(|| format!("reading {}", raw.display()))?;
    let mut own: HashMap<String, u64> = HashMap::new();
    let mut total: HashMap<String, u64> = HashMap::new();
    let mut samples = 0u64;
    // What the samples were doing, coarsely: waiting (the reactor in epoll, a worker thread on
    // its condition), committing a database transaction (on SQLite: the fsync), or other work.
    let (mut waiting, mut committing) = (0u64, 0u64);
    let mut entries: HashMap<String, u64> = HashMap::new();
    for line in text.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(count) = count.trim().parse::<u64>() else {
            continue;
        };
        samples += count;
        // The first frames name the process and thread; the rest are Python frames, outermost
        // first.
        let frames: Vec<String> = stack
            .split(';')
            .filter(|f| !f.starts_with("process ") && !f.starts_with("thread "))
            .map(frame_name)
            .collect();
        if let Some(top) = frames.last() {
            *own.entry(top.clone()).or_default() += count;
        }
        if frames.iter().any(|f| f.ends_with(":EPollReactor.doPoll"))
            || frames
                .last()
                .is_some_and(|f| f.ends_with(":Condition.wait"))
        {
            waiting += count;
        } else {
            if frames
                .iter()
                .any(|f| f.ends_with(":LoggingDatabaseConnection.commit"))
            {
                committing += count;
            }
            *entries
                .entry(entry(&frames).unwrap_or_else(|| "(elsewhere)".into()))
                .or_default() += count;
        }
        let mut once: Vec<&String> = frames.iter().collect();
        once.sort();
        once.dedup();
        for f in once {
            *total.entry(f.clone()).or_default() += count;
        }
    }
    let rank = |m: &HashMap<String, u64>| {
        let mut v: Vec<(String, u64)> = m.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(TOP);
        v
    };
    let (own_top, total_top, entry_top) = (rank(&own), rank(&total), rank(&entries));
    let per_1000 = |n: u64| n as f64 * 1000.0 / messages.max(1) as f64;
    let share = |n: u64| n as f64 * 100.0 / samples.max(1) as f64;
    let mut report = format!(
        "Synapse profile, {title}: {samples} samples (py-spy, 100 Hz, active threads only)\n\
         waiting (reactor in epoll, idle worker threads): {:.1}%; database commits: {:.1}%; \
         other work: {:.1}%\n\n\
         Top {TOP} by own samples (the function itself was running):\n",
        share(waiting),
        share(committing),
        share(samples - waiting - committing)
    );
    for (f, n) in &own_top {
        report.push_str(&format!("{n:>8} {:>5.1}%  {f}\n", share(*n)));
    }
    report.push_str(&format!(
        "\nTop {TOP} by total samples (the function was on the stack):\n"
    ));
    for (f, n) in &total_top {
        report.push_str(&format!("{n:>8} {:>5.1}%  {f}\n", share(*n)));
    }
    report.push_str(&format!(
        "\nBusy samples by where they entered Synapse's code, per 1,000 messages (of {messages}; \
         100 samples = one thread busy 1 s):\n"
    ));
    for (f, n) in &entry_top {
        report.push_str(&format!("{:>8.0} {:>5.1}%  {f}\n", per_1000(*n), share(*n)));
    }
    std::fs::write(out, report).with_context(|| format!("writing {}", out.display()))?;
    let list = |v: &[(String, u64)]| {
        v.iter()
            .map(|(f, n)| json!({"function": f, "samples": n, "percent": (share(*n) * 10.0).round() / 10.0}))
            .collect::<Vec<_>>()
    };
    Ok(json!({
        "samples": samples,
        "waiting_percent": (share(waiting) * 10.0).round() / 10.0,
        "commit_percent": (share(committing) * 10.0).round() / 10.0,
        "file": out.display().to_string(),
        // The first ten of each ranking; the file has the top TOP.
        "top_own": list(&own_top[..own_top.len().min(10)]),
        "top_total": list(&total_top[..total_top.len().min(10)]),
        "busy_per_1000_by_entry": entry_top
            .iter()
            .map(|(f, n)| json!({"entry": f, "samples_per_1000": per_1000(*n).round()}))
            .collect::<Vec<_>>(),
    }))
}

/// Where Synapse's access log (`homeserver.log`) ends now: the offset to count from.
pub fn log_offset(log: &Path) -> u64 {
    std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// The log since `from` (empty when it cannot be read).
fn log_since(log: &Path, from: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    text
}

/// How long a path's sender paused between two sends in one room since `from` in Synapse's
/// log (`rig::synapse::send_pauses`; pauses of 500 ms or more, between bursts, left out): the
/// bridge's own work between two messages of one conversation, or the benchmark's. Sixteen
/// senders that pause alike reach Synapse together and are answered to `/sync` as one wave;
/// docs/performance.md, "The lobby off the customer's path".
pub fn send_pauses_since(log: &Path, from: u64, txn_prefix: &str) -> Value {
    let p = crate::rig::synapse::send_pauses(&log_since(log, from), txn_prefix, 500.0);
    if p.is_empty() {
        return json!({"n": 0});
    }
    json!({
        "n": p.len(),
        "p50_ms": crate::percentile(&p, 50.0),
        "p90_ms": crate::percentile(&p, 90.0),
        "mean_ms": (p.iter().sum::<f64>() / p.len() as f64 * 10.0).round() / 10.0,
        "from_50_ms": p.iter().filter(|x| **x >= 50.0).count(),
    })
}

/// The requests Synapse answered since `from` in its log, by kind: `METHOD /path (who)`, ids in
/// the path replaced by `{id}` (rooms, events, users, transactions), `who` being `bridge` (the
/// bot or a ghost: the appservice's token), `client` (the benchmark's users) or `-`. Returns
/// (kind, count), most frequent first.
pub fn requests_since(log: &Path, from: u64) -> Vec<(String, u64)> {
    let counts = crate::rig::synapse::request_counts(&log_since(log, from));
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}
