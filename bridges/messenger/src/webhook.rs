//! The webhook: `GET /<name>/webhook` answers Meta's subscription handshake, `POST` receives
//! deliveries.
//!
//! Handshake: Meta calls `?hub.mode=subscribe&hub.verify_token=<ours>&hub.challenge=<n>`; with
//! the right token (compared in constant time) we answer 200 with the challenge as the body,
//! else 403.
//!
//! Deliveries keep the order every channel keeps: the `X-Hub-Signature-256` header is checked
//! against the raw body first (missing → 401, wrong → 403, logged, nothing else read); then
//! the body is parsed and every event stored with `Host::receive`; only then the answer is 200.
//! If anything could not be stored (the store, a file fetch that may work later), the answer is
//! 503 and Meta delivers the whole batch again; redeliveries are harmless (dedup keys).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;

use crate::parse::{parse_body, ParseError};
use crate::{signature, Shared};

/// The routes, relative to `/<name>`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/webhook", get(verify).post(receive))
        .with_state(shared)
}

/// Compare two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn verify(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let net = shared.platform.name();
    let mode = q.get("hub.mode").map(String::as_str);
    let token = q.get("hub.verify_token").map(String::as_str).unwrap_or("");
    match (mode, q.get("hub.challenge")) {
        (Some("subscribe"), Some(challenge))
            if constant_time_eq(token.as_bytes(), shared.config.verify_token.as_bytes()) =>
        {
            tracing::info!(channel = net, "webhook subscription verified");
            (StatusCode::OK, challenge.clone())
        }
        _ => {
            tracing::warn!(
                channel = net,
                "webhook verification refused (wrong hub.verify_token or mode)"
            );
            (StatusCode::FORBIDDEN, String::new())
        }
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let net = shared.platform.name();
    let header = headers.get(signature::HEADER).map(|v| v.as_bytes());
    if let Err(e) = signature::verify(shared.config.app_secret.as_bytes(), &body, header) {
        tracing::warn!(channel = net, error = %e, bytes = body.len(), "webhook delivery refused: bad signature");
        let status = if header.is_none() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        return (status, "bad signature");
    }
    let parsed = match parse_body(&body, shared.platform) {
        Ok(p) => p,
        Err(ParseError::WrongObject(object)) => {
            // A subscription of another product pointed here: nothing of ours, nothing to retry.
            tracing::warn!(
                channel = net,
                object,
                "webhook delivery for another object; ignored"
            );
            return (StatusCode::OK, "EVENT_RECEIVED");
        }
        Err(e) => {
            // Signed by our app, so it is Meta's: kept and shown, never only refused.
            tracing::warn!(channel = net, error = %e, "webhook body is not a delivery");
            let input = switchboard_channel::Unreadable::new(
                switchboard_channel::Unreadable::digest_key(&body),
                format!("a {net} webhook delivery"),
                format!("it is not a delivery ({e})"),
                &body,
                crate::outbound::now_ms(),
            );
            return match shared.host.unreadable(input).await {
                Ok(()) => (StatusCode::OK, "EVENT_RECEIVED"),
                Err(e) => {
                    tracing::warn!(channel = net, error = %e, "cannot keep an unreadable delivery; Meta will send it again");
                    (StatusCode::SERVICE_UNAVAILABLE, "try again")
                }
            };
        }
    };
    tracing::debug!(
        channel = net,
        events = parsed.events.len(),
        echoes = parsed.echoes,
        skipped = parsed.skipped,
        "webhook delivery"
    );
    for event in parsed.events {
        let key = event.dedup_key.clone();
        if let Err(e) = crate::inbound::handle(&shared, event).await {
            tracing::warn!(channel = net, dedup_key = %key, error = %e, "event not stored; answering 503 so Meta delivers again");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again");
        }
    }
    (StatusCode::OK, "EVENT_RECEIVED")
}
