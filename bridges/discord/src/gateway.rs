//! The gateway connection: how Discord's events reach the bridge.
//!
//! Discord pushes events over a WebSocket (<https://discord.com/developers/docs/events/gateway>):
//! the bridge asks `GET /gateway/bot` where to connect, receives HELLO (the heartbeat interval),
//! IDENTIFYs with its token and intents (direct messages, their typing and reactions, and MESSAGE_CONTENT, the
//! privileged intent without which message text arrives empty), and gets READY with a session id
//! and a `resume_gateway_url`. From then on every event is a *dispatch* with a sequence number.
//!
//! Robustness, as Discord asks for it:
//! * heartbeats every `heartbeat_interval` (the first one after a random fraction of it); a
//!   heartbeat without an ACK before the next one means a zombie connection: drop it and resume;
//! * RECONNECT, a dropped socket or a resumable close code: reconnect to `resume_gateway_url`
//!   and RESUME with the session id and the last sequence number; Discord replays what was missed;
//! * INVALID_SESSION `false` (or close codes 4007/4009): wait 1–5 s, reconnect to the gateway URL
//!   and IDENTIFY afresh; close codes for a bad token or disallowed intents stop the channel with
//!   an error saying which setting to fix.
//!
//! Ordering and durability: the socket is read continuously (so heartbeats are never late), and
//! dispatches go in order to one processing task that stores each event (`Host::receive`)
//! before taking the next, retrying while the store is down. After storing, it records the
//! session id, resume URL and sequence number in the channel's state, so a restarted bridge
//! RESUMEs the old session and Discord replays what arrived while it was down. When no session
//! can be resumed, [`crate::catchup`] fetches what DM channels received meanwhile. Replays and
//! redeliveries are harmless: events are deduplicated by message id.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::model::{intents, op, Hello, Payload, Ready};
use crate::rest::RestError;
use crate::Shared;

/// The channel's state key for the resumable session.
const SESSION_KEY: &str = "gateway_session";

/// What is needed to resume a session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: String,
    pub resume_url: String,
    pub seq: u64,
}

/// One dispatch on its way to the processing task, with the session it belongs to.
pub struct Dispatch {
    pub session: Session,
    pub event: String,
    pub data: Value,
}

/// How one connection ended.
#[derive(Debug)]
enum End {
    /// Reconnect and RESUME (RECONNECT, a dropped socket, a zombie connection).
    Resume(String),
    /// Reconnect and IDENTIFY (the session is gone).
    Reidentify(String),
    /// Nothing will work until the configuration changes.
    Fatal(String),
}

/// The intents the bridge asks for.
pub fn intents(guilds: bool) -> u64 {
    let mut bits = intents::DIRECT_MESSAGES
        | intents::DIRECT_MESSAGE_TYPING
        | intents::DIRECT_MESSAGE_REACTIONS
        | intents::MESSAGE_CONTENT;
    if guilds {
        bits |= intents::GUILD_MESSAGES
            | intents::GUILD_MESSAGE_TYPING
            | intents::GUILD_MESSAGE_REACTIONS;
    }
    bits
}

/// `<base>?v=10&encoding=json`.
fn connect_url(base: &str) -> Result<String, String> {
    let mut url = url::Url::parse(base).map_err(|e| format!("gateway URL {base:?}: {e}"))?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(format!("gateway URL {base:?} is not ws:// or wss://"));
    }
    url.query_pairs_mut()
        .clear()
        .append_pair("v", "10")
        .append_pair("encoding", "json");
    Ok(url.to_string())
}

/// Runs the gateway for as long as the bridge runs.
pub async fn run(shared: Arc<Shared>) {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(process(Arc::clone(&shared), rx));

    let mut session: Option<Session> = match shared.host.state_get(SESSION_KEY).await {
        Ok(Some(stored)) => serde_json::from_str(&stored).ok(),
        _ => None,
    };
    if session.is_some() && shared.options().account.is_empty() {
        // Only READY would tell whose bot this is (the token does not say): identify.
        session = None;
    }
    if let Some(s) = &session {
        tracing::info!(session = %s.session_id, seq = s.seq, "discord: resuming the session of the previous run");
    }
    let mut failures: u32 = 0;
    loop {
        let resuming = session.is_some();
        let url = match &session {
            Some(s) => s.resume_url.clone(),
            None => match gateway_url(&shared).await {
                Ok(url) => url,
                Err(GatewayUrlError::TokenRefused(e)) => {
                    tracing::error!("discord: Discord refused the bot token ({e}); check channels.discord.token. No Discord messages will arrive until it is fixed and the bridge restarted");
                    return;
                }
                Err(GatewayUrlError::Other(e)) => {
                    failures += 1;
                    let wait = backoff(failures);
                    tracing::warn!(error = %e, ?wait, "discord: cannot get the gateway URL");
                    sleep(wait).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        let end = connection(&shared, &url, &mut session, &tx).await;
        if started.elapsed() > Duration::from_secs(30) {
            failures = 0;
        }
        match end {
            End::Resume(why) => {
                failures += 1;
                let wait = if failures <= 1 {
                    Duration::ZERO
                } else {
                    backoff(failures)
                };
                if failures >= 5 && session.is_some() {
                    // The resume URL keeps failing: start a new session at the gateway URL.
                    tracing::warn!(why, "discord: cannot resume; identifying again");
                    session = None;
                }
                tracing::info!(
                    why,
                    resuming = session.is_some(),
                    ?wait,
                    "discord: gateway connection ended; reconnecting"
                );
                sleep(wait).await;
            }
            End::Reidentify(why) => {
                tracing::info!(
                    why,
                    was_resuming = resuming,
                    "discord: session invalid; identifying again"
                );
                session = None;
                // Discord asks for a random 1–5 s wait before identifying again.
                sleep(Duration::from_millis(1000 + rand::random::<u64>() % 4000)).await;
            }
            End::Fatal(why) => {
                tracing::error!("discord: the gateway refused the bot: {why}; no Discord messages will arrive until this is fixed and the bridge restarted");
                return;
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
}

/// Why `GET /gateway/bot` gave no URL.
enum GatewayUrlError {
    /// 401: nothing will work with this token.
    TokenRefused(String),
    Other(String),
}

async fn gateway_url(shared: &Shared) -> Result<String, GatewayUrlError> {
    match &shared.config.gateway_url {
        Some(url) => Ok(url.clone()),
        None => shared.rest.gateway_url().await.map_err(|e| match e {
            RestError::Api { status, .. } if status == reqwest::StatusCode::UNAUTHORIZED => {
                GatewayUrlError::TokenRefused(e.to_string())
            }
            other => GatewayUrlError::Other(other.to_string()),
        }),
    }
}

/// One WebSocket connection, from HELLO to its end.
async fn connection(
    shared: &Shared,
    base: &str,
    session: &mut Option<Session>,
    tx: &mpsc::UnboundedSender<Dispatch>,
) -> End {
    let url = match connect_url(base) {
        Ok(url) => url,
        Err(e) => return End::Reidentify(e),
    };
    tracing::debug!(%url, "discord: connecting to the gateway");
    let mut ws = match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok((ws, _)) => ws,
        Err(e) => return End::Resume(format!("cannot connect to {url}: {e}")),
    };

    // HELLO comes first.
    let interval = loop {
        match ws.next().await {
            Some(Ok(WsMessage::Text(text))) => match serde_json::from_str::<Payload>(&text) {
                Ok(p) if p.op == op::HELLO => match serde_json::from_value::<Hello>(p.d) {
                    Ok(hello) => break Duration::from_millis(hello.heartbeat_interval.max(100)),
                    Err(e) => {
                        return End::Resume(format!("HELLO without a heartbeat interval: {e}"))
                    }
                },
                _ => continue,
            },
            Some(Ok(WsMessage::Close(frame))) => {
                return closed(frame.as_ref().map(|f| u16::from(f.code)))
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return End::Resume(format!("before HELLO: {e}")),
            None => return End::Resume("closed before HELLO".into()),
        }
    };

    let token = shared.config.token.trim();
    let hello_answer = match session.as_ref() {
        Some(s) => {
            json!({"op": op::RESUME, "d": {"token": token, "session_id": s.session_id, "seq": s.seq}})
        }
        None => json!({"op": op::IDENTIFY, "d": {
            "token": token,
            "intents": intents(shared.config.guilds),
            "properties": {"os": std::env::consts::OS, "browser": "switchboard", "device": "switchboard"},
        }}),
    };
    if let Err(e) = ws.send(WsMessage::text(hello_answer.to_string())).await {
        return End::Resume(format!("sending IDENTIFY/RESUME: {e}"));
    }

    let mut next_heartbeat = Instant::now() + interval.mul_f64(rand::random::<f64>());
    let mut acked = true;
    let end = loop {
        tokio::select! {
            _ = sleep_until(next_heartbeat) => {
                if !acked {
                    break End::Resume("no heartbeat ACK (zombie connection)".into());
                }
                let seq = session.as_ref().map(|s| s.seq);
                if let Err(e) = ws.send(WsMessage::text(json!({"op": op::HEARTBEAT, "d": seq}).to_string())).await {
                    break End::Resume(format!("sending a heartbeat: {e}"));
                }
                acked = false;
                next_heartbeat = Instant::now() + interval;
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(WsMessage::Text(text))) => text,
                    Some(Ok(WsMessage::Close(frame))) => break closed(frame.as_ref().map(|f| u16::from(f.code))),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break End::Resume(format!("gateway connection lost: {e}")),
                    None => break End::Resume("gateway connection closed".into()),
                };
                let payload: Payload = match serde_json::from_str(&text) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "discord: unreadable gateway frame skipped");
                        continue;
                    }
                };
                match payload.op {
                    op::DISPATCH => {
                        let event = payload.t.unwrap_or_default();
                        if event == "READY" {
                            match serde_json::from_value::<Ready>(payload.d.clone()) {
                                Ok(ready) => {
                                    let resume_url = ready.resume_gateway_url.clone().unwrap_or_else(|| base.to_owned());
                                    tracing::info!(bot = %ready.user.id, name = %ready.user.username, session = %ready.session_id, "discord: connected");
                                    shared.set_account(&ready.user.id);
                                    *session = Some(Session { session_id: ready.session_id, resume_url, seq: 0 });
                                }
                                Err(e) => break End::Reidentify(format!("READY without a session: {e}")),
                            }
                        } else if event == "RESUMED" {
                            tracing::info!("discord: session resumed");
                        }
                        let Some(s) = session.as_mut() else { continue };
                        if let Some(seq) = payload.s {
                            s.seq = s.seq.max(seq);
                        }
                        let _ = tx.send(Dispatch { session: s.clone(), event, data: payload.d });
                    }
                    op::HEARTBEAT => {
                        let seq = session.as_ref().map(|s| s.seq);
                        if let Err(e) = ws.send(WsMessage::text(json!({"op": op::HEARTBEAT, "d": seq}).to_string())).await {
                            break End::Resume(format!("sending a heartbeat: {e}"));
                        }
                    }
                    op::HEARTBEAT_ACK => acked = true,
                    op::RECONNECT => break End::Resume("Discord asked to reconnect".into()),
                    op::INVALID_SESSION => {
                        if payload.d.as_bool() == Some(true) && session.is_some() {
                            break End::Resume("session invalid but resumable".into());
                        }
                        break End::Reidentify("INVALID_SESSION".into());
                    }
                    other => tracing::debug!(op = other, "discord: gateway opcode ignored"),
                }
            }
        }
    };
    // Not 1000/1001: those would end the session on Discord's side and rule out resuming.
    let close = CloseFrame {
        code: CloseCode::from(4000),
        reason: "reconnecting".into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(close))).await;
    end
}

/// What a close code means (<https://discord.com/developers/docs/topics/opcodes-and-status-codes#gateway-gateway-close-event-codes>).
fn closed(code: Option<u16>) -> End {
    match code {
        Some(4004) => End::Fatal("authentication failed (4004): check channels.discord.token".into()),
        Some(4010) | Some(4011) => End::Fatal(format!("invalid shard or sharding required ({})", code.unwrap_or(0))),
        Some(4012) => End::Fatal("invalid API version (4012)".into()),
        Some(4013) => End::Fatal("invalid intents (4013)".into()),
        Some(4014) => End::Fatal(
            "disallowed intents (4014): enable the MESSAGE CONTENT intent for the bot in the Discord Developer Portal".into(),
        ),
        Some(4007) | Some(4009) => End::Reidentify(format!("session expired ({})", code.unwrap_or(0))),
        other => End::Resume(format!("gateway closed the connection ({other:?})")),
    }
}

/// The processing task: stores dispatches one after the other, in gateway order.
async fn process(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Dispatch>) {
    let mut stored: Option<Session> = None;
    while let Some(dispatch) = rx.recv().await {
        let mut attempt: u32 = 0;
        loop {
            match crate::handle_dispatch(&shared, &dispatch.event, &dispatch.data).await {
                Ok(()) => break,
                Err(e) => {
                    attempt += 1;
                    let wait = backoff(attempt);
                    tracing::warn!(error = %e, event = %dispatch.event, attempt, ?wait, "discord: event not stored yet; trying again");
                    sleep(wait).await;
                }
            }
        }
        crate::catchup::remember(&shared, &dispatch.event, &dispatch.data).await;
        if dispatch.event == "READY" {
            // A fresh session: Discord replays nothing from before it.
            crate::catchup::run(&shared).await;
        }
        // Remember how far we got, so a restart resumes from here.
        if stored.as_ref() != Some(&dispatch.session) {
            let value = serde_json::to_string(&dispatch.session).unwrap_or_default();
            match shared.host.state_put(SESSION_KEY, &value).await {
                Ok(()) => stored = Some(dispatch.session),
                Err(e) => tracing::warn!(error = %e, "discord: cannot record the gateway position"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_intents() {
        assert_eq!(
            connect_url("wss://gateway.discord.gg").unwrap(),
            "wss://gateway.discord.gg/?v=10&encoding=json"
        );
        assert_eq!(
            connect_url("ws://127.0.0.1:9/gw").unwrap(),
            "ws://127.0.0.1:9/gw?v=10&encoding=json"
        );
        assert!(connect_url("https://x").is_err());
        let dm = intents(false);
        assert_eq!(dm & intents::MESSAGE_CONTENT, intents::MESSAGE_CONTENT);
        assert_eq!(dm & intents::DIRECT_MESSAGES, intents::DIRECT_MESSAGES);
        assert_eq!(dm & intents::GUILD_MESSAGES, 0);
        assert_ne!(dm & intents::DIRECT_MESSAGE_REACTIONS, 0);
        assert_ne!(intents(true) & intents::GUILD_MESSAGES, 0);
    }

    #[test]
    fn close_codes() {
        assert!(matches!(closed(Some(4004)), End::Fatal(_)));
        assert!(matches!(closed(Some(4014)), End::Fatal(m) if m.contains("MESSAGE CONTENT")));
        assert!(matches!(closed(Some(4009)), End::Reidentify(_)));
        assert!(matches!(closed(Some(4000)), End::Resume(_)));
        assert!(matches!(closed(None), End::Resume(_)));
    }
}
