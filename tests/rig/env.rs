//! A whole test environment, and a web chat visitor.
//!
//! [`TestEnv::start`] does, in order: prepare the bridge's config and registration (the
//! registration must exist before the homeserver that loads it starts); start Synapse with that
//! registration; register `@alice:localhost` (bridge admin in the config, Synapse admin too) and
//! `@bob:localhost` (operator); point the bridge at Synapse and start it; log both users in as
//! [`Operator`]s. Dropping the env stops everything (operators' sync loops, bridge, Synapse).
//!
//! [`Visitor`] is a client of the web chat JSON API (docs/webchat.md): a session token from
//! `POST /api/v1/session`, then bearer-authenticated calls. It keeps every event it has fetched
//! from `GET /api/v1/messages?after=<seq>`, so [`Visitor::wait_for_event`] looks at the whole
//! conversation while only fetching what is new.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::bridge::{Bridge, BridgeOptions};
use super::operator::Operator;
use super::synapse::Synapse;
use super::DEFAULT_TIMEOUT;

pub const ALICE_PASSWORD: &str = "alice-test-password";
pub const BOB_PASSWORD: &str = "bob-test-password";

/// Bridge + homeserver + two operators. Field order is drop order: clients first, Synapse last.
pub struct TestEnv {
    /// `@alice:localhost`, bridge admin.
    pub alice: Operator,
    /// `@bob:localhost`, operator.
    pub bob: Operator,
    pub bridge: Bridge,
    pub synapse: Synapse,
}

impl TestEnv {
    pub async fn start(options: BridgeOptions) -> anyhow::Result<TestEnv> {
        let mut bridge = Bridge::prepare(&options).await?;
        let synapse = Synapse::start(&bridge.registration_path()).await?;
        synapse
            .register_user("alice", ALICE_PASSWORD, true)
            .await
            .context("registering alice")?;
        synapse
            .register_user("bob", BOB_PASSWORD, false)
            .await
            .context("registering bob")?;
        bridge.set_homeserver(&synapse.base_url(), synapse.server_name())?;
        bridge.start().await?;
        let alice = Operator::login(&synapse.base_url(), "alice", ALICE_PASSWORD).await?;
        let bob = Operator::login(&synapse.base_url(), "bob", BOB_PASSWORD).await?;
        Ok(TestEnv {
            alice,
            bob,
            bridge,
            synapse,
        })
    }

    /// `TestEnv::start(BridgeOptions::default())`
    pub async fn start_default() -> anyhow::Result<TestEnv> {
        Self::start(BridgeOptions::default()).await
    }

    /// `<bridge>/webchat`
    pub fn webchat_url(&self) -> String {
        format!("{}/webchat", self.bridge.base_url())
    }

    /// The bot's user id, `@switchboard:localhost`.
    pub fn bot_user_id(&self) -> String {
        format!("@switchboard:{}", self.synapse.server_name())
    }

    /// A new visitor session on this env's web chat.
    pub async fn visitor(&self, name: &str, email: &str) -> anyhow::Result<Visitor> {
        Visitor::with_identity(&self.webchat_url(), Some(name), Some(email)).await
    }

    /// Moves the bridge's routing clock (needs `testing.clock_control` in its config).
    pub async fn set_clock(&self, now_ms: i64) -> anyhow::Result<()> {
        let reg = self.bridge.registration()?;
        let token = reg["hs_token"].as_str().context("hs_token")?;
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/_switchboard/testing/clock",
                self.bridge.base_url()
            ))
            .bearer_auth(token)
            .json(&serde_json::json!({"now_ms": now_ms}))
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 200, "clock not set: {}", resp.status());
        Ok(())
    }

    /// Every room on the homeserver whose name contains `name_part`, whoever is in it or invited
    /// to it (Synapse's admin room list, asked as @alice, a server admin): the way to see that no
    /// second portal was made, not even one nobody joined.
    pub async fn rooms_named(&self, name_part: &str) -> anyhow::Result<Vec<String>> {
        let token = self.alice.access_token().context("alice's token")?;
        let resp = reqwest::Client::new()
            .get(format!(
                "{}/_synapse/admin/v1/rooms",
                self.synapse.base_url()
            ))
            .query(&[("search_term", name_part), ("limit", "1000")])
            .bearer_auth(token)
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 200, "admin room list: {}", resp.status());
        let body: serde_json::Value = resp.json().await?;
        Ok(body["rooms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["name"].as_str().is_some_and(|n| n.contains(name_part)))
            .filter_map(|r| r["room_id"].as_str().map(str::to_string))
            .collect())
    }

    /// Registers and logs in another Matrix user.
    pub async fn new_operator(&self, localpart: &str, password: &str) -> anyhow::Result<Operator> {
        self.synapse
            .register_user(localpart, password, false)
            .await?;
        Operator::login(&self.synapse.base_url(), localpart, password).await
    }

    /// Logs of both servers, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- bridge.log ---\n{}\n{}",
            self.bridge.log_tail(),
            self.synapse.log_tail()
        )
    }
}

/// A web chat visitor speaking the widget's JSON API.
pub struct Visitor {
    base: String,
    http: reqwest::Client,
    pub token: String,
    pub visitor_id: String,
    /// Everything `GET /messages` returned so far, in order.
    events: tokio::sync::Mutex<(Vec<Value>, u64)>,
    /// Deadline for [`Visitor::wait_for_event`] (30 s unless changed).
    pub timeout: Duration,
}

async fn json_or_error(resp: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = resp.status();
    let text = resp
        .text()
        .await
        .with_context(|| format!("{what}: reading body"))?;
    if !status.is_success() {
        bail!("{what}: HTTP {status}: {text}");
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: body is not JSON: {text}"))
}

fn id_of(v: &Value, what: &str) -> anyhow::Result<String> {
    match v.get("id") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => bail!("{what}: no id in response {v}"),
    }
}

impl Visitor {
    /// Starts a session with a default name and a random email. `base` is `<bridge>/webchat`.
    pub async fn new(base: &str) -> anyhow::Result<Visitor> {
        let email = format!("visitor-{}@example.com", super::random_hex(4));
        Self::with_identity(base, Some("Test Visitor"), Some(&email)).await
    }

    /// Starts a session (`POST /api/v1/session {name, email}`); either may be omitted.
    pub async fn with_identity(
        base: &str,
        name: Option<&str>,
        email: Option<&str>,
    ) -> anyhow::Result<Visitor> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building HTTP client")?;
        let base = base.trim_end_matches('/').to_string();
        let mut body = serde_json::Map::new();
        if let Some(n) = name {
            body.insert("name".into(), n.into());
        }
        if let Some(e) = email {
            body.insert("email".into(), e.into());
        }
        let resp = http
            .post(format!("{base}/api/v1/session"))
            .json(&body)
            .send()
            .await
            .context("POST /api/v1/session")?;
        let v = json_or_error(resp, "POST /api/v1/session").await?;
        let token = v
            .get("token")
            .and_then(Value::as_str)
            .with_context(|| format!("no token in session response {v}"))?
            .to_string();
        let visitor_id = match v.get("visitor_id") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        Ok(Visitor {
            base,
            http,
            token,
            visitor_id,
            events: tokio::sync::Mutex::new((Vec::new(), 0)),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Another handle on the same session (e.g. a second tab).
    pub fn same_session(&self) -> Visitor {
        Visitor {
            base: self.base.clone(),
            http: self.http.clone(),
            token: self.token.clone(),
            visitor_id: self.visitor_id.clone(),
            events: tokio::sync::Mutex::new((Vec::new(), 0)),
            timeout: self.timeout,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/{}", self.base, path.trim_start_matches('/'))
    }

    /// An authenticated request to `/api/v1/<path>`, for calls the helpers do not cover.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// POST a message body; returns the whole response.
    pub async fn post_message(&self, body: Value) -> anyhow::Result<Value> {
        let resp = self
            .request(reqwest::Method::POST, "messages")
            .json(&body)
            .send()
            .await
            .context("POST /api/v1/messages")?;
        json_or_error(resp, "POST /api/v1/messages").await
    }

    /// Sends a text message; returns its id.
    pub async fn send(&self, text: &str) -> anyhow::Result<String> {
        let client_id = format!("c-{}", super::random_hex(8));
        self.send_with_client_id(&client_id, text).await
    }

    /// Sends with a chosen `client_id` (the widget's idempotency key); returns the message id.
    pub async fn send_with_client_id(&self, client_id: &str, text: &str) -> anyhow::Result<String> {
        let v = self
            .post_message(json!({"client_id": client_id, "text": text}))
            .await?;
        id_of(&v, "POST /api/v1/messages")
    }

    /// A reply to message `to_id`; returns the new message's id.
    pub async fn reply(&self, text: &str, to_id: &str) -> anyhow::Result<String> {
        let client_id = format!("c-{}", super::random_hex(8));
        let v = self
            .post_message(json!({"client_id": client_id, "text": text, "reply_to": to_id}))
            .await?;
        id_of(&v, "POST /api/v1/messages (reply)")
    }

    /// Edits one of the visitor's messages.
    pub async fn edit(&self, id: &str, text: &str) -> anyhow::Result<()> {
        let resp = self
            .request(reqwest::Method::PATCH, &format!("messages/{id}"))
            .json(&json!({"text": text}))
            .send()
            .await
            .context("PATCH /api/v1/messages/{id}")?;
        json_or_error(resp, "PATCH /api/v1/messages/{id}")
            .await
            .map(|_| ())
    }

    /// Deletes one of the visitor's messages.
    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        let resp = self
            .request(reqwest::Method::DELETE, &format!("messages/{id}"))
            .send()
            .await
            .context("DELETE /api/v1/messages/{id}")?;
        json_or_error(resp, "DELETE /api/v1/messages/{id}")
            .await
            .map(|_| ())
    }

    /// Uploads a file (multipart field `file`); returns the whole response (it names the
    /// message id and/or the attachment).
    pub async fn upload(&self, name: &str, mime: &str, bytes: Vec<u8>) -> anyhow::Result<Value> {
        let resp = self.upload_response(name, mime, bytes).await?;
        json_or_error(resp, "POST /api/v1/files").await
    }

    /// Like [`Visitor::upload`] but hands back the raw response (for tests of rejected uploads).
    pub async fn upload_response(
        &self,
        name: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<reqwest::Response> {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str(mime)
            .with_context(|| format!("invalid MIME type {mime:?}"))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        self.request(reqwest::Method::POST, "files")
            .multipart(form)
            .send()
            .await
            .context("POST /api/v1/files")
    }

    /// Typing on/off.
    pub async fn typing(&self, active: bool) -> anyhow::Result<()> {
        let resp = self
            .request(reqwest::Method::POST, "typing")
            .json(&json!({"active": active}))
            .send()
            .await
            .context("POST /api/v1/typing")?;
        json_or_error(resp, "POST /api/v1/typing").await.map(|_| ())
    }

    /// Marks agent messages read up to `up_to` (a message id).
    pub async fn read(&self, up_to: &str) -> anyhow::Result<()> {
        let resp = self
            .request(reqwest::Method::POST, "read")
            .json(&json!({"up_to": up_to}))
            .send()
            .await
            .context("POST /api/v1/read")?;
        json_or_error(resp, "POST /api/v1/read").await.map(|_| ())
    }

    /// `GET /api/v1/messages?after=<seq>` → (events, last_seq).
    pub async fn history_page(&self, after: u64) -> anyhow::Result<(Vec<Value>, u64)> {
        let resp = self
            .request(reqwest::Method::GET, &format!("messages?after={after}"))
            .send()
            .await
            .context("GET /api/v1/messages")?;
        let v = json_or_error(resp, "GET /api/v1/messages").await?;
        let events = v
            .get("events")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let last_seq = v.get("last_seq").and_then(Value::as_u64).unwrap_or(after);
        Ok((events, last_seq))
    }

    /// The events after `after` (0 for the whole conversation).
    pub async fn history(&self, after: u64) -> anyhow::Result<Vec<Value>> {
        Ok(self.history_page(after).await?.0)
    }

    /// Fetches new events into the local log; returns the whole log.
    pub async fn refresh(&self) -> anyhow::Result<Vec<Value>> {
        let mut guard = self.events.lock().await;
        let (events, last_seq) = self.history_page(guard.1).await?;
        guard.0.extend(events);
        guard.1 = guard.1.max(last_seq);
        Ok(guard.0.clone())
    }

    /// Polls `GET /messages` until an event matches `pred` (over everything seen so far), with
    /// the visitor's deadline.
    pub async fn wait_for_event(&self, pred: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        self.wait_for_event_described("a matching web chat event", pred)
            .await
    }

    /// Like [`Visitor::wait_for_event`], naming what is awaited in the timeout error.
    pub async fn wait_for_event_described(
        &self,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let pred = &pred;
        let result = super::poll_until(what, self.timeout, move || async move {
            let events = self.refresh().await?;
            Ok(events.into_iter().find(|e| pred(e)))
        })
        .await;
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                let seen = self.events.lock().await.0.clone();
                let start = seen.len().saturating_sub(10);
                let tail: Vec<String> = seen[start..].iter().map(|v| v.to_string()).collect();
                Err(e.context(format!("visitor's last events:\n  {}", tail.join("\n  "))))
            }
        }
    }

    /// Waits for an agent message whose text contains `text`.
    /// Wait until `n` agent messages containing `text` are in the conversation.
    pub async fn wait_for_agent_text_count(&self, text: &str, n: usize) -> anyhow::Result<()> {
        super::poll_until(
            &format!("{n} agent messages containing {text:?}"),
            std::time::Duration::from_secs(30),
            || async {
                let count = self
                    .refresh()
                    .await?
                    .iter()
                    .filter(|e| {
                        e["from"] == "agent" && e["text"].as_str().is_some_and(|t| t.contains(text))
                    })
                    .count();
                Ok((count >= n).then_some(()))
            },
        )
        .await
    }

    /// The team's rating request (stars in the widget) whose question contains `question`.
    pub async fn wait_for_rating(&self, question: &str) -> anyhow::Result<Value> {
        self.wait_for_event_described(&format!("a rating request {question:?}"), |e| {
            e.get("type").and_then(Value::as_str) == Some("rating")
                && e.get("question")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.contains(question))
        })
        .await
    }

    /// Click star `score` of a rating request (`POST /api/v1/rating`), as the widget does.
    pub async fn rate(&self, rating: &Value, score: u8) -> anyhow::Result<Value> {
        let payload = rating["choices"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["score"] == score))
            .and_then(|c| c["payload"].as_str())
            .with_context(|| format!("no choice {score} in {rating}"))?
            .to_string();
        let resp = self
            .request(reqwest::Method::POST, "rating")
            .json(&serde_json::json!({ "payload": payload }))
            .send()
            .await
            .context("POST /api/v1/rating")?;
        json_or_error(resp, "POST /api/v1/rating").await
    }

    pub async fn wait_for_agent_text(&self, text: &str) -> anyhow::Result<Value> {
        self.wait_for_event_described(&format!("an agent message containing {text:?}"), |e| {
            e.get("type").and_then(Value::as_str) == Some("message")
                && e.get("from").and_then(Value::as_str) == Some("agent")
                && e.get("text")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.contains(text))
        })
        .await
    }
}
