//! A wire-level fake of VK for the bridge's VK channel: the API methods it calls through its
//! configurable `api_url`, the upload servers those methods hand out, the attachment URLs
//! customers' files live at, and the Callback API deliveries VK makes to the bridge.
//!
//! It speaks the documented protocol (<https://dev.vk.com/en/api/api-requests>,
//! <https://dev.vk.com/en/api/callback/getting-started>):
//!
//! * `POST|GET <base>/method/<name>` with parameters as a query string or url-encoded form; the
//!   community token as `access_token` (or `Authorization: Bearer`), the version as `v`. Answers
//!   are HTTP 200 with `{"response": …}` or `{"error": {"error_code": N, "error_msg": "…",
//!   "request_params": […]}}`: 5 for a wrong token, 8 without `v`, 3 for an unknown method, 100
//!   for missing parameters.
//! * `messages.send`: `peer_ids` (answering `[{"peer_id","message_id","conversation_message_id"}]`
//!   with a per-peer `error` for a customer who has not allowed messages) or `peer_id` (answering
//!   the message id, error 901 for that customer); `random_id` is required and a repeated
//!   (peer, random_id) returns the message already sent instead of a new one, as VK does;
//!   attachments must be ones the community uploaded; `forward` must name a message of the peer.
//!   Each message sent is echoed to the callback URL as `message_reply`, as VK does.
//! * `keyboard` on `messages.send` (<https://dev.vk.com/en/api/bots/development/keyboard>):
//!   JSON `{"inline", "one_time", "buttons": [[button…]…]}`; an inline keyboard has at most 6
//!   rows (a normal one 10) of at most 5 buttons; each button's `action.type` is one VK knows;
//!   `text` and `callback` buttons need a `label` of at most 40 characters, and a `payload`, when
//!   given, must be JSON of at most 255 characters (error 911 "Keyboard format is invalid"
//!   otherwise). [`FakeVk::press`] presses a `callback` button of a sent message as VK does:
//!   a `message_event` with a fresh `event_id` and the button's payload as an object.
//! * `messages.sendMessageEventAnswer` (`event_id`, `user_id`, `peer_id` required): only for an
//!   `event_id` VK delivered, by the same user in the same peer, within a minute, once
//!   (error 100 otherwise); [`FakeVk::answered_events`] lists them.
//! * `messages.edit`, `messages.delete` (`cmids`, `delete_for_all`), `messages.setActivity`,
//!   `messages.markAsRead`, `users.get` (`photo_200`).
//! * `groups.getById` (with the community token and no `group_id`: the token's community, as
//!   `{"groups": […], "profiles": []}`) and `groups.getTokenPermissions` (`{"mask", "permissions":
//!   [{"setting", "name"}]}`; [`FakeVk::set_token_rights`] changes them).
//! * Uploads: `photos.getMessagesUploadServer` → POST multipart `photo` to the upload URL →
//!   `{"server","photo","hash"}` → `photos.saveMessagesPhoto`; `docs.getMessagesUploadServer` →
//!   POST multipart `file` → `{"file"}` → `docs.save`.
//! * Attachment files are served at `<base>/files/<name>`.
//!
//! For tests: [`FakeVk::message_new`] and friends build Callback API events (with the secret and
//! an `event_id`), [`FakeVk::post_callback`] delivers one; [`FakeVk::calls`] records every request
//! to assert on; [`FakeVk::fault`] makes the next N calls of a method fail with a VK error code;
//! [`FakeVk::deny`] makes a customer one who has not allowed messages from the community.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::server::{self, FakeServer};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Map, Value};

pub const TOKEN: &str = "vk1.a.FAKE_community_token-for_switchboard_tests";
pub const GROUP_ID: i64 = 193668024;
pub const SECRET: &str = "FAKE_CALLBACK_SECRET";
pub const CONFIRMATION: &str = "c0ffee42";
/// The community's name (`groups.getById`).
pub const GROUP_NAME: &str = "Acme Support";
/// The rights of the test token: what a community token made for a chat bot has.
pub const DEFAULT_RIGHTS: &[&str] = &["messages", "photos", "docs", "manage"];

/// A community token right's bit (dev.vk.com, "Access rights for a community token").
fn right_bit(name: &str) -> u64 {
    match name {
        "stories" => 1,
        "photos" => 1 << 2,
        "app_widget" => 1 << 6,
        "messages" => 1 << 12,
        "docs" => 1 << 17,
        "manage" => 1 << 18,
        _ => 0,
    }
}

/// A VK user in tests.
#[derive(Clone, Debug)]
pub struct VkUser {
    pub id: i64,
    pub first_name: String,
    pub last_name: String,
}

impl VkUser {
    pub fn new(id: i64, first: &str, last: &str) -> VkUser {
        VkUser {
            id,
            first_name: first.into(),
            last_name: last.into(),
        }
    }
}

/// A file uploaded to the fake in a multipart request.
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
    pub params: Map<String, Value>,
    pub upload: Option<Upload>,
    pub at: Instant,
    /// The VK error code answered, if the call failed.
    pub error: Option<i64>,
}

impl Call {
    pub fn str(&self, name: &str) -> Option<String> {
        match self.params.get(name)? {
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        self.str(name)?.trim().parse().ok()
    }

    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

#[derive(Clone, Debug)]
struct Fault {
    method: String,
    code: i64,
    remaining: u32,
}

#[derive(Default)]
struct Inner {
    faults: Vec<Fault>,
    users: HashMap<i64, (VkUser, Option<String>)>,
    denied: HashSet<i64>,
    next_cmid: HashMap<i64, i64>,
    /// Messages the community sent, by (peer, cmid).
    messages: HashMap<(i64, i64), Value>,
    /// Customers' messages, by (peer, cmid).
    customer_messages: HashSet<(i64, i64)>,
    random_ids: HashMap<(i64, i64), i64>,
    files: HashMap<String, Vec<u8>>,
    /// Uploaded, not yet saved: key → upload.
    pending_uploads: HashMap<String, Upload>,
    photos: HashMap<i64, Upload>,
    docs: HashMap<i64, Upload>,
    next_id: i64,
    callback_url: Option<String>,
    /// `messages.send` calls to answer only after a long pause (after storing the message).
    hang_sends: u32,
    /// Attachment downloads wait while this is set; the names asked for meanwhile.
    hold_files: bool,
    held: Vec<String>,
    /// `message_reply` echoes answered by the bridge: (cmid, status).
    echoes: Vec<(i64, u16)>,
    base: String,
    /// The token's rights (`groups.getTokenPermissions`) when not the default
    /// ([`DEFAULT_RIGHTS`]).
    token_rights: Option<Vec<&'static str>>,
    /// `message_event`s delivered: event_id → (user, peer, when).
    presses: HashMap<String, (i64, i64, Instant)>,
    /// `event_id`s answered with `messages.sendMessageEventAnswer`.
    answered: Vec<String>,
}

type Shared = server::Shared<Inner, Call>;

/// The fake VK, on 127.0.0.1 and a free port; stops when dropped.
pub struct FakeVk {
    server: FakeServer,
    shared: Arc<Shared>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn vk_error(code: i64, message: &str, method: &str) -> Response {
    let body = json!({"error": {"error_code": code, "error_msg": message,
        "request_params": [{"key": "method", "value": method}, {"key": "oauth", "value": "1"}, {"key": "v", "value": "5.199"}]}});
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn vk_ok(response: Value) -> Response {
    (StatusCode::OK, axum::Json(json!({"response": response}))).into_response()
}

fn message_for(code: i64) -> &'static str {
    match code {
        5 => "User authorization failed: invalid access_token (4).",
        6 => "Too many requests per second",
        9 => "Flood control",
        10 => "Internal server error",
        901 => "Can't send messages for users without permission",
        902 => "Can't send messages to this user due to their privacy settings",
        _ => "One of the parameters specified was missing or invalid",
    }
}

impl FakeVk {
    pub async fn start() -> anyhow::Result<FakeVk> {
        let bound = FakeServer::bind("VK").await?;
        let shared = bound.shared(Inner {
            next_id: 457_240_000,
            ..Inner::default()
        });
        let app = Router::new()
            .route("/method/{name}", any(method))
            .route("/upload/{kind}", post(upload))
            .route("/files/{name}", get(file))
            .layer(DefaultBodyLimit::max(60 * 1024 * 1024))
            .with_state(Arc::clone(&shared));
        shared.lock().base = bound.url();
        let server = bound.serve(app);
        Ok(FakeVk { server, shared })
    }

    /// The base URL of the fake; `api_url` is `<url>/method`.
    /// The rights `groups.getTokenPermissions` reports for the token from now on.
    pub fn set_token_rights(&self, rights: &[&'static str]) {
        self.shared.lock().token_rights = Some(rights.to_vec());
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn api_url(&self) -> String {
        format!("{}/method", self.url())
    }

    /// Register a user (for `users.get`), with a profile photo when `photo` is given.
    pub fn add_user(&self, user: &VkUser, photo: Option<Vec<u8>>) {
        let url = photo.map(|bytes| self.add_file(&format!("photo200_{}.jpg", user.id), bytes));
        self.shared
            .lock()
            .users
            .insert(user.id, (user.clone(), url));
    }

    /// Serve `bytes` at `<base>/files/<name>`; returns the URL.
    pub fn add_file(&self, name: &str, bytes: Vec<u8>) -> String {
        let mut s = self.shared.lock();
        s.files.insert(name.to_owned(), bytes);
        format!("{}/files/{name}", s.base)
    }

    /// Where VK delivers events (for the `message_reply` echoes of what the community sends).
    pub fn set_callback_url(&self, url: &str) {
        self.shared.lock().callback_url = Some(url.to_owned());
    }

    /// The customer has not allowed messages from the community (901 on send).
    pub fn deny(&self, user: i64) {
        self.shared.lock().denied.insert(user);
    }

    /// The next `count` `messages.send` calls store the message but answer only 20 s later.
    pub fn hang_sends(&self, count: u32) {
        self.shared.lock().hang_sends = count;
    }

    /// Keep attachment downloads hanging until [`FakeVk::release_files`].
    pub fn hold_files(&self) {
        self.shared.lock().hold_files = true;
    }

    pub fn release_files(&self) {
        self.shared.lock().hold_files = false;
    }

    /// Files whose download was asked for while held.
    pub fn held_files(&self) -> Vec<String> {
        self.shared.lock().held.clone()
    }

    /// Make the next `count` calls of `method` fail with VK error `code`.
    pub fn fault(&self, method: &str, code: i64, count: u32) {
        self.shared.lock().faults.push(Fault {
            method: method.into(),
            code,
            remaining: count,
        });
    }

    pub fn all_calls(&self) -> Vec<Call> {
        self.shared.calls()
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.shared.calls_where(|c| c.method == method)
    }

    /// Waits until a call of `method` matching `pred` was received.
    pub async fn wait_for_call(
        &self,
        method: &str,
        pred: impl Fn(&Call) -> bool,
    ) -> anyhow::Result<Call> {
        self.server
            .wait_for(
                &format!("a matching {method} call"),
                server::DEFAULT_WAIT,
                || self.calls(method).into_iter().find(|c| pred(c)),
            )
            .await
    }

    /// The `message_reply` echoes delivered so far: (cmid, the bridge's status).
    pub fn echoes(&self) -> Vec<(i64, u16)> {
        self.shared.lock().echoes.clone()
    }

    /// The community's messages in `peer` (edits applied, deletions removed), by cmid.
    pub fn community_messages(&self, peer: i64) -> Vec<(i64, Value)> {
        let s = self.shared.lock();
        let mut v: Vec<(i64, Value)> = s
            .messages
            .iter()
            .filter(|((p, _), _)| *p == peer)
            .map(|((_, c), m)| (*c, m.clone()))
            .collect();
        v.sort_by_key(|(c, _)| *c);
        v
    }

    /// A file the community uploaded, by its attachment string (`photo-1_2`, `doc-1_3`).
    pub fn uploaded(&self, attachment: &str) -> Option<Upload> {
        let s = self.shared.lock();
        let (kind, rest) = if let Some(r) = attachment.strip_prefix("photo") {
            ("photo", r)
        } else {
            ("doc", attachment.strip_prefix("doc")?)
        };
        let id: i64 = rest.split('_').nth(1)?.parse().ok()?;
        if kind == "photo" {
            s.photos.get(&id).cloned()
        } else {
            s.docs.get(&id).cloned()
        }
    }

    fn next_cmid(&self, peer: i64) -> i64 {
        let mut s = self.shared.lock();
        let n = s.next_cmid.entry(peer).or_insert(0);
        *n += 1;
        let c = *n;
        s.customer_messages.insert((peer, c));
        c
    }

    fn envelope(kind: &str, object: Value) -> Value {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        json!({"group_id": GROUP_ID, "type": kind, "event_id": format!("{:040x}", 0xe0e0_0000_u64 + n), "v": "5.199",
               "object": object, "secret": SECRET})
    }

    /// `type: confirmation`, as VK sends it when the server is added.
    pub fn confirmation(&self) -> Value {
        json!({"type": "confirmation", "group_id": GROUP_ID})
    }

    /// A `message_new` event from `user` in their dialogue with the community; `fields` are
    /// merged into the message (`text`, `attachments`, `reply_message`, `fwd_messages`, …).
    /// Returns the event and the message's `conversation_message_id`.
    pub fn message_new(&self, user: &VkUser, fields: Value) -> (Value, i64) {
        let cmid = self.next_cmid(user.id);
        let mut message = json!({"date": now_secs(), "from_id": user.id, "id": 0, "out": 0, "version": 10_000_000 + cmid,
            "fwd_messages": [], "important": false, "is_hidden": false, "attachments": [], "conversation_message_id": cmid,
            "peer_id": user.id, "random_id": 0, "text": ""});
        if let (Some(m), Value::Object(f)) = (message.as_object_mut(), fields) {
            m.extend(f);
        }
        let client_info = json!({"button_actions": ["text", "vkpay", "open_app", "location", "open_link", "callback"],
            "keyboard": true, "inline_keyboard": true, "carousel": true, "lang_id": 0});
        (
            Self::envelope(
                "message_new",
                json!({"message": message, "client_info": client_info}),
            ),
            cmid,
        )
    }

    /// A `message_edit` event: the customer changed message `cmid`.
    pub fn message_edit(&self, user: &VkUser, cmid: i64, text: &str) -> Value {
        Self::envelope(
            "message_edit",
            json!({"date": now_secs() - 5, "update_time": now_secs(), "from_id": user.id, "id": 0,
            "out": 0, "attachments": [], "conversation_message_id": cmid, "peer_id": user.id, "text": text, "fwd_messages": []}),
        )
    }

    /// A `message_read` event: the customer read the community's messages up to `cmid`.
    pub fn message_read(&self, user: &VkUser, cmid: i64) -> Value {
        Self::envelope(
            "message_read",
            json!({"from_id": user.id, "peer_id": user.id, "read_message_id": 0, "conversation_message_id": cmid}),
        )
    }

    /// Press button (`row`, `col`) of the community's message `cmid` to `user`, as VK does: a
    /// `message_event` carrying the button's payload (parsed back to an object) and a fresh
    /// `event_id` the community must answer within a minute. Returns the event and that id.
    pub fn press(
        &self,
        user: &VkUser,
        cmid: i64,
        row: usize,
        col: usize,
    ) -> anyhow::Result<(Value, String)> {
        let mut s = self.shared.lock();
        let message = s
            .messages
            .get(&(user.id, cmid))
            .ok_or_else(|| anyhow::anyhow!("no message {cmid} to {}", user.id))?;
        let button = &message["keyboard"]["buttons"][row][col]["action"];
        anyhow::ensure!(
            button["type"] == "callback",
            "not a callback button: {message}"
        );
        let payload: Value = match button["payload"].as_str() {
            Some(p) => serde_json::from_str(p)?,
            None => json!({}),
        };
        static PRESSES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = PRESSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let event_id = format!("{:012x}", 0x5eed_0000_u64 + n);
        s.presses
            .insert(event_id.clone(), (user.id, user.id, Instant::now()));
        let event = Self::envelope(
            "message_event",
            json!({"user_id": user.id, "peer_id": user.id, "event_id": event_id,
                   "payload": payload, "conversation_message_id": cmid}),
        );
        Ok((event, event_id))
    }

    /// `event_id`s the community answered (`messages.sendMessageEventAnswer`).
    pub fn answered_events(&self) -> Vec<String> {
        self.shared.lock().answered.clone()
    }

    /// The keyboard of the community's message `cmid` to `peer` (`Null` without one).
    pub fn keyboard_of(&self, peer: i64, cmid: i64) -> Value {
        self.shared
            .lock()
            .messages
            .get(&(peer, cmid))
            .map(|m| m["keyboard"].clone())
            .unwrap_or(Value::Null)
    }

    /// Any other event (`message_deny`, `message_event`, …).
    pub fn event(&self, kind: &str, object: Value) -> Value {
        Self::envelope(kind, object)
    }

    /// A photo attachment with a small and a large size.
    pub fn photo_attachment(&self, owner: i64, small: &str, big: &str) -> Value {
        json!({"type": "photo", "photo": {"album_id": -3, "date": now_secs(), "id": 457_239_001, "owner_id": owner,
            "access_key": "FAKEACCESSKEY", "sizes": [
                {"height": 75, "type": "s", "width": 56, "url": small},
                {"height": 1280, "type": "z", "width": 960, "url": big}], "text": "", "has_tags": false}})
    }

    /// A document attachment.
    pub fn doc_attachment(
        &self,
        owner: i64,
        title: &str,
        ext: &str,
        url: &str,
        size: usize,
    ) -> Value {
        json!({"type": "doc", "doc": {"id": 670_000_001, "owner_id": owner, "title": title, "size": size, "ext": ext,
            "date": now_secs(), "type": 1, "url": url, "access_key": "FAKEACCESSKEY"}})
    }

    /// A voice message attachment.
    pub fn audio_message_attachment(&self, owner: i64, ogg: &str) -> Value {
        json!({"type": "audio_message", "audio_message": {"duration": 3, "id": 700_000_001, "link_ogg": ogg,
            "link_mp3": ogg.replace(".ogg", ".mp3"), "owner_id": owner, "access_key": "FAKEACCESSKEY", "waveform": [0, 3, 7]}})
    }

    /// POST an event to the callback URL as VK does; returns (status, body).
    pub async fn post_callback(&self, url: &str, event: &Value) -> anyhow::Result<(u16, String)> {
        post_json(url, event).await
    }
}

async fn post_json(url: &str, event: &Value) -> anyhow::Result<(u16, String)> {
    let response =
        server::post_webhook(url, event.to_string(), &[], Duration::from_secs(30)).await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

/// Parameters from the query string and the body, whatever its encoding.
async fn parameters(request: Request) -> Result<(Map<String, Value>, Option<Upload>), String> {
    let mut params = Map::new();
    if let Some(q) = request.uri().query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            params.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    let headers = request.headers().clone();
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        params
            .entry("access_token")
            .or_insert(Value::String(token.to_owned()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut upload = None;
    if content_type.starts_with("multipart/form-data") {
        let mut form = axum::extract::Multipart::from_request(request, &())
            .await
            .map_err(|e| e.to_string())?;
        while let Some(field) = form.next_field().await.map_err(|e| e.to_string())? {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let mime = field
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_owned();
            let bytes = field.bytes().await.map_err(|e| e.to_string())?;
            match file_name {
                Some(file_name) => {
                    upload = Some(Upload {
                        field: name,
                        name: file_name,
                        mime,
                        bytes: bytes.to_vec(),
                    })
                }
                None => {
                    params.insert(
                        name,
                        Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                    );
                }
            }
        }
    } else {
        let body = Bytes::from_request(request, &())
            .await
            .map_err(|e| e.to_string())?;
        for (k, v) in url::form_urlencoded::parse(&body) {
            params.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    Ok((params, upload))
}

fn record(
    shared: &Shared,
    method: &str,
    params: Map<String, Value>,
    upload: Option<Upload>,
    error: Option<i64>,
) {
    shared.record(Call {
        method: method.to_owned(),
        params,
        upload,
        at: Instant::now(),
        error,
    });
}

/// The VK error code in an answer, if any (to record).
fn error_of(body: &Value) -> Option<i64> {
    body.get("error")
        .and_then(|e| e.get("error_code"))
        .and_then(Value::as_i64)
        .or_else(|| {
            // A per-peer error inside messages.send's array.
            body.get("response")?
                .as_array()?
                .iter()
                .find_map(|i| i.get("error")?.get("code")?.as_i64())
        })
}

async fn method(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let (params, upload) = match parameters(request).await {
        Ok(p) => p,
        Err(e) => {
            record(&shared, &name, Map::new(), None, Some(100));
            return vk_error(
                100,
                &format!("One of the parameters specified was missing or invalid: {e}"),
                &name,
            );
        }
    };
    let body = answer(&shared, &name, &params);
    record(&shared, &name, params, upload, error_of(&body));
    let hang = name == "messages.send" && {
        let mut s = shared.lock();
        let hang = s.hang_sends > 0;
        s.hang_sends = s.hang_sends.saturating_sub(1);
        hang
    };
    if hang {
        // VK has the message; the answer is what gets lost.
        tokio::time::sleep(Duration::from_secs(20)).await;
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// The longest `message` of `messages.send` / `messages.edit`: VK answers longer ones with
/// error 914 "Message is too long" (dev.vk.com/ru/reference/errors; the limit is 4096 characters).
pub const MAX_TEXT_CHARS: usize = 4096;

fn err(code: i64, message: &str, method: &str) -> Value {
    json!({"error": {"error_code": code, "error_msg": message,
        "request_params": [{"key": "method", "value": method}, {"key": "oauth", "value": "1"}, {"key": "v", "value": "5.199"}]}})
}

fn p_str<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    params.get(name).and_then(Value::as_str)
}

fn p_i64(params: &Map<String, Value>, name: &str) -> Option<i64> {
    p_str(params, name)?.trim().parse().ok()
}

fn answer(shared: &Arc<Shared>, method: &str, params: &Map<String, Value>) -> Value {
    if p_str(params, "access_token") != Some(TOKEN) {
        return err(5, message_for(5), method);
    }
    if p_str(params, "v").is_none() {
        return err(8, "Invalid request: v (version) is required", method);
    }
    {
        let mut s = shared.lock();
        if let Some(f) = s
            .faults
            .iter_mut()
            .find(|f| f.remaining > 0 && f.method == method)
        {
            f.remaining -= 1;
            let code = f.code;
            return err(code, message_for(code), method);
        }
    }
    let ok = |v: Value| json!({"response": v});
    let missing = |what: &str| {
        err(100, &format!("One of the parameters specified was missing or invalid: {what} is a required parameter"), method)
    };
    match method {
        // With a community token and no `group_id`: the token's own community. Since 5.194 the
        // answer is `{"groups": […], "profiles": […]}`.
        "groups.getById" => {
            let asked = p_str(params, "group_id").or_else(|| p_str(params, "group_ids"));
            if asked.is_some_and(|g| g.trim() != GROUP_ID.to_string()) {
                return err(100, "One of the parameters specified was missing or invalid: group_ids is undefined", method);
            }
            ok(
                json!({"groups": [{"id": GROUP_ID, "name": GROUP_NAME, "screen_name": format!("club{GROUP_ID}"),
                "is_closed": 0, "type": "group", "is_admin": 0, "is_member": 0, "is_advertiser": 0,
                "photo_50": "https://vk.com/images/community_50.png"}], "profiles": []}),
            )
        }
        "groups.getTokenPermissions" => {
            let rights = shared
                .lock()
                .token_rights
                .clone()
                .unwrap_or_else(|| DEFAULT_RIGHTS.to_vec());
            let mask: u64 = rights.iter().map(|r| right_bit(r)).sum();
            let permissions: Vec<Value> = rights
                .iter()
                .map(|r| json!({"setting": right_bit(r), "name": r}))
                .collect();
            ok(json!({"mask": mask, "permissions": permissions}))
        }
        "messages.send" => send(shared, params, method),
        "messages.sendMessageEventAnswer" => {
            let (Some(event_id), Some(user), Some(peer)) = (
                p_str(params, "event_id"),
                p_i64(params, "user_id"),
                p_i64(params, "peer_id"),
            ) else {
                return missing("event_id, user_id, peer_id");
            };
            if let Some(data) = p_str(params, "event_data") {
                let ok_data = serde_json::from_str::<Value>(data).is_ok_and(|d| {
                    matches!(
                        d["type"].as_str(),
                        Some("show_snackbar" | "open_link" | "open_app")
                    )
                });
                if !ok_data {
                    return err(100, "One of the parameters specified was missing or invalid: event_data is invalid", method);
                }
            }
            let mut s = shared.lock();
            let valid = s.presses.get(event_id).is_some_and(|(u, p, at)| {
                *u == user && *p == peer && at.elapsed() < Duration::from_secs(60)
            });
            if !valid || s.answered.iter().any(|a| a == event_id) {
                return err(
                    100,
                    "One of the parameters specified was missing or invalid: event_id is invalid",
                    method,
                );
            }
            s.answered.push(event_id.to_owned());
            ok(json!(1))
        }
        "messages.edit" => {
            let (Some(peer), Some(cmid)) = (
                p_i64(params, "peer_id"),
                p_i64(params, "conversation_message_id"),
            ) else {
                return missing("peer_id, conversation_message_id");
            };
            if p_str(params, "message").is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS) {
                return err(914, "Message is too long", method);
            }
            let mut s = shared.lock();
            match s.messages.get_mut(&(peer, cmid)) {
                Some(m) => {
                    m["text"] = p_str(params, "message").unwrap_or("").into();
                    m["update_time"] = now_secs().into();
                    ok(json!(1))
                }
                None => err(
                    100,
                    "One of the parameters specified was missing or invalid: message not found",
                    method,
                ),
            }
        }
        "messages.delete" => {
            let Some(peer) = p_i64(params, "peer_id") else {
                return missing("peer_id");
            };
            let Some(cmids) = p_str(params, "cmids") else {
                return missing("cmids");
            };
            let mut s = shared.lock();
            let mut out = Vec::new();
            for c in cmids
                .split(',')
                .filter_map(|c| c.trim().parse::<i64>().ok())
            {
                let removed = s.messages.remove(&(peer, c)).is_some();
                if removed {
                    out.push(json!({"peer_id": peer, "conversation_message_id": c, "response": 1}));
                } else {
                    out.push(json!({"peer_id": peer, "conversation_message_id": c, "error": {"code": 924, "description": "Can't delete this message for everybody"}}));
                }
            }
            ok(Value::Array(out))
        }
        "messages.setActivity" | "messages.markAsRead" => {
            if p_i64(params, "peer_id").is_none() {
                return missing("peer_id");
            }
            ok(json!(1))
        }
        "users.get" => {
            let s = shared.lock();
            let fields = p_str(params, "fields").unwrap_or("");
            let ids = p_str(params, "user_ids").unwrap_or("");
            let users: Vec<Value> = ids
                .split(',')
                .filter_map(|i| i.trim().parse::<i64>().ok())
                .filter_map(|id| s.users.get(&id))
                .map(|(u, photo)| {
                    let mut v = json!({"id": u.id, "first_name": u.first_name, "last_name": u.last_name, "can_access_closed": true, "is_closed": false});
                    if fields.split(',').any(|f| f.trim() == "photo_200") {
                        v["photo_200"] = photo.clone().unwrap_or_else(|| "https://vk.com/images/camera_200.png".into()).into();
                    }
                    v
                })
                .collect();
            ok(Value::Array(users))
        }
        "photos.getMessagesUploadServer" => {
            let s = shared.lock();
            ok(
                json!({"upload_url": format!("{}/upload/photo?act=do_add&mid=0&aid=-14&gid={GROUP_ID}&hash=FAKE&rhash=FAKE", s.base),
                      "album_id": -14, "group_id": GROUP_ID}),
            )
        }
        "docs.getMessagesUploadServer" => {
            let Some(_peer) = p_i64(params, "peer_id") else {
                return missing("peer_id");
            };
            let s = shared.lock();
            ok(
                json!({"upload_url": format!("{}/upload/doc?act=add_doc&mid=0&gid={GROUP_ID}&hash=FAKE&rhash=FAKE", s.base)}),
            )
        }
        "photos.saveMessagesPhoto" => {
            let (Some(photo), Some(server), Some(hash)) = (
                p_str(params, "photo"),
                p_i64(params, "server"),
                p_str(params, "hash"),
            ) else {
                return missing("photo, server, hash");
            };
            let mut s = shared.lock();
            let key = serde_json::from_str::<Value>(photo)
                .ok()
                .and_then(|v| v[0]["photo"].as_str().map(str::to_owned))
                .unwrap_or_default();
            if server != 852_536 || hash != format!("h{key}") {
                return err(
                    100,
                    "One of the parameters specified was missing or invalid: photo hash is invalid",
                    method,
                );
            }
            let Some(upload) = s.pending_uploads.remove(&key) else {
                return err(
                    100,
                    "One of the parameters specified was missing or invalid: photo is undefined",
                    method,
                );
            };
            s.next_id += 1;
            let id = s.next_id;
            s.photos.insert(id, upload);
            ok(
                json!([{"album_id": -3, "date": now_secs(), "id": id, "owner_id": -GROUP_ID, "access_key": format!("ak{id}"),
                       "sizes": [], "text": "", "has_tags": false}]),
            )
        }
        "docs.save" => {
            let Some(file) = p_str(params, "file") else {
                return missing("file");
            };
            let mut s = shared.lock();
            let Some(upload) = s.pending_uploads.remove(file) else {
                return err(
                    100,
                    "One of the parameters specified was missing or invalid: file is undefined",
                    method,
                );
            };
            s.next_id += 1;
            let id = s.next_id;
            let title = p_str(params, "title")
                .map(str::to_owned)
                .unwrap_or_else(|| upload.name.clone());
            let size = upload.bytes.len();
            let ext = title
                .rsplit_once('.')
                .map(|(_, e)| e.to_owned())
                .unwrap_or_default();
            s.docs.insert(id, upload);
            let url = format!("{}/files/doc{id}", s.base);
            ok(
                json!({"type": "doc", "doc": {"id": id, "owner_id": -GROUP_ID, "title": title, "size": size, "ext": ext, "date": now_secs(), "type": 8, "url": url}}),
            )
        }
        _ => err(3, "Unknown method passed", method),
    }
}

/// A `keyboard` parameter as VK checks it (see the module's doc); the keyboard or why not.
fn check_keyboard(raw: &str) -> Result<Value, String> {
    const TYPES: &[&str] = &[
        "text",
        "open_link",
        "location",
        "vkpay",
        "open_app",
        "callback",
    ];
    let k: Value = serde_json::from_str(raw).map_err(|e| format!("not JSON: {e}"))?;
    let inline = k.get("inline").and_then(Value::as_bool).unwrap_or(false);
    let rows = k["buttons"].as_array().ok_or("buttons is not an array")?;
    let max_rows = if inline { 6 } else { 10 };
    if rows.len() > max_rows {
        return Err(format!("{} rows, at most {max_rows}", rows.len()));
    }
    for row in rows {
        let row = row.as_array().ok_or("a row is not an array")?;
        if row.is_empty() || row.len() > 5 {
            return Err(format!("a row of {} buttons (1 to 5)", row.len()));
        }
        for b in row {
            let action = &b["action"];
            let kind = action["type"].as_str().unwrap_or("");
            if !TYPES.contains(&kind) {
                return Err(format!("unknown action type {kind:?}"));
            }
            if matches!(kind, "text" | "callback") {
                let label = action["label"].as_str().unwrap_or("");
                if label.is_empty() || label.chars().count() > 40 {
                    return Err(format!("label {label:?} (1 to 40 characters)"));
                }
            }
            if let Some(p) = action.get("payload") {
                let p = p.as_str().ok_or("payload is not a string")?;
                if p.chars().count() > 255 || serde_json::from_str::<Value>(p).is_err() {
                    return Err(format!("payload {p:?} (JSON, at most 255 characters)"));
                }
            }
            if let Some(c) = b.get("color").and_then(Value::as_str) {
                if !["primary", "secondary", "negative", "positive"].contains(&c) {
                    return Err(format!("color {c:?}"));
                }
            }
        }
    }
    Ok(k)
}

/// `messages.send`.
fn send(shared: &Arc<Shared>, params: &Map<String, Value>, method: &str) -> Value {
    let many = params.contains_key("peer_ids");
    let Some(peer) = p_i64(params, if many { "peer_ids" } else { "peer_id" }) else {
        return err(
            100,
            "One of the parameters specified was missing or invalid: peer_id is undefined",
            method,
        );
    };
    let Some(random_id) = p_i64(params, "random_id") else {
        return err(100, "One of the parameters specified was missing or invalid: random_id is a required parameter", method);
    };
    let text = p_str(params, "message").unwrap_or("").to_owned();
    let attachments: Vec<String> = p_str(params, "attachment")
        .unwrap_or("")
        .split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    if text.is_empty() && attachments.is_empty() {
        return err(
            100,
            "One of the parameters specified was missing or invalid: message is empty or invalid",
            method,
        );
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return err(914, "Message is too long", method);
    }
    let keyboard = match p_str(params, "keyboard").map(check_keyboard) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(why)) => return err(911, &format!("Keyboard format is invalid: {why}"), method),
    };
    let mut s = shared.lock();
    let answer = |s: &Inner, cmid: i64| {
        if many {
            json!({"response": [{"peer_id": peer, "message_id": 0, "conversation_message_id": cmid}]})
        } else {
            let _ = s;
            json!({"response": 600_000 + cmid})
        }
    };
    if s.denied.contains(&peer) {
        return if many {
            json!({"response": [{"peer_id": peer, "message_id": 0, "error": {"code": 901, "description": message_for(901)}}]})
        } else {
            err(901, message_for(901), method)
        };
    }
    if let Some(cmid) = s.random_ids.get(&(peer, random_id)).copied() {
        // VK drops a repeated random_id and answers with the message it already has.
        return answer(&s, cmid);
    }
    for a in &attachments {
        let known = if let Some(rest) = a.strip_prefix("photo") {
            rest.split('_')
                .nth(1)
                .and_then(|i| i.parse::<i64>().ok())
                .is_some_and(|id| s.photos.contains_key(&id))
        } else if let Some(rest) = a.strip_prefix("doc") {
            rest.split('_')
                .nth(1)
                .and_then(|i| i.parse::<i64>().ok())
                .is_some_and(|id| s.docs.contains_key(&id))
        } else {
            false
        };
        if !known {
            return err(100, &format!("One of the parameters specified was missing or invalid: attachment {a} is invalid"), method);
        }
    }
    let mut reply_to = None;
    if let Some(forward) = p_str(params, "forward") {
        let Ok(f) = serde_json::from_str::<Value>(forward) else {
            return err(
                100,
                "One of the parameters specified was missing or invalid: forward is invalid",
                method,
            );
        };
        let target = f["conversation_message_ids"][0].as_i64();
        let same_peer = f["peer_id"].as_i64() == Some(peer);
        match target {
            Some(c) if same_peer && (s.customer_messages.contains(&(peer, c)) || s.messages.contains_key(&(peer, c))) => reply_to = Some(c),
            _ => return err(100, "One of the parameters specified was missing or invalid: forward messages not found", method),
        }
    }
    let cmid = {
        let n = s.next_cmid.entry(peer).or_insert(0);
        *n += 1;
        *n
    };
    s.random_ids.insert((peer, random_id), cmid);
    let mut message = json!({"date": now_secs(), "from_id": -GROUP_ID, "id": 0, "out": 1, "peer_id": peer, "text": text,
        "conversation_message_id": cmid, "random_id": random_id, "attachments": attachments, "fwd_messages": [],
        "important": false, "is_hidden": false, "admin_author_id": 100_000_001});
    if let Some(r) = reply_to {
        message["reply_message"] = json!({"conversation_message_id": r, "peer_id": peer});
    }
    if let Some(k) = keyboard {
        message["keyboard"] = k;
    }
    s.messages.insert((peer, cmid), message.clone());
    if let Some(url) = s.callback_url.clone() {
        // VK echoes what the community sends as `message_reply`.
        let mut echo = message;
        echo["attachments"] = json!([]);
        let event = FakeVk::envelope("message_reply", echo);
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            let status = post_json(&url, &event).await.map(|(s, _)| s).unwrap_or(0);
            shared.lock().echoes.push((cmid, status));
        });
    }
    answer(&s, cmid)
}

/// An upload server: keeps the file and answers what `*.save*` needs.
async fn upload(
    State(shared): State<Arc<Shared>>,
    Path(kind): Path<String>,
    request: Request,
) -> Response {
    let (_, upload) = match parameters(request).await {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::OK,
                axum::Json(json!({"error": format!("ERR_UPLOAD_BAD_REQUEST: {e}")})),
            )
                .into_response()
        }
    };
    let expected = if kind == "photo" { "photo" } else { "file" };
    let Some(upload) = upload.filter(|u| u.field == expected) else {
        return (
            StatusCode::OK,
            axum::Json(
                json!({"error": format!("ERR_UPLOAD_FILE_NOT_UPLOADED: no {expected} field")}),
            ),
        )
            .into_response();
    };
    if upload.bytes.is_empty() {
        return (
            StatusCode::OK,
            axum::Json(json!({"error": "ERR_UPLOAD_FILE_EMPTY"})),
        )
            .into_response();
    }
    let mut s = shared.lock();
    s.next_id += 1;
    let key = format!("upl{}", s.next_id);
    s.pending_uploads.insert(key.clone(), upload.clone());
    shared.record(Call {
        method: format!("upload/{kind}"),
        params: Map::new(),
        upload: Some(upload),
        at: Instant::now(),
        error: None,
    });
    let body = if kind == "photo" {
        let photo = json!([{"photo": key, "sizes": [], "kid": "FAKE"}]).to_string();
        json!({"server": 852_536, "photo": photo, "hash": format!("h{key}")})
    } else {
        json!({"file": key})
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn file(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let mut first = true;
    while shared.lock().hold_files {
        if first {
            shared.lock().held.push(name.clone());
            first = false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = shared.lock();
    if let Some(bytes) = s.files.get(&name) {
        return (StatusCode::OK, bytes.clone()).into_response();
    }
    if let Some(id) = name.strip_prefix("doc").and_then(|i| i.parse::<i64>().ok()) {
        if let Some(u) = s.docs.get(&id) {
            return (StatusCode::OK, u.bytes.clone()).into_response();
        }
    }
    StatusCode::NOT_FOUND.into_response()
}
