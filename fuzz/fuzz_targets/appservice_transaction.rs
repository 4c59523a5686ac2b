//! The body of `PUT /_matrix/app/v1/transactions/{txnId}`, then what the Matrix worker does
//! with each kept event: the namespace test, the command parser and the operator-message parser.
//!
//! Invariants: a body is accepted only if it is a JSON object (or an array, which serde reads as
//! the struct's fields in order: `[events, ephemeral]`); every event is either kept or
//! counted as skipped; a kept event's stored JSON parses again with the worker's reader
//! (`matrix::event_json`; a row that does not parse would stall the queue) and names the same
//! event, room and sender.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use switchboard::commands;
use switchboard::matrix::appservice::parse_transaction;
use switchboard::matrix::content::parse_operator_message;
use switchboard::matrix::event_json;
use switchboard::matrix::ghosts::Namespace;
use switchboard_fuzz::{check_core_file_name, check_sanitized_html, CORE_HTML};

fuzz_target!(|data: &[u8]| {
    let Ok(txn) = parse_transaction(data) else {
        return;
    };
    // serde skips unknown fields without checking their string escapes, so a body with a lone
    // surrogate in an ignored field is accepted although it is not strictly JSON; otherwise the
    // body is an object or an array, and its events are counted here without reading any of
    // them as a `Value` (one that is only serde_json's raw-value token reads as that key's
    // text, or fails; the transaction keeps each event's text as it came).
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    assert!(
        matches!(first, Some(b'{' | b'[')),
        "accepted a transaction that is neither object nor array"
    );
    let events = match serde_json::from_slice::<BTreeMap<String, Box<RawValue>>>(data) {
        Ok(fields) => fields.get("events").map(|e| e.get().to_string()),
        Err(_) => match serde_json::from_slice::<Vec<Box<RawValue>>>(data) {
            Ok(fields) => fields.first().map(|e| e.get().to_string()),
            // (a key that is not UTF-8 in an ignored field is skipped unread by the transaction)
            Err(_) => None,
        },
    };
    if let Some(Ok(events)) = events.map(|e| serde_json::from_str::<Vec<IgnoredAny>>(&e)) {
        assert_eq!(
            txn.events.len() + txn.skipped,
            events.len(),
            "every event kept or skipped"
        );
    }
    let namespace = Namespace::new("sb_", "switchboard", "localhost");
    for event in &txn.events {
        // Read back as the worker reads it (a `Value` would read an event whose first key is the
        // raw-value token as that key's text).
        let stored = event_json::read(&event.raw).expect("a stored event parses again");
        assert_eq!(
            stored.get("event_id").and_then(Value::as_str),
            Some(event.event_id.as_str())
        );
        assert_eq!(
            stored.get("room_id").and_then(Value::as_str),
            Some(event.room_id.as_str())
        );
        assert_eq!(
            stored.get("sender").and_then(Value::as_str),
            Some(event.sender.as_str())
        );
        let _ = namespace.is_ours(&event.sender);
        let content = stored.get("content").unwrap_or(&Value::Null);
        let body = content.get("body").and_then(Value::as_str).unwrap_or("");
        let _ = commands::parse(body, true);
        let _ = commands::parse(body, false);
        if let Ok(Some(message)) = parse_operator_message(content) {
            if let Some(html) = &message.content.html {
                check_sanitized_html(body, html, &CORE_HTML);
            }
            for a in &message.content.attachments {
                check_core_file_name("", &a.name);
            }
        }
    }
});
