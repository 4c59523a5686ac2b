//! Operators' actions delivered to the customer: `Channel::send` (messages with files and
//! replies, edits, deletions, reactions, rating questions) and the bot's typing indicator.
//!
//! * **Text**: the core's HTML becomes Discord markdown ([`crate::markdown::html_to_markdown`]);
//!   plain text is escaped so it shows as typed. Discord takes 2000 characters; a conversion
//!   that grows past that falls back to the plain text. Mentions are never parsed
//!   (`allowed_mentions: {parse: []}`), so an operator cannot ping anyone by accident.
//! * **Files** go in the same request as the text: multipart with `payload_json` and
//!   `files[n]`, each declared in `attachments` with its name.
//! * **Replies** carry `message_reference` (`fail_if_not_exists: false`, so a reply to a
//!   message deleted meanwhile is still sent).
//! * **Idempotency**: every create carries a `nonce` derived from the outbox item's idempotency
//!   key with `enforce_nonce: true`, so Discord answers a retry with the message it already
//!   created instead of a second one; as nonces are only checked for a few minutes, the id is
//!   also remembered under `out:<key>` in the channel's state and a later retry returns it.
//! * **Rating questions**: a message whose buttons are the choices ([`crate::rating`]), with
//!   the same nonce and record as a message.
//! * **Reactions**: `PUT`/`DELETE /channels/{id}/messages/{id}/reactions/{emoji}/@me`. Only an
//!   emoji is sent (Matrix allows text keys, Discord answers them 10014 Unknown Emoji); the
//!   bot's reaction is remembered per message, so a new one replaces it and a redaction knows
//!   which emoji to take back.

use std::sync::Arc;

use serde_json::{json, Value};
use switchboard_channel::{
    Content, ConversationKey, Delivery, Host, Outbound, OutboundAction, SendError,
};
use switchboard_kit::send::{attachment_bytes, host_unavailable, permanent, SentRecord};

use crate::config::MAX_TEXT_CHARS;
use crate::markdown;
use crate::rest::{classify, Rest, Upload};

/// What `send` needs.
pub struct Outgoing {
    pub rest: Rest,
    pub host: Arc<dyn Host>,
}

/// A Discord nonce (at most 25 characters) for an idempotency key: 128 bits of two FNV-1a
/// hashes in base 36.
pub fn nonce(key: &str) -> String {
    let fnv = |seed: u64| {
        key.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let mut n =
        (u128::from(fnv(0xcbf2_9ce4_8422_2325)) << 64) | u128::from(fnv(0x8422_2325_cbf2_9ce4));
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    while n > 0 {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    let s = String::from_utf8(out).unwrap_or_default();
    if s.is_empty() {
        "0".into()
    } else {
        s
    }
}

/// The message text for Discord.
pub fn discord_text(content: &Content) -> String {
    let converted = match &content.html {
        Some(html) => markdown::html_to_markdown(html),
        None => markdown::escape_markdown(&content.text),
    };
    if converted.chars().count() <= MAX_TEXT_CHARS {
        return converted;
    }
    if content.text.chars().count() <= MAX_TEXT_CHARS {
        return content.text.clone();
    }
    let mut cut: String = content.text.chars().take(MAX_TEXT_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Deliver one outbound item.
pub async fn send(out: &Outgoing, outbound: &Outbound) -> Result<Delivery, SendError> {
    let channel = &outbound.conversation.chat;
    match &outbound.action {
        OutboundAction::Message { content, reply_to } => {
            // Discord's nonce also protects a quick retry.
            let record = SentRecord::new(out.host.as_ref(), "discord", outbound);
            if let Some(done) = record.recall().await? {
                return Ok(Delivery::delivered(done));
            }
            let mut payload = json!({
                "nonce": nonce(&outbound.idempotency_key),
                "enforce_nonce": true,
                "allowed_mentions": {"parse": []},
            });
            let text = discord_text(content);
            if !text.is_empty() {
                payload["content"] = text.into();
            }
            if let Some(target) = reply_to {
                payload["message_reference"] = json!({"message_id": target, "channel_id": channel, "fail_if_not_exists": false});
            }
            let mut files = Vec::new();
            let mut declared = Vec::new();
            for (n, a) in content.attachments.iter().enumerate() {
                let (bytes, mime) = attachment_bytes(out.host.as_ref(), a).await?;
                declared.push(json!({"id": n, "filename": a.name}));
                files.push(Upload {
                    name: a.name.clone(),
                    mime,
                    bytes,
                });
            }
            if !declared.is_empty() {
                payload["attachments"] = Value::Array(declared);
            }
            if payload.get("content").is_none() && files.is_empty() {
                return Err(SendError::Permanent {
                    reason: "nothing to send: the message is empty".into(),
                });
            }
            let message = out
                .rest
                .create_message(channel, &payload, &files)
                .await
                .map_err(classify)?;
            record.remember(&message.id).await;
            Ok(Delivery::delivered(message.id))
        }
        OutboundAction::Edit { remote_id, content } => {
            let payload =
                json!({"content": discord_text(content), "allowed_mentions": {"parse": []}});
            out.rest
                .edit_message(channel, remote_id, &payload)
                .await
                .map_err(classify)?;
            Ok(Delivery::delivered(remote_id.clone()))
        }
        OutboundAction::Delete { remote_id } => {
            // Discord echoes the deletion over the gateway; it must not come back as the
            // customer deleting something.
            if let Err(e) = out
                .host
                .state_put(&deleted_key(channel, remote_id), "1")
                .await
            {
                tracing::debug!(error = %e, "discord: cannot remember a deletion");
            }
            match out.rest.delete_message(channel, remote_id).await {
                Ok(()) => {}
                // Already gone: that is what was asked.
                Err(crate::rest::RestError::Api { error, .. })
                    if error.code == crate::rest::codes::UNKNOWN_MESSAGE => {}
                Err(e) => return Err(classify(e)),
            }
            Ok(Delivery::delivered(remote_id.clone()))
        }
        OutboundAction::React { remote_id, key } => {
            react(out, channel, remote_id, key.as_deref()).await?;
            Ok(Delivery::delivered(remote_id.clone()))
        }
        OutboundAction::Template { .. } => Err(SendError::Permanent {
            reason: "Discord has no message templates".into(),
        }),
        OutboundAction::RatingRequest(request) => {
            let record = SentRecord::new(out.host.as_ref(), "discord", outbound);
            if let Some(done) = record.recall().await? {
                return Ok(Delivery::delivered(done));
            }
            let mut payload = crate::rating::payload(request)?;
            payload["nonce"] = nonce(&outbound.idempotency_key).into();
            payload["enforce_nonce"] = true.into();
            let message = out
                .rest
                .create_message(channel, &payload, &[])
                .await
                .map_err(classify)?;
            record.remember(&message.id).await;
            Ok(Delivery::delivered(message.id))
        }
    }
}

/// The state key holding the bot's reaction on a message (one, as the core keeps one per
/// message; Discord would keep one per emoji).
fn reaction_key(channel: &str, message: &str) -> String {
    format!("reaction:{channel}:{message}")
}

/// Set the bot's reaction on a message to `key`, or take it back (`None`). Discord keeps a
/// reaction per emoji, so a new one replaces the old by taking the old one back.
async fn react(
    out: &Outgoing,
    channel: &str,
    message: &str,
    key: Option<&str>,
) -> Result<(), SendError> {
    let state = reaction_key(channel, message);
    let previous = out
        .host
        .state_get(&state)
        .await
        .map_err(host_unavailable)?
        .filter(|p| !p.is_empty());
    if let Some(key) = key {
        if !switchboard_kit::reaction::is_emoji(key) {
            return Err(permanent(format!(
                "Discord takes only emoji as reactions; the reaction {key:?} was not sent"
            )));
        }
        out.rest
            .own_reaction(channel, message, key, true)
            .await
            .map_err(classify)?;
    }
    if let Some(previous) = previous.filter(|p| Some(p.as_str()) != key) {
        match out
            .rest
            .own_reaction(channel, message, &previous, false)
            .await
        {
            Ok(()) => {}
            // The message is gone, and the reaction with it.
            Err(crate::rest::RestError::Api { error, .. })
                if error.code == crate::rest::codes::UNKNOWN_MESSAGE => {}
            Err(e) => return Err(classify(e)),
        }
    }
    out.host
        .state_put(&state, key.unwrap_or(""))
        .await
        .map_err(host_unavailable)
}

/// The state key marking a message the bridge deleted itself.
pub fn deleted_key(channel: &str, id: &str) -> String {
    format!("deleted:{channel}:{id}")
}

/// Show the bot typing (Discord shows it for about 10 s; there is no "stop").
pub async fn typing(out: &Outgoing, conversation: &ConversationKey, active: bool) {
    if !active {
        return;
    }
    if let Err(e) = out.rest.trigger_typing(&conversation.chat).await {
        tracing::debug!(error = %e, "discord: typing indicator not sent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_short_and_stable() {
        let a = nonce("$abcdefghijklmnopqrstuvwxyz0123456789:example.org");
        assert!(a.len() <= 25, "{a}");
        assert_eq!(
            a,
            nonce("$abcdefghijklmnopqrstuvwxyz0123456789:example.org")
        );
        assert_ne!(a, nonce("$other"));
    }

    #[test]
    fn long_text_falls_back_to_plain() {
        let text = "x".repeat(1990);
        let content = Content {
            text: text.clone(),
            html: Some(format!("<b>{text}</b>{}", "<i>y</i>".repeat(10))),
            attachments: vec![],
        };
        assert_eq!(discord_text(&content), text);
        let content = Content {
            text: "a_b".into(),
            html: None,
            attachments: vec![],
        };
        assert_eq!(discord_text(&content), "a\\_b");
    }
}
