//! The visitor's transcript: what each entry stores and how it is shown to the browser.
//!
//! A conversation's transcript is the durable log `conv:<visitor_id>` kept by the core for us
//! (`Host::log_append`, idempotent by key). Its sequence numbers are the `seq` / SSE `id` of the
//! public API, so "give me everything after 41" is one log read. Entries are stored as
//! [`Entry`] and leave the server only through [`present`], which is the single place that
//! adds download URLs and re-sanitises agent HTML — history and live events look the same.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::sanitize;

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Author {
    Visitor,
    Agent,
}

/// A file in a transcript entry. `file_id` is ours; the download URL is derived from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub file_id: String,
    pub name: String,
    pub mime: String,
    pub size: u64,
}

/// One stored transcript entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    /// A new message from the visitor or an agent.
    Message {
        id: String,
        from: Author,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        html: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<FileEntry>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
        ts: i64,
    },
    /// A message's text changed.
    Edit {
        id: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        html: Option<String>,
        ts: i64,
    },
    /// A message was deleted.
    Delete { id: String, ts: i64 },
    /// The agents have read the visitor's messages up to and including `up_to`.
    Read { up_to: String, ts: i64 },
    /// The team asks the visitor to rate the conversation ([`crate::rating`]): the question and
    /// its choices (score, label and the payload a click sends back, as `kit::rating` makes
    /// them), shown as stars.
    Rating {
        id: String,
        question: String,
        choices: Vec<RatingChoiceEntry>,
        ts: i64,
    },
    /// The visitor chose `score` on the rating request `id`.
    Rated { id: String, score: u8, ts: i64 },
    /// The visitor's or the agents' reaction to message `id` is now `key` (`None`: none). One
    /// per side and message; the newest replaces the one before.
    Reaction {
        id: String,
        from: Author,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        ts: i64,
    },
}

/// One choice of a [`Entry::Rating`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingChoiceEntry {
    pub score: u8,
    pub label: String,
    pub payload: String,
}

/// The public URL of a file of this channel (append `?token=` or send the bearer token).
pub fn file_url(channel_base: &str, file_id: &str) -> String {
    format!("{channel_base}/api/v1/files/{file_id}")
}

/// The JSON a browser sees for a stored entry with its sequence number.
pub fn present(entry: &Entry, seq: i64, channel_base: &str) -> Value {
    // Agent HTML is sanitised again here, at the edge; visitor messages never carry HTML.
    let html = |html: &Option<String>| {
        html.as_deref()
            .map(sanitize::agent_html)
            .filter(|h| !h.is_empty())
    };
    match entry {
        Entry::Message {
            id,
            from,
            text,
            html: raw,
            attachments,
            reply_to,
            ts,
        } => {
            let attachments: Vec<Value> = attachments
                .iter()
                .map(|f| {
                    json!({
                        "file_id": f.file_id,
                        "name": f.name,
                        "mime": f.mime,
                        "size": f.size,
                        "url": file_url(channel_base, &f.file_id),
                    })
                })
                .collect();
            let mut value = json!({
                "type": "message", "id": id, "seq": seq, "from": from, "text": text,
                "attachments": attachments, "ts": ts,
            });
            if let Some(html) = html(raw).filter(|_| *from == Author::Agent) {
                value["html"] = json!(html);
            }
            if let Some(reply_to) = reply_to {
                value["reply_to"] = json!(reply_to);
            }
            value
        }
        Entry::Edit {
            id,
            text,
            html: raw,
            ts,
        } => {
            let mut value = json!({ "type": "edit", "id": id, "seq": seq, "text": text, "ts": ts });
            // Only agents send HTML, so an edit with HTML is an agent's.
            if let Some(html) = html(raw) {
                value["html"] = json!(html);
            }
            value
        }
        Entry::Delete { id, ts } => json!({ "type": "delete", "id": id, "seq": seq, "ts": ts }),
        Entry::Read { up_to, ts } => {
            json!({ "type": "read", "up_to": up_to, "seq": seq, "ts": ts })
        }
        Entry::Rating {
            id,
            question,
            choices,
            ts,
        } => json!({
            "type": "rating", "id": id, "seq": seq, "question": question, "ts": ts,
            "choices": choices
                .iter()
                .map(|c| json!({ "score": c.score, "label": c.label, "payload": c.payload }))
                .collect::<Vec<Value>>(),
        }),
        Entry::Rated { id, score, ts } => {
            json!({ "type": "rated", "id": id, "score": score, "seq": seq, "ts": ts })
        }
        Entry::Reaction { id, from, key, ts } => {
            json!({ "type": "reaction", "id": id, "from": from, "key": key, "seq": seq, "ts": ts })
        }
    }
}

/// Present a raw log entry; `None` (and a warning) for a body this version cannot read.
pub fn present_raw(body: &Value, seq: i64, channel_base: &str) -> Option<Value> {
    match serde_json::from_value::<Entry>(body.clone()) {
        Ok(entry) => Some(present(&entry, seq, channel_base)),
        Err(error) => {
            tracing::warn!(seq, %error, "webchat: skipping unreadable transcript entry");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_shape() {
        let entry = Entry::Message {
            id: "a.1".into(),
            from: Author::Agent,
            text: "hi".into(),
            html: Some("<b>hi</b><script>x</script>".into()),
            attachments: vec![FileEntry {
                file_id: "f1".into(),
                name: "a.png".into(),
                mime: "image/png".into(),
                size: 3,
            }],
            reply_to: Some("v.x.1".into()),
            ts: 5,
        };
        let stored = serde_json::to_value(&entry).unwrap_or_default();
        let value = present_raw(&stored, 7, "http://h/webchat").unwrap_or_default();
        assert_eq!(value["type"], "message");
        assert_eq!(value["seq"], 7);
        assert_eq!(value["from"], "agent");
        assert_eq!(value["html"], "<b>hi</b>");
        assert_eq!(value["reply_to"], "v.x.1");
        assert_eq!(
            value["attachments"][0]["url"],
            "http://h/webchat/api/v1/files/f1"
        );
    }

    #[test]
    fn visitor_messages_never_carry_html() {
        let entry = Entry::Message {
            id: "v.x.1".into(),
            from: Author::Visitor,
            text: "<b>x</b>".into(),
            html: Some("<b>x</b>".into()),
            attachments: vec![],
            reply_to: None,
            ts: 1,
        };
        let value = present(&entry, 1, "");
        assert!(value.get("html").is_none());
        assert_eq!(value["attachments"], json!([]));
    }
}
