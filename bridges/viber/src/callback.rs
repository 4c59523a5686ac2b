//! The webhook: Viber posts every event to `<public_url>/viber/callback`.
//!
//! The order is the one every channel keeps. First the signature: the lowercase hex
//! HMAC-SHA256 of the exact raw body under the auth token, in `X-Viber-Content-Signature` (or
//! `?sig=`); missing → 401, wrong → 403, logged, and nothing of the body is read. Then the event
//! is parsed, its file fetched, `Host::receive`d, and only then answered 200. If storing fails
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
    let media_routes = Router::new().route("/media/{token}", get(media::serve)).with_state(shared.out.media.clone());
    Router::new().route("/callback", post(receive)).with_state(shared).merge(media_routes)
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> StatusCode {
    let given = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned).or_else(|| query.get("sig").cloned());
    let Some(given) = given else {
        tracing::warn!("viber: callback without a signature; refused");
        return StatusCode::UNAUTHORIZED;
    };
    if !verify_body(shared.config.auth_token.as_bytes(), &body, &given) {
        tracing::warn!("viber: callback with a wrong signature; refused");
        return StatusCode::FORBIDDEN;
    }
    let callback = match inbound::parse_callback_json(&body, &shared.account) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "viber: callback body is not an event");
            return StatusCode::BAD_REQUEST;
        }
    };
    match crate::handle(&shared, callback).await {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            tracing::warn!(error = %e, "viber: event not stored; Viber will deliver it again");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
