//! Switchboard's Telegram channel: customers write to the company's bot, operators answer from
//! Matrix, the customer sees the bot reply.
//!
//! Conversations: a private chat with the bot is a conversation (account = the bot's id,
//! chat = the chat id, which for a private chat is the user's id). A group the bot is a member
//! of is one conversation too (`groups: true`, the default), each member speaking as a ghost of
//! their own in the group's room (`Inbound::group`); answers go to the group.
//!
//! Everything goes through teloxide's Bot API client pointed at `api_url`; that base URL is the
//! only difference between production and the test suite's fake Bot API.
//!
//! Map of the crate, in the order an update travels:
//!
//! * [`config`] — the `channels.telegram` section.
//! * `poll` — long polling; the offset is stored only after the updates are (default mode).
//! * `webhook` — webhook mode: secret header first, store, then 200.
//! * [`inbound`] — an update → what it means ([`inbound::parse_update`], pure, fuzzed) → the
//!   core's `Inbound` with its file fetched ([`inbound::realize`]).
//! * [`lenient`] — what teloxide's strict types refuse, read field by field.
//! * [`format`] — Telegram entities → HTML, core HTML → Telegram HTML.
//! * `profile` — profile photos for ghosts' avatars.
//! * `outbound` — `Channel::send`: messages, files, edits, deletions, reactions, idempotency.
//! * `client` — the teloxide `Bot` and what its errors mean (retryable or permanent).

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use switchboard_channel::{Capabilities, ChannelError, Formatting, Host};
use switchboard_kit::lifecycle::ChannelOwn;
use teloxide::Bot;

mod client;
pub mod config;
mod dimensions;
mod doctor;
pub mod format;
pub mod inbound;
pub mod lenient;
mod outbound;
mod poll;
mod profile;
mod webhook;

pub use config::{Mode, TelegramConfig};

/// What the running channel shares between polling, the webhook and `send`.
pub(crate) struct Shared {
    pub config: TelegramConfig,
    pub bot: Bot,
    pub host: Arc<dyn Host>,
    pub options: inbound::ParseOptions,
    pub out: outbound::Outgoing,
}

/// Store one raw update in the core's inbox (fetching its file first), or, when it cannot be
/// read, hand it to `Host::unreadable`. `Ok` means it is durably stored or needs nothing; only
/// then may the update be acknowledged to Telegram.
pub(crate) async fn handle_update(
    shared: &Shared,
    raw: &[u8],
) -> Result<(), inbound::RealizeError> {
    let parsed = match inbound::read_update(raw, &shared.options) {
        inbound::Read::Parsed(parsed) => parsed,
        inbound::Read::Skip(why) => {
            tracing::debug!(why, "telegram: update not bridged");
            return Ok(());
        }
        inbound::Read::Unreadable(input) => {
            shared.host.unreadable(input).await?;
            return Ok(());
        }
    };
    let dedup_key = parsed.dedup_key.clone();
    let callback = match &parsed.kind {
        inbound::ParsedKind::Choice { callback_id, .. } => Some(callback_id.clone()),
        _ => None,
    };
    let avatar = profile::avatar(shared, parsed.user_id).await;
    let inbound = inbound::realize(
        parsed,
        &shared.bot,
        &shared.host,
        shared.config.max_download_size,
        avatar,
    )
    .await?;
    let fresh = shared.host.receive(inbound).await?;
    tracing::debug!(%dedup_key, fresh, "telegram: update stored");
    // Stored: stop the button's progress indicator on the customer's side. Best effort: the
    // press counts either way, and Telegram forgets unanswered queries on its own.
    if let Some(id) = callback {
        use teloxide::prelude::Requester;
        if let Err(e) = shared
            .bot
            .answer_callback_query(teloxide::types::CallbackQueryId(id))
            .await
        {
            tracing::info!(error = %e, "telegram: cannot answer a callback query");
        }
    }
    Ok(())
}

switchboard_kit::channel_struct! {
    /// The Telegram channel.
    pub struct Telegram {
        config: TelegramConfig,
        running: Arc<Shared>,
        label: "Telegram",
    }
    impl Channel {
        name: "telegram",
        send: |shared, outbound| outbound::send(&shared.out, outbound).await,
        typing: |shared, conversation, active| {
            outbound::typing(&shared.out, conversation, active).await
        },
        check: |config| doctor::check(config).await,
    }
}

#[async_trait]
impl ChannelOwn for Telegram {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            formatting: Formatting::Html,
            max_file_size: Some(self.config.max_file_size),
            // Bot API: text "1-4096 characters after entities parsing", captions "0-1024"; Telegram counts
            // in UTF-16 code units, as its entity offsets do.
            max_text_length: Some(config::MAX_TEXT_CHARS),
            max_caption_length: Some(1024),
            text_unit: switchboard_channel::TextUnit::Utf16,
            edits: true,
            deletes: true,
            replies: true,
            reactions: true,
            typing: true,
            rating: switchboard_channel::RatingStyle::Native,
            ..Capabilities::default()
        }
    }

    async fn start(self: Arc<Self>, host: Arc<dyn Host>) -> Result<Option<Router>, ChannelError> {
        let account = self.config.bot_id().unwrap_or_default().to_owned();
        let bot = client::bot(&self.config).map_err(ChannelError::Config)?;
        let options = inbound::ParseOptions {
            account: account.clone(),
            groups: self.config.groups,
            group_sender_prefix: self.config.group_sender_prefix,
        };
        let out = outbound::Outgoing {
            bot: bot.clone(),
            host: Arc::clone(&host),
            account: account.clone(),
        };
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            bot,
            host,
            options,
            out,
        });
        self.running.set(Arc::clone(&shared))?;
        tracing::info!(account, mode = ?self.config.mode, api = %self.config.api_url, "telegram: starting");
        match self.config.mode {
            Mode::Polling => {
                // One getUpdates at a time per bot (Telegram answers 409 to a second): on the
                // leader only.
                let leading = shared.host.leading();
                switchboard_kit::lifecycle::while_leading("telegram polling", leading, move || {
                    poll::run(Arc::clone(&shared))
                });
                Ok(None)
            }
            Mode::Webhook => {
                if self.config.register_webhook {
                    tokio::spawn(webhook::register(Arc::clone(&shared)));
                }
                Ok(Some(webhook::router(shared)))
            }
        }
    }
}
