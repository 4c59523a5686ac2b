//! The appservice API the homeserver pushes to.
//!
//! `PUT /_matrix/app/v1/transactions/{txnId}`: refuses a missing (401) or wrong (403) hs_token,
//! drops events sent by the bridge's own namespace (the homeserver echoes ghosts' events back),
//! and stores the rest together with the transaction id in one database transaction before
//! answering 200. A replayed transaction id is answered 200 without storing anything again. A
//! store failure is answered 500, so the homeserver retries the transaction later: nothing is
//! acknowledged that is not stored.
//!
//! Ephemeral events (typing, receipts) are not stored: they are relayed best-effort at once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::bridge::Bridge;

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
        return Err(error(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED", "missing hs_token"));
    };
    if !constant_time_eq(token.as_bytes(), bridge.hs_token.as_bytes()) {
        tracing::warn!("refused a request with a wrong hs_token");
        return Err(error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "wrong hs_token"));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
struct Transaction {
    #[serde(default)]
    events: Vec<Value>,
    #[serde(default)]
    ephemeral: Vec<Value>,
    #[serde(default, rename = "de.sorunome.msc2409.ephemeral")]
    ephemeral_unstable: Vec<Value>,
}

async fn transaction(
    State(bridge): State<Arc<Bridge>>,
    Path(txn_id): Path<String>,
    Query(query): Query<AuthQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(resp) = authorize(&bridge, &headers, &query) {
        return resp;
    }
    let txn: Transaction = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, "M_NOT_JSON", &format!("bad transaction body: {e}")),
    };
    let mut rows = Vec::with_capacity(txn.events.len());
    for event in &txn.events {
        let (Some(event_id), Some(room_id), Some(sender)) = (
            event.get("event_id").and_then(Value::as_str),
            event.get("room_id").and_then(Value::as_str),
            event.get("sender").and_then(Value::as_str),
        ) else {
            tracing::warn!(txn_id, "skipping an event without event_id, room_id or sender");
            continue;
        };
        if bridge.namespace.is_ours(sender) {
            continue;
        }
        rows.push((event_id.to_string(), room_id.to_string(), event.to_string()));
    }
    match bridge.store.store_transaction(&txn_id, &rows).await {
        Ok(true) => {
            tracing::debug!(txn_id, events = rows.len(), "transaction stored");
            bridge.wake_matrix.notify_one();
        }
        Ok(false) => {
            tracing::debug!(txn_id, "transaction replayed; already processed");
            return Json(json!({})).into_response();
        }
        Err(e) => {
            tracing::error!(txn_id, error = %e, "could not store transaction; the homeserver will retry");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN", "store unavailable");
        }
    }
    let ephemeral: Vec<Value> = txn.ephemeral.into_iter().chain(txn.ephemeral_unstable).collect();
    if !ephemeral.is_empty() {
        let bridge = bridge.clone();
        tokio::spawn(async move { crate::ephemeral::handle(&bridge, ephemeral).await });
    }
    Json(json!({})).into_response()
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

async fn ping(State(bridge): State<Arc<Bridge>>, Query(query): Query<AuthQuery>, headers: HeaderMap) -> Response {
    if let Err(resp) = authorize(&bridge, &headers, &query) {
        return resp;
    }
    Json(json!({})).into_response()
}
