//! The multipart body of `POST /files` (`switchboard_webchat::parse::parse_upload`), read by the
//! same code as the server. Input: the first line is the `Content-Type` header (with the
//! boundary), the rest is the body; the file limit is 1 KiB so the size check is reached.
//!
//! Invariants: an accepted form has one non-empty file within the limit with a safe name and a
//! valid mime type, a valid client id when one was given, a clean caption; refusals are 4xx.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{
    check_client_id, check_core_file_name, check_header_value, check_visitor_text,
};
use switchboard_webchat::config::MAX_TEXT_CHARS;
use switchboard_webchat::parse::parse_upload;

const LIMIT: u64 = 1024;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let content_type = String::from_utf8_lossy(&data[..split]);
    let body = Bytes::copy_from_slice(data.get(split + 1..).unwrap_or_default());
    match futures::executor::block_on(parse_upload(
        content_type.trim_end_matches('\r'),
        body,
        LIMIT,
    )) {
        Ok(form) => {
            assert!(
                !form.data.is_empty() && form.data.len() as u64 <= LIMIT,
                "file of {} bytes",
                form.data.len()
            );
            check_core_file_name("", &form.name);
            check_header_value(&form.mime);
            if let Some(id) = &form.client_id {
                check_client_id(id);
            }
            check_visitor_text(&form.caption, MAX_TEXT_CHARS);
            if let Some(r) = &form.reply_to {
                assert!(!r.is_empty() && r == r.trim());
            }
        }
        Err(e) => assert!(
            e.status().is_client_error(),
            "{} for a bad upload",
            e.status()
        ),
    }
});
