//! A VK Callback API event as `POST /vk/callback` receives it
//! (`switchboard_vk::inbound::parse_callback_json`, after the secret check).
//!
//! Invariants: a bridged event belongs to the configured community, its peer and sender are
//! positive numbers (the sender never the community itself, so our own echoes are never bridged),
//! group chats only when enabled; message ids and reply targets are numbers; dedup keys are
//! `msg:<peer>:<id>`, `edit:<peer>:<id>:…`, `read:<peer>:<id>`, `typing:…` or `event:…`; file
//! names are one safe path component and file URLs are what the payload named.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_fuzz::{check_core_file_name, is_invisible};
use switchboard_vk::inbound::{
    parse_callback_json, Callback, ParseOptions, ParsedKind, CHAT_PEER_BASE,
};

const GROUP: i64 = 193668024;

fuzz_target!(|data: &[u8]| {
    let options = ParseOptions {
        group_id: GROUP,
        chats: data.len() % 2 == 0,
    };
    let Ok(Callback::Event(parsed)) = parse_callback_json(data, &options) else {
        return;
    };
    assert_eq!(parsed.conversation.account, GROUP.to_string());
    let chat = &parsed.conversation.chat;
    let peer: i64 = chat.parse().unwrap_or_else(|_| panic!("peer {chat:?}"));
    assert!(peer > 0, "peer {peer}");
    assert!(parsed.user_id > 0, "sender {}", parsed.user_id);
    assert_eq!(parsed.in_chat, peer >= CHAT_PEER_BASE);
    assert!(
        options.chats || !parsed.in_chat,
        "a group chat bridged with chats: false"
    );
    let key = &parsed.dedup_key;
    match &parsed.kind {
        ParsedKind::Message {
            remote_id,
            files,
            reply_to,
            ..
        } => {
            assert!(
                remote_id.parse::<i64>().is_ok_and(|i| i > 0),
                "message id {remote_id:?}"
            );
            assert_eq!(key, &format!("msg:{chat}:{remote_id}"));
            for f in files {
                check_core_file_name("", &f.name);
                assert!(
                    !f.name.chars().any(is_invisible),
                    "invisible character in {:?}",
                    f.name
                );
                assert!(!f.name.starts_with('.'), "hidden file name {:?}", f.name);
                assert!(!f.url.is_empty() && !f.mime.is_empty());
            }
            if let Some(r) = reply_to {
                assert!(r.parse::<i64>().is_ok_and(|i| i > 0), "reply_to {r:?}");
            }
        }
        ParsedKind::Edit { remote_id, .. } => {
            assert!(
                remote_id.parse::<i64>().is_ok_and(|i| i > 0),
                "edited id {remote_id:?}"
            );
            assert!(
                key.starts_with(&format!("edit:{chat}:{remote_id}:")),
                "dedup key {key:?}"
            );
        }
        ParsedKind::Read { remote_id } => {
            assert!(remote_id.parse::<i64>().is_ok(), "read id {remote_id:?}");
            assert_eq!(key, &format!("read:{chat}:{remote_id}"));
        }
        ParsedKind::Typing => assert!(key.starts_with("typing:")),
        ParsedKind::Choice { payload, .. } => {
            assert!(
                key.starts_with(&format!("press:{chat}:")),
                "dedup key {key:?}"
            );
            assert!(
                switchboard_kit::rating::parse_payload(payload).is_some(),
                "a choice with a foreign payload {payload:?}"
            );
        }
        ParsedKind::Notice { .. } => {
            assert!(
                key.starts_with("event:") || key.starts_with("msg:") || key.contains(':'),
                "dedup key {key:?}"
            );
        }
    }
});
