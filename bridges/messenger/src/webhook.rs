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

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;

use crate::parse::{parse_body, ParseError};
use crate::Shared;

/// The routes, relative to the channel's prefix: Meta's handshake (the kit's) and deliveries.
pub fn router(shared: Arc<Shared>) -> Router {
    switchboard_kit::meta::webhook_router(shared, receive)
}

impl switchboard_kit::meta::Webhook for Shared {
    fn channel(&self) -> &str {
        self.platform.name()
    }
    fn verify_token(&self) -> &str {
        &self.config.verify_token
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let net = shared.platform.name();
    if let Err(e) =
        switchboard_kit::meta::verify_delivery(shared.config.app_secret.as_bytes(), &headers, &body)
    {
        tracing::warn!(channel = net, error = %e, bytes = body.len(), "webhook delivery refused: bad signature");
        return (e.status(), "bad signature");
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
                switchboard_kit::now_ms(),
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
