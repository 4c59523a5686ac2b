//! The media benchmark: do transcription and OCR add latency to relay?
//!
//! On the rig of the integration tests (real Synapse, the real `switchboard` binary, the real
//! Whisper server of `scripts/whisper-server.py`, Tesseract), a WhatsApp customer writes once a
//! second to an existing conversation and an operator's `/sync` times each message from the
//! webhook's send to its arrival in the room:
//!
//! 1. **quiet**: no media job runs;
//! 2. **jobs**: meanwhile a Telegram customer has sent `SWITCHBOARD_BENCH_VOICES` (default 8)
//!    real Russian voice notes and `SWITCHBOARD_BENCH_IMAGES` (default 16) screenshots, and the
//!    engines work through them (`media.concurrency`: `SWITCHBOARD_BENCH_MEDIA_CONCURRENCY`,
//!    default 1, as the default config) until every job is done.
//!
//! `SWITCHBOARD_BENCH_ENGINES=normal` runs the engines as before they had the idle CPU and I/O
//! classes (Tesseract with `media.ocr.scheduling: normal`, the Whisper server without
//! `chrt -i 0`), both at nice 10, to compare with the default (`idle`). Under `chrt -i 0` the
//! whole bench is in the idle class and the two are the same by construction (an idle-class
//! process's niceness is ignored, and no idle process preempts another): compare them with the
//! bench in the ordinary class, on a machine of its own (README, "Voice messages and images"). `SWITCHBOARD_BENCH_ENGINES=stub` puts engines that
//! use no CPU in their place (a Tesseract that sleeps 1 s, a transcription server that answers
//! after 5 s, about the real ones' times): the jobs still fetch files, post replies and index
//! text, so what remains of the ratio is that work, not the engines' CPU.
//!
//! Reported: the WhatsApp latency quiet and while jobs run (median, p95, max) and their ratio,
//! how long the files took to be relayed (send → the file in the room) and to be answered
//! (→ the bot's text), and that every job ended done.
//!
//! `cargo bench --bench media --profile dev` (or release); results in `bench/results/media.json`.

#[path = "../tests/rig/mod.rs"]
#[allow(dead_code, unused_imports, unused_macros)]
mod rig;

#[path = "latency.rs"]
mod latency;

#[path = "../tests/fakes/mod.rs"]
#[allow(dead_code, unused_imports)]
mod fakes;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use fakes::telegram::{FakeTelegram, TgUser, TOKEN};
use fakes::whatsapp::{Customer, FakeWhatsApp};
use latency::{stats, whatsapp_latency};
use rig::whisper::Whisper;
use rig::{Backend, BridgeOptions, TestEnv};
use serde_json::json;

fn num(name: &str, default: usize) -> usize {
    std::env::var(format!("SWITCHBOARD_BENCH_{name}"))
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn fixture(name: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(rig::repo_root().join("tests/data/media").join(name))
        .with_context(|| format!("fixture {name}"))
}

/// A Tesseract that uses no CPU: it reads the image, sleeps a second, prints a line.
fn stub_tesseract(dir: &std::path::Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("tesseract");
    std::fs::write(
        &path,
        "#!/bin/sh\ncat >/dev/null\nsleep 1\necho 'Заказ 4521 (stub)'\n",
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path.display().to_string())
}

/// A transcription endpoint that uses no CPU: it answers every request after 5 seconds.
async fn stub_transcription() -> anyhow::Result<(fakes::server::FakeServer, String)> {
    let bound = fakes::server::FakeServer::bind("stub transcription").await?;
    let app = axum::Router::new().route(
        "/v1/audio/transcriptions",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            axum::Json(json!({"text": "Здравствуйте (stub)"}))
        }),
    );
    let url = format!("{}/v1/audio/transcriptions", bound.url());
    Ok((bound.serve(app), url))
}

/// `/proc/self/stat` field 41: the scheduling policy this bench runs under.
fn own_policy() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(41 - 3)?.parse().ok()
}

/// The cpu cgroup this bench runs in (cgroup v1 `cpu` line, else the v2 one).
fn own_cpu_cgroup() -> Option<String> {
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let line = groups
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == "cpu"))
        })
        .or_else(|| groups.lines().find(|l| l.starts_with("0::")))?;
    line.rsplit(':').next().map(str::to_string)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let voices = num("VOICES", 8);
    let images = num("IMAGES", 16);
    let quiet_n = num("QUIET", 20);
    let concurrency = num("MEDIA_CONCURRENCY", 1);
    let engines = std::env::var("SWITCHBOARD_BENCH_ENGINES").unwrap_or_else(|_| "idle".into());
    ensure!(
        ["idle", "normal", "stub"].contains(&engines.as_str()),
        "SWITCHBOARD_BENCH_ENGINES is idle, normal or stub, not {engines}"
    );
    let stubs = tempfile::tempdir()?;
    let (_whisper, _stub_server, url, ocr_command) = if engines == "stub" {
        let (server, url) = stub_transcription().await?;
        (None, Some(server), url, stub_tesseract(stubs.path())?)
    } else {
        let whisper = Whisper::start_scheduled(rig::free_port()?, 900, engines == "idle").await?;
        let url = whisper.url();
        (Some(whisper), None, url, "tesseract".to_string())
    };
    let whatsapp = FakeWhatsApp::start().await?;
    let telegram = FakeTelegram::start().await?;
    let media = json!({
        "transcription": {"url": url, "language": "ru,uk,id,en"},
        "ocr": {
            "enabled": true,
            "command": ocr_command,
            "scheduling": if engines == "normal" { "normal" } else { "idle" },
        },
        "concurrency": concurrency,
    });
    let options = BridgeOptions::default()
        .backend(Backend::Sqlite)
        .channel("whatsapp", whatsapp.channel_config())
        .channel(
            "telegram",
            json!({"enabled": true, "token": TOKEN, "api_url": telegram.url(), "poll_timeout_secs": 2}),
        )
        .edit_config(move |config| {
            config["media"] = serde_yaml::to_value(&media).expect("the media section as YAML")
        });
    let mut env = TestEnv::start(options).await?;
    env.alice.timeout = Duration::from_secs(600);
    let who = Customer::new("4915112348888", "Wanda Whatsapp");
    let (_, first) = whatsapp.message(
        &who,
        json!({"type": "text", "text": {"body": "hello"}}),
        None,
    );
    whatsapp
        .deliver(
            &format!("{}/whatsapp/webhook", env.bridge.base_url()),
            &first,
        )
        .await?;
    let room = env.alice.wait_for_invite("Wanda").await?;
    env.alice.join(&room).await?;
    env.alice.wait_for_text(&room, "hello").await?;
    for i in 0..3 {
        whatsapp_latency(&whatsapp, &env, &who, &room, "warmup", i).await?;
    }

    // 1. Quiet.
    let mut quiet = Vec::new();
    for i in 0..quiet_n {
        let tick = Instant::now();
        quiet.push(whatsapp_latency(&whatsapp, &env, &who, &room, "quiet", i).await?);
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed())).await;
    }

    // 2. The Telegram customer's files, then the same writing while their jobs run.
    let tg = TgUser::new(5_550_099, "Tanya", Some("Media"), None);
    telegram.push_update(telegram.message_update(&tg, 1, json!({"text": "files follow"})));
    let tg_room = env.alice.wait_for_invite("Tanya Media").await?;
    env.alice.join(&tg_room).await?;
    let (voice, screenshot) = (fixture("voice-ru.ogg")?, fixture("screenshot.png")?);
    let sent = Instant::now();
    let mut updates = Vec::new();
    for i in 0..voices.max(images) {
        if i < voices {
            let (id, _) = telegram.add_file("voice", "oga", voice.clone(), None);
            let mut meta = telegram.file_meta(&id);
            meta["duration"] = 6.into();
            meta["mime_type"] = "audio/ogg".into();
            updates.push(telegram.message_update(&tg, 100 + i as i64, json!({"voice": meta})));
        }
        if i < images {
            let (id, _) = telegram.add_file("photos", "jpg", screenshot.clone(), None);
            let mut meta = telegram.file_meta(&id);
            meta["width"] = 900.into();
            meta["height"] = 260.into();
            updates.push(telegram.message_update(&tg, 1000 + i as i64, json!({"photo": [meta]})));
        }
    }
    telegram.push_updates(updates);
    let url = env.bridge.database_url().to_string();
    let open = "SELECT COUNT(*) FROM media_jobs WHERE state IN ('pending', 'running')";
    let all = "SELECT COUNT(*) FROM media_jobs";
    let files = (voices + images) as i64;
    // The files are relayed (their jobs queued) before the jobs phase is timed.
    rig::poll_until("every file relayed", Duration::from_secs(300), || async {
        Ok((rig::store_count(Backend::Sqlite, &url, all, &[]).await? >= files).then_some(()))
    })
    .await?;
    let relayed_secs = sent.elapsed().as_secs_f64();
    let mut during = Vec::new();
    let mut i = 0;
    while during.len() < 5 || rig::store_count(Backend::Sqlite, &url, open, &[]).await? > 0 {
        let tick = Instant::now();
        during.push(whatsapp_latency(&whatsapp, &env, &who, &room, "jobs", i).await?);
        i += 1;
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed())).await;
    }
    let answered_secs = sent.elapsed().as_secs_f64();
    let done = rig::store_count(
        Backend::Sqlite,
        &url,
        "SELECT COUNT(*) FROM media_jobs WHERE state = 'done'",
        &[],
    )
    .await?;
    let q = stats(&quiet);
    let j = stats(&during);
    let result = json!({
        "voices": voices,
        "images": images,
        "media_concurrency": concurrency,
        "engines": engines,
        // The bench's own CPU class (5: SCHED_IDLE, under `chrt -i 0`) and cpu cgroup: the
        // conditions the figures were taken in.
        "bench_sched_policy": own_policy(),
        "bench_cpu_cgroup": own_cpu_cgroup(),
        "jobs_done": done,
        "files_relayed_seconds": relayed_secs,
        "files_answered_seconds": answered_secs,
        "whatsapp_quiet_ms": {"p50": q.p50, "p95": q.p95, "max": q.max, "n": q.n},
        "whatsapp_jobs_ms": {"p50": j.p50, "p95": j.p95, "max": j.max, "n": j.n},
        "whatsapp_jobs_samples_ms": during,
        "ratio_p50": j.p50 / q.p50,
        "ratio_p95": j.p95 / q.p95,
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    let out = rig::repo_root().join("bench/results/media.json");
    std::fs::write(&out, serde_json::to_string_pretty(&result)? + "\n")?;
    println!(
        "WhatsApp relay latency quiet p50 {:.0} ms / p95 {:.0} ms; while {} media jobs ran p50 {:.0} ms / p95 {:.0} ms ({:.2}x / {:.2}x); files relayed in {relayed_secs:.1} s, all answered in {answered_secs:.1} s",
        q.p50, q.p95, files, j.p50, j.p95, j.p50 / q.p50, j.p95 / q.p95
    );
    ensure!(done == files, "{done} of {files} jobs done");
    Ok(())
}
