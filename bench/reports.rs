//! The report benchmark: a 30-day `!sb report` over a large store, on SQLite and PostgreSQL.
//!
//! `cargo bench --bench reports` seeds a fresh store with `SWITCHBOARD_BENCH_REPORT_CONVERSATIONS`
//! conversations (default 100,000) over the last 30 days, each with ten messages (five from the
//! customer, five answers: 1,000,000 messages by default) and the routing events around them
//! (created, assigned, first response, resolved; every tenth one reopened and resolved again):
//! 14 to 16 conversation events each, over five channels, four teams with office hours in
//! different zones, and fifty operators. The rows are generated inside the database (a
//! recursive CTE on SQLite, `generate_series` on PostgreSQL), so seeding takes seconds, not
//! hours. Then it times `SWITCHBOARD_BENCH_REPORT_RUNS` (default 5) runs of the report itself
//! ([`switchboard::reports::from_store`]: the store queries and the computation, as
//! `!sb report 30d by operator` runs them) and reports each run, the median and the best, with
//! the machine's load average beside them (the machine is shared: read the figure with it) and
//! the CPU time the bench process used (with SQLite, the whole cost of the report).
//!
//! `SWITCHBOARD_BENCH_REPORT_BACKENDS` = `sqlite,postgres` (default both; PostgreSQL from the
//! test rig's server). Results: `bench/results/reports-<backends>-<conversations>.json`.
//! The target (issue 20): ≤ 2 s on SQLite for 100,000 conversations and 1,000,000 messages.

#[path = "../tests/rig/mod.rs"]
#[allow(dead_code, unused_imports)]
mod rig;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use switchboard::reports::{self, GroupBy, Period, Teams};
use switchboard::routing::calendar::Calendar;
use switchboard::store::Store;

const DAY_MS: i64 = 86_400_000;
const TEAMS: [(&str, &str); 4] = [
    ("a", "Europe/Berlin"),
    ("b", "Europe/Moscow"),
    ("c", "Asia/Jakarta"),
    ("d", "UTC"),
];

fn setting(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(format!("SWITCHBOARD_BENCH_REPORT_{name}")) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("SWITCHBOARD_BENCH_REPORT_{name}={v}")),
        Err(_) => Ok(default),
    }
}

/// The numbers 1..=$1 as a CTE `n(i)` in the store's dialect.
fn numbers(sqlite: bool) -> &'static str {
    if sqlite {
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)"
    } else {
        "WITH RECURSIVE n(i) AS (SELECT generate_series(1, $1::BIGINT))"
    }
}

/// The events of conversation `i` (`j` = 0‥15), all in the 30 days before `$2` (now; starts
/// spread over the first 29 days, so the last resolution is before now):
/// created and the first customer message at its start `t`, assigned a minute later, then
/// answer / first response, four more messages each way, resolved; every tenth conversation is
/// reopened by its customer and resolved again (k = 14, 15).
const EVENTS: &str = "
  , k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < 15)
  , c AS (SELECT i, $2 - 2592000000 + (i * 2505600000 / $1) + 1000 AS t,
                 '@op' || (i % 50) || ':localhost' AS op,
                 CASE i % 5 WHEN 0 THEN 'a' WHEN 1 THEN 'b' WHEN 2 THEN 'c' WHEN 3 THEN 'd' ELSE NULL END AS team
          FROM n)
  INSERT INTO conversation_events (id, conversation_id, at, kind, actor, team, owner, detail, dedup)
  SELECT i * 16 + j, i,
         t + CASE
               WHEN j < 2 THEN 0
               WHEN j = 2 THEN 60000
               WHEN j < 5 THEN 60000 + (i % 97) * 60000
               WHEN j < 13 THEN 60000 + (i % 97) * 60000 + (j - 4) * 120000
               WHEN j = 13 THEN 3 * 3600000 + (i % 13) * 600000
               WHEN j = 14 THEN 6 * 3600000
               ELSE 7 * 3600000
             END,
         CASE
           WHEN j = 0 THEN 'created'
           WHEN j = 2 THEN 'assigned'
           WHEN j = 4 THEN 'first_response'
           WHEN j = 13 THEN 'resolved'
           WHEN j = 14 THEN 'reopened'
           WHEN j = 15 THEN 'resolved'
           WHEN j IN (1, 5, 7, 9, 11) THEN 'customer_message'
           ELSE 'operator_answer'
         END,
         CASE WHEN j IN (0, 1, 5, 7, 9, 11, 14) THEN NULL ELSE op END,
         team,
         CASE WHEN j < 2 THEN NULL ELSE op END,
         NULL, NULL
  FROM c, k
  WHERE j < 14 OR i % 10 = 0";

async fn seed(store: &Store, conversations: i64, now: i64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let sqlite = store.is_sqlite();
    let n = numbers(sqlite);
    let channel = "CASE i % 5 WHEN 0 THEN 'email' WHEN 1 THEN 'telegram' WHEN 2 THEN 'whatsapp' WHEN 3 THEN 'webchat' ELSE 'viber' END";
    // (statement, whether it binds `$2` = now besides `$1` = the number of conversations).
    let statements = [
        (
            format!(
                "{n} INSERT INTO contacts (channel, contact_id, ghost_user_id, registered, customer_id)
                 SELECT {channel}, 'k' || i, '@sb_seed_' || i || ':localhost', 1,
                        CASE WHEN i % 3 = 0 THEN i / 3 ELSE NULL END FROM n"
            ),
            false,
        ),
        (
            format!(
                "{n} INSERT INTO conversations (id, channel, account, chat, contact_id, room_id, created_at)
                 SELECT i, {channel}, 'acct', 'c' || i, 'k' || i, '!seed' || i, $2 FROM n"
            ),
            true,
        ),
        (format!("{n} {EVENTS}"), true),
    ];
    for (i, (sql, binds_now)) in statements.into_iter().enumerate() {
        let step = Instant::now();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(conversations);
        if binds_now {
            query = query.bind(now);
        }
        query
            .execute(store.pool())
            .await
            .with_context(|| format!("seeding statement {i}"))?;
        eprintln!("  statement {i}: {:.1?}", step.elapsed());
    }
    // As autovacuum would on PostgreSQL (index-only scans need the visibility map).
    let analyze = if sqlite { "ANALYZE" } else { "VACUUM ANALYZE" };
    sqlx::query(analyze).execute(store.pool()).await?;
    Ok(started.elapsed())
}

fn teams() -> anyhow::Result<Teams> {
    let mut hours = BTreeMap::new();
    hours.insert("mon-fri".to_string(), "09:00-18:00".to_string());
    let mut calendars = HashMap::new();
    let mut targets = HashMap::new();
    for (name, tz) in TEAMS {
        calendars.insert(
            Some(name.to_string()),
            Calendar::from_config(tz, &hours, &[]).map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        targets.insert(Some(name.to_string()), 2 * 3_600_000);
    }
    calendars.insert(None, Calendar::always(chrono_tz::UTC));
    targets.insert(None, 2 * 3_600_000);
    Ok(Teams {
        calendars,
        targets,
        only: None,
    })
}

/// CPU time this process has used (user + system), in seconds: with SQLite the database works
/// in-process, so on a shared machine this is the report's own cost.
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let conversations = setting("CONVERSATIONS", 100_000)? as i64;
    let runs = setting("RUNS", 5)?.max(1);
    let backends = std::env::var("SWITCHBOARD_BENCH_REPORT_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".into());
    let dir = tempfile::tempdir()?;
    let teams = teams()?;
    let mut results = serde_json::Map::new();
    for backend in backends.split(',').map(str::trim) {
        let url = match backend {
            "sqlite" => format!("sqlite://{}", dir.path().join("reports.db").display()),
            "postgres" => rig::postgres::fresh_database_url().await?,
            other => anyhow::bail!("unknown backend {other}"),
        };
        let store = Store::connect(&url, 4).await?;
        let now = switchboard::store::now_ms();
        eprintln!("{backend}: seeding {conversations} conversations…");
        let seeded = seed(&store, conversations, now).await?;
        let count = |sql: &'static str| {
            let store = &store;
            async move {
                let n: i64 = sqlx::query_scalar(sql).fetch_one(store.pool()).await?;
                anyhow::Ok(n)
            }
        };
        let events = count("SELECT COUNT(*) FROM conversation_events").await?;
        let messages = count(
            "SELECT COUNT(*) FROM conversation_events WHERE kind IN ('customer_message', 'operator_answer')",
        )
        .await?;
        eprintln!("{backend}: seeded {events} events ({messages} messages) in {seeded:.1?}");
        // The seeded events predate the figures: the start-up backfill counts them, and the
        // working times are computed once for the teams' calendars (as the first report would).
        let started = Instant::now();
        let backfilled = store.report_figures_backfill(20_000, |_| {}).await?;
        let backfill_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let tags: Vec<(String, i64)> = teams
            .calendars
            .iter()
            .map(|(t, c)| (t.clone().unwrap_or_default(), reports::fingerprint(c)))
            .collect();
        let filled = store
            .report_fill_working(
                &tags,
                |team, start, end| {
                    let key = (!team.is_empty()).then(|| team.to_string());
                    let c = teams.calendars.get(&key)?;
                    Some(
                        c.working_between(
                            switchboard::clock::to_datetime(start),
                            switchboard::clock::to_datetime(end),
                        )
                        .num_milliseconds(),
                    )
                },
                i64::MIN,
                i64::MAX,
            )
            .await?;
        let fill_s = started.elapsed().as_secs_f64();
        eprintln!(
            "{backend}: backfilled {backfilled} events in {backfill_s:.1}s, {filled} working times in {fill_s:.1}s"
        );
        let period = Period {
            from: now - 30 * DAY_MS,
            to: now + 1,
            label: "the last 30 days".into(),
            tz: chrono_tz::UTC,
        };
        let mut times = Vec::new();
        let mut loads = Vec::new();
        let mut total = None;
        let mut cpu = Vec::new();
        for run in 0..runs {
            let cpu_before = process_cpu_s();
            let started = Instant::now();
            let report =
                reports::from_store(&store, &teams, &period, Some(GroupBy::Operator), now).await?;
            let took = started.elapsed();
            cpu.push(process_cpu_s() - cpu_before);
            loads.push(load_average());
            eprintln!(
                "{backend}: run {run}: {took:.2?}, this process's CPU {:.2}s (load {})",
                cpu.last().copied().unwrap_or_default(),
                loads.last().map_or("", String::as_str)
            );
            times.push(took.as_secs_f64());
            total = Some(report.total);
        }
        // Where the time goes: the figures' reads alone.
        let started = Instant::now();
        store.report_counts(period.from, period.to).await?;
        let counts_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        store
            .report_quantiles(
                switchboard::store::events::EventKind::FirstResponse,
                true,
                Some(switchboard::store::figures::GroupColumn::Who),
                period.from,
                period.to,
                None,
            )
            .await?;
        let quantiles_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        store
            .report_figures_mix(period.from, period.to, None)
            .await?;
        let mix_s = started.elapsed().as_secs_f64();
        eprintln!(
            "{backend}: counts {counts_s:.2}s, one quantile query {quantiles_s:.2}s, channel mix {mix_s:.2}s"
        );
        let total = total.context("no run")?;
        anyhow::ensure!(
            total.new == conversations as u64
                && total.messages_in + total.messages_out == messages as u64,
            "the report counted {} new and {} messages",
            total.new,
            total.messages_in + total.messages_out
        );
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        results.insert(
            backend.to_string(),
            serde_json::json!({
                "conversations": conversations,
                "events": events,
                "messages": messages,
                "seed_s": seeded.as_secs_f64(),
                "report_30d_by_operator_s": times,
                "median_s": sorted[sorted.len() / 2],
                "best_s": sorted[0],
                "load_average_1_5_15": loads,
                "backfill_s": backfill_s,
                "fill_working_s": fill_s,
                "read_counts_s": counts_s,
                "one_quantile_query_s": quantiles_s,
                "channel_mix_s": mix_s,
                "load_average_at_end": load_average(),
                "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
                "process_cpu_s_per_run": cpu,
            }),
        );
    }
    let out = serde_json::Value::Object(results);
    let name = std::env::var("SWITCHBOARD_BENCH_REPORT_OUT").unwrap_or_else(|_| {
        format!(
            "reports-{}-{conversations}.json",
            backends.replace(',', "-")
        )
    });
    let path = rig::repo_root().join("bench/results").join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&out)?)?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
