//! Smoke tests of the test rig itself, without the bridge: if these fail, every integration test
//! would fail for reasons that have nothing to do with Switchboard.
//!
//! - a Synapse starts with an appservice registration, makes users, and two real clients
//!   (matrix-sdk) create a room, invite, join, talk, reply, edit, redact, upload and download a
//!   file and exchange read receipts; Synapse survives a stop/start with its data;
//! - headless Chromium, driven through the Node driver, reads a local page, pierces a shadow
//!   root, types, presses Enter and picks a file;
//! - PostgreSQL hands out a fresh database;
//! - the fakes' server base logs every request, finds them, and a wait that times out lists the
//!   last ones.

mod fakes;
mod rig;

use std::time::{Duration, Instant};

use anyhow::Context;
use rig::{Browser, Operator, Synapse};

/// A registration with no URL (Synapse then pushes nothing) that claims `@smoke_*` users.
fn write_dummy_registration(dir: &std::path::Path) -> anyhow::Result<(std::path::PathBuf, String)> {
    let as_token = rig::random_hex(32);
    let yaml = format!(
        "id: smoke\nurl: null\nas_token: {as_token}\nhs_token: {}\nsender_localpart: smoke_bot\n\
         rate_limited: false\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@smoke_.*:localhost'\n  \
         aliases: []\n  rooms: []\n",
        rig::random_hex(32)
    );
    let path = dir.join("registration.yaml");
    std::fs::write(&path, yaml).context("writing the dummy registration")?;
    Ok((path, as_token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synapse_and_matrix_clients() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (registration, as_token) = write_dummy_registration(dir.path())?;

    let started = Instant::now();
    let mut synapse = Synapse::start(&registration).await?;
    eprintln!(
        "Synapse ready in {:?} (total incl. config generation {:?})",
        synapse.startup_time,
        started.elapsed()
    );

    let carol = synapse.register_user("carol", "carol-pw", true).await?;
    assert_eq!(carol, "@carol:localhost");
    let dave = synapse.register_user("dave", "dave-pw", false).await?;

    // The appservice registration was loaded: its token may act as a user in its namespace.
    let http = reqwest::Client::new();
    let whoami: serde_json::Value = http
        .get(format!(
            "{}/_matrix/client/v3/account/whoami?user_id=@smoke_bot:localhost",
            synapse.base_url()
        ))
        .bearer_auth(&as_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(whoami["user_id"], "@smoke_bot:localhost", "{whoami}");

    let c = Operator::login(&synapse.base_url(), "carol", "carol-pw").await?;
    let d = Operator::login(&synapse.base_url(), &dave, "dave-pw").await?;

    let room = c.create_room("Smoke test room", &[&dave]).await?;
    let hello = c.send_text(&room, "hello from carol").await?;
    let seen = c.wait_for_text(&room, "hello from carol").await?;
    assert_eq!(seen.event_id, hello);
    assert_eq!(seen.sender, carol);
    c.wait_for_state_event(&room, "m.room.name", "", |content| {
        content["name"] == "Smoke test room"
    })
    .await?;
    assert_eq!(
        c.room_name(&room).await?.as_deref(),
        Some("Smoke test room")
    );

    // Dave sees the invite by room name, joins, and sees the message sent before he joined.
    let joined = d.wait_for_invite("Smoke test").await?;
    assert_eq!(joined, room);
    let m = d
        .wait_for_message(&room, |m| m.body == "hello from carol")
        .await?;
    assert_eq!(m.event_id, hello);
    let members = c.joined_members(&room).await?;
    assert!(members.contains(&dave), "{members:?}");

    // Reply, HTML, edit, redaction, as the other side sees them.
    let reply = d.reply(&room, &hello, "hi carol").await?;
    let r = c.wait_for_message(&room, |m| m.event_id == reply).await?;
    assert_eq!(r.in_reply_to(), Some(hello.as_str()));
    let html = d.send_html(&room, "bold move", "<b>bold</b> move").await?;
    let h = c.wait_for_message(&room, |m| m.event_id == html).await?;
    assert_eq!(h.formatted_body.as_deref(), Some("<b>bold</b> move"));
    let edit = c.edit(&room, &hello, "hello, edited").await?;
    let e = d.wait_for_message(&room, |m| m.event_id == edit).await?;
    assert_eq!(e.replaces(), Some(hello.as_str()));
    assert_eq!(e.new_body(), Some("hello, edited"));
    d.redact(&room, &html, Some("smoke")).await?;
    c.wait_for_redaction(&room, &html).await?;

    // Files go through the media repository and come back byte for byte.
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let file = c
        .send_file(&room, "data.bin", "application/octet-stream", bytes.clone())
        .await?;
    let f = d.wait_for_message(&room, |m| m.event_id == file).await?;
    assert_eq!(f.msgtype, "m.file");
    assert_eq!(f.size(), Some(bytes.len() as u64));
    assert_eq!(f.mimetype(), Some("application/octet-stream"));
    assert_eq!(d.fetch_file(&f).await?, bytes);
    let png = c
        .send_file(&room, "pixel.png", "image/png", b"\x89PNG fake".to_vec())
        .await?;
    assert_eq!(
        d.wait_for_message(&room, |m| m.event_id == png)
            .await?
            .msgtype,
        "m.image"
    );

    // Read receipts travel.
    d.send_read_receipt(&room, &file).await?;
    c.wait_for_read_receipt(&room, &dave, &file).await?;

    // A homeserver outage: stop, start again on the same port with the same data.
    synapse.stop().await?;
    synapse.start_again().await?;
    eprintln!("Synapse restarted in {:?}", synapse.startup_time);
    let after = c.send_text(&room, "after the restart").await?;
    d.wait_for_message(&room, |m| m.event_id == after).await?;
    Ok(())
}

/// Serves one HTML page on a free loopback port (a tiny axum app) and returns its URL.
async fn serve_page(html: &'static str) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(html) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, task))
}

const PAGE: &str = r#"<!doctype html>
<html><head><title>rig smoke</title></head>
<body>
  <h1 id="title">Rig smoke page</h1>
  <div id="host"></div>
  <script>
    const root = document.getElementById('host').attachShadow({ mode: 'open' });
    root.innerHTML = `
      <ul class="log"></ul>
      <input class="compose" placeholder="Type">
      <input class="file" type="file">
      <p class="picked"></p>`;
    const input = root.querySelector('.compose');
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && input.value) {
        const li = document.createElement('li');
        li.className = 'msg';
        li.textContent = input.value;
        root.querySelector('.log').appendChild(li);
        input.value = '';
      }
    });
    root.querySelector('.file').addEventListener('change', (e) => {
      const f = e.target.files[0];
      root.querySelector('.picked').textContent = `${f.name} ${f.size}`;
    });
  </script>
</body></html>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_drives_a_local_page() -> anyhow::Result<()> {
    let (url, server) = serve_page(PAGE).await?;
    let mut b = Browser::launch().await?;
    eprintln!("Chromium {}", b.version);
    b.goto(&url).await?;
    assert_eq!(b.text("#title").await?, "Rig smoke page");
    assert_eq!(
        b.eval("document.title").await?,
        serde_json::json!("rig smoke")
    );

    // Inside the shadow root: type, press Enter, see the message appear.
    b.fill(".compose", "first").await?;
    b.press(".compose", "Enter").await?;
    b.type_text(".compose", "second").await?;
    b.press(".compose", "Enter").await?;
    b.wait_for_text(".msg", "second").await?;
    assert_eq!(b.count(".msg").await?, 2);
    assert_eq!(
        b.texts(".msg").await?,
        vec!["first".to_string(), "second".to_string()]
    );

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("note.txt");
    std::fs::write(&file, "twelve bytes")?;
    b.set_files(".file", &file).await?;
    b.wait_for_text(".picked", "note.txt 12").await?;

    // Errors come back as errors, not hangs.
    let err = b
        .wait_for(".nothing-here", None, Duration::from_millis(300))
        .await;
    assert!(err.is_err());

    b.viewport(390, 844).await?;
    let shot = dir.path().join("shot.png");
    b.screenshot(&shot).await?;
    assert!(std::fs::metadata(&shot)?.len() > 1000);
    b.reload().await?;
    assert_eq!(b.count(".msg").await?, 0);
    b.close().await?;

    // Dropped without close (a failing test): the driver, Chromium and the profile go away.
    let b2 = Browser::launch().await?;
    let profile = b2.profile_dir().context("profile dir")?.to_path_buf();
    assert!(profile.exists());
    drop(b2);
    assert!(
        !profile.exists(),
        "profile {} left behind",
        profile.display()
    );
    server.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hands_out_fresh_databases() -> anyhow::Result<()> {
    use sqlx::Connection;
    let a = rig::postgres::fresh_database_url().await?;
    let b = rig::postgres::fresh_database_url().await?;
    assert_ne!(a, b);
    let mut conn = sqlx::PgConnection::connect(&a).await?;
    sqlx::query("CREATE TABLE t (x INT)")
        .execute(&mut conn)
        .await?;
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(n, 0);
    conn.close().await?;
    Ok(())
}

/// The fakes' base: requests are logged as they came and with the status answered, looked up by
/// method and path, waited for; a wait that times out says what it waited for and lists the
/// last requests (so a failing channel test shows what the bridge did instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_server_logs_requests_and_says_what_came_instead() -> anyhow::Result<()> {
    use axum::routing::{get, post};
    use fakes::server::FakeServer;

    let bound = FakeServer::bind("Smoke").await?;
    let shared: std::sync::Arc<fakes::server::Shared<u32>> = bound.shared(0);
    let app = axum::Router::new()
        .route(
            "/hits",
            post(
                |axum::extract::State(s): axum::extract::State<
                    std::sync::Arc<fakes::server::Shared<u32>>,
                >| async move {
                    *s.lock() += 1;
                    s.wake();
                    (axum::http::StatusCode::CREATED, "counted")
                },
            ),
        )
        .route(
            "/teapot",
            get(|| async { axum::http::StatusCode::IM_A_TEAPOT }),
        )
        .with_state(std::sync::Arc::clone(&shared));
    anyhow::ensure!(shared.url() == bound.url(), "the state knows the URL");
    let server = bound.serve(app);

    let http = reqwest::Client::new();
    let hit = http
        .post(format!("{}/hits?n=1", server.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=1&b=two+words")
        .send()
        .await?;
    anyhow::ensure!(hit.status() == 201, "status {}", hit.status());
    let teapot = http.get(format!("{}/teapot", server.url())).send().await?;
    anyhow::ensure!(teapot.status() == 418, "status {}", teapot.status());

    let hits = server.calls("POST", "/hits");
    anyhow::ensure!(hits.len() == 1, "{hits:?}");
    let h = &hits[0];
    anyhow::ensure!(h.status == Some(201), "{h:?}");
    anyhow::ensure!(
        h.query_params() == vec![("n".to_owned(), "1".to_owned())],
        "{h:?}"
    );
    anyhow::ensure!(
        h.form()
            == vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "two words".to_owned())
            ],
        "{h:?}"
    );
    anyhow::ensure!(
        h.header("Content-Type") == Some("application/x-www-form-urlencoded"),
        "{h:?}"
    );
    anyhow::ensure!(server.calls("*", "/t*").len() == 1, "prefix lookup");
    anyhow::ensure!(server.calls("GET", "/hits").is_empty(), "method lookup");
    anyhow::ensure!(*shared.lock() == 1, "the handler's state");

    let found = server
        .wait_for_call(Duration::from_secs(5), |r| r.status == Some(418))
        .await?;
    anyhow::ensure!(found.path == "/teapot", "{found:?}");

    let started = Instant::now();
    let err = server
        .wait_for(
            "a request that never comes",
            Duration::from_millis(300),
            || server.calls("DELETE", "/hits").into_iter().next(),
        )
        .await
        .expect_err("nothing deletes");
    let text = format!("{err:#}");
    anyhow::ensure!(
        started.elapsed() < Duration::from_secs(5),
        "the deadline holds: {:?}",
        started.elapsed()
    );
    anyhow::ensure!(
        text.contains("a request that never comes")
            && text.contains("Smoke")
            && text.contains("POST /hits?n=1 -> 201 a=1&b=two+words")
            && text.contains("GET /teapot -> 418"),
        "the error lists the last requests: {text}"
    );
    Ok(())
}
