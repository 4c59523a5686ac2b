//! HTTP as every channel speaks it: the client, `Retry-After`, size-limited downloads of
//! customers' files, a call to a JSON API and what can go wrong on the way ([`Transport`]),
//! a bot API at a base URL ([`Endpoint`]),
//! and how a network's HTTP status becomes a [`SendError`].

use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use switchboard_channel::SendError;

/// The longest a network's `Retry-After` is honoured for; a longer hint is capped (the outbox
/// tries again then, and the network says so again if it must).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The HTTP client a channel talks to its network with: the whole request within `timeout`
/// (at least a second), the connection within 15 s. The error is worded for start-up and
/// `doctor`.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    let timeout = timeout.max(Duration::from_secs(1));
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(15).min(timeout))
        .user_agent(concat!("Switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// [`client`] for a channel's `request_timeout_secs` setting.
pub fn client_secs(timeout_secs: u32) -> Result<reqwest::Client, String> {
    client(Duration::from_secs(u64::from(timeout_secs)))
}

/// The wait a `Retry-After` header asks for: seconds, or an HTTP date (RFC 9110 §10.2.3),
/// capped at [`MAX_RETRY_AFTER`]. A date in the past is no wait.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let when = httpdate::parse_http_date(value).ok()?;
            when.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Why a customer's file could not be fetched.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DownloadError {
    #[error("the file is larger than the bridge fetches")]
    TooLarge,
    /// Will not work later either (not a URL, 404, 403).
    #[error("{0}")]
    Refused(String),
    /// Worth trying again: the source is not acknowledged and delivers again.
    #[error("{0}")]
    Transient(String),
}

/// Fetch `url` (http or https only) with `client`, refusing more than `max` bytes — by the
/// announced length before reading, and by counting while reading (a length can lie).
pub async fn download(
    client: &reqwest::Client,
    url: &str,
    max: u64,
) -> Result<Vec<u8>, DownloadError> {
    let parsed = url::Url::parse(url).map_err(|_| DownloadError::Refused("not a URL".into()))?;
    if parsed.scheme() != "https" && parsed.scheme() != "http" {
        return Err(DownloadError::Refused("not an http(s) URL".into()));
    }
    let answer = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| DownloadError::Transient(e.without_url().to_string()))?;
    let status = answer.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(DownloadError::Transient(format!("HTTP {status}")));
    }
    if !status.is_success() {
        return Err(DownloadError::Refused(format!("HTTP {status}")));
    }
    read_limited(answer, max).await
}

/// The body of `answer`, refusing more than `max` bytes.
pub async fn read_limited(answer: reqwest::Response, max: u64) -> Result<Vec<u8>, DownloadError> {
    if answer.content_length().is_some_and(|n| n > max) {
        return Err(DownloadError::TooLarge);
    }
    let mut bytes = Vec::new();
    let mut stream = answer.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| DownloadError::Transient(e.without_url().to_string()))?;
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(DownloadError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// What an HTTP status from a network means for an outbound item: 408, 425, 429 and 5xx are
/// worth trying again (after `retry_after` when the network gave one); anything else is
/// permanent. `reason` is what operators read.
pub fn status_error(status: u16, reason: String, retry_after: Option<Duration>) -> SendError {
    if matches!(status, 408 | 425 | 429) || (500..600).contains(&status) {
        SendError::Retryable {
            reason,
            retry_after,
        }
    } else {
        SendError::Permanent { reason }
    }
}

/// Why a call to a network's JSON API gave no answer to read. What the network says inside a
/// readable answer (its own error codes) is the channel's to interpret; this is the rest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Transport {
    /// An HTTP status other than 2xx.
    #[error("answered HTTP {status}")]
    Http {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused or reset, DNS, TLS, timeout.
    #[error("cannot be reached: {0}")]
    Network(String),
    /// An answer that is not the JSON the method returns.
    #[error("gave an unexpected answer: {0}")]
    Decode(String),
}

impl Transport {
    /// What this means for an outbound item sent to `network`: a status by [`status_error`];
    /// no answer, or one that cannot be read, is worth trying again.
    pub fn send_error(self, network: &str) -> SendError {
        match self {
            Transport::Http {
                status,
                retry_after,
            } => status_error(
                status,
                format!("{network} answered HTTP {status}"),
                retry_after,
            ),
            Transport::Network(e) => SendError::Retryable {
                reason: format!("cannot reach {network}: {e}"),
                retry_after: None,
            },
            Transport::Decode(e) => SendError::Retryable {
                reason: format!("unexpected answer from {network}: {e}"),
                retry_after: None,
            },
        }
    }
}

/// Send `request` and read its JSON answer. A status other than 2xx, no answer, or a body
/// that is not JSON is a [`Transport`] error; URLs (which may hold tokens) are kept out of
/// the messages.
pub async fn json_call(request: reqwest::RequestBuilder) -> Result<serde_json::Value, Transport> {
    let answer = request
        .send()
        .await
        .map_err(|e| Transport::Network(e.without_url().to_string()))?;
    let status = answer.status();
    if !status.is_success() {
        return Err(Transport::Http {
            status: status.as_u16(),
            retry_after: retry_after(answer.headers()),
        });
    }
    answer
        .json()
        .await
        .map_err(|e| Transport::Decode(e.without_url().to_string()))
}

/// A bot API whose methods are `POST <base>/<method>` with a JSON answer (VK's and Viber's):
/// the client built by [`client_secs`], the base URL without its trailing slash, and the
/// downloads of the files its events point at. The channel adds its credential and reads its
/// own envelope.
#[derive(Clone)]
pub struct Endpoint {
    http: reqwest::Client,
    base: String,
}

impl Endpoint {
    /// The API at `base_url`, every call answered within `timeout_secs`.
    pub fn new(base_url: &str, timeout_secs: u32) -> Result<Endpoint, String> {
        Ok(Endpoint {
            http: client_secs(timeout_secs)?,
            base: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// A call of `method`, for the channel to add its body and credential to.
    pub fn post(&self, method: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/{method}", self.base))
    }

    /// Download a file URL from a customer's message (or profile), refusing more than `max`
    /// bytes ([`download`]).
    pub async fn download(&self, url: &str, max: u64) -> Result<Vec<u8>, DownloadError> {
        download(&self.http, url, max).await
    }

    /// The HTTP client, for fetching customers' files and calling URLs the API hands out.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn transport_failures_become_send_errors_by_one_rule() {
        let http = |status| Transport::Http {
            status,
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            http(503).send_error("VK"),
            SendError::Retryable {
                reason: "VK answered HTTP 503".into(),
                retry_after: Some(Duration::from_secs(3)),
            }
        );
        assert!(matches!(
            http(408).send_error("VK"),
            SendError::Retryable { .. }
        ));
        assert_eq!(
            http(403).send_error("Viber"),
            SendError::Permanent {
                reason: "Viber answered HTTP 403".into()
            }
        );
        assert_eq!(
            Transport::Network("connection refused".into()).send_error("Viber"),
            SendError::Retryable {
                reason: "cannot reach Viber: connection refused".into(),
                retry_after: None,
            }
        );
        assert!(matches!(
            Transport::Decode("eof".into()).send_error("VK"),
            SendError::Retryable { reason, .. } if reason == "unexpected answer from VK: eof"
        ));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn statuses_are_classified() {
        for s in [408, 425, 429, 500, 502, 503] {
            assert!(
                matches!(
                    status_error(s, "x".into(), None),
                    SendError::Retryable { .. }
                ),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(
                matches!(
                    status_error(s, "x".into(), None),
                    SendError::Permanent { .. }
                ),
                "{s}"
            );
        }
    }
}
