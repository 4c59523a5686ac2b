//! A Viber callback as `POST /viber/callback` receives it
//! (`switchboard_viber::inbound::parse_callback_json`, after the signature check), and the
//! signature check itself (`signing::verify_body`) with the input's first line as the header.
//!
//! Invariants: a bridged callback belongs to the configured account and to a non-empty user id
//! of at most 256 bytes (the conversation is the user); message tokens are decimal numbers and
//! the dedup key is `msg:`/`delivered:`/`seen:`/`failed:<token>` or `unsubscribed:<user>:<token>`;
//! a phone is `+` and 7–15 digits; file names are one safe path component; a signature over the
//! body verifies only when it is the body's real HMAC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{check_core_file_name, is_invisible};
use switchboard_viber::inbound::{parse_callback_json, Callback, ParsedKind};
use switchboard_viber::signing::{sign_hex, verify_body};

const ACCOUNT: &str = "4b1d5e7f0a2c4e6f";
const KEY: &[u8] = b"4b1d5e7f0a2c4e6f-8a0b2c4d6e8f0a1b-2c3d4e5f6a7b8c9d";

fuzz_target!(|data: &[u8]| {
    // The signature check never accepts a wrong digest and always accepts the right one.
    if let Some(pos) = data.iter().position(|b| *b == b'\n') {
        let (header, body) = (&data[..pos], &data[pos + 1..]);
        let header = String::from_utf8_lossy(header);
        let real = sign_hex(KEY, body);
        assert!(verify_body(KEY, body, &real));
        if verify_body(KEY, body, &header) {
            assert_eq!(
                header.trim().to_ascii_lowercase(),
                real,
                "a wrong signature verified"
            );
        }
    }
    let Ok(Callback::Event(parsed)) = parse_callback_json(data, ACCOUNT) else {
        return;
    };
    assert_eq!(parsed.conversation.account, ACCOUNT);
    let user = &parsed.conversation.chat;
    assert!(!user.is_empty() && user.len() <= 256, "user id {user:?}");
    assert_eq!(&parsed.sender.id, user);
    if let Some(phone) = &parsed.sender.phone {
        let digits = phone
            .strip_prefix('+')
            .unwrap_or_else(|| panic!("phone {phone:?}"));
        assert!(
            (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
            "phone {phone:?}"
        );
    }
    let numeric = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    let key = &parsed.dedup_key;
    match &parsed.kind {
        ParsedKind::Message {
            remote_id, file, ..
        } => {
            assert!(numeric(remote_id), "token {remote_id:?}");
            assert_eq!(key, &format!("msg:{remote_id}"));
            if let Some(f) = file {
                check_core_file_name("", &f.name);
                assert!(
                    !f.name.chars().any(is_invisible),
                    "invisible character in {:?}",
                    f.name
                );
                assert!(!f.mime.is_empty());
            }
        }
        ParsedKind::Delivered { remote_id } => assert_eq!(key, &format!("delivered:{remote_id}")),
        ParsedKind::Read { remote_id } => assert_eq!(key, &format!("seen:{remote_id}")),
        ParsedKind::Failed { remote_id, reason } => {
            assert_eq!(key, &format!("failed:{remote_id}"));
            assert!(
                reason.chars().count() <= 510,
                "failure reason of {} characters",
                reason.chars().count()
            );
        }
        ParsedKind::Notice { remote_id, .. } => {
            assert!(
                key.starts_with("msg:") || key.starts_with("unsubscribed:"),
                "dedup key {key:?}"
            );
            assert!(!remote_id.is_empty());
        }
        ParsedKind::Choice { remote_id, payload } => {
            assert_eq!(key, &format!("msg:{remote_id}"));
            assert!(
                switchboard_kit::rating::parse_payload(payload).is_some(),
                "a choice with a foreign payload {payload:?}"
            );
        }
    }
});
