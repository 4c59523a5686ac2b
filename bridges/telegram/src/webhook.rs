//! Webhook mode: Telegram posts each update to `<public_url>/telegram/webhook`.
//!
//! The order is the one every channel keeps: check the `X-Telegram-Bot-Api-Secret-Token`
//! header first (constant-time; missing → 401, wrong → 403, logged, nothing else is read), parse
//! (what cannot be read goes to `Host::unreadable`, stored like any update),
//! fetch the file, `Host::receive`, and only then answer 200. If storing fails the answer is
//! 503 and Telegram delivers the update again later. Redeliveries are harmless.
//!
//! At start the channel registers the webhook with `setWebhook` (URL, secret token, allowed
//! updates), retrying in the background until Telegram accepts it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use teloxide::payloads::SetWebhookSetters;
use teloxide::prelude::Requester;

use crate::Shared;

pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

pub use switchboard_kit::constant_time_eq;

/// The webhook route, relative to `/telegram`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/webhook", post(receive))
        .with_state(shared)
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(expected) = shared.config.webhook_secret.as_deref() else {
        tracing::info!("telegram: webhook post while no webhook_secret is configured; refused");
        return StatusCode::NOT_FOUND;
    };
    let Some(given) = headers.get(SECRET_HEADER) else {
        tracing::warn!("telegram: webhook post without the secret token header; refused");
        return StatusCode::UNAUTHORIZED;
    };
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        tracing::warn!("telegram: webhook post with a wrong secret token; refused");
        return StatusCode::FORBIDDEN;
    }
    // Past the secret the body is Telegram's: whatever it holds is bridged, or kept and shown
    // when it cannot be read; never answered 200 and dropped.
    match crate::handle_update(&shared, &body).await {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            tracing::warn!(error = %e, "telegram: webhook update not stored; Telegram will retry");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// Register the webhook, retrying until Telegram accepts it.
pub async fn register(shared: Arc<Shared>) {
    let (Some(url), Some(secret)) = (
        shared.config.webhook_url(),
        shared.config.webhook_secret.clone(),
    ) else {
        return;
    };
    let url = match url::Url::parse(&url) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, url, "telegram: the webhook URL is not a URL");
            return;
        }
    };
    let mut pause = Duration::from_secs(1);
    loop {
        let request = shared
            .bot
            .set_webhook(url.clone())
            .secret_token(secret.clone())
            .allowed_updates(crate::poll::allowed_updates());
        match request.await {
            Ok(_) => {
                tracing::info!(%url, "telegram: webhook registered");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "telegram: setWebhook failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(60));
            }
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
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
