//! The benchmark's own clients: thin on purpose, so what they add is the same small constant on
//! every path being compared.
//!
//! - [`MxClient`]: a plain Matrix client over `reqwest` (login, create/join rooms, send text).
//!   It is both "the plain client sending straight to the homeserver" and the operator who
//!   answers in a portal.
//! - [`SyncWatcher`]: an operator's `/sync` long-poll loop. It stamps each `m.room.message` with
//!   the [`Instant`] its response arrived (before parsing), keyed by the message body, and keeps
//!   the invites it sees. This is where "visible in an operator's sync" is measured, for the
//!   direct path and the bridge's inbound path alike.
//! - [`SseWatcher`]: a web chat visitor's live stream (`GET /webchat/api/v1/events`), stamping
//!   agent messages the same way: "the channel received it".
//!
//! Both watchers write into a shared [`Recorder`]. Bodies are `"<tag> <n> …"`: the recorder
//! counts arrivals per tag, so a throughput run waits for "all of tag X" without scanning.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::sync::watch;

/// When each message body was first seen, and how many of each tag.
#[derive(Default)]
struct Log {
    seen: HashMap<String, Instant>,
    tags: HashMap<String, (usize, Instant)>,
    invites: Vec<(String, String)>,
    /// A sync that dropped events (`limited`): a run that waits on it would hang, so say so.
    limited: u64,
}

/// Shared between watchers and the code that waits on them.
#[derive(Clone)]
pub struct Recorder {
    log: Arc<Mutex<Log>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            log: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, log: &mut Log, body: &str, at: Instant) {
        if log.seen.contains_key(body) {
            return;
        }
        log.seen.insert(body.to_string(), at);
        if let Some(tag) = body.split(' ').next() {
            let e = log.tags.entry(tag.to_string()).or_insert((0, at));
            e.0 += 1;
            e.1 = e.1.max(at);
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Log) -> Option<T>,
    ) -> anyhow::Result<T> {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let log = self.lock();
                if let Some(v) = check(&log) {
                    return Ok(v);
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("recorder dropped while waiting for {what}"),
                Err(_) => {
                    let limited = self.lock().limited;
                    bail!("timed out after {timeout:?} waiting for {what} (limited syncs so far: {limited})")
                }
            }
        }
    }

    /// When `body` was first seen.
    pub async fn seen(&self, body: &str, timeout: Duration) -> anyhow::Result<Instant> {
        self.wait(&format!("{body:?}"), timeout, |log| {
            log.seen.get(body).copied()
        })
        .await
    }

    /// When the last of `n` messages tagged `tag` was seen.
    pub async fn all_seen(
        &self,
        tag: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Instant> {
        self.wait(&format!("{n} messages tagged {tag}"), timeout, |log| {
            log.tags
                .get(tag)
                .filter(|(count, _)| *count >= n)
                .map(|(_, last)| *last)
        })
        .await
    }

    /// An invite to a room whose name contains `name_part`; returns the room id.
    pub async fn invite(&self, name_part: &str, timeout: Duration) -> anyhow::Result<String> {
        self.wait(
            &format!("an invite to a room named like {name_part:?}"),
            timeout,
            |log| {
                log.invites
                    .iter()
                    .find(|(_, name)| name.contains(name_part))
                    .map(|(id, _)| id.clone())
            },
        )
        .await
    }
}

fn http() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build()
        .context("building an HTTP client")
}

async fn json_ok(resp: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = resp.status();
    let text = resp
        .text()
        .await
        .with_context(|| format!("{what}: reading the body"))?;
    if !status.is_success() {
        bail!("{what}: HTTP {status}: {text}");
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: not JSON: {text}"))
}

/// A plain Matrix client.
#[derive(Clone)]
pub struct MxClient {
    base: String,
    token: String,
    pub user_id: String,
    /// For an appservice: the user it acts as (`?user_id=`), as the bridge does for ghosts.
    act_as: Option<String>,
    http: reqwest::Client,
}

impl MxClient {
    pub async fn login(base: &str, user: &str, password: &str) -> anyhow::Result<MxClient> {
        let http = http()?;
        let resp = http
            .post(format!("{base}/_matrix/client/v3/login"))
            .json(&json!({
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user},
                "password": password,
                "initial_device_display_name": "switchboard bench",
            }))
            .send()
            .await
            .with_context(|| format!("logging in {user}"))?;
        let v = json_ok(resp, "POST /login").await?;
        Ok(MxClient {
            base: base.trim_end_matches('/').to_string(),
            token: v["access_token"]
                .as_str()
                .context("no access_token")?
                .to_string(),
            user_id: v["user_id"].as_str().context("no user_id")?.to_string(),
            act_as: None,
            http,
        })
    }

    /// An appservice (its `as_token`) acting as `user_id`: what the bridge does for a ghost.
    pub fn appservice(base: &str, as_token: &str, user_id: &str) -> anyhow::Result<MxClient> {
        Ok(MxClient {
            base: base.trim_end_matches('/').to_string(),
            token: as_token.to_string(),
            user_id: user_id.to_string(),
            act_as: Some(user_id.to_string()),
            http: http()?,
        })
    }

    fn url(&self, segments: &[&str]) -> anyhow::Result<url::Url> {
        let mut url = url::Url::parse(&self.base).context("homeserver URL")?;
        url.path_segments_mut()
            .map_err(|_| anyhow::anyhow!("homeserver URL cannot be a base"))?
            .extend(["_matrix", "client", "v3"])
            .extend(segments);
        if let Some(user) = &self.act_as {
            url.query_pairs_mut().append_pair("user_id", user);
        }
        Ok(url)
    }

    /// `GET <homeserver><path>` with this user's token, as JSON.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        json_ok(resp, path).await
    }

    pub async fn create_room(&self, name: &str, invite: &[&str]) -> anyhow::Result<String> {
        let resp = self
            .http
            .post(self.url(&["createRoom"])?)
            .bearer_auth(&self.token)
            .json(&json!({"name": name, "preset": "private_chat", "invite": invite}))
            .send()
            .await
            .context("POST /createRoom")?;
        let v = json_ok(resp, "POST /createRoom").await?;
        Ok(v["room_id"].as_str().context("no room_id")?.to_string())
    }

    pub async fn join(&self, room: &str) -> anyhow::Result<()> {
        let resp = self
            .http
            .post(self.url(&["rooms", room, "join"])?)
            .bearer_auth(&self.token)
            .json(&json!({}))
            .send()
            .await
            .context("POST /join")?;
        json_ok(resp, "POST /rooms/{room}/join").await.map(|_| ())
    }

    /// Sends an `m.text`; returns when the homeserver has accepted it (the event id).
    pub async fn send_text(&self, room: &str, txn: &str, body: &str) -> anyhow::Result<String> {
        self.put_text(
            self.url(&["rooms", room, "send", "m.room.message", txn])?,
            body,
        )
        .await
    }

    /// `send_text` as the bridge sends a customer's message: with `?ts=` (when the customer
    /// wrote) besides the appservice's `?user_id=`, so a control measured with it asks Synapse
    /// for exactly what the bridge asks.
    pub async fn send_text_at(
        &self,
        room: &str,
        txn: &str,
        body: &str,
        ts_ms: i64,
    ) -> anyhow::Result<String> {
        let mut url = self.url(&["rooms", room, "send", "m.room.message", txn])?;
        url.query_pairs_mut().append_pair("ts", &ts_ms.to_string());
        self.put_text(url, body).await
    }

    /// `PUT` an `m.text` with `body` to a send URL; the new event's id.
    async fn put_text(&self, url: url::Url, body: &str) -> anyhow::Result<String> {
        let resp = self
            .http
            .put(url)
            .bearer_auth(&self.token)
            .json(&json!({"msgtype": "m.text", "body": body}))
            .send()
            .await
            .context("PUT /send")?;
        let v = json_ok(resp, "PUT /rooms/{room}/send").await?;
        Ok(v["event_id"].as_str().context("no event_id")?.to_string())
    }

    /// Starts this user's sync loop, recording into `recorder`. Returns after the first
    /// (immediate) sync, so only what happens afterwards is recorded as new.
    pub async fn watch(&self, recorder: Recorder) -> anyhow::Result<SyncWatcher> {
        let filter = json!({
            "room": {
                "timeline": {"limit": 1000, "types": ["m.room.message"]},
                "state": {"types": []},
                "ephemeral": {"types": []},
                "account_data": {"types": []},
            },
            "presence": {"types": []},
            "account_data": {"types": []},
        })
        .to_string();
        let first = self.sync_once(&filter, None, 0).await?;
        let since = first["next_batch"]
            .as_str()
            .context("no next_batch")?
            .to_string();
        let client = self.clone();
        let task = tokio::spawn(async move {
            let mut since = since;
            loop {
                match client.sync_raw(&filter, Some(&since), 30_000).await {
                    Ok((at, body)) => {
                        let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                            continue;
                        };
                        ingest(&recorder, &v, at);
                        if let Some(next) = v["next_batch"].as_str() {
                            since = next.to_string();
                        }
                    }
                    Err(e) => {
                        eprintln!("bench: {} sync failed: {e:#}", client.user_id);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(SyncWatcher { task })
    }

    async fn sync_raw(
        &self,
        filter: &str,
        since: Option<&str>,
        timeout_ms: u64,
    ) -> anyhow::Result<(Instant, bytes::Bytes)> {
        let mut url = self.url(&["sync"])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("filter", filter)
                .append_pair("timeout", &timeout_ms.to_string());
            if let Some(s) = since {
                q.append_pair("since", s);
            }
        }
        let resp = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .context("GET /sync")?;
        let status = resp.status();
        let body = resp.bytes().await.context("reading /sync")?;
        let at = Instant::now();
        if !status.is_success() {
            bail!(
                "GET /sync: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok((at, body))
    }

    async fn sync_once(
        &self,
        filter: &str,
        since: Option<&str>,
        timeout_ms: u64,
    ) -> anyhow::Result<Value> {
        let (_, body) = self.sync_raw(filter, since, timeout_ms).await?;
        serde_json::from_slice(&body).context("/sync is not JSON")
    }
}

/// Records one sync response: message bodies (with the response's arrival time) and invites.
fn ingest(recorder: &Recorder, v: &Value, at: Instant) {
    let mut log = recorder.lock();
    if let Some(joined) = v["rooms"]["join"].as_object() {
        for room in joined.values() {
            if room["timeline"]["limited"].as_bool() == Some(true) {
                log.limited += 1;
            }
            for ev in room["timeline"]["events"].as_array().into_iter().flatten() {
                if ev["type"] == "m.room.message" {
                    if let Some(body) = ev["content"]["body"].as_str() {
                        recorder.record(&mut log, body, at);
                    }
                }
            }
        }
    }
    if let Some(invited) = v["rooms"]["invite"].as_object() {
        for (room_id, room) in invited {
            let name = room["invite_state"]["events"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["type"] == "m.room.name")
                .and_then(|e| e["content"]["name"].as_str())
                .unwrap_or_default()
                .to_string();
            log.invites.push((room_id.clone(), name));
        }
    }
    drop(log);
    recorder.bump();
}

/// A running sync loop; stops on drop.
pub struct SyncWatcher {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SyncWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A web chat visitor's live stream; stops on drop.
pub struct SseWatcher {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SseWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SseWatcher {
    /// Opens `GET <webchat>/api/v1/events?token=…&after=…` and records agent messages (by
    /// text) with the time their chunk arrived. Returns once the stream has answered.
    pub async fn open(
        webchat: &str,
        token: &str,
        after: u64,
        recorder: Recorder,
    ) -> anyhow::Result<SseWatcher> {
        let http = reqwest::Client::builder()
            .build()
            .context("building an HTTP client")?;
        let url = format!("{webchat}/api/v1/events?token={token}&after={after}");
        let resp = http.get(&url).send().await.context("GET /events")?;
        if !resp.status().is_success() {
            bail!("GET /events: HTTP {}", resp.status());
        }
        let task = tokio::spawn(async move {
            let mut resp = resp;
            let mut buf: Vec<u8> = Vec::new();
            loop {
                let chunk = match resp.chunk().await {
                    Ok(Some(c)) => c,
                    Ok(None) => {
                        eprintln!("bench: a visitor's event stream ended");
                        return;
                    }
                    Err(e) => {
                        eprintln!("bench: a visitor's event stream failed: {e}");
                        return;
                    }
                };
                let at = Instant::now();
                buf.extend_from_slice(&chunk);
                let mut any = false;
                // Events end with a blank line.
                while let Some(end) = find_blank_line(&buf) {
                    let event: Vec<u8> = buf.drain(..end.1).collect();
                    let text = String::from_utf8_lossy(&event[..end.0]);
                    let data: Vec<&str> = text
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(|d| d.strip_prefix(' ').unwrap_or(d))
                        .collect();
                    if data.is_empty() {
                        continue;
                    }
                    let Ok(v) = serde_json::from_str::<Value>(&data.join("\n")) else {
                        continue;
                    };
                    if v["type"] == "message" && v["from"] == "agent" {
                        if let Some(body) = v["text"].as_str() {
                            let mut log = recorder.lock();
                            recorder.record(&mut log, body, at);
                            any = true;
                        }
                    }
                }
                if any {
                    recorder.bump();
                }
            }
        });
        Ok(SseWatcher { task })
    }
}

/// (end of the event text, end including the blank line) of the first complete SSE event.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    for i in 0..buf.len() {
        if buf[i..].starts_with(b"\n\n") {
            return Some((i, i + 2));
        }
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some((i, i + 4));
        }
    }
    None
}

/// A web chat visitor posting messages (the widget's JSON API).
#[derive(Clone)]
pub struct WebVisitor {
    base: String,
    pub token: String,
    pub visitor_id: String,
    http: reqwest::Client,
}

impl WebVisitor {
    /// `POST /api/v1/session`. `webchat` is `<bridge>/webchat`.
    pub async fn new(webchat: &str, name: &str, email: &str) -> anyhow::Result<WebVisitor> {
        let http = http()?;
        let resp = http
            .post(format!("{webchat}/api/v1/session"))
            .json(&json!({"name": name, "email": email}))
            .send()
            .await
            .context("POST /session")?;
        let v = json_ok(resp, "POST /session").await?;
        Ok(WebVisitor {
            base: webchat.to_string(),
            token: v["token"].as_str().context("no token")?.to_string(),
            visitor_id: v["visitor_id"]
                .as_str()
                .context("no visitor_id")?
                .to_string(),
            http,
        })
    }

    /// `POST /api/v1/messages`; returns when the bridge has stored it (its 200).
    pub async fn send(&self, client_id: &str, text: &str) -> anyhow::Result<()> {
        let resp = self
            .http
            .post(format!("{}/api/v1/messages", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"client_id": client_id, "text": text}))
            .send()
            .await
            .context("POST /messages")?;
        json_ok(resp, "POST /messages").await.map(|_| ())
    }
}
