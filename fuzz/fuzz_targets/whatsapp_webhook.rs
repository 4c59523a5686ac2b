//! A WhatsApp Business Account webhook delivery as Meta posts it, after the signature check
//! (`switchboard_whatsapp::payload::parse_webhook`), then the operator-side HTML → WhatsApp
//! markup rewrite (`format::html_to_whatsapp`) on the same bytes taken as text.
//!
//! Invariants: every event's account is a `metadata.phone_number_id` and its chat the customer's
//! `from`/`recipient_id`, both printable without spaces; dedup keys are `msg:<wamid>`,
//! `reaction:<wamid>` or `status:<wamid>:<status>` with the event's own id; a sender phone is
//! `+` and 5–15 digits; a profile name has no control characters; a file's name is one safe path
//! component and its mime type has a `/`; a reaction key is never empty (removal is `None`);
//! a choice (a tap on a rating list row) carries a well-formed rating payload; the markup
//! rewrite never panics and its output is never longer than a few times its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::check_core_file_name;
use switchboard_whatsapp::format::html_to_whatsapp;
use switchboard_whatsapp::payload::{parse_webhook, ParsedKind};

fn printable_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 512 && s.chars().all(|c| c.is_ascii_graphic())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let markup = html_to_whatsapp(text);
        // Every tag adds at most a few characters (a list number, "> " per quote level).
        assert!(
            markup.len() <= text.len() * 8 + 16,
            "{} bytes from {}",
            markup.len(),
            text.len()
        );
    }
    let Ok(batch) = parse_webhook(data) else {
        return;
    };
    for event in &batch.events {
        assert!(
            printable_id(&event.conversation.account),
            "account {:?}",
            event.conversation.account
        );
        assert!(
            printable_id(&event.conversation.chat),
            "chat {:?}",
            event.conversation.chat
        );
        assert_eq!(event.sender.id, event.conversation.chat);
        if let Some(phone) = &event.sender.phone {
            let digits = phone.strip_prefix('+').expect("E.164 starts with +");
            assert!(
                (5..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
                "phone {phone:?}"
            );
        }
        if let Some(name) = &event.sender.display_name {
            assert!(
                !name.is_empty() && !name.chars().any(char::is_control),
                "name {name:?}"
            );
        }
        let key = &event.dedup_key;
        match &event.kind {
            ParsedKind::Message {
                remote_id,
                media,
                reply_to,
                ..
            } => {
                assert_eq!(key, &format!("msg:{remote_id}"));
                if let Some(m) = media {
                    check_core_file_name("", &m.name);
                    assert!(
                        m.mime.contains('/') && !m.mime.chars().any(char::is_control),
                        "mime {:?}",
                        m.mime
                    );
                    assert!(printable_id(&m.media_id), "media id {:?}", m.media_id);
                }
                if let Some(r) = reply_to {
                    assert!(printable_id(r), "reply_to {r:?}");
                }
            }
            ParsedKind::Notice { remote_id, text } => {
                assert_eq!(key, &format!("msg:{remote_id}"));
                assert!(!text.is_empty());
            }
            ParsedKind::Reaction {
                remote_id,
                key: emoji,
            } => {
                assert!(
                    key.starts_with("reaction:") && printable_id(remote_id),
                    "{key:?} {remote_id:?}"
                );
                assert!(
                    emoji.as_ref().is_none_or(|e| !e.is_empty()),
                    "empty reaction key"
                );
            }
            ParsedKind::Choice { remote_id, payload } => {
                assert_eq!(key, &format!("msg:{remote_id}"));
                assert!(
                    switchboard_kit::rating::parse_payload(payload).is_some(),
                    "a choice that is no rating payload: {payload:?}"
                );
            }
            ParsedKind::Delivered { remote_id }
            | ParsedKind::Read { remote_id }
            | ParsedKind::Failed { remote_id, .. } => {
                assert!(key.starts_with(&format!("status:{remote_id}:")), "{key:?}");
            }
        }
    }
});
