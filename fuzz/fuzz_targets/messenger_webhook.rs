//! A Messenger or Instagram webhook delivery as the bridge receives it: the signature check on
//! the raw bytes (`switchboard_kit::meta::verify_signature`, shared by every Meta channel), then the pure parser
//! (`switchboard_messenger::parse::parse_body`) for both networks, then the names given to the
//! files it points at (`switchboard_messenger::file_name`).
//!
//! Invariants: the signature check never panics and accepts exactly `sign(secret, body)`; a body
//! is a delivery of at most one network (`object` is `page` or `instagram`); every event has an
//! account id of printable ASCII, a customer id of `[A-Za-z0-9_-]` (at most 64) that is not the
//! account, a dedup key with a known prefix, a non-negative time; its texts have no control
//! characters but newline and tab; its file URLs are http(s); a reaction's emoji is short and
//! non-blank; a fetched file's name is one safe path component.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{check_core_file_name, is_invisible};
use switchboard_kit::meta::{sign, verify_signature as verify};
use switchboard_messenger::parse::{parse_body, Kind, Mark, Platform};

const PREFIXES: [&str; 8] = [
    "msg:",
    "delete:",
    "edit:",
    "reaction:",
    "read:",
    "delivered:",
    "postback:",
    "event:",
];

fn check_text(text: &str) {
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "control character kept in {text:?}"
    );
}

fn check_id(id: &str) {
    assert!(
        !id.is_empty() && id.len() <= 512 && id.bytes().all(|b| b.is_ascii_graphic()),
        "id {id:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    // The signature: a header made of the input itself, and the right one.
    let secret = b"fake-app-secret-for-tests-only";
    let _ = verify(secret, data, Some(data));
    let good = sign(secret, data);
    assert_eq!(verify(secret, data, Some(good.as_bytes())), Ok(()));
    assert!(verify(b"another-secret", data, Some(good.as_bytes())).is_err());

    let messenger = parse_body(data, Platform::Messenger);
    let instagram = parse_body(data, Platform::Instagram);
    assert!(
        !(messenger.is_ok() && instagram.is_ok()),
        "one body, two networks"
    );
    for parsed in [messenger, instagram].into_iter().flatten() {
        for event in &parsed.events {
            check_id(&event.account);
            let c = &event.contact;
            assert!(!c.is_empty() && c.len() <= 64, "contact {c:?}");
            assert!(
                c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "contact {c:?}"
            );
            assert_ne!(c, &event.account, "our own account as a customer");
            assert!(event.timestamp_ms >= 0);
            assert!(
                PREFIXES.iter().any(|p| event.dedup_key.starts_with(p)),
                "dedup key {:?}",
                event.dedup_key
            );
            match &event.kind {
                Kind::Message {
                    mid,
                    text,
                    files,
                    reply_to,
                } => {
                    assert!(!mid.is_empty());
                    check_text(text);
                    assert!(
                        !text.trim().is_empty() || !files.is_empty(),
                        "an empty message"
                    );
                    if let Some(r) = reply_to {
                        check_id(r);
                    }
                    for file in files {
                        assert!(file.url.starts_with("http"), "file URL {:?}", file.url);
                        for mime in [None, Some("image/png"), Some("application/pdf")] {
                            let name = switchboard_messenger::file_name(file, mime);
                            check_core_file_name(&file.url, &name);
                            assert!(
                                !name.chars().any(is_invisible),
                                "invisible character in {name:?}"
                            );
                        }
                    }
                }
                Kind::Notice { mid, text } | Kind::Edit { mid, text } => {
                    assert!(!mid.is_empty());
                    check_text(text);
                    assert!(!text.trim().is_empty());
                }
                Kind::Delete { mid } => check_id(mid),
                Kind::Choice { mid, payload } => {
                    assert!(!mid.is_empty());
                    assert!(!payload.is_empty(), "a quick reply without its payload");
                }
                Kind::Reaction { mid, emoji } => {
                    check_id(mid);
                    if let Some(e) = emoji {
                        assert!(!e.trim().is_empty() && e.len() <= 64, "emoji {e:?}");
                        check_text(e);
                    }
                }
                Kind::Read(mark) | Kind::Delivered(mark) => match mark {
                    Mark::Mid(mid) => check_id(mid),
                    Mark::Watermark(w) => assert!(*w > 0),
                },
            }
        }
    }
});
