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

on_both_stores!(
    an_invite_from_a_non_operator_is_declined_and_an_operators_accepted,
    webchat_limits_per_address_and_overall_hold,
    sessions_that_never_write_store_nothing_and_a_writer_is_stored,
);

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

// ----- the HTTP server ------------------------------------------------------------------------

/// Options with `http:` set to `section` (a YAML-able JSON object).
fn with_http(options: BridgeOptions, section: serde_json::Value) -> BridgeOptions {
    options.edit_config(move |config| {
        if let Some(map) = config.as_mapping_mut() {
            let value = serde_yaml::to_value(&section).unwrap_or(serde_yaml::Value::Null);
            map.insert("http".into(), value);
        }
    })
}

/// Waits until the server closes `stream` (a read returns 0 or fails), writing `trickle` every
/// `every` meanwhile when given (a slow-loris client); how long it took, or an error after
/// `deadline`.
async fn wait_closed(
    stream: &mut tokio::net::TcpStream,
    trickle: Option<(&[u8], Duration)>,
    deadline: Duration,
) -> anyhow::Result<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        ensure!(
            started.elapsed() < deadline,
            "the connection is still open after {deadline:?}"
        );
        let pause = trickle.map_or(Duration::from_millis(500), |(_, every)| every);
        match tokio::time::timeout(pause, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(started.elapsed()),
            Ok(Ok(_)) => {} // a response (408, 400): the close follows
            Err(_) => {
                if let Some((bytes, _)) = trickle {
                    if stream.write_all(bytes).await.is_err() {
                        return Ok(started.elapsed());
                    }
                }
            }
        }
    }
}

/// Slow-loris headers, a body that stalls, an idle keep-alive connection: each is closed after
/// its timeout, and a normal request still works meanwhile and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_after_their_timeouts() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = TestEnv::start(with_http(
        BridgeOptions::default(),
        json!({"header_read_timeout": "2s", "body_read_timeout": "3s", "idle_timeout": "5s"}),
    ))
    .await?;
    let addr = format!("127.0.0.1:{}", env.bridge.port());
    let health = format!("{}/_switchboard/health", env.bridge.base_url());

    // Headers one line every 500 ms, never finished: closed after ~2 s though bytes keep coming.
    let mut loris = tokio::net::TcpStream::connect(&addr).await?;
    loris
        .write_all(b"GET /_switchboard/health HTTP/1.1\r\nHost: x\r\n")
        .await?;
    let took = wait_closed(
        &mut loris,
        Some((b"X-Slow: 1\r\n", Duration::from_millis(500))),
        Duration::from_secs(15),
    )
    .await
    .context("slow headers")?;
    ensure!(
        took >= Duration::from_millis(1500),
        "closed after {took:?}, before the timeout"
    );

    // A body that stops after 10 of its 1000 bytes: closed after ~3 s.
    let mut stalled = tokio::net::TcpStream::connect(&addr).await?;
    stalled
        .write_all(b"POST /webchat/api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\": \"")
        .await?;
    let took = wait_closed(&mut stalled, None, Duration::from_secs(15))
        .await
        .context("stalled body")?;
    ensure!(
        took >= Duration::from_millis(2500),
        "closed after {took:?}, before the timeout"
    );
    // By the body deadline, not by the idle timeout (5 s), which would close it too.
    ensure!(
        took < Duration::from_millis(4500),
        "a stalled body was closed after {took:?}: by the idle timeout, not the body deadline"
    );

    // A keep-alive connection after one answered request, then silence: closed.
    let mut idle = tokio::net::TcpStream::connect(&addr).await?;
    idle.write_all(b"GET /_switchboard/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await?;
    ensure!(
        &first == b"HTTP/1.1 200",
        "health: {:?}",
        String::from_utf8_lossy(&first)
    );
    wait_closed(&mut idle, None, Duration::from_secs(15))
        .await
        .context("idle keep-alive connection")?;

    // A body declared over the route's limit (1 MiB by default) is refused before it is sent.
    let resp = reqwest::Client::new()
        .post(format!("{}/webchat/api/v1/session", env.bridge.base_url()))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await;
    if let Ok(resp) = resp {
        ensure!(
            resp.status() == 413,
            "2 MiB session body: {}",
            resp.status()
        );
    }

    ensure!(
        reqwest::get(&health).await?.status() == 200,
        "health after all that"
    );
    let log = env.bridge.log();
    for kind in ["header_timeout", "body_timeout"] {
        ensure!(log.contains(kind), "no {kind} refusal in the log");
    }
    Ok(())
}

/// More connections than `http.max_connections`: the extra one gets 503 with Retry-After at
/// once; when the others go, requests are served again. The refusals are logged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds() -> anyhow::Result<()> {
    let env = TestEnv::start(with_http(
        BridgeOptions::default(),
        json!({"max_connections": 6, "header_read_timeout": "30s"}),
    ))
    .await?;
    let addr = format!("127.0.0.1:{}", env.bridge.port());
    let health = format!("{}/_switchboard/health", env.bridge.base_url());
    let fresh = || reqwest::Client::builder().pool_max_idle_per_host(0).build();
    // Fill the cap with connections that were each served a request and stay open (kept
    // alive). Opening a connection is not enough: the rig's own idle keep-alive connections
    // hold slots too, and the slot of a connection just closed is freed only once the server
    // has seen the close. Full means refused twice, 200 ms apart; never more than six served.
    let mut held = Vec::new();
    let mut refused_in_a_row = 0;
    while refused_in_a_row < 2 {
        match hold_a_slot(&addr).await? {
            Some(stream) => {
                held.push(stream);
                refused_in_a_row = 0;
                ensure!(
                    held.len() <= 6,
                    "more than 6 connections were served at once"
                );
            }
            None => {
                refused_in_a_row += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    ensure!(!held.is_empty(), "no connection was served");
    let mut refused = 0;
    for _ in 0..3 {
        let resp = fresh()?.get(&health).send().await?;
        if resp.status() == 503 {
            ensure!(
                resp.headers().get("retry-after").is_some(),
                "503 without Retry-After"
            );
            refused += 1;
        }
    }
    ensure!(
        refused == 3,
        "{refused} of 3 requests over the cap were refused"
    );
    drop(held);
    rig::poll_until(
        "requests to be served again",
        Duration::from_secs(10),
        || async {
            let resp = fresh()?.get(&health).send().await?;
            Ok((resp.status() == 200).then_some(()))
        },
    )
    .await?;
    let log = env.bridge.log();
    let logged = log.matches("connection_cap").count();
    ensure!(
        logged == 1,
        "the connection cap refusals were logged {logged} times"
    );
    Ok(())
}

/// A connection to `addr` that was served a request and stays open (HTTP/1.1 keep-alive);
/// `None` when the server refused it for the cap.
async fn hold_a_slot(addr: &str) -> anyhow::Result<Option<tokio::net::TcpStream>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /_switchboard/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        ensure!(n > 0, "the server closed the connection without an answer");
        head.extend_from_slice(&buf[..n]);
    }
    let status = String::from_utf8_lossy(&head);
    if status.starts_with("HTTP/1.1 200") {
        return Ok(Some(stream));
    }
    ensure!(
        status.starts_with("HTTP/1.1 503"),
        "unexpected answer: {status}"
    );
    Ok(None)
}

// ----- the web chat's limits --------------------------------------------------------------------

/// Options with keys of `channels.webchat` set (merged into the rig's section).

/// A raw web chat client that says it comes from `addr` (the bridge trusts 127.0.0.1 as a proxy
/// in these tests, so `X-Forwarded-For` simulates many addresses).
struct RawVisitor {
    api: String,
    addr: String,
    token: Option<String>,
}

impl RawVisitor {
    fn new(env: &TestEnv, addr: &str) -> RawVisitor {
        RawVisitor {
            api: format!("{}/api/v1", env.webchat_url()),
            addr: addr.to_string(),
            token: None,
        }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let mut req = reqwest::Client::new()
            .post(format!("{}/{path}", self.api))
            .header("x-forwarded-for", &self.addr);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    /// `POST /session`; keeps the token when it was 200. The response's body is read only
    /// then, so a refusal keeps its headers for the caller.
    async fn session(&mut self, name: &str) -> anyhow::Result<Answer> {
        let resp = self
            .post("session")
            .json(&json!({"name": name}))
            .send()
            .await?;
        let answer = Answer::of(&resp);
        if answer.status() == 200 {
            let body: serde_json::Value = resp.json().await?;
            self.token = body["token"].as_str().map(str::to_string);
        }
        Ok(answer)
    }

    async fn say(&self, client_id: &str, text: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .post("messages")
            .json(&json!({"client_id": client_id, "text": text}))
            .send()
            .await?)
    }
}

/// The status and `Retry-After` of an answer.
struct Answer {
    status: u16,
    retry_after: Option<u64>,
}

impl Answer {
    fn of(resp: &reqwest::Response) -> Answer {
        Answer {
            status: resp.status().as_u16(),
            retry_after: resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok()),
        }
    }

    fn status(&self) -> u16 {
        self.status
    }
}

/// 429 with a `Retry-After` of at least a second.
fn is_refused_with_retry_after(resp: &impl Refusal) -> bool {
    let (status, retry_after) = resp.parts();
    status == 429 && retry_after.is_some_and(|s| s >= 1)
}

trait Refusal {
    fn parts(&self) -> (u16, Option<u64>);
}

impl Refusal for Answer {
    fn parts(&self) -> (u16, Option<u64>) {
        (self.status, self.retry_after)
    }
}

impl Refusal for reqwest::Response {
    fn parts(&self) -> (u16, Option<u64>) {
        let a = Answer::of(self);
        (a.status, a.retry_after)
    }
}

async fn webchat_limits_per_address_and_overall_hold(backend: Backend) -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default().backend(backend).webchat(json!({
        "trusted_proxies": ["127.0.0.1"],
        "sessions_per_address_per_minute": 4,
        "sessions_per_minute": 1000,
        "new_conversations_per_address_per_minute": 2,
        // Ten seconds' worth at once: five.
        "new_conversations_per_minute": 30,
        "event_streams_per_visitor": 2,
        "event_streams_total": 3,
    })))
    .await?;

    // Sessions per address: four, then 429 with Retry-After; another address is not affected.
    for i in 0..4 {
        let resp = RawVisitor::new(&env, "198.51.100.1")
            .session(&format!("S{i}"))
            .await?;
        ensure!(resp.status() == 200, "session {i}: {}", resp.status());
    }
    let fifth = RawVisitor::new(&env, "198.51.100.1").session("S4").await?;
    ensure!(
        is_refused_with_retry_after(&fifth),
        "fifth session: {}",
        fifth.status()
    );
    let other = RawVisitor::new(&env, "198.51.100.2").session("S5").await?;
    ensure!(other.status() == 200, "another address: {}", other.status());

    // New conversations per address: two from one address, the third is refused (the session
    // itself was fine) and its visitor may write once the limit allows.
    let mut accepted = Vec::new();
    // The overall limit refills one conversation every 2 s (30 a minute); from the first
    // accepted conversation on, each 2 s that pass may let one more through.
    let mut first_accepted: Option<std::time::Instant> = None;
    for i in 0..3 {
        let mut v = RawVisitor::new(&env, "203.0.113.1");
        ensure!(v.session(&format!("Flood A{i}")).await?.status() == 200);
        let resp = v.say("m1", &format!("flood A{i}")).await?;
        match i {
            0 | 1 => {
                ensure!(resp.status() == 200, "conversation A{i}: {}", resp.status());
                first_accepted.get_or_insert_with(std::time::Instant::now);
                accepted.push(format!("Flood A{i}"));
            }
            _ => ensure!(
                is_refused_with_retry_after(&resp),
                "third conversation from one address: {}",
                resp.status()
            ),
        }
    }
    // Overall: five at once; from fresh addresses, new conversations are accepted until the
    // limit refuses one (with Retry-After), and never more than five plus what the rate
    // refilled meanwhile (a loaded machine is slow between requests, never over the limit).
    let mut refused = false;
    for i in 0..20 {
        let mut v = RawVisitor::new(&env, &format!("192.0.2.{}", 10 + i));
        ensure!(v.session(&format!("Flood B{i}")).await?.status() == 200);
        let resp = v.say("m1", &format!("flood B{i}")).await?;
        if resp.status() == 200 {
            accepted.push(format!("Flood B{i}"));
            continue;
        }
        ensure!(
            is_refused_with_retry_after(&resp),
            "conversation B{i} past the overall limit: {}",
            resp.status()
        );
        refused = true;
        break;
    }
    let refilled = first_accepted
        .map(|t| t.elapsed().as_secs() / 2 + 1)
        .unwrap_or(0) as usize;
    ensure!(
        refused,
        "the overall limit never refused a new conversation"
    );
    ensure!(
        accepted.len() >= 5 && accepted.len() <= 5 + refilled,
        "{} conversations accepted overall; the limit allows 5 at once and {refilled} refilled",
        accepted.len()
    );
    // The team got exactly the accepted conversations, each with its message.
    for name in &accepted {
        let room = env.alice.wait_for_invite(name).await?;
        env.alice.join(&room).await?;
        let text = name.replacen("Flood", "flood", 1);
        env.alice.wait_for_text(&room, &text).await?;
    }
    let rooms = env.rooms_named("Flood").await?;
    ensure!(
        rooms.len() == accepted.len(),
        "{} rooms for {} accepted conversations",
        rooms.len(),
        accepted.len()
    );

    // Event streams: two per visitor, three in all.
    let mut v = RawVisitor::new(&env, "192.0.2.50");
    ensure!(v.session("Streamer").await?.status() == 200);
    let token = v.token.clone().context("token")?;
    let open = |token: String| {
        let url = format!("{}/events?token={token}", v.api);
        async move { reqwest::Client::new().get(url).send().await }
    };
    let s1 = open(token.clone()).await?;
    let s2 = open(token.clone()).await?;
    ensure!(s1.status() == 200 && s2.status() == 200, "two streams");
    let s3 = open(token.clone()).await?;
    ensure!(
        is_refused_with_retry_after(&s3),
        "third stream of one visitor: {}",
        s3.status()
    );
    let mut w = RawVisitor::new(&env, "192.0.2.51");
    ensure!(w.session("Streamer two").await?.status() == 200);
    let w_token = w.token.clone().context("token")?;
    let w1 = open(w_token.clone()).await?;
    ensure!(w1.status() == 200, "third stream overall");
    let w2 = open(w_token.clone()).await?;
    ensure!(
        is_refused_with_retry_after(&w2),
        "fourth stream overall: {}",
        w2.status()
    );
    // A stream that ends frees its place.
    drop(s1);
    rig::poll_until(
        "a closed stream to free its place",
        Duration::from_secs(20),
        || {
            let open = open(w_token.clone());
            async move { Ok((open.await?.status() == 200).then_some(())) }
        },
    )
    .await?;
    Ok(())
}

/// A flood of sessions that never write costs the store nothing: 50 new sessions (which also
/// read their history, resume, say they are typing and open event streams) leave no row in
/// the channel's state or logs, beyond the installation's one session key. Their tokens are
/// signed, so a forged or altered one is refused; their event streams are capped as stored
/// visitors' are. A visitor who writes is stored then, and their conversation works both ways.
async fn sessions_that_never_write_store_nothing_and_a_writer_is_stored(
    backend: Backend,
) -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default().backend(backend).webchat(json!({
        "trusted_proxies": ["127.0.0.1"],
        "event_streams_per_visitor": 2,
    })))
    .await?;
    let url = env.bridge.database_url().to_string();
    // Everything of the web chat's own but the installation's keys.
    let records = "SELECT COUNT(*) FROM channel_state WHERE channel = 'webchat'
                   AND key NOT IN ('session_key', 'proof_of_work_key')";
    let logs = "SELECT COUNT(*) FROM channel_log WHERE channel = 'webchat'";
    let inbox = "SELECT COUNT(*) FROM inbox WHERE channel = 'webchat'";
    let count = |sql: &'static str| rig::store_count(backend, &url, sql, &[]);
    let (records_before, logs_before) = (count(records).await?, count(logs).await?);

    let http = reqwest::Client::new();
    let mut silent = Vec::new();
    for i in 0..50 {
        let mut v = RawVisitor::new(&env, &format!("198.51.100.{}", i + 1));
        ensure!(v.session(&format!("Silent {i}")).await?.status() == 200);
        let token = v.token.clone().context("token")?;
        // What a page does without writing: history, resume after a reload, typing.
        let history = http
            .get(format!("{}/messages", v.api))
            .bearer_auth(&token)
            .send()
            .await?;
        ensure!(history.status() == 200, "history: {}", history.status());
        let body: serde_json::Value = history.json().await?;
        ensure!(
            body["events"] == json!([]),
            "history of a new visitor: {body}"
        );
        let resumed: serde_json::Value = v
            .post("session")
            .json(&json!({}))
            .send()
            .await?
            .json()
            .await?;
        ensure!(
            resumed["token"] == token.as_str(),
            "a reload did not resume the session: {resumed}"
        );
        let typing = v
            .post("typing")
            .json(&json!({"active": true}))
            .send()
            .await?;
        ensure!(typing.status() == 204, "typing: {}", typing.status());
        silent.push(v);
    }
    // Event streams of a visitor with no record: two, then 429.
    let stream = |token: &str| {
        http.get(format!("{}/events?token={token}", silent[0].api))
            .send()
    };
    let token = silent[0].token.clone().context("token")?;
    let (s1, s2) = (stream(&token).await?, stream(&token).await?);
    ensure!(s1.status() == 200 && s2.status() == 200, "two streams");
    let s3 = stream(&token).await?;
    ensure!(
        is_refused_with_retry_after(&s3),
        "third stream of a visitor with no record: {}",
        s3.status()
    );
    drop((s1, s2, s3));
    ensure!(
        count(records).await? == records_before && count(logs).await? == logs_before,
        "50 sessions that never wrote left {} records and {} log entries",
        count(records).await? - records_before,
        count(logs).await? - logs_before
    );
    ensure!(
        count(inbox).await? == 0,
        "silent sessions reached the inbox"
    );

    // Forged and altered tokens are refused.
    let (signed, _mac) = token.rsplit_once('.').context("a signed token")?;
    let unsigned = format!("{signed}.{}", "A".repeat(43));
    let mut altered = token.clone().into_bytes();
    let at = altered.len() / 3;
    altered[at] = if altered[at] == b'a' { b'b' } else { b'a' };
    let altered = String::from_utf8(altered)?;
    for bad in [unsigned.as_str(), altered.as_str(), "s1.e30.AAAA"] {
        let resp = http
            .get(format!("{}/messages", silent[0].api))
            .bearer_auth(bad)
            .send()
            .await?;
        ensure!(resp.status() == 401, "token {bad:?}: {}", resp.status());
        let resp = http
            .post(format!("{}/messages", silent[0].api))
            .bearer_auth(bad)
            .json(&json!({"client_id": "m1", "text": "forged"}))
            .send()
            .await?;
        ensure!(
            resp.status() == 401,
            "message with {bad:?}: {}",
            resp.status()
        );
    }
    // Turned away with a reason in the log (once a minute per kind, so a flood of forged
    // tokens does not flood the log).
    let log = env.bridge.log();
    ensure!(
        log.contains("refusal=\"webchat_session_token\""),
        "no refusal of the bad session tokens in the log"
    );

    // A visitor who writes is stored, for good, and the conversation works end to end.
    let writer = env.visitor("Wanda Writer", "wanda@example.com").await?;
    ensure!(
        count(records).await? == records_before,
        "the writer's session stored a record"
    );
    writer.send("Hello, I do write").await?;
    let stored = "SELECT COUNT(*) FROM channel_state WHERE channel = 'webchat'
                  AND (key LIKE 'visitor:%' OR key LIKE 'chat:%') AND expires_at IS NULL";
    ensure!(
        count(stored).await? == 2,
        "the writer's records: {}",
        count(stored).await?
    );
    let room = env.alice.wait_for_invite("Wanda Writer").await?;
    env.alice.join(&room).await?;
    env.alice.wait_for_text(&room, "I do write").await?;
    env.alice
        .send_text(&room, "Hello Wanda, how can I help?")
        .await?;
    writer.wait_for_agent_text("how can I help").await?;
    // The same token after a reload: the same visitor, now by their stored record.
    let resumed: serde_json::Value = http
        .post(format!("{}/session", silent[0].api))
        .bearer_auth(&writer.token)
        .json(&json!({}))
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        resumed["token"] == writer.token.as_str()
            && resumed["visitor_id"] == writer.visitor_id.as_str(),
        "the writer's session after a reload: {resumed}"
    );
    writer.send("A second message").await?;
    env.alice.wait_for_text(&room, "A second message").await?;
    let rooms = env.rooms_named("Silent").await?;
    ensure!(rooms.is_empty(), "silent sessions got rooms: {rooms:?}");
    Ok(())
}

/// Sessions in which nobody wrote expire: those that stored records (a name change) lose them,
/// those that never stored any have their tokens refused; a session whose visitor wrote is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sessions_expire_and_are_cleaned_up() -> anyhow::Result<()> {
    let mut env =
        TestEnv::start(BridgeOptions::default().webchat(json!({"silent_session_ttl_secs": 2})))
            .await?;
    let mut silent = Vec::new();
    for i in 0..5 {
        let mut v = RawVisitor::new(&env, "127.0.0.1");
        ensure!(v.session(&format!("Silent {i}")).await?.status() == 200);
        // Three of them change their name: that stores them (a session that only starts
        // stores nothing), still expiring since they never wrote.
        if i < 3 {
            let token = v.token.clone();
            ensure!(v.session(&format!("Renamed {i}")).await?.status() == 200);
            ensure!(v.token == token, "a name change gave a new token");
        }
        silent.push(v);
    }
    let mut writer = RawVisitor::new(&env, "127.0.0.1");
    ensure!(writer.session("Writer").await?.status() == 200);
    ensure!(writer.say("m1", "I did write").await?.status() == 200);
    let url = env.bridge.database_url().to_string();
    let expiring = "SELECT COUNT(*) FROM channel_state WHERE expires_at IS NOT NULL";
    let n = rig::store_count(Backend::Sqlite, &url, expiring, &[]).await?;
    ensure!(
        n == 6,
        "{n} expiring records for 3 stored silent sessions (2 each)"
    );
    // Their time runs out; housekeeping prunes at start.
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.bridge.restart().await?;
    rig::poll_until(
        "the silent sessions' records to go",
        Duration::from_secs(30),
        || async {
            let n = rig::store_count(Backend::Sqlite, &url, expiring, &[]).await?;
            Ok((n == 0).then_some(()))
        },
    )
    .await?;
    let history = |v: &RawVisitor| {
        reqwest::Client::new()
            .get(format!("{}/messages", v.api))
            .bearer_auth(v.token.clone().unwrap_or_default())
            .send()
    };
    for v in &silent {
        ensure!(
            history(v).await?.status() == 401,
            "a silent session still works"
        );
    }
    ensure!(
        history(&writer).await?.status() == 200,
        "the writer's session is gone"
    );
    Ok(())
}
