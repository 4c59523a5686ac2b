//! An answer to a customer who has left: continued by another channel.
//!
//! Some channels reach their customers only while a page is open (the web chat). When such a
//! channel says the customer has left (`Channel::customer_left`: no chat page open for its
//! configured time), the customer gave an address (the contact's e-mail) and the bridge is
//! configured to continue conversations elsewhere (`bridge.continue_by`: a channel and the
//! account it sends from), an operator's message goes out by that channel instead:
//!
//! 1. The conversation gets a second key, the one the other channel knows it by
//!    (`continued.<conversation id>` under the configured account; [`crate::store::continued`]),
//!    written before the send so the customer's reply — which the other channel reports under
//!    that key — is stored in the same conversation and lands in the same room.
//! 2. The other channel sends with `Channel::send_continued`, which begins the conversation
//!    with the customer's address the first time (e-mail: a new thread with the configured
//!    subject) and answers in it after that. The outbox item's idempotency key is passed on,
//!    so a retry never sends twice.
//! 3. The room is told, once per message: "✉️ Sent by email to …: the customer had left the
//!    chat.", replying to the operator's message.
//!
//! Only new messages go this way; edits, deletions and reactions stay on the customer's
//! channel (where the transcript shows them when they come back). The core never names a
//! channel here: which one continues is configuration.

use switchboard_channel::{
    Begin, Channel, ConversationKey, Delivery, Outbound, OutboundAction, SendError,
};

use crate::bridge::Bridge;
use crate::matrix::content;
use crate::store::continued::Continued;
use crate::store::conversations::Conversation;
use crate::store::outbox::OutboxRow;

/// How an item went out by another channel: the delivery and the notice for the room.
pub struct Elsewhere {
    pub result: Result<Delivery, SendError>,
    /// The channel that carried it (for metrics and the status).
    pub channel: String,
}

/// Send `row` by the configured other channel when its customer has left `channel`; `None`
/// when it goes the usual way.
pub async fn elsewhere(
    bridge: &Bridge,
    conversation: &Conversation,
    channel: &dyn Channel,
    row: &OutboxRow,
) -> Option<Elsewhere> {
    if !matches!(row.outbound.action, OutboundAction::Message { .. }) {
        return None;
    }
    let by = bridge.config.bridge.continue_by.as_ref()?;
    if by.channel == conversation.channel {
        return None;
    }
    let other = bridge.channel(&by.channel)?;
    let key = ConversationKey {
        account: conversation.account.clone(),
        chat: conversation.chat.clone(),
    };
    let left = channel.customer_left(&key).await?;
    let contact = match bridge
        .store
        .contact(&conversation.channel, &conversation.contact_id)
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => return None,
        Err(e) => {
            return Some(Elsewhere {
                result: Err(super::store_unavailable(e)),
                channel: by.channel.clone(),
            })
        }
    };
    let address = contact.email.clone().filter(|e| e.contains('@'))?;
    let wanted = Continued {
        channel: by.channel.clone(),
        account: by.account.clone(),
        chat: format!("continued.{}", conversation.id),
        address: address.clone(),
    };
    let continued = match bridge.store.continue_on(conversation.id, &wanted).await {
        Ok(c) => c,
        Err(e) => {
            return Some(Elsewhere {
                result: Err(super::store_unavailable(e)),
                channel: by.channel.clone(),
            })
        }
    };
    tracing::info!(
        conversation = conversation.id,
        left_at = left,
        via = %by.channel,
        "the customer has left; the answer is continued by another channel"
    );
    let outbound = Outbound {
        conversation: ConversationKey {
            account: continued.account.clone(),
            chat: continued.chat.clone(),
        },
        idempotency_key: row.outbound.idempotency_key.clone(),
        action: row.outbound.action.clone(),
        participants: Vec::new(),
    };
    let begin = Begin {
        address: continued.address.clone(),
        name: contact.display_name.clone(),
        subject: by.subject.clone(),
    };
    let result = other.send_continued(&outbound, &begin).await;
    if result.is_ok() {
        let text = format!(
            "✉️ Sent by {} to {}: the customer had left the chat.",
            by.channel, continued.address
        );
        let mut notice = content::notice(&text);
        notice["m.relates_to"] = serde_json::json!({"m.in_reply_to": {"event_id": row.event_id}});
        if let Err(e) = bridge
            .homeserver
            .send(
                &row.room_id,
                "m.room.message",
                &format!("sb-continued-{}", row.id),
                &notice,
                None,
                None,
            )
            .await
        {
            tracing::warn!(error = %e, "the continued-by notice was not posted");
        }
    }
    Some(Elsewhere {
        result,
        channel: by.channel.clone(),
    })
}
