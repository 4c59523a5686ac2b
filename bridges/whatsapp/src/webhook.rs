//! The webhook: `GET|POST <bridge>/whatsapp/webhook`, set as the app's callback URL for the
//! WhatsApp Business Account's `messages` field.
//!
//! * `GET` is Meta's verification handshake: `hub.mode=subscribe`, `hub.verify_token` (must
//!   equal `verify_token`, compared in constant time) and `hub.challenge`, which is echoed as
//!   the plain-text answer. Anything else is 403.
//! * `POST` is a delivery. The `X-Hub-Signature-256` header is checked against the raw body
//!   first (missing → 401, malformed or wrong → 403, logged, nothing else read). Then the body
//!   is parsed, each event's file fetched and the event stored with `Host::receive`; only when
//!   every event is stored is the answer 200. A failure is 503, and Meta delivers the whole
//!   batch again later (with backoff, for days): events already stored are recognised by
//!   their dedup keys and stored once.
//! * Events for another business number than ours are left out (logged): the outbound side
//!   could not answer them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;

use crate::payload::{self, PayloadError};
use crate::Shared;

/// The routes, relative to the channel's prefix: Meta's handshake (the kit's) and deliveries.
pub fn router(shared: Arc<Shared>) -> Router {
    switchboard_kit::meta::webhook_router(shared, receive)
}

impl switchboard_kit::meta::Webhook for Shared {
    fn channel(&self) -> &str {
        "whatsapp"
    }
    fn verify_token(&self) -> &str {
        &self.config.verify_token
    }
}

/// A delivery.
async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if let Err(e) =
        switchboard_kit::meta::verify_delivery(shared.config.app_secret.as_bytes(), &headers, &body)
    {
        tracing::warn!(error = %e, bytes = body.len(), "whatsapp: webhook delivery refused");
        return e.status();
    }
    let batch = match payload::parse_webhook(&body) {
        Ok(b) => b,
        Err(e @ PayloadError::Json(_)) => {
            // Signed by our app, so it is Meta's: kept and shown, never only refused.
            tracing::warn!(error = %e, "whatsapp: signed webhook body is not JSON");
            let input = switchboard_channel::Unreadable::new(
                switchboard_channel::Unreadable::digest_key(&body),
                "a WhatsApp webhook delivery",
                format!("it is not JSON ({e})"),
                &body,
                switchboard_kit::now_ms(),
            );
            return match shared.host.unreadable(input).await {
                Ok(()) => StatusCode::OK,
                Err(e) => {
                    tracing::warn!(error = %e, "whatsapp: cannot keep an unreadable delivery; Meta will send it again");
                    StatusCode::SERVICE_UNAVAILABLE
                }
            };
        }
        Err(e @ PayloadError::NotWhatsApp(_)) => {
            // Signed by our app, so answered 200: another product's events would come forever.
            tracing::info!(error = %e, "whatsapp: webhook delivery not for WhatsApp; ignored");
            return StatusCode::OK;
        }
    };
    for skipped in &batch.skipped {
        tracing::info!(what = %skipped, "whatsapp: left out of the delivery");
    }
    for parsed in batch.events {
        if parsed.conversation.account != shared.config.phone_number_id {
            tracing::warn!(account = %parsed.conversation.account, "whatsapp: event for another business number; not bridged");
            continue;
        }
        let key = parsed.dedup_key.clone();
        let stored = match crate::inbound::realize(
            parsed,
            &shared.graph,
            &shared.host,
            shared.config.max_download_size,
        )
        .await
        {
            Ok(inbound) => shared
                .host
                .receive(inbound)
                .await
                .map_err(crate::inbound::RealizeError::from),
            Err(e) => Err(e),
        };
        match stored {
            Ok(fresh) => tracing::debug!(dedup_key = %key, fresh, "whatsapp: event stored"),
            Err(e) => {
                // Stop here, so nothing after it is stored before it: Meta redelivers the
                // whole batch, and what was stored already is recognised by its dedup key.
                tracing::warn!(dedup_key = %key, error = %e, "whatsapp: event not stored; Meta will deliver again");
                return StatusCode::SERVICE_UNAVAILABLE;
            }
        }
    }
    StatusCode::OK
}
