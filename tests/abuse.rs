//! Abuse from outside, end to end against the real `switchboard` binary and a real Synapse:
//! strangers inviting the bot, names built to confuse, slow and idle HTTP connections, a visitor
//! opening stream after stream, and a script opening conversation after conversation.
//!
//! Each test checks what an operator or a server admin would check: the bot's membership in the
//! stranger's room, the room's name and the ghost's display name as the homeserver has them, a
//! socket the bridge closed, the status codes a flooding client gets, the rooms the team was
//! invited to.

mod fakes;
#[macro_use]
mod rig;

use std::time::Duration;

use anyhow::{ensure, Context};
use fakes::whatsapp::{Customer, FakeWhatsApp};
use rig::{Backend, BridgeOptions, TestEnv};
use serde_json::json;

on_both_stores!(an_invite_from_a_non_operator_is_declined_and_an_operators_accepted,);

/// The bot's membership in `room`, as `who` sees the room's state.
async fn bot_membership(
    env: &TestEnv,
    who: &rig::operator::Operator,
    room: &str,
) -> anyhow::Result<Option<String>> {
    let memberships = who.memberships(room).await?;
    Ok(rig::membership(&memberships, &env.bot_user_id()))
}

async fn an_invite_from_a_non_operator_is_declined_and_an_operators_accepted(
    backend: Backend,
) -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default().backend(backend)).await?;
    // Mallory has an account on the homeserver but is no operator.
    let mallory = env.new_operator("mallory", "mallory-password").await?;
    let bot = env.bot_user_id();
    let theirs = mallory.create_room("mallory's room", &[&bot]).await?;
    rig::poll_until(
        "the bot to decline the stranger's invite",
        Duration::from_secs(30),
        || async {
            Ok(bot_membership(&env, &mallory, &theirs)
                .await?
                .filter(|m| m == "leave"))
        },
    )
    .await
    .with_context(|| env.logs())?;

    // An operator's invite is accepted as before (a DM with the bot, where commands work).
    let ours = env
        .bob
        .create_room("bob's room with the bot", &[&bot])
        .await?;
    rig::poll_until(
        "the bot to join the operator's room",
        Duration::from_secs(30),
        || async {
            Ok(bot_membership(&env, &env.bob, &ours)
                .await?
                .filter(|m| m == "join"))
        },
    )
    .await
    .with_context(|| env.logs())?;
    // And Mallory's room still does not have the bot: it never joined after declining.
    ensure!(
        bot_membership(&env, &mallory, &theirs).await?.as_deref() == Some("leave"),
        "the bot is in the stranger's room"
    );
    Ok(())
}

/// A customer whose name carries bidi overrides and invisible characters: the room name and the
/// ghost's display name show the name without them, and the channel suffix reads as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_controls_never_reach_room_names_or_ghost_names() -> anyhow::Result<()> {
    let fake = FakeWhatsApp::start().await?;
    let env =
        TestEnv::start(BridgeOptions::default().channel("whatsapp", fake.channel_config())).await?;
    let who = Customer::new(
        "4915112340000",
        "Mallory\u{202E}\u{2066} Doe\u{200F}\u{2067}\u{061C}",
    );
    let (_, payload) = fake.message(
        &who,
        json!({"type": "text", "text": {"body": "hello"}}),
        None,
    );
    let status = fake
        .deliver(
            &format!("{}/whatsapp/webhook", env.bridge.base_url()),
            &payload,
        )
        .await?;
    ensure!(status == 200, "webhook answered {status}");
    let room = env.alice.wait_for_invite("Mallory").await?;
    env.alice.join(&room).await?;
    env.alice.wait_for_text(&room, "hello").await?;
    let name = env.alice.room_name(&room).await?;
    ensure!(
        name.as_deref() == Some("Mallory Doe (whatsapp)"),
        "room name {name:?}"
    );
    let members = env.alice.members(&room).await?;
    let ghost = members
        .iter()
        .find(|(u, _)| u.starts_with("@sb_whatsapp"))
        .context("no ghost in the room")?;
    ensure!(ghost.1 == "Mallory Doe", "ghost display name {:?}", ghost.1);
    let topic = env.alice.room_topic(&room).await?.unwrap_or_default();
    ensure!(
        !topic.chars().any(switchboard_kit::is_invisible),
        "topic {topic:?}"
    );
    Ok(())
}
