//! The Messenger and Instagram channels end to end: customers on a wire-level fake of Meta's
//! Graph API (`tests/fakes/messenger.rs`) that also delivers their webhooks, signed with the app
//! secret; operators as real Matrix clients; the real `switchboard` binary and a real Synapse in
//! between. The bridge is configured with the fake's base URL as `api_url` and knows nothing
//! else of it.
//!
//! The conversation flows run on SQLite and on PostgreSQL; scenarios about the channel's own
//! behaviour (signatures, the handshake, rate limits, refusals) run on SQLite.

mod fakes;
#[macro_use]
mod rig;

use std::time::Duration;

use anyhow::{ensure, Context};
use fakes::messenger::{
    now_ms, sign, FakeMeta, FaultKind, Net, APP_SECRET, PAGE_TOKEN, VERIFY_TOKEN,
};
use rig::{Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};

on_both_stores!(
    messenger_conversation_both_ways,
    instagram_conversation_both_ways,
    a_crash_while_storing_a_delivery_loses_nothing,
);

/// A Messenger customer (a PSID) and an Instagram one (an IGSID).
const JANE_PSID: &str = "7000000000000001";
const PETER_IGSID: &str = "489760440872775";

/// Bridge options with `channels.messenger` and `channels.instagram` pointing at the fake.
fn options(backend: Backend, fake: &FakeMeta) -> BridgeOptions {
    let section = json!({
        "enabled": true,
        "access_token": PAGE_TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "api_url": fake.url(),
        "api_version": "v21.0",
    });
    BridgeOptions::default()
        .backend(backend)
        .channel("messenger", section.clone())
        .channel("instagram", section)
}

fn webhook(env: &TestEnv, net: Net) -> String {
    format!("{}/{}/webhook", env.bridge.base_url(), net.name())
}

/// Deliver one item and insist on a 200.
async fn deliver(fake: &FakeMeta, env: &TestEnv, net: Net, item: Value) -> anyhow::Result<Value> {
    let body = FakeMeta::delivery(net, item);
    let status = fake.deliver(&webhook(env, net), &body).await?;
    ensure!(status == 200, "webhook answered {status} for {body}");
    Ok(body)
}

async fn messenger_conversation_both_ways(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("messenger conversation both ways");
    let net = Net::Messenger;
    let fake = FakeMeta::start().await?;
    let env = TestEnv::start(options(backend, &fake)).await?;
    let picture = fake.add_file("profile.jpg", "image/jpeg", rig::blob("avatar", 400));
    fake.add_profile(
        net,
        JANE_PSID,
        json!({"first_name": "Jane", "last_name": "Doe", "profile_pic": picture}),
    );

    steps.step("Text in: a room named after the customer, the ghost named from the profile");
    let first = deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(
            net,
            JANE_PSID,
            "m_in_1",
            json!({"text": "Hello, where is order #123?"}),
        ),
    )
    .await?;
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    let hello = env
        .alice
        .wait_for_text(&room, "where is order #123?")
        .await?;
    ensure!(
        hello.sender.starts_with("@sb_messenger_"),
        "sent by a ghost, not {}",
        hello.sender
    );
    let members = env.alice.members(&room).await?;
    let ghost_name = members
        .iter()
        .find(|(id, _)| id == &hello.sender)
        .map(|(_, n)| n.clone());
    ensure!(
        ghost_name.as_deref() == Some("Jane Doe"),
        "ghost display name: {ghost_name:?}"
    );
    let lookup = fake.wait_for_call(JANE_PSID, |c| c.status == 200).await?;
    ensure!(
        lookup.query.get("fields").map(String::as_str) == Some("first_name,last_name,profile_pic"),
        "{:?}",
        lookup.query
    );
    ensure!(
        lookup.token.as_deref() == Some(PAGE_TOKEN),
        "profile read with the Page token"
    );
    ensure!(
        fake.all_calls()
            .iter()
            .any(|c| c.path.ends_with("_profile.jpg") && c.status == 200),
        "the profile picture fetched for the avatar"
    );

    steps.step("Meta redelivering the same body, and our own message echoed back: nothing new");
    ensure!(fake.deliver(&webhook(&env, net), &first).await? == 200);
    let echo = json!({"sender": {"id": net.account()}, "recipient": {"id": JANE_PSID}, "timestamp": now_ms(),
                      "message": {"mid": "m_echo_1", "is_echo": true, "app_id": 1517776481860111u64, "text": "echoed page message"}});
    deliver(&fake, &env, net, echo).await?;

    steps.step("An image and a file: fetched from the CDN, bytes in Matrix");
    let jpeg = rig::blob("jpeg", 3000);
    let url = fake.add_file("photo.jpg", "image/jpeg", jpeg.clone());
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(
            net,
            JANE_PSID,
            "m_in_2",
            json!({"attachments": [{"type": "image", "payload": {"url": url}}]}),
        ),
    )
    .await?;
    let image = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.image")
        .await?;
    ensure!(
        env.alice.fetch_file(&image).await? == jpeg,
        "the image's bytes"
    );
    let pdf = rig::blob("%PDF-1.4", 4000);
    let url = fake.add_file("invoice.pdf", "application/pdf", pdf.clone());
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(
            net,
            JANE_PSID,
            "m_in_3",
            json!({"attachments": [{"type": "file", "payload": {"url": url}}]}),
        ),
    )
    .await?;
    let file = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.file")
        .await?;
    ensure!(
        file.filename().ends_with("invoice.pdf") && file.mimetype() == Some("application/pdf"),
        "{:?}",
        file.content
    );
    ensure!(
        env.alice.fetch_file(&file).await? == pdf,
        "the file's bytes"
    );

    // Audio; a sticker (an image with a sticker_id); an attachment of a kind we do not know and
    // an event we do not show become notices by the ghost.
    steps.step("Audio, a sticker, an unknown attachment kind and an event we do not show");
    let m4a = rig::blob("ftypM4A", 1800);
    let url = fake.add_file("audioclip-1518479195000-1234.mp4", "audio/mp4", m4a.clone());
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(
            net,
            JANE_PSID,
            "m_in_6",
            json!({"attachments": [{"type": "audio", "payload": {"url": url}}]}),
        ),
    )
    .await?;
    let audio = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.audio")
        .await?;
    ensure!(
        env.alice.fetch_file(&audio).await? == m4a && audio.mimetype() == Some("audio/mp4"),
        "{:?}",
        audio.content
    );
    let url = fake.add_file("sticker.png", "image/png", rig::blob("sticker", 600));
    let sticker = json!({"sticker_id": 369239263222822u64, "attachments": [{"type": "image", "payload": {"url": url, "sticker_id": 369239263222822u64}}]});
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(net, JANE_PSID, "m_in_7", sticker),
    )
    .await?;
    env.alice
        .wait_for_message(&room, |m| {
            m.msgtype == "m.image" && m.filename().ends_with("sticker.png")
        })
        .await
        .context("the sticker")?;
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(
            net,
            JANE_PSID,
            "m_in_8",
            json!({"attachments": [{"type": "hologram", "payload": {}}]}),
        ),
    )
    .await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| m.is_notice() && m.body.contains("hologram"))
        .await?;
    ensure!(
        notice.sender == hello.sender,
        "the notice is the ghost's: {}",
        notice.sender
    );
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::item(
            net,
            JANE_PSID,
            "referral",
            json!({"ref": "SPRING_SALE", "source": "ADS", "type": "OPEN_THREAD"}),
        ),
    )
    .await?;
    env.alice
        .wait_for_message(&room, |m| m.is_notice() && m.body.contains("SPRING_SALE"))
        .await?;

    steps.step("A quick reply and a postback arrive as text; a reply keeps its target");
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(
            net,
            JANE_PSID,
            "m_in_4",
            json!({"text": "Red", "quick_reply": {"payload": "COLOR_RED"}}),
        ),
    )
    .await?;
    env.alice.wait_for_text(&room, "Red").await?;
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::item(
            net,
            JANE_PSID,
            "postback",
            json!({"mid": "m_pb_1", "title": "Talk to a human", "payload": "HUMAN"}),
        ),
    )
    .await?;
    env.alice.wait_for_text(&room, "Talk to a human").await?;
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(
            net,
            JANE_PSID,
            "m_in_5",
            json!({"text": "see my first message", "reply_to": {"mid": "m_in_1"}}),
        ),
    )
    .await?;
    let reply = env
        .alice
        .wait_for_text(&room, "see my first message")
        .await?;
    ensure!(
        reply.in_reply_to() == Some(hello.event_id.as_str()),
        "in_reply_to {:?}",
        reply.relates_to
    );

    steps.step("The operator answers: the Send API got the right JSON with the Page token");
    let answer = env
        .alice
        .send_text(&room, "It left the warehouse today")
        .await?;
    let sent = fake
        .wait_for_call("me/messages", |c| {
            c.status == 200 && c.text() == Some("It left the warehouse today")
        })
        .await?;
    ensure!(
        sent.recipient() == Some(JANE_PSID),
        "recipient {}",
        sent.body
    );
    ensure!(
        sent.body["messaging_type"] == "RESPONSE",
        "messaging_type {}",
        sent.body
    );
    ensure!(
        sent.token.as_deref() == Some(PAGE_TOKEN),
        "token {:?}",
        sent.token
    );
    env.alice
        .wait_for_send_status(&room, &answer, "SUCCESS")
        .await?;
    let answer_mid = fake
        .sent()
        .iter()
        .find(|s| s.message["text"] == "It left the warehouse today")
        .map(|s| s.mid.clone())
        .context("the answer in the fake")?;

    steps.step("A file out: uploaded as multipart filedata, then sent by attachment id");
    let label = rig::blob("%PDF-1.7", 2500);
    let label_event = env
        .alice
        .send_file(&room, "return-label.pdf", "application/pdf", label.clone())
        .await?;
    let upload = fake
        .wait_for_call("me/message_attachments", |c| c.status == 200)
        .await?;
    let up = upload.upload.clone().context("the uploaded file")?;
    ensure!(
        up.field == "filedata"
            && up.bytes == label
            && up.name == "return-label.pdf"
            && up.mime == "application/pdf",
        "upload {} bytes named {} ({})",
        up.bytes.len(),
        up.name,
        up.mime
    );
    ensure!(
        upload.body["message"]["attachment"]["type"] == "file",
        "upload message {}",
        upload.body
    );
    ensure!(
        upload.body.get("platform").is_none(),
        "no platform field on Messenger"
    );
    let with_file = fake
        .wait_for_call("me/messages", |c| {
            c.status == 200 && c.body["message"]["attachment"].is_object()
        })
        .await?;
    let id = with_file.body["message"]["attachment"]["payload"]["attachment_id"]
        .as_str()
        .context("attachment_id")?;
    ensure!(
        fake.attachment(id).is_some_and(|u| u.bytes == label),
        "the message names the uploaded file"
    );
    ensure!(
        with_file.body["message"]["attachment"]["type"] == "file"
            && with_file.recipient() == Some(JANE_PSID)
    );
    env.alice
        .wait_for_send_status(&room, &label_event, "SUCCESS")
        .await?;

    steps.step("The customer reacts to the answer: an m.reaction by the ghost on Alice's event");
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::item(
            net,
            JANE_PSID,
            "reaction",
            json!({"mid": answer_mid, "action": "react", "reaction": "love", "emoji": "❤️"}),
        ),
    )
    .await?;
    let reaction = env
        .alice
        .wait_for_event(&room, "the customer's reaction", |e| {
            e["type"] == "m.reaction" && e["content"]["m.relates_to"]["event_id"] == answer.as_str()
        })
        .await?;
    ensure!(
        reaction["content"]["m.relates_to"]["key"] == "❤️"
            && reaction["sender"] == hello.sender.as_str(),
        "{reaction}"
    );

    steps.step(
        "Messenger's read watermark: the ghost's receipt lands on the newest message it covers",
    );
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::item(net, JANE_PSID, "read", json!({"watermark": now_ms()})),
    )
    .await?;
    env.alice
        .wait_for_read_receipt(&room, &hello.sender, &label_event)
        .await?;

    steps.step("An operator's reaction goes out as sender_action react");
    env.alice.react(&room, &hello.event_id, "👍").await?;
    let react = fake
        .wait_for_call("me/messages", |c| c.sender_action() == Some("react"))
        .await?;
    ensure!(
        react.body["payload"] == json!({"message_id": "m_in_1", "reaction": "👍"})
            && react.status == 200,
        "{}",
        react.body
    );

    steps.step("Exactly once each; the echo never reached Matrix");
    let messages = env.alice.messages(&room);
    ensure!(
        messages
            .iter()
            .filter(|m| m.body.contains("where is order #123?"))
            .count()
            == 1,
        "the redelivery doubled the message"
    );
    ensure!(
        !messages
            .iter()
            .any(|m| m.body.contains("echoed page message")),
        "an echo was bridged"
    );
    let answers = fake
        .calls("me/messages")
        .iter()
        .filter(|c| c.text() == Some("It left the warehouse today"))
        .count();
    ensure!(answers == 1, "the answer was sent {answers} times");
    steps.finish()
}

async fn instagram_conversation_both_ways(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("instagram conversation both ways");
    let net = Net::Instagram;
    let fake = FakeMeta::start().await?;
    let env = TestEnv::start(options(backend, &fake)).await?;
    fake.add_profile(
        net,
        PETER_IGSID,
        json!({"name": "Peter Chang", "username": "peter_chang_live"}),
    );

    deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(
            net,
            PETER_IGSID,
            "aWdfIn1",
            json!({"text": "Omg, is this in stock?"}),
        ),
    )
    .await?;
    let room = env.alice.wait_for_invite("Peter Chang").await?;
    let first = env.alice.wait_for_text(&room, "is this in stock?").await?;
    ensure!(
        first.sender.starts_with("@sb_instagram_"),
        "sent by a ghost, not {}",
        first.sender
    );
    let members = env.alice.members(&room).await?;
    let ghost_name = members
        .iter()
        .find(|(id, _)| id == &first.sender)
        .map(|(_, n)| n.clone());
    ensure!(
        ghost_name.as_deref() == Some("Peter Chang"),
        "ghost display name: {ghost_name:?}"
    );
    let lookup = fake.wait_for_call(PETER_IGSID, |c| c.status == 200).await?;
    ensure!(
        lookup.query.get("fields").map(String::as_str) == Some("name,username,profile_pic"),
        "{:?}",
        lookup.query
    );

    steps.step("An image, and a story reply with its link");
    let png = rig::blob("\u{89}PNG", 2000);
    let url = fake.add_file("ig_asset", "image/png", png.clone());
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(
            net,
            PETER_IGSID,
            "aWdfIn2",
            json!({"attachments": [{"type": "image", "payload": {"url": url}}]}),
        ),
    )
    .await?;
    let image = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.image")
        .await?;
    ensure!(
        env.alice.fetch_file(&image).await? == png && image.mimetype() == Some("image/png"),
        "the image"
    );
    let story = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1&signature=FAKE";
    deliver(&fake, &env, net, FakeMeta::message(net, PETER_IGSID, "aWdfIn3", json!({"text": "Nice story!", "reply_to": {"story": {"url": story, "id": "18000000000000000"}}}))).await?;
    let reply = env.alice.wait_for_text(&room, "Nice story!").await?;
    ensure!(
        reply.body.contains("Replied to your story") && reply.body.contains(story),
        "{}",
        reply.body
    );

    steps.step("The customer unsends a message: its event is redacted");
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(net, PETER_IGSID, "aWdfIn3", json!({"is_deleted": true})),
    )
    .await?;
    env.alice.wait_for_redaction(&room, &reply.event_id).await?;

    steps.step("The operator answers, and sends an image (uploaded with platform=instagram)");
    let answer = env.alice.send_text(&room, "Yes, all sizes").await?;
    let sent = fake
        .wait_for_call("me/messages", |c| {
            c.status == 200 && c.text() == Some("Yes, all sizes")
        })
        .await?;
    ensure!(
        sent.recipient() == Some(PETER_IGSID) && sent.token.as_deref() == Some(PAGE_TOKEN),
        "{}",
        sent.body
    );
    let photo = rig::blob("\u{89}PNG", 1500);
    let photo_event = env
        .alice
        .send_file(&room, "sizes.png", "image/png", photo.clone())
        .await?;
    let upload = fake
        .wait_for_call("me/message_attachments", |c| c.status == 200)
        .await?;
    ensure!(
        upload.body["platform"] == "instagram",
        "upload fields {}",
        upload.body
    );
    ensure!(
        upload
            .upload
            .as_ref()
            .is_some_and(|u| u.bytes == photo && u.mime == "image/png"),
        "the photo's bytes"
    );
    ensure!(
        upload.body["message"]["attachment"]["type"] == "image",
        "{}",
        upload.body
    );
    fake.wait_for_call("me/messages", |c| {
        c.status == 200 && c.body["message"]["attachment"]["type"] == "image"
    })
    .await?;
    env.alice
        .wait_for_send_status(&room, &photo_event, "SUCCESS")
        .await?;
    let answer_mid = fake
        .sent()
        .iter()
        .find(|s| s.message["text"] == "Yes, all sizes")
        .map(|s| s.mid.clone())
        .context("the answer")?;

    steps.step("Instagram's read names the message: the ghost's receipt on Alice's answer");
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::item(net, PETER_IGSID, "read", json!({"mid": answer_mid})),
    )
    .await?;
    env.alice
        .wait_for_read_receipt(&room, &first.sender, &answer)
        .await?;

    steps.step("A reaction, then taking it back");
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::item(
            net,
            PETER_IGSID,
            "reaction",
            json!({"mid": answer_mid, "action": "react", "reaction": "love", "emoji": "❤️"}),
        ),
    )
    .await?;
    let reaction = env
        .alice
        .wait_for_event(&room, "the reaction", |e| {
            e["type"] == "m.reaction" && e["content"]["m.relates_to"]["event_id"] == answer.as_str()
        })
        .await?;
    let reaction_id = reaction["event_id"]
        .as_str()
        .context("reaction event id")?
        .to_owned();
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::item(
            net,
            PETER_IGSID,
            "reaction",
            json!({"mid": answer_mid, "action": "unreact"}),
        ),
    )
    .await?;
    env.alice.wait_for_redaction(&room, &reaction_id).await?;

    steps.step("An edit with its new text replaces the message");
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::item(
            net,
            PETER_IGSID,
            "message_edit",
            json!({"mid": "aWdfIn1", "text": "Omg, is this in stock in M?", "num_edit": 1}),
        ),
    )
    .await?;
    let edit = env
        .alice
        .wait_for_message(&room, |m| m.replaces() == Some(first.event_id.as_str()))
        .await?;
    ensure!(
        edit.new_body() == Some("Omg, is this in stock in M?"),
        "{:?}",
        edit.content
    );
    steps.finish()
}

/// The bridge dies while a delivery is half stored (its text stored, its image still being
/// fetched): no 200 went out, so Meta delivers the batch again to the restarted bridge, and
/// each message reaches the room once.
async fn a_crash_while_storing_a_delivery_loses_nothing(backend: Backend) -> anyhow::Result<()> {
    let net = Net::Messenger;
    let fake = FakeMeta::start().await?;
    let mut env = TestEnv::start(options(backend, &fake)).await?;
    fake.add_profile(
        net,
        JANE_PSID,
        json!({"first_name": "Jane", "last_name": "Doe"}),
    );
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(net, JANE_PSID, "m_first", json!({"text": "first"})),
    )
    .await?;
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "first").await?;

    let jpeg = rig::blob("jpeg", 1000);
    let url = fake.add_file("in-flight.jpg", "image/jpeg", jpeg.clone());
    let mut batch = FakeMeta::delivery(
        net,
        FakeMeta::message(
            net,
            JANE_PSID,
            "m_before",
            json!({"text": "before the crash"}),
        ),
    );
    batch["entry"][0]["messaging"]
        .as_array_mut()
        .context("messaging")?
        .push(FakeMeta::message(
            net,
            JANE_PSID,
            "m_photo",
            json!({"attachments": [{"type": "image", "payload": {"url": url}}]}),
        ));
    fake.hold_cdn();
    let hook = webhook(&env, net);
    let in_flight = {
        let (hook, batch) = (hook.clone(), batch.clone());
        let bytes = batch.to_string().into_bytes();
        let signature = sign(APP_SECRET, &bytes);
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(&hook)
                .header("X-Hub-Signature-256", signature)
                .header("content-type", "application/json")
                .body(bytes)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    rig::poll_until(
        "the bridge fetching the image",
        Duration::from_secs(30),
        || async { Ok((!fake.held_downloads().is_empty()).then_some(())) },
    )
    .await?;
    env.alice.wait_for_text(&room, "before the crash").await?;
    env.bridge.kill();
    let answer = in_flight.await?;
    ensure!(
        !matches!(answer, Ok(200)),
        "the half-stored delivery was acknowledged: {answer:?}"
    );
    fake.release_cdn();
    env.bridge.start().await?;

    // Meta delivers the batch again.
    ensure!(fake.deliver(&hook, &batch).await? == 200);
    let image = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.image")
        .await?;
    ensure!(env.alice.fetch_file(&image).await? == jpeg);
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(
            net,
            JANE_PSID,
            "m_after",
            json!({"text": "after the restart"}),
        ),
    )
    .await?;
    env.alice.wait_for_text(&room, "after the restart").await?;
    let messages = env.alice.messages(&room);
    for text in ["first", "before the crash"] {
        let n = messages.iter().filter(|m| m.body == text).count();
        ensure!(n == 1, "{text:?} bridged {n} times");
    }
    ensure!(
        messages.iter().filter(|m| m.msgtype == "m.image").count() == 1,
        "the image bridged once"
    );
    Ok(())
}

/// Meta's refusals become notices operators can read; rate limits are retried until delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_become_notices_and_rate_limits_are_retried() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("refusals become notices and rate limits are retried");
    let net = Net::Messenger;
    let fake = FakeMeta::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &fake).max_attempts(6)).await?;
    fake.add_profile(
        net,
        JANE_PSID,
        json!({"first_name": "Jane", "last_name": "Doe"}),
    );
    deliver(
        &fake,
        &env,
        net,
        FakeMeta::message(net, JANE_PSID, "m_in_1", json!({"text": "hello?"})),
    )
    .await?;
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "hello?").await?;

    steps.step("Two (#613) rate-limit refusals, then delivered");
    fake.fault(Some("me/messages"), FaultKind::RateLimit { code: 613 }, 2);
    env.alice.send_text(&room, "patience").await?;
    fake.wait_for_call("me/messages", |c| {
        c.status == 200 && c.text() == Some("patience")
    })
    .await?;
    let tries: Vec<u16> = fake
        .calls("me/messages")
        .iter()
        .filter(|c| c.text() == Some("patience"))
        .map(|c| c.status)
        .collect();
    ensure!(
        tries == [400, 400, 200],
        "two refusals and one success, got {tries:?}"
    );

    steps.step("HTTP 429 with Retry-After: waited out, then delivered");
    fake.fault(
        Some("me/messages"),
        FaultKind::TooManyRequests {
            retry_after: Some(2),
        },
        1,
    );
    env.alice.send_text(&room, "still here").await?;
    fake.wait_for_call("me/messages", |c| {
        c.status == 200 && c.text() == Some("still here")
    })
    .await?;
    let tries: Vec<_> = fake
        .calls("me/messages")
        .into_iter()
        .filter(|c| c.text() == Some("still here"))
        .collect();
    ensure!(
        tries.len() == 2 && tries[0].status == 429,
        "one 429 then success: {:?}",
        tries.iter().map(|c| c.status).collect::<Vec<_>>()
    );
    let gap = tries[1].at.duration_since(tries[0].at);
    ensure!(
        gap >= Duration::from_millis(1950),
        "retried after {gap:?}, before Retry-After (2 s)"
    );

    steps.step(
        "A caption and a file; the upload fails once (5xx): the retry sends only what is missing",
    );
    let pdf = rig::blob("%PDF-1.5", 1200);
    let mxc = env.alice.upload("application/pdf", pdf.clone()).await?;
    fake.fault(Some("me/message_attachments"), FaultKind::ServerError, 1);
    let content = json!({"msgtype": "m.file", "body": "the label, as promised", "filename": "label.pdf", "url": mxc,
                         "info": {"mimetype": "application/pdf", "size": pdf.len()}});
    env.alice.send_content(&room, content).await?;
    let sent = fake
        .wait_for_call("me/messages", |c| {
            c.status == 200 && c.body["message"]["attachment"]["type"] == "file"
        })
        .await?;
    let id = sent.body["message"]["attachment"]["payload"]["attachment_id"]
        .as_str()
        .context("attachment_id")?;
    ensure!(
        fake.attachment(id)
            .is_some_and(|u| u.bytes == pdf && u.name == "label.pdf"),
        "the file"
    );
    let uploads: Vec<u16> = fake
        .calls("me/message_attachments")
        .iter()
        .map(|c| c.status)
        .collect();
    ensure!(uploads == [500, 200], "uploads {uploads:?}");
    let captions = fake
        .calls("me/messages")
        .iter()
        .filter(|c| c.status == 200 && c.text() == Some("the label, as promised"))
        .count();
    ensure!(captions == 1, "the caption went out {captions} times");

    steps
        .step("Outside the 24-hour window (Meta's clock says so): a notice quoting Meta, no retry");
    fake.outside_window(JANE_PSID, true);
    let late = env.alice.send_text(&room, "sorry for the wait").await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(late.as_str())
        })
        .await?;
    // A refusal is not worth a plain retry, and the notice says so.
    ensure!(
        notice.body.contains("24-hour window")
            && notice
                .body
                .contains("(#10) This message is sent outside of allowed window.")
            && notice.body.contains("would be refused again")
            && !notice.body.contains("to try again"),
        "notice: {}",
        notice.body
    );
    let attempts = fake
        .calls("me/messages")
        .iter()
        .filter(|c| c.text() == Some("sorry for the wait"))
        .count();
    ensure!(
        attempts == 1,
        "a permanent failure is not retried ({attempts} attempts)"
    );

    steps.step("A customer who is not available any more (551)");
    fake.outside_window(JANE_PSID, false);
    fake.unavailable(JANE_PSID, true);
    let gone = env.alice.send_text(&room, "are you there?").await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(gone.as_str())
        })
        .await?;
    ensure!(
        notice.body.contains("not available on Messenger")
            && notice
                .body
                .contains("This person isn't available right now."),
        "notice: {}",
        notice.body
    );
    steps.finish()
}

/// The subscription handshake, and signatures checked before anything else on both webhooks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_check_the_handshake_and_signatures() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("webhooks check the handshake and signatures");
    let fake = FakeMeta::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &fake)).await?;
    fake.add_profile(
        Net::Messenger,
        JANE_PSID,
        json!({"first_name": "Jane", "last_name": "Doe"}),
    );
    fake.add_profile(Net::Instagram, PETER_IGSID, json!({"name": "Peter Chang"}));
    let http = reqwest::Client::new();

    steps.step("GET handshake: the challenge echoed with the right verify token only (the fixture's query)");
    let form = std::fs::read_to_string(
        rig::repo_root().join("bridges/messenger/fixtures/meta/verify_challenge_query.form"),
    )?;
    for net in [Net::Messenger, Net::Instagram] {
        let ok = http
            .get(format!("{}?{}", webhook(&env, net), form.trim()))
            .send()
            .await?;
        ensure!(ok.status() == 200, "handshake: {}", ok.status());
        ensure!(ok.text().await? == "1158201444", "the challenge is echoed");
        let wrong = http
            .get(format!(
                "{}?hub.mode=subscribe&hub.challenge=42&hub.verify_token=guess",
                webhook(&env, net)
            ))
            .send()
            .await?;
        ensure!(
            wrong.status() == 403,
            "wrong verify token: {}",
            wrong.status()
        );
    }

    steps.step("Forged deliveries: no signature, another secret, a body changed after signing");
    for net in [Net::Messenger, Net::Instagram] {
        let from = if net == Net::Messenger {
            JANE_PSID
        } else {
            PETER_IGSID
        };
        let forged = FakeMeta::delivery(
            net,
            FakeMeta::message(net, from, "m_forged", json!({"text": "forged message"})),
        );
        let bytes = forged.to_string().into_bytes();
        let url = webhook(&env, net);
        ensure!(
            fake.deliver_raw(&url, bytes.clone(), None).await? == 401,
            "no signature"
        );
        ensure!(
            fake.deliver_raw(&url, bytes.clone(), Some(&sign("another-secret", &bytes)))
                .await?
                == 403,
            "another secret"
        );
        let signed = sign(APP_SECRET, &bytes);
        let tampered = String::from_utf8(bytes.clone())?
            .replace("forged message", "forged massage")
            .into_bytes();
        ensure!(
            fake.deliver_raw(&url, tampered, Some(&signed)).await? == 403,
            "altered body"
        );
        ensure!(
            fake.deliver_raw(
                &url,
                bytes,
                Some("sha1=5d10445a0c17c7067a4870ddef63bbf2d6b599f5")
            )
            .await?
                == 403,
            "SHA-1 only"
        );
        // Signed garbage is Meta's all the same: kept, shown and answered 200.
        let garbage = format!("{{not json from {net:?}").into_bytes();
        let sig = sign(APP_SECRET, &garbage);
        ensure!(
            fake.deliver_raw(&url, garbage, Some(&sig)).await? == 200,
            "signed garbage"
        );
    }
    let lobby = env.alice.wait_for_invite("lobby").await?;
    env.alice.wait_for_text(&lobby, "not json from").await?;
    rig::poll_until("the refusals logged", Duration::from_secs(10), || async {
        Ok(env.bridge.log().contains("bad signature").then_some(()))
    })
    .await?;

    steps.step("The real ones go through, one room per network");
    deliver(
        &fake,
        &env,
        Net::Messenger,
        FakeMeta::message(
            Net::Messenger,
            JANE_PSID,
            "m_real",
            json!({"text": "real messenger message"}),
        ),
    )
    .await?;
    let m_room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice
        .wait_for_text(&m_room, "real messenger message")
        .await?;
    deliver(
        &fake,
        &env,
        Net::Instagram,
        FakeMeta::message(
            Net::Instagram,
            PETER_IGSID,
            "aWdfReal",
            json!({"text": "real instagram message"}),
        ),
    )
    .await?;
    let i_room = env.alice.wait_for_invite("Peter Chang").await?;
    env.alice
        .wait_for_text(&i_room, "real instagram message")
        .await?;
    ensure!(m_room != i_room);
    for room in [&m_room, &i_room] {
        ensure!(
            !env.alice
                .messages(room)
                .iter()
                .any(|m| m.body.contains("forged")),
            "a forged delivery reached Matrix"
        );
    }
    steps.step("A file the CDN cannot serve right now: 503, so Meta delivers again; then it is bridged once, and a further redelivery changes nothing");
    let jpeg = rig::blob("jpeg", 900);
    let url = fake.add_file("retry.jpg", "image/jpeg", jpeg.clone());
    let body = FakeMeta::delivery(
        Net::Messenger,
        FakeMeta::message(
            Net::Messenger,
            JANE_PSID,
            "m_img_retry",
            json!({"attachments": [{"type": "image", "payload": {"url": url}}]}),
        ),
    );
    fake.fault(Some("cdn"), FaultKind::ServerError, 1);
    let hook = webhook(&env, Net::Messenger);
    ensure!(
        fake.deliver(&hook, &body).await? == 503,
        "a file that may work later is not acknowledged"
    );
    ensure!(fake.deliver(&hook, &body).await? == 200);
    let image = env
        .alice
        .wait_for_message(&m_room, |m| m.msgtype == "m.image")
        .await?;
    ensure!(env.alice.fetch_file(&image).await? == jpeg);
    ensure!(fake.deliver(&hook, &body).await? == 200);
    env.alice.send_text(&m_room, "marker").await?;
    fake.wait_for_call("me/messages", |c| c.text() == Some("marker"))
        .await?;
    ensure!(
        env.alice
            .messages(&m_room)
            .iter()
            .filter(|m| m.msgtype == "m.image")
            .count()
            == 1,
        "the image bridged once"
    );
    ensure!(fake.calls("cdn/").is_empty(), "sanity");
    let fetches = fake
        .all_calls()
        .iter()
        .filter(|c| c.path.ends_with("_retry.jpg"))
        .count();
    ensure!(
        fetches == 2,
        "fetched {fetches} times: the failed try and the stored one, not for the last redelivery"
    );

    steps.step("A delivery of the other network's object on a webhook is acknowledged and ignored");
    let wrong = FakeMeta::delivery(
        Net::Messenger,
        FakeMeta::message(
            Net::Messenger,
            JANE_PSID,
            "m_wrong",
            json!({"text": "wrong endpoint"}),
        ),
    );
    ensure!(fake.deliver(&webhook(&env, Net::Instagram), &wrong).await? == 200);
    steps.finish()
}

/// The fake itself speaks the Graph API's envelope (a check of the test tool, no bridge).
#[tokio::test]
async fn the_fake_speaks_the_graph_api() -> anyhow::Result<()> {
    let fake = FakeMeta::start().await?;
    fake.add_profile(
        Net::Messenger,
        JANE_PSID,
        json!({"first_name": "Jane", "last_name": "Doe"}),
    );
    let http = reqwest::Client::new();
    let send = |token: &str, body: Value| {
        http.post(format!("{}/v21.0/me/messages", fake.url()))
            .query(&[("access_token", token)])
            .json(&body)
            .send()
    };
    let wrong = send("nope", json!({})).await?;
    ensure!(wrong.status() == 400);
    let body: Value = wrong.json().await?;
    ensure!(
        body["error"]["code"] == 190 && body["error"]["type"] == "OAuthException",
        "{body}"
    );
    let nobody: Value = send(
        PAGE_TOKEN,
        json!({"recipient": {"id": "1"}, "messaging_type": "RESPONSE", "message": {"text": "x"}}),
    )
    .await?
    .json()
    .await?;
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(
        rig::repo_root().join("bridges/messenger/fixtures/messenger/error_no_matching_user.json"),
    )?)?;
    ensure!(
        nobody["error"]["code"] == fixture["error"]["code"]
            && nobody["error"]["error_subcode"] == fixture["error"]["error_subcode"]
            && nobody["error"]["message"] == fixture["error"]["message"],
        "{nobody}"
    );
    let ok: Value = send(PAGE_TOKEN, json!({"recipient": {"id": JANE_PSID}, "messaging_type": "RESPONSE", "message": {"text": "hi"}})).await?.json().await?;
    let shape: Value = serde_json::from_str(&std::fs::read_to_string(
        rig::repo_root().join("bridges/messenger/fixtures/messenger/send_response.json"),
    )?)?;
    let keys = |v: &Value| {
        v.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    ensure!(
        keys(&ok) == keys(&shape) && ok["recipient_id"] == JANE_PSID,
        "{ok}"
    );
    let too_long = send(PAGE_TOKEN, json!({"recipient": {"id": JANE_PSID}, "messaging_type": "RESPONSE", "message": {"text": "x".repeat(2001)}})).await?;
    ensure!(too_long.status() == 400);
    let profile: Value = http
        .get(format!("{}/v21.0/{JANE_PSID}", fake.url()))
        .header("Authorization", format!("Bearer {PAGE_TOKEN}"))
        .query(&[("fields", "first_name")])
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        profile == json!({"id": JANE_PSID, "first_name": "Jane"}),
        "{profile}"
    );
    Ok(())
}
