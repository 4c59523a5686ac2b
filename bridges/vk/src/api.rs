//! The VK API client: method calls, uploads to the upload servers VK hands out, downloads of
//! attachment URLs, and what VK's errors mean for the outbox.
//!
//! Every method is `POST <api_url>/<method>` with form parameters, the community token as
//! `access_token` and the API version as `v`; the answer is `{"response": …}` or the error
//! envelope `{"error": {"error_code": N, "error_msg": "…"}}` (with HTTP 200). The base URL is
//! the only difference between production and the test suite's fake.
//!
//! [`classify`] sorts failures into what the core's outbox understands: too many requests (6),
//! flood control (9), VK's internal errors (10), 5xx and network trouble are *retryable*; a
//! customer who has not allowed the community to message them (901, 902), a refused token (5)
//! and any other refusal are *permanent*, with VK's own `error_msg` quoted for operators.

use std::time::Duration;

use serde_json::Value;
use switchboard_channel::SendError;
use switchboard_kit::http::{json_call, Endpoint, Transport};

use crate::config::VkConfig;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// VK's error envelope.
    #[error("VK error {code}: {message}")]
    Vk { code: i64, message: String },
    /// No readable answer (VK's front ends answer 5xx when in trouble), or one that is not
    /// what the method returns.
    #[error("VK {0}")]
    Transport(#[from] Transport),
}

/// A client for one community.
#[derive(Clone)]
pub struct Api {
    endpoint: Endpoint,
    token: String,
    version: String,
}

impl Api {
    pub fn new(config: &VkConfig) -> Result<Api, String> {
        Ok(Api {
            endpoint: Endpoint::new(&config.api_url, config.request_timeout_secs)?,
            token: config.access_token.clone(),
            version: config.api_version.clone(),
        })
    }

    /// Call one method; returns the `response` member.
    pub async fn call(&self, method: &str, params: &[(&str, String)]) -> Result<Value, ApiError> {
        let mut form: Vec<(&str, String)> = params.to_vec();
        form.push(("access_token", self.token.clone()));
        form.push(("v", self.version.clone()));
        envelope(json_call(self.endpoint.post(method).form(&form)).await?)
    }

    /// Upload one file to an upload server URL VK gave us, as the multipart field `field`.
    /// Upload servers answer plain JSON (`{"server":…,"photo":…,"hash":…}`, `{"file":…}`) or
    /// `{"error": "…"}`.
    pub async fn upload(
        &self,
        url: &str,
        field: &str,
        name: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> Result<Value, ApiError> {
        let part = match reqwest::multipart::Part::bytes(bytes.clone())
            .file_name(name.to_owned())
            .mime_str(mime)
        {
            Ok(part) => part,
            // A type reqwest cannot parse goes without one, as a browser would send it.
            Err(_) => reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        };
        let form = reqwest::multipart::Form::new().part(field.to_owned(), part);
        let body = json_call(self.endpoint.http().post(url).multipart(form)).await?;
        if let Some(error) = body.get("error") {
            let message = error
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| error.to_string());
            return Err(ApiError::Vk {
                code: 0,
                message: format!("upload refused: {message}"),
            });
        }
        Ok(body)
    }

    /// The API, for downloading customers' files with its client.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// Unwrap `{"response": …}` or turn `{"error": …}` into [`ApiError::Vk`].
pub fn envelope(body: Value) -> Result<Value, ApiError> {
    if let Some(error) = body.get("error") {
        let code = error.get("error_code").and_then(Value::as_i64).unwrap_or(0);
        let message = error
            .get("error_msg")
            .and_then(Value::as_str)
            .unwrap_or("unknown error")
            .to_owned();
        return Err(ApiError::Vk { code, message });
    }
    match body {
        Value::Object(mut fields) => fields
            .remove("response")
            .ok_or_else(|| Transport::Decode("no response member".into()).into()),
        _ => Err(Transport::Decode("not a JSON object".into()).into()),
    }
}

/// What an error code means for an outbound item, with VK's text quoted.
pub fn classify_vk(code: i64, message: &str) -> SendError {
    let retry = |reason: String, after: Option<Duration>| SendError::Retryable {
        reason,
        retry_after: after,
    };
    let permanent = |reason: String| SendError::Permanent { reason };
    match code {
        6 => retry(format!("VK: too many requests per second ({message})"), Some(Duration::from_secs(1))),
        9 => retry(format!("VK flood control: {message}"), Some(Duration::from_secs(3))),
        10 => retry(format!("VK internal error: {message}"), None),
        5 => permanent(format!("VK refused the community access token (check channels.vk.access_token): {message}")),
        901 => permanent(format!("the customer has not allowed the community to message them (VK: {message})")),
        902 => permanent(format!("the customer's privacy settings do not allow messages from the community (VK: {message})")),
        900 => permanent(format!("the customer has blocked the community (VK: {message})")),
        914 => permanent(format!("the message is too long for VK (VK: {message})")),
        _ => permanent(format!("VK refused the message: {message} (error {code})")),
    }
}

/// What a failed call means for an outbound item.
pub fn classify(error: ApiError) -> SendError {
    match error {
        ApiError::Vk { code, message } => classify_vk(code, &message),
        ApiError::Transport(failure) => failure.send_error("VK"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Option<Value> {
        let bytes = switchboard_kit::test_host::fixture("vk", name)?;
        Some(serde_json::from_slice(&bytes).expect("a JSON fixture"))
    }

    #[test]
    fn envelopes_unwrap() {
        assert_eq!(envelope(json!({"response": 6342})).unwrap(), json!(6342));
        assert!(matches!(
            envelope(json!({"error": {"error_code": 9, "error_msg": "Flood control"}})),
            Err(ApiError::Vk { code: 9, .. })
        ));
        assert!(envelope(json!([1])).is_err());
    }

    #[test]
    fn fixture_errors_classify() {
        let Some(flood) = fixture("error_9_flood_control.json") else {
            return;
        };
        match classify(envelope(flood).unwrap_err()) {
            SendError::Retryable {
                retry_after,
                reason,
            } => {
                assert!(retry_after.is_some());
                assert!(reason.contains("Flood control"));
            }
            other => panic!("{other:?}"),
        }
        if let Some(perm) = fixture("error_901_no_permission.json") {
            match classify(envelope(perm).unwrap_err()) {
                SendError::Permanent { reason } => {
                    assert!(reason.contains("Can't send messages for users without permission"))
                }
                other => panic!("{other:?}"),
            }
        }
        if let Some(auth) = fixture("error_5_invalid_token.json") {
            assert!(matches!(
                classify(envelope(auth).unwrap_err()),
                SendError::Permanent { .. }
            ));
        }
        assert!(matches!(
            classify_vk(6, "Too many requests per second"),
            SendError::Retryable { .. }
        ));
        assert!(matches!(
            classify_vk(10, "Internal server error"),
            SendError::Retryable { .. }
        ));
        assert!(matches!(
            classify(ApiError::Transport(Transport::Http {
                status: 502,
                retry_after: None
            })),
            SendError::Retryable { .. }
        ));
    }
}
