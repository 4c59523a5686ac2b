//! Durable records of the web chat, kept through the core's [`Host`] (never in files of our own).
//!
//! Key-value state (all keys are scoped to this channel by the core):
//!
//! | key | value |
//! |---|---|
//! | `visitor:<sha256(token) hex>` | [`Visitor`]: the visitor a token belongs to |
//! | `chat:<visitor_id>` | the token hash: "this conversation exists" (checked by `send`) |
//! | `msg:<remote id>` | [`MessageRecord`]: whose message, its transcript seq, deleted or not |
//! | `file:<visitor_id>:<file_id>` | [`FileRecord`]: a file that visitor may download |
//!
//! Logs: `conv:<visitor_id>` is the visitor's transcript (see [`crate::transcript`]).
//!
//! A new session stores nothing: its token is signed ([`crate::session`]) and the two records
//! above are written from it at the visitor's first state-changing call ([`Store::store_visitor`]).
//! Tokens are stored only as their SHA-256, so a copy of the database does not let anyone speak
//! as a visitor. Every write here is idempotent, so a request retried after a failure converges.

use std::sync::Arc;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchboard_channel::{ContactProfile, Host, HostError, Inbound, MediaRef, Recorded};

use crate::transcript::{Author, Entry};

/// A visitor: an anonymous browser identified by its token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visitor {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub created_ms: i64,
    /// The visitor has written (a message or a file): the session is kept for good. Until then
    /// its records expire (`channels.webchat.silent_session_ttl_secs`).
    #[serde(default)]
    pub wrote: bool,
}

impl Visitor {
    /// The contact profile the core turns into the visitor's ghost.
    pub fn profile(&self) -> ContactProfile {
        ContactProfile {
            id: self.id.clone(),
            display_name: Some(self.display_name()),
            email: self.email.clone(),
            phone: None,
            avatar: None,
        }
    }

    /// The visitor's name, or `Visitor <first 6 of id>` when they gave none.
    pub fn display_name(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("Visitor {}", self.id.chars().take(6).collect::<String>()),
        }
    }
}

/// What we remember about one message (the visitor's or an agent's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub visitor: String,
    pub from: Author,
    pub seq: i64,
    #[serde(default)]
    pub deleted: bool,
    /// The visitor's reaction to this (agent) message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<String>,
    /// Transcript seq of the visitor's last reaction change (0: never reacted): the answer to
    /// a repeated request, and part of the next change's idempotency key.
    #[serde(default)]
    pub reaction_seq: i64,
}

/// A file one visitor may download.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub media: MediaRef,
    pub name: String,
    pub mime: String,
    pub size: u64,
}

/// Longest remote id we look up (ours are under 100 bytes).
const MAX_REMOTE_ID_LEN: usize = 200;

/// Could this be one of our message ids? See [`Store::message`].
fn is_remote_id_shaped(id: &str) -> bool {
    (1..=MAX_REMOTE_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `n` random bytes as lowercase hex, from the thread's cryptographic RNG.
pub fn random_hex<const N: usize>() -> String {
    hex::encode(rand::random::<[u8; N]>())
}

/// Who holds a visitor's conversation marker ([`Store::marker`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// Nobody: the store has no conversation with this visitor.
    None,
    /// The token asked about.
    ThisToken,
    /// Another token.
    Other,
}

/// Hex SHA-256 of a string.
pub fn sha256_hex(input: &str) -> String {
    hex::encode(Sha256::digest(input.as_bytes()))
}

/// Is this shaped like one of our tokens of the first format (64 lowercase hex characters,
/// stored from the start; today's are signed, [`crate::session`])?
pub fn is_token_shaped(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The transcript stream of a visitor.
/// Message records as the state values they are stored as (`msg:<remote id>`).
fn message_state(
    records: Vec<(String, MessageRecord)>,
) -> Result<Vec<(String, String)>, HostError> {
    records
        .into_iter()
        .map(|(remote_id, record)| {
            let raw =
                serde_json::to_string(&record).map_err(|e| HostError::Store(e.to_string()))?;
            Ok((format!("msg:{remote_id}"), raw))
        })
        .collect()
}

fn transcript_stream(visitor_id: &str) -> String {
    format!("conv:{visitor_id}")
}

/// The channel's records on top of the core's key-value state and logs.
#[derive(Clone)]
pub struct Store {
    host: Arc<dyn Host>,
}

impl Store {
    pub fn new(host: Arc<dyn Host>) -> Self {
        Self { host }
    }

    pub fn host(&self) -> &Arc<dyn Host> {
        &self.host
    }

    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, HostError> {
        match self.host.state_get(key).await? {
            None => Ok(None),
            Some(raw) => serde_json::from_str(&raw)
                .map(Some)
                .map_err(|e| HostError::Store(format!("unreadable webchat record {key}: {e}"))),
        }
    }

    async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), HostError> {
        let raw = serde_json::to_string(value).map_err(|e| HostError::Store(e.to_string()))?;
        self.host.state_put(key, &raw).await
    }

    /// A record of another module of the channel (`<kind>:<key>`, e.g. `rating:<nonce>`).
    pub async fn get_record<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, HostError> {
        self.get_json(key).await
    }

    pub async fn put_record<T: Serialize>(&self, key: &str, value: &T) -> Result<(), HostError> {
        self.put_json(key, value).await
    }

    /// The stored visitor a token belongs to, if any (a token of either format: see
    /// [`crate::session`]).
    pub async fn visitor_by_token(&self, token: &str) -> Result<Option<Visitor>, HostError> {
        if !is_token_shaped(token) && !crate::session::is_signed_shaped(token) {
            return Ok(None);
        }
        self.get_json(&format!("visitor:{}", sha256_hex(token)))
            .await
    }

    /// Does a conversation with this visitor exist?
    pub async fn visitor_exists(&self, visitor_id: &str) -> Result<bool, HostError> {
        Ok(self
            .host
            .state_get(&format!("chat:{visitor_id}"))
            .await?
            .is_some())
    }

    /// Who holds the visitor's conversation marker, as `token` sees it. [`Store::store_visitor`]
    /// writes the marker (the token's hash) before the record, so a request of the token
    /// arriving between its two writes finds [`Marker::ThisToken`] and no record: the visitor
    /// is that token's, not a revoked one (revoking leaves no marker with the token's hash).
    pub async fn marker(&self, visitor_id: &str, token: &str) -> Result<Marker, HostError> {
        Ok(
            match self.host.state_get(&format!("chat:{visitor_id}")).await? {
                None => Marker::None,
                Some(owner) if owner == sha256_hex(token) => Marker::ThisToken,
                Some(_) => Marker::Other,
            },
        )
    }

    /// Store the records of a visitor who had none (their session token is signed,
    /// [`crate::session`]): the first state-changing call of a session. Both records expire at
    /// `expires_ms` unless the visitor writes ([`Store::keep_visitor`]), like a silent session's
    /// always did. Returns the stored visitor (the one already stored under this token, when a
    /// concurrent request was first), or `None` when the visitor id is another token's.
    pub async fn store_visitor(
        &self,
        token: &str,
        visitor: &Visitor,
        expires_ms: i64,
    ) -> Result<Option<Visitor>, HostError> {
        let hash = sha256_hex(token);
        let key = format!("visitor:{hash}");
        if let Some(stored) = self.get_json::<Visitor>(&key).await? {
            return Ok(Some(stored));
        }
        let marker = format!("chat:{}", visitor.id);
        match self.host.state_get(&marker).await? {
            // Half written by an earlier attempt of this token: complete it.
            Some(owner) if owner == hash => {}
            Some(_) => return Ok(None),
            None => {}
        }
        // The conversation marker first: a visitor record never exists without it, and it
        // outlives the record (expired at the same time, pruned in one statement).
        self.host
            .state_put_expiring(&marker, &hash, expires_ms)
            .await?;
        let raw = serde_json::to_string(visitor).map_err(|e| HostError::Store(e.to_string()))?;
        self.host.state_put_expiring(&key, &raw, expires_ms).await?;
        Ok(Some(visitor.clone()))
    }

    /// The visitor wrote: keep their records for good (no longer expiring).
    pub async fn keep_visitor(&self, visitor: &Visitor) -> Result<(), HostError> {
        if visitor.wrote {
            return Ok(());
        }
        let marker = format!("chat:{}", visitor.id);
        let Some(hash) = self.host.state_get(&marker).await? else {
            return Err(HostError::Store(format!(
                "visitor {} has no conversation marker",
                visitor.id
            )));
        };
        self.host.state_put(&marker, &hash).await?;
        let kept = Visitor {
            wrote: true,
            ..visitor.clone()
        };
        self.put_json(&format!("visitor:{hash}"), &kept).await
    }

    /// Write back a visitor's changed name or e-mail.
    /// A visitor who has not written yet keeps the expiry their session was created with.
    pub async fn save_visitor(
        &self,
        token: &str,
        visitor: &Visitor,
        ttl_ms: i64,
    ) -> Result<(), HostError> {
        let key = format!("visitor:{}", sha256_hex(token));
        if visitor.wrote {
            return self.put_json(&key, visitor).await;
        }
        let raw = serde_json::to_string(visitor).map_err(|e| HostError::Store(e.to_string()))?;
        let expires = visitor.created_ms.saturating_add(ttl_ms);
        self.host.state_put_expiring(&key, &raw, expires).await
    }

    /// A message by remote id. Ids are ours (`v.<visitor>.<client id>`, `a.<hex>`): short and
    /// of `[A-Za-z0-9._-]`; anything else is not one of them and is not looked up (a NUL in a
    /// query is an error on PostgreSQL, which would turn a bad `reply_to` into a 503).
    pub async fn message(&self, remote_id: &str) -> Result<Option<MessageRecord>, HostError> {
        if !is_remote_id_shaped(remote_id) {
            return Ok(None);
        }
        self.get_json(&format!("msg:{remote_id}")).await
    }

    pub async fn file(
        &self,
        visitor_id: &str,
        file_id: &str,
    ) -> Result<Option<FileRecord>, HostError> {
        self.get_json(&format!("file:{visitor_id}:{file_id}")).await
    }

    pub async fn put_file(
        &self,
        visitor_id: &str,
        file_id: &str,
        record: &FileRecord,
    ) -> Result<(), HostError> {
        self.put_json(&format!("file:{visitor_id}:{file_id}"), record)
            .await
    }

    /// Append to a visitor's transcript, idempotent by `key`; returns the entry's seq.
    pub async fn append(
        &self,
        visitor_id: &str,
        key: &str,
        entry: &Entry,
    ) -> Result<i64, HostError> {
        let body = serde_json::to_value(entry).map_err(|e| HostError::Store(e.to_string()))?;
        self.host
            .log_append(&transcript_stream(visitor_id), key, &body)
            .await
    }

    /// Hand `inbound` to the core with its entry in the visitor's transcript and the message
    /// records `messages` gives for the entry's seq, in one transaction
    /// ([`Host::receive_recorded`]): one durable commit, and never the event without its
    /// entry. Idempotent as each part is (the inbox by dedup key, the log by `key`, records by
    /// overwrite). Returns the entry's seq.
    pub async fn receive_with_entry(
        &self,
        inbound: Inbound,
        visitor_id: &str,
        key: &str,
        entry: &Entry,
        messages: &(dyn Fn(i64) -> Vec<(String, MessageRecord)> + Send + Sync),
    ) -> Result<i64, HostError> {
        self.write_entry(Some(inbound), visitor_id, key, entry, messages)
            .await
    }

    /// Append to a visitor's transcript with the message records `messages` gives for the
    /// entry's seq, in one transaction ([`Host::log_append_recorded`]): one durable commit,
    /// and the records visible with the entry. Returns the entry's seq.
    pub async fn append_with_records(
        &self,
        visitor_id: &str,
        key: &str,
        entry: &Entry,
        messages: &(dyn Fn(i64) -> Vec<(String, MessageRecord)> + Send + Sync),
    ) -> Result<i64, HostError> {
        self.write_entry(None, visitor_id, key, entry, messages)
            .await
    }

    /// A transcript entry with its message records, and the inbound event when there is one,
    /// in one transaction of the host; the entry's seq.
    async fn write_entry(
        &self,
        inbound: Option<Inbound>,
        visitor_id: &str,
        key: &str,
        entry: &Entry,
        messages: &(dyn Fn(i64) -> Vec<(String, MessageRecord)> + Send + Sync),
    ) -> Result<i64, HostError> {
        let body = serde_json::to_value(entry).map_err(|e| HostError::Store(e.to_string()))?;
        let state = |seq: i64| message_state(messages(seq));
        let stream = transcript_stream(visitor_id);
        let record = Recorded {
            stream: &stream,
            key,
            body: &body,
            state: &state,
        };
        match inbound {
            Some(inbound) => Ok(self.host.receive_recorded(inbound, record).await?.1),
            None => self.host.log_append_recorded(record).await,
        }
    }

    /// Transcript entries after `after`, oldest first, at most `limit`.
    pub async fn read(
        &self,
        visitor_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, serde_json::Value)>, HostError> {
        self.host
            .log_read(&transcript_stream(visitor_id), after, limit)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_ids() {
        assert!(is_remote_id_shaped("v.9a23bacfc8a88c6a.k3J9x0Q2"));
        assert!(is_remote_id_shaped("a.0fc4615c7f22428fd2598999"));
        assert!(!is_remote_id_shaped(""));
        assert!(!is_remote_id_shaped("v.\u{0}"));
        assert!(!is_remote_id_shaped("../x"));
        assert!(!is_remote_id_shaped(&"a".repeat(MAX_REMOTE_ID_LEN + 1)));
    }

    #[test]
    fn tokens() {
        let token = random_hex::<32>();
        assert!(is_token_shaped(&token));
        assert!(!is_token_shaped(&token.to_uppercase()));
        assert!(!is_token_shaped("abc"));
        assert_ne!(token, random_hex::<32>());
    }

    #[test]
    fn anonymous_display_name() {
        let visitor = Visitor {
            id: "0123456789abcdef".into(),
            name: None,
            email: None,
            created_ms: 0,
            wrote: false,
        };
        assert_eq!(visitor.display_name(), "Visitor 012345");
    }
}
