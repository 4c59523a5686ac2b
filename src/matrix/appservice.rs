//! The appservice API the homeserver pushes to.
//!
//! `PUT /_matrix/app/v1/transactions/{txnId}`: refuses a missing (401) or wrong (403) hs_token,
//! drops events sent by the bridge's own namespace (the homeserver echoes ghosts' events back)
//! and events without a well-formed event id, room id or sender, and stores the rest together
//! with the transaction id in one database transaction before answering 200. A replayed
//! transaction (its events all stored already) is answered 200 without storing anything again;
//! a reused id carrying new events is not a replay (homeservers restart their numbering, see
//! [`crate::store::matrix_events`]) and its events are stored. A store failure is answered 500, so the homeserver retries the transaction later: nothing is
//! acknowledged that is not stored.
//!
//! Ephemeral events (typing, receipts) are not stored: they are relayed best-effort at once.
//!
//! The body is read only after the token is checked, and at most [`MAX_TRANSACTION_BYTES`] of
//! it: a homeserver may push 100 events of up to 64 KiB each (plus their `unsigned` data), which
//! is far over axum's default 2 MiB limit, and a transaction refused for its size would be
//! retried forever. What the body means is decided by [`parse_transaction`], a pure function
//! (fuzzed in `fuzz/`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::event_json;
use crate::bridge::Bridge;
use crate::metrics::TxnOutcome;

pub fn routes() -> Router<Arc<Bridge>> {
    Router::new()
        .route("/_matrix/app/v1/transactions/{txn_id}", put(transaction))
        .route("/transactions/{txn_id}", put(transaction))
        .route("/_matrix/app/v1/users/{user_id}", get(query_user))
        .route("/users/{user_id}", get(query_user))
        .route("/_matrix/app/v1/rooms/{alias}", get(query_room))
        .route("/rooms/{alias}", get(query_room))
        .route("/_matrix/app/v1/ping", post(ping))
}

fn error(status: StatusCode, errcode: &str, message: &str) -> Response {
    (status, Json(json!({"errcode": errcode, "error": message}))).into_response()
}

#[derive(Deserialize, Default)]
struct AuthQuery {
    access_token: Option<String>,
}

/// Check the homeserver's token (header, or the deprecated query parameter).
fn authorize(bridge: &Bridge, headers: &HeaderMap, query: &AuthQuery) -> Result<(), Response> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = header.or(query.access_token.as_deref()) else {
        tracing::info!("refused a homeserver request without an hs_token");
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "M_UNAUTHORIZED",
            "missing hs_token",
        ));
    };
    if !constant_time_eq(token.as_bytes(), bridge.hs_token.as_bytes()) {
        tracing::warn!("refused a request with a wrong hs_token");
        return Err(error(
            StatusCode::FORBIDDEN,
            "M_FORBIDDEN",
            "wrong hs_token",
        ));
    }
    Ok(())
}

use switchboard_kit::constant_time_eq;

/// Largest transaction body read. Synapse sends at most 100 events (each up to 64 KiB, plus
/// `unsigned` data such as `prev_content` or `redacted_because`) and 100 ephemeral events.
pub const MAX_TRANSACTION_BYTES: usize = 64 * 1024 * 1024;

/// Each event is kept as the text the homeserver sent and read on its own ([`event_json::read`],
/// which the relay reads the stored text with too), so one event that does not read is skipped,
/// never a reason to refuse the rest, and what is stored reads back exactly as it was read here.
#[derive(Deserialize)]
struct Transaction {
    #[serde(default)]
    events: Vec<Box<RawValue>>,
    #[serde(default)]
    ephemeral: Vec<Box<RawValue>>,
    #[serde(default, rename = "de.sorunome.msc2409.ephemeral")]
    ephemeral_unstable: Vec<Box<RawValue>>,
}

/// One event of a transaction that names its event, room and sender.
#[derive(Clone, Debug, PartialEq)]
pub struct TransactionEvent {
    pub event_id: String,
    pub room_id: String,
    pub sender: String,
    /// The whole event as JSON, as it is stored for the worker.
    pub raw: String,
}

/// A transaction body, reduced to what the bridge keeps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedTransaction {
    /// Events with an `event_id`, `room_id` and `sender` (strings), in order. Events of the
    /// bridge's own users are still here: the caller knows its namespace.
    pub events: Vec<TransactionEvent>,
    /// Events dropped for lacking one of those three fields, having one that is not a Matrix
    /// identifier (see [`is_identifier`]), not being objects at all, or not reading as JSON on their own.
    pub skipped: usize,
    /// Ephemeral events (stable `ephemeral` first, then MSC2409's unstable field), those that read as JSON, otherwise unchecked.
    pub ephemeral: Vec<Value>,
}

/// Why a transaction body was refused (`400 M_NOT_JSON`).
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    #[error("bad transaction body: {0}")]
    NotJson(#[from] serde_json::Error),
}

/// Could this be a Matrix identifier with this sigil (`$` event, `!` room, `@` user)? The spec
/// caps identifiers at 255 bytes, and none contains a control character. Anything else cannot
/// come from a working homeserver and is not let near the store or the worker: a NUL is refused
/// by PostgreSQL (the whole transaction would fail, and be retried forever), and a 20 KB room
/// id makes every request about that room fail as "unreachable", which the worker retries
/// forever — holding up every event behind it.
pub fn is_identifier(id: &str, sigil: char) -> bool {
    id.len() <= 255
        && id.len() > sigil.len_utf8()
        && id.starts_with(sigil)
        && !id.chars().any(char::is_control)
}

/// Parse a `PUT /transactions/{txnId}` body. Fails only when the body as a whole is not a JSON
/// object whose `events` and `ephemeral` fields (when present) are arrays; a single malformed
/// event is skipped, never a reason to refuse the rest (the homeserver would retry forever).
pub fn parse_transaction(body: &[u8]) -> Result<ParsedTransaction, TransactionError> {
    let txn: Transaction = serde_json::from_slice(body)?;
    let mut parsed = ParsedTransaction {
        events: Vec::with_capacity(txn.events.len()),
        ..Default::default()
    };
    for raw in &txn.events {
        let event = event_json::read(raw.get()).unwrap_or(Value::Null);
        let (Some(event_id), Some(room_id), Some(sender)) = (
            event
                .get("event_id")
                .and_then(Value::as_str)
                .filter(|id| is_identifier(id, '$')),
            event
                .get("room_id")
                .and_then(Value::as_str)
                .filter(|id| is_identifier(id, '!')),
            event
                .get("sender")
                .and_then(Value::as_str)
                .filter(|id| is_identifier(id, '@')),
        ) else {
            parsed.skipped += 1;
            continue;
        };
        parsed.events.push(TransactionEvent {
            event_id: event_id.to_string(),
            room_id: room_id.to_string(),
            sender: sender.to_string(),
            raw: raw.get().to_string(),
        });
    }
    parsed.ephemeral = txn
        .ephemeral
        .iter()
        .chain(&txn.ephemeral_unstable)
        .filter_map(|raw| event_json::read(raw.get()).ok())
        .collect();
    Ok(parsed)
}

/// Read a request body of at most `limit` bytes; `413 M_TOO_LARGE` past it.
async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, Response> {
    let mut stream = body.into_data_stream();
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "M_UNKNOWN",
                &format!("could not read the body: {e}"),
            )
        })?;
        if data.len() + chunk.len() > limit {
            tracing::warn!(limit, "refused a transaction body over the size limit");
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "M_TOO_LARGE",
                &format!("transaction body over {limit} bytes"),
            ));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

/// One transaction, in a span naming its id (every line logged while it is handled carries it),
/// counted by outcome in the metrics.
async fn transaction(
    State(bridge): State<Arc<Bridge>>,
    Path(txn_id): Path<String>,
    Query(query): Query<AuthQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use tracing::Instrument;
    let span = tracing::info_span!("transaction", txn_id = %txn_id);
    let (outcome, response) = handle_transaction(bridge, txn_id, query, headers, body)
        .instrument(span)
        .await;
    crate::metrics::appservice_transaction(outcome);
    response
}

async fn handle_transaction(
    bridge: Arc<Bridge>,
    txn_id: String,
    query: AuthQuery,
    headers: HeaderMap,
    body: Body,
) -> (TxnOutcome, Response) {
    if let Err(resp) = authorize(&bridge, &headers, &query) {
        return (TxnOutcome::Unauthorized, resp);
    }
    let body = match read_body(body, MAX_TRANSACTION_BYTES).await {
        Ok(body) => body,
        Err(resp) => return (TxnOutcome::Malformed, resp),
    };
    let txn = match parse_transaction(&body) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(txn_id, error = %e, "refused a transaction that is not JSON");
            let resp = error(StatusCode::BAD_REQUEST, "M_NOT_JSON", &e.to_string());
            return (TxnOutcome::Malformed, resp);
        }
    };
    drop(body);
    if txn.skipped > 0 {
        tracing::warn!(
            txn_id,
            skipped = txn.skipped,
            "skipping events that are not JSON objects with a valid event_id, room_id and sender"
        );
    }
    let rows: Vec<(String, String, String)> = txn
        .events
        .into_iter()
        .filter(|e| !bridge.namespace.is_ours(&e.sender))
        .map(|e| (e.event_id, e.room_id, e.raw))
        .collect();
    match bridge.store.gap_to_nudge(&txn_id).await {
        Ok(Some(missing)) => {
            tracing::warn!(
                txn_id,
                missing,
                "a transaction is missing; refusing this one once so the homeserver re-sends it"
            );
            let resp = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "M_UNKNOWN",
                &format!("transaction {missing} was never received; send it first"),
            );
            return (TxnOutcome::HeldForGap, resp);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot check for missing transactions"),
    }
    match bridge.queue_matrix_events(&txn_id, &rows).await {
        Ok(true) => {
            let event_ids: Vec<&str> = rows.iter().map(|(id, _, _)| id.as_str()).collect();
            tracing::debug!(
                txn_id,
                events = rows.len(),
                ?event_ids,
                "transaction stored"
            );
        }
        Ok(false) => {
            tracing::info!(
                txn_id,
                events = rows.len(),
                "transaction replayed: its events are stored already; nothing to do"
            );
            return (TxnOutcome::Replay, Json(json!({})).into_response());
        }
        Err(e) => {
            tracing::error!(txn_id, error = %e, "could not store transaction; the homeserver will retry");
            let resp = error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "M_UNKNOWN",
                "store unavailable",
            );
            return (TxnOutcome::StoreError, resp);
        }
    }
    let ephemeral = txn.ephemeral;
    if !ephemeral.is_empty() {
        let bridge = bridge.clone();
        tokio::spawn(async move { crate::ephemeral::handle(&bridge, ephemeral).await });
    }
    (TxnOutcome::Stored, Json(json!({})).into_response())
}

/// The homeserver asks whether a user in our namespace exists: ghosts are created on demand, so
/// only users we know are confirmed.
async fn query_user(
    State(bridge): State<Arc<Bridge>>,
    Path(user_id): Path<String>,
    Query(query): Query<AuthQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = authorize(&bridge, &headers, &query) {
        return resp;
    }
    if user_id == bridge.namespace.bot {
        return Json(json!({})).into_response();
    }
    error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "no such user")
}

async fn query_room(
    State(bridge): State<Arc<Bridge>>,
    Path(_alias): Path<String>,
    Query(query): Query<AuthQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = authorize(&bridge, &headers, &query) {
        return resp;
    }
    error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "no such room")
}

async fn ping(
    State(bridge): State<Arc<Bridge>>,
    Query(query): Query<AuthQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = authorize(&bridge, &headers, &query) {
        return resp;
    }
    Json(json!({})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_and_bad_events_are_skipped() {
        assert!(parse_transaction(b"").is_err());
        assert!(parse_transaction(b"\xff\xfe{").is_err());
        assert!(parse_transaction(br#"{"events": {}}"#).is_err());
        assert!(parse_transaction(br#""x""#).is_err());
        // serde reads a struct from an array too: harmless, and what the handler always did.
        assert_eq!(
            parse_transaction(br#"[]"#).unwrap(),
            ParsedTransaction::default()
        );
        let empty = parse_transaction(b"{}").unwrap();
        assert_eq!(empty, ParsedTransaction::default());

        let body = json!({
            "events": [
                1, "x", null, [], {},
                {"event_id": 5, "room_id": "!r", "sender": "@a:x"},
                {"event_id": "$e", "room_id": "!r"},
                {"event_id": "$nul\u{0}", "room_id": "!r", "sender": "@a:x"},
                {"event_id": "$e", "room_id": format!("!{}", "r".repeat(255)), "sender": "@a:x"},
                {"event_id": "e", "room_id": "!r", "sender": "@a:x"},
                {"event_id": "$e", "room_id": "!r", "sender": "@"},
                {"type": "m.room.message", "event_id": "$ok", "room_id": "!r", "sender": "@a:x", "content": {"body": "hi"}},
            ],
            "ephemeral": [{"type": "m.typing"}],
            "de.sorunome.msc2409.ephemeral": [{"type": "m.receipt"}],
            "unknown": {"deep": [1, 2, 3]},
        });
        let parsed = parse_transaction(body.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.skipped, 11);
        assert_eq!(parsed.events.len(), 1);
        let e = &parsed.events[0];
        assert_eq!(
            (e.event_id.as_str(), e.room_id.as_str(), e.sender.as_str()),
            ("$ok", "!r", "@a:x")
        );
        let raw: Value = serde_json::from_str(&e.raw).unwrap();
        assert_eq!(raw["content"]["body"], "hi");
        assert_eq!(parsed.ephemeral.len(), 2);
        assert_eq!(parsed.ephemeral[0]["type"], "m.typing");
    }

    /// serde_json (its `raw_value` feature is on in this build) reads an object whose first key
    /// is `$serde_json::private::RawValue` as the JSON text in that key's value. An event that
    /// only sorted that key first when re-serialized (the fuzzer found one) was stored as text
    /// the worker could not read back, and a row that does not parse stalls the queue; an event
    /// with that key first was skipped. Each event is stored exactly as the homeserver sent it
    /// and read key by key ([`event_json::read`]), here and in the worker: both are relayed,
    /// and an object that only holds that key is no event at all.
    #[test]
    fn an_event_is_stored_as_received_and_reads_back_the_same() {
        let token = "$serde_json::private::RawValue";
        let body = format!(
            r#"{{"events": [
                {{"type": "m.room.message", "event_id": "$a", "room_id": "!r", "sender": "@a:x",
                  "content": {{"body": "hi"}}, "{token}": "@a:x"}},
                {{"{token}": "@b:x", "type": "m.room.message", "event_id": "$b", "room_id": "!r",
                  "sender": "@b:x", "content": {{"{token}": "x", "body": "hello"}}}},
                {{"{token}": "{{\"event_id\": \"$c\", \"room_id\": \"!r\", \"sender\": \"@c:x\"}}"}}
            ]}}"#
        );
        let parsed = parse_transaction(body.as_bytes()).unwrap();
        assert_eq!(parsed.skipped, 1, "the object that only holds the token");
        let ids: Vec<&str> = parsed.events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["$a", "$b"]);
        for event in &parsed.events {
            let stored = event_json::read(&event.raw)
                .unwrap_or_else(|e| panic!("{} does not read back: {e}", event.event_id));
            assert_eq!(stored["event_id"], event.event_id.as_str());
            assert_eq!(stored["sender"], event.sender.as_str());
        }
        assert!(parsed.events[0]
            .raw
            .contains(r#""content": {"body": "hi"}"#));
        assert_eq!(
            event_json::read(&parsed.events[1].raw).unwrap()["content"]["body"],
            "hello"
        );
    }

    /// An event nested past serde_json's recursion limit is skipped, not a crash, and the
    /// events beside it are kept.
    #[test]
    fn nesting_past_the_recursion_limit_is_skipped_not_a_crash() {
        let deep = format!(
            r#"{{"events": [{}{}, {{"event_id": "$ok", "room_id": "!r", "sender": "@a:x"}}]}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let parsed = parse_transaction(deep.as_bytes()).unwrap();
        assert_eq!((parsed.events.len(), parsed.skipped), (1, 1));
    }
}
