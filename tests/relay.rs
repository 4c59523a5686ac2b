//! The core relay, end to end: a web chat visitor (JSON API) on one side, operators as real
//! Matrix clients on the other, the real `switchboard` binary and a real Synapse in between.
//! Every scenario runs on SQLite and on PostgreSQL.

#[macro_use]
mod rig;

use anyhow::{ensure, Context};
use rig::{Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};

// Every scenario runs on both stores.
on_both_stores!(
    first_message_opens_a_portal_and_the_answer_reaches_the_visitor,
    files_go_both_ways_and_oversized_ones_get_a_notice,
    replies_edits_and_deletions_go_both_ways,
    a_burst_that_names_its_own_messages_arrives_whole,
    a_restart_between_message_and_answer_loses_nothing,
    commands_and_notes_never_reach_the_customer,
    reactions_go_both_ways_through_the_web_chat_api,
);

fn is_agent_message(e: &Value) -> bool {
    e["type"] == "message" && e["from"] == "agent"
}

async fn first_message_opens_a_portal_and_the_answer_reaches_the_visitor(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps =
        rig::Steps::new("first message opens a portal and the answer reaches the visitor");
    let env = TestEnv::start(BridgeOptions::default().backend(backend)).await?;
    let visitor = env.visitor("Jane Doe", "jane@example.com").await?;
    let first = visitor.send("Hello, my order #123 has not arrived").await?;

    steps.step("The operator is invited to a new room named after the customer and the channel");
    let room = env.alice.wait_for_invite("Jane Doe").await?;
    let msg = env.alice.wait_for_text(&room, "order #123").await?;
    ensure!(
        msg.sender.starts_with("@sb_webchat_"),
        "sent by a ghost, not {}",
        msg.sender
    );
    let members = env.alice.members(&room).await?;
    let ghost_name = members
        .iter()
        .find(|(id, _)| id == &msg.sender)
        .map(|(_, name)| name.clone());
    ensure!(
        ghost_name.as_deref() == Some("Jane Doe"),
        "ghost display name: {ghost_name:?}"
    );
    ensure!(env.alice.room_name(&room).await?.as_deref() == Some("Jane Doe (webchat)"));
    let topic = env.alice.room_topic(&room).await?.unwrap_or_default();
    ensure!(
        topic.contains("jane@example.com") && topic.contains("webchat"),
        "topic: {topic}"
    );

    steps.step("The room is the bridge's: private, bridge state, the bot at the top power level");
    let bridge_state = env.alice.state_events(&room).await?;
    let bridge_events: Vec<&Value> = bridge_state
        .iter()
        .filter(|e| e["type"] == "m.bridge" || e["type"] == "uk.half-shot.bridge")
        .collect();
    ensure!(
        bridge_events.len() == 2,
        "m.bridge and uk.half-shot.bridge state: {bridge_events:?}"
    );
    ensure!(bridge_events[0]["content"]["protocol"]["id"] == "webchat");
    ensure!(bridge_events[0]["content"]["bridgebot"] == env.bot_user_id().as_str());
    let join_rules = env
        .alice
        .state_event(&room, "m.room.join_rules", "")
        .await?
        .context("join rules")?;
    ensure!(
        join_rules["join_rule"] == "invite" || join_rules["content"]["join_rule"] == "invite",
        "{join_rules}"
    );
    let create = bridge_state
        .iter()
        .find(|e| e["type"] == "m.room.create")
        .context("create event")?;
    ensure!(
        create["sender"] == env.bot_user_id().as_str(),
        "the bot created the room (and so holds top power)"
    );
    let bob_room = env.bob.wait_for_invite("Jane Doe").await?;
    ensure!(
        bob_room == room,
        "every configured operator is invited to the portal"
    );

    steps.step("The operator answers with formatting; the visitor sees it, safely");
    let answer = env
        .alice
        .send_html(
            &room,
            "Sorry! **Checking** now",
            "Sorry! <b>Checking</b> now<script>alert(1)</script>",
        )
        .await?;
    let got = visitor.wait_for_agent_text("**Checking** now").await?;
    let html = got["html"].as_str().unwrap_or_default();
    ensure!(
        html.contains("<b>Checking</b>") && !html.contains("script"),
        "sanitised html: {html}"
    );
    ensure!(
        got["text"] == "Sorry! **Checking** now",
        "plain text kept: {got}"
    );

    steps.step("Delivery truth: the bridge reports the message delivered in the room, as the bot's receipt on it");
    env.alice
        .wait_for_read_receipt(&room, &env.alice.bot_id(), &answer)
        .await?;
    steps.step("...and the customer reading it becomes the ghost's read receipt on it");
    let agent_id = got["id"].as_str().context("agent message id")?.to_string();
    visitor.read(&agent_id).await?;
    env.alice
        .wait_for_read_receipt(&room, &msg.sender, &answer)
        .await?;

    steps.step("The visitor typing shows as the ghost typing (the other way is checked in tests/widget.rs, through the widget's live stream)");
    visitor.typing(true).await?;
    env.alice.wait_for_typing(&room, &msg.sender, true).await?;

    steps.step("The same visitor writing again lands in the same room; no second portal");
    visitor.send("Any news?").await?;
    env.alice.wait_for_text(&room, "Any news?").await?;
    let portals = env.rooms_named("Jane Doe").await?;
    ensure!(
        portals == [room.clone()],
        "portals for Jane Doe: {portals:?}"
    );
    let statuses = env.alice.send_statuses(&room, &answer);
    ensure!(
        statuses.is_empty(),
        "a success costs the homeserver no timeline event by default: {statuses:?}"
    );

    steps.step("The ghost's own messages are not echoed back to the visitor as agent messages");
    let history = visitor.refresh().await?;
    let agents: Vec<&Value> = history.iter().filter(|e| is_agent_message(e)).collect();
    ensure!(
        agents.len() == 1,
        "exactly the operator's one answer reached the visitor: {agents:?}"
    );

    steps.step("A burst of answers: each reaches the visitor once, in order, and the bot's receipt ends on the newest (a read receipt covers every earlier message, so a burst needs no receipt per message)");
    let mut burst = Vec::new();
    for i in 0..6 {
        burst.push(
            env.alice
                .send_text(&room, &format!("burst answer {i}"))
                .await?,
        );
    }
    visitor.wait_for_agent_text("burst answer 5").await?;
    let texts: Vec<String> = visitor
        .refresh()
        .await?
        .iter()
        .filter(|e| e["from"] == "agent")
        .filter_map(|e| e["text"].as_str().map(str::to_owned))
        .filter(|t| t.starts_with("burst answer"))
        .collect();
    let expected: Vec<String> = (0..6).map(|i| format!("burst answer {i}")).collect();
    ensure!(texts == expected, "the visitor got {texts:?}");
    let newest = burst.last().context("burst")?;
    env.alice
        .wait_for_read_receipt(&room, &env.alice.bot_id(), newest)
        .await?;

    let _ = first;
    steps.finish()
}

async fn files_go_both_ways_and_oversized_ones_get_a_notice(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("files go both ways and oversized ones get a notice");
    let env = TestEnv::start(
        BridgeOptions::default()
            .backend(backend)
            .max_upload_bytes(64 * 1024),
    )
    .await?;
    let visitor = env.visitor("Filip", "filip@example.com").await?;
    visitor.send("I'll send the invoice").await?;
    let room = env.alice.wait_for_invite("Filip").await?;

    steps.step("Visitor → operator: name, mime type, size and bytes survive");
    let pdf: Vec<u8> = b"%PDF-1.4\n"
        .iter()
        .copied()
        .chain((0..5000u32).map(|i| (i % 251) as u8))
        .collect();
    visitor
        .upload("invoice 2026.pdf", "application/pdf", pdf.clone())
        .await?;
    let file = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.file")
        .await?;
    ensure!(
        file.filename() == "invoice 2026.pdf",
        "file name {}",
        file.filename()
    );
    ensure!(file.mimetype() == Some("application/pdf"));
    ensure!(file.size() == Some(pdf.len() as u64));
    ensure!(
        env.alice.fetch_file(&file).await? == pdf,
        "same bytes in the media repository"
    );

    steps.step("An image becomes an m.image");
    let png = rig::tiny_png();
    visitor
        .upload("screenshot.png", "image/png", png.clone())
        .await?;
    let image = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.image")
        .await?;
    ensure!(env.alice.fetch_file(&image).await? == png);

    steps.step("Operator → visitor: the visitor downloads the same bytes");
    let label: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    env.alice
        .send_file(
            &room,
            "return-label.bin",
            "application/octet-stream",
            label.clone(),
        )
        .await?;
    let got = visitor
        .wait_for_event_described("an agent file", |e| {
            is_agent_message(e) && e["attachments"][0]["name"] == "return-label.bin"
        })
        .await?;
    let att = &got["attachments"][0];
    ensure!(
        att["size"] == label.len() as u64 && att["mime"] == "application/octet-stream",
        "{att}"
    );
    let url = att["url"].as_str().context("download url")?;
    let full = if url.starts_with("http") {
        url.to_string()
    } else {
        format!("{}{url}", env.bridge.base_url())
    };
    let resp = reqwest::Client::new()
        .get(&full)
        .bearer_auth(&visitor.token)
        .send()
        .await?;
    ensure!(resp.status() == 200, "download {full}: {}", resp.status());
    let bytes = resp.bytes().await?.to_vec();
    ensure!(bytes == label, "visitor downloads the operator's bytes");

    steps.step(
        "Too big for the channel: the operator gets a notice naming the limit; nothing is sent",
    );
    let big = vec![7u8; 100 * 1024];
    let big_event = env
        .alice
        .send_file(&room, "huge.bin", "application/octet-stream", big)
        .await?;
    let notice = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(big_event.as_str())
        })
        .await?;
    ensure!(
        notice.body.contains("huge.bin") && notice.body.contains("64.0 KB"),
        "notice: {}",
        notice.body
    );
    steps.step("Too big from the visitor: a clear refusal, and the conversation goes on");
    let resp = visitor
        .upload_response("big.bin", "application/octet-stream", vec![1u8; 100 * 1024])
        .await?;
    ensure!(
        resp.status() == 413,
        "oversized upload refused with 413, got {}",
        resp.status()
    );
    let body: Value = resp.json().await?;
    ensure!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("65536") || m.contains("64")),
        "{body}"
    );
    visitor.send("still here").await?;
    env.alice.wait_for_text(&room, "still here").await?;
    let history = visitor.refresh().await?;
    ensure!(
        !history
            .iter()
            .any(|e| e["attachments"][0]["name"] == "huge.bin"),
        "the oversized file never reached the visitor"
    );
    steps.finish()
}

async fn replies_edits_and_deletions_go_both_ways(backend: Backend) -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default().backend(backend)).await?;
    let visitor = env.visitor("Rita", "rita@example.com").await?;
    let question = visitor.send("Do you ship to Norway?").await?;
    let room = env.alice.wait_for_invite("Rita").await?;
    let question_event = env.alice.wait_for_text(&room, "Norway").await?;

    // Operator replies to the customer's message: the visitor sees the reply-to.
    env.alice
        .reply(&room, &question_event.event_id, "Yes, we do")
        .await?;
    let answer = visitor.wait_for_agent_text("Yes, we do").await?;
    ensure!(
        answer["reply_to"] == question.as_str(),
        "reply_to kept: {answer}"
    );
    ensure!(
        answer["text"] == "Yes, we do",
        "reply fallback removed: {answer}"
    );

    // Visitor replies to the operator's message: Matrix sees m.in_reply_to.
    let answer_id = answer["id"].as_str().context("id")?.to_string();
    visitor.reply("Great, and to Svalbard?", &answer_id).await?;
    let reply = env.alice.wait_for_text(&room, "Svalbard").await?;
    let alice_answer = env.alice.wait_for_text(&room, "Yes, we do").await?;
    ensure!(
        reply.in_reply_to() == Some(alice_answer.event_id.as_str()),
        "in_reply_to: {:?}",
        reply.relates_to
    );

    // Visitor edits: an m.replace of the original event.
    visitor
        .edit(&question, "Do you ship to Norway and Sweden?")
        .await?;
    let edit = env
        .alice
        .wait_for_message(&room, |m| {
            m.replaces() == Some(question_event.event_id.as_str())
        })
        .await?;
    ensure!(
        edit.new_body() == Some("Do you ship to Norway and Sweden?"),
        "{:?}",
        edit.content
    );

    // Operator edits: the visitor sees the new text on the same message.
    env.alice
        .edit(&room, &alice_answer.event_id, "Yes, we do (3-5 days)")
        .await?;
    visitor
        .wait_for_event_described("the agent's edit", |e| {
            e["type"] == "edit"
                && e["id"] == answer_id.as_str()
                && e["text"] == "Yes, we do (3-5 days)"
        })
        .await?;

    // Visitor deletes: the ghost redacts the event.
    let oops = visitor.send("my card number is 4111...").await?;
    let oops_event = env.alice.wait_for_text(&room, "4111").await?;
    visitor.delete(&oops).await?;
    env.alice
        .wait_for_redaction(&room, &oops_event.event_id)
        .await?;

    // Operator deletes: the visitor sees the deletion.
    let wrong = env.alice.send_text(&room, "Wrong customer, sorry").await?;
    let wrong_msg = visitor.wait_for_agent_text("Wrong customer").await?;
    env.alice.redact(&room, &wrong, None).await?;
    visitor
        .wait_for_event_described("the agent's deletion", |e| {
            e["type"] == "delete" && e["id"] == wrong_msg["id"]
        })
        .await?;
    Ok(())
}

/// A visitor's burst that names its own messages as it goes (a reply to the message just sent,
/// an edit of it) arrives whole, once and in order. The bridge posts a conversation's next
/// message while it still finishes (maps) the previous one; what names that one waits for it.
async fn a_burst_that_names_its_own_messages_arrives_whole(backend: Backend) -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default().backend(backend)).await?;
    let visitor = env.visitor("Nils", "nils@example.com").await?;
    // Sent without waiting for the room: they are all in the bridge's inbox before the first
    // one's room exists.
    let damaged = visitor.send("The parcel came damaged").await?;
    let order = visitor.reply("order 5521, this one", &damaged).await?;
    let open = visitor.send("and the box was open").await?;
    visitor.reply("the outer box, I mean", &open).await?;
    let tracking = visitor
        .reply("tracking says it was on time", &order)
        .await?;
    visitor
        .edit(&tracking, "tracking says it was on time, though")
        .await?;

    let room = env.alice.wait_for_invite("Nils").await?;
    let edit = env
        .alice
        .wait_for_message(&room, |m| {
            m.new_body() == Some("tracking says it was on time, though")
        })
        .await?;
    env.alice.wait_for_text(&room, "tracking says").await?;
    let texts = [
        "The parcel came damaged",
        "order 5521, this one",
        "and the box was open",
        "the outer box, I mean",
        "tracking says it was on time",
    ];
    let posted: Vec<_> = env
        .alice
        .messages(&room)
        .into_iter()
        .filter(|m| texts.contains(&m.body.as_str()))
        .collect();
    let bodies: Vec<&str> = posted.iter().map(|m| m.body.as_str()).collect();
    ensure!(bodies == texts, "each once and in order: {bodies:?}");
    let event = |i: usize| posted[i].event_id.as_str();
    for (reply, to) in [(1, 0), (3, 2), (4, 1)] {
        ensure!(
            posted[reply].in_reply_to() == Some(event(to)),
            "{:?} replies to {:?}: {:?}",
            texts[reply],
            texts[to],
            posted[reply].relates_to
        );
    }
    ensure!(
        edit.replaces() == Some(event(4)),
        "the edit replaces the message it edits: {:?}",
        edit.relates_to
    );
    Ok(())
}

async fn a_restart_between_message_and_answer_loses_nothing(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut env = TestEnv::start(BridgeOptions::default().backend(backend)).await?;
    let visitor = env.visitor("Karl", "karl@example.com").await?;
    visitor.send("first").await?;
    let room = env.alice.wait_for_invite("Karl").await?;
    env.alice.wait_for_text(&room, "first").await?;

    // A message accepted by the bridge, then the bridge killed at once (SIGKILL, no shutdown).
    visitor.send("sent just before the crash").await?;
    env.bridge.kill();
    // While it is down an operator answers; the homeserver holds the transaction.
    let answer = env
        .alice
        .send_text(&room, "answered while the bridge was down")
        .await?;
    env.bridge.start().await?;

    env.alice
        .wait_for_text(&room, "sent just before the crash")
        .await?;
    visitor
        .wait_for_agent_text("answered while the bridge was down")
        .await?;
    env.alice.wait_for_any_send_status(&room, &answer).await?;

    // Exactly once on both sides, even after another restart replays whatever was in flight.
    env.bridge.restart().await?;
    visitor.send("after the second restart").await?;
    env.alice
        .wait_for_text(&room, "after the second restart")
        .await?;
    let crash_copies = env
        .alice
        .messages(&room)
        .iter()
        .filter(|m| m.body == "sent just before the crash")
        .count();
    ensure!(
        crash_copies == 1,
        "customer message bridged {crash_copies} times"
    );
    let history = visitor.refresh().await?;
    let answers = history
        .iter()
        .filter(|e| is_agent_message(e) && e["text"] == "answered while the bridge was down")
        .count();
    ensure!(answers == 1, "operator answer delivered {answers} times");
    Ok(())
}

async fn commands_and_notes_never_reach_the_customer(backend: Backend) -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default().backend(backend)).await?;
    let visitor = env.visitor("Nora", "nora@example.com").await?;
    visitor.send("hi").await?;
    let room = env.alice.wait_for_invite("Nora").await?;
    env.alice.wait_for_text(&room, "hi").await?;

    let note = env
        .alice
        .send_text(&room, "!sb note VIP customer, be nice")
        .await?;
    let ack = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(note.as_str())
        })
        .await?;
    ensure!(ack.sender == env.bot_user_id(), "the bot confirms the note");
    let unknown = env.alice.send_text(&room, "!sb frobnicate").await?;
    let help = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(unknown.as_str())
        })
        .await?;
    ensure!(
        help.body.contains("Unknown command") && help.body.contains("!sb help"),
        "{}",
        help.body
    );
    let help_cmd = env.alice.send_text(&room, "!sb help").await?;
    let listing = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(help_cmd.as_str())
        })
        .await?;
    ensure!(
        listing.body.contains("note") && listing.body.contains("retry"),
        "{}",
        listing.body
    );

    // A Matrix user who is not an operator cannot speak to the customer or run commands.
    let carol = env.new_operator("carol", "carol-password").await?;
    env.alice.invite(&room, carol.user_id()).await?;
    carol.join(&room).await?;
    let intruder = carol.send_text(&room, "I am not staff").await?;
    let refusal = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(intruder.as_str())
        })
        .await?;
    ensure!(refusal.body.contains("not an operator"), "{}", refusal.body);
    let carol_cmd = carol.send_text(&room, "!sb retry").await?;
    let denied = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(carol_cmd.as_str())
        })
        .await?;
    ensure!(
        denied.body.contains("needs operator rights"),
        "{}",
        denied.body
    );

    // A real answer after all that is the only thing the visitor sees.
    env.alice.send_text(&room, "How can I help?").await?;
    visitor.wait_for_agent_text("How can I help?").await?;
    let history = visitor.refresh().await?;
    let agent_texts: Vec<&str> = history
        .iter()
        .filter(|e| is_agent_message(e))
        .filter_map(|e| e["text"].as_str())
        .collect();
    ensure!(
        agent_texts == ["How can I help?"],
        "the visitor saw: {agent_texts:?}"
    );

    // In a direct chat with the bot, bare commands work.
    let dm = env
        .alice
        .create_room("bot dm", &[&env.bot_user_id()])
        .await?;
    env.alice
        .wait_for_event(&dm, "the bot joining", |e| {
            e["type"] == "m.room.member"
                && e["state_key"] == env.bot_user_id().as_str()
                && e["content"]["membership"] == "join"
        })
        .await?;
    let bare = env.alice.send_text(&dm, "help").await?;
    let reply = env
        .alice
        .wait_for_message(&dm, |m| {
            m.is_notice() && m.in_reply_to() == Some(bare.as_str())
        })
        .await?;
    ensure!(reply.body.contains("note"), "{}", reply.body);
    Ok(())
}

/// The appservice endpoint itself, as the homeserver sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_authenticated_and_idempotent() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("transactions are authenticated and idempotent");
    let env = TestEnv::start(BridgeOptions::default()).await?;
    let visitor = env.visitor("Tom", "tom@example.com").await?;
    visitor.send("hello").await?;
    let room = env.alice.wait_for_invite("Tom").await?;
    env.alice.wait_for_text(&room, "hello").await?;

    let reg = env.bridge.registration()?;
    let hs_token = reg["hs_token"].as_str().context("hs_token")?.to_string();
    let url = format!(
        "{}/_matrix/app/v1/transactions/test-txn-1",
        env.bridge.base_url()
    );
    let event = json!({
        "type": "m.room.message",
        "event_id": "$replayed-event-1",
        "room_id": room,
        "sender": env.alice.user_id(),
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": "pushed by hand"},
    });
    let body = json!({"events": [event]});
    let http = reqwest::Client::new();

    let missing = http.put(&url).json(&body).send().await?;
    ensure!(missing.status() == 401, "no token: {}", missing.status());
    let wrong = http
        .put(&url)
        .bearer_auth("not-the-token")
        .json(&body)
        .send()
        .await?;
    ensure!(wrong.status() == 403, "wrong token: {}", wrong.status());
    let as_token = reg["as_token"].as_str().context("as_token")?;
    let swapped = http
        .put(&url)
        .bearer_auth(as_token)
        .json(&body)
        .send()
        .await?;
    ensure!(
        swapped.status() == 403,
        "the as_token is not the hs_token: {}",
        swapped.status()
    );

    for _ in 0..2 {
        let ok = http
            .put(&url)
            .bearer_auth(&hs_token)
            .json(&body)
            .send()
            .await?;
        ensure!(ok.status() == 200, "transaction accepted: {}", ok.status());
    }
    steps.step("The same event again in another transaction is still one message");
    let url2 = format!(
        "{}/_matrix/app/v1/transactions/test-txn-2",
        env.bridge.base_url()
    );
    ensure!(
        http.put(&url2)
            .bearer_auth(&hs_token)
            .json(&body)
            .send()
            .await?
            .status()
            == 200
    );
    visitor.wait_for_agent_text("pushed by hand").await?;
    env.alice.send_text(&room, "marker").await?;
    visitor.wait_for_agent_text("marker").await?;
    let copies = visitor
        .refresh()
        .await?
        .iter()
        .filter(|e| e["text"] == "pushed by hand")
        .count();
    ensure!(copies == 1, "replayed transaction relayed {copies} times");

    steps.step(
        "The same id with a new event is not a replay (homeservers reuse ids after a restart)",
    );
    let reused = json!({"events": [{
        "type": "m.room.message", "event_id": "$reused-id-new-event", "room_id": room,
        "sender": env.alice.user_id(), "origin_server_ts": 3,
        "content": {"msgtype": "m.text", "body": "new event under a used id"},
    }]});
    ensure!(
        http.put(&url)
            .bearer_auth(&hs_token)
            .json(&reused)
            .send()
            .await?
            .status()
            == 200
    );
    visitor
        .wait_for_agent_text("new event under a used id")
        .await?;

    steps.step("Events from the bridge's own namespace are dropped, not relayed back");
    let ghost_event = json!({"events": [{
        "type": "m.room.message", "event_id": "$ghost-echo", "room_id": room,
        "sender": format!("@sb_webchat_someone:{}", env.synapse.server_name()),
        "origin_server_ts": 2, "content": {"msgtype": "m.text", "body": "ghost echo"},
    }]});
    let url3 = format!(
        "{}/_matrix/app/v1/transactions/test-txn-3",
        env.bridge.base_url()
    );
    ensure!(
        http.put(&url3)
            .bearer_auth(&hs_token)
            .json(&ghost_event)
            .send()
            .await?
            .status()
            == 200
    );
    env.alice.send_text(&room, "marker 2").await?;
    visitor.wait_for_agent_text("marker 2").await?;
    ensure!(
        !visitor
            .refresh()
            .await?
            .iter()
            .any(|e| e["text"] == "ghost echo"),
        "ghost echo relayed"
    );

    steps.step("Garbage is refused with a clear error and breaks nothing");
    let url4 = format!(
        "{}/_matrix/app/v1/transactions/test-txn-4",
        env.bridge.base_url()
    );
    let bad = http
        .put(&url4)
        .bearer_auth(&hs_token)
        .body("{not json")
        .send()
        .await?;
    ensure!(bad.status() == 400, "bad body: {}", bad.status());
    env.alice.send_text(&room, "still works").await?;
    visitor.wait_for_agent_text("still works").await?;
    steps.finish()
}

/// Attribution modes, as the customer sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_attribution_is_configurable() -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default().attribution("signature")).await?;
    let visitor = env.visitor("Ola", "ola@example.com").await?;
    visitor.send("hi").await?;
    let room = env.alice.wait_for_invite("Ola").await?;
    env.alice
        .client()
        .account()
        .set_display_name(Some("Alice Agent"))
        .await?;
    env.alice.send_text(&room, "Hello Ola").await?;
    let got = visitor.wait_for_agent_text("Hello Ola").await?;
    ensure!(
        got["text"] == "Hello Ola\n— Alice Agent",
        "signature: {got}"
    );
    Ok(())
}

/// The widget's API only answers browsers on allowed sites, and one visitor cannot flood it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webchat_limits_origins_and_rate() -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default().edit_config(|c| {
        if let Some(webchat) = c.get_mut("channels").and_then(|ch| ch.get_mut("webchat")) {
            webchat["allowed_origins"] =
                serde_yaml::Value::Sequence(vec!["https://shop.example".into()]);
            webchat["rate_limit_per_minute"] = 6.into();
            webchat["rate_limit_burst"] = 3.into();
        }
    }))
    .await?;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/messages", env.webchat_url());
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, &url)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://shop.example").await?;
    ensure!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            == Some("https://shop.example"),
        "allowed origin: {:?}",
        allowed.headers()
    );
    let foreign = preflight("https://evil.example").await?;
    ensure!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "foreign origin allowed: {:?}",
        foreign.headers()
    );

    let visitor = env.visitor("Rapid Fire", "rapid@example.com").await?;
    for i in 0..3 {
        visitor.send(&format!("burst {i}")).await?;
    }
    let resp = visitor
        .request(reqwest::Method::POST, "messages")
        .json(&json!({"client_id": "burst-4", "text": "one too many"}))
        .send()
        .await?;
    ensure!(
        resp.status() == 429,
        "fourth message in a burst of 3: {}",
        resp.status()
    );
    ensure!(
        resp.headers().get("retry-after").is_some(),
        "429 says when to retry"
    );
    // Another visitor is not affected.
    let other = env.visitor("Calm Visitor", "calm@example.com").await?;
    other.send("hello").await?;
    let room = env.alice.wait_for_invite("Rapid Fire").await?;
    env.alice.wait_for_text(&room, "burst 2").await?;
    ensure!(
        !env.alice
            .messages(&room)
            .iter()
            .any(|m| m.body == "one too many"),
        "rate-limited message relayed"
    );
    Ok(())
}

/// `!sb export`: the transcript is attached in the room and sent to the customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_sends_the_transcript_to_the_customer() -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default()).await?;
    let visitor = env.visitor("Eva Export", "eva@example.com").await?;
    visitor
        .send("I accept the offer of 120 EUR <b>incl.</b> VAT")
        .await?;
    let room = env.alice.wait_for_invite("Eva Export").await?;
    env.alice.wait_for_text(&room, "120 EUR").await?;
    env.alice
        .send_text(&room, "Confirmed: 120 EUR, delivery on Friday")
        .await?;
    visitor.wait_for_agent_text("Confirmed").await?;
    env.alice
        .send_text(&room, "!sb note internal: margin is thin")
        .await?;
    let cmd = env.alice.send_text(&room, "!sb export").await?;
    let answer = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(cmd.as_str())
        })
        .await?;
    ensure!(
        answer.body.contains("Transcript of 2 messages"),
        "{}",
        answer.body
    );
    let file = env
        .alice
        .wait_for_message(&room, |m| m.filename().starts_with("transcript-"))
        .await?;
    let html = String::from_utf8(env.alice.fetch_file(&file).await?)?;
    ensure!(
        html.contains("I accept the offer of 120 EUR &lt;b&gt;incl.&lt;/b&gt; VAT"),
        "customer text, escaped: {html}"
    );
    ensure!(
        html.contains("Confirmed: 120 EUR") && html.contains("Eva Export"),
        "{html}"
    );
    ensure!(
        !html.contains("margin is thin"),
        "private notes stay out of the record"
    );
    let sent = visitor
        .wait_for_event_described("the transcript", |e| {
            is_agent_message(e)
                && e["attachments"][0]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("transcript-"))
        })
        .await?;
    ensure!(sent["attachments"][0]["mime"] == "text/html", "{sent}");
    Ok(())
}

/// A customer whose ghost cannot speak in the room (a server admin banned it) still reaches the
/// operators: the bot posts their messages for them, with their name, and answers still go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_whose_ghost_cannot_speak_still_reaches_the_room() -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default()).await?;
    let visitor = env.visitor("Bea Banned", "bea@example.com").await?;
    visitor.send("first words").await?;
    let room = env.alice.wait_for_invite("Bea Banned").await?;
    let ghost = env.alice.wait_for_text(&room, "first words").await?.sender;
    ensure!(ghost.starts_with("@sb_webchat_"), "{ghost}");

    // Alice, a server admin, takes the room over and bans the customer's ghost.
    let token = env.alice.access_token().context("alice's token")?;
    let url = format!(
        "{}/_synapse/admin/v1/rooms/{room}/make_room_admin",
        env.synapse.base_url()
    );
    let made = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({"user_id": env.alice.user_id()}))
        .send()
        .await?;
    ensure!(
        made.status().is_success(),
        "make_room_admin: {}",
        made.text().await?
    );
    let ban = format!(
        "{}/_matrix/client/v3/rooms/{room}/ban",
        env.synapse.base_url()
    );
    let banned = rig::poll_until("the ban to be allowed", rig::DEFAULT_TIMEOUT, || async {
        let r = reqwest::Client::new()
            .post(&ban)
            .bearer_auth(&token)
            .json(&json!({"user_id": ghost, "reason": "testing the fallback"}))
            .send()
            .await?;
        Ok(r.status().is_success().then_some(()))
    })
    .await;
    banned?;

    visitor.send("after the ban").await?;
    let msg = env.alice.wait_for_text(&room, "after the ban").await?;
    ensure!(
        msg.sender == env.bot_user_id() && msg.body == "Bea Banned: after the ban",
        "posted by {} as {:?}",
        msg.sender,
        msg.body
    );
    env.alice.send_text(&room, "we still hear you").await?;
    visitor.wait_for_agent_text("we still hear you").await?;
    Ok(())
}

/// Issue 19, web chat API: an operator's reaction (and its redaction) reaches the visitor's
/// transcript; the visitor's `PUT /messages/{id}/reaction` on an agent's message becomes the
/// ghost's `m.reaction`, `DELETE` its redaction; both idempotent; only emoji, only on agents'
/// messages of the visitor's own chat.
async fn reactions_go_both_ways_through_the_web_chat_api(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("reactions go both ways through the web chat api");
    let env = TestEnv::start(BridgeOptions::default().backend(backend)).await?;
    let visitor = env.visitor("Rita Return", "rita@example.com").await?;
    let question_id = visitor.send("Can I return shoes?").await?;
    let room = env.alice.wait_for_invite("Rita Return").await?;
    let question = env
        .alice
        .wait_for_text(&room, "Can I return shoes?")
        .await?;
    let answer = env.alice.send_text(&room, "Yes, within 30 days").await?;
    let agent = visitor
        .wait_for_event(|e| is_agent_message(e) && e["text"] == "Yes, within 30 days")
        .await?;
    let answer_id = agent["id"].as_str().context("agent message id")?.to_owned();

    steps.step("The operator reacts 👍 to the visitor's message, then takes it back");
    let thumbs = env.alice.react(&room, &question.event_id, "👍").await?;
    visitor
        .wait_for_event_described("the agents' 👍", |e| {
            e["type"] == "reaction"
                && e["from"] == "agent"
                && e["id"] == question_id.as_str()
                && e["key"] == "👍"
        })
        .await?;
    env.alice.redact(&room, &thumbs, None).await?;
    visitor
        .wait_for_event_described("the agents' 👍 taken back", |e| {
            e["type"] == "reaction"
                && e["from"] == "agent"
                && e["id"] == question_id.as_str()
                && e["key"].is_null()
        })
        .await?;

    steps.step("The visitor reacts ❤️ to the answer, twice: one m.reaction by the ghost");
    let reaction_path = format!("messages/{answer_id}/reaction");
    let put = |key: &str| {
        visitor
            .request(reqwest::Method::PUT, &reaction_path)
            .json(&json!({"key": key}))
            .send()
    };
    let first = put("❤️").await?;
    ensure!(first.status() == 200, "PUT: {}", first.status());
    let first: Value = first.json().await?;
    ensure!(
        first["key"] == "❤️" && first["id"] == answer_id.as_str(),
        "{first}"
    );
    let again: Value = put("❤️").await?.json().await?;
    ensure!(
        again == first,
        "the same reaction again answers the same: {again} vs {first}"
    );
    let reaction_id = env
        .alice
        .wait_for_reaction_by(&room, &answer, "❤️", &question.sender)
        .await?;

    steps.step("Refused: a text key (422), the visitor's own message (404), no token (401)");
    let text = put("ok").await?;
    ensure!(text.status() == 422, "text key: {}", text.status());
    let own = visitor
        .request(
            reqwest::Method::PUT,
            &format!("messages/{question_id}/reaction"),
        )
        .json(&json!({"key": "👍"}))
        .send()
        .await?;
    ensure!(own.status() == 404, "own message: {}", own.status());
    let anonymous = reqwest::Client::new()
        .put(format!("{}/api/v1/{reaction_path}", visitor.base()))
        .json(&json!({"key": "👍"}))
        .send()
        .await?;
    ensure!(
        anonymous.status() == 401,
        "no token: {}",
        anonymous.status()
    );

    steps.step("The visitor takes it back, twice: one redaction, the same answer");
    let removed: Value = visitor
        .request(reqwest::Method::DELETE, &reaction_path)
        .send()
        .await?
        .json()
        .await?;
    ensure!(removed["key"].is_null(), "{removed}");
    let removed_again: Value = visitor
        .request(reqwest::Method::DELETE, &reaction_path)
        .send()
        .await?
        .json()
        .await?;
    ensure!(removed_again == removed, "{removed_again} vs {removed}");
    env.alice.wait_for_redaction(&room, &reaction_id).await?;

    steps.step("Everything after passed through the same queue: nothing doubled");
    visitor.send("marker after the reactions").await?;
    env.alice
        .wait_for_text(&room, "marker after the reactions")
        .await?;
    let events = env.alice.events(&room);
    let ghost_reactions = events
        .iter()
        .filter(|e| e["type"] == "m.reaction" && e["sender"] == question.sender.as_str())
        .count();
    ensure!(
        ghost_reactions == 1,
        "{ghost_reactions} m.reaction by the ghost"
    );
    let redactions = events
        .iter()
        .filter(|e| e["type"] == "m.room.redaction" && e["sender"] == question.sender.as_str())
        .count();
    ensure!(redactions == 1, "{redactions} redactions by the ghost");
    Ok(())
}
