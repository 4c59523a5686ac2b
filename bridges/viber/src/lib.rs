//! Switchboard's Viber channel: customers write to the company's Viber bot, operators answer from
//! Matrix, the customer sees the bot reply.
//!
//! Conversations: a customer's chat with the bot is a conversation (account = the bot, chat = the
//! customer's Viber user id). Viber bots have no group chats.
//!
//! Inbound comes through the webhook (Viber posts signed events to `/viber/callback`, registered
//! with `set_webhook` at start); outbound through `send_message` at `api_url`, files published at
//! `/viber/media/<signed token>` for Viber to fetch. That base URL is the only difference between
//! production and the test suite's fake Viber.
//!
//! Map of the crate, in the order an event travels:
//!
//! * [`config`] — the `channels.viber` section.
//! * `callback` — the webhook: signature first, store, then 200.
//! * [`signing`] — callback signatures and media link tokens (HMAC-SHA256).
//! * [`inbound`] — a callback → what it means ([`inbound::parse_callback_json`], pure, fuzzed) →
//!   the core's `Inbound` with its file fetched ([`inbound::realize`]).
//! * `profile` — names and avatars from the message's sender.
//! * `outbound` — `Channel::send`: text, pictures, videos, files, idempotency.
//! * `media` — the signed, expiring links operators' files are served from.
//! * [`api`] — the REST calls and what Viber's status codes mean.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use serde_json::json;
use switchboard_channel::{Capabilities, ChannelError, Host};
use switchboard_kit::lifecycle::ChannelOwn;

pub mod api;
mod callback;
pub mod config;
mod doctor;
pub mod inbound;
mod media;
mod outbound;
mod profile;
pub mod signing;

pub use config::ViberConfig;

/// What the running channel shares between the webhook and `send`.
pub(crate) struct Shared {
    pub config: ViberConfig,
    pub account: String,
    pub api: api::Api,
    pub host: Arc<dyn Host>,
    pub out: outbound::Outgoing,
}

/// Store one parsed callback (fetching its file and the sender's avatar first). `Ok` means it is
/// durably stored or needs nothing; only then may the callback be answered 200.
pub(crate) async fn handle(
    shared: &Shared,
    callback: inbound::Callback,
) -> Result<(), inbound::RealizeError> {
    let parsed = match callback {
        inbound::Callback::Event(p) => *p,
        inbound::Callback::Ignored(why) => {
            tracing::debug!(why, "viber: event not bridged");
            return Ok(());
        }
        inbound::Callback::Unreadable(input) => {
            shared.host.unreadable(*input).await?;
            return Ok(());
        }
    };
    let sender = profile::profile(shared, &parsed.sender).await;
    let inbound = inbound::realize(
        parsed,
        sender,
        &shared.api,
        &shared.host,
        shared.config.max_download_size,
    )
    .await?;
    let key = inbound.dedup_key.clone();
    let fresh = shared.host.receive(inbound).await?;
    tracing::debug!(dedup_key = %key, fresh, "viber: event stored");
    Ok(())
}

/// Register the webhook, retrying until Viber accepts it. Viber checks the URL by posting a
/// `webhook` event to it during the call, so this runs once the bridge is listening.
async fn register(shared: Arc<Shared>) {
    let Some(url) = shared.config.webhook_url() else {
        return;
    };
    let body = json!({
        "url": url,
        "event_types": ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"],
        "send_name": true,
        "send_photo": true,
    });
    let mut pause = Duration::from_secs(1);
    loop {
        tokio::time::sleep(pause).await;
        match shared.api.call("set_webhook", &body).await {
            Ok(_) => {
                tracing::info!(%url, "viber: webhook registered");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, %url, "viber: set_webhook failed; retrying");
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
    }
}

switchboard_kit::channel_struct! {
    /// The Viber channel.
    pub struct Viber {
        config: ViberConfig,
        running: Arc<Shared>,
        label: "Viber",
    }
    impl Channel {
        name: "viber",
        send: |shared, outbound| outbound::send(&shared.out, outbound).await,
        check: |config| doctor::check(config).await,
    }
}

#[async_trait]
impl ChannelOwn for Viber {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_file_size: Some(self.config.max_file_size),
            // REST bot API: text up to 7000 characters; a picture's description up to 120.
            max_text_length: Some(config::MAX_TEXT_CHARS),
            max_caption_length: Some(120),
            // Customers' `seen` events come in regardless; Viber has no way for a bot to mark
            // the customer's messages read, so operators' receipts are not asked for.
            read_receipts: false,
            // A keyboard of `reply` buttons carries the rating choices.
            rating: switchboard_channel::RatingStyle::Native,
            ..Capabilities::default()
        }
    }

    async fn start(self: Arc<Self>, host: Arc<dyn Host>) -> Result<Option<Router>, ChannelError> {
        let api = api::Api::new(&self.config).map_err(ChannelError::Config)?;
        let account = self.config.account();
        let secret = match self
            .config
            .media_secret
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            Some(s) => s.as_bytes().to_vec(),
            None => signing::derived_media_secret(&self.config.auth_token),
        };
        let public = self
            .config
            .public_url
            .as_deref()
            .unwrap_or_default()
            .trim_end_matches('/');
        let publisher = media::Publisher {
            host: Arc::clone(&host),
            secret,
            base: format!("{public}/viber/media"),
            ttl_secs: self.config.media_link_ttl_secs,
        };
        let mut sender = json!({"name": self.config.bot_name.trim()});
        if let Some(avatar) = self.config.bot_avatar.as_deref().filter(|a| !a.is_empty()) {
            sender["avatar"] = avatar.into();
        }
        let out = outbound::Outgoing {
            api: api.clone(),
            host: Arc::clone(&host),
            account: account.clone(),
            sender,
            media: publisher,
        };
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            account: account.clone(),
            api,
            host,
            out,
        });
        self.running.set(Arc::clone(&shared))?;
        tracing::info!(account, api = %self.config.api_url, "viber: webhook at /viber/callback");
        if self.config.register_webhook {
            tokio::spawn(register(Arc::clone(&shared)));
        }
        Ok(Some(callback::router(shared)))
    }
}
