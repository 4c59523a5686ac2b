//! What every channel's `send` does alike: the two kinds of [`SendError`], the record of what
//! was already sent ([`SentRecord`]), and fetching an
//! operator's file from the media store.

use bytes::Bytes;
use switchboard_channel::{Attachment, Host, HostError, Outbound, SendError};

/// A failure that will never work as asked; `reason` is shown to operators as it is.
pub fn permanent(reason: impl Into<String>) -> SendError {
    SendError::Permanent {
        reason: reason.into(),
    }
}

/// A failure of the bridge's own side (its store, the media repository), not the network's:
/// the core waits it out without counting an attempt ([`SendError::HostUnavailable`]).
pub fn host_unavailable(e: HostError) -> SendError {
    SendError::HostUnavailable {
        reason: format!("bridge: {e}"),
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
        Err(e) => Err(host_unavailable(e)),
    }
}

/// The record, in the channel's state, that the network accepted an outbound item: the rule
/// that keeps a retried send (after a crash, a timeout, a lost answer) from reaching the
/// customer twice. `send` looks it up first ([`SentRecord::recall`]) and writes it as soon as the
/// network has accepted the item ([`SentRecord::remember`]). The key, `out:<idempotency
/// key><part>`, is stored: it must never change, or items sent before an upgrade would go again.
pub struct SentRecord<'a> {
    host: &'a dyn Host,
    network: &'static str,
    idempotency_key: &'a str,
    key: String,
}

impl<'a> SentRecord<'a> {
    /// The record of a whole item.
    pub fn new(host: &'a dyn Host, network: &'static str, outbound: &'a Outbound) -> Self {
        Self::part(host, network, outbound, "")
    }

    /// The record of one part of an item a network takes in several messages (`part` is
    /// appended to the key as it is, separator included).
    pub fn part(
        host: &'a dyn Host,
        network: &'static str,
        outbound: &'a Outbound,
        part: &str,
    ) -> Self {
        let idempotency_key = outbound.idempotency_key.as_str();
        SentRecord {
            host,
            network,
            idempotency_key,
            key: format!("out:{idempotency_key}{part}"),
        }
    }

    /// The stored key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The remote id this item was sent as, if it was; a store failure is retryable.
    pub async fn recall(&self) -> Result<Option<String>, SendError> {
        let done = self
            .host
            .state_get(&self.key)
            .await
            .map_err(host_unavailable)?;
        if let Some(remote_id) = &done {
            tracing::info!(network = self.network, idempotency_key = %self.idempotency_key, %remote_id, "already sent; not sending again");
        }
        Ok(done)
    }

    /// Note that the network accepted the item as `remote_id`. It was sent, so a failure here
    /// is only logged: the send still succeeded, and only a crash-retry could now repeat it
    /// (where the network takes an idempotency key of its own, that one still holds).
    pub async fn remember(&self, remote_id: &str) {
        if let Err(e) = self.host.state_put(&self.key, remote_id).await {
            tracing::warn!(network = self.network, error = %e, key = %self.key, "sent but cannot remember the idempotency key");
        }
    }
}

#[cfg(all(test, feature = "test-host"))]
mod tests {
    use super::*;
    use crate::test_host::MemoryHost;
    use switchboard_channel::{ConversationKey, OutboundAction};

    #[tokio::test]
    async fn a_remembered_item_is_recalled_under_its_stored_key() {
        let host = MemoryHost::default();
        let outbound = Outbound {
            conversation: ConversationKey {
                account: "a".into(),
                chat: "c".into(),
            },
            idempotency_key: "$event".into(),
            action: OutboundAction::Delete {
                remote_id: "1".into(),
            },
            participants: Vec::new(),
        };
        let whole = SentRecord::new(&host, "test", &outbound);
        let part = SentRecord::part(&host, "test", &outbound, "#1");
        assert_eq!((whole.key(), part.key()), ("out:$event", "out:$event#1"));
        assert_eq!(whole.recall().await.unwrap(), None);
        whole.remember("remote-7").await;
        assert_eq!(whole.recall().await.unwrap().as_deref(), Some("remote-7"));
        assert_eq!(
            part.recall().await.unwrap(),
            None,
            "parts are recorded apart"
        );
        assert_eq!(
            host.state_get("out:$event").await.unwrap().as_deref(),
            Some("remote-7")
        );
    }
}
