//! What operators do, delivered to the visitor: `Channel::send` (messages, edits, deletes,
//! reactions),
//! `Channel::typing` and `Channel::mark_read`.
//!
//! "Delivering" to a web visitor means writing to their durable transcript and pushing to their
//! open streams; the browser fetches what it missed when it comes back. So a send is
//! `delivered: true` once the transcript entry is stored.
//!
//! Retries from the core's outbox must not double-post. The remote id of an agent message is
//! derived from the outbox's `idempotency_key` (a hash), the transcript entry is appended under
//! that key, and every state write is an overwrite with the same value — a retry after a crash
//! at any point ends in the same state and returns the same remote id.

use switchboard_channel::{
    Content, ConversationKey, Delivery, Outbound, OutboundAction, SendError,
};
use switchboard_kit::now_ms;
use switchboard_kit::send::{host_unavailable, permanent};

use crate::config::MAX_TEXT_CHARS;
use crate::hub::Live;
use crate::inbound::publish;
use crate::sanitize;
use crate::state::Shared;
use crate::store::{sha256_hex, FileRecord, MessageRecord};
use crate::transcript::{Author, Entry, FileEntry};

const GONE: &str = "the visitor's chat session no longer exists";

/// The remote id of an agent message: stable for one outbox item, unique across them.
pub fn agent_message_id(conversation: &ConversationKey, idempotency_key: &str) -> String {
    let digest = sha256_hex(&format!(
        "{}\n{}\n{}",
        conversation.account, conversation.chat, idempotency_key
    ));
    format!("a.{}", &digest[..24])
}

/// The visitor of a conversation, if it is one of ours and still exists.
async fn visitor_of(shared: &Shared, conversation: &ConversationKey) -> Result<String, SendError> {
    if conversation.account != shared.config.account {
        return Err(permanent(format!(
            "this web chat serves the account \"{}\", not \"{}\"",
            shared.config.account, conversation.account
        )));
    }
    if shared
        .store
        .visitor_exists(&conversation.chat)
        .await
        .map_err(host_unavailable)?
    {
        Ok(conversation.chat.clone())
    } else {
        Err(permanent(GONE))
    }
}

fn check_length(content: &Content) -> Result<(), SendError> {
    let chars = content.text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(permanent(format!(
            "the message is {chars} characters long; the web chat carries at most {MAX_TEXT_CHARS}"
        )));
    }
    Ok(())
}

/// An agent message of this visitor that may still be changed.
async fn agent_message(
    shared: &Shared,
    visitor: &str,
    remote_id: &str,
) -> Result<MessageRecord, SendError> {
    match shared
        .store
        .message(remote_id)
        .await
        .map_err(host_unavailable)?
    {
        Some(record) if record.visitor == visitor && record.from == Author::Agent => Ok(record),
        Some(record) if record.visitor == visitor => Err(permanent(
            "the visitor's own messages cannot be changed from here",
        )),
        _ => Err(permanent(
            "that message is not in this web chat conversation",
        )),
    }
}

/// `Channel::send`.
pub async fn send(shared: &Shared, outbound: &Outbound) -> Result<Delivery, SendError> {
    let visitor = visitor_of(shared, &outbound.conversation).await?;
    // Our own log key for the outbox item; prefixed so it can never meet a visitor-side key.
    let key = format!("out.{}", outbound.idempotency_key);
    let remote_id = match &outbound.action {
        OutboundAction::Message { content, reply_to } => {
            let remote_id = agent_message_id(&outbound.conversation, &outbound.idempotency_key);
            send_message(
                shared,
                &visitor,
                &key,
                &remote_id,
                content,
                reply_to.clone(),
            )
            .await?;
            remote_id
        }
        OutboundAction::Edit { remote_id, content } => {
            check_length(content)?;
            let record = agent_message(shared, &visitor, remote_id).await?;
            if record.deleted {
                return Err(permanent("the message was deleted and cannot be edited"));
            }
            let entry = Entry::Edit {
                id: remote_id.clone(),
                text: content.text.clone(),
                html: content.html.clone(),
                ts: now_ms(),
            };
            let seq = append(shared, &visitor, &key, &entry).await?;
            publish(shared, &visitor, &entry, seq);
            remote_id.clone()
        }
        OutboundAction::Delete { remote_id } => {
            let record = agent_message(shared, &visitor, remote_id).await?;
            let entry = Entry::Delete {
                id: remote_id.clone(),
                ts: now_ms(),
            };
            let deleted = |_| {
                vec![(
                    remote_id.clone(),
                    MessageRecord {
                        deleted: true,
                        ..record.clone()
                    },
                )]
            };
            let seq = shared
                .store
                .append_with_records(&visitor, &key, &entry, &deleted)
                .await
                .map_err(host_unavailable)?;
            publish(shared, &visitor, &entry, seq);
            remote_id.clone()
        }
        OutboundAction::React {
            remote_id,
            key: reaction,
        } => {
            // Any message of this chat (usually the visitor's); the entry is keyed by the
            // outbox item, so a retry appends nothing new.
            match shared
                .store
                .message(remote_id)
                .await
                .map_err(host_unavailable)?
            {
                Some(record) if record.visitor == visitor => {}
                _ => {
                    return Err(permanent(
                        "that message is not in this web chat conversation",
                    ))
                }
            }
            if let Some(emoji) = reaction.as_deref() {
                if !switchboard_kit::reaction::is_emoji(emoji) {
                    return Err(permanent(format!(
                        "the web chat shows only emoji as reactions; the reaction {emoji:?} was not sent"
                    )));
                }
            }
            let entry = Entry::Reaction {
                id: remote_id.clone(),
                from: Author::Agent,
                key: reaction.clone(),
                ts: now_ms(),
            };
            let seq = append(shared, &visitor, &key, &entry).await?;
            publish(shared, &visitor, &entry, seq);
            remote_id.clone()
        }
        OutboundAction::Template { .. } => {
            return Err(permanent("the web chat has no message templates"));
        }
        OutboundAction::RatingRequest(request) => {
            let remote_id = agent_message_id(&outbound.conversation, &outbound.idempotency_key);
            crate::rating::ask(shared, &visitor, &key, &remote_id, request).await?;
            remote_id
        }
    };
    Ok(Delivery::delivered(remote_id))
}

/// A new agent message: file records first (so the links work as soon as the entry is visible),
/// then the transcript entry, the message record and the live push.
async fn send_message(
    shared: &Shared,
    visitor: &str,
    key: &str,
    remote_id: &str,
    content: &Content,
    reply_to: Option<String>,
) -> Result<(), SendError> {
    check_length(content)?;
    let mut files = Vec::with_capacity(content.attachments.len());
    for (index, attachment) in content.attachments.iter().enumerate() {
        // Derived, not random: a retried send writes the same records again.
        let file_id = sha256_hex(&format!("{remote_id}:{index}"))[..32].to_owned();
        let name = sanitize::file_name(&attachment.name);
        let record = FileRecord {
            media: attachment.media.clone(),
            name: name.clone(),
            mime: attachment.mime.clone(),
            size: attachment.size,
        };
        shared
            .store
            .put_file(visitor, &file_id, &record)
            .await
            .map_err(host_unavailable)?;
        files.push(FileEntry {
            file_id,
            name,
            mime: attachment.mime.clone(),
            size: attachment.size,
        });
    }
    let entry = Entry::Message {
        id: remote_id.to_owned(),
        from: Author::Agent,
        text: content.text.clone(),
        html: content.html.clone(),
        attachments: files,
        reply_to,
        ts: now_ms(),
    };
    // The message's record is stored with its transcript entry, in one transaction: known as
    // a message of this chat as soon as the visitor can see it (a visitor answering at once
    // must find its reply target).
    let record = |seq| {
        vec![(
            remote_id.to_owned(),
            MessageRecord {
                visitor: visitor.to_owned(),
                from: Author::Agent,
                seq,
                deleted: false,
                reaction: None,
                reaction_seq: 0,
            },
        )]
    };
    let seq = shared
        .store
        .append_with_records(visitor, key, &entry, &record)
        .await
        .map_err(host_unavailable)?;
    publish(shared, visitor, &entry, seq);
    Ok(())
}

/// Write an agent's action into the visitor's transcript; returns its seq. The store's
/// trouble is retried by the outbox.
async fn append(
    shared: &Shared,
    visitor: &str,
    key: &str,
    entry: &Entry,
) -> Result<i64, SendError> {
    shared
        .store
        .append(visitor, key, entry)
        .await
        .map_err(host_unavailable)
}

/// `Channel::typing`: an operator started or stopped typing.
pub fn typing(shared: &Shared, conversation: &ConversationKey, active: bool) {
    if conversation.account == shared.config.account {
        shared
            .hub
            .publish(&conversation.chat, Live::Typing { active });
    }
}

/// `Channel::mark_read`: operators have read the visitor's messages up to `remote_id`.
pub async fn mark_read(shared: &Shared, conversation: &ConversationKey, remote_id: &str) {
    if conversation.account != shared.config.account {
        return;
    }
    let visitor = &conversation.chat;
    match shared.store.message(remote_id).await {
        Ok(Some(record)) if &record.visitor == visitor && record.from == Author::Visitor => {}
        Ok(_) => {
            tracing::debug!(%remote_id, %visitor, "webchat: read marker for a message that is not the visitor's; ignored");
            return;
        }
        Err(error) => {
            tracing::warn!(%error, "webchat: could not record a read marker");
            return;
        }
    }
    let entry = Entry::Read {
        up_to: remote_id.to_owned(),
        ts: now_ms(),
    };
    match shared
        .store
        .append(visitor, &format!("seen.{remote_id}"), &entry)
        .await
    {
        Ok(seq) => publish(shared, visitor, &entry, seq),
        Err(error) => tracing::warn!(%error, "webchat: could not record a read marker"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids_are_stable_and_distinct() {
        let conv = ConversationKey {
            account: "website".into(),
            chat: "v1".into(),
        };
        let other = ConversationKey {
            account: "website".into(),
            chat: "v2".into(),
        };
        let id = agent_message_id(&conv, "$event1");
        assert_eq!(id, agent_message_id(&conv, "$event1"));
        assert_ne!(id, agent_message_id(&conv, "$event2"));
        assert_ne!(id, agent_message_id(&other, "$event1"));
        assert!(id.starts_with("a.") && id.len() == 26);
    }
}
