//! A Discord gateway frame as the bridge reads it off the WebSocket
//! (`switchboard_discord::inbound::parse_frame`: the `{"op":0,"t":…,"s":…,"d":…}` envelope, then
//! MESSAGE_CREATE / MESSAGE_UPDATE / MESSAGE_DELETE / TYPING_START / reactions / button presses
//! in INTERACTION_CREATE), with `markdown::to_html` on
//! the customer's text, then the core's sanitiser on the way into Matrix; and the reverse
//! converter `markdown::html_to_markdown` on the same bytes as operator HTML.
//!
//! Invariants: a bridged dispatch belongs to the configured account (never the bot's own
//! messages), its channel, message and sender ids are snowflakes, its dedup key is
//! `msg:`/`edit:`/`del:`/`press:<channel>:<id>` (a press carries a well-formed rating payload); its HTML has only the renderer's own tags (the
//! customer's text escaped) and, once sanitised for the room, only allowlisted ones; attachment
//! names are made safe before they are stored.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::matrix::content::sanitize_html;
use switchboard_discord::inbound::{parse_frame, safe_file_name, ParseOptions, ParsedKind};
use switchboard_discord::markdown;
use switchboard_fuzz::{check_core_file_name, check_sanitized_html, HtmlPolicy, CORE_HTML};

/// What `markdown::to_html` renders: its own tags only. Links are whatever the customer wrote
/// (http/https checked by the renderer); the core sanitises them again.
const DISCORD_MARKDOWN_HTML: HtmlPolicy<'static> = HtmlPolicy {
    tags: &[
        "b",
        "i",
        "u",
        "s",
        "code",
        "pre",
        "blockquote",
        "a",
        "br",
        "span",
    ],
    attributes: &[
        ("a", "href"),
        ("span", "data-mx-spoiler"),
        ("code", "class"),
    ],
    relative_links: false,
    link_schemes: &["http", "https"],
};

const BOT: &str = "1100000000000000001";

fn snowflake(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

fuzz_target!(|data: &[u8]| {
    let options = ParseOptions {
        account: BOT.into(),
        guilds: data.len() % 2 == 0,
        guild_channels: Vec::new(),
    };
    if let Some(parsed) = parse_frame(data, &options) {
        assert_eq!(parsed.conversation.account, BOT);
        let chat = &parsed.conversation.chat;
        assert!(snowflake(chat), "channel id {chat:?}");
        if let Some(sender) = &parsed.sender {
            assert!(snowflake(&sender.id), "sender id {:?}", sender.id);
            assert_ne!(sender.id, BOT, "the bot's own message bridged");
        }
        let (prefix, remote_id, content) = match &parsed.kind {
            ParsedKind::Message {
                remote_id,
                content,
                reply_to,
                ..
            } => {
                if let Some(r) = reply_to {
                    assert!(snowflake(r), "reply_to {r:?}");
                }
                ("msg:", Some(remote_id), Some(content))
            }
            ParsedKind::Edit { remote_id, content } => ("edit:", Some(remote_id), Some(content)),
            ParsedKind::Delete { remote_id } => ("del:", Some(remote_id), None),
            ParsedKind::Reaction {
                remote_id, emoji, ..
            } => {
                assert!(!emoji.is_empty(), "an empty reaction");
                ("reaction:", Some(remote_id), None)
            }
            ParsedKind::Choice {
                remote_id, payload, ..
            } => {
                assert!(
                    switchboard_kit::rating::parse_payload(payload).is_some(),
                    "a press that is no rating payload: {payload:?}"
                );
                ("press:", Some(remote_id), None)
            }
            ParsedKind::Typing => ("", None, None),
        };
        if let Some(id) = remote_id {
            assert!(snowflake(id), "message id {id:?}");
            let expected = format!("{prefix}{chat}:{id}");
            assert!(
                parsed.dedup_key.starts_with(&expected),
                "dedup key {:?}, expected {expected:?}",
                parsed.dedup_key
            );
        }
        if let Some(content) = content {
            if let Some(html) = &content.html {
                check_sanitized_html(html, html, &DISCORD_MARKDOWN_HTML);
                check_sanitized_html(html, &sanitize_html(html), &CORE_HTML);
            }
            for a in &content.attachments {
                let name = safe_file_name(&a.filename, "attachment");
                check_core_file_name(&a.filename, &name);
            }
        }
    }
    // The same bytes as a customer's raw text and as operator HTML.
    if let Ok(text) = std::str::from_utf8(data) {
        let names = markdown::Names::new();
        if let Some(html) = markdown::to_html(text, &names) {
            check_sanitized_html(text, &html, &DISCORD_MARKDOWN_HTML);
        }
        let _ = markdown::to_plain(text, &names);
        let md = markdown::html_to_markdown(text);
        assert!(
            md.len() <= text.len() * 4 + 16,
            "markdown blew up: {} → {} bytes",
            text.len(),
            md.len()
        );
    }
});
