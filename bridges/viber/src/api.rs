//! The Viber REST bot API client, and what its answers mean for the outbox.
//!
//! Every call is `POST <api_url>/<method>` with a JSON body and the bot's token in
//! `X-Viber-Auth-Token`. Viber answers HTTP 200 with `{"status": N, "status_message": "…", …}`:
//! status 0 is success, anything else a refusal. [`classify`] sorts those: too many requests
//! (12), no webhook yet (10), HTTP 429/5xx and network trouble are *retryable*; a customer who is
//! not subscribed (6) or not on Viber (5), a refused token (2) and the rest are *permanent*, with
//! Viber's `status_message` quoted for operators.

use std::time::Duration;

use serde_json::Value;
use switchboard_channel::SendError;
use switchboard_kit::http::{json_call, Endpoint, Transport};

use crate::config::ViberConfig;

pub const AUTH_HEADER: &str = "X-Viber-Auth-Token";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Viber's refusal: `status` other than 0.
    #[error("Viber status {status}: {message}")]
    Status { status: i64, message: String },
    /// No readable answer, or one that is not what the method returns.
    #[error("Viber {0}")]
    Transport(#[from] Transport),
}

/// A client for one bot.
#[derive(Clone)]
pub struct Api {
    endpoint: Endpoint,
    token: String,
}

impl Api {
    pub fn new(config: &ViberConfig) -> Result<Api, String> {
        Ok(Api {
            endpoint: Endpoint::new(&config.api_url, config.request_timeout_secs)?,
            token: config.auth_token.clone(),
        })
    }

    /// Call one method; returns the whole answer when `status` is 0.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, ApiError> {
        let request = self.endpoint.post(method).header(AUTH_HEADER, &self.token);
        status_of(json_call(request.json(body)).await?)
    }

    /// The API, for downloading customers' files with its client.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// `status` 0 → the answer; otherwise [`ApiError::Status`].
pub fn status_of(body: Value) -> Result<Value, ApiError> {
    match body.get("status").and_then(Value::as_i64) {
        Some(0) => Ok(body),
        Some(status) => {
            let message = body
                .get("status_message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_owned();
            Err(ApiError::Status { status, message })
        }
        None => Err(Transport::Decode(format!("no status in {body}")).into()),
    }
}

/// What a failed call means for an outbound item.
pub fn classify(error: ApiError) -> SendError {
    let retry = |reason: String, after: Option<Duration>| SendError::Retryable {
        reason,
        retry_after: after,
    };
    let permanent = |reason: String| SendError::Permanent { reason };
    match error {
        ApiError::Status { status, message } => match status {
            12 => retry(
                format!("Viber: too many requests ({message})"),
                Some(Duration::from_secs(1)),
            ),
            10 => retry(
                format!("Viber has no webhook for the bot yet ({message})"),
                Some(Duration::from_secs(5)),
            ),
            6 => permanent(format!(
                "the customer is not subscribed to the bot any more (Viber: {message})"
            )),
            5 => permanent(format!(
                "the customer is not registered on Viber (Viber: {message})"
            )),
            11 => permanent(format!(
                "the customer has no Viber device that can receive this (Viber: {message})"
            )),
            2 => permanent(format!(
                "Viber refused the bot's auth token (check channels.viber.auth_token): {message}"
            )),
            7..=9 => permanent(format!(
                "the bot's account is blocked, missing or suspended (Viber: {message})"
            )),
            1 => permanent(format!(
                "Viber could not use the file's URL (Viber: {message})"
            )),
            _ => permanent(format!(
                "Viber refused the message: {message} (status {status})"
            )),
        },
        ApiError::Transport(failure) => failure.send_error("Viber"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_classify() {
        let read = |name: &str| switchboard_kit::test_host::fixture_text("viber", name);
        if let Some(t) = read("send_message_response.json") {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(
                status_of(v).unwrap()["message_token"].as_u64(),
                Some(5741311803571721087)
            );
        }
        if let Some(t) = read("error_invalid_auth_token.json") {
            let e = status_of(serde_json::from_str(&t).unwrap()).unwrap_err();
            assert!(
                matches!(classify(e), SendError::Permanent { ref reason } if reason.contains("invalidAuthToken"))
            );
        }
        let e = status_of(json!({"status": 6, "status_message": "notSubscribed"})).unwrap_err();
        assert!(
            matches!(classify(e), SendError::Permanent { ref reason } if reason.contains("notSubscribed"))
        );
        let e = status_of(json!({"status": 12, "status_message": "tooManyRequests"})).unwrap_err();
        assert!(matches!(classify(e), SendError::Retryable { .. }));
        assert!(matches!(
            classify(ApiError::Transport(Transport::Http {
                status: 503,
                retry_after: None
            })),
            SendError::Retryable { .. }
        ));
        assert!(status_of(json!({})).is_err());
    }
}
