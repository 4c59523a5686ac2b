//! An in-memory [`Host`] for the channels' unit tests (feature `test-host`): it keeps what it
//! receives (once per dedup key, like the core), files, state and logs, and can be told to
//! fail as a full disk would; and the checks every channel's unit tests run alike (an
//! outbound item, [`check_retries_answered_from_record`]). Integration tests use the real core
//! instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use switchboard_channel::{
    ContactProfile, Content, ConversationKey, Delivery, Host, HostError, Inbound, MediaRef,
    Outbound, OutboundAction, SendError, Unreadable,
};

/// See the module docs.
#[derive(Default)]
pub struct MemoryHost {
    received: Mutex<Vec<Inbound>>,
    /// When set, `receive`, `put_media` and `state_put` fail as a full disk would.
    pub fail: AtomicBool,
    state: Mutex<HashMap<String, String>>,
    media: Mutex<HashMap<String, (Bytes, String)>>,
    logs: Mutex<HashMap<String, Vec<(String, serde_json::Value)>>>,
    unreadable: Mutex<Vec<Unreadable>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryHost {
    /// A host for a channel under test, failing as a full disk would when `failing`: the
    /// handle to look into, and the one the channel takes.
    pub fn for_channel(failing: bool) -> (std::sync::Arc<MemoryHost>, std::sync::Arc<dyn Host>) {
        let host = std::sync::Arc::new(MemoryHost::default());
        host.set_failing(failing);
        (host.clone(), host)
    }

    /// Everything received so far, in order (redeliveries left out).
    pub fn received(&self) -> Vec<Inbound> {
        lock(&self.received).clone()
    }

    /// Input the channel could not read and handed over (as the core keeps it).
    pub fn unreadables(&self) -> Vec<Unreadable> {
        lock(&self.unreadable).clone()
    }

    /// Make the host fail (or work again).
    pub fn set_failing(&self, failing: bool) {
        self.fail.store(failing, Ordering::SeqCst);
    }

    /// Keep a file as if an operator had sent it; returns its reference.
    pub fn add_media(&self, id: &str, bytes: impl Into<Bytes>, mime: &str) -> MediaRef {
        lock(&self.media).insert(id.to_owned(), (bytes.into(), mime.to_owned()));
        MediaRef(id.to_owned())
    }

    /// A stored file's bytes and mime type.
    pub fn media(&self, media: &MediaRef) -> Option<(Bytes, String)> {
        lock(&self.media).get(&media.0).cloned()
    }

    fn check(&self) -> Result<(), HostError> {
        if self.fail.load(Ordering::SeqCst) {
            Err(HostError::Store("disk full (test)".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Host for MemoryHost {
    async fn receive(&self, inbound: Inbound) -> Result<bool, HostError> {
        self.check()?;
        let mut received = lock(&self.received);
        let fresh = !received
            .iter()
            .any(|i| i.dedup_key == inbound.dedup_key && i.conversation == inbound.conversation);
        if fresh {
            received.push(inbound);
        }
        Ok(fresh)
    }

    async fn typing(&self, _: &ConversationKey, _: &ContactProfile, _: bool) {}

    async fn put_media(&self, data: Bytes, mime: &str, name: &str) -> Result<MediaRef, HostError> {
        self.check()?;
        let mut media = lock(&self.media);
        let id = format!("mxc://test/{}-{name}", media.len());
        media.insert(id.clone(), (data, mime.to_owned()));
        Ok(MediaRef(id))
    }

    async fn get_media(&self, media: &MediaRef) -> Result<(Bytes, String), HostError> {
        lock(&self.media)
            .get(&media.0)
            .cloned()
            .ok_or(HostError::NotFound)
    }

    async fn state_get(&self, key: &str) -> Result<Option<String>, HostError> {
        Ok(lock(&self.state).get(key).cloned())
    }

    async fn state_put(&self, key: &str, value: &str) -> Result<(), HostError> {
        self.check()?;
        lock(&self.state).insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    async fn log_append(
        &self,
        stream: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> Result<i64, HostError> {
        self.check()?;
        let mut logs = lock(&self.logs);
        let entries = logs.entry(stream.to_owned()).or_default();
        if let Some(at) = entries.iter().position(|(k, _)| k == key) {
            return Ok(at as i64 + 1);
        }
        entries.push((key.to_owned(), body.clone()));
        Ok(entries.len() as i64)
    }

    /// Kept, as the core keeps it (shown in its conversation or in the admin room).
    async fn unreadable(&self, input: Unreadable) -> Result<(), HostError> {
        self.check()?;
        lock(&self.unreadable).push(input);
        Ok(())
    }

    async fn log_read(
        &self,
        stream: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, serde_json::Value)>, HostError> {
        let logs = lock(&self.logs);
        Ok(logs
            .get(stream)
            .map(|entries| {
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, (_, body))| (i as i64 + 1, body.clone()))
                    .filter(|(seq, _)| *seq > after)
                    .take(usize::try_from(limit).unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// An operator's plain text message to `conversation`, as the outbox hands it over under the
/// idempotency key `key`.
pub fn text_item(conversation: &ConversationKey, key: &str, text: &str) -> Outbound {
    Outbound {
        conversation: conversation.clone(),
        idempotency_key: key.into(),
        participants: Vec::new(),
        action: OutboundAction::Message {
            content: Content {
                text: text.into(),
                ..Content::default()
            },
            reply_to: None,
        },
    }
}

/// What every channel's `send` owes the outbox's retries, checked one way for all. `host`
/// already remembers the item `$event1` as sent (under the channel's own record key) with the
/// remote id `sent`; the network behind `send` is unreachable, so any request fails. Then:
/// `$event1` is answered `sent` from the record, without a request; a new item tries and fails
/// retryably; an item for another account than `conversation`'s fails for good.
pub async fn check_retries_answered_from_record<F, Fut>(
    conversation: &ConversationKey,
    sent: &str,
    send: F,
) where
    F: Fn(Outbound) -> Fut,
    Fut: std::future::Future<Output = Result<Delivery, SendError>>,
{
    let delivery = send(text_item(conversation, "$event1", "hi")).await;
    assert_eq!(delivery.map(|d| d.remote_id), Ok(sent.to_owned()));
    let fresh = send(text_item(conversation, "$event2", "hi")).await;
    assert!(
        matches!(fresh, Err(SendError::Retryable { .. })),
        "a new item to an unreachable network: {fresh:?}"
    );
    let mut other = text_item(conversation, "$event3", "hi");
    other.conversation.account = format!("{}0", conversation.account);
    let foreign = send(other).await;
    assert!(
        matches!(foreign, Err(SendError::Permanent { .. })),
        "another account's conversation: {foreign:?}"
    );
}

/// Serve the routes `app` makes on a free port of the loopback, as the core mounts a
/// channel's routes; `app` is given the base URL they are reached at (`http://127.0.0.1:<port>`,
/// for a channel that signs or checks its own public URL), which is also returned.
pub async fn serve(app: impl FnOnce(&str) -> axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port on the loopback");
    let base = format!("http://{}", listener.local_addr().expect("its address"));
    let app = app(&base);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

/// The shared sample payloads of `network` (`shared/fixtures/<network>` in a folder above this
/// checkout: beside a checkout, or further up for a worktree), for the unit tests; `None`, with
/// a note, where this machine does not have them (the test then has nothing to check).
pub fn fixtures_dir(network: &str) -> Option<std::path::PathBuf> {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = manifest
        .ancestors()
        .map(|a| a.join("shared/fixtures").join(network))
        .find(|d| d.is_dir());
    if found.is_none() {
        eprintln!(
            "shared/fixtures/{network} not found above {}; fixture tests skipped",
            manifest.display()
        );
    }
    found
}

/// One sample payload of `network`, or `None` where the fixtures are not on this machine. A
/// fixture missing from fixtures that are there is a broken test, not a skipped one: it panics.
pub fn fixture(network: &str, name: &str) -> Option<Vec<u8>> {
    let path = fixtures_dir(network)?.join(name);
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// [`fixture`] as text.
pub fn fixture_text(network: &str, name: &str) -> Option<String> {
    fixture(network, name).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}
