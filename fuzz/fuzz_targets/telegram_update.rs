//! A Telegram update as the webhook receives it or `getUpdates` returns it
//! (`switchboard_telegram::inbound::parse_update_json`), with `format::entities_to_html` on the
//! sender's UTF-16 entity offsets, then the core's sanitiser on the way into Matrix.
//!
//! Invariants: a bridged update belongs to the configured account, its chat id, message id and
//! sender id are numbers, its dedup key is `msg:<chat>:<id>` or `edit:<chat>:<id>:<time>`; its
//! HTML has only the renderer's own tags (the customer's text escaped) and, once sanitised for
//! the room, only allowlisted ones; a file's name is one safe path component.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::matrix::content::sanitize_html;
use switchboard_fuzz::{
    check_core_file_name, check_sanitized_html, is_invisible, CORE_HTML, TELEGRAM_ENTITIES_HTML,
};
use switchboard_telegram::inbound::{parse_update_json, ParseOptions, ParsedKind};

fuzz_target!(|data: &[u8]| {
    let options = ParseOptions {
        account: "123456".into(),
        groups: data.len() % 2 == 0,
        group_sender_prefix: true,
    };
    let Ok(Some(parsed)) = parse_update_json(data, &options) else {
        return;
    };
    assert_eq!(parsed.conversation.account, options.account);
    let chat = &parsed.conversation.chat;
    assert!(chat.parse::<i64>().is_ok(), "chat id {chat:?}");
    assert!(
        parsed.sender.id.parse::<i64>().is_ok(),
        "sender id {:?}",
        parsed.sender.id
    );
    let (remote_id, html, prefix) = match &parsed.kind {
        ParsedKind::Message {
            remote_id,
            html,
            file,
            reply_to,
            ..
        } => {
            if let Some(file) = file {
                check_core_file_name("", &file.name);
                assert!(
                    !file.name.chars().any(is_invisible),
                    "invisible character in {:?}",
                    file.name
                );
            }
            if let Some(r) = reply_to {
                assert!(r.parse::<i64>().is_ok(), "reply_to {r:?}");
            }
            (remote_id, html, "msg:")
        }
        ParsedKind::Edit {
            remote_id, html, ..
        } => (remote_id, html, "edit:"),
        ParsedKind::Notice { remote_id, .. } => (remote_id, &None, "msg:"),
        ParsedKind::Reaction { remote_id, key } => {
            if let Some(key) = key {
                assert!(!key.is_empty(), "an empty reaction key");
            }
            (remote_id, &None, "reaction:")
        }
        ParsedKind::Choice { payload, .. } => {
            // A button press is keyed by its callback query's id.
            assert!(!payload.is_empty(), "a button press without callback data");
            assert!(
                parsed.dedup_key.starts_with("callback:"),
                "dedup key {:?}",
                parsed.dedup_key
            );
            return;
        }
    };
    // A message id that could not be read is replaced by the update's ("u<update_id>").
    let id = remote_id.strip_prefix('u').unwrap_or(remote_id);
    assert!(id.parse::<i64>().is_ok(), "message id {remote_id:?}");
    let expected = format!("{prefix}{chat}:{remote_id}");
    assert!(
        parsed.dedup_key.starts_with(&expected),
        "dedup key {:?}, expected {expected:?}…",
        parsed.dedup_key
    );
    if let Some(html) = html {
        check_sanitized_html(html, html, &TELEGRAM_ENTITIES_HTML);
        check_sanitized_html(html, &sanitize_html(html), &CORE_HTML);
    }
});
