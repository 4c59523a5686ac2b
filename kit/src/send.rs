//! What every channel's `send` does alike: the two kinds of [`SendError`] and fetching an
//! operator's file from the media store.

use bytes::Bytes;
use switchboard_channel::{Attachment, Host, HostError, SendError};

/// A failure that will never work as asked; `reason` is shown to operators as it is.
pub fn permanent(reason: impl Into<String>) -> SendError {
    SendError::Permanent {
        reason: reason.into(),
    }
}

/// A failure of the bridge's own store: worth trying again.
pub fn retryable_host(e: HostError) -> SendError {
    SendError::Retryable {
        reason: format!("bridge store: {e}"),
        retry_after: None,
    }
}

/// The bytes of an operator's file and its mime type (the attachment's own, else the stored
/// one). A file no longer in the media store is a permanent failure naming the file.
pub async fn attachment_bytes(
    host: &dyn Host,
    attachment: &Attachment,
) -> Result<(Bytes, String), SendError> {
    match host.get_media(&attachment.media).await {
        Ok((bytes, stored_mime)) => {
            let mime = if attachment.mime.is_empty() {
                stored_mime
            } else {
                attachment.mime.clone()
            };
            Ok((bytes, mime))
        }
        Err(HostError::NotFound) => Err(permanent(format!(
            "the file {} is no longer in the media repository",
            attachment.name
        ))),
        Err(e) => Err(retryable_host(e)),
    }
}
