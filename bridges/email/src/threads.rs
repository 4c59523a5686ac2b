//! Threads ↔ conversations, kept in the channel's durable state.
//!
//! An email conversation is keyed by its mailbox (the account) and the Message-ID of the mail
//! that started the thread (the chat). Keys, all through `Host::state_*`:
//!
//! * `mid:<message-id>` → [`MessageRecord`]: the conversation a mail belongs to, for both the
//!   mail we received and the mail we sent. A reply's In-Reply-To / References find its room
//!   through these, whichever of our mailboxes it was sent to.
//! * `thread:<account>:<root>` → [`Thread`]: the customer's address, the subject and the chain
//!   of Message-IDs, for the headers of our answers.
//! * `sent:<idempotency key>` → the Message-ID of the mail sent for that outbox item.
//! * `uid:<mailbox>` → `<uidvalidity>:<last uid>` stored, see `imap`.

use serde::{Deserialize, Serialize};
use switchboard_channel::{ConversationKey, Host, HostError};

/// How many Message-IDs a thread keeps for References (the root plus the latest ones).
const MAX_REFERENCES: usize = 30;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub account: String,
    pub chat: String,
    /// True for mail we sent (so a bounce that returns it becomes a failure notice).
    #[serde(default)]
    pub ours: bool,
}

impl MessageRecord {
    pub fn conversation(&self) -> ConversationKey {
        ConversationKey {
            account: self.account.clone(),
            chat: self.chat.clone(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    /// The customer's address (where answers go).
    pub contact: String,
    #[serde(default)]
    pub contact_name: Option<String>,
    /// Subject without `Re:`/`Fwd:` prefixes.
    pub subject: String,
    /// Message-IDs of the thread, oldest first (root first).
    pub ids: Vec<String>,
}

impl Thread {
    pub fn push(&mut self, id: &str) {
        if self.ids.iter().any(|i| i == id) {
            return;
        }
        self.ids.push(id.to_string());
        if self.ids.len() > MAX_REFERENCES {
            // Keep the root, drop the oldest of the rest.
            self.ids.remove(1);
        }
    }
}

pub async fn message(host: &dyn Host, id: &str) -> Result<Option<MessageRecord>, HostError> {
    Ok(host
        .state_get(&format!("mid:{id}"))
        .await?
        .and_then(|v| serde_json::from_str(&v).ok()))
}

pub async fn put_message(
    host: &dyn Host,
    id: &str,
    record: &MessageRecord,
) -> Result<(), HostError> {
    let value = serde_json::to_string(record).map_err(|e| HostError::Store(e.to_string()))?;
    host.state_put(&format!("mid:{id}"), &value).await
}

fn thread_key(c: &ConversationKey) -> String {
    format!("thread:{}:{}", c.account, c.chat)
}

pub async fn thread(host: &dyn Host, c: &ConversationKey) -> Result<Option<Thread>, HostError> {
    Ok(host
        .state_get(&thread_key(c))
        .await?
        .and_then(|v| serde_json::from_str(&v).ok()))
}

pub async fn put_thread(
    host: &dyn Host,
    c: &ConversationKey,
    thread: &Thread,
) -> Result<(), HostError> {
    let value = serde_json::to_string(thread).map_err(|e| HostError::Store(e.to_string()))?;
    host.state_put(&thread_key(c), &value).await
}

/// The subject without reply/forward prefixes (`Re:`, `RE:`, `Fwd:`, `AW:`, `Ответ:`, `[tag]`…).
pub fn base_subject(subject: &str) -> String {
    let mut s = subject.trim();
    loop {
        let lower = s.to_lowercase();
        let mut stripped = false;
        for p in [
            "re:",
            "fw:",
            "fwd:",
            "aw:",
            "wg:",
            "sv:",
            "vs:",
            "antw:",
            "ответ:",
            "отв:",
            "re :",
            "tr:",
        ] {
            if lower.starts_with(p) {
                // Prefixes are ASCII or whole Cyrillic words; lengths in bytes match in both.
                let cut = s
                    .char_indices()
                    .nth(p.chars().count())
                    .map(|(i, _)| i)
                    .unwrap_or(s.len());
                s = s[cut..].trim_start();
                stripped = true;
                break;
            }
        }
        if !stripped {
            return s.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn subjects_lose_their_prefixes() {
        assert_eq!(super::base_subject("Re: RE: Fwd: Order 5"), "Order 5");
        assert_eq!(super::base_subject("Ответ: Заказ"), "Заказ");
        assert_eq!(super::base_subject("Order"), "Order");
    }
}
