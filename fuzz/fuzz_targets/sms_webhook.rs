//! A Twilio webhook as `/sms/incoming` and `/sms/status` receive it: the first line of the input
//! is the `X-Twilio-Signature` header, the rest the url-encoded body
//! (`switchboard_sms::form::parse`), checked with `signature::verify` and read with
//! `inbound::parse_incoming` / `inbound::parse_status`; the numbers go through
//! `phone::normalize` and `phone::format`.
//!
//! Invariants: decoding a form and encoding it again gives the same pairs; a signature verifies
//! exactly when it is the one `signature::compute` makes for that URL and token (never for
//! another token, never the header as given unless it is that); an understood incoming message
//! has a SID, a sender and a recipient and at most 10 media, each with a URL; a status has a SID
//! and a lower-case status, and a failure a reason; a normalised number is `+` and 7–15 digits,
//! normalising it again changes nothing, and formatting it keeps its digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sms::inbound::{failure_reason, parse_incoming, parse_status, Outcome, MAX_MEDIA};
use switchboard_sms::{form, phone, signature};

const TOKEN: &str = "fuzz-auth-token";
const URL: &str = "https://bridge.example/sms/incoming";

fn check_number(raw: &str) {
    let region = phone::Region::US;
    let Ok(e164) = phone::normalize(raw, region) else {
        return;
    };
    let digits = e164
        .strip_prefix('+')
        .unwrap_or_else(|| panic!("{e164:?} has no +"));
    assert!((7..=15).contains(&digits.len()), "{e164:?} from {raw:?}");
    assert!(
        digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0'),
        "{e164:?}"
    );
    assert_eq!(
        phone::normalize(&e164, region).as_deref(),
        Ok(e164.as_str()),
        "not idempotent"
    );
    let formatted = phone::format(&e164);
    let kept: String = formatted.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(kept, digits, "format changed the digits: {formatted:?}");
}

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let header = String::from_utf8_lossy(header);
    let parsed = form::parse(body);

    // Encoding the pairs again and decoding gives the same pairs.
    let mut again = String::new();
    for (i, (k, v)) in parsed.pairs().iter().enumerate() {
        if i > 0 {
            again.push('&');
        }
        again.extend(form_encode(k));
        again.push('=');
        again.extend(form_encode(v));
    }
    assert_eq!(form::parse(again.as_bytes()).pairs(), parsed.pairs());

    // The signature: only the right one verifies.
    let right = signature::compute(TOKEN, URL, parsed.pairs());
    assert!(signature::verify(TOKEN, URL, parsed.pairs(), &right));
    assert!(!signature::verify(
        "another-token",
        URL,
        parsed.pairs(),
        &right
    ));
    let given_ok = signature::verify(TOKEN, URL, parsed.pairs(), &header);
    let with_port = signature::compute(
        TOKEN,
        "https://bridge.example:443/sms/incoming",
        parsed.pairs(),
    );
    assert_eq!(
        given_ok,
        header.trim() == right || header.trim() == with_port,
        "header {header:?}"
    );

    if let Ok(m) = parse_incoming(&parsed) {
        assert!(
            !m.message_sid.trim().is_empty()
                && !m.from.trim().is_empty()
                && !m.to.trim().is_empty()
        );
        assert!(m.media.len() <= MAX_MEDIA);
        assert!(m
            .media
            .iter()
            .all(|x| !x.url.trim().is_empty() && !x.content_type.is_empty()));
        check_number(&m.from);
        check_number(&m.to);
    }
    if let Ok(s) = parse_status(&parsed) {
        assert!(!s.message_sid.is_empty());
        assert_eq!(s.status, s.status.to_ascii_lowercase());
        if let Outcome::Failed { error_code } = s.outcome {
            assert!(!failure_reason(&s.status, error_code).is_empty());
        }
    }
    if let Ok(text) = std::str::from_utf8(body) {
        check_number(text);
    }
});

/// `application/x-www-form-urlencoded` encoding of one name or value.
fn form_encode(s: &str) -> impl Iterator<Item = char> + '_ {
    s.bytes().flat_map(|b| {
        let chars: Vec<char> = match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => vec![b as char],
            b' ' => vec!['+'],
            _ => format!("%{b:02X}").chars().collect(),
        };
        chars
    })
}
