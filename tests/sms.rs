//! The SMS channel end to end: a customer on a wire-level fake of Twilio's Messaging API
//! (`tests/fakes/twilio.rs`) that posts signed webhooks to the bridge, operators as real Matrix
//! clients, the real `switchboard` binary and a real Synapse in between. The bridge is
//! configured with the fake's base URL as `channels.sms.api_url` and knows nothing else of it;
//! its public URL (what Twilio signs) is the rig's `appservice.public_url`.
//!
//! The main flows and the crash mid-send run on SQLite and on PostgreSQL; scenarios about the
//! channel's own checks and timing (forged webhooks, rate limits, refusals) run on SQLite.

mod fakes;
#[macro_use]
mod rig;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use fakes::twilio::{sign, FakeTwilio, FaultKind, ACCOUNT_SID, AUTH_TOKEN, COMPANY_NUMBER};
use rig::{Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};

on_both_stores!(
    customer_texts_and_pictures_reach_matrix_once,
    operator_replies_files_and_statuses_reach_the_customer,
    a_crash_mid_send_does_not_send_twice,
);

/// The customer in most tests, and how the bridge names them.
const CUSTOMER: &str = "+14155550142";
const CUSTOMER_NAME: &str = "+1 415 555 0142";

/// Bridge options with `channels.sms` pointing at the fake; `extra` is merged into the section.
fn options(backend: Backend, fake: &FakeTwilio, extra: Value) -> BridgeOptions {
    let mut section = fake.channel_config("US");
    if let (Some(s), Value::Object(e)) = (section.as_object_mut(), extra) {
        s.extend(e);
    }
    BridgeOptions::default()
        .backend(backend)
        .channel("sms", section)
}

/// A url-encoded form body.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter())
        .finish()
}

async fn customer_texts_and_pictures_reach_matrix_once(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("customer texts and pictures reach matrix once");
    let fake = FakeTwilio::start().await?;
    let env = TestEnv::start(options(
        backend,
        &fake,
        json!({"contacts": {"(415) 555-0199": "Jane Doe"}}),
    ))
    .await?;
    let bridge = env.bridge.base_url();

    steps.step("A signed SMS: stored, then answered with empty TwiML");
    let started = Instant::now();
    let sms = fake
        .incoming(&bridge, CUSTOMER, "Hi, has my order #123 shipped?", vec![])
        .await?;
    let sms_answered = started.elapsed();
    ensure!(
        sms.answer.status == 200,
        "webhook answered {:?}",
        sms.answer
    );
    ensure!(
        sms.answer
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("text/xml")),
        "content type {:?}",
        sms.answer.content_type
    );
    ensure!(
        sms.answer.body.contains("<Response/>"),
        "TwiML {:?}",
        sms.answer.body
    );
    let room = env.alice.wait_for_invite(CUSTOMER_NAME).await?;
    let first = env
        .alice
        .wait_for_text(&room, "has my order #123 shipped?")
        .await?;
    ensure!(
        first.sender.starts_with("@sb_sms_"),
        "sent by a ghost, not {}",
        first.sender
    );
    let members = env.alice.members(&room).await?;
    let ghost_name = members
        .iter()
        .find(|(id, _)| id == &first.sender)
        .map(|(_, n)| n.clone());
    ensure!(
        ghost_name.as_deref() == Some(CUSTOMER_NAME),
        "ghost display name: {ghost_name:?}"
    );
    let room_name = env.alice.room_name(&room).await?;
    ensure!(
        room_name.as_deref() == Some("+1 415 555 0142 (sms)"),
        "room name {room_name:?}"
    );
    let topic = env.alice.room_topic(&room).await?.unwrap_or_default();
    ensure!(
        topic.contains(CUSTOMER),
        "the E.164 number is the contact's phone: topic {topic:?}"
    );

    steps.step(
        "Twilio redelivering the same webhook (same MessageSid) is acknowledged and stored once",
    );
    let again = fake
        .post_signed(&format!("{bridge}/sms/incoming"), &sms.params)
        .await?;
    ensure!(
        again.status == 200 && again.body.contains("<Response/>"),
        "redelivery answered {again:?}"
    );

    steps.step("An MMS with a picture: fetched from Twilio with Basic auth (through its redirect)");
    let jpeg = rig::blob("\u{ff}\u{d8}JFIF", 4000);
    let started = Instant::now();
    let mms = fake
        .incoming(
            &bridge,
            CUSTOMER,
            "the box arrived like this",
            vec![(jpeg.clone(), "image/jpeg")],
        )
        .await?;
    let mms_answered = started.elapsed();
    eprintln!("sms ({backend:?}): webhook answered in {sms_answered:?} (SMS), {mms_answered:?} (MMS: picture fetched and stored first)");
    ensure!(
        mms.answer.status == 200,
        "MMS webhook answered {:?}",
        mms.answer
    );
    let image = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.image")
        .await?;
    ensure!(
        env.alice.fetch_file(&image).await? == jpeg,
        "the picture's bytes"
    );
    ensure!(
        image.mimetype() == Some("image/jpeg"),
        "picture type {:?}",
        image.mimetype()
    );
    env.alice
        .wait_for_text(&room, "the box arrived like this")
        .await?;
    let fetches = fake.media_api_fetches();
    ensure!(fetches.len() == 1, "media fetched {} times", fetches.len());
    ensure!(
        fetches[0].auth == Some((ACCOUNT_SID.to_string(), AUTH_TOKEN.to_string()))
            && fetches[0].status == 307,
        "media fetch with the account's Basic auth: {:?}",
        fetches[0]
    );

    steps.step(
        "A customer the company knows by name gets that name; a different number is another room",
    );
    fake.incoming(&bridge, "+14155550199", "Jane here", vec![])
        .await?;
    let jane_room = env.alice.wait_for_invite("Jane Doe").await?;
    ensure!(jane_room != room, "one room per customer number");
    env.alice.wait_for_text(&jane_room, "Jane here").await?;

    steps.step("Everything exactly once (a later message proves the redelivery had its chance)");
    fake.incoming(&bridge, CUSTOMER, "marker", vec![]).await?;
    env.alice.wait_for_text(&room, "marker").await?;
    let messages = env.alice.messages(&room);
    let n = messages
        .iter()
        .filter(|m| m.body.contains("order #123"))
        .count();
    ensure!(n == 1, "the SMS bridged {n} times");
    ensure!(
        messages.iter().filter(|m| m.msgtype == "m.image").count() == 1,
        "the picture bridged once"
    );
    steps.finish()
}

async fn operator_replies_files_and_statuses_reach_the_customer(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("operator replies files and statuses reach the customer");
    let fake = FakeTwilio::start().await?;
    let env = TestEnv::start(options(backend, &fake, json!({}))).await?;
    let bridge = env.bridge.base_url();
    fake.incoming(
        &bridge,
        CUSTOMER,
        "Can I change my delivery address?",
        vec![],
    )
    .await?;
    let room = env.alice.wait_for_invite(CUSTOMER_NAME).await?;
    let question = env.alice.wait_for_text(&room, "delivery address").await?;
    let ghost = question.sender.clone();

    steps.step(
        "A text reply: one Messages.json POST with the account's Basic auth and the right fields",
    );
    let reply = env
        .alice
        .send_text(&room, "Sure, what is the new address?")
        .await?;
    let call = fake
        .wait_for_create(|c| c.param("Body") == Some("Sure, what is the new address?"))
        .await?;
    ensure!(call.status == 201, "created: {}", call.status);
    ensure!(
        call.path == format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"),
        "path {}",
        call.path
    );
    ensure!(
        call.auth == Some((ACCOUNT_SID.to_string(), AUTH_TOKEN.to_string())),
        "Basic auth {:?}",
        call.auth
    );
    ensure!(
        call.param("To") == Some(CUSTOMER),
        "To {:?}",
        call.param("To")
    );
    ensure!(
        call.param("From") == Some(COMPANY_NUMBER),
        "From {:?}",
        call.param("From")
    );
    let status_url = format!("{bridge}/sms/status");
    ensure!(
        call.param("StatusCallback") == Some(status_url.as_str()),
        "StatusCallback {:?}",
        call.param("StatusCallback")
    );
    ensure!(
        call.all("MediaUrl").is_empty() && call.param("MessagingServiceSid").is_none(),
        "{:?}",
        call.params
    );
    env.alice
        .wait_for_send_status(&room, &reply, "SUCCESS")
        .await?;
    let reply_sid = fake
        .messages()
        .iter()
        .find(|m| m.body == "Sure, what is the new address?")
        .map(|m| m.sid.clone())
        .context("the reply in the fake")?;

    steps.step("Twilio reports it sent, delivered and (where the network says so) read, and sends a callback again when our answer is slow");
    for status in ["sent", "delivered", "delivered"] {
        let answer = fake.send_status(&reply_sid, status, None).await?;
        ensure!(
            answer.status == 200,
            "{status} callback answered {answer:?}"
        );
    }
    for _ in 0..2 {
        let answer = fake.send_status(&reply_sid, "read", None).await?;
        ensure!(answer.status == 200, "read callback answered {answer:?}");
    }
    env.alice
        .wait_for_read_receipt(&room, &ghost, &reply)
        .await
        .context("the customer's read receipt")?;
    steps.step("Each report is kept once however often Twilio sends it: sent, delivered, read");
    let kept = rig::store_count(
        backend,
        env.bridge.database_url(),
        "SELECT COUNT(*) FROM inbox WHERE channel = 'sms' AND dedup_key LIKE $1",
        &[&format!("status:{reply_sid}:%")],
    )
    .await?;
    ensure!(
        kept == 3,
        "sent, delivered and read kept once each: {kept} reports"
    );

    steps.step("Formatting is not sent: SMS is plain text, so the operator's plain body goes out");
    env.alice
        .send_html(&room, "Thanks, *noted*", "<p>Thanks, <em>noted</em></p>")
        .await?;
    let call = fake
        .wait_for_create(|c| c.param("Body").is_some_and(|b| b.contains("noted")))
        .await?;
    ensure!(
        call.param("Body") == Some("Thanks, *noted*"),
        "plain body {:?}",
        call.param("Body")
    );

    steps.step("A file: Twilio is given a link to the bridge and downloads the bytes from there");
    let png = rig::blob("\u{89}PNG", 3000);
    let file = env
        .alice
        .send_file(&room, "label.png", "image/png", png.clone())
        .await?;
    let call = fake
        .wait_for_create(|c| !c.all("MediaUrl").is_empty())
        .await?;
    ensure!(call.status == 201, "file created: {}", call.status);
    let media_url = call.all("MediaUrl")[0].to_string();
    ensure!(
        media_url.starts_with(&format!("{bridge}/sms/media/")),
        "MediaUrl {media_url}"
    );
    ensure!(
        call.param("Body").is_none(),
        "a file without a caption has no Body: {:?}",
        call.params
    );
    let sid = fake
        .messages()
        .into_iter()
        .find(|m| m.media_urls.contains(&media_url))
        .map(|m| m.sid)
        .context("the MMS in the fake")?;
    let fetched = fake.wait_for_media_fetch(&sid).await?;
    ensure!(
        fetched.status == 200,
        "the bridge served the file: {}",
        fetched.status
    );
    ensure!(
        fetched.bytes == png,
        "file bytes ({} vs {})",
        fetched.bytes.len(),
        png.len()
    );
    ensure!(
        fetched.content_type.as_deref() == Some("image/png"),
        "file type {:?}",
        fetched.content_type
    );
    env.alice
        .wait_for_send_status(&room, &file, "SUCCESS")
        .await?;
    steps.step("The link cannot be altered, and there is nothing to list");
    let http = reqwest::Client::new();
    let mut tampered = media_url.clone();
    let last = tampered.pop().context("empty link")?;
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    ensure!(
        http.get(&tampered).send().await?.status() == 404,
        "a tampered link"
    );
    ensure!(
        http.get(format!("{bridge}/sms/media/"))
            .send()
            .await?
            .status()
            == 404,
        "a listing"
    );

    steps.step("A late failure (the phone is off): a notice in the room on the operator's message");
    let parcel = env
        .alice
        .send_text(&room, "Your parcel is on its way")
        .await?;
    fake.wait_for_create(|c| {
        c.status == 201 && c.param("Body") == Some("Your parcel is on its way")
    })
    .await?;
    env.alice
        .wait_for_send_status(&room, &parcel, "SUCCESS")
        .await?;
    let parcel_sid = fake
        .messages()
        .iter()
        .find(|m| m.body == "Your parcel is on its way")
        .map(|m| m.sid.clone())
        .context("parcel")?;
    let answer = fake
        .send_status(&parcel_sid, "undelivered", Some(30003))
        .await?;
    ensure!(answer.status == 200, "failure callback answered {answer:?}");
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(parcel.as_str())
        })
        .await?;
    ensure!(
        notice.body.contains("unreachable") && notice.body.contains("30003"),
        "notice: {}",
        notice.body
    );
    env.alice
        .wait_for_send_status(&room, &parcel, "FAIL_PERMANENT")
        .await?;
    steps.step("The same callback again changes nothing");
    fake.send_status(&parcel_sid, "undelivered", Some(30003))
        .await?;
    fake.incoming(&bridge, CUSTOMER, "ok thanks", vec![])
        .await?;
    env.alice.wait_for_text(&room, "ok thanks").await?;
    let notices = env
        .alice
        .messages(&room)
        .iter()
        .filter(|m| m.is_notice() && m.body.contains("30003"))
        .count();
    ensure!(notices == 1, "{notices} failure notices");
    steps.step("Each operator message went to Twilio exactly once");
    let creates = fake.creates();
    ensure!(
        creates
            .iter()
            .filter(|c| c.param("Body") == Some("Sure, what is the new address?"))
            .count()
            == 1,
        "the reply sent twice"
    );
    steps.finish()
}

/// Forged, altered and unsigned webhooks are refused before anything is read, and nothing of
/// them reaches Matrix; the signature covers the configured public URL, not the Host header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_webhooks_are_refused_and_nothing_is_bridged() -> anyhow::Result<()> {
    let fake = FakeTwilio::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &fake, json!({}))).await?;
    let bridge = env.bridge.base_url();
    let url = format!("{bridge}/sms/incoming");
    let (_, params) =
        fake.incoming_params("+14155550177", COMPANY_NUMBER, "forged message", vec![]);

    let unsigned = fake.post_form(&url, &params, None).await?;
    ensure!(unsigned.status == 401, "no signature: {unsigned:?}");
    let wrong_key = fake
        .post_form(&url, &params, Some(&sign("another-token", &url, &params)))
        .await?;
    ensure!(
        wrong_key.status == 403,
        "signed with another token: {wrong_key:?}"
    );
    let mut altered = params.clone();
    let signature = sign(AUTH_TOKEN, &url, &params);
    for (k, v) in altered.iter_mut() {
        if k == "Body" {
            *v = "forged message, altered".into();
        }
    }
    let altered_answer = fake.post_form(&url, &altered, Some(&signature)).await?;
    ensure!(
        altered_answer.status == 403,
        "altered body: {altered_answer:?}"
    );
    // Signed for the sender's own host and sent with that Host header: still refused.
    let evil = "http://evil.example/sms/incoming";
    let spoofed = reqwest::Client::new()
        .post(&url)
        .header("host", "evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", sign(AUTH_TOKEN, evil, &params))
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter())
                .finish(),
        )
        .send()
        .await?;
    ensure!(
        spoofed.status() == 403,
        "Host header spoof: {}",
        spoofed.status()
    );
    // The status callback is checked the same way.
    let status_params = vec![
        ("MessageSid".to_string(), "SMforged".to_string()),
        ("MessageStatus".to_string(), "failed".to_string()),
    ];
    let forged_status = fake
        .post_form(
            &format!("{bridge}/sms/status"),
            &status_params,
            Some("bm90IGEgc2lnbmF0dXJl"),
        )
        .await?;
    ensure!(
        forged_status.status == 403,
        "forged status: {forged_status:?}"
    );

    // The genuine webhook goes through.
    let real = fake
        .incoming(&bridge, "+14155550177", "real message", vec![])
        .await?;
    ensure!(real.answer.status == 200, "{:?}", real.answer);
    let room = env.alice.wait_for_invite("+1 415 555 0177").await?;
    env.alice.wait_for_text(&room, "real message").await?;
    let messages = env.alice.messages(&room);
    ensure!(
        !messages.iter().any(|m| m.body.contains("forged")),
        "a forged message reached Matrix"
    );
    // Signed by Twilio but not a message (no MessageSid, no From): kept and shown to the
    // operators in the lobby of conversations with no team, answered 200.
    let odd = vec![
        ("AccountSid".to_string(), ACCOUNT_SID.to_string()),
        ("Body".to_string(), "a body with no sender".to_string()),
    ];
    let odd_answer = fake
        .post_form(&url, &odd, Some(&sign(AUTH_TOKEN, &url, &odd)))
        .await?;
    ensure!(
        odd_answer.status == 200,
        "signed odd webhook: {odd_answer:?}"
    );
    let lobby = env.alice.wait_for_invite("lobby").await?;
    env.alice
        .wait_for_text(&lobby, "Body=a+body+with+no+sender")
        .await?;
    let log = rig::strip_ansi(&env.bridge.log());
    ensure!(
        log.contains("wrong X-Twilio-Signature refused"),
        "refusals are logged"
    );
    ensure!(
        log.contains("without X-Twilio-Signature refused"),
        "missing signatures are logged"
    );
    Ok(())
}

/// A picture over `max_download_size` arrives as a line of text; Twilio's 429 is waited out
/// (Retry-After) and the message goes once; a text over 1600
/// characters goes as two messages; a customer's STOP is a notice, and sending to them
/// afterwards a permanent failure operators can read, not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out_and_refusals_become_notices() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("rate limits are waited out and refusals become notices");
    let fake = FakeTwilio::start().await?;
    let env = TestEnv::start(
        options(Backend::Sqlite, &fake, json!({"max_download_size": 2000})).max_attempts(6),
    )
    .await?;
    let bridge = env.bridge.base_url();
    fake.incoming(&bridge, CUSTOMER, "hello", vec![]).await?;
    let room = env.alice.wait_for_invite(CUSTOMER_NAME).await?;
    env.alice.wait_for_text(&room, "hello").await?;

    steps.step("A picture over max_download_size arrives as a line saying so, with the text");
    let big = fake
        .incoming(
            &bridge,
            CUSTOMER,
            "big photo",
            vec![(rig::blob("jpeg", 3000), "image/jpeg")],
        )
        .await?;
    ensure!(big.answer.status == 200, "{:?}", big.answer);
    let line = env.alice.wait_for_text(&room, "big photo").await?;
    ensure!(
        line.body
            .contains("[MMS attachment 1 (image/jpeg) is larger than 2000 bytes"),
        "{}",
        line.body
    );

    fake.fault(FaultKind::TooManyRequests { retry_after: 2 }, 1);
    let patience = env.alice.send_text(&room, "patience").await?;
    fake.wait_for_create(|c| c.status == 201 && c.param("Body") == Some("patience"))
        .await?;
    env.alice
        .wait_for_send_status(&room, &patience, "SUCCESS")
        .await?;
    let sends: Vec<_> = fake
        .creates()
        .into_iter()
        .filter(|c| c.param("Body") == Some("patience"))
        .collect();
    ensure!(
        sends.iter().map(|c| c.status).collect::<Vec<_>>() == vec![429, 201],
        "one refusal and one success: {:?}",
        sends.iter().map(|c| c.status).collect::<Vec<_>>()
    );
    let gap = sends[1].at.duration_since(sends[0].at);
    ensure!(
        gap >= Duration::from_millis(1950),
        "retried after {gap:?}, before Retry-After (2 s)"
    );
    ensure!(
        fake.messages()
            .iter()
            .filter(|m| m.body == "patience")
            .count()
            == 1,
        "delivered once"
    );

    steps.step("A 500 may hide an accepted message: the retry looks in Twilio's list first, then sends once");
    fake.fault(FaultKind::ServerError, 1);
    let outage = env.alice.send_text(&room, "after an outage").await?;
    env.alice
        .wait_for_send_status(&room, &outage, "SUCCESS")
        .await?;
    let statuses: Vec<u16> = fake
        .creates()
        .iter()
        .filter(|c| c.param("Body") == Some("after an outage"))
        .map(|c| c.status)
        .collect();
    ensure!(
        statuses == vec![500, 201],
        "a 500 then one creation: {statuses:?}"
    );
    ensure!(
        fake.calls()
            .iter()
            .any(|c| c.method == "GET" && c.param("To") == Some(CUSTOMER)),
        "the retry looked first"
    );

    steps.step("Longer than Twilio's 1600 characters: sent as two messages (the fake refuses longer bodies with 21617), in order, nothing lost");
    let long = format!("{} {}", "word ".repeat(300).trim_end(), "y".repeat(200));
    ensure!(long.chars().count() > 1600, "{}", long.chars().count());
    let answer = env.alice.send_text(&room, &long).await?;
    env.alice
        .wait_for_send_status(&room, &answer, "SUCCESS")
        .await?;
    let parts: Vec<String> = fake
        .messages()
        .into_iter()
        .map(|m| m.body)
        .filter(|b| b.starts_with("word") || b.starts_with('y'))
        .collect();
    ensure!(parts.len() == 2, "{} parts: {parts:?}", parts.len());
    ensure!(parts.iter().all(|p| p.chars().count() <= 1600), "{parts:?}");
    ensure!(parts.join(" ") == long, "the parts differ from the answer");
    ensure!(
        !fake
            .creates()
            .iter()
            .any(|c| c.param("Body").is_some_and(|b| b.chars().count() > 1600)),
        "a body over 1600 characters was sent"
    );

    // The customer texts STOP: operators see a notice; Twilio refuses what follows (21610).
    steps.step("The customer texts STOP: operators see a notice");
    fake.incoming(&bridge, CUSTOMER, "STOP", vec![]).await?;
    let stop = env
        .alice
        .wait_for_message(&room, |m| m.is_notice() && m.body.contains("unsubscribed"))
        .await?;
    ensure!(
        stop.body.contains("until they text START"),
        "STOP notice: {}",
        stop.body
    );
    let stopped = env.alice.send_text(&room, "are you there?").await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(stopped.as_str())
        })
        .await?;
    ensure!(
        notice.body.contains("STOP")
            && notice
                .body
                .contains("Attempt to send to unsubscribed recipient"),
        "notice: {}",
        notice.body
    );
    env.alice
        .wait_for_send_status(&room, &stopped, "FAIL_PERMANENT")
        .await?;
    let attempts = fake
        .creates()
        .iter()
        .filter(|c| c.param("Body") == Some("are you there?"))
        .count();
    ensure!(
        attempts == 1,
        "a permanent failure is not retried ({attempts} attempts)"
    );
    steps.finish()
}

/// The bridge dies while Twilio is accepting a message (the message exists, the answer never
/// arrives). After the restart the outbox retries; the channel finds the message in Twilio's
/// list instead of sending it again.
async fn a_crash_mid_send_does_not_send_twice(backend: Backend) -> anyhow::Result<()> {
    let fake = FakeTwilio::start().await?;
    let mut env = TestEnv::start(options(backend, &fake, json!({}))).await?;
    let bridge = env.bridge.base_url();
    fake.incoming(&bridge, CUSTOMER, "hello", vec![]).await?;
    let room = env.alice.wait_for_invite(CUSTOMER_NAME).await?;
    env.alice.wait_for_text(&room, "hello").await?;

    fake.hold_creates();
    let once = env.alice.send_text(&room, "only once, please").await?;
    rig::poll_until(
        "Twilio holding the creation",
        Duration::from_secs(30),
        || async { Ok((!fake.held().is_empty()).then_some(())) },
    )
    .await?;
    env.bridge.kill();
    fake.release_creates();
    env.bridge.start().await?;

    env.alice
        .wait_for_send_status(&room, &once, "SUCCESS")
        .await?;
    ensure!(
        fake.calls()
            .iter()
            .any(|c| c.method == "GET" && c.param("To") == Some(CUSTOMER)),
        "the retry looked the message up"
    );
    env.alice.send_text(&room, "after the restart").await?;
    fake.wait_for_create(|c| c.status == 201 && c.param("Body") == Some("after the restart"))
        .await?;
    let n = fake
        .messages()
        .iter()
        .filter(|m| m.body == "only once, please")
        .count();
    ensure!(n == 1, "the message was created {n} times");
    Ok(())
}

/// The fake itself speaks Twilio's wire format (a check of the test tool, no bridge).
#[tokio::test]
async fn the_fake_speaks_twilio() -> anyhow::Result<()> {
    // Its signatures match the published algorithm's vector over a fixture form.
    let fixtures = ["../shared/fixtures/twilio", "../../shared/fixtures/twilio"]
        .iter()
        .map(|p| rig::repo_root().join(p))
        .find(|p| p.is_dir());
    if let Some(dir) = fixtures {
        let form = std::fs::read_to_string(dir.join("inbound_sms_zammad.form"))?;
        let params: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        let sig = sign(
            "fake-twilio-auth-token",
            "https://fake-server.example.test/twilio/inbound?channel=1",
            &params,
        );
        ensure!(
            sig == "il8QK0myqfyjJtLeEhB6EG0ebGc=",
            "fixture signature {sig}"
        );
    }
    let fake = FakeTwilio::start().await?;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        fake.url()
    );
    let wrong = http
        .post(&url)
        .basic_auth(ACCOUNT_SID, Some("nope"))
        .body(form(&[("To", CUSTOMER)]))
        .send()
        .await?;
    ensure!(wrong.status() == 401);
    let body: Value = wrong.json().await?;
    ensure!(
        body["code"] == 20003 && body["message"] == "Authenticate" && body["status"] == 401,
        "{body}"
    );
    let bad_to = http
        .post(&url)
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .body(form(&[
            ("To", "5551234"),
            ("From", COMPANY_NUMBER),
            ("Body", "x"),
        ]))
        .send()
        .await?;
    ensure!(bad_to.status() == 400);
    let body: Value = bad_to.json().await?;
    ensure!(
        body["code"] == 21211
            && body["message"] == "The 'To' number 5551234 is not a valid phone number.",
        "{body}"
    );
    fake.fault(FaultKind::TooManyRequests { retry_after: 5 }, 1);
    let limited = http
        .post(&url)
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .body(form(&[
            ("To", CUSTOMER),
            ("From", COMPANY_NUMBER),
            ("Body", "x"),
        ]))
        .send()
        .await?;
    ensure!(
        limited.status() == 429
            && limited
                .headers()
                .get("retry-after")
                .is_some_and(|v| v == "5")
    );
    let created = http
        .post(&url)
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .body(form(&[
            ("To", CUSTOMER),
            ("From", COMPANY_NUMBER),
            ("Body", "x"),
        ]))
        .send()
        .await?;
    ensure!(created.status() == 201);
    let body: Value = created.json().await?;
    ensure!(
        body["sid"]
            .as_str()
            .is_some_and(|s| s.starts_with("SM") && s.len() == 34)
            && body["status"] == "queued",
        "{body}"
    );
    let list: Value = http
        .get(format!("{url}?To=%2B14155550142"))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .send()
        .await?
        .json()
        .await?;
    ensure!(list["messages"][0]["sid"] == body["sid"], "{list}");
    Ok(())
}
