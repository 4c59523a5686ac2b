//! Discord's HTTP API: the few endpoints the bridge uses, and what their errors mean.
//!
//! Every request goes to `<api_url>/api/v10/…` with `Authorization: Bot <token>`; the base URL is
//! the only thing that differs between production and the test suite's fake. Files are fetched
//! from the URL Discord gives (attachments) or from the configured CDN (avatars).
//!
//! Errors come as Discord's envelope (`{"code":…,"message":…}`); [`classify`] sorts them into
//! what the core's outbox understands. A 429 is *retryable* after Discord's own delay (the
//! body's `retry_after`, else the `Retry-After` or `X-RateLimit-Reset-After` header, capped at
//! the kit's [`MAX_RETRY_AFTER`]), whether the limit is per route or global. The bridge does not sleep through limits itself: the outbox
//! waits, so one limited conversation does not hold up the others.

use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use switchboard_channel::SendError;
use switchboard_kit::http::{read_limited, DownloadError, MAX_RETRY_AFTER};

use crate::config::DiscordConfig;
use crate::model::{ApiError, GatewayBot, Message};

/// Longest any single request may take (uploads of 10 MiB included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// Discord answered with an error status.
    #[error("Discord answered {status}: {} (code {})", .error.message, .error.code)]
    Api {
        status: StatusCode,
        error: ApiError,
        retry_after: Option<Duration>,
    },
    /// Discord could not be reached or the answer was cut.
    #[error("cannot reach Discord: {0}")]
    Network(String),
    /// The answer was not what the API documents.
    #[error("unexpected answer from Discord: {0}")]
    Decode(String),
    /// A download was larger than allowed.
    #[error("file too large ({0} bytes at least)")]
    TooLarge(u64),
}

/// A file to upload with a message.
pub struct Upload {
    pub name: String,
    pub mime: String,
    pub bytes: bytes::Bytes,
}

/// The HTTP API client.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    base: String,
    auth: String,
}

fn header_secs(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok()
}

/// Discord's delay for a 429: the body's `retry_after` (seconds, fractional), else the standard
/// `Retry-After` (the kit reads it), else `X-RateLimit-Reset-After`; at most [`MAX_RETRY_AFTER`].
fn retry_after(headers: &HeaderMap, error: &ApiError) -> Option<Duration> {
    let seconds = |secs: f64| {
        (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())))
    };
    error
        .retry_after
        .and_then(seconds)
        .or_else(|| switchboard_kit::http::retry_after(headers))
        .or_else(|| header_secs(headers, "x-ratelimit-reset-after").and_then(seconds))
}

impl Rest {
    pub fn new(config: &DiscordConfig) -> Result<Rest, String> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!(
                "DiscordBot (https://github.com/switchboard, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Rest {
            http,
            base: config.api_base(),
            auth: format!("Bot {}", config.token.trim()),
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header(AUTHORIZATION, &self.auth)
    }

    /// Send and sort the answer: 2xx → its body, anything else → [`RestError::Api`].
    async fn execute(&self, request: reqwest::RequestBuilder) -> Result<bytes::Bytes, RestError> {
        let response = request
            .send()
            .await
            .map_err(|e| RestError::Network(e.to_string()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| RestError::Network(e.to_string()))?;
        if status.is_success() {
            return Ok(body);
        }
        let mut error: ApiError = serde_json::from_slice(&body).unwrap_or_default();
        if error.message.is_empty() {
            error.message = status.canonical_reason().unwrap_or("error").to_owned();
        }
        if headers
            .get("x-ratelimit-global")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
        {
            error.global = true;
        }
        let retry_after = (status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| retry_after(&headers, &error))
            .flatten();
        Err(RestError::Api {
            status,
            error,
            retry_after,
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, RestError> {
        let body = self.execute(request).await?;
        serde_json::from_slice(&body).map_err(|e| RestError::Decode(e.to_string()))
    }

    /// `GET /users/@me`: the user the token belongs to (`switchboard doctor`).
    pub async fn me(&self) -> Result<crate::model::User, RestError> {
        self.json(self.request(Method::GET, "/users/@me")).await
    }

    /// `GET /gateway/bot`: where to connect.
    pub async fn gateway_url(&self) -> Result<String, RestError> {
        let answer: GatewayBot = self.json(self.request(Method::GET, "/gateway/bot")).await?;
        Ok(answer.url)
    }

    /// `POST /channels/{id}/messages`: JSON, or multipart (`payload_json` + `files[n]`) with files.
    pub async fn create_message(
        &self,
        channel: &str,
        payload: &Value,
        files: &[Upload],
    ) -> Result<Message, RestError> {
        let path = format!("/channels/{channel}/messages");
        let request = self.request(Method::POST, &path);
        let request = if files.is_empty() {
            request.json(payload)
        } else {
            let mut form = reqwest::multipart::Form::new().part(
                "payload_json",
                reqwest::multipart::Part::text(payload.to_string())
                    .mime_str("application/json")
                    .map_err(|e| RestError::Decode(e.to_string()))?,
            );
            for (n, file) in files.iter().enumerate() {
                let part = reqwest::multipart::Part::bytes(file.bytes.to_vec())
                    .file_name(file.name.clone())
                    .mime_str(&file.mime)
                    .or_else(|_| {
                        reqwest::multipart::Part::bytes(file.bytes.to_vec())
                            .file_name(file.name.clone())
                            .mime_str("application/octet-stream")
                    })
                    .map_err(|e| RestError::Decode(e.to_string()))?;
                form = form.part(format!("files[{n}]"), part);
            }
            request.multipart(form)
        };
        self.json(request).await
    }

    /// `PATCH /channels/{id}/messages/{id}`.
    pub async fn edit_message(
        &self,
        channel: &str,
        message: &str,
        payload: &Value,
    ) -> Result<Message, RestError> {
        self.json(
            self.request(
                Method::PATCH,
                &format!("/channels/{channel}/messages/{message}"),
            )
            .json(payload),
        )
        .await
    }

    /// `GET /channels/{id}/messages?after={id}&limit={n}`: messages after one, as raw JSON (the
    /// same shape as a `MESSAGE_CREATE` dispatch, less the guild id).
    pub async fn messages_after(
        &self,
        channel: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Value>, RestError> {
        let request = self
            .request(Method::GET, &format!("/channels/{channel}/messages"))
            .query(&[("after", after.to_owned()), ("limit", limit.to_string())]);
        self.json(request).await
    }

    /// `DELETE /channels/{id}/messages/{id}`.
    pub async fn delete_message(&self, channel: &str, message: &str) -> Result<(), RestError> {
        self.execute(self.request(
            Method::DELETE,
            &format!("/channels/{channel}/messages/{message}"),
        ))
        .await
        .map(drop)
    }

    /// `PUT /channels/{id}/messages/{id}/reactions/{emoji}/@me` (the emoji URL-encoded), or
    /// `DELETE` on the same path: the bot's own reaction, added or taken back. Both answer 204.
    pub async fn own_reaction(
        &self,
        channel: &str,
        message: &str,
        emoji: &str,
        add: bool,
    ) -> Result<(), RestError> {
        let emoji: String = url::form_urlencoded::byte_serialize(emoji.as_bytes()).collect();
        let path = format!("/channels/{channel}/messages/{message}/reactions/{emoji}/@me");
        let method = if add { Method::PUT } else { Method::DELETE };
        let request = self
            .request(method, &path)
            .header(CONTENT_TYPE, "application/json");
        self.execute(request.body("")).await.map(drop)
    }

    /// `GET /channels/{id}`: the channel object (a guild channel's `name`, a DM's
    /// `recipients`), as raw JSON.
    pub async fn channel(&self, channel: &str) -> Result<Value, RestError> {
        self.json(self.request(Method::GET, &format!("/channels/{channel}")))
            .await
    }

    /// `POST /interactions/{id}/{token}/callback`: the first answer to an interaction (204).
    /// The interaction's token in the path is what authenticates it; the bot's token is not
    /// sent. A token that is not URL-safe (Discord's are base64url) is refused here.
    pub async fn interaction_callback(
        &self,
        id: &str,
        token: &str,
        body: &Value,
    ) -> Result<(), RestError> {
        let url_safe = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if !url_safe(id) || !url_safe(token) {
            return Err(RestError::Decode(
                "an interaction id or token that is not URL-safe".into(),
            ));
        }
        let request = self
            .http
            .post(format!("{}/interactions/{id}/{token}/callback", self.base))
            .json(body);
        self.execute(request).await.map(drop)
    }

    /// `POST /channels/{id}/typing`: shows the bot typing for ~10 s.
    pub async fn trigger_typing(&self, channel: &str) -> Result<(), RestError> {
        let request = self
            .request(Method::POST, &format!("/channels/{channel}/typing"))
            .header(CONTENT_TYPE, "application/json");
        self.execute(request.body("")).await.map(drop)
    }

    /// Download a file (an attachment's `url`, an avatar on the CDN), refusing more than `max`
    /// bytes. No token: CDN URLs are signed by Discord themselves and must not see it.
    pub async fn download(
        &self,
        url: &str,
        max: u64,
    ) -> Result<(bytes::Bytes, Option<String>), RestError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| RestError::Network(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let error = ApiError {
                code: 0,
                message: format!("download of an attachment: {status}"),
                ..ApiError::default()
            };
            return Err(RestError::Api {
                status,
                error,
                retry_after: None,
            });
        }
        if let Some(len) = response.content_length().filter(|len| *len > max) {
            return Err(RestError::TooLarge(len));
        }
        let mime = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let bytes = read_limited(response, max).await.map_err(|e| match e {
            // Counted while reading: more than `max`, how much more is not known.
            DownloadError::TooLarge => RestError::TooLarge(max.saturating_add(1)),
            DownloadError::Refused(e) | DownloadError::Transient(e) => RestError::Network(e),
        })?;
        Ok((bytes.into(), mime))
    }
}

/// JSON error codes (<https://discord.com/developers/docs/topics/opcodes-and-status-codes>).
pub mod codes {
    pub const UNKNOWN_CHANNEL: i64 = 10003;
    pub const UNKNOWN_MESSAGE: i64 = 10008;
    pub const UNKNOWN_USER: i64 = 10013;
    pub const MISSING_ACCESS: i64 = 50001;
    pub const CANNOT_SEND_EMPTY: i64 = 50006;
    pub const CANNOT_SEND_TO_USER: i64 = 50007;
    pub const CANNOT_EDIT_OTHERS: i64 = 50005;
    pub const MISSING_PERMISSIONS: i64 = 50013;
    pub const INVALID_TOKEN: i64 = 50014;
    pub const INVALID_FORM_BODY: i64 = 50035;
    pub const FILE_TOO_LARGE: i64 = 40005;
    pub const UNKNOWN_INTERACTION: i64 = 10062;
    pub const ALREADY_ACKNOWLEDGED: i64 = 40060;
}

/// What a failed request means for an outbound item. Permanent reasons quote Discord's own
/// message so operators can look it up.
pub fn classify(error: RestError) -> SendError {
    let retry = |reason: String, retry_after: Option<Duration>| SendError::Retryable {
        reason,
        retry_after,
    };
    let permanent = |what: &str, e: &ApiError| SendError::Permanent {
        reason: format!("{what} (Discord: \"{}\", code {})", e.message, e.code),
    };
    match error {
        RestError::Network(e) => retry(format!("cannot reach Discord: {e}"), None),
        RestError::Decode(e) => retry(format!("Discord answered something unexpected: {e}"), None),
        RestError::TooLarge(n) => SendError::Permanent {
            reason: format!("the file is too large ({n} bytes)"),
        },
        RestError::Api {
            status,
            error,
            retry_after,
        } => {
            if status == StatusCode::TOO_MANY_REQUESTS {
                let scope = if error.global {
                    "globally"
                } else {
                    "on this channel"
                };
                let secs = retry_after
                    .map(|d| format!(" (retry after {:.1} s)", d.as_secs_f64()))
                    .unwrap_or_default();
                return retry(
                    format!("Discord rate-limits the bot {scope}{secs}"),
                    retry_after,
                );
            }
            if status.is_server_error() {
                return retry(
                    format!("Discord is having trouble ({status}): {}", error.message),
                    None,
                );
            }
            match error.code {
                codes::CANNOT_SEND_TO_USER => permanent(
                    "Discord does not let the bot message this customer: they closed their direct messages, left every server shared with the bot, or blocked it",
                    &error,
                ),
                codes::UNKNOWN_CHANNEL => permanent("the direct-message channel no longer exists on Discord", &error),
                codes::UNKNOWN_MESSAGE => permanent("the message no longer exists on Discord", &error),
                codes::UNKNOWN_USER => permanent("the customer's Discord account no longer exists", &error),
                codes::MISSING_ACCESS | codes::MISSING_PERMISSIONS => {
                    permanent("the bot has no access to this channel on Discord", &error)
                }
                codes::CANNOT_EDIT_OTHERS => permanent("Discord lets the bot edit only its own messages", &error),
                codes::CANNOT_SEND_EMPTY => permanent("Discord refuses an empty message", &error),
                codes::FILE_TOO_LARGE => permanent("the file is too large for Discord", &error),
                codes::INVALID_TOKEN => permanent("Discord refused the bot token (check channels.discord.token)", &error),
                _ if status == StatusCode::UNAUTHORIZED => {
                    permanent("Discord refused the bot token (check channels.discord.token)", &error)
                }
                _ if status == StatusCode::FORBIDDEN => permanent("Discord does not allow the bot to do this", &error),
                _ => permanent("Discord refused the message", &error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn api(status: u16, body: &str, headers: &[(&'static str, &str)]) -> RestError {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        let error: ApiError = serde_json::from_str(body).unwrap();
        let status = StatusCode::from_u16(status).unwrap();
        let retry_after = (status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| retry_after(&map, &error))
            .flatten();
        RestError::Api {
            status,
            error,
            retry_after,
        }
    }

    fn fixture(name: &str) -> Option<String> {
        switchboard_kit::test_host::fixture_text("discord", name)
    }

    #[test]
    fn rate_limits_are_retryable_with_discords_delay() {
        let body = fixture("error_429_user_rate_limit.json").unwrap_or_else(|| {
            r#"{"message":"You are being rate limited.","retry_after":64.57,"global":false}"#.into()
        });
        match classify(api(429, &body, &[])) {
            SendError::Retryable {
                retry_after,
                reason,
            } => {
                assert_eq!(retry_after, Some(Duration::from_secs_f64(64.57)));
                assert!(reason.contains("on this channel"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Only headers (a Cloudflare-level limit has no JSON body).
        match classify(api(
            429,
            "{}",
            &[("retry-after", "3"), ("x-ratelimit-global", "true")],
        )) {
            SendError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)))
            }
            other => panic!("{other:?}"),
        }
        // A huge delay is capped at the kit's hour; `Retry-After` may be an HTTP date.
        match classify(api(429, r#"{"retry_after": 999999.5}"#, &[])) {
            SendError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(switchboard_kit::http::MAX_RETRY_AFTER))
            }
            other => panic!("{other:?}"),
        }
        match classify(api(
            429,
            "{}",
            &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")],
        )) {
            SendError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::ZERO))
            }
            other => panic!("{other:?}"),
        }
        if let Some(body) = fixture("error_429_global_rate_limit.json") {
            let SendError::Retryable { reason, .. } = classify(api(429, &body, &[])) else {
                panic!()
            };
            assert!(reason.contains("globally"), "{reason}");
        }
    }

    #[test]
    fn refusals_are_permanent_and_quote_discord() {
        let body = fixture("error_50007_cannot_send_to_user.json").unwrap_or_else(|| {
            r#"{"message":"Cannot send messages to this user","code":50007}"#.into()
        });
        let SendError::Permanent { reason } = classify(api(403, &body, &[])) else {
            panic!()
        };
        assert!(
            reason.contains("closed their direct messages")
                && reason.contains("Cannot send messages to this user"),
            "{reason}"
        );
        let SendError::Permanent { reason } = classify(api(
            404,
            r#"{"message":"Unknown Channel","code":10003}"#,
            &[],
        )) else {
            panic!()
        };
        assert!(reason.contains("no longer exists"), "{reason}");
        let SendError::Permanent { reason } =
            classify(api(401, r#"{"message":"401: Unauthorized","code":0}"#, &[]))
        else {
            panic!()
        };
        assert!(reason.contains("token"), "{reason}");
        assert!(matches!(
            classify(api(502, "{}", &[])),
            SendError::Retryable {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            classify(RestError::Network("reset".into())),
            SendError::Retryable { .. }
        ));
    }
}
