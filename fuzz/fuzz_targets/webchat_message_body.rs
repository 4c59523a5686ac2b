//! The bodies of `POST /messages`, `PATCH /messages/{id}`, `POST /typing` and `POST /read`
//! (`switchboard_webchat::parse`), exactly as the handlers decode and check them.
//!
//! Invariants: an accepted message has a valid client id and non-blank text within 10 000
//! characters with no control characters but newline and tab; the same for an edit's text;
//! every refusal is a 4xx with a machine code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{check_client_id, check_visitor_text};
use switchboard_webchat::config::MAX_TEXT_CHARS;
use switchboard_webchat::parse::{edit_body, message_body, read_body, typing_body};
use switchboard_webchat::ApiError;

fn check_refusal(e: &ApiError) {
    assert!(
        e.status().is_client_error(),
        "{} for a bad body",
        e.status()
    );
    assert!(!e.code().is_empty() && !e.to_string().is_empty());
}

fuzz_target!(|data: &[u8]| {
    match message_body(data) {
        Ok(m) => {
            check_client_id(&m.client_id);
            check_visitor_text(&m.text, MAX_TEXT_CHARS);
            assert!(!m.text.trim().is_empty(), "blank message accepted");
        }
        Err(e) => check_refusal(&e),
    }
    match edit_body(data) {
        Ok(text) => {
            check_visitor_text(&text, MAX_TEXT_CHARS);
            assert!(!text.trim().is_empty(), "blank edit accepted");
        }
        Err(e) => check_refusal(&e),
    }
    if let Err(e) = typing_body(data) {
        check_refusal(&e);
    }
    if let Err(e) = read_body(data) {
        check_refusal(&e);
    }
});
