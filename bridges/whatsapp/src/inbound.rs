//! Parsed webhook events → the core's [`Inbound`], with customers' files fetched.
//!
//! A file is two requests: `GET /{media-id}` for its short-lived URL, then that URL with the
//! same Bearer token; the bytes go to [`Host::put_media`]. A file WhatsApp will never hand over
//! (too large for `max_download_size`, gone, refused) becomes a line of text saying so; a
//! transient failure is an error, so the webhook answers 5xx and Meta delivers again (the
//! kit's `media::fetch_all`, as every channel).

use std::sync::Arc;

use bytes::Bytes;
use switchboard_channel::{Content, Host, HostError, Inbound, InboundEvent};
use switchboard_kit::http::DownloadError;
use switchboard_kit::media::{self, FileInfo, MediaError};

use crate::api::{ApiError, Graph};
use crate::payload::{Parsed, ParsedKind, RemoteMedia};

/// Why an event could not be stored yet (the delivery must not be acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum RealizeError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Host(#[from] HostError),
}

pub(crate) use switchboard_kit::now_ms;

/// A Graph failure in the kit's download classes.
fn download_error(e: ApiError) -> DownloadError {
    match e {
        ApiError::TooLarge(_) => DownloadError::TooLarge,
        e if e.is_transient() => DownloadError::Transient(e.to_string()),
        e => DownloadError::Refused(e.to_string()),
    }
}

/// One file: its metadata (with a short-lived URL, and the size WhatsApp knows), then its bytes.
async fn download(
    graph: &Graph,
    media: RemoteMedia,
    max: u64,
) -> Result<(Bytes, Option<String>), DownloadError> {
    let info = graph
        .media_info(&media.media_id)
        .await
        .map_err(download_error)?;
    if info.size.is_some_and(|s| s > max) {
        return Err(DownloadError::TooLarge);
    }
    let bytes = graph
        .download(&info.url, max)
        .await
        .map_err(download_error)?;
    Ok((bytes, info.mime))
}

/// Build the core's event for one parsed webhook event.
pub async fn realize(
    parsed: Parsed,
    graph: &Graph,
    host: &Arc<dyn Host>,
    max_download: u64,
) -> Result<Inbound, RealizeError> {
    let event = match parsed.kind {
        ParsedKind::Message {
            remote_id,
            text,
            media,
            reply_to,
        } => {
            // The message's own mime type names the kind (voice notes are audio/ogg;
            // codecs=opus); the media endpoint's is the fallback.
            let fetched = media::fetch_all(
                host.as_ref(),
                "whatsapp",
                media.into_iter().collect(),
                max_download,
                |m: &RemoteMedia| FileInfo {
                    name: m.name.clone(),
                    mime: m.mime.clone(),
                    size: None,
                },
                |m, max| download(graph, m, max),
            )
            .await?;
            let text = fetched.text_with(&text);
            let attachments = fetched.attachments;
            InboundEvent::Message {
                remote_id,
                content: Content {
                    text,
                    html: None,
                    attachments,
                },
                reply_to,
            }
        }
        ParsedKind::Notice { remote_id, text } => InboundEvent::Notice {
            remote_id,
            content: Content {
                text,
                ..Content::default()
            },
        },
        ParsedKind::Reaction { remote_id, key } => InboundEvent::Reaction { remote_id, key },
        ParsedKind::Choice { remote_id, payload } => InboundEvent::Choice { remote_id, payload },
        ParsedKind::Delivered { remote_id } => InboundEvent::Delivered { remote_id },
        ParsedKind::Read { remote_id } => InboundEvent::Read { remote_id },
        ParsedKind::Failed { remote_id, reason } => InboundEvent::Failed { remote_id, reason },
    };
    Ok(Inbound {
        conversation: parsed.conversation,
        sender: parsed.sender,
        timestamp_ms: parsed.timestamp_ms.unwrap_or_else(now_ms),
        dedup_key: parsed.dedup_key,
        event,
        // A business number is the company's, never one operator's.
        addressed_to: None,
        group: None,
    })
}
