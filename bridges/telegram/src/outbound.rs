//! Operators' actions delivered to the customer: `Channel::send` (messages, edits, deletions)
//! and `Channel::typing`.
//!
//! * **Messages**: text goes out with `sendMessage` (Telegram HTML when the operator used
//!   formatting, plain text if Telegram cannot parse it); a file goes out with `sendPhoto`
//!   (images up to Telegram's 10 MB photo limit), `sendVoice` (OGG/Opus audio), `sendVideo`
//!   (MP4) or `sendDocument` (anything else), the text as its caption when it fits Telegram's
//!   1024-character caption limit, else as a message of its own before it.
//! * **Idempotency**: the Bot API has no idempotency key, so before sending we look up
//!   `out:<idempotency_key>` in the channel's state and return the remembered message id if
//!   the item was already sent; after sending we remember it. A crash in the instant between
//!   Telegram accepting the message and that write can still repeat one message; nothing can
//!   close that window from the client side.
//! * **Several Telegram messages for one item** (a long caption, several files): the first
//!   message's id is the remote id; the others are remembered under `parts:<chat>:<id>` so a
//!   deletion removes them all.
//! * **Edits** use `editMessageText`, or `editMessageCaption` for a file's caption. "Message is
//!   not modified" counts as success. **Deletions** use `deleteMessage`; a message already gone
//!   counts as deleted; Telegram refusing (older than 48 hours) is a permanent failure.
//! * **Reactions** use `setMessageReaction` with one emoji, or none to take it back. A bot may
//!   react only with the emoji of [`REACTIONS`]; close ones are mapped onto it (`❤️` → `❤`,
//!   `😂` → `🤣`), any other is refused before sending, the reason naming the list.
//! * **Rating requests** go out with `sendMessage` and an inline keyboard
//!   (`reply_markup.inline_keyboard`), one callback button per score whose `callback_data` is
//!   the kit's payload; a press comes back as a `callback_query` update ([`crate::lenient`]).
//! * **Errors** go through [`client::classify`]: 429 with Telegram's `retry_after`, 5xx and
//!   network trouble are retryable; a blocked bot, a deleted account or a vanished chat are
//!   permanent with a reason operators can read.

use std::sync::Arc;

use switchboard_channel::{
    Attachment, Content, ConversationKey, Delivery, Host, Outbound, OutboundAction, SendError,
};
use switchboard_kit::reaction::Palette;
use teloxide::errors::{ApiError, RequestError};
use teloxide::payloads::{
    EditMessageCaptionSetters, EditMessageTextSetters, SendDocumentSetters, SendMessageSetters,
    SendPhotoSetters, SendVideoSetters, SendVoiceSetters, SetMessageReactionSetters,
};
use teloxide::prelude::Requester;
use teloxide::types::{
    ChatAction, ChatId, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message, MessageId,
    ParseMode, ReactionType, ReplyParameters,
};
use teloxide::Bot;

use crate::client::classify;
use crate::{dimensions, format};

/// Telegram's caption limit, in characters.
const MAX_CAPTION_CHARS: usize = 1024;
/// Largest image `sendPhoto` takes; bigger images go as documents.
const MAX_PHOTO_BYTES: u64 = 10 * 1024 * 1024;

/// The emoji a bot may react with: `ReactionTypeEmoji.emoji` "can be one of" these
/// (<https://core.telegram.org/bots/api#reactiontypeemoji>); anything else is
/// `400 REACTION_INVALID`. Close emoji operators often pick are mapped onto the list.
pub const REACTIONS: Palette = Palette {
    network: "Telegram",
    allowed: &[
        "👍",
        "👎",
        "❤",
        "🔥",
        "🥰",
        "👏",
        "😁",
        "🤔",
        "🤯",
        "😱",
        "🤬",
        "😢",
        "🎉",
        "🤩",
        "🤮",
        "💩",
        "🙏",
        "👌",
        "🕊",
        "🤡",
        "🥱",
        "🥴",
        "😍",
        "🐳",
        "❤\u{200D}🔥",
        "🌚",
        "🌭",
        "💯",
        "🤣",
        "⚡",
        "🍌",
        "🏆",
        "💔",
        "🤨",
        "😐",
        "🍓",
        "🍾",
        "💋",
        "🖕",
        "😈",
        "😴",
        "😭",
        "🤓",
        "👻",
        "👨\u{200D}💻",
        "👀",
        "🎃",
        "🙈",
        "😇",
        "😨",
        "🤝",
        "✍",
        "🤗",
        "🫡",
        "🎅",
        "🎄",
        "☃",
        "💅",
        "🤪",
        "🗿",
        "🆒",
        "💘",
        "🙉",
        "🦄",
        "😘",
        "💊",
        "🙊",
        "😎",
        "👾",
        "🤷\u{200D}♂",
        "🤷",
        "🤷\u{200D}♀",
        "😡",
    ],
    aliases: &[
        ("😂", "🤣"),
        ("♥", "❤"),
        ("✅", "👌"),
        ("🙂", "😁"),
        ("😊", "😁"),
        ("🤙", "👍"),
    ],
};

/// What `send` needs.
pub struct Outgoing {
    pub bot: Bot,
    pub host: Arc<dyn Host>,
    pub account: String,
}

use switchboard_kit::send::{attachment_bytes, host_unavailable, permanent, SentRecord};

/// Text in the form we send it: Telegram HTML, or plain.
struct Text {
    body: String,
    html: bool,
}

impl Text {
    fn of(content: &Content) -> Text {
        match &content.html {
            Some(h) => Text {
                body: format::html_to_telegram(h),
                html: true,
            },
            None => Text {
                body: content.text.clone(),
                html: false,
            },
        }
    }
}

fn chat_of(out: &Outgoing, conversation: &ConversationKey) -> Result<ChatId, SendError> {
    if conversation.account != out.account {
        return Err(permanent(format!(
            "this bridge's Telegram bot is {}, not {}",
            out.account, conversation.account
        )));
    }
    conversation
        .chat
        .parse::<i64>()
        .map(ChatId)
        .map_err(|_| permanent(format!("{:?} is not a Telegram chat id", conversation.chat)))
}

fn message_id(remote_id: &str) -> Result<MessageId, SendError> {
    remote_id
        .parse::<i32>()
        .map(MessageId)
        .map_err(|_| permanent(format!("{remote_id:?} is not a Telegram message id")))
}

fn can_parse_entities_error(e: &RequestError) -> bool {
    matches!(e, RequestError::Api(ApiError::CantParseEntities(_)))
}

/// `Channel::send`.
pub async fn send(out: &Outgoing, outbound: &Outbound) -> Result<Delivery, SendError> {
    let chat = chat_of(out, &outbound.conversation)?;
    match &outbound.action {
        OutboundAction::Message { content, reply_to } => {
            let record = SentRecord::new(out.host.as_ref(), "telegram", outbound);
            if let Some(done) = record.recall().await? {
                return Ok(Delivery::delivered(done));
            }
            let reply = match reply_to {
                Some(r) => Some(message_id(r)?),
                None => None,
            };
            let ids = send_message(out, chat, content, reply).await?;
            let Some(first) = ids.first().map(|id| id.0.to_string()) else {
                return Err(permanent("there was nothing to send"));
            };
            if ids.len() > 1 {
                let rest: Vec<String> = ids[1..].iter().map(|id| id.0.to_string()).collect();
                if let Err(e) = out
                    .host
                    .state_put(&format!("parts:{}:{first}", chat.0), &rest.join(","))
                    .await
                {
                    tracing::warn!(error = %e, "telegram: cannot remember the parts of a message");
                }
            }
            record.remember(&first).await;
            Ok(Delivery::delivered(first))
        }
        OutboundAction::Edit { remote_id, content } => {
            edit(out, chat, message_id(remote_id)?, content).await?;
            Ok(Delivery::delivered(remote_id.clone()))
        }
        OutboundAction::Delete { remote_id } => {
            let mut ids = vec![message_id(remote_id)?];
            let parts = out
                .host
                .state_get(&format!("parts:{}:{remote_id}", chat.0))
                .await
                .map_err(host_unavailable)?;
            ids.extend(
                parts
                    .iter()
                    .flat_map(|p| p.split(','))
                    .filter_map(|p| p.parse().ok())
                    .map(MessageId),
            );
            for id in ids {
                match out.bot.delete_message(chat, id).await {
                    Ok(_) | Err(RequestError::Api(ApiError::MessageToDeleteNotFound)) => {}
                    Err(e) => return Err(classify(e)),
                }
            }
            Ok(Delivery::delivered(remote_id.clone()))
        }
        OutboundAction::React { remote_id, key } => {
            // `setMessageReaction` sets the bot's whole reaction list (a bot may hold one), so
            // sending it again is harmless and an empty list takes the reaction back.
            let reaction = match key {
                Some(key) => vec![ReactionType::Emoji {
                    emoji: REACTIONS.pick(key).map_err(permanent)?.to_owned(),
                }],
                None => Vec::new(),
            };
            out.bot
                .set_message_reaction(chat, message_id(remote_id)?)
                .reaction(reaction)
                .await
                .map_err(classify)?;
            Ok(Delivery::delivered(remote_id.clone()))
        }
        OutboundAction::Template { .. } => Err(SendError::Permanent {
            reason: "message templates are not bridged to Telegram".into(),
        }),
        OutboundAction::RatingRequest(request) => {
            let key = format!("out:{}", outbound.idempotency_key);
            if let Some(done) = out.host.state_get(&key).await.map_err(host_unavailable)? {
                return Ok(Delivery::delivered(done));
            }
            // One button per row: the labels (score and stars) stay readable on a phone.
            let rows = request.choices.iter().map(|c| {
                vec![InlineKeyboardButton::callback(
                    c.label.clone(),
                    c.payload.clone(),
                )]
            });
            let m = out
                .bot
                .send_message(chat, request.question.clone())
                .reply_markup(InlineKeyboardMarkup::new(rows))
                .await
                .map_err(classify)?;
            let id = m.id.0.to_string();
            if let Err(e) = out.host.state_put(&key, &id).await {
                tracing::warn!(error = %e, "telegram: sent but cannot remember the idempotency key");
            }
            Ok(Delivery::delivered(id))
        }
    }
}

/// Send a text message (HTML with a plain fallback).
async fn send_text(
    out: &Outgoing,
    chat: ChatId,
    content: &Content,
    reply: Option<MessageId>,
) -> Result<Message, SendError> {
    let text = Text::of(content);
    let request = |body: String, html: bool| {
        let mut r = out.bot.send_message(chat, body);
        if html {
            r = r.parse_mode(ParseMode::Html);
        }
        if let Some(id) = reply {
            r = r.reply_parameters(ReplyParameters {
                allow_sending_without_reply: Some(true),
                ..ReplyParameters::new(id)
            });
        }
        r
    };
    match request(text.body, text.html).await {
        Ok(m) => Ok(m),
        Err(e) if text.html && can_parse_entities_error(&e) => {
            tracing::info!(error = %e, "telegram: HTML refused; sending plain text");
            request(content.text.clone(), false).await.map_err(classify)
        }
        Err(e) => Err(classify(e)),
    }
}

/// A whole outbound message: returns the ids of the Telegram messages it became, in order.
async fn send_message(
    out: &Outgoing,
    chat: ChatId,
    content: &Content,
    reply: Option<MessageId>,
) -> Result<Vec<MessageId>, SendError> {
    let mut ids = Vec::new();
    let caption_fits = content.text.chars().count() <= MAX_CAPTION_CHARS;
    let has_text = !content.text.trim().is_empty();
    if content.attachments.is_empty() || (has_text && !caption_fits) {
        let m = send_text(out, chat, content, reply).await?;
        ids.push(m.id);
    }
    for (i, attachment) in content.attachments.iter().enumerate() {
        let caption = (i == 0 && ids.is_empty() && has_text).then_some(content);
        let reply = if ids.is_empty() { reply } else { None };
        let m = send_file(out, chat, attachment, caption, reply).await?;
        ids.push(m.id);
    }
    Ok(ids)
}

/// Which Bot API method carries a file.
#[derive(Debug, PartialEq, Eq)]
enum FileMethod {
    Photo,
    Voice,
    Video,
    Document,
}

/// How a file goes out; `bytes` is the file (its header tells an image's width and height).
fn method_for(mime: &str, bytes: &[u8]) -> FileMethod {
    let mime = mime.to_ascii_lowercase();
    let essence = mime.split(';').next().unwrap_or("").trim();
    let size = bytes.len() as u64;
    // sendPhoto: at most 10 MB, width + height at most 10000, ratio at most 20
    // (<https://core.telegram.org/bots/api#sendphoto>); a panorama or a long screenshot
    // beyond that is PHOTO_INVALID_DIMENSIONS, so it goes as a document.
    let photo_fits = || dimensions::image_size(bytes).is_none_or(dimensions::fits_photo);
    match essence {
        "image/jpeg" | "image/png" | "image/webp" if size <= MAX_PHOTO_BYTES && photo_fits() => {
            FileMethod::Photo
        }
        "audio/ogg" | "audio/opus" => FileMethod::Voice,
        "video/mp4" => FileMethod::Video,
        _ => FileMethod::Document,
    }
}

async fn send_file(
    out: &Outgoing,
    chat: ChatId,
    attachment: &Attachment,
    caption: Option<&Content>,
    reply: Option<MessageId>,
) -> Result<Message, SendError> {
    let (bytes, mime) = attachment_bytes(out.host.as_ref(), attachment).await?;
    let method = method_for(&mime, &bytes);
    let text = caption.map(Text::of);
    let reply_parameters = reply.map(|id| ReplyParameters {
        allow_sending_without_reply: Some(true),
        ..ReplyParameters::new(id)
    });
    // One attempt with the caption as HTML, one with it plain if Telegram cannot parse it.
    let mut plain = false;
    loop {
        let (cap, html) = match (&text, plain) {
            (Some(t), false) => (Some(t.body.clone()), t.html),
            (Some(_), true) => (caption.map(|c| c.text.clone()), false),
            (None, _) => (None, false),
        };
        let file = InputFile::memory(bytes.clone()).file_name(attachment.name.clone());
        macro_rules! finish {
            ($req:expr) => {{
                let mut r = $req;
                if let Some(c) = cap {
                    r = r.caption(c);
                    if html {
                        r = r.parse_mode(ParseMode::Html);
                    }
                }
                if let Some(p) = reply_parameters.clone() {
                    r = r.reply_parameters(p);
                }
                r.await
            }};
        }
        let result = match method {
            FileMethod::Photo => finish!(out.bot.send_photo(chat, file)),
            FileMethod::Voice => finish!(out.bot.send_voice(chat, file)),
            FileMethod::Video => finish!(out.bot.send_video(chat, file)),
            FileMethod::Document => finish!(out.bot.send_document(chat, file)),
        };
        match result {
            Ok(m) => return Ok(m),
            Err(e) if html && !plain && can_parse_entities_error(&e) => plain = true,
            Err(RequestError::Api(ApiError::RequestEntityTooLarge)) => {
                return Err(permanent(format!(
                    "the file {} is too large for the Telegram Bot API",
                    attachment.name
                )))
            }
            Err(e) => return Err(classify(e)),
        }
    }
}

/// Edit the text (or, for a file, the caption) of a message the bot sent.
async fn edit(
    out: &Outgoing,
    chat: ChatId,
    id: MessageId,
    content: &Content,
) -> Result<(), SendError> {
    let text = Text::of(content);
    let text_request = |body: String, html: bool| {
        let mut r = out.bot.edit_message_text(chat, id, body);
        if html {
            r = r.parse_mode(ParseMode::Html);
        }
        r
    };
    let caption_request = |body: String, html: bool| {
        let mut r = out.bot.edit_message_caption(chat, id).caption(body);
        if html {
            r = r.parse_mode(ParseMode::Html);
        }
        r
    };
    let mut result = text_request(text.body.clone(), text.html).await.map(drop);
    if matches!(&result, Err(e) if can_parse_entities_error(e)) {
        result = text_request(content.text.clone(), false).await.map(drop);
    }
    if matches!(&result, Err(RequestError::Api(ApiError::Unknown(d))) if d.contains("no text in the message"))
    {
        result = caption_request(text.body.clone(), text.html)
            .await
            .map(drop);
        if matches!(&result, Err(e) if can_parse_entities_error(e)) {
            result = caption_request(content.text.clone(), false).await.map(drop);
        }
    }
    match result {
        Ok(()) | Err(RequestError::Api(ApiError::MessageNotModified)) => Ok(()),
        Err(e) => Err(classify(e)),
    }
}

/// `Channel::typing`: show "typing…" to the customer. Telegram's indicator lasts five seconds
/// or until the next message; there is nothing to send when an operator stops.
pub async fn typing(out: &Outgoing, conversation: &ConversationKey, active: bool) {
    if !active {
        return;
    }
    let Ok(chat) = chat_of(out, conversation) else {
        return;
    };
    if let Err(e) = out.bot.send_chat_action(chat, ChatAction::Typing).await {
        tracing::debug!(error = %e, "telegram: typing not shown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_kit::test_host::{check_retries_answered_from_record, MemoryHost};

    /// An item already sent (its key remembered) is answered from state, without a request:
    /// the Bot API behind this client is unreachable, so any request would fail.
    #[tokio::test]
    async fn a_retry_of_a_sent_item_does_not_send_again() {
        let config = crate::config::TelegramConfig {
            enabled: true,
            token: "42:secret".into(),
            api_url: "http://127.0.0.1:9".into(),
            ..Default::default()
        };
        let host = Arc::new(MemoryHost::default());
        host.state_put("out:$event1", "777").await.unwrap();
        let out = Outgoing {
            bot: crate::client::bot(&config).unwrap(),
            host: host.clone(),
            account: "42".into(),
        };
        let conversation = ConversationKey {
            account: "42".into(),
            chat: "1001".into(),
        };
        check_retries_answered_from_record(&conversation, "777", |item| {
            let out = &out;
            async move { send(out, &item).await }
        })
        .await;
    }

    #[test]
    fn files_pick_their_method() {
        let kb = vec![0u8; 1000];
        assert_eq!(method_for("image/jpeg", &kb), FileMethod::Photo);
        assert_eq!(
            method_for("image/png", &vec![0u8; 11 * 1024 * 1024]),
            FileMethod::Document
        );
        assert_eq!(method_for("audio/ogg; codecs=opus", &kb), FileMethod::Voice);
        assert_eq!(method_for("video/mp4", &kb), FileMethod::Video);
        assert_eq!(method_for("application/pdf", &kb), FileMethod::Document);
        assert_eq!(method_for("image/gif", &kb), FileMethod::Document);
        // A PNG whose width + height passes 10000 (or ratio 20) is no photo for Telegram.
        let png = |w: u32, h: u32| {
            let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
            b.extend_from_slice(&w.to_be_bytes());
            b.extend_from_slice(&h.to_be_bytes());
            b
        };
        assert_eq!(method_for("image/png", &png(4000, 3000)), FileMethod::Photo);
        assert_eq!(
            method_for("image/png", &png(9600, 480)),
            FileMethod::Document
        );
        assert_eq!(
            method_for("image/png", &png(3000, 100)),
            FileMethod::Document
        );
    }
}
