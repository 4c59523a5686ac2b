//! Parsed webhook events → the core's [`Inbound`], with customers' files fetched.
//!
//! A file is two requests: `GET /{media-id}` for its short-lived URL, then that URL with the
//! same Bearer token; the bytes go to [`Host::put_media`]. A file WhatsApp will never hand over
//! (too large for `max_download_size`, gone, refused) becomes a line of text saying so; a
//! transient failure is an error, so the webhook answers 5xx and Meta delivers again.

use std::sync::Arc;

use switchboard_channel::{Attachment, Content, Host, HostError, Inbound, InboundEvent};

use crate::api::{ApiError, Graph};
use crate::payload::{Parsed, ParsedKind, RemoteMedia};

/// Why an event could not be stored yet (the delivery must not be acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum RealizeError {
    #[error("fetching the customer's file: {0}")]
    Media(ApiError),
    #[error(transparent)]
    Host(#[from] HostError),
}

pub(crate) use switchboard_kit::now_ms;

fn human_size(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

/// Fetch one file into the media store; `Ok(Err(line))` when WhatsApp will not hand it over.
async fn fetch(
    graph: &Graph,
    host: &Arc<dyn Host>,
    media: &RemoteMedia,
    max: u64,
) -> Result<Result<Attachment, String>, RealizeError> {
    let refused = |why: String| Ok(Err(format!("[{}: {why}]", media.name)));
    let info = match graph.media_info(&media.media_id).await {
        Ok(i) => i,
        Err(e) if e.is_transient() => return Err(RealizeError::Media(e)),
        Err(e) => return refused(format!("WhatsApp did not hand over the file ({e})")),
    };
    if let Some(size) = info.size.filter(|s| *s > max) {
        return refused(format!(
            "file too large to fetch ({}, the limit is {})",
            human_size(size),
            human_size(max)
        ));
    }
    let bytes = match graph.download(&info.url, max).await {
        Ok(b) => b,
        Err(ApiError::TooLarge(_)) => {
            return refused(format!(
                "file too large to fetch (over {})",
                human_size(max)
            ))
        }
        Err(e) if e.is_transient() => return Err(RealizeError::Media(e)),
        Err(e) => return refused(format!("WhatsApp did not hand over the file ({e})")),
    };
    // The message's own mime type names the kind (voice notes are audio/ogg; codecs=opus);
    // the media endpoint's is the fallback.
    let mime = if media.mime.is_empty() {
        info.mime
            .unwrap_or_else(|| "application/octet-stream".into())
    } else {
        media.mime.clone()
    };
    let size = bytes.len() as u64;
    let stored = host.put_media(bytes, &mime, &media.name).await?;
    Ok(Ok(Attachment {
        media: stored,
        name: media.name.clone(),
        mime,
        size,
    }))
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
            mut text,
            media,
            reply_to,
        } => {
            let mut attachments = Vec::new();
            if let Some(media) = media {
                match fetch(graph, host, &media, max_download).await? {
                    Ok(a) => attachments.push(a),
                    Err(line) => {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(&line);
                    }
                }
            }
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
    })
}
