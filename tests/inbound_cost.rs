//! What one inbound message costs the bridge, counted, not timed: the SQL statements the bridge
//! runs (and their time) and the requests it makes to the homeserver per customer message, on
//! SQLite and on PostgreSQL (issue 23).
//!
//! A web chat visitor opens a conversation; once its portal exists and the operators are in it,
//! `MESSAGES` more messages are sent one at a time, each waited for in the room. The bridge runs
//! with `sqlx::query=debug`, so sqlx logs every statement with its elapsed time; the statements
//! logged during the messages are grouped by kind (the span they ran in and the SQL, whitespace
//! collapsed) and divided by the number of messages. Background work (queue polls, timers,
//! lease renewals) is measured the same way over an idle window as long as the message window
//! and subtracted. Synapse's access log gives the bridge's requests the same way.
//!
//! The test asserts a budget per message (statements and homeserver requests), so a change
//! that adds per-message work is seen; `--nocapture` prints the whole table (what
//! docs/performance.md quotes). `SWITCHBOARD_COST_MESSAGES` changes the count.

#[macro_use]
mod rig;

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use rig::{Backend, BridgeOptions, TestEnv};

on_both_stores!(one_inbound_message_costs_a_known_number_of_statements);

/// Messages measured (after the conversation's first).
fn messages() -> usize {
    std::env::var("SWITCHBOARD_COST_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// Most SQL statements the bridge may run per inbound message (receive + relay), background
/// subtracted: what was measured after issue 23's changes (SQLite 33.4-33.6, PostgreSQL
/// 42.3-42.8 in four runs: ids come from a sequence there, and transactions are explicit) plus
/// slack for the background estimate, less than one more statement per message would add. Of
/// those, about one per message is the pipelined drain's second look at the queue: a message
/// sent while the previous one's bookkeeping runs finds the queue empty, and once that is done
/// the drain looks again, so a message that came meanwhile is sent at once (before it, 32.0-32.5
/// and 41.3-41.4).
fn statement_budget(backend: Backend) -> f64 {
    match backend {
        Backend::Sqlite => 34.2,
        Backend::Postgres => 43.2,
    }
}

/// Most homeserver requests the bridge may make per inbound message: the ghost's one send.
const REQUEST_BUDGET: f64 = 1.0;

async fn one_inbound_message_costs_a_known_number_of_statements(
    backend: Backend,
) -> anyhow::Result<()> {
    let n = messages();
    let mut options = BridgeOptions::default().backend(backend);
    options.log_filter = "info,sqlx::query=debug".into();
    let env = TestEnv::start(options).await?;
    let visitor = env.visitor("Jane Cost", "jane.cost@example.com").await?;
    visitor.send("Hello, first message").await?;
    let room = env.alice.wait_for_invite("Jane Cost").await?;
    env.alice.join(&room).await?;
    env.alice.wait_for_text(&room, "first message").await?;
    // Let the first message's trailing work (routing, lobby notes) finish.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let bridge_log = env.bridge.log_path();
    let synapse_log = env.synapse.dir().join("homeserver.log");

    // The messages, one in flight at a time.
    let (b0, s0) = (offset(&bridge_log), offset(&synapse_log));
    let started = Instant::now();
    for i in 0..n {
        let text = format!("cost probe {i} of {n}");
        visitor.send(&text).await?;
        env.alice.wait_for_text(&room, &text).await?;
    }
    // The last message's trailing work (inbox done, routing) lands within a poll or two.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let window = started.elapsed();
    let (b1, s1) = (offset(&bridge_log), offset(&synapse_log));

    // The same length of time with nothing happening: the background.
    tokio::time::sleep(window).await;
    let (b2, s2) = (offset(&bridge_log), offset(&synapse_log));

    let busy = statements(&read(&bridge_log, b0, b1));
    let idle = statements(&read(&bridge_log, b1, b2));
    let busy_req = requests(&read(&synapse_log, s0, s1));
    let idle_req = requests(&read(&synapse_log, s1, s2));

    let per = |c: u64| c as f64 / n as f64;
    let mut kinds: BTreeMap<String, (u64, f64, u64, f64)> = BTreeMap::new();
    for (k, (c, t)) in &busy {
        kinds.entry(k.clone()).or_default().0 = *c;
        kinds.entry(k.clone()).or_default().1 = *t;
    }
    for (k, (c, t)) in &idle {
        kinds.entry(k.clone()).or_default().2 = *c;
        kinds.entry(k.clone()).or_default().3 = *t;
    }
    let mut rows: Vec<(String, f64, f64, f64)> = kinds
        .into_iter()
        .map(|(k, (c, t, ic, it))| (k, per(c), per(ic), (t - it) / n as f64))
        .collect();
    rows.sort_by(|a, b| (b.1 - b.2).total_cmp(&(a.1 - a.2)).then(a.0.cmp(&b.0)));
    let total_busy: u64 = busy.values().map(|v| v.0).sum();
    let total_idle: u64 = idle.values().map(|v| v.0).sum();
    let ms_busy: f64 = busy.values().map(|v| v.1).sum();
    let ms_idle: f64 = idle.values().map(|v| v.1).sum();
    let net = per(total_busy) - per(total_idle);
    println!(
        "\n== {backend:?}: {n} inbound messages in {:.1} s; per message: {:.2} statements \
         ({:.2} during the messages, {:.2} background), {:.3} ms in statements",
        window.as_secs_f64(),
        net,
        per(total_busy),
        per(total_idle),
        (ms_busy - ms_idle) / n as f64
    );
    println!("| per msg | background | ms/msg | span: statement |");
    for (k, c, ic, ms) in &rows {
        if *c == 0.0 && *ic == 0.0 {
            continue;
        }
        println!("| {c:.2} | {ic:.2} | {ms:.3} | {k} |");
    }
    let mut req_rows: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (k, c) in &busy_req {
        req_rows.entry(k.clone()).or_default().0 = *c;
    }
    for (k, c) in &idle_req {
        req_rows.entry(k.clone()).or_default().1 = *c;
    }
    println!("| per msg | background | homeserver request |");
    let mut bridge_requests = 0.0;
    for (k, (c, ic)) in &req_rows {
        println!("| {:.2} | {:.2} | {k} |", per(*c), per(*ic));
        if k.ends_with("(bridge)") {
            bridge_requests += per(*c) - per(*ic);
        }
    }
    println!("bridge requests per message: {bridge_requests:.2}");

    let budget = statement_budget(backend);
    anyhow::ensure!(
        net <= budget,
        "{net:.2} statements per inbound message, budget {budget}"
    );
    anyhow::ensure!(
        bridge_requests <= REQUEST_BUDGET + 0.05,
        "{bridge_requests:.2} homeserver requests per inbound message, budget {REQUEST_BUDGET}"
    );
    Ok(())
}

fn offset(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn read(path: &Path, from: u64, to: u64) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.take(to.saturating_sub(from)).read_to_end(&mut bytes);
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// sqlx's statement lines, by kind: `span names: SQL` (whitespace collapsed, cut at 110
/// characters) → (count, milliseconds).
fn statements(log: &str) -> BTreeMap<String, (u64, f64)> {
    let mut out: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for line in log.lines() {
        let line = rig::strip_ansi(line);
        let Some(at) = line.find("sqlx::query:") else {
            continue;
        };
        // `TIMESTAMP  DEBUG span{fields}:span2{…}: sqlx::query: summary="…" db.statement="…" …`
        let head = &line[..at];
        let spans = span_names(head.split_once("DEBUG").map_or(head, |(_, s)| s));
        let rest = &line[at..];
        let sql = field(rest, "db.statement=")
            .filter(|s| !s.trim().is_empty())
            .or_else(|| field(rest, "summary="))
            .unwrap_or_default();
        let sql: String = sql
            .replace("\\n", " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let sql: String = sql.chars().take(110).collect();
        let ms = rest
            .split_once("elapsed_secs=")
            .and_then(|(_, v)| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            * 1000.0;
        let e = out.entry(format!("{spans}: {sql}")).or_default();
        e.0 += 1;
        e.1 += ms;
    }
    out
}

/// `a{x=1}:b{y=2}: ` → `a>b`
fn span_names(head: &str) -> String {
    let mut names = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for ch in head.trim().chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ':' if depth == 0 => {
                if !cur.trim().is_empty() {
                    names.push(cur.trim().to_string());
                }
                cur.clear();
            }
            c if depth == 0 => cur.push(c),
            _ => {}
        }
    }
    if names.is_empty() {
        "-".into()
    } else {
        names.join(">")
    }
}

/// A quoted field's value (`name="…"`, escapes kept), or a bare one.
fn field(s: &str, name: &str) -> Option<String> {
    let (_, rest) = s.split_once(name)?;
    if let Some(rest) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut esc = false;
        for ch in rest.chars() {
            if esc {
                out.push('\\');
                out.push(ch);
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else if ch == '"' {
                break;
            } else {
                out.push(ch);
            }
        }
        Some(out.replace("\\\"", "\""))
    } else {
        rest.split_whitespace().next().map(str::to_string)
    }
}

/// Synapse's access log lines by `METHOD shape (who)` ([`rig::synapse::request_counts`]).
fn requests(log: &str) -> BTreeMap<String, u64> {
    rig::synapse::request_counts(log)
}

#[test]
fn span_names_and_fields_parse() -> anyhow::Result<()> {
    assert_eq!(
        span_names(" inbound{a=1 b=\"x:y\"}:portal{c=2}: "),
        "inbound>portal"
    );
    assert_eq!(span_names("  "), "-");
    let line = "2026-12-06T07:00:00Z DEBUG inbound{channel=webchat}: sqlx::query: summary=\"SELECT id …\" db.statement=\"\\n\\nSELECT id\\n  FROM inbox\\n\" rows_affected=0 rows_returned=1 elapsed=1.5ms elapsed_secs=0.0015";
    let s = statements(line);
    let (k, v) = s.iter().next().context("one statement")?;
    assert_eq!(k, "inbound: SELECT id FROM inbox");
    assert_eq!(v.0, 1);
    assert!((v.1 - 1.5).abs() < 1e-9);
    Ok(())
}

/// The relay benchmark's pause reading (`rig::synapse::send_pauses`), on a few access log lines.
#[test]
fn pauses_are_read_per_room_for_one_sender() {
    let line = |t: &str, took: &str, room: &str, txn: &str| {
        format!("{t} - synapse.access.http.8008 - 643 - INFO - PUT-1 - 127.0.0.1 - 8008 - {{@sb_x:localhost}} Processed request: {took}sec/0.000sec ru=(0.003sec, 0.000sec) db=(0.041sec/0.011sec/9) 59B 200 \"PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}?user_id=%40sb_x%3Alocalhost HTTP/1.1\" \"-\" [0 dbevts]\n")
    };
    let log = [
        line("2026-12-07 04:04:30,100", "0.050", "%21a", "sb-in-1-0"),
        // The next send in room a started 10 ms after the first was answered.
        line("2026-12-07 04:04:30,160", "0.050", "%21a", "sb-in-2-0"),
        // Another room, and another sender in room a: neither pairs with the above.
        line("2026-12-07 04:04:30,190", "0.020", "%21b", "sb-in-3-0"),
        line("2026-12-07 04:04:30,200", "0.010", "%21a", "sb-lobby-1-2"),
        // Between bursts: left out.
        line("2026-12-07 04:04:31,900", "0.040", "%21a", "sb-in-4-0"),
    ]
    .concat();
    assert_eq!(rig::synapse::send_pauses(&log, "sb-in-", 500.0), [10.0]);
    assert_eq!(
        rig::synapse::send_pauses(&log, "sb-lobby-", 500.0),
        Vec::<f64>::new()
    );
    assert_eq!(
        rig::synapse::send_pauses(&log, "sb-in-", 2000.0),
        [10.0, 1700.0]
    );
}
