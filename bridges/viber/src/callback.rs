//! The webhook: Viber posts every event to `<public_url>/viber/callback`.
//!
//! The order is the one every channel keeps. First the signature: the lowercase hex
//! HMAC-SHA256 of the exact raw body under the auth token, in `X-Viber-Content-Signature` (or
//! `?sig=`); missing → 401, wrong → 403, logged, and nothing of the body is read. Then the event
//! is parsed (what cannot be read is kept and shown through `Host::unreadable`), its file fetched, `Host::receive`d, and only then answered 200. If storing fails
//! the answer is 503 and Viber delivers again. Redeliveries are harmless: the dedup key is the
//! `message_token`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;

use crate::inbound;
use crate::media;
use crate::signing::verify_body;
use crate::Shared;

pub const SIGNATURE_HEADER: &str = "x-viber-content-signature";

/// The routes, relative to `/viber`: the webhook and the media links.
pub fn router(shared: Arc<Shared>) -> Router {
    let media_routes = Router::new()
        .route("/media/{token}", get(media::serve))
        .with_state(shared.out.media.clone());
    Router::new()
        .route("/callback", post(receive))
        .with_state(shared)
        .merge(media_routes)
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> StatusCode {
    let given = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.get("sig").cloned());
    let Some(given) = given else {
        tracing::warn!("viber: callback without a signature; refused");
        return StatusCode::UNAUTHORIZED;
    };
    if !verify_body(shared.config.auth_token.as_bytes(), &body, &given) {
        tracing::warn!("viber: callback with a wrong signature; refused");
        return StatusCode::FORBIDDEN;
    }
    // Past the signature the body is Viber's: what cannot be read is kept and shown.
    let callback = match inbound::parse_callback_json(&body, &shared.account) {
        Ok(c) => c,
        Err(e) => inbound::Callback::Unreadable(Box::new(switchboard_channel::Unreadable::new(
            switchboard_channel::Unreadable::digest_key(&body),
            "a Viber callback",
            format!("it is not a Viber event: {e}"),
            &body,
            0,
        ))),
    };
    match crate::handle(&shared, callback).await {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            tracing::warn!(error = %e, "viber: event not stored; Viber will deliver it again");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchboard_kit::test_host::MemoryHost;

    use crate::config::ViberConfig;
    use crate::signing::sign_hex;

    const TOKEN: &str = "aaaa-bbbb-cccc";

    async fn serve(fail: bool) -> (String, Arc<MemoryHost>) {
        let config = ViberConfig {
            enabled: true,
            api_url: "http://127.0.0.1:9/pa".into(),
            auth_token: TOKEN.into(),
            public_url: Some("http://127.0.0.1:9".into()),
            avatars: false,
            ..ViberConfig::default()
        };
        let (test_host, host) = MemoryHost::for_channel(fail);
        let api = crate::api::Api::new(&config).unwrap();
        let media = crate::media::Publisher {
            host: Arc::clone(&host),
            secret: b"k".to_vec(),
            base: "http://x/viber/media".into(),
            ttl_secs: 60,
        };
        let out = crate::outbound::Outgoing {
            api: api.clone(),
            host: Arc::clone(&host),
            account: "aaaa".into(),
            sender: json!({"name": "S"}),
            media,
        };
        let shared = Arc::new(Shared {
            config,
            account: "aaaa".into(),
            api,
            host,
            out,
        });
        let base = switchboard_kit::test_host::serve(|_| router(shared)).await;
        (format!("{base}/callback"), test_host)
    }

    async fn post(url: &str, body: &str, sig: Option<&str>) -> u16 {
        let mut r = reqwest::Client::new().post(url).body(body.to_owned());
        if let Some(s) = sig {
            r = r.header("X-Viber-Content-Signature", s);
        }
        r.send().await.unwrap().status().as_u16()
    }

    /// 200 only once stored; a store failure is a 503 so Viber delivers again; a bad signature
    /// is refused before anything is parsed or stored; `?sig=` works like the header.
    #[tokio::test]
    async fn ok_only_after_the_store_took_it() {
        let body =
            json!({"event": "message", "message_token": 77, "sender": {"id": "u1", "name": "U"},
                          "message": {"type": "text", "text": "hi"}})
            .to_string();
        let sig = sign_hex(TOKEN.as_bytes(), body.as_bytes());
        let (url, host) = serve(true).await;
        assert_eq!(post(&url, &body, Some(&sig)).await, 503);
        assert!(host.received().is_empty());

        let (url, host) = serve(false).await;
        assert_eq!(post(&url, &body, None).await, 401);
        assert_eq!(post(&url, &body, Some(&sig[1..])).await, 403);
        assert_eq!(
            post(&url, &format!("{body} "), Some(&sig)).await,
            403,
            "the signature covers the exact bytes"
        );
        assert!(
            host.received().is_empty(),
            "refused callbacks never reach the store"
        );
        assert_eq!(post(&url, &body, Some(&sig)).await, 200);
        assert_eq!(post(&format!("{url}?sig={sig}"), &body, None).await, 200);
        assert_eq!(host.received().len(), 1, "a redelivery is stored once");
        let check = r#"{"event":"webhook","timestamp":1,"message_token":2}"#;
        assert_eq!(
            post(
                &url,
                check,
                Some(&sign_hex(TOKEN.as_bytes(), check.as_bytes()))
            )
            .await,
            200
        );
        assert_eq!(host.received().len(), 1, "the webhook check is not stored");
        // Signed but unreadable (no message token): Viber's, so kept and shown, then
        // acknowledged.
        let odd =
            r#"{"event":"message","sender":{"id":"u1"},"message":{"type":"text","text":"hi"}}"#;
        assert_eq!(
            post(&url, odd, Some(&sign_hex(TOKEN.as_bytes(), odd.as_bytes()))).await,
            200,
        );
        let kept = host.unreadables();
        assert_eq!(kept.len(), 1);
        assert!(
            kept[0].conversation.is_some() && kept[0].to_notice().is_some(),
            "{:?}",
            kept[0]
        );
        // Signed garbage naming no conversation is kept too (the core shows it in the admin
        // room), and acknowledged.
        let garbage = "not json";
        assert_eq!(
            post(
                &url,
                garbage,
                Some(&sign_hex(TOKEN.as_bytes(), garbage.as_bytes()))
            )
            .await,
            200
        );
        assert_eq!(host.unreadables().len(), 2);
        assert_eq!(
            host.received().len(),
            1,
            "nothing unreadable became a message"
        );
    }
}
