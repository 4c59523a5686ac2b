//! Customers across channels: the same person writing on WhatsApp, by SMS and on the web chat is
//! one customer — linked automatically by their E.164 phone number or email address, or by an
//! operator — so sticky routing, segment tags and `whois` follow them from channel to channel.
//!
//! Real Synapse, operators as real Matrix clients, the real `switchboard` binary; WhatsApp and
//! Twilio are the wire-level fakes of `tests/fakes/`, the web chat its real JSON API. The bridge's
//! routing clock is moved by the test. Runs on SQLite and on PostgreSQL.

mod fakes;
#[macro_use]
mod rig;

use anyhow::ensure;
use fakes::twilio::FakeTwilio;
use fakes::whatsapp::{Customer, FakeWhatsApp};
use rig::{command, utc, Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};

/// Jane's phone, as WhatsApp reports it (wa_id: digits, no `+`) and in E.164.
const JANE_WA_ID: &str = "4915112345678";
const JANE_PHONE: &str = "+4915112345678";
const JANE_EMAIL: &str = "jane@shop.example";

/// Teams: `b2b` (Bob) takes customers tagged `wholesale`, on any channel; `retail` (Alice,
/// weekdays 09–17 UTC) takes WhatsApp, SMS and web chat. `b2b` comes first: the first team
/// whose rules match wins.
fn options(backend: Backend, whatsapp: &FakeWhatsApp, twilio: &FakeTwilio) -> BridgeOptions {
    let teams = json!({
        "b2b": {
            "members": ["@bob:localhost"],
            "rules": [{"tags": ["wholesale"]}],
        },
        "retail": {
            "members": ["@alice:localhost"],
            "hours": {"mon-fri": "09:00-17:00"},
            "rules": [{"channel": "whatsapp"}, {"channel": "sms"}, {"channel": "webchat"}],
        },
    });
    BridgeOptions::default()
        .backend(backend)
        .channel("whatsapp", whatsapp.channel_config())
        .channel("sms", twilio.channel_config("DE"))
        .edit_config(move |config| {
            let yaml = |v: &Value| serde_yaml::to_value(v).unwrap_or(serde_yaml::Value::Null);
            if let Some(map) = config.as_mapping_mut() {
                map.insert("teams".into(), yaml(&teams));
                map.insert("testing".into(), yaml(&json!({"clock_control": true})));
            }
        })
}

on_both_stores!(one_customer_across_channels);

async fn one_customer_across_channels(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("one customer across channels");
    let whatsapp = FakeWhatsApp::start().await?;
    let twilio = FakeTwilio::start().await?;
    let env = TestEnv::start(options(backend, &whatsapp, &twilio)).await?;
    let bridge = env.bridge.base_url();
    steps.step("Monday 23 Nov 2026, 10:00 UTC: Alice is on shift");
    env.set_clock(utc(2026, 11, 23, 10, 0)).await?;

    // Jane writes on WhatsApp: a retail conversation, shown to Alice only; Alice takes it.
    steps.step("Jane writes on WhatsApp: a retail conversation, shown to Alice only");
    let jane = Customer::new(JANE_WA_ID, "Jane Doe");
    let (_, payload) = whatsapp.message(
        &jane,
        json!({"type": "text", "text": {"body": "Hello from WhatsApp"}}),
        None,
    );
    let status = whatsapp
        .deliver(&format!("{bridge}/whatsapp/webhook"), &payload)
        .await?;
    ensure!(status == 200, "webhook answered {status}");
    let wa_room = env.alice.wait_for_invite("(whatsapp)").await?;
    env.alice
        .wait_for_text(&wa_room, "Hello from WhatsApp")
        .await?;
    let claimed = command(&env.alice, &wa_room, "!sb claim").await?;
    ensure!(claimed.contains("claimed"), "{claimed}");

    // The same phone number by SMS: one customer, so the conversation sticks to Alice, who
    // handled her last, and `whois` says where else she writes.
    steps.step("The same phone number by SMS: one customer, sticky to Alice, and `whois` lists her other channels");
    twilio
        .incoming(&bridge, JANE_PHONE, "Hello by SMS", vec![])
        .await?;
    let sms_room = env.alice.wait_for_invite("(sms)").await?;
    env.alice.wait_for_text(&sms_room, "Hello by SMS").await?;
    let whois = command(&env.alice, &sms_room, "!sb whois").await?;
    ensure!(
        whois.contains("owner: @alice:localhost") && whois.contains("team: retail"),
        "not sticky to Alice across channels: {whois}"
    );
    ensure!(
        whois.contains("also on whatsapp Jane Doe") && whois.contains(&wa_room),
        "whois does not link the WhatsApp conversation: {whois}"
    );
    ensure!(
        rig::membership(&env.alice.memberships(&sms_room).await?, env.bob.user_id()).is_none(),
        "Bob sees a conversation owned by Alice"
    );

    steps.step(
        "Alice tags her as a wholesale customer; the answer says where her new conversations go",
    );
    let tagged = command(&env.alice, &sms_room, "!sb tag Wholesale").await?;
    ensure!(
        tagged.contains("wholesale") && tagged.contains("team b2b"),
        "{tagged}"
    );
    let refused = command(&env.alice, &sms_room, "!sb tag two<words>").await?;
    ensure!(refused.contains("is not a tag"), "{refused}");

    steps.step("On the web chat she gives her email, which no other contact has: a separate customer until Alice links them by phone number");
    let visitor = env.visitor("Jane D.", JANE_EMAIL).await?;
    visitor.send("Hi from the website").await?;
    let web_room = env.alice.wait_for_invite("Jane D.").await?;
    env.alice
        .wait_for_text(&web_room, "Hi from the website")
        .await?;
    let whois = command(&env.alice, &web_room, "!sb whois").await?;
    ensure!(!whois.contains("also on"), "linked too early: {whois}");
    let linked = command(&env.alice, &web_room, &format!("!sb link {JANE_PHONE}")).await?;
    ensure!(
        linked.contains("Linked by @alice:localhost")
            && ["sms", "webchat", "whatsapp"]
                .iter()
                .all(|c| linked.contains(c)),
        "{linked}"
    );
    let contact = command(&env.alice, &web_room, "!sb contact").await?;
    for expected in [
        "whatsapp: Jane Doe",
        JANE_PHONE,
        "webchat: Jane D.",
        JANE_EMAIL,
        "this room",
        &wa_room,
        &sms_room,
        "tags: wholesale",
        "last handled by @alice:localhost",
    ] {
        ensure!(
            contact.contains(expected),
            "`{expected}` missing from: {contact}"
        );
    }

    steps.step("The SMS number turns out to be shared (her office): unlinked, and a new SMS does not link it again automatically");
    let unlinked = command(&env.alice, &sms_room, "!sb unlink").await?;
    ensure!(unlinked.contains("Unlinked"), "{unlinked}");
    twilio
        .incoming(&bridge, JANE_PHONE, "Still the office phone", vec![])
        .await?;
    env.alice
        .wait_for_text(&sms_room, "Still the office phone")
        .await?;
    let whois = command(&env.alice, &sms_room, "!sb whois").await?;
    ensure!(!whois.contains("also on"), "relinked after unlink: {whois}");
    let whois = command(&env.alice, &wa_room, "!sb whois").await?;
    ensure!(
        whois.contains("also on webchat Jane D.") && !whois.contains(&sms_room),
        "{whois}"
    );

    // Saturday: Alice is off shift. Jane opens a new web chat with the same email: linked by
    // address to the tagged customer, so the wholesale team gets it, and Bob, not Alice, sees it.
    steps.step("Saturday: Alice is off shift");
    env.set_clock(utc(2026, 11, 28, 12, 0)).await?;
    let weekend = env.visitor("Jane", JANE_EMAIL).await?;
    weekend.send("Weekend order for 40 boxes").await?;
    let b2b_room = env
        .bob
        .wait_for_invite_where("Jane's weekend web chat", |i| {
            i.name.as_deref() == Some("Jane (webchat)")
        })
        .await?
        .room_id;
    env.bob.join(&b2b_room).await?;
    env.bob
        .wait_for_text(&b2b_room, "Weekend order for 40 boxes")
        .await?;
    let whois = command(&env.bob, &b2b_room, "!sb whois").await?;
    ensure!(
        whois.contains("team: b2b")
            && whois.contains("owner: nobody")
            && whois.contains("tags: wholesale")
            && whois.contains("also on"),
        "{whois}"
    );
    ensure!(
        rig::membership(&env.bob.memberships(&b2b_room).await?, env.alice.user_id()).is_none(),
        "Alice (off shift, another team) sees the wholesale conversation"
    );
    steps.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untagging_and_permissions() -> anyhow::Result<()> {
    let whatsapp = FakeWhatsApp::start().await?;
    let twilio = FakeTwilio::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &whatsapp, &twilio)).await?;
    env.set_clock(utc(2026, 11, 23, 10, 0)).await?;
    twilio
        .incoming(&env.bridge.base_url(), "+4930123456", "Guten Tag", vec![])
        .await?;
    let room = env.alice.wait_for_invite("(sms)").await?;
    env.alice.wait_for_text(&room, "Guten Tag").await?;
    let tagged = command(&env.alice, &room, "!sb tag vip wholesale").await?;
    ensure!(tagged.contains("vip, wholesale"), "{tagged}");
    let untagged = command(&env.alice, &room, "!sb untag vip").await?;
    ensure!(
        untagged.contains("wholesale") && !untagged.contains("vip"),
        "{untagged}"
    );
    // Someone who is not an operator of this bridge cannot tag.
    let mallory = env.new_operator("mallory", "mallory-password").await?;
    env.alice.invite(&room, mallory.user_id()).await?;
    mallory.join(&room).await?;
    let refused = command(&mallory, &room, "!sb tag spam").await?;
    ensure!(refused.contains("needs operator rights"), "{refused}");
    let contact = command(&env.alice, &room, "!sb contact").await?;
    ensure!(
        contact.contains("tags: wholesale") && !contact.contains("spam"),
        "{contact}"
    );
    // An answer after the commands reaches the customer, and it is the only thing that does
    // (replies go out in order: a relayed command would have been sent before it).
    env.alice.send_text(&room, "Danke, bis bald").await?;
    twilio
        .wait_for_create(|c| {
            c.param("Body")
                .is_some_and(|b| b.contains("Danke, bis bald"))
        })
        .await?;
    let bodies: Vec<String> = twilio
        .creates()
        .iter()
        .map(|c| c.param("Body").unwrap_or_default().to_string())
        .collect();
    ensure!(
        bodies.len() == 1 && !bodies.iter().any(|b| b.contains("!sb")),
        "a command reached the customer: {bodies:?}"
    );
    Ok(())
}
