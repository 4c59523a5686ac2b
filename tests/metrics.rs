//! Metrics and logs as an operations team reads them: the real bridge with `metrics.listen`, a
//! customer on the Telegram fake (`tests/fakes/telegram.rs`), operators as real Matrix clients
//! on a real Synapse. The tests scrape `/metrics` the way Prometheus does and check that the
//! series move with the traffic (one customer message is one inbound message of that channel),
//! that what is read from the store survives a restart, that no conversation or contact id is
//! ever a label, and that every metric the shipped Grafana dashboard and alert rules use
//! exists. With `logging.format: json`, one customer message and its answer are followed
//! through the log by their conversation id.

mod fakes;
#[macro_use]
mod rig;

use std::collections::BTreeSet;

use anyhow::{ensure, Context};
use fakes::telegram::{FakeTelegram, FaultKind, TgUser, TOKEN};
use rig::{Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};

on_both_stores!(
    metrics_follow_the_traffic_and_survive_a_restart,
    json_logs_follow_one_message_through_every_stage,
);

/// The bridge with the Telegram fake, a team for Telegram conversations and, when `metrics_port`
/// is given, metrics on that port read from the store every 200 ms.
fn options(backend: Backend, fake: &FakeTelegram, metrics_port: Option<u16>) -> BridgeOptions {
    let section = json!({
        "enabled": true,
        "token": TOKEN,
        "api_url": fake.url(),
        "poll_timeout_secs": 2,
    });
    BridgeOptions::default()
        .backend(backend)
        .channel("telegram", section)
        .edit_config(move |config| {
            let Some(map) = config.as_mapping_mut() else {
                return;
            };
            let teams = json!({"support": {
                "members": ["@alice:localhost"],
                "rules": [{"channel": "telegram"}],
            }});
            map.insert(
                "teams".into(),
                serde_yaml::to_value(&teams).unwrap_or_default(),
            );
            if let Some(port) = metrics_port {
                let metrics = json!({"listen": format!("127.0.0.1:{port}"), "refresh": "200ms"});
                map.insert(
                    "metrics".into(),
                    serde_yaml::to_value(&metrics).unwrap_or_default(),
                );
            }
        })
}

fn jane() -> TgUser {
    TgUser::new(5_550_123, "Jane", Some("Metrics"), Some("jane_m"))
}

/// One scrape of `/metrics`, parsed.
struct Scrape {
    text: String,
    /// (metric name, labels, value)
    samples: Vec<(String, Vec<(String, String)>, f64)>,
}

impl Scrape {
    async fn take(port: u16) -> anyhow::Result<Scrape> {
        let resp = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .context("scraping /metrics")?;
        ensure!(resp.status() == 200, "/metrics answered {}", resp.status());
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        ensure!(
            content_type.starts_with("text/plain"),
            "content type {content_type:?}"
        );
        let text = resp.text().await?;
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(parse_sample)
            .collect::<anyhow::Result<_>>()?;
        Ok(Scrape { text, samples })
    }

    /// The value of the series `name` whose labels include all of `labels`, summed over the
    /// series that match (none: `None`).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| *v)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    fn names(&self) -> BTreeSet<&str> {
        self.samples.iter().map(|(n, _, _)| n.as_str()).collect()
    }
}

/// `name{a="x",b="y"} 1.5` (label values escaped as the text format says).
fn parse_sample(line: &str) -> anyhow::Result<(String, Vec<(String, String)>, f64)> {
    let (series, value) = line
        .rsplit_once(' ')
        .with_context(|| format!("sample line {line:?}"))?;
    let value: f64 = value
        .parse()
        .with_context(|| format!("value in {line:?}"))?;
    let Some((name, rest)) = series.split_once('{') else {
        return Ok((series.to_string(), Vec::new(), value));
    };
    let body = rest
        .strip_suffix('}')
        .with_context(|| format!("labels in {line:?}"))?;
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        ensure!(chars.next() == Some('"'), "label {key} in {line:?}");
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => val.push('\n'),
                    Some(other) => val.push(other),
                    None => break,
                },
                '"' => break,
                c => val.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_string(), val));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Ok((name.to_string(), labels, value))
}

/// Scrapes until `check` holds (the store's figures are read every 200 ms; counters move as the
/// stage that counts them finishes).
async fn wait_for(
    port: u16,
    what: &str,
    check: impl Fn(&Scrape) -> bool,
) -> anyhow::Result<Scrape> {
    let last = std::sync::Mutex::new(String::new());
    let found = rig::poll_until(what, rig::DEFAULT_TIMEOUT, || {
        let scrape = Scrape::take(port);
        let (last, check) = (&last, &check);
        async move {
            let scrape = scrape.await?;
            if check(&scrape) {
                return Ok(Some(scrape));
            }
            *last.lock().unwrap_or_else(|e| e.into_inner()) = scrape.text;
            Ok(None)
        }
    })
    .await;
    let last = last.into_inner().unwrap_or_else(|e| e.into_inner());
    found.with_context(|| format!("last scrape:\n{last}"))
}

/// The metric names a PromQL text uses (`switchboard_…`).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("switchboard_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// Every PromQL expression of the dashboard (its panels' targets, rows included).
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dashboard];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    out.push(expr.clone());
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

async fn metrics_follow_the_traffic_and_survive_a_restart(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("metrics follow the traffic and survive a restart");
    let fake = FakeTelegram::start().await?;
    let port = rig::free_port()?;
    let mut env = TestEnv::start(options(backend, &fake, Some(port))).await?;
    let user = jane();
    let tg = [("channel", "telegram")];
    let inbound = [("channel", "telegram"), ("direction", "inbound")];
    let outbound = [("channel", "telegram"), ("direction", "outbound")];

    steps.step("Before any traffic: the build, the channel connected, no message counted");
    let before = wait_for(port, "the telegram channel up and the queues read", |s| {
        s.value("switchboard_channel_up", &tg) == Some(1.0)
            && s.value("switchboard_queue_depth", &[("queue", "inbox")]) == Some(0.0)
    })
    .await?;
    ensure!(
        before.value(
            "switchboard_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ) == Some(1.0),
        "build info:\n{}",
        before.text
    );
    ensure!(
        before
            .value("switchboard_messages_total", &inbound)
            .is_none(),
        "no inbound message counted yet"
    );
    ensure!(
        before.value(
            "switchboard_team_escalate_after_seconds",
            &[("team", "support")]
        ) == Some(7200.0),
        "the team's escalation time (default 2h)"
    );

    steps.step("One customer message: one inbound message for telegram, the team has one unworked conversation");
    fake.push_update(fake.message_update(&user, 1, json!({"text": "Where is my parcel?"})));
    let room = env.alice.wait_for_invite("Jane Metrics").await?;
    env.alice
        .wait_for_text(&room, "Where is my parcel?")
        .await?;
    let after_in = wait_for(port, "one inbound message counted, one unworked", |s| {
        s.value("switchboard_messages_total", &inbound) == Some(1.0)
            && s.value("switchboard_unworked_conversations", &[("team", "support")]) == Some(1.0)
    })
    .await?;
    ensure!(
        after_in.value(
            "switchboard_relay_latency_seconds_count",
            &[("direction", "inbound")]
        ) == Some(1.0),
        "one inbound latency observed"
    );
    ensure!(
        after_in
            .value(
                "switchboard_homeserver_requests_total",
                &[
                    (
                        "endpoint",
                        "PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"
                    ),
                    ("status", "200")
                ]
            )
            .is_some_and(|n| n >= 1.0),
        "the ghost's send counted under its route template:\n{}",
        after_in.text
    );
    ensure!(
        after_in
            .value("switchboard_messages_total", &outbound)
            .is_none(),
        "no outbound message yet"
    );

    steps.step("The operator answers: one outbound message, a first response for the team, nothing unworked");
    env.alice.send_text(&room, "It ships today").await?;
    fake.wait_for_call("sendMessage", |c| {
        c.str("text").as_deref() == Some("It ships today")
    })
    .await?;
    let answered = wait_for(port, "one outbound message, one first response", |s| {
        s.value("switchboard_messages_total", &outbound) == Some(1.0)
            && s.value(
                "switchboard_first_response_seconds_count",
                &[("team", "support")],
            ) == Some(1.0)
            && s.value("switchboard_unworked_conversations", &[("team", "support")]) == Some(0.0)
    })
    .await?;
    ensure!(
        answered.value("switchboard_messages_total", &inbound) == Some(1.0),
        "the answer is not an inbound message"
    );
    ensure!(
        answered
            .value(
                "switchboard_appservice_transactions_total",
                &[("outcome", "stored")]
            )
            .is_some_and(|n| n >= 1.0),
        "the operator's transaction counted as stored"
    );

    steps.step("A failure that passes, then the send goes through: one transient failure, channel up again");
    fake.fault(Some("sendMessage"), FaultKind::ServerError, 1);
    env.alice
        .send_text(&room, "Tracking number follows")
        .await?;
    fake.wait_for_call("sendMessage", |c| {
        c.str("text").as_deref() == Some("Tracking number follows")
    })
    .await?;
    wait_for(port, "one transient failure, two outbound messages", |s| {
        s.value(
            "switchboard_delivery_failures_total",
            &[("channel", "telegram"), ("class", "transient")],
        ) == Some(1.0)
            && s.value("switchboard_messages_total", &outbound) == Some(2.0)
            && s.value("switchboard_channel_up", &tg) == Some(1.0)
    })
    .await?;

    steps.step("The customer blocks the bot: a refused delivery and one dead letter");
    fake.block(user.id, true);
    let blocked = env.alice.send_text(&room, "Are you there?").await?;
    env.alice
        .wait_for_send_status(&room, &blocked, "FAIL_PERMANENT")
        .await?;
    let failed = wait_for(port, "a refused delivery and a dead letter", |s| {
        s.value(
            "switchboard_delivery_failures_total",
            &[("channel", "telegram"), ("class", "refused")],
        ) == Some(1.0)
            && s.value("switchboard_queue_depth", &[("queue", "dead_letters")]) == Some(1.0)
    })
    .await?;
    ensure!(
        failed.value("switchboard_messages_total", &outbound) == Some(2.0),
        "a refused message is not counted as relayed"
    );

    steps.step("No conversation, room, contact or user id is a label");
    let conversation_ids = [
        room.as_str(),
        &user.id.to_string(),
        "@sb_telegram",
        "@alice",
    ];
    for (name, labels, _) in &failed.samples {
        for (key, value) in labels {
            for id in conversation_ids {
                ensure!(
                    !value.contains(id),
                    "{name} has the label {key}={value:?}, which names {id}"
                );
            }
        }
    }

    steps.step(
        "After a restart the store's figures are the same: one dead letter, one first response",
    );
    env.bridge.restart().await?;
    let restarted = wait_for(port, "the store's figures read after the restart", |s| {
        s.value("switchboard_queue_depth", &[("queue", "dead_letters")]) == Some(1.0)
            && s.value(
                "switchboard_first_response_seconds_count",
                &[("team", "support")],
            ) == Some(1.0)
    })
    .await?;
    ensure!(
        restarted
            .value("switchboard_messages_total", &inbound)
            .is_none(),
        "counters of events start again with the process"
    );
    ensure!(
        restarted
            .value(
                "switchboard_queue_oldest_age_seconds",
                &[("queue", "dead_letters")]
            )
            .is_some_and(|age| age > 0.0),
        "the dead letter's age is known"
    );

    steps.step("Every metric the dashboard and the alert rules use exists in a scrape");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("grafana-dashboard.json"))
            .context("docs/grafana-dashboard.json")?,
    )
    .context("the dashboard is JSON")?;
    let alerts: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(dir.join("prometheus-alerts.yml"))
            .context("docs/prometheus-alerts.yml")?,
    )
    .context("the alert rules are YAML")?;
    let mut used: Vec<(String, String)> = Vec::new();
    for expr in dashboard_exprs(&dashboard) {
        used.extend(
            metric_names(&expr)
                .into_iter()
                .map(|n| ("dashboard".into(), n)),
        );
    }
    let rules = alerts["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default());
    let mut alert_names = Vec::new();
    for rule in rules {
        let name = rule["alert"].as_str().context("an alert without a name")?;
        let expr = rule["expr"].as_str().context("an alert without expr")?;
        alert_names.push(name.to_string());
        used.extend(
            metric_names(expr)
                .into_iter()
                .map(|n| (name.to_string(), n)),
        );
    }
    for wanted in [
        "SwitchboardQueueGrowing",
        "SwitchboardDeadLetters",
        "SwitchboardChannelDown",
        "SwitchboardUnworkedPastEscalation",
    ] {
        ensure!(
            alert_names.iter().any(|n| n == wanted),
            "alert {wanted} missing: {alert_names:?}"
        );
    }
    ensure!(used.len() > 20, "few metric uses found: {used:?}");
    // The last scrape before the restart saw every kind of traffic; the store's figures and the
    // process's own are in the one after it too.
    let seen: BTreeSet<&str> = failed.names().union(&restarted.names()).copied().collect();
    let missing: Vec<String> = used
        .iter()
        .filter(|(_, name)| !seen.contains(name.as_str()))
        .map(|(user, name)| format!("{name} (used by {user})"))
        .collect();
    ensure!(
        missing.is_empty(),
        "metrics used but not exported: {missing:?}\nexported: {seen:?}"
    );
    Ok(())
}

/// The JSON log lines of bridge.log (other lines are skipped).
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

/// The value of `field` in the line's spans (innermost first) or its own fields.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .chain(std::iter::once(&line["fields"]))
        .find_map(|span| span.get(name))
}

fn in_span(line: &Value, span: &str) -> bool {
    line["spans"]
        .as_array()
        .is_some_and(|spans| spans.iter().any(|s| s["name"] == span))
}

async fn json_logs_follow_one_message_through_every_stage(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("json logs follow one message through every stage");
    let fake = FakeTelegram::start().await?;
    let options = options(backend, &fake, None).edit_config(|config| {
        if let Some(logging) = config
            .get_mut("logging")
            .and_then(serde_yaml::Value::as_mapping_mut)
        {
            logging.insert("format".into(), "json".into());
        }
    });
    let env = TestEnv::start(options).await?;
    let user = jane();

    steps.step("A customer writes, an operator answers, the customer gets the answer");
    fake.push_update(fake.message_update(&user, 1, json!({"text": "Follow me"})));
    let room = env.alice.wait_for_invite("Jane Metrics").await?;
    env.alice.wait_for_text(&room, "Follow me").await?;
    let answer = env.alice.send_text(&room, "Followed").await?;
    fake.wait_for_call("sendMessage", |c| {
        c.str("text").as_deref() == Some("Followed")
    })
    .await?;

    steps.step("Every line is JSON; the customer's message names its conversation in stage 1");
    // The outbound stage logs "delivered" right after the send: poll for it.
    let lines = rig::poll_until("the delivery logged", rig::DEFAULT_TIMEOUT, || {
        let log = env.bridge.log();
        async move {
            let lines = json_lines(&log);
            let delivered = lines
                .iter()
                .any(|l| in_span(l, "outbound") && l["fields"]["message"] == "delivered");
            Ok(delivered.then_some(lines))
        }
    })
    .await?;
    let log = env.bridge.log();
    let not_json: Vec<&str> = log
        .lines()
        .filter(|l| !l.trim().is_empty() && serde_json::from_str::<Value>(l).is_err())
        .take(3)
        .collect();
    ensure!(not_json.is_empty(), "lines that are not JSON: {not_json:?}");
    let posted = lines
        .iter()
        .find(|l| {
            in_span(l, "inbound")
                && l["fields"]["message"] == "posted in the room"
                && field(l, "channel") == Some(&json!("telegram"))
        })
        .context("stage 1 logged the customer's message posted in the room")?;
    let conversation = field(posted, "conversation_id")
        .and_then(Value::as_i64)
        .context("stage 1's line names the conversation")?;
    ensure!(
        field(posted, "inbox_id").is_some(),
        "stage 1's line names the inbox row: {posted}"
    );

    steps.step(
        "The same conversation id on the answer's lines in stages 2 and 3, with its event id",
    );
    let of_conversation = |span: &str, message: &str| {
        lines.iter().find(|l| {
            in_span(l, span)
                && l["fields"]["message"] == message
                && field(l, "conversation_id").and_then(Value::as_i64) == Some(conversation)
        })
    };
    let queued = of_conversation("matrix_event", "queued in the outbox")
        .context("stage 2 logged the answer queued, with the conversation id")?;
    ensure!(
        field(queued, "event_id") == Some(&json!(answer)),
        "stage 2's line names the answer's event: {queued}"
    );
    ensure!(
        field(queued, "channel") == Some(&json!("telegram")),
        "stage 2's line names the channel: {queued}"
    );
    let delivered = of_conversation("outbound", "delivered")
        .context("stage 3 logged the delivery, with the conversation id")?;
    ensure!(
        field(delivered, "event_id") == Some(&json!(answer)),
        "stage 3's line names the answer's event: {delivered}"
    );
    ensure!(
        field(delivered, "channel") == Some(&json!("telegram")),
        "stage 3's line names the channel: {delivered}"
    );

    steps.step(
        "The homeserver transaction that brought the answer is logged with its id and the event id",
    );
    let txn = lines
        .iter()
        .find(|l| {
            in_span(l, "transaction")
                && l["fields"]["event_ids"]
                    .as_str()
                    .is_some_and(|ids| ids.contains(&answer))
        })
        .context("the transaction carrying the answer was logged")?;
    ensure!(
        field(txn, "txn_id").is_some_and(|t| t.as_str().is_some_and(|t| !t.is_empty())),
        "the transaction's line names its id: {txn}"
    );
    Ok(())
}
