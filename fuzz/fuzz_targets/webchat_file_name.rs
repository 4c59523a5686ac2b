//! Uploaded file names and types (`switchboard_webchat::sanitize`): the name a visitor's browser
//! sends becomes the file name in the Matrix room, in the transcript and in the download's
//! `Content-Disposition`; the declared type becomes the download's `Content-Type`.
//!
//! Invariants: the name is what the channel kit keeps (`check_core_file_name`: non-empty, one
//! path component, no control, invisible or bidi characters, no character Windows refuses, not
//! hidden, no trailing dot or space, at most 200 characters and 255 bytes); cleaning is
//! idempotent; the `Content-Disposition` and mime type are valid header values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::matrix::content::safe_file_name;
use switchboard_fuzz::{check_core_file_name, check_header_value};
use switchboard_webchat::sanitize::{content_disposition, file_name, mime_type};

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let name = file_name(&raw);
    check_core_file_name(&raw, &name);
    assert_eq!(file_name(&name), name, "cleaning {raw:?} twice changes it");
    check_header_value(&content_disposition(&name, false));
    check_header_value(&content_disposition(&name, true));
    let half = raw
        .char_indices()
        .nth(raw.chars().count() / 2)
        .map_or(raw.len(), |(i, _)| i);
    let declared = &raw[..half];
    for mime in [
        mime_type(Some(declared), &name),
        mime_type(None, &name),
        mime_type(Some(&raw), &raw),
    ] {
        check_header_value(&mime);
        assert!(mime.split_once('/').is_some(), "mime type {mime:?}");
    }
    // The core's clean-up of operators' file names.
    check_core_file_name(&raw, &safe_file_name(&raw));
});
