//! What a visitor does, handed to the core: messages (with or without a file), edits, deletes,
//! reactions to agents' messages and read receipts.
//!
//! A message, an edit, a deletion or a reaction follows the same order, which is the durability contract
//! of the bridge:
//!
//! 1. `Host::receive_recorded` — the core stores the event in its inbox, and in the same
//!    transaction its entry in the visitor's transcript (idempotent by key, so the browser's
//!    history shows it) and the message's record (`msg:<id>`): one durable commit. If that
//!    fails the request fails with 503 and *nothing* is stored or acknowledged; the widget
//!    retries with the same client id.
//! 2. Push the presented entry to open event streams.
//!
//! Repeating it is safe: the inbox deduplicates by `dedup_key`, the log by key, the state
//! writes are overwrites, so the answer carries the same `id` and `seq`. A read receipt is
//! handed over alone (`Host::receive`); a rating (`crate::rating`) is handed over first and
//! logged after, keyed by its request so that of two clicks racing the log keeps the first.

use std::sync::Arc;

use serde::Serialize;
use switchboard_channel::{Attachment, Content, Inbound, InboundEvent};

use crate::config::MAX_TEXT_CHARS;
use crate::error::ApiError;
use crate::hub::Live;
use crate::state::Shared;
use switchboard_kit::now_ms;

use crate::store::{sha256_hex, MessageRecord, Visitor};
use crate::transcript::{self, Author, Entry, FileEntry};

/// The answer to an accepted post: the message's remote id and its transcript seq.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Accepted {
    pub id: String,
    pub seq: i64,
}

/// The remote id of a visitor's message: unique per visitor and client id.
pub fn visitor_message_id(visitor_id: &str, client_id: &str) -> String {
    format!("v.{visitor_id}.{client_id}")
}

/// Reject text over the limit (413); `Ok` with the cleaned text otherwise.
pub fn check_text(raw: &str) -> Result<String, ApiError> {
    let text = crate::sanitize::visitor_text(raw);
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ApiError::TooLarge {
            code: "text_too_long",
            message: format!(
                "The message is too long: {chars} characters, the limit is {MAX_TEXT_CHARS}."
            ),
        });
    }
    Ok(text)
}

/// If this client id was already accepted, the earlier answer (a retry after a lost response).
pub async fn already_accepted(
    shared: &Shared,
    visitor: &Visitor,
    client_id: &str,
) -> Result<Option<Accepted>, ApiError> {
    let id = visitor_message_id(&visitor.id, client_id);
    let record = shared.store.message(&id).await?;
    Ok(record.map(|r| Accepted { id, seq: r.seq }))
}

/// A new message from the visitor: text (possibly empty when there is a file) and files that are
/// already in the media store.
pub struct NewMessage {
    pub client_id: String,
    pub text: String,
    pub files: Vec<(FileEntry, Attachment)>,
    pub reply_to: Option<String>,
}

/// Check that `reply_to` names a message of this conversation.
pub async fn check_reply_target(
    shared: &Shared,
    visitor: &Visitor,
    reply_to: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(target) = reply_to {
        match shared.store.message(target).await? {
            Some(record) if record.visitor == visitor.id => {}
            _ => {
                return Err(ApiError::unprocessable(
                    "unknown_reply_target",
                    "The message you are replying to is not in this chat.",
                ))
            }
        }
    }
    Ok(())
}

/// Store, transcribe and push one visitor message. Callers answer a known client id with
/// [`already_accepted`] first; repeating this anyway is harmless (see the module docs).
pub async fn accept_message(
    shared: &Shared,
    visitor: &Visitor,
    message: NewMessage,
) -> Result<Accepted, ApiError> {
    let id = visitor_message_id(&visitor.id, &message.client_id);
    let ts = now_ms();
    let (entries, attachments): (Vec<FileEntry>, Vec<Attachment>) =
        message.files.into_iter().unzip();

    // 1.–2. The core's inbox, with the transcript entry and the message's record in the same
    // transaction. Only after this succeeds may we answer 200.
    let entry = Entry::Message {
        id: id.clone(),
        from: Author::Visitor,
        text: message.text.clone(),
        html: None,
        attachments: entries,
        reply_to: message.reply_to.clone(),
        ts,
    };
    let record = |seq| {
        vec![(
            id.clone(),
            MessageRecord {
                visitor: visitor.id.clone(),
                from: Author::Visitor,
                seq,
                deleted: false,
                reaction: None,
                reaction_seq: 0,
            },
        )]
    };
    let event = InboundEvent::Message {
        remote_id: id.clone(),
        content: Content {
            text: message.text,
            html: None,
            attachments,
        },
        reply_to: message.reply_to,
    };
    let seq = hand_over_with_entry(shared, visitor, id.clone(), ts, event, &entry, &record).await?;
    // The visitor wrote: their session is kept for good from now on.
    shared.store.keep_visitor(visitor).await?;
    // 3. Live push.
    publish(shared, &visitor.id, &entry, seq);
    Ok(Accepted { id, seq })
}

/// The visitor's own, not deleted, message `id` — or the right error.
async fn own_message(
    shared: &Shared,
    visitor: &Visitor,
    id: &str,
    allow_deleted: bool,
) -> Result<MessageRecord, ApiError> {
    let record = match shared.store.message(id).await? {
        Some(record) if record.visitor == visitor.id => record,
        _ => {
            return Err(ApiError::NotFound(
                "There is no such message in this chat.".into(),
            ))
        }
    };
    if record.from != Author::Visitor {
        return Err(ApiError::Forbidden(
            "You can only change your own messages.".into(),
        ));
    }
    if record.deleted && !allow_deleted {
        return Err(ApiError::Conflict("The message was deleted.".into()));
    }
    Ok(record)
}

/// The visitor changed the text of one of their messages.
pub async fn edit_message(
    shared: &Shared,
    visitor: &Visitor,
    id: &str,
    text: String,
) -> Result<Accepted, ApiError> {
    own_message(shared, visitor, id, false).await?;
    let key = format!("edit.{id}.{}", &sha256_hex(&text)[..16]);
    let ts = now_ms();
    let event = InboundEvent::Edit {
        remote_id: id.to_owned(),
        content: Content {
            text: text.clone(),
            ..Content::default()
        },
    };
    let entry = Entry::Edit {
        id: id.to_owned(),
        text,
        html: None,
        ts,
    };
    let seq =
        hand_over_with_entry(shared, visitor, key, ts, event, &entry, &|_| Vec::new()).await?;
    publish(shared, &visitor.id, &entry, seq);
    Ok(Accepted {
        id: id.to_owned(),
        seq,
    })
}

/// The visitor deleted one of their messages. Deleting twice is the same as once.
pub async fn delete_message(
    shared: &Shared,
    visitor: &Visitor,
    id: &str,
) -> Result<Accepted, ApiError> {
    let record = own_message(shared, visitor, id, true).await?;
    let key = format!("delete.{id}");
    let ts = now_ms();
    let event = InboundEvent::Delete {
        remote_id: id.to_owned(),
    };
    let entry = Entry::Delete {
        id: id.to_owned(),
        ts,
    };
    let deleted = |_| {
        vec![(
            id.to_owned(),
            MessageRecord {
                deleted: true,
                ..record.clone()
            },
        )]
    };
    let seq = hand_over_with_entry(shared, visitor, key, ts, event, &entry, &deleted).await?;
    publish(shared, &visitor.id, &entry, seq);
    Ok(Accepted {
        id: id.to_owned(),
        seq,
    })
}

/// The answer to a reaction: the message, the visitor's reaction now, and the transcript seq of
/// the change that made it so (the same for a repeated request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reacted {
    pub id: String,
    pub key: Option<String>,
    pub seq: i64,
}

/// The visitor's reaction to an agent's message becomes `key` (`None`: taken back). Asking for
/// what already is changes nothing and answers the same; each change is keyed by the seq of
/// the one before, so a retry after a failure completes it without doubling it.
pub async fn react(
    shared: &Shared,
    visitor: &Visitor,
    id: &str,
    key: Option<String>,
) -> Result<Reacted, ApiError> {
    let record = match shared.store.message(id).await? {
        Some(record) if record.visitor == visitor.id && record.from == Author::Agent => record,
        _ => {
            return Err(ApiError::NotFound(
                "There is no such agent message in this chat.".into(),
            ))
        }
    };
    if record.reaction == key {
        return Ok(Reacted {
            id: id.to_owned(),
            key,
            seq: record.reaction_seq,
        });
    }
    if record.deleted && key.is_some() {
        return Err(ApiError::Conflict("The message was deleted.".into()));
    }
    let change = format!("reaction.{id}.{}", record.reaction_seq);
    let ts = now_ms();
    let event = InboundEvent::Reaction {
        remote_id: id.to_owned(),
        key: key.clone(),
    };
    let entry = Entry::Reaction {
        id: id.to_owned(),
        from: Author::Visitor,
        key: key.clone(),
        ts,
    };
    let reacted = |seq| {
        vec![(
            id.to_owned(),
            MessageRecord {
                reaction: key.clone(),
                reaction_seq: seq,
                ..record.clone()
            },
        )]
    };
    let seq = hand_over_with_entry(shared, visitor, change, ts, event, &entry, &reacted).await?;
    publish(shared, &visitor.id, &entry, seq);
    Ok(Reacted {
        id: id.to_owned(),
        key,
        seq,
    })
}

/// The visitor has seen the agents' messages up to and including `up_to` (an agent message).
pub async fn read_up_to(shared: &Shared, visitor: &Visitor, up_to: &str) -> Result<(), ApiError> {
    match shared.store.message(up_to).await? {
        Some(record) if record.visitor == visitor.id && record.from == Author::Agent => {}
        _ => {
            return Err(ApiError::NotFound(
                "There is no such agent message in this chat.".into(),
            ))
        }
    }
    hand_over(
        shared,
        visitor,
        format!("read.{up_to}"),
        now_ms(),
        InboundEvent::Read {
            remote_id: up_to.to_owned(),
        },
    )
    .await?;
    Ok(())
}

/// Hand one of the visitor's events to the core's inbox (the first step of every action: only
/// after it succeeds does the visitor get an answer). `dedup_key` names the action, so a retry
/// is stored once.
pub async fn hand_over(
    shared: &Shared,
    visitor: &Visitor,
    dedup_key: String,
    timestamp_ms: i64,
    event: InboundEvent,
) -> Result<(), ApiError> {
    let inbound = inbound_of(shared, visitor, dedup_key, timestamp_ms, event);
    shared.host().receive(inbound).await?;
    Ok(())
}

/// [`hand_over`], with the visitor's transcript entry (keyed by `dedup_key`) and the message
/// records `records` gives for its seq stored in the same transaction; the entry's seq.
#[allow(clippy::too_many_arguments)]
async fn hand_over_with_entry(
    shared: &Shared,
    visitor: &Visitor,
    dedup_key: String,
    timestamp_ms: i64,
    event: InboundEvent,
    entry: &Entry,
    records: &(dyn Fn(i64) -> Vec<(String, MessageRecord)> + Send + Sync),
) -> Result<i64, ApiError> {
    let key = dedup_key.clone();
    let inbound = inbound_of(shared, visitor, dedup_key, timestamp_ms, event);
    Ok(shared
        .store
        .receive_with_entry(inbound, &visitor.id, &key, entry, records)
        .await?)
}

/// The core's form of something the visitor did.
fn inbound_of(
    shared: &Shared,
    visitor: &Visitor,
    dedup_key: String,
    timestamp_ms: i64,
    event: InboundEvent,
) -> Inbound {
    Inbound {
        conversation: shared.conversation(&visitor.id),
        sender: visitor.profile(),
        timestamp_ms,
        dedup_key,
        event,
        addressed_to: None,
        group: None,
    }
}

/// Push a stored entry to the visitor's open streams.
pub fn publish(shared: &Shared, visitor_id: &str, entry: &Entry, seq: i64) {
    let event = Arc::new(transcript::present(entry, seq, &shared.base));
    shared.hub.publish(visitor_id, Live::Entry { seq, event });
}
