//! The relay benchmark: the bridge measured beside a plain client talking straight to the same
//! Synapse, in one run, so the figures that matter are ratios that survive a noisy machine.
//!
//! `scripts/bench.sh` (= `cargo bench --bench relay`, a release build of the bridge) runs it,
//! prints a table and writes `bench/results/latest.json`.
//!
//! What is measured, on the rig of the integration tests (real Synapse from the cached
//! virtualenv, the real `switchboard` binary, web chat visitors over its JSON API):
//!
//! - **direct**: `@alice` sends `m.text` to a room with the plain client; latency runs until
//!   `@bob`'s `/sync` long-poll returns it. This is the limit on this machine. The room has the
//!   same people as a portal: besides the sender, two operators receive each message.
//! - **bridge inbound**: a visitor `POST`s `/webchat/api/v1/messages`; latency runs until `@bob`
//!   (an operator in the portal) sees the ghost's message in his `/sync`.
//! - **bridge outbound**: `@alice` sends in the portal; latency runs until the visitor's
//!   `GET /webchat/api/v1/events` stream delivers the agent message.
//! - **appservice direct** (latency only, a control): the benchmark itself sends as a visitor's
//!   ghost with the bridge's `as_token` into its portal, exactly as the bridge does (`?user_id=`
//!   and `?ts=`), observed by `@bob`'s sync like **bridge inbound**. No bridge code runs on the
//!   way in. It is a control, not a floor: Synapse's time for it varies from round to round as
//!   much as the bridge's own share, so compare it with **bridge inbound** round by round.
//!
//! Latency: one message in flight at a time, in rounds that interleave the three paths (rotating
//! their order), so slow spells of the machine hit all three alike. Throughput: every
//! conversation (room or portal) sends back to back in parallel, each sender waiting only for its
//! own request's answer; messages per second = count / (first send → last one seen). The bridge's
//! CPU seconds (utime + stime from /proc) are taken around each throughput run after the machine
//! settles, so they include the work that trails the last message (delivery statuses, queue
//! bookkeeping). Then the bridge is stopped, its SQLite store is seeded with idle conversations
//! (`bench/seed.rs`), and its resident memory at rest and its start time (spawn →
//! `/_switchboard/health` 200) are measured.
//!
//! Counts come from the environment (see [`Settings`]); `--quick` shrinks them for a smoke run.

#[path = "../tests/rig/mod.rs"]
#[allow(dead_code, unused_imports)]
mod rig;

mod clients;
mod procfs;
mod seed;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use clients::{MxClient, Recorder, SseWatcher, WebVisitor};
use rig::env::{ALICE_PASSWORD, BOB_PASSWORD};
use rig::{Bridge, BridgeOptions, Synapse};

const CAROL_PASSWORD: &str = "carol-bench-password";

/// How long one message may take before the run is declared broken.
const WAIT: Duration = Duration::from_secs(60);

/// Run sizes. Environment: `SWITCHBOARD_BENCH_<NAME>` (upper case), e.g.
/// `SWITCHBOARD_BENCH_LATENCY=600`.
#[derive(Clone, Debug)]
struct Settings {
    /// Messages per path for latency (split over `rounds`).
    latency: usize,
    /// Unmeasured messages per path first.
    warmup: usize,
    rounds: usize,
    /// Messages per path for throughput (split over `throughput_rounds`).
    throughput: usize,
    throughput_rounds: usize,
    /// Rounds of bridge inbound bursts with and without the search index (0: none).
    index_ab_rounds: usize,
    /// Conversations sending in parallel during throughput runs (rooms for direct, portals for
    /// the bridge).
    conversations: usize,
    /// Conversations in the store for the idle-memory reading.
    idle: u64,
    /// Conversations (portals) in the store for the start-time reading.
    portals: u64,
    /// Starts timed with `portals` in the store (the median is reported).
    starts: usize,
    out: PathBuf,
}

impl Settings {
    fn load(quick: bool) -> anyhow::Result<Settings> {
        let mut s = if quick {
            Settings {
                latency: 60,
                warmup: 5,
                rounds: 2,
                throughput: 200,
                throughput_rounds: 1,
                index_ab_rounds: 1,
                conversations: 8,
                idle: 2_000,
                portals: 10_000,
                starts: 1,
                out: rig::repo_root().join("bench/results/quick.json"),
            }
        } else {
            Settings {
                latency: 300,
                warmup: 20,
                rounds: 3,
                throughput: 960,
                throughput_rounds: 2,
                index_ab_rounds: 2,
                conversations: 16,
                idle: 10_000,
                portals: 100_000,
                starts: 3,
                out: rig::repo_root().join("bench/results/latest.json"),
            }
        };
        let num = |name: &str, default: usize| -> anyhow::Result<usize> {
            match std::env::var(format!("SWITCHBOARD_BENCH_{name}")) {
                Ok(v) => v
                    .trim()
                    .replace('_', "")
                    .parse()
                    .with_context(|| format!("SWITCHBOARD_BENCH_{name}={v}")),
                Err(_) => Ok(default),
            }
        };
        s.latency = num("LATENCY", s.latency)?;
        s.warmup = num("WARMUP", s.warmup)?;
        s.rounds = num("ROUNDS", s.rounds)?.max(1);
        s.throughput = num("THROUGHPUT", s.throughput)?;
        s.throughput_rounds = num("THROUGHPUT_ROUNDS", s.throughput_rounds)?.max(1);
        s.index_ab_rounds = num("INDEX_AB_ROUNDS", s.index_ab_rounds)?;
        s.conversations = num("CONVERSATIONS", s.conversations)?.max(1);
        s.idle = num("IDLE", s.idle as usize)? as u64;
        s.portals = num("PORTALS", s.portals as usize)? as u64;
        s.starts = num("STARTS", s.starts)?.max(1);
        if let Ok(out) = std::env::var("SWITCHBOARD_BENCH_OUT") {
            s.out = PathBuf::from(out);
        }
        Ok(s)
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: scripts/bench.sh [--quick | --table FILE.json]   (SWITCHBOARD_BENCH_* settings: see scripts/bench.sh)");
        return std::process::ExitCode::SUCCESS;
    }
    // `--table FILE`: print the table of an earlier run's JSON and stop.
    if let Some(pos) = args.iter().position(|a| a == "--table") {
        let Some(path) = args.get(pos + 1) else {
            eprintln!("bench: --table needs a JSON file");
            return std::process::ExitCode::FAILURE;
        };
        return match std::fs::read_to_string(path)
            .map_err(anyhow::Error::from)
            .and_then(|t| Ok(serde_json::from_str::<Value>(&t)?))
        {
            Ok(report) => {
                print_table(&report);
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bench: cannot read {path}: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    // `cargo bench` passes `--bench`; anything else unknown is a mistake.
    if let Some(bad) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "--bench" | "--quick"))
    {
        eprintln!("bench: unknown argument {bad:?} (try --help)");
        return std::process::ExitCode::FAILURE;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(quick)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn say(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

static TXN: AtomicU64 = AtomicU64::new(0);

/// A transaction / client id unique in this run (and across runs: it starts with the time).
fn unique(prefix: &str) -> String {
    static START: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0)
    });
    format!("{prefix}{start}x{}", TXN.fetch_add(1, Ordering::Relaxed))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Latency summary in milliseconds (nearest-rank percentiles).
#[derive(Clone, Debug, Default)]
struct Latency {
    samples: Vec<f64>,
    /// p50 of each round, to show how much the machine moved during the run.
    round_p50: Vec<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

impl Latency {
    fn add_round(&mut self, round: Vec<f64>) {
        self.round_p50.push(percentile(&sorted(&round), 50.0));
        self.samples.extend(round);
    }
    fn p(&self, p: f64) -> f64 {
        percentile(&sorted(&self.samples), p)
    }
    fn json(&self) -> Value {
        let s = sorted(&self.samples);
        json!({
            "n": s.len(),
            "p50_ms": round3(percentile(&s, 50.0)),
            "p95_ms": round3(percentile(&s, 95.0)),
            "p99_ms": round3(percentile(&s, 99.0)),
            "min_ms": round3(s.first().copied().unwrap_or(f64::NAN)),
            "max_ms": round3(s.last().copied().unwrap_or(f64::NAN)),
            "mean_ms": round3(s.iter().sum::<f64>() / s.len().max(1) as f64),
            "round_p50_ms": self.round_p50.iter().map(|v| round3(*v)).collect::<Vec<_>>(),
        })
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A throughput reading summed over rounds.
#[derive(Clone, Debug, Default)]
struct Throughput {
    messages: usize,
    seconds: f64,
    /// Seconds until every sender had its answers (accepted, not yet necessarily seen).
    accept_seconds: f64,
    round_rates: Vec<f64>,
    bridge_cpu_s: f64,
    synapse_cpu_s: f64,
}

impl Throughput {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds
    }
    fn json(&self) -> Value {
        json!({
            "messages": self.messages,
            "seconds": round3(self.seconds),
            "msgs_per_s": round3(self.rate()),
            "accepted_msgs_per_s": round3(self.messages as f64 / self.accept_seconds),
            "round_msgs_per_s": self.round_rates.iter().map(|v| round3(*v)).collect::<Vec<_>>(),
            "bridge_cpu_s": round3(self.bridge_cpu_s),
            "bridge_cpu_s_per_1000": round3(self.bridge_cpu_s * 1000.0 / self.messages.max(1) as f64),
            "synapse_cpu_s": round3(self.synapse_cpu_s),
            "synapse_cpu_s_per_1000": round3(self.synapse_cpu_s * 1000.0 / self.messages.max(1) as f64),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Direct,
    Appservice,
    Inbound,
    Outbound,
}

impl Path {
    /// Latency runs also time `Appservice`: a ghost's send made by the benchmark itself with
    /// the bridge's `as_token`, into a portal. It is what any appservice pays in Synapse
    /// (identity assertion, the transaction pushed back to the appservice, a busier room),
    /// without the bridge's own work: a control for the inbound path, sent and observed the
    /// same way (not a floor: both vary from round to round by more than their difference).
    const LATENCY: [Path; 4] = [
        Path::Direct,
        Path::Appservice,
        Path::Inbound,
        Path::Outbound,
    ];
    const THROUGHPUT: [Path; 3] = [Path::Direct, Path::Inbound, Path::Outbound];
    fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Appservice => "appservice direct",
            Path::Inbound => "bridge inbound",
            Path::Outbound => "bridge outbound",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Appservice => "appservice",
            Path::Inbound => "inbound",
            Path::Outbound => "outbound",
        }
    }
}

/// Everything a run drives.
struct World {
    alice: MxClient,
    /// The ghost of the first visitor, driven with the bridge's `as_token` (see [`Path`]).
    ghost: MxClient,
    /// What `@bob` sees in his sync (direct and inbound messages).
    bob_seen: Recorder,
    /// What the visitors' event streams deliver (outbound messages).
    visitors_seen: Recorder,
    /// Plain rooms of `@alice` and `@bob`, one per parallel conversation.
    rooms: Vec<String>,
    /// Web chat visitors and their portal rooms, one per parallel conversation.
    visitors: Vec<WebVisitor>,
    portals: Vec<String>,
    bridge_pid: u32,
    synapse_pid: u32,
}

impl World {
    /// One message on `path` in conversation `k`, one in flight; returns (latency, time until
    /// the sender's request was answered).
    async fn one(&self, path: Path, k: usize, body: &str) -> anyhow::Result<(Duration, Duration)> {
        let t0 = Instant::now();
        let (ack, seen) = match path {
            Path::Direct => {
                self.alice
                    .send_text(&self.rooms[k], &unique("d"), body)
                    .await?;
                let ack = t0.elapsed();
                (ack, self.bob_seen.seen(body, WAIT).await?)
            }
            Path::Appservice => {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                self.ghost
                    .send_text_at(&self.portals[0], &unique("a"), body, now_ms)
                    .await?;
                let ack = t0.elapsed();
                (ack, self.bob_seen.seen(body, WAIT).await?)
            }
            Path::Inbound => {
                self.visitors[k].send(&unique("i"), body).await?;
                let ack = t0.elapsed();
                (ack, self.bob_seen.seen(body, WAIT).await?)
            }
            Path::Outbound => {
                self.alice
                    .send_text(&self.portals[k], &unique("o"), body)
                    .await?;
                let ack = t0.elapsed();
                (ack, self.visitors_seen.seen(body, WAIT).await?)
            }
        };
        Ok((seen.saturating_duration_since(t0), ack))
    }

    /// `per` messages from every conversation at once; returns (seconds until all were seen,
    /// seconds until all were answered).
    async fn burst(&self, path: Path, tag: &str, per: usize) -> anyhow::Result<(f64, f64)> {
        let n = self.rooms.len();
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for k in 0..n {
            let tag = tag.to_string();
            let alice = self.alice.clone();
            let room = match path {
                Path::Direct => self.rooms[k].clone(),
                Path::Outbound | Path::Appservice => self.portals[k].clone(),
                Path::Inbound => String::new(),
            };
            let visitor = self.visitors[k].clone();
            tasks.push(tokio::spawn(async move {
                for j in 0..per {
                    let body = format!("{tag} {k}-{j} {}", path.key());
                    match path {
                        Path::Inbound => visitor.send(&unique("ti"), &body).await?,
                        _ => {
                            alice.send_text(&room, &unique("t"), &body).await?;
                        }
                    }
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await.context("sender task")??;
        }
        let accepted = t0.elapsed().as_secs_f64();
        let recorder = if path == Path::Outbound {
            &self.visitors_seen
        } else {
            &self.bob_seen
        };
        let last = recorder
            .all_seen(tag, n * per, Duration::from_secs(600))
            .await?;
        Ok((last.saturating_duration_since(t0).as_secs_f64(), accepted))
    }

    fn cpu(&self) -> anyhow::Result<(procfs::Sample, procfs::Sample)> {
        Ok((
            procfs::sample(self.bridge_pid)?,
            procfs::sample(self.synapse_pid)?,
        ))
    }

    /// Waits until the bridge and Synapse are (nearly) idle: less than 3% of a core each over
    /// 300 ms, or 15 s at most. Keeps one run's trailing work out of the next.
    async fn settle(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = self.cpu()?;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.cpu()?;
            let busy = (now.0.cpu_s - last.0.cpu_s).max(now.1.cpu_s - last.1.cpu_s) / 0.3;
            if busy < 0.03 || Instant::now() > deadline {
                return Ok(());
            }
            last = now;
        }
    }
}

/// Spawns the bridge and times it: (first HTTP answer, health 200), polling every 2 ms.
async fn timed_start(bridge: &mut Bridge) -> anyhow::Result<(Duration, Duration)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let url = format!("{}/_switchboard/health", bridge.base_url());
    let t0 = Instant::now();
    bridge.spawn()?;
    let mut listening = None;
    loop {
        if !bridge.is_running() {
            bail!("the bridge exited while starting\n{}", bridge.log_tail());
        }
        if let Ok(resp) = http.get(&url).send().await {
            let at = t0.elapsed();
            listening.get_or_insert(at);
            if resp.status().is_success() {
                return Ok((listening.unwrap_or(at), at));
            }
        }
        if t0.elapsed() > Duration::from_secs(120) {
            bail!(
                "the bridge did not become healthy in 120 s\n{}",
                bridge.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn bridge_pid(bridge: &Bridge) -> anyhow::Result<u32> {
    procfs::find_pid(&bridge.config_path(), " run ")
}

fn git_revision() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(rig::repo_root())
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let rev = run(&["rev-parse", "--short", "HEAD"]);
    let dirty = !run(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if dirty {
        format!("{rev}+changes")
    } else {
        rev
    }
}

async fn run(quick: bool) -> anyhow::Result<()> {
    let settings = Settings::load(quick)?;
    say(format!("settings: {settings:?}"));
    let load_before = procfs::loadavg();
    let started = Instant::now();

    // ---- the rig ---------------------------------------------------------------------------
    say(format!(
        "bridge binary: {}",
        rig::bridge::binary().display()
    ));
    if cfg!(debug_assertions) {
        say("WARNING: this harness is a debug build; run it with `cargo bench` (release)");
    }
    // An experiment, not the default: `SWITCHBOARD_BENCH_BRIDGE_DB_DIR=/dev/shm` puts the
    // bridge's SQLite file on tmpfs, where fsync costs nothing — what the bridge would do on a
    // disk whose flushes were free. The default keeps it beside the config, on the same disk
    // as Synapse's database, as a real deployment would.
    let db_dir = std::env::var("SWITCHBOARD_BENCH_BRIDGE_DB_DIR")
        .ok()
        .filter(|d| !d.is_empty());
    let db_override = db_dir
        .as_ref()
        .map(|d| format!("sqlite://{d}/switchboard-bench-{}.db", unique("")));
    let db_for_hook = db_override.clone();
    let options = BridgeOptions {
        log_filter: "info".into(),
        ..BridgeOptions::default()
    }
    .edit_config(move |c| {
        // One visitor sends hundreds of messages a minute here; the per-visitor limit is for
        // abuse, not what is measured.
        if let Some(w) = c
            .get_mut("channels")
            .and_then(|c| c.get_mut("webchat"))
            .and_then(|w| w.as_mapping_mut())
        {
            w.insert(
                "rate_limit_per_minute".into(),
                serde_yaml::Value::Number(1_000_000u64.into()),
            );
            w.insert(
                "rate_limit_burst".into(),
                serde_yaml::Value::Number(100_000u64.into()),
            );
        }
        if let (Some(url), Some(db)) = (
            &db_for_hook,
            c.get_mut("database").and_then(|d| d.as_mapping_mut()),
        ) {
            db.insert("url".into(), url.clone().into());
        }
    });
    let mut bridge = Bridge::prepare(&options).await?;
    let database_url = db_override
        .clone()
        .unwrap_or_else(|| bridge.database_url().to_string());
    let synapse = Synapse::start(&bridge.registration_path()).await?;
    synapse
        .register_user("alice", ALICE_PASSWORD, true)
        .await
        .context("registering alice")?;
    synapse
        .register_user("bob", BOB_PASSWORD, false)
        .await
        .context("registering bob")?;
    synapse
        .register_user("carol", CAROL_PASSWORD, false)
        .await
        .context("registering carol")?;
    bridge.set_homeserver(&synapse.base_url(), synapse.server_name())?;
    let first_start = timed_start(&mut bridge).await?;
    say(format!(
        "bridge up in {:.0} ms (empty store)",
        ms(first_start.1)
    ));
    let synapse_pid = procfs::find_pid(&synapse.config_path(), "synapse")?;
    let mut pid = bridge_pid(&bridge)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_fresh = procfs::sample(pid)?;

    let hs = synapse.base_url();
    let alice = MxClient::login(&hs, "alice", ALICE_PASSWORD).await?;
    let bob = MxClient::login(&hs, "bob", BOB_PASSWORD).await?;
    let carol = MxClient::login(&hs, "carol", CAROL_PASSWORD).await?;
    let synapse_version = alice
        .get_json("/_synapse/admin/v1/server_version")
        .await
        .ok()
        .and_then(|v| v["server_version"].as_str().map(str::to_string))
        .unwrap_or_default();
    let bob_seen = Recorder::default();
    let _bob_sync = bob.watch(bob_seen.clone()).await?;
    let webchat = format!("{}/webchat", bridge.base_url());

    // ---- conversations: plain rooms and portals ------------------------------------------
    let n = settings.conversations;
    say(format!("creating {n} plain rooms and {n} portals"));
    let mut rooms = Vec::new();
    for k in 0..n {
        // The same people as in a portal: besides the sender, two operators who get the
        // message (in a portal: @alice and @bob; here @bob and @carol). The homeserver's work
        // per message (push rules, notification counts) grows with them.
        let room = alice
            .create_room(
                &format!("Direct {k:02}"),
                &[bob.user_id.as_str(), carol.user_id.as_str()],
            )
            .await?;
        bob.join(&room).await?;
        carol.join(&room).await?;
        rooms.push(room);
    }
    let mut visitors = Vec::new();
    for k in 0..n {
        let v = WebVisitor::new(
            &webchat,
            &format!("Bench {k:02}"),
            &format!("bench{k:02}@example.com"),
        )
        .await?;
        v.send(&unique("w"), &format!("portal-{k} opening message"))
            .await?;
        visitors.push(v);
    }
    let mut portals = Vec::new();
    let visitors_seen = Recorder::default();
    let mut streams = Vec::new();
    for (k, v) in visitors.iter().enumerate() {
        let room = bob_seen.invite(&format!("Bench {k:02} ("), WAIT).await?;
        bob.join(&room).await?;
        alice.join(&room).await?;
        bob_seen
            .seen(&format!("portal-{k} opening message"), WAIT)
            .await?;
        streams.push(SseWatcher::open(&webchat, &v.token, 0, visitors_seen.clone()).await?);
        portals.push(room);
    }
    let as_token = bridge
        .registration()?
        .get("as_token")
        .and_then(|v| v.as_str().map(str::to_string))
        .context("no as_token in the registration")?;
    let ghost_id = format!(
        "@sb_webchat_{}:{}",
        visitors[0].visitor_id,
        synapse.server_name()
    );
    let ghost = MxClient::appservice(&hs, &as_token, &ghost_id)?;
    let world = World {
        alice,
        ghost,
        bob_seen,
        visitors_seen,
        rooms,
        visitors,
        portals,
        bridge_pid: pid,
        synapse_pid,
    };

    // ---- warm-up -----------------------------------------------------------------------------
    say(format!("warm-up: {} messages per path", settings.warmup));
    for i in 0..settings.warmup {
        for path in Path::LATENCY {
            world
                .one(path, i % n, &format!("warm {i} {}", path.key()))
                .await?;
        }
    }
    world.settle().await?;

    // ---- latency -----------------------------------------------------------------------------
    let per_round = (settings.latency / settings.rounds).max(1);
    say(format!(
        "latency: {} rounds × {per_round} messages per path, one in flight",
        settings.rounds
    ));
    let mut latency: Vec<Latency> = vec![Latency::default(); 4];
    let mut acks: Vec<Vec<f64>> = vec![Vec::new(); 4];
    for r in 0..settings.rounds {
        for step in 0..4 {
            let idx = (r + step) % 4;
            let path = Path::LATENCY[idx];
            let mut round = Vec::with_capacity(per_round);
            for i in 0..per_round {
                let (lat, ack) = world
                    .one(path, 0, &format!("lat{r} {i} {}", path.key()))
                    .await?;
                round.push(ms(lat));
                acks[idx].push(ms(ack));
            }
            say(format!(
                "  round {r} {:<16} p50 {:.2} ms",
                path.name(),
                percentile(&sorted(&round), 50.0)
            ));
            latency[idx].add_round(round);
            world.settle().await?;
        }
    }

    // ---- throughput --------------------------------------------------------------------------
    let per = (settings.throughput / settings.throughput_rounds / n).max(1);
    say(format!(
        "throughput: {} rounds × {n} conversations × {per} messages per path, in parallel",
        settings.throughput_rounds
    ));
    let mut throughput: Vec<Throughput> = vec![Throughput::default(); 3];
    for r in 0..settings.throughput_rounds {
        for step in 0..3 {
            let idx = (r + step) % 3;
            let path = Path::THROUGHPUT[idx];
            world.settle().await?;
            let before = world.cpu()?;
            let (secs, accepted) = world
                .burst(path, &format!("tput{r}{}", path.key()), per)
                .await?;
            world.settle().await?;
            let after = world.cpu()?;
            let t = &mut throughput[idx];
            t.messages += n * per;
            t.seconds += secs;
            t.accept_seconds += accepted;
            t.round_rates.push((n * per) as f64 / secs);
            t.bridge_cpu_s += after.0.cpu_s - before.0.cpu_s;
            t.synapse_cpu_s += after.1.cpu_s - before.1.cpu_s;
            say(format!(
                "  round {r} {:<16} {:.1} msg/s ({:.3} s)",
                path.name(),
                (n * per) as f64 / secs,
                secs
            ));
        }
    }
    // ---- the search index's share of inbound relay ------------------------------------------
    // Bridge inbound bursts with the search index and without it, alternating round by round:
    // "without" installs a bench-only trigger in the bridge's store that drops each search row
    // before it is written (no row, no FTS5 entry; the analyzer still runs). Reported: messages
    // per second and the bridge's CPU time per message, each way.
    let index_ab = if settings.index_ab_rounds > 0 && database_url.starts_with("sqlite:") {
        use sqlx::ConnectOptions;
        let mut db =
            sqlx::sqlite::SqliteConnectOptions::from_url(&url::Url::parse(&database_url)?)?
                .busy_timeout(Duration::from_secs(10))
                .connect()
                .await?;
        let mut ab = [Throughput::default(), Throughput::default()];
        say(format!(
            "search index on/off: {} rounds × {n} conversations × {per} inbound messages",
            settings.index_ab_rounds
        ));
        for r in 0..settings.index_ab_rounds {
            for step in 0..2 {
                let off = (r + step) % 2 == 1;
                if off {
                    sqlx::query("CREATE TRIGGER bench_index_off BEFORE INSERT ON search_docs BEGIN SELECT RAISE(IGNORE); END")
                        .execute(&mut db)
                        .await?;
                }
                world.settle().await?;
                let before = world.cpu()?;
                let (secs, accepted) = world
                    .burst(
                        Path::Inbound,
                        &format!("ab{r}{}", if off { "off" } else { "on" }),
                        per,
                    )
                    .await?;
                world.settle().await?;
                let after = world.cpu()?;
                if off {
                    sqlx::query("DROP TRIGGER bench_index_off")
                        .execute(&mut db)
                        .await?;
                }
                let t = &mut ab[usize::from(off)];
                t.messages += n * per;
                t.seconds += secs;
                t.accept_seconds += accepted;
                t.round_rates.push((n * per) as f64 / secs);
                t.bridge_cpu_s += after.0.cpu_s - before.0.cpu_s;
                t.synapse_cpu_s += after.1.cpu_s - before.1.cpu_s;
                say(format!(
                    "  round {r} index {:<3} {:.1} msg/s, bridge {:.2} ms CPU per message",
                    if off { "off" } else { "on" },
                    (n * per) as f64 / secs,
                    (after.0.cpu_s - before.0.cpu_s) * 1000.0 / (n * per) as f64
                ));
            }
        }
        let cpu_ms = |t: &Throughput| t.bridge_cpu_s * 1000.0 / t.messages as f64;
        json!({
            "rounds": settings.index_ab_rounds,
            "with_index": ab[0].json(),
            "without_index": ab[1].json(),
            "bridge_cpu_ms_per_message_with_index": round3(cpu_ms(&ab[0])),
            "bridge_cpu_ms_per_message_without_index": round3(cpu_ms(&ab[1])),
            // The share of the bridge's work per relayed message that is the index's.
            "index_share_of_bridge_cpu": round3(1.0 - cpu_ms(&ab[1]) / cpu_ms(&ab[0])),
            // Throughput lost to the index (negative: within the noise of the machine).
            "index_share_of_inbound_throughput": round3(1.0 - ab[0].rate() / ab[1].rate()),
        })
    } else {
        Value::Null
    };
    let after_traffic = procfs::sample(pid)?;
    let relayed: usize = throughput[1].messages
        + throughput[2].messages
        + latency[2].samples.len()
        + latency[3].samples.len()
        + 2 * settings.warmup;
    let cpu_total_traffic = after_traffic.cpu_s - idle_fresh.cpu_s;
    drop(streams);

    // ---- start time and memory at rest ---------------------------------------------------------
    bridge.stop(Duration::from_secs(10)).await?;
    let small_start = timed_start(&mut bridge).await?;
    say(format!(
        "restart with {n} portals: healthy in {:.0} ms",
        ms(small_start.1)
    ));
    bridge.stop(Duration::from_secs(10)).await?;

    let (added, took) = seed::seed_conversations(&database_url, settings.idle).await?;
    say(format!(
        "seeded {added} conversations in {:.1} s",
        took.as_secs_f64()
    ));
    let idle_start = timed_start(&mut bridge).await?;
    pid = bridge_pid(&bridge)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_many = procfs::sample(pid)?;
    say(format!(
        "{} conversations: RSS {:.1} MB at rest (healthy in {:.0} ms)",
        settings.idle,
        idle_many.rss_mb,
        ms(idle_start.1)
    ));
    bridge.stop(Duration::from_secs(10)).await?;

    let (added, took) = seed::seed_conversations(&database_url, settings.portals).await?;
    say(format!(
        "seeded {added} more conversations in {:.1} s",
        took.as_secs_f64()
    ));
    let mut starts = Vec::new();
    let mut portals_rest = procfs::Sample::default();
    for i in 0..settings.starts {
        let s = timed_start(&mut bridge).await?;
        say(format!(
            "{} portals: listening after {:.0} ms, healthy after {:.0} ms",
            settings.portals,
            ms(s.0),
            ms(s.1)
        ));
        if i == 0 {
            pid = bridge_pid(&bridge)?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            portals_rest = procfs::sample(pid)?;
        }
        starts.push(s);
        bridge.stop(Duration::from_secs(10)).await?;
    }
    let start_ms = sorted(&starts.iter().map(|s| ms(s.1)).collect::<Vec<_>>());
    let listen_ms = sorted(&starts.iter().map(|s| ms(s.0)).collect::<Vec<_>>());
    let start_median = percentile(&start_ms, 50.0);
    let listen_median = percentile(&listen_ms, 50.0);
    let load_after = procfs::loadavg();

    // ---- report ----------------------------------------------------------------------------------
    let [d, a, i, o] = [&latency[0], &latency[1], &latency[2], &latency[3]];
    let [td, ti, to] = [&throughput[0], &throughput[1], &throughput[2]];
    let ratio = |a: f64, b: f64| a / b;
    let targets = json!({
        "inbound_p50_ratio": {"value": round3(ratio(i.p(50.0), d.p(50.0))), "target": "<= 1.10", "met": ratio(i.p(50.0), d.p(50.0)) <= 1.10},
        "inbound_p99_ratio": {"value": round3(ratio(i.p(99.0), d.p(99.0))), "target": "<= 1.10", "met": ratio(i.p(99.0), d.p(99.0)) <= 1.10},
        "inbound_throughput_ratio": {"value": round3(ti.rate() / td.rate()), "target": ">= 0.9", "met": ti.rate() / td.rate() >= 0.9},
        "outbound_throughput_ratio": {"value": round3(to.rate() / td.rate()), "target": ">= 0.9", "met": to.rate() / td.rate() >= 0.9},
        "rss_idle_conversations_mb": {"value": round3(idle_many.rss_mb), "target": "<= 40", "met": idle_many.rss_mb <= 40.0},
        "start_with_portals_s": {"value": round3(start_median / 1000.0), "target": "<= 1", "met": start_median <= 1000.0},
    });
    let report = json!({
        "when": chrono_like_now(),
        "revision": git_revision(),
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "synapse_version": synapse_version,
        "settings": {
            "latency_messages_per_path": settings.rounds * per_round,
            "latency_rounds": settings.rounds,
            "warmup_per_path": settings.warmup,
            "throughput_messages_per_path": settings.throughput_rounds * n * per,
            "throughput_rounds": settings.throughput_rounds,
            "conversations_in_parallel": n,
            "idle_conversations": settings.idle,
            "portals": settings.portals,
            "starts": settings.starts,
            "bridge_log_filter": "info",
            "store": "sqlite (WAL, synchronous=FULL)",
            "bridge_database": database_url.split('?').next().unwrap_or_default(),
        },
        "latency": {"direct": d.json(), "appservice": a.json(), "inbound": i.json(), "outbound": o.json()},
        "send_answered_p50_ms": {
            "direct": round3(percentile(&sorted(&acks[0]), 50.0)),
            "appservice": round3(percentile(&sorted(&acks[1]), 50.0)),
            "inbound": round3(percentile(&sorted(&acks[2]), 50.0)),
            "outbound": round3(percentile(&sorted(&acks[3]), 50.0)),
        },
        "throughput": {"direct": td.json(), "inbound": ti.json(), "outbound": to.json()},
        "search_index_inbound": index_ab,
        "ratios": {
            "appservice_p50": round3(ratio(a.p(50.0), d.p(50.0))),
            "appservice_p95": round3(ratio(a.p(95.0), d.p(95.0))),
            "appservice_p99": round3(ratio(a.p(99.0), d.p(99.0))),
            "inbound_over_appservice_p50": round3(ratio(i.p(50.0), a.p(50.0))),
            "inbound_over_appservice_p99": round3(ratio(i.p(99.0), a.p(99.0))),
            "inbound_p50": round3(ratio(i.p(50.0), d.p(50.0))),
            "inbound_p95": round3(ratio(i.p(95.0), d.p(95.0))),
            "inbound_p99": round3(ratio(i.p(99.0), d.p(99.0))),
            "outbound_p50": round3(ratio(o.p(50.0), d.p(50.0))),
            "outbound_p95": round3(ratio(o.p(95.0), d.p(95.0))),
            "outbound_p99": round3(ratio(o.p(99.0), d.p(99.0))),
            "inbound_throughput": round3(ti.rate() / td.rate()),
            "outbound_throughput": round3(to.rate() / td.rate()),
        },
        "bridge": {
            "rss_idle_empty_mb": round3(idle_fresh.rss_mb),
            "rss_after_traffic_mb": round3(after_traffic.rss_mb),
            "peak_rss_traffic_mb": round3(after_traffic.hwm_mb),
            "messages_relayed": relayed,
            "cpu_s_traffic_total": round3(cpu_total_traffic),
            "cpu_s_per_1000_inbound": round3(ti.bridge_cpu_s * 1000.0 / ti.messages.max(1) as f64),
            "cpu_s_per_1000_outbound": round3(to.bridge_cpu_s * 1000.0 / to.messages.max(1) as f64),
            "peak_rss_mb_per_1000_relayed": round3(after_traffic.hwm_mb * 1000.0 / relayed.max(1) as f64),
            "rss_idle_conversations_mb": round3(idle_many.rss_mb),
            "peak_rss_idle_conversations_mb": round3(idle_many.hwm_mb),
            "rss_portals_at_rest_mb": round3(portals_rest.rss_mb),
            "start_empty_store_ms": round3(ms(first_start.1)),
            "start_small_store_ms": round3(ms(small_start.1)),
            "start_idle_conversations_ms": round3(ms(idle_start.1)),
            "start_portals_ms": start_ms.iter().map(|v| round3(*v)).collect::<Vec<_>>(),
            "start_portals_median_ms": round3(start_median),
            "listening_portals_median_ms": round3(listen_median),
        },
        "targets": targets,
        "bench_seconds": round3(started.elapsed().as_secs_f64()),
    });

    print_table(&report);
    if let Some(dir) = settings.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&settings.out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", settings.out.display()))?;
    println!("\nwrote {}", settings.out.display());
    drop(world);
    if let Some(url) = &db_override {
        let path = url.trim_start_matches("sqlite://");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
    Ok(())
}

/// UTC time as `YYYY-MM-DDTHH:MM:SSZ` (no date crate needed for one timestamp).
fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn print_table(r: &Value) {
    let f = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{x:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    let f2 = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{x:.2}"))
            .unwrap_or_else(|| "-".into())
    };
    println!();
    println!(
        "Relay benchmark  ({}; {} CPUs; load {:?} → {:?})",
        r["revision"].as_str().unwrap_or(""),
        r["machine"]["cpus"],
        r["machine"]["loadavg_before"],
        r["machine"]["loadavg_after"]
    );
    println!();
    println!("| path              | p50 ms | p95 ms | p99 ms | msg/s | ×direct p50 | ×direct p99 | ×direct msg/s | bridge CPU s/1000 |");
    println!("|-------------------|-------:|-------:|-------:|------:|------------:|------------:|--------------:|------------------:|");
    for key in ["direct", "appservice", "inbound", "outbound"] {
        let l = &r["latency"][key];
        let t = &r["throughput"][key];
        let name = match key {
            "direct" => "direct",
            "appservice" => "appservice direct",
            "inbound" => "bridge inbound",
            _ => "bridge outbound",
        };
        let dash = || "-".to_string();
        let (rp50, rp99, rt, cpu) = match key {
            "direct" => ("1".to_string(), "1".to_string(), "1".to_string(), dash()),
            "appservice" => (
                f2(&r["ratios"]["appservice_p50"]),
                f2(&r["ratios"]["appservice_p99"]),
                dash(),
                dash(),
            ),
            _ => (
                f2(&r["ratios"][format!("{key}_p50")]),
                f2(&r["ratios"][format!("{key}_p99")]),
                f2(&r["ratios"][format!("{key}_throughput")]),
                f2(&t["bridge_cpu_s_per_1000"]),
            ),
        };
        println!(
            "| {name:<17} | {:>6} | {:>6} | {:>6} | {:>5} | {rp50:>11} | {rp99:>11} | {rt:>13} | {cpu:>17} |",
            f(&l["p50_ms"]),
            f(&l["p95_ms"]),
            f(&l["p99_ms"]),
            f(&t["msgs_per_s"]),
        );
    }
    let b = &r["bridge"];
    let rows = [
        (
            format!(
                "peak RSS while relaying {} messages (MB)",
                b["messages_relayed"]
            ),
            f(&b["peak_rss_traffic_mb"]),
        ),
        (
            "CPU s per 1000 messages, inbound / outbound".to_string(),
            format!(
                "{} / {}",
                f2(&b["cpu_s_per_1000_inbound"]),
                f2(&b["cpu_s_per_1000_outbound"])
            ),
        ),
        (
            "RSS at rest, empty store (MB)".to_string(),
            f(&b["rss_idle_empty_mb"]),
        ),
        (
            format!(
                "RSS at rest, {} conversations (MB)",
                r["settings"]["idle_conversations"]
            ),
            f(&b["rss_idle_conversations_mb"]),
        ),
        (
            format!(
                "start → healthy, {} portals (ms, median)",
                r["settings"]["portals"]
            ),
            f(&b["start_portals_median_ms"]),
        ),
        (
            format!(
                "start → listening, {} portals (ms, median)",
                r["settings"]["portals"]
            ),
            f(&b["listening_portals_median_ms"]),
        ),
        (
            format!(
                "start → healthy, {} portals (ms)",
                r["settings"]["conversations_in_parallel"]
            ),
            f(&b["start_small_store_ms"]),
        ),
    ];
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let vwidth = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    println!();
    println!("| {:<width$} | {:>vwidth$} |", "bridge", "value");
    println!("|{}|{}:|", "-".repeat(width + 2), "-".repeat(vwidth + 1));
    for (k, v) in &rows {
        let pad = width - k.chars().count();
        println!("| {k}{} | {v:>vwidth$} |", " ".repeat(pad));
    }
    println!();
    println!("Targets:");
    if let Some(t) = r["targets"].as_object() {
        for (k, v) in t {
            let mark = if v["met"].as_bool() == Some(true) {
                "met   "
            } else {
                "MISSED"
            };
            println!(
                "  {mark} {k:<28} {} (target {})",
                v["value"],
                v["target"].as_str().unwrap_or("")
            );
        }
    }
}
