//! What the latency benchmarks share: percentiles of a run, and one timed message from the
//! WhatsApp customer whose latency is the yardstick while something else loads the bridge.

use std::time::Instant;

use anyhow::ensure;
use serde_json::json;

use crate::fakes::whatsapp::{Customer, FakeWhatsApp};
use crate::rig::TestEnv;

pub struct Stats {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
    pub n: usize,
}

/// Percentiles of `ms` (nearest rank); zeros for no samples.
pub fn stats(ms: &[f64]) -> Stats {
    let mut v = ms.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Stats {
        p50: at(0.5),
        p95: at(0.95),
        max: v.last().copied().unwrap_or(0.0),
        n: v.len(),
    }
}

/// The WhatsApp customer writes message `i`; milliseconds until the operator sees it.
pub async fn whatsapp_latency(
    fake: &FakeWhatsApp,
    env: &TestEnv,
    who: &Customer,
    room: &str,
    tag: &str,
    i: usize,
) -> anyhow::Result<f64> {
    let text = format!("wa {tag} {i}");
    let (_, payload) = fake.message(who, json!({"type": "text", "text": {"body": text}}), None);
    let started = Instant::now();
    let status = fake
        .deliver(
            &format!("{}/whatsapp/webhook", env.bridge.base_url()),
            &payload,
        )
        .await?;
    ensure!(status == 200, "webhook answered {status}");
    env.alice.wait_for_text(room, &text).await?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}
