//! A wire-level fake of Meta's Graph API for the Messenger and Instagram channels, reached only
//! through their configurable `api_url` (the channels cannot tell it from graph.facebook.com).
//!
//! It speaks the documented protocol (Messenger Platform and Instagram Messaging references):
//!
//! * Every request names a version (`/v21.0/…`) and carries the Page access token as the
//!   `access_token` query parameter or `Authorization: Bearer`; a wrong or missing token is
//!   `400 {"error":{"message":"Invalid OAuth access token…","type":"OAuthException","code":190}}`.
//!   Every error uses Meta's envelope `{"error":{message,type,code,error_subcode?,fbtrace_id}}`.
//! * `POST /me/messages` (JSON): `recipient.id` plus either `message` (`text` up to 2000
//!   characters on Messenger, 1000 on Instagram, or `attachment {type, payload.attachment_id |
//!   payload.url}`) with `messaging_type`, or a `sender_action` (`typing_on`, `typing_off`,
//!   `mark_seen`, `react` with `payload {message_id, reaction}`, `unreact` with
//!   `payload {message_id}`). Answers `{"recipient_id","message_id"}` (`{"recipient_id"}` for
//!   sender actions). Refusals as Meta words them: no such user (100/2018001), outside the
//!   24-hour window (10/2018278; 10/2534022 on Instagram), person unavailable (551).
//! * `POST /me/message_attachments` (multipart: `message` JSON text with `attachment.type`,
//!   `filedata` the file, `platform=instagram` for Instagram): answers `{"attachment_id"}`.
//! * `GET /<PSID|IGSID>?fields=a,b`: the profile fields asked for (and `id`); unknown ids are
//!   100/33 "Unsupported get request".
//! * `GET /me?fields=id,name,instagram_business_account`: with the Page token, the Page node
//!   (its `instagram_business_account` is the linked Instagram professional account).
//! * `GET /cdn/<name>`: customers' files, as Meta's CDN serves them (no token; signed URLs).
//!
//! For tests: [`FakeMeta::add_profile`], [`FakeMeta::add_file`] (returns the CDN URL to put in a
//! webhook), [`FakeMeta::deliver`] (posts a webhook body signed with the app secret, as Meta
//! does), [`FakeMeta::calls`] (every request: method, path, query, JSON or form fields, upload,
//! time, status), [`FakeMeta::fault`] (the next N calls fail with a rate limit or 5xx),
//! [`FakeMeta::outside_window`] (sends to a recipient fail as outside the 24-hour window),
//! [`FakeMeta::hold_cdn`] (file downloads hang, to crash the bridge between receiving a delivery
//! and storing it).
//! Payload shapes follow `../shared/fixtures/{messenger,instagram,meta}`.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::server::{self, FakeServer};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

/// The Page in tests (Messenger `entry.id`).
pub const PAGE_ID: &str = "100000000000001";
/// The Instagram professional account in tests (Instagram `entry.id`).
pub const IG_ID: &str = "17841472110558136";
/// The Page's name (`GET /me` with the Page token).
pub const PAGE_NAME: &str = "Acme Support";
pub const PAGE_TOKEN: &str = "EAAGfakePageAccessTokenForSwitchboardTests";
pub const APP_SECRET: &str = "fake-app-secret-for-tests-only";
pub const VERIFY_TOKEN: &str = "meatyhamhock";
/// Largest upload accepted (25 MB, the Attachment Upload API's limit).
pub const MAX_UPLOAD: usize = 25 * 1024 * 1024;

/// Which network a request or a webhook is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    Messenger,
    Instagram,
}

impl Net {
    pub fn object(self) -> &'static str {
        match self {
            Net::Messenger => "page",
            Net::Instagram => "instagram",
        }
    }

    pub fn account(self) -> &'static str {
        match self {
            Net::Messenger => PAGE_ID,
            Net::Instagram => IG_ID,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Net::Messenger => "messenger",
            Net::Instagram => "instagram",
        }
    }
}

/// A file uploaded in a multipart request.
#[derive(Clone, Debug)]
pub struct Upload {
    pub field: String,
    pub name: String,
    pub mime: String,
    pub bytes: Vec<u8>,
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    /// The path after the version: `me/messages`, `me/message_attachments`, `<id>`, or
    /// `cdn/<name>` for file downloads.
    pub path: String,
    pub query: HashMap<String, String>,
    /// The JSON body, or the form's text fields (JSON text parsed when it parses).
    pub body: Value,
    pub upload: Option<Upload>,
    /// The token, from the query or the Authorization header.
    pub token: Option<String>,
    pub at: Instant,
    pub status: u16,
}

impl Call {
    /// `recipient.id` of a Send API call.
    pub fn recipient(&self) -> Option<&str> {
        self.body.get("recipient")?.get("id")?.as_str()
    }

    pub fn text(&self) -> Option<&str> {
        self.body.get("message")?.get("text")?.as_str()
    }

    pub fn sender_action(&self) -> Option<&str> {
        self.body.get("sender_action")?.as_str()
    }
}

/// How a faulty call fails.
#[derive(Clone, Debug)]
pub enum FaultKind {
    /// HTTP 400 with a rate-limit code (4, 17, 32, 613), as the Graph API answers them.
    RateLimit { code: i64 },
    /// HTTP 429 Too Many Requests (with `Retry-After` when given).
    TooManyRequests { retry_after: Option<u64> },
    /// HTTP 500 with code 2 "Service temporarily unavailable".
    ServerError,
}

#[derive(Clone, Debug)]
struct Fault {
    path: Option<String>,
    kind: FaultKind,
    remaining: u32,
}

/// A message the Page sent, as the fake stored it.
#[derive(Clone, Debug)]
pub struct Sent {
    pub mid: String,
    pub recipient: String,
    pub message: Value,
}

#[derive(Default)]
struct Inner {
    faults: Vec<Fault>,
    profiles: HashMap<String, Value>,
    files: HashMap<String, (Vec<u8>, String)>,
    attachments: HashMap<String, Upload>,
    sent: Vec<Sent>,
    outside_window: HashSet<String>,
    unavailable: HashSet<String>,
    next: u64,
    /// CDN downloads hang while set (to crash the bridge between receiving and storing).
    hold_cdn: bool,
    /// Paths of downloads asked for while held.
    held: Vec<String>,
    /// The network of each customer (by their id).
    net: HashMap<String, Net>,
}

/// The state; its `changed` wakes held downloads.
type Shared = server::Shared<Inner, Call>;

/// The fake Graph API server, on 127.0.0.1 and a free port; stops when dropped.
pub struct FakeMeta {
    server: FakeServer,
    shared: Arc<Shared>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Meta's error envelope.
fn graph_error(status: u16, code: i64, subcode: Option<i64>, message: &str) -> Response {
    let mut error = json!({"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEfGhIjK"});
    if let Some(s) = subcode {
        error["error_subcode"] = s.into();
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(json!({"error": error}))).into_response()
}

fn bad_param(message: &str) -> Response {
    graph_error(400, 100, None, message)
}

/// `sha256=<hex>` of the body under the app secret: the `X-Hub-Signature-256` value.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl FakeMeta {
    pub async fn start() -> anyhow::Result<FakeMeta> {
        let bound = FakeServer::bind("Graph API").await?;
        let shared = bound.shared(Inner {
            next: 1,
            ..Inner::default()
        });
        let app = Router::new()
            .route("/cdn/{name}", get(cdn))
            .route("/{version}/me/messages", post(messages))
            .route("/{version}/me/message_attachments", post(upload))
            .route("/{version}/{id}", get(profile))
            .layer(DefaultBodyLimit::max(MAX_UPLOAD + 1024 * 1024))
            .with_state(Arc::clone(&shared));
        let server = bound.serve(app);
        Ok(FakeMeta { server, shared })
    }

    /// The base URL to configure as `api_url`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A customer: their profile as `GET /<id>` answers it, and the network they are on (which
    /// sets the text limit and the outside-window subcode).
    pub fn add_profile(&self, net: Net, id: &str, profile: Value) {
        let mut p = profile;
        p["id"] = id.into();
        let mut s = self.shared.lock();
        s.profiles.insert(id.to_owned(), p);
        s.net.insert(id.to_owned(), net);
    }

    /// A file on the fake CDN; returns its URL (signed-looking, as Meta's are).
    pub fn add_file(&self, name: &str, mime: &str, bytes: Vec<u8>) -> String {
        let mut s = self.shared.lock();
        let n = s.next;
        s.next += 1;
        let key = format!("{n}_{name}");
        s.files.insert(key.clone(), (bytes, mime.to_owned()));
        format!("{}/cdn/{key}?_nc_cat=1&oh=00_fake&oe=00000000", self.url())
    }

    /// Sends to `recipient` fail as outside the 24-hour window from now on.
    pub fn outside_window(&self, recipient: &str, on: bool) {
        let mut s = self.shared.lock();
        if on {
            s.outside_window.insert(recipient.to_owned());
        } else {
            s.outside_window.remove(recipient);
        }
    }

    /// Sends to `recipient` fail with 551 "This person isn't available right now."
    pub fn unavailable(&self, recipient: &str, on: bool) {
        let mut s = self.shared.lock();
        if on {
            s.unavailable.insert(recipient.to_owned());
        } else {
            s.unavailable.remove(recipient);
        }
    }

    /// Keep CDN downloads hanging from now on.
    pub fn hold_cdn(&self) {
        self.shared.lock().hold_cdn = true;
    }

    /// Let held and future CDN downloads through.
    pub fn release_cdn(&self) {
        self.shared.lock().hold_cdn = false;
        self.shared.wake();
    }

    /// Downloads that were held (by path).
    pub fn held_downloads(&self) -> Vec<String> {
        self.shared.lock().held.clone()
    }

    /// Make the next `count` calls to `path` (`me/messages`, `me/message_attachments`, `cdn`
    /// for file downloads; any when `None`) fail. On `me/messages` only message sends count,
    /// not sender actions.
    pub fn fault(&self, path: Option<&str>, kind: FaultKind, count: u32) {
        self.shared.lock().faults.push(Fault {
            path: path.map(Into::into),
            kind,
            remaining: count,
        });
    }

    pub fn all_calls(&self) -> Vec<Call> {
        self.shared.calls()
    }

    /// The calls to one path (`me/messages`, `me/message_attachments`, a profile id).
    pub fn calls(&self, path: &str) -> Vec<Call> {
        self.shared.calls_where(|c| c.path == path)
    }

    /// What the Page sent (accepted messages only).
    pub fn sent(&self) -> Vec<Sent> {
        self.shared.lock().sent.clone()
    }

    /// An upload by its attachment id.
    pub fn attachment(&self, id: &str) -> Option<Upload> {
        self.shared.lock().attachments.get(id).cloned()
    }

    /// Wait (30 s at most) for a call to `path` matching `pred`.
    pub async fn wait_for_call(
        &self,
        path: &str,
        pred: impl Fn(&Call) -> bool,
    ) -> anyhow::Result<Call> {
        self.server
            .wait_for(
                &format!("a matching call to {path}"),
                server::DEFAULT_WAIT,
                || self.calls(path).into_iter().find(|c| pred(c)),
            )
            .await
    }

    /// A delivery of one `messaging` item to `net`'s webhook, as Meta wraps it.
    pub fn delivery(net: Net, item: Value) -> Value {
        json!({"object": net.object(), "entry": [{"id": net.account(), "time": now_ms(), "messaging": [item]}]})
    }

    /// A customer's `message` item (`fields`: `text`, `attachments`, `reply_to`, …).
    pub fn message(net: Net, from: &str, mid: &str, fields: Value) -> Value {
        let mut message = json!({"mid": mid});
        if let (Some(m), Value::Object(f)) = (message.as_object_mut(), fields) {
            m.extend(f);
        }
        json!({"sender": {"id": from}, "recipient": {"id": net.account()}, "timestamp": now_ms(), "message": message})
    }

    /// The customer taps quick reply `index` of the sent message `mid`, as the app does: a
    /// `messages` event whose `text` is the reply's title and `quick_reply.payload` its payload.
    pub fn tap_quick_reply(
        &self,
        net: Net,
        from: &str,
        sent_mid: &str,
        index: usize,
        new_mid: &str,
    ) -> anyhow::Result<Value> {
        let sent = self
            .sent()
            .into_iter()
            .find(|s| s.mid == sent_mid)
            .ok_or_else(|| anyhow::anyhow!("no sent message {sent_mid}"))?;
        let reply = &sent.message["quick_replies"][index];
        let (Some(title), Some(payload)) = (reply["title"].as_str(), reply["payload"].as_str())
        else {
            anyhow::bail!("no quick reply {index} on {sent_mid}: {}", sent.message);
        };
        Ok(Self::message(
            net,
            from,
            new_mid,
            json!({"text": title, "quick_reply": {"payload": payload}}),
        ))
    }

    /// Any other item (`reaction`, `read`, `delivery`, `postback`, `message_edit`).
    pub fn item(net: Net, from: &str, key: &str, value: Value) -> Value {
        let mut item = json!({"sender": {"id": from}, "recipient": {"id": net.account()}, "timestamp": now_ms()});
        item[key] = value;
        item
    }

    /// POST a body to a webhook signed with the app secret, as Meta does; the status.
    pub async fn deliver(&self, url: &str, body: &Value) -> anyhow::Result<u16> {
        let bytes = body.to_string().into_bytes();
        let signature = sign(APP_SECRET, &bytes);
        self.deliver_raw(url, bytes, Some(&signature)).await
    }

    /// POST raw bytes with the given signature header (or none).
    pub async fn deliver_raw(
        &self,
        url: &str,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> anyhow::Result<u16> {
        let signature: Vec<_> = signature
            .map(|s| ("X-Hub-Signature-256", s))
            .into_iter()
            .collect();
        let response = server::post_webhook(url, body, &signature, Duration::from_secs(30)).await?;
        Ok(response.status().as_u16())
    }

    fn record(shared: &Shared, mut call: Call, response: Response) -> Response {
        call.status = response.status().as_u16();
        shared.record(call);
        response
    }
}

fn token_of(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<String> {
    if let Some(t) = query.get("access_token") {
        return Some(t.clone());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    auth.strip_prefix("Bearer ").map(str::to_owned)
}

fn query_of(request: &Request) -> HashMap<String, String> {
    request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// The fault due for `path`, if any (consumed).
fn take_fault(shared: &Shared, path: &str) -> Option<Response> {
    let mut s = shared.lock();
    let i = s
        .faults
        .iter()
        .position(|f| f.remaining > 0 && f.path.as_deref().is_none_or(|p| p == path))?;
    s.faults[i].remaining -= 1;
    let kind = s.faults[i].kind.clone();
    Some(match kind {
        FaultKind::RateLimit { code } => {
            let message = match code {
                4 => "(#4) Application request limit reached",
                17 => "(#17) User request limit reached",
                32 => "(#32) Page request limit reached",
                _ => "(#613) Calls to this api have exceeded the rate limit.",
            };
            graph_error(400, code, None, message)
        }
        FaultKind::TooManyRequests { retry_after } => {
            let mut r = graph_error(429, 4, None, "(#4) Application request limit reached");
            if let Some(s) = retry_after {
                if let Ok(v) = header::HeaderValue::from_str(&s.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            r
        }
        FaultKind::ServerError => graph_error(500, 2, None, "Service temporarily unavailable"),
    })
}

fn new_call(
    method: &str,
    path: &str,
    query: HashMap<String, String>,
    token: Option<String>,
) -> Call {
    Call {
        method: method.into(),
        path: path.into(),
        query,
        body: Value::Null,
        upload: None,
        token,
        at: Instant::now(),
        status: 0,
    }
}

fn bad_token() -> Response {
    graph_error(
        400,
        190,
        None,
        "Invalid OAuth access token - Cannot parse access token",
    )
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Path(_version): Path<String>,
    request: Request,
) -> Response {
    let query = query_of(&request);
    let token = token_of(request.headers(), &query);
    let mut call = new_call("POST", "me/messages", query, token.clone());
    let body = match axum::body::to_bytes(request.into_body(), MAX_UPLOAD).await {
        Ok(b) => b,
        Err(_) => {
            return FakeMeta::record(
                &shared,
                call,
                bad_param("(#100) The request body could not be read"),
            )
        }
    };
    call.body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let response = send_api(&shared, &call, token.as_deref());
    FakeMeta::record(&shared, call, response)
}

fn send_api(shared: &Shared, call: &Call, token: Option<&str>) -> Response {
    if token != Some(PAGE_TOKEN) {
        return bad_token();
    }
    // Faults hit message sends only: sender actions (typing, mark_seen) come whenever an
    // operator types or reads, and must not use up a fault a test set for a message.
    if call.body.get("message").is_some() {
        if let Some(r) = take_fault(shared, "me/messages") {
            return r;
        }
    }
    let body = &call.body;
    let Some(recipient) = call.recipient().map(str::to_owned) else {
        return bad_param("(#100) The parameter recipient is required");
    };
    let net = shared.lock().net.get(&recipient).copied();
    let mut s = shared.lock();
    if !s.profiles.contains_key(&recipient) {
        return graph_error(400, 100, Some(2018001), "(#100) No matching user found");
    }
    if let Some(action) = body.get("sender_action").and_then(Value::as_str) {
        match action {
            "typing_on" | "typing_off" | "mark_seen" => {}
            "react" | "unreact" => {
                let payload = body.get("payload");
                let mid = payload.and_then(|p| p.get("message_id")).and_then(Value::as_str);
                if mid.is_none() {
                    return bad_param("(#100) The parameter payload[message_id] is required");
                }
                let reaction = payload.and_then(|p| p.get("reaction")).and_then(Value::as_str);
                if action == "react" && reaction.is_none_or(str::is_empty) {
                    return bad_param("(#100) The parameter payload[reaction] is required");
                }
            }
            other => return bad_param(&format!("(#100) Param sender_action must be one of {{typing_on, typing_off, mark_seen, react, unreact}}, got {other}")),
        }
        return (
            StatusCode::OK,
            axum::Json(json!({"recipient_id": recipient})),
        )
            .into_response();
    }
    let Some(message) = body.get("message").filter(|m| m.is_object()) else {
        return bad_param("(#100) The parameter message is required");
    };
    if body.get("messaging_type").and_then(Value::as_str).is_none() {
        return bad_param("(#100) The parameter messaging_type is required");
    }
    if s.unavailable.contains(&recipient) {
        return graph_error(
            400,
            551,
            Some(1545041),
            "This person isn't available right now.",
        );
    }
    if s.outside_window.contains(&recipient) {
        return match net {
            Some(Net::Instagram) => graph_error(
                400,
                10,
                Some(2534022),
                "This message is sent outside of allowed window.",
            ),
            _ => graph_error(
                400,
                10,
                Some(2018278),
                "(#10) This message is sent outside of allowed window.",
            ),
        };
    }
    let limit = if net == Some(Net::Instagram) {
        1000
    } else {
        2000
    };
    if let Some(text) = message.get("text") {
        let Some(text) = text.as_str().filter(|t| !t.is_empty()) else {
            return bad_param(
                "(#100) Param message[text] must be a non-empty UTF-8 encoded string",
            );
        };
        if text.chars().count() > limit {
            return bad_param(&format!(
                "(#100) Length of param message[text] must be less than or equal to {limit}"
            ));
        }
    } else if let Some(attachment) = message.get("attachment") {
        let payload = attachment.get("payload");
        if let Some(id) = payload
            .and_then(|p| p.get("attachment_id"))
            .and_then(Value::as_str)
        {
            if !s.attachments.contains_key(id) {
                return bad_param("(#100) Invalid attachment_id");
            }
        } else if payload
            .and_then(|p| p.get("url"))
            .and_then(Value::as_str)
            .is_none()
        {
            return bad_param(
                "(#100) Param message[attachment][payload] must contain url or attachment_id",
            );
        }
    } else {
        return bad_param("(#100) Must send either message or sender_action");
    }
    // Quick replies (developers.facebook.com/docs/messenger-platform/reference/buttons/quick-replies):
    // at most 13; `content_type` text, user_phone_number or user_email; a text one needs a
    // non-empty `title` (20 characters) and a `payload` (1000 characters).
    if let Some(replies) = message.get("quick_replies") {
        let Some(replies) = replies.as_array().filter(|r| !r.is_empty()) else {
            return bad_param("(#100) Param message[quick_replies] must be a non-empty array");
        };
        if replies.len() > 13 {
            return bad_param(
                "(#100) param message[quick_replies] has too many elements. Maximum is 13.",
            );
        }
        for r in replies {
            match r.get("content_type").and_then(Value::as_str) {
                Some("text") => {
                    let title = r.get("title").and_then(Value::as_str).unwrap_or_default();
                    if title.trim().is_empty() {
                        return bad_param("(#100) param message[quick_replies][title] must be non-empty for content_type text");
                    }
                    if title.chars().count() > 20 {
                        return bad_param("(#100) Length of param message[quick_replies][title] must be less than or equal to 20");
                    }
                    let payload = match r.get("payload") {
                        Some(Value::String(p)) => p.clone(),
                        Some(Value::Number(n)) => n.to_string(),
                        _ => return bad_param("(#100) param message[quick_replies][payload] is required for content_type text"),
                    };
                    if payload.is_empty() || payload.chars().count() > 1000 {
                        return bad_param("(#100) Length of param message[quick_replies][payload] must be between 1 and 1000");
                    }
                }
                Some("user_phone_number" | "user_email") => {}
                _ => return bad_param("(#100) param message[quick_replies][content_type] must be one of {text, user_phone_number, user_email}"),
            }
        }
        if message.get("text").is_none() && message.get("attachment").is_none() {
            return bad_param("(#100) quick_replies need a text or an attachment");
        }
    }
    let n = s.next;
    s.next += 1;
    let mid = match net {
        Some(Net::Instagram) => format!("aWdfZAG1faXRlbToxOklHTWVzc2FnZAU{n:08}ZDZD"),
        _ => format!("m_FakeSent{n:08}"),
    };
    s.sent.push(Sent {
        mid: mid.clone(),
        recipient: recipient.clone(),
        message: message.clone(),
    });
    (
        StatusCode::OK,
        axum::Json(json!({"recipient_id": recipient, "message_id": mid})),
    )
        .into_response()
}

async fn upload(
    State(shared): State<Arc<Shared>>,
    Path(_version): Path<String>,
    request: Request,
) -> Response {
    let query = query_of(&request);
    let token = token_of(request.headers(), &query);
    let mut call = new_call("POST", "me/message_attachments", query, token.clone());
    let multipart = match Multipart::from_request(request, &()).await {
        Ok(m) => m,
        Err(_) => {
            return FakeMeta::record(
                &shared,
                call,
                bad_param("(#100) Upload must be multipart/form-data"),
            )
        }
    };
    let (fields, upload) = match read_form(multipart).await {
        Ok(x) => x,
        Err(e) => return FakeMeta::record(&shared, call, bad_param(&e)),
    };
    call.body = Value::Object(fields);
    call.upload = upload.clone();
    if token.as_deref() != Some(PAGE_TOKEN) {
        return FakeMeta::record(&shared, call, bad_token());
    }
    if let Some(r) = take_fault(&shared, "me/message_attachments") {
        return FakeMeta::record(&shared, call, r);
    }
    let kind = call
        .body
        .get("message")
        .and_then(|m| m.get("attachment"))
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str);
    if !matches!(kind, Some("image" | "audio" | "video" | "file")) {
        return FakeMeta::record(
            &shared,
            call,
            bad_param(
                "(#100) Param message[attachment][type] must be one of {image, audio, video, file}",
            ),
        );
    }
    let Some(upload) = upload.filter(|u| u.field == "filedata" && !u.bytes.is_empty()) else {
        return FakeMeta::record(
            &shared,
            call,
            bad_param("(#100) Upload attachment failure: no filedata"),
        );
    };
    let id = {
        let mut s = shared.lock();
        let n = s.next;
        s.next += 1;
        let id = format!("{}", 1_857_000_000_000_000u64 + n);
        s.attachments.insert(id.clone(), upload);
        id
    };
    FakeMeta::record(
        &shared,
        call,
        (StatusCode::OK, axum::Json(json!({"attachment_id": id}))).into_response(),
    )
}

async fn read_form(
    mut multipart: Multipart,
) -> Result<(Map<String, Value>, Option<Upload>), String> {
    let mut fields = Map::new();
    let mut upload = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| format!("(#100) bad multipart body: {e}"))?
    {
        let name = field.name().unwrap_or("").to_owned();
        if let Some(file_name) = field.file_name().map(str::to_owned) {
            let mime = field
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_owned();
            let bytes = field
                .bytes()
                .await
                .map_err(|e| format!("(#100) bad file part: {e}"))?
                .to_vec();
            upload = Some(Upload {
                field: name,
                name: file_name,
                mime,
                bytes,
            });
        } else {
            let text = field
                .text()
                .await
                .map_err(|e| format!("(#100) bad text part: {e}"))?;
            let value = serde_json::from_str::<Value>(&text)
                .ok()
                .filter(|v| v.is_object())
                .unwrap_or(Value::String(text));
            fields.insert(name, value);
        }
    }
    Ok((fields, upload))
}

async fn profile(
    State(shared): State<Arc<Shared>>,
    Path((_version, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let query = query_of(&request);
    let token = token_of(request.headers(), &query);
    let call = new_call("GET", &id, query.clone(), token.clone());
    if token.as_deref() != Some(PAGE_TOKEN) {
        return FakeMeta::record(&shared, call, bad_token());
    }
    // With a Page access token, `me` is the Page itself.
    let page = (id == "me" || id == PAGE_ID).then(|| {
        json!({"id": PAGE_ID, "name": PAGE_NAME, "category": "Product/service",
            "instagram_business_account": {"id": IG_ID}})
    });
    let known = page.or_else(|| shared.lock().profiles.get(&id).cloned());
    let Some(p) = known else {
        let message = format!(
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
        );
        return FakeMeta::record(&shared, call, graph_error(400, 100, Some(33), &message));
    };
    let id = p
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or(&id)
        .to_owned();
    let mut out = json!({"id": id});
    for field in query
        .get("fields")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|f| !f.is_empty())
    {
        if let Some(v) = p.get(field) {
            out[field] = v.clone();
        }
    }
    FakeMeta::record(
        &shared,
        call,
        (StatusCode::OK, axum::Json(out)).into_response(),
    )
}

async fn cdn(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let call = new_call("GET", &format!("cdn/{name}"), query_of(&request), None);
    loop {
        let released = shared.changed.notified();
        {
            let mut s = shared.lock();
            if !s.hold_cdn {
                break;
            }
            s.held.push(call.path.clone());
        }
        released.await;
    }
    if let Some(r) = take_fault(&shared, "cdn") {
        return FakeMeta::record(&shared, call, r);
    }
    let file = shared.lock().files.get(&name).cloned();
    let response = match file {
        Some((bytes, mime)) => ([(header::CONTENT_TYPE, mime)], bytes).into_response(),
        None => (StatusCode::NOT_FOUND, "URL signature expired").into_response(),
    };
    FakeMeta::record(&shared, call, response)
}
