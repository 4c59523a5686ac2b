//! Fetching the files of a customer's message into the media store, the same way for every
//! channel: a file the network announces (or turns out) larger than the bridge fetches, or one
//! it will not hand over, becomes a line in the message's text saying so, so the operator knows
//! something was sent; a failure that may pass (the network's trouble, the store's) is an error,
//! so the source is not acknowledged and delivers the message again.

use std::future::Future;

use bytes::Bytes;
use switchboard_channel::{Attachment, Content, Host, HostError};

use crate::http::DownloadError;

/// What a channel knows of a file before fetching it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// The (already safe) name shown to operators.
    pub name: String,
    pub mime: String,
    /// The size the network announces, if any.
    pub size: Option<u64>,
}

/// A file a message carries, still on the network's side at a URL (most networks hand files
/// over that way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    pub url: String,
    /// The (already safe) name shown to operators.
    pub name: String,
    pub mime: String,
    /// The size the network announces, if any.
    pub size: Option<u64>,
}

impl RemoteFile {
    /// What is known of it before fetching.
    pub fn info(&self) -> FileInfo {
        FileInfo {
            name: self.name.clone(),
            mime: self.mime.clone(),
            size: self.size,
        }
    }
}

/// Why a message's files could not be fetched now (worth trying again).
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("fetching {name}: {reason}")]
    Transient { name: String, reason: String },
    #[error(transparent)]
    Host(#[from] HostError),
}

/// A message's files: those stored, and a line for each that was not.
#[derive(Debug, Default)]
pub struct Fetched {
    pub attachments: Vec<Attachment>,
    pub notes: Vec<String>,
}

impl Fetched {
    /// `text` with the notes after it, one per line (empty lines left out).
    pub fn text_with(&self, text: &str) -> String {
        std::iter::once(text)
            .chain(self.notes.iter().map(String::as_str))
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The message's content: `text` with the notes after it, and the files stored.
    pub fn into_content(self, text: &str) -> Content {
        Content {
            text: self.text_with(text),
            html: None,
            attachments: self.attachments,
        }
    }
}

/// `12.3 MB`.
pub fn human_size(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

/// The line for a file over the limit.
pub fn too_large_note(info: &FileInfo, max: u64) -> String {
    match info.size {
        Some(size) => format!(
            "[file too large to fetch: {} ({}, the limit is {})]",
            info.name,
            human_size(size),
            human_size(max)
        ),
        None => format!(
            "[file too large to fetch: {} (over {})]",
            info.name,
            human_size(max)
        ),
    }
}

/// The line for a file the network would not hand over.
pub fn unavailable_note(name: &str) -> String {
    format!("[file not available: {name}]")
}

/// Fetch each of `files` with `download` (given the file and the byte limit) and store it.
/// `info` says what the channel knows of a file; `channel` names it in the log.
pub async fn fetch_all<T, I, D, Fut>(
    host: &dyn Host,
    channel: &str,
    files: Vec<T>,
    max: u64,
    info: I,
    download: D,
) -> Result<Fetched, MediaError>
where
    I: Fn(&T) -> FileInfo,
    D: Fn(T, u64) -> Fut,
    Fut: Future<Output = Result<(Bytes, Option<String>), DownloadError>>,
{
    let mut fetched = Fetched::default();
    for file in files {
        let info = info(&file);
        if info.size.is_some_and(|n| n > max) {
            tracing::info!(channel, name = %info.name, size = ?info.size, max, "file too large to fetch");
            fetched.notes.push(too_large_note(&info, max));
            continue;
        }
        match download(file, max).await {
            Ok((bytes, served_mime)) => {
                // The message's own type names the kind; what the server says is the fallback.
                let mime = if info.mime.is_empty() {
                    served_mime.unwrap_or_else(|| "application/octet-stream".into())
                } else {
                    info.mime.clone()
                };
                let size = bytes.len() as u64;
                let media = host.put_media(bytes, &mime, &info.name).await?;
                fetched.attachments.push(Attachment {
                    media,
                    name: info.name,
                    mime,
                    size,
                });
            }
            Err(DownloadError::TooLarge) => {
                tracing::info!(channel, name = %info.name, max, "file too large to fetch");
                fetched
                    .notes
                    .push(too_large_note(&FileInfo { size: None, ..info }, max));
            }
            Err(DownloadError::Refused(e)) => {
                tracing::info!(channel, error = %e, name = %info.name, "file not available");
                fetched.notes.push(unavailable_note(&info.name));
            }
            Err(DownloadError::Transient(reason)) => {
                return Err(MediaError::Transient {
                    name: info.name,
                    reason,
                })
            }
        }
    }
    Ok(fetched)
}

#[cfg(all(test, feature = "test-host"))]
mod tests {
    use super::*;
    use crate::test_host::MemoryHost;

    fn info(name: &str, size: Option<u64>) -> FileInfo {
        FileInfo {
            name: name.into(),
            mime: String::new(),
            size,
        }
    }

    #[tokio::test]
    async fn each_file_is_stored_or_named_in_the_text() {
        let host = MemoryHost::default();
        let files = vec![
            ("a.png", Some(3), Ok(b"png".to_vec())),
            ("big.mov", Some(50), Ok(Vec::new())),
            (
                "secret.pdf",
                None,
                Err(DownloadError::Refused("HTTP 403".into())),
            ),
            ("lying.zip", Some(1), Err(DownloadError::TooLarge)),
        ];
        let fetched = fetch_all(
            &host,
            "test",
            files,
            10,
            |(n, s, _)| info(n, *s),
            |(_, _, r), _| async move { r.map(|b| (Bytes::from(b), Some("image/png".into()))) },
        )
        .await
        .unwrap();
        assert_eq!(fetched.attachments.len(), 1);
        assert_eq!(fetched.attachments[0].name, "a.png");
        assert_eq!(fetched.attachments[0].mime, "image/png");
        assert_eq!(
            host.media(&fetched.attachments[0].media).unwrap().0,
            Bytes::from_static(b"png")
        );
        assert_eq!(
            fetched.text_with("hello"),
            "hello\n[file too large to fetch: big.mov (0.0 MB, the limit is 0.0 MB)]\n[file not available: secret.pdf]\n[file too large to fetch: lying.zip (over 0.0 MB)]"
        );
    }

    #[tokio::test]
    async fn a_transient_failure_fails_the_whole_message() {
        let host = MemoryHost::default();
        let result = fetch_all(
            &host,
            "test",
            vec!["a.png"],
            10,
            |n| info(n, None),
            |_, _| async { Err(DownloadError::Transient("HTTP 503".into())) },
        )
        .await;
        assert!(matches!(result, Err(MediaError::Transient { .. })));
    }
}

/// [`fetch_all`] for files that wait at URLs anyone holding the link may fetch (what most
/// networks' CDNs serve), fetched with the channel's `client`.
pub async fn fetch_remote(
    host: &dyn Host,
    channel: &str,
    files: Vec<RemoteFile>,
    max: u64,
    client: &reqwest::Client,
) -> Result<Fetched, MediaError> {
    fetch_all(
        host,
        channel,
        files,
        max,
        RemoteFile::info,
        |f, max| async move {
            crate::http::download(client, &f.url, max)
                .await
                .map(|bytes| (Bytes::from(bytes), None))
        },
    )
    .await
}
