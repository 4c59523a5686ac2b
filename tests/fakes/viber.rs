//! A wire-level fake of the Viber REST bot API for the bridge's Viber channel, reached only
//! through its configurable `api_url`, plus the signed webhook deliveries Viber makes.
//!
//! It speaks the documented protocol (<https://developers.viber.com/docs/api/rest-bot-api/>):
//!
//! * `POST <base>/pa/<method>` with a JSON body and the bot's token in `X-Viber-Auth-Token`;
//!   answers HTTP 200 with `{"status": N, "status_message": "…", …}`: 0 ok, 2
//!   `invalidAuthToken`, 3 `badData`, 4 `missingData`, 5 `receiverNotRegistered`, 6
//!   `receiverNotSubscribed`, 12 `tooManyRequests`. Faults can also be HTTP 500.
//! * `set_webhook`: Viber checks the URL by posting a signed `webhook` event to it at once and
//!   accepts only if that is answered 200 (else status 1 `invalidUrl`).
//! * `send_message`: `receiver`, `sender.name` (≤ 28 characters), `type` text / picture / video /
//!   file; media types must carry a `media` URL the fake can fetch (it downloads the file, as
//!   Viber does, and keeps the bytes to assert on), `video` and `file` a `size`, `file` a
//!   `file_name`; picture text at most 120 characters. Media limits as documented: a picture
//!   JPEG/PNG/still GIF ≤ 1 MB at a URL ending in .jpeg/.png/.gif, a video ≤ 26 MB at a URL
//!   ending in .mp4, a file ≤ 50 MB (else status 3 badData). Answers a `message_token`.
//! * `keyboard` on `send_message` (<https://developers.viber.com/docs/tools/keyboards/>): `Type:
//!   keyboard`, `Buttons` 1–24, each with `ActionBody` (required, ≤ 250), `ActionType` one of
//!   reply / open-url / location-picker / share-phone / none, `Text` ≤ 250 characters,
//!   `Columns` 1–6 and `Rows` 1–2 (else status 3 badData); `min_api_version` must be a
//!   positive integer. The keyboard shows until the bot's next message replaces it:
//!   [`FakeViber::press`] presses a `reply` button of the bot's **latest** message to the user,
//!   which Viber delivers as the user's `text` message whose text is the `ActionBody`.
//! * `get_account_info`: the account (`id` `pa:…`, `name`, `uri`, `category`, `location`,
//!   `subscribers_count`, `members`), with `webhook` and `event_types` once a webhook is set.
//! * Customers' files are served at `<base>/files/<name>` (the `media` URLs of their messages).
//!
//! For tests: [`FakeViber::message`] and friends build callbacks; [`FakeViber::post_callback`]
//! signs one (HMAC-SHA256 of the body under the token) and delivers it; [`FakeViber::calls`]
//! records every request; [`FakeViber::fault`] makes the next N sends fail;
//! [`FakeViber::unsubscribe`] makes a customer one the bot can no longer write to.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::server::{self, FakeServer};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub const TOKEN: &str = "4b1d5e7f0a2c4e6f-8a0b2c4d6e8f0a1b-2c3d4e5f6a7b8c9d";
/// The account the bridge derives from the token.
pub const ACCOUNT: &str = "4b1d5e7f0a2c4e6f";
pub const BOT_NAME: &str = "Acme Support";

/// A Viber user in tests.
#[derive(Clone, Debug)]
pub struct ViberUser {
    pub id: String,
    pub name: String,
    pub avatar: Option<String>,
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub token: Option<String>,
    pub body: Value,
    /// For media messages: the bytes the fake fetched from `media`.
    pub fetched: Option<Vec<u8>>,
    pub at: Instant,
    /// The `status` answered (HTTP 500 faults are recorded as -500).
    pub status: i64,
}

impl Call {
    pub fn str(&self, key: &str) -> Option<String> {
        self.body
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

/// How a faulty send fails.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// `status: 12, tooManyRequests`.
    TooManyRequests,
    /// HTTP 500.
    ServerError,
}

#[derive(Default)]
struct Inner {
    faults: Vec<(Fault, u32)>,
    /// Users who wrote to the bot (subscribed).
    subscribed: HashSet<String>,
    unsubscribed: HashSet<String>,
    files: HashMap<String, Vec<u8>>,
    webhook: Option<String>,
    next_token: u64,
    base: String,
}

type Shared = server::Shared<Inner, Call>;

/// The fake Viber, on 127.0.0.1 and a free port; stops when dropped.
pub struct FakeViber {
    server: FakeServer,
    shared: Arc<Shared>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Hex HMAC-SHA256 of `body` under the token, as Viber signs callbacks.
pub fn signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(TOKEN.as_bytes()).expect("any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn status(status: i64, message: &str) -> Value {
    json!({"status": status, "status_message": message})
}

impl FakeViber {
    pub async fn start() -> anyhow::Result<FakeViber> {
        let bound = FakeServer::bind("Viber").await?;
        let shared = bound.shared(Inner {
            next_token: 5_741_311_803_571_721_000,
            ..Inner::default()
        });
        let app = Router::new()
            .route("/pa/{method}", post(method))
            .route("/files/{name}", get(file))
            .with_state(Arc::clone(&shared));
        shared.lock().base = bound.url();
        let server = bound.serve(app);
        Ok(FakeViber { server, shared })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The base to configure as `api_url`.
    pub fn api_url(&self) -> String {
        format!("{}/pa", self.url())
    }

    pub fn user(&self, id: &str, name: &str, avatar: Option<Vec<u8>>) -> ViberUser {
        let avatar = avatar.map(|bytes| self.add_file(&format!("avatar_{}.jpg", id.len()), bytes));
        ViberUser {
            id: id.into(),
            name: name.into(),
            avatar,
        }
    }

    /// Serve `bytes` at `<base>/files/<name>`; returns the URL.
    pub fn add_file(&self, name: &str, bytes: Vec<u8>) -> String {
        let mut s = self.shared.lock();
        s.files.insert(name.to_owned(), bytes);
        format!("{}/files/{name}", s.base)
    }

    /// Whether the fake served a file (`/files/<name>`) — recorded as a `GET files/<name>` call.
    pub fn file_fetched(&self, name: &str) -> bool {
        !self
            .shared
            .calls_where(|c| c.method == format!("GET files/{name}"))
            .is_empty()
    }

    /// The webhook URL Viber accepted with `set_webhook`.
    pub fn webhook(&self) -> Option<String> {
        self.shared.lock().webhook.clone()
    }

    pub fn fault(&self, fault: Fault, count: u32) {
        self.shared.lock().faults.push((fault, count));
    }

    /// The customer unsubscribes: sends to them fail with status 6. Returns the callback.
    pub fn unsubscribe(&self, user: &ViberUser) -> Value {
        let mut s = self.shared.lock();
        s.subscribed.remove(&user.id);
        s.unsubscribed.insert(user.id.clone());
        s.next_token += 1;
        json!({"event": "unsubscribed", "timestamp": now_ms(), "chat_hostname": "SN-376_", "user_id": user.id, "message_token": s.next_token})
    }

    pub fn all_calls(&self) -> Vec<Call> {
        self.shared.calls()
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.shared.calls_where(|c| c.method == method)
    }

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

    /// A `message` callback from `user`; `message` is the `message` object (`type`, `text`,
    /// `media`, …). Returns the callback and its `message_token`. The user is subscribed from now.
    pub fn message(&self, user: &ViberUser, message: Value) -> (Value, u64) {
        let mut s = self.shared.lock();
        s.subscribed.insert(user.id.clone());
        s.unsubscribed.remove(&user.id);
        s.next_token += 1;
        let token = s.next_token;
        let mut sender = json!({"id": user.id, "name": user.name, "language": "en", "country": "GB", "api_version": 10});
        if let Some(a) = &user.avatar {
            sender["avatar"] = a.clone().into();
        }
        (
            json!({"event": "message", "timestamp": now_ms(), "chat_hostname": "SN-376_", "message_token": token,
                "sender": sender, "message": message, "silent": false}),
            token,
        )
    }

    /// The keyboard on the bot's latest message to `user` (`Null` when it has none, which
    /// means the client shows no keyboard).
    pub fn shown_keyboard(&self, user: &ViberUser) -> Value {
        self.sent()
            .into_iter()
            .rev()
            .find(|(_, b)| b["receiver"] == user.id.as_str())
            .map(|(_, b)| b["keyboard"].clone())
            .unwrap_or(Value::Null)
    }

    /// `user` presses button `index` of the keyboard Viber shows them: the `reply` button's
    /// `ActionBody` arrives as their `text` message. Fails when no keyboard is shown.
    pub fn press(&self, user: &ViberUser, index: usize) -> anyhow::Result<(Value, u64)> {
        let keyboard = self.shown_keyboard(user);
        let button = &keyboard["Buttons"][index];
        anyhow::ensure!(
            button["ActionType"].as_str().unwrap_or("reply") == "reply",
            "no reply button {index} shown to {}: {keyboard}",
            user.id
        );
        let body = button["ActionBody"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no keyboard shown to {}", user.id))?;
        Ok(self.message(user, json!({"type": "text", "text": body})))
    }

    /// A status callback (`delivered`, `seen`) about our message `token`.
    pub fn status_event(&self, kind: &str, user: &ViberUser, token: u64) -> Value {
        json!({"event": kind, "timestamp": now_ms(), "chat_hostname": "SN-CHAT-02_", "message_token": token, "user_id": user.id})
    }

    /// A `failed` callback about our message `token`.
    pub fn failed_event(&self, user: &ViberUser, token: u64, desc: &str) -> Value {
        json!({"event": "failed", "timestamp": now_ms(), "message_token": token, "user_id": user.id, "desc": desc})
    }

    /// Deliver a callback signed as Viber signs it; returns the status.
    pub async fn post_callback(&self, url: &str, event: &Value) -> anyhow::Result<u16> {
        let body = event.to_string();
        let sig = signature(body.as_bytes());
        self.post_raw(url, body.into_bytes(), Some(&sig)).await
    }

    /// Deliver raw bytes with the given signature header (or none).
    pub async fn post_raw(
        &self,
        url: &str,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> anyhow::Result<u16> {
        post_signed(url, body, signature).await
    }

    /// The message tokens of what the bot sent successfully, with the request bodies.
    pub fn sent(&self) -> Vec<(u64, Value)> {
        self.calls("send_message")
            .into_iter()
            .filter(|c| c.status == 0)
            .filter_map(|c| Some((c.body.get("_token")?.as_u64()?, c.body)))
            .collect()
    }
}

async fn post_signed(url: &str, body: Vec<u8>, signature: Option<&str>) -> anyhow::Result<u16> {
    let signature: Vec<_> = signature
        .map(|s| ("X-Viber-Content-Signature", s))
        .into_iter()
        .collect();
    let response = server::post_webhook(url, body, &signature, Duration::from_secs(30)).await?;
    Ok(response.status().as_u16())
}

fn record(
    shared: &Shared,
    method: &str,
    token: Option<String>,
    body: Value,
    fetched: Option<Vec<u8>>,
    status: i64,
) {
    shared.record(Call {
        method: method.into(),
        token,
        body,
        fetched,
        at: Instant::now(),
        status,
    });
}

async fn method(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get("x-viber-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        record(&shared, &name, token, Value::Null, None, 3);
        return axum::Json(status(3, "badData")).into_response();
    };
    if token.as_deref() != Some(TOKEN) {
        record(&shared, &name, token, body, None, 2);
        return axum::Json(status(2, "invalidAuthToken")).into_response();
    }
    match name.as_str() {
        "set_webhook" => set_webhook(&shared, token, body).await,
        "send_message" => send_message(&shared, token, body).await,
        "get_account_info" => {
            record(&shared, &name, token, body, None, 0);
            // REST bot API, get_account_info: the account's details, its webhook (when one
            // is set) and the event types it gets, its subscribers and members.
            let webhook = shared.lock().webhook.clone();
            let mut info = json!({"status": 0, "status_message": "ok", "id": format!("pa:{ACCOUNT}"),
                "chat_hostname": "SN-CHAT-22_", "name": BOT_NAME, "uri": "acmesupport",
                "icon": "https://media-direct.cdn.viber.com/pg_download?id=fake", "background": "https://media-direct.cdn.viber.com/pg_download?id=fake-bg",
                "category": "Companies & Brands", "subcategory": "Customer service", "country": "GB",
                "location": {"lon": -0.1276, "lat": 51.5072},
                "subscribers_count": shared.lock().subscribed.len(),
                "members": [{"id": "01234567890A=", "name": "Acme admin", "avatar": "https://example.com/a.jpg", "role": "admin"}]});
            if let Some(url) = webhook {
                info["webhook"] = url.into();
                info["event_types"] = json!([
                    "delivered",
                    "seen",
                    "failed",
                    "subscribed",
                    "unsubscribed",
                    "conversation_started"
                ]);
            }
            axum::Json(info).into_response()
        }
        _ => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

async fn set_webhook(shared: &Arc<Shared>, token: Option<String>, body: Value) -> Response {
    let Some(url) = body.get("url").and_then(Value::as_str).map(str::to_owned) else {
        record(shared, "set_webhook", token, body, None, 4);
        return axum::Json(status(4, "missingData")).into_response();
    };
    // Viber checks the URL with a signed `webhook` event before accepting it.
    let check = json!({"event": "webhook", "timestamp": now_ms(), "chat_hostname": "SN-CHAT-22_", "message_token": 5_466_394_344_559_121_456u64}).to_string();
    let sig = signature(check.as_bytes());
    let answered = post_signed(&url, check.into_bytes(), Some(&sig))
        .await
        .unwrap_or(0);
    if answered != 200 {
        record(shared, "set_webhook", token, body, None, 1);
        return axum::Json(status(1, "invalidUrl")).into_response();
    }
    shared.lock().webhook = Some(url);
    record(shared, "set_webhook", token, body, None, 0);
    axum::Json(json!({"status": 0, "status_message": "ok",
        "event_types": ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"]})).into_response()
}

async fn send_message(shared: &Arc<Shared>, token: Option<String>, mut body: Value) -> Response {
    let refuse =
        |shared: &Arc<Shared>, token: Option<String>, body: Value, code: i64, message: &str| {
            record(shared, "send_message", token, body, None, code);
            axum::Json(status(code, message)).into_response()
        };
    {
        let mut s = shared.lock();
        if let Some((fault, n)) = s.faults.iter_mut().find(|(_, n)| *n > 0) {
            *n -= 1;
            let fault = *fault;
            drop(s);
            return match fault {
                Fault::TooManyRequests => refuse(shared, token, body, 12, "tooManyRequests"),
                Fault::ServerError => {
                    record(shared, "send_message", token, body, None, -500);
                    (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
                }
            };
        }
    }
    let Some(receiver) = body
        .get("receiver")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return refuse(shared, token, body, 4, "missingData");
    };
    let name_ok = body["sender"]["name"]
        .as_str()
        .is_some_and(|n| !n.is_empty() && n.chars().count() <= 28);
    if !name_ok {
        return refuse(shared, token, body, 3, "badData");
    }
    {
        let s = shared.lock();
        if s.unsubscribed.contains(&receiver) {
            drop(s);
            return refuse(shared, token, body, 6, "receiverNotSubscribed");
        }
        if !s.subscribed.contains(&receiver) {
            drop(s);
            return refuse(shared, token, body, 5, "receiverNotRegistered");
        }
    }
    if body
        .get("min_api_version")
        .is_some_and(|v| !v.as_u64().is_some_and(|v| v >= 1))
    {
        return refuse(shared, token, body, 3, "badData");
    }
    if let Some(k) = body.get("keyboard") {
        if !keyboard_ok(k) {
            return refuse(shared, token, body, 3, "badData");
        }
    }
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut fetched = None;
    match kind.as_str() {
        "text" => {
            let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
            if text.is_empty() {
                return refuse(shared, token, body, 4, "missingData");
            }
            // REST bot API, send_message: "text … Max length 7,000 characters".
            if text.chars().count() > 7000 {
                return refuse(shared, token, body, 3, "badData");
            }
        }
        "picture" | "video" | "file" => {
            let Some(media) = body.get("media").and_then(Value::as_str).map(str::to_owned) else {
                return refuse(shared, token, body, 4, "missingData");
            };
            if kind == "picture"
                && (body
                    .get("text")
                    .and_then(Value::as_str)
                    .is_none_or(|t| t.chars().count() > 120))
            {
                return refuse(shared, token, body, 3, "badData");
            }
            if kind != "picture" && body.get("size").and_then(Value::as_u64).is_none() {
                return refuse(shared, token, body, 4, "missingData");
            }
            if kind == "file"
                && body
                    .get("file_name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            {
                return refuse(shared, token, body, 4, "missingData");
            }
            // Viber fetches the media from its URL.
            let got = async {
                let r = reqwest::Client::new()
                    .get(&media)
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await
                    .ok()?;
                if !r.status().is_success() {
                    return None;
                }
                r.bytes().await.ok().map(|b| b.to_vec())
            }
            .await;
            let Some(bytes) = got else {
                return refuse(shared, token, body, 1, "invalidUrl");
            };
            // The documented media limits (REST bot API, "Message types",
            // <https://developers.viber.com/docs/api/rest-bot-api/#message-types>): a picture is
            // a JPEG, PNG or non-animated GIF whose URL ends in .jpeg/.png/.gif, at most 1 MB
            // ("Max image size: 1MB on iOS, 3MB on Android": the fake takes the stricter); a
            // video an MP4 whose URL ends in .mp4, at most 26 MB; a file at most 50 MB with a
            // file_name of at most 256 characters. Viber answers a breach with status 3 badData.
            let segment = media
                .split(['?', '#'])
                .next()
                .and_then(|p| p.rsplit('/').next())
                .unwrap_or_default()
                .to_ascii_lowercase();
            let ends_in = |exts: &[&str]| exts.iter().any(|e| segment.ends_with(e));
            let breach = match kind.as_str() {
                "picture" => {
                    !ends_in(&[".jpeg", ".jpg", ".png", ".gif"])
                        || bytes.len() > MAX_PICTURE
                        || is_animated_gif(&bytes)
                }
                "video" => !ends_in(&[".mp4"]) || bytes.len() > MAX_VIDEO,
                _ => {
                    bytes.len() > MAX_FILE
                        || body
                            .get("file_name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| n.chars().count() > 256)
                }
            };
            if breach {
                return refuse(shared, token, body, 3, "badData");
            }
            fetched = Some(bytes);
        }
        _ => return refuse(shared, token, body, 3, "badData"),
    }
    let message_token = {
        let mut s = shared.lock();
        s.next_token += 1;
        s.next_token
    };
    body["_token"] = message_token.into();
    record(shared, "send_message", token, body, fetched, 0);
    axum::Json(json!({"status": 0, "status_message": "ok", "message_token": message_token, "chat_hostname": "SN-CHAT-05_", "billing_status": 1}))
        .into_response()
}

/// A keyboard as Viber documents it (see the module's doc).
fn keyboard_ok(k: &Value) -> bool {
    let Some(buttons) = k["Buttons"].as_array() else {
        return false;
    };
    k["Type"] == "keyboard"
        && (1..=24).contains(&buttons.len())
        && buttons.iter().all(|b| {
            let within =
                |key: &str, range: std::ops::RangeInclusive<u64>, default: u64| match b.get(key) {
                    None => range.contains(&default),
                    Some(v) => v.as_u64().is_some_and(|v| range.contains(&v)),
                };
            let body = b["ActionBody"].as_str().unwrap_or("");
            let action = b.get("ActionType").map_or(Some("reply"), Value::as_str);
            !body.is_empty()
                && body.chars().count() <= 250
                && matches!(
                    action,
                    Some("reply" | "open-url" | "location-picker" | "share-phone" | "none")
                )
                && b.get("Text")
                    .is_none_or(|t| t.as_str().is_some_and(|t| t.chars().count() <= 250))
                && within("Columns", 1..=6, 6)
                && within("Rows", 1..=2, 1)
        })
}

/// Picture, video and file size limits (<https://developers.viber.com/docs/api/rest-bot-api/#message-types>).
pub const MAX_PICTURE: usize = 1024 * 1024;
pub const MAX_VIDEO: usize = 26 * 1024 * 1024;
pub const MAX_FILE: usize = 50 * 1024 * 1024;

/// A GIF that loops (NETSCAPE2.0 extension) or has more than one image descriptor.
fn is_animated_gif(bytes: &[u8]) -> bool {
    bytes.starts_with(b"GIF8")
        && (bytes.windows(11).any(|w| w == b"NETSCAPE2.0")
            || bytes.windows(2).filter(|w| w == b"\x00\x2c").count() > 1)
}

async fn file(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let bytes = shared.lock().files.get(&name).cloned();
    record(
        &shared,
        &format!("GET files/{name}"),
        None,
        Value::Null,
        None,
        0,
    );
    match bytes {
        Some(b) => (StatusCode::OK, b).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
