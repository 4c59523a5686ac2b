//! Reports on the team's clock and the weekly digest, with the test clock. The support team
//! works in Moscow (UTC+3): a customer writes at 23:30 on a Monday there (20:30 UTC); an hour
//! later it is Tuesday in Moscow though still Monday in UTC, and `!sb report today` no longer
//! counts the conversation. The team's digest is set for Mondays 09:00 Moscow time: a week whose
//! moment passed while the bridge was not looking (the clock jumped over it) is posted at once;
//! the next one is not in the lobby a minute before its moment, it is there (table, CSV, chart:
//! the figures of `report 7d by operator`) just after, and a restart does not post it again.
//! Operators are real Matrix clients, the customer a web chat visitor; both stores.

#[macro_use]
mod rig;

use anyhow::ensure;
use chrono::{Datelike, Days, NaiveDate, Utc, Weekday};
use rig::operator::{Operator, RoomMessage};
use rig::{command, Backend, BridgeOptions, TestEnv};
use serde_json::json;

on_both_stores!(days_are_the_teams_and_the_weekly_digest_is_posted_once_a_week);

fn options(backend: Backend) -> BridgeOptions {
    let teams: serde_yaml::Value = serde_yaml::to_value(json!({
        "support": {
            "members": ["@bob:localhost"],
            "leads": ["@alice:localhost"],
            "timezone": "Europe/Moscow",
            "rules": [{"channel": "webchat"}],
            "digest": {"weekday": "mon", "hour": 9},
        }
    }))
    .unwrap_or_default();
    BridgeOptions::default()
        .backend(backend)
        .edit_config(move |c| {
            if let Some(map) = c.as_mapping_mut() {
                map.insert("teams".into(), teams.clone());
                map.insert(
                    "testing".into(),
                    serde_yaml::to_value(json!({"clock_control": true})).unwrap_or_default(),
                );
            }
        })
}

/// A Monday at least two weeks after today (so the bridge's first look at the schedule, with
/// the real clock, is before every moment the test uses).
fn a_monday_ahead() -> NaiveDate {
    let mut d = Utc::now().date_naive() + Days::new(14);
    while d.weekday() != Weekday::Mon {
        d = d + Days::new(1);
    }
    d
}

/// `day` + `days` at `h:m:s` UTC, in ms.
fn utc(day: NaiveDate, days: u64, h: u32, m: u32, s: u32) -> i64 {
    (day + Days::new(days))
        .and_hms_opt(h, m, s)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0)
}

/// The cells new, resolved, reopened, messages in, messages out of row `name` of a table.
fn row(table: &str, name: &str) -> Option<Vec<String>> {
    table
        .lines()
        .find(|l| l.split('|').next().map(str::trim) == Some(name))
        .map(|l| {
            l.split('|')
                .skip(1)
                .take(5)
                .map(|c| c.trim().to_string())
                .collect()
        })
}

fn cells(v: [&str; 5]) -> Option<Vec<String>> {
    Some(v.iter().map(|c| c.to_string()).collect())
}

fn is_digest(m: &RoomMessage) -> bool {
    m.body.contains("weekly digest")
}

/// The bot's answer to `text` in `room`, and whether a digest reached the room before it (the
/// bot answers after whatever it sent before; the clock endpoint returns only after a timer
/// pass at the new time).
async fn digests_before_answer(
    op: &Operator,
    room: &str,
    mark: u64,
    text: &str,
) -> anyhow::Result<Vec<String>> {
    let event = op.send_text(room, text).await?;
    let answer = op
        .wait_for_message_after(room, mark, "the answer", |m| {
            m.is_notice() && m.in_reply_to() == Some(event.as_str())
        })
        .await?;
    Ok(op
        .messages(room)
        .into_iter()
        .filter(|m| m.seq > mark && m.seq < answer.seq && is_digest(m))
        .map(|m| m.body)
        .collect())
}

async fn days_are_the_teams_and_the_weekly_digest_is_posted_once_a_week(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps =
        rig::Steps::new("days are the team's and the weekly digest is posted once a week");
    let monday = a_monday_ahead();
    let sunday = monday + Days::new(6);
    let next = monday + Days::new(7);
    let mut env = TestEnv::start(options(backend)).await?;
    let lobby = env
        .alice
        .wait_for_invite_where("the support lobby", |i| {
            i.name
                .as_deref()
                .is_some_and(|n| n.contains("support lobby"))
        })
        .await?
        .room_id;
    env.alice.join(&lobby).await?;

    steps.step("The clock jumps past a Monday 09:00 in Moscow: that week's digest is posted, once");
    let mark = env.alice.mark();
    env.set_clock(utc(monday, 0, 6, 0, 30)).await?;
    let first = env
        .alice
        .wait_for_message_after(&lobby, mark, "the first digest", is_digest)
        .await?;
    ensure!(
        first
            .body
            .contains(&format!("the week to Mon {monday} 09:00 (Europe/Moscow)")),
        "{}",
        first.body
    );
    ensure!(
        row(&first.body, "all") == cells(["0", "0", "0", "0", "0"]),
        "{}",
        first.body
    );

    steps.step("Sunday 23:30 in Moscow (20:30 UTC): a customer writes; it counts today");
    env.set_clock(utc(sunday, 0, 20, 30, 0)).await?;
    let visitor = env.visitor("Anna Petrova", "anna@example.com").await?;
    visitor.send("Hello, is anyone there?").await?;
    let portal = env.bob.wait_for_invite("Anna Petrova").await?;
    env.bob.join(&portal).await?;
    env.bob.wait_for_text(&portal, "anyone there").await?;
    let today = command(&env.alice, &lobby, "!sb report today").await?;
    ensure!(
        today.contains(&format!("today ({sunday}, Europe/Moscow)")),
        "{today}"
    );
    ensure!(
        row(&today, "all") == cells(["1", "0", "0", "1", "0"]),
        "{today}"
    );

    steps.step("21:30 UTC is 00:30 on Monday in Moscow: today is a new day there");
    env.set_clock(utc(sunday, 0, 21, 30, 0)).await?;
    let today = command(&env.alice, &lobby, "!sb report today").await?;
    ensure!(
        today.contains(&format!("today ({next}, Europe/Moscow)")),
        "{today}"
    );
    ensure!(
        row(&today, "all") == cells(["0", "0", "0", "0", "0"]),
        "{today}"
    );
    let week = command(&env.alice, &lobby, "!sb report 7d").await?;
    ensure!(
        row(&week, "all") == cells(["1", "0", "0", "1", "0"]),
        "{week}"
    );
    env.bob
        .send_text(&portal, "Yes, Bob here. How can I help?")
        .await?;
    visitor
        .wait_for_agent_text("Yes, Bob here. How can I help?")
        .await?;

    steps.step("A minute before Monday 09:00 Moscow (06:00 UTC) no new digest is in the lobby");
    let mark = env.alice.mark();
    env.set_clock(utc(next, 0, 5, 59, 0)).await?;
    let early = digests_before_answer(&env.alice, &lobby, mark, "!sb queue").await?;
    ensure!(early.is_empty(), "a digest too early: {early:?}");

    steps.step("At 09:00 Moscow the digest arrives: the week by operator, with CSV and chart");
    env.set_clock(utc(next, 0, 6, 0, 30)).await?;
    let digest = env
        .alice
        .wait_for_message_after(&lobby, mark, "the digest", is_digest)
        .await?;
    ensure!(
        digest
            .body
            .contains(&format!("the week to Mon {next} 09:00 (Europe/Moscow)")),
        "{}",
        digest.body
    );
    ensure!(
        row(&digest.body, "all") == cells(["1", "0", "0", "1", "1"]),
        "{}",
        digest.body
    );
    ensure!(
        row(&digest.body, "@bob:localhost").is_some_and(|r| r[4] == "1"),
        "bob's answer in his row: {}",
        digest.body
    );
    ensure!(
        digest
            .formatted_body
            .as_deref()
            .is_some_and(|h| h.contains("<table>")),
        "the HTML table"
    );
    // After the digest's table: `report 7d` asked on Sunday night named its files alike.
    let csv_name = format!("report-{monday}-{next}.csv");
    let csv = env
        .alice
        .wait_for_message_after(&lobby, digest.seq, "the digest's CSV", |m| {
            m.filename() == csv_name
        })
        .await?;
    let csv_text = String::from_utf8(env.alice.fetch_file(&csv).await?)?;
    ensure!(
        csv_text
            .lines()
            .any(|l| l.starts_with("\"all\",1,0,0,1,1,")),
        "{csv_text}"
    );
    let png_name = format!("report-{monday}-{next}.png");
    let chart = env
        .alice
        .wait_for_message_after(&lobby, digest.seq, "the digest's chart", |m| {
            m.filename() == png_name
        })
        .await?;
    ensure!(
        env.alice.fetch_file(&chart).await?.starts_with(b"\x89PNG"),
        "the chart is a PNG"
    );

    steps.step("Restarted an hour later, the bridge does not post the week's digest again");
    env.bridge.restart().await?;
    env.set_clock(utc(next, 0, 7, 0, 0)).await?;
    let again = digests_before_answer(&env.alice, &lobby, digest.seq, "!sb queue").await?;
    ensure!(again.is_empty(), "posted twice: {again:?}");
    let digests = env
        .alice
        .messages(&lobby)
        .into_iter()
        .filter(is_digest)
        .count();
    ensure!(digests == 2, "two weeks, two digests: {digests}");
    steps.finish()
}
