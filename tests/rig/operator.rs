//! An operator: a Matrix user acting through a real client (matrix-sdk, in-memory store, no
//! end-to-end encryption), the way a person in Element would — never through the bridge's
//! internals.
//!
//! [`Operator::login`] logs in and runs its own sync loop in a background task (plain
//! `sync_once` in a loop: matrix-sdk's `sync()` pauses a second between quick responses, which
//! would slow every wait). Event handlers record what sync delivers into a shared log — timeline
//! and state events per room (deduplicated by event id), stripped state of invites, read
//! receipts, typing — and bump a `watch` counter. Every `wait_for_*` checks the log, then sleeps
//! on that counter until the next change or its deadline (30 s by default); a timeout names what
//! was awaited and lists the room's last events. No fixed sleeps.
//!
//! The sync filter asks for up to 100 timeline events per room, so a room joined late still shows
//! the messages posted before the join (Synapse's default history visibility is `shared`).
//!
//! Rooms are named by id strings (`!abc` — room version 12 ids have no server part); ids returned
//! are strings too.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use matrix_sdk::config::SyncSettings;
use matrix_sdk::media::{MediaFormat, MediaRequestParameters};
use matrix_sdk::ruma::api::client::filter::FilterDefinition;
use matrix_sdk::ruma::api::client::receipt::create_receipt::v3::ReceiptType;
use matrix_sdk::ruma::api::client::state::get_state_events;
use matrix_sdk::ruma::api::client::sync::sync_events::v3::Filter;
use matrix_sdk::ruma::events::receipt::ReceiptThread;
use matrix_sdk::ruma::events::room::MediaSource;
use matrix_sdk::ruma::events::{
    AnyStrippedStateEvent, AnySyncEphemeralRoomEvent, AnySyncStateEvent, AnySyncTimelineEvent,
};
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{OwnedEventId, OwnedMxcUri, OwnedRoomId};
use matrix_sdk::{Client, Room, RoomState};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use super::DEFAULT_TIMEOUT;

/// One `m.room.message` as the operator's client received it.
#[derive(Clone, Debug)]
pub struct RoomMessage {
    pub room_id: String,
    pub event_id: String,
    pub sender: String,
    pub msgtype: String,
    pub body: String,
    pub formatted_body: Option<String>,
    /// `content["m.relates_to"]`, if any.
    pub relates_to: Option<Value>,
    pub content: Value,
    /// The whole event as received.
    pub event: Value,
    pub origin_server_ts: u64,
    /// Order in which this client learned of the event (see [`Operator::mark`]).
    pub seq: u64,
}

impl RoomMessage {
    fn from_event(room_id: &str, seq: u64, ev: &Value) -> Option<RoomMessage> {
        if ev.get("type")?.as_str()? != "m.room.message" {
            return None;
        }
        let content = ev.get("content")?.clone();
        Some(RoomMessage {
            room_id: room_id.to_string(),
            event_id: ev.get("event_id")?.as_str()?.to_string(),
            sender: ev.get("sender")?.as_str()?.to_string(),
            msgtype: content
                .get("msgtype")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            body: content
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            formatted_body: content
                .get("formatted_body")
                .and_then(Value::as_str)
                .map(str::to_string),
            relates_to: content.get("m.relates_to").cloned(),
            origin_server_ts: ev
                .get("origin_server_ts")
                .and_then(Value::as_u64)
                .unwrap_or_default(),
            content,
            event: ev.clone(),
            seq,
        })
    }

    /// The event this one replies to (`m.in_reply_to`).
    pub fn in_reply_to(&self) -> Option<&str> {
        self.relates_to
            .as_ref()?
            .get("m.in_reply_to")?
            .get("event_id")?
            .as_str()
    }

    /// The event this one edits (`rel_type: m.replace`).
    pub fn replaces(&self) -> Option<&str> {
        let rel = self.relates_to.as_ref()?;
        if rel.get("rel_type")?.as_str()? == "m.replace" {
            rel.get("event_id")?.as_str()
        } else {
            None
        }
    }

    /// `m.new_content.body` of an edit.
    pub fn new_body(&self) -> Option<&str> {
        self.content.get("m.new_content")?.get("body")?.as_str()
    }

    pub fn is_notice(&self) -> bool {
        self.msgtype == "m.notice"
    }

    /// `content.url` (mxc) of a file/image/audio/video message.
    pub fn url(&self) -> Option<&str> {
        self.content.get("url")?.as_str()
    }

    pub fn mimetype(&self) -> Option<&str> {
        self.content.get("info")?.get("mimetype")?.as_str()
    }

    pub fn size(&self) -> Option<u64> {
        self.content.get("info")?.get("size")?.as_u64()
    }

    /// `filename` if set, else `body` (the Matrix convention for file names).
    pub fn filename(&self) -> &str {
        self.content
            .get("filename")
            .and_then(Value::as_str)
            .unwrap_or(&self.body)
    }
}

/// A pending invite as seen in sync (stripped state).
#[derive(Clone, Debug)]
pub struct Invite {
    pub room_id: String,
    pub inviter: Option<String>,
    pub name: Option<String>,
    pub topic: Option<String>,
    /// The stripped state events that came with the invite.
    pub state: Vec<Value>,
}

/// One read receipt from an `m.receipt` ephemeral event.
#[derive(Clone, Debug)]
pub struct Receipt {
    pub room_id: String,
    pub event_id: String,
    pub user_id: String,
    /// `m.read` or `m.read.private`.
    pub receipt_type: String,
    pub ts: Option<u64>,
}

#[derive(Default)]
struct RoomLog {
    events: Vec<(u64, Value)>,
    seen: HashSet<String>,
}

fn is_status_for(e: &Value, event: &str, status: Option<&str>) -> bool {
    e["type"] == "com.beeper.message_send_status"
        && e["content"]["m.relates_to"]["event_id"] == event
        && status.is_none_or(|s| e["content"]["status"] == s)
}

/// A success shown as the bot's receipt, in the shape of a status event.
fn delivered(event: &str) -> Value {
    serde_json::json!({
        "type": "m.receipt",
        "content": {"m.relates_to": {"event_id": event}, "status": "SUCCESS"},
    })
}

impl Log {
    fn status_event(&self, room: &str, event: &str, status: Option<&str>) -> Option<Value> {
        self.rooms
            .get(room)?
            .events
            .iter()
            .find(|(_, e)| is_status_for(e, event, status))
            .map(|(_, e)| e.clone())
    }

    fn delivery_receipt(&self, room: &str, bot: &str, event: &str) -> bool {
        self.receipts
            .iter()
            .any(|r| r.room_id == room && r.user_id == bot && r.event_id == event)
    }
}

#[derive(Default)]
struct Log {
    seq: u64,
    rooms: HashMap<String, RoomLog>,
    invites: HashMap<String, Vec<Value>>,
    receipts: Vec<Receipt>,
    typing: HashMap<String, Vec<String>>,
    syncs: u64,
    last_sync_error: Option<String>,
    /// Sync without marking the user online (set by [`Operator::set_presence`] to offline or
    /// unavailable; a syncing client is otherwise "online").
    quiet: bool,
}

impl Log {
    fn push_event(&mut self, room_id: &str, ev: Value) {
        let room = self.rooms.entry(room_id.to_string()).or_default();
        if let Some(id) = ev.get("event_id").and_then(Value::as_str) {
            if !room.seen.insert(id.to_string()) {
                return;
            }
        }
        self.seq += 1;
        room.events.push((self.seq, ev));
    }

    fn describe_room(&self, room_id: &str) -> String {
        let Some(room) = self.rooms.get(room_id) else {
            return format!("(this client has no events for {room_id})");
        };
        let start = room.events.len().saturating_sub(12);
        let lines: Vec<String> = room.events[start..]
            .iter()
            .map(|(seq, ev)| {
                let ty = ev.get("type").and_then(Value::as_str).unwrap_or("?");
                let sender = ev.get("sender").and_then(Value::as_str).unwrap_or("?");
                let content = ev.get("content").cloned().unwrap_or(Value::Null);
                let mut c = content.to_string();
                if c.len() > 200 {
                    let mut cut = 200;
                    while !c.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    c.truncate(cut);
                    c.push('…');
                }
                format!("  #{seq} {ty} from {sender}: {c}")
            })
            .collect();
        format!("last events in {room_id}:\n{}", lines.join("\n"))
    }
}

struct Shared {
    log: Mutex<Log>,
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock only happens in the rig's own code; the log is still
        // usable, so ignore poisoning.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }
}

/// A logged-in Matrix user with a background sync loop. The loop stops on drop.
pub struct Operator {
    client: Client,
    user_id: String,
    password: String,
    shared: Arc<Shared>,
    sync_task: tokio::task::JoinHandle<()>,
    /// Deadline for the `wait_for_*` methods (30 s unless changed).
    pub timeout: Duration,
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.sync_task.abort();
    }
}

fn parse_json<T>(raw: &Raw<T>) -> Option<Value> {
    serde_json::from_str(raw.json().get()).ok()
}

fn room_id(id: &str) -> anyhow::Result<OwnedRoomId> {
    OwnedRoomId::try_from(id).map_err(|e| anyhow!("invalid room id {id:?}: {e}"))
}

fn event_id(id: &str) -> anyhow::Result<OwnedEventId> {
    OwnedEventId::try_from(id).map_err(|e| anyhow!("invalid event id {id:?}: {e}"))
}

/// `m.image` / `m.video` / `m.audio` / `m.file` for a MIME type.
pub fn msgtype_for_mime(mime: &str) -> &'static str {
    match mime.split('/').next().unwrap_or_default() {
        "image" => "m.image",
        "video" => "m.video",
        "audio" => "m.audio",
        _ => "m.file",
    }
}

impl Operator {
    /// Logs in (`user` is a localpart or a full user id) and starts syncing. Returns after the
    /// first sync has been processed, so rooms and invites that already exist are known.
    pub async fn login(
        homeserver_url: &str,
        user: &str,
        password: &str,
    ) -> anyhow::Result<Operator> {
        let client = Client::builder()
            .homeserver_url(homeserver_url)
            .build()
            .await
            .with_context(|| format!("building a matrix-sdk client for {homeserver_url}"))?;
        client
            .matrix_auth()
            .login_username(user, password)
            .initial_device_display_name("switchboard test operator")
            .await
            .with_context(|| format!("logging in {user} on {homeserver_url}"))?;
        let user_id = client
            .user_id()
            .context("no user id after login")?
            .to_string();

        let (changed, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            log: Mutex::new(Log::default()),
            changed,
        });
        register_handlers(&client, &shared);

        let filter: FilterDefinition = serde_json::from_value(json!({
            "room": {
                "timeline": {"limit": 100},
                "state": {"lazy_load_members": false},
            }
        }))
        .context("building the sync filter")?;
        let settings = SyncSettings::default()
            .filter(Filter::FilterDefinition(filter))
            .timeout(Duration::from_secs(10));

        // First sync in the foreground, so the caller sees existing state.
        let first = client
            .sync_once(settings.clone().timeout(Duration::ZERO))
            .await
            .with_context(|| format!("first sync of {user_id}"))?;
        {
            shared.lock().syncs += 1;
            shared.bump();
        }

        let sync_task = tokio::spawn(sync_loop(
            client.clone(),
            shared.clone(),
            settings.token(first.next_batch),
        ));
        Ok(Operator {
            client,
            user_id,
            password: password.to_string(),
            shared,
            sync_task,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Full user id (`@bob:localhost`).
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The underlying matrix-sdk client, for anything the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn access_token(&self) -> Option<String> {
        self.client.access_token()
    }

    /// Set this user's Matrix presence ("online", "unavailable", "offline"). While not online,
    /// the rig's background sync no longer marks the user online.
    pub async fn set_presence(&self, presence: &str) -> anyhow::Result<()> {
        let token = self.access_token().context("no access token")?;
        self.shared.lock().quiet = presence != "online";
        let url = format!(
            "{}/_matrix/client/v3/presence/{}/status",
            self.client.homeserver().as_str().trim_end_matches('/'),
            self.user_id.replace('@', "%40").replace(':', "%3A")
        );
        let resp = reqwest::Client::new()
            .put(url)
            .bearer_auth(token)
            .json(&json!({"presence": presence}))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "setting presence: {}",
            resp.status()
        );
        Ok(())
    }

    /// The last sync error, if the most recent sync failed (e.g. homeserver down).
    pub fn last_sync_error(&self) -> Option<String> {
        self.shared.lock().last_sync_error.clone()
    }

    /// A point in this client's event log: `*_after(mark, …)` only sees events learned later.
    pub fn mark(&self) -> u64 {
        self.shared.lock().seq
    }

    fn room(&self, id: &str) -> anyhow::Result<Room> {
        let rid = room_id(id)?;
        self.client
            .get_room(&rid)
            .with_context(|| format!("{} does not know room {id}", self.user_id))
    }

    /// Core wait: runs `check` on the log after every change until it yields a value.
    async fn wait<T>(
        &self,
        what: &str,
        context_room: Option<&str>,
        mut check: impl FnMut(&Log) -> Option<T>,
    ) -> anyhow::Result<T> {
        self.wait_raw(what, context_room, || {
            let log = self.shared.lock();
            check(&log)
        })
        .await
    }

    /// Runs `check` (which takes the log lock itself, if at all) after every change.
    async fn wait_raw<T>(
        &self,
        what: &str,
        context_room: Option<&str>,
        mut check: impl FnMut() -> Option<T>,
    ) -> anyhow::Result<T> {
        let mut rx = self.shared.changed.subscribe();
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(v) = check() {
                return Ok(v);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!(
                    "{}: sync state dropped while waiting for {what}",
                    self.user_id
                ),
                Err(_) => {
                    let log = self.shared.lock();
                    let ctx = context_room
                        .map(|r| log.describe_room(r))
                        .unwrap_or_default();
                    let err = log
                        .last_sync_error
                        .as_ref()
                        .map(|e| format!("\nlast sync error: {e}"))
                        .unwrap_or_default();
                    bail!(
                        "{} timed out after {:?} waiting for {what}{err}\n{ctx}",
                        self.user_id,
                        self.timeout
                    );
                }
            }
        }
    }

    // ----- invites -------------------------------------------------------------------------

    /// Invites whose room is still in the invited state (the log lock is not held while asking
    /// the client about room states).
    fn pending_invites(&self) -> Vec<Invite> {
        let snapshot: Vec<(String, Vec<Value>)> = self
            .shared
            .lock()
            .invites
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out = Vec::new();
        for (rid, state) in &snapshot {
            let still_invited = room_id(rid)
                .ok()
                .and_then(|r| self.client.get_room(&r))
                .map(|r| r.state() == RoomState::Invited)
                .unwrap_or(false);
            if !still_invited {
                continue;
            }
            let mut invite = Invite {
                room_id: rid.clone(),
                inviter: None,
                name: None,
                topic: None,
                state: state.clone(),
            };
            for ev in state {
                let ty = ev.get("type").and_then(Value::as_str).unwrap_or_default();
                let content = ev.get("content");
                match ty {
                    "m.room.member"
                        if ev.get("state_key").and_then(Value::as_str)
                            == Some(self.user_id.as_str()) =>
                    {
                        invite.inviter =
                            ev.get("sender").and_then(Value::as_str).map(str::to_string);
                    }
                    "m.room.name" => {
                        invite.name = content
                            .and_then(|c| c.get("name"))
                            .and_then(Value::as_str)
                            .map(str::to_string);
                    }
                    "m.room.topic" => {
                        invite.topic = content
                            .and_then(|c| c.get("topic"))
                            .and_then(Value::as_str)
                            .map(str::to_string);
                    }
                    _ => {}
                }
            }
            out.push(invite);
        }
        out
    }

    /// Waits for a pending invite matching `pred` and returns it (without joining).
    pub async fn wait_for_invite_where(
        &self,
        what: &str,
        pred: impl Fn(&Invite) -> bool,
    ) -> anyhow::Result<Invite> {
        self.wait_raw(&format!("an invite to {what}"), None, || {
            self.pending_invites().into_iter().find(|i| pred(i))
        })
        .await
        .map_err(|e| {
            let names: Vec<String> = self
                .pending_invites()
                .iter()
                .map(|i| format!("{} {:?}", i.room_id, i.name))
                .collect();
            e.context(format!("pending invites: {names:?}"))
        })
    }

    /// Waits for an invite to a room whose name contains `name_part`, joins it, returns its id.
    pub async fn wait_for_invite(&self, name_part: &str) -> anyhow::Result<String> {
        let invite = self
            .wait_for_invite_where(&format!("a room named like {name_part:?}"), |i| {
                i.name.as_deref().is_some_and(|n| n.contains(name_part))
            })
            .await?;
        self.join(&invite.room_id).await?;
        Ok(invite.room_id)
    }

    /// Waits for any invite, joins it, returns the room id.
    pub async fn wait_for_any_invite(&self) -> anyhow::Result<String> {
        let invite = self.wait_for_invite_where("any room", |_| true).await?;
        self.join(&invite.room_id).await?;
        Ok(invite.room_id)
    }

    /// Joins a room (by id) and waits until sync shows it joined.
    pub async fn join(&self, room: &str) -> anyhow::Result<()> {
        let rid = room_id(room)?;
        self.client
            .join_room_by_id(&rid)
            .await
            .with_context(|| format!("{} joining {room}", self.user_id))?;
        let me = self.user_id.clone();
        self.wait(
            &format!("own join of {room} to arrive in sync"),
            Some(room),
            |log| {
                let events = &log.rooms.get(room)?.events;
                events
                    .iter()
                    .any(|(_, ev)| {
                        ev.get("type").and_then(Value::as_str) == Some("m.room.member")
                            && ev.get("state_key").and_then(Value::as_str) == Some(me.as_str())
                            && ev
                                .get("content")
                                .and_then(|c| c.get("membership"))
                                .and_then(Value::as_str)
                                == Some("join")
                    })
                    .then_some(())
            },
        )
        .await
    }

    /// Invites another user to a room.
    pub async fn invite(&self, room: &str, user: &str) -> anyhow::Result<()> {
        let uid = matrix_sdk::ruma::OwnedUserId::try_from(user)?;
        self.room(room)?
            .invite_user_by_id(&uid)
            .await
            .with_context(|| format!("{} inviting {user} to {room}", self.user_id))
    }

    pub async fn leave(&self, room: &str) -> anyhow::Result<()> {
        self.room(room)?
            .leave()
            .await
            .with_context(|| format!("{} leaving {room}", self.user_id))
    }

    /// Creates a private room with a name (and optional invitees); returns its id once synced.
    pub async fn create_room(&self, name: &str, invite: &[&str]) -> anyhow::Result<String> {
        use matrix_sdk::ruma::api::client::room::create_room::v3::Request;
        let mut req = Request::new();
        req.name = Some(name.to_string());
        for u in invite {
            req.invite.push(
                matrix_sdk::ruma::OwnedUserId::try_from(*u)
                    .map_err(|e| anyhow!("invalid user id {u}: {e}"))?,
            );
        }
        let room = self
            .client
            .create_room(req)
            .await
            .with_context(|| format!("creating room {name}"))?;
        let id = room.room_id().to_string();
        self.wait(
            &format!("created room {id} to arrive in sync"),
            None,
            |log| log.rooms.contains_key(&id).then_some(()),
        )
        .await?;
        Ok(id)
    }

    /// Ids of rooms this user has joined.
    pub fn joined_rooms(&self) -> Vec<String> {
        self.client
            .joined_rooms()
            .iter()
            .map(|r| r.room_id().to_string())
            .collect()
    }

    // ----- events --------------------------------------------------------------------------

    /// All events (timeline and state) this client has logged for a room, oldest first.
    pub fn events(&self, room: &str) -> Vec<Value> {
        self.shared
            .lock()
            .rooms
            .get(room)
            .map(|r| r.events.iter().map(|(_, e)| e.clone()).collect())
            .unwrap_or_default()
    }

    /// All `m.room.message` events logged for a room, oldest first.
    pub fn messages(&self, room: &str) -> Vec<RoomMessage> {
        let log = self.shared.lock();
        log.rooms
            .get(room)
            .map(|r| {
                r.events
                    .iter()
                    .filter_map(|(seq, e)| RoomMessage::from_event(room, *seq, e))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits for any event in `room` matching `pred` (raw JSON, as received).
    pub async fn wait_for_event(
        &self,
        room: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.wait_for_event_after(room, 0, what, pred).await
    }

    /// Waits for the bridge's outcome for `event` saying `status` (`SUCCESS`,
    /// `FAIL_RETRIABLE`, `FAIL_PERMANENT`). A failure is a `com.beeper.message_send_status`
    /// event (returned); a success is the bot's read receipt on the event (the default,
    /// `bridge.delivery_status: receipts`) or a `SUCCESS` status event (`events`), returned as
    /// a status-shaped value.
    pub async fn wait_for_send_status(
        &self,
        room: &str,
        event: &str,
        status: &str,
    ) -> anyhow::Result<Value> {
        let bot = self.bot_id();
        self.wait(
            &format!("a {status} outcome for {event} in {room}"),
            Some(room),
            |log| {
                if status == "SUCCESS" && log.delivery_receipt(room, &bot, event) {
                    return Some(delivered(event));
                }
                log.status_event(room, event, Some(status))
            },
        )
        .await
    }

    /// Waits for the bridge's first outcome for `event`, whatever it says (the bridge has
    /// finished with the message): a status event, or the bot's delivery receipt.
    pub async fn wait_for_any_send_status(&self, room: &str, event: &str) -> anyhow::Result<Value> {
        let bot = self.bot_id();
        self.wait(
            &format!("an outcome for {event} in {room}"),
            Some(room),
            |log| {
                log.status_event(room, event, None).or_else(|| {
                    log.delivery_receipt(room, &bot, event)
                        .then(|| delivered(event))
                })
            },
        )
        .await
    }

    /// The `com.beeper.message_send_status` events seen so far in `room` for `event`.
    pub fn send_statuses(&self, room: &str, event: &str) -> Vec<Value> {
        self.shared
            .lock()
            .rooms
            .get(room)
            .map(|r| {
                r.events
                    .iter()
                    .filter(|(_, e)| is_status_for(e, event, None))
                    .map(|(_, e)| e.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The bridge bot's user id on this operator's homeserver.
    pub fn bot_id(&self) -> String {
        let server = self
            .user_id
            .split_once(':')
            .map(|(_, s)| s)
            .unwrap_or("localhost");
        format!("@switchboard:{server}")
    }

    /// Like [`Operator::wait_for_event`], only among events learned after `mark`.
    pub async fn wait_for_event_after(
        &self,
        room: &str,
        mark: u64,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.wait(&format!("{what} in {room}"), Some(room), |log| {
            log.rooms
                .get(room)?
                .events
                .iter()
                .find(|(seq, e)| *seq > mark && pred(e))
                .map(|(_, e)| e.clone())
        })
        .await
    }

    /// Waits for an `m.room.message` in `room` matching `pred` (first match, oldest first).
    pub async fn wait_for_message(
        &self,
        room: &str,
        pred: impl Fn(&RoomMessage) -> bool,
    ) -> anyhow::Result<RoomMessage> {
        self.wait_for_message_after(room, 0, "a matching message", pred)
            .await
    }

    /// Waits for a message whose body contains `text`.
    pub async fn wait_for_text(&self, room: &str, text: &str) -> anyhow::Result<RoomMessage> {
        self.wait_for_message_after(room, 0, &format!("a message containing {text:?}"), |m| {
            m.body.contains(text)
        })
        .await
    }

    /// Waits for a message matching `pred` among events learned after `mark`.
    pub async fn wait_for_message_after(
        &self,
        room: &str,
        mark: u64,
        what: &str,
        pred: impl Fn(&RoomMessage) -> bool,
    ) -> anyhow::Result<RoomMessage> {
        self.wait(&format!("{what} in {room}"), Some(room), |log| {
            log.rooms
                .get(room)?
                .events
                .iter()
                .filter(|(seq, _)| *seq > mark)
                .filter_map(|(seq, e)| RoomMessage::from_event(room, *seq, e))
                .find(|m| pred(m))
        })
        .await
    }

    /// Waits for the redaction of `event` in `room` (`m.room.redaction` naming it).
    pub async fn wait_for_redaction(&self, room: &str, event: &str) -> anyhow::Result<Value> {
        self.wait_for_event(room, &format!("a redaction of {event}"), |e| {
            e.get("type").and_then(Value::as_str) == Some("m.room.redaction")
                && (e.get("redacts").and_then(Value::as_str) == Some(event)
                    || e.get("content")
                        .and_then(|c| c.get("redacts"))
                        .and_then(Value::as_str)
                        == Some(event))
        })
        .await
    }

    /// Waits until the latest synced state event `(event_type, state_key)` in `room` has content
    /// matching `pred`; returns the event.
    pub async fn wait_for_state_event(
        &self,
        room: &str,
        event_type: &str,
        state_key: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.wait(
            &format!("state {event_type}/{state_key:?} matching in {room}"),
            Some(room),
            |log| {
                let latest = log.rooms.get(room)?.events.iter().rev().find(|(_, e)| {
                    e.get("type").and_then(Value::as_str) == Some(event_type)
                        && e.get("state_key").and_then(Value::as_str) == Some(state_key)
                })?;
                let content = latest.1.get("content").cloned().unwrap_or(Value::Null);
                pred(&content).then(|| latest.1.clone())
            },
        )
        .await
    }

    /// Waits for a read receipt (`m.read` or `m.read.private`) by `user` on exactly `event`.
    pub async fn wait_for_read_receipt(
        &self,
        room: &str,
        user: &str,
        event: &str,
    ) -> anyhow::Result<Receipt> {
        self.wait(
            &format!("a read receipt by {user} on {event}"),
            Some(room),
            |log| {
                log.receipts
                    .iter()
                    .find(|r| r.room_id == room && r.user_id == user && r.event_id == event)
                    .cloned()
            },
        )
        .await
    }

    /// All read receipts seen so far in `room`.
    pub fn receipts(&self, room: &str) -> Vec<Receipt> {
        self.shared
            .lock()
            .receipts
            .iter()
            .filter(|r| r.room_id == room)
            .cloned()
            .collect()
    }

    /// Waits until `user` is (or is not) typing in `room`, as the last `m.typing` said.
    pub async fn wait_for_typing(
        &self,
        room: &str,
        user: &str,
        typing: bool,
    ) -> anyhow::Result<()> {
        let what = format!("{user} {} typing", if typing { "to be" } else { "to stop" });
        self.wait(&what, Some(room), |log| {
            let now = log
                .typing
                .get(room)
                .is_some_and(|users| users.iter().any(|u| u == user));
            (now == typing).then_some(())
        })
        .await
    }

    // ----- actions -------------------------------------------------------------------------

    /// Sends any message-like event content as `m.room.message`; returns the event id.
    pub async fn send_content(&self, room: &str, content: Value) -> anyhow::Result<String> {
        self.send_event(room, "m.room.message", content).await
    }

    /// Sends a message-like event of any type; returns the event id.
    pub async fn send_event(
        &self,
        room: &str,
        event_type: &str,
        content: Value,
    ) -> anyhow::Result<String> {
        let r = self.room(room)?;
        let result = r
            .send_raw(event_type, content)
            .await
            .with_context(|| format!("{} sending {event_type} to {room}", self.user_id))?;
        Ok(result.response.event_id.to_string())
    }

    pub async fn send_text(&self, room: &str, text: &str) -> anyhow::Result<String> {
        self.send_content(room, json!({"msgtype": "m.text", "body": text}))
            .await
    }

    pub async fn send_notice(&self, room: &str, text: &str) -> anyhow::Result<String> {
        self.send_content(room, json!({"msgtype": "m.notice", "body": text}))
            .await
    }

    pub async fn send_emote(&self, room: &str, text: &str) -> anyhow::Result<String> {
        self.send_content(room, json!({"msgtype": "m.emote", "body": text}))
            .await
    }

    /// `body` is the plain-text fallback, `html` the `formatted_body`.
    pub async fn send_html(&self, room: &str, body: &str, html: &str) -> anyhow::Result<String> {
        self.send_content(
            room,
            json!({"msgtype": "m.text", "body": body, "format": "org.matrix.custom.html", "formatted_body": html}),
        )
        .await
    }

    /// A reply (`m.in_reply_to`) to `to_event`.
    pub async fn reply(&self, room: &str, to_event: &str, text: &str) -> anyhow::Result<String> {
        self.send_content(
            room,
            json!({
                "msgtype": "m.text",
                "body": text,
                "m.relates_to": {"m.in_reply_to": {"event_id": to_event}},
            }),
        )
        .await
    }

    /// An edit (`m.replace`) of `event` to `new_text`.
    pub async fn edit(&self, room: &str, event: &str, new_text: &str) -> anyhow::Result<String> {
        self.send_content(
            room,
            json!({
                "msgtype": "m.text",
                "body": format!("* {new_text}"),
                "m.new_content": {"msgtype": "m.text", "body": new_text},
                "m.relates_to": {"rel_type": "m.replace", "event_id": event},
            }),
        )
        .await
    }

    /// Redacts `event`; returns the redaction's event id.
    pub async fn redact(
        &self,
        room: &str,
        event: &str,
        reason: Option<&str>,
    ) -> anyhow::Result<String> {
        let r = self.room(room)?;
        let resp = r
            .redact(&event_id(event)?, reason, None)
            .await
            .with_context(|| format!("{} redacting {event} in {room}", self.user_id))?;
        Ok(resp.event_id.to_string())
    }

    /// Waits for `sender`'s `m.reaction` with `key` on `target` (a customer's reaction, relayed
    /// by their ghost); returns the reaction's event id.
    pub async fn wait_for_reaction_by(
        &self,
        room: &str,
        target: &str,
        key: &str,
        sender: &str,
    ) -> anyhow::Result<String> {
        let reaction = self
            .wait_for_event(
                room,
                &format!("{sender}'s reaction {key} on {target}"),
                |e| {
                    e["type"] == "m.reaction"
                        && e["content"]["m.relates_to"]["event_id"] == target
                        && e["content"]["m.relates_to"]["key"] == key
                },
            )
            .await?;
        anyhow::ensure!(
            reaction["sender"] == sender,
            "reaction by {sender}, not by {}",
            reaction["sender"]
        );
        reaction["event_id"]
            .as_str()
            .map(str::to_owned)
            .context("reaction event id")
    }

    /// A reaction (`m.annotation`) to `event`.
    pub async fn react(&self, room: &str, event: &str, key: &str) -> anyhow::Result<String> {
        self.send_event(
            room,
            "m.reaction",
            json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": event, "key": key}}),
        )
        .await
    }

    /// Uploads `data` to the media repository; returns the mxc URI.
    pub async fn upload(&self, mime: &str, data: Vec<u8>) -> anyhow::Result<String> {
        use matrix_sdk::ruma::api::client::media::create_content::v3::Request;
        let mut req = Request::new(data);
        req.content_type = Some(mime.to_string());
        let resp = self
            .client
            .send(req)
            .await
            .with_context(|| format!("{} uploading media", self.user_id))?;
        Ok(resp.content_uri.to_string())
    }

    /// Uploads a file and sends it as `m.image`/`m.video`/`m.audio`/`m.file` (by MIME type) with
    /// `info.mimetype` and `info.size`; returns the event id.
    pub async fn send_file(
        &self,
        room: &str,
        name: &str,
        mime: &str,
        data: Vec<u8>,
    ) -> anyhow::Result<String> {
        self.send_file_as(room, msgtype_for_mime(mime), name, mime, data)
            .await
    }

    /// Like [`Operator::send_file`] with an explicit msgtype.
    pub async fn send_file_as(
        &self,
        room: &str,
        msgtype: &str,
        name: &str,
        mime: &str,
        data: Vec<u8>,
    ) -> anyhow::Result<String> {
        let size = data.len();
        let url = self.upload(mime, data).await?;
        self.send_content(
            room,
            json!({
                "msgtype": msgtype,
                "body": name,
                "filename": name,
                "url": url,
                "info": {"mimetype": mime, "size": size},
            }),
        )
        .await
    }

    /// Downloads an mxc URI through the client media API.
    pub async fn download(&self, mxc: &str) -> anyhow::Result<Vec<u8>> {
        let uri = OwnedMxcUri::from(mxc);
        if !uri.is_valid() {
            bail!("not a valid mxc URI: {mxc:?}");
        }
        let request = MediaRequestParameters {
            source: MediaSource::Plain(uri),
            format: MediaFormat::File,
        };
        self.client
            .media()
            .get_media_content(&request, false)
            .await
            .with_context(|| format!("{} downloading {mxc}", self.user_id))
    }

    /// The bytes of a file message (its `content.url`).
    pub async fn fetch_file(&self, message: &RoomMessage) -> anyhow::Result<Vec<u8>> {
        let url = message.url().with_context(|| {
            format!(
                "message {} has no content.url: {}",
                message.event_id, message.content
            )
        })?;
        self.download(url).await
    }

    /// Sends a public read receipt (`m.read`) on `event`.
    pub async fn send_read_receipt(&self, room: &str, event: &str) -> anyhow::Result<()> {
        self.room(room)?
            .send_single_receipt(
                ReceiptType::Read,
                ReceiptThread::Unthreaded,
                event_id(event)?,
            )
            .await
            .with_context(|| format!("{} sending a read receipt on {event}", self.user_id))
    }

    /// Starts or stops the typing notice.
    pub async fn typing(&self, room: &str, typing: bool) -> anyhow::Result<()> {
        self.room(room)?
            .typing_notice(typing)
            .await
            .with_context(|| format!("{} sending typing={typing}", self.user_id))
    }

    // ----- room state, from the server ------------------------------------------------------

    /// The room's current state events, fetched from the homeserver (not the sync cache).
    pub async fn state_events(&self, room: &str) -> anyhow::Result<Vec<Value>> {
        let req = get_state_events::v3::Request::new(room_id(room)?);
        let resp = self
            .client
            .send(req)
            .await
            .with_context(|| format!("fetching state of {room}"))?;
        Ok(resp.room_state.iter().filter_map(parse_json).collect())
    }

    /// One current state event's content, or `None` if it is not set.
    pub async fn state_event(
        &self,
        room: &str,
        event_type: &str,
        state_key: &str,
    ) -> anyhow::Result<Option<Value>> {
        Ok(self.state_events(room).await?.into_iter().find_map(|e| {
            (e.get("type").and_then(Value::as_str) == Some(event_type)
                && e.get("state_key").and_then(Value::as_str) == Some(state_key))
            .then(|| e.get("content").cloned().unwrap_or(Value::Null))
        }))
    }

    /// (user id, display name) of the room's current members (joined or invited); the display
    /// name is the user id when none is set.
    pub async fn members(&self, room: &str) -> anyhow::Result<Vec<(String, String)>> {
        Ok(self
            .state_events(room)
            .await?
            .into_iter()
            .filter(|e| e.get("type").and_then(Value::as_str) == Some("m.room.member"))
            .filter_map(|e| {
                let user = e.get("state_key")?.as_str()?.to_string();
                let content = e.get("content")?;
                let membership = content.get("membership")?.as_str()?;
                if membership != "join" && membership != "invite" {
                    return None;
                }
                let name = content
                    .get("displayname")
                    .and_then(Value::as_str)
                    .unwrap_or(&user)
                    .to_string();
                Some((user, name))
            })
            .collect())
    }

    /// (user id, membership) for every member event in the room (`join`, `invite`, `leave`, …).
    pub async fn memberships(&self, room: &str) -> anyhow::Result<Vec<(String, String)>> {
        Ok(self
            .state_events(room)
            .await?
            .into_iter()
            .filter(|e| e.get("type").and_then(Value::as_str) == Some("m.room.member"))
            .filter_map(|e| {
                let user = e.get("state_key")?.as_str()?.to_string();
                let membership = e.get("content")?.get("membership")?.as_str()?.to_string();
                Some((user, membership))
            })
            .collect())
    }

    /// The `m.room.member` content of one user, if any.
    pub async fn member(&self, room: &str, user: &str) -> anyhow::Result<Option<Value>> {
        self.state_event(room, "m.room.member", user).await
    }

    /// User ids whose membership is `join`.
    pub async fn joined_members(&self, room: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .memberships(room)
            .await?
            .into_iter()
            .filter(|(_, m)| m == "join")
            .map(|(u, _)| u)
            .collect())
    }

    /// `m.room.name` content.name.
    pub async fn room_name(&self, room: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .state_event(room, "m.room.name", "")
            .await?
            .and_then(|c| c.get("name").and_then(Value::as_str).map(str::to_string)))
    }

    /// `m.room.topic` content.topic.
    pub async fn room_topic(&self, room: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .state_event(room, "m.room.topic", "")
            .await?
            .and_then(|c| c.get("topic").and_then(Value::as_str).map(str::to_string)))
    }

    /// The room's power levels content.
    pub async fn power_levels(&self, room: &str) -> anyhow::Result<Value> {
        self.state_event(room, "m.room.power_levels", "")
            .await?
            .with_context(|| format!("{room} has no m.room.power_levels"))
    }
}

fn register_handlers(client: &Client, shared: &Arc<Shared>) {
    let s = shared.clone();
    client.add_event_handler(move |ev: Raw<AnySyncTimelineEvent>, room: Room| {
        let s = s.clone();
        async move {
            if let Some(v) = parse_json(&ev) {
                s.lock().push_event(room.room_id().as_str(), v);
                s.bump();
            }
        }
    });

    // State from the `state` section of sync (the timeline's state events arrive above too;
    // the log deduplicates by event id).
    let s = shared.clone();
    client.add_event_handler(move |ev: Raw<AnySyncStateEvent>, room: Room| {
        let s = s.clone();
        async move {
            if let Some(v) = parse_json(&ev) {
                s.lock().push_event(room.room_id().as_str(), v);
                s.bump();
            }
        }
    });

    let s = shared.clone();
    client.add_event_handler(move |ev: Raw<AnyStrippedStateEvent>, room: Room| {
        let s = s.clone();
        async move {
            if let Some(v) = parse_json(&ev) {
                let mut log = s.lock();
                let state = log.invites.entry(room.room_id().to_string()).or_default();
                // Keep only the newest of each (type, state_key).
                state.retain(|e| {
                    !(e.get("type") == v.get("type") && e.get("state_key") == v.get("state_key"))
                });
                state.push(v);
                drop(log);
                s.bump();
            }
        }
    });

    let s = shared.clone();
    client.add_event_handler(move |ev: Raw<AnySyncEphemeralRoomEvent>, room: Room| {
        let s = s.clone();
        async move {
            let Some(v) = parse_json(&ev) else { return };
            let rid = room.room_id().to_string();
            let mut log = s.lock();
            match v.get("type").and_then(Value::as_str) {
                Some("m.receipt") => {
                    let Some(content) = v.get("content").and_then(Value::as_object) else {
                        return;
                    };
                    for (event_id, by_type) in content {
                        let Some(by_type) = by_type.as_object() else {
                            continue;
                        };
                        for (receipt_type, users) in by_type {
                            let Some(users) = users.as_object() else {
                                continue;
                            };
                            for (user, data) in users {
                                log.receipts.push(Receipt {
                                    room_id: rid.clone(),
                                    event_id: event_id.clone(),
                                    user_id: user.clone(),
                                    receipt_type: receipt_type.clone(),
                                    ts: data.get("ts").and_then(Value::as_u64),
                                });
                            }
                        }
                    }
                }
                Some("m.typing") => {
                    let users = v
                        .get("content")
                        .and_then(|c| c.get("user_ids"))
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|u| u.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    log.typing.insert(rid, users);
                }
                _ => return,
            }
            drop(log);
            s.bump();
        }
    });
}

async fn sync_loop(client: Client, shared: Arc<Shared>, mut settings: SyncSettings) {
    use matrix_sdk::ruma::presence::PresenceState;
    loop {
        let quiet = shared.lock().quiet;
        let this = if quiet {
            settings.clone().set_presence(PresenceState::Offline)
        } else {
            settings.clone()
        };
        match client.sync_once(this).await {
            Ok(resp) => {
                settings = settings.token(resp.next_batch);
                let mut log = shared.lock();
                log.syncs += 1;
                log.last_sync_error = None;
                drop(log);
                shared.bump();
            }
            Err(e) => {
                shared.lock().last_sync_error = Some(e.to_string());
                shared.bump();
                // Homeserver down or restarting: retry soon (this is a retry delay, not a wait).
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
