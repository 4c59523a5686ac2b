//! A wire-level fake of Discord for the bridge's Discord channel: the HTTP API under
//! `<base>/api/v10`, a CDN under `<base>/cdn`, and a WebSocket gateway. The channel reaches it
//! through `channels.discord.api_url` (and `cdn_url`) only; the gateway URL it learns from
//! `GET /gateway/bot`, as from Discord.
//!
//! It follows the documented protocol (<https://discord.com/developers/docs>):
//!
//! * REST: `Authorization: Bot <token>` on every call (else `401 {"message":"401:
//!   Unauthorized","code":0}`); `POST /channels/{id}/messages` as JSON or multipart
//!   (`payload_json` + `files[n]`), with Discord's checks (empty message 50006, content over 2000
//!   characters 50035, `nonce` at most 25 characters, `enforce_nonce` answering a repeated nonce
//!   with the message already created); `PATCH`/`DELETE /channels/{id}/messages/{id}` (10008
//!   Unknown Message); `POST /channels/{id}/typing` (204); `GET /gateway/bot`; `GET /users/@me`
//!   (the bot user). Rate-limit headers
//!   (`X-RateLimit-*`) on every answer; a 429 has the JSON body (`retry_after`, `global`) and the
//!   `Retry-After` header. Closed DMs are 403 50007.
//! * Gateway (`/gateway`, and `/resume` as the `resume_gateway_url`): HELLO with the heartbeat
//!   interval; IDENTIFY checked (token, intents with DIRECT_MESSAGES and MESSAGE_CONTENT; else
//!   close 4004 / 4014) → READY (`session_id`, `resume_gateway_url`, the bot user); heartbeats
//!   answered with ACKs; RESUME with the session id and a sequence number replays every dispatch
//!   after it, then RESUMED; an unknown session is INVALID_SESSION `false`. Dispatches carry
//!   increasing sequence numbers. Like Discord, the bot's own messages, edits and deletions come
//!   back over the gateway as MESSAGE_CREATE/UPDATE/DELETE.
//!
//! * Reactions: `PUT`/`DELETE /channels/{id}/messages/{id}/reactions/{emoji}/@me` (204; the
//!   emoji URL-encoded, a Unicode emoji or `name:id`, else 400 10014 Unknown Emoji; 10008 for a
//!   message not in the channel), echoed to the bot as MESSAGE_REACTION_ADD / _REMOVE like any
//!   user's. A customer's reaction is dispatched only to a session identified with the
//!   DIRECT_MESSAGE_REACTIONS intent, as Discord sends nothing an intent was not given for.
//!
//! * Channels: `GET /channels/{id}` answers the channel object — a guild text channel
//!   (`type` 0, `guild_id`, `name`, `position`, `permission_overwrites`, …) registered with
//!   [`FakeDiscord::add_guild_channel`], or a DM (`type` 1, `recipients`) once its customer
//!   wrote — and 404 10003 Unknown Channel for any other id.
//! * Message components (<https://discord.com/developers/docs/components/reference>), on
//!   create, edit and interaction updates: at most 5 action rows (type 1) at the top; a row
//!   holds 1–5 buttons or one select; a button (type 2) has a style 1–6, styles 1–4 a
//!   `custom_id` of 1–100 characters unique in the message and no `url`, style 5 a `url` and no
//!   `custom_id`, a `label` of at most 80 characters (a label or an emoji unless premium);
//!   anything else is 400 50035 Invalid Form Body naming the field. A message of components
//!   only (no content, no file) is allowed.
//! * Interactions (<https://discord.com/developers/docs/interactions/receiving-and-responding>):
//!   [`FakeDiscord::press_button`] makes a customer press a button of a bot message as the
//!   client would (never a disabled or link button, only in a channel they are in) and
//!   dispatches `INTERACTION_CREATE` (type 3 MESSAGE_COMPONENT, `data.custom_id`,
//!   `data.component_type` 2, the message, `user` in a DM or `member` in a guild, a `token`).
//!   `POST /interactions/{id}/{token}/callback` needs no bot token; it must come within **3
//!   seconds** of the dispatch reaching the bot, else 404 10062 Unknown interaction, and only
//!   once (then 400 40060 "Interaction has already been acknowledged."); a wrong token is
//!   10062 too. Callback types 4, 5, 6, 7, 9, 12 are taken for a component interaction (1
//!   PONG and 8 autocomplete are 400 50035); 7 UPDATE_MESSAGE edits the message (content,
//!   components, checked as above) and echoes MESSAGE_UPDATE; the answer is 204, or 200 with the
//!   callback object when `?with_response=true`. [`FakeDiscord::interaction_answers`] lists
//!   each callback with how long after the delivery it came.
//!
//! For tests: [`FakeDiscord::customer_message`] & co. make a customer act; [`FakeDiscord::calls`]
//! records every HTTP request; [`FakeDiscord::gateway_ops`] every frame the bot sent on the
//! gateway; [`FakeDiscord::fault`] makes the next calls of a route fail; [`FakeDiscord::hold`]
//! stops delivering dispatches (they are still sequenced, so a resume replays them);
//! [`FakeDiscord::drop_socket`], [`FakeDiscord::send_reconnect`] and
//! [`FakeDiscord::invalidate_session`] exercise the bot's reconnection logic.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::server::{self, FakeServer};
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::{json, Value};

/// The bot's user id, and a token that encodes it the way Discord's do.
pub const BOT_ID: &str = "1100000000000000001";
pub const TOKEN: &str = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GxYz12.fake-token_for-the-switchboard-tests";
pub const BOT_NAME: &str = "AcmeSupport";
/// Intent bits the bridge must ask for.
pub const DIRECT_MESSAGES: u64 = 1 << 12;
pub const MESSAGE_CONTENT: u64 = 1 << 15;
pub const DIRECT_MESSAGE_REACTIONS: u64 = 1 << 13;
/// Largest upload (a bot without boosts).
pub const MAX_UPLOAD: usize = 10 * 1024 * 1024;

/// A Discord user in tests, with their DM channel with the bot.
#[derive(Clone, Debug)]
pub struct DUser {
    pub id: String,
    pub username: String,
    pub global_name: Option<String>,
    pub avatar: Option<String>,
    /// The DM channel between this user and the bot.
    pub dm: String,
}

impl DUser {
    pub fn new(id: u64, username: &str, global_name: Option<&str>) -> DUser {
        DUser {
            id: id.to_string(),
            username: username.into(),
            global_name: global_name.map(Into::into),
            avatar: None,
            dm: (id + 7_000_000).to_string(),
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "id": self.id, "username": self.username, "global_name": self.global_name,
            "avatar": self.avatar, "discriminator": "0", "public_flags": 0,
        })
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

/// One HTTP request the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    /// The JSON body, or `payload_json` of a multipart body.
    pub body: Value,
    pub files: Vec<Upload>,
    pub content_type: Option<String>,
    pub at: Instant,
    pub status: u16,
}

impl Call {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }
}

/// One frame the bot sent on the gateway.
#[derive(Clone, Debug)]
pub struct GatewayOp {
    /// `/gateway` or `/resume`.
    pub path: String,
    pub op: u64,
    pub d: Value,
    pub at: Instant,
}

/// How a faulty call fails.
#[derive(Clone, Debug)]
pub enum FaultKind {
    /// 429 with `retry_after` seconds, per route or global.
    RateLimited { retry_after: f64, global: bool },
    /// 502 Bad Gateway.
    ServerError,
}

#[derive(Clone, Debug)]
struct Fault {
    /// `"POST /channels/{id}/messages"` matches by method and path prefix.
    method: Method,
    path_prefix: String,
    kind: FaultKind,
    remaining: u32,
}

/// Commands for the live gateway connection.
#[derive(Clone, Debug)]
enum Control {
    Drop,
    Reconnect,
    InvalidSession,
}

#[derive(Default)]
struct Inner {
    faults: Vec<Fault>,
    closed_dms: HashSet<String>,
    /// Every message (customers' and the bot's), by id.
    messages: HashMap<String, Value>,
    /// `(channel, nonce)` → message id, for `enforce_nonce`.
    nonces: HashMap<(String, String), String>,
    next_id: u64,
    /// CDN files by path under `/cdn`: (content type, bytes).
    cdn: HashMap<String, (String, Vec<u8>)>,
    cdn_requests: Vec<(String, Option<String>)>,
    // Gateway.
    session_id: Option<String>,
    /// Dispatches of the current session: (seq, t, d).
    log: Vec<(u64, String, Value)>,
    /// Dispatches pushed while no session existed.
    undelivered: VecDeque<(String, Value)>,
    hold: bool,
    /// Do not answer heartbeats (a zombie connection).
    withhold_acks: bool,
    /// On RESUME, also replay this many dispatches the bot already acknowledged (as Discord
    /// may), to check the bridge's dedup.
    replay_overlap: u64,
    heartbeat_interval: u64,
    ops: Vec<GatewayOp>,
    control: Vec<Control>,
    connections: u32,
    /// Highest sequence sent on any connection.
    sent_seq: u64,
    /// The intents of the last IDENTIFY.
    intents: u64,
    /// Reactions by message id: (user id, emoji as Discord names it).
    reactions: HashMap<String, Vec<(String, String)>>,
    /// Channel objects by id (`GET /channels/{id}`).
    channels: HashMap<String, Value>,
    /// Interactions by id.
    interactions: HashMap<String, Interaction>,
    /// Every callback received, in order.
    answers: Vec<InteractionAnswer>,
}

/// The 3-second rule for the first answer to an interaction.
pub const INTERACTION_DEADLINE: Duration = Duration::from_secs(3);

/// An interaction the fake created.
#[derive(Clone, Debug)]
struct Interaction {
    token: String,
    channel: String,
    message: String,
    created: Instant,
    /// When the dispatch was written to the bot's socket.
    delivered: Option<Instant>,
    answered: bool,
}

/// One `POST /interactions/{id}/{token}/callback`.
#[derive(Clone, Debug)]
pub struct InteractionAnswer {
    pub interaction: String,
    /// The callback type asked for.
    pub kind: Option<u64>,
    pub body: Value,
    pub status: u16,
    /// Time from the dispatch reaching the bot (or its creation) to the callback.
    pub after: Duration,
}

/// Whether `emoji` (URL-decoded) is one Discord knows: a Unicode emoji, or a custom one as
/// `name:id`. Text such as `ok` is not.
fn known_emoji(emoji: &str) -> bool {
    if let Some((name, id)) = emoji.split_once(':') {
        return !name.is_empty() && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    }
    !emoji.is_empty()
        && emoji.chars().count() <= 16
        && emoji
            .chars()
            .all(|c| !c.is_ascii() && !c.is_alphanumeric() && !c.is_whitespace())
}

/// The `emoji` object of a reaction event.
fn emoji_object(emoji: &str) -> Value {
    match emoji.split_once(':') {
        Some((name, id)) => json!({"id": id, "name": name}),
        None => json!({"id": null, "name": emoji}),
    }
}

/// The state; its `changed` wakes the gateway's sockets and held requests.
type Shared = server::Shared<Inner, Call>;

/// The fake Discord, on 127.0.0.1 and a free port; stops when dropped.
pub struct FakeDiscord {
    server: FakeServer,
    shared: Arc<Shared>,
}

fn now_iso() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_micros()
    )
}

fn error(status: u16, code: u64, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        axum::Json(json!({"message": message, "code": code})),
    )
        .into_response()
}

fn with_rate_headers(mut response: Response, bucket: &str) -> Response {
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from_static("5"));
    h.insert("x-ratelimit-remaining", HeaderValue::from_static("4"));
    h.insert("x-ratelimit-reset-after", HeaderValue::from_static("1.000"));
    if let Ok(v) = HeaderValue::from_str(bucket) {
        h.insert("x-ratelimit-bucket", v);
    }
    response
}

fn rate_limited(retry_after: f64, global: bool) -> Response {
    let body = json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": global, "code": 0});
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    let h = response.headers_mut();
    let secs = retry_after.ceil() as u64;
    h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    h.insert("x-ratelimit-limit", HeaderValue::from_static("5"));
    h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
    if let Ok(v) = HeaderValue::from_str(&format!("{retry_after:.3}")) {
        h.insert("x-ratelimit-reset-after", v);
    }
    h.insert(
        "x-ratelimit-bucket",
        HeaderValue::from_static("fake-bucket-messages"),
    );
    if global {
        h.insert("x-ratelimit-global", HeaderValue::from_static("true"));
        h.insert("x-ratelimit-scope", HeaderValue::from_static("global"));
    } else {
        h.insert("x-ratelimit-scope", HeaderValue::from_static("user"));
    }
    response
}

fn bot_user() -> Value {
    json!({"id": BOT_ID, "username": BOT_NAME, "global_name": null, "avatar": null, "discriminator": "0000", "bot": true, "public_flags": 0})
}

impl FakeDiscord {
    pub async fn start() -> anyhow::Result<FakeDiscord> {
        let bound = FakeServer::bind("Discord").await?;
        let shared = bound.shared(Inner {
            next_id: 1_500_000_000_000_000_000,
            heartbeat_interval: 1000,
            ..Inner::default()
        });
        let app = Router::new()
            .route("/gateway", get(gateway))
            .route("/resume", get(gateway))
            .route("/cdn/{*path}", get(cdn))
            .route("/api/v10/{*path}", any(rest))
            .layer(DefaultBodyLimit::max(MAX_UPLOAD + 1024 * 1024))
            .with_state(Arc::clone(&shared));
        let server = bound.serve(app);
        Ok(FakeDiscord { server, shared })
    }

    /// The base URL to configure as `api_url`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The base URL to configure as `cdn_url`.
    pub fn cdn_url(&self) -> String {
        format!("{}/cdn", self.server.url())
    }

    fn next_id(&self) -> String {
        let mut s = self.shared.lock();
        s.next_id += 1;
        s.next_id.to_string()
    }

    /// Queue a dispatch on the gateway (sequenced now if a session exists).
    pub fn dispatch(&self, t: &str, d: Value) {
        push_dispatch(&self.shared, t, d);
    }

    /// A customer's new message in their DM; `extra` fields are merged into it (attachments,
    /// message_reference, mentions…). Returns the message id.
    pub fn customer_message(&self, user: &DUser, content: &str, extra: Value) -> String {
        let id = self.next_id();
        let mut m = json!({
            "id": id, "channel_id": user.dm, "channel_type": 1, "type": 0, "content": content,
            "author": user.json(), "timestamp": now_iso(), "edited_timestamp": null,
            "attachments": [], "embeds": [], "mentions": [], "mention_roles": [], "mention_everyone": false,
            "tts": false, "pinned": false, "flags": 0, "components": [],
        });
        if let (Some(m), Value::Object(e)) = (m.as_object_mut(), extra) {
            m.extend(e);
        }
        if m.get("message_reference")
            .is_some_and(|r| r["type"].as_u64().unwrap_or(0) == 0)
        {
            m["type"] = 19.into();
        }
        {
            let mut s = self.shared.lock();
            s.messages.insert(id.clone(), m.clone());
            // The DM channel between the customer and the bot, as `GET /channels/{id}` shows it.
            s.channels.insert(
                user.dm.clone(),
                json!({"id": user.dm, "type": 1, "last_message_id": id, "flags": 0, "recipients": [user.json()]}),
            );
        }
        self.dispatch("MESSAGE_CREATE", m);
        id
    }

    /// A customer's message Discord keeps in the DM but never dispatches to the bot, as for one
    /// sent while the bot had no session (see [`FakeDiscord::expire_session`]): only `GET
    /// /channels/{id}/messages` shows it. Returns the message id.
    pub fn customer_message_unseen(&self, user: &DUser, content: &str) -> String {
        let id = self.next_id();
        let m = json!({
            "id": id, "channel_id": user.dm, "type": 0, "content": content,
            "author": user.json(), "timestamp": now_iso(), "edited_timestamp": null,
            "attachments": [], "embeds": [], "mentions": [], "mention_roles": [], "mention_everyone": false,
            "tts": false, "pinned": false, "flags": 0, "components": [],
        });
        self.shared.lock().messages.insert(id.clone(), m);
        id
    }

    /// The session expires on Discord's side (the bot stayed away too long): a RESUME is
    /// answered INVALID_SESSION `false`, and nothing from before is ever replayed.
    pub fn expire_session(&self) {
        let mut s = self.shared.lock();
        s.session_id = None;
        s.log.clear();
    }

    /// A message in a guild channel (for the "guild messages are ignored" check).
    pub fn guild_message(&self, user: &DUser, guild: &str, channel: &str, content: &str) -> String {
        let id = self.next_id();
        let m = json!({
            "id": id, "channel_id": channel, "guild_id": guild, "type": 0, "content": content,
            "author": user.json(), "timestamp": now_iso(), "attachments": [], "embeds": [], "mentions": [],
            "member": {"roles": [], "joined_at": now_iso()},
        });
        self.dispatch("MESSAGE_CREATE", m);
        id
    }

    /// A text channel of a guild the bot is in, named `name` (what `GET /channels/{id}` shows).
    pub fn add_guild_channel(&self, guild: &str, channel: &str, name: &str) {
        let position = self.shared.lock().channels.len();
        self.shared.lock().channels.insert(
            channel.to_owned(),
            json!({
                "id": channel, "type": 0, "guild_id": guild, "name": name, "position": position,
                "permission_overwrites": [], "rate_limit_per_user": 0, "nsfw": false,
                "topic": null, "last_message_id": null, "parent_id": null, "flags": 0,
            }),
        );
    }

    /// The customer presses button `index` (counted across the action rows) of the bot's
    /// message `message`, as the Discord client lets them: not a disabled button, not a link,
    /// only in their DM or a guild channel. Dispatches INTERACTION_CREATE; returns the
    /// interaction id.
    pub fn press_button(
        &self,
        user: &DUser,
        message: &str,
        index: usize,
    ) -> anyhow::Result<String> {
        let m = self
            .message(message)
            .ok_or_else(|| anyhow::anyhow!("no message {message}"))?;
        let channel = m["channel_id"].as_str().unwrap_or_default().to_owned();
        let guild = m["guild_id"].as_str().map(str::to_owned).or_else(|| {
            self.shared
                .lock()
                .channels
                .get(&channel)
                .and_then(|c| c["guild_id"].as_str().map(str::to_owned))
        });
        anyhow::ensure!(
            guild.is_some() || channel == user.dm,
            "{} cannot see message {message} in channel {channel}",
            user.username
        );
        let buttons: Vec<Value> = m["components"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["type"] == 2)
            .collect();
        let button = buttons
            .get(index)
            .ok_or_else(|| anyhow::anyhow!("no button {index} on {message}: {m}"))?;
        anyhow::ensure!(
            button["disabled"] != true,
            "button {index} is disabled: {button}"
        );
        let custom_id = button["custom_id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("button {index} is a link: {button}"))?
            .to_owned();
        let id = self.next_id();
        let token = format!("aW50ZXJhY3Rpb246{id}OmZha2VUb2tlbkZvclN3aXRjaGJvYXJk");
        let mut d = json!({
            "id": id, "application_id": BOT_ID, "type": 3, "token": token, "version": 1,
            "data": {"custom_id": custom_id, "component_type": 2},
            "channel_id": channel, "message": m,
            "app_permissions": "562949953601536", "locale": "en-US", "entitlements": [],
            "attachment_size_limit": MAX_UPLOAD,
        });
        match &guild {
            Some(g) => {
                d["guild_id"] = g.clone().into();
                d["guild"] = json!({"id": g, "locale": "en-US", "features": []});
                d["guild_locale"] = "en-US".into();
                d["channel"] = self
                    .shared
                    .lock()
                    .channels
                    .get(&channel)
                    .cloned()
                    .unwrap_or_else(|| json!({"id": channel, "type": 0, "guild_id": g}));
                d["member"] = json!({"user": user.json(), "roles": [], "joined_at": now_iso(), "nick": null,
                    "deaf": false, "mute": false, "pending": false, "permissions": "2248473465835073", "flags": 0});
                d["authorizing_integration_owners"] = json!({"0": g});
                d["context"] = 0.into();
            }
            None => {
                d["channel"] =
                    json!({"id": channel, "type": 1, "flags": 0, "recipients": [user.json()]});
                d["user"] = user.json();
                d["authorizing_integration_owners"] = json!({"0": "0"});
                d["context"] = 1.into();
            }
        }
        self.shared.lock().interactions.insert(
            id.clone(),
            Interaction {
                token,
                channel,
                message: message.to_owned(),
                created: Instant::now(),
                delivered: None,
                answered: false,
            },
        );
        self.dispatch("INTERACTION_CREATE", d);
        Ok(id)
    }

    /// The token of interaction `id`, as its dispatch carries it (for tests that answer an
    /// interaction themselves).
    pub fn pending_interaction_token(&self, id: &str) -> Option<String> {
        self.shared
            .lock()
            .interactions
            .get(id)
            .map(|i| i.token.clone())
    }

    /// Every interaction callback so far, in order.
    pub fn interaction_answers(&self) -> Vec<InteractionAnswer> {
        self.shared.lock().answers.clone()
    }

    /// Waits until interaction `id` got a callback; the first one.
    pub async fn wait_for_answer(&self, id: &str) -> anyhow::Result<InteractionAnswer> {
        self.server
            .wait_for(
                &format!("an answer to interaction {id}"),
                server::DEFAULT_WAIT,
                || {
                    self.interaction_answers()
                        .into_iter()
                        .find(|a| a.interaction == id)
                },
            )
            .await
    }

    /// The customer edits their message.
    pub fn customer_edit(&self, user: &DUser, id: &str, content: &str) {
        let m = {
            let mut s = self.shared.lock();
            let Some(m) = s.messages.get_mut(id) else {
                return;
            };
            m["content"] = content.into();
            m["edited_timestamp"] = now_iso().into();
            m.clone()
        };
        let _ = user;
        self.dispatch("MESSAGE_UPDATE", m);
    }

    /// The customer deletes their message.
    pub fn customer_delete(&self, user: &DUser, id: &str) {
        self.shared.lock().messages.remove(id);
        self.dispatch("MESSAGE_DELETE", json!({"id": id, "channel_id": user.dm}));
    }

    /// The customer reacts to a message in their DM (`add`), or takes the reaction back. Like
    /// Discord, nothing is dispatched unless the bot identified with DIRECT_MESSAGE_REACTIONS;
    /// returns whether it was.
    pub fn customer_reaction(&self, user: &DUser, message: &str, emoji: &str, add: bool) -> bool {
        {
            let mut s = self.shared.lock();
            let list = s.reactions.entry(message.to_owned()).or_default();
            list.retain(|(u, e)| !(u == &user.id && e == emoji));
            if add {
                list.push((user.id.clone(), emoji.to_owned()));
            }
            if s.intents & DIRECT_MESSAGE_REACTIONS == 0 {
                return false;
            }
        }
        let mut d = json!({
            "user_id": user.id, "channel_id": user.dm, "message_id": message,
            "emoji": emoji_object(emoji), "burst": false, "type": 0,
        });
        if add {
            d["burst_colors"] = json!([]);
            if let Some(author) = self.message(message).map(|m| m["author"]["id"].clone()) {
                d["message_author_id"] = author;
            }
        }
        let t = if add {
            "MESSAGE_REACTION_ADD"
        } else {
            "MESSAGE_REACTION_REMOVE"
        };
        self.dispatch(t, d);
        true
    }

    /// The emoji the bot reacts with on a message.
    pub fn bot_reactions(&self, message: &str) -> Vec<String> {
        self.shared
            .lock()
            .reactions
            .get(message)
            .map(|l| {
                l.iter()
                    .filter(|(u, _)| u == BOT_ID)
                    .map(|(_, e)| e.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The customer starts typing in the DM.
    pub fn customer_typing(&self, user: &DUser) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.dispatch(
            "TYPING_START",
            json!({"channel_id": user.dm, "user_id": user.id, "timestamp": now}),
        );
    }

    /// Put a file on the CDN as an attachment of a message in `channel`; the attachment object.
    pub fn attachment(&self, channel: &str, name: &str, mime: &str, bytes: Vec<u8>) -> Value {
        let id = self.next_id();
        let path = format!("attachments/{channel}/{id}/{name}");
        let size = bytes.len();
        self.shared
            .lock()
            .cdn
            .insert(path.clone(), (mime.to_owned(), bytes));
        json!({
            "id": id, "filename": name, "size": size, "content_type": mime,
            "url": format!("{}/{path}?ex=67a1b2c3&is=67a06143&hm=fakesignature", self.cdn_url()),
            "proxy_url": format!("{}/{path}", self.cdn_url()),
        })
    }

    /// Give a user an avatar on the CDN.
    pub fn set_avatar(&self, user: &mut DUser, hash: &str, png: Vec<u8>) {
        user.avatar = Some(hash.to_owned());
        self.shared.lock().cdn.insert(
            format!("avatars/{}/{hash}.png", user.id),
            ("image/png".into(), png),
        );
    }

    /// CDN paths requested, with the Authorization header they carried.
    pub fn cdn_requests(&self) -> Vec<(String, Option<String>)> {
        self.shared.lock().cdn_requests.clone()
    }

    /// The customer closes their DMs (sends become 50007).
    pub fn close_dms(&self, user: &DUser) {
        self.shared.lock().closed_dms.insert(user.dm.clone());
    }

    /// Make the next `count` requests matching `method` and a path prefix (under `/api/v10`)
    /// fail with `kind`.
    pub fn fault(&self, method: Method, path_prefix: &str, kind: FaultKind, count: u32) {
        self.shared.lock().faults.push(Fault {
            method,
            path_prefix: path_prefix.into(),
            kind,
            remaining: count,
        });
    }

    /// Every HTTP request, in order.
    pub fn all_calls(&self) -> Vec<Call> {
        self.shared.calls()
    }

    /// Requests with this method whose path starts with `prefix`.
    pub fn calls(&self, method: &str, prefix: &str) -> Vec<Call> {
        self.all_calls()
            .into_iter()
            .filter(|c| c.method == method && c.path.starts_with(prefix))
            .collect()
    }

    pub async fn wait_for_call(
        &self,
        method: &str,
        prefix: &str,
        pred: impl Fn(&Call) -> bool,
    ) -> anyhow::Result<Call> {
        self.server
            .wait_for(
                &format!("{method} {prefix}…"),
                server::DEFAULT_WAIT,
                || self.calls(method, prefix).into_iter().find(|c| pred(c)),
            )
            .await
    }

    /// A message the bot (or a customer) sent, as the fake keeps it (`None` once deleted).
    pub fn message(&self, id: &str) -> Option<Value> {
        self.shared.lock().messages.get(id).cloned()
    }

    /// The bot's messages in a channel, oldest first.
    pub fn bot_messages(&self, channel: &str) -> Vec<Value> {
        let s = self.shared.lock();
        let mut v: Vec<Value> = s
            .messages
            .values()
            .filter(|m| m["channel_id"] == channel && m["author"]["id"] == BOT_ID)
            .cloned()
            .collect();
        v.sort_by_key(|m| {
            m["id"]
                .as_str()
                .and_then(|i| i.parse::<u64>().ok())
                .unwrap_or(0)
        });
        v
    }

    // ----- gateway controls

    /// Heartbeat interval announced in HELLO, in milliseconds (default 1000).
    pub fn set_heartbeat_interval(&self, ms: u64) {
        self.shared.lock().heartbeat_interval = ms;
    }

    /// Stop (or resume) delivering dispatches; held ones are still sequenced in the session.
    pub fn hold(&self, hold: bool) {
        self.shared.lock().hold = hold;
        self.shared.wake();
    }

    /// Stop (or resume) acknowledging heartbeats.
    pub fn withhold_acks(&self, withhold: bool) {
        self.shared.lock().withhold_acks = withhold;
    }

    /// On RESUME, replay this many already-delivered dispatches too.
    pub fn set_replay_overlap(&self, n: u64) {
        self.shared.lock().replay_overlap = n;
    }

    /// Cut the live connection without a close frame (a network failure).
    pub fn drop_socket(&self) {
        self.shared.lock().control.push(Control::Drop);
        self.shared.wake();
    }

    /// Send RECONNECT (op 7) on the live connection.
    pub fn send_reconnect(&self) {
        self.shared.lock().control.push(Control::Reconnect);
        self.shared.wake();
    }

    /// Forget the session and send INVALID_SESSION `false`: the bot must identify again.
    pub fn invalidate_session(&self) {
        self.shared.lock().control.push(Control::InvalidSession);
        self.shared.wake();
    }

    /// Every frame the bot sent on the gateway.
    pub fn gateway_ops(&self) -> Vec<GatewayOp> {
        self.shared.lock().ops.clone()
    }

    pub async fn wait_for_op(
        &self,
        what: &str,
        pred: impl Fn(&GatewayOp) -> bool,
    ) -> anyhow::Result<GatewayOp> {
        self.server
            .wait_for_showing(
                &format!("{what} on the gateway"),
                server::DEFAULT_WAIT,
                || self.gateway_ops().into_iter().find(|o| pred(o)),
                |_| {
                    let ops = self.gateway_ops();
                    let last: Vec<String> = ops[ops.len().saturating_sub(10)..]
                        .iter()
                        .map(|o| format!("  {} op {} {}", o.path, o.op, o.d))
                        .collect();
                    format!("its last frames:\n{}", last.join("\n"))
                },
            )
            .await
    }

    /// The current session id and the last sequence number assigned.
    pub fn session(&self) -> (Option<String>, u64) {
        let s = self.shared.lock();
        (s.session_id.clone(), s.log.last().map(|e| e.0).unwrap_or(0))
    }

    /// Number of gateway connections so far.
    pub fn connections(&self) -> u32 {
        self.shared.lock().connections
    }

    /// Highest sequence number sent to the bot.
    pub fn sent_seq(&self) -> u64 {
        self.shared.lock().sent_seq
    }
}

fn push_dispatch(shared: &Shared, t: &str, d: Value) {
    {
        let mut s = shared.lock();
        if s.session_id.is_some() {
            let seq = s.log.last().map(|e| e.0).unwrap_or(0) + 1;
            s.log.push((seq, t.to_owned(), d));
        } else {
            s.undelivered.push_back((t.to_owned(), d));
        }
    }
    shared.wake();
}

// ----- REST

fn fault_for(s: &mut Inner, method: &Method, path: &str) -> Option<FaultKind> {
    let fault = s
        .faults
        .iter_mut()
        .find(|f| f.remaining > 0 && &f.method == method && path.starts_with(&f.path_prefix))?;
    fault.remaining -= 1;
    Some(fault.kind.clone())
}

/// Read a JSON or multipart body: (JSON, files).
async fn read_body(request: Request, shared: &Shared) -> Result<(Value, Vec<Upload>), Response> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = axum::extract::Multipart::from_request(request, &())
            .await
            .map_err(|_| error(400, 50035, "Invalid Form Body"))?;
        let mut body = Value::Null;
        let mut files = Vec::new();
        while let Ok(Some(field)) = multipart.next_field().await {
            let name = field.name().unwrap_or("").to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let mime = field
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_owned();
            let bytes = field
                .bytes()
                .await
                .map_err(|_| error(400, 50035, "Invalid Form Body"))?;
            if name == "payload_json" {
                body = serde_json::from_slice(&bytes)
                    .map_err(|_| error(400, 50109, "The request body contains invalid JSON."))?;
            } else if name.starts_with("files[") {
                files.push(Upload {
                    field: name,
                    name: file_name.unwrap_or_default(),
                    mime,
                    bytes: bytes.to_vec(),
                });
            }
        }
        let _ = shared;
        return Ok((body, files));
    }
    let bytes = Bytes::from_request(request, &())
        .await
        .map_err(|_| error(400, 50035, "Invalid Form Body"))?;
    if bytes.is_empty() {
        return Ok((Value::Null, Vec::new()));
    }
    let body = serde_json::from_slice(&bytes)
        .map_err(|_| error(400, 50109, "The request body contains invalid JSON."))?;
    Ok((body, Vec::new()))
}

async fn rest(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    let path = format!("/{path}");
    let query = request.uri().query().unwrap_or("").to_owned();
    let headers: HeaderMap = request.headers().clone();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (body, files) = match read_body(request, &shared).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    let response = if let ["interactions", id, token, "callback"] = parts
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        // Authenticated by the interaction's token in the path, not the bot's.
        interaction_callback(&shared, id, token, &query, &body)
    } else if authorization.as_deref() != Some(&format!("Bot {TOKEN}")) {
        error(401, 0, "401: Unauthorized")
    } else {
        let fault = fault_for(&mut shared.lock(), &method, &path);
        match fault {
            Some(FaultKind::RateLimited {
                retry_after,
                global,
            }) => rate_limited(retry_after, global),
            Some(FaultKind::ServerError) => error(502, 0, "Bad Gateway"),
            None => with_rate_headers(
                route(&shared, &method, &path, &query, &body, &files),
                "fake-bucket",
            ),
        }
    };
    let status = response.status().as_u16();
    shared.record(Call {
        method: method.to_string(),
        path,
        authorization,
        body,
        files,
        content_type,
        at: Instant::now(),
        status,
    });
    response
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    body: &Value,
    files: &[Upload],
) -> Response {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["channels", channel, "messages"]) => list_messages(shared, channel, query),
        // "Get Channel": the channel object, or 10003 for a channel the bot cannot see.
        ("GET", ["channels", channel]) => match shared.lock().channels.get(*channel) {
            Some(c) => axum::Json(c.clone()).into_response(),
            None => error(404, 10003, "Unknown Channel"),
        },
        // The user the token belongs to: the bot user, with the fields `GET /users/@me`
        // documents for a bot (no email; `verified`, `mfa_enabled`, `flags`).
        ("GET", ["users", "@me"]) => {
            let mut me = bot_user();
            me["flags"] = 0.into();
            me["mfa_enabled"] = false.into();
            me["verified"] = true.into();
            me["locale"] = "en-US".into();
            me["banner"] = Value::Null;
            me["accent_color"] = Value::Null;
            axum::Json(me).into_response()
        }
        ("GET", ["gateway", "bot"]) => {
            let url = shared.url().replacen("http://", "ws://", 1) + "/gateway";
            axum::Json(json!({
                "url": url, "shards": 1,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1},
            }))
            .into_response()
        }
        ("POST", ["channels", channel, "messages"]) => create_message(shared, channel, body, files),
        ("PATCH", ["channels", channel, "messages", id]) => {
            let mut s = shared.lock();
            let Some(m) = s
                .messages
                .get_mut(*id)
                .filter(|m| m["channel_id"] == *channel)
            else {
                return error(404, 10008, "Unknown Message");
            };
            if m["author"]["id"] != BOT_ID {
                return error(403, 50005, "Cannot edit a message authored by another user");
            }
            if let Some(content) = body.get("content").and_then(Value::as_str) {
                if content.chars().count() > 2000 {
                    return error(400, 50035, "Invalid Form Body");
                }
                m["content"] = content.into();
            }
            if let Some(components) = body.get("components") {
                if let Some(problem) = components_problem(components) {
                    return invalid_form_body("components", &problem);
                }
                m["components"] = components.clone();
            }
            m["edited_timestamp"] = now_iso().into();
            let m = m.clone();
            drop(s);
            push_dispatch(shared, "MESSAGE_UPDATE", m.clone());
            axum::Json(m).into_response()
        }
        ("DELETE", ["channels", channel, "messages", id]) => {
            let mut s = shared.lock();
            if !s
                .messages
                .get(*id)
                .is_some_and(|m| m["channel_id"] == *channel)
            {
                return error(404, 10008, "Unknown Message");
            }
            s.messages.remove(*id);
            drop(s);
            push_dispatch(
                shared,
                "MESSAGE_DELETE",
                json!({"id": id, "channel_id": channel}),
            );
            StatusCode::NO_CONTENT.into_response()
        }
        ("PUT" | "DELETE", ["channels", channel, "messages", id, "reactions", emoji, "@me"]) => {
            let add = method == Method::PUT;
            let mut s = shared.lock();
            if !s
                .messages
                .get(*id)
                .is_some_and(|m| m["channel_id"] == *channel)
            {
                return error(404, 10008, "Unknown Message");
            }
            if !known_emoji(emoji) {
                return error(400, 10014, "Unknown Emoji");
            }
            let list = s.reactions.entry((*id).to_owned()).or_default();
            let had = list.iter().any(|(u, e)| u == BOT_ID && e == emoji);
            list.retain(|(u, e)| !(u == BOT_ID && e == emoji));
            if add {
                list.push((BOT_ID.to_owned(), (*emoji).to_owned()));
            }
            drop(s);
            if add != had {
                let t = if add {
                    "MESSAGE_REACTION_ADD"
                } else {
                    "MESSAGE_REACTION_REMOVE"
                };
                push_dispatch(
                    shared,
                    t,
                    json!({"user_id": BOT_ID, "channel_id": channel, "message_id": id, "emoji": emoji_object(emoji), "burst": false, "type": 0}),
                );
            }
            StatusCode::NO_CONTENT.into_response()
        }
        ("POST", ["channels", _channel, "typing"]) => StatusCode::NO_CONTENT.into_response(),
        _ => error(404, 0, "404: Not Found"),
    }
}

/// `GET /channels/{id}/messages?after=&limit=` (docs: "Get Channel Messages"): `limit` 1–100
/// (default 50), the messages right after `after`, newest first.
fn list_messages(shared: &Shared, channel: &str, query: &str) -> Response {
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    };
    let limit = match param("limit").map(|l| l.parse::<usize>()) {
        None => 50,
        Some(Ok(l)) if (1..=100).contains(&l) => l,
        Some(_) => return error(400, 50035, "Invalid Form Body"),
    };
    let after: u64 = match param("after").map(|a| a.parse::<u64>()) {
        None => 0,
        Some(Ok(a)) => a,
        Some(Err(_)) => return error(400, 50035, "Invalid Form Body"),
    };
    let s = shared.lock();
    let mut found: Vec<(u64, Value)> = s
        .messages
        .values()
        .filter(|m| m["channel_id"] == channel)
        .filter_map(|m| Some((m["id"].as_str()?.parse::<u64>().ok()?, m.clone())))
        .filter(|(id, _)| *id > after)
        .collect();
    found.sort_by_key(|(id, _)| *id);
    found.truncate(limit);
    found.reverse();
    axum::Json(found.into_iter().map(|(_, m)| m).collect::<Vec<_>>()).into_response()
}

fn create_message(shared: &Shared, channel: &str, body: &Value, files: &[Upload]) -> Response {
    let content = body.get("content").and_then(Value::as_str).unwrap_or("");
    if content.chars().count() > 2000 {
        return error(400, 50035, "Invalid Form Body");
    }
    let components = body.get("components").cloned().unwrap_or(json!([]));
    if let Some(problem) = components_problem(&components) {
        return invalid_form_body("components", &problem);
    }
    let no_components = components.as_array().is_none_or(Vec::is_empty);
    if content.is_empty() && files.is_empty() && no_components {
        return error(400, 50006, "Cannot send an empty message");
    }
    if files.iter().map(|f| f.bytes.len()).sum::<usize>() > MAX_UPLOAD {
        return error(413, 40005, "Request entity too large");
    }
    let nonce = match body.get("nonce") {
        Some(Value::String(n)) if n.len() <= 25 => Some(n.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        None | Some(Value::Null) => None,
        Some(_) => return error(400, 50035, "Invalid Form Body"),
    };
    let mut s = shared.lock();
    if s.closed_dms.contains(channel) {
        return error(403, 50007, "Cannot send messages to this user");
    }
    if !channel.bytes().all(|b| b.is_ascii_digit()) {
        return error(404, 10003, "Unknown Channel");
    }
    let enforce = body
        .get("enforce_nonce")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let (Some(n), true) = (&nonce, enforce) {
        if let Some(existing) = s
            .nonces
            .get(&(channel.to_owned(), n.clone()))
            .and_then(|id| s.messages.get(id))
        {
            return axum::Json(existing.clone()).into_response();
        }
    }
    s.next_id += 1;
    let id = s.next_id.to_string();
    let base = shared.url();
    let attachments: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(n, f)| {
            json!({"id": format!("{id}{n}"), "filename": f.name, "size": f.bytes.len(), "content_type": f.mime,
                   "url": format!("{base}/cdn/attachments/{channel}/{id}{n}/{}", f.name)})
        })
        .collect();
    let mut m = json!({
        "id": id, "channel_id": channel, "type": 0, "content": content, "author": bot_user(),
        "timestamp": now_iso(), "edited_timestamp": null, "attachments": attachments, "embeds": [],
        "mentions": [], "mention_roles": [], "mention_everyone": false, "tts": false, "pinned": false,
        "flags": 0, "components": components,
    });
    if let Some(guild) = s
        .channels
        .get(channel)
        .and_then(|c| c.get("guild_id"))
        .cloned()
    {
        m["guild_id"] = guild;
    }
    if let Some(n) = &nonce {
        m["nonce"] = n.clone().into();
        s.nonces.insert((channel.to_owned(), n.clone()), id.clone());
    }
    if let Some(reference) = body.get("message_reference").filter(|r| r.is_object()) {
        let target = reference["message_id"].as_str().unwrap_or("");
        if !s.messages.contains_key(target)
            && reference["fail_if_not_exists"].as_bool() != Some(false)
        {
            return error(400, 50035, "Invalid Form Body: Unknown message");
        }
        m["type"] = 19.into();
        m["message_reference"] = json!({"type": 0, "message_id": target, "channel_id": channel});
    }
    s.messages.insert(id, m.clone());
    drop(s);
    let mut echo = m.clone();
    echo["channel_type"] = 1.into();
    push_dispatch(shared, "MESSAGE_CREATE", echo);
    axum::Json(m).into_response()
}

/// 400 50035 with Discord's `errors` object naming the field.
fn invalid_form_body(field: &str, problem: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "message": "Invalid Form Body", "code": 50035,
            "errors": {field: {"_errors": [{"code": "COMPONENT_INVALID", "message": problem}]}},
        })),
    )
        .into_response()
}

/// What is wrong with a message's `components` (legacy layout: action rows at the top), per the
/// component reference; `None` when they are fine.
fn components_problem(components: &Value) -> Option<String> {
    let Some(rows) = components.as_array() else {
        return Some("components must be an array".into());
    };
    if rows.len() > 5 {
        return Some(format!("at most 5 action rows, not {}", rows.len()));
    }
    let mut ids = HashSet::new();
    for (r, row) in rows.iter().enumerate() {
        if row["type"] != 1 {
            return Some(format!(
                "components.{r}: a top-level component must be an action row (type 1)"
            ));
        }
        let Some(items) = row["components"].as_array() else {
            return Some(format!("components.{r}.components is required"));
        };
        let buttons = items.iter().filter(|c| c["type"] == 2).count();
        let selects = items
            .iter()
            .filter(|c| matches!(c["type"].as_u64(), Some(3 | 5 | 6 | 7 | 8)))
            .count();
        let fits = (buttons == items.len() && (1..=5).contains(&buttons))
            || (selects == 1 && items.len() == 1);
        if !fits {
            return Some(format!(
                "components.{r}: an action row holds 1 to 5 buttons or one select"
            ));
        }
        for (b, c) in items.iter().enumerate() {
            let at = format!("components.{r}.components.{b}");
            if c["type"] != 2 {
                continue;
            }
            let style = c["style"].as_u64().unwrap_or(0);
            let custom_id = c.get("custom_id").and_then(Value::as_str);
            let label = c.get("label").and_then(Value::as_str);
            if !(1..=6).contains(&style) {
                return Some(format!("{at}.style: {} is not a button style", c["style"]));
            }
            if label.is_some_and(|l| l.chars().count() > 80) {
                return Some(format!("{at}.label: must be 80 or fewer in length"));
            }
            if style != 6 && label.is_none_or(str::is_empty) && c.get("emoji").is_none() {
                return Some(format!("{at}: a button needs a label or an emoji"));
            }
            if c.get("disabled").is_some_and(|d| !d.is_boolean()) {
                return Some(format!("{at}.disabled: must be a boolean"));
            }
            match style {
                1..=4 => {
                    let Some(id) = custom_id else {
                        return Some(format!("{at}.custom_id: required for this style"));
                    };
                    if id.is_empty() || id.chars().count() > 100 {
                        return Some(format!("{at}.custom_id: must be 1 to 100 in length"));
                    }
                    if c.get("url").is_some() {
                        return Some(format!("{at}.url: not allowed for this style"));
                    }
                    if !ids.insert(id.to_owned()) {
                        return Some(format!("{at}.custom_id: must be unique in the message"));
                    }
                }
                5 => {
                    if custom_id.is_some() || c.get("url").and_then(Value::as_str).is_none() {
                        return Some(format!("{at}: a link button has a url and no custom_id"));
                    }
                }
                _ => {}
            }
        }
    }
    None
}

/// `POST /interactions/{id}/{token}/callback`.
fn interaction_callback(
    shared: &Shared,
    id: &str,
    token: &str,
    query: &str,
    body: &Value,
) -> Response {
    let now = Instant::now();
    let kind = body.get("type").and_then(Value::as_u64);
    let (response, after) = (|| {
        let mut s = shared.lock();
        let Some(i) = s.interactions.get(id).filter(|i| i.token == token).cloned() else {
            return (error(404, 10062, "Unknown interaction"), Duration::ZERO);
        };
        let after = now.duration_since(i.delivered.unwrap_or(i.created));
        if after > INTERACTION_DEADLINE {
            // The token was invalidated when the 3 seconds ran out.
            return (error(404, 10062, "Unknown interaction"), after);
        }
        if i.answered {
            return (
                error(400, 40060, "Interaction has already been acknowledged."),
                after,
            );
        }
        let Some(kind) = kind.filter(|k| matches!(k, 4 | 5 | 6 | 7 | 9 | 12)) else {
            return (
                invalid_form_body(
                    "type",
                    "Value must be one of {4, 5, 6, 7, 9, 12} for a component interaction.",
                ),
                after,
            );
        };
        let data = body.get("data").cloned().unwrap_or(Value::Null);
        if kind == 7 || kind == 4 {
            if let Some(content) = data.get("content").and_then(Value::as_str) {
                if content.chars().count() > 2000 {
                    return (
                        invalid_form_body("data.content", "Must be 2000 or fewer in length."),
                        after,
                    );
                }
            }
            if let Some(problem) = data.get("components").and_then(components_problem) {
                return (invalid_form_body("data.components", &problem), after);
            }
        }
        if let Some(slot) = s.interactions.get_mut(id) {
            slot.answered = true;
        }
        let mut update = None;
        if kind == 7 {
            if let Some(m) = s.messages.get_mut(&i.message) {
                if let Some(content) = data.get("content") {
                    m["content"] = content.clone();
                }
                if let Some(components) = data.get("components") {
                    m["components"] = components.clone();
                }
                m["edited_timestamp"] = now_iso().into();
                update = Some(m.clone());
            }
        }
        drop(s);
        if let Some(m) = update {
            push_dispatch(shared, "MESSAGE_UPDATE", m);
        }
        let response = if query.split('&').any(|p| p == "with_response=true") {
            axum::Json(json!({"interaction": {"id": id, "type": 3}, "resource": {"type": kind}}))
                .into_response()
        } else {
            StatusCode::NO_CONTENT.into_response()
        };
        (response, after)
    })();
    shared.lock().answers.push(InteractionAnswer {
        interaction: id.to_owned(),
        kind,
        body: body.clone(),
        status: response.status().as_u16(),
        after,
    });
    response
}

async fn cdn(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut s = shared.lock();
    s.cdn_requests.push((path.clone(), auth));
    match s.cdn.get(&path) {
        Some((mime, bytes)) => {
            ([(header::CONTENT_TYPE, mime.clone())], bytes.clone()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

// ----- gateway

async fn gateway(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let upgrade = match WebSocketUpgrade::from_request(request, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    if !query.split('&').any(|p| p == "v=10") || !query.split('&').any(|p| p == "encoding=json") {
        return (StatusCode::BAD_REQUEST, "gateway needs ?v=10&encoding=json").into_response();
    }
    upgrade.on_upgrade(move |socket| connection(shared, path, socket))
}

fn frame(v: Value) -> WsMessage {
    WsMessage::Text(v.to_string().into())
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(WsMessage::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned().into(),
        })))
        .await;
}

/// For a RESUME: where replay starts and what to replay (RESUMED is queued after it), or `None`
/// when the session cannot be resumed.
fn resume_replay(shared: &Shared, d: &Value) -> Option<(u64, Vec<(u64, String, Value)>)> {
    let mut s = shared.lock();
    let known = s.session_id.is_some() && d["session_id"].as_str() == s.session_id.as_deref();
    let seq = d["seq"].as_u64().unwrap_or(0);
    let last = s.log.last().map(|e| e.0).unwrap_or(0);
    if !known || seq > last {
        return None;
    }
    let from = seq.saturating_sub(s.replay_overlap);
    let replay: Vec<(u64, String, Value)> = s.log.iter().filter(|e| e.0 > from).cloned().collect();
    s.log
        .push((last + 1, "RESUMED".into(), json!({"_trace": ["fake"]})));
    Some((from, replay))
}

/// One gateway connection, as Discord runs it.
async fn connection(shared: Arc<Shared>, path: String, mut socket: WebSocket) {
    let interval = {
        let mut s = shared.lock();
        s.connections += 1;
        s.heartbeat_interval
    };
    if socket
        .send(frame(
            json!({"op": 10, "d": {"heartbeat_interval": interval}, "s": null, "t": null}),
        ))
        .await
        .is_err()
    {
        return;
    }
    // IDENTIFY or RESUME.
    let first = match tokio::time::timeout(Duration::from_secs(20), socket.recv()).await {
        Ok(Some(Ok(WsMessage::Text(t)))) => {
            serde_json::from_str::<Value>(&t).unwrap_or(Value::Null)
        }
        _ => return,
    };
    let op = first["op"].as_u64().unwrap_or(99);
    shared.lock().ops.push(GatewayOp {
        path: path.clone(),
        op,
        d: first["d"].clone(),
        at: Instant::now(),
    });
    let d = &first["d"];
    if d["token"].as_str() != Some(TOKEN) {
        return close(socket, 4004, "Authentication failed.").await;
    }
    let mut sent: u64;
    match op {
        2 => {
            let intents = d["intents"].as_u64().unwrap_or(0);
            if intents & DIRECT_MESSAGES == 0 || intents & MESSAGE_CONTENT == 0 {
                return close(socket, 4014, "Disallowed intent(s).").await;
            }
            shared.lock().intents = intents;
            let base = shared.url().replacen("http://", "ws://", 1);
            let mut s = shared.lock();
            s.next_id += 1;
            let session_id = format!("fakesession{:x}", s.next_id);
            s.session_id = Some(session_id.clone());
            s.log.clear();
            let ready = json!({
                "v": 10, "user": bot_user(), "guilds": [], "session_id": session_id,
                "resume_gateway_url": format!("{base}/resume"), "session_type": "normal",
                "application": {"id": BOT_ID, "flags": 565_248}, "private_channels": [],
            });
            s.log.push((1, "READY".into(), ready));
            while let Some((t, d)) = s.undelivered.pop_front() {
                let seq = s.log.len() as u64 + 1;
                s.log.push((seq, t, d));
            }
            sent = 0;
        }
        6 => {
            let Some((from, replay)) = resume_replay(&shared, d) else {
                let _ = socket
                    .send(frame(json!({"op": 9, "d": false, "s": null, "t": null})))
                    .await;
                return;
            };
            sent = from;
            for (seq, t, d) in replay {
                if socket
                    .send(frame(json!({"op": 0, "s": seq, "t": t, "d": d})))
                    .await
                    .is_err()
                {
                    return;
                }
                sent = seq;
            }
        }
        _ => return close(socket, 4003, "Not authenticated.").await,
    }

    loop {
        // Send what is due.
        let (due, control) = {
            let mut s = shared.lock();
            let due: Vec<(u64, String, Value)> = if s.hold {
                Vec::new()
            } else {
                s.log.iter().filter(|e| e.0 > sent).cloned().collect()
            };
            (due, std::mem::take(&mut s.control))
        };
        for c in control {
            match c {
                Control::Drop => return, // the socket is dropped without a close frame
                Control::Reconnect => {
                    let _ = socket
                        .send(frame(json!({"op": 7, "d": null, "s": null, "t": null})))
                        .await;
                }
                Control::InvalidSession => {
                    shared.lock().session_id = None;
                    let _ = socket
                        .send(frame(json!({"op": 9, "d": false, "s": null, "t": null})))
                        .await;
                }
            }
        }
        for (seq, t, d) in due {
            if socket
                .send(frame(json!({"op": 0, "s": seq, "t": t, "d": d})))
                .await
                .is_err()
            {
                return;
            }
            sent = seq;
            let mut s = shared.lock();
            s.sent_seq = s.sent_seq.max(seq);
            if t == "INTERACTION_CREATE" {
                if let Some(i) = d["id"].as_str().and_then(|id| s.interactions.get_mut(id)) {
                    i.delivered.get_or_insert_with(Instant::now);
                }
            }
        }
        let notified = shared.changed.notified();
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(WsMessage::Text(t))) => t,
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let op = v["op"].as_u64().unwrap_or(99);
                shared.lock().ops.push(GatewayOp { path: path.clone(), op, d: v["d"].clone(), at: Instant::now() });
                match op {
                    1 => {
                        let withhold = shared.lock().withhold_acks;
                        if !withhold && socket.send(frame(json!({"op": 11}))).await.is_err() {
                            return;
                        }
                    }
                    2 | 6 => return close(socket, 4005, "Already authenticated.").await,
                    _ => {}
                }
            }
        }
    }
}

/// Frames of the fixtures, for the fake's own checks.
pub fn fixture(name: &str) -> Option<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/discord");
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).ok()?).ok()
}
