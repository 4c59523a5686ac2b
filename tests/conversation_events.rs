//! The conversation events table as reports will read it: a scripted conversation (created,
//! answered, transferred, snoozed, reopened by its timer, resolved, reopened by the customer,
//! escalated, answered, resolved) leaves exactly one event per thing that happened, in order,
//! stamped with the bridge's (test) clock, the operator who did it, and the team and owner right
//! after it. Read from the store itself, on SQLite and PostgreSQL; operators are real Matrix
//! clients, the customer a web chat visitor.

#[macro_use]
mod rig;

use anyhow::ensure;
use rig::{command, utc, Backend, BridgeOptions, TestEnv};
use serde_json::json;

on_both_stores!(every_change_to_a_conversation_is_one_stored_event);

fn options(backend: Backend) -> BridgeOptions {
    let teams: serde_yaml::Value = serde_yaml::to_value(json!({
        "support": {
            "members": ["@bob:localhost"],
            "escalate_after": "1h",
            "rules": [{"channel": "webchat"}],
        },
        "billing": {"members": ["@alice:localhost"], "escalate_after": "1h"},
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

/// One stored event: kind, ms since `t0`, actor, team, owner ("" for none).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev {
    kind: String,
    at: i64,
    actor: String,
    team: String,
    owner: String,
}

const SQL: &str = "SELECT kind, at, COALESCE(actor, '') AS actor, COALESCE(team, '') AS team,
                          COALESCE(owner, '') AS owner FROM conversation_events ORDER BY id";

async fn events(backend: Backend, url: &str) -> anyhow::Result<Vec<Ev>> {
    use sqlx::{Connection, Row};
    macro_rules! read {
        ($conn:ty) => {{
            let mut db = <$conn>::connect(url).await?;
            sqlx::query(SQL)
                .fetch_all(&mut db)
                .await?
                .iter()
                .map(|r| {
                    Ok(Ev {
                        kind: r.try_get("kind")?,
                        at: r.try_get("at")?,
                        actor: r.try_get("actor")?,
                        team: r.try_get("team")?,
                        owner: r.try_get("owner")?,
                    })
                })
                .collect::<Result<Vec<Ev>, sqlx::Error>>()?
        }};
    }
    Ok(match backend {
        Backend::Sqlite => read!(sqlx::SqliteConnection),
        Backend::Postgres => read!(sqlx::PgConnection),
    })
}

/// Wait until the store holds `n` events.
async fn wait_events(env: &TestEnv, backend: Backend, n: usize) -> anyhow::Result<Vec<Ev>> {
    let url = env.bridge.database_url().to_string();
    rig::poll_until(
        &format!("{n} conversation events"),
        rig::DEFAULT_TIMEOUT,
        || async { Ok(Some(events(backend, &url).await?).filter(|e| e.len() >= n)) },
    )
    .await
}

async fn every_change_to_a_conversation_is_one_stored_event(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("conversation events");
    let env = TestEnv::start(options(backend)).await?;
    // Monday 23 Nov 2026, 10:00 UTC; every step below sets the clock to a whole minute after it.
    let t0 = utc(2026, 11, 23, 10, 0);
    let min = 60_000;
    env.set_clock(t0).await?;

    steps.step("10:00 the customer writes: a new conversation for support");
    let visitor = env.visitor("Carl Customer", "carl@example.com").await?;
    visitor.send("My invoice is wrong").await?;
    let room = env.bob.wait_for_invite("Carl Customer").await?;
    env.bob.join(&room).await?;
    env.bob.wait_for_text(&room, "invoice").await?;

    steps.step("10:05 Bob answers: he owns it; his answer is the first response");
    env.set_clock(t0 + 5 * min).await?;
    env.bob.send_text(&room, "Let me check").await?;
    visitor.wait_for_agent_text("Let me check").await?;

    steps.step("10:10 Bob transfers it to billing; Alice snoozes it for an hour");
    env.set_clock(t0 + 10 * min).await?;
    let t = command(&env.bob, &room, "!sb transfer billing").await?;
    ensure!(t.contains("Transferred to team billing"), "{t}");
    let alice_room = env.alice.wait_for_invite("Carl Customer").await?;
    ensure!(alice_room == room);
    env.alice.join(&room).await?;
    let s = command(&env.alice, &room, "!sb snooze 1h").await?;
    ensure!(s.contains("Snoozed until"), "{s}");

    steps.step("11:15 the snooze has ended: reopened by the bridge; Alice resolves it");
    env.set_clock(t0 + 75 * min).await?;
    let r = command(&env.alice, &room, "!sb resolve").await?;
    ensure!(r.contains("Resolved by @alice:localhost"), "{r}");

    steps.step("12:00 the customer writes again: reopened; 13:01 escalated after an hour");
    env.set_clock(t0 + 120 * min).await?;
    visitor.send("Still wrong!").await?;
    env.alice.wait_for_text(&room, "Still wrong").await?;
    wait_events(&env, backend, 12).await?;
    env.set_clock(t0 + 181 * min).await?;

    steps.step("13:02 Alice answers (the first response since the reopening) and resolves");
    env.set_clock(t0 + 182 * min).await?;
    env.alice.send_text(&room, "Fixed, sorry").await?;
    visitor.wait_for_agent_text("Fixed, sorry").await?;
    env.alice.send_text(&room, "Anything else?").await?;
    visitor.wait_for_agent_text("Anything else?").await?;
    command(&env.alice, &room, "!sb resolve").await?;

    let got = wait_events(&env, backend, 18).await?;
    let (bob, alice) = ("@bob:localhost", "@alice:localhost");
    // (kind, minute, actor, team, owner)
    let expected: Vec<(&str, i64, &str, &str, &str)> = vec![
        ("created", 0, "", "support", ""),
        ("customer_message", 0, "", "support", ""),
        ("assigned", 5, bob, "support", bob),
        ("operator_answer", 5, bob, "support", bob),
        ("first_response", 5, bob, "support", bob),
        // A transfer to a team leaves it unowned there.
        ("transferred", 10, bob, "billing", ""),
        ("unassigned", 10, bob, "billing", ""),
        ("snoozed", 10, alice, "billing", ""),
        // The snooze ended at 11:10; the timer fired when the clock moved to 11:15.
        ("reopened", 75, "", "billing", ""),
        ("resolved", 75, alice, "billing", ""),
        ("customer_message", 120, "", "billing", ""),
        ("reopened", 120, "", "billing", ""),
        ("escalated", 181, "", "billing", ""),
        // Answering an unowned conversation takes it.
        ("assigned", 182, alice, "billing", alice),
        ("operator_answer", 182, alice, "billing", alice),
        ("first_response", 182, alice, "billing", alice),
        // A second answer is not a first response.
        ("operator_answer", 182, alice, "billing", alice),
        ("resolved", 182, alice, "billing", alice),
    ];
    let shown: Vec<(String, i64, String, String, String)> = got
        .iter()
        .map(|e| {
            (
                e.kind.clone(),
                (e.at - t0) / min,
                e.actor.clone(),
                e.team.clone(),
                e.owner.clone(),
            )
        })
        .collect();
    let want: Vec<(String, i64, String, String, String)> = expected
        .iter()
        .map(|(k, m, a, t, o)| {
            (
                k.to_string(),
                *m,
                a.to_string(),
                t.to_string(),
                o.to_string(),
            )
        })
        .collect();
    ensure!(
        shown == want,
        "events:\n{}\nexpected:\n{}",
        shown
            .iter()
            .map(|e| format!("{e:?}"))
            .collect::<Vec<_>>()
            .join("\n"),
        want.iter()
            .map(|e| format!("{e:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    steps.step("The figures of the day, from these events: refused in the customer's room");
    let refused = command(&env.alice, &room, "!sb report today").await?;
    ensure!(
        refused.contains("not shown in a customer's room"),
        "{refused}"
    );
    let dm = env
        .alice
        .create_room("reports", &[env.bot_user_id().as_str(), env.bob.user_id()])
        .await?;
    rig::poll_until(
        "the bot in the reports room",
        rig::DEFAULT_TIMEOUT,
        || async {
            let m = env.alice.memberships(&dm).await?;
            Ok((rig::membership(&m, &env.bot_user_id()).as_deref() == Some("join")).then_some(()))
        },
    )
    .await?;
    let report = command(&env.alice, &dm, "!sb report today by team").await?;
    // (new, resolved, reopened, messages in, messages out) per row of the table.
    let row = |name: &str| -> Option<Vec<String>> {
        report
            .lines()
            .find(|l| l.split('|').next().map(str::trim) == Some(name))
            .map(|l| {
                l.split('|')
                    .skip(1)
                    .take(5)
                    .map(|c| c.trim().to_string())
                    .collect()
            })
    };
    ensure!(
        row("support")
            == Some(vec![
                "1".into(),
                "0".into(),
                "0".into(),
                "1".into(),
                "1".into()
            ]),
        "{report}"
    );
    ensure!(
        row("billing")
            == Some(vec![
                "0".into(),
                "2".into(),
                "2".into(),
                "1".into(),
                "2".into()
            ]),
        "{report}"
    );
    ensure!(
        row("all")
            == Some(vec![
                "1".into(),
                "2".into(),
                "2".into(),
                "2".into(),
                "3".into()
            ]),
        "{report}"
    );
    ensure!(
        report.contains("Channel mix (1 customers who wrote): webchat 100%"),
        "{report}"
    );
    ensure!(report.contains("Unworked now: 0"), "{report}");
    // Durations are checked to the second in the unit tests (src/reports): here the clock
    // flows between the test's steps, so they are a few hundred ms off whole minutes.
    let csv = env
        .alice
        .wait_for_message(&dm, |m| m.filename().ends_with(".csv"))
        .await?;
    ensure!(
        csv.filename() == "report-2026-11-23-2026-11-23.csv",
        "{}",
        csv.filename()
    );
    let chart = env
        .alice
        .wait_for_message(&dm, |m| m.filename().ends_with(".png"))
        .await?;
    ensure!(
        chart.mimetype() == Some("image/png") && chart.size().unwrap_or(0) > 1_000,
        "{:?}",
        chart.content
    );
    env.bob.join(&dm).await?;
    let denied = command(&env.bob, &dm, "!sb report today").await?;
    ensure!(denied.contains("needs lead rights"), "{denied}");
    steps.finish()
}
