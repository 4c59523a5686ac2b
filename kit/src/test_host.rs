//! An in-memory [`Host`] for the channels' unit tests (feature `test-host`): it keeps what it
//! receives (once per dedup key, like the core), files, state and logs, and can be told to
//! fail as a full disk would. Integration tests use the real core instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use switchboard_channel::{
    ContactProfile, ConversationKey, Host, HostError, Inbound, MediaRef, Unreadable,
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
