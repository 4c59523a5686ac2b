//! An operator's `m.room.message` content (`content::parse_operator_message`), as the outbox
//! would relay it to a customer.
//!
//! Input: a JSON content object; or, when the input is not JSON, the bytes (as UTF-8, lossily)
//! used as the body and HTML of a text message, a file name, and a reply — so the fuzzer reaches
//! the HTML sanitiser and file-name clean-up without having to invent JSON first.
//!
//! Invariants: HTML is allowlisted (no script, handlers or other link schemes); file names are
//! one safe path component; a notice is never relayed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use switchboard::matrix::content::{parse_operator_message, safe_file_name};
use switchboard_fuzz::{check_core_file_name, check_sanitized_html, CORE_HTML};

fn check(content: &Value) {
    let body = content.get("body").and_then(Value::as_str).unwrap_or("");
    match parse_operator_message(content) {
        Ok(Some(message)) => {
            assert_ne!(
                content.get("msgtype").and_then(Value::as_str),
                Some("m.notice"),
                "a notice was relayed"
            );
            if let Some(html) = &message.content.html {
                check_sanitized_html(body, html, &CORE_HTML);
                assert!(!html.trim().is_empty(), "blank HTML kept");
            }
            for a in &message.content.attachments {
                check_core_file_name(body, &a.name);
            }
        }
        Ok(None) | Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(content) = serde_json::from_slice::<Value>(data) {
        check(&content);
        return;
    }
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    check_core_file_name(text, &safe_file_name(text));
    check(&json!({
        "msgtype": "m.text",
        "body": text,
        "format": "org.matrix.custom.html",
        "formatted_body": text,
        "m.relates_to": {"m.in_reply_to": {"event_id": "$e"}},
    }));
    check(
        &json!({"msgtype": "m.file", "body": text, "url": "mxc://localhost/f", "info": {"mimetype": text}}),
    );
    check(&json!({
        "msgtype": "m.text", "body": "* x",
        "m.new_content": {"msgtype": "m.emote", "body": text, "format": "org.matrix.custom.html", "formatted_body": text},
        "m.relates_to": {"rel_type": "m.replace", "event_id": text},
    }));
});
