//! The WhatsApp channel end to end: a customer on a wire-level fake of the WhatsApp Business
//! Cloud API (`tests/fakes/whatsapp.rs`, which also plays Meta delivering signed webhooks),
//! operators as real Matrix clients, the real `switchboard` binary and a real Synapse in
//! between. The bridge is configured with the fake's base URL as `channels.whatsapp.api_url`
//! and knows nothing else of it.
//!
//! The main flows run on SQLite and on PostgreSQL; rate limits and refusals run on SQLite.

mod fakes;
#[macro_use]
mod rig;

use std::time::Duration;

use anyhow::{ensure, Context};
use fakes::whatsapp::{Customer, FakeWhatsApp, Fault, PHONE_NUMBER_ID, TOKEN, VERIFY_TOKEN};
use rig::{Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};

on_both_stores!(
    customer_messages_of_every_kind_reach_matrix,
    operator_messages_files_replies_reactions_and_statuses,
    outside_the_window_only_templates_go_out,
);

/// Bridge options with `channels.whatsapp` pointing at the fake.
fn options(backend: Backend, fake: &FakeWhatsApp) -> BridgeOptions {
    BridgeOptions::default()
        .backend(backend)
        .channel("whatsapp", fake.channel_config())
}

fn webhook(env: &TestEnv) -> String {
    format!("{}/whatsapp/webhook", env.bridge.base_url())
}

fn jane() -> Customer {
    Customer::new("4915112345678", "Jane Doe")
}

/// Deliver a payload and insist on 200.
async fn deliver(fake: &FakeWhatsApp, env: &TestEnv, payload: &Value) -> anyhow::Result<()> {
    let status = fake.deliver(&webhook(env), payload).await?;
    ensure!(status == 200, "webhook answered {status}");
    Ok(())
}

/// The customer writes `text`; returns the wamid.
async fn customer_says(
    fake: &FakeWhatsApp,
    env: &TestEnv,
    who: &Customer,
    text: &str,
) -> anyhow::Result<String> {
    let (wamid, payload) = fake.message(who, json!({"type": "text", "text": {"body": text}}), None);
    deliver(fake, env, &payload).await?;
    Ok(wamid)
}

async fn customer_messages_of_every_kind_reach_matrix(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("customer messages of every kind reach matrix");
    let fake = FakeWhatsApp::start().await?;
    let env = TestEnv::start(options(backend, &fake)).await?;
    let url = webhook(&env);
    let http = reqwest::Client::new();
    let user = jane();

    steps.step(
        "Meta's verification handshake: the challenge echoed only for the right verify token",
    );
    let ok = http
        .get(&url)
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.challenge", "1158201444"),
            ("hub.verify_token", VERIFY_TOKEN),
        ])
        .send()
        .await?;
    ensure!(ok.status() == 200, "verification: {}", ok.status());
    ensure!(
        ok.text().await? == "1158201444",
        "the challenge is echoed as it came"
    );
    let wrong = http
        .get(&url)
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.challenge", "1158201444"),
            ("hub.verify_token", "guess"),
        ])
        .send()
        .await?;
    ensure!(
        wrong.status() == 403,
        "wrong verify token: {}",
        wrong.status()
    );

    steps.step("Forged deliveries are refused before anything is read");
    let (_, forged) = fake.message(
        &user,
        json!({"type": "text", "text": {"body": "forged message"}}),
        None,
    );
    let forged_body = fakes::whatsapp::meta_json(&forged).into_bytes();
    ensure!(
        fake.deliver_raw(&url, forged_body.clone(), None).await? == 401,
        "no signature"
    );
    ensure!(
        fake.deliver_raw(&url, forged_body.clone(), Some("sha256=00"))
            .await?
            == 403,
        "malformed signature"
    );
    let other_body = fakes::whatsapp::sign(b"{\"object\":\"whatsapp_business_account\"}");
    ensure!(
        fake.deliver_raw(&url, forged_body, Some(&other_body))
            .await?
            == 403,
        "signature of another body"
    );
    // A signed body that is not JSON is Meta's all the same: kept, shown to the operators (in
    // the lobby of conversations with no team) and answered 200, so it is not sent forever.
    steps.step("A signed body that is not JSON is kept and shown to the operators");
    let garbage = b"{\"object\": \"whatsapp_business_account\", \"entry\": [cut off".to_vec();
    let signature = fakes::whatsapp::sign(&garbage);
    ensure!(
        fake.deliver_raw(&url, garbage, Some(&signature)).await? == 200,
        "signed garbage"
    );
    let lobby = env.alice.wait_for_invite("lobby").await?;
    env.alice.wait_for_text(&lobby, "cut off").await?;

    steps.step("Text: a room with the ghost named from the WhatsApp profile");
    let (first_id, first) = fake.message(
        &user,
        json!({"type": "text", "text": {"body": "Hallo, where is my order #123?"}}),
        None,
    );
    deliver(&fake, &env, &first).await?;
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    let hello = env
        .alice
        .wait_for_text(&room, "where is my order #123?")
        .await?;
    ensure!(
        hello.sender.starts_with("@sb_whatsapp_"),
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
    ensure!(
        env.alice.room_name(&room).await?.as_deref() == Some("Jane Doe (whatsapp)"),
        "room name"
    );
    let topic = env.alice.room_topic(&room).await?.unwrap_or_default();
    ensure!(
        topic.contains("+4915112345678"),
        "the E.164 number in the topic: {topic:?}"
    );
    steps.step("Meta delivering the same message again changes nothing");
    deliver(&fake, &env, &first).await?;

    steps.step("Files: every kind fetched with the Bearer token, bytes intact");
    let cases = [
        (
            "image",
            "image/jpeg",
            rig::blob("\u{ff}\u{d8}jpeg", 3000),
            json!({"caption": "the box"}),
            "m.image",
        ),
        (
            "audio",
            "audio/ogg; codecs=opus",
            rig::blob("OggS", 2000),
            json!({"voice": true}),
            "m.audio",
        ),
        (
            "audio",
            "audio/mpeg",
            rig::blob("ID3", 2100),
            json!({"voice": false}),
            "m.audio",
        ),
        (
            "video",
            "video/mp4",
            rig::blob("ftypmp4", 1500),
            json!({}),
            "m.video",
        ),
        (
            "document",
            "application/pdf",
            rig::blob("%PDF-1.4", 4000),
            json!({"filename": "invoice 2026.pdf", "caption": "my invoice"}),
            "m.file",
        ),
        (
            "sticker",
            "image/webp",
            rig::blob("RIFFWEBP", 800),
            json!({"animated": false}),
            "m.image",
        ),
    ];
    for (kind, mime, bytes, extra, msgtype) in cases {
        let media_id = fake.add_media(bytes.clone(), mime);
        let mut media = json!({"mime_type": mime, "sha256": "ignored", "id": media_id});
        if let (Some(m), Value::Object(e)) = (media.as_object_mut(), extra) {
            m.extend(e);
        }
        let mark = env.alice.mark();
        let (_, payload) = fake.message(&user, json!({"type": kind, kind: media}), None);
        deliver(&fake, &env, &payload).await?;
        let file = env
            .alice
            .wait_for_message_after(&room, mark, "the file", |m| {
                m.msgtype == msgtype && m.mimetype() == Some(mime)
            })
            .await
            .with_context(|| format!("the {kind} ({mime})"))?;
        ensure!(
            env.alice.fetch_file(&file).await? == bytes,
            "the {kind}'s bytes"
        );
        if kind == "document" {
            ensure!(
                file.filename() == "invoice 2026.pdf",
                "document name {:?}",
                file.filename()
            );
        }
        let fetched = fake
            .wait_for_call("download", |c| c.path.ends_with(&media_id))
            .await?;
        ensure!(
            fetched.bearer.as_deref() == Some(TOKEN) && fetched.status == 200,
            "download with the token"
        );
        ensure!(fake
            .calls("media_info")
            .iter()
            .any(|c| c.path == format!("/v21.0/{media_id}") && c.bearer.as_deref() == Some(TOKEN)));
    }
    env.alice.wait_for_text(&room, "the box").await?;
    env.alice.wait_for_text(&room, "my invoice").await?;

    steps.step("Location and contact cards become text");
    let (_, location) = fake.message(&user, json!({"type": "location", "location": {"latitude": 52.520008, "longitude": 13.404954, "name": "Alexanderplatz"}}), None);
    deliver(&fake, &env, &location).await?;
    let place = env
        .alice
        .wait_for_text(&room, "geo:52.520008,13.404954")
        .await?;
    ensure!(
        place.body.contains("Alexanderplatz") && place.body.contains("openstreetmap.org"),
        "{}",
        place.body
    );
    let (_, card) = fake.message(&user, json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Bo Ek", "first_name": "Bo"}, "phones": [{"phone": "+47 123 45 678", "type": "CELL"}]}]}), None);
    deliver(&fake, &env, &card).await?;
    env.alice
        .wait_for_text(&room, "Contact: Bo Ek, +47 123 45 678")
        .await?;

    steps.step("A reply names the message it answers");
    let (_, reply) = fake.message(&user, json!({"type": "text", "text": {"body": "see above"}, "context": {"from": user.wa_id, "id": first_id}}), None);
    deliver(&fake, &env, &reply).await?;
    let answer = env.alice.wait_for_text(&room, "see above").await?;
    ensure!(
        answer.in_reply_to() == Some(hello.event_id.as_str()),
        "in_reply_to {:?}",
        answer.relates_to
    );

    steps.step("A reaction, then its removal (an empty emoji)");
    let (_, react) = fake.message(
        &user,
        json!({"type": "reaction", "reaction": {"message_id": first_id, "emoji": "👍"}}),
        None,
    );
    deliver(&fake, &env, &react).await?;
    let reaction_id = env
        .alice
        .wait_for_reaction_by(&room, &hello.event_id, "👍", &hello.sender)
        .await?;
    let (_, unreact) = fake.message(
        &user,
        json!({"type": "reaction", "reaction": {"message_id": first_id, "emoji": ""}}),
        None,
    );
    deliver(&fake, &env, &unreact).await?;
    env.alice
        .wait_for_redaction(&room, &reaction_id)
        .await
        .context("the reaction taken back")?;

    steps.step("An unsupported message is a notice with WhatsApp's own words");
    let (_, unsupported) = fake.message(
        &user,
        json!({"type": "unsupported", "errors": [{
        "code": 131051, "title": "Message type unknown", "message": "Message type unknown",
        "error_data": {"details": "Message type is currently not supported."}}]}),
        None,
    );
    deliver(&fake, &env, &unsupported).await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| m.is_notice() && m.body.contains("131051"))
        .await?;
    ensure!(
        notice
            .body
            .contains("Message type is currently not supported."),
        "{}",
        notice.body
    );

    steps.step("Each message exactly once; nothing forged");
    customer_says(&fake, &env, &user, "last one").await?;
    env.alice.wait_for_text(&room, "last one").await?;
    let messages = env.alice.messages(&room);
    ensure!(
        !messages.iter().any(|m| m.body.contains("forged")),
        "a forged delivery reached Matrix"
    );
    for needle in ["where is my order #123?", "see above", "Contact: Bo Ek"] {
        let n = messages.iter().filter(|m| m.body.contains(needle)).count();
        ensure!(n == 1, "{needle:?} bridged {n} times");
    }
    steps.finish()
}

async fn operator_messages_files_replies_reactions_and_statuses(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("operator messages files replies reactions and statuses");
    let fake = FakeWhatsApp::start().await?;
    let env = TestEnv::start(options(backend, &fake)).await?;
    let user = jane();
    let question_id = customer_says(&fake, &env, &user, "Do you ship to Norway?").await?;
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    let question = env.alice.wait_for_text(&room, "Norway").await?;
    let ghost = question.sender.clone();

    steps.step(
        "Formatted text goes out as WhatsApp markup, with the token, to the customer's number",
    );
    let answer = env
        .alice
        .send_html(
            &room,
            "Sorry! **Checking** now",
            "<p>Sorry! <strong>Checking</strong> now</p>",
        )
        .await?;
    let sent = fake
        .wait_for_call("messages", |c| {
            c.status == 200 && c.text().is_some_and(|t| t.contains("Checking"))
        })
        .await?;
    ensure!(sent.bearer.as_deref() == Some(TOKEN), "bearer token");
    ensure!(
        sent.path == format!("/v21.0/{PHONE_NUMBER_ID}/messages"),
        "path {}",
        sent.path
    );
    ensure!(
        sent.body
            == json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": user.wa_id, "type": "text",
                            "text": {"preview_url": false, "body": "Sorry! *Checking* now"}}),
        "request {}",
        sent.body
    );
    let answer_wamid = fake
        .sent()
        .into_iter()
        .find(|(_, b)| {
            b.pointer("/text/body").and_then(Value::as_str) == Some("Sorry! *Checking* now")
        })
        .map(|(w, _)| w)
        .context("the answer's wamid")?;
    env.alice
        .wait_for_send_status(&room, &answer, "SUCCESS")
        .await?;

    steps.step("Statuses: delivered, then read → the ghost's read receipt on the answer");
    deliver(
        &fake,
        &env,
        &fake.status(&user, &answer_wamid, "delivered", None),
    )
    .await?;
    deliver(
        &fake,
        &env,
        &fake.status(&user, &answer_wamid, "read", None),
    )
    .await?;
    env.alice
        .wait_for_read_receipt(&room, &ghost, &answer)
        .await
        .context("the customer read the answer")?;

    steps.step("A reply to the customer's message names it");
    env.alice
        .reply(&room, &question.event_id, "Yes, we do")
        .await?;
    let reply = fake
        .wait_for_call("messages", |c| c.text() == Some("Yes, we do"))
        .await?;
    ensure!(
        reply.body["context"]["message_id"] == question_id.as_str(),
        "context {}",
        reply.body
    );

    steps.step("Files: uploaded first, then sent by media id");
    let png = rig::blob("\u{89}PNG", 2500);
    env.alice
        .send_file(&room, "label.png", "image/png", png.clone())
        .await?;
    let image = fake
        .wait_for_call("messages", |c| {
            c.status == 200 && c.message_type() == Some("image")
        })
        .await?;
    let media_id = image.body["image"]["id"]
        .as_str()
        .context("image.id")?
        .to_owned();
    let upload = fake
        .calls("media")
        .into_iter()
        .find(|c| c.status == 200 && c.upload.as_ref().is_some_and(|u| u.bytes == png))
        .context("the upload")?;
    ensure!(
        upload.bearer.as_deref() == Some(TOKEN)
            && upload.body["messaging_product"] == "whatsapp"
            && upload.body["type"] == "image/png",
        "upload form {}",
        upload.body
    );
    ensure!(
        upload
            .upload
            .as_ref()
            .is_some_and(|u| u.name == "label.png" && u.mime == "image/png"),
        "upload part"
    );
    ensure!(
        fake.media_bytes(&media_id) == Some(png),
        "the message names the uploaded media"
    );
    ensure!(upload.at <= image.at, "upload before send");
    let pdf = rig::blob("%PDF", 3500);
    env.alice
        .send_file(&room, "return-label.pdf", "application/pdf", pdf.clone())
        .await?;
    let doc = fake
        .wait_for_call("messages", |c| {
            c.status == 200 && c.message_type() == Some("document")
        })
        .await?;
    ensure!(
        doc.body["document"]["filename"] == "return-label.pdf",
        "document {}",
        doc.body
    );
    ensure!(
        fake.media_bytes(doc.body["document"]["id"].as_str().unwrap_or_default()) == Some(pdf),
        "the PDF's bytes"
    );

    steps.step(
        "A PNG over WhatsApp's 5 MB image limit goes as a document (the fake refuses it as image)",
    );
    let big_png = rig::blob("\u{89}PNG", 6 * 1024 * 1024);
    env.alice
        .send_file(&room, "floor-plan.png", "image/png", big_png.clone())
        .await?;
    let big = fake
        .wait_for_call("messages", |c| {
            c.status == 200 && c.body["document"]["filename"] == "floor-plan.png"
        })
        .await
        .context("the 6 MB PNG as a document")?;
    ensure!(
        fake.media_bytes(big.body["document"]["id"].as_str().unwrap_or_default()) == Some(big_png),
        "the big PNG's bytes"
    );
    steps.step("A .docx a client labelled application/octet-stream is uploaded as what it is");
    let docx = rig::blob("PK", 1200);
    env.alice
        .send_file_as(
            &room,
            "m.file",
            "terms.docx",
            "application/octet-stream",
            docx.clone(),
        )
        .await?;
    let terms = fake
        .wait_for_call("messages", |c| {
            c.status == 200 && c.body["document"]["filename"] == "terms.docx"
        })
        .await
        .context("the .docx as a document")?;
    ensure!(
        fake.calls("media").iter().any(|c| c.status == 200
            && c.upload.as_ref().is_some_and(|u| u.bytes == docx)
            && c.body["type"]
                == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        "the .docx upload's type"
    );
    ensure!(terms.message_type() == Some("document"));
    steps.step(
        "A GIF: WhatsApp takes it under no message type; the operator is told, nothing is sent",
    );
    let gif = rig::blob("GIF89a", 900);
    let dance = env
        .alice
        .send_file(&room, "dance.gif", "image/gif", gif.clone())
        .await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(dance.as_str())
        })
        .await?;
    ensure!(
        notice
            .body
            .contains("does not accept files of type image/gif"),
        "notice: {}",
        notice.body
    );
    ensure!(
        !fake
            .all_calls()
            .iter()
            .any(|c| c.upload.as_ref().is_some_and(|u| u.bytes == gif)),
        "the GIF was not uploaded"
    );

    steps.step("The customer answers the operator's \"Yes, we do\": Matrix sees the reply to Alice's event");
    let yes_wamid = fake
        .sent()
        .into_iter()
        .find(|(_, b)| b.pointer("/text/body").and_then(Value::as_str) == Some("Yes, we do"))
        .map(|(w, _)| w)
        .context("yes wamid")?;
    let (thanks_id, thanks) = fake.message(&user, json!({"type": "text", "text": {"body": "Great, thanks"}, "context": {"from": fakes::whatsapp::DISPLAY_PHONE_NUMBER, "id": yes_wamid}}), None);
    deliver(&fake, &env, &thanks).await?;
    let thanks_msg = env.alice.wait_for_text(&room, "Great, thanks").await?;
    let alice_yes = env.alice.wait_for_text(&room, "Yes, we do").await?;
    ensure!(
        thanks_msg.in_reply_to() == Some(alice_yes.event_id.as_str()),
        "in_reply_to {:?}",
        thanks_msg.relates_to
    );

    steps.step(
        "Reactions both ways: the customer's on our message, ours on theirs (and taken back)",
    );
    let (_, react) = fake.message(
        &user,
        json!({"type": "reaction", "reaction": {"message_id": yes_wamid, "emoji": "❤️"}}),
        None,
    );
    deliver(&fake, &env, &react).await?;
    env.alice
        .wait_for_event(&room, "the customer's heart", |e| {
            e["type"] == "m.reaction"
                && e["content"]["m.relates_to"]["event_id"] == alice_yes.event_id.as_str()
                && e["content"]["m.relates_to"]["key"] == "❤️"
        })
        .await?;
    let ours = env.alice.react(&room, &thanks_msg.event_id, "🙏").await?;
    let reacted = fake
        .wait_for_call("messages", |c| {
            c.message_type() == Some("reaction") && c.status == 200
        })
        .await?;
    ensure!(
        reacted.body["reaction"] == json!({"message_id": thanks_id, "emoji": "🙏"})
            && reacted.body["to"] == user.wa_id.as_str(),
        "{}",
        reacted.body
    );
    env.alice.redact(&room, &ours, None).await?;
    fake.wait_for_call("messages", |c| {
        c.message_type() == Some("reaction") && c.body["reaction"]["emoji"] == ""
    })
    .await
    .context("the reaction removed")?;

    steps.step("Alice reads the customer's message: blue ticks on WhatsApp");
    env.alice
        .send_read_receipt(&room, &thanks_msg.event_id)
        .await?;
    fake.wait_for_call("messages", |c| {
        c.body["status"] == "read" && c.body["message_id"] == thanks_id.as_str()
    })
    .await
    .context("read status sent")?;

    steps.step("A late failure status: a notice in the room quoting WhatsApp");
    let doomed = env.alice.send_text(&room, "this one will fail").await?;
    fake.wait_for_call("messages", |c| {
        c.text() == Some("this one will fail") && c.status == 200
    })
    .await?;
    steps.step("Late statuses are matched to the recorded wamid");
    env.alice.wait_for_any_send_status(&room, &doomed).await?;
    let doomed_wamid = fake
        .sent()
        .into_iter()
        .find(|(_, b)| {
            b.pointer("/text/body").and_then(Value::as_str) == Some("this one will fail")
        })
        .map(|(w, _)| w)
        .context("doomed wamid")?;
    let errors = json!([{"code": 131049, "title": "This message was not delivered to maintain healthy ecosystem engagement.",
                         "message": "This message was not delivered to maintain healthy ecosystem engagement.",
                         "error_data": {"details": "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."}}]);
    deliver(
        &fake,
        &env,
        &fake.status(&user, &doomed_wamid, "failed", Some(errors)),
    )
    .await?;
    let failed = env
        .alice
        .wait_for_message(&room, |m| m.is_notice() && m.body.contains("131049"))
        .await?;
    ensure!(
        failed.body.contains("healthy ecosystem engagement")
            && failed.in_reply_to() == Some(doomed.as_str()),
        "{}",
        failed.body
    );

    steps.step("Every operator message went out exactly once");
    for text in ["Yes, we do", "Sorry! *Checking* now", "this one will fail"] {
        let n = fake
            .sent()
            .iter()
            .filter(|(_, b)| b.pointer("/text/body").and_then(Value::as_str) == Some(text))
            .count();
        ensure!(n == 1, "{text:?} sent {n} times");
    }
    steps.finish()
}

async fn outside_the_window_only_templates_go_out(backend: Backend) -> anyhow::Result<()> {
    let fake = FakeWhatsApp::start().await?;
    let env = TestEnv::start(options(backend, &fake)).await?;
    let user = jane();
    // The customer last wrote 25 hours ago.
    let long_ago = fakes::whatsapp::now_secs() - 25 * 3600;
    let (_, old) = fake.message(
        &user,
        json!({"type": "text", "text": {"body": "hello from yesterday"}}),
        Some(long_ago),
    );
    deliver(&fake, &env, &old).await?;
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice
        .wait_for_text(&room, "hello from yesterday")
        .await?;

    let late = env.alice.send_text(&room, "sorry for the wait").await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(late.as_str())
        })
        .await?;
    ensure!(
        notice.body.contains("24 h") && notice.body.contains("!sb template"),
        "notice: {}",
        notice.body
    );

    env.alice
        .send_text(&room, "!sb template hello_world lang=en_US")
        .await?;
    let template = fake
        .wait_for_call("messages", |c| {
            c.message_type() == Some("template") && c.status == 200
        })
        .await?;
    ensure!(
        template.body["template"] == json!({"name": "hello_world", "language": {"code": "en_US"}})
            && template.body["to"] == user.wa_id.as_str(),
        "template request {}",
        template.body
    );
    env.alice
        .send_text(&room, r#"!sb template order_update "Jane Doe" A-1234"#)
        .await?;
    let with_params = fake
        .wait_for_call("messages", |c| {
            c.body["template"]["name"] == "order_update" && c.status == 200
        })
        .await?;
    ensure!(
        with_params.body["template"]["components"]
            == json!([{"type": "body", "parameters": [{"type": "text", "text": "Jane Doe"}, {"type": "text", "text": "A-1234"}]}]),
        "parameters {}",
        with_params.body
    );
    ensure!(
        with_params.body["template"]["language"]["code"] == "en_US",
        "default language"
    );
    ensure!(
        !fake
            .all_calls()
            .iter()
            .any(|c| c.text() == Some("sorry for the wait")),
        "the free-form message was not sent"
    );
    Ok(())
}

/// Throttling is retried (with WhatsApp's Retry-After when it gives one) until delivered;
/// permanent refusals become notices quoting WhatsApp, the closed window pointing at templates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_retried_and_refusals_explained() -> anyhow::Result<()> {
    let fake = FakeWhatsApp::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &fake).max_attempts(6)).await?;
    let user = jane();
    customer_says(&fake, &env, &user, "hello").await?;
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "hello").await?;

    // HTTP 429 with Retry-After: 2, twice, then success.
    fake.fault(Fault::too_many_requests(2), 2);
    env.alice.send_text(&room, "patience").await?;
    fake.wait_for_call("messages", |c| {
        c.status == 200 && c.text() == Some("patience")
    })
    .await?;
    let tries: Vec<_> = fake
        .calls("messages")
        .into_iter()
        .filter(|c| c.text() == Some("patience"))
        .collect();
    ensure!(
        tries.len() == 3,
        "two refusals and one success, got {:?}",
        tries.iter().map(|c| c.status).collect::<Vec<_>>()
    );
    for pair in tries.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        ensure!(
            gap >= Duration::from_millis(1950),
            "retried after {gap:?}, before Retry-After (2 s)"
        );
    }

    // WhatsApp's own rate limit (HTTP 400, code 130429): retried with backoff, delivered once.
    fake.fault(Fault::rate_limit_130429(), 1);
    env.alice.send_text(&room, "still there?").await?;
    fake.wait_for_call("messages", |c| {
        c.status == 200 && c.text() == Some("still there?")
    })
    .await?;
    let tries: Vec<_> = fake
        .calls("messages")
        .into_iter()
        .filter(|c| c.text() == Some("still there?"))
        .collect();
    ensure!(
        tries.iter().map(|c| c.status).collect::<Vec<_>>() == vec![400, 200],
        "{:?}",
        tries.iter().map(|c| c.status).collect::<Vec<_>>()
    );

    // Undeliverable: a notice quoting WhatsApp, and no retry.
    fake.fault(Fault::undeliverable_131026(), 1);
    let lost = env.alice.send_text(&room, "are you there?").await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(lost.as_str())
        })
        .await?;
    ensure!(
        notice.body.contains("Message Undeliverable"),
        "notice: {}",
        notice.body
    );
    env.alice
        .wait_for_send_status(&room, &lost, "FAIL_PERMANENT")
        .await?;
    let attempts = fake
        .calls("messages")
        .iter()
        .filter(|c| c.text() == Some("are you there?"))
        .count();
    ensure!(
        attempts == 1,
        "a permanent failure is not retried ({attempts} attempts)"
    );

    // The window closed on WhatsApp's side (the bridge's clock disagrees): templates are the way.
    fake.fault(Fault::reengagement_131047(), 1);
    let skewed = env.alice.send_text(&room, "one more thing").await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(skewed.as_str())
        })
        .await?;
    ensure!(
        notice.body.contains("!sb template") && notice.body.contains("Re-engagement message"),
        "notice: {}",
        notice.body
    );
    Ok(())
}

/// A delivery whose events cannot all be stored (a file WhatsApp's CDN will not hand over right
/// now) is answered 503, so Meta delivers it again; the redelivery stores the rest, and what was
/// stored the first time is not shown twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_cannot_be_stored_is_refused_then_redelivered_once() -> anyhow::Result<()> {
    let fake = FakeWhatsApp::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &fake)).await?;
    let user = jane();
    // One delivery with two messages: a text, then a photo.
    let photo = rig::blob("jpeg", 1200);
    let media_id = fake.add_media(photo.clone(), "image/jpeg");
    let (_, mut batch) = fake.message(
        &user,
        json!({"type": "text", "text": {"body": "before the photo"}}),
        None,
    );
    let (_, second) = fake.message(&user, json!({"type": "image", "image": {"id": media_id, "mime_type": "image/jpeg", "caption": "the photo"}}), None);
    let photo_message = second
        .pointer("/entry/0/changes/0/value/messages/0")
        .cloned()
        .context("the photo message")?;
    batch
        .pointer_mut("/entry/0/changes/0/value/messages")
        .and_then(Value::as_array_mut)
        .context("messages")?
        .push(photo_message);

    fake.fail_downloads(1);
    let status = fake.deliver(&webhook(&env), &batch).await?;
    ensure!(
        status == 503,
        "a delivery not fully stored is refused (got {status})"
    );
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "before the photo").await?;

    // Meta tries again later.
    deliver(&fake, &env, &batch).await?;
    let image = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.image")
        .await?;
    ensure!(
        env.alice.fetch_file(&image).await? == photo,
        "the photo's bytes"
    );
    env.alice.wait_for_text(&room, "the photo").await?;
    customer_says(&fake, &env, &user, "marker").await?;
    env.alice.wait_for_text(&room, "marker").await?;
    let messages = env.alice.messages(&room);
    ensure!(
        messages
            .iter()
            .filter(|m| m.body == "before the photo")
            .count()
            == 1,
        "the text bridged once"
    );
    ensure!(
        messages.iter().filter(|m| m.msgtype == "m.image").count() == 1,
        "the photo bridged once"
    );
    Ok(())
}

/// The fake itself speaks the Cloud API's envelope (a check of the test tool, no bridge).
#[tokio::test]
async fn the_fake_speaks_the_cloud_api() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("the fake speaks the cloud api");
    let fake = FakeWhatsApp::start().await?;
    let http = reqwest::Client::new();
    let messages = format!("{}/v21.0/{PHONE_NUMBER_ID}/messages", fake.url());
    let text = json!({"messaging_product": "whatsapp", "to": "4915112345678", "type": "text", "text": {"body": "hi"}});
    let unauthorised = http
        .post(&messages)
        .bearer_auth("nope")
        .json(&text)
        .send()
        .await?;
    ensure!(unauthorised.status() == 401);
    let body: Value = unauthorised.json().await?;
    ensure!(
        body["error"]["code"] == 190 && body["error"]["type"] == "OAuthException",
        "{body}"
    );
    steps.step("Nobody wrote: outside the window");
    let closed: Value = http
        .post(&messages)
        .bearer_auth(TOKEN)
        .json(&text)
        .send()
        .await?
        .json()
        .await?;
    ensure!(closed["error"]["code"] == 131047, "{closed}");
    let _ = fake.message(
        &jane(),
        json!({"type": "text", "text": {"body": "hi"}}),
        None,
    );
    let sent: Value = http
        .post(&messages)
        .bearer_auth(TOKEN)
        .json(&text)
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        sent["messages"][0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("wamid.")),
        "{sent}"
    );
    let unknown = http
        .post(format!("{}/v21.0/999/messages", fake.url()))
        .bearer_auth(TOKEN)
        .json(&text)
        .send()
        .await?;
    ensure!(unknown.status() == 400);
    steps.step("Uploads only of the supported types (error 100 naming them); media only as a kind that takes its type and size (error 131053)");
    let upload = |mime: &str, bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime.to_owned())
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes)
                    .file_name("f")
                    .mime_str(mime)
                    .expect("a mime type"),
            );
        http.post(format!("{}/v21.0/{PHONE_NUMBER_ID}/media", fake.url()))
            .bearer_auth(TOKEN)
            .multipart(form)
            .send()
    };
    let gif = upload("image/gif", b"GIF89a".to_vec()).await?;
    ensure!(gif.status() == 400);
    let body: Value = gif.json().await?;
    ensure!(
        body["error"]["code"] == 100
            && body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Received file of type 'image/gif'")),
        "{body}"
    );
    let big: Value = upload("image/png", vec![0; 5 * 1024 * 1024 + 1])
        .await?
        .json()
        .await?;
    let big_id = big["id"].as_str().context("a PNG is uploaded")?;
    let as_image = json!({"messaging_product": "whatsapp", "to": "4915112345678", "type": "image", "image": {"id": big_id}});
    let refused = http
        .post(&messages)
        .bearer_auth(TOKEN)
        .json(&as_image)
        .send()
        .await?;
    ensure!(refused.status() == 400);
    let body: Value = refused.json().await?;
    ensure!(body["error"]["code"] == 131053, "{body}");
    let as_document = json!({"messaging_product": "whatsapp", "to": "4915112345678", "type": "document", "document": {"id": big_id, "filename": "big.png"}});
    ensure!(
        http.post(&messages)
            .bearer_auth(TOKEN)
            .json(&as_document)
            .send()
            .await?
            .status()
            == 200
    );
    let media_id = fake.add_media(b"abc".to_vec(), "image/png");
    let info: Value = http
        .get(format!("{}/v21.0/{media_id}", fake.url()))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        info["mime_type"] == "image/png" && info["file_size"] == 3,
        "{info}"
    );
    let url = info["url"].as_str().context("url")?;
    ensure!(
        http.get(url).send().await?.status() == 401,
        "media URLs need the token"
    );
    ensure!(
        http.get(url)
            .bearer_auth(TOKEN)
            .send()
            .await?
            .bytes()
            .await?
            .as_ref()
            == b"abc"
    );
    steps.step("Interactive lists and reply buttons are checked against the documented limits");
    let interactive = |i: Value| json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915112345678", "type": "interactive", "interactive": i});
    let rows = |n: usize, title: &str| -> Vec<Value> {
        (0..n)
            .map(|k| json!({"id": format!("row{k}"), "title": title}))
            .collect()
    };
    let list = |rows: Vec<Value>, button: &str, body: Value| {
        interactive(
            json!({"type": "list", "body": body, "action": {"button": button, "sections": [{"rows": rows}]}}),
        )
    };
    let post = |body: Value| {
        let http = http.clone();
        let messages = messages.clone();
        async move {
            let response = http
                .post(&messages)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await?;
            let status = response.status().as_u16();
            let body: Value = response.json().await?;
            Ok::<_, anyhow::Error>((status, body))
        }
    };
    let good = list(rows(5, "4 ⭐⭐⭐⭐"), "⭐ 1–5", json!({"text": "Rate us"}));
    let (status, body) = post(good).await?;
    ensure!(status == 200, "a list within the limits: {body}");
    for (what, bad, code) in [
        (
            "11 rows",
            list(rows(11, "x"), "Pick", json!({"text": "Q"})),
            131009,
        ),
        (
            "a 25-character row title",
            list(rows(1, &"t".repeat(25)), "Pick", json!({"text": "Q"})),
            131009,
        ),
        (
            "a 21-character button",
            list(rows(1, "x"), &"b".repeat(21), json!({"text": "Q"})),
            131009,
        ),
        ("no body", list(rows(1, "x"), "Pick", json!({})), 100),
        (
            "a 4097-character body",
            list(rows(1, "x"), "Pick", json!({"text": "q".repeat(4097)})),
            131009,
        ),
        (
            "twice the same row id",
            list(
                vec![
                    json!({"id": "a", "title": "x"}),
                    json!({"id": "a", "title": "y"}),
                ],
                "Pick",
                json!({"text": "Q"}),
            ),
            131009,
        ),
        (
            "a 201-character row id",
            list(
                vec![json!({"id": "i".repeat(201), "title": "x"})],
                "Pick",
                json!({"text": "Q"}),
            ),
            131009,
        ),
        (
            "four reply buttons",
            interactive(
                json!({"type": "button", "body": {"text": "Q"}, "action": {"buttons": (0..4).map(|k| json!({"type": "reply", "reply": {"id": format!("b{k}"), "title": format!("B{k}")}})).collect::<Vec<_>>()}}),
            ),
            131009,
        ),
        (
            "a 21-character reply title",
            interactive(
                json!({"type": "button", "body": {"text": "Q"}, "action": {"buttons": [{"type": "reply", "reply": {"id": "b", "title": "r".repeat(21)}}]}}),
            ),
            131009,
        ),
    ] {
        let (status, body) = post(bad).await?;
        ensure!(
            status == 400 && body["error"]["code"] == code,
            "{what}: {status} {body}"
        );
    }
    steps.step("A tap on a row comes back as an interactive list_reply naming the message");
    let (list_wamid, _) = fake
        .sent()
        .into_iter()
        .find(|(_, b)| b["type"] == "interactive")
        .context("the good list was kept")?;
    let (_, tap) = fake.tap(&jane(), &list_wamid, 3)?;
    let message = &tap["entry"][0]["changes"][0]["value"]["messages"][0];
    ensure!(
        message["type"] == "interactive"
            && message["interactive"]["type"] == "list_reply"
            && message["interactive"]["list_reply"]["id"] == "row3"
            && message["context"]["id"] == list_wamid.as_str(),
        "{tap}"
    );
    steps.step("Signatures match the shared vector's algorithm");
    ensure!(
        fakes::whatsapp::sign(b"{}").starts_with("sha256=")
            && fakes::whatsapp::meta_json(&json!("é")) == "\"\\u00e9\""
    );
    steps.finish()
}
