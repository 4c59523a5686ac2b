//! The body of `POST /session` (`switchboard_webchat::parse::session_body`): a visitor's name
//! and e-mail address, which become the ghost's display name and the room's topic.
//!
//! Invariants: a name is non-empty, trimmed, at most 80 characters, without control or bidi
//! characters; an e-mail address is trimmed and plausible (one `@`, a dotted domain, no spaces,
//! controls or `<>"`); refusals are 4xx.
//!
//! The same bytes as the visitor's languages (`switchboard_webchat::parse::languages`, read
//! from `Accept-Language` or `GET /config?lang=`): at most `MAX_LANGUAGES` tags of
//! `[A-Za-z0-9-]`, 1–35 bytes each.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::is_invisible;
use switchboard_webchat::parse::{languages, session_body, MAX_LANGUAGES};
use switchboard_webchat::sanitize::{is_plausible_email, MAX_EMAIL_CHARS, MAX_NAME_CHARS};

fuzz_target!(|data: &[u8]| {
    let tags = languages(&String::from_utf8_lossy(data));
    assert!(tags.len() <= MAX_LANGUAGES);
    for tag in &tags {
        assert!(!tag.is_empty() && tag.len() <= 35, "{tag:?}");
        assert!(
            tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{tag:?}"
        );
    }
    match session_body(data) {
        Ok(session) => {
            if let Some(name) = &session.name {
                assert!(!name.is_empty());
                assert_eq!(name, name.trim(), "untrimmed name");
                assert!(name.chars().count() <= MAX_NAME_CHARS, "name too long");
                assert!(
                    !name.chars().any(is_invisible),
                    "invisible character in name {name:?}"
                );
            }
            if let Some(email) = &session.email {
                assert_eq!(email, email.trim());
                assert!(is_plausible_email(email));
                assert!(email.chars().count() <= MAX_EMAIL_CHARS);
                assert!(!email
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "<>\"".contains(c)));
                assert!(email.contains('@'));
            }
        }
        Err(e) => assert!(
            e.status().is_client_error(),
            "{} for a bad session body",
            e.status()
        ),
    }
});
