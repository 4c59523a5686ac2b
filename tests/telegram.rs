//! The Telegram channel end to end: a customer on a wire-level fake of the Bot API
//! (`tests/fakes/telegram.rs`), operators as real Matrix clients, the real `switchboard` binary
//! and a real Synapse in between. The bridge is configured with the fake's base URL as
//! `channels.telegram.api_url` and knows nothing else of it.
//!
//! The main flows run on SQLite and on PostgreSQL; scenarios about the channel's own timing
//! (rate limits, webhook checks, failures) run on SQLite.

mod fakes;
#[macro_use]
mod rig;

use std::time::Duration;

use anyhow::{ensure, Context};
use fakes::telegram::{FakeTelegram, FaultKind, TgUser, TOKEN};
use rig::{Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};

on_both_stores!(
    customer_messages_of_every_kind_reach_matrix,
    group_members_speak_as_their_own_ghosts_and_answers_reach_the_group,
    operator_messages_files_replies_edits_and_deletions_reach_the_customer,
    a_crash_between_get_updates_and_storage_loses_nothing,
    reactions_both_ways,
);

/// Bridge options with `channels.telegram` pointing at the fake; `extra` is merged into the
/// section.
fn options(backend: Backend, fake: &FakeTelegram, extra: Value) -> BridgeOptions {
    let mut section = json!({
        "enabled": true,
        "token": TOKEN,
        "api_url": fake.url(),
        "poll_timeout_secs": 2,
    });
    if let (Some(s), Value::Object(e)) = (section.as_object_mut(), extra) {
        s.extend(e);
    }
    BridgeOptions::default()
        .backend(backend)
        .channel("telegram", section)
}

fn jane() -> TgUser {
    TgUser::new(5_550_001, "Jane", Some("Doe"), Some("jane_d"))
}

async fn customer_messages_of_every_kind_reach_matrix(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("customer messages of every kind reach matrix");
    let fake = FakeTelegram::start().await?;
    let env = TestEnv::start(options(backend, &fake, json!({}))).await?;
    let user = jane();
    let (photo_id, _) = fake.add_file("profile_photos", "jpg", rig::blob("avatar", 500), None);
    fake.set_profile_photo(user.id, &photo_id);

    steps
        .step("Text with formatting: \"Hello, my order #123 is late\" with \"order #123\" in bold");
    fake.push_update(fake.message_update(
        &user,
        1,
        json!({
            "text": "Hello, my order #123 is late",
            "entities": [{"type": "bold", "offset": 10, "length": 10}],
        }),
    ));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    let first = env.alice.wait_for_text(&room, "order #123").await?;
    ensure!(
        first.sender.starts_with("@sb_telegram_"),
        "sent by a ghost, not {}",
        first.sender
    );
    ensure!(
        first
            .formatted_body
            .as_deref()
            .is_some_and(|h| h.contains("<b>order #123</b>")),
        "html: {:?}",
        first.formatted_body
    );
    let members = env.alice.members(&room).await?;
    let ghost_name = members
        .iter()
        .find(|(id, _)| id == &first.sender)
        .map(|(_, n)| n.clone());
    ensure!(
        ghost_name.as_deref() == Some("Jane Doe"),
        "ghost display name: {ghost_name:?}"
    );
    ensure!(env.alice.room_name(&room).await?.as_deref() == Some("Jane Doe (telegram)"));
    steps.step(
        "The profile photo was looked up for the avatar (the core does not apply avatars yet)",
    );
    fake.wait_for_call("getUserProfilePhotos", |c| {
        c.i64("user_id") == Some(user.id)
    })
    .await?;

    steps.step("Photo with a caption: the largest size is fetched through getFile + download");
    let photo = rig::blob("jpeg", 3000);
    let (small, _) = fake.add_file("photos", "jpg", rig::blob("thumb", 10), None);
    let (big, _) = fake.add_file("photos", "jpg", photo.clone(), None);
    let size = |id: &str, w: u32| {
        let mut m = fake.file_meta(id);
        m["width"] = w.into();
        m["height"] = w.into();
        m
    };
    fake.push_update(fake.message_update(
        &user,
        2,
        json!({"photo": [size(&small, 90), size(&big, 800)], "caption": "the box"}),
    ));
    let image = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.image")
        .await?;
    ensure!(
        env.alice.fetch_file(&image).await? == photo,
        "the photo's bytes"
    );
    env.alice.wait_for_text(&room, "the box").await?;

    steps.step("Voice note (OGG/Opus) → m.audio");
    let voice = rig::blob("OggS", 2000);
    let (voice_id, _) = fake.add_file("voice", "oga", voice.clone(), None);
    let mut meta = fake.file_meta(&voice_id);
    meta["duration"] = 3.into();
    meta["mime_type"] = "audio/ogg".into();
    fake.push_update(fake.message_update(&user, 3, json!({"voice": meta})));
    let audio = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.audio")
        .await?;
    ensure!(
        audio.mimetype() == Some("audio/ogg"),
        "voice mime {:?}",
        audio.mimetype()
    );
    ensure!(env.alice.fetch_file(&audio).await? == voice);

    steps.step("Document keeps its name and type");
    let pdf = rig::blob("%PDF-1.4", 4000);
    let (doc_id, _) = fake.add_file("documents", "pdf", pdf.clone(), None);
    let mut meta = fake.file_meta(&doc_id);
    meta["file_name"] = "invoice 2026.pdf".into();
    meta["mime_type"] = "application/pdf".into();
    fake.push_update(fake.message_update(&user, 4, json!({"document": meta})));
    let file = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.file")
        .await?;
    ensure!(
        file.filename() == "invoice 2026.pdf" && file.mimetype() == Some("application/pdf"),
        "{:?}",
        file.content
    );
    ensure!(env.alice.fetch_file(&file).await? == pdf);

    steps.step("A static sticker is a WebP image");
    let (sticker_id, _) = fake.add_file("stickers", "webp", rig::blob("RIFFWEBP", 800), None);
    let mut meta = fake.file_meta(&sticker_id);
    for (k, v) in [
        ("width", json!(512)),
        ("height", json!(512)),
        ("emoji", json!("👍")),
        ("type", json!("regular")),
        ("is_animated", json!(false)),
        ("is_video", json!(false)),
    ] {
        meta[k] = v;
    }
    fake.push_update(fake.message_update(&user, 5, json!({"sticker": meta})));
    env.alice
        .wait_for_message(&room, |m| {
            m.msgtype == "m.image" && m.mimetype() == Some("image/webp")
        })
        .await
        .context("the sticker as an image")?;

    steps.step("Video and video note → m.video");
    let (video_id, _) = fake.add_file("videos", "mp4", rig::blob("mp4", 1500), None);
    let mut meta = fake.file_meta(&video_id);
    for (k, v) in [
        ("width", json!(640)),
        ("height", json!(360)),
        ("duration", json!(4)),
        ("mime_type", json!("video/mp4")),
    ] {
        meta[k] = v;
    }
    fake.push_update(fake.message_update(&user, 6, json!({"video": meta})));
    let (note_id, _) = fake.add_file("video_notes", "mp4", rig::blob("note", 1200), None);
    let mut meta = fake.file_meta(&note_id);
    meta["length"] = 240.into();
    meta["duration"] = 2.into();
    fake.push_update(fake.message_update(&user, 7, json!({"video_note": meta})));
    env.alice
        .wait_for_message(&room, |m| {
            m.msgtype == "m.video" && m.filename().starts_with("video_note_")
        })
        .await
        .context("the video note")?;
    ensure!(
        env.alice
            .messages(&room)
            .iter()
            .filter(|m| m.msgtype == "m.video")
            .count()
            == 2
    );

    steps.step("Location and contact become text");
    fake.push_update(fake.message_update(
        &user,
        8,
        json!({"location": {"latitude": 59.9139, "longitude": 10.7522}}),
    ));
    let location = env
        .alice
        .wait_for_text(&room, "geo:59.913900,10.752200")
        .await?;
    ensure!(
        location.body.contains("openstreetmap.org"),
        "{}",
        location.body
    );
    fake.push_update(fake.message_update(
        &user,
        9,
        json!({"contact": {"phone_number": "+4712345678", "first_name": "Bo", "last_name": "Ek"}}),
    ));
    env.alice
        .wait_for_text(&room, "Contact: Bo Ek, +4712345678")
        .await?;

    steps.step("A file over the Bot API's 20 MB download limit: a clear line instead of the file");
    let (huge_id, _) = fake.add_file(
        "documents",
        "zip",
        rig::blob("PK", 10),
        Some(25 * 1024 * 1024),
    );
    let mut meta = fake.file_meta(&huge_id);
    meta["file_name"] = "backup.zip".into();
    fake.push_update(fake.message_update(
        &user,
        10,
        json!({"document": meta, "caption": "all my data"}),
    ));
    let notice = env
        .alice
        .wait_for_text(&room, "file too large for the Bot API")
        .await?;
    ensure!(
        notice.body.contains("backup.zip")
            && notice.body.contains("25.0 MB")
            && notice.body.contains("all my data"),
        "{}",
        notice.body
    );

    steps.step("A reply keeps its target; an edit replaces the original event");
    fake.push_update(fake.message_update(&user, 11, json!({
        "text": "see above",
        "reply_to_message": {"message_id": 1, "from": user.json(), "chat": user.private_chat(), "date": 1, "text": "Hello, my order #123 is late"},
    })));
    let reply = env.alice.wait_for_text(&room, "see above").await?;
    ensure!(
        reply.in_reply_to() == Some(first.event_id.as_str()),
        "in_reply_to {:?}",
        reply.relates_to
    );
    fake.push_update(fake.edit_update(&user, 1, "Hello, my order #123 is very late"));
    let edit = env
        .alice
        .wait_for_message(&room, |m| m.replaces() == Some(first.event_id.as_str()))
        .await?;
    ensure!(
        edit.new_body() == Some("Hello, my order #123 is very late"),
        "{:?}",
        edit.content
    );

    steps.step("A group chat is a conversation of its own");
    let ann = TgUser::new(5_550_010, "Ann", None, None);
    let group = json!({"id": -1_001_234_567_890i64, "title": "Acme Fans", "type": "supergroup"});
    fake.push_update(fake.message_in(&ann, &group, 50, json!({"text": "hi all"})));
    let group_room = env.alice.wait_for_invite("Acme Fans").await?;
    env.alice.wait_for_text(&group_room, "hi all").await?;
    ensure!(group_room != room);

    steps.step("Exactly once each, and every update confirmed to Telegram");
    let texts = env.alice.messages(&room);
    for needle in [
        "order #123 is late",
        "the box",
        "see above",
        "Contact: Bo Ek",
    ] {
        let n = texts
            .iter()
            .filter(|m| m.body.contains(needle) && m.replaces().is_none())
            .count();
        ensure!(n == 1, "{needle:?} bridged {n} times");
    }
    rig::poll_until(
        "every update confirmed",
        Duration::from_secs(15),
        || async { Ok(fake.pending_updates().is_empty().then_some(())) },
    )
    .await?;
    steps.finish()
}

/// The display name the room's member list shows for `user`, once they are joined.
async fn member_name(env: &TestEnv, room: &str, user: &str) -> anyhow::Result<String> {
    let member = env
        .alice
        .wait_for_state_event(room, "m.room.member", user, |c| c["membership"] == "join")
        .await?;
    Ok(member["content"]["displayname"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// A group chat with the bot: one room for the group (named after it), each member speaking
/// as a ghost of their own with their own name and photo, no name prefixes; the operator's
/// answer goes to the group; a member's reaction is theirs.
async fn group_members_speak_as_their_own_ghosts_and_answers_reach_the_group(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("group members speak as their own ghosts");
    let fake = FakeTelegram::start().await?;
    let env = TestEnv::start(options(backend, &fake, json!({}))).await?;
    let ann = TgUser::new(5_550_010, "Ann", Some("Lee"), None);
    let bob = TgUser::new(5_550_011, "Bob", Some("Berg"), None);
    let (photo_id, _) = fake.add_file("profile_photos", "jpg", rig::blob("bob", 400), None);
    fake.set_profile_photo(bob.id, &photo_id);
    let group_id = -1_001_234_567_890i64;
    let group = json!({"id": group_id, "title": "Acme Fans", "type": "supergroup"});

    steps.step("Ann writes in the group: a room named after the group, Ann's ghost says it");
    fake.push_update(fake.message_in(&ann, &group, 50, json!({"text": "hi all"})));
    let room = env.alice.wait_for_invite("Acme Fans").await?;
    let from_ann = env.alice.wait_for_text(&room, "hi all").await?;
    ensure!(from_ann.body == "hi all", "body {:?}", from_ann.body);

    steps.step("Bob writes: his own ghost, named Bob Berg, with his photo; no name prefix");
    fake.push_update(fake.message_in(&bob, &group, 51, json!({"text": "hello from Bob"})));
    let from_bob = env.alice.wait_for_text(&room, "hello from Bob").await?;
    ensure!(
        from_bob.body == "hello from Bob",
        "body {:?}",
        from_bob.body
    );
    ensure!(
        from_bob.sender != from_ann.sender,
        "both spoke as {}",
        from_bob.sender
    );
    ensure!(member_name(&env, &room, &from_ann.sender).await? == "Ann Lee");
    ensure!(member_name(&env, &room, &from_bob.sender).await? == "Bob Berg");
    env.alice
        .wait_for_state_event(room.as_str(), "m.room.member", &from_bob.sender, |c| {
            c["avatar_url"]
                .as_str()
                .is_some_and(|u| u.starts_with("mxc://"))
        })
        .await?;
    ensure!(
        env.rooms_named("Acme Fans").await?.len() == 1,
        "one room for the group"
    );

    steps.step("The operator answers: the bot writes in the group chat");
    env.alice.send_text(&room, "Welcome, both of you").await?;
    let sent = fake
        .wait_for_call("sendMessage", |c| {
            c.status == 200 && c.str("text").as_deref() == Some("Welcome, both of you")
        })
        .await?;
    ensure!(
        sent.i64("chat_id") == Some(group_id),
        "sent to {:?}",
        sent.params
    );
    let answer_id = rig::poll_until(
        "the answer in the group",
        Duration::from_secs(30),
        || async { Ok(fake.bot_message_id(group_id, "Welcome, both of you")) },
    )
    .await?;
    let answer = env
        .alice
        .wait_for_text(&room, "Welcome, both of you")
        .await?;

    steps.step("Bob reacts to the answer: the reaction is his ghost's");
    let mut reaction = fake.reaction_update(&bob, answer_id, &[], &["👍"]);
    reaction["message_reaction"]["chat"] = group.clone();
    fake.push_update(reaction);
    env.alice
        .wait_for_reaction_by(&room, &answer.event_id, "👍", &from_bob.sender)
        .await?;
    steps.finish()
}

async fn operator_messages_files_replies_edits_and_deletions_reach_the_customer(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps =
        rig::Steps::new("operator messages files replies edits and deletions reach the customer");
    let fake = FakeTelegram::start().await?;
    // Success shown as status events too, for clients that render them (the default, a
    // receipt only, is checked in tests/relay.rs).
    let env = TestEnv::start(
        options(backend, &fake, json!({}))
            .edit_config(|c| c["bridge"]["delivery_status"] = "events".into()),
    )
    .await?;
    let user = jane();
    let chat = user.id;
    fake.push_update(fake.message_update(&user, 1, json!({"text": "Do you ship to Norway?"})));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    let question = env.alice.wait_for_text(&room, "Norway").await?;

    steps.step("Formatted text goes out as Telegram HTML");
    let answer = env
        .alice
        .send_html(
            &room,
            "Sorry! **Checking** now",
            "<p>Sorry! <strong>Checking</strong> now</p>",
        )
        .await?;
    let sent = fake
        .wait_for_call("sendMessage", |c| {
            c.status == 200 && c.str("text").is_some_and(|t| t.contains("Checking"))
        })
        .await?;
    ensure!(
        sent.i64("chat_id") == Some(chat),
        "chat id {:?}",
        sent.params
    );
    ensure!(
        sent.str("parse_mode").as_deref() == Some("HTML"),
        "parse mode {:?}",
        sent.params
    );
    ensure!(
        sent.str("text").as_deref() == Some("Sorry! <b>Checking</b> now"),
        "text {:?}",
        sent.params
    );
    env.alice
        .wait_for_event(&room, "a SUCCESS status event", |e| {
            e["type"] == "com.beeper.message_send_status"
                && e["content"]["m.relates_to"]["event_id"] == answer.as_str()
                && e["content"]["status"] == "SUCCESS"
                && e["content"]["network"] == "telegram"
        })
        .await?;
    let answer_id = fake
        .bot_message_id(chat, "Sorry! Checking now")
        .context("the answer in the fake")?;

    steps.step("A reply to the customer's message names it");
    env.alice
        .reply(&room, &question.event_id, "Yes, we do")
        .await?;
    let reply = fake
        .wait_for_call("sendMessage", |c| {
            c.str("text").as_deref() == Some("Yes, we do")
        })
        .await?;
    let target = reply
        .object("reply_parameters")
        .and_then(|r| r["message_id"].as_i64());
    ensure!(target == Some(1), "reply_parameters {:?}", reply.params);

    steps.step("Files: an image as a photo, a PDF as a document, OGG audio as a voice note");
    let png = rig::blob("\u{89}PNG", 2500);
    env.alice
        .send_file(&room, "label.png", "image/png", png.clone())
        .await?;
    let photo = fake.wait_for_call("sendPhoto", |c| c.status == 200).await?;
    let upload = photo.upload.clone().context("the photo's bytes")?;
    ensure!(
        upload.bytes == png && upload.name == "label.png",
        "photo upload {} bytes named {}",
        upload.bytes.len(),
        upload.name
    );
    let pdf = rig::blob("%PDF", 3500);
    env.alice
        .send_file(&room, "return-label.pdf", "application/pdf", pdf.clone())
        .await?;
    let doc = fake
        .wait_for_call("sendDocument", |c| c.status == 200)
        .await?;
    ensure!(
        doc.upload
            .as_ref()
            .is_some_and(|u| u.bytes == pdf && u.name == "return-label.pdf"),
        "document upload"
    );
    let ogg = rig::blob("OggS", 1800);
    env.alice
        .send_file(&room, "note.ogg", "audio/ogg", ogg.clone())
        .await?;
    let voice = fake.wait_for_call("sendVoice", |c| c.status == 200).await?;
    ensure!(
        voice.upload.as_ref().is_some_and(|u| u.bytes == ogg),
        "voice upload"
    );
    // A panorama Telegram refuses as a photo (width + height over 10000: the fake answers
    // PHOTO_INVALID_DIMENSIONS) reaches the customer as a document.
    steps.step("A panorama Telegram refuses as a photo reaches the customer as a document");
    let mut panorama = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    panorama.extend_from_slice(&9600u32.to_be_bytes());
    panorama.extend_from_slice(&480u32.to_be_bytes());
    panorama.extend(rig::blob("", 3000));
    env.alice
        .send_file(&room, "panorama.png", "image/png", panorama.clone())
        .await?;
    fake.wait_for_call("sendDocument", |c| {
        c.status == 200
            && c.upload
                .as_ref()
                .is_some_and(|u| u.bytes == panorama && u.name == "panorama.png")
    })
    .await
    .context("the panorama as a document")?;

    steps.step("Operator edits and deletes: the same Telegram message");
    env.alice
        .edit(&room, &answer, "Checked: it left today")
        .await?;
    let edit = fake
        .wait_for_call("editMessageText", |c| c.status == 200)
        .await?;
    ensure!(
        edit.i64("message_id") == Some(answer_id),
        "edited message {:?}",
        edit.params
    );
    let kept = fake
        .bot_message(chat, answer_id)
        .context("the edited message")?;
    ensure!(kept["text"] == "Checked: it left today", "{kept}");
    env.alice.redact(&room, &answer, None).await?;
    let delete = fake
        .wait_for_call("deleteMessage", |c| c.status == 200)
        .await?;
    ensure!(
        delete.i64("message_id") == Some(answer_id),
        "deleted message {:?}",
        delete.params
    );
    ensure!(fake.bot_message(chat, answer_id).is_none());

    steps.step(
        "The customer replies to the bot's \"Yes, we do\": Matrix sees the reply to Alice's event",
    );
    let yes_id = fake
        .bot_message_id(chat, "Yes, we do")
        .context("the bot's reply in the fake")?;
    fake.push_update(fake.message_update(&user, 2, json!({
        "text": "Great, thanks",
        "reply_to_message": {"message_id": yes_id, "from": {"id": fakes::telegram::BOT_ID, "is_bot": true, "first_name": "Acme Support"},
                             "chat": user.private_chat(), "date": 1, "text": "Yes, we do"},
    })));
    let thanks = env.alice.wait_for_text(&room, "Great, thanks").await?;
    let alice_yes = env.alice.wait_for_text(&room, "Yes, we do").await?;
    ensure!(
        thanks.in_reply_to() == Some(alice_yes.event_id.as_str()),
        "in_reply_to {:?}",
        thanks.relates_to
    );

    steps.step("Each operator message went out exactly once");
    let yes_sends = fake
        .calls("sendMessage")
        .iter()
        .filter(|c| c.status == 200 && c.str("text").as_deref() == Some("Yes, we do"))
        .count();
    ensure!(yes_sends == 1, "reply sent {yes_sends} times");
    steps.finish()
}

async fn a_crash_between_get_updates_and_storage_loses_nothing(
    backend: Backend,
) -> anyhow::Result<()> {
    let fake = FakeTelegram::start().await?;
    let mut env = TestEnv::start(options(backend, &fake, json!({}))).await?;
    let user = jane();
    fake.push_update(fake.message_update(&user, 1, json!({"text": "first"})));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "first").await?;

    // One batch: text, photo, text. The photo's download hangs, so the bridge has received the
    // batch from getUpdates but cannot store all of it; then it crashes.
    fake.hold_downloads();
    let (photo_id, _) = fake.add_file("photos", "jpg", rig::blob("jpeg", 1000), None);
    let mut meta = fake.file_meta(&photo_id);
    meta["width"] = 100.into();
    meta["height"] = 100.into();
    let ids = fake.push_updates(vec![
        fake.message_update(&user, 2, json!({"text": "before the crash"})),
        fake.message_update(
            &user,
            3,
            json!({"photo": [meta], "caption": "photo in flight"}),
        ),
        fake.message_update(&user, 4, json!({"text": "after the photo"})),
    ]);
    rig::poll_until(
        "the bridge fetching the photo",
        Duration::from_secs(30),
        || async { Ok((!fake.held_downloads().is_empty()).then_some(())) },
    )
    .await?;
    let calls_before_crash = fake.calls("getUpdates").len();
    env.bridge.kill();
    ensure!(
        fake.pending_updates().contains(&ids[1]),
        "the photo's update must not be confirmed before it is stored"
    );
    fake.release_downloads();
    env.bridge.start().await?;

    for text in ["before the crash", "photo in flight", "after the photo"] {
        env.alice.wait_for_text(&room, text).await?;
    }
    env.alice
        .wait_for_message(&room, |m| m.msgtype == "m.image")
        .await?;
    // The restarted bridge asked again without an offset (or one not beyond the photo).
    let after = fake.calls("getUpdates");
    let first_after = after
        .get(calls_before_crash)
        .context("a getUpdates after the restart")?;
    ensure!(
        first_after.i64("offset").is_none_or(|o| o <= ids[1]),
        "first offset after restart {:?} must not skip update {}",
        first_after.params,
        ids[1]
    );

    // Another restart replays nothing; a new message after it arrives once.
    env.bridge.restart().await?;
    fake.push_update(fake.message_update(&user, 5, json!({"text": "after the second restart"})));
    env.alice
        .wait_for_text(&room, "after the second restart")
        .await?;
    let messages = env.alice.messages(&room);
    for text in [
        "first",
        "before the crash",
        "photo in flight",
        "after the photo",
    ] {
        let n = messages.iter().filter(|m| m.body == text).count();
        ensure!(n == 1, "{text:?} bridged {n} times");
    }
    ensure!(
        messages.iter().filter(|m| m.msgtype == "m.image").count() == 1,
        "the photo bridged once"
    );
    Ok(())
}

/// Flood control: Telegram's `retry_after` is waited out, for sends and for polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_honoured() -> anyhow::Result<()> {
    let fake = FakeTelegram::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &fake, json!({})).max_attempts(6)).await?;
    let user = jane();
    fake.push_update(fake.message_update(&user, 1, json!({"text": "hello"})));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "hello").await?;

    // A storm on sendMessage: two 429s with retry_after 2, then success.
    fake.fault(
        Some("sendMessage"),
        FaultKind::TooManyRequests { retry_after: 2 },
        2,
    );
    env.alice.send_text(&room, "patience").await?;
    fake.wait_for_call("sendMessage", |c| {
        c.status == 200 && c.str("text").as_deref() == Some("patience")
    })
    .await?;
    let sends: Vec<_> = fake
        .calls("sendMessage")
        .into_iter()
        .filter(|c| c.str("text").as_deref() == Some("patience"))
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

    // A 429 on getUpdates: the next poll waits too, and the message still arrives.
    fake.fault(
        Some("getUpdates"),
        FaultKind::TooManyRequests { retry_after: 2 },
        1,
    );
    let limited = fake
        .wait_for_call("getUpdates", |c| c.status == 429)
        .await?;
    fake.push_update(fake.message_update(&user, 2, json!({"text": "still there?"})));
    env.alice.wait_for_text(&room, "still there?").await?;
    let next = fake
        .calls("getUpdates")
        .into_iter()
        .find(|c| c.at > limited.at)
        .context("a poll after the 429")?;
    let gap = next.at.duration_since(limited.at);
    ensure!(
        gap >= Duration::from_millis(1950),
        "polled again after {gap:?}, before retry_after (2 s)"
    );
    Ok(())
}

/// Permanent failures become notices operators can read; oversized files are refused before
/// sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_bot_and_an_oversized_file_become_notices() -> anyhow::Result<()> {
    let fake = FakeTelegram::start().await?;
    let env = TestEnv::start(options(
        Backend::Sqlite,
        &fake,
        json!({"max_file_size": 65536}),
    ))
    .await?;
    let user = jane();
    fake.push_update(fake.message_update(&user, 1, json!({"text": "hi"})));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "hi").await?;

    let big = env
        .alice
        .send_file(
            &room,
            "huge.bin",
            "application/octet-stream",
            vec![7u8; 100 * 1024],
        )
        .await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(big.as_str())
        })
        .await?;
    ensure!(
        notice.body.contains("huge.bin") && notice.body.contains("64.0 KB"),
        "notice: {}",
        notice.body
    );
    ensure!(
        fake.calls("sendDocument").is_empty(),
        "the oversized file was not sent"
    );

    fake.block(user.id, true);
    let blocked = env.alice.send_text(&room, "are you there?").await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(blocked.as_str())
        })
        .await?;
    ensure!(
        notice.body.contains("the customer has blocked the bot"),
        "notice: {}",
        notice.body
    );
    env.alice
        .wait_for_send_status(&room, &blocked, "FAIL_PERMANENT")
        .await?;
    let attempts = fake
        .calls("sendMessage")
        .iter()
        .filter(|c| c.str("text").as_deref() == Some("are you there?"))
        .count();
    ensure!(
        attempts == 1,
        "a permanent failure is not retried ({attempts} attempts)"
    );
    Ok(())
}

/// Webhook mode: the bridge registers the webhook with its secret, refuses deliveries without
/// it (storing nothing), and stores then acknowledges the real ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_mode_checks_the_secret_before_anything_else() -> anyhow::Result<()> {
    let secret = "s3cret-Token_for-tests";
    let fake = FakeTelegram::start().await?;
    let env = TestEnv::start(options(
        Backend::Sqlite,
        &fake,
        json!({"mode": "webhook", "webhook_secret": secret}),
    ))
    .await?;
    let url = format!("{}/telegram/webhook", env.bridge.base_url());
    let (registered, registered_secret) =
        rig::poll_until("setWebhook", Duration::from_secs(30), || async {
            Ok(fake.webhook())
        })
        .await?;
    ensure!(
        registered == url && registered_secret.as_deref() == Some(secret),
        "registered {registered} {registered_secret:?}"
    );

    let user = jane();
    let forged = fake.message_update(&user, 1, json!({"text": "forged message"}));
    ensure!(
        fake.post_webhook(&url, None, forged.clone()).await? == 401,
        "no secret header"
    );
    ensure!(
        fake.post_webhook(&url, Some("wrong-secret"), forged.clone())
            .await?
            == 403,
        "wrong secret"
    );
    ensure!(
        fake.post_webhook(&url, Some(&secret[..secret.len() - 1]), forged)
            .await?
            == 403,
        "secret prefix"
    );
    // Past the secret, a body that is not even JSON is Telegram's: kept and shown in the admin
    // room (the no-team lobby: no bridge.admin_room here), then acknowledged.
    let garbage = reqwest::Client::new()
        .post(&url)
        .header("X-Telegram-Bot-Api-Secret-Token", secret)
        .body("{not json, update 77")
        .send()
        .await?;
    ensure!(
        garbage.status() == 200,
        "garbage body: {}",
        garbage.status()
    );
    let lobby = env.alice.wait_for_invite("lobby").await?;
    let shown = env
        .alice
        .wait_for_text(&lobby, "{not json, update 77")
        .await?;
    ensure!(
        shown.msgtype == "m.notice" && shown.body.contains("not JSON"),
        "admin notice: {shown:?}"
    );

    let real = fake.message_update(&user, 2, json!({"text": "real message"}));
    ensure!(fake.post_webhook(&url, Some(secret), real.clone()).await? == 200);
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "real message").await?;
    // Telegram redelivering the same update changes nothing.
    ensure!(fake.post_webhook(&url, Some(secret), real).await? == 200);
    env.alice.send_text(&room, "marker").await?;
    fake.wait_for_call("sendMessage", |c| {
        c.str("text").as_deref() == Some("marker")
    })
    .await?;
    let messages = env.alice.messages(&room);
    ensure!(
        !messages.iter().any(|m| m.body.contains("forged")),
        "a forged update reached Matrix"
    );
    ensure!(
        messages.iter().filter(|m| m.body == "real message").count() == 1,
        "redelivery doubled the message"
    );
    ensure!(
        fake.calls("getUpdates").is_empty(),
        "webhook mode never polls"
    );
    Ok(())
}

/// Issue 14: updates in shapes the bridge does not know reach the room with what could be
/// read (an unknown entity type, an unknown chat type, ids sent as strings), an unknown message
/// kind as a notice naming it, and a message that names no chat in the admin room. Nothing is
/// only acknowledged: every update is confirmed to Telegram, and every one shows somewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_in_unknown_shapes_reach_a_room() -> anyhow::Result<()> {
    let fake = FakeTelegram::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &fake, json!({}))).await?;
    let user = jane();

    // An entity type from a later Bot API: the text and the known formatting come through.
    fake.push_update(fake.message_update(
        &user,
        1,
        json!({
            "text": "my parcel is lost",
            "entities": [
                {"type": "sparkle_effect", "offset": 0, "length": 2},
                {"type": "bold", "offset": 3, "length": 6},
            ],
        }),
    ));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    let first = env.alice.wait_for_text(&room, "my parcel is lost").await?;
    ensure!(
        first
            .formatted_body
            .as_deref()
            .is_some_and(|h| h.contains("<b>parcel</b>")),
        "html: {:?}",
        first.formatted_body
    );

    // A chat type from a later Bot API, in the customer's own chat.
    let mut chat = user.private_chat();
    chat["type"] = "hyperchat".into();
    fake.push_update(fake.message_in(&user, &chat, 2, json!({"text": "from a new chat type"})));
    let read = env
        .alice
        .wait_for_text(&room, "from a new chat type")
        .await?;
    ensure!(
        read.msgtype == "m.text" && read.body == "from a new chat type",
        "{read:?}"
    );

    // Ids and the date in JSON types the Bot API does not document for them.
    let mut typed = fake.message_update(&user, 3, json!({"text": "ids as strings"}));
    typed["message"]["message_id"] = "3".into();
    typed["message"]["chat"]["id"] = user.id.to_string().into();
    typed["message"]["from"]["id"] = user.id.to_string().into();
    typed["message"]["date"] = json!({"unexpected": true});
    fake.push_update(typed);
    let read = env.alice.wait_for_text(&room, "ids as strings").await?;
    ensure!(
        read.msgtype == "m.text" && read.body == "ids as strings",
        "{read:?}"
    );

    // A message kind nobody knows yet: a notice naming it, in the customer's room.
    fake.push_update(fake.message_update(&user, 4, json!({"hologram": {"id": "h1"}})));
    let notice = env.alice.wait_for_text(&room, "hologram").await?;
    ensure!(notice.msgtype == "m.notice", "{notice:?}");

    // A message that names no chat: shown raw in the admin room.
    fake.push_update(
        json!({"message": {"message_id": 5, "date": 1, "text": "where does this go"}}),
    );
    let lobby = env.alice.wait_for_invite("lobby").await?;
    let shown = env
        .alice
        .wait_for_text(&lobby, "where does this go")
        .await?;
    ensure!(shown.msgtype == "m.notice", "{shown:?}");

    rig::poll_until(
        "every update confirmed",
        Duration::from_secs(30),
        || async { Ok(fake.pending_updates().is_empty().then_some(())) },
    )
    .await?;
    Ok(())
}

/// Issue 14: after a week without updates Telegram picks the next `update_id` anew, possibly
/// below the last one, and a `getUpdates` whose offset is above an update's id confirms (drops)
/// it. The bridge never polls with an offset from before, in memory or across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_ids_chosen_anew_below_the_last_are_not_dropped() -> anyhow::Result<()> {
    let fake = FakeTelegram::start().await?;
    let mut env = TestEnv::start(options(Backend::Sqlite, &fake, json!({}))).await?;
    let user = jane();
    let first =
        fake.push_update(fake.message_update(&user, 1, json!({"text": "before the quiet week"})));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice
        .wait_for_text(&room, "before the quiet week")
        .await?;
    // Wait until the bridge confirmed that update and is waiting for the next ones.
    rig::poll_until("the update confirmed", Duration::from_secs(30), || async {
        Ok((!fake.pending_updates().contains(&first)).then_some(()))
    })
    .await?;
    let polls = fake.calls("getUpdates").len();
    rig::poll_until("the next getUpdates", Duration::from_secs(30), || async {
        Ok((fake.calls("getUpdates").len() > polls).then_some(()))
    })
    .await?;

    fake.reset_update_ids(1000);
    fake.push_update(fake.message_update(&user, 2, json!({"text": "after the quiet week"})));
    env.alice
        .wait_for_text(&room, "after the quiet week")
        .await?;

    // The same across a restart: nothing stored from before can confirm the new ids.
    env.bridge.restart().await?;
    fake.reset_update_ids(10);
    fake.push_update(fake.message_update(
        &user,
        3,
        json!({"text": "after a restart and another reset"}),
    ));
    env.alice
        .wait_for_text(&room, "after a restart and another reset")
        .await?;
    let messages = env.alice.messages(&room);
    for text in ["before the quiet week", "after the quiet week"] {
        let n = messages.iter().filter(|m| m.body == text).count();
        ensure!(n == 1, "{text:?} bridged {n} times");
    }
    Ok(())
}

/// The fake itself speaks the Bot API's envelope (a check of the test tool, no bridge).
#[tokio::test]
async fn the_fake_speaks_the_bot_api() -> anyhow::Result<()> {
    let fake = FakeTelegram::start().await?;
    let http = reqwest::Client::new();
    // Method names are case-insensitive, as on Telegram.
    let me: Value = http
        .post(format!("{}/bot{TOKEN}/GetMe", fake.url()))
        .send()
        .await?
        .json()
        .await?;
    ensure!(me["ok"] == true && me["result"]["is_bot"] == true, "{me}");
    let wrong = http
        .post(format!("{}/bot1:nope/getMe", fake.url()))
        .send()
        .await?;
    ensure!(wrong.status() == 401, "{}", wrong.status());
    let body: Value = wrong.json().await?;
    ensure!(
        body == json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        "{body}"
    );
    fake.fault(
        Some("sendMessage"),
        FaultKind::TooManyRequests { retry_after: 5 },
        1,
    );
    let limited = http
        .post(format!("{}/bot{TOKEN}/sendMessage", fake.url()))
        .json(&json!({"chat_id": 1, "text": "x"}))
        .send()
        .await?;
    ensure!(limited.status() == 429);
    let body: Value = limited.json().await?;
    ensure!(
        body["parameters"]["retry_after"] == 5
            && body["description"] == "Too Many Requests: retry after 5",
        "{body}"
    );
    let empty: Value = http
        .get(format!(
            "{}/bot{TOKEN}/getUpdates?offset=1&timeout=0",
            fake.url()
        ))
        .send()
        .await?
        .json()
        .await?;
    ensure!(empty == json!({"ok": true, "result": []}), "{empty}");
    Ok(())
}

/// An answer longer than Telegram carries (4096 UTF-16 code units; the fake refuses more) is
/// delivered as several messages in order, each with valid formatting; editing it edits the
/// parts and deletes those the new text no longer needs; deleting it deletes every part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_answer_arrives_in_parts_and_edits_and_deletions_reach_every_part(
) -> anyhow::Result<()> {
    let mut steps =
        rig::Steps::new("a long answer arrives in parts and edits and deletions reach every part");
    let fake = FakeTelegram::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &fake, json!({}))).await?;
    let user = jane();
    let chat = user.id;
    fake.push_update(fake.message_update(&user, 1, json!({"text": "Tell me everything"})));
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    env.alice.wait_for_text(&room, "Tell me everything").await?;

    // 40 paragraphs of ~240 characters with emoji (two UTF-16 units each): ~9,900 units
    let paragraph = |i: usize| {
        format!(
            "Paragraph {i}: <b>bold words 😀 number {i}</b> and then some plain text that goes on \
             for a while, with a sentence end. And another sentence 😀 that makes the paragraph \
             long enough to matter; the end of paragraph {i}."
        )
    };
    let html: String = (0..40)
        .map(|i| format!("<p>{}</p>", paragraph(i)))
        .collect();
    let body: String = (0..40)
        .map(|i| paragraph(i).replace("<b>", "**").replace("</b>", "**"))
        .collect::<Vec<_>>()
        .join("\n\n");
    let answer = env.alice.send_html(&room, &body, &html).await?;
    env.alice.wait_for_any_send_status(&room, &answer).await?;
    let parts = fake.bot_messages(chat);
    ensure!(parts.len() >= 3, "{} parts: {parts:#?}", parts.len());
    let texts: Vec<String> = parts
        .iter()
        .map(|(_, m)| m["text"].as_str().unwrap_or_default().to_string())
        .collect();
    for t in &texts {
        ensure!(
            t.encode_utf16().count() <= 4096,
            "a part of {} units",
            t.encode_utf16().count()
        );
    }
    steps.step("In order, nothing lost, nothing doubled");
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let expected = squash(
        &(0..40)
            .map(|i| paragraph(i).replace("<b>", "").replace("</b>", ""))
            .collect::<Vec<_>>()
            .join(" "),
    );
    ensure!(
        squash(&texts.join(" ")) == expected,
        "the parts say: {texts:#?}"
    );
    steps.step("Every part went out as Telegram HTML, bold kept");
    let sends = fake.calls("sendMessage");
    let long_sends: Vec<_> = sends
        .iter()
        .filter(|c| c.status == 200 && c.str("text").is_some_and(|t| t.contains("Paragraph")))
        .collect();
    ensure!(
        long_sends.len() == parts.len(),
        "{} sends for {} parts",
        long_sends.len(),
        parts.len()
    );
    for c in &long_sends {
        ensure!(
            c.str("parse_mode").as_deref() == Some("HTML"),
            "{:?}",
            c.params
        );
        ensure!(
            c.str("text").is_some_and(|t| t.contains("<b>")),
            "{:?}",
            c.params
        );
    }
    let failures = fake
        .calls("sendMessage")
        .iter()
        .filter(|c| c.status != 200)
        .count();
    ensure!(failures == 0, "{failures} refused sends");

    steps.step("Edited down to one short text: the first part says it, the others are gone");
    env.alice
        .edit(&room, &answer, "In short: it shipped.")
        .await?;
    let first_id = parts[0].0;
    rig::poll_until(
        "the edit to reach every part",
        rig::DEFAULT_TIMEOUT,
        || async {
            let now = fake.bot_messages(chat);
            Ok((now.len() == 1
                && now[0].0 == first_id
                && now[0].1["text"] == "In short: it shipped.")
                .then_some(()))
        },
    )
    .await
    .with_context(|| format!("the chat now: {:#?}", fake.bot_messages(chat)))?;

    steps.step("A second long answer, deleted by the operator: every part goes");
    let again = env.alice.send_html(&room, &body, &html).await?;
    env.alice.wait_for_any_send_status(&room, &again).await?;
    ensure!(
        fake.bot_messages(chat).len() > 3,
        "{:#?}",
        fake.bot_messages(chat)
    );
    env.alice.redact(&room, &again, None).await?;
    rig::poll_until(
        "the deletion to reach every part",
        rig::DEFAULT_TIMEOUT,
        || async { Ok((fake.bot_messages(chat).len() == 1).then_some(())) },
    )
    .await
    .with_context(|| format!("the chat now: {:#?}", fake.bot_messages(chat)))?;
    steps.finish()
}

async fn reactions_both_ways(backend: Backend) -> anyhow::Result<()> {
    reactions_scenario(backend, false).await
}

/// Reactions in webhook mode: `setWebhook` must ask for `message_reaction` updates too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_both_ways_in_webhook_mode() -> anyhow::Result<()> {
    reactions_scenario(Backend::Sqlite, true).await
}

/// Issue 19: an operator's reaction reaches the customer (`setMessageReaction`), mapped onto
/// Telegram's list or refused with the reason shown; the customer's reaction and its removal
/// (`message_reaction` updates) show as the ghost's `m.reaction` and its redaction.
async fn reactions_scenario(backend: Backend, webhook: bool) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("reactions both ways");
    let secret = "s3cret-Token_for-reactions";
    let fake = FakeTelegram::start().await?;
    let extra = if webhook {
        json!({"mode": "webhook", "webhook_secret": secret})
    } else {
        json!({})
    };
    let env = TestEnv::start(options(backend, &fake, extra)).await?;
    let url = format!("{}/telegram/webhook", env.bridge.base_url());
    if webhook {
        rig::poll_until("setWebhook", Duration::from_secs(30), || async {
            Ok(fake.webhook())
        })
        .await?;
    }
    let deliver = |update: Value| {
        let (fake, url) = (&fake, url.clone());
        async move {
            if webhook {
                let status = fake.post_webhook(&url, Some(secret), update).await?;
                ensure!(status == 200, "webhook answered {status}");
            } else {
                fake.push_update(update);
            }
            anyhow::Ok(())
        }
    };
    let user = jane();

    steps.step("The customer asks; an operator answers");
    deliver(fake.message_update(&user, 1, json!({"text": "Is my order shipped?"}))).await?;
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    let question = env
        .alice
        .wait_for_text(&room, "Is my order shipped?")
        .await?;
    env.alice.send_text(&room, "Yes, it left today").await?;
    let answer_id = rig::poll_until("the answer sent", Duration::from_secs(30), || async {
        Ok(fake.bot_message_id(user.id, "Yes, it left today"))
    })
    .await?;
    let answer = env.alice.wait_for_text(&room, "Yes, it left today").await?;

    steps.step("The operator reacts 👍 to the question: the customer sees the bot's 👍");
    let thumbs = env.alice.react(&room, &question.event_id, "👍").await?;
    rig::poll_until("the bot's reaction", Duration::from_secs(30), || async {
        let r = fake.bot_reactions(user.id, 1);
        Ok((r == vec![json!({"type": "emoji", "emoji": "👍"})]).then_some(()))
    })
    .await?;

    steps.step("The operator takes it back: the bot's reaction is gone");
    env.alice.redact(&room, &thumbs, None).await?;
    rig::poll_until("the reaction removed", Duration::from_secs(30), || async {
        let calls = fake.calls("setMessageReaction");
        Ok((calls.len() >= 2 && fake.bot_reactions(user.id, 1).is_empty()).then_some(()))
    })
    .await?;

    steps.step("❤️ (with its variation selector) goes out as Telegram's ❤");
    env.alice.react(&room, &question.event_id, "❤️").await?;
    rig::poll_until("the bot's heart", Duration::from_secs(30), || async {
        let r = fake.bot_reactions(user.id, 1);
        Ok((r == vec![json!({"type": "emoji", "emoji": "❤"})]).then_some(()))
    })
    .await?;

    steps.step("🦆 is not among Telegram's reactions: refused, the reason shown to the operator");
    let calls_before = fake.calls("setMessageReaction").len();
    let duck = env.alice.react(&room, &question.event_id, "🦆").await?;
    let status = env
        .alice
        .wait_for_send_status(&room, &duck, "FAIL_PERMANENT")
        .await?;
    let reason = status["content"]["message"].as_str().unwrap_or_default();
    ensure!(
        reason.contains("Telegram lets the bot react only with") && reason.contains("🦆"),
        "reason shown: {reason}"
    );
    ensure!(
        fake.calls("setMessageReaction").len() == calls_before,
        "a refused reaction was sent anyway"
    );

    steps.step("The customer reacts 🔥 to the answer: the ghost's m.reaction on it");
    deliver(fake.reaction_update(&user, answer_id, &[], &["🔥"])).await?;
    let reaction_id = env
        .alice
        .wait_for_reaction_by(&room, &answer.event_id, "🔥", &question.sender)
        .await?;

    steps.step("The customer takes it back: the ghost's reaction is redacted");
    deliver(fake.reaction_update(&user, answer_id, &["🔥"], &[])).await?;
    env.alice
        .wait_for_redaction(&room, &reaction_id)
        .await
        .context("the reaction taken back")?;
    Ok(())
}
