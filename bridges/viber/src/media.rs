//! Operators' files published for Viber to fetch: `GET /viber/media/<token>`.
//!
//! Viber's `send_message` takes a file only as a public URL. [`Publisher::publish`] writes a
//! record `media:<id>` (the core's media reference, type, name, expiry) into the channel's state
//! and returns `<public_url>/viber/media/<id>.<expires>.<mac>`; [`serve`] answers that URL with
//! the file, after checking the HMAC and the expiry (403 for a forged or altered token, 410 when
//! expired, 404 for an unknown record). There is no index: `/viber/media/` alone is 404.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use switchboard_channel::{Attachment, Host, HostError, MediaRef};

use crate::signing::{check_media_token, media_token, TokenError};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    media: MediaRef,
    mime: String,
    name: String,
    expires: u64,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Publishes files under signed links.
#[derive(Clone)]
pub struct Publisher {
    pub host: Arc<dyn Host>,
    pub secret: Vec<u8>,
    /// `<public_url>/viber/media`.
    pub base: String,
    pub ttl_secs: u64,
}

impl Publisher {
    /// Publish `attachment` as record `id`; returns its URL, ending in `.<extension>` when
    /// given (Viber wants a picture's URL to end in .jpeg/.png/.gif and a video's in .mp4).
    pub async fn publish(
        &self,
        id: &str,
        attachment: &Attachment,
        extension: Option<&str>,
    ) -> Result<String, HostError> {
        let expires = now_secs() + self.ttl_secs;
        let record = Record {
            media: attachment.media.clone(),
            mime: attachment.mime.clone(),
            name: attachment.name.clone(),
            expires,
        };
        let text = serde_json::to_string(&record).map_err(|e| HostError::Store(e.to_string()))?;
        self.host.state_put(&format!("media:{id}"), &text).await?;
        let suffix = extension.map(|e| format!(".{e}")).unwrap_or_default();
        Ok(format!(
            "{}/{}{suffix}",
            self.base,
            media_token(&self.secret, id, expires)
        ))
    }
}

/// `GET /media/{token}` (under `/viber`).
pub async fn serve(State(publisher): State<Publisher>, Path(token): Path<String>) -> Response {
    // `<id>.<expires>.<mac>` and, for pictures and videos, `.<extension>`: not part of the token.
    let token = match token.match_indices('.').nth(2) {
        Some((at, _)) => &token[..at],
        None => token.as_str(),
    };
    let id = match check_media_token(&publisher.secret, token, now_secs()) {
        Ok(id) => id.to_owned(),
        Err(TokenError::Expired) => return StatusCode::GONE.into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "viber: media link refused");
            return StatusCode::FORBIDDEN.into_response();
        }
    };
    let record: Record = match publisher.host.state_get(&format!("media:{id}")).await {
        Ok(Some(text)) => match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(_) => return StatusCode::NOT_FOUND.into_response(),
        },
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    if record.expires < now_secs() {
        return StatusCode::GONE.into_response();
    }
    match publisher.host.get_media(&record.media).await {
        Ok((bytes, stored_mime)) => {
            let mime = if record.mime.is_empty() {
                stored_mime
            } else {
                record.mime
            };
            let headers = [
                (header::CONTENT_TYPE, mime),
                (
                    header::CONTENT_DISPOSITION,
                    switchboard_kit::file_name::content_disposition(&record.name, true),
                ),
                (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            ];
            (StatusCode::OK, headers, bytes).into_response()
        }
        Err(HostError::NotFound) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
