//! The flood benchmark: does a flood on one channel slow the others, and does it reach the team?
//!
//! On the rig of the integration tests (real Synapse, the real `switchboard` binary, the
//! wire-level WhatsApp fake delivering signed webhooks), a WhatsApp customer writes to an
//! existing conversation every `SWITCHBOARD_BENCH_INTERVAL_MS` (default 200 ms, one message at a
//! time) and an operator's `/sync` times each message from the webhook's send to its arrival in
//! the room. `SWITCHBOARD_BENCH_ROUNDS` (default 3) rounds of:
//!
//! 1. **quiet**: for `SWITCHBOARD_BENCH_GAP_SECS` (default 60: long enough for every per-minute
//!    limit of the web chat to fill up again, so each round meets the same limits) nothing
//!    else happens;
//! 2. **flood**: meanwhile a script opens `SWITCHBOARD_BENCH_FLOOD` (default 1,000) web chat
//!    sessions with one message each, half from as many simulated addresses (`X-Forwarded-For`
//!    through a trusted proxy, as behind a load balancer) and half from one address, 32 at a
//!    time. "During the flood" lasts until the round's last accepted message is in its room.
//!
//! A flood lasts a few seconds, so one round at one message a second gave five samples; three
//! rounds at five a second give some 20 each, and the quiet samples are taken between the
//! floods, on the same machine at the same time.
//!
//! Reported: the WhatsApp latency quiet and during the floods (median, p95, max, and each
//! round's median) and their ratio; how the web chat answered (accepted, refused with 429 +
//! Retry-After, anything else); how many rooms the team got; and that nothing accepted was
//! lost: every accepted web chat message and every WhatsApp message reached its room.
//!
//! `cargo bench --bench flood` (release) or, quicker on a cold machine,
//! `cargo bench --bench flood --profile dev`; results in `bench/results/flood.json`.

#[path = "../tests/rig/mod.rs"]
#[allow(dead_code, unused_imports, unused_macros)]
mod rig;

#[path = "latency.rs"]
mod latency;

#[path = "../tests/fakes/mod.rs"]
#[allow(dead_code, unused_imports)]
mod fakes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use fakes::whatsapp::{Customer, FakeWhatsApp};
use futures::StreamExt;
use latency::{stats, whatsapp_latency};
use rig::{Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};

/// The web chat limits under test (what an operator would configure); the overall rate of new
/// conversations from `SWITCHBOARD_BENCH_CONVERSATIONS_PER_MINUTE` (default 60), of new sessions
/// from `SWITCHBOARD_BENCH_SESSIONS_PER_MINUTE` (default 600).
fn webchat_limits(conversations_per_minute: usize) -> Value {
    json!({
        "trusted_proxies": ["127.0.0.1"],
        "sessions_per_address_per_minute": 20,
        "sessions_per_minute": num("SESSIONS_PER_MINUTE", 600),
        "new_conversations_per_address_per_minute": 5,
        "new_conversations_per_minute": conversations_per_minute,
    })
}

/// `/proc/loadavg`'s three figures, to read the results beside (other work on the machine).
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn num(name: &str, default: usize) -> usize {
    std::env::var(format!("SWITCHBOARD_BENCH_{name}"))
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

#[derive(Default, Debug)]
struct FloodCounts {
    accepted: usize,
    refused: usize,
    refused_without_retry_after: usize,
    other: Vec<String>,
}

/// One flooding visitor: a session and one message, from `addr`. The status of the message
/// (or of the session, when that was refused).
async fn flood_one(
    http: &reqwest::Client,
    api: &str,
    addr: &str,
    i: usize,
) -> anyhow::Result<(u16, bool)> {
    let resp = http
        .post(format!("{api}/session"))
        .header("x-forwarded-for", addr)
        .json(&json!({"name": format!("Flooder {i}")}))
        .send()
        .await?;
    if resp.status() != 200 {
        return Ok((
            resp.status().as_u16(),
            resp.headers().contains_key("retry-after"),
        ));
    }
    let body: Value = resp.json().await?;
    let token = body["token"].as_str().context("token")?.to_string();
    let resp = http
        .post(format!("{api}/messages"))
        .header("x-forwarded-for", addr)
        .bearer_auth(token)
        .json(&json!({"client_id": "m1", "text": format!("flood message {i}")}))
        .send()
        .await?;
    Ok((
        resp.status().as_u16(),
        resp.headers().contains_key("retry-after"),
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let flood = num("FLOOD", 1000);
    let fake = FakeWhatsApp::start().await?;
    let per_minute = num("CONVERSATIONS_PER_MINUTE", 60);
    let limits = webchat_limits(per_minute);
    let options = BridgeOptions::default()
        .backend(Backend::Sqlite)
        .channel("whatsapp", fake.channel_config())
        .edit_config(move |config| {
            let Some(section) = config
                .get_mut("channels")
                .and_then(|c| c.get_mut("webchat"))
                .and_then(serde_yaml::Value::as_mapping_mut)
            else {
                return;
            };
            for (k, v) in limits.as_object().into_iter().flatten() {
                let v = serde_yaml::to_value(v).unwrap_or(serde_yaml::Value::Null);
                section.insert(k.as_str().into(), v);
            }
        });
    let env = Arc::new(TestEnv::start(options).await?);
    let who = Customer::new("4915112349999", "Wendy Whatsapp");

    // The WhatsApp conversation exists before we measure: its room, the operator in it.
    let (_, first) = fake.message(
        &who,
        json!({"type": "text", "text": {"body": "hello"}}),
        None,
    );
    fake.deliver(
        &format!("{}/whatsapp/webhook", env.bridge.base_url()),
        &first,
    )
    .await?;
    let room = env.alice.wait_for_invite("Wendy").await?;
    env.alice.join(&room).await?;
    env.alice.wait_for_text(&room, "hello").await?;
    for i in 0..3 {
        whatsapp_latency(&fake, &env, &who, &room, "warmup", i).await?;
    }

    let rounds = num("ROUNDS", 3).max(1);
    let interval = Duration::from_millis(num("INTERVAL_MS", 200) as u64);
    let gap = Duration::from_secs(num("GAP_SECS", 60) as u64);
    let api = format!("{}/api/v1", env.webchat_url());
    let url = env.bridge.database_url().to_string();
    let pending = "SELECT COUNT(*) FROM inbox WHERE channel = 'webchat' AND state = 'pending'";
    let mut quiet = Vec::new();
    let mut during = Vec::new();
    let mut per_round = Vec::new();
    let mut counts = FloodCounts::default();
    let mut accepted = 0usize;
    let mut flood_secs = 0.0;
    let mut sample = 0usize;
    for round in 0..rounds {
        // 1. Quiet.
        let quiet_until = Instant::now() + gap;
        let mut round_quiet = Vec::new();
        while Instant::now() < quiet_until || round_quiet.len() < 5 {
            let tick = Instant::now();
            round_quiet.push(whatsapp_latency(&fake, &env, &who, &room, "quiet", sample).await?);
            sample += 1;
            tokio::time::sleep(interval.saturating_sub(tick.elapsed())).await;
        }

        // 2. The flood, with the customer writing meanwhile.
        let flood_started = Instant::now();
        // The flooding script runs on a runtime (and thread) of its own: sharing the measuring
        // runtime, its 32 requests in flight would delay the operator's sync client and be
        // counted as the bridge's latency.
        let flooder = {
            let api = api.clone();
            std::thread::spawn(
                move || -> anyhow::Result<Vec<(usize, anyhow::Result<(u16, bool)>)>> {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    Ok(runtime.block_on(async move {
                        let http = reqwest::Client::new();
                        futures::stream::iter(0..flood)
                            .map(|i| {
                                let (http, api) = (http.clone(), api.clone());
                                // Half from as many addresses, half from one.
                                let addr = if i % 2 == 0 {
                                    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
                                } else {
                                    "203.0.113.66".to_string()
                                };
                                let n = round * flood + i;
                                async move { (i, flood_one(&http, &api, &addr, n).await) }
                            })
                            .buffer_unordered(32)
                            .collect::<Vec<_>>()
                            .await
                    }))
                },
            )
        };
        // "During the flood" lasts until the flood's last accepted message is in its room:
        // the rooms the flood makes are created after its requests were answered.
        let mut round_during = Vec::new();
        while !flooder.is_finished()
            || round_during.len() < 5
            || rig::store_count(Backend::Sqlite, &url, pending, &[]).await? > 0
        {
            let tick = Instant::now();
            round_during.push(whatsapp_latency(&fake, &env, &who, &room, "flood", sample).await?);
            sample += 1;
            tokio::time::sleep(interval.saturating_sub(tick.elapsed())).await;
        }
        let secs = flood_started.elapsed().as_secs_f64();
        flood_secs += secs;
        let results = flooder
            .join()
            .map_err(|_| anyhow::anyhow!("the flooding thread panicked"))??;
        let mut round_accepted = 0;
        for (i, result) in results {
            match result {
                Ok((200, _)) => round_accepted += 1,
                Ok((429, retry_after)) => {
                    counts.refused += 1;
                    if !retry_after {
                        counts.refused_without_retry_after += 1;
                    }
                }
                Ok((status, _)) => counts.other.push(format!("round {round}, {i}: {status}")),
                Err(e) => counts.other.push(format!("round {round}, {i}: {e}")),
            }
        }
        accepted += round_accepted;
        let (q, f) = (stats(&round_quiet), stats(&round_during));
        println!(
            "round {round}: quiet p50 {:.0} ms (n {}), flood p50 {:.0} ms (n {}, {secs:.1} s): {:.2}x; {round_accepted} accepted",
            q.p50, q.n, f.p50, f.n, f.p50 / q.p50
        );
        per_round.push(json!({
            "flood_seconds": secs,
            "webchat_accepted": round_accepted,
            "quiet_p50_ms": q.p50,
            "quiet_n": q.n,
            "flood_p50_ms": f.p50,
            "flood_n": f.n,
            "ratio_p50": f.p50 / q.p50,
        }));
        quiet.extend(round_quiet);
        during.extend(round_during);
    }
    counts.accepted = accepted;

    // Nothing accepted is lost: every accepted web chat message is done in the inbox (in its
    // room), and the team got one room per accepted conversation, no more.
    let done = "SELECT COUNT(*) FROM inbox WHERE channel = 'webchat' AND state = 'done'";
    rig::poll_until(
        "every accepted web chat message in its room",
        Duration::from_secs(600),
        || async {
            let n = rig::store_count(Backend::Sqlite, &url, done, &[]).await?;
            Ok((n as usize >= accepted).then_some(()))
        },
    )
    .await?;
    let rooms = env.rooms_named("Flooder").await?.len();
    let q = stats(&quiet);
    let f = stats(&during);
    let ratio_p50 = f.p50 / q.p50;
    let ratio_p95 = f.p95 / q.p95;
    let result = json!({
        "flood_sessions": flood,
        "rounds": rounds,
        "interval_ms": interval.as_millis() as u64,
        "quiet_seconds_per_round": gap.as_secs(),
        "flood_seconds": flood_secs,
        "per_round": per_round,
        "webchat_accepted": counts.accepted,
        "webchat_refused_429": counts.refused,
        "webchat_refused_without_retry_after": counts.refused_without_retry_after,
        "webchat_other": counts.other,
        "team_rooms": rooms,
        "configured_new_conversations_per_minute": per_minute,
        "configured_sessions_per_minute": num("SESSIONS_PER_MINUTE", 600),
        "whatsapp_quiet_ms": {"p50": q.p50, "p95": q.p95, "max": q.max, "n": q.n},
        "whatsapp_flood_ms": {"p50": f.p50, "p95": f.p95, "max": f.max, "n": f.n},
        "whatsapp_flood_samples_ms": during,
        "load_average": load_average(),
        "ratio_p50": ratio_p50,
        "ratio_p95": ratio_p95,
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    let out = rig::repo_root().join("bench/results/flood.json");
    std::fs::write(&out, serde_json::to_string_pretty(&result)? + "\n")?;
    println!(
        "WhatsApp latency quiet p50 {:.0} ms / p95 {:.0} ms; during the flood p50 {:.0} ms / p95 {:.0} ms ({ratio_p50:.2}x / {ratio_p95:.2}x); web chat: {} accepted, {} refused (429), {} rooms for the team",
        q.p50, q.p95, f.p50, f.p95, counts.accepted, counts.refused, rooms
    );
    ensure!(
        counts.other.is_empty(),
        "unexpected answers: {:?}",
        counts.other
    );
    ensure!(
        rooms == counts.accepted,
        "{rooms} rooms for {} accepted conversations",
        counts.accepted
    );
    Ok(())
}
