//! The body of `POST /session` (`switchboard_webchat::parse::session_body`): a visitor's name
//! and e-mail address, which become the ghost's display name and the room's topic.
//!
//! Invariants: a name is non-empty, trimmed, at most 80 characters, without control or bidi
//! characters; an e-mail address is trimmed and plausible (one `@`, a dotted domain, no spaces,
//! controls or `<>"`); refusals are 4xx.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::is_invisible;
use switchboard_webchat::parse::session_body;
use switchboard_webchat::sanitize::{is_plausible_email, MAX_EMAIL_CHARS, MAX_NAME_CHARS};

fuzz_target!(|data: &[u8]| {
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
