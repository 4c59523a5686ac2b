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
use axum::extract::{FromRequest, OriginalUri, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use switchboard_channel::{HostError, Inbound};

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
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        EMPTY_TWIML,
    )
        .into_response()
}

fn retry_later() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        "not stored; please retry",
    )
        .into_response()
}

/// A webhook's form that Twilio signed ([`authenticate`]), with the body it came in; a request
/// that is not signed is refused before its handler runs.
struct Signed {
    form: Form,
    body: Bytes,
}

impl FromRequest<Arc<Shared>> for Signed {
    type Rejection = Response;

    async fn from_request(request: Request, shared: &Arc<Shared>) -> Result<Self, Response> {
        let uri = match request.extensions().get::<OriginalUri>() {
            Some(OriginalUri(original)) => original.clone(),
            None => request.uri().clone(),
        };
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, shared)
            .await
            .map_err(IntoResponse::into_response)?;
        let form =
            authenticate(shared, &uri, &headers, &body).map_err(IntoResponse::into_response)?;
        Ok(Signed { form, body })
    }
}

/// Check the signature over the configured public URL + the path and query Twilio posted to.
/// Returns the decoded form, or the refusal to answer.
fn authenticate(
    shared: &Shared,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Form, (StatusCode, &'static str)> {
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(uri.path());
    let url = format!("{}{path_and_query}", shared.config.public_base());
    let Some(given) = headers.get(signature::HEADER).and_then(|v| v.to_str().ok()) else {
        tracing::warn!(%url, "sms: webhook without X-Twilio-Signature refused");
        return Err((StatusCode::UNAUTHORIZED, "missing X-Twilio-Signature"));
    };
    let form = form::parse(body);
    if !signature::verify(&shared.config.auth_token, &url, form.pairs(), given) {
        tracing::warn!(%url, "sms: webhook with a wrong X-Twilio-Signature refused (is channels.sms.public_url the URL configured in Twilio?)");
        return Err((StatusCode::FORBIDDEN, "invalid X-Twilio-Signature"));
    }
    Ok(form)
}

async fn incoming(State(shared): State<Arc<Shared>>, Signed { form, body }: Signed) -> Response {
    let message = match inbound::parse_incoming(&form) {
        Ok(m) => m,
        Err(e) => {
            // Signed by Twilio, so it is the customer's or Twilio's: kept and shown, never only
            // refused.
            tracing::warn!(error = %e, "sms: incoming webhook not understood");
            let input = switchboard_channel::Unreadable::new(
                switchboard_channel::Unreadable::digest_key(&body),
                "an incoming SMS webhook",
                format!("it is not a message Twilio documents ({e})"),
                &body,
                crate::now_ms(),
            );
            return match shared.host.unreadable(input).await {
                Ok(()) => twiml_ok(),
                Err(e) => {
                    tracing::warn!(error = %e, "sms: cannot keep an unreadable webhook; Twilio will retry");
                    retry_later()
                }
            };
        }
    };
    let sid = message.message_sid.clone();
    let realized = crate::realize_incoming(&shared, message).await.map(Some);
    store(&shared, &sid, "incoming message", realized).await
}

async fn status(State(shared): State<Arc<Shared>>, Signed { form, .. }: Signed) -> Response {
    let update = match inbound::parse_status(&form) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "sms: status callback not understood");
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    let sid = update.message_sid.clone();
    let realized = crate::realize_status(&shared, update).await;
    store(&shared, &sid, "status", realized).await
}

/// Store what a webhook carried (`what`: "incoming message", "status") and answer Twilio:
/// `200` once it is stored or when it changes nothing, `503` when its files could not be
/// fetched or it could not be stored, so that Twilio delivers it again.
async fn store<E: std::fmt::Display>(
    shared: &Shared,
    sid: &str,
    what: &str,
    realized: Result<Option<Inbound>, E>,
) -> Response {
    let stored = match realized {
        Ok(Some(inbound)) => shared
            .host
            .receive(inbound)
            .await
            .map_err(|e| e.to_string()),
        Ok(None) => return twiml_ok(),
        Err(e) => Err(e.to_string()),
    };
    match stored {
        Ok(fresh) => {
            tracing::debug!(sid, fresh, "sms: {what} stored");
            twiml_ok()
        }
        Err(error) => {
            tracing::warn!(sid, error, "sms: {what} not stored; Twilio will retry");
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
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CACHE_CONTROL, "private, no-store".to_owned()),
                ],
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

#[cfg(test)]
mod tests {

    use switchboard_channel::Host;

    use super::*;
    use crate::test_host::{config, shared, MemoryHost, COMPANY, TOKEN};

    /// The routes served on a free port, as the core mounts them; returns the base URL.
    async fn serve(host: Arc<MemoryHost>) -> (String, Arc<Shared>) {
        let mut made = None;
        let base = switchboard_kit::test_host::serve(|base| {
            let shared = shared(config(base), host);
            made = Some(Arc::clone(&shared));
            Router::new().nest("/sms", router(shared))
        })
        .await;
        (base, made.expect("the routes were made"))
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    async fn post(url: &str, params: &[(String, String)]) -> (u16, String) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let r = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature::compute(TOKEN, url, params))
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    fn sms(sid: &str) -> Vec<(String, String)> {
        pairs(&[
            ("MessageSid", sid),
            ("From", "+14155550142"),
            ("To", COMPANY),
            ("Body", "hello"),
            ("NumMedia", "0"),
        ])
    }

    #[tokio::test]
    async fn a_store_failure_is_a_503_and_twilio_retries() {
        let host = Arc::new(MemoryHost::default());
        let (base, _) = serve(Arc::clone(&host)).await;
        let url = format!("{base}/sms/incoming");
        host.set_failing(true);
        assert_eq!(post(&url, &sms("SM1")).await.0, 503);
        assert!(host.received().is_empty());
        // Twilio's retry, once the store is back, goes through; a redelivery is stored once.
        host.set_failing(false);
        let (status, body) = post(&url, &sms("SM1")).await;
        assert_eq!((status, body.as_str()), (200, EMPTY_TWIML));
        assert_eq!(post(&url, &sms("SM1")).await.0, 200);
        let received = host.received();
        assert_eq!(received.len(), 1);
        let i = &received[0];
        assert_eq!(i.dedup_key, "msg:SM1");
        assert_eq!(
            (
                i.conversation.account.as_str(),
                i.conversation.chat.as_str()
            ),
            (COMPANY, "+14155550142")
        );
        assert_eq!(i.sender.phone.as_deref(), Some("+14155550142"));
        assert_eq!(i.sender.display_name.as_deref(), Some("+1 415 555 0142"));
    }

    #[tokio::test]
    async fn media_that_cannot_be_fetched_now_is_a_503() {
        let host = Arc::new(MemoryHost::default());
        let (base, _) = serve(Arc::clone(&host)).await;
        let mut params = sms("MM1");
        params.retain(|(k, _)| k != "NumMedia");
        params.extend(pairs(&[
            ("NumMedia", "1"),
            ("MediaUrl0", "http://127.0.0.1:9/m"),
            ("MediaContentType0", "image/png"),
        ]));
        assert_eq!(post(&format!("{base}/sms/incoming"), &params).await.0, 503);
        assert!(host.received().is_empty());
    }

    #[tokio::test]
    async fn statuses_and_malformed_webhooks() {
        let host = Arc::new(MemoryHost::default());
        let (base, _) = serve(Arc::clone(&host)).await;
        let url = format!("{base}/sms/status");
        // An intermediate status is acknowledged and not stored.
        let queued = pairs(&[
            ("MessageSid", "SM9"),
            ("MessageStatus", "queued"),
            ("From", COMPANY),
            ("To", "+14155550142"),
        ]);
        assert_eq!(post(&url, &queued).await.0, 200);
        assert!(host.received().is_empty());
        // A failure is stored in the customer's conversation with the explanation.
        let failed = pairs(&[
            ("MessageSid", "SM9"),
            ("MessageStatus", "failed"),
            ("ErrorCode", "30006"),
            ("From", COMPANY),
            ("To", "+14155550142"),
        ]);
        assert_eq!(post(&url, &failed).await.0, 200);
        let received = host.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].dedup_key, "status:SM9:failed");
        assert_eq!(received[0].conversation.chat, "+14155550142");
        match &received[0].event {
            switchboard_channel::InboundEvent::Failed { remote_id, reason } => {
                assert_eq!(remote_id, "SM9");
                assert!(reason.contains("landline"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // The status of a message neither recorded nor from one of our numbers is not ours.
        let stranger = pairs(&[
            ("MessageSid", "SM8"),
            ("MessageStatus", "failed"),
            ("From", "+14155550111"),
            ("To", "+14155550142"),
        ]);
        assert_eq!(post(&url, &stranger).await.0, 200);
        assert_eq!(host.received().len(), 1);
        // A recorded message's status lands in its recorded conversation, whatever From says.
        host.state_put(
            "sid:SM7",
            r#"{"account":"+14155550100","chat":"+4915700000000"}"#,
        )
        .await
        .unwrap();
        let pooled = pairs(&[
            ("MessageSid", "SM7"),
            ("MessageStatus", "delivered"),
            ("From", "+14155550111"),
            ("To", "+4915700000000"),
        ]);
        assert_eq!(post(&url, &pooled).await.0, 200);
        let received = host.received();
        assert_eq!(received.len(), 2);
        assert_eq!(received[1].conversation.account, COMPANY);
        assert!(
            matches!(&received[1].event, switchboard_channel::InboundEvent::Delivered { remote_id } if remote_id == "SM7")
        );
        // Signed but not a message: kept with `Host::unreadable` and answered 200; while the
        // store cannot keep it, Twilio is asked to retry. A status that is not one: 400.
        // Nothing is received as a message either way.
        let not_a_message = pairs(&[("Body", "x")]);
        host.set_failing(true);
        assert_eq!(
            post(&format!("{base}/sms/incoming"), &not_a_message)
                .await
                .0,
            503
        );
        host.set_failing(false);
        assert_eq!(
            post(&format!("{base}/sms/incoming"), &not_a_message)
                .await
                .0,
            200
        );
        assert_eq!(host.unreadables().len(), 1);
        assert_eq!(post(&url, &pairs(&[("MessageSid", "SM1")])).await.0, 400);
        assert_eq!(host.received().len(), 2);
    }

    #[tokio::test]
    async fn media_links_serve_only_genuine_tokens() {
        let host = Arc::new(MemoryHost::default());
        let (base, shared) = serve(Arc::clone(&host)).await;
        let media = host
            .put_media(Bytes::from_static(b"PNGDATA"), "image/png", "a.png")
            .await
            .unwrap();
        let token = shared.links.token(&media);
        let r = reqwest::get(format!("{base}/sms/media/{token}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/png");
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"PNGDATA");
        let gone = shared
            .links
            .token(&switchboard_channel::MediaRef("mxc://test/gone".into()));
        assert_eq!(
            reqwest::get(format!("{base}/sms/media/{gone}"))
                .await
                .unwrap()
                .status(),
            404
        );
        assert_eq!(
            reqwest::get(format!("{base}/sms/media/{token}x"))
                .await
                .unwrap()
                .status(),
            404
        );
        assert_eq!(
            reqwest::get(format!("{base}/sms/media/"))
                .await
                .unwrap()
                .status(),
            404
        );
    }
}
