//! A conversation's timers and states as operators live them: reminders and escalations fire at
//! the working-time minute (nothing before it, the right words after it), `snooze` hides a
//! conversation until it ends (or the customer writes), `done`, `resolve` and `reopen` take it
//! out of the queue and put it back.
//!
//! Real Synapse, the real `switchboard` binary, operators as real Matrix clients, the web chat
//! as the customer; on SQLite and on PostgreSQL. The test moves the bridge's clock; the clock endpoint answers once the
//! timers due at the new time have fired, and every check for "nothing yet" ends with a bot
//! command answered in the same room, so a notice that was sent before that answer would be
//! seen. A mark is taken before each clock move, so a message from before the move is never
//! taken for one after it.
//!
//! The team works Monday–Friday 09:00–17:00 in Europe/Berlin (CET, UTC+1 in November). Times
//! are set at :30 seconds: the customer's message is stamped a few seconds after the clock was
//! set, and the half minute keeps every "before" before and every "after" after the deadline.

#[macro_use]
mod rig;

use anyhow::{ensure, Context};
use rig::{Backend, Operator, RoomMessage, TestEnv};
use serde_json::{json, Value};

on_both_stores!(
    friday_evening_message_is_reminded_and_escalated_at_the_working_minute_on_monday,
    snooze_hides_until_it_ends_and_a_customer_message_ends_it_early,
    done_resolve_and_reopen_take_a_conversation_out_of_the_queue_and_back,
);

/// Milliseconds of a CET wall-clock time in November 2026 (UTC+1).
fn cet(day: u32, hour: u32, minute: u32, second: i64) -> i64 {
    rig::utc(2026, 11, day, hour, minute) - 3_600_000 + second * 1000
}

/// Alice and Bob in `support`, Berlin office hours, escalation after 2 h, reminder 15 min
/// before; the test controls the clock.
fn office(backend: Backend, members: &[&str]) -> rig::BridgeOptions {
    let teams = json!({
        "support": {
            "members": members,
            "timezone": "Europe/Berlin",
            "hours": {"mon-fri": "09:00-17:00"},
            "escalate_after": "2h",
            "remind_before": "15m",
            "rules": [{"channel": "webchat"}],
        }
    });
    rig::BridgeOptions::default()
        .backend(backend)
        .edit_config(move |c| {
            let yaml = |v: &Value| serde_yaml::to_value(v).unwrap_or(serde_yaml::Value::Null);
            if let Some(map) = c.as_mapping_mut() {
                map.insert("teams".into(), yaml(&teams));
                map.insert("testing".into(), yaml(&json!({"clock_control": true})));
            }
        })
}

/// The operator joins the support lobby (the bot invites the team when it starts).
async fn join_lobby(op: &Operator) -> anyhow::Result<String> {
    let invite = op
        .wait_for_invite_where("the support lobby", |i| {
            i.name
                .as_deref()
                .is_some_and(|n| n.contains("support lobby"))
        })
        .await?;
    op.join(&invite.room_id).await?;
    Ok(invite.room_id)
}

/// Sends a bot command and returns the bot's answer (the notice replying to it).
async fn ask(op: &Operator, room: &str, text: &str) -> anyhow::Result<RoomMessage> {
    let event = op.send_text(room, text).await?;
    op.wait_for_message_after(room, 0, &format!("the answer to {text:?}"), |m| {
        m.is_notice() && m.in_reply_to() == Some(event.as_str())
    })
    .await
}

/// Nothing matching `forbidden` reached `room` after `mark`: checked up to the answer to a bot
/// command sent now (the bot answers after whatever it sent before, and the clock endpoint
/// returned only after the due timers fired). Returns the answer.
async fn nothing_since(
    op: &Operator,
    room: &str,
    mark: u64,
    command: &str,
    what: &str,
    forbidden: impl Fn(&RoomMessage) -> bool,
) -> anyhow::Result<String> {
    let answer = ask(op, room, command).await?;
    let early: Vec<String> = op
        .messages(room)
        .into_iter()
        .filter(|m| m.seq > mark && m.seq < answer.seq && forbidden(m))
        .map(|m| m.body)
        .collect();
    ensure!(early.is_empty(), "{what} too early: {early:?}");
    Ok(answer.body)
}

fn mentioned(m: &RoomMessage) -> Vec<Value> {
    m.content["m.mentions"]["user_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The case that exposed the defect of issue 15: a customer writes on Friday at 16:30 (half an
/// hour before closing); the owner is reminded at 10:15 on Monday and the team sees it at 10:30,
/// two working hours later — and the texts say 1 h 45 min and 2 h 1 min of working time, not the
/// 2 d 17 h and 2 d 18 h on the wall clock.
async fn friday_evening_message_is_reminded_and_escalated_at_the_working_minute_on_monday(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new(
        "friday evening message is reminded and escalated at the working minute on monday",
    );
    let env = TestEnv::start(office(backend, &["@alice:localhost", "@bob:localhost"])).await?;
    let lobby = join_lobby(&env.alice).await?;
    env.set_clock(cet(20, 16, 30, 0)).await?;
    let visitor = env.visitor("Fred Friday", "fred@example.com").await?;
    visitor.send("My order has not arrived").await?;
    let room = env.alice.wait_for_invite("Fred Friday").await?;
    env.alice.wait_for_text(&room, "has not arrived").await?;
    let claimed = rig::command(&env.alice, &room, "!sb claim").await?;
    ensure!(claimed.contains("claimed"), "{claimed}");
    steps.step("The deadlines are where working time puts them, in the team's time zone");
    let whois = rig::command(&env.alice, &room, "!sb whois").await?;
    ensure!(
        whois.contains("reminds the owner in")
            && whois.contains("(at Mon 23 Nov 10:15 CET)")
            && whois.contains("escalates in")
            && whois.contains("(at Mon 23 Nov 10:30 CET)"),
        "deadlines: {whois}"
    );

    steps.step("Saturday noon, and Monday one minute before the reminder: nothing yet");
    for (when, at) in [
        ("Saturday noon", cet(21, 12, 0, 0)),
        ("Monday 10:14", cet(23, 10, 14, 30)),
    ] {
        let mark = env.alice.mark();
        env.set_clock(at).await?;
        let queue = nothing_since(&env.alice, &lobby, mark, "!sb queue", "a reminder", |m| {
            m.body.contains('⏰') || m.body.contains('🚨')
        })
        .await
        .with_context(|| format!("at {when}"))?;
        ensure!(queue.contains("Fred Friday"), "{when}: {queue}");
    }
    steps.step("The queue says how long in working time, and since when");
    let queue = rig::command(&env.alice, &lobby, "!sb queue").await?;
    ensure!(
        queue.contains("1h 44m of working time (2d 17h since Fri 20 Nov 16:30 CET)"),
        "the queue at Monday 10:14: {queue}"
    );

    steps.step("10:15: the owner, and only the owner, is reminded");
    let mark = env.alice.mark();
    env.set_clock(cet(23, 10, 15, 30)).await?;
    let reminder = env
        .alice
        .wait_for_message_after(&lobby, mark, "the reminder", |m| m.body.contains('⏰'))
        .await?;
    ensure!(
        reminder.body.contains(
            "waiting for your answer for 1h 45m of working time (2d 17h since Fri 20 Nov 16:30 CET); \
             the team sees it in 14m of working time (at Mon 23 Nov 10:30 CET)"
        ),
        "reminder: {}",
        reminder.body
    );
    ensure!(
        mentioned(&reminder) == vec![json!("@alice:localhost")],
        "only the owner is reminded: {:?}",
        mentioned(&reminder)
    );

    // 10:29: not escalated yet; Bob (released by the claim) is still out.
    steps.step("10:29: not escalated yet");
    let mark = env.alice.mark();
    env.set_clock(cet(23, 10, 29, 30)).await?;
    nothing_since(
        &env.alice,
        &lobby,
        mark,
        "!sb queue",
        "the escalation",
        |m| m.body.contains('🚨'),
    )
    .await?;
    let whois = nothing_since(
        &env.alice,
        &room,
        mark,
        "!sb whois",
        "the escalation notice",
        |m| m.body.contains("Escalated"),
    )
    .await?;
    ensure!(
        !whois.contains("escalated") && whois.contains("escalates in"),
        "{whois}"
    );
    ensure!(
        rig::membership(&env.alice.memberships(&room).await?, env.bob.user_id()).as_deref()
            == Some("leave"),
        "bob was invited back before the escalation"
    );

    steps.step(
        "10:31: two working hours and a minute — the team sees it, and is told in working time",
    );
    let mark = env.alice.mark();
    env.set_clock(cet(23, 10, 31, 30)).await?;
    let waited = "2h 1m of working time (2d 18h since Fri 20 Nov 16:30 CET)";
    let escalation = env
        .alice
        .wait_for_message_after(&lobby, mark, "the escalation", |m| m.body.contains('🚨'))
        .await?;
    ensure!(
        escalation
            .body
            .contains(&format!("unanswered for {waited}; now with support")),
        "escalation: {}",
        escalation.body
    );
    let everyone = mentioned(&escalation);
    ensure!(
        everyone.contains(&json!("@alice:localhost"))
            && everyone.contains(&json!("@bob:localhost")),
        "the whole team is mentioned: {everyone:?}"
    );
    let notice = env
        .alice
        .wait_for_message_after(&room, mark, "the escalation notice", |m| {
            m.is_notice() && m.body.contains("Escalated")
        })
        .await?;
    ensure!(
        notice.body == format!("🚨 Escalated to support: the customer has waited {waited}."),
        "notice: {}",
        notice.body
    );
    let back = env.bob.wait_for_invite("Fred Friday").await?;
    ensure!(back == room, "bob is invited back to the same portal");
    steps.step("The lobby entry shows the waiting step in working time");
    env.alice
        .wait_for_message_after(&lobby, mark, "the lobby entry's edit", |m| {
            m.replaces().is_some()
                && m.new_body().is_some_and(|b| {
                    b.contains("Fred Friday")
                        && b.contains("waiting 2 h+ of working time (since Fri 20 Nov 16:30 CET)")
                })
        })
        .await?;
    let whois = rig::command(&env.alice, &room, "!sb whois").await?;
    ensure!(
        whois.contains(&format!("unanswered for {waited}")) && whois.contains("escalated"),
        "{whois}"
    );
    steps.finish()
}

/// `snooze` hides a conversation until the time it names (in the team's time zone): out of the
/// queue, nothing fires, then at that minute it is open and waiting again; a customer message
/// ends a snooze early, and then the snooze's end passes unnoticed.
async fn snooze_hides_until_it_ends_and_a_customer_message_ends_it_early(
    backend: Backend,
) -> anyhow::Result<()> {
    let env = TestEnv::start(office(backend, &["@alice:localhost"])).await?;
    env.set_clock(cet(23, 10, 0, 0)).await?;
    let visitor = env.visitor("Sally Snooze", "sally@example.com").await?;
    visitor.send("Please call me back after lunch").await?;
    let room = env.alice.wait_for_invite("Sally Snooze").await?;
    env.alice.wait_for_text(&room, "after lunch").await?;
    rig::poll_until(
        "the conversation in the queue",
        rig::DEFAULT_TIMEOUT,
        || async {
            let q = rig::command(&env.alice, &room, "!sb queue").await?;
            Ok(q.contains("1 unanswered").then_some(()))
        },
    )
    .await?;

    // (The clock is set again: the snooze counts from the command, seconds after 10:00.)
    env.set_clock(cet(23, 10, 0, 0)).await?;
    let snoozed = rig::command(&env.alice, &room, "!sb snooze 2h").await?;
    ensure!(
        snoozed.contains("Snoozed until Mon 23 Nov 12:00 CET"),
        "{snoozed}"
    );
    let whois = rig::command(&env.alice, &room, "!sb whois").await?;
    ensure!(
        whois.contains("state: snoozed")
            && whois.contains("snoozed until Mon 23 Nov 12:00 CET")
            && !whois.contains("unanswered"),
        "{whois}"
    );
    let queue = rig::command(&env.alice, &room, "!sb queue").await?;
    ensure!(
        queue.contains("Queue empty"),
        "a snoozed conversation is queued: {queue}"
    );

    // 11:59: still snoozed.
    let mark = env.alice.mark();
    env.set_clock(cet(23, 11, 59, 0)).await?;
    let whois = nothing_since(
        &env.alice,
        &room,
        mark,
        "!sb whois",
        "the snooze's end",
        |m| m.body.contains("Snooze over"),
    )
    .await?;
    ensure!(whois.contains("state: snoozed"), "{whois}");

    // 12:00: it is back — open, waiting for an answer, in the queue, with its timers running.
    let mark = env.alice.mark();
    env.set_clock(cet(23, 12, 0, 30)).await?;
    env.alice
        .wait_for_message_after(&room, mark, "the snooze's end", |m| {
            m.is_notice() && m.body.contains("Snooze over")
        })
        .await?;
    let whois = rig::command(&env.alice, &room, "!sb whois").await?;
    ensure!(
        whois.contains("state: open")
            && whois.contains("unanswered for")
            && whois.contains("(at Mon 23 Nov 14:00 CET)")
            && !whois.contains("snoozed until"),
        "after the snooze: {whois}"
    );
    let queue = rig::command(&env.alice, &room, "!sb queue").await?;
    ensure!(
        queue.contains("1 unanswered") && queue.contains("Sally Snooze"),
        "{queue}"
    );

    // Snoozed to a time of day: the next 09:30 in Berlin. The customer writes first: open again.
    let snoozed = rig::command(&env.alice, &room, "!sb snooze 09:30").await?;
    ensure!(
        snoozed.contains("Snoozed until Tue 24 Nov 09:30 CET"),
        "{snoozed}"
    );
    visitor.send("Sorry, one more thing").await?;
    env.alice.wait_for_text(&room, "one more thing").await?;
    let whois = rig::poll_until(
        "the customer's message to reopen it",
        rig::DEFAULT_TIMEOUT,
        || async {
            let w = rig::command(&env.alice, &room, "!sb whois").await?;
            Ok(w.contains("state: open").then_some(w))
        },
    )
    .await?;
    ensure!(
        whois.contains("unanswered for") && !whois.contains("snoozed until"),
        "{whois}"
    );
    // Its old snooze end passes without a word.
    let mark = env.alice.mark();
    env.set_clock(cet(24, 9, 31, 0)).await?;
    nothing_since(
        &env.alice,
        &room,
        mark,
        "!sb whois",
        "a stale snooze's end",
        |m| m.body.contains("Snooze over"),
    )
    .await?;
    Ok(())
}

/// `done` takes the customer's messages off the queue and stops the timers; a new message puts
/// it back. `resolve` closes it; `reopen` opens it again, waiting for an answer with its timers
/// running from the reopening; a customer message reopens a resolved conversation too (and its
/// timers skip a holiday an admin added).
async fn done_resolve_and_reopen_take_a_conversation_out_of_the_queue_and_back(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps =
        rig::Steps::new("done resolve and reopen take a conversation out of the queue and back");
    let env = TestEnv::start(office(backend, &["@alice:localhost"])).await?;
    env.set_clock(cet(23, 10, 0, 0)).await?;
    let visitor = env.visitor("Dora Done", "dora@example.com").await?;
    visitor.send("Thanks, that was all!").await?;
    let room = env.alice.wait_for_invite("Dora Done").await?;
    env.alice.wait_for_text(&room, "that was all").await?;
    let queued = |expect: bool| {
        let (alice, room) = (&env.alice, room.clone());
        async move {
            let queue = rig::command(alice, &room, "!sb queue").await?;
            let listed = queue.contains("Dora Done");
            ensure!(
                listed == expect,
                "listed: {listed}, expected {expect}: {queue}"
            );
            Ok::<_, anyhow::Error>(queue)
        }
    };
    rig::poll_until("the message in the queue", rig::DEFAULT_TIMEOUT, || async {
        Ok(queued(true).await.ok())
    })
    .await?;

    steps.step("`done`: nothing waits; the escalation that was due at 12:00 never comes");
    let done = rig::command(&env.alice, &room, "!sb done").await?;
    ensure!(
        done.contains("Marked as worked by @alice:localhost"),
        "{done}"
    );
    queued(false).await?;
    let whois = rig::command(&env.alice, &room, "!sb whois").await?;
    ensure!(
        whois.contains("state: pending")
            && !whois.contains("unanswered")
            && !whois.contains("escalates"),
        "{whois}"
    );
    let again = rig::command(&env.alice, &room, "!sb done").await?;
    ensure!(again.contains("Nothing is waiting"), "{again}");
    let mark = env.alice.mark();
    env.set_clock(cet(23, 12, 30, 0)).await?;
    nothing_since(&env.alice, &room, mark, "!sb whois", "an escalation", |m| {
        m.body.contains("Escalated")
    })
    .await?;

    steps.step("A new message waits again");
    visitor.send("Oh, and the invoice?").await?;
    env.alice.wait_for_text(&room, "the invoice?").await?;
    rig::poll_until(
        "the new message in the queue",
        rig::DEFAULT_TIMEOUT,
        || async { Ok(queued(true).await.ok()) },
    )
    .await?;

    steps.step("`resolve`: closed, off the queue, no timers");
    let resolved = rig::command(&env.alice, &room, "!sb resolve").await?;
    ensure!(
        resolved.contains("Resolved by @alice:localhost"),
        "{resolved}"
    );
    queued(false).await?;
    let whois = rig::command(&env.alice, &room, "!sb whois").await?;
    ensure!(
        whois.contains("state: resolved") && !whois.contains("escalates"),
        "{whois}"
    );

    steps.step(
        "`reopen` at 14:00: open and waiting; it escalates two working hours later, at 16:00",
    );
    let mark = env.alice.mark();
    env.set_clock(cet(23, 14, 0, 0)).await?;
    nothing_since(&env.alice, &room, mark, "!sb whois", "an escalation", |m| {
        m.body.contains("Escalated")
    })
    .await?;
    let reopened = rig::command(&env.alice, &room, "!sb reopen").await?;
    ensure!(
        reopened.contains("Reopened by @alice:localhost"),
        "{reopened}"
    );
    let whois = rig::command(&env.alice, &room, "!sb whois").await?;
    ensure!(
        whois.contains("state: open")
            && whois.contains("unanswered for")
            && whois.contains("(at Mon 23 Nov 16:00 CET)"),
        "{whois}"
    );
    queued(true).await?;
    let already = rig::command(&env.alice, &room, "!sb reopen").await?;
    ensure!(already.contains("already open"), "{already}");
    let mark = env.alice.mark();
    env.set_clock(cet(23, 15, 59, 0)).await?;
    nothing_since(
        &env.alice,
        &room,
        mark,
        "!sb whois",
        "the escalation",
        |m| m.body.contains("Escalated"),
    )
    .await?;
    let mark = env.alice.mark();
    env.set_clock(cet(23, 16, 0, 30)).await?;
    let notice = env
        .alice
        .wait_for_message_after(&room, mark, "the escalation", |m| {
            m.is_notice() && m.body.contains("Escalated")
        })
        .await?;
    ensure!(
        notice
            .body
            .contains("has waited 2h of working time (since Mon 23 Nov 14:00 CET)"),
        "{}",
        notice.body
    );

    // Tuesday becomes a holiday. Resolved again; the customer writes at 16:00: open and waiting
    // once more, with the hour left on Monday and the next working hour on Wednesday.
    steps.step("Tuesday becomes a holiday");
    let holiday =
        rig::command(&env.alice, &room, "!sb team support holiday add 2026-11-24").await?;
    ensure!(holiday.contains("holidays: 2026-11-24"), "{holiday}");
    let resolved = rig::command(&env.alice, &room, "!sb resolve").await?;
    ensure!(resolved.contains("Resolved"), "{resolved}");
    queued(false).await?;
    visitor.send("It happened again").await?;
    env.alice.wait_for_text(&room, "happened again").await?;
    let whois = rig::poll_until(
        "the customer's message to reopen it",
        rig::DEFAULT_TIMEOUT,
        || async {
            let w = rig::command(&env.alice, &room, "!sb whois").await?;
            Ok(w.contains("state: open").then_some(w))
        },
    )
    .await?;
    ensure!(
        whois.contains("unanswered for") && whois.contains("(at Wed 25 Nov 10:00 CET)"),
        "the holiday does not count: {whois}"
    );
    queued(true).await?;
    steps.finish()
}
