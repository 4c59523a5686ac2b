//! Meta's webhook protocol, the same for WhatsApp Cloud API, Messenger and Instagram
//! (<https://developers.facebook.com/docs/graph-api/webhooks/getting-started>):
//!
//! * **Verification handshake**: `GET ?hub.mode=subscribe&hub.verify_token=<ours>&hub.challenge=<n>`
//!   is answered 200 with the challenge as the plain-text body when the token is ours
//!   (compared in constant time), else 403.
//! * **Signed deliveries**: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`.
//!   The HMAC is over the exact bytes received (Meta escapes non-ASCII in what it signs, so the
//!   body must never be re-serialised first), checked before anything reads the body. The
//!   prefix is exactly `sha256=`, as Meta sends it; the older SHA-1 header
//!   (`X-Hub-Signature`) is never enough on its own. Missing → 401; malformed or wrong → 403.
//! * **Graph errors**: `{"error":{"message","type","code","error_subcode","error_data":{"details"},
//!   "fbtrace_id"}}` ([`GraphError`]), and the codes that mean the same on every Graph product:
//!   throttling ([`is_throttling`]) and Meta's own transient trouble ([`is_transient`]). Each
//!   channel adds its product's own codes (WhatsApp's 13xxxx, Messenger's subcodes).
//! * **The Graph API's address**: `api_url` and `api_version` settings, checked and joined
//!   alike ([`check_graph_api`], [`graph_base`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use crate::verify;

/// The header Meta signs deliveries in.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Why a delivery's signature is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Hub-Signature-256 header")]
    Missing,
    #[error("the X-Hub-Signature-256 header is not sha256=<64 hex digits>")]
    Malformed,
    #[error("the signature does not match the body (wrong app secret, or not from Meta)")]
    Mismatch,
}

impl SignatureError {
    /// The HTTP status a refused delivery is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            SignatureError::Missing => StatusCode::UNAUTHORIZED,
            SignatureError::Malformed | SignatureError::Mismatch => StatusCode::FORBIDDEN,
        }
    }
}

/// The header value Meta would send for `body`: `sha256=<lowercase hex>`.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(verify::hmac_sha256(app_secret, body))
    )
}

/// Check a delivery's raw `body` against its `X-Hub-Signature-256` value, if any.
pub fn verify_signature(
    app_secret: &[u8],
    body: &[u8],
    header: Option<&[u8]>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let header = std::str::from_utf8(header)
        .map_err(|_| SignatureError::Malformed)?
        .trim();
    let hex_part = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    if hex_part.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let given = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    if verify::hmac_sha256_matches(app_secret, body, &given) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// [`verify_signature`] on a request's headers.
pub fn verify_delivery(
    app_secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    verify_signature(
        app_secret,
        body,
        headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes()),
    )
}

/// The answer to the verification handshake (`channel` names the channel in the log).
pub fn handshake(channel: &str, query: &HashMap<String, String>, verify_token: &str) -> Response {
    let mode = query.get("hub.mode").map(String::as_str);
    let token = query
        .get("hub.verify_token")
        .map(String::as_str)
        .unwrap_or("");
    // An empty configured token never matches: a missing parameter must not pass.
    let token_ok = !verify_token.is_empty()
        && verify::constant_time_eq(token.as_bytes(), verify_token.as_bytes());
    match (mode, query.get("hub.challenge")) {
        (Some("subscribe"), Some(challenge)) if token_ok => {
            tracing::info!(channel, "webhook subscription verified by Meta");
            (
                StatusCode::OK,
                [("content-type", "text/plain")],
                challenge.clone(),
            )
                .into_response()
        }
        _ => {
            tracing::warn!(
                channel,
                mode,
                "webhook verification refused (wrong hub.verify_token or not a subscribe request)"
            );
            StatusCode::FORBIDDEN.into_response()
        }
    }
}

/// What a Meta channel's webhook state tells the shared route.
pub trait Webhook: Send + Sync + 'static {
    /// The channel, for the log.
    fn channel(&self) -> &str;
    /// The configured `verify_token`.
    fn verify_token(&self) -> &str;
}

/// The webhook route every Meta channel mounts, `/webhook` relative to the channel's prefix:
/// `GET` is the handshake, `POST` the channel's own `receive` (which checks the signature
/// first with [`verify_delivery`]).
pub fn webhook_router<S, H, T>(state: Arc<S>, receive: H) -> Router
where
    S: Webhook,
    H: Handler<T, Arc<S>>,
    T: 'static,
{
    Router::new()
        .route("/webhook", get(verify::<S>).post(receive))
        .with_state(state)
}

async fn verify<S: Webhook>(
    State(state): State<Arc<S>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    handshake(state.channel(), &query, state.verify_token())
}

/// Graph's error object (<https://developers.facebook.com/docs/graph-api/guides/error-handling>).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphError {
    pub code: i64,
    pub subcode: Option<i64>,
    /// Meta's text, at most 500 characters.
    pub message: String,
    /// `error_data.details` (WhatsApp says there what went wrong), at most 500 characters.
    pub details: Option<String>,
}

impl GraphError {
    /// Read the envelope from a response body, if it is one.
    pub fn from_body(body: &[u8]) -> Option<GraphError> {
        let v: Value = serde_json::from_slice(body).ok()?;
        GraphError::from_envelope(&v)
    }

    /// Read the envelope `{"error": {…}}` from parsed JSON, if it is one.
    pub fn from_envelope(v: &Value) -> Option<GraphError> {
        let e = v.get("error")?;
        let clip = |s: &str| s.chars().take(500).collect::<String>();
        Some(GraphError {
            code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
            subcode: e.get("error_subcode").and_then(Value::as_i64),
            message: clip(e.get("message").and_then(Value::as_str).unwrap_or("")),
            details: e
                .get("error_data")
                .and_then(|d| d.get("details"))
                .and_then(Value::as_str)
                .map(clip),
        })
    }

    /// `message — details`, for operators.
    pub fn text(&self) -> String {
        match &self.details {
            Some(d) if !d.is_empty() && !self.message.contains(d.as_str()) => {
                format!("{} — {d}", self.message)
            }
            _ => self.message.clone(),
        }
    }
}

/// Graph-wide throttling: application (4), user (17), Page (32) and custom (613) request limits,
/// and the WhatsApp Business rate limit (80007). Worth trying again later.
pub fn is_throttling(code: i64) -> bool {
    matches!(code, 4 | 17 | 32 | 613 | 80007)
}

/// Meta's own transient trouble: unknown error (1), temporary service issue (2).
pub fn is_transient(code: i64) -> bool {
    matches!(code, 1 | 2)
}

/// The Graph API settings every Meta channel has: `api_url` must be an http(s) base URL
/// (`https://graph.facebook.com`) and `api_version` look like `v21.0`.
pub fn check_graph_api(
    section: crate::config::Section,
    api_url: &str,
    api_version: &str,
) -> Result<(), crate::config::ConfigError> {
    section.base_url("api_url", api_url, "https://graph.facebook.com")?;
    let version_ok = api_version.strip_prefix('v').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    if version_ok {
        Ok(())
    } else {
        section.invalid("api_version", "must look like v21.0")
    }
}

/// `<api_url>/<api_version>`, the base of every Graph request, without a trailing slash.
pub fn graph_base(api_url: &str, api_version: &str) -> String {
    format!("{}/{api_version}", api_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_strictly() {
        let body = b"{\"object\":\"page\"}";
        let good = sign(b"k", body);
        assert_eq!(verify_signature(b"k", body, Some(good.as_bytes())), Ok(()));
        // Hex digits in either case are the same number.
        let upper_hex = format!("sha256={}", good["sha256=".len()..].to_ascii_uppercase());
        assert_eq!(
            verify_signature(b"k", body, Some(upper_hex.as_bytes())),
            Ok(())
        );
        assert_eq!(
            verify_signature(b"k", body, None),
            Err(SignatureError::Missing)
        );
        for bad in [
            good.replacen("sha256=", "SHA256=", 1),
            good.replacen("sha256=", "sha1=", 1),
            good[..good.len() - 2].to_owned(),
            format!("sha256={}", "zz".repeat(32)),
            String::new(),
        ] {
            assert_eq!(
                verify_signature(b"k", body, Some(bad.as_bytes())),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            verify_signature(b"k", b"{ }", Some(good.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"other", body, Some(good.as_bytes())),
            Err(SignatureError::Mismatch)
        );
    }

    /// The public vectors in `shared/fixtures/meta`: pywa's test body and the fixture
    /// collection's own, with its tampered counterpart.
    #[test]
    fn fixture_vectors_verify() {
        let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let Some(dir) = manifest
            .ancestors()
            .map(|a| a.join("shared/fixtures/meta"))
            .find(|d| d.is_dir())
        else {
            eprintln!("shared/fixtures/meta not found; fixture vectors skipped");
            return;
        };
        for name in [
            "signature_vector_pywa.json",
            "signature_vector_fake_secret.json",
        ] {
            let vector = std::fs::read_to_string(dir.join(name)).unwrap();
            let v: serde_json::Value = serde_json::from_str(&vector).unwrap();
            let body = std::fs::read(dir.join(v["body_file"].as_str().unwrap())).unwrap();
            let body = &body[..v["body_length"].as_u64().unwrap() as usize];
            let secret = v["app_secret"].as_str().unwrap().as_bytes();
            let header = v["header_value"]
                .as_str()
                .or_else(|| v["headers"]["X-Hub-Signature-256"].as_str())
                .unwrap();
            assert_eq!(
                verify_signature(secret, body, Some(header.as_bytes())),
                Ok(()),
                "{name}"
            );
            assert_eq!(sign(secret, body), header, "{name}");
            if let Some(tampered) = v["negative_case"]["tampered_sha256"].as_str() {
                assert_eq!(
                    verify_signature(secret, body, Some(tampered.as_bytes())),
                    Err(SignatureError::Mismatch)
                );
                let changed = String::from_utf8_lossy(body).replace("\"Oi\"", "\"Oj\"");
                assert_eq!(sign(secret, changed.as_bytes()), tampered);
            }
        }
    }

    #[test]
    fn graph_errors_are_read_from_their_envelope() {
        let body = br#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"error_data":{"messaging_product":"whatsapp","details":"More than 24 hours have passed."},"fbtrace_id":"A"}}"#;
        let e = GraphError::from_body(body).unwrap();
        assert_eq!(e.code, 131047);
        assert_eq!(e.subcode, None);
        assert_eq!(
            e.text(),
            "(#131047) Re-engagement message — More than 24 hours have passed."
        );
        assert_eq!(GraphError::from_body(b"{}"), None);
        assert_eq!(GraphError::from_body(b"not json"), None);
        assert!(is_throttling(613) && is_throttling(80007) && !is_throttling(100));
        assert!(is_transient(2) && !is_transient(190));
    }

    #[test]
    fn the_handshake_needs_our_token_and_subscribe() {
        let query = |mode: &str, token: &str| {
            HashMap::from([
                ("hub.mode".to_owned(), mode.to_owned()),
                ("hub.verify_token".to_owned(), token.to_owned()),
                ("hub.challenge".to_owned(), "1158201444".to_owned()),
            ])
        };
        assert_eq!(
            handshake("t", &query("subscribe", "tok"), "tok").status(),
            200
        );
        assert_eq!(
            handshake("t", &query("subscribe", "tik"), "tok").status(),
            403
        );
        assert_eq!(
            handshake("t", &query("unsubscribe", "tok"), "tok").status(),
            403
        );
        assert_eq!(handshake("t", &query("subscribe", ""), "").status(), 403);
        assert_eq!(handshake("t", &HashMap::new(), "tok").status(), 403);
    }
}
