//! A wire-level fake of the Telegram Bot API, for the bridge's Telegram channel to talk to
//! through its configurable `api_url` (and nothing else: the channel cannot tell).
//!
//! It speaks the documented protocol (<https://core.telegram.org/bots/api>):
//!
//! * `POST|GET <base>/bot<token>/<method>` with parameters as a query string, JSON,
//!   url-encoded or multipart form (files as multipart parts, other fields as text; objects
//!   such as `reply_parameters` as JSON text), answering `{"ok":true,"result":…}` or the error
//!   envelope `{"ok":false,"error_code":N,"description":"…"[,"parameters":{"retry_after":N}]}`.
//!   A wrong token is `401 Unauthorized`; an unknown method `404 Not Found`.
//! * `getUpdates` with offset semantics: an update is *confirmed* (forgotten) once a call
//!   asks for an offset above its id; unconfirmed updates are returned again. `timeout` holds
//!   the request open until an update arrives or the timeout passes. While a webhook is set,
//!   `getUpdates` is a 409 Conflict, as on Telegram.
//! * Files: `getFile` gives a `file_path`; the bytes are at `<base>/file/bot<token>/<path>`.
//!   Files over 20 MB are "Bad Request: file is too big" for `getFile`, as on Telegram.
//! * Sending: `sendMessage`, `sendPhoto`, `sendDocument`, `sendVoice`, `sendVideo`,
//!   `editMessageText`, `editMessageCaption`, `deleteMessage`, `sendChatAction`, with
//!   Telegram's own refusals (HTML it cannot parse, empty or too long text, message to edit or
//!   delete not found, not modified, no text to edit). Uploads over 50 MB are 413; a photo over
//!   10 MB, or whose width + height pass 10000 or whose ratio passes 20, is
//!   "Bad Request: PHOTO_INVALID_DIMENSIONS" (<https://core.telegram.org/bots/api#sendphoto>).
//! * `getMe`, `setWebhook` / `deleteWebhook` / `getWebhookInfo`, `getUserProfilePhotos`.
//! * Reactions (<https://core.telegram.org/bots/api#setmessagereaction>): `setMessageReaction`
//!   takes at most one reaction from a bot ("REACTIONS_TOO_MANY"), only an emoji of
//!   `ReactionTypeEmoji`'s list ("REACTION_INVALID" for any other, a custom or a paid one), on
//!   a message of the chat ("MESSAGE_ID_INVALID"); an empty list takes the bot's back.
//!   `message_reaction` updates exist only when the last `allowed_updates` (of `getUpdates` or
//!   `setWebhook`) named them: Telegram's default is "all update types except chat_member,
//!   message_reaction, and message_reaction_count", and an update not allowed when it happens
//!   is never created ([`FakeTelegram::push_update`] drops it, [`FakeTelegram::post_webhook`]
//!   refuses to deliver it).
//!
//! * Inline keyboards (<https://core.telegram.org/bots/api#inlinekeyboardmarkup>): a
//!   `reply_markup` of `sendMessage` must be an `inline_keyboard` of rows of buttons, each with
//!   a non-empty `text` and exactly one action field; `callback_data` is 1-64 bytes
//!   ("Bad Request: BUTTON_DATA_INVALID"). [`FakeTelegram::press_button`] presses one the way a
//!   client does: a `callback_query` update carrying the button's data, whose id the bot answers
//!   with `answerCallbackQuery` (an unknown or already answered id is "query is too old…").
//!
//! For tests: [`FakeTelegram::push_update`] queues what a customer does; [`FakeTelegram::calls`]
//! is the record of every request (method, parameters, uploaded file, time) to assert on;
//! [`FakeTelegram::fault`] makes the next N calls of a method fail (429 with `retry_after`,
//! 500, 403 blocked); [`FakeTelegram::block`] makes a chat have blocked the bot;
//! [`FakeTelegram::hold_downloads`] keeps file downloads hanging (to crash the bridge between
//! `getUpdates` and storing); [`FakeTelegram::post_webhook`] delivers an update to a webhook
//! with the secret header, as Telegram does. Sample payload shapes follow
//! `../shared/fixtures/telegram`.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::{json, Map, Value};

use super::server::{self, FakeServer};

/// The bot's token in tests: `<bot id>:<secret>`, as @BotFather issues them.
pub const TOKEN: &str = "7001002003:AAFake-Token_for_the_switchboard_tests";
pub const BOT_ID: i64 = 7001002003;
pub const BOT_USERNAME: &str = "AcmeSupportBot";
/// Largest file `getFile` hands out, as on the public Bot API.
pub const MAX_DOWNLOAD: u64 = 20 * 1024 * 1024;
/// Largest upload accepted, as on the public Bot API.
pub const MAX_UPLOAD: usize = 50 * 1024 * 1024;
/// `sendPhoto`'s limit: 10 MB (<https://core.telegram.org/bots/api#sendphoto>).
pub const MAX_PHOTO: usize = 10 * 1024 * 1024;
/// `sendMessage` / `editMessageText`: "Text of the message to be sent, 1-4096 characters after
/// entities parsing" (core.telegram.org/bots/api#sendmessage). Telegram counts in UTF-16 code
/// units, as it does entity offsets: an emoji outside the BMP takes two.
pub const MAX_TEXT_UTF16: usize = 4096;
/// Captions: "0-1024 characters after entities parsing" (core.telegram.org/bots/api#sendphoto).
pub const MAX_CAPTION_UTF16: usize = 1024;

/// A Telegram user in tests.
#[derive(Clone, Debug)]
pub struct TgUser {
    pub id: i64,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
}

impl TgUser {
    pub fn new(id: i64, first: &str, last: Option<&str>, username: Option<&str>) -> TgUser {
        TgUser {
            id,
            first_name: first.into(),
            last_name: last.map(Into::into),
            username: username.map(Into::into),
        }
    }

    pub fn json(&self) -> Value {
        let mut v = json!({"id": self.id, "is_bot": false, "first_name": self.first_name, "language_code": "en"});
        if let Some(l) = &self.last_name {
            v["last_name"] = l.clone().into();
        }
        if let Some(u) = &self.username {
            v["username"] = u.clone().into();
        }
        v
    }

    /// The private chat with this user (its id is the user's).
    pub fn private_chat(&self) -> Value {
        let mut v = json!({"id": self.id, "type": "private", "first_name": self.first_name});
        if let Some(l) = &self.last_name {
            v["last_name"] = l.clone().into();
        }
        if let Some(u) = &self.username {
            v["username"] = u.clone().into();
        }
        v
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
    /// Every parameter; multipart/url-encoded text fields as strings.
    pub params: Map<String, Value>,
    pub upload: Option<Upload>,
    pub at: Instant,
    /// The status the fake answered with.
    pub status: u16,
}

impl Call {
    /// A parameter as a string (numbers too).
    pub fn str(&self, name: &str) -> Option<String> {
        match self.params.get(name)? {
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        match self.params.get(name)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// A parameter that is an object (sent as JSON, or as JSON text in a form).
    pub fn object(&self, name: &str) -> Option<Value> {
        match self.params.get(name)? {
            Value::String(s) => serde_json::from_str(s).ok(),
            other => Some(other.clone()),
        }
    }
}

/// How a faulty call fails.
#[derive(Clone, Debug)]
pub enum FaultKind {
    /// 429 with `parameters.retry_after`.
    TooManyRequests { retry_after: u32 },
    /// 500 Internal Server Error.
    ServerError,
    /// 403 "Forbidden: bot was blocked by the user".
    Blocked,
    /// No answer for this long (the call is not carried out), then 504: a client with a shorter
    /// timeout sees a timeout.
    Hang { secs: u64 },
}

#[derive(Clone, Debug)]
struct Fault {
    method: Option<String>,
    kind: FaultKind,
    remaining: u32,
}

#[derive(Clone, Debug)]
struct StoredFile {
    unique_id: String,
    path: String,
    bytes: Vec<u8>,
    /// The size Telegram reports (may be larger than `bytes` to fake a huge file cheaply).
    size: u64,
}

#[derive(Default)]
struct Inner {
    /// Unconfirmed updates, in id order.
    updates: VecDeque<Value>,
    next_update_id: i64,
    faults: Vec<Fault>,
    blocked: HashSet<i64>,
    /// Messages the bot sent, by (chat, message id).
    messages: HashMap<(i64, i64), Value>,
    next_message_id: i64,
    files: HashMap<String, StoredFile>,
    next_file: u64,
    chats: HashMap<i64, Value>,
    webhook: Option<(String, Option<String>)>,
    profile_photos: HashMap<i64, String>,
    hold_downloads: bool,
    /// Paths whose download was asked for while held.
    held: Vec<String>,
    /// The last `allowed_updates` given (`None`: never given, Telegram's default).
    allowed_updates: Option<Vec<String>>,
    /// Customers' messages, by (chat, message id), as pushed in updates.
    customer_messages: HashSet<(i64, i64)>,
    /// The bot's reactions, by (chat, message id): `ReactionType` objects.
    reactions: HashMap<(i64, i64), Vec<Value>>,
    /// Callback queries pushed and not answered yet, and those answered.
    open_queries: HashSet<String>,
    answered_queries: Vec<String>,
    next_query: u64,
}

/// `ReactionTypeEmoji.emoji` "can be one of" these (core.telegram.org/bots/api#reactiontypeemoji).
pub const REACTION_EMOJI: [&str; 73] = [
    "👍",
    "👎",
    "❤",
    "🔥",
    "🥰",
    "👏",
    "😁",
    "🤔",
    "🤯",
    "😱",
    "🤬",
    "😢",
    "🎉",
    "🤩",
    "🤮",
    "💩",
    "🙏",
    "👌",
    "🕊",
    "🤡",
    "🥱",
    "🥴",
    "😍",
    "🐳",
    "❤\u{200D}🔥",
    "🌚",
    "🌭",
    "💯",
    "🤣",
    "⚡",
    "🍌",
    "🏆",
    "💔",
    "🤨",
    "😐",
    "🍓",
    "🍾",
    "💋",
    "🖕",
    "😈",
    "😴",
    "😭",
    "🤓",
    "👻",
    "👨\u{200D}💻",
    "👀",
    "🎃",
    "🙈",
    "😇",
    "😨",
    "🤝",
    "✍",
    "🤗",
    "🫡",
    "🎅",
    "🎄",
    "☃",
    "💅",
    "🤪",
    "🗿",
    "🆒",
    "💘",
    "🙉",
    "🦄",
    "😘",
    "💊",
    "🙊",
    "😎",
    "👾",
    "🤷\u{200D}♂",
    "🤷",
    "🤷\u{200D}♀",
    "😡",
];

/// The kind of an update (`message`, `message_reaction`, …): its one field besides the id.
fn update_kind(update: &Value) -> Option<String> {
    update
        .as_object()?
        .keys()
        .find(|k| *k != "update_id")
        .cloned()
}

impl Inner {
    /// Whether Telegram would create an update of this kind now.
    fn allows(&self, kind: &str) -> bool {
        match &self.allowed_updates {
            Some(list) if !list.is_empty() => list.iter().any(|k| k == kind),
            // Never given, or an empty list ("all update types except chat_member,
            // message_reaction, and message_reaction_count").
            _ => !matches!(
                kind,
                "chat_member" | "message_reaction" | "message_reaction_count"
            ),
        }
    }

    /// Remember what an update tells about the chats and their messages.
    fn note(&mut self, update: &Value) {
        for key in ["message", "edited_message"] {
            if let Some(m) = update.get(key) {
                if let Some(chat_id) = m
                    .get("chat")
                    .and_then(|c| c.get("id"))
                    .and_then(Value::as_i64)
                {
                    self.chats.insert(chat_id, m["chat"].clone());
                    if let Some(id) = m.get("message_id").and_then(Value::as_i64) {
                        self.customer_messages.insert((chat_id, id));
                    }
                }
            }
        }
    }
}

/// The state; its `changed` wakes long polls (new update) and held downloads (release).
type Shared = server::Shared<Inner, Call>;

/// The fake Bot API server, on 127.0.0.1 and a free port; stops when dropped.
pub struct FakeTelegram {
    server: FakeServer,
    shared: Arc<Shared>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn ok(result: Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "result": result})),
    )
        .into_response()
}

fn error(code: u16, description: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        axum::Json(json!({"ok": false, "error_code": code, "description": description})),
    )
        .into_response()
}

fn too_many(retry_after: u32) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(json!({
            "ok": false, "error_code": 429,
            "description": format!("Too Many Requests: retry after {retry_after}"),
            "parameters": {"retry_after": retry_after},
        })),
    )
        .into_response()
}

fn bot_user() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": "Acme Support", "username": BOT_USERNAME})
}

impl FakeTelegram {
    pub async fn start() -> anyhow::Result<FakeTelegram> {
        let bound = FakeServer::bind("Telegram").await?;
        let shared = bound.shared(Inner {
            next_update_id: 800_000_001,
            next_message_id: 1000,
            ..Inner::default()
        });
        let app = Router::new()
            .route("/file/{bot}/{*path}", get(download))
            .route("/{bot}/{method}", any(method))
            .layer(DefaultBodyLimit::max(MAX_UPLOAD + 1024 * 1024))
            .with_state(Arc::clone(&shared));
        let server = bound.serve(app);
        Ok(FakeTelegram { server, shared })
    }

    /// The HTTP server: every request as it came ([`FakeServer::requests`]).
    pub fn server(&self) -> &FakeServer {
        &self.server
    }

    /// The base URL to configure as `api_url`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Queue an update (its `update_id` is assigned); returns the id.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let id = {
            let mut s = self.shared.lock();
            let id = s.next_update_id;
            s.next_update_id += 1;
            update["update_id"] = id.into();
            s.note(&update);
            // An update of a kind not allowed when it happens is never created.
            if update_kind(&update).is_none_or(|k| s.allows(&k)) {
                s.updates.push_back(update);
            }
            id
        };
        self.shared.wake();
        id
    }

    /// The customer `user` presses the button at `(row, column)` of the bot's message
    /// `message_id` in their private chat, as a Telegram client does: a `callback_query` update
    /// with the button's `callback_data` and the message as the bot sent it. Returns the query's
    /// id (answered or not: [`FakeTelegram::answered_queries`]).
    pub fn press_button(
        &self,
        user: &TgUser,
        message_id: i64,
        row: usize,
        column: usize,
    ) -> anyhow::Result<String> {
        let chat = user.private_chat()["id"].as_i64().unwrap_or_default();
        let message = self
            .bot_message(chat, message_id)
            .ok_or_else(|| anyhow::anyhow!("no bot message {message_id} in chat {chat}"))?;
        let data = message["reply_markup"]["inline_keyboard"][row][column]["callback_data"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no callback button at {row},{column}: {message}"))?
            .to_string();
        Ok(self.push_callback(user, message, &data))
    }

    /// A `callback_query` update with any `data` on the bot's message (what a modified client
    /// could send); returns the query's id.
    pub fn push_callback(&self, user: &TgUser, message: Value, data: &str) -> String {
        let id = {
            let mut s = self.shared.lock();
            s.next_query += 1;
            let id = format!("{}{:010}", user.id, s.next_query);
            s.open_queries.insert(id.clone());
            id
        };
        self.push_update(json!({"callback_query": {
            "id": id,
            "from": user.json(),
            "message": message,
            "chat_instance": format!("-{}", user.id),
            "data": data,
        }}));
        id
    }

    /// Callback query ids the bot answered (`answerCallbackQuery`), in order.
    pub fn answered_queries(&self) -> Vec<String> {
        self.shared.lock().answered_queries.clone()
    }

    /// What Telegram does after a week without updates: the next `update_id` is chosen anew,
    /// here `next` (below the last one to test that nothing trusts the old numbering).
    pub fn reset_update_ids(&self, next: i64) {
        self.shared.lock().next_update_id = next;
    }

    /// Queue several updates at once, so one `getUpdates` returns them together.
    pub fn push_updates(&self, updates: Vec<Value>) -> Vec<i64> {
        let ids = {
            let mut s = self.shared.lock();
            let mut ids = Vec::new();
            for mut update in updates {
                let id = s.next_update_id;
                s.next_update_id += 1;
                update["update_id"] = id.into();
                s.note(&update);
                if update_kind(&update).is_none_or(|k| s.allows(&k)) {
                    s.updates.push_back(update);
                }
                ids.push(id);
            }
            ids
        };
        self.shared.wake();
        ids
    }

    /// An update carrying a new message from `user` in their private chat. `fields` are the
    /// message's content fields (`text`, `photo`, `voice`, …).
    pub fn message_update(&self, user: &TgUser, message_id: i64, fields: Value) -> Value {
        self.message_in(user, &user.private_chat(), message_id, fields)
    }

    /// A new message in any chat (a group, say).
    pub fn message_in(&self, user: &TgUser, chat: &Value, message_id: i64, fields: Value) -> Value {
        let mut message = json!({"message_id": message_id, "from": user.json(), "chat": chat, "date": now_secs()});
        if let (Some(m), Value::Object(f)) = (message.as_object_mut(), fields) {
            m.extend(f);
        }
        json!({"message": message})
    }

    /// An `edited_message` update.
    pub fn edit_update(&self, user: &TgUser, message_id: i64, text: &str) -> Value {
        let now = now_secs();
        json!({"edited_message": {
            "message_id": message_id, "from": user.json(), "chat": user.private_chat(),
            "date": now - 5, "edit_date": now, "text": text,
        }})
    }

    /// A `message_reaction` update: `user` now reacts to `message_id` of their private chat
    /// with `new` (emoji; empty: no reaction), having reacted with `old` before.
    pub fn reaction_update(
        &self,
        user: &TgUser,
        message_id: i64,
        old: &[&str],
        new: &[&str],
    ) -> Value {
        let types = |list: &[&str]| -> Vec<Value> {
            list.iter()
                .map(|e| json!({"type": "emoji", "emoji": e}))
                .collect()
        };
        json!({"message_reaction": {
            "chat": user.private_chat(), "message_id": message_id, "user": user.json(),
            "date": now_secs(), "old_reaction": types(old), "new_reaction": types(new),
        }})
    }

    /// The bot's reactions on a message (`ReactionType` objects; empty when none).
    pub fn bot_reactions(&self, chat: i64, message_id: i64) -> Vec<Value> {
        self.shared
            .lock()
            .reactions
            .get(&(chat, message_id))
            .cloned()
            .unwrap_or_default()
    }

    /// The last `allowed_updates` the bot gave (`None`: never).
    pub fn allowed_updates(&self) -> Option<Vec<String>> {
        self.shared.lock().allowed_updates.clone()
    }

    /// Store a file as Telegram would have it; returns (`file_id`, `file_unique_id`).
    /// `reported_size` overrides the size Telegram reports (to fake a huge file cheaply).
    pub fn add_file(
        &self,
        folder: &str,
        extension: &str,
        bytes: Vec<u8>,
        reported_size: Option<u64>,
    ) -> (String, String) {
        let mut s = self.shared.lock();
        s.next_file += 1;
        let n = s.next_file;
        let file_id = format!("AgACAgQAAxkBAAF{n:06}fake{}", BOT_ID);
        let unique_id = format!("AQAD{n:06}");
        let size = reported_size.unwrap_or(bytes.len() as u64);
        let path = format!("{folder}/file_{n}.{extension}");
        s.files.insert(
            file_id.clone(),
            StoredFile {
                unique_id: unique_id.clone(),
                path,
                bytes,
                size,
            },
        );
        (file_id, unique_id)
    }

    /// `{file_id, file_unique_id, file_size}` of a stored file, to build message fields with.
    pub fn file_meta(&self, file_id: &str) -> Value {
        let s = self.shared.lock();
        match s.files.get(file_id) {
            Some(f) => {
                json!({"file_id": file_id, "file_unique_id": f.unique_id, "file_size": f.size})
            }
            None => json!({"file_id": file_id, "file_unique_id": "unknown"}),
        }
    }

    /// Give `user` a profile photo (a stored file).
    pub fn set_profile_photo(&self, user_id: i64, file_id: &str) {
        self.shared
            .lock()
            .profile_photos
            .insert(user_id, file_id.to_owned());
    }

    /// Every request so far.
    pub fn all_calls(&self) -> Vec<Call> {
        self.shared.calls()
    }

    /// The requests of one method so far.
    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.shared.calls_where(|c| c.method == method)
    }

    /// Waits until a call of `method` matching `pred` was received.
    pub async fn wait_for_call(
        &self,
        method: &str,
        pred: impl Fn(&Call) -> bool,
    ) -> anyhow::Result<Call> {
        self.wait_for_call_within(method, server::DEFAULT_WAIT, pred)
            .await
    }

    /// [`Self::wait_for_call`] with a deadline of its own (for calls that come after retries).
    pub async fn wait_for_call_within(
        &self,
        method: &str,
        within: Duration,
        pred: impl Fn(&Call) -> bool,
    ) -> anyhow::Result<Call> {
        self.server
            .wait_for(&format!("a matching {method} call"), within, || {
                self.calls(method).into_iter().find(|c| pred(c))
            })
            .await
    }

    /// Make the next `count` calls of `method` (any method when `None`) fail with `kind`.
    pub fn fault(&self, method: Option<&str>, kind: FaultKind, count: u32) {
        self.shared.lock().faults.push(Fault {
            method: method.map(Into::into),
            kind,
            remaining: count,
        });
    }

    /// The customer of `chat` blocks (or unblocks) the bot.
    pub fn block(&self, chat: i64, blocked: bool) {
        let mut s = self.shared.lock();
        if blocked {
            s.blocked.insert(chat);
        } else {
            s.blocked.remove(&chat);
        }
    }

    /// Keep file downloads hanging until [`FakeTelegram::release_downloads`].
    pub fn hold_downloads(&self) {
        self.shared.lock().hold_downloads = true;
    }

    pub fn release_downloads(&self) {
        self.shared.lock().hold_downloads = false;
        self.shared.wake();
    }

    /// Paths whose download was asked for while downloads were held.
    pub fn held_downloads(&self) -> Vec<String> {
        self.shared.lock().held.clone()
    }

    /// Updates not yet confirmed by a `getUpdates` offset.
    pub fn pending_updates(&self) -> Vec<i64> {
        self.shared
            .lock()
            .updates
            .iter()
            .filter_map(|u| u["update_id"].as_i64())
            .collect()
    }

    /// The webhook set with `setWebhook`: (url, secret_token).
    pub fn webhook(&self) -> Option<(String, Option<String>)> {
        self.shared.lock().webhook.clone()
    }

    /// A message the bot sent (as the fake keeps it, edits applied), if not deleted.
    pub fn bot_message(&self, chat: i64, message_id: i64) -> Option<Value> {
        self.shared
            .lock()
            .messages
            .get(&(chat, message_id))
            .cloned()
    }

    /// The bot's messages in `chat` that are not deleted, oldest first: (id, message).
    pub fn bot_messages(&self, chat: i64) -> Vec<(i64, Value)> {
        let s = self.shared.lock();
        let mut all: Vec<(i64, Value)> = s
            .messages
            .iter()
            .filter(|((c, _), _)| *c == chat)
            .map(|((_, id), m)| (*id, m.clone()))
            .collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// How many of the bot's messages in `chat` have `text` as text or caption.
    pub fn bot_messages_with_text(&self, chat: i64, text: &str) -> usize {
        let s = self.shared.lock();
        s.messages
            .iter()
            .filter(|((c, _), m)| *c == chat && (m["text"] == text || m["caption"] == text))
            .count()
    }

    /// The id of the bot's message in `chat` whose text or caption is `text`.
    pub fn bot_message_id(&self, chat: i64, text: &str) -> Option<i64> {
        let s = self.shared.lock();
        s.messages
            .iter()
            .filter(|((c, _), m)| *c == chat && (m["text"] == text || m["caption"] == text))
            .map(|((_, id), _)| *id)
            .min()
    }

    /// POST an update to a webhook as Telegram does (JSON, the secret header when given).
    pub async fn post_webhook(
        &self,
        url: &str,
        secret: Option<&str>,
        mut update: Value,
    ) -> anyhow::Result<u16> {
        {
            let mut s = self.shared.lock();
            if update.get("update_id").is_none() {
                update["update_id"] = s.next_update_id.into();
                s.next_update_id += 1;
            }
            let kind = update_kind(&update).unwrap_or_default();
            anyhow::ensure!(
                s.allows(&kind),
                "Telegram would not create a {kind} update: the webhook's allowed_updates are {:?}",
                s.allowed_updates
            );
            s.note(&update);
        }
        let secret: Vec<_> = secret
            .map(|s| ("X-Telegram-Bot-Api-Secret-Token", s))
            .into_iter()
            .collect();
        let response =
            server::post_webhook(url, update.to_string(), &secret, Duration::from_secs(30)).await?;
        Ok(response.status().as_u16())
    }
}

/// Parameters from the query string and the body, whatever its encoding.
async fn parameters(request: Request) -> Result<(Map<String, Value>, Option<Upload>), Response> {
    let mut params = Map::new();
    if let Some(q) = request.uri().query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            params.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut upload = None;
    if content_type.starts_with("multipart/form-data") {
        let mut form = axum::extract::Multipart::from_request(request, &())
            .await
            .map_err(|e| error(400, &format!("Bad Request: {e}")))?;
        loop {
            let field = match form.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    return Err(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        error(413, "Request Entity Too Large")
                    } else {
                        error(400, &format!("Bad Request: {e}"))
                    })
                }
            };
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let mime = field
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_owned();
            let bytes = field
                .bytes()
                .await
                .map_err(|_| error(413, "Request Entity Too Large"))?;
            match file_name {
                Some(file_name) => {
                    // teloxide attaches files as `attach://<id>` references or directly.
                    upload = Some(Upload {
                        field: name.clone(),
                        name: file_name,
                        mime,
                        bytes: bytes.to_vec(),
                    });
                    params.entry(name).or_insert(Value::String("<file>".into()));
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
            .map_err(|_| error(413, "Request Entity Too Large"))?;
        if content_type.starts_with("application/json") && !body.is_empty() {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => params.extend(m),
                _ => return Err(error(400, "Bad Request: invalid JSON in the request body")),
            }
        } else if !body.is_empty() {
            for (k, v) in url::form_urlencoded::parse(&body) {
                params.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    Ok((params, upload))
}

fn param_i64(params: &Map<String, Value>, name: &str) -> Option<i64> {
    match params.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn param_str(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A list parameter (`allowed_updates`): a JSON array, or its JSON text in a form.
fn param_list(params: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    let list = param_object(params, name)?;
    Some(
        list.as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
    )
}

fn param_object(params: &Map<String, Value>, name: &str) -> Option<Value> {
    match params.get(name)? {
        Value::String(s) => serde_json::from_str(s).ok(),
        other => Some(other.clone()),
    }
}

/// Telegram's HTML parse mode: the tags it knows, balanced. Returns the visible text, or the
/// error description Telegram gives.
fn parse_telegram_html(html: &str) -> Result<String, String> {
    const ALLOWED: [&str; 17] = [
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
        "br",
    ];
    let mut text = String::new();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        text.push_str(&rest[..lt]);
        let after = &rest[lt..];
        let gt = after.find('>').ok_or_else(|| {
            format!(
                "Bad Request: can't parse entities: Unclosed start tag at byte offset {}",
                html.len() - after.len()
            )
        })?;
        let inner = &after[1..gt];
        let closing = inner.starts_with('/');
        let name = inner
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let offset = html.len() - after.len();
        if !ALLOWED.contains(&name.as_str()) || name == "br" {
            return Err(format!("Bad Request: can't parse entities: Unsupported start tag \"{name}\" at byte offset {offset}"));
        }
        if closing {
            match stack.pop() {
                Some(open) if open == name => {}
                _ => return Err(format!("Bad Request: can't parse entities: Unmatched end tag at byte offset {offset}, expected \"</{name}>\"")),
            }
        } else {
            stack.push(name);
        }
        rest = &after[gt + 1..];
    }
    text.push_str(rest);
    if let Some(open) = stack.pop() {
        return Err(format!("Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"{open}\""));
    }
    for (entity, c) in [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&amp;", "&"),
    ] {
        text = text.replace(entity, c);
    }
    Ok(text)
}

/// The visible text of `text`/`caption` under `parse_mode`.
fn visible(params: &Map<String, Value>, field: &str) -> Result<Option<String>, Response> {
    let Some(raw) = param_str(params, field) else {
        return Ok(None);
    };
    let html = param_str(params, "parse_mode").is_some_and(|m| m.eq_ignore_ascii_case("html"));
    if html {
        parse_telegram_html(&raw)
            .map(Some)
            .map_err(|d| error(400, &d))
    } else {
        Ok(Some(raw))
    }
}

async fn method(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    if bot != format!("bot{TOKEN}") {
        return error(401, "Unauthorized");
    }
    // "All methods in the Bot API are case-insensitive" (teloxide sends `GetUpdates`).
    let method = canonical(&method);
    let (params, upload) = match parameters(request).await {
        Ok(p) => p,
        Err(r) => {
            record(&shared, &method, Map::new(), None, r.status().as_u16());
            return r;
        }
    };
    let mut response = answer(&shared, &method, &params, upload.as_ref()).await;
    if response.headers_mut().remove(RECORDED).is_none() {
        record(&shared, &method, params, upload, response.status().as_u16());
    }
    response
}

/// Marks a response whose call [`answer`] already recorded (internal; removed before sending).
const RECORDED: &str = "x-fake-recorded";

/// The documented spelling of a method name, matched case-insensitively.
fn canonical(method: &str) -> String {
    const KNOWN: [&str; 22] = [
        "setMessageReaction",
        "answerCallbackQuery",
        "getMe",
        "getUpdates",
        "setWebhook",
        "deleteWebhook",
        "getWebhookInfo",
        "getFile",
        "getUserProfilePhotos",
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendVoice",
        "sendVideo",
        "sendAudio",
        "sendChatAction",
        "editMessageText",
        "editMessageCaption",
        "deleteMessage",
        "logOut",
        "close",
        "getChat",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(method))
        .map(|k| (*k).to_owned())
        .unwrap_or_else(|| method.to_owned())
}

fn record(
    shared: &Shared,
    method: &str,
    params: Map<String, Value>,
    upload: Option<Upload>,
    status: u16,
) {
    shared.record(Call {
        method: method.to_owned(),
        params,
        upload,
        at: Instant::now(),
        status,
    });
}

/// The injected fault for this call, if any (consumed).
fn take_fault(shared: &Shared, method: &str) -> Option<FaultKind> {
    let mut s = shared.lock();
    let fault = s
        .faults
        .iter_mut()
        .find(|f| f.remaining > 0 && f.method.as_deref().is_none_or(|m| m == method))?;
    fault.remaining -= 1;
    Some(fault.kind.clone())
}

fn chat_json(s: &Inner, chat_id: i64) -> Value {
    s.chats.get(&chat_id).cloned().unwrap_or_else(|| {
        if chat_id > 0 {
            json!({"id": chat_id, "type": "private", "first_name": "Customer"})
        } else {
            json!({"id": chat_id, "type": "group", "title": "A group"})
        }
    })
}

const SEND_METHODS: [&str; 6] = [
    "sendMessage",
    "sendPhoto",
    "sendDocument",
    "sendVoice",
    "sendVideo",
    "sendChatAction",
];

async fn answer(
    shared: &Arc<Shared>,
    method: &str,
    params: &Map<String, Value>,
    upload: Option<&Upload>,
) -> Response {
    if let Some(kind) = take_fault(shared, method) {
        return match kind {
            FaultKind::TooManyRequests { retry_after } => too_many(retry_after),
            FaultKind::ServerError => error(500, "Internal Server Error"),
            FaultKind::Blocked => error(403, "Forbidden: bot was blocked by the user"),
            FaultKind::Hang { secs } => {
                // Recorded when it starts: the client gives up first, and axum then drops this.
                record(shared, method, params.clone(), None, 504);
                tokio::time::sleep(Duration::from_secs(secs)).await;
                let mut response = error(504, "Gateway Timeout");
                response
                    .headers_mut()
                    .insert(RECORDED, axum::http::HeaderValue::from_static("1"));
                response
            }
        };
    }
    let chat_id = param_i64(params, "chat_id");
    if SEND_METHODS.contains(&method)
        || method.starts_with("edit")
        || method == "deleteMessage"
        || method == "setMessageReaction"
    {
        let Some(chat_id) = chat_id else {
            return error(400, "Bad Request: chat_id is empty");
        };
        let s = shared.lock();
        if s.blocked.contains(&chat_id) {
            return error(403, "Forbidden: bot was blocked by the user");
        }
        if chat_id > 0 && !s.chats.contains_key(&chat_id) {
            return error(400, "Bad Request: chat not found");
        }
    }
    match method {
        // getMe's User carries the bot-only fields (shared/fixtures/telegram/getme_response.json;
        // Bot API 7.2 added can_connect_to_business, 8.0 has_main_web_app).
        "getMe" => {
            let mut me = bot_user();
            me["can_join_groups"] = json!(true);
            me["can_read_all_group_messages"] = json!(false);
            me["supports_inline_queries"] = json!(false);
            me["can_connect_to_business"] = json!(false);
            me["has_main_web_app"] = json!(false);
            ok(me)
        }
        "getUpdates" => get_updates(shared, params).await,
        "setWebhook" => {
            let Some(url) = param_str(params, "url") else {
                return error(400, "Bad Request: bad webhook: URL is empty");
            };
            let secret = param_str(params, "secret_token");
            if let Some(list) = param_list(params, "allowed_updates") {
                shared.lock().allowed_updates = Some(list);
            }
            shared.lock().webhook = if url.is_empty() {
                None
            } else {
                Some((url, secret))
            };
            (
                StatusCode::OK,
                axum::Json(json!({"ok": true, "result": true, "description": "Webhook was set"})),
            )
                .into_response()
        }
        "deleteWebhook" => {
            shared.lock().webhook = None;
            (
                StatusCode::OK,
                axum::Json(
                    json!({"ok": true, "result": true, "description": "Webhook was deleted"}),
                ),
            )
                .into_response()
        }
        "getWebhookInfo" => {
            let url = shared
                .lock()
                .webhook
                .as_ref()
                .map(|w| w.0.clone())
                .unwrap_or_default();
            ok(json!({"url": url, "has_custom_certificate": false, "pending_update_count": 0}))
        }
        "getFile" => {
            let file_id = param_str(params, "file_id").unwrap_or_default();
            let s = shared.lock();
            match s.files.get(&file_id) {
                Some(f) if f.size > MAX_DOWNLOAD => error(400, "Bad Request: file is too big"),
                Some(f) => ok(
                    json!({"file_id": file_id, "file_unique_id": f.unique_id, "file_size": f.size, "file_path": f.path}),
                ),
                None => error(400, "Bad Request: invalid file id"),
            }
        }
        "getUserProfilePhotos" => {
            let user = param_i64(params, "user_id").unwrap_or_default();
            let s = shared.lock();
            match s
                .profile_photos
                .get(&user)
                .and_then(|id| s.files.get(id).map(|f| (id, f)))
            {
                Some((id, f)) => ok(json!({"total_count": 1, "photos": [[
                    {"file_id": id, "file_unique_id": f.unique_id, "file_size": f.size, "width": 160, "height": 160}
                ]]})),
                None => ok(json!({"total_count": 0, "photos": []})),
            }
        }
        "sendChatAction" => ok(json!(true)),
        "sendMessage" => {
            let text = match visible(params, "text") {
                Ok(t) => t.unwrap_or_default(),
                Err(r) => return r,
            };
            if text.trim().is_empty() {
                return error(400, "Bad Request: message text is empty");
            }
            if text.encode_utf16().count() > MAX_TEXT_UTF16 {
                return error(400, "Bad Request: message is too long");
            }
            let mut fields = json!({"text": text});
            if params.contains_key("reply_markup") {
                match param_object(params, "reply_markup").map(|m| inline_keyboard(&m)) {
                    Some(Ok(markup)) => fields["reply_markup"] = markup,
                    Some(Err(why)) => return error(400, &format!("Bad Request: {why}")),
                    None => {
                        return error(
                            400,
                            "Bad Request: can't parse reply keyboard markup JSON object",
                        )
                    }
                }
            }
            new_message(shared, chat_id.unwrap_or_default(), params, fields)
        }
        "answerCallbackQuery" => {
            let Some(id) = param_str(params, "callback_query_id").filter(|i| !i.is_empty()) else {
                return error(
                    400,
                    "Bad Request: parameter \"callback_query_id\" is required",
                );
            };
            if let Some(t) = param_str(params, "text") {
                if t.chars().count() > 200 {
                    return error(400, "Bad Request: MESSAGE_TOO_LONG");
                }
            }
            let mut s = shared.lock();
            if !s.open_queries.remove(&id) {
                return error(
                    400,
                    "Bad Request: query is too old and response timeout expired or query ID is invalid",
                );
            }
            s.answered_queries.push(id);
            ok(json!(true))
        }
        "sendPhoto" | "sendDocument" | "sendVoice" | "sendVideo" => {
            let field = match method {
                "sendPhoto" => "photo",
                "sendDocument" => "document",
                "sendVoice" => "voice",
                _ => "video",
            };
            let Some(file) = upload.filter(|u| {
                u.field == field
                    || param_str(params, field)
                        .is_some_and(|v| v == format!("attach://{}", u.field))
            }) else {
                return error(
                    400,
                    &format!("Bad Request: there is no {field} in the request"),
                );
            };
            if file.bytes.len() > MAX_UPLOAD {
                return error(413, "Request Entity Too Large");
            }
            // sendPhoto: "The photo must be at most 10 MB in size. The photo's width and height
            // must not exceed 10000 in total. Width and height ratio must be at most 20."
            // (<https://core.telegram.org/bots/api#sendphoto>). Telegram answers both with
            // PHOTO_INVALID_DIMENSIONS. (A file whose header the fake cannot read is let through:
            // tests send placeholder bytes.)
            if field == "photo"
                && (file.bytes.len() > MAX_PHOTO
                    || image_size(&file.bytes).is_some_and(|d| !fits_photo(d)))
            {
                return error(400, "Bad Request: PHOTO_INVALID_DIMENSIONS");
            }
            let caption = match visible(params, "caption") {
                Ok(c) => c,
                Err(r) => return r,
            };
            if caption
                .as_deref()
                .is_some_and(|c| c.encode_utf16().count() > MAX_CAPTION_UTF16)
            {
                return error(400, "Bad Request: message caption is too long");
            }
            let n = {
                let mut s = shared.lock();
                s.next_file += 1;
                s.next_file
            };
            let meta = json!({"file_id": format!("sent{n}"), "file_unique_id": format!("AgS{n}"), "file_size": file.bytes.len()});
            let mut fields = match field {
                "photo" => {
                    json!({"photo": [{"file_id": meta["file_id"], "file_unique_id": meta["file_unique_id"], "file_size": meta["file_size"], "width": 1, "height": 1}]})
                }
                "voice" => {
                    json!({"voice": {"file_id": meta["file_id"], "file_unique_id": meta["file_unique_id"], "file_size": meta["file_size"], "duration": 1, "mime_type": "audio/ogg"}})
                }
                "video" => {
                    json!({"video": {"file_id": meta["file_id"], "file_unique_id": meta["file_unique_id"], "file_size": meta["file_size"], "width": 1, "height": 1, "duration": 1, "mime_type": file.mime}})
                }
                _ => {
                    json!({"document": {"file_id": meta["file_id"], "file_unique_id": meta["file_unique_id"], "file_size": meta["file_size"], "file_name": file.name, "mime_type": file.mime}})
                }
            };
            if let Some(c) = caption.filter(|c| !c.is_empty()) {
                fields["caption"] = c.into();
            }
            new_message(shared, chat_id.unwrap_or_default(), params, fields)
        }
        "editMessageText" | "editMessageCaption" => {
            let chat = chat_id.unwrap_or_default();
            let id = param_i64(params, "message_id").unwrap_or_default();
            let field = if method == "editMessageText" {
                "text"
            } else {
                "caption"
            };
            let new = match visible(params, field) {
                Ok(t) => t.unwrap_or_default(),
                Err(r) => return r,
            };
            let max = if field == "text" {
                MAX_TEXT_UTF16
            } else {
                MAX_CAPTION_UTF16
            };
            if new.encode_utf16().count() > max {
                return error(400, "Bad Request: MESSAGE_TOO_LONG");
            }
            let mut s = shared.lock();
            let Some(message) = s.messages.get_mut(&(chat, id)) else {
                return error(400, "Bad Request: message to edit not found");
            };
            let is_text = message.get("text").is_some();
            if field == "text" && !is_text {
                return error(400, "Bad Request: there is no text in the message to edit");
            }
            if field == "caption" && is_text {
                return error(
                    400,
                    "Bad Request: there is no caption in the message to edit",
                );
            }
            if message.get(field).and_then(Value::as_str) == Some(new.as_str()) {
                return error(
                    400,
                    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
                );
            }
            message[field] = new.into();
            message["edit_date"] = now_secs().into();
            ok(message.clone())
        }
        "setMessageReaction" => {
            let chat = chat_id.unwrap_or_default();
            let Some(id) = param_i64(params, "message_id") else {
                return error(400, "Bad Request: message_id is empty");
            };
            let reaction = match params.get("reaction") {
                None | Some(Value::Null) => Vec::new(),
                Some(_) => match param_object(params, "reaction") {
                    Some(Value::Array(list)) => list,
                    _ => return error(400, "Bad Request: can't parse reaction types JSON object"),
                },
            };
            // "Currently, as non-premium users, bots can set up to one reaction per message."
            if reaction.len() > 1 {
                return error(400, "Bad Request: REACTIONS_TOO_MANY");
            }
            for r in &reaction {
                let listed = r.get("type").and_then(Value::as_str) == Some("emoji")
                    && r.get("emoji")
                        .and_then(Value::as_str)
                        .is_some_and(|e| REACTION_EMOJI.contains(&e));
                if !listed {
                    return error(400, "Bad Request: REACTION_INVALID");
                }
            }
            let mut s = shared.lock();
            if !s.messages.contains_key(&(chat, id)) && !s.customer_messages.contains(&(chat, id)) {
                return error(400, "Bad Request: MESSAGE_ID_INVALID");
            }
            s.reactions.insert((chat, id), reaction);
            ok(json!(true))
        }
        "deleteMessage" => {
            let chat = chat_id.unwrap_or_default();
            let id = param_i64(params, "message_id").unwrap_or_default();
            match shared.lock().messages.remove(&(chat, id)) {
                Some(_) => ok(json!(true)),
                None => error(400, "Bad Request: message to delete not found"),
            }
        }
        _ => error(404, "Not Found"),
    }
}

/// Record and return a message the bot sent.
/// An `InlineKeyboardMarkup` as Telegram checks it: `inline_keyboard` is an array of rows,
/// each an array of `InlineKeyboardButton`s with a non-empty `text` and exactly one of the
/// optional action fields; `callback_data` is 1-64 bytes. `Err` is Telegram's description.
fn inline_keyboard(markup: &Value) -> Result<Value, String> {
    const ACTIONS: [&str; 10] = [
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    ];
    let Some(rows) = markup.get("inline_keyboard").and_then(Value::as_array) else {
        return Err(
            "can't parse inline keyboard markup: field \"inline_keyboard\" must be an Array".into(),
        );
    };
    for row in rows {
        let Some(buttons) = row.as_array() else {
            return Err("can't parse inline keyboard markup: keyboard row must be an Array".into());
        };
        for b in buttons {
            let text = b.get("text").and_then(Value::as_str).unwrap_or_default();
            if text.trim().is_empty() {
                return Err("BUTTON_TEXT_INVALID".into());
            }
            let actions = ACTIONS.iter().filter(|a| b.get(**a).is_some()).count();
            if actions == 0 {
                return Err("text buttons are unallowed in the inline keyboard".into());
            }
            if actions > 1 {
                return Err("can't parse inline keyboard button: exactly one of the optional fields must be used".into());
            }
            if let Some(data) = b.get("callback_data") {
                let data = data.as_str().unwrap_or_default();
                if data.is_empty() || data.len() > 64 {
                    return Err("BUTTON_DATA_INVALID".into());
                }
            }
        }
    }
    Ok(json!({"inline_keyboard": rows}))
}

fn new_message(shared: &Shared, chat: i64, params: &Map<String, Value>, fields: Value) -> Response {
    let mut s = shared.lock();
    s.next_message_id += 1;
    let id = s.next_message_id;
    let mut message = json!({"message_id": id, "from": bot_user(), "chat": chat_json(&s, chat), "date": now_secs()});
    if let (Some(m), Value::Object(f)) = (message.as_object_mut(), fields) {
        m.extend(f);
    }
    if let Some(reply) = param_object(params, "reply_parameters")
        .and_then(|r| r.get("message_id").and_then(Value::as_i64))
    {
        message["reply_to_message"] = json!({"message_id": reply, "chat": chat_json(&s, chat), "date": now_secs() - 60, "text": "(replied-to message)"});
    }
    s.messages.insert((chat, id), message.clone());
    ok(message)
}

async fn get_updates(shared: &Arc<Shared>, params: &Map<String, Value>) -> Response {
    if shared.lock().webhook.is_some() {
        return error(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first");
    }
    if let Some(list) = param_list(params, "allowed_updates") {
        shared.lock().allowed_updates = Some(list);
    }
    let offset = param_i64(params, "offset");
    let limit = param_i64(params, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout =
        Duration::from_secs(param_i64(params, "timeout").unwrap_or(0).clamp(0, 50) as u64);
    if let Some(offset) = offset {
        // Confirm: forget every update below the offset.
        shared
            .lock()
            .updates
            .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = shared.changed.notified();
        let batch: Vec<Value> = {
            let mut s = shared.lock();
            if let Some(offset) = offset {
                // An update that arrives during the long poll with an id below the offset is
                // confirmed by this call too (Telegram: "confirmed as soon as getUpdates is
                // called with an offset higher than its update_id").
                s.updates
                    .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            }
            s.updates.iter().take(limit).cloned().collect()
        };
        if !batch.is_empty() || tokio::time::Instant::now() >= deadline {
            return ok(Value::Array(batch));
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

async fn download(
    State(shared): State<Arc<Shared>>,
    Path((bot, path)): Path<(String, String)>,
) -> Response {
    if bot != format!("bot{TOKEN}") {
        return error(401, "Unauthorized");
    }
    record(
        &shared,
        "download",
        Map::from_iter([("path".to_owned(), Value::String(path.clone()))]),
        None,
        200,
    );
    loop {
        let notified = shared.changed.notified();
        {
            let mut s = shared.lock();
            if !s.hold_downloads {
                break;
            }
            if !s.held.contains(&path) {
                s.held.push(path.clone());
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
    }
    let s = shared.lock();
    match s.files.values().find(|f| f.path == path) {
        Some(f) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            f.bytes.clone(),
        )
            .into_response(),
        None => error(404, "Not Found"),
    }
}

/// `(width, height)` of an image, read from its header as Telegram does to check a photo's
/// dimensions (the `imagesize` crate, not the bridge's code).
fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let size = imagesize::blob_size(bytes).ok()?;
    Some((
        u32::try_from(size.width).ok()?,
        u32::try_from(size.height).ok()?,
    ))
}

/// Whether Telegram takes an image of this size as a photo (sum ≤ 10000, ratio ≤ 20).
fn fits_photo((width, height): (u32, u32)) -> bool {
    let (w, h) = (u64::from(width), u64::from(height));
    w > 0 && h > 0 && w + h <= 10_000 && w <= 20 * h && h <= 20 * w
}
