//! The email channel end to end: a real Dovecot (IMAP) and Postfix (SMTP) on loopback
//! (`tests/rig/mail.rs`), operators as real Matrix clients, the real `switchboard` binary and a
//! real Synapse. Customers write by SMTP or have mail put in the mailbox by IMAP APPEND (the
//! fixtures, byte for byte); what operators answer is read back from the customer's maildir.
//!
//! The main flow runs on SQLite and PostgreSQL; the other scenarios on SQLite.

#[macro_use]
mod rig;

use anyhow::{ensure, Context};
use rig::mail::{MailOptions, MailServer};
use rig::{Backend, BridgeOptions, TestEnv};

fn options(backend: Backend, mail: &MailServer) -> BridgeOptions {
    options_for(backend, mail.channel_config())
}

/// The bridge with `section` as its `channels.email`.
fn options_for(backend: Backend, section: serde_json::Value) -> BridgeOptions {
    BridgeOptions::default()
        .backend(backend)
        .channel("email", section)
}

/// A sample mail from `shared/fixtures/email` beside the checkout (or beside the worktrees'
/// folder, as tests/sms.rs and the kit look for them).
fn fixture(name: &str) -> anyhow::Result<Vec<u8>> {
    let root = rig::repo_root();
    let dir = ["../shared/fixtures/email", "../../shared/fixtures/email"]
        .iter()
        .map(|rel| root.join(rel))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| root.join("../shared/fixtures/email"));
    let path = dir.join(name);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// A header's value in a raw mail (first occurrence, unfolded).
fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let head = text.split("\n\n").next().unwrap_or("");
    let mut value: Option<String> = None;
    for line in head.split('\n') {
        if let Some(v) = value.as_mut() {
            if line.starts_with(' ') || line.starts_with('\t') {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case(name) {
                value = Some(v.trim().to_string());
            }
        }
    }
    value
}

fn customer_mail(message_id: &str, subject: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Jane Customer <customer@example.test>\r\nTo: support@example.test\r\nSubject: {subject}\r\n\
         Message-ID: <{message_id}>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\n{extra_headers}\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

on_both_stores!(
    new_mail_opens_a_room_and_answers_thread_both_ways,
    a_thread_of_several_customers_answers_them_all,
);

/// A plain-text mail from `from` to `to` with `cc`, in the thread of `in_reply_to` when given.
fn mail_from(
    from: &str,
    to: &str,
    cc: &str,
    message_id: &str,
    in_reply_to: Option<&str>,
    body: &str,
) -> Vec<u8> {
    let thread = in_reply_to
        .map(|r| format!("In-Reply-To: {r}\r\nReferences: {r}\r\n"))
        .unwrap_or_default();
    format!(
        "From: {from}\r\nTo: {to}\r\nCc: {cc}\r\nSubject: Team order\r\nMessage-ID: <{message_id}>\r\n\
         Date: Mon, 3 Mar 2025 10:00:00 +0000\r\n{thread}MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The addresses of a header (`To`, `Cc`) of a raw mail, lower-cased, without names.
fn addresses(raw: &[u8], name: &str) -> Vec<String> {
    header(raw, name)
        .unwrap_or_default()
        .split(',')
        .filter_map(|a| {
            let a = a.trim();
            let a = match (a.find('<'), a.find('>')) {
                (Some(i), Some(j)) if i < j => &a[i + 1..j],
                _ => a,
            };
            (!a.is_empty()).then(|| a.to_lowercase())
        })
        .collect()
}

/// An email thread with several customer addresses in From/Cc: each speaks as their own ghost;
/// an answer goes To the one who wrote last and Cc every other customer address (never the
/// company's own); someone an operator removes from the room gets no further answers.
async fn a_thread_of_several_customers_answers_them_all(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("a thread of several customers answers them all");
    let mail = MailServer::start().await?;
    let env = TestEnv::start(options(backend, &mail)).await?;
    let (jane, colleague, boss) = (
        "customer@example.test",
        "colleague@example.test",
        "boss@example.test",
    );

    steps.step("Jane writes to support, Cc her colleague and her boss: all three in the room");
    let first = mail_from(
        &format!("Jane Customer <{jane}>"),
        "support@example.test",
        &format!("Carl Colleague <{colleague}>, Bea Boss <{boss}>"),
        "team-1@customer.example.test",
        None,
        "We need 40 chairs, not 4.",
    );
    mail.smtp_send(jane, &["support@example.test", colleague, boss], &first)
        .await?;
    let room = env.alice.wait_for_invite("Jane Customer").await?;
    let from_jane = env.alice.wait_for_text(&room, "40 chairs").await?;
    let ghost_of = |who: &str| {
        let events = env.alice.events(&room);
        events.iter().rev().find_map(|e| {
            (e["type"] == "m.room.member"
                && e["content"]["membership"] == "join"
                && e["content"]["displayname"] == who)
                .then(|| e["state_key"].as_str().unwrap_or_default().to_owned())
        })
    };
    for name in ["Carl Colleague", "Bea Boss"] {
        rig::poll_until(
            &format!("{name}'s ghost in the room"),
            std::time::Duration::from_secs(30),
            || async { Ok(ghost_of(name)) },
        )
        .await?;
    }

    steps.step("Carl answers in the thread: his own ghost, his own name");
    let jane_id = header(&first, "Message-ID").context("Message-ID")?;
    let second = mail_from(
        &format!("Carl Colleague <{colleague}>"),
        "support@example.test",
        &format!("{jane}, {boss}"),
        "team-2@customer.example.test",
        Some(&jane_id),
        "And 40 cushions, please.",
    );
    mail.smtp_send(colleague, &["support@example.test", jane, boss], &second)
        .await?;
    let from_carl = env.alice.wait_for_text(&room, "40 cushions").await?;
    ensure!(
        from_carl.sender != from_jane.sender,
        "both spoke as {}",
        from_carl.sender
    );
    ensure!(
        ghost_of("Carl Colleague").as_deref() == Some(from_carl.sender.as_str()),
        "Carl's message is his ghost's"
    );
    ensure!(
        ghost_of("Jane Customer").as_deref() == Some(from_jane.sender.as_str()),
        "Jane's message is her ghost's"
    );
    ensure!(
        env.rooms_named("Jane Customer").await?.len() == 1,
        "one room for the thread"
    );

    steps.step("The operator answers: To Carl (who wrote last), Cc Jane and Bea, never support@");
    env.alice
        .send_text(&room, "40 chairs and 40 cushions, noted.")
        .await?;
    for who in ["customer", "colleague", "boss"] {
        mail.wait_for_mail(who, "40 chairs and 40 cushions, noted")
            .await?;
    }
    let answer = mail
        .wait_for_mail("colleague", "40 chairs and 40 cushions, noted")
        .await?;
    ensure!(
        addresses(&answer, "To") == vec![colleague.to_string()],
        "To: {:?}",
        header(&answer, "To")
    );
    let mut cc = addresses(&answer, "Cc");
    cc.sort();
    ensure!(
        cc == vec![boss.to_string(), jane.to_string()],
        "Cc: {:?}",
        header(&answer, "Cc")
    );

    steps.step("The operator removes Bea: her ghost leaves, the next answer leaves her out");
    let bea = ghost_of("Bea Boss").context("Bea's ghost")?;
    env.alice
        .send_text(&room, "!sb remove boss@example.test")
        .await?;
    env.alice
        .wait_for_text(&room, "answers no longer go to them")
        .await?;
    env.alice
        .wait_for_state_event(&room, "m.room.member", &bea, |c| c["membership"] == "leave")
        .await?;
    env.alice.send_text(&room, "Delivery on Friday.").await?;
    let second_answer = mail
        .wait_for_mail("colleague", "Delivery on Friday")
        .await?;
    mail.wait_for_mail("customer", "Delivery on Friday").await?;
    ensure!(
        addresses(&second_answer, "To") == vec![colleague.to_string()]
            && addresses(&second_answer, "Cc") == vec![jane.to_string()],
        "To: {:?} Cc: {:?}",
        header(&second_answer, "To"),
        header(&second_answer, "Cc")
    );
    ensure!(
        !mail
            .fetch_all("boss")?
            .iter()
            .any(|m| String::from_utf8_lossy(m).contains("Delivery on Friday")),
        "Bea got the answer after she was removed"
    );
    steps.finish()
}

async fn new_mail_opens_a_room_and_answers_thread_both_ways(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("new mail opens a room and answers thread both ways");
    let mail = MailServer::start().await?;
    let env = TestEnv::start(options(backend, &mail)).await?;

    steps.step("A new mail → a new room, sent by the customer's ghost, subject shown in bold");
    let first = customer_mail(
        "order-1@customer.example.test",
        "Order 1234 has not arrived",
        "",
        "Hello, my order 1234 has not arrived.",
    );
    mail.smtp_send("customer@example.test", &["support@example.test"], &first)
        .await?;
    let room = env.alice.wait_for_invite("Jane Customer").await?;
    let msg = env
        .alice
        .wait_for_text(&room, "order 1234 has not arrived")
        .await?;
    ensure!(
        msg.sender.starts_with("@sb_email_"),
        "sent by a ghost: {}",
        msg.sender
    );
    ensure!(
        msg.body.contains("Subject: Order 1234 has not arrived"),
        "subject shown: {}",
        msg.body
    );
    let html = msg.formatted_body.clone().unwrap_or_default();
    ensure!(
        html.contains("<b>Subject:</b> Order 1234 has not arrived"),
        "subject in bold: {html}"
    );

    steps.step("The operator answers with a file: a proper mail in the customer's thread");
    env.alice
        .send_text(&room, "Sorry! We are checking with the courier.")
        .await?;
    let reply = mail
        .wait_for_mail("customer", "checking with the courier")
        .await?;
    ensure!(
        header(&reply, "From").is_some_and(|f| f.contains("support@example.test")),
        "From: {:?}",
        header(&reply, "From")
    );
    ensure!(
        header(&reply, "Subject").as_deref() == Some("Re: Order 1234 has not arrived"),
        "{:?}",
        header(&reply, "Subject")
    );
    ensure!(
        header(&reply, "In-Reply-To").as_deref() == Some("<order-1@customer.example.test>"),
        "{:?}",
        header(&reply, "In-Reply-To")
    );
    ensure!(
        header(&reply, "References").is_some_and(|r| r.contains("<order-1@customer.example.test>"))
    );
    let reply_id = header(&reply, "Message-ID").context("our Message-ID")?;
    ensure!(reply_id.ends_with("@example.test>"), "{reply_id}");
    let text = String::from_utf8_lossy(&reply).to_string();
    ensure!(
        text.contains("multipart/alternative") && text.contains("text/html"),
        "text and HTML parts"
    );

    let label: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    env.alice
        .send_file(&room, "return-label.bin", "application/octet-stream", label)
        .await?;
    let with_file = mail.wait_for_mail("customer", "return-label.bin").await?;
    ensure!(
        header(&with_file, "In-Reply-To").as_deref() == Some(reply_id.as_str()),
        "threads under our last mail"
    );

    steps.step("The customer answers in the thread (quoting us): same room, only the new text");
    let answer = customer_mail(
        "order-2@customer.example.test",
        "Re: Order 1234 has not arrived",
        &format!("In-Reply-To: {reply_id}\r\nReferences: <order-1@customer.example.test> {reply_id}\r\n"),
        "Thanks, the tracking number is 555.\r\n\r\nOn Mon, 3 Mar 2025 Acme Support <support@example.test> wrote:\r\n> Sorry! We are checking with the courier.",
    );
    mail.smtp_send("customer@example.test", &["support@example.test"], &answer)
        .await?;
    let m = env
        .alice
        .wait_for_text(&room, "tracking number is 555")
        .await?;
    ensure!(
        !m.body.contains("checking with the courier"),
        "quoted history folded: {}",
        m.body
    );
    ensure!(
        !m.body.contains("Subject:"),
        "same subject is not repeated: {}",
        m.body
    );

    steps.step("An auto-reply to our answer: shown as such, never answered (nothing more reaches the customer)");
    let before = mail.fetch_all("customer")?.len();
    let ooo = customer_mail(
        "ooo-1@customer.example.test",
        "Automatic reply: Re: Order 1234 has not arrived",
        &format!("In-Reply-To: {reply_id}\r\nAuto-Submitted: auto-replied\r\n"),
        "I am out of the office until Monday.",
    );
    mail.smtp_send("customer@example.test", &["support@example.test"], &ooo)
        .await?;
    let auto = env.alice.wait_for_text(&room, "out of the office").await?;
    ensure!(
        auto.body.starts_with("[auto-reply]"),
        "marked: {}",
        auto.body
    );

    steps.step("A new thread from the same customer: a new room");
    let other = customer_mail(
        "invoice-1@customer.example.test",
        "Invoice question",
        "",
        "Where is my invoice?",
    );
    mail.smtp_send("customer@example.test", &["support@example.test"], &other)
        .await?;
    let room2 = env
        .alice
        .wait_for_invite_where("a second room for the customer", |i| {
            i.room_id != room
                && i.name
                    .as_deref()
                    .is_some_and(|n| n.contains("Jane Customer"))
        })
        .await?
        .room_id;
    env.alice.join(&room2).await?;
    env.alice
        .wait_for_text(&room2, "Where is my invoice?")
        .await?;
    // Nothing went to the customer because of the auto-reply (the bridge's own automatic answer
    // is checked in `an_automatic_mail_is_never_answered_automatically`).
    steps.step("Nothing went to the customer because of the auto-reply");
    ensure!(
        mail.fetch_all("customer")?.len() == before,
        "the auto-reply was answered"
    );
    steps.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_read_by_another_client_first_is_still_bridged() -> anyhow::Result<()> {
    let mail = MailServer::start().await?;
    let m = customer_mail(
        "seen-1@customer.example.test",
        "Already read",
        "",
        "Someone opened this in Thunderbird first.",
    );
    mail.append("support", &m).await?;
    mail.mark_all_seen("support").await?;
    let env = TestEnv::start(options(Backend::Sqlite, &mail)).await?;
    let room = env.alice.wait_for_invite("Jane Customer").await?;
    env.alice
        .wait_for_text(&room, "opened this in Thunderbird")
        .await?;
    // Acknowledged with our keyword; \Seen left as the other client set it.
    let flags = rig::poll_until(
        "the $Switchboard keyword on the mail",
        rig::DEFAULT_TIMEOUT,
        || async {
            let flags = mail.flags("support").await?;
            Ok(flags
                .iter()
                .any(|f| f.contains("$Switchboard"))
                .then_some(flags))
        },
    )
    .await?;
    ensure!(flags.iter().all(|f| f.contains("\\Seen")), "{flags:?}");
    // Mail to the operator's personal address says whose it is.
    let personal = customer_mail(
        "personal-1@customer.example.test",
        "For Alice",
        "",
        "Alice, are you there?",
    );
    mail.smtp_send("customer@example.test", &["alice@example.test"], &personal)
        .await?;
    let invite = env
        .alice
        .wait_for_invite_where("the personal-address room", |i| {
            i.room_id != room
                && i.name
                    .as_deref()
                    .is_some_and(|n| n.contains("Jane Customer"))
        })
        .await?;
    env.alice.join(&invite.room_id).await?;
    let msg = env
        .alice
        .wait_for_text(&invite.room_id, "Alice, are you there?")
        .await?;
    ensure!(
        msg.body.contains("personal address of @alice:localhost"),
        "{}",
        msg.body
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_restart_mid_idle_loses_nothing() -> anyhow::Result<()> {
    let mut mail = MailServer::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &mail)).await?;
    mail.append(
        "support",
        &customer_mail(
            "r-1@customer.example.test",
            "Before",
            "",
            "before the outage",
        ),
    )
    .await?;
    let room = env.alice.wait_for_invite("Jane Customer").await?;
    env.alice.wait_for_text(&room, "before the outage").await?;
    // The bridge waits in IDLE; the server goes away under it and comes back.
    mail.wait_for_idle("support").await?;
    mail.restart_imap().await?;
    let second = customer_mail(
        "r-2@customer.example.test",
        "Re: Before",
        "In-Reply-To: <r-1@customer.example.test>\r\n",
        "right after the restart",
    );
    mail.append("support", &second).await?;
    let third = customer_mail(
        "r-3@customer.example.test",
        "Re: Before",
        "In-Reply-To: <r-2@customer.example.test>\r\n",
        "and one more",
    );
    mail.append("support", &third).await?;
    env.alice
        .wait_for_text(&room, "right after the restart")
        .await?;
    env.alice.wait_for_text(&room, "and one more").await?;
    // Nothing twice: a mail after all of them is in the room only once everything before it in
    // the thread was worked (one conversation is worked in order), duplicates included.
    let marker = customer_mail(
        "r-4@customer.example.test",
        "Re: Before",
        "In-Reply-To: <r-3@customer.example.test>\r\n",
        "the last one",
    );
    mail.append("support", &marker).await?;
    env.alice.wait_for_text(&room, "the last one").await?;
    let texts: Vec<String> = env
        .alice
        .messages(&room)
        .into_iter()
        .map(|m| m.body)
        .collect();
    ensure!(
        texts
            .iter()
            .filter(|t| t.contains("before the outage"))
            .count()
            == 1,
        "{texts:?}"
    );
    ensure!(
        texts
            .iter()
            .filter(|t| t.contains("right after the restart"))
            .count()
            == 1,
        "{texts:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounces_and_refusals_become_failure_notices() -> anyhow::Result<()> {
    let mail = MailServer::start().await?;
    let env = TestEnv::start(options(Backend::Sqlite, &mail)).await?;
    // A customer whose address does not exist on the (local) mail system: our answer bounces.
    let m = b"From: Gone Person <gone@example.test>\r\nTo: support@example.test\r\nSubject: Bye\r\nMessage-ID: <gone-1@example.test>\r\n\r\nI am leaving soon.\r\n";
    mail.append("support", m).await?;
    let room = env.alice.wait_for_invite("Gone Person").await?;
    env.alice.wait_for_text(&room, "leaving soon").await?;
    env.alice.send_text(&room, "Goodbye then").await?;
    let notice = env.alice.wait_for_text(&room, "Not delivered").await?;
    ensure!(notice.body.contains("bounced"), "{}", notice.body);

    // A customer in a domain the server refuses to relay to: SMTP 554 → a permanent failure.
    let m = b"From: Far Away <far@elsewhere.test>\r\nTo: support@example.test\r\nSubject: Hi\r\nMessage-ID: <far-1@elsewhere.test>\r\n\r\nHello from afar.\r\n";
    mail.append("support", m).await?;
    let room2 = env.alice.wait_for_invite("Far Away").await?;
    env.alice.wait_for_text(&room2, "Hello from afar").await?;
    env.alice.send_text(&room2, "Hello back").await?;
    let refused = env
        .alice
        .wait_for_message(&room2, |m| m.body.contains("Relay access denied"))
        .await?;
    ensure!(refused.is_notice(), "a notice: {}", refused.body);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charsets_html_only_and_a_corrupt_mail_that_blocks_nothing() -> anyhow::Result<()> {
    let mail = MailServer::start().await?;
    mail.append("support", &fixture("thunderbird_koi8r_base64.eml")?)
        .await?;
    mail.append(
        "support",
        &fixture("constructed_ru_koi8r_8bit_multipart.eml")?,
    )
    .await?;
    mail.append("support", &fixture("chatwoot_only_html.eml")?)
        .await?;
    // Not a mail at all.
    mail.append(
        "support",
        b"\x00\x01\x02\xff\xfe garbage bytes without a single header\r\n",
    )
    .await?;
    mail.append(
        "support",
        &customer_mail(
            "after-1@customer.example.test",
            "After",
            "",
            "the mail after the corrupt one",
        ),
    )
    .await?;
    let env = TestEnv::start(options(Backend::Sqlite, &mail)).await?;

    let room = env.alice.wait_for_invite("Иван Петров").await?;
    let m = env.alice.wait_for_text(&room, "Сессия истекла").await?;
    ensure!(
        m.body.contains("Subject: Не могу войти в личный кабинет"),
        "{}",
        m.body
    );
    let png = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.image")
        .await?;
    ensure!(png.filename() == "скриншот.png", "{}", png.filename());

    let room = env.alice.wait_for_invite("Bug Reporter").await?;
    let m = env.alice.wait_for_text(&room, "Вопрос").await?;
    ensure!(m.body.contains("Алфавит"), "{}", m.body);

    let room = env.alice.wait_for_invite("tejaswini").await?;
    let m = env
        .alice
        .wait_for_text(&room, "This is html only mail")
        .await?;
    ensure!(
        m.formatted_body
            .as_deref()
            .is_some_and(|h| h.contains("This is html only mail")),
        "{m:?}"
    );

    let room = env.alice.wait_for_invite("Unreadable").await?;
    env.alice.wait_for_text(&room, "could not be read").await?;
    let eml = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.file")
        .await?;
    let raw = env.alice.fetch_file(&eml).await?;
    ensure!(
        String::from_utf8_lossy(&raw).contains("garbage bytes without a single header"),
        "the raw message is attached: {raw:?}"
    );

    let room = env.alice.wait_for_invite("Jane Customer").await?;
    env.alice
        .wait_for_text(&room, "the mail after the corrupt one")
        .await?;
    Ok(())
}

/// Routing by address: mail to an operator's personal address goes to that operator alone while
/// they are on shift; a new thread from the same customer to the shared address sticks to the
/// operator who answered them last; outside that operator's hours it goes to the whole team.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_address_and_sticky_routing_with_off_shift_fallback() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("personal address and sticky routing with off shift fallback");
    let utc = |d: u32, h: u32| rig::utc(2026, 11, d, h, 0);
    let mail = MailServer::start().await?;
    let teams = serde_yaml::to_value(serde_json::json!({
        "sales": {"members": ["@alice:localhost", "@bob:localhost"], "hours": {"mon-fri": "09:00-18:00"}},
    }))?;
    let env = TestEnv::start(options(Backend::Sqlite, &mail).edit_config(move |c| {
        if let Some(map) = c.as_mapping_mut() {
            map.insert("teams".into(), teams.clone());
            map.insert(
                "testing".into(),
                serde_yaml::to_value(serde_json::json!({"clock_control": true}))
                    .unwrap_or_default(),
            );
        }
    }))
    .await?;
    let members_of = rig::membership;
    env.set_clock(utc(23, 10)).await?; // Monday 10:00: everyone on shift

    // To Alice's personal address: Alice owns it; Bob (same team) is not invited.
    steps.step("To Alice's personal address: Alice owns it");
    let personal = String::from_utf8_lossy(&customer_mail(
        "p-1@customer.example.test",
        "For Alice",
        "",
        "Alice, about our contract renewal.",
    ))
    .replace("To: support@example.test", "To: alice@example.test")
    .into_bytes();
    mail.smtp_send("customer@example.test", &["alice@example.test"], &personal)
        .await?;
    let room = env.alice.wait_for_invite("Jane Customer").await?;
    env.alice.wait_for_text(&room, "contract renewal").await?;
    let members = env.alice.memberships(&room).await?;
    ensure!(
        members_of(&members, "@bob:localhost").is_none(),
        "bob is not invited to alice's personal mail: {members:?}"
    );
    let whois_cmd = env.alice.send_text(&room, "!sb whois").await?;
    let whois = env
        .alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.in_reply_to() == Some(whois_cmd.as_str())
        })
        .await?;
    ensure!(
        whois.body.contains("owner: @alice:localhost"),
        "{}",
        whois.body
    );
    env.alice.send_text(&room, "Happy to help, Jane.").await?;
    mail.wait_for_mail("customer", "Happy to help").await?;

    steps.step("A new thread to the shared address: sticks to Alice, who answered Jane last");
    let shared = customer_mail(
        "s-1@customer.example.test",
        "Another question",
        "",
        "One more thing about delivery.",
    );
    mail.smtp_send("customer@example.test", &["support@example.test"], &shared)
        .await?;
    let sticky = env
        .alice
        .wait_for_invite_where("a second room for Jane", |i| {
            i.room_id != room
                && i.name
                    .as_deref()
                    .is_some_and(|n| n.contains("Jane Customer"))
        })
        .await?
        .room_id;
    env.alice.join(&sticky).await?;
    let members = env.alice.memberships(&sticky).await?;
    ensure!(
        members_of(&members, "@bob:localhost").is_none(),
        "sticky to alice, bob not invited: {members:?}"
    );

    steps.step("Saturday: Alice is off shift, so a new thread (even to her personal address) goes to the team");
    env.set_clock(utc(28, 11)).await?;
    let weekend = String::from_utf8_lossy(&customer_mail(
        "w-1@customer.example.test",
        "Weekend",
        "",
        "Are you open on Saturday?",
    ))
    .replace("To: support@example.test", "To: alice@example.test")
    .into_bytes();
    mail.smtp_send("customer@example.test", &["alice@example.test"], &weekend)
        .await?;
    // (Bob may first be invited to the sticky room: its unanswered question escalated meanwhile.)
    let team_room = env
        .bob
        .wait_for_invite_where("the weekend thread", |i| {
            i.room_id != room
                && i.room_id != sticky
                && i.name
                    .as_deref()
                    .is_some_and(|n| n.contains("Jane Customer"))
        })
        .await?
        .room_id;
    env.bob.join(&team_room).await?;
    env.bob
        .wait_for_text(&team_room, "open on Saturday")
        .await?;
    let members = env.bob.memberships(&team_room).await?;
    ensure!(
        members_of(&members, "@alice:localhost").is_some(),
        "the whole team, alice included: {members:?}"
    );
    steps.finish()
}

/// The `teams:` section (and nothing else) replaced in the bridge's config.
fn with_teams(options: BridgeOptions, teams: serde_json::Value) -> BridgeOptions {
    let teams = serde_yaml::to_value(teams).unwrap_or_default();
    options.edit_config(move |c| {
        if let Some(map) = c.as_mapping_mut() {
            map.insert("teams".into(), teams.clone());
        }
    })
}

/// The first text/plain and text/html bodies of a raw mail, decoded.
fn bodies(raw: &[u8]) -> anyhow::Result<(String, String)> {
    let m = mail_parser::MessageParser::default()
        .parse(raw)
        .context("our mail does not parse")?;
    let text = m
        .body_text(0)
        .context("no text part")?
        .replace("\r\n", "\n");
    let html = m.body_html(0).context("no HTML part")?.to_string();
    Ok((text, html))
}

/// A customer's new thread, waited for until its room is there; returns the room.
async fn new_thread(
    env: &TestEnv,
    mail: &MailServer,
    id: &str,
    subject: &str,
    body: &str,
    seen: &[String],
) -> anyhow::Result<String> {
    mail.append("support", &customer_mail(id, subject, "", body))
        .await?;
    let room = env
        .alice
        .wait_for_invite_where(&format!("the room of {id}"), |i| {
            !seen.contains(&i.room_id)
                && i.name
                    .as_deref()
                    .is_some_and(|n| n.contains("Jane Customer"))
        })
        .await?
        .room_id;
    env.alice.join(&room).await?;
    env.alice.wait_for_text(&room, body).await?;
    Ok(room)
}

/// Each team signs its mail with its own signature, in the text and the HTML part; a
/// conversation that belongs to no team gets the channel's default signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_team_signs_its_answers_with_its_own_signature() -> anyhow::Result<()> {
    let mail = MailServer::start().await?;
    let mut section = mail.channel_config();
    section["signature"] = "Acme (default signature)".into();
    let options = with_teams(
        options_for(Backend::Sqlite, section),
        serde_json::json!({
            "billing": {"members": ["@alice:localhost"], "rules": [{"keywords": ["invoice"]}],
                        "signature": "Billing desk, Acme Ltd\nIBAN DE00 1234 5678"},
            "sales": {"members": ["@alice:localhost"], "rules": [{"keywords": ["order"]}],
                      "signature": "Sales team <Acme Ltd>"},
        }),
    );
    let env = TestEnv::start(options).await?;
    let mut rooms: Vec<String> = Vec::new();
    for (id, subject, body) in [
        (
            "sig-1@customer.example.test",
            "Invoice 77",
            "Where is invoice 77?",
        ),
        (
            "sig-2@customer.example.test",
            "Order 88",
            "My order 88 is late.",
        ),
        ("sig-3@customer.example.test", "Hello", "Just saying hello."),
    ] {
        let room = new_thread(&env, &mail, id, subject, body, &rooms).await?;
        rooms.push(room);
    }
    let billing = ["Billing desk, Acme Ltd", "IBAN DE00 1234 5678"];
    let sales = ["Sales team <Acme Ltd>"];
    let default = ["Acme (default signature)"];
    let cases: [(&str, &[&str], Vec<&str>); 3] = [
        (
            "answer-for-billing",
            &billing,
            [&sales[..], &default[..]].concat(),
        ),
        (
            "answer-for-sales",
            &sales,
            [&billing[..], &default[..]].concat(),
        ),
        (
            "answer-for-nobody",
            &default,
            [&billing[..], &sales[..]].concat(),
        ),
    ];
    for (room, (answer, wanted, unwanted)) in rooms.iter().zip(cases) {
        env.alice
            .send_text(room, &format!("Thanks, {answer}."))
            .await?;
        let raw = mail.wait_for_mail("customer", answer).await?;
        let (text, html) = bodies(&raw)?;
        ensure!(
            text.contains(&format!("-- \n{}", wanted[0])),
            "{answer}: a signature block in the text: {text}"
        );
        for w in wanted {
            ensure!(text.contains(w), "{answer}: {w:?} in the text part: {text}");
            let escaped = w.replace('<', "&lt;").replace('>', "&gt;");
            ensure!(
                html.contains(&escaped),
                "{answer}: {escaped:?} in the HTML part: {html}"
            );
        }
        for u in &unwanted {
            ensure!(
                !text.contains(u),
                "{answer}: {u:?} must not sign it: {text}"
            );
        }
    }
    // An admin changes the sales signature by command; the next sales answer carries it.
    let changed = rig::command(
        &env.alice,
        &rooms[1],
        "!sb team sales signature Sales · call us on +49 30 1234567",
    )
    .await?;
    ensure!(changed.contains("signs its emails with"), "{changed}");
    env.alice
        .send_text(&rooms[1], "Thanks, answer-after-change.")
        .await?;
    let raw = mail
        .wait_for_mail("customer", "answer-after-change")
        .await?;
    let (text, _) = bodies(&raw)?;
    ensure!(
        text.contains("-- \nSales · call us on +49 30 1234567") && !text.contains(sales[0]),
        "the changed signature: {text}"
    );
    Ok(())
}

/// Mail comes in over IMAPS (implicit TLS) and the answer goes out with SMTP STARTTLS, both
/// servers holding a certificate of the rig's private CA that the config trusts
/// (`tls_ca_file`). The servers' logs prove the sessions were encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_in_over_imaps_and_answers_out_over_smtp_starttls() -> anyhow::Result<()> {
    let mail = MailServer::start_with(MailOptions {
        tls: true,
        ..MailOptions::default()
    })
    .await?;
    let env = TestEnv::start(options(Backend::Sqlite, &mail)).await?;
    mail.smtp_send(
        "customer@example.test",
        &["support@example.test"],
        &customer_mail(
            "tls-1@customer.example.test",
            "Secure?",
            "",
            "Is this channel encrypted?",
        ),
    )
    .await?;
    let room = env.alice.wait_for_invite("Jane Customer").await?;
    env.alice
        .wait_for_text(&room, "Is this channel encrypted?")
        .await?;
    let logins: Vec<String> = mail
        .dovecot_log()
        .lines()
        .filter(|l| l.contains("Login: user=<support@example.test>"))
        .map(str::to_string)
        .collect();
    ensure!(
        !logins.is_empty() && logins.iter().all(|l| l.contains(", TLS")),
        "the bridge logged in over TLS only: {logins:?}"
    );

    env.alice
        .send_text(&room, "Yes: tls-answer-1 travels encrypted.")
        .await?;
    let reply = mail.wait_for_mail("customer", "tls-answer-1").await?;
    ensure!(
        header(&reply, "In-Reply-To").as_deref() == Some("<tls-1@customer.example.test>"),
        "{:?}",
        header(&reply, "In-Reply-To")
    );
    // Our own helper speaks plain SMTP: a TLS session in Postfix's log is the bridge's.
    let postfix = mail.postfix_log();
    ensure!(
        postfix.contains("TLS connection established from localhost"),
        "STARTTLS used: {}",
        mail.logs()
    );
    Ok(())
}

/// Servers whose certificate comes from a CA the config does not trust are refused, with the
/// reason in the log (IMAP) and in the room (SMTP); nothing is lost: the mail stays
/// unacknowledged on the server and arrives once the right CA is configured, and the answer
/// goes out with `!sb retry`. Here IMAP uses STARTTLS and SMTP implicit TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificates_are_refused_and_nothing_is_lost() -> anyhow::Result<()> {
    let mail = MailServer::start_with(MailOptions {
        tls: true,
        ..MailOptions::default()
    })
    .await?;
    let wrong = mail.other_ca_file().display().to_string();
    let right = mail.ca_file().display().to_string();
    let mut section = mail.channel_config();
    if let Some(boxes) = section["mailboxes"].as_array_mut() {
        for m in boxes {
            m["imap"]["tls"] = "starttls".into();
            m["imap"]["port"] = mail.imap_port.into();
            m["imap"]["tls_ca_file"] = wrong.clone().into();
        }
    }
    section["smtp"] = serde_json::json!({"host": "localhost", "port": mail.smtps_port,
                                         "tls": "tls", "tls_ca_file": wrong});
    mail.append(
        "support",
        &customer_mail(
            "ca-1@customer.example.test",
            "Trust",
            "",
            "Waiting for the right CA.",
        ),
    )
    .await?;
    let mut env = TestEnv::start(options_for(Backend::Sqlite, section).max_attempts(2)).await?;

    let log = rig::poll_until(
        "the certificate error in the bridge's log",
        rig::DEFAULT_TIMEOUT,
        || async {
            let log = env.bridge.log();
            Ok(log.contains("invalid peer certificate").then_some(log))
        },
    )
    .await?;
    let line = log
        .lines()
        .find(|l| l.contains("mailbox connection lost") && l.contains("UnknownIssuer"))
        .with_context(|| format!("the reason is named: {}", env.bridge.log_tail()))?;
    eprintln!("IMAP refused: {line}");
    let flags = mail.flags("support").await?;
    ensure!(
        flags.len() == 1 && !flags[0].contains("$Switchboard"),
        "the mail is untouched on the server: {flags:?}"
    );

    // The right CA for IMAP: the waiting mail arrives.
    let set_ca = |key: &'static str, ca: String| {
        move |c: &mut serde_yaml::Value| {
            let email = &mut c["channels"]["email"];
            if key == "imap" {
                if let Some(boxes) = email["mailboxes"].as_sequence_mut() {
                    for m in boxes {
                        m["imap"]["tls_ca_file"] = ca.clone().into();
                    }
                }
            } else {
                email["smtp"]["tls_ca_file"] = ca.clone().into();
            }
        }
    };
    env.bridge.edit_config(set_ca("imap", right.clone()))?;
    env.bridge.restart().await?;
    let room = env.alice.wait_for_invite("Jane Customer").await?;
    env.alice
        .wait_for_text(&room, "Waiting for the right CA.")
        .await?;

    // SMTP still trusts the wrong CA: the answer fails, and the room says why.
    env.alice
        .send_text(&room, "ca-answer-1: we trust the right CA now.")
        .await?;
    let failed = env
        .alice
        .wait_for_message(&room, |m| m.body.contains("Not delivered"))
        .await?;
    eprintln!("SMTP refused: {}", failed.body);
    ensure!(
        failed.is_notice()
            && failed.body.contains("certificate is not trusted")
            && failed.body.contains("UnknownIssuer"),
        "the reason is named: {}",
        failed.body
    );

    // Fixed and retried: it goes out over implicit TLS.
    env.bridge.edit_config(set_ca("smtp", right))?;
    env.bridge.restart().await?;
    env.alice.send_text(&room, "!sb retry").await?;
    let reply = mail.wait_for_mail("customer", "ca-answer-1").await?;
    ensure!(header(&reply, "In-Reply-To").as_deref() == Some("<ca-1@customer.example.test>"));
    ensure!(
        mail.postfix_log()
            .contains("TLS connection established from localhost"),
        "{}",
        mail.logs()
    );
    Ok(())
}

/// A server without IDLE is polled every `poll_interval_secs`: new mail still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_idle_the_mailbox_is_polled() -> anyhow::Result<()> {
    let mail = MailServer::start_with(MailOptions {
        no_idle: true,
        ..MailOptions::default()
    })
    .await?;
    let mut section = mail.channel_config();
    section["poll_interval_secs"] = 1.into();
    let env = TestEnv::start(options_for(Backend::Sqlite, section)).await?;
    rig::poll_until(
        "the mailbox opened without IDLE",
        rig::DEFAULT_TIMEOUT,
        || async {
            Ok(env
                .bridge
                .log()
                .lines()
                .any(|l| {
                    l.contains("email: mailbox open")
                        && l.contains("mailbox=support")
                        && l.contains("idle=false")
                })
                .then_some(()))
        },
    )
    .await?;
    // Mail that arrives after the mailbox was opened is found by a later poll.
    let mut room: Option<String> = None;
    for (i, text) in ["first polled mail", "second polled mail"]
        .into_iter()
        .enumerate()
    {
        let started = std::time::Instant::now();
        let extra = if i == 0 {
            ""
        } else {
            "In-Reply-To: <poll-0@customer.example.test>\r\n"
        };
        let id = format!("poll-{i}@customer.example.test");
        mail.append("support", &customer_mail(&id, "Polling", extra, text))
            .await?;
        let r = match &room {
            Some(r) => r.clone(),
            None => env.alice.wait_for_invite("Jane Customer").await?,
        };
        env.alice.wait_for_text(&r, text).await?;
        eprintln!("polled mail {i} in the room after {:?}", started.elapsed());
        room = Some(r);
    }
    Ok(())
}

/// `ack: move`: a stored mail leaves the inbox for `move_to`, and after a restart nothing is
/// read twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_move_moves_stored_mail_and_a_restart_reads_nothing_twice() -> anyhow::Result<()> {
    let mail = MailServer::start().await?;
    let mut section = mail.channel_config();
    section["ack"] = "move".into();
    section["move_to"] = "Bridged".into();
    let mut env = TestEnv::start(options_for(Backend::Sqlite, section)).await?;
    mail.append(
        "support",
        &customer_mail("mv-1@customer.example.test", "Move", "", "move me once"),
    )
    .await?;
    let room = env.alice.wait_for_invite("Jane Customer").await?;
    env.alice.wait_for_text(&room, "move me once").await?;
    let moved = |want: usize| {
        let mail = &mail;
        async move {
            rig::poll_until(
                "the mail moved to Bridged",
                rig::DEFAULT_TIMEOUT,
                || async {
                    let inbox = mail.message_ids("support", "INBOX").await?;
                    let bridged = mail.message_ids("support", "Bridged").await?;
                    Ok((inbox.is_empty() && bridged.len() == want).then_some(bridged))
                },
            )
            .await
        }
    };
    let bridged = moved(1).await?;
    ensure!(bridged == ["<mv-1@customer.example.test>"], "{bridged:?}");

    env.bridge.restart().await?;
    mail.append(
        "support",
        &customer_mail(
            "mv-2@customer.example.test",
            "Re: Move",
            "In-Reply-To: <mv-1@customer.example.test>\r\n",
            "after the restart",
        ),
    )
    .await?;
    env.alice.wait_for_text(&room, "after the restart").await?;
    moved(2).await?;
    let texts: Vec<String> = env
        .alice
        .messages(&room)
        .into_iter()
        .map(|m| m.body)
        .collect();
    ensure!(
        texts.iter().filter(|t| t.contains("move me once")).count() == 1,
        "{texts:?}"
    );
    ensure!(
        texts
            .iter()
            .filter(|t| t.contains("after the restart"))
            .count()
            == 1,
        "{texts:?}"
    );
    Ok(())
}

/// A customer whose name no homeserver takes as a display name (10,000 characters) and whose
/// address is as long as an address can be: the message still reaches the room, under a name
/// cut to something readable, from a ghost the homeserver accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_with_a_huge_name_and_address_reaches_the_room() -> anyhow::Result<()> {
    let mail = MailServer::start().await?;
    // 10,000 characters of name, folded into header lines well under 998 characters.
    let words: Vec<String> = (0..1000).map(|i| format!("Name{i:05}")).collect();
    let name = format!("Grace {}", words.join(" "));
    let folded = format!(
        "Grace {}",
        words
            .chunks(8)
            .map(|c| c.join(" "))
            .collect::<Vec<_>>()
            .join("\r\n ")
    );
    ensure!(name.chars().count() > 10_000, "{}", name.len());
    // 64-character local part, 254 characters in all (RFC 5321's limits).
    let address = format!(
        "{}@{}.{}.{}.example",
        "g".repeat(64),
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(53)
    );
    ensure!(address.len() == 254, "{}", address.len());
    let raw = format!(
        "From: {folded} <{address}>\r\nTo: support@example.test\r\nSubject: Long names\r\n\
         Message-ID: <long-name-1@customer.example.test>\r\nDate: Mon, 3 Mar 2025 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMy name is rather long.\r\n"
    );
    mail.append("support", raw.as_bytes()).await?;
    let env = TestEnv::start(options(Backend::Sqlite, &mail)).await?;
    let room = env.alice.wait_for_invite("Grace Name00000").await?;
    let msg = env
        .alice
        .wait_for_text(&room, "My name is rather long")
        .await?;
    let room_name = env.alice.room_name(&room).await?.unwrap_or_default();
    ensure!(
        room_name.chars().count() <= 100 && room_name.starts_with("Grace Name00000 Name00001"),
        "room name: {room_name:?}"
    );
    // The ghost speaks, under the cut name.
    ensure!(
        msg.sender.starts_with("@sb_email_") && msg.sender.len() <= 255,
        "sender {}",
        msg.sender
    );
    let member = env
        .alice
        .member(&room, &msg.sender)
        .await?
        .context("the ghost's membership")?;
    let shown = member["displayname"].as_str().unwrap_or_default();
    ensure!(
        shown.starts_with("Grace Name00000") && shown.chars().count() <= 100,
        "display name: {shown:?}"
    );
    Ok(())
}

/// The loop guard: an automatic mail (an out-of-office answer opening a thread of its own) never
/// gets the bridge's own out-of-hours auto-reply, which is configured here and does answer the
/// customer's real mail in the same thread afterwards. Were the guard broken, the bridge's
/// auto-reply would follow the automatic mail instead (one per conversation and day).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automatic_mail_is_never_answered_automatically() -> anyhow::Result<()> {
    let mail = MailServer::start().await?;
    let teams: serde_yaml::Value = serde_yaml::to_value(serde_json::json!({
        "support": {
            "members": ["@alice:localhost"],
            "timezone": "Europe/Berlin",
            "hours": {"mon-fri": "09:00-17:00"},
            "auto_reply": "We are closed; we answer from 9:00 on weekdays.",
            "rules": [{"channel": "email"}],
        }
    }))?;
    let options = options(Backend::Sqlite, &mail).edit_config(move |c| {
        if let Some(map) = c.as_mapping_mut() {
            map.insert("teams".into(), teams.clone());
            map.insert(
                "testing".into(),
                serde_yaml::to_value(serde_json::json!({"clock_control": true}))
                    .unwrap_or_default(),
            );
        }
    });
    let env = TestEnv::start(options).await?;
    // Saturday afternoon in Berlin: closed.
    env.set_clock(rig::utc(2026, 11, 21, 14, 0)).await?;
    let ooo = customer_mail(
        "ooo-guard-1@customer.example.test",
        "Automatic reply: our newsletter",
        "Auto-Submitted: auto-replied\r\n",
        "I am out of the office until Monday.",
    );
    mail.smtp_send("customer@example.test", &["support@example.test"], &ooo)
        .await?;
    let room = env.alice.wait_for_invite("Jane Customer").await?;
    env.alice.wait_for_text(&room, "out of the office").await?;
    let real = customer_mail(
        "ooo-guard-2@customer.example.test",
        "Re: Automatic reply: our newsletter",
        "In-Reply-To: <ooo-guard-1@customer.example.test>\r\n",
        "Back early: where is my order?",
    );
    mail.smtp_send("customer@example.test", &["support@example.test"], &real)
        .await?;
    env.alice
        .wait_for_message(&room, |m| {
            m.is_notice() && m.body.contains("Auto-reply sent")
        })
        .await?;
    mail.wait_for_mail("customer", "We are closed").await?;
    // The one auto-reply answers the real mail: it comes after it in the room.
    let bodies: Vec<String> = env
        .alice
        .messages(&room)
        .into_iter()
        .map(|m| m.body)
        .collect();
    let at = |needle: &str| bodies.iter().position(|b| b.contains(needle));
    let (Some(real_at), Some(auto_at)) = (at("where is my order"), at("Auto-reply sent")) else {
        anyhow::bail!("the room holds {bodies:#?}");
    };
    ensure!(
        auto_at > real_at,
        "the auto-reply answered the automatic mail: {bodies:#?}"
    );
    let auto_replies = bodies
        .iter()
        .filter(|b| b.contains("Auto-reply sent"))
        .count();
    ensure!(
        auto_replies == 1,
        "{auto_replies} auto-replies: {bodies:#?}"
    );
    Ok(())
}

fn corpus(path: &str) -> anyhow::Result<Vec<u8>> {
    let path = rig::repo_root().join("tests/corpus/email").join(path);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// Real mail with broken MIME through Dovecot into the rooms (tests/corpus/email): a multipart
/// without a boundary (CPython's msg_41) and a header block that runs into its body (msg_35)
/// arrive as their text; `Content-Type: text` (a 1999 linux-kernel post) arrives as text and
/// as list mail, with no file made up — a customer's reply threaded after it is the sentinel
/// that everything of the post was posted; text, a picture, HTML and text again in one
/// multipart/mixed arrive in order in both bodies, the picture and the named text part as
/// files. Bridge-side the parser is unit-tested on the same files (bridges/email/tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_mime_reaches_the_room_as_the_text_a_mail_client_shows() -> anyhow::Result<()> {
    let mail = MailServer::start().await?;
    for file in [
        "cpython/msg_41.txt",
        "cpython/msg_35.txt",
        "lkml/E11VMqH-0007Bz-00.eml",
        "derived/msg_44_plain_html_between_files.txt",
    ] {
        mail.append("support", &corpus(file)?).await?;
    }
    let reply = "From: Gary Simmons <darshu@sympatico.ca>\r\nTo: support@example.test\r\n\
        Subject: Re: PPPoE\r\nMessage-ID: <gary-1@sympatico.ca>\r\n\
        In-Reply-To: <E11VMqH-0007Bz-00@the-village.bc.nu>\r\nDate: Mon, 27 Sep 1999 08:00:00 +0000\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\r\nThanks, the 2.3 driver it is.\r\n";
    mail.append("support", reply.as_bytes()).await?;
    let env = TestEnv::start(options(Backend::Sqlite, &mail)).await?;

    let room = env.alice.wait_for_invite("Allison Dunlap").await?;
    env.alice.wait_for_text(&room, "Blah blah blah").await?;

    let room = env.alice.wait_for_invite("aperson").await?;
    env.alice
        .wait_for_text(
            &room,
            "counter to RFC 5322, there's no separating newline here",
        )
        .await?;

    let room = env.alice.wait_for_invite("Alan Cox").await?;
    let post = env
        .alice
        .wait_for_text(&room, "There is a 2.3.x driver for PPP in kernel space.")
        .await?;
    ensure!(post.is_notice(), "list mail is a notice: {post:?}");
    env.alice
        .wait_for_text(&room, "Thanks, the 2.3 driver it is.")
        .await?;
    let files: Vec<String> = env
        .alice
        .messages(&room)
        .into_iter()
        .filter(|m| m.url().is_some())
        .map(|m| m.filename().to_string())
        .collect();
    ensure!(
        files.is_empty(),
        "no file was attached, yet the room has {files:?}"
    );

    let room = env.alice.wait_for_invite("arsaw").await?;
    let m = env
        .alice
        .wait_for_text(&room, "the fourth part, plain again")
        .await?;
    let html = m.formatted_body.clone().unwrap_or_default();
    let order = |s: &str| {
        [
            "a simple kind of mirror",
            "the third part",
            "the fourth part, plain again",
        ]
        .map(|needle| s.find(needle))
    };
    for (what, body) in [("plain", m.body.as_str()), ("formatted", html.as_str())] {
        let [Some(a), Some(b), Some(c)] = order(body) else {
            anyhow::bail!("a part is missing from the {what} body: {body}");
        };
        ensure!(a < b && b < c, "the {what} body is out of order: {body}");
    }
    ensure!(html.contains("<b>after</b>"), "{html}");
    let picture = env
        .alice
        .wait_for_message(&room, |m| m.filename() == "mirror.png")
        .await?;
    ensure!(picture.msgtype == "m.image", "{picture:?}");
    env.alice
        .wait_for_message(&room, |m| m.filename() == "msg.txt")
        .await?;
    Ok(())
}

/// With `request_read_receipts`, an answer asks for a read notification; the notification the
/// customer's mail client sends back (an RFC 8098 MDN naming the answer's Message-ID) shows as
/// the customer's read receipt on the operator's message, as on the chat channels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_notification_is_the_customers_read_receipt() -> anyhow::Result<()> {
    let mail = MailServer::start().await?;
    let mut section = mail.channel_config();
    section["request_read_receipts"] = true.into();
    let env = TestEnv::start(options_for(Backend::Sqlite, section)).await?;
    let first = customer_mail(
        "mdn-order-1@customer.example.test",
        "Order 77",
        "",
        "Where is order 77?",
    );
    mail.smtp_send("customer@example.test", &["support@example.test"], &first)
        .await?;
    let room = env.alice.wait_for_invite("Jane Customer").await?;
    let question = env.alice.wait_for_text(&room, "Where is order 77?").await?;
    let answer = env.alice.send_text(&room, "It left today.").await?;
    let sent = mail.wait_for_mail("customer", "It left today.").await?;
    ensure!(
        header(&sent, "Disposition-Notification-To")
            .is_some_and(|v| v.contains("support@example.test")),
        "no read notification asked for: {}",
        String::from_utf8_lossy(&sent)
    );
    let id = header(&sent, "Message-ID").context("the answer has a Message-ID")?;
    let notification = format!(
        "From: Jane Customer <customer@example.test>\r\nTo: support@example.test\r\n\
         Subject: Read: Re: Order 77\r\nMessage-ID: <mdn-77@customer.example.test>\r\n\
         Date: Mon, 3 Mar 2025 11:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=disposition-notification; boundary=\"r\"\r\n\r\n\
         --r\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour message was displayed.\r\n\
         --r\r\nContent-Type: message/disposition-notification\r\n\r\n\
         Reporting-UA: customer.example.test; Thunderbird\r\n\
         Final-Recipient: rfc822;customer@example.test\r\nOriginal-Message-ID: {id}\r\n\
         Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--r--\r\n"
    );
    mail.smtp_send(
        "customer@example.test",
        &["support@example.test"],
        notification.as_bytes(),
    )
    .await?;
    env.alice
        .wait_for_read_receipt(&room, &question.sender, &answer)
        .await?;
    let shown: Vec<String> = env
        .alice
        .messages(&room)
        .into_iter()
        .map(|m| m.body)
        .filter(|b| b.contains("Your message was displayed"))
        .collect();
    ensure!(
        shown.is_empty(),
        "the notification is a receipt, not a message: {shown:?}"
    );
    Ok(())
}
