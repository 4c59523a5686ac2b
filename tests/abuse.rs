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

on_both_stores!(an_invite_from_a_non_operator_is_declined_and_an_operators_accepted,);

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
    ensure!(took >= Duration::from_millis(1500), "closed after {took:?}, before the timeout");

    // A body that stops after 10 of its 1000 bytes: closed after ~3 s.
    let mut stalled = tokio::net::TcpStream::connect(&addr).await?;
    stalled
        .write_all(b"POST /webchat/api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\": \"")
        .await?;
    let took = wait_closed(&mut stalled, None, Duration::from_secs(15))
        .await
        .context("stalled body")?;
    ensure!(took >= Duration::from_millis(2500), "closed after {took:?}, before the timeout");

    // A keep-alive connection after one answered request, then silence: closed.
    let mut idle = tokio::net::TcpStream::connect(&addr).await?;
    idle.write_all(b"GET /_switchboard/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await?;
    ensure!(&first == b"HTTP/1.1 200", "health: {:?}", String::from_utf8_lossy(&first));
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
        ensure!(resp.status() == 413, "2 MiB session body: {}", resp.status());
    }

    ensure!(reqwest::get(&health).await?.status() == 200, "health after all that");
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
    // Let the rig's own connections (health polls) go first: wait until health answers on a
    // fresh client whose connection closes after each request.
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
    };
    ensure!(fresh()?.get(&health).send().await?.status() == 200);
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(tokio::net::TcpStream::connect(&addr).await?);
    }
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
    ensure!(refused == 3, "{refused} of 3 requests over the cap were refused");
    drop(held);
    rig::poll_until("requests to be served again", Duration::from_secs(10), || async {
        let resp = fresh()?.get(&health).send().await?;
        Ok((resp.status() == 200).then_some(()))
    })
    .await?;
    let log = env.bridge.log();
    let logged = log.matches("connection_cap").count();
    ensure!(logged == 1, "the connection cap refusals were logged {logged} times");
    Ok(())
}
