//! An event of a webhook delivery → the core's `Inbound`, stored with `Host::receive`.
//!
//! What needs I/O happens here, after [`crate::parse`] decided what the event means:
//!
//! * the customer's profile (name, picture) for the ghost, through [`crate::profile`];
//! * files: fetched from the CDN URL in the payload and stored with `Host::put_media`. A fetch
//!   that may work later (network, 5xx) fails the delivery, so the webhook answers 503 and Meta
//!   delivers again; a URL that will not work again (4xx, too large) becomes a line of text with
//!   the link instead of the file, so one bad file never blocks the conversation;
//! * redeliveries: the dedup keys of the last [`RECENT`] events stored are kept in memory, so a
//!   delivery Meta repeats (it does, when our 200 was late) is acknowledged without fetching its
//!   files again; after a restart the core's own dedup by key does the same job, one fetch later;
//! * Messenger's read and delivery watermarks ("everything up to this time"): resolved to the
//!   newest message we sent at or before it, from the log `outbound` keeps.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use switchboard_channel::{Attachment, Content, ConversationKey, HostError, Inbound, InboundEvent};

use crate::graph::FetchError;
use crate::parse::{Event, Kind, Mark, MediaKind, RemoteFile};
use crate::Shared;

/// Why an event could not be stored now (the webhook answers 503; Meta redelivers).
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("bridge store: {0}")]
    Host(#[from] HostError),
    #[error("fetching a file: {0}")]
    Fetch(String),
}

/// How many recently stored dedup keys are remembered.
pub const RECENT: usize = 2048;

/// Dedup keys of events stored lately, oldest first.
#[derive(Default)]
pub struct Recent {
    inner: Mutex<(VecDeque<String>, HashSet<String>)>,
}

impl Recent {
    fn contains(&self, key: &str) -> bool {
        self.inner
            .lock()
            .map(|g| g.1.contains(key))
            .unwrap_or(false)
    }

    fn insert(&self, key: &str) {
        if let Ok(mut g) = self.inner.lock() {
            if g.1.insert(key.to_owned()) {
                g.0.push_back(key.to_owned());
                if g.0.len() > RECENT {
                    if let Some(old) = g.0.pop_front() {
                        g.1.remove(&old);
                    }
                }
            }
        }
    }
}

/// Store one event. `Ok` means it is stored (or needs nothing).
pub async fn handle(shared: &Shared, event: Event) -> Result<(), InboundError> {
    let net = shared.platform.name();
    if shared.recent.contains(&event.dedup_key) {
        tracing::debug!(channel = net, dedup_key = %event.dedup_key, "redelivery of an event stored lately");
        return Ok(());
    }
    if !shared.config.account_id.is_empty() && event.account != shared.config.account_id {
        tracing::warn!(channel = net, account = %event.account, "event for another account than account_id; ignored");
        return Ok(());
    }
    let conversation = ConversationKey {
        account: event.account.clone(),
        chat: event.contact.clone(),
    };
    let event_kind = match event.kind {
        Kind::Message {
            mid,
            text,
            files,
            reply_to,
        } => {
            let content = content_with_files(shared, text, &files).await?;
            InboundEvent::Message {
                remote_id: mid,
                content,
                reply_to,
            }
        }
        Kind::Notice { mid, text } => InboundEvent::Notice {
            remote_id: mid,
            content: plain(text),
        },
        Kind::Edit { mid, text } => InboundEvent::Edit {
            remote_id: mid,
            content: plain(text),
        },
        Kind::Delete { mid } => InboundEvent::Delete { remote_id: mid },
        Kind::Reaction { mid, emoji } => InboundEvent::Reaction {
            remote_id: mid,
            key: emoji,
        },
        Kind::Choice { mid, payload } => InboundEvent::Choice {
            remote_id: mid,
            payload,
        },
        Kind::Read(mark) => match resolve(shared, &conversation, mark).await? {
            Some(remote_id) => InboundEvent::Read { remote_id },
            None => return Ok(()),
        },
        Kind::Delivered(mark) => match resolve(shared, &conversation, mark).await? {
            Some(remote_id) => InboundEvent::Delivered { remote_id },
            None => return Ok(()),
        },
    };
    let sender = shared.profiles.get(shared, &event.contact).await;
    let inbound = Inbound {
        conversation,
        sender,
        timestamp_ms: event.timestamp_ms,
        dedup_key: event.dedup_key.clone(),
        event: event_kind,
        addressed_to: None,
        group: None,
    };
    let fresh = shared.host.receive(inbound).await?;
    shared.recent.insert(&event.dedup_key);
    tracing::debug!(channel = net, dedup_key = %event.dedup_key, fresh, "event stored");
    Ok(())
}

fn plain(text: String) -> Content {
    Content {
        text,
        html: None,
        attachments: Vec::new(),
    }
}

/// A watermark → the newest of our messages at or before it.
async fn resolve(
    shared: &Shared,
    conversation: &ConversationKey,
    mark: Mark,
) -> Result<Option<String>, HostError> {
    match mark {
        Mark::Mid(mid) => Ok(Some(mid)),
        Mark::Watermark(w) => crate::outbound::sent_up_to(shared, conversation, w).await,
    }
}

async fn content_with_files(
    shared: &Shared,
    text: String,
    files: &[RemoteFile],
) -> Result<Content, InboundError> {
    let mut lines = if text.is_empty() {
        Vec::new()
    } else {
        vec![text]
    };
    let mut attachments = Vec::new();
    for file in files {
        match shared
            .graph
            .download(&file.url, shared.config.max_download_size)
            .await
        {
            Ok((bytes, mime)) => {
                let name = file_name(file, mime.as_deref());
                let mime = mime
                    .filter(|m| *m != "application/octet-stream")
                    .unwrap_or_else(|| guess_mime(file.kind, &name));
                let size = bytes.len() as u64;
                let media = shared.host.put_media(bytes, &mime, &name).await?;
                attachments.push(Attachment {
                    media,
                    name,
                    mime,
                    size,
                });
            }
            Err(FetchError::Transient(e)) => return Err(InboundError::Fetch(e)),
            Err(e @ (FetchError::Gone(_) | FetchError::TooLarge)) => {
                tracing::warn!(url = %file.url, error = %e, "customer file not fetched; bridged as a link");
                lines.push(format!(
                    "[{} not fetched: {e}] {}",
                    file.kind.as_str(),
                    file.url
                ));
            }
        }
    }
    Ok(Content {
        text: lines.join("\n"),
        html: None,
        attachments,
    })
}

/// A name for a fetched file: the URL's last path segment when it looks like a file name
/// (Messenger's file URLs end in the customer's file name), else `<kind>.<extension>`.
pub fn file_name(file: &RemoteFile, mime: Option<&str>) -> String {
    let from_url = url::Url::parse(&file.url).ok().and_then(|u| {
        let last = u.path_segments()?.rev().find(|s| !s.is_empty())?.to_owned();
        let decoded = percent_encoding::percent_decode_str(&last)
            .decode_utf8()
            .ok()?
            .into_owned();
        let clean = switchboard_kit::safe_file_name(&decoded, "");
        let (stem, ext) = clean.rsplit_once('.')?;
        (!stem.is_empty()
            && (1..=5).contains(&ext.len())
            && ext.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some(clean)
    });
    if let Some(name) = from_url {
        return name;
    }
    let ext = mime
        .and_then(switchboard_kit::mime::extension_for)
        .unwrap_or(match file.kind {
            MediaKind::Image => "jpg",
            MediaKind::Audio => "mp4",
            MediaKind::Video => "mp4",
            MediaKind::File => "bin",
        });
    let stem = if file.sticker {
        "sticker"
    } else {
        file.kind.as_str()
    };
    format!("{stem}.{ext}")
}

/// A mime type when the CDN gives none useful: by extension, else by kind.
pub fn guess_mime(kind: MediaKind, name: &str) -> String {
    // An `.mp4` voice clip is audio: the kind decides what the container holds.
    let by_ext = match switchboard_kit::mime::mime_for_name(name) {
        Some("video/mp4") if kind == MediaKind::Audio => Some("audio/mp4"),
        other => other,
    };
    by_ext
        .unwrap_or(match kind {
            MediaKind::Image => "image/jpeg",
            MediaKind::Audio => "audio/mpeg",
            MediaKind::Video => "video/mp4",
            MediaKind::File => "application/octet-stream",
        })
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(kind: MediaKind, url: &str) -> RemoteFile {
        RemoteFile {
            kind,
            url: url.into(),
            sticker: false,
        }
    }

    #[test]
    fn names_and_types_of_fetched_files() {
        let f = file(
            MediaKind::File,
            "https://cdn.fbsbx.com/v/t59.2708-21/fake_document.pdf/document.pdf?_nc_cat=1&oh=00",
        );
        assert_eq!(file_name(&f, Some("application/pdf")), "document.pdf");
        let f = file(MediaKind::File, "https://cdn.example/x/invoice%202026.pdf");
        assert_eq!(file_name(&f, None), "invoice 2026.pdf");
        let f = file(
            MediaKind::Image,
            "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1&signature=x",
        );
        assert_eq!(file_name(&f, Some("image/png")), "image.png");
        let f = file(
            MediaKind::Audio,
            "https://cdn.fbsbx.com/v/audioclip-1518479195000-1234.mp4?x=1",
        );
        assert_eq!(file_name(&f, None), "audioclip-1518479195000-1234.mp4");
        assert_eq!(guess_mime(MediaKind::Audio, "audioclip.mp4"), "audio/mp4");
        assert_eq!(guess_mime(MediaKind::Video, "clip.mp4"), "video/mp4");
        let f = file(
            MediaKind::File,
            "https://cdn.example/x/..%2F..%2Fetc%2Fpasswd",
        );
        assert!(!file_name(&f, None).contains('/'));
        let f = file(
            MediaKind::File,
            "https://cdn.example/x/%E3%80%80.%20.bashrc.txt",
        );
        assert_eq!(file_name(&f, None), "bashrc.txt");
        let f = file(
            MediaKind::File,
            "https://cdn.example/x/invoice%E2%80%AEfdp.exe",
        );
        assert_eq!(file_name(&f, None), "invoicefdp.exe");
    }
}
