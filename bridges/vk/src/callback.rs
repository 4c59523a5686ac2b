//! The Callback API endpoint: VK posts every community event to `<public_url>/vk/callback`.
//!
//! The order is the one every channel keeps. First what proves the event is VK's: the
//! `group_id` must be our community's, and every event but the one-time `confirmation` must
//! carry the server's secret key in `secret` (compared in constant time; missing → 401, wrong →
//! 403, logged, nothing else read). Then: `confirmation` is answered with the confirmation
//! string; any other event is parsed, its files fetched, `Host::receive`d, and only then answered
//! `ok` (the exact body VK waits for). If storing fails the answer is 503 and VK delivers the
//! event again (it retries a few times). Redeliveries are harmless: dedup keys are message ids.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

use crate::inbound;
use crate::Shared;

/// Compare two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The callback route, relative to `/vk`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().route("/callback", post(receive)).with_state(shared)
}

fn text(status: StatusCode, body: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body.to_owned()).into_response()
}

async fn receive(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        tracing::warn!("vk: callback body is not JSON; refused");
        return text(StatusCode::BAD_REQUEST, "bad request");
    };
    let Some(head) = inbound::head(&value) else {
        tracing::warn!("vk: callback without a type; refused");
        return text(StatusCode::BAD_REQUEST, "bad request");
    };
    if head.group_id != Some(shared.options.group_id) {
        tracing::warn!(group_id = ?head.group_id, kind = %head.kind, "vk: callback for another community; refused");
        return text(StatusCode::FORBIDDEN, "wrong community");
    }
    if head.kind == "confirmation" {
        tracing::info!("vk: confirming the Callback API server");
        return text(StatusCode::OK, &shared.config.confirmation);
    }
    match head.secret.as_deref() {
        None => {
            tracing::warn!(kind = %head.kind, "vk: callback without the secret key; refused");
            return text(StatusCode::UNAUTHORIZED, "secret required");
        }
        Some(given) if !constant_time_eq(given.as_bytes(), shared.config.secret.as_bytes()) => {
            tracing::warn!(kind = %head.kind, "vk: callback with a wrong secret key; refused");
            return text(StatusCode::FORBIDDEN, "wrong secret");
        }
        Some(_) => {}
    }
    match crate::handle(&shared, inbound::parse_event(&value, &shared.options)).await {
        Ok(()) => text(StatusCode::OK, "ok"),
        Err(e) => {
            tracing::warn!(kind = %head.kind, error = %e, "vk: event not stored; VK will deliver it again");
            text(StatusCode::SERVICE_UNAVAILABLE, "retry")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
