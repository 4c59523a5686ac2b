//! Canned replies with files, end to end: a team lead uploads a price list in her direct chat
//! with the bot and attaches it to the team's reply by answering the file with `!sb canned
//! attach`; `!sb t` and `::name` then send the text with the file to a Telegram customer (a
//! wire-level fake of the Bot API; the bridge knows only its base URL), editing the text keeps
//! the file, a file over the channel's `max_file_size` refuses the reply before anything is
//! queued (saying which file and which limit), and `detach` takes the files off. Operators are
//! real Matrix clients on a real Synapse; both stores.

mod fakes;
#[macro_use]
mod rig;

use anyhow::ensure;
use fakes::telegram::{FakeTelegram, TgUser, TOKEN};
use rig::{command, Backend, BridgeOptions, TestEnv};
use serde_json::json;

on_both_stores!(canned_replies_carry_files_the_channel_can_take);

fn options(backend: Backend, fake: &FakeTelegram) -> BridgeOptions {
    let teams: serde_yaml::Value = serde_yaml::to_value(json!({
        "support": {
            "members": ["@bob:localhost"],
            "leads": ["@alice:localhost"],
            "rules": [{"channel": "telegram"}],
        }
    }))
    .unwrap_or_default();
    BridgeOptions::default()
        .backend(backend)
        .channel(
            "telegram",
            json!({
                "enabled": true,
                "token": TOKEN,
                "api_url": fake.url(),
                "poll_timeout_secs": 2,
                "max_file_size": 65536,
            }),
        )
        .edit_config(move |c| {
            if let Some(map) = c.as_mapping_mut() {
                map.insert("teams".into(), teams.clone());
            }
        })
}

/// Answer `file_event` with `text` (a reply) and return the bot's answer to that.
async fn reply_command(
    op: &rig::operator::Operator,
    room: &str,
    file_event: &str,
    text: &str,
) -> anyhow::Result<String> {
    let event = op.reply(room, file_event, text).await?;
    let answer = op
        .wait_for_message(room, |m| {
            m.is_notice() && m.in_reply_to() == Some(event.as_str())
        })
        .await?;
    Ok(answer.body)
}

async fn canned_replies_carry_files_the_channel_can_take(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("canned replies carry files the channel can take");
    let fake = FakeTelegram::start().await?;
    let env = TestEnv::start(options(backend, &fake)).await?;
    let jane = TgUser::new(5_550_001, "Jane", Some("Doe"), Some("jane_d"));
    fake.push_update(fake.message_update(&jane, 1, json!({"text": "Do you have a price list?"})));
    let portal = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.join(&portal).await?;
    env.alice.wait_for_text(&portal, "price list").await?;

    steps.step("Alice stores the team's reply, uploads the price list to her chat with the bot and attaches it");
    let bot = env.bot_user_id();
    let dm = env
        .alice
        .create_room("canned files", &[bot.as_str()])
        .await?;
    rig::poll_until("the bot in the chat", rig::DEFAULT_TIMEOUT, || async {
        let m = env.alice.memberships(&dm).await?;
        Ok((rig::membership(&m, &bot).as_deref() == Some("join")).then_some(()))
    })
    .await?;
    let added = command(
        &env.alice,
        &dm,
        "!sb canned add price scope=support Here is our price list, {{ first_name }}.",
    )
    .await?;
    ensure!(added.contains("`price` added (team support)"), "{added}");
    let pdf = rig::blob("%PDF", 3500);
    let file = env
        .alice
        .send_file(&dm, "price-list.pdf", "application/pdf", pdf.clone())
        .await?;
    let attached = reply_command(&env.alice, &dm, &file, "!sb canned attach price").await?;
    ensure!(
        attached.contains(
            "price-list.pdf (3.4 KB) attached to canned reply `price` (team support; 1 variant)"
        ),
        "{attached}"
    );
    let shown = command(&env.alice, &dm, "!sb canned show price").await?;
    ensure!(shown.contains("📎 price-list.pdf (3.4 KB)"), "{shown}");
    // A command that answers no file says how to attach one.
    let how = command(&env.alice, &dm, "!sb canned attach price").await?;
    ensure!(
        how.contains("as a reply to a message with the file"),
        "{how}"
    );
    ensure!(
        fake.calls("sendDocument").is_empty(),
        "nothing went to the customer while the reply was made"
    );

    steps.step("`!sb t price` sends the text with the file: one Telegram document, captioned");
    let sent = command(&env.alice, &portal, "!sb t price").await?;
    ensure!(
        sent.contains("> Here is our price list, Jane.") && sent.contains("with price-list.pdf"),
        "{sent}"
    );
    let doc = fake
        .wait_for_call("sendDocument", |c| c.status == 200)
        .await?;
    ensure!(
        doc.i64("chat_id") == Some(jane.id)
            && doc.str("caption").as_deref() == Some("Here is our price list, Jane."),
        "{:?}",
        doc.params
    );
    ensure!(
        doc.upload
            .as_ref()
            .is_some_and(|u| u.bytes == pdf && u.name == "price-list.pdf"),
        "the document's bytes and name"
    );

    steps.step("Editing the text keeps the file; `::price` inside a message sends both");
    let edited = command(
        &env.alice,
        &dm,
        "!sb canned edit price Our prices, {{ first_name }}:",
    )
    .await?;
    ensure!(edited.contains("changed"), "{edited}");
    env.alice.send_text(&portal, "Sure! ::price").await?;
    let doc = fake
        .wait_for_call("sendDocument", |c| {
            c.status == 200 && c.str("caption").as_deref() == Some("Sure! Our prices, Jane:")
        })
        .await?;
    ensure!(
        doc.upload.as_ref().is_some_and(|u| u.bytes == pdf),
        "the file went with the edited text"
    );

    steps
        .step("A file over Telegram's limit here (64 KB) refuses the reply, naming file and limit");
    command(
        &env.alice,
        &dm,
        "!sb canned add catalog scope=support The full catalog.",
    )
    .await?;
    let big = env
        .alice
        .send_file(
            &dm,
            "catalog.pdf",
            "application/pdf",
            rig::blob("%PDF", 100 * 1024),
        )
        .await?;
    let attached = reply_command(&env.alice, &dm, &big, "!sb canned attach catalog").await?;
    ensure!(
        attached.contains("catalog.pdf (100.0 KB) attached"),
        "{attached}"
    );
    let refused = command(&env.alice, &portal, "!sb t catalog").await?;
    ensure!(
        refused
            == "Not sent: canned reply `catalog` carries the file catalog.pdf (100.0 KB) but telegram takes files of at most 64.0 KB.",
        "{refused}"
    );
    let message = env.alice.send_text(&portal, "Look: ::catalog").await?;
    let notice = env
        .alice
        .wait_for_message(&portal, |m| {
            m.is_notice() && m.in_reply_to() == Some(message.as_str())
        })
        .await?;
    ensure!(
        notice.body.contains("catalog.pdf (100.0 KB)") && notice.body.contains("64.0 KB"),
        "{}",
        notice.body
    );

    steps.step("Detached, the catalog reply goes out as text only; nothing else was sent");
    let detached = command(&env.alice, &dm, "!sb canned detach catalog").await?;
    ensure!(
        detached.contains("carries no files now (1 file removed)"),
        "{detached}"
    );
    command(&env.alice, &portal, "!sb t catalog").await?;
    fake.wait_for_call("sendMessage", |c| {
        c.status == 200 && c.str("text").as_deref() == Some("The full catalog.")
    })
    .await?;
    let documents = fake.calls("sendDocument");
    ensure!(
        documents.len() == 2,
        "exactly the two price-list documents went out: {}",
        documents.len()
    );
    ensure!(
        !fake
            .all_calls()
            .iter()
            .any(|c| c.str("text").is_some_and(|t| t.contains("Look:"))),
        "the refused message was not sent"
    );
    steps.finish()
}
