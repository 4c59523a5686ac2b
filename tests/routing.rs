//! Routing as a support team lives it: teams, ownership, working-time escalation, business hours,
//! lead-only and round-robin modes, with the bridge's clock moved by the test (never sleeping for
//! hours) and operators as real Matrix clients.

mod rig;

use std::time::Duration;

use anyhow::ensure;
use rig::{BridgeOptions, TestEnv};
use serde_json::{json, Value};

use rig::{command, membership, utc};

fn with_teams(teams: Value) -> BridgeOptions {
    let teams: serde_yaml::Value = serde_yaml::to_value(&teams).unwrap_or_default();
    BridgeOptions::default().edit_config(move |c| {
        if let Some(map) = c.as_mapping_mut() {
            map.insert("teams".into(), teams.clone());
            map.insert(
                "testing".into(),
                serde_yaml::to_value(json!({"clock_control": true})).unwrap_or_default(),
            );
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_counts_working_hours_only_across_a_weekend_and_a_restart() -> anyhow::Result<()>
{
    let mut steps =
        rig::Steps::new("escalation counts working hours only across a weekend and a restart");
    let mut env = TestEnv::start(with_teams(json!({
        "support": {
            "members": ["@alice:localhost", "@bob:localhost"],
            "hours": {"mon-fri": "09:00-17:00"},
            "escalate_after": "2h",
            "remind_before": "15m",
            "rules": [{"channel": "webchat"}],
        }
    })))
    .await?;
    steps.step("Friday 20 Nov 2026, 16:00 UTC: one working hour left this week");
    env.set_clock(utc(2026, 11, 20, 16, 0)).await?;
    let visitor = env.visitor("Wanda Weekend", "wanda@example.com").await?;
    visitor.send("Where is my parcel?").await?;
    let room = env.alice.wait_for_invite("Wanda Weekend").await?;
    env.bob.wait_for_invite("Wanda Weekend").await?;
    env.alice.wait_for_text(&room, "parcel").await?;

    steps.step("Alice takes it: Bob, who has not written here, is released");
    let claimed = command(&env.alice, &room, "!sb claim").await?;
    ensure!(claimed.contains("claimed"), "{claimed}");
    rig::poll_until(
        "bob removed after the claim",
        Duration::from_secs(30),
        || async {
            let m = env.alice.memberships(&room).await?;
            Ok((membership(&m, env.bob.user_id()).as_deref() == Some("leave")).then_some(()))
        },
    )
    .await?;
    let whois = command(&env.alice, &room, "!sb whois").await?;
    ensure!(
        whois.contains("owner: @alice:localhost") && whois.contains("team: support"),
        "{whois}"
    );
    ensure!(whois.contains("escalates in"), "{whois}");

    // The support lobby exists from the start; Alice joins it to see reminders and escalations.
    steps.step("The support lobby exists from the start");
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

    // Saturday noon: 20 hours later, but only one working hour has passed. The clock endpoint
    // answers once due timers have fired, so nothing in the lobby before the answer to a
    // command sent now means nothing fired.
    steps.step("Saturday noon: 20 hours later, but only one working hour has passed");
    let mark = env.alice.mark();
    env.set_clock(utc(2026, 11, 21, 12, 0)).await?;
    let whois = command(&env.alice, &room, "!sb whois").await?;
    ensure!(
        !whois.contains("escalated"),
        "escalated on a Saturday: {whois}"
    );
    let answer = env.alice.send_text(&lobby, "!sb queue").await?;
    let answer = env
        .alice
        .wait_for_message_after(&lobby, mark, "the queue", |m| {
            m.in_reply_to() == Some(answer.as_str())
        })
        .await?;
    let early: Vec<String> = env
        .alice
        .messages(&lobby)
        .into_iter()
        .filter(|m| {
            m.seq > mark && m.seq < answer.seq && (m.body.contains('⏰') || m.body.contains('🚨'))
        })
        .map(|m| m.body)
        .collect();
    ensure!(early.is_empty(), "a timer fired on Saturday: {early:?}");

    steps.step("Timers are stored: a restart changes nothing");
    env.bridge.restart().await?;
    steps.step("Monday 09:50: 1 h 50 min of working time — the owner is reminded, only the owner");
    let mark = env.alice.mark();
    env.set_clock(utc(2026, 11, 23, 9, 50)).await?;
    let reminder = env
        .alice
        .wait_for_message_after(&lobby, mark, "the reminder", |m| m.body.contains("⏰"))
        .await?;
    ensure!(
        reminder.body.contains("waiting for your answer for 1h 4")
            && reminder
                .body
                .contains("of working time (2d 17h since Fri 20 Nov 16:00 UTC)"),
        "the reminder counts working time: {}",
        reminder.body
    );
    // The lobby entry keeps its waiting time current by editing itself (in working time: 1 h
    // 50 min since Friday 16:00, not the 2 days on the wall clock).
    steps.step("The lobby entry keeps its waiting time current, in working time");
    let entry = env
        .alice
        .wait_for_message(&lobby, |m| {
            m.body.contains("Wanda Weekend")
                && m.body
                    .contains("waiting 1 h+ of working time (since Fri 20 Nov 16:00 UTC)")
        })
        .await?;
    ensure!(
        entry.content["m.relates_to"]["rel_type"] == "m.replace",
        "an edit, not a new entry: {}",
        entry.content
    );
    let mentions = reminder.content["m.mentions"]["user_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        mentions == vec![json!("@alice:localhost")],
        "only the owner is pinged: {mentions:?}"
    );

    steps.step("Monday 10:01: two working hours — the whole team sees it and is told");
    let mark = env.alice.mark();
    env.set_clock(utc(2026, 11, 23, 10, 1)).await?;
    let escalation = env
        .alice
        .wait_for_message_after(&lobby, mark, "the escalation", |m| m.body.contains("🚨"))
        .await?;
    let mentions = escalation.content["m.mentions"]["user_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        mentions.contains(&json!("@bob:localhost"))
            && mentions.contains(&json!("@alice:localhost")),
        "{mentions:?}"
    );
    env.alice
        .wait_for_message_after(&room, mark, "the escalation notice", |m| {
            m.is_notice()
                && m.body.contains("Escalated to support")
                && m.body
                    .contains("of working time (2d 18h since Fri 20 Nov 16:00 UTC)")
        })
        .await?;
    let back = env.bob.wait_for_invite("Wanda Weekend").await?;
    ensure!(back == room, "bob is invited back to the same portal");

    steps.step("Answering works the conversation: nothing waits any more");
    env.alice.send_text(&room, "It ships today").await?;
    visitor.wait_for_agent_text("It ships today").await?;
    let queue = rig::poll_until("an empty queue", Duration::from_secs(30), || async {
        let q = command(&env.alice, &room, "!sb queue").await?;
        Ok(q.contains("Queue empty").then_some(q))
    })
    .await?;
    ensure!(queue.contains("Queue empty"), "{queue}");
    steps.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_segment_is_seen_by_all_until_claimed_then_transferred_to_a_team(
) -> anyhow::Result<()> {
    let env = TestEnv::start(with_teams(json!({
        "billing": {"members": ["@bob:localhost"], "rules": [{"keywords": ["invoice"]}]},
    })))
    .await?;
    env.set_clock(utc(2026, 11, 24, 11, 0)).await?;
    // No rule matches: every operator sees it.
    let visitor = env.visitor("Una Known", "una@example.com").await?;
    visitor.send("Hello, a question about your shop").await?;
    let room = env.alice.wait_for_invite("Una Known").await?;
    let bob_room = env.bob.wait_for_invite("Una Known").await?;
    ensure!(room == bob_room);
    // A rule matches: only the billing team is invited.
    let billing_visitor = env.visitor("Ivan Invoice", "ivan@example.com").await?;
    billing_visitor.send("My invoice is wrong").await?;
    let billing_room = env.bob.wait_for_invite("Ivan Invoice").await?;
    let members = env.bob.memberships(&billing_room).await?;
    ensure!(
        membership(&members, "@alice:localhost").is_none(),
        "alice (no team) not invited to billing: {members:?}"
    );

    // Alice claims the unknown one: Bob disappears from it.
    let claimed = command(&env.alice, &room, "!sb claim").await?;
    ensure!(claimed.contains("claimed"), "{claimed}");
    rig::poll_until("bob removed", Duration::from_secs(30), || async {
        let m = env.alice.memberships(&room).await?;
        Ok((membership(&m, "@bob:localhost").as_deref() == Some("leave")).then_some(()))
    })
    .await?;
    // It is about billing after all: transfer to the team; Bob sees it again, nobody owns it.
    let moved = command(&env.alice, &room, "!sb transfer billing").await?;
    ensure!(moved.contains("Transferred to team billing"), "{moved}");
    let again = env.bob.wait_for_invite("Una Known").await?;
    ensure!(again == room);
    let whois = command(&env.alice, &room, "!sb whois").await?;
    ensure!(
        whois.contains("owner: nobody") && whois.contains("team: billing"),
        "{whois}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_only_teams_refuse_claims_from_members_and_permissions_are_enforced(
) -> anyhow::Result<()> {
    let env = TestEnv::start(with_teams(json!({
        "vip": {"members": ["@bob:localhost"], "leads": ["@alice:localhost"], "mode": "lead_only", "rules": [{"channel": "webchat"}]},
    })))
    .await?;
    let visitor = env.visitor("Vera Vip", "vera@example.com").await?;
    visitor.send("I am a VIP").await?;
    // Only the lead sees new conversations.
    let room = env.alice.wait_for_invite("Vera Vip").await?;
    env.alice.wait_for_text(&room, "VIP").await?;
    let members = env.alice.memberships(&room).await?;
    ensure!(
        membership(&members, "@bob:localhost").is_none(),
        "member invited in lead-only mode: {members:?}"
    );

    // The lead hands it to Bob.
    let assigned = command(&env.alice, &room, "!sb assign @bob:localhost").await?;
    ensure!(
        assigned.contains("Assigned to @bob:localhost"),
        "{assigned}"
    );
    env.bob.wait_for_invite("Vera Vip").await?;
    // Bob (a member) may not claim in a lead-only team, nor assign (a lead's right).
    let unassigned = command(&env.bob, &room, "!sb unassign").await?;
    ensure!(
        unassigned.contains("no longer owns"),
        "the owner may give it back: {unassigned}"
    );
    let refused = command(&env.bob, &room, "!sb claim").await?;
    ensure!(refused.contains("only a lead"), "{refused}");
    let denied = command(&env.bob, &room, "!sb assign @bob:localhost").await?;
    ensure!(denied.contains("needs lead rights"), "{denied}");
    // Team changes are for admins only.
    let denied = command(&env.bob, &room, "!sb team vip add @carol:localhost").await?;
    ensure!(denied.contains("needs admin rights"), "{denied}");
    let done = command(&env.alice, &room, "!sb team vip escalate 30m").await?;
    ensure!(done.contains("escalates after 30m"), "{done}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_hours_the_customer_gets_one_auto_reply_a_day() -> anyhow::Result<()> {
    let env = TestEnv::start(with_teams(json!({
        "support": {
            "members": ["@alice:localhost"],
            "timezone": "Europe/Berlin",
            "hours": {"mon-fri": "09:00-17:00"},
            "auto_reply": "We are closed; we answer from 9:00 on weekdays.",
            "rules": [{"channel": "webchat"}],
        }
    })))
    .await?;
    // Saturday afternoon in Berlin.
    env.set_clock(utc(2026, 11, 21, 14, 0)).await?;
    let visitor = env.visitor("Otto Offhours", "otto@example.com").await?;
    visitor.send("Hello?").await?;
    visitor.wait_for_agent_text("We are closed").await?;
    let room = env.alice.wait_for_invite("Otto Offhours").await?;
    env.alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.body.contains("Auto-reply sent")
        })
        .await?;
    visitor.send("Anyone there?").await?;
    env.alice.wait_for_text(&room, "Anyone there?").await?;
    // Sunday: a new day, a new auto-reply; Monday in hours: none.
    env.set_clock(utc(2026, 11, 22, 10, 0)).await?;
    visitor.send("Still waiting").await?;
    env.alice.wait_for_text(&room, "Still waiting").await?;
    // Routing runs after the message is in the room: wait for Sunday's auto-reply before the
    // clock moves on to Monday.
    visitor
        .wait_for_agent_text_count("We are closed", 2)
        .await?;
    env.set_clock(utc(2026, 11, 23, 9, 30)).await?;
    visitor.send("Good morning").await?;
    env.alice.wait_for_text(&room, "Good morning").await?;
    env.alice.send_text(&room, "Good morning, Otto!").await?;
    visitor.wait_for_agent_text("Good morning, Otto!").await?;
    // The customer's next message reaches the room only after the previous one was routed, and
    // an auto-reply's notice is posted while routing: once "Thanks" is in the room, every
    // auto-reply notice up to Monday's "Good morning" is there too.
    visitor.send("Thanks, bye").await?;
    env.alice.wait_for_text(&room, "Thanks, bye").await?;
    let notices = env
        .alice
        .messages(&room)
        .iter()
        .filter(|m| m.is_notice() && m.body.contains("Auto-reply sent"))
        .count();
    ensure!(
        notices == 2,
        "auto-replies on Saturday and Sunday only, got {notices} notices"
    );
    let replies = visitor
        .refresh()
        .await?
        .iter()
        .filter(|e| {
            e["from"] == "agent"
                && e["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("We are closed"))
        })
        .count();
    ensure!(
        replies == 2,
        "one auto-reply on Saturday and one on Sunday, got {replies}"
    );

    // An admin changes the calendar by command: Tuesday becomes a holiday, Saturday a short day.
    let answer = command(&env.alice, &room, "!sb team support holiday add 2026-11-24").await?;
    ensure!(
        answer.contains("holidays: 2026-11-24") && answer.contains("Europe/Berlin"),
        "{answer}"
    );
    let answer = command(&env.alice, &room, "!sb team support hours sat 10:00-14:00").await?;
    ensure!(
        answer.contains("sat 10:00-14:00")
            && answer.contains("mon 09:00-17:00")
            && answer.contains("sun closed"),
        "{answer}"
    );
    let refused = command(&env.alice, &room, "!sb team support hours sat 25:00-26:00").await?;
    ensure!(
        refused.starts_with("Not changed"),
        "bad hours refused: {refused}"
    );
    // Tuesday 10:00 is now out of hours (a holiday): the auto-reply goes out.
    env.set_clock(utc(2026, 11, 24, 9, 0)).await?;
    visitor.send("Open today?").await?;
    env.alice.wait_for_text(&room, "Open today?").await?;
    visitor
        .wait_for_agent_text_count("We are closed", 3)
        .await?;
    let calendar = command(&env.alice, &room, "!sb team support calendar").await?;
    ensure!(
        calendar.contains("sat 10:00-14:00") && calendar.contains("2026-11-24"),
        "{calendar}"
    );
    Ok(())
}

/// Round robin: each new conversation goes to one online, on-shift member under the
/// open-conversation limit; with nobody free the whole team sees it; someone coming online
/// gets the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_skips_offline_and_full_operators() -> anyhow::Result<()> {
    let env = TestEnv::start(with_teams(json!({
        "sales": {
            "members": ["@alice:localhost", "@bob:localhost"],
            "mode": "round_robin",
            "max_open_per_operator": 1,
            "rules": [{"channel": "webchat"}],
        }
    })))
    .await?;
    env.set_clock(utc(2026, 11, 24, 11, 0)).await?;
    // Sharing the lobby with the bot is what lets it see their presence.
    for op in [&env.alice, &env.bob] {
        let lobby = op
            .wait_for_invite_where("the sales lobby", |i| {
                i.name.as_deref().is_some_and(|n| n.contains("sales lobby"))
            })
            .await?;
        op.join(&lobby.room_id).await?;
    }
    env.bob.set_presence("offline").await?;
    env.alice.set_presence("online").await?;

    // Bob is offline: Alice gets the first one, alone.
    let first = env.visitor("Rita First", "rita@example.com").await?;
    first.send("Hello, a question about prices").await?;
    let room1 = env.alice.wait_for_invite("Rita First").await?;
    let whois = command(&env.alice, &room1, "!sb whois").await?;
    ensure!(whois.contains("owner: @alice:localhost"), "{whois}");
    let members = env.alice.memberships(&room1).await?;
    ensure!(
        membership(&members, "@bob:localhost").is_none(),
        "offline bob not invited: {members:?}"
    );

    // Alice is at her limit and Bob offline: nobody owns the next one; the team sees it.
    let second = env.visitor("Sam Second", "sam@example.com").await?;
    second.send("Do you ship to Norway?").await?;
    let room2 = env.alice.wait_for_invite("Sam Second").await?;
    let members = env.alice.memberships(&room2).await?;
    ensure!(
        membership(&members, "@bob:localhost").as_deref() == Some("invite"),
        "the team sees it: {members:?}"
    );
    let whois = command(&env.alice, &room2, "!sb whois").await?;
    ensure!(whois.contains("owner: nobody"), "{whois}");

    // Bob comes online: the next one is his.
    env.bob.set_presence("online").await?;
    let third = env.visitor("Tom Third", "tom@example.com").await?;
    third.send("Is the shop open tomorrow?").await?;
    let room3 = env.bob.wait_for_invite("Tom Third").await?;
    let whois = command(&env.bob, &room3, "!sb whois").await?;
    ensure!(whois.contains("owner: @bob:localhost"), "{whois}");
    let members = env.bob.memberships(&room3).await?;
    ensure!(
        membership(&members, "@alice:localhost").is_none(),
        "full alice not invited: {members:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_edit_rules_and_the_lobby_with_commands() -> anyhow::Result<()> {
    // `billing` (Bob) starts with no rules; `support` (Alice) takes the web chat.
    let mut env = TestEnv::start(with_teams(json!({
        "billing": {"members": ["@bob:localhost"]},
        "support": {"members": ["@alice:localhost"], "rules": [{"channel": "webchat"}]},
    })))
    .await?;
    let first = env.visitor("Fiona First", "fiona@example.com").await?;
    first.send("A question about my invoice").await?;
    let room = env.alice.wait_for_invite("Fiona First").await?;
    env.alice.wait_for_text(&room, "invoice").await?;

    let bad = command(
        &env.alice,
        &room,
        "!sb team billing rule add keywords=invoice tags=b@d",
    )
    .await?;
    ensure!(
        bad.contains("Not changed") && bad.contains("not a tag"),
        "{bad}"
    );
    let added = command(
        &env.alice,
        &room,
        "!sb team billing rule add keywords=invoice,refund",
    )
    .await?;
    ensure!(added.contains("1. keywords=invoice,refund"), "{added}");

    // Billing's lobby moves to a room Alice made and invited the bot to.
    let desk = env
        .alice
        .create_room("Billing desk", &[env.bot_user_id().as_str()])
        .await?;
    let moved = command(&env.alice, &room, &format!("!sb team billing lobby {desk}")).await?;
    ensure!(moved.contains("lobby is now"), "{moved}");

    // The new rule routes by the first message: Bob, not Alice, sees the next invoice question,
    // and its lobby entry appears in the billing desk.
    let second = env.visitor("Gus Second", "gus@example.com").await?;
    second.send("My invoice is wrong").await?;
    let gus_room = env.bob.wait_for_invite("Gus Second").await?;
    env.bob.wait_for_text(&gus_room, "invoice is wrong").await?;
    ensure!(
        membership(&env.bob.memberships(&gus_room).await?, env.alice.user_id()).is_none(),
        "Alice was invited to a billing conversation"
    );
    env.alice.wait_for_text(&desk, "Gus Second").await?;
    // Only admins change teams: Bob is an operator.
    let denied = command(&env.bob, &gus_room, "!sb team billing rule remove 1").await?;
    ensure!(denied.contains("needs admin rights"), "{denied}");

    // Rules are stored: after a restart they still apply; removing the rule sends the next one
    // back to support.
    env.bridge.restart().await?;
    let listed = command(&env.alice, &room, "!sb team billing rules").await?;
    ensure!(listed.contains("1. keywords=invoice,refund"), "{listed}");
    let removed = command(&env.alice, &room, "!sb team billing rule remove 1").await?;
    ensure!(removed.contains("no rules"), "{removed}");
    let third = env.visitor("Hana Third", "hana@example.com").await?;
    third.send("Refund for my invoice please").await?;
    let hana_room = env.alice.wait_for_invite("Hana Third").await?;
    env.alice.wait_for_text(&hana_room, "Refund").await?;
    let whois = command(&env.alice, &hana_room, "!sb whois").await?;
    ensure!(whois.contains("team: support"), "{whois}");
    Ok(())
}
