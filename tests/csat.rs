//! Customer ratings (CSAT) as a support team lives them: a resolved conversation's customer is
//! asked to rate it after the team's delay, once, in their own channel (a digit by SMS, buttons
//! on Telegram); the rating shows in the room, in `whois` and `contact`, alerts the leads when it
//! is low, and steers routing. Native buttons are checked on every network that has them here:
//! Telegram's inline keyboard, Messenger's quick replies, WhatsApp's interactive list and
//! Discord's message components. The bridge's clock is moved by the test (never slept for); the
//! customers are wire-level fakes or the web chat; operators are real Matrix clients.

mod fakes;
#[macro_use]
mod rig;

use std::time::Duration;

use anyhow::{ensure, Context};
use fakes::twilio::FakeTwilio;
use rig::{command, membership, utc, Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};

on_both_stores!(
    a_resolved_sms_conversation_is_rated_once_by_a_digit,
    whatsapp_list_rates_once_and_the_reply_window_is_respected,
    discord_buttons_rate_and_the_press_is_answered_within_3_seconds,
);

const CUSTOMER: &str = "+14155550142";
const CUSTOMER_NAME: &str = "+1 415 555 0142";
const QUESTION: &str = "How would you rate our help?";
const MIN: i64 = 60_000;

/// `teams` and the test clock in the config.
fn with_teams(options: BridgeOptions, teams: Value) -> BridgeOptions {
    let teams: serde_yaml::Value = serde_yaml::to_value(&teams).unwrap_or_default();
    options.edit_config(move |c| {
        if let Some(map) = c.as_mapping_mut() {
            map.insert("teams".into(), teams.clone());
            map.insert(
                "testing".into(),
                serde_yaml::to_value(json!({"clock_control": true})).unwrap_or_default(),
            );
        }
    })
}
/// The rated events of the whole store.
async fn rated_events(env: &TestEnv, backend: Backend) -> anyhow::Result<i64> {
    rig::store_count(
        backend,
        env.bridge.database_url(),
        "SELECT COUNT(*) FROM conversation_events WHERE kind = 'rated'",
        &[],
    )
    .await
}

/// Alice joins her team's lobby (she leads it) and gets its room id.
async fn join_lobby(env: &TestEnv, team: &str) -> anyhow::Result<String> {
    let lobby = env
        .alice
        .wait_for_invite_where("the lobby", |i| {
            i.name
                .as_deref()
                .is_some_and(|n| n.contains(&format!("{team} lobby")))
        })
        .await?
        .room_id;
    env.alice.join(&lobby).await?;
    Ok(lobby)
}

async fn a_resolved_sms_conversation_is_rated_once_by_a_digit(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("a resolved SMS conversation is rated once by a digit");
    let fake = FakeTwilio::start().await?;
    let env = TestEnv::start(with_teams(
        BridgeOptions::default()
            .backend(backend)
            .channel("sms", fake.channel_config("US")),
        json!({
            "support": {
                "members": ["@bob:localhost"],
                "leads": ["@alice:localhost"],
                "rules": [{"channel": "sms"}],
                "csat": {"delay": "10m"},
            }
        }),
    ))
    .await?;
    let bridge = env.bridge.base_url();
    let lobby = join_lobby(&env, "support").await?;
    let t0 = utc(2026, 11, 24, 10, 0);
    env.set_clock(t0).await?;

    steps.step("The customer writes, Bob answers and resolves");
    fake.incoming(&bridge, CUSTOMER, "My order is late", vec![])
        .await?;
    let room = env.bob.wait_for_invite(CUSTOMER_NAME).await?;
    env.bob.wait_for_text(&room, "order is late").await?;
    env.bob.send_text(&room, "It ships today, sorry!").await?;
    fake.wait_for_create(|c| c.param("Body") == Some("It ships today, sorry!"))
        .await?;
    let resolved = command(&env.bob, &room, "!sb resolve").await?;
    ensure!(resolved.contains("Resolved"), "{resolved}");
    let asked = |fake: &FakeTwilio| {
        fake.messages()
            .iter()
            .filter(|m| m.body.contains(QUESTION))
            .count()
    };

    steps.step("Five minutes later: not asked yet (the team's delay is 10 minutes)");
    env.set_clock(t0 + 5 * MIN).await?;
    let whois = command(&env.bob, &room, "!sb whois").await?;
    ensure!(whois.contains("rating to be asked"), "{whois}");
    ensure!(asked(&fake) == 0, "asked before the delay");

    steps.step("After the delay: asked once, by text with the digit hint");
    env.set_clock(t0 + 11 * MIN).await?;
    let question = fake
        .wait_for_create(|c| c.param("Body").is_some_and(|b| b.contains(QUESTION)))
        .await?;
    let body = question.param("Body").unwrap_or_default().to_string();
    ensure!(
        body.contains("Reply with a digit from 1 (poor) to 5 (excellent)"),
        "{body}"
    );
    ensure!(question.param("To") == Some(CUSTOMER), "{question:?}");
    env.bob
        .wait_for_text(&room, "⭐ Asked the customer to rate this conversation")
        .await?;
    env.set_clock(t0 + 30 * MIN).await?;
    let whois = command(&env.bob, &room, "!sb whois").await?;
    ensure!(
        whois.contains("rating asked, no answer yet") && whois.contains("state: resolved"),
        "{whois}"
    );
    ensure!(asked(&fake) == 1, "asked {} times", asked(&fake));

    steps.step("The customer answers 2 with a comment: rated, not reopened, leads alerted");
    let mark = env.alice.mark();
    fake.incoming(&bridge, CUSTOMER, "2 - it took a week", vec![])
        .await?;
    let rated = env
        .bob
        .wait_for_text(&room, "⭐ The customer rated this conversation 2/5")
        .await?;
    ensure!(
        rated.body.contains("(about @bob:localhost)") && rated.body.contains("“it took a week”"),
        "{}",
        rated.body
    );
    let alert = env
        .alice
        .wait_for_message_after(&lobby, mark, "the low-rating alert", |m| {
            m.body.contains("Low rating 2/5")
        })
        .await?;
    ensure!(
        alert.body.starts_with("@alice:localhost")
            && alert.body.contains("for @bob:localhost")
            && alert.body.contains(CUSTOMER_NAME),
        "{}",
        alert.body
    );
    fake.wait_for_create(|c| {
        c.param("Body")
            .is_some_and(|b| b.starts_with("Thank you for your rating"))
    })
    .await?;
    let whois = command(&env.bob, &room, "!sb whois").await?;
    ensure!(
        whois.contains("rated 2/5 (“it took a week”)") && whois.contains("state: resolved"),
        "{whois}"
    );
    let contact = command(&env.bob, &room, "!sb contact").await?;
    ensure!(
        contact.contains("ratings: 2/5 for @bob:localhost on 2026-11-24 (average 2.0 of 1)"),
        "{contact}"
    );

    steps.step("A second digit is a message like any other: no second rating, it reopens");
    fake.incoming(&bridge, CUSTOMER, "5", vec![]).await?;
    env.bob
        .wait_for_message(&room, |m| m.body == "5" && !m.is_notice())
        .await?;
    rig::poll_until("reopened", Duration::from_secs(30), || async {
        let whois = command(&env.bob, &room, "!sb whois").await?;
        Ok(whois.contains("state: open").then_some(whois))
    })
    .await?;
    let rated = rated_events(&env, backend).await?;
    ensure!(rated == 1, "{rated} rated events");
    let requests = rig::store_count(
        backend,
        env.bridge.database_url(),
        "SELECT COUNT(*) FROM csat_requests WHERE state = 'rated' AND score = 2",
        &[],
    )
    .await?;
    ensure!(requests == 1, "{requests} rated requests");
    ensure!(asked(&fake) == 1, "asked {} times", asked(&fake));
    steps.finish()
}

/// A customer who writes again before the delay reopened the conversation: the question for
/// that resolution never goes out; the next resolution is asked about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_reopened_before_the_delay_is_not_asked_about() -> anyhow::Result<()> {
    let fake = FakeTwilio::start().await?;
    let env = TestEnv::start(with_teams(
        BridgeOptions::default().channel("sms", fake.channel_config("US")),
        json!({
            "support": {
                "members": ["@bob:localhost"],
                "rules": [{"channel": "sms"}],
                "csat": {"delay": "1h", "question": {"en": "Rate us, please", "ru": "Оцените нас"}},
            }
        }),
    ))
    .await?;
    let bridge = env.bridge.base_url();
    let t0 = utc(2026, 11, 24, 10, 0);
    env.set_clock(t0).await?;
    fake.incoming(&bridge, CUSTOMER, "Hello", vec![]).await?;
    let room = env.bob.wait_for_invite(CUSTOMER_NAME).await?;
    env.bob.wait_for_text(&room, "Hello").await?;
    command(&env.bob, &room, "!sb resolve").await?;
    env.set_clock(t0 + 30 * MIN).await?;
    fake.incoming(&bridge, CUSTOMER, "One more thing", vec![])
        .await?;
    env.bob.wait_for_text(&room, "One more thing").await?;
    env.set_clock(t0 + 2 * 60 * MIN).await?;
    let whois = command(&env.bob, &room, "!sb whois").await?;
    ensure!(
        whois.contains("state: open") && !whois.contains("rat"),
        "{whois}"
    );
    ensure!(
        !fake.messages().iter().any(|m| m.body.contains("Rate us")),
        "asked about a resolution the customer reopened"
    );

    // Resolved again, with the customer's language known: asked in it.
    command(&env.bob, &room, "!sb tag lang-ru").await?;
    command(&env.bob, &room, "!sb resolve").await?;
    env.set_clock(t0 + 4 * 60 * MIN).await?;
    let asked = fake
        .wait_for_create(|c| c.param("Body").is_some_and(|b| b.contains("Оцените нас")))
        .await?;
    ensure!(
        asked
            .param("Body")
            .is_some_and(|b| b.contains("Reply with a digit")),
        "the hint falls back to English: {asked:?}"
    );
    Ok(())
}

/// Sticky routing gives a returning customer to the operator who handled them last, unless
/// their rating of that operator was 2 or less; then the team sees the new conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_rating_ends_sticky_routing_to_that_operator() -> anyhow::Result<()> {
    let env = TestEnv::start(with_teams(
        BridgeOptions::default(),
        json!({
            "support": {
                "members": ["@alice:localhost", "@bob:localhost"],
                "rules": [{"channel": "webchat"}],
                "csat": {"delay": "5m"},
            }
        }),
    ))
    .await?;
    let t0 = utc(2026, 11, 24, 10, 0);
    env.set_clock(t0).await?;

    // Two customers, both handled by Bob; Uma rates him 5, Lev rates him 2.
    let mut rooms = Vec::new();
    for (name, email) in [
        ("Uma Happy", "uma@example.com"),
        ("Lev Grumpy", "lev@example.com"),
    ] {
        let visitor = env.visitor(name, email).await?;
        visitor.send("Hello, my order?").await?;
        let room = env.bob.wait_for_invite(name).await?;
        env.bob.wait_for_text(&room, "my order?").await?;
        env.bob.send_text(&room, "On its way.").await?;
        visitor.wait_for_agent_text("On its way.").await?;
        command(&env.bob, &room, "!sb resolve").await?;
        rooms.push((visitor, room));
    }
    env.set_clock(t0 + 6 * MIN).await?;
    // Uma clicks a star in the widget; Lev answers with a digit (still understood).
    for ((visitor, room), score) in rooms.iter().zip(["5", "2"]) {
        let rating = visitor.wait_for_rating(QUESTION).await?;
        if score == "5" {
            visitor.rate(&rating, 5).await?;
        } else {
            visitor.send(score).await?;
        }
        env.bob
            .wait_for_text(room, &format!("rated this conversation {score}/5"))
            .await?;
    }

    // Both come back in a new chat session (a new conversation, the same customer by e-mail).
    let uma = env.visitor("Uma Happy", "uma@example.com").await?;
    uma.send("Another question").await?;
    let uma_room = env.bob.wait_for_invite("Uma Happy").await?;
    ensure!(uma_room != rooms[0].1, "a new conversation");
    let whois = command(&env.bob, &uma_room, "!sb whois").await?;
    ensure!(whois.contains("owner: @bob:localhost"), "sticky: {whois}");

    let lev = env.visitor("Lev Grumpy", "lev@example.com").await?;
    lev.send("Again me").await?;
    let first_lev_room = rooms[1].1.clone();
    let lev_room = env
        .alice
        .wait_for_invite_where("Lev's new room", |i| {
            i.room_id != first_lev_room
                && i.name.as_deref().is_some_and(|n| n.contains("Lev Grumpy"))
        })
        .await?
        .room_id;
    env.alice.join(&lev_room).await?;
    let whois = command(&env.alice, &lev_room, "!sb whois").await?;
    ensure!(
        whois.contains("owner: nobody"),
        "not sticky after a 2: {whois}"
    );
    let members = env.alice.memberships(&lev_room).await?;
    ensure!(
        membership(&members, "@bob:localhost").as_deref() == Some("invite")
            && membership(&members, "@alice:localhost").is_some(),
        "the team sees it: {members:?}"
    );
    Ok(())
}

/// A round-robin team that prefers the better rated gives the next conversation to the member
/// with the better average over 90 days, though the other has waited longer for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_prefers_the_better_rated_member() -> anyhow::Result<()> {
    let env = TestEnv::start(with_teams(
        BridgeOptions::default(),
        json!({
            "sales": {
                "members": ["@alice:localhost", "@bob:localhost"],
                "mode": "round_robin",
                "prefer_better_rated": true,
                "rules": [{"channel": "webchat"}],
                "csat": {"delay": "5m"},
            }
        }),
    ))
    .await?;
    let t0 = utc(2026, 11, 24, 10, 0);
    env.set_clock(t0).await?;
    for op in [&env.alice, &env.bob] {
        let lobby = op
            .wait_for_invite_where("the sales lobby", |i| {
                i.name.as_deref().is_some_and(|n| n.contains("sales lobby"))
            })
            .await?;
        op.join(&lobby.room_id).await?;
    }
    // Bob is offline: Alice gets the first one, and is rated 5 for it.
    env.bob.set_presence("offline").await?;
    env.alice.set_presence("online").await?;
    let first = env.visitor("Rita First", "rita@example.com").await?;
    first.send("Prices?").await?;
    let room1 = env.alice.wait_for_invite("Rita First").await?;
    let whois = command(&env.alice, &room1, "!sb whois").await?;
    ensure!(whois.contains("owner: @alice:localhost"), "{whois}");
    env.alice.send_text(&room1, "Here they are.").await?;
    first.wait_for_agent_text("Here they are.").await?;
    command(&env.alice, &room1, "!sb resolve").await?;
    env.set_clock(t0 + 6 * MIN).await?;
    // The web chat asks with stars: Rita clicks the fifth.
    let rating = first.wait_for_rating(QUESTION).await?;
    first.rate(&rating, 5).await?;
    env.alice
        .wait_for_text(&room1, "rated this conversation 5/5")
        .await?;
    env.bob.set_presence("online").await?;
    let (rated, other) = (&env.alice, &env.bob);

    // Without the preference the other member (never given one) would be next.
    let second = env.visitor("Sam Second", "sam@example.com").await?;
    second.send("Do you ship to Norway?").await?;
    let room2 = rated.wait_for_invite("Sam Second").await?;
    let whois = command(rated, &room2, "!sb whois").await?;
    ensure!(
        whois.contains(&format!("owner: {}", rated.user_id())),
        "the better rated gets it: {whois}"
    );
    let members = rated.memberships(&room2).await?;
    ensure!(
        membership(&members, other.user_id()).is_none(),
        "the other is not invited: {members:?}"
    );
    Ok(())
}

/// On Telegram the question comes with an inline keyboard; pressing a button rates, once; a
/// forged or repeated press changes nothing; every press is answered (`answerCallbackQuery`)
/// once stored; the customer's next message is the rating's comment and does not reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_buttons_rate_once_and_the_next_message_is_the_comment() -> anyhow::Result<()> {
    use fakes::telegram::{FakeTelegram, TgUser, TOKEN};
    let fake = FakeTelegram::start().await?;
    let env = TestEnv::start(with_teams(
        BridgeOptions::default().channel(
            "telegram",
            json!({"enabled": true, "token": TOKEN, "api_url": fake.url(), "poll_timeout_secs": 2}),
        ),
        json!({
            "support": {
                "members": ["@bob:localhost"],
                "leads": ["@alice:localhost"],
                "rules": [{"channel": "telegram"}],
                "csat": {"delay": "10m"},
            }
        }),
    ))
    .await?;
    let user = TgUser::new(5_550_001, "Jane", Some("Doe"), Some("jane_d"));
    let t0 = utc(2026, 11, 24, 10, 0);
    env.set_clock(t0).await?;
    fake.push_update(fake.message_update(&user, 1, json!({"text": "My parcel is damaged"})));
    let room = env.bob.wait_for_invite("Jane Doe").await?;
    env.bob.wait_for_text(&room, "parcel is damaged").await?;
    env.bob.send_text(&room, "We will replace it.").await?;
    fake.wait_for_call("sendMessage", |c| {
        c.params.get("text").and_then(Value::as_str) == Some("We will replace it.")
    })
    .await?;
    command(&env.bob, &room, "!sb resolve").await?;

    // The question: sendMessage with five callback buttons, worst first.
    env.set_clock(t0 + 11 * MIN).await?;
    let call = fake
        .wait_for_call("sendMessage", |c| {
            c.params.get("text").and_then(Value::as_str) == Some(QUESTION)
        })
        .await?;
    ensure!(call.status == 200, "{call:?}");
    let question_id = fake
        .bot_message_id(user.id, QUESTION)
        .ok_or_else(|| anyhow::anyhow!("the question is not among the bot's messages"))?;
    let message = fake.bot_message(user.id, question_id).unwrap_or_default();
    let rows = message["reply_markup"]["inline_keyboard"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let labels: Vec<&str> = rows.iter().filter_map(|r| r[0]["text"].as_str()).collect();
    ensure!(
        labels == ["1 ⭐", "2 ⭐⭐", "3 ⭐⭐⭐", "4 ⭐⭐⭐⭐", "5 ⭐⭐⭐⭐⭐"],
        "{message}"
    );
    ensure!(
        rows.iter().all(|r| r[0]["callback_data"]
            .as_str()
            .is_some_and(|d| d.starts_with("sbr1:"))),
        "{message}"
    );

    // A forged press (a nonce the bridge never sent): answered, not counted.
    let forged = fake.push_callback(&user, message.clone(), "sbr1:Forged00Nonce000:5");
    rig::poll_until(
        "the forged press answered",
        Duration::from_secs(30),
        || async { Ok(fake.answered_queries().contains(&forged).then_some(())) },
    )
    .await?;
    let whois = command(&env.bob, &room, "!sb whois").await?;
    ensure!(whois.contains("rating asked, no answer yet"), "{whois}");

    // The customer presses 4.
    let pressed = fake.press_button(&user, question_id, 3, 0)?;
    env.bob
        .wait_for_text(
            &room,
            "⭐ The customer rated this conversation 4/5 (about @bob:localhost)",
        )
        .await?;
    rig::poll_until("the press answered", Duration::from_secs(30), || async {
        Ok(fake.answered_queries().contains(&pressed).then_some(()))
    })
    .await?;
    fake.wait_for_call("sendMessage", |c| {
        c.params
            .get("text")
            .and_then(Value::as_str)
            .is_some_and(|t| t.starts_with("Thank you for your rating"))
    })
    .await?;

    // The next message is the comment: shown, kept with the rating, and not reopening.
    fake.push_update(fake.message_update(&user, 2, json!({"text": "Fast and friendly!"})));
    env.bob
        .wait_for_text(&room, "is the customer's comment on their rating (4/5)")
        .await?;
    let whois = command(&env.bob, &room, "!sb whois").await?;
    ensure!(
        whois.contains("rated 4/5 (“Fast and friendly!”)") && whois.contains("state: resolved"),
        "{whois}"
    );

    // Pressing 1 on the same question later: answered, the rating stays 4.
    let again = fake.press_button(&user, question_id, 0, 0)?;
    rig::poll_until(
        "the second press answered",
        Duration::from_secs(30),
        || async { Ok(fake.answered_queries().contains(&again).then_some(())) },
    )
    .await?;
    let whois = command(&env.bob, &room, "!sb whois").await?;
    ensure!(whois.contains("rated 4/5"), "{whois}");
    let rated = rated_events(&env, Backend::Sqlite).await?;
    ensure!(rated == 1, "{rated} rated events");
    Ok(())
}

/// On Messenger the question comes with quick replies; a tap rates. A question that would go
/// out after the 24-hour reply window closed is not sent, and the room is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messenger_quick_replies_rate_and_the_reply_window_is_respected() -> anyhow::Result<()> {
    use fakes::messenger::{now_ms, FakeMeta, Net, APP_SECRET, PAGE_TOKEN, VERIFY_TOKEN};
    const HOUR: i64 = 60 * MIN;
    let net = Net::Messenger;
    let fake = FakeMeta::start().await?;
    let env = TestEnv::start(with_teams(
        BridgeOptions::default().channel(
            "messenger",
            json!({
                "enabled": true, "access_token": PAGE_TOKEN, "app_secret": APP_SECRET,
                "verify_token": VERIFY_TOKEN, "api_url": fake.url(), "api_version": "v21.0",
            }),
        ),
        json!({
            "support": {
                "members": ["@bob:localhost"],
                "rules": [{"channel": "messenger"}],
                "csat": {"delay": "10m"},
            }
        }),
    ))
    .await?;
    // The network stamps messages with the real time: the bridge's clock starts there.
    let t0 = now_ms();
    env.set_clock(t0).await?;
    let webhook = format!("{}/messenger/webhook", env.bridge.base_url());
    let deliver = |item: Value| {
        let fake = &fake;
        let webhook = webhook.clone();
        async move {
            let status = fake
                .deliver(&webhook, &FakeMeta::delivery(net, item))
                .await?;
            ensure!(status == 200, "webhook answered {status}");
            Ok::<_, anyhow::Error>(())
        }
    };
    for (psid, name) in [("7000000000000001", "Jane"), ("7000000000000002", "John")] {
        fake.add_profile(net, psid, json!({"first_name": name, "last_name": "Doe"}));
    }

    // Jane: asked with quick replies, taps 5.
    deliver(FakeMeta::message(
        net,
        "7000000000000001",
        "m_jane1",
        json!({"text": "Is it in stock?"}),
    ))
    .await?;
    let jane = env.bob.wait_for_invite("Jane Doe").await?;
    env.bob.wait_for_text(&jane, "in stock").await?;
    env.bob.send_text(&jane, "Yes, it is.").await?;
    rig::poll_until("the answer sent", Duration::from_secs(30), || async {
        Ok(fake
            .sent()
            .iter()
            .any(|s| s.message["text"] == "Yes, it is.")
            .then_some(()))
    })
    .await?;
    command(&env.bob, &jane, "!sb resolve").await?;
    env.set_clock(t0 + 11 * MIN).await?;
    let question = rig::poll_until("the question", Duration::from_secs(30), || async {
        Ok(fake
            .sent()
            .into_iter()
            .find(|s| s.message["text"] == QUESTION))
    })
    .await?;
    let titles: Vec<&str> = question.message["quick_replies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["title"].as_str())
        .collect();
    ensure!(
        titles.len() == 5 && titles[4] == "5 ⭐⭐⭐⭐⭐",
        "{}",
        question.message
    );
    let tap = fake.tap_quick_reply(net, "7000000000000001", &question.mid, 4, "m_jane2")?;
    deliver(tap).await?;
    env.bob
        .wait_for_text(&jane, "⭐ The customer rated this conversation 5/5")
        .await?;
    let whois = command(&env.bob, &jane, "!sb whois").await?;
    ensure!(
        whois.contains("rated 5/5") && whois.contains("state: resolved"),
        "{whois}"
    );

    // John: resolved nearly a day after he wrote; when the delay is over, the window has closed.
    deliver(FakeMeta::message(
        net,
        "7000000000000002",
        "m_john1",
        json!({"text": "Where is my refund?"}),
    ))
    .await?;
    let john = env.bob.wait_for_invite("John Doe").await?;
    env.bob.wait_for_text(&john, "refund").await?;
    env.bob.send_text(&john, "Sent yesterday.").await?;
    rig::poll_until("the answer sent", Duration::from_secs(30), || async {
        Ok(fake
            .sent()
            .iter()
            .any(|s| s.message["text"] == "Sent yesterday.")
            .then_some(()))
    })
    .await?;
    env.set_clock(t0 + 23 * HOUR + 55 * MIN).await?;
    command(&env.bob, &john, "!sb resolve").await?;
    env.set_clock(t0 + 24 * HOUR + 10 * MIN).await?;
    env.bob
        .wait_for_text(
            &john,
            "was not asked to rate this conversation: the channel's reply window had closed",
        )
        .await?;
    ensure!(
        fake.sent()
            .iter()
            .filter(|s| s.message["text"] == QUESTION)
            .count()
            == 1,
        "asked John outside the window"
    );
    Ok(())
}

/// On WhatsApp the five scores do not fit reply buttons (three at most): the question is an
/// interactive list whose rows are the choices; a tap on a row rates, once. A question that
/// would go out after the 24-hour customer-service window closed is not sent, and the room is
/// told.
async fn whatsapp_list_rates_once_and_the_reply_window_is_respected(
    backend: Backend,
) -> anyhow::Result<()> {
    use fakes::whatsapp::{now_secs, Customer, FakeWhatsApp};
    const HOUR: i64 = 60 * MIN;
    let mut steps = rig::Steps::new("WhatsApp list rates once, reply window respected");
    let fake = FakeWhatsApp::start().await?;
    let env = TestEnv::start(with_teams(
        BridgeOptions::default()
            .backend(backend)
            .channel("whatsapp", fake.channel_config()),
        json!({
            "support": {
                "members": ["@bob:localhost"],
                "leads": ["@alice:localhost"],
                "rules": [{"channel": "whatsapp"}],
                "csat": {"delay": "10m"},
            }
        }),
    ))
    .await?;
    // The network stamps messages with the real time: the bridge's clock starts there.
    let t0 = now_secs() * 1000;
    env.set_clock(t0).await?;
    let webhook = format!("{}/whatsapp/webhook", env.bridge.base_url());
    let deliver = |payload: Value| {
        let (fake, webhook) = (&fake, webhook.clone());
        async move {
            let status = fake.deliver(&webhook, &payload).await?;
            ensure!(status == 200, "webhook answered {status}");
            Ok::<_, anyhow::Error>(())
        }
    };
    let says = |who: &Customer, text: &str| {
        fake.message(who, json!({"type": "text", "text": {"body": text}}), None)
            .1
    };
    let answered = |text: &'static str| {
        let fake = &fake;
        async move {
            rig::poll_until("the answer sent", Duration::from_secs(30), || async {
                Ok(fake
                    .sent()
                    .iter()
                    .any(|(_, b)| b["text"]["body"] == text)
                    .then_some(()))
            })
            .await
        }
    };
    let questions = |to: &str| {
        fake.sent()
            .into_iter()
            .filter(|(_, b)| b["type"] == "interactive" && b["to"] == to)
            .count()
    };

    steps.step("Jane writes, Bob answers and resolves; after the delay the question is a list");
    let jane = Customer::new("4915112345678", "Jane Doe");
    deliver(says(&jane, "Is it in stock?")).await?;
    let room = env.bob.wait_for_invite("Jane Doe").await?;
    env.bob.wait_for_text(&room, "in stock").await?;
    env.bob.send_text(&room, "Yes, it is.").await?;
    answered("Yes, it is.").await?;
    command(&env.bob, &room, "!sb resolve").await?;
    env.set_clock(t0 + 11 * MIN).await?;
    let (question, body) = rig::poll_until("the question", Duration::from_secs(30), || async {
        Ok(fake
            .sent()
            .into_iter()
            .find(|(_, b)| b["type"] == "interactive"))
    })
    .await?;
    let list = &body["interactive"];
    ensure!(
        list["type"] == "list"
            && list["body"]["text"] == QUESTION
            && body["to"] == jane.wa_id.as_str(),
        "{body}"
    );
    let titles: Vec<&str> = list["action"]["sections"][0]["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["title"].as_str())
        .collect();
    ensure!(
        titles == ["1 ⭐", "2 ⭐⭐", "3 ⭐⭐⭐", "4 ⭐⭐⭐⭐", "5 ⭐⭐⭐⭐⭐"],
        "{body}"
    );
    env.bob
        .wait_for_text(&room, "⭐ Asked the customer to rate this conversation")
        .await?;

    steps.step("Jane taps 4: rated, not reopened; a second tap changes nothing");
    let (_, tap) = fake.tap(&jane, &question, 3)?;
    deliver(tap).await?;
    env.bob
        .wait_for_text(
            &room,
            "⭐ The customer rated this conversation 4/5 (about @bob:localhost)",
        )
        .await?;
    rig::poll_until("the thanks", Duration::from_secs(30), || async {
        Ok(fake
            .sent()
            .iter()
            .any(|(_, b)| {
                b["text"]["body"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Thank you for your rating"))
            })
            .then_some(()))
    })
    .await?;
    // A press, not a message: nothing the customer "wrote" shows in the room.
    ensure!(
        !env.bob
            .messages(&room)
            .iter()
            .any(|m| m.body.contains("⭐⭐⭐⭐") && !m.is_notice()),
        "the tap showed as a customer's message"
    );
    let (_, again) = fake.tap(&jane, &question, 0)?;
    deliver(again).await?;
    // The tap is stored and worked before this marker, which follows it on the same number.
    deliver(says(&jane, "Fast and friendly!")).await?;
    env.bob
        .wait_for_text(&room, "is the customer's comment on their rating (4/5)")
        .await?;
    let whois = command(&env.bob, &room, "!sb whois").await?;
    ensure!(
        whois.contains("rated 4/5") && whois.contains("state: resolved"),
        "{whois}"
    );
    ensure!(
        rated_events(&env, backend).await? == 1,
        "rated more than once"
    );

    steps.step(
        "John: resolved nearly a day after he wrote; by the end of the delay the window has closed",
    );
    let john = Customer::new("4915187654321", "John Doe");
    deliver(says(&john, "Where is my refund?")).await?;
    let john_room = env.bob.wait_for_invite("John Doe").await?;
    env.bob.wait_for_text(&john_room, "refund").await?;
    env.bob.send_text(&john_room, "Sent yesterday.").await?;
    answered("Sent yesterday.").await?;
    env.set_clock(t0 + 23 * HOUR + 55 * MIN).await?;
    command(&env.bob, &john_room, "!sb resolve").await?;
    env.set_clock(t0 + 24 * HOUR + 10 * MIN).await?;
    env.bob
        .wait_for_text(
            &john_room,
            "was not asked to rate this conversation: the channel's reply window had closed",
        )
        .await?;
    ensure!(questions(&john.wa_id) == 0, "asked John outside the window");
    ensure!(questions(&jane.wa_id) == 1, "Jane asked more than once");
    steps.finish()
}

/// On Discord the question carries five buttons (message components); a press reaches the
/// bridge as a gateway interaction, rates, and is answered within Discord's 3 seconds with
/// UPDATE_MESSAGE: the buttons disabled, the chosen one highlighted.
async fn discord_buttons_rate_and_the_press_is_answered_within_3_seconds(
    backend: Backend,
) -> anyhow::Result<()> {
    use fakes::discord::{DUser, FakeDiscord, TOKEN};
    let mut steps = rig::Steps::new("Discord buttons rate, the press answered within 3 s");
    let fake = FakeDiscord::start().await?;
    let env = TestEnv::start(with_teams(
        BridgeOptions::default().backend(backend).channel(
            "discord",
            json!({"enabled": true, "token": TOKEN, "api_url": fake.url(), "cdn_url": fake.cdn_url()}),
        ),
        json!({
            "support": {
                "members": ["@bob:localhost"],
                "leads": ["@alice:localhost"],
                "rules": [{"channel": "discord"}],
                "csat": {"delay": "10m"},
            }
        }),
    ))
    .await?;
    let lobby = join_lobby(&env, "support").await?;
    let t0 = utc(2026, 11, 24, 10, 0);
    env.set_clock(t0).await?;
    let jane = DUser::new(1_400_000_000_000_000_001, "jane_d", Some("Jane Doe"));

    steps.step(
        "Jane writes, Bob answers and resolves; after the delay the question has five buttons",
    );
    fake.customer_message(&jane, "My parcel is damaged", json!({}));
    let room = env.bob.wait_for_invite("Jane Doe").await?;
    env.bob.wait_for_text(&room, "parcel is damaged").await?;
    env.bob.send_text(&room, "We will replace it.").await?;
    let dm_messages = format!("/channels/{}/messages", jane.dm);
    fake.wait_for_call("POST", &dm_messages, |c| {
        c.str("content") == Some("We will replace it.")
    })
    .await?;
    command(&env.bob, &room, "!sb resolve").await?;
    env.set_clock(t0 + 11 * MIN).await?;
    let asked = fake
        .wait_for_call("POST", &dm_messages, |c| c.str("content") == Some(QUESTION))
        .await?;
    ensure!(asked.status == 200, "{asked:?}");
    let question = fake
        .bot_messages(&jane.dm)
        .into_iter()
        .find(|m| m["content"] == QUESTION)
        .context("the question is among the bot's messages")?;
    let buttons = question["components"][0]["components"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let labels: Vec<&str> = buttons.iter().filter_map(|b| b["label"].as_str()).collect();
    ensure!(
        labels == ["1 ⭐", "2 ⭐⭐", "3 ⭐⭐⭐", "4 ⭐⭐⭐⭐", "5 ⭐⭐⭐⭐⭐"],
        "{question}"
    );
    env.bob
        .wait_for_text(&room, "⭐ Asked the customer to rate this conversation")
        .await?;

    steps.step("Jane presses 2: answered in time with the buttons disabled; rated; leads alerted");
    let id = question["id"]
        .as_str()
        .context("the question's id")?
        .to_owned();
    let mark = env.alice.mark();
    let pressed = fake.press_button(&jane, &id, 1)?;
    let answer = fake.wait_for_answer(&pressed).await?;
    ensure!(
        answer.status == 204 && answer.kind == Some(7),
        "answered {} with type {:?}: {}",
        answer.status,
        answer.kind,
        answer.body
    );
    eprintln!(
        "discord: press answered {} ms after its delivery",
        answer.after.as_millis()
    );
    let now = fake.message(&id).context("the question")?;
    let after: Vec<(bool, u64)> = now["components"][0]["components"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| (b["disabled"] == true, b["style"].as_u64().unwrap_or(0)))
        .collect();
    ensure!(
        after == [(true, 2), (true, 1), (true, 2), (true, 2), (true, 2)],
        "the question after the press: {now}"
    );
    env.bob
        .wait_for_text(
            &room,
            "⭐ The customer rated this conversation 2/5 (about @bob:localhost)",
        )
        .await?;
    env.alice
        .wait_for_message_after(&lobby, mark, "the low-rating alert", |m| {
            m.body.contains("Low rating 2/5")
        })
        .await?;
    fake.wait_for_call("POST", &dm_messages, |c| {
        c.str("content")
            .is_some_and(|t| t.starts_with("Thank you for your rating"))
    })
    .await?;
    ensure!(
        fake.press_button(&jane, &id, 4).is_err(),
        "a disabled button cannot be pressed"
    );
    let whois = command(&env.bob, &room, "!sb whois").await?;
    ensure!(
        whois.contains("rated 2/5") && whois.contains("state: resolved"),
        "{whois}"
    );
    ensure!(
        rated_events(&env, backend).await? == 1,
        "rated more than once"
    );
    steps.finish()
}

/// On VK the question comes with an inline keyboard of `callback` buttons; a press arrives as a
/// `message_event`, is answered (`messages.sendMessageEventAnswer`) once stored, and rates once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vk_callback_buttons_rate_once() -> anyhow::Result<()> {
    use fakes::vk::{FakeVk, VkUser, CONFIRMATION, GROUP_ID, SECRET, TOKEN};
    let fake = FakeVk::start().await?;
    let env = TestEnv::start(with_teams(
        BridgeOptions::default().channel(
            "vk",
            json!({"enabled": true, "api_url": fake.api_url(), "access_token": TOKEN,
                   "group_id": GROUP_ID, "secret": SECRET, "confirmation": CONFIRMATION}),
        ),
        json!({
            "support": {
                "members": ["@bob:localhost"],
                "leads": ["@alice:localhost"],
                "rules": [{"channel": "vk"}],
                "csat": {"delay": "10m"},
            }
        }),
    ))
    .await?;
    let url = format!("{}/vk/callback", env.bridge.base_url());
    fake.set_callback_url(&url);
    let user = VkUser::new(228970688, "Иван", "Петров");
    fake.add_user(&user, None);
    let t0 = utc(2026, 11, 24, 10, 0);
    env.set_clock(t0).await?;
    let deliver = |event: Value| {
        let fake = &fake;
        let url = url.clone();
        async move {
            let (status, body) = fake.post_callback(&url, &event).await?;
            ensure!(
                status == 200 && body == "ok",
                "callback answered {status} {body:?}"
            );
            anyhow::Ok(())
        }
    };
    deliver(
        fake.message_new(&user, json!({"text": "Посылка повреждена"}))
            .0,
    )
    .await?;
    let room = env.bob.wait_for_invite("Иван Петров").await?;
    env.bob.wait_for_text(&room, "Посылка повреждена").await?;
    env.bob.send_text(&room, "Заменим.").await?;
    fake.wait_for_call("messages.send", |c| {
        c.ok() && c.str("message").as_deref() == Some("Заменим.")
    })
    .await?;
    command(&env.bob, &room, "!sb resolve").await?;

    // The question: messages.send with an inline keyboard, five callback buttons, worst first.
    env.set_clock(t0 + 11 * MIN).await?;
    let call = fake
        .wait_for_call("messages.send", |c| {
            c.str("message").as_deref() == Some(QUESTION)
        })
        .await?;
    ensure!(call.ok(), "{call:?}");
    let (cmid, _) = fake
        .community_messages(user.id)
        .into_iter()
        .find(|(_, m)| m["text"] == QUESTION)
        .ok_or_else(|| anyhow::anyhow!("the question is not among the community's messages"))?;
    let keyboard = fake.keyboard_of(user.id, cmid);
    ensure!(keyboard["inline"] == true, "{keyboard}");
    let labels: Vec<&str> = keyboard["buttons"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r[0]["action"]["label"].as_str())
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        labels == ["1 ⭐", "2 ⭐⭐", "3 ⭐⭐⭐", "4 ⭐⭐⭐⭐", "5 ⭐⭐⭐⭐⭐"],
        "{keyboard}"
    );

    // The customer presses 4: the rating shows in the room, the press is answered.
    let (press, event_id) = fake.press(&user, cmid, 3, 0)?;
    deliver(press).await?;
    env.bob
        .wait_for_text(
            &room,
            "⭐ The customer rated this conversation 4/5 (about @bob:localhost)",
        )
        .await?;
    rig::poll_until("the press answered", Duration::from_secs(30), || async {
        Ok(fake.answered_events().contains(&event_id).then_some(()))
    })
    .await?;

    // Pressing 1 later: answered, the rating stays 4.
    let (again, again_id) = fake.press(&user, cmid, 0, 0)?;
    deliver(again).await?;
    rig::poll_until(
        "the second press answered",
        Duration::from_secs(30),
        || async { Ok(fake.answered_events().contains(&again_id).then_some(())) },
    )
    .await?;
    let whois = command(&env.bob, &room, "!sb whois").await?;
    ensure!(whois.contains("rated 4/5"), "{whois}");
    let rated = rated_events(&env, Backend::Sqlite).await?;
    ensure!(rated == 1, "{rated} rated events");
    Ok(())
}

/// On Viber the question comes with a keyboard of `reply` buttons; a press arrives as the
/// customer's text (the button's `ActionBody`) and rates; a typed look-alike with a nonce the
/// bridge never sent changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viber_keyboard_rates_once() -> anyhow::Result<()> {
    use fakes::viber::{FakeViber, BOT_NAME, TOKEN};
    let fake = FakeViber::start().await?;
    let env = TestEnv::start(with_teams(
        BridgeOptions::default().channel(
            "viber",
            json!({"enabled": true, "api_url": fake.api_url(), "auth_token": TOKEN, "bot_name": BOT_NAME}),
        ),
        json!({
            "support": {
                "members": ["@bob:localhost"],
                "leads": ["@alice:localhost"],
                "rules": [{"channel": "viber"}],
                "csat": {"delay": "10m"},
            }
        }),
    ))
    .await?;
    let url = format!("{}/viber/callback", env.bridge.base_url());
    rig::poll_until("set_webhook", Duration::from_secs(30), || async {
        Ok(fake.webhook())
    })
    .await?;
    let user = fake.user("01234567890A=", "John McClane", None);
    let deliver = |event: Value| {
        let fake = &fake;
        let url = url.clone();
        async move {
            let status = fake.post_callback(&url, &event).await?;
            ensure!(status == 200, "callback answered {status}");
            anyhow::Ok(())
        }
    };
    let t0 = utc(2026, 11, 24, 10, 0);
    env.set_clock(t0).await?;
    deliver(
        fake.message(
            &user,
            json!({"type": "text", "text": "My parcel is damaged"}),
        )
        .0,
    )
    .await?;
    let room = env.bob.wait_for_invite("John McClane").await?;
    env.bob.wait_for_text(&room, "parcel is damaged").await?;
    env.bob.send_text(&room, "We will replace it.").await?;
    fake.wait_for_call("send_message", |c| {
        c.status == 0 && c.body["text"] == "We will replace it."
    })
    .await?;
    command(&env.bob, &room, "!sb resolve").await?;

    // The question: a text message with a keyboard of five reply buttons, worst first.
    env.set_clock(t0 + 11 * MIN).await?;
    let call = fake
        .wait_for_call("send_message", |c| c.body["text"] == QUESTION)
        .await?;
    ensure!(call.status == 0, "{call:?}");
    let keyboard = fake.shown_keyboard(&user);
    let labels: Vec<&str> = keyboard["Buttons"]
        .as_array()
        .map(|b| b.iter().filter_map(|b| b["Text"].as_str()).collect())
        .unwrap_or_default();
    ensure!(
        labels == ["1 ⭐", "2 ⭐⭐", "3 ⭐⭐⭐", "4 ⭐⭐⭐⭐", "5 ⭐⭐⭐⭐⭐"],
        "{keyboard}"
    );

    // A forged payload typed by hand: not a rating, and not shown as if it were.
    deliver(
        fake.message(
            &user,
            json!({"type": "text", "text": "sbr1:Forged00Nonce000:5"}),
        )
        .0,
    )
    .await?;
    let whois = command(&env.bob, &room, "!sb whois").await?;
    ensure!(whois.contains("rating asked, no answer yet"), "{whois}");

    // The customer presses 4.
    deliver(fake.press(&user, 3)?.0).await?;
    env.bob
        .wait_for_text(
            &room,
            "⭐ The customer rated this conversation 4/5 (about @bob:localhost)",
        )
        .await?;
    let whois = command(&env.bob, &room, "!sb whois").await?;
    ensure!(whois.contains("rated 4/5"), "{whois}");
    let rated = rated_events(&env, Backend::Sqlite).await?;
    ensure!(rated == 1, "{rated} rated events");
    Ok(())
}
