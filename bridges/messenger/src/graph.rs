//! The Graph API client: the few requests the channels make, and what Meta's errors mean.
//!
//! Every request goes to `<api_url>/<api_version>/…` with the Page access token as the
//! `access_token` query parameter, as the Send API's reference shows; that base URL is the only
//! difference between production and the test suite's fake.
//!
//! * `POST /me/messages` (JSON): a message, a `sender_action` (typing, mark_seen, react).
//! * `POST /me/message_attachments` (multipart: `message` JSON text, `filedata` the bytes; with
//!   `platform=instagram` on Instagram): the Attachment Upload API, answering `attachment_id`.
//! * `GET /<PSID|IGSID>?fields=…`: a customer's profile.
//! * Customer files are fetched from the CDN URL in the webhook (signed URLs, no token).
//!
//! Errors come in Meta's envelope `{"error":{"message","type","code","error_subcode",
//! "fbtrace_id"}}`; [`classify`] sorts them into what the outbox understands.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use switchboard_channel::SendError;

use crate::parse::Platform;

/// An error answer of the Graph API, or no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("HTTP {status}: {message} (code {code:?}, subcode {subcode:?})")]
    Api {
        status: u16,
        code: Option<i64>,
        subcode: Option<i64>,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("cannot reach the Graph API: {0}")]
    Network(String),
}

/// The Graph API as the channel uses it.
#[derive(Clone)]
pub struct Graph {
    http: reqwest::Client,
    base: String,
    token: String,
    platform: Platform,
}

impl Graph {
    /// A client for `<base>/…` with the Page token; `timeout` bounds every request.
    pub fn new(
        base: String,
        token: String,
        platform: Platform,
        timeout: Duration,
    ) -> Result<Graph, String> {
        let http = switchboard_kit::http::client(timeout)?;
        Ok(Graph {
            http,
            base,
            token,
            platform,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path)
    }

    /// `POST /me/messages` with a JSON body; the answer's JSON.
    pub async fn post_messages(&self, body: &Value) -> Result<Value, GraphError> {
        let request = self
            .http
            .post(self.url("me/messages"))
            .query(&[("access_token", &self.token)])
            .json(body);
        answer(request.send().await).await
    }

    /// Upload a file with the Attachment Upload API; its `attachment_id`.
    pub async fn upload(
        &self,
        kind: &str,
        bytes: Bytes,
        mime: &str,
        name: &str,
    ) -> Result<String, GraphError> {
        let message =
            serde_json::json!({"attachment": {"type": kind, "payload": {"is_reusable": false}}});
        let part = reqwest::multipart::Part::stream_with_length(
            reqwest::Body::from(bytes.clone()),
            bytes.len() as u64,
        )
        .file_name(name.to_owned())
        .mime_str(mime)
        .or_else(|_| {
            reqwest::multipart::Part::bytes(bytes.to_vec())
                .file_name(name.to_owned())
                .mime_str("application/octet-stream")
        })
        .map_err(|e| GraphError::Network(format!("building the upload: {e}")))?;
        let mut form = reqwest::multipart::Form::new().text("message", message.to_string());
        if self.platform == Platform::Instagram {
            form = form.text("platform", "instagram");
        }
        let form = form.part("filedata", part);
        let request = self
            .http
            .post(self.url("me/message_attachments"))
            .query(&[("access_token", &self.token)])
            .multipart(form);
        let v = answer(request.send().await).await?;
        match v.get("attachment_id") {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(GraphError::Network(format!(
                "the upload answer has no attachment_id: {v}"
            ))),
        }
    }

    /// `GET /<id>?fields=…`: a customer's profile fields.
    pub async fn profile(&self, id: &str, fields: &str) -> Result<Value, GraphError> {
        let request = self
            .http
            .get(self.url(id))
            .query(&[("fields", fields), ("access_token", self.token.as_str())]);
        answer(request.send().await).await
    }

    /// Fetch a file from a CDN URL (no token: the URLs are signed), refusing more than `max`
    /// bytes. The bytes and the `Content-Type`, if any.
    pub async fn download(
        &self,
        url: &str,
        max: u64,
    ) -> Result<(Bytes, Option<String>), FetchError> {
        let mut resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| FetchError::Transient(format!("GET {url}: {e}")))?;
        let status = resp.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(FetchError::Transient(format!("the CDN answered {status}")));
        }
        if !status.is_success() {
            return Err(FetchError::Gone(format!("the CDN answered {status}")));
        }
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(FetchError::TooLarge);
        }
        let mime = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_owned())
            .filter(|s| s.contains('/'));
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError::Transient(format!("reading {url}: {e}")))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max {
                return Err(FetchError::TooLarge);
            }
        }
        Ok((Bytes::from(bytes), mime))
    }
}

/// Why a customer's file could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Worth trying again (the webhook answers 503 so Meta redelivers).
    #[error("{0}")]
    Transient(String),
    /// The URL will not work again (expired, refused): the message says so instead.
    #[error("{0}")]
    Gone(String),
    #[error("the file is larger than max_download_size")]
    TooLarge,
}

/// Read an answer: 2xx JSON, or the error envelope.
async fn answer(result: Result<reqwest::Response, reqwest::Error>) -> Result<Value, GraphError> {
    let resp = result.map_err(|e| GraphError::Network(e.to_string()))?;
    let status = resp.status().as_u16();
    let retry_after = switchboard_kit::http::retry_after(resp.headers());
    let text = resp
        .text()
        .await
        .map_err(|e| GraphError::Network(format!("reading the answer: {e}")))?;
    let json: Option<Value> = serde_json::from_str(&text).ok();
    if (200..300).contains(&status) {
        return json.ok_or_else(|| {
            GraphError::Network(format!(
                "the answer is not JSON: {}",
                text.chars().take(200).collect::<String>()
            ))
        });
    }
    let error = json
        .as_ref()
        .and_then(switchboard_kit::meta::GraphError::from_envelope);
    let message = error
        .as_ref()
        .map(|e| e.text())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| text.chars().take(200).collect());
    Err(GraphError::Api {
        status,
        code: error.as_ref().map(|e| e.code),
        subcode: error.and_then(|e| e.subcode),
        message,
        retry_after,
    })
}

/// What a failed Send API call means for an outbound item.
///
/// * Rate limits (Graph's throttling codes, HTTP 429), Meta's transient errors (1, 2) and 5xx are
///   retryable (with `Retry-After` when given).
/// * Outside the 24-hour window (code 10 subcode 2018278; 2534022 on Instagram), the person
///   not available (551), no matching user (100 / 2018001), a token problem (190) and any other
///   refusal are permanent, with Meta's own text quoted for operators.
pub fn classify(error: GraphError, platform: Platform) -> SendError {
    let net = platform.label();
    match error {
        GraphError::Network(e) => SendError::Retryable {
            reason: format!("cannot reach {net}: {e}"),
            retry_after: None,
        },
        GraphError::Api {
            status,
            code,
            subcode,
            message,
            retry_after,
        } => {
            let retry = |reason: String| SendError::Retryable {
                reason,
                retry_after,
            };
            let permanent = |what: &str| SendError::Permanent {
                reason: format!("{what} ({net} said: \"{message}\")"),
            };
            match (code, subcode) {
                (Some(c), _) if switchboard_kit::meta::is_throttling(c) => retry(format!("{net} rate limit reached; retrying ({message})")),
                _ if status == 429 => retry(format!("{net} rate limit reached; retrying ({message})")),
                (Some(10), Some(2018278)) | (_, Some(2534022)) => permanent(&format!(
                    "{net} refused: the message is outside the 24-hour window after the customer's last message"
                )),
                (Some(551), _) | (_, Some(1545041)) => permanent(&format!(
                    "the customer is not available on {net} right now (blocked, deactivated or not reachable)"
                )),
                (Some(100), Some(2018001)) => permanent(&format!("{net} found no such customer (they may have deleted their account or blocked the Page)")),
                (Some(190), _) => permanent(&format!("{net} refused the access token (check channels.{}.access_token)", platform.name())),
                (Some(200 | 230 | 10), _) => permanent(&format!("{net} refused: missing permission")),
                (Some(c), _) if switchboard_kit::meta::is_transient(c) => retry(format!("{net} is having trouble; retrying ({message})")),
                _ if status >= 500 => retry(format!("{net} is having trouble (HTTP {status}); retrying ({message})")),
                _ => permanent(&format!("{net} refused the message")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: i64, subcode: Option<i64>, message: &str) -> GraphError {
        GraphError::Api {
            status,
            code: Some(code),
            subcode,
            message: message.into(),
            retry_after: None,
        }
    }

    #[test]
    fn errors_sort_into_retryable_and_permanent() {
        for code in [4, 17, 32, 613] {
            assert!(
                matches!(
                    classify(api(400, code, None, "limit"), Platform::Messenger),
                    SendError::Retryable { .. }
                ),
                "{code}"
            );
        }
        assert!(matches!(
            classify(GraphError::Api { status: 429, code: None, subcode: None, message: "slow".into(), retry_after: Some(Duration::from_secs(3)) }, Platform::Instagram),
            SendError::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        let SendError::Permanent { reason } = classify(
            api(
                400,
                10,
                Some(2018278),
                "(#10) This message is sent outside of allowed window.",
            ),
            Platform::Messenger,
        ) else {
            panic!()
        };
        assert!(
            reason.contains("outside the 24-hour window")
                && reason.contains("(#10) This message is sent outside of allowed window."),
            "{reason}"
        );
        assert!(
            matches!(classify(api(400, 10, Some(2534022), "outside"), Platform::Instagram), SendError::Permanent { ref reason } if reason.contains("24-hour"))
        );
        let SendError::Permanent { reason } = classify(
            api(400, 551, None, "This person isn't available right now."),
            Platform::Messenger,
        ) else {
            panic!()
        };
        assert!(
            reason.contains("not available on Messenger") && reason.contains("isn't available"),
            "{reason}"
        );
        assert!(
            matches!(classify(api(400, 100, Some(2018001), "(#100) No matching user found"), Platform::Messenger), SendError::Permanent { ref reason } if reason.contains("No matching user found"))
        );
        assert!(matches!(
            classify(
                api(500, 2, None, "Service temporarily unavailable"),
                Platform::Messenger
            ),
            SendError::Retryable { .. }
        ));
        assert!(matches!(
            classify(GraphError::Network("refused".into()), Platform::Messenger),
            SendError::Retryable { .. }
        ));
    }

    /// The fixture envelopes are what `answer` reads.
    #[test]
    fn fixture_envelopes_have_the_fields() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/messenger");
        for (name, code, sub) in [
            ("error_outside_window.json", 10, 2018278),
            ("error_no_matching_user.json", 100, 2018001),
        ] {
            let v: Value = serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap();
            assert_eq!(v["error"]["code"].as_i64(), Some(code));
            assert_eq!(v["error"]["error_subcode"].as_i64(), Some(sub));
        }
    }
}
