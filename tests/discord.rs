//! The Discord channel end to end: a customer on a wire-level fake of Discord's HTTP API and
//! gateway (`tests/fakes/discord.rs`), operators as real Matrix clients, the real `switchboard`
//! binary and a real Synapse in between. The bridge is configured with the fake's base URLs as
//! `channels.discord.api_url` / `cdn_url` and learns the gateway URL from `GET /gateway/bot`.
//!
//! The main flows run on SQLite and on PostgreSQL; scenarios about the channel's own timing
//! (rate limits, refusals) run on SQLite.

mod fakes;
#[macro_use]
mod rig;

use std::time::Duration;

use anyhow::{ensure, Context};
use axum::http::Method;
use fakes::discord::{DUser, FakeDiscord, FaultKind, BOT_ID, TOKEN};
use rig::{Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};

on_both_stores!(
    customer_messages_reach_matrix,
    operator_messages_files_replies_edits_and_deletions_reach_the_customer,
    a_dropped_gateway_resumes_without_losing_or_doubling,
    reactions_both_ways,
    listed_guild_channels_are_bridged,
);

/// Bridge options with `channels.discord` pointing at the fake; `extra` is merged into the
/// section.
fn options(backend: Backend, fake: &FakeDiscord, extra: Value) -> BridgeOptions {
    let mut section = json!({
        "enabled": true,
        "token": TOKEN,
        "api_url": fake.url(),
        "cdn_url": fake.cdn_url(),
    });
    if let (Some(s), Value::Object(e)) = (section.as_object_mut(), extra) {
        s.extend(e);
    }
    BridgeOptions::default()
        .backend(backend)
        .channel("discord", section)
}

fn jane() -> DUser {
    DUser::new(1_400_000_000_000_000_001, "jane_d", Some("Jane Doe"))
}

/// Count of messages in `room` whose body is exactly `text` (edits excluded).
fn count(env: &TestEnv, room: &str, text: &str) -> usize {
    env.alice
        .messages(room)
        .iter()
        .filter(|m| m.body == text && m.replaces().is_none())
        .count()
}

async fn customer_messages_reach_matrix(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("customer messages reach matrix");
    let fake = FakeDiscord::start().await?;
    let env = TestEnv::start(options(backend, &fake, json!({}))).await?;
    let mut user = jane();
    fake.set_avatar(
        &mut user,
        "3d7b1aa7b5149fe06971b6dedf682d82",
        rig::blob("\u{89}PNG", 700),
    );

    steps.step("The bot identified with its token and the intents for DMs with content");
    let identify = fake.wait_for_op("IDENTIFY", |o| o.op == 2).await?;
    ensure!(
        identify.d["token"] == TOKEN,
        "token {:?}",
        identify.d["token"]
    );
    let intents = identify.d["intents"].as_u64().unwrap_or(0);
    ensure!(
        intents & (1 << 12) != 0 && intents & (1 << 15) != 0 && intents & (1 << 9) == 0,
        "intents {intents:b}"
    );

    steps.step("Text with Discord markdown");
    let first = fake.customer_message(
        &user,
        "Hello, my **order #123** is *late* ~~again~~ `A-7` ||sorry||",
        json!({}),
    );
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    let hello = env
        .alice
        .wait_for_text(
            &room,
            "Hello, my **order #123** is *late* ~~again~~ `A-7` ||sorry||",
        )
        .await?;
    ensure!(
        hello.sender.starts_with("@sb_discord_"),
        "sent by a ghost, not {}",
        hello.sender
    );
    let html = hello.formatted_body.clone().unwrap_or_default();
    for part in [
        "<b>order #123</b>",
        "<i>late</i>",
        "<s>again</s>",
        "<code>A-7</code>",
    ] {
        ensure!(html.contains(part), "{part} missing from the HTML {html:?}");
    }
    let members = env.alice.members(&room).await?;
    let ghost_name = members
        .iter()
        .find(|(id, _)| id == &hello.sender)
        .map(|(_, n)| n.clone());
    ensure!(
        ghost_name.as_deref() == Some("Jane Doe"),
        "ghost display name: {ghost_name:?}"
    );
    steps.step("The avatar came from the CDN, without the bot's token");
    let avatar = rig::poll_until("the avatar fetched", Duration::from_secs(15), || async {
        Ok(fake
            .cdn_requests()
            .into_iter()
            .find(|(p, _)| p.starts_with(&format!("avatars/{}/", user.id))))
    })
    .await?;
    ensure!(avatar.1.is_none(), "the CDN must not see the token");
    steps.step("…and became the ghost's avatar");
    let avatar_url = rig::poll_until("the ghost's avatar", Duration::from_secs(30), || async {
        let member = env.alice.member(&room, &hello.sender).await?;
        Ok(member.and_then(|m| m["avatar_url"].as_str().map(str::to_owned)))
    })
    .await?;
    ensure!(
        env.alice.download(&avatar_url).await? == rig::blob("\u{89}PNG", 700),
        "the avatar's bytes"
    );

    steps.step("A code block and a link, a mention by name");
    let ann = DUser::new(1_400_000_000_000_000_077, "ann", Some("Ann"));
    fake.customer_message(
        &user,
        "see ```rust\nfn main() {}\n``` and https://example.com/o?id=1 ask <@1400000000000000077>",
        json!({"mentions": [ann.json()]}),
    );
    let code = env
        .alice
        .wait_for_message(&room, |m| m.body.contains("ask @Ann"))
        .await?;
    let html = code.formatted_body.clone().unwrap_or_default();
    steps.step("The language class is dropped by the core's sanitiser; the block stays");
    ensure!(
        html.contains("<pre><code>fn main() {}</code></pre>"),
        "code block: {html:?}"
    );
    ensure!(
        html.contains("<a href=\"https://example.com/o?id=1\""),
        "link: {html:?}"
    );

    steps.step("An attachment: fetched from its URL, stored with its name and type");
    let png = rig::blob("\u{89}PNG\r\n", 3000);
    let att = fake.attachment(&user.dm, "label.png", "image/png", png.clone());
    let pdf = rig::blob("%PDF-1.4", 4000);
    let att2 = fake.attachment(&user.dm, "invoice 2026.pdf", "application/pdf", pdf.clone());
    fake.customer_message(&user, "two files", json!({"attachments": [att, att2]}));
    let image = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.image")
        .await?;
    ensure!(
        env.alice.fetch_file(&image).await? == png,
        "the image's bytes"
    );
    ensure!(image.filename() == "label.png", "{:?}", image.content);
    let file = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.file")
        .await?;
    ensure!(
        file.filename() == "invoice 2026.pdf" && file.mimetype() == Some("application/pdf"),
        "{:?}",
        file.content
    );
    ensure!(env.alice.fetch_file(&file).await? == pdf, "the PDF's bytes");
    env.alice.wait_for_text(&room, "two files").await?;
    ensure!(
        fake.cdn_requests().iter().all(|(_, auth)| auth.is_none()),
        "the bot token was sent to the CDN"
    );

    steps.step("A reply keeps its target");
    fake.customer_message(
        &user,
        "see above",
        json!({"message_reference": {"type": 0, "message_id": first, "channel_id": user.dm}}),
    );
    let reply = env.alice.wait_for_text(&room, "see above").await?;
    ensure!(
        reply.in_reply_to() == Some(hello.event_id.as_str()),
        "in_reply_to {:?}",
        reply.relates_to
    );

    steps.step("Edit and delete");
    let typo = fake.customer_message(&user, "my adress is wrong", json!({}));
    let typo_event = env.alice.wait_for_text(&room, "my adress is wrong").await?;
    fake.customer_edit(&user, &typo, "my address is **right**");
    let edit = env
        .alice
        .wait_for_message(&room, |m| {
            m.replaces() == Some(typo_event.event_id.as_str())
        })
        .await?;
    ensure!(
        edit.new_body() == Some("my address is **right**"),
        "{:?}",
        edit.content
    );
    fake.customer_delete(&user, &typo);
    env.alice
        .wait_for_redaction(&room, &typo_event.event_id)
        .await?;

    steps.step("Typing");
    fake.customer_typing(&user);
    env.alice
        .wait_for_typing(&room, &hello.sender, true)
        .await?;

    steps.step("A guild message is not bridged (guilds are off by default); the next DM is");
    fake.guild_message(
        &user,
        "1200000000000000001",
        "1200000000000000002",
        "in a server",
    );
    fake.customer_message(&user, "marker after the guild message", json!({}));
    env.alice
        .wait_for_text(&room, "marker after the guild message")
        .await?;
    ensure!(
        !env.alice
            .messages(&room)
            .iter()
            .any(|m| m.body.contains("in a server")),
        "a guild message was bridged"
    );
    let portals = env.rooms_named("Jane Doe").await?;
    ensure!(
        portals == [room.clone()],
        "portals for Jane Doe: {portals:?}"
    );

    steps.step("Exactly once each");
    for text in ["see above", "two files", "my adress is wrong"] {
        let n = count(&env, &room, text);
        ensure!(n == 1, "{text:?} bridged {n} times");
    }
    steps.finish()
}

async fn operator_messages_files_replies_edits_and_deletions_reach_the_customer(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps =
        rig::Steps::new("operator messages files replies edits and deletions reach the customer");
    let fake = FakeDiscord::start().await?;
    let env = TestEnv::start(options(backend, &fake, json!({}))).await?;
    let user = jane();
    let question_id = fake.customer_message(&user, "Do you ship to Norway?", json!({}));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    let question = env
        .alice
        .wait_for_text(&room, "Do you ship to Norway?")
        .await?;

    steps.step(
        "Formatted text goes out as Discord markdown, with the token and a nonce Discord enforces",
    );
    let answer = env
        .alice
        .send_html(
            &room,
            "Sorry! **Checking** now_ok",
            "<p>Sorry! <strong>Checking</strong> now_ok</p>",
        )
        .await?;
    let sent = fake
        .wait_for_call("POST", &format!("/channels/{}/messages", user.dm), |c| {
            c.status == 200 && c.str("content").is_some_and(|t| t.contains("Checking"))
        })
        .await?;
    ensure!(
        sent.authorization.as_deref() == Some(&format!("Bot {TOKEN}")),
        "auth {:?}",
        sent.authorization
    );
    ensure!(
        sent.str("content") == Some("Sorry! **Checking** now\\_ok"),
        "content {:?}",
        sent.body
    );
    let nonce = sent.str("nonce").context("a nonce")?.to_owned();
    ensure!(
        !nonce.is_empty() && nonce.len() <= 25 && sent.body["enforce_nonce"] == true,
        "nonce {:?}",
        sent.body
    );
    env.alice
        .wait_for_send_status(&room, &answer, "SUCCESS")
        .await?;
    let answer_id = fake
        .bot_messages(&user.dm)
        .first()
        .and_then(|m| m["id"].as_str().map(str::to_owned))
        .context("the answer in the fake")?;

    steps.step("A reply names the customer's message");
    env.alice
        .reply(&room, &question.event_id, "Yes, we do")
        .await?;
    let reply = fake
        .wait_for_call("POST", "/channels/", |c| {
            c.str("content") == Some("Yes, we do")
        })
        .await?;
    ensure!(
        reply.body["message_reference"]["message_id"] == question_id.as_str(),
        "message_reference {:?}",
        reply.body
    );

    steps.step("A file: multipart with payload_json and files[0]");
    let pdf = rig::blob("%PDF", 3500);
    env.alice
        .send_file(&room, "return-label.pdf", "application/pdf", pdf.clone())
        .await?;
    let upload = fake
        .wait_for_call("POST", "/channels/", |c| {
            c.status == 200 && !c.files.is_empty()
        })
        .await?;
    ensure!(
        upload
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("multipart/form-data")),
        "{:?}",
        upload.content_type
    );
    let f = &upload.files[0];
    ensure!(
        f.field == "files[0]" && f.name == "return-label.pdf" && f.bytes == pdf,
        "upload {} {} {} bytes",
        f.field,
        f.name,
        f.bytes.len()
    );
    ensure!(
        upload.body["attachments"][0]["filename"] == "return-label.pdf",
        "payload_json {:?}",
        upload.body
    );
    ensure!(
        upload.body["nonce"].is_string(),
        "the file's nonce {:?}",
        upload.body
    );
    ensure!(
        upload.body.get("content").is_none(),
        "a file without a caption has no text: {:?}",
        upload.body
    );

    steps.step("Operator typing shows the bot typing");
    env.alice.typing(&room, true).await?;
    fake.wait_for_call("POST", &format!("/channels/{}/typing", user.dm), |c| {
        c.status == 204
    })
    .await?;

    steps.step("Operator edits and deletes: the same Discord message");
    env.alice
        .edit(&room, &answer, "Checked: it left today")
        .await?;
    let edit = fake
        .wait_for_call(
            "PATCH",
            &format!("/channels/{}/messages/{answer_id}", user.dm),
            |c| c.status == 200,
        )
        .await?;
    ensure!(
        edit.str("content") == Some("Checked: it left today"),
        "{:?}",
        edit.body
    );
    ensure!(fake
        .message(&answer_id)
        .is_some_and(|m| m["content"] == "Checked: it left today"));
    env.alice.redact(&room, &answer, None).await?;
    fake.wait_for_call(
        "DELETE",
        &format!("/channels/{}/messages/{answer_id}", user.dm),
        |c| c.status == 204,
    )
    .await?;
    ensure!(fake.message(&answer_id).is_none());

    steps.step(
        "The customer replies to the bot's \"Yes, we do\": Matrix sees the reply to Alice's event",
    );
    let yes = fake
        .bot_messages(&user.dm)
        .into_iter()
        .find(|m| m["content"] == "Yes, we do")
        .context("the bot's reply")?;
    fake.customer_message(
        &user,
        "Great, thanks",
        json!({"message_reference": {"type": 0, "message_id": yes["id"], "channel_id": user.dm}}),
    );
    let thanks = env.alice.wait_for_text(&room, "Great, thanks").await?;
    let alice_yes = env.alice.wait_for_text(&room, "Yes, we do").await?;
    ensure!(
        thanks.in_reply_to() == Some(alice_yes.event_id.as_str()),
        "in_reply_to {:?}",
        thanks.relates_to
    );

    steps.step("The gateway echoed every bot message (MESSAGE_CREATE/UPDATE/DELETE), and none came back into the room from the ghost; each went out once");
    let ghost_echoes = env
        .alice
        .messages(&room)
        .into_iter()
        .filter(|m| {
            m.sender.starts_with("@sb_discord_")
                && (m.body == "Yes, we do" || m.body.contains("Checking"))
        })
        .count();
    ensure!(
        ghost_echoes == 0,
        "the bot's own messages were bridged back"
    );
    let yes_sends = fake
        .calls("POST", "/channels/")
        .iter()
        .filter(|c| c.status == 200 && c.str("content") == Some("Yes, we do"))
        .count();
    ensure!(yes_sends == 1, "reply sent {yes_sends} times");
    ensure!(count(&env, &room, "Great, thanks") == 1);
    steps.finish()
}

async fn a_dropped_gateway_resumes_without_losing_or_doubling(
    backend: Backend,
) -> anyhow::Result<()> {
    let fake = FakeDiscord::start().await?;
    let mut env = TestEnv::start(options(backend, &fake, json!({}))).await?;
    let user = jane();
    fake.customer_message(&user, "one", json!({}));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "one").await?;
    // Heartbeats carry the last sequence number and are acknowledged.
    let (session, _) = fake.session();
    let session = session.context("a session")?;
    fake.wait_for_op("a heartbeat with a sequence", |o| {
        o.op == 1 && o.d.as_u64().is_some_and(|s| s >= 2)
    })
    .await?;

    // Mid-stream: Discord has sequenced three more messages but the socket dies before they
    // reach the bot. On RESUME Discord replays them, plus one the bot already had.
    fake.set_replay_overlap(1);
    fake.customer_message(&user, "two", json!({}));
    env.alice.wait_for_text(&room, "two").await?;
    fake.hold(true);
    for text in ["three", "four", "five"] {
        fake.customer_message(&user, text, json!({}));
    }
    let delivered = fake.sent_seq();
    fake.drop_socket();
    let resume = fake.wait_for_op("RESUME", |o| o.op == 6).await?;
    ensure!(
        resume.path == "/resume",
        "resumed at {} instead of resume_gateway_url",
        resume.path
    );
    ensure!(
        resume.d["session_id"] == session.as_str() && resume.d["token"] == TOKEN,
        "{:?}",
        resume.d
    );
    ensure!(
        resume.d["seq"].as_u64() == Some(delivered),
        "resumed from {:?}, last delivered {delivered}",
        resume.d["seq"]
    );
    fake.hold(false);
    for text in ["three", "four", "five"] {
        env.alice.wait_for_text(&room, text).await?;
    }

    // RECONNECT (op 7): another resume at the resume URL.
    fake.send_reconnect();
    rig::poll_until("a second RESUME", Duration::from_secs(30), || async {
        Ok((fake
            .gateway_ops()
            .iter()
            .filter(|o| o.op == 6 && o.path == "/resume")
            .count()
            >= 2)
            .then_some(()))
    })
    .await?;
    fake.customer_message(&user, "six", json!({}));
    env.alice.wait_for_text(&room, "six").await?;

    // INVALID_SESSION false: a new IDENTIFY at the gateway URL and a new session.
    fake.invalidate_session();
    rig::poll_until("a second IDENTIFY", Duration::from_secs(30), || async {
        Ok((fake
            .gateway_ops()
            .iter()
            .filter(|o| o.op == 2 && o.path == "/gateway")
            .count()
            >= 2)
            .then_some(()))
    })
    .await?;
    fake.customer_message(&user, "seven", json!({}));
    env.alice.wait_for_text(&room, "seven").await?;

    // A restarted bridge resumes the stored session: what arrived meanwhile is replayed.
    env.bridge.kill();
    fake.customer_message(&user, "while the bridge was down", json!({}));
    let resumes_before = fake.gateway_ops().iter().filter(|o| o.op == 6).count();
    env.bridge.start().await?;
    env.alice
        .wait_for_text(&room, "while the bridge was down")
        .await?;
    ensure!(
        fake.gateway_ops().iter().filter(|o| o.op == 6).count() > resumes_before,
        "the restarted bridge did not resume"
    );

    for text in [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "while the bridge was down",
    ] {
        let n = count(&env, &room, text);
        ensure!(n == 1, "{text:?} bridged {n} times");
    }
    Ok(())
}

/// A connection whose heartbeats are no longer acknowledged is a zombie: the bridge drops it
/// after one missed ACK and resumes, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_connection_is_replaced() -> anyhow::Result<()> {
    let fake = FakeDiscord::start().await?;
    fake.set_heartbeat_interval(500);
    let env = TestEnv::start(options(Backend::Sqlite, &fake, json!({}))).await?;
    let user = jane();
    fake.customer_message(&user, "before", json!({}));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "before").await?;

    fake.hold(true);
    fake.withhold_acks(true);
    fake.customer_message(&user, "during", json!({}));
    let resume = fake
        .wait_for_op("RESUME after missed ACKs", |o| o.op == 6)
        .await?;
    ensure!(resume.path == "/resume", "resumed at {}", resume.path);
    // The heartbeats before it were ~500 ms apart (the interval from HELLO).
    let beats: Vec<_> = fake
        .gateway_ops()
        .into_iter()
        .filter(|o| o.op == 1 && o.at < resume.at)
        .collect();
    ensure!(beats.len() >= 2, "heartbeats: {}", beats.len());
    for pair in beats.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        ensure!(
            gap >= Duration::from_millis(400) && gap <= Duration::from_millis(1500),
            "heartbeat gap {gap:?}"
        );
    }
    fake.withhold_acks(false);
    fake.hold(false);
    env.alice.wait_for_text(&room, "during").await?;
    ensure!(count(&env, &room, "during") == 1 && count(&env, &room, "before") == 1);
    Ok(())
}

/// With `guilds: true` and a channel list, messages in a listed server channel become their
/// own conversation, named after the channel (`#support`, which `GET /channels/{id}` tells;
/// issue 19), each member speaking as a ghost of their own; answers go to the channel; other
/// channels stay out.
async fn listed_guild_channels_are_bridged(backend: Backend) -> anyhow::Result<()> {
    let fake = FakeDiscord::start().await?;
    fake.add_guild_channel("1200000000000000001", "1200000000000000002", "support");
    fake.add_guild_channel("1200000000000000001", "1200000000000000003", "general");
    let env = TestEnv::start(options(
        backend,
        &fake,
        json!({"guilds": true, "guild_channels": ["1200000000000000002"]}),
    ))
    .await?;
    let identify = fake.wait_for_op("IDENTIFY", |o| o.op == 2).await?;
    ensure!(
        identify.d["intents"]
            .as_u64()
            .is_some_and(|i| i & (1 << 9) != 0),
        "GUILD_MESSAGES intent: {:?}",
        identify.d["intents"]
    );
    let user = jane();
    fake.guild_message(
        &user,
        "1200000000000000001",
        "1200000000000000003",
        "in another channel",
    );
    fake.guild_message(
        &user,
        "1200000000000000001",
        "1200000000000000002",
        "hello from the server",
    );
    let room = env.alice.wait_for_invite("#support").await?;
    let from_jane = env
        .alice
        .wait_for_text(&room, "hello from the server")
        .await?;
    // Named as the other group rooms are (`<group> (<channel>)`), not after its first writer.
    let name = env
        .alice
        .wait_for_state_event(&room, "m.room.name", "", |c| c["name"].is_string())
        .await?;
    ensure!(
        name["content"]["name"] == "#support (discord)",
        "room name {name}"
    );
    ensure!(
        fake.calls("GET", "/channels/1200000000000000002")
            .iter()
            .any(|c| c.status == 200),
        "the channel was looked up"
    );
    ensure!(
        from_jane.body == "hello from the server",
        "{:?}",
        from_jane.body
    );
    // A second member of the channel speaks in the same room, as a ghost of their own.
    let max = DUser::new(1_100_000_000_000_000_077, "maxk", Some("Max Kern"));
    fake.guild_message(
        &max,
        "1200000000000000001",
        "1200000000000000002",
        "same problem here",
    );
    let from_max = env.alice.wait_for_text(&room, "same problem here").await?;
    ensure!(from_max.body == "same problem here", "{:?}", from_max.body);
    ensure!(
        from_max.sender != from_jane.sender,
        "both spoke as {}",
        from_max.sender
    );
    for (ghost, name) in [
        (&from_jane.sender, "Jane Doe"),
        (&from_max.sender, "Max Kern"),
    ] {
        env.alice
            .wait_for_state_event(&room, "m.room.member", ghost, |c| {
                c["membership"] == "join" && c["displayname"] == name
            })
            .await?;
    }
    env.alice.send_text(&room, "welcome").await?;
    fake.wait_for_call("POST", "/channels/1200000000000000002/messages", |c| {
        c.status == 200 && c.str("content") == Some("welcome")
    })
    .await?;
    // The gateway's events are worked in order and each is stored before the next: once the
    // listed channel's message is in, the unlisted one was decided. It was not kept, and no
    // room was made for it (the homeserver's own list, joined or not).
    let kept = rig::store_count(
        backend,
        env.bridge.database_url(),
        "SELECT COUNT(*) FROM inbox WHERE payload LIKE $1",
        &["%another channel%"],
    )
    .await?;
    ensure!(kept == 0, "an unlisted channel's message was kept");
    let rooms = env.rooms_named("(discord)").await?;
    ensure!(rooms == vec![room.clone()], "Discord rooms: {rooms:?}");
    // The name was asked once: later messages find it in the channel's state.
    let lookups = fake.calls("GET", "/channels/1200000000000000002").len();
    ensure!(lookups == 1, "{lookups} lookups of the channel");
    Ok(())
}

/// A refused token is reported once, in words, instead of retried forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_reported() -> anyhow::Result<()> {
    let fake = FakeDiscord::start().await?;
    let env = TestEnv::start(options(
        Backend::Sqlite,
        &fake,
        json!({"token": "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GxYz12.revoked"}),
    ))
    .await?;
    rig::poll_until("the error in the log", Duration::from_secs(30), || async {
        let log = std::fs::read_to_string(env.bridge.log_path()).unwrap_or_default();
        Ok(log.contains("Discord refused the bot token").then_some(()))
    })
    .await?;
    let gateway_calls = || fake.calls("GET", "/gateway/bot");
    ensure!(
        gateway_calls().iter().all(|c| c.status == 401),
        "{:?}",
        gateway_calls()
    );
    // Nothing to wait for but time: a retry loop would have asked again within 2 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        gateway_calls().len() == 1,
        "asked {} times with a refused token",
        gateway_calls().len()
    );
    ensure!(
        fake.connections() == 0,
        "connected to the gateway with a refused token"
    );
    Ok(())
}

/// Discord's 429 (route and global): the outbox waits Discord's `retry_after`, then delivers once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_honoured() -> anyhow::Result<()> {
    let fake = FakeDiscord::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &fake, json!({})).max_attempts(6)).await?;
    let user = jane();
    fake.customer_message(&user, "hello", json!({}));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "hello").await?;

    let path = format!("/channels/{}/messages", user.dm);
    fake.fault(
        Method::POST,
        &path,
        FaultKind::RateLimited {
            retry_after: 2.0,
            global: false,
        },
        1,
    );
    fake.fault(
        Method::POST,
        &path,
        FaultKind::RateLimited {
            retry_after: 2.0,
            global: true,
        },
        1,
    );
    env.alice.send_text(&room, "patience").await?;
    fake.wait_for_call("POST", &path, |c| {
        c.status == 200 && c.str("content") == Some("patience")
    })
    .await?;
    let sends: Vec<_> = fake
        .calls("POST", &path)
        .into_iter()
        .filter(|c| c.str("content") == Some("patience"))
        .collect();
    ensure!(
        sends.len() == 3,
        "two refusals and one success, got {:?}",
        sends.iter().map(|c| c.status).collect::<Vec<_>>()
    );
    for pair in sends.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        ensure!(
            gap >= Duration::from_millis(1950),
            "retried after {gap:?}, before retry_after (2 s)"
        );
    }
    // Every attempt carried the same nonce, and the customer got one message.
    ensure!(
        sends
            .iter()
            .all(|c| c.body["nonce"] == sends[0].body["nonce"]),
        "nonces differ"
    );
    ensure!(
        fake.bot_messages(&user.dm)
            .iter()
            .filter(|m| m["content"] == "patience")
            .count()
            == 1
    );
    Ok(())
}

/// 50007 (the customer closed their DMs): a notice quoting Discord, no retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_dms_become_a_notice() -> anyhow::Result<()> {
    let fake = FakeDiscord::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &fake, json!({}))).await?;
    let user = jane();
    fake.customer_message(&user, "hi", json!({}));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "hi").await?;

    fake.close_dms(&user);
    let refused = env.alice.send_text(&room, "are you there?").await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(refused.as_str())
        })
        .await?;
    ensure!(
        notice.body.contains("closed their direct messages")
            && notice.body.contains("Cannot send messages to this user"),
        "notice: {}",
        notice.body
    );
    env.alice
        .wait_for_send_status(&room, &refused, "FAIL_PERMANENT")
        .await?;
    let attempts = fake
        .calls("POST", "/channels/")
        .iter()
        .filter(|c| c.str("content") == Some("are you there?"))
        .count();
    ensure!(
        attempts == 1,
        "a permanent failure is not retried ({attempts} attempts)"
    );
    Ok(())
}

/// The fake itself speaks Discord (a check of the test tool, no bridge).
#[tokio::test]
async fn the_fake_speaks_discord() -> anyhow::Result<()> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let fake = FakeDiscord::start().await?;
    let http = reqwest::Client::new();
    let api = format!("{}/api/v10", fake.url());
    let wrong = http
        .get(format!("{api}/gateway/bot"))
        .header("Authorization", "Bot nope")
        .send()
        .await?;
    ensure!(wrong.status() == 401);
    let body: Value = wrong.json().await?;
    ensure!(
        body == json!({"message": "401: Unauthorized", "code": 0}),
        "{body}"
    );
    if let Some(fixture) = fakes::discord::fixture("error_401_unauthorized.json") {
        ensure!(body == fixture, "401 envelope differs from the fixture");
    }

    let gw: Value = http
        .get(format!("{api}/gateway/bot"))
        .header("Authorization", format!("Bot {TOKEN}"))
        .send()
        .await?
        .json()
        .await?;
    let url = gw["url"].as_str().context("url")?;

    fake.fault(
        Method::POST,
        "/channels/1/messages",
        FaultKind::RateLimited {
            retry_after: 1.5,
            global: true,
        },
        1,
    );
    let limited = http
        .post(format!("{api}/channels/1/messages"))
        .header("Authorization", format!("Bot {TOKEN}"))
        .json(&json!({"content": "x"}))
        .send()
        .await?;
    ensure!(limited.status() == 429);
    ensure!(
        limited.headers()["retry-after"] == "2"
            && limited.headers()["x-ratelimit-global"] == "true"
    );
    let body: Value = limited.json().await?;
    ensure!(
        body["retry_after"] == 1.5
            && body["global"] == true
            && body["message"] == "You are being rate limited.",
        "{body}"
    );

    // A bot without the MESSAGE_CONTENT intent is refused with 4014.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}?v=10&encoding=json")).await?;
    let hello: Value = match ws.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t)?,
        other => anyhow::bail!("no HELLO: {other:?}"),
    };
    ensure!(
        hello["op"] == 10 && hello["d"]["heartbeat_interval"].is_u64(),
        "{hello}"
    );
    let identify = json!({"op": 2, "d": {"token": TOKEN, "intents": 1 << 12, "properties": {"os": "linux", "browser": "t", "device": "t"}}});
    ws.send(Message::text(identify.to_string())).await?;
    match ws.next().await {
        Some(Ok(Message::Close(Some(frame)))) => {
            ensure!(u16::from(frame.code) == 4014, "close {frame:?}")
        }
        other => anyhow::bail!("expected close 4014, got {other:?}"),
    }

    // The right intents: READY with a session and a resume URL; heartbeats are acknowledged.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}?v=10&encoding=json")).await?;
    let _hello = ws.next().await;
    let identify = json!({"op": 2, "d": {"token": TOKEN, "intents": (1 << 12) | (1 << 15), "properties": {"os": "linux", "browser": "t", "device": "t"}}});
    ws.send(Message::text(identify.to_string())).await?;
    let ready: Value = match ws.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t)?,
        other => anyhow::bail!("no READY: {other:?}"),
    };
    ensure!(
        ready["t"] == "READY" && ready["s"] == 1 && ready["d"]["user"]["id"] == BOT_ID,
        "{ready}"
    );
    ensure!(
        ready["d"]["resume_gateway_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/resume")),
        "{ready}"
    );
    ws.send(Message::text(json!({"op": 1, "d": 1}).to_string()))
        .await?;
    let ack: Value = match ws.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t)?,
        other => anyhow::bail!("no ACK: {other:?}"),
    };
    ensure!(ack == json!({"op": 11}), "{ack}");
    Ok(())
}

/// The fake holds the bot to Discord's documented shapes for message components and to the
/// interaction rules (one answer, within 3 seconds), and tells channels apart (a check of the
/// test tool, no bridge).
#[tokio::test]
async fn the_fake_checks_components_and_the_interaction_deadline() -> anyhow::Result<()> {
    let fake = FakeDiscord::start().await?;
    let http = reqwest::Client::new();
    let api = format!("{}/api/v10", fake.url());
    let user = jane();
    fake.customer_message(&user, "hi", json!({}));
    let post = |body: Value| {
        http.post(format!("{api}/channels/{}/messages", user.dm))
            .header("Authorization", format!("Bot {TOKEN}"))
            .json(&body)
            .send()
    };
    let button =
        |id: &str, label: &str| json!({"type": 2, "style": 2, "label": label, "custom_id": id});
    let row = |buttons: Vec<Value>| json!({"type": 1, "components": buttons});
    for (what, components) in [
        (
            "six buttons in a row",
            json!([row((0..6).map(|k| button(&format!("b{k}"), "x")).collect())]),
        ),
        (
            "six rows",
            json!((0..6)
                .map(|k| row(vec![button(&format!("r{k}"), "x")]))
                .collect::<Vec<_>>()),
        ),
        (
            "an 81-character label",
            json!([row(vec![button("b", &"l".repeat(81))])]),
        ),
        (
            "a 101-character custom_id",
            json!([row(vec![button(&"c".repeat(101), "x")])]),
        ),
        (
            "a custom_id twice",
            json!([row(vec![button("b", "x"), button("b", "y")])]),
        ),
        ("a button outside a row", json!([button("b", "x")])),
        (
            "no custom_id",
            json!([row(vec![json!({"type": 2, "style": 1, "label": "x"})])]),
        ),
        (
            "a link with a custom_id",
            json!([row(vec![
                json!({"type": 2, "style": 5, "label": "x", "custom_id": "c", "url": "https://example.org"})
            ])]),
        ),
    ] {
        let answer = post(json!({"content": "Q", "components": components})).await?;
        ensure!(answer.status() == 400, "{what}: {}", answer.status());
        let body: Value = answer.json().await?;
        ensure!(body["code"] == 50035, "{what}: {body}");
    }
    let good: Value = post(json!({"components": [row((1..=5).map(|k| button(&format!("sbr1:n:{k}"), &k.to_string())).collect())]}))
        .await?
        .json()
        .await?;
    let message = good["id"]
        .as_str()
        .context("components alone make a message")?;

    let callback = |id: &str, token: &str, body: Value| {
        http.post(format!("{api}/interactions/{id}/{token}/callback"))
            .json(&body)
            .send()
    };
    let token_of = |id: &str| -> anyhow::Result<String> {
        // The interaction as dispatched (no bot is connected: it waits in the fake's queue).
        fake.pending_interaction_token(id)
            .context("the interaction's token")
    };
    // Answered at once: 204; a second answer 40060; a wrong token 10062; PONG is not an answer
    // to a component.
    let first = fake.press_button(&user, message, 0)?;
    let token = token_of(&first)?;
    let wrong = callback(&first, &token, json!({"type": 1})).await?;
    ensure!(
        wrong.status() == 400,
        "PONG to a component: {}",
        wrong.status()
    );
    let ok = callback(&first, &token, json!({"type": 6})).await?;
    ensure!(ok.status() == 204, "{}", ok.status());
    let twice: Value = callback(&first, &token, json!({"type": 6}))
        .await?
        .json()
        .await?;
    ensure!(twice["code"] == 40060, "{twice}");
    let second = fake.press_button(&user, message, 1)?;
    let forged: Value = callback(&second, "not-the-token", json!({"type": 6}))
        .await?
        .json()
        .await?;
    ensure!(forged["code"] == 10062, "{forged}");
    // Three seconds after its delivery the interaction is gone.
    let token = token_of(&second)?;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let late = callback(&second, &token, json!({"type": 6})).await?;
    ensure!(late.status() == 404, "late: {}", late.status());
    let body: Value = late.json().await?;
    ensure!(
        body == json!({"message": "Unknown interaction", "code": 10062}),
        "{body}"
    );
    // UPDATE_MESSAGE edits the components (checked like a message's).
    let third = fake.press_button(&user, message, 2)?;
    let token = token_of(&third)?;
    let disabled = json!([row(vec![
        json!({"type": 2, "style": 1, "label": "3", "custom_id": "sbr1:n:3", "disabled": true})
    ])]);
    let updated = callback(
        &third,
        &token,
        json!({"type": 7, "data": {"components": disabled}}),
    )
    .await?;
    ensure!(updated.status() == 204, "{}", updated.status());
    ensure!(
        fake.press_button(&user, message, 0).is_err(),
        "a disabled button pressed"
    );

    // Channels: a guild text channel by its name, a DM with its recipient, else 10003.
    fake.add_guild_channel("1200000000000000001", "1200000000000000002", "support");
    let get = |id: &str| {
        http.get(format!("{api}/channels/{id}"))
            .header("Authorization", format!("Bot {TOKEN}"))
            .send()
    };
    let guild: Value = get("1200000000000000002").await?.json().await?;
    ensure!(
        guild["name"] == "support"
            && guild["type"] == 0
            && guild["guild_id"] == "1200000000000000001",
        "{guild}"
    );
    let dm: Value = get(&user.dm).await?.json().await?;
    ensure!(
        dm["type"] == 1 && dm["recipients"][0]["id"] == user.id.as_str(),
        "{dm}"
    );
    let unknown = get("1299999999999999999").await?;
    ensure!(unknown.status() == 404);
    let body: Value = unknown.json().await?;
    ensure!(body["code"] == 10003, "{body}");
    Ok(())
}

/// A session that cannot be resumed (it expired while the bridge was down): Discord replays
/// nothing, so what the customer wrote meanwhile is fetched from the DM's history after the new
/// session starts — once, in order, before what they write next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_while_no_session_could_be_resumed_are_caught_up() -> anyhow::Result<()> {
    let fake = FakeDiscord::start().await?;
    let mut env = TestEnv::start(options(Backend::Sqlite, &fake, json!({}))).await?;
    let user = jane();
    fake.customer_message(&user, "before the outage", json!({}));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "before the outage").await?;
    let answer = env.alice.send_text(&room, "we are on it").await?;
    fake.wait_for_call("POST", &format!("/channels/{}/messages", user.dm), |c| {
        c.status == 200 && c.str("content") == Some("we are on it")
    })
    .await?;
    let _ = answer;

    env.bridge.kill();
    fake.expire_session();
    let missed: Vec<String> = (0..3)
        .map(|i| format!("while nobody listened {i}"))
        .collect();
    for text in &missed {
        fake.customer_message_unseen(&user, text);
    }
    let identifies = fake.gateway_ops().iter().filter(|o| o.op == 2).count();
    env.bridge.start().await?;
    rig::poll_until("a new IDENTIFY", Duration::from_secs(30), || async {
        Ok((fake.gateway_ops().iter().filter(|o| o.op == 2).count() > identifies).then_some(()))
    })
    .await?;
    for text in &missed {
        env.alice.wait_for_text(&room, text).await?;
    }
    fake.customer_message(&user, "and now live again", json!({}));
    env.alice.wait_for_text(&room, "and now live again").await?;

    let customer: Vec<String> = env
        .alice
        .messages(&room)
        .into_iter()
        .filter(|m| m.sender.starts_with("@sb_discord_"))
        .map(|m| m.body)
        .collect();
    let mut expected = vec!["before the outage".to_string()];
    expected.extend(missed.iter().cloned());
    expected.push("and now live again".into());
    ensure!(customer == expected, "the room shows {customer:#?}");
    // The bot's own answer in the DM's history is not taken for the customer's.
    ensure!(
        !env.alice
            .messages(&room)
            .iter()
            .any(|m| m.sender.starts_with("@sb_discord_") && m.body.contains("we are on it")),
        "our own answer came back as the customer's"
    );
    Ok(())
}

/// Issue 19: an operator's reaction reaches the customer (`PUT …/reactions/{emoji}/@me`), a new
/// one replaces it and a redaction takes it back (`DELETE`), a text key is refused with the
/// reason shown; the customer's reaction and its removal (MESSAGE_REACTION_ADD / _REMOVE, which
/// need the DIRECT_MESSAGE_REACTIONS intent) show as the ghost's `m.reaction` and its redaction.
async fn reactions_both_ways(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("reactions both ways");
    let fake = FakeDiscord::start().await?;
    let env = TestEnv::start(options(backend, &fake, json!({}))).await?;
    let user = jane();

    steps.step("The customer asks; an operator answers");
    let question_id = fake.customer_message(&user, "Do you ship to Norway?", json!({}));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    let question = env
        .alice
        .wait_for_text(&room, "Do you ship to Norway?")
        .await?;
    let answer = env.alice.send_text(&room, "Yes, in 3 days").await?;
    env.alice
        .wait_for_send_status(&room, &answer, "SUCCESS")
        .await?;
    let answer_id = fake
        .bot_messages(&user.dm)
        .first()
        .and_then(|m| m["id"].as_str().map(str::to_owned))
        .context("the answer in the fake")?;

    steps.step("The operator reacts 👍 to the question: the customer sees the bot's 👍");
    let thumbs = env.alice.react(&room, &question.event_id, "👍").await?;
    rig::poll_until("the bot's 👍", Duration::from_secs(30), || async {
        Ok((fake.bot_reactions(&question_id) == ["👍"]).then_some(()))
    })
    .await?;

    steps.step("The operator takes it back, then reacts 🎉: only 🎉 remains");
    env.alice.redact(&room, &thumbs, None).await?;
    rig::poll_until("the 👍 taken back", Duration::from_secs(30), || async {
        Ok(fake.bot_reactions(&question_id).is_empty().then_some(()))
    })
    .await?;
    env.alice.react(&room, &question.event_id, "🎉").await?;
    rig::poll_until("the bot's 🎉", Duration::from_secs(30), || async {
        Ok((fake.bot_reactions(&question_id) == ["🎉"]).then_some(()))
    })
    .await?;

    steps.step("A text key is no emoji on Discord: refused, the reason shown to the operator");
    let ok = env.alice.react(&room, &answer, "ok").await?;
    let status = env
        .alice
        .wait_for_send_status(&room, &ok, "FAIL_PERMANENT")
        .await?;
    let reason = status["content"]["message"].as_str().unwrap_or_default();
    ensure!(
        reason.contains("Discord takes only emoji as reactions"),
        "reason shown: {reason}"
    );

    steps.step("The customer reacts ❤️ to the answer: the ghost's m.reaction on it");
    ensure!(
        fake.customer_reaction(&user, &answer_id, "❤️", true),
        "the bot did not identify with DIRECT_MESSAGE_REACTIONS: Discord sends it no reactions"
    );
    let reaction_id = env
        .alice
        .wait_for_reaction_by(&room, &answer, "❤️", &question.sender)
        .await?;

    steps.step("The customer takes it back: the ghost's reaction is redacted");
    fake.customer_reaction(&user, &answer_id, "❤️", false);
    env.alice
        .wait_for_redaction(&room, &reaction_id)
        .await
        .context("the reaction taken back")?;
    // The bot's own reactions came back over the gateway, like anyone's, before the
    // customer's (dispatches are stored in order): none of them became the customer's.
    let echoed = env.alice.events(&room).into_iter().find(|e| {
        e["type"] == "m.reaction"
            && e["sender"] != env.alice.user_id()
            && matches!(
                e["content"]["m.relates_to"]["key"].as_str(),
                Some("👍" | "🎉")
            )
    });
    ensure!(
        echoed.is_none(),
        "the bot's own reaction came back as the customer's: {echoed:?}"
    );
    Ok(())
}
