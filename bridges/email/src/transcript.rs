//! The conversation's transcript as a standalone HTML document — the record `!sb export` sends
//! to the customer (or attaches in the room). The core owns the command and the history; this
//! renders what it hands over.

use chrono::{TimeZone, Utc};

use crate::html::{escape, text_to_html};

/// One line of the transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptEntry {
    /// Who wrote it, as shown ("Jane Doe", "Alice (Acme Support)").
    pub sender: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    pub text: String,
}

/// A complete HTML document: title, one row per message (UTC time, sender, text).
pub fn render_transcript(title: &str, entries: &[TranscriptEntry]) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
    out.push_str(&escape(title));
    out.push_str("</title></head>\n<body>\n<h1>");
    out.push_str(&escape(title));
    out.push_str("</h1>\n<table>\n");
    for e in entries {
        let time = Utc
            .timestamp_millis_opt(e.time_ms)
            .single()
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        out.push_str(&format!(
            "<tr><td>{}</td><td><b>{}</b></td><td>{}</td></tr>\n",
            escape(&time),
            escape(&e.sender),
            text_to_html(&e.text)
        ));
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_is_escaped_html_with_times() {
        let html = render_transcript(
            "Order <5>",
            &[
                TranscriptEntry {
                    sender: "Jane".into(),
                    time_ms: 1_700_000_000_000,
                    text: "Hi <b>\nthere".into(),
                },
                TranscriptEntry {
                    sender: "Alice".into(),
                    time_ms: 1_700_000_060_000,
                    text: "Hello".into(),
                },
            ],
        );
        assert!(html.contains("<title>Order &lt;5&gt;</title>"));
        assert!(
            html.contains("2023-11-14 22:13 UTC") && html.contains("Hi &lt;b&gt;<br>there"),
            "{html}"
        );
    }
}
