//! The Graph API client: the few Cloud API calls the channel makes, and what their errors mean.
//!
//! Every request goes to `<api_url>/<api_version>/…` with `Authorization: Bearer <token>`; that
//! base URL is the only difference between production and the test suite's fake. The calls:
//!
//! * `POST /{phone-number-id}/messages` (JSON): send a message, a reaction, a template, or mark
//!   a customer's message read. Answers `{"messages":[{"id":"wamid…"}]}` (or `{"success":true}`).
//! * `POST /{phone-number-id}/media` (multipart: `messaging_product`, `type`, `file`): upload a
//!   file; answers `{"id":"<media id>"}`, which a message then names.
//! * `GET /{media-id}`: a customer's file's metadata with a short-lived `url`, which is fetched
//!   with the same Bearer token.
//! * `GET /{phone-number-id}?fields=display_phone_number,verified_name`: the number itself
//!   (`switchboard doctor`).
//!
//! Errors come in Graph's envelope `{"error":{"message","type","code","error_subcode",
//! "error_data":{"details"},"fbtrace_id"}}`. [`classify`] sorts them for the core's outbox:
//! throttling (HTTP 429, codes 4, 80007, 130429, 131056) and Meta's own trouble (5xx, codes 1,
//! 2, 131000, 131016) are retryable; everything else is permanent, with a reason that quotes
//! Meta's text and, for the closed 24-hour window (131047), says to use `!sb template`.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use switchboard_channel::SendError;

use crate::config::WhatsAppConfig;

/// How long one request may take (uploads and downloads of large files included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub use switchboard_kit::meta::GraphError;

/// Why a Graph API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the WhatsApp Cloud API: {0}")]
    Network(String),
    #[error("WhatsApp answered HTTP {status}: {}", error.as_ref().map(GraphError::text).unwrap_or_default())]
    Http {
        status: u16,
        retry_after: Option<Duration>,
        error: Option<GraphError>,
    },
    #[error("WhatsApp's answer is not what the Cloud API documents: {0}")]
    Unexpected(String),
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
}

impl ApiError {
    /// Throttling or Meta's own trouble: worth trying again later.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Network(_) | ApiError::Unexpected(_) => true,
            ApiError::TooLarge(_) => false,
            ApiError::Http { status, error, .. } => {
                let code = error.as_ref().map(|e| e.code).unwrap_or(0);
                *status == 429 || *status >= 500 || is_throttling(code) || is_meta_trouble(code)
            }
        }
    }
}

/// Throttling: Graph's own codes (the kit's) and WhatsApp's cloud, spam and per-recipient
/// pair rate limits.
pub fn is_throttling(code: i64) -> bool {
    switchboard_kit::meta::is_throttling(code) || matches!(code, 130429 | 131056 | 131048 | 133016)
}

/// Meta's trouble: Graph's own transient codes (the kit's) and WhatsApp's "something went
/// wrong" (131000) and "service unavailable" (131016).
fn is_meta_trouble(code: i64) -> bool {
    switchboard_kit::meta::is_transient(code) || matches!(code, 131000 | 131016)
}

/// What a failed send means for an outbound item.
pub fn classify(error: ApiError) -> SendError {
    let transient = error.is_transient();
    match error {
        ApiError::Network(e) => SendError::Retryable {
            reason: format!("cannot reach WhatsApp: {e}"),
            retry_after: None,
        },
        ApiError::Unexpected(e) => SendError::Retryable {
            reason: format!("unexpected answer from WhatsApp: {e}"),
            retry_after: None,
        },
        ApiError::TooLarge(max) => SendError::Permanent {
            reason: format!("the file is larger than WhatsApp accepts ({max} bytes)"),
        },
        ApiError::Http {
            status,
            retry_after,
            error,
        } => {
            let graph = error.unwrap_or_default();
            let text = if graph.message.is_empty() {
                format!("HTTP {status}")
            } else {
                graph.text()
            };
            if transient {
                let what = if status == 429 || is_throttling(graph.code) {
                    "WhatsApp asks to slow down"
                } else {
                    "WhatsApp is having trouble"
                };
                return SendError::Retryable {
                    reason: format!("{what}: {text}"),
                    retry_after,
                };
            }
            let reason = match graph.code {
                131047 => format!(
                    "more than 24 hours have passed since the customer last wrote, so WhatsApp only accepts an approved template now: send one with `!sb template <name> [lang=<code>] [param…]` (WhatsApp: {text})"
                ),
                131026 => format!("WhatsApp could not deliver to this number (not on WhatsApp, an old app, or it has not accepted the terms): {text}"),
                131030 => format!("this number is not in the test phone number's list of allowed recipients (add it in WhatsApp Manager): {text}"),
                131031 => format!("the WhatsApp business account is locked: {text}"),
                131050 => format!("the customer stopped marketing messages from this business: {text}"),
                190 => format!("WhatsApp refused the access token (expired or revoked; check channels.whatsapp.access_token): {text}"),
                10 | 200..=299 => format!("the access token lacks permission for this phone number (check channels.whatsapp): {text}"),
                132000..=132999 => format!("WhatsApp refused the template: {text}"),
                _ => format!("WhatsApp refused the message: {text}"),
            };
            SendError::Permanent { reason }
        }
    }
}

/// What `GET /{media-id}` says of a customer's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaInfo {
    pub url: String,
    pub mime: Option<String>,
    pub size: Option<u64>,
}

/// A Graph API client for one business phone number.
#[derive(Clone)]
pub struct Graph {
    http: reqwest::Client,
    base: String,
    token: String,
    pub phone_number_id: String,
}

use switchboard_kit::http::retry_after;

impl Graph {
    pub fn new(config: &WhatsAppConfig) -> Result<Graph, String> {
        let http = switchboard_kit::http::client(REQUEST_TIMEOUT)?;
        Ok(Graph {
            http,
            base: config.versioned_base(),
            token: config.access_token.clone(),
            phone_number_id: config.phone_number_id.clone(),
        })
    }

    /// Read a JSON answer, or turn an error status into [`ApiError::Http`].
    async fn answer(
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Value, ApiError> {
        let response = response.map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let after = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        if !(200..300).contains(&status) {
            return Err(ApiError::Http {
                status,
                retry_after: after,
                error: GraphError::from_body(&body),
            });
        }
        serde_json::from_slice(&body).map_err(|e| ApiError::Unexpected(format!("not JSON ({e})")))
    }

    /// `POST /{phone-number-id}/messages`; returns the whole answer.
    pub async fn post_messages(&self, body: &Value) -> Result<Value, ApiError> {
        let url = format!("{}/{}/messages", self.base, self.phone_number_id);
        Self::answer(
            self.http
                .post(url)
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await,
        )
        .await
    }

    /// Send a message; returns its wamid.
    pub async fn send(&self, body: &Value) -> Result<String, ApiError> {
        let answer = self.post_messages(body).await?;
        answer
            .pointer("/messages/0/id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Unexpected("no messages[0].id in the answer".into()))
    }

    /// Upload a file; returns the media id to send it with.
    pub async fn upload(&self, bytes: Bytes, mime: &str, name: &str) -> Result<String, ApiError> {
        let url = format!("{}/{}/media", self.base, self.phone_number_id);
        if part_is_placeholder(mime) {
            return Err(ApiError::Unexpected(format!("{mime:?} is not a mime type")));
        }
        let part = reqwest::multipart::Part::stream(reqwest::Body::from(bytes))
            .file_name(name.to_owned())
            .mime_str(mime)
            .map_err(|e| ApiError::Unexpected(format!("mime type: {e}")))?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime.to_owned())
            .part("file", part);
        let answer = Self::answer(
            self.http
                .post(url)
                .bearer_auth(&self.token)
                .multipart(form)
                .send()
                .await,
        )
        .await?;
        answer
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Unexpected("no id in the upload answer".into()))
    }

    /// `GET /{phone-number-id}?fields=display_phone_number,verified_name`: the business phone
    /// number this client sends from (read-only; `switchboard doctor`).
    pub async fn phone_number(&self) -> Result<Value, ApiError> {
        let url = format!("{}/{}", self.base, self.phone_number_id);
        Self::answer(
            self.http
                .get(url)
                .query(&[("fields", "display_phone_number,verified_name")])
                .bearer_auth(&self.token)
                .send()
                .await,
        )
        .await
    }

    /// `GET /{media-id}`.
    pub async fn media_info(&self, media_id: &str) -> Result<MediaInfo, ApiError> {
        let url = format!("{}/{}", self.base, media_id);
        let query = [("phone_number_id", self.phone_number_id.as_str())];
        let v = Self::answer(
            self.http
                .get(url)
                .query(&query)
                .bearer_auth(&self.token)
                .send()
                .await,
        )
        .await?;
        let url = v
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::Unexpected("no url for the media".into()))?;
        Ok(MediaInfo {
            url: url.to_owned(),
            mime: v
                .get("mime_type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            size: v.get("file_size").and_then(|s| {
                s.as_u64()
                    .or_else(|| s.as_str().and_then(|s| s.parse().ok()))
            }),
        })
    }

    /// Fetch a media URL with the Bearer token, refusing more than `max` bytes.
    pub async fn download(&self, url: &str, max: u64) -> Result<Bytes, ApiError> {
        let mut response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let after = retry_after(response.headers());
            let body = response.bytes().await.unwrap_or_default();
            return Err(ApiError::Http {
                status,
                retry_after: after,
                error: GraphError::from_body(&body),
            });
        }
        if response.content_length().is_some_and(|l| l > max) {
            return Err(ApiError::TooLarge(max));
        }
        let mut data = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?
        {
            data.extend_from_slice(&chunk);
            if data.len() as u64 > max {
                return Err(ApiError::TooLarge(max));
            }
        }
        Ok(Bytes::from(data))
    }
}

/// Whether `mime` is unusable as a part's content type.
fn part_is_placeholder(mime: &str) -> bool {
    mime.parse::<reqwest::header::HeaderValue>().is_err() || !mime.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(name: &str) -> Option<GraphError> {
        let dir = crate::fixtures_dir("whatsapp")?;
        GraphError::from_body(&std::fs::read(dir.join(name)).ok()?)
    }

    fn http(status: u16, error: Option<GraphError>) -> ApiError {
        ApiError::Http {
            status,
            retry_after: None,
            error,
        }
    }

    #[test]
    fn fixture_envelopes_classify() {
        let Some(rate) = envelope("error_130429_rate_limit.json") else {
            return;
        };
        assert_eq!(rate.code, 130429);
        assert!(matches!(
            classify(http(400, Some(rate))),
            SendError::Retryable { .. }
        ));
        let Some(pair) = envelope("error_131056_pair_rate_limit.json") else {
            return;
        };
        assert!(matches!(
            classify(http(400, Some(pair))),
            SendError::Retryable { .. }
        ));
        let Some(token) = envelope("error_190_token_expired.json") else {
            return;
        };
        match classify(http(401, Some(token))) {
            SendError::Permanent { reason } => assert!(reason.contains("access token"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let Some(allowed) = envelope("error_131030_not_in_allowed_list.json") else {
            return;
        };
        match classify(http(400, Some(allowed))) {
            SendError::Permanent { reason } => assert!(
                reason.contains("Recipient phone number not in allowed list"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn window_429_and_server_errors() {
        let window = GraphError { code: 131047, message: "(#131047) Re-engagement message".into(), details: Some("Message failed to send because more than 24 hours have passed since the customer last replied to this number.".into()), subcode: None };
        match classify(http(400, Some(window))) {
            SendError::Permanent { reason } => assert!(
                reason.contains("!sb template") && reason.contains("Re-engagement message"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        let limited = ApiError::Http {
            status: 429,
            retry_after: Some(Duration::from_secs(3)),
            error: None,
        };
        assert_eq!(
            classify(limited),
            SendError::Retryable {
                reason: "WhatsApp asks to slow down: HTTP 429".into(),
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(matches!(
            classify(http(503, None)),
            SendError::Retryable { .. }
        ));
        assert!(matches!(
            classify(http(
                400,
                Some(GraphError {
                    code: 100,
                    ..GraphError::default()
                })
            )),
            SendError::Permanent { .. }
        ));
    }
}
