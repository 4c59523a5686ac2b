//! A raw inbound email (`switchboard_email::parse::parse`): MIME structure, transfer encodings,
//! charsets, encoded words, quote folding, HTML sanitising, bounce and auto-reply detection.
//!
//! Invariants: a parsed mail has a message id; its files have safe names (one path component,
//! no control characters, not hidden, at most 200 characters); its HTML is allowlisted; the new
//! text is never longer than the whole text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_email::parse::parse;
use switchboard_fuzz::{check_core_file_name, check_sanitized_html, MAIL_HTML};

fuzz_target!(|data: &[u8]| {
    let Ok(mail) = parse(data) else { return };
    assert!(!mail.message_id.is_empty(), "empty message id");
    for file in &mail.files {
        check_core_file_name("", &file.name);
    }
    if let Some(html) = &mail.html {
        check_sanitized_html(&mail.full_text, html, &MAIL_HTML);
    }
    assert!(
        mail.new_text.len() <= mail.full_text.len() + 1,
        "new text longer than the whole"
    );
});
