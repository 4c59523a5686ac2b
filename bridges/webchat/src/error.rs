//! Errors of the JSON API and how they look on the wire.
//!
//! Every failure a browser can see is an [`ApiError`]: a status code plus the body
//! `{"error": "<machine code>", "message": "<human text>"}`. The machine codes are part of the
//! documented API (`docs/webchat.md`); the messages are written to be shown to the visitor as
//! they are. Store failures become `503 unavailable`: nothing was acknowledged, so the client
//! retries (every write is idempotent).

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use switchboard_channel::HostError;

/// A failed API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, a missing field, an invalid client id).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no token, or a token that names no visitor.
    #[error("Missing or invalid visitor token; start a session first.")]
    Unauthorized,
    /// 403: the visitor may not touch this message (an agent's message).
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such message or file in this visitor's conversation.
    #[error("{0}")]
    NotFound(String),
    /// 409: the message was deleted.
    #[error("{0}")]
    Conflict(String),
    /// 413: text or file over the limit.
    #[error("{message}")]
    TooLarge { code: &'static str, message: String },
    /// 422: well-formed but unacceptable (an invalid e-mail address, an unknown reply target).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 428: a new session needs a proof of work ([`crate::challenge`]): fetch a challenge,
    /// solve it, ask again.
    #[error("{0}")]
    ProofRequired(String),
    /// 429: the visitor's rate limit is exhausted; retry after the given time.
    #[error("You are sending too fast; try again in {} s.", retry_secs(*.0).max(1))]
    RateLimited(Duration),
    /// 503: the bridge could not store the request; nothing was acknowledged.
    #[error("The chat is temporarily unavailable; please try again.")]
    Unavailable(#[source] HostError),
}

fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ProofRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The machine-readable code in the `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::TooLarge { code, .. }
            | ApiError::Unprocessable { code, .. } => code,
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "message_deleted",
            ApiError::ProofRequired(_) => "proof_required",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
        }
    }
}

impl From<HostError> for ApiError {
    fn from(error: HostError) -> Self {
        ApiError::Unavailable(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Unavailable(source) = &self {
            tracing::warn!(error = %source, "webchat: store unavailable, request not acknowledged");
        }
        let status = self.status();
        if status.is_client_error() && status != StatusCode::NOT_FOUND {
            // Input the bridge refuses (too large, not allowed, malformed, too fast) is logged
            // with the reason; the widget is told too, and nothing of it was stored.
            tracing::info!(status = status.as_u16(), code = self.code(), reason = %self, "webchat: request refused");
        }
        let body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited(wait) = &self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_secs(*wait).max(1)),
            );
        }
        if let ApiError::Unavailable(_) = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_secs(Duration::from_secs(2)), 2);
        let response = ApiError::RateLimited(Duration::from_millis(10)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
    }
}
