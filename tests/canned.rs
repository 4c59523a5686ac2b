//! Canned replies as operators use them: stored with `!sb canned`, sent with `!sb t <name>` or
//! `::name` inside a message, filled in for the conversation, chosen by the customer's language,
//! refused (and nothing sent) when a variable has no value, and guarded by scope: a team's reply
//! is changed by its leads and admins only. Operators are real Matrix clients; the customer is a
//! web chat visitor; both stores.

#[macro_use]
mod rig;

use anyhow::ensure;
use rig::{command, Backend, BridgeOptions, TestEnv};
use serde_json::json;

on_both_stores!(canned_replies_reach_the_customer_filled_in_and_refuse_what_cannot_be_filled);

fn options(backend: Backend) -> BridgeOptions {
    let teams: serde_yaml::Value = serde_yaml::to_value(json!({
        "support": {
            "members": ["@bob:localhost"],
            "leads": ["@alice:localhost"],
            "rules": [{"channel": "webchat"}],
        }
    }))
    .unwrap_or_default();
    BridgeOptions::default()
        .backend(backend)
        .edit_config(move |c| {
            if let Some(map) = c.as_mapping_mut() {
                map.insert("teams".into(), teams.clone());
                if let Some(bridge) = map.get_mut("bridge").and_then(|b| b.as_mapping_mut()) {
                    bridge.insert("company".into(), "ACME Tools".into());
                }
            }
        })
}

/// The customer's agent messages so far (texts), oldest first.
async fn agent_texts(visitor: &rig::Visitor) -> anyhow::Result<Vec<String>> {
    Ok(visitor
        .refresh()
        .await?
        .iter()
        .filter(|e| e["type"] == "message" && e["from"] == "agent")
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect())
}

async fn canned_replies_reach_the_customer_filled_in_and_refuse_what_cannot_be_filled(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("canned replies");
    let env = TestEnv::start(options(backend)).await?;
    env.bob
        .client()
        .account()
        .set_display_name(Some("Bob Builder"))
        .await?;
    let visitor = env.visitor("Anna Petrova", "anna@example.com").await?;
    visitor.send("Hello, is anyone there?").await?;
    let room = env.alice.wait_for_invite("Anna Petrova").await?;
    env.alice.join(&room).await?;
    let bob_room = env.bob.wait_for_invite("Anna Petrova").await?;
    ensure!(bob_room == room);
    env.bob.join(&room).await?;

    steps.step("Alice, the support team's lead, stores the team's greeting in two languages");
    let added = command(
        &env.alice,
        &room,
        "!sb canned add greeting scope=support Hello {{ first_name }}, this is {{ operator_name }} from {{ company }}.",
    )
    .await?;
    ensure!(added.contains("`greeting` added (team support)"), "{added}");
    let added = command(
        &env.alice,
        &room,
        "!sb canned add greeting scope=support lang=ru Здравствуйте, {{ first_name }}! Это {{ operator_name }}, {{ company }}.",
    )
    .await?;
    ensure!(added.contains("(ru) added"), "{added}");

    steps.step("Bob sends it: the customer gets it filled in for her");
    let sent = command(&env.bob, &room, "!sb t greeting").await?;
    ensure!(
        sent.contains("> Hello Anna, this is Bob Builder from ACME Tools."),
        "the room sees what went out: {sent}"
    );
    visitor
        .wait_for_agent_text("Hello Anna, this is Bob Builder from ACME Tools.")
        .await?;

    steps.step("Tagged as a Russian speaker, she gets the Russian variant");
    let tagged = command(&env.bob, &room, "!sb tag lang-ru").await?;
    ensure!(tagged.contains("lang-ru"), "{tagged}");
    command(&env.bob, &room, "!sb t greeting").await?;
    visitor
        .wait_for_agent_text("Здравствуйте, Anna! Это Bob Builder, ACME Tools.")
        .await?;

    steps.step("A reply with a variable nobody gave is not sent, and says which one");
    let added = command(
        &env.alice,
        &room,
        "!sb canned add shipped scope=everyone Your order {{ order }} has shipped, {{ first_name }}.",
    )
    .await?;
    ensure!(added.contains("added (everyone)"), "{added}");
    let refused = command(&env.bob, &room, "!sb t shipped").await?;
    ensure!(
        refused.starts_with("Not sent") && refused.contains("`order`"),
        "{refused}"
    );
    ensure!(
        !refused.contains("first_name"),
        "only the missing one: {refused}"
    );
    // Inside a message, too: the whole message stays here.
    let message = env
        .bob
        .send_text(&room, "Good news! ::shipped Anything else?")
        .await?;
    let notice = env
        .bob
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(message.as_str())
        })
        .await?;
    ensure!(
        notice.body.contains("Not sent") && notice.body.contains("`order`"),
        "{}",
        notice.body
    );

    steps.step("Given the value, it goes out; `::name` is filled in inside a message");
    command(&env.bob, &room, "!sb t shipped order=\"A 12\"").await?;
    let added = command(&env.bob, &room, "!sb canned add bye Have a nice day!").await?;
    ensure!(
        added.contains("added (personal (@bob:localhost))"),
        "{added}"
    );
    env.bob
        .send_text(&room, "Thanks for waiting. ::bye")
        .await?;
    visitor
        .wait_for_agent_text("Thanks for waiting. Have a nice day!")
        .await?;
    // Outbound is in order per conversation: everything sent before the last answer arrived.
    let texts = agent_texts(&visitor).await?;
    ensure!(
        texts
            .iter()
            .any(|t| t == "Your order A 12 has shipped, Anna."),
        "{texts:?}"
    );
    ensure!(
        !texts
            .iter()
            .any(|t| t.contains("Good news") || t.contains("{{") || t.contains("::")),
        "nothing refused reached the customer: {texts:?}"
    );

    steps.step("Bob, a member but not a lead, cannot change the team's reply, nor everyone's");
    let denied = command(
        &env.bob,
        &room,
        "!sb canned edit greeting scope=support Yo {{ first_name }}",
    )
    .await?;
    ensure!(
        denied.contains("Not done") && denied.contains("only the leads of support"),
        "{denied}"
    );
    let denied = command(&env.bob, &room, "!sb canned remove shipped").await?;
    ensure!(denied.contains("only admins"), "{denied}");
    let shown = command(&env.bob, &room, "!sb canned show greeting").await?;
    ensure!(
        shown.contains("Hello {{ first_name }}, this is") && !shown.contains("Yo "),
        "unchanged: {shown}"
    );
    // Alice's personal replies are hers: Bob neither sees nor uses one.
    command(&env.alice, &room, "!sb canned add mine Alice's own").await?;
    let unknown = command(&env.bob, &room, "!sb t mine").await?;
    ensure!(
        unknown.contains("no canned reply `mine` that you can use"),
        "{unknown}"
    );
    let list = command(&env.bob, &room, "!sb canned list").await?;
    ensure!(
        list.contains("greeting — team support [default, ru]")
            && list.contains("bye — personal")
            && !list.contains("mine"),
        "{list}"
    );

    steps.step("The lead may change it; the next send uses the new text");
    let edited = command(
        &env.alice,
        &room,
        "!sb canned edit greeting Hi {{ first_name }}! {{ company }} here.",
    )
    .await?;
    ensure!(edited.contains("changed (team support)"), "{edited}");
    command(&env.bob, &room, "!sb untag lang-ru").await?;
    command(&env.bob, &room, "!sb t greeting").await?;
    visitor
        .wait_for_agent_text("Hi Anna! ACME Tools here.")
        .await?;
    steps.finish()
}
