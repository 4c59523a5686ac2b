//! The routes Twilio calls, mounted by the core under `/sms`:
//!
//! * `POST /sms/incoming` — an incoming SMS/MMS (configure it as the number's or the Messaging
//!   Service's "A message comes in" webhook).
//! * `POST /sms/status` — status callbacks of the messages the bridge sent (passed as
//!   `StatusCallback` with every message).
//! * `GET /sms/media/<token>` — operators' files, for Twilio to fetch when it sends an MMS
//!   (`links`).
//!
//! The order in both webhooks is the one every channel keeps: the `X-Twilio-Signature` is
//! checked first, over the configured public URL (missing → 401, wrong → 403, logged, nothing
//! else read); then the form is understood, media fetched, the event stored with
//! `Host::receive`, and only then the answer is `200` with an empty TwiML `<Response/>` (so
//! Twilio sends no automatic reply). If storing fails the answer is `503` and Twilio retries;
//! redeliveries are recognised by `MessageSid` and stored once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use switchboard_channel::HostError;

use crate::form::{self, Form};
use crate::{inbound, signature, Shared};

/// The empty TwiML answer: "received, nothing to reply".
pub const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

/// The routes, relative to `/sms`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/incoming", post(incoming))
        .route("/status", post(status))
        .route("/media/{token}", get(media))
        .with_state(shared)
}

fn twiml_ok() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml; charset=utf-8")], EMPTY_TWIML).into_response()
}

fn retry_later() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], "not stored; please retry").into_response()
}

/// Check the signature over the configured public URL + the path and query Twilio posted to.
/// Returns the decoded form, or the answer to give.
fn authenticate(shared: &Shared, uri: &axum::http::Uri, headers: &HeaderMap, body: &[u8]) -> Result<Form, Response> {
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or(uri.path());
    let url = format!("{}{path_and_query}", shared.config.public_base());
    let Some(given) = headers.get(signature::HEADER).and_then(|v| v.to_str().ok()) else {
        tracing::warn!(%url, "sms: webhook without X-Twilio-Signature refused");
        return Err((StatusCode::UNAUTHORIZED, "missing X-Twilio-Signature").into_response());
    };
    let form = form::parse(body);
    if !signature::verify(&shared.config.auth_token, &url, form.pairs(), given) {
        tracing::warn!(%url, "sms: webhook with a wrong X-Twilio-Signature refused (is channels.sms.public_url the URL configured in Twilio?)");
        return Err((StatusCode::FORBIDDEN, "invalid X-Twilio-Signature").into_response());
    }
    Ok(form)
}

async fn incoming(State(shared): State<Arc<Shared>>, OriginalUri(uri): OriginalUri, headers: HeaderMap, body: Bytes) -> Response {
    let form = match authenticate(&shared, &uri, &headers, &body) {
        Ok(f) => f,
        Err(answer) => return answer,
    };
    let message = match inbound::parse_incoming(&form) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "sms: incoming webhook not understood");
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    let sid = message.message_sid.clone();
    let inbound = match crate::realize_incoming(&shared, message).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(sid, error = %e, "sms: incoming message not stored; Twilio will retry");
            return retry_later();
        }
    };
    match shared.host.receive(inbound).await {
        Ok(fresh) => {
            tracing::debug!(sid, fresh, "sms: incoming message stored");
            twiml_ok()
        }
        Err(e) => {
            tracing::warn!(sid, error = %e, "sms: incoming message not stored; Twilio will retry");
            retry_later()
        }
    }
}

async fn status(State(shared): State<Arc<Shared>>, OriginalUri(uri): OriginalUri, headers: HeaderMap, body: Bytes) -> Response {
    let form = match authenticate(&shared, &uri, &headers, &body) {
        Ok(f) => f,
        Err(answer) => return answer,
    };
    let update = match inbound::parse_status(&form) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "sms: status callback not understood");
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    let sid = update.message_sid.clone();
    let inbound = match crate::realize_status(&shared, update).await {
        Ok(Some(i)) => i,
        Ok(None) => return twiml_ok(),
        Err(e) => {
            tracing::warn!(sid, error = %e, "sms: status not stored; Twilio will retry");
            return retry_later();
        }
    };
    match shared.host.receive(inbound).await {
        Ok(fresh) => {
            tracing::debug!(sid, fresh, "sms: status stored");
            twiml_ok()
        }
        Err(e) => {
            tracing::warn!(sid, error = %e, "sms: status not stored; Twilio will retry");
            retry_later()
        }
    }
}

async fn media(State(shared): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
    let Some(media) = shared.links.check(&token) else {
        tracing::info!("sms: media link refused (forged or expired)");
        return StatusCode::NOT_FOUND.into_response();
    };
    match shared.host.get_media(&media).await {
        Ok((bytes, mime)) => {
            tracing::debug!(media = %media.0, bytes = bytes.len(), "sms: media served");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "private, no-store".to_owned())],
                bytes,
            )
                .into_response()
        }
        Err(HostError::NotFound) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::warn!(media = %media.0, error = %e, "sms: media not served");
            retry_later()
        }
    }
}
