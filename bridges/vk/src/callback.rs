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
use switchboard_kit::constant_time_eq;

use crate::inbound;
use crate::Shared;

/// The callback route, relative to `/vk`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/callback", post(receive))
        .with_state(shared)
}

fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.to_owned(),
    )
        .into_response()
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
    use serde_json::json;
    use switchboard_kit::test_host::MemoryHost;

    use crate::config::VkConfig;

    /// Serve the callback route over a host; returns its URL and the host.
    async fn serve(fail: bool) -> (String, Arc<MemoryHost>) {
        let config = VkConfig {
            enabled: true,
            api_url: "http://127.0.0.1:9/method".into(),
            access_token: "t".into(),
            group_id: 42,
            secret: "s3cret".into(),
            confirmation: "conf".into(),
            profiles: false,
            ..VkConfig::default()
        };
        let (test_host, host) = MemoryHost::for_channel(fail);
        let api = crate::api::Api::new(&config).unwrap();
        let options = inbound::ParseOptions {
            group_id: 42,
            chats: true,
        };
        let out = crate::outbound::Outgoing {
            api: api.clone(),
            host: Arc::clone(&host),
            account: "42".into(),
            group_id: 42,
        };
        let shared = Arc::new(Shared {
            config,
            api,
            host,
            options,
            out,
        });
        let base = switchboard_kit::test_host::serve(|_| router(shared)).await;
        (format!("{base}/callback"), test_host)
    }

    async fn post(url: &str, body: serde_json::Value) -> (u16, String) {
        let r = reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    fn text_event(secret: &str) -> serde_json::Value {
        json!({"type": "message_new", "group_id": 42, "event_id": "e1", "v": "5.199", "secret": secret,
               "object": {"message": {"date": 1, "from_id": 7, "peer_id": 7, "conversation_message_id": 3, "text": "hi"}}})
    }

    /// `ok` only once stored; a store failure is a 503 so VK delivers again; a wrong secret is
    /// refused before the store is touched.
    #[tokio::test]
    async fn ok_only_after_the_store_took_it() {
        let (url, host) = serve(true).await;
        assert_eq!(post(&url, text_event("s3cret")).await.0, 503);
        assert!(host.received().is_empty());

        let (url, host) = serve(false).await;
        assert_eq!(post(&url, text_event("s3cre")).await.0, 403);
        assert_eq!(
            post(&url, json!({"type": "message_new", "group_id": 42}))
                .await
                .0,
            401
        );
        assert!(
            host.received().is_empty(),
            "refused events never reach the store"
        );
        assert_eq!(post(&url, text_event("s3cret")).await, (200, "ok".into()));
        assert_eq!(host.received().len(), 1);
        assert_eq!(
            post(&url, json!({"type": "confirmation", "group_id": 42})).await,
            (200, "conf".into())
        );
        assert_eq!(
            post(&url, json!({"type": "confirmation", "group_id": 43}))
                .await
                .0,
            403
        );
        // Our own echo: acknowledged, not stored.
        let echo = json!({"type": "message_reply", "group_id": 42, "secret": "s3cret", "object": {"from_id": -42, "peer_id": 7, "out": 1, "conversation_message_id": 4, "text": "hello"}});
        assert_eq!(post(&url, echo).await, (200, "ok".into()));
        assert_eq!(host.received().len(), 1);
    }
}
