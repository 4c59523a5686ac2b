//! Bad input, end to end: malformed, oversized, wrongly encoded and hostile requests against the
//! real `switchboard` binary and a real Synapse, from both sides — the web chat API a stranger's
//! browser calls, and the appservice transaction endpoint.
//!
//! Every hostile request must get a clear error (a status code and a JSON body naming the
//! problem) and affect nothing else: after each group, the earlier messages are intact on both
//! sides and a normal message still flows both ways. The parsers these requests reach are also
//! fuzzed (`fuzz/`, run by `scripts/fuzz.sh`); these tests check what the fuzzers cannot see:
//! status codes, limits enforced while reading, the store, and what an operator finally sees.

#[macro_use]
mod rig;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use reqwest::Method;
use rig::{Backend, BridgeOptions, TestEnv, Visitor};
use serde_json::{json, Value};

on_both_stores!(
    malformed_oversized_and_wrongly_encoded_api_bodies_get_clear_errors,
    hostile_appservice_transactions_are_refused_or_skipped_without_harm,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_and_html_from_a_visitor_arrive_in_matrix_as_plain_text() -> anyhow::Result<()> {
    script_and_html_from_a_visitor(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_in_file_names_are_shown_as_safe_names() -> anyhow::Result<()> {
    path_tricks_in_file_names(Backend::Sqlite).await
}

// ----- helpers -------------------------------------------------------------------------------

/// A visitor who has written once, with the operator (alice) joined to the portal and one answer
/// delivered: the "earlier messages" every test later checks are intact.
struct Conversation {
    visitor: Visitor,
    room: String,
    /// Texts that must stay in the room and in the visitor's transcript.
    earlier: Vec<String>,
}

async fn open_conversation(env: &TestEnv, name: &str) -> anyhow::Result<Conversation> {
    let visitor = env
        .visitor(name, &format!("{}@example.com", rig::random_hex(4)))
        .await?;
    let first = format!("first message from {name}");
    visitor.send(&first).await?;
    let room = env.alice.wait_for_invite(name).await?;
    env.alice.wait_for_text(&room, &first).await?;
    let answer = format!("first answer to {name}");
    env.alice.send_text(&room, &answer).await?;
    visitor.wait_for_agent_text(&answer).await?;
    Ok(Conversation {
        visitor,
        room,
        earlier: vec![first, answer],
    })
}

/// Nothing was lost or broken: the earlier messages are still there on both sides, and a new
/// message goes visitor → room and operator → visitor.
async fn still_works(env: &TestEnv, c: &Conversation, after: &str) -> anyhow::Result<()> {
    let history = c.visitor.history(0).await?;
    for text in &c.earlier {
        ensure!(
            history
                .iter()
                .any(|e| e["type"] == "message" && e["text"] == text.as_str()),
            "after {after}: {text:?} is missing from the visitor's transcript: {history:?}"
        );
        ensure!(
            env.alice.messages(&c.room).iter().any(|m| &m.body == text),
            "after {after}: {text:?} is missing from the room"
        );
    }
    let tag = rig::random_hex(3);
    let out = format!("visitor still writes after {after} ({tag})");
    c.visitor
        .send(&out)
        .await
        .with_context(|| format!("after {after}"))?;
    env.alice
        .wait_for_text(&c.room, &out)
        .await
        .with_context(|| format!("after {after}\n{}", env.logs()))?;
    let back = format!("operator still answers after {after} ({tag})");
    env.alice.send_text(&c.room, &back).await?;
    c.visitor
        .wait_for_agent_text(&back)
        .await
        .with_context(|| format!("after {after}\n{}", env.logs()))?;
    Ok(())
}

/// Status and JSON body of a response; a body that is not JSON is an error (every refusal must
/// explain itself).
async fn status_and_json(resp: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = resp.status().as_u16();
    let text = resp.text().await.context("reading the response body")?;
    if text.is_empty() {
        return Ok((status, Value::Null));
    }
    let body = serde_json::from_str(&text)
        .with_context(|| format!("HTTP {status}, body is not JSON: {text:.300}"))?;
    Ok((status, body))
}

/// A web chat refusal: `status` and `{"error": code, "message": "<non-empty>"}`.
fn expect_api_error(what: &str, got: &(u16, Value), status: u16, code: &str) -> anyhow::Result<()> {
    let (got_status, body) = got;
    ensure!(
        *got_status == status && body["error"] == code,
        "{what}: expected {status} {code}, got {got_status} {body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    ensure!(!message.is_empty(), "{what}: no message in {body}");
    Ok(())
}

/// An appservice refusal: `status` and `{"errcode": code, "error": "<non-empty>"}`.
fn expect_matrix_error(
    what: &str,
    got: &(u16, Value),
    status: u16,
    code: &str,
) -> anyhow::Result<()> {
    let (got_status, body) = got;
    ensure!(
        *got_status == status && body["errcode"] == code,
        "{what}: expected {status} {code}, got {got_status} {body}"
    );
    ensure!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: no error text in {body}"
    );
    Ok(())
}

/// The peak resident memory of the bridge process (kB), found by its config path on the command
/// line; `None` when /proc cannot tell.
fn bridge_peak_rss_kb(env: &TestEnv) -> Option<u64> {
    let config = env.bridge.config_path();
    let config = config.to_str()?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline).contains(config) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        return line.split_whitespace().nth(1)?.parse().ok();
    }
    None
}

/// Send a body far over a limit. The server answers as soon as the limit is passed, without
/// reading the rest; a client still writing may then see the connection closed instead of the
/// answer. Either is fine — the point is that the server refuses quickly — but an answer, when
/// there is one, must be the expected refusal.
async fn send_oversized(req: reqwest::RequestBuilder) -> anyhow::Result<Option<(u16, Value)>> {
    match req.send().await {
        Ok(resp) => Ok(Some(status_and_json(resp).await?)),
        Err(e) if e.is_request() || e.is_body() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

// ----- the web chat API ----------------------------------------------------------------------

async fn script_and_html_from_a_visitor(backend: Backend) -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default().backend(backend)).await?;
    // Controls and a right-to-left override are removed; the markup stays, as text.
    let raw_name = "<img src=x onerror=alert(1)>Eve\u{202E}\u{7} <b>Hacker</b>";
    let name = "<img src=x onerror=alert(1)>Eve <b>Hacker</b>";
    let visitor = env.visitor(raw_name, "eve@example.com").await?;
    let hostile = [
        (
            "<script>alert(\"pwned\")</script>",
            "<script>alert(\"pwned\")</script>",
        ),
        (
            "<a href=\"javascript:alert(1)\">click</a> <img src=x onerror=alert(1)>",
            "<a href=\"javascript:alert(1)\">click</a> <img src=x onerror=alert(1)>",
        ),
        (
            "</div><iframe src=\"https://evil.example\"></iframe><style>*{display:none}</style>",
            "</div><iframe src=\"https://evil.example\"></iframe><style>*{display:none}</style>",
        ),
        (
            "**bold?** _no_ [link](javascript:alert(1))",
            "**bold?** _no_ [link](javascript:alert(1))",
        ),
        (
            "line one\r\nline two\u{0}\u{1b}[31m red",
            "line one\nline two[31m red",
        ),
        (
            "{{constructor.constructor('alert(1)')()}} ${7*7} %s%n",
            "{{constructor.constructor('alert(1)')()}} ${7*7} %s%n",
        ),
    ];
    for (sent, _) in &hostile {
        visitor
            .send(sent)
            .await
            .with_context(|| format!("sending {sent:?}"))?;
    }
    let room = env.alice.wait_for_invite("Eve <b>Hacker</b>").await?;
    for (_, expected) in &hostile {
        let m = env
            .alice
            .wait_for_message(&room, |m| m.body == *expected)
            .await?;
        ensure!(
            m.msgtype == "m.text",
            "{expected:?} arrived as {}",
            m.msgtype
        );
        ensure!(
            m.formatted_body.is_none() && m.content.get("format").is_none(),
            "{expected:?} got formatting: {}",
            m.content
        );
        ensure!(m.sender.starts_with("@sb_webchat_"), "sent by the ghost");
    }
    // The ghost's name and the room's name are the cleaned name, as plain text.
    let ghost = env
        .alice
        .wait_for_message(&room, |m| m.sender.starts_with("@sb_webchat_"))
        .await?
        .sender;
    let members = env.alice.members(&room).await?;
    let ghost_name = members
        .iter()
        .find(|(id, _)| *id == ghost)
        .map(|(_, n)| n.clone());
    ensure!(
        ghost_name.as_deref() == Some(name),
        "ghost display name {ghost_name:?}"
    );
    ensure!(env.alice.room_name(&room).await?.as_deref() == Some(&format!("{name} (webchat)")[..]));

    // The visitor's own transcript keeps the text as sent (cleaned), never as HTML.
    let history = visitor.history(0).await?;
    for (_, expected) in &hostile {
        let e = history
            .iter()
            .find(|e| e["text"] == *expected)
            .with_context(|| format!("{expected:?} in {history:?}"))?;
        ensure!(e.get("html").is_none(), "visitor message carries html: {e}");
    }

    // The other way: an operator's hostile HTML reaches the visitor sanitised, the text intact.
    env.alice
        .send_html(
            &room,
            "plain <script>alert(1)</script>",
            "<b>ok</b><script>alert(1)</script><a href=\"javascript:alert(1)\">x</a><img src=x onerror=alert(1)><p onclick=\"alert(1)\">p</p>",
        )
        .await?;
    let got = visitor.wait_for_agent_text("plain <script>").await?;
    ensure!(got["text"] == "plain <script>alert(1)</script>", "{got}");
    let html = got["html"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    ensure!(html.contains("<b>ok</b>"), "{html}");
    for bad in ["<script", "javascript:", "onerror", "onclick", "<img"] {
        ensure!(!html.contains(bad), "{bad} reached the visitor: {html}");
    }

    let c = Conversation {
        visitor,
        room,
        earlier: hostile.iter().map(|(_, e)| e.to_string()).collect(),
    };
    still_works(&env, &c, "script injection").await
}

async fn malformed_oversized_and_wrongly_encoded_api_bodies_get_clear_errors(
    backend: Backend,
) -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default().backend(backend)).await?;
    let c = open_conversation(&env, "Mallory Bodies").await?;
    let v = &c.visitor;
    let base = format!("{}/api/v1", env.webchat_url());
    let client = http();
    let before_rss = bridge_peak_rss_kb(&env);

    // A 20 MB message: refused while reading (the limit is 256 KiB), quickly, without buffering.
    let huge = format!(
        "{{\"client_id\": \"huge\", \"text\": \"{}\"}}",
        "A".repeat(20 * 1024 * 1024)
    );
    let started = Instant::now();
    let req = v
        .request(Method::POST, "messages")
        .header("content-type", "application/json")
        .body(huge);
    if let Some(got) = send_oversized(req).await? {
        expect_api_error("20 MB message", &got, 413, "body_too_large")?;
    }
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "20 MB body took {:?}",
        started.elapsed()
    );
    // Just over the limit, the client finishes sending before the answer: always the JSON error.
    let over = json!({"client_id": "over", "text": "B".repeat(256 * 1024)}).to_string();
    let resp = v
        .request(Method::POST, "messages")
        .header("content-type", "application/json")
        .body(over)
        .send()
        .await?;
    expect_api_error(
        "a body just over 256 KiB",
        &status_and_json(resp).await?,
        413,
        "body_too_large",
    )?;
    if let (Some(before), Some(after)) = (before_rss, bridge_peak_rss_kb(&env)) {
        ensure!(
            after < before + 16 * 1024,
            "peak memory grew from {before} kB to {after} kB on a refused 20 MB body"
        );
    }

    // Bodies that are not what they should be. (body bytes, content type, status, code)
    // Nesting past serde_json's recursion limit (128) in a field we read is refused; in a field we
    // ignore it is skipped without recursion (see the unknown-fields message below).
    let deep = format!(
        "{{\"client_id\": \"deep\", \"text\": {}\"x\"{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        (
            "text over 10 000 characters",
            json!({"client_id": "long", "text": "é".repeat(10_001)})
                .to_string()
                .into_bytes(),
            "application/json",
            413,
            "text_too_long",
        ),
        (
            "invalid UTF-8",
            b"{\"client_id\": \"utf\", \"text\": \"caf\xe9 \xff\xfe\"}".to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "Latin-1 declared",
            b"{\"client_id\": \"latin\", \"text\": \"caf\xe9\"}".to_vec(),
            "application/json; charset=iso-8859-1",
            400,
            "invalid_json",
        ),
        (
            "UTF-16",
            "{\"client_id\": \"u16\", \"text\": \"hi\"}"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect(),
            "application/json; charset=utf-16le",
            400,
            "invalid_json",
        ),
        (
            "a form body",
            b"client_id=form&text=hello".to_vec(),
            "application/x-www-form-urlencoded",
            400,
            "invalid_json",
        ),
        (
            "multipart to /messages",
            b"--x\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhi\r\n--x--\r\n".to_vec(),
            "multipart/form-data; boundary=x",
            400,
            "invalid_json",
        ),
        (
            "XML",
            b"<message><text>hi</text></message>".to_vec(),
            "text/xml",
            400,
            "invalid_json",
        ),
        (
            "deeply nested JSON",
            deep.into_bytes(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "JSON null",
            b"null".to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "a JSON string",
            b"\"hello\"".to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "a number for client_id",
            br#"{"client_id": 5, "text": "x"}"#.to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "an array for text",
            br#"{"client_id": "arr", "text": ["x"]}"#.to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "no client_id",
            br#"{"text": "x"}"#.to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "a duplicated key",
            br#"{"client_id": "a", "client_id": "b", "text": "x"}"#.to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "truncated JSON",
            br#"{"client_id": "trunc", "text": "x"#.to_vec(),
            "application/json",
            400,
            "invalid_json",
        ),
        (
            "client_id of 65 characters",
            json!({"client_id": "x".repeat(65), "text": "x"})
                .to_string()
                .into_bytes(),
            "application/json",
            400,
            "invalid_client_id",
        ),
        (
            "client_id of 10 KB",
            json!({"client_id": "x".repeat(10_000), "text": "x"})
                .to_string()
                .into_bytes(),
            "application/json",
            400,
            "invalid_client_id",
        ),
        (
            "client_id with a path",
            json!({"client_id": "../../etc/passwd", "text": "x"})
                .to_string()
                .into_bytes(),
            "application/json",
            400,
            "invalid_client_id",
        ),
        (
            "client_id with NUL",
            json!({"client_id": "a\u{0}b", "text": "x"})
                .to_string()
                .into_bytes(),
            "application/json",
            400,
            "invalid_client_id",
        ),
        (
            "only control characters",
            json!({"client_id": "ctl", "text": "\u{0}\u{1}\u{7f} \r\n"})
                .to_string()
                .into_bytes(),
            "application/json",
            400,
            "empty_message",
        ),
        (
            "reply_to with NUL",
            json!({"client_id": "nul-reply", "text": "x", "reply_to": "v.\u{0}"})
                .to_string()
                .into_bytes(),
            "application/json",
            422,
            "unknown_reply_target",
        ),
        (
            "reply_to of 100 KB",
            json!({"client_id": "long-reply", "text": "x", "reply_to": "a".repeat(100_000)})
                .to_string()
                .into_bytes(),
            "application/json",
            422,
            "unknown_reply_target",
        ),
    ];
    for (what, body, content_type, status, code) in cases {
        let resp = v
            .request(Method::POST, "messages")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        expect_api_error(what, &status_and_json(resp).await?, status, code)?;
    }

    // Unknown fields are ignored — even 100 000 levels deep — and "html" in particular does not
    // make the text HTML.
    let unknown = json!({
        "client_id": "unknown-fields", "text": "unknown fields are ignored",
        "html": "<script>alert(1)</script>", "format": "org.matrix.custom.html", "admin": true,
        "__proto__": {"polluted": 1}, "from": "agent", "deep": "DEEP",
    })
    .to_string()
    .replace(
        "\"DEEP\"",
        &format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
    );
    let resp = v
        .request(Method::POST, "messages")
        .header("content-type", "application/json")
        .body(unknown)
        .send()
        .await?;
    let (status, accepted) = status_and_json(resp).await?;
    ensure!(status == 200, "unknown fields: {status} {accepted}");
    let id = accepted["id"].as_str().unwrap_or_default().to_string();
    let m = env
        .alice
        .wait_for_text(&c.room, "unknown fields are ignored")
        .await?;
    ensure!(
        m.formatted_body.is_none() && m.sender.starts_with("@sb_webchat_"),
        "{}",
        m.event
    );
    let mine = v.wait_for_event(|e| e["id"] == id.as_str()).await?;
    ensure!(
        mine["from"] == "visitor" && mine.get("html").is_none(),
        "{mine}"
    );

    // The other endpoints.
    let other: Vec<(&str, Method, String, Vec<u8>, u16, &str)> = vec![
        (
            "session with a number for name",
            Method::POST,
            "session".into(),
            br#"{"name": 5}"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "session with markup for e-mail",
            Method::POST,
            "session".into(),
            br#"{"email": "<script>@x.com"}"#.to_vec(),
            422,
            "invalid_email",
        ),
        (
            "session, nested",
            Method::POST,
            "session".into(),
            format!(
                "{{\"name\": {}1{}}}",
                "{\"a\":".repeat(5000),
                "}".repeat(5000)
            )
            .into_bytes(),
            400,
            "invalid_json",
        ),
        (
            "typing with a string",
            Method::POST,
            "typing".into(),
            br#"{"active": "yes"}"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "typing, invalid UTF-8",
            Method::POST,
            "typing".into(),
            b"\xff\xfe\xfd".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "read of a NUL id",
            Method::POST,
            "read".into(),
            json!({"up_to": "a.\u{0}"}).to_string().into_bytes(),
            404,
            "not_found",
        ),
        (
            "read of a 100 KB id",
            Method::POST,
            "read".into(),
            json!({"up_to": "a".repeat(100_000)})
                .to_string()
                .into_bytes(),
            404,
            "not_found",
        ),
        (
            "read of the visitor's own message",
            Method::POST,
            "read".into(),
            json!({"up_to": id}).to_string().into_bytes(),
            404,
            "not_found",
        ),
        (
            "edit with no text",
            Method::PATCH,
            format!("messages/{id}"),
            b"{}".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "edit to blank",
            Method::PATCH,
            format!("messages/{id}"),
            br#"{"text": " \u0000 "}"#.to_vec(),
            400,
            "empty_message",
        ),
        (
            "edit of a NUL id",
            Method::PATCH,
            "messages/%00".into(),
            br#"{"text": "x"}"#.to_vec(),
            404,
            "not_found",
        ),
        (
            "edit of a path",
            Method::PATCH,
            "messages/..%2F..%2Fetc%2Fpasswd".into(),
            br#"{"text": "x"}"#.to_vec(),
            404,
            "not_found",
        ),
        (
            "delete of a NUL id",
            Method::DELETE,
            "messages/v.%00".into(),
            Vec::new(),
            404,
            "not_found",
        ),
        (
            "JSON to the upload",
            Method::POST,
            "files".into(),
            br#"{"file": "x"}"#.to_vec(),
            400,
            "invalid_multipart",
        ),
        (
            "history after a word",
            Method::GET,
            "messages?after=abc".into(),
            Vec::new(),
            400,
            "invalid_query",
        ),
        (
            "history limit overflow",
            Method::GET,
            "messages?limit=99999999999999999999999".into(),
            Vec::new(),
            400,
            "invalid_query",
        ),
        (
            "download of a path",
            Method::GET,
            "files/..%2F..%2Fetc%2Fpasswd".into(),
            Vec::new(),
            404,
            "not_found",
        ),
        (
            "download of a NUL id",
            Method::GET,
            "files/%00".into(),
            Vec::new(),
            404,
            "not_found",
        ),
        (
            "an unknown endpoint",
            Method::GET,
            "..%2F..%2F..%2Fetc%2Fpasswd".into(),
            Vec::new(),
            404,
            "not_found",
        ),
    ];
    for (what, method, path, body, status, code) in other {
        let mut req = v
            .request(method, &path)
            .header("content-type", "application/json");
        if !body.is_empty() {
            req = req.body(body);
        }
        expect_api_error(
            what,
            &status_and_json(req.send().await?).await?,
            status,
            code,
        )?;
    }

    // Tokens: an absurd one is simply unknown.
    for token in [
        "x".repeat(10_000),
        "' OR 1=1 --".into(),
        "../../etc/passwd".into(),
    ] {
        let resp = client
            .get(format!("{base}/messages"))
            .bearer_auth(&token)
            .send()
            .await?;
        expect_api_error(
            "odd token",
            &status_and_json(resp).await?,
            401,
            "unauthorized",
        )?;
    }

    // A session with a 10 KB name and padded e-mail: cleaned and cut, not refused.
    let resp = client
        .post(format!("{base}/session"))
        .json(
            &json!({"name": format!("  {}  ", "N".repeat(10_000)), "email": "  ann@example.com  "}),
        )
        .send()
        .await?;
    let (status, body) = status_and_json(resp).await?;
    ensure!(
        status == 200 && body["name"].as_str().map(|n| n.chars().count()) == Some(80),
        "{status} {body}"
    );
    ensure!(body["email"] == "ann@example.com", "{body}");

    // Of all that, only the unknown-fields message was accepted.
    let history = c.visitor.history(0).await?;
    let accepted: Vec<&Value> = history
        .iter()
        .filter(|e| e["type"] == "message" && e["from"] == "visitor")
        .collect();
    ensure!(
        accepted.len() == 2 && accepted[1]["id"] == id.as_str(),
        "exactly the first and the unknown-fields message were accepted: {accepted:?}"
    );
    let mut c = c;
    c.earlier.push("unknown fields are ignored".into());
    still_works(&env, &c, "malformed API bodies").await
}

/// A multipart body with one `file` part whose `Content-Disposition` is written raw.
fn raw_upload(filename_param: &[u8], data: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("hostile{}", rig::random_hex(8));
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; ").as_bytes(),
    );
    body.extend_from_slice(filename_param);
    body.extend_from_slice(b"\r\nContent-Type: text/plain\r\n\r\n");
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Is this a name safe to show and to save: one path component, no controls, not hidden?
/// The channel kit's rule for file names (`switchboard_kit::file_name`), restated.
fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['/', '\\', '<', '>', ':', '"', '|', '?', '*'])
        && !name
            .chars()
            .any(|c| c.is_control() || ('\u{202A}'..='\u{202E}').contains(&c))
        && !name.starts_with('.')
        && !name.ends_with(['.', ' '])
        && name.chars().count() <= 200
        && name.len() <= 255
}

async fn path_tricks_in_file_names(backend: Backend) -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default().backend(backend)).await?;
    let c = open_conversation(&env, "Mallory Files").await?;
    let long = format!("{}.pdf", "a".repeat(10_000));
    // (filename parameter as sent, the name the room must show; None = any safe name, or a 400)
    let cases: Vec<(Vec<u8>, Option<String>)> = vec![
        (
            b"filename=\"../../etc/passwd\"".to_vec(),
            Some("passwd".into()),
        ),
        (b"filename=\"/etc/shadow\"".to_vec(), Some("shadow".into())),
        (b"filename=\"C:\\\\x\\\\y.txt\"".to_vec(), None),
        (b"filename=\"..\\\\..\\\\boot.ini\"".to_vec(), None),
        (b"filename=\"..\"".to_vec(), Some("file".into())),
        (b"filename=\".htaccess\"".to_vec(), Some("htaccess".into())),
        (b"filename=\"/\"".to_vec(), Some("file".into())),
        (
            "filename=\"invoice\u{202E}fdp.exe\"".as_bytes().to_vec(),
            Some("invoicefdp.exe".into()),
        ),
        (
            b"filename=\"tab\there.txt\"".to_vec(),
            Some("tabhere.txt".into()),
        ),
        (b"filename=\"nul\x00byte.txt\"".to_vec(), None),
        (
            b"filename=\"new\r\nContent-Type: text/html\r\n.txt\"".to_vec(),
            None,
        ),
        (
            format!("filename=\"{long}\"").into_bytes(),
            Some(format!("{}.pdf", "a".repeat(196))),
        ),
        (b"filename*=UTF-8''..%2F..%2Fsecret.txt".to_vec(), None),
        (
            b"filename=\"<img src=x onerror=alert(1)>.png\"".to_vec(),
            Some("_img src=x onerror=alert(1)_.png".into()),
        ),
    ];
    for (param, expected) in &cases {
        let shown = String::from_utf8_lossy(param).into_owned();
        let mark = env.alice.mark();
        let (content_type, body) = raw_upload(param, b"hello, file");
        let resp = c
            .visitor
            .request(Method::POST, "files")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        let (status, reply) = status_and_json(resp).await.with_context(|| shown.clone())?;
        if status == 400 && expected.is_none() {
            expect_api_error(&shown, &(status, reply), 400, "invalid_multipart")?;
            continue;
        }
        ensure!(status == 200, "{shown}: HTTP {status} {reply}");
        let id = reply["id"].as_str().context("message id")?.to_string();
        let m = env
            .alice
            .wait_for_message_after(&c.room, mark, &format!("the file of {shown}"), |m| {
                m.msgtype == "m.file"
            })
            .await?;
        let name = m.filename().to_string();
        ensure!(
            is_safe_name(&name) && is_safe_name(&m.body),
            "{shown}: the room shows {name:?} / {:?}",
            m.body
        );
        if let Some(expected) = expected {
            ensure!(
                &name == expected,
                "{shown}: the room shows {name:?}, expected {expected:?}"
            );
        }
        // The visitor's transcript and the download agree, and the header is well-formed.
        let entry = c.visitor.wait_for_event(|e| e["id"] == id.as_str()).await?;
        let attachment = &entry["attachments"][0];
        ensure!(
            attachment["name"] == name.as_str(),
            "{shown}: transcript has {}",
            attachment["name"]
        );
        let url = attachment["url"].as_str().context("download url")?;
        let full = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}{url}", env.bridge.base_url())
        };
        let download = http()
            .get(&full)
            .bearer_auth(&c.visitor.token)
            .send()
            .await?;
        ensure!(
            download.status() == 200,
            "{shown}: download {}",
            download.status()
        );
        let disposition = download
            .headers()
            .get("content-disposition")
            .context("content-disposition")?
            .to_str()?
            .to_string();
        ensure!(
            disposition.starts_with("attachment; filename=\"")
                && !disposition.contains(['/', '\\']),
            "{disposition}"
        );
        ensure!(download.bytes().await?.as_ref() == b"hello, file");
    }

    // Operator → visitor: the names an operator's client sends are cleaned too.
    for (sent, expected) in [
        ("../../etc/shadow", "shadow"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("\u{202E}gpj.exe", "gpj.exe"),
    ] {
        env.alice
            .send_file(
                &c.room,
                sent,
                "application/octet-stream",
                b"operator bytes".to_vec(),
            )
            .await?;
        let got = c
            .visitor
            .wait_for_event_described(&format!("the operator's file {sent:?}"), |e| {
                e["from"] == "agent" && e["attachments"][0]["name"] == expected
            })
            .await;
        if let Err(e) = got {
            let names: Vec<Value> = c
                .visitor
                .history(0)
                .await?
                .iter()
                .map(|e| e["attachments"].clone())
                .collect();
            return Err(e.context(format!("attachments seen: {names:?}")));
        }
    }
    still_works(&env, &c, "file name tricks").await
}

// ----- the appservice endpoint ---------------------------------------------------------------

async fn hostile_appservice_transactions_are_refused_or_skipped_without_harm(
    backend: Backend,
) -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default().backend(backend)).await?;
    let c = open_conversation(&env, "Mallory Server").await?;
    let registration = env.bridge.registration()?;
    let hs_token = registration["hs_token"]
        .as_str()
        .context("hs_token")?
        .to_string();
    let client = http();
    let url = |txn: &str| {
        format!(
            "{}/_matrix/app/v1/transactions/{txn}",
            env.bridge.base_url()
        )
    };
    let put = |txn: &str, body: Vec<u8>| {
        client
            .put(url(txn))
            .bearer_auth(&hs_token)
            .header("content-type", "application/json")
            .body(body)
    };
    let n = std::sync::atomic::AtomicU32::new(0);
    let txn = || {
        format!(
            "hostile-{}-{}",
            rig::random_hex(4),
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        )
    };

    // Without the token, the body is not even read.
    let resp = client.put(url(&txn())).body("{}").send().await?;
    expect_matrix_error(
        "no token",
        &status_and_json(resp).await?,
        401,
        "M_UNAUTHORIZED",
    )?;
    let started = Instant::now();
    if let Some(got) =
        send_oversized(client.put(url(&txn())).body(vec![b' '; 50 * 1024 * 1024])).await?
    {
        expect_matrix_error("no token, 50 MB", &got, 401, "M_UNAUTHORIZED")?;
    }
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "an unauthenticated 50 MB body took {:?}",
        started.elapsed()
    );
    let resp = client
        .put(url(&txn()))
        .bearer_auth("wrong")
        .body("{}")
        .send()
        .await?;
    expect_matrix_error(
        "wrong token",
        &status_and_json(resp).await?,
        403,
        "M_FORBIDDEN",
    )?;

    // Bodies that are not a transaction.
    let deep = format!(
        "{{\"events\": [{}{}]}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"this is not json".to_vec()),
        ("empty", Vec::new()),
        (
            "invalid UTF-8",
            b"{\"events\": [{\"event_id\": \"$\xff\xfe\"}]}".to_vec(),
        ),
        (
            "UTF-16",
            "{\"events\": []}"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect(),
        ),
        (
            "events not an array",
            br#"{"events": {"event_id": "$x"}}"#.to_vec(),
        ),
        (
            "ephemeral not an array",
            br#"{"events": [], "ephemeral": "typing"}"#.to_vec(),
        ),
    ];
    for (what, body) in bad {
        let resp = put(&txn(), body).send().await?;
        expect_matrix_error(what, &status_and_json(resp).await?, 400, "M_NOT_JSON")?;
    }

    // Over the limit (64 MiB): refused while reading, with a JSON error.
    let started = Instant::now();
    if let Some(got) = send_oversized(put(&txn(), vec![b' '; 100 * 1024 * 1024])).await? {
        expect_matrix_error("100 MiB transaction", &got, 413, "M_TOO_LARGE")?;
    }
    let resp = put(&txn(), vec![b' '; 64 * 1024 * 1024 + 16 * 1024])
        .send()
        .await?;
    expect_matrix_error(
        "a transaction just over 64 MiB",
        &status_and_json(resp).await?,
        413,
        "M_TOO_LARGE",
    )?;
    ensure!(
        started.elapsed() < Duration::from_secs(30),
        "oversized transactions took {:?}",
        started.elapsed()
    );

    // A big but legitimate transaction: 100 events of ~60 KB (about 6 MB, three times axum's
    // default body limit) in a room that is not a portal, then one operator message in the
    // portal. All of it is accepted and the operator's message is relayed.
    let operator = "@alice:localhost";
    let valid = |event_id: &str, text: &str| {
        json!({
            "type": "m.room.message", "event_id": event_id, "room_id": c.room, "sender": operator,
            "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": text},
        })
    };
    let mut events: Vec<Value> = (0..100)
        .map(|i| {
            json!({
                "type": "m.room.message", "event_id": format!("$big-{i}-{}", rig::random_hex(4)),
                "room_id": "!not-a-portal:localhost", "sender": "@someone:localhost", "origin_server_ts": 1,
                "content": {"msgtype": "m.text", "body": "x".repeat(60_000)},
            })
        })
        .collect();
    events.push(valid(
        &format!("$valid-big-{}", rig::random_hex(6)),
        "relayed after a 6 MB transaction",
    ));
    let body = serde_json::to_vec(&json!({"events": events}))?;
    ensure!(
        body.len() > 6_000_000,
        "the transaction is {} bytes",
        body.len()
    );
    let got = status_and_json(put(&txn(), body).send().await?).await?;
    ensure!(
        got.0 == 200 && got.1 == json!({}),
        "a 6 MB transaction: {got:?}"
    );
    c.visitor
        .wait_for_agent_text("relayed after a 6 MB transaction")
        .await
        .with_context(|| env.logs())?;

    // An event nested past the parser's recursion limit, and one with a lone surrogate, are
    // skipped, not a reason to refuse the transaction (the homeserver would retry it forever):
    // the valid events beside them are relayed.
    let beside_deep = serde_json::to_string(&valid(
        &format!("$valid-deep-{}", rig::random_hex(6)),
        "relayed beside a deeply nested event",
    ))?;
    // An operator's message whose first key, at the top and in its content, is serde_json's
    // raw-value token: a key like any other, so the message is relayed (serde_json's `Value`
    // would read the object as the text in that key, and the event would be dropped).
    let token = "$serde_json::private::RawValue";
    let token_first = format!(
        r#"{{"{token}": "{operator}", "type": "m.room.message", "event_id": "$valid-token-{}",
            "room_id": "{}", "sender": "{operator}", "origin_server_ts": 1,
            "content": {{"{token}": "x", "msgtype": "m.text", "body": "relayed with an odd first key"}}}}"#,
        rig::random_hex(6),
        c.room
    );
    // (`deep` ends with the innermost `]`, then the events' `]` and the body's `}`)
    let body = format!(
        r#"{}, {{"event_id": "$\ud800"}}, {beside_deep}, {token_first}]}}"#,
        &deep[..deep.len() - 2]
    );
    let got = status_and_json(put(&txn(), body.into_bytes()).send().await?).await?;
    ensure!(
        got.0 == 200 && got.1 == json!({}),
        "a deeply nested event beside a valid one: {got:?}"
    );
    for (text, which) in [
        (
            "relayed beside a deeply nested event",
            "the event beside the deep one",
        ),
        (
            "relayed with an odd first key",
            "the event whose first key is the raw-value token",
        ),
    ] {
        c.visitor
            .wait_for_agent_text(text)
            .await
            .with_context(|| format!("{which} was not relayed\n{}", env.logs()))?;
    }

    // Events of every wrong shape around one valid event: the valid one is relayed, the rest
    // skipped or answered with a notice, and the queue does not stall.
    let valid_id = format!("$valid-mixed-{}", rig::random_hex(6));
    let e = |suffix: &str| format!("$wrong-{suffix}-{}", rig::random_hex(4));
    let wrong = vec![
        json!(1),
        json!("an event"),
        Value::Null,
        json!([]),
        json!({}),
        json!({"event_id": 5, "room_id": c.room, "sender": operator, "type": "m.room.message"}),
        json!({"event_id": e("noroom"), "sender": operator, "type": "m.room.message"}),
        json!({"event_id": e("nosender"), "room_id": c.room, "type": "m.room.message"}),
        json!({"event_id": e("str"), "room_id": c.room, "sender": operator, "type": "m.room.message", "content": "just a string"}),
        json!({"event_id": e("msgtype"), "room_id": c.room, "sender": operator, "type": "m.room.message", "content": {"msgtype": 5, "body": "x"}}),
        json!({"event_id": e("body"), "room_id": c.room, "sender": operator, "type": "m.room.message", "content": {"msgtype": "m.text", "body": {"nested": [1, 2]}}}),
        json!({"event_id": e("file"), "room_id": c.room, "sender": operator, "type": "m.room.message", "content": {"msgtype": "m.file", "body": "f", "url": 7}}),
        json!({"event_id": e("type"), "room_id": c.room, "sender": operator, "type": ["m.room.message"], "content": {"body": "x"}}),
        json!({"event_id": e("redact"), "room_id": c.room, "sender": operator, "type": "m.room.redaction", "redacts": {"$": 1}}),
        json!({"event_id": e("member"), "room_id": c.room, "sender": operator, "type": "m.room.member", "state_key": 5, "content": []}),
        json!({"event_id": e("nul"), "room_id": "!nul\u{0}room:localhost", "sender": "@nul\u{0}:localhost", "type": "m.room.message", "content": {"msgtype": "m.text", "body": "nul \u{0} inside"}}),
        json!({"event_id": format!("$nul\u{0}{}", rig::random_hex(4)), "room_id": c.room, "sender": operator, "type": "m.room.message", "content": {"msgtype": "m.text", "body": "nul event id"}}),
        json!({"event_id": e("longroom"), "room_id": format!("!{}:localhost", "r".repeat(20_000)), "sender": operator, "type": "m.room.message", "content": {"msgtype": "m.text", "body": "help"}}),
        json!({"event_id": e("ghost"), "room_id": c.room, "sender": "@sb_webchat_evil:localhost", "type": "m.room.message", "content": {"msgtype": "m.text", "body": "ghost echo must not be relayed"}}),
        json!({"event_id": e("stranger"), "room_id": c.room, "sender": "@stranger:localhost", "type": "m.room.message", "content": {"msgtype": "m.text", "body": "a stranger must not be relayed"}}),
    ];
    let mut events = wrong;
    events.push(valid(&valid_id, "the one valid event among the wrong ones"));
    // A later duplicate of the valid event's id does not replace it.
    events.push(valid(&valid_id, "a duplicate id must not be relayed"));
    let body = serde_json::to_vec(&json!({
        "events": events,
        "ephemeral": [1, null, {"type": "m.typing", "room_id": 5}, {"type": "m.receipt", "room_id": c.room, "content": {"$x": {"m.read": 7}}}],
        "de.sorunome.msc2409.ephemeral": "ignored? no: must be an array",
    }))?;
    // The unstable ephemeral field must be an array too: this one is refused as a whole...
    let refused = status_and_json(put(&txn(), body).send().await?).await?;
    expect_matrix_error(
        "unstable ephemeral not an array",
        &refused,
        400,
        "M_NOT_JSON",
    )?;
    // ...and the same events with well-formed (if odd) ephemeral data are accepted.
    let body = serde_json::to_vec(&json!({
        "events": events,
        "ephemeral": [1, null, {"type": "m.typing", "room_id": 5}, {"type": "m.receipt", "room_id": c.room, "content": {"$x": {"m.read": 7}}}],
        "unknown_field": {"deep": [[[[1]]]]},
    }))?;
    let txn_id = txn();
    let got = status_and_json(put(&txn_id, body.clone()).send().await?).await?;
    ensure!(
        got.0 == 200,
        "a transaction with wrong-shaped events: {got:?}\n{}",
        env.logs()
    );
    c.visitor
        .wait_for_agent_text("the one valid event among the wrong ones")
        .await
        .with_context(|| format!("the valid event was not relayed\n{}", env.logs()))?;
    // Replaying the same transaction id stores nothing again.
    let got = status_and_json(put(&txn_id, body).send().await?).await?;
    ensure!(got.0 == 200, "replay: {got:?}");

    // Nothing else got through to the visitor.
    still_works(&env, &c, "hostile transactions").await?;
    let history = c.visitor.history(0).await?;
    for text in [
        "ghost echo must not be relayed",
        "a stranger must not be relayed",
        "a duplicate id must not be relayed",
        "nul event id",
        "nul \u{0} inside",
        "just a string",
    ] {
        ensure!(
            !history
                .iter()
                .any(|e| e["text"].as_str().is_some_and(|t| t.contains(text))),
            "{text:?} reached the visitor"
        );
    }
    let valid_count = history
        .iter()
        .filter(|e| e["text"] == "the one valid event among the wrong ones")
        .count();
    ensure!(
        valid_count == 1,
        "the valid event reached the visitor {valid_count} times"
    );
    Ok(())
}
