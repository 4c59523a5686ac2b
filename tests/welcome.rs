//! The web chat's first impression (issue 19) and its rating stars (issue 20), as a visitor
//! meets them: the real widget in headless Chromium on the demo page, the real bridge on
//! SQLite and PostgreSQL, a real Synapse, operators answering through a real Matrix client.
//! The bridge's clock is moved by the test (never slept for): the team's hours and its answer
//! times are the test's own.

#[macro_use]
mod rig;

use std::time::Duration;

use anyhow::{ensure, Context};
use rig::{command, utc, Backend, BridgeOptions, Browser, TestEnv};
use serde_json::{json, Value};

on_both_stores!(
    the_opened_widget_greets_says_when_the_team_answers_and_asks_for_an_email_out_of_hours,
    stars_in_the_widget_rate_the_conversation_and_the_comment_follows,
    the_conversation_continues_by_email_when_the_visitor_has_left,
);

const MIN: i64 = 60_000;
const WAIT: Duration = Duration::from_secs(30);
const QUESTION: &str = "How would you rate our help?";

/// The test clock, one team for the web chat working Monday to Friday 09:00–18:00 UTC, and
/// greetings in English and Russian.
fn options(backend: Backend, team: Value) -> BridgeOptions {
    let teams: serde_yaml::Value =
        serde_yaml::to_value(json!({ "support": team })).unwrap_or_default();
    BridgeOptions::default()
        .backend(backend)
        .webchat(json!({
            "greeting": "Hi!",
            "greetings": {
                "en": "Hello! How can we help?",
                "ru": "Здравствуйте! Чем помочь?",
            },
        }))
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

/// JavaScript that reads something inside the widget's shadow root.
fn in_widget(expr: &str) -> String {
    format!("(() => {{ const root = document.querySelector('switchboard-webchat').shadowRoot; return {expr}; }})()")
}

/// A browser reading `locale` opens the widget on the demo page.
async fn open_widget(env: &TestEnv, locale: &str) -> anyhow::Result<Browser> {
    let mut browser = Browser::launch_with_locale(Some(locale)).await?;
    browser.goto(&format!("{}/demo", env.webchat_url())).await?;
    browser.click("[data-testid=launcher]").await?;
    browser.wait_for("[data-testid=panel]", None, WAIT).await?;
    Ok(browser)
}

async fn the_opened_widget_greets_says_when_the_team_answers_and_asks_for_an_email_out_of_hours(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("the web chat's first impression");
    let env = TestEnv::start(options(
        backend,
        json!({
            "members": ["@bob:localhost"],
            "rules": [{"channel": "webchat"}],
            "timezone": "UTC",
            "hours": {"mon-fri": "09:00-18:00"},
        }),
    ))
    .await?;
    // Tuesday 24 November 2026, 10:00 UTC: the team works.
    let t0 = utc(2026, 11, 24, 10, 0);
    env.set_clock(t0).await?;

    steps.step("Bob answers three visitors after 4, 7 and 9 minutes");
    let mut visitors = Vec::new();
    for name in ["Ann One", "Ben Two", "Cid Three"] {
        let visitor = env
            .visitor(name, &format!("{}@example.com", name.replace(' ', ".")))
            .await?;
        visitor.send("Hello, a question").await?;
        let room = env.bob.wait_for_invite(name).await?;
        env.bob.wait_for_text(&room, "a question").await?;
        visitors.push((visitor, room));
    }
    for ((visitor, room), minutes) in visitors.iter().zip([4, 7, 9]) {
        env.set_clock(t0 + minutes * MIN).await?;
        env.bob.send_text(room, "Here is the answer").await?;
        visitor.wait_for_agent_text("Here is the answer").await?;
    }

    steps.step(
        "A Russian reader opens the widget: greeted in Russian, online, answers within 10 minutes",
    );
    let mut ru = open_widget(&env, "ru-RU").await?;
    ru.wait_for(
        "[data-testid=greeting]",
        Some("Здравствуйте! Чем помочь?"),
        WAIT,
    )
    .await?;
    ensure!(
        ru.eval(&in_widget(
            "root.querySelector('[data-testid=greeting]').lang"
        ))
        .await?
            == "ru",
        "the greeting says its language"
    );
    let status = "[data-testid=availability]";
    ru.wait_for(status, Some("usually answers within 10 minutes"), WAIT)
        .await?;
    let said = ru.text(status).await?;
    ensure!(said.starts_with("We are online"), "{said}");
    ensure!(
        !ru.is_visible("[data-testid=offline]").await?,
        "no offline form in working hours"
    );
    ru.close().await?;

    steps.step("An English reader gets the English greeting; a French one the default");
    let mut en = open_widget(&env, "en-GB").await?;
    en.wait_for(
        "[data-testid=greeting]",
        Some("Hello! How can we help?"),
        WAIT,
    )
    .await?;
    en.close().await?;
    let mut fr = open_widget(&env, "fr-FR").await?;
    fr.wait_for("[data-testid=greeting]", Some("Hi!"), WAIT)
        .await?;
    fr.close().await?;

    steps.step("Saturday noon: away, back Monday 09:00, and the widget asks for an e-mail");
    env.set_clock(utc(2026, 11, 28, 12, 0)).await?;
    let mut browser = open_widget(&env, "en-US").await?;
    browser
        .wait_for(status, Some("We are away right now"), WAIT)
        .await?;
    let said = browser.text(status).await?;
    ensure!(
        said.contains("back ") && said.contains("usually answers within 10 minutes"),
        "{said}"
    );
    let next_open = browser
        .attr(status, "data-next-open")
        .await?
        .context("the next opening")?;
    ensure!(
        next_open == utc(2026, 11, 30, 9, 0).to_string(),
        "back on Monday 09:00 UTC, said {next_open}"
    );
    browser
        .wait_for("[data-testid=offline]", Some("Leave your e-mail"), WAIT)
        .await?;
    ensure!(
        browser
            .attr("[data-testid=offline-email]", "aria-label")
            .await?
            .is_some_and(|l| l.contains("e-mail")),
        "the e-mail field has a name for screen readers"
    );
    screenshot(&mut browser, "offline.png").await?;

    steps.step("An invalid address is refused in the page; a valid one is saved");
    browser
        .fill("[data-testid=offline-email]", "not an address")
        .await?;
    browser
        .press("[data-testid=offline-email]", "Enter")
        .await?;
    browser
        .wait_for("[data-testid=error]", Some("valid e-mail"), WAIT)
        .await?;
    browser
        .fill("[data-testid=offline-email]", "dora@example.com")
        .await?;
    browser
        .press("[data-testid=offline-email]", "Enter")
        .await?;
    browser
        .wait_for(
            "[data-testid=offline-saved]",
            Some("We will answer at dora@example.com"),
            WAIT,
        )
        .await?;

    steps.step("The visitor writes: the team sees the address to answer to");
    browser.fill("[data-testid=name]", "Dora Late").await?;
    browser
        .fill("[data-testid=input]", "Do you ship to Norway?")
        .await?;
    browser.click("[data-testid=send]").await?;
    let room = env.bob.wait_for_invite("Dora Late").await?;
    env.bob.wait_for_text(&room, "ship to Norway").await?;
    let contact = command(&env.bob, &room, "!sb contact").await?;
    ensure!(contact.contains("dora@example.com"), "{contact}");
    Ok(())
}

async fn stars_in_the_widget_rate_the_conversation_and_the_comment_follows(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("stars in the web chat widget");
    let env = TestEnv::start(options(
        backend,
        json!({
            "members": ["@bob:localhost"],
            "rules": [{"channel": "webchat"}],
            "csat": {"delay": "5m"},
        }),
    ))
    .await?;
    let t0 = utc(2026, 11, 24, 10, 0);
    env.set_clock(t0).await?;

    steps.step("A visitor writes in the widget, Bob answers and resolves");
    let mut browser = open_widget(&env, "en-US").await?;
    browser.fill("[data-testid=name]", "Rita Rater").await?;
    browser
        .fill("[data-testid=input]", "Where is my parcel?")
        .await?;
    browser.click("[data-testid=send]").await?;
    let room = env.bob.wait_for_invite("Rita Rater").await?;
    env.bob.wait_for_text(&room, "my parcel").await?;
    env.bob.send_text(&room, "It arrives tomorrow.").await?;
    browser
        .wait_for("[data-from=agent]", Some("arrives tomorrow"), WAIT)
        .await?;
    let resolved = command(&env.bob, &room, "!sb resolve").await?;
    ensure!(resolved.contains("Resolved"), "{resolved}");

    steps.step("After the team's delay the widget shows the question with five stars");
    env.set_clock(t0 + 6 * MIN).await?;
    browser
        .wait_for("[data-testid=rating-question]", Some(QUESTION), WAIT)
        .await?;
    let stars = browser.count("[data-testid=rating-star]").await?;
    ensure!(stars == 5, "{stars} stars");
    let labels = browser
        .eval(&in_widget(
            "[...root.querySelectorAll('[data-testid=rating-star]')].map(s => s.getAttribute('aria-label')).join('|')",
        ))
        .await?;
    ensure!(
        labels == "1 star|2 stars|3 stars|4 stars|5 stars",
        "stars named for screen readers: {labels}"
    );
    screenshot(&mut browser, "rating.png").await?;

    steps.step("The visitor picks 4 stars with the keyboard: rated 4/5 in the room, once");
    browser
        .press("[data-testid=rating-star][data-score=\"4\"]", "Enter")
        .await?;
    env.bob
        .wait_for_text(&room, "rated this conversation 4/5")
        .await?;
    browser
        .wait_for("[data-testid=rating-done]", Some("4 of 5"), WAIT)
        .await?;
    let disabled = browser
        .eval(&in_widget(
            "[...root.querySelectorAll('[data-testid=rating-star]')].every(s => s.disabled)",
        ))
        .await?;
    ensure!(disabled == true, "no second rating from the same stars");

    steps.step("The comment box follows; the comment reaches the room as the rating's comment");
    browser
        .fill("[data-testid=rating-comment]", "Quick and kind")
        .await?;
    // Bob writes while the visitor is typing: the widget draws the new message (and what was
    // seen) while the comment is half written, and the comment must survive it (it used to be
    // wiped by that redraw, and the Send then sent nothing).
    env.bob.send_text(&room, "Anything else I can do?").await?;
    browser
        .wait_for(
            "[data-testid=message]",
            Some("Anything else I can do?"),
            WAIT,
        )
        .await?;
    let draft = browser
        .eval(&in_widget(
            "root.querySelector('[data-testid=rating-comment]').value",
        ))
        .await?;
    ensure!(
        draft == "Quick and kind",
        "the comment being typed was wiped by a redraw: {draft}"
    );
    browser.click("[data-testid=rating-comment-send]").await?;
    env.bob.wait_for_text(&room, "Quick and kind").await?;
    env.bob
        .wait_for_text(&room, "comment on their rating (4/5)")
        .await?;
    browser
        .wait_for("[data-testid=rating-comment-sent]", None, WAIT)
        .await?;
    let whois = command(&env.bob, &room, "!sb whois").await?;
    ensure!(
        whois.contains("state: resolved"),
        "the comment did not reopen: {whois}"
    );

    steps.step("A reload shows the chosen stars from the transcript");
    browser.reload().await?;
    browser.click("[data-testid=launcher]").await?;
    browser
        .wait_for("[data-testid=rating][data-score=\"4\"]", None, WAIT)
        .await?;

    steps.step("Another score, or a payload made up by hand, changes nothing");
    let token = browser
        .eval("JSON.parse(Object.entries(localStorage).find(([k]) => k.startsWith('switchboard-webchat:'))[1]).token")
        .await?;
    let token = token.as_str().context("the widget's token")?.to_string();
    let http = reqwest::Client::new();
    let history: Value = http
        .get(format!("{}/api/v1/messages", env.webchat_url()))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let rating = history["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["type"] == "rating"))
        .cloned()
        .context("the rating in the history")?;
    let two = rating["choices"][1]["payload"].as_str().unwrap_or_default();
    let again = http
        .post(format!("{}/api/v1/rating", env.webchat_url()))
        .bearer_auth(&token)
        .json(&json!({ "payload": two }))
        .send()
        .await?;
    ensure!(again.status() == 422, "a second score: {}", again.status());
    let forged = http
        .post(format!("{}/api/v1/rating", env.webchat_url()))
        .bearer_auth(&token)
        .json(&json!({ "payload": "sbr1:madeUpNonce:1" }))
        .send()
        .await?;
    ensure!(
        forged.status() == 404,
        "a forged payload: {}",
        forged.status()
    );
    let ratings = env
        .bob
        .messages(&room)
        .iter()
        .filter(|m| m.body.contains("rated this conversation"))
        .count();
    ensure!(ratings == 1, "{ratings} ratings in the room");
    Ok(())
}

async fn screenshot(browser: &mut Browser, name: &str) -> anyhow::Result<()> {
    if let Some(dir) = std::env::var_os("SWITCHBOARD_SCREENSHOTS") {
        std::fs::create_dir_all(&dir)?;
        browser
            .screenshot(&std::path::Path::new(&dir).join(name))
            .await?;
    }
    Ok(())
}

/// The conversation continues by e-mail when the visitor has left (issue 19): with
/// `bridge.continue_by` set to the e-mail channel, an operator's answer to a web chat visitor
/// who has no chat page open (for `away_after_secs`) and gave an address goes out as a mail
/// from the support mailbox (real Postfix, read from the customer's real maildir); the room
/// says so; the visitor's reply by mail lands in the same room. A visitor with the chat open
/// gets the answer in the chat, not by mail.
async fn the_conversation_continues_by_email_when_the_visitor_has_left(
    backend: Backend,
) -> anyhow::Result<()> {
    use rig::mail::MailServer;
    let mut steps = rig::Steps::new("the conversation continues by e-mail");
    let mail = MailServer::start().await?;
    let env = TestEnv::start(
        BridgeOptions::default()
            .backend(backend)
            .channel("email", mail.channel_config())
            .webchat(json!({ "away_after_secs": 1 }))
            .edit_config(|c| {
                if let Some(bridge) = c.get_mut("bridge").and_then(|b| b.as_mapping_mut()) {
                    bridge.insert(
                        "continue_by".into(),
                        serde_yaml::to_value(json!({
                            "channel": "email",
                            "account": "support",
                            "subject": "Our answer to your chat",
                        }))
                        .unwrap_or_default(),
                    );
                }
            }),
    )
    .await?;

    steps.step("A visitor with the chat open is answered in the chat");
    let live = env.visitor("Liv Live", "colleague@example.test").await?;
    live.send("Are you there?").await?;
    let live_room = env.alice.wait_for_invite("Liv Live").await?;
    env.alice
        .wait_for_text(&live_room, "Are you there?")
        .await?;
    let stream = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/events?token={}",
            env.webchat_url(),
            live.token
        ))
        .send()
        .await?;
    ensure!(stream.status().is_success(), "{}", stream.status());
    tokio::time::sleep(Duration::from_millis(1500)).await; // longer than away_after_secs
    env.alice.send_text(&live_room, "Yes, here!").await?;
    live.wait_for_agent_text("Yes, here!").await?;

    steps.step("A visitor who left: the answer goes by e-mail and the room says so");
    let gone = env.visitor("Vera Visitor", "customer@example.test").await?;
    gone.send("Can you call me back tomorrow?").await?;
    let room = env.alice.wait_for_invite("Vera Visitor").await?;
    env.alice.wait_for_text(&room, "call me back").await?;
    env.alice
        .send_text(&room, "We will call you at 10.")
        .await?;
    let answer = mail
        .wait_for_mail("customer", "We will call you at 10.")
        .await?;
    let text = String::from_utf8_lossy(&answer).to_string();
    ensure!(
        text.contains("Subject: Our answer to your chat"),
        "the first mail's subject: {text}"
    );
    env.alice
        .wait_for_text(
            &room,
            "Sent by email to customer@example.test: the customer had left the chat.",
        )
        .await?;

    steps.step("Her reply by e-mail lands in the same room");
    let answer_id = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Message-ID:")
                .or_else(|| l.strip_prefix("Message-Id:"))
        })
        .map(|v| v.trim().to_string())
        .context("the answer's Message-ID")?;
    let reply = format!(
        "From: Vera Visitor <customer@example.test>\r\nTo: support@example.test\r\n\
         Subject: Re: Our answer to your chat\r\nMessage-ID: <vera-reply-1@example.test>\r\n\
         In-Reply-To: {answer_id}\r\nReferences: {answer_id}\r\n\
         Date: Mon, 3 Mar 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n10 is fine, thanks!\r\n"
    );
    mail.smtp_send(
        "customer@example.test",
        &["support@example.test"],
        reply.as_bytes(),
    )
    .await?;
    env.alice
        .wait_for_text(&room, "10 is fine, thanks!")
        .await?;
    ensure!(
        env.rooms_named("Vera Visitor").await?.len() == 1,
        "one room for the chat and its e-mail"
    );
    ensure!(
        mail.fetch_all("colleague")?
            .iter()
            .all(|m| !String::from_utf8_lossy(m).contains("Yes, here!")),
        "the live visitor got no mail"
    );
    drop(stream);
    Ok(())
}
