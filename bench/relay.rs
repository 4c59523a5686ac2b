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
//! Besides (each switchable, see [`Settings`] and `scripts/bench.sh`):
//!
//! - **Synapse profiles**: one extra burst per throughput path with py-spy sampling Synapse
//!   (`bench/profile.rs`), reduced to `bench/results/synapse-profile-<path>.txt` with the
//!   requests Synapse answered per message; Synapse's CPU per 1,000 messages per path.
//! - **receipts vs events**: bridge outbound bursts with `bridge.delivery_status: receipts` and
//!   `events`, alternating, the bridge restarted on the same store for each change.
//! - **growth**: on a fresh SQLite store and a fresh PostgreSQL one, new portals, inbound and
//!   outbound latency and throughput; then the store is seeded with a long history
//!   (`seed::seed_history`: a million messages over 100,000 conversations by default) and the
//!   same rounds run again, with the bridge's resident memory before and after. Each set of
//!   rounds also times the direct path (a plain client, no bridge): Synapse's own database
//!   grows over the run and the grown rounds always come second, so a relay ratio grown/empty
//!   is also read against the plain client's grown/empty ratio ("normalised"), which leaves
//!   what the bridge's store added; the bridge's CPU per message is reported beside it.
//!
//! Counts come from the environment (see [`Settings`]); `--quick` shrinks them for a smoke run.

#[path = "../tests/rig/mod.rs"]
#[allow(dead_code, unused_imports)]
mod rig;

mod clients;
mod procfs;
mod profile;
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
    /// Rounds of bridge outbound bursts with `delivery_status: receipts` and `events` (0: none).
    status_ab_rounds: usize,
    /// Profile Synapse with py-spy during the first throughput round of each path.
    profile: bool,
    /// Stores the growth rounds run on (`sqlite`, `postgres`; empty: none).
    growth_backends: Vec<String>,
    /// Conversations and messages seeded before the second set of growth rounds.
    growth_conversations: u64,
    growth_messages: u64,
    /// Messages per path (inbound, outbound) for latency in each set of growth rounds.
    growth_latency: usize,
    /// Messages per path for throughput in each set of growth rounds.
    growth_throughput: usize,
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
                status_ab_rounds: 1,
                profile: true,
                growth_backends: vec!["sqlite".into(), "postgres".into()],
                growth_conversations: 10_000,
                growth_messages: 100_000,
                growth_latency: 40,
                growth_throughput: 160,
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
                status_ab_rounds: 2,
                profile: true,
                growth_backends: vec!["sqlite".into(), "postgres".into()],
                growth_conversations: 100_000,
                growth_messages: 1_000_000,
                growth_latency: 100,
                growth_throughput: 480,
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
        s.status_ab_rounds = num("STATUS_AB_ROUNDS", s.status_ab_rounds)?;
        s.profile = num("PROFILE", usize::from(s.profile))? != 0;
        if let Ok(v) = std::env::var("SWITCHBOARD_BENCH_GROWTH") {
            s.growth_backends = v
                .split(',')
                .map(|b| b.trim().to_ascii_lowercase())
                .filter(|b| !b.is_empty() && b != "none" && b != "0")
                .collect();
            if let Some(bad) = s
                .growth_backends
                .iter()
                .find(|b| !matches!(b.as_str(), "sqlite" | "postgres"))
            {
                bail!("SWITCHBOARD_BENCH_GROWTH: unknown store {bad:?} (sqlite, postgres)");
            }
        }
        s.growth_conversations =
            num("GROWTH_CONVERSATIONS", s.growth_conversations as usize)?.max(1) as u64;
        s.growth_messages = num("GROWTH_MESSAGES", s.growth_messages as usize)? as u64;
        s.growth_latency = num("GROWTH_LATENCY", s.growth_latency)?;
        s.growth_throughput = num("GROWTH_THROUGHPUT", s.growth_throughput)?;
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

/// The SHA-256 of a file, hex; empty when it cannot be read.
fn file_sha256(path: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    std::fs::read(path)
        .map(|bytes| format!("{:x}", Sha256::digest(&bytes)))
        .unwrap_or_default()
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

/// Milliseconds since the Unix epoch (a ghost's `?ts=`).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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
    /// The bridge's CPU seconds per 1,000 messages.
    fn bridge_cpu_per_1000(&self) -> f64 {
        self.bridge_cpu_s * 1000.0 / self.messages.max(1) as f64
    }
    /// Synapse's CPU seconds per 1,000 messages.
    fn synapse_cpu_per_1000(&self) -> f64 {
        self.synapse_cpu_s * 1000.0 / self.messages.max(1) as f64
    }
    fn json(&self) -> Value {
        json!({
            "messages": self.messages,
            "seconds": round3(self.seconds),
            "msgs_per_s": round3(self.rate()),
            "accepted_msgs_per_s": round3(self.messages as f64 / self.accept_seconds),
            "round_msgs_per_s": self.round_rates.iter().map(|v| round3(*v)).collect::<Vec<_>>(),
            "bridge_cpu_s": round3(self.bridge_cpu_s),
            "bridge_cpu_s_per_1000": round3(self.bridge_cpu_per_1000()),
            "synapse_cpu_s": round3(self.synapse_cpu_s),
            "synapse_cpu_s_per_1000": round3(self.synapse_cpu_per_1000()),
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
    /// Both latency and throughput runs also time `Appservice`: a ghost's send made by the
    /// benchmark itself with the bridge's `as_token`, into its portal. It is what any
    /// appservice pays in Synapse (identity assertion, the transaction pushed back to the
    /// appservice, a busier room), without the bridge's own work: the control for the inbound
    /// path, sent and observed the same way. What inbound costs beyond it is the bridge's.
    const LATENCY: [Path; 4] = [
        Path::Direct,
        Path::Appservice,
        Path::Inbound,
        Path::Outbound,
    ];
    const THROUGHPUT: [Path; 4] = [
        Path::Direct,
        Path::Appservice,
        Path::Inbound,
        Path::Outbound,
    ];
    fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Appservice => "appservice direct",
            Path::Inbound => "bridge inbound",
            Path::Outbound => "bridge outbound",
        }
    }
    /// How this path's sends name their transaction (see [`unique`] and the bridge's inbound
    /// `sb-in-…`): what the pause reading of its profile counts.
    fn txn_prefix(self) -> &'static str {
        match self {
            Path::Direct | Path::Outbound => "t",
            Path::Appservice => "ta",
            Path::Inbound => "sb-in-",
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
    /// Each visitor's ghost, driven with the bridge's `as_token` (see [`Path`]).
    ghosts: Vec<MxClient>,
    /// What `@bob` sees in his sync (direct and inbound messages).
    bob_seen: Recorder,
    /// What the visitors' event streams deliver (outbound messages).
    visitors_seen: Recorder,
    /// Plain rooms of `@alice` and `@bob`, one per parallel conversation.
    rooms: Vec<String>,
    /// Web chat visitors and their portal rooms, one per parallel conversation.
    visitors: Vec<WebVisitor>,
    portals: Vec<String>,
    /// The visitors' open event streams (reopened when the bridge restarts).
    streams: Vec<SseWatcher>,
    /// `<bridge>/webchat`.
    webchat: String,
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
                self.ghosts[k]
                    .send_text_at(&self.portals[k], &unique("a"), body, now_ms())
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
            let ghost = self.ghosts[k].clone();
            tasks.push(tokio::spawn(async move {
                for j in 0..per {
                    let body = format!("{tag} {k}-{j} {}", path.key());
                    match path {
                        Path::Inbound => visitor.send(&unique("ti"), &body).await?,
                        Path::Appservice => {
                            ghost
                                .send_text_at(&room, &unique("ta"), &body, now_ms())
                                .await?;
                        }
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

    /// Opens the visitors' event streams again (after the bridge restarted). They replay what
    /// was sent before; the recorder keeps the first sighting of each message.
    async fn reopen_streams(&mut self) -> anyhow::Result<()> {
        self.streams.clear();
        for v in &self.visitors {
            self.streams.push(
                SseWatcher::open(&self.webchat, &v.token, 0, self.visitors_seen.clone()).await?,
            );
        }
        Ok(())
    }

    /// Stops the bridge and starts it again with whatever its config now says (same store).
    async fn restart_bridge(&mut self, bridge: &mut Bridge) -> anyhow::Result<()> {
        self.streams.clear();
        bridge.stop(Duration::from_secs(10)).await?;
        bridge.start().await?;
        self.bridge_pid = bridge_pid(bridge)?;
        self.reopen_streams().await
    }

    /// One growth measurement: `settings.warmup` unmeasured messages per path over the `n`
    /// conversations (bodies tagged `warm_tag`), the machine settled, then [`World::relay_rounds`]
    /// (tagged `tag`), and the bridge's resident memory and CPU right after.
    async fn growth_rounds(
        &self,
        settings: &Settings,
        n: usize,
        warm_tag: &str,
        tag: &str,
    ) -> anyhow::Result<([Latency; 3], [Throughput; 3], procfs::Sample)> {
        for i in 0..settings.warmup {
            for path in [Path::Inbound, Path::Outbound] {
                self.one(path, i % n, &format!("{warm_tag} {i} {}", path.key()))
                    .await?;
            }
        }
        self.settle().await?;
        let (lat, tput) = self
            .relay_rounds(tag, settings.growth_latency, settings.growth_throughput)
            .await?;
        Ok((lat, tput, procfs::sample(self.bridge_pid)?))
    }

    /// Direct, inbound and outbound latency (`latency` messages per path, two rounds
    /// interleaving the paths) and throughput (`throughput` messages per path, one burst each),
    /// for the growth rounds. Returns ([direct, inbound, outbound] latency, [direct, inbound,
    /// outbound] throughput).
    async fn relay_rounds(
        &self,
        tag: &str,
        latency: usize,
        throughput: usize,
    ) -> anyhow::Result<([Latency; 3], [Throughput; 3])> {
        let paths = GROWTH_PATHS;
        let mut lat: [Latency; 3] = Default::default();
        let per_round = (latency / 2).max(1);
        for r in 0..2 {
            for step in 0..3 {
                let idx = (r + step) % 3;
                let mut round = Vec::with_capacity(per_round);
                for i in 0..per_round {
                    let (l, _) = self
                        .one(
                            paths[idx],
                            0,
                            &format!("{tag}l{r} {i} {}", paths[idx].key()),
                        )
                        .await?;
                    round.push(ms(l));
                }
                say(format!(
                    "  {tag} round {r} {:<16} p50 {:.2} ms",
                    paths[idx].name(),
                    percentile(&sorted(&round), 50.0)
                ));
                lat[idx].add_round(round);
                self.settle().await?;
            }
        }
        let n = self.visitors.len();
        let per = (throughput / n).max(1);
        let mut tput: [Throughput; 3] = Default::default();
        for (idx, path) in paths.into_iter().enumerate() {
            self.settle().await?;
            let before = self.cpu()?;
            let (secs, accepted) = self
                .burst(path, &format!("{tag}t{}", path.key()), per)
                .await?;
            self.settle().await?;
            let after = self.cpu()?;
            let t = &mut tput[idx];
            t.messages += n * per;
            t.seconds += secs;
            t.accept_seconds += accepted;
            t.round_rates.push((n * per) as f64 / secs);
            t.bridge_cpu_s += after.0.cpu_s - before.0.cpu_s;
            t.synapse_cpu_s += after.1.cpu_s - before.1.cpu_s;
            say(format!(
                "  {tag} {:<16} {:.1} msg/s",
                path.name(),
                (n * per) as f64 / secs
            ));
        }
        Ok((lat, tput))
    }
}

/// The paths of a set of growth rounds: the plain client is the control for Synapse's drift.
const GROWTH_PATHS: [Path; 3] = [Path::Direct, Path::Inbound, Path::Outbound];

/// `n` web chat visitors, each with its portal (found by `@bob` through its invite and joined
/// by `@bob` and `@alice`) and its event stream: (visitors, portals, streams). `label` starts
/// the visitors' names, which the portals' names contain.
async fn open_portals(
    webchat: &str,
    alice: &MxClient,
    bob: &MxClient,
    bob_seen: &Recorder,
    visitors_seen: &Recorder,
    n: usize,
    label: &str,
) -> anyhow::Result<(Vec<WebVisitor>, Vec<String>, Vec<SseWatcher>)> {
    let mut visitors = Vec::new();
    for k in 0..n {
        let v = WebVisitor::new(
            webchat,
            &format!("{label} {k:02}"),
            &format!(
                "{}{k:02}@example.com",
                label.to_ascii_lowercase().replace(' ', "")
            ),
        )
        .await?;
        v.send(&unique("w"), &format!("{label} portal-{k} opening message"))
            .await?;
        visitors.push(v);
    }
    let mut portals = Vec::new();
    let mut streams = Vec::new();
    for (k, v) in visitors.iter().enumerate() {
        let room = bob_seen.invite(&format!("{label} {k:02} ("), WAIT).await?;
        bob.join(&room).await?;
        alice.join(&room).await?;
        bob_seen
            .seen(&format!("{label} portal-{k} opening message"), WAIT)
            .await?;
        streams.push(SseWatcher::open(webchat, &v.token, 0, visitors_seen.clone()).await?);
        portals.push(room);
    }
    Ok((visitors, portals, streams))
}

/// Sets `bridge.delivery_status` in the bridge's config (read at the next start).
fn set_delivery_status(bridge: &Bridge, mode: &str) -> anyhow::Result<()> {
    bridge.edit_config(|c| {
        if let Some(m) = c.as_mapping_mut() {
            if !m.contains_key("bridge") {
                m.insert("bridge".into(), serde_yaml::Mapping::new().into());
            }
        }
        if let Some(b) = c.get_mut("bridge").and_then(|b| b.as_mapping_mut()) {
            b.insert("delivery_status".into(), mode.into());
        }
    })
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
    // An analysis aid, not for measured runs: `SWITCHBOARD_BENCH_BRIDGE_LOG=info,sqlx::query=debug`
    // has the bridge log every statement with its time (what grew with the store, say).
    let log_filter = std::env::var("SWITCHBOARD_BENCH_BRIDGE_LOG")
        .ok()
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "info".into());
    let options = BridgeOptions {
        log_filter: log_filter.clone(),
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
    let visitors_seen = Recorder::default();
    let (visitors, portals, streams) = open_portals(
        &webchat,
        &alice,
        &bob,
        &bob_seen,
        &visitors_seen,
        n,
        "Bench",
    )
    .await?;
    let as_token = bridge
        .registration()?
        .get("as_token")
        .and_then(|v| v.as_str().map(str::to_string))
        .context("no as_token in the registration")?;
    let ghosts = visitors
        .iter()
        .map(|v| {
            let id = format!("@sb_webchat_{}:{}", v.visitor_id, synapse.server_name());
            MxClient::appservice(&hs, &as_token, &id)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut world = World {
        alice,
        ghosts,
        bob_seen,
        visitors_seen,
        rooms,
        visitors,
        portals,
        streams,
        webchat: webchat.clone(),
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
    let py_spy = if settings.profile {
        match profile::ensure().await {
            Ok(p) => Some(p),
            Err(e) => {
                say(format!("WARNING: no Synapse profile: {e:#}"));
                None
            }
        }
    } else {
        None
    };
    let results_dir = settings
        .out
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| rig::repo_root().join("bench/results"));
    std::fs::create_dir_all(&results_dir)?;
    let mut profiles = serde_json::Map::new();
    let mut throughput: Vec<Throughput> = vec![Throughput::default(); 4];
    for r in 0..settings.throughput_rounds {
        for step in 0..4 {
            let idx = (r + step) % 4;
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
        let cpu_ms = Throughput::bridge_cpu_per_1000;
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
    let relayed: usize = throughput[2].messages
        + throughput[3].messages
        + latency[2].samples.len()
        + latency[3].samples.len()
        + 2 * settings.warmup;
    let cpu_total_traffic = after_traffic.cpu_s - idle_fresh.cpu_s;

    // ---- where Synapse's time goes -------------------------------------------------------------
    // One more burst per path, not counted above, with py-spy sampling Synapse (without pausing
    // it) from the first send until the machine has settled after the last message, so the
    // trailing work counts. py-spy's own CPU competes with Synapse on a small machine: that is
    // why these bursts are apart from the measured ones.
    let synapse_log = synapse
        .config_path()
        .parent()
        .map(|d| d.join("homeserver.log"))
        .unwrap_or_default();
    if let Some(bin) = &py_spy {
        say(format!(
            "Synapse profiles: {n} conversations × {per} messages per path"
        ));
        for path in Path::THROUGHPUT {
            world.settle().await?;
            let raw = std::env::temp_dir()
                .join(format!("switchboard-synapse-{}.raw", unique(path.key())));
            let rec = match profile::Recording::start(bin, world.synapse_pid, raw) {
                Ok(rec) => rec,
                Err(e) => {
                    say(format!("WARNING: py-spy did not start: {e:#}"));
                    break;
                }
            };
            let log_from = profile::log_offset(&synapse_log);
            let before = world.cpu()?;
            let (secs, _) = world
                .burst(path, &format!("prof{}", path.key()), per)
                .await?;
            world.settle().await?;
            let after = world.cpu()?;
            let requests = profile::requests_since(&synapse_log, log_from);
            let pauses = profile::send_pauses_since(&synapse_log, log_from, path.txn_prefix());
            let out = results_dir.join(format!("synapse-profile-{}.txt", path.key()));
            let messages = (n * per) as f64;
            let summary = async {
                let raw = rec.stop().await?;
                let mut s = profile::summarise(&raw, &out, path.name(), (n * per) as u64)?;
                // Kept for a closer look when asked (collapsed stacks, a few MB).
                if std::env::var_os("SWITCHBOARD_BENCH_KEEP_PROFILES").is_some() {
                    let keep = results_dir.join(format!("synapse-profile-{}.raw", path.key()));
                    if std::fs::rename(&raw, &keep).is_err() {
                        std::fs::copy(&raw, &keep)?;
                    }
                }
                let _ = std::fs::remove_file(&raw);
                // What Synapse was asked, per message relayed (from its access log).
                let mut text = format!(
                    "\nRequests Synapse answered per message ({} messages; its access log):\n",
                    n * per
                );
                for (kind, count) in &requests {
                    text.push_str(&format!("{:>8.3}  {kind}\n", *count as f64 / messages));
                }
                text.push_str(&format!(
                    "\nPauses between two sends in one room by this path's sender (ms; under 500): {pauses}\n"
                ));
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&out)?
                    .write_all(text.as_bytes())?;
                s["send_pauses"] = pauses.clone();
                s["requests_per_message"] = requests
                    .iter()
                    .take(15)
                    .map(|(k, c)| (k.clone(), json!(round3(*c as f64 / messages))))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
                anyhow::Ok(s)
            }
            .await;
            match summary {
                Ok(mut s) => {
                    say(format!(
                        "  {:<16} {:.1} msg/s while profiled: {}",
                        path.name(),
                        (n * per) as f64 / secs,
                        out.display()
                    ));
                    s["messages"] = json!(n * per);
                    s["synapse_cpu_s_per_1000"] = json!(round3(
                        (after.1.cpu_s - before.1.cpu_s) * 1000.0 / (n * per) as f64
                    ));
                    profiles.insert(path.key().to_string(), s);
                }
                Err(e) => say(format!(
                    "WARNING: no Synapse profile for {}: {e:#}",
                    path.name()
                )),
            }
        }
    }

    // ---- receipts vs events -------------------------------------------------------------------
    // Bridge outbound bursts with `bridge.delivery_status: receipts` (the default: the bot's
    // read receipt shows success) and `events` (also a `com.beeper.message_send_status` SUCCESS
    // event per message), alternating round by round; the bridge restarts on the same store
    // for each change. Reported: messages per second, and the bridge's and Synapse's CPU time
    // per 1,000 messages, each way.
    let status_ab = if settings.status_ab_rounds > 0 {
        let modes = ["receipts", "events"];
        let mut ab = [Throughput::default(), Throughput::default()];
        let mut current = "receipts";
        say(format!(
            "delivery status receipts/events: {} rounds × {n} conversations × {per} outbound messages",
            settings.status_ab_rounds
        ));
        for r in 0..settings.status_ab_rounds {
            for step in 0..2 {
                let m = (r + step) % 2;
                if modes[m] != current {
                    set_delivery_status(&bridge, modes[m])?;
                    world.restart_bridge(&mut bridge).await?;
                    current = modes[m];
                }
                world.settle().await?;
                let before = world.cpu()?;
                let (secs, accepted) = world
                    .burst(Path::Outbound, &format!("st{r}{}", modes[m]), per)
                    .await?;
                world.settle().await?;
                let after = world.cpu()?;
                let t = &mut ab[m];
                t.messages += n * per;
                t.seconds += secs;
                t.accept_seconds += accepted;
                t.round_rates.push((n * per) as f64 / secs);
                t.bridge_cpu_s += after.0.cpu_s - before.0.cpu_s;
                t.synapse_cpu_s += after.1.cpu_s - before.1.cpu_s;
                say(format!(
                    "  round {r} {:<8} {:.1} msg/s, Synapse {:.2} s CPU per 1000",
                    modes[m],
                    (n * per) as f64 / secs,
                    (after.1.cpu_s - before.1.cpu_s) * 1000.0 / (n * per) as f64
                ));
            }
        }
        if current != "receipts" {
            set_delivery_status(&bridge, "receipts")?;
            world.restart_bridge(&mut bridge).await?;
        }
        json!({
            "rounds": settings.status_ab_rounds,
            "receipts": ab[0].json(),
            "events": ab[1].json(),
            "events_over_receipts_throughput": round3(ab[1].rate() / ab[0].rate()),
            "events_over_receipts_synapse_cpu": round3(
                (ab[1].synapse_cpu_s / ab[1].messages.max(1) as f64)
                    / (ab[0].synapse_cpu_s / ab[0].messages.max(1) as f64)
            ),
        })
    } else {
        Value::Null
    };

    world.streams.clear();

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

    // ---- growth: the relay with a long history in the store -----------------------------------
    // Per store (SQLite, PostgreSQL): the bridge on a fresh store with new portals, inbound and
    // outbound latency and throughput; then, stopped, the store is seeded with
    // `growth_messages` earlier messages over `growth_conversations` conversations
    // (`seed::seed_history`), and the same rounds run again. Resident memory is read at rest
    // after each start and after each set of rounds.
    let mut growth = serde_json::Map::new();
    for (b, backend) in settings.growth_backends.iter().enumerate() {
        let url = if backend == "postgres" {
            rig::postgres::fresh_database_url().await?
        } else {
            format!(
                "sqlite://{}",
                bridge.dir().join(format!("growth-{b}.db")).display()
            )
        };
        let url_for_config = url.clone();
        bridge.edit_config(move |c| {
            if let Some(db) = c.get_mut("database").and_then(|d| d.as_mapping_mut()) {
                db.insert("url".into(), url_for_config.into());
            }
        })?;
        say(format!("growth on {backend}: a fresh store"));
        bridge.start().await?;
        world.bridge_pid = bridge_pid(&bridge)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rest_empty = procfs::sample(world.bridge_pid)?;
        let label = format!("Grow{b}");
        let (visitors, portals, streams) = open_portals(
            &webchat,
            &world.alice,
            &bob,
            &world.bob_seen,
            &world.visitors_seen,
            n,
            &label,
        )
        .await?;
        world.visitors = visitors;
        world.portals = portals;
        world.streams = streams;
        let (lat_empty, tput_empty, traffic_empty) = world
            .growth_rounds(&settings, n, &format!("g{b}warm"), &format!("g{b}e"))
            .await?;
        world.streams.clear();
        bridge.stop(Duration::from_secs(10)).await?;
        let per_conversation = (settings.growth_messages / settings.growth_conversations).max(1);
        say(format!(
            "growth on {backend}: seeding {} conversations × {per_conversation} messages",
            settings.growth_conversations
        ));
        let (rows, took) =
            seed::seed_history(&url, settings.growth_conversations, per_conversation).await?;
        say(format!(
            "  seeded {rows} rows in {:.1} s",
            took.as_secs_f64()
        ));
        let started_grown = Instant::now();
        bridge.start().await?;
        let start_grown = started_grown.elapsed();
        world.bridge_pid = bridge_pid(&bridge)?;
        world.reopen_streams().await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rest_grown = procfs::sample(world.bridge_pid)?;
        let (lat_grown, tput_grown, traffic_grown) = world
            .growth_rounds(&settings, n, &format!("g{b}rewarm"), &format!("g{b}g"))
            .await?;
        world.streams.clear();
        bridge.stop(Duration::from_secs(10)).await?;
        let mut side = serde_json::Map::new();
        // The plain client's own drift between the two sets (Synapse's database grew).
        let (dle, dlg, dte, dtg) = (&lat_empty[0], &lat_grown[0], &tput_empty[0], &tput_grown[0]);
        let direct_p50 = dlg.p(50.0) / dle.p(50.0);
        let direct_rate = dtg.rate() / dte.rate();
        side.insert(
            "direct".into(),
            json!({
                "empty": {"latency": dle.json(), "throughput": dte.json()},
                "grown": {"latency": dlg.json(), "throughput": dtg.json()},
                "p50_ratio": round3(direct_p50),
                "p99_ratio": round3(dlg.p(99.0) / dle.p(99.0)),
                "throughput_ratio": round3(direct_rate),
            }),
        );
        for (idx, key) in [(1, "inbound"), (2, "outbound")] {
            let (le, lg, te, tg) = (
                &lat_empty[idx],
                &lat_grown[idx],
                &tput_empty[idx],
                &tput_grown[idx],
            );
            let p50 = lg.p(50.0) / le.p(50.0);
            let p99 = lg.p(99.0) / le.p(99.0);
            let rate = tg.rate() / te.rate();
            let (p50_n, rate_n) = (p50 / direct_p50, rate / direct_rate);
            side.insert(
                key.to_string(),
                json!({
                    "empty": {"latency": le.json(), "throughput": te.json()},
                    "grown": {"latency": lg.json(), "throughput": tg.json()},
                    // grown / empty: the target is within 10% (latency <= 1.10, throughput >= 0.90).
                    "p50_ratio": round3(p50),
                    "p99_ratio": round3(p99),
                    "throughput_ratio": round3(rate),
                    // The same, divided by the plain client's grown / empty in the same sets.
                    "p50_ratio_normalised": round3(p50_n),
                    "throughput_ratio_normalised": round3(rate_n),
                    "bridge_cpu_per_message_ratio": round3(
                        tg.bridge_cpu_per_1000() / te.bridge_cpu_per_1000()
                    ),
                    "synapse_cpu_per_message_ratio": round3(
                        tg.synapse_cpu_per_1000() / te.synapse_cpu_per_1000()
                    ),
                    "met": p50 <= 1.10 && rate >= 0.90,
                    "met_normalised": p50_n <= 1.10 && rate_n >= 0.90,
                }),
            );
        }
        side.insert(
            "seed".into(),
            json!({
                "conversations": settings.growth_conversations,
                "messages": settings.growth_conversations * per_conversation,
                "rows": rows,
                "seconds": round3(took.as_secs_f64()),
            }),
        );
        side.insert(
            "bridge".into(),
            json!({
                "rss_rest_empty_mb": round3(rest_empty.rss_mb),
                "rss_rest_grown_mb": round3(rest_grown.rss_mb),
                "rss_after_rounds_empty_mb": round3(traffic_empty.rss_mb),
                "rss_after_rounds_grown_mb": round3(traffic_grown.rss_mb),
                "peak_rss_empty_mb": round3(traffic_empty.hwm_mb),
                "peak_rss_grown_mb": round3(traffic_grown.hwm_mb),
                "start_grown_ms": round3(ms(start_grown)),
            }),
        );
        growth.insert(backend.clone(), Value::Object(side));
    }
    let load_after = procfs::loadavg();

    // ---- report ----------------------------------------------------------------------------------
    let [d, a, i, o] = [&latency[0], &latency[1], &latency[2], &latency[3]];
    let [td, ta, ti, to] = [
        &throughput[0],
        &throughput[1],
        &throughput[2],
        &throughput[3],
    ];
    let cpu_per_1000 = Throughput::synapse_cpu_per_1000;
    let ratio = |a: f64, b: f64| a / b;
    let targets = json!({
        "inbound_p50_ratio": {"value": round3(ratio(i.p(50.0), d.p(50.0))), "target": "<= 1.10", "met": ratio(i.p(50.0), d.p(50.0)) <= 1.10},
        "inbound_p99_ratio": {"value": round3(ratio(i.p(99.0), d.p(99.0))), "target": "<= 1.20", "met": ratio(i.p(99.0), d.p(99.0)) <= 1.20},
        "outbound_p50_ratio": {"value": round3(ratio(o.p(50.0), d.p(50.0))), "target": "<= 1.20", "met": ratio(o.p(50.0), d.p(50.0)) <= 1.20},
        "inbound_synapse_cpu_ratio": {"value": round3(cpu_per_1000(ti) / cpu_per_1000(td)), "target": "<= 1.20", "met": cpu_per_1000(ti) / cpu_per_1000(td) <= 1.20},
        "outbound_synapse_cpu_ratio": {"value": round3(cpu_per_1000(to) / cpu_per_1000(td)), "target": "<= 1.20", "met": cpu_per_1000(to) / cpu_per_1000(td) <= 1.20},
        "inbound_throughput_ratio": {"value": round3(ti.rate() / td.rate()), "target": ">= 0.9", "met": ti.rate() / td.rate() >= 0.9},
        "outbound_throughput_ratio": {"value": round3(to.rate() / td.rate()), "target": ">= 0.9", "met": to.rate() / td.rate() >= 0.9},
        "rss_idle_conversations_mb": {"value": round3(idle_many.rss_mb), "target": "<= 40", "met": idle_many.rss_mb <= 40.0},
        "start_with_portals_s": {"value": round3(start_median / 1000.0), "target": "<= 1", "met": start_median <= 1000.0},
    });
    let mut targets = targets;
    for (store, side) in &growth {
        for key in ["inbound", "outbound"] {
            let g = &side[key];
            targets[format!("growth_{store}_{key}_p50_ratio")] = json!({
                "value": g["p50_ratio"], "target": "<= 1.10",
                "met": g["p50_ratio"].as_f64().is_some_and(|v| v <= 1.10)});
            targets[format!("growth_{store}_{key}_throughput_ratio")] = json!({
                "value": g["throughput_ratio"], "target": ">= 0.9",
                "met": g["throughput_ratio"].as_f64().is_some_and(|v| v >= 0.9)});
            targets[format!("growth_{store}_{key}_p50_ratio_normalised")] = json!({
                "value": g["p50_ratio_normalised"], "target": "<= 1.10",
                "met": g["p50_ratio_normalised"].as_f64().is_some_and(|v| v <= 1.10)});
            targets[format!("growth_{store}_{key}_throughput_ratio_normalised")] = json!({
                "value": g["throughput_ratio_normalised"], "target": ">= 0.9",
                "met": g["throughput_ratio_normalised"].as_f64().is_some_and(|v| v >= 0.9)});
        }
    }
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
            "delivery_status_rounds": settings.status_ab_rounds,
            "synapse_profile": settings.profile,
            "growth_stores": settings.growth_backends,
            "growth_conversations": settings.growth_conversations,
            "growth_messages": settings.growth_messages,
            "growth_latency_messages_per_path": settings.growth_latency,
            "growth_throughput_messages_per_path": settings.growth_throughput,
            "bridge_log_filter": log_filter,
            "store": "sqlite (WAL; synchronous=FULL, NORMAL for redoable bookkeeping)",
            "bridge_database": database_url.split('?').next().unwrap_or_default(),
            // Which bridge ran: "revision" is the harness's; an A/B run names another build
            // through SWITCHBOARD_TEST_BINARY, and only these say which one (the path may have
            // held another build since; the digest names this one).
            "bridge_binary": rig::bridge::binary().display().to_string(),
            "bridge_binary_sha256": file_sha256(&rig::bridge::binary()),
            "bridge_binary_given": std::env::var_os("SWITCHBOARD_TEST_BINARY").is_some(),
        },
        "latency": {"direct": d.json(), "appservice": a.json(), "inbound": i.json(), "outbound": o.json()},
        "send_answered_p50_ms": {
            "direct": round3(percentile(&sorted(&acks[0]), 50.0)),
            "appservice": round3(percentile(&sorted(&acks[1]), 50.0)),
            "inbound": round3(percentile(&sorted(&acks[2]), 50.0)),
            "outbound": round3(percentile(&sorted(&acks[3]), 50.0)),
        },
        "throughput": {"direct": td.json(), "appservice": ta.json(), "inbound": ti.json(), "outbound": to.json()},
        "search_index_inbound": index_ab,
        "delivery_status_outbound": status_ab,
        "synapse_profile": Value::Object(profiles),
        "synapse_cpu_s_per_1000": {
            "direct": round3(cpu_per_1000(td)),
            "appservice": round3(cpu_per_1000(ta)),
            "inbound": round3(cpu_per_1000(ti)),
            "outbound": round3(cpu_per_1000(to)),
        },
        "growth": Value::Object(growth),
        "ratios": {
            "appservice_p50": round3(ratio(a.p(50.0), d.p(50.0))),
            "appservice_p95": round3(ratio(a.p(95.0), d.p(95.0))),
            "appservice_p99": round3(ratio(a.p(99.0), d.p(99.0))),
            "inbound_over_appservice_p50": round3(ratio(i.p(50.0), a.p(50.0))),
            "inbound_over_appservice_p99": round3(ratio(i.p(99.0), a.p(99.0))),
            "appservice_throughput": round3(ta.rate() / td.rate()),
            "inbound_over_appservice_throughput": round3(ti.rate() / ta.rate()),
            "appservice_synapse_cpu": round3(cpu_per_1000(ta) / cpu_per_1000(td)),
            "inbound_synapse_cpu": round3(cpu_per_1000(ti) / cpu_per_1000(td)),
            "outbound_synapse_cpu": round3(cpu_per_1000(to) / cpu_per_1000(td)),
            "inbound_over_appservice_synapse_cpu": round3(cpu_per_1000(ti) / cpu_per_1000(ta)),
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
            "cpu_s_per_1000_inbound": round3(ti.bridge_cpu_per_1000()),
            "cpu_s_per_1000_outbound": round3(to.bridge_cpu_per_1000()),
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
                f2(&r["ratios"]["appservice_throughput"]),
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
    let sc = &r["synapse_cpu_s_per_1000"];
    if sc.is_object() {
        println!();
        println!(
            "Synapse CPU s per 1000 messages: direct {} / appservice direct {} / inbound {} / outbound {}",
            f2(&sc["direct"]),
            f2(&sc["appservice"]),
            f2(&sc["inbound"]),
            f2(&sc["outbound"])
        );
    }
    let st = &r["delivery_status_outbound"];
    if st.is_object() {
        println!();
        println!(
            "| bridge outbound, delivery_status | msg/s | bridge CPU s/1000 | Synapse CPU s/1000 |"
        );
        println!(
            "|----------------------------------|------:|------------------:|-------------------:|"
        );
        for mode in ["receipts", "events"] {
            let t = &st[mode];
            println!(
                "| {mode:<32} | {:>5} | {:>17} | {:>18} |",
                f(&t["msgs_per_s"]),
                f2(&t["bridge_cpu_s_per_1000"]),
                f2(&t["synapse_cpu_s_per_1000"])
            );
        }
    }
    if let Some(profiles) = r["synapse_profile"].as_object() {
        for (path, p) in profiles {
            println!();
            println!(
                "Synapse, {path} ({} samples, {} s CPU per 1000): top functions by own samples",
                p["samples"],
                f2(&p["synapse_cpu_s_per_1000"])
            );
            for e in p["top_own"].as_array().into_iter().flatten().take(5) {
                println!(
                    "  {:>5.1}%  {}",
                    e["percent"].as_f64().unwrap_or(0.0),
                    e["function"].as_str().unwrap_or("")
                );
            }
            println!("  busy samples per 1000 messages, by where they entered Synapse's code:");
            for e in p["busy_per_1000_by_entry"]
                .as_array()
                .into_iter()
                .flatten()
                .take(8)
            {
                println!(
                    "  {:>6}  {}",
                    e["samples_per_1000"],
                    e["entry"].as_str().unwrap_or("")
                );
            }
        }
    }
    if let Some(growth) = r["growth"].as_object().filter(|g| !g.is_empty()) {
        println!();
        println!(
            "Growth: {} earlier messages over {} conversations",
            r["settings"]["growth_messages"], r["settings"]["growth_conversations"]
        );
        println!("| store    | path     | p50 ms empty → grown | ×    | ×/direct | p99 ms empty → grown | msg/s empty → grown | ×    | ×/direct | bridge CPU/msg × | RSS at rest MB empty → grown |");
        println!("|----------|----------|---------------------:|-----:|---------:|---------------------:|--------------------:|-----:|---------:|-----------------:|-----------------------------:|");
        for (store, side) in growth {
            for key in ["direct", "inbound", "outbound"] {
                let g = &side[key];
                let b = &side["bridge"];
                println!(
                    "| {store:<8} | {key:<8} | {:>20} | {:>4} | {:>8} | {:>20} | {:>19} | {:>4} | {:>8} | {:>16} | {:>28} |",
                    format!(
                        "{} → {}",
                        f(&g["empty"]["latency"]["p50_ms"]),
                        f(&g["grown"]["latency"]["p50_ms"])
                    ),
                    f2(&g["p50_ratio"]),
                    f2(&g["p50_ratio_normalised"]),
                    format!(
                        "{} → {}",
                        f(&g["empty"]["latency"]["p99_ms"]),
                        f(&g["grown"]["latency"]["p99_ms"])
                    ),
                    format!(
                        "{} → {}",
                        f(&g["empty"]["throughput"]["msgs_per_s"]),
                        f(&g["grown"]["throughput"]["msgs_per_s"])
                    ),
                    f2(&g["throughput_ratio"]),
                    f2(&g["throughput_ratio_normalised"]),
                    f2(&g["bridge_cpu_per_message_ratio"]),
                    format!(
                        "{} → {}",
                        f(&b["rss_rest_empty_mb"]),
                        f(&b["rss_rest_grown_mb"])
                    ),
                );
            }
        }
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
