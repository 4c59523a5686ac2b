//! The `!sb …` command parser (`commands::parse`), which reads every operator message.
//!
//! Invariants: a command name is one lower-case word; arguments are trimmed; outside a portal a
//! bare word is a command only if it is a known one; a text not starting with `!sb` is never a
//! command inside a portal (it is a message to the customer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::commands::{parse, COMMANDS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for in_portal in [true, false] {
        let Some(invocation) = parse(text, in_portal) else {
            continue;
        };
        assert!(
            !invocation.name.is_empty(),
            "empty command name from {text:?}"
        );
        assert!(
            !invocation.name.contains(char::is_whitespace),
            "name {:?} from {text:?}",
            invocation.name
        );
        assert_eq!(invocation.name, invocation.name.to_lowercase());
        assert_eq!(invocation.args, invocation.args.trim());
        if invocation.bare {
            assert!(!in_portal, "bare command in a portal from {text:?}");
            assert!(COMMANDS.iter().any(|(_, n, _, _)| *n == invocation.name));
        } else {
            assert!(
                text.trim_start().starts_with("!sb"),
                "command without !sb from {text:?}"
            );
        }
    }
});
