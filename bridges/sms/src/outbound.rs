//! Operators' messages to the customer: `Channel::send`.
//!
//! One operator message is one Twilio message: the text as `Body` (Twilio splits anything over
//! one segment and the phone joins the parts; 1600 characters at most, which the core checks
//! from the capabilities), files as `MediaUrl`s pointing at the bridge's own signed links
//! (`links`), since Twilio only takes media it can download. It goes out from the number the
//! customer wrote to (the conversation's account) when that is one of `numbers`, else through
//! the Messaging Service. `StatusCallback` is the bridge's `/sms/status`, so delivery reports
//! and late failures come back into the room.
//!
//! **Idempotency.** Twilio's Messages API has no idempotency key. So the channel keeps, per
//! outbox item, `out:<idempotency_key>` in its state: `pending:<time>` is written *before* the
//! request and `sent:<MessageSid>` after Twilio accepted it (`failed` when Twilio refused it, so
//! it was not sent). A retry that finds `sent:` answers from state; one that finds `pending:`
//! (the bridge crashed or lost the connection mid-request) asks Twilio for the recent messages
//! to that customer and takes the newest one with the same body that no other item has claimed
//! (`sid:<MessageSid>` records every message the bridge sent) instead of sending again. What is
//! left: if Twilio accepted a message but had not listed it yet when the retry looked, or if an
//! identical text to the same customer was sent by someone else in between, the retry can still
//! send once more or skip once; no client-side bookkeeping closes that completely.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use switchboard_channel::{
    ConversationKey, Delivery, HostError, Outbound, OutboundAction, SendError,
};

use crate::client::{NewMessage, Sender};
use crate::Shared;

/// Twilio takes at most this many `MediaUrl`s per message.
const MAX_MEDIA: usize = 10;

/// Where a message the bridge sent belongs: kept under `sid:<MessageSid>` so its status
/// callbacks land in the right room even when Twilio reports another sender number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentRecord {
    pub account: String,
    pub chat: String,
}

use switchboard_kit::send::{host_unavailable, permanent};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Which sender a conversation's replies go out from.
pub fn sender_for(shared: &Shared, conversation: &ConversationKey) -> Sender {
    if shared.own_numbers.contains(&conversation.account) {
        return Sender::From(conversation.account.clone());
    }
    match &shared.config.messaging_service_sid {
        Some(sid) => Sender::Service(sid.clone()),
        None => Sender::From(conversation.account.clone()),
    }
}

/// `Channel::send`.
pub async fn send(shared: &Shared, outbound: &Outbound) -> Result<Delivery, SendError> {
    let OutboundAction::Message { content, .. } = &outbound.action else {
        return Err(permanent(
            "SMS cannot edit, delete, react to or template messages",
        ));
    };
    if content.attachments.len() > MAX_MEDIA {
        return Err(permanent(format!(
            "an MMS carries at most {MAX_MEDIA} files; send them in several messages"
        )));
    }
    let conversation = &outbound.conversation;
    let to = conversation.chat.as_str();
    let sender = sender_for(shared, conversation);
    let key = format!("out:{}", outbound.idempotency_key);
    let host = &shared.host;

    match host.state_get(&key).await.map_err(host_unavailable)? {
        Some(v) if v.starts_with("sent:") => {
            let sid = v.trim_start_matches("sent:").to_owned();
            tracing::info!(idempotency_key = %outbound.idempotency_key, sid, "sms: already sent; not sending again");
            return Ok(Delivery::sent(sid));
        }
        Some(v) if v.starts_with("pending:") => {
            if let Some(sid) = find_unclaimed(shared, to, &sender, &content.text).await? {
                tracing::warn!(idempotency_key = %outbound.idempotency_key, sid, "sms: an interrupted attempt was accepted by Twilio; not sending again");
                remember_sent(shared, &key, &sid, conversation).await;
                return Ok(Delivery::sent(sid));
            }
            tracing::info!(idempotency_key = %outbound.idempotency_key, "sms: an interrupted attempt never reached Twilio; sending");
        }
        _ => {}
    }

    let base = shared.config.public_base();
    let media_urls: Vec<String> = content
        .attachments
        .iter()
        .map(|a| format!("{base}/sms/media/{}", shared.links.token(&a.media)))
        .collect();
    if content.text.trim().is_empty() && media_urls.is_empty() {
        return Err(permanent("there is nothing to send"));
    }
    host.state_put(&key, &format!("pending:{}", now_secs()))
        .await
        .map_err(host_unavailable)?;
    let status_callback = shared.config.status_url();
    let message = NewMessage {
        to,
        sender: &sender,
        body: &content.text,
        status_callback: &status_callback,
        media_urls: &media_urls,
    };
    match shared.client.create_message(&message).await {
        Ok(created) => {
            tracing::debug!(sid = created.sid, status = ?created.status, "sms: message accepted by Twilio");
            remember_sent(shared, &key, &created.sid, conversation).await;
            Ok(Delivery::sent(created.sid))
        }
        Err(e) => {
            // A 4xx (429 included: "never processed") means nothing was created, so a retry may
            // send freely. A 5xx or a network error may hide an accepted message: `pending:`
            // stays, and the next attempt looks it up first.
            if matches!(e, crate::client::TwilioError::Api { status, .. } if status < 500) {
                if let Err(err) = host.state_put(&key, "failed").await {
                    tracing::warn!(error = %err, "sms: cannot record a refused attempt");
                }
            }
            tracing::warn!(error = %e, to, "sms: Twilio did not take the message");
            Err(e.classify())
        }
    }
}

/// Record a sent message: the item's key (answering later retries) and the message's
/// conversation (for its status callbacks). Failing to write is logged, not an error: the
/// message is out.
async fn remember_sent(shared: &Shared, key: &str, sid: &str, conversation: &ConversationKey) {
    let record = SentRecord {
        account: conversation.account.clone(),
        chat: conversation.chat.clone(),
    };
    let record = serde_json::to_string(&record).unwrap_or_default();
    if let Err(e) = shared.host.state_put(&format!("sid:{sid}"), &record).await {
        tracing::warn!(error = %e, sid, "sms: cannot remember where a sent message belongs");
    }
    if let Err(e) = shared.host.state_put(key, &format!("sent:{sid}")).await {
        tracing::warn!(error = %e, sid, "sms: sent but cannot remember the idempotency key");
    }
}

/// After an interrupted attempt: the newest message to `to` with this body that no other
/// outbox item claims, if Twilio has one.
async fn find_unclaimed(
    shared: &Shared,
    to: &str,
    sender: &Sender,
    body: &str,
) -> Result<Option<String>, SendError> {
    let from = match sender {
        Sender::From(n) => Some(n.as_str()),
        Sender::Service(_) => None,
    };
    let recent = shared
        .client
        .recent_messages(to, from)
        .await
        .map_err(|e| e.classify())?;
    for m in recent {
        if m.body.as_deref().map(str::trim) != Some(body.trim()) {
            continue;
        }
        let claimed = shared
            .host
            .state_get(&format!("sid:{}", m.sid))
            .await
            .map_err(host_unavailable)?;
        if claimed.is_none() {
            return Ok(Some(m.sid));
        }
    }
    Ok(None)
}

/// Where a status callback belongs: the conversation recorded when the message was sent, else
/// (a message sent before this bridge kept records, or from elsewhere) our number and the
/// customer's as Twilio reports them.
pub async fn conversation_of(shared: &Shared, sid: &str) -> Result<Option<SentRecord>, HostError> {
    Ok(shared
        .host
        .state_get(&format!("sid:{sid}"))
        .await?
        .and_then(|v| serde_json::from_str(&v).ok()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use switchboard_channel::Host;

    use super::*;
    use crate::test_host::{config, shared, MemoryHost, COMPANY};

    fn item(key: &str, account: &str, text: &str) -> Outbound {
        let conversation = ConversationKey {
            account: account.into(),
            chat: "+14155550142".into(),
        };
        switchboard_kit::test_host::text_item(&conversation, key, text)
    }

    /// An item already sent is answered from state, without a request (Twilio is unreachable
    /// here, so any request would fail); a new one tries and fails retryably, leaving `pending:`.
    #[tokio::test]
    async fn a_retry_of_a_sent_item_does_not_send_again() {
        let host = Arc::new(MemoryHost::default());
        let shared = shared(config("https://bridge.example"), Arc::clone(&host));
        host.state_put("out:$event1", "sent:SM777").await.unwrap();
        let delivery = send(&shared, &item("$event1", COMPANY, "hi"))
            .await
            .unwrap();
        assert_eq!(delivery.remote_id, "SM777");
        assert!(matches!(
            send(&shared, &item("$event2", COMPANY, "hi")).await,
            Err(SendError::Retryable { .. })
        ));
        assert!(host
            .state_get("out:$event2")
            .await
            .unwrap()
            .is_some_and(|v| v.starts_with("pending:")));
        // With `pending:` the retry must look Twilio up first; unreachable, so retryable again.
        assert!(matches!(
            send(&shared, &item("$event2", COMPANY, "hi")).await,
            Err(SendError::Retryable { .. })
        ));
    }

    #[tokio::test]
    async fn what_sms_cannot_do_is_refused_for_good() {
        let host = Arc::new(MemoryHost::default());
        let shared = shared(config("https://bridge.example"), host);
        let mut edit = item("$e", COMPANY, "x");
        edit.action = OutboundAction::Delete {
            remote_id: "SM1".into(),
        };
        assert!(matches!(
            send(&shared, &edit).await,
            Err(SendError::Permanent { .. })
        ));
        assert!(matches!(
            send(&shared, &item("$blank", COMPANY, "  ")).await,
            Err(SendError::Permanent { .. })
        ));
    }

    #[test]
    fn replies_leave_from_the_number_the_customer_wrote_to() {
        let host = Arc::new(MemoryHost::default());
        let mut c = config("https://bridge.example");
        let plain = shared(c.clone(), Arc::clone(&host));
        let conv = |account: &str| ConversationKey {
            account: account.into(),
            chat: "+14155550142".into(),
        };
        assert_eq!(
            sender_for(&plain, &conv(COMPANY)),
            Sender::From(COMPANY.into())
        );
        assert_eq!(
            sender_for(&plain, &conv("+14155550111")),
            Sender::From("+14155550111".into())
        );
        c.messaging_service_sid = Some(format!("MG{}", "1".repeat(32)));
        let service = shared(c, host);
        assert_eq!(
            sender_for(&service, &conv(COMPANY)),
            Sender::From(COMPANY.into())
        );
        assert_eq!(
            sender_for(&service, &conv("+14155550111")),
            Sender::Service(format!("MG{}", "1".repeat(32)))
        );
    }
}
