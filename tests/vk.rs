//! The VK channel end to end: a customer on a wire-level fake of VK (`tests/fakes/vk.rs`: the API
//! methods, upload servers, attachment URLs and Callback API deliveries), operators as real
//! Matrix clients, the real `switchboard` binary and a real Synapse in between. The bridge is
//! configured with the fake's base URL as `channels.vk.api_url` and knows nothing else of it.
//!
//! The main flows run on SQLite and on PostgreSQL; the retry and failure scenarios on SQLite.

mod fakes;
#[macro_use]
mod rig;

use std::time::Duration;

use anyhow::{ensure, Context};
use fakes::vk::{FakeVk, VkUser, CONFIRMATION, GROUP_ID, SECRET, TOKEN};
use rig::{Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};

on_both_stores!(
    customer_messages_reach_matrix_once_and_only_when_signed,
    operator_replies_files_edits_and_deletions_reach_the_customer,
    a_crash_before_the_answer_loses_nothing,
    messages_in_unexpected_shapes_reach_a_room,
);

/// Bridge options with `channels.vk` pointing at the fake.
fn options(backend: Backend, fake: &FakeVk) -> BridgeOptions {
    options_with(backend, fake, json!({}))
}

/// The same with `extra` merged into the section.
fn options_with(backend: Backend, fake: &FakeVk, extra: Value) -> BridgeOptions {
    let mut section = json!({
        "enabled": true,
        "api_url": fake.api_url(),
        "access_token": TOKEN,
        "group_id": GROUP_ID,
        "secret": SECRET,
        "confirmation": CONFIRMATION,
    });
    if let (Some(s), Value::Object(e)) = (section.as_object_mut(), extra) {
        s.extend(e);
    }
    BridgeOptions::default()
        .backend(backend)
        .channel("vk", section)
}

fn ivan() -> VkUser {
    VkUser::new(228970688, "Иван", "Петров")
}

fn callback_url(env: &TestEnv) -> String {
    format!("{}/vk/callback", env.bridge.base_url())
}

/// Deliver an event and expect VK's `ok`.
async fn deliver(fake: &FakeVk, url: &str, event: &Value) -> anyhow::Result<()> {
    let (status, body) = fake.post_callback(url, event).await?;
    ensure!(
        status == 200 && body == "ok",
        "callback answered {status} {body:?}"
    );
    Ok(())
}

async fn customer_messages_reach_matrix_once_and_only_when_signed(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("customer messages reach matrix once and only when signed");
    let fake = FakeVk::start().await?;
    let env = TestEnv::start(options(backend, &fake)).await?;
    let url = callback_url(&env);
    let user = ivan();
    fake.add_user(&user, Some(rig::blob("avatar", 400)));

    steps.step("The Callback API server is confirmed with the configured string");
    let (status, body) = fake.post_callback(&url, &fake.confirmation()).await?;
    ensure!(
        status == 200 && body == CONFIRMATION,
        "confirmation answered {status} {body:?}"
    );

    steps.step("Events without the secret, with a wrong one, or for another community are refused");
    let (forged, _) = fake.message_new(&user, json!({"text": "forged message"}));
    let mut wrong = forged.clone();
    wrong["secret"] = "FAKE_CALLBACK_SECRE".into();
    ensure!(
        fake.post_callback(&url, &wrong).await?.0 == 403,
        "wrong secret"
    );
    let mut missing = forged.clone();
    missing.as_object_mut().context("object")?.remove("secret");
    ensure!(
        fake.post_callback(&url, &missing).await?.0 == 401,
        "missing secret"
    );
    let mut other = forged.clone();
    other["group_id"] = 1.into();
    ensure!(
        fake.post_callback(&url, &other).await?.0 == 403,
        "another community"
    );
    ensure!(
        fake.post_callback(&url, &json!("not an event")).await?.0 == 400,
        "garbage"
    );

    steps.step("Text: a room named after the customer (users.get), the ghost with their name");
    let (hello, hello_cmid) =
        fake.message_new(&user, json!({"text": "Здравствуйте, где мой заказ?"}));
    deliver(&fake, &url, &hello).await?;
    let room = env.alice.wait_for_invite("Иван Петров").await?;
    let first = env.alice.wait_for_text(&room, "где мой заказ").await?;
    ensure!(
        first.sender.starts_with("@sb_vk_"),
        "sent by a ghost, not {}",
        first.sender
    );
    let members = env.alice.members(&room).await?;
    let ghost_name = members
        .iter()
        .find(|(id, _)| id == &first.sender)
        .map(|(_, n)| n.clone());
    ensure!(
        ghost_name.as_deref() == Some("Иван Петров"),
        "ghost display name: {ghost_name:?}"
    );
    fake.wait_for_call("users.get", |c| {
        c.str("user_ids").as_deref() == Some("228970688")
            && c.str("fields").is_some_and(|f| f.contains("photo_200"))
    })
    .await?;
    steps.step("VK delivering the same event again changes nothing");
    deliver(&fake, &url, &hello).await?;

    steps.step("A photo (largest size fetched) and a document, with text");
    let photo = rig::blob("jpeg", 3000);
    let small = fake.add_file("s.jpg", rig::blob("thumb", 20));
    let big = fake.add_file("z.jpg", photo.clone());
    let pdf = rig::blob("%PDF-1.4", 4000);
    let pdf_url = fake.add_file("doc228970688_670000001", pdf.clone());
    let (docs, _) = fake.message_new(&user, json!({
        "text": "Документы во вложении",
        "attachments": [fake.doc_attachment(user.id, "Счёт №15.pdf", "pdf", &pdf_url, pdf.len()), fake.photo_attachment(user.id, &small, &big)],
    }));
    deliver(&fake, &url, &docs).await?;
    let image = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.image")
        .await?;
    ensure!(
        env.alice.fetch_file(&image).await? == photo,
        "the photo's bytes (largest size)"
    );
    let file = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.file")
        .await?;
    ensure!(
        file.filename() == "Счёт №15.pdf" && file.mimetype() == Some("application/pdf"),
        "{:?}",
        file.content
    );
    ensure!(
        env.alice.fetch_file(&file).await? == pdf,
        "the document's bytes"
    );
    env.alice
        .wait_for_text(&room, "Документы во вложении")
        .await?;

    steps.step("A voice message answering the first message");
    let ogg = rig::blob("OggS", 1500);
    let ogg_url = fake.add_file("voice.ogg", ogg.clone());
    let (voice, _) = fake.message_new(&user, json!({
        "text": "see above",
        "attachments": [fake.audio_message_attachment(user.id, &ogg_url)],
        "reply_message": {"date": 1, "from_id": user.id, "text": "Здравствуйте, где мой заказ?", "attachments": [],
                          "conversation_message_id": hello_cmid, "peer_id": user.id, "id": 0},
    }));
    deliver(&fake, &url, &voice).await?;
    let audio = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.audio")
        .await?;
    ensure!(
        audio.mimetype() == Some("audio/ogg") && env.alice.fetch_file(&audio).await? == ogg,
        "the voice message"
    );
    let reply = env.alice.wait_for_text(&room, "see above").await?;
    ensure!(
        reply.in_reply_to() == Some(first.event_id.as_str()),
        "in_reply_to {:?}",
        reply.relates_to
    );

    steps.step("An edit replaces the original; an event we do not know becomes a notice");
    deliver(
        &fake,
        &url,
        &fake.message_edit(&user, hello_cmid, "Здравствуйте, где мой заказ №15?"),
    )
    .await?;
    let edit = env
        .alice
        .wait_for_message(&room, |m| m.replaces() == Some(first.event_id.as_str()))
        .await?;
    ensure!(
        edit.new_body() == Some("Здравствуйте, где мой заказ №15?"),
        "{:?}",
        edit.content
    );
    deliver(
        &fake,
        &url,
        &fake.event("message_deny", json!({"user_id": user.id})),
    )
    .await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.body.contains("no longer allows")
        })
        .await?;
    ensure!(
        notice.sender == first.sender || notice.sender.contains("switchboard"),
        "notice from {}",
        notice.sender
    );

    let messages = env.alice.messages(&room);
    ensure!(
        !messages.iter().any(|m| m.body.contains("forged")),
        "a refused event reached Matrix"
    );
    let n = messages
        .iter()
        .filter(|m| m.body == "Здравствуйте, где мой заказ?")
        .count();
    ensure!(n == 1, "the redelivered message was bridged {n} times");
    steps.finish()
}

async fn operator_replies_files_edits_and_deletions_reach_the_customer(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps =
        rig::Steps::new("operator replies files edits and deletions reach the customer");
    let fake = FakeVk::start().await?;
    let env = TestEnv::start(options(backend, &fake)).await?;
    let url = callback_url(&env);
    fake.set_callback_url(&url);
    let user = ivan();
    fake.add_user(&user, None);
    let (question, question_cmid) =
        fake.message_new(&user, json!({"text": "Вы доставляете в Казань?"}));
    deliver(&fake, &url, &question).await?;
    let room = env.alice.wait_for_invite("Иван Петров").await?;
    let asked = env.alice.wait_for_text(&room, "Казань").await?;

    steps
        .step("Text out: the community token, the customer's peer, a random_id for VK's own dedup");
    let answer = env.alice.send_text(&room, "Да, доставляем").await?;
    let sent = fake
        .wait_for_call("messages.send", |c| {
            c.ok() && c.str("message").as_deref() == Some("Да, доставляем")
        })
        .await?;
    ensure!(
        sent.str("access_token").as_deref() == Some(TOKEN),
        "token {:?}",
        sent.params
    );
    ensure!(
        sent.i64("peer_ids") == Some(user.id),
        "peer {:?}",
        sent.params
    );
    ensure!(
        sent.i64("random_id").is_some_and(|r| r > 0),
        "random_id {:?}",
        sent.params
    );
    ensure!(
        sent.str("v").as_deref() == Some("5.199"),
        "v {:?}",
        sent.params
    );
    env.alice
        .wait_for_send_status(&room, &answer, "SUCCESS")
        .await?;
    let answer_cmid = fake
        .community_messages(user.id)
        .into_iter()
        .find(|(_, m)| m["text"] == "Да, доставляем")
        .map(|(c, _)| c)
        .context("the answer in the fake")?;

    steps.step("A reply names the customer's message by its conversation_message_id");
    env.alice
        .reply(&room, &asked.event_id, "Срок — три дня")
        .await?;
    let reply = fake
        .wait_for_call("messages.send", |c| {
            c.ok() && c.str("message").as_deref() == Some("Срок — три дня")
        })
        .await?;
    let forward: Value =
        serde_json::from_str(&reply.str("forward").context("a forward parameter")?)?;
    ensure!(
        forward["conversation_message_ids"] == json!([question_cmid]) && forward["is_reply"] == 1,
        "forward {forward}"
    );

    steps.step("Files: an image through the photo upload server, a PDF through the document one");
    let png = rig::blob("\u{89}PNG", 2500);
    env.alice
        .send_file(&room, "label.png", "image/png", png.clone())
        .await?;
    let with_photo = fake
        .wait_for_call("messages.send", |c| {
            c.ok() && c.str("attachment").is_some_and(|a| a.starts_with("photo"))
        })
        .await?;
    let attachment = with_photo.str("attachment").unwrap_or_default();
    ensure!(
        attachment.starts_with(&format!("photo{}_", -GROUP_ID)),
        "attachment {attachment}"
    );
    let stored = fake.uploaded(&attachment).context("the uploaded photo")?;
    ensure!(
        stored.bytes == png && stored.field == "photo",
        "photo upload {} bytes in {}",
        stored.bytes.len(),
        stored.field
    );
    let pdf = rig::blob("%PDF", 3500);
    env.alice
        .send_file(&room, "return-label.pdf", "application/pdf", pdf.clone())
        .await?;
    let with_doc = fake
        .wait_for_call("messages.send", |c| {
            c.ok() && c.str("attachment").is_some_and(|a| a.starts_with("doc"))
        })
        .await?;
    let stored = fake
        .uploaded(&with_doc.str("attachment").unwrap_or_default())
        .context("the uploaded document")?;
    ensure!(
        stored.bytes == pdf && stored.name == "return-label.pdf",
        "document upload"
    );
    let saved = fake.wait_for_call("docs.save", |c| c.ok()).await?;
    ensure!(
        saved.str("title").as_deref() == Some("return-label.pdf"),
        "docs.save {:?}",
        saved.params
    );

    steps.step("The customer reads: the ghost's read receipt lands on the operator's answer");
    deliver(&fake, &url, &fake.message_read(&user, answer_cmid)).await?;
    env.alice
        .wait_for_read_receipt(&room, &asked.sender, &answer)
        .await?;

    steps.step("Operator edits and deletes: the same VK message");
    env.alice
        .edit(&room, &answer, "Да, доставляем за три дня")
        .await?;
    let edit = fake.wait_for_call("messages.edit", |c| c.ok()).await?;
    ensure!(
        edit.i64("conversation_message_id") == Some(answer_cmid)
            && edit.i64("peer_id") == Some(user.id),
        "edit {:?}",
        edit.params
    );
    let kept = fake
        .community_messages(user.id)
        .into_iter()
        .find(|(c, _)| *c == answer_cmid)
        .context("the edited message")?;
    ensure!(kept.1["text"] == "Да, доставляем за три дня", "{}", kept.1);
    env.alice.redact(&room, &answer, None).await?;
    let delete = fake.wait_for_call("messages.delete", |c| c.ok()).await?;
    ensure!(
        delete.i64("cmids") == Some(answer_cmid)
            && delete.str("delete_for_all").as_deref() == Some("1"),
        "delete {:?}",
        delete.params
    );
    ensure!(
        !fake
            .community_messages(user.id)
            .iter()
            .any(|(c, _)| *c == answer_cmid),
        "deleted in the fake"
    );

    steps.step("VK echoed each of the community's messages (message_reply): acknowledged, never bridged back");
    rig::poll_until(
        "the echoes acknowledged",
        Duration::from_secs(20),
        || async {
            let e = fake.echoes();
            Ok((e.len() >= 4).then_some(e))
        },
    )
    .await
    .and_then(|e| {
        ensure!(
            e.iter().all(|(_, status)| *status == 200),
            "echo statuses {e:?}"
        );
        Ok(())
    })?;
    let (marker, _) = fake.message_new(&user, json!({"text": "спасибо"}));
    deliver(&fake, &url, &marker).await?;
    let thanks = env.alice.wait_for_text(&room, "спасибо").await?;
    steps
        .step("The operator typing and reading reach VK as the community's activity and read mark");
    env.alice.typing(&room, true).await?;
    let typing = fake
        .wait_for_call("messages.setActivity", |c| c.ok())
        .await?;
    ensure!(
        typing.i64("peer_id") == Some(user.id) && typing.str("type").as_deref() == Some("typing"),
        "{:?}",
        typing.params
    );
    env.alice.send_read_receipt(&room, &thanks.event_id).await?;
    let read = fake
        .wait_for_call("messages.markAsRead", |c| c.ok())
        .await?;
    ensure!(
        read.i64("peer_id") == Some(user.id) && read.i64("group_id") == Some(GROUP_ID),
        "{:?}",
        read.params
    );
    let messages = env.alice.messages(&room);
    let ghost_said: Vec<&str> = messages
        .iter()
        .filter(|m| m.sender == asked.sender)
        .map(|m| m.body.as_str())
        .collect();
    ensure!(
        !ghost_said
            .iter()
            .any(|b| b.contains("доставляем") || b.contains("три дня")),
        "an echo was bridged: {ghost_said:?}"
    );
    let sends = fake
        .calls("messages.send")
        .iter()
        .filter(|c| c.str("message").as_deref() == Some("Срок — три дня"))
        .count();
    ensure!(sends == 1, "reply sent {sends} times");
    steps.finish()
}

/// Flood control is retried with the same random_id and delivered once; a customer who has not
/// allowed messages gives the operators a notice quoting VK, with no retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_control_is_retried_and_a_refusal_becomes_a_notice() -> anyhow::Result<()> {
    let fake = FakeVk::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &fake).max_attempts(5)).await?;
    let url = callback_url(&env);
    let user = ivan();
    fake.add_user(&user, None);
    let (hi, _) = fake.message_new(&user, json!({"text": "привет"}));
    deliver(&fake, &url, &hi).await?;
    let room = env.alice.wait_for_invite("Иван Петров").await?;
    env.alice.wait_for_text(&room, "привет").await?;

    fake.fault("messages.send", 9, 1);
    fake.fault("messages.send", 6, 1);
    env.alice.send_text(&room, "минутку").await?;
    fake.wait_for_call("messages.send", |c| {
        c.ok() && c.str("message").as_deref() == Some("минутку")
    })
    .await?;
    let tries: Vec<_> = fake
        .calls("messages.send")
        .into_iter()
        .filter(|c| c.str("message").as_deref() == Some("минутку"))
        .collect();
    let codes: Vec<Option<i64>> = tries.iter().map(|c| c.error).collect();
    ensure!(
        codes == vec![Some(9), Some(6), None],
        "flood control, too many requests, then success: {codes:?}"
    );
    ensure!(
        tries
            .iter()
            .all(|c| c.str("random_id") == tries[0].str("random_id")),
        "every try carries the same random_id"
    );
    let gap = tries[1].at.duration_since(tries[0].at);
    ensure!(
        gap >= Duration::from_millis(2900),
        "retried flood control after {gap:?}"
    );
    ensure!(
        fake.community_messages(user.id)
            .iter()
            .filter(|(_, m)| m["text"] == "минутку")
            .count()
            == 1,
        "delivered once"
    );

    fake.deny(user.id);
    let refused = env.alice.send_text(&room, "вы здесь?").await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(refused.as_str())
        })
        .await?;
    ensure!(
        notice.body.contains("has not allowed the community")
            && notice
                .body
                .contains("Can't send messages for users without permission"),
        "notice: {}",
        notice.body
    );
    let attempts = fake
        .calls("messages.send")
        .iter()
        .filter(|c| c.str("message").as_deref() == Some("вы здесь?"))
        .count();
    ensure!(
        attempts == 1,
        "a permanent failure is not retried ({attempts} attempts)"
    );
    Ok(())
}

/// VK accepts a message but its answer never arrives (the call times out): the retry carries the
/// same random_id, so VK answers with the message it already has and the customer gets it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_does_not_send_twice() -> anyhow::Result<()> {
    let fake = FakeVk::start().await?;
    let env = TestEnv::start(options_with(
        Backend::Sqlite,
        &fake,
        json!({"request_timeout_secs": 2}),
    ))
    .await?;
    let url = callback_url(&env);
    let user = ivan();
    fake.add_user(&user, None);
    let (hi, _) = fake.message_new(&user, json!({"text": "привет"}));
    deliver(&fake, &url, &hi).await?;
    let room = env.alice.wait_for_invite("Иван Петров").await?;
    env.alice.wait_for_text(&room, "привет").await?;

    fake.hang_sends(1);
    let sent = env.alice.send_text(&room, "один раз").await?;
    env.alice
        .wait_for_send_status(&room, &sent, "SUCCESS")
        .await?;
    let tries: Vec<_> = fake
        .calls("messages.send")
        .into_iter()
        .filter(|c| c.str("message").as_deref() == Some("один раз"))
        .collect();
    ensure!(
        tries.len() >= 2,
        "the timed-out call was retried ({} calls)",
        tries.len()
    );
    ensure!(
        tries
            .iter()
            .all(|c| c.str("random_id") == tries[0].str("random_id")),
        "every try carries the same random_id"
    );
    let gap = tries[1].at.duration_since(tries[0].at);
    ensure!(
        gap < Duration::from_secs(15),
        "retried after {gap:?}: the hung call was not given up after request_timeout_secs"
    );
    let copies = fake
        .community_messages(user.id)
        .iter()
        .filter(|(_, m)| m["text"] == "один раз")
        .count();
    ensure!(copies == 1, "the customer got {copies} copies");
    Ok(())
}

/// The bridge dies while fetching an event's photo, before answering VK: VK saw no `ok`, so it
/// delivers the event again after the restart, and the photo is bridged exactly once.
async fn a_crash_before_the_answer_loses_nothing(backend: Backend) -> anyhow::Result<()> {
    let fake = FakeVk::start().await?;
    let mut env = TestEnv::start(options(backend, &fake)).await?;
    let url = callback_url(&env);
    let user = ivan();
    fake.add_user(&user, None);
    let (hi, _) = fake.message_new(&user, json!({"text": "привет"}));
    deliver(&fake, &url, &hi).await?;
    let room = env.alice.wait_for_invite("Иван Петров").await?;
    env.alice.wait_for_text(&room, "привет").await?;

    fake.hold_files();
    let photo = rig::blob("jpeg", 2000);
    let big = fake.add_file("crash.jpg", photo.clone());
    let (event, _) = fake.message_new(
        &user,
        json!({"text": "фото в пути", "attachments": [fake.photo_attachment(user.id, &big, &big)]}),
    );
    let first_try = {
        let (url, event) = (url.clone(), event.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(&url)
                .json(&event)
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    rig::poll_until(
        "the bridge fetching the photo",
        Duration::from_secs(30),
        || async { Ok((!fake.held_files().is_empty()).then_some(())) },
    )
    .await?;
    env.bridge.kill();
    let answered = first_try.await?;
    ensure!(
        !matches!(answered, Ok(200)),
        "the bridge answered {answered:?} before storing the event"
    );
    fake.release_files();
    env.bridge.start().await?;

    // VK retries the event it got no `ok` for; then once more, as it may.
    deliver(&fake, &url, &event).await?;
    deliver(&fake, &url, &event).await?;
    let image = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.image")
        .await?;
    ensure!(
        env.alice.fetch_file(&image).await? == photo,
        "the photo's bytes"
    );
    let (after, _) = fake.message_new(&user, json!({"text": "после перезапуска"}));
    deliver(&fake, &url, &after).await?;
    env.alice.wait_for_text(&room, "после перезапуска").await?;
    let messages = env.alice.messages(&room);
    ensure!(
        messages.iter().filter(|m| m.msgtype == "m.image").count() == 1,
        "the photo bridged once"
    );
    ensure!(
        messages.iter().filter(|m| m.body == "фото в пути").count() == 1,
        "its text bridged once"
    );
    Ok(())
}

/// An answer longer than VK's 4096 characters (the fake answers error 914 past it) reaches the
/// customer as several messages, in order, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_answer_arrives_in_parts() -> anyhow::Result<()> {
    let fake = FakeVk::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &fake)).await?;
    let url = callback_url(&env);
    fake.set_callback_url(&url);
    let user = ivan();
    fake.add_user(&user, None);
    let (question, _) = fake.message_new(&user, json!({"text": "Расскажите всё"}));
    deliver(&fake, &url, &question).await?;
    let room = env.alice.wait_for_invite("Иван Петров").await?;
    env.alice.wait_for_text(&room, "Расскажите").await?;

    let text: String = (0..70)
        .map(|i| {
            format!(
                "Абзац {i}: счёт оплачен, доставка идёт по плану. Второе предложение абзаца {i} \
                 чуть длиннее первого, чтобы текст занял место; конец абзаца {i}."
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    ensure!(text.chars().count() > 2 * 4096, "{}", text.chars().count());
    let answer = env.alice.send_text(&room, &text).await?;
    env.alice.wait_for_any_send_status(&room, &answer).await?;
    let parts: Vec<String> = fake
        .community_messages(user.id)
        .into_iter()
        .filter_map(|(_, m)| m["text"].as_str().map(str::to_string))
        .filter(|t| t.contains("Абзац"))
        .collect();
    ensure!(parts.len() == 3, "{} parts", parts.len());
    ensure!(parts.iter().all(|p| p.chars().count() <= 4096));
    ensure!(
        parts.join("\n\n") == text,
        "the parts differ from the answer: {parts:#?}"
    );
    let refused = fake
        .calls("messages.send")
        .iter()
        .filter(|c| !c.ok())
        .count();
    ensure!(refused == 0, "{refused} sends refused");
    Ok(())
}

/// Issue 14: a message whose `conversation_message_id` is a string is bridged; one whose id
/// cannot be read at all is shown raw as a notice in its customer's room; one that names no
/// peer goes to the admin room. Each is answered `ok` only after it is stored.
async fn messages_in_unexpected_shapes_reach_a_room(backend: Backend) -> anyhow::Result<()> {
    let fake = FakeVk::start().await?;
    let env = TestEnv::start(options(backend, &fake)).await?;
    let url = callback_url(&env);
    let user = ivan();
    fake.add_user(&user, None);

    let (mut stringly, cmid) = fake.message_new(&user, json!({"text": "cmid as a string"}));
    stringly["object"]["message"]["conversation_message_id"] = cmid.to_string().into();
    deliver(&fake, &url, &stringly).await?;
    let room = env.alice.wait_for_invite("Иван Петров").await?;
    let read = env.alice.wait_for_text(&room, "cmid as a string").await?;
    ensure!(
        read.msgtype == "m.text" && read.body == "cmid as a string",
        "{read:?}"
    );

    let (mut no_id, _) = fake.message_new(&user, json!({"text": "an id nobody can read"}));
    no_id["object"]["message"]["conversation_message_id"] = json!({"v": 2});
    no_id["object"]["message"]["id"] = json!("none");
    deliver(&fake, &url, &no_id).await?;
    let notice = env
        .alice
        .wait_for_text(&room, "an id nobody can read")
        .await?;
    ensure!(notice.msgtype == "m.notice", "{notice:?}");

    let (mut nobody, _) = fake.message_new(&user, json!({"text": "a message from nowhere"}));
    if let Some(m) = nobody["object"]["message"].as_object_mut() {
        m.remove("peer_id");
        m.remove("from_id");
    }
    deliver(&fake, &url, &nobody).await?;
    let lobby = env.alice.wait_for_invite("lobby").await?;
    let shown = env
        .alice
        .wait_for_text(&lobby, "a message from nowhere")
        .await?;
    ensure!(shown.msgtype == "m.notice", "{shown:?}");
    Ok(())
}
