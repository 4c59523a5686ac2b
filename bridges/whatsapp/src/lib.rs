//! Switchboard's WhatsApp channel: customers write to the company's WhatsApp business number,
//! operators answer from Matrix, through the WhatsApp Business Cloud API (Meta's Graph API).
//!
//! Conversations: one per customer on the business number (account = the `phone_number_id`,
//! chat = the customer's `wa_id`, which is their phone number in digits). The ghost is named
//! from the customer's WhatsApp profile name and carries the number as `+<digits>`.
//!
//! Everything goes to `api_url` (default `https://graph.facebook.com`) and arrives at the
//! bridge's webhook; the base URL is the only difference between production and the test
//! suite's fake.
//!
//! Map of the crate, in the order an event travels:
//!
//! * [`config`] — the `channels.whatsapp` section.
//! * `webhook` — the verification handshake, then signature first, parse, store, 200.
//! * The handshake and `X-Hub-Signature-256` are Meta's protocol: `switchboard_kit::meta`.
//! * [`payload`] — a delivery → what it means ([`payload::parse_webhook`], pure, fuzzed).
//! * `inbound` — parsed events → the core's `Inbound`, customers' files fetched.
//! * [`format`] — operators' HTML → WhatsApp's `*bold*` `_italic_` markup.
//! * `outbound` — `Channel::send`: text, files, reactions, templates, rating questions (an
//!   interactive list), idempotency.
//! * [`api`] — the Graph API calls and what their errors mean (retryable or permanent).
//!
//! The 24-hour customer-service window is the core's to enforce (`reply_window`); WhatsApp
//! refusing anyway (error 131047) comes back as a permanent failure that points operators at
//! `!sb template`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use switchboard_channel::{Capabilities, ChannelError, Formatting, Host};
use switchboard_kit::lifecycle::ChannelOwn;

pub mod api;
pub mod config;
mod doctor;
pub mod format;
mod inbound;
mod outbound;
pub mod payload;
mod webhook;

pub use config::WhatsAppConfig;

/// How long after the customer's last message free-form messages are allowed.
pub const REPLY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// What the running channel shares between the webhook and `send`.
pub(crate) struct Shared {
    pub config: WhatsAppConfig,
    pub graph: api::Graph,
    pub host: Arc<dyn Host>,
}

switchboard_kit::channel_struct! {
    /// The WhatsApp channel.
    pub struct WhatsApp {
        config: WhatsAppConfig,
        running: Arc<Shared>,
        label: "WhatsApp",
    }
    impl Channel {
        name: "whatsapp",
        send: |shared, outbound| {
            let out = outbound::Outgoing {
                graph: &shared.graph,
                host: shared.host.as_ref(),
                config: &shared.config,
            };
            outbound::send(&out, outbound).await
        },
        mark_read: |shared, conversation, remote_id| {
            outbound::mark_read(&shared.graph, &shared.config, conversation, remote_id).await
        },
        check: |config| doctor::check(config).await,
    }
}

#[async_trait]
impl ChannelOwn for WhatsApp {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // The core's sanitised HTML, rewritten as WhatsApp markup (`format`).
            formatting: Formatting::Html,
            max_file_size: Some(self.config.max_file_size),
            // Cloud API: text body up to 4096 characters, media captions up to 1024.
            max_text_length: Some(config::MAX_TEXT_CHARS),
            max_caption_length: Some(1024),
            // The Cloud API has no way for a business to edit or delete a sent message.
            edits: false,
            replies: true,
            reactions: true,
            read_receipts: self.config.read_receipts,
            reply_window: Some(REPLY_WINDOW),
            templates: true,
            // Interactive list messages carry the rating choices (`outbound::rating_message`).
            rating: switchboard_channel::RatingStyle::Native,
            ..Capabilities::default()
        }
    }

    async fn start(self: Arc<Self>, host: Arc<dyn Host>) -> Result<Option<Router>, ChannelError> {
        let graph = api::Graph::new(&self.config).map_err(ChannelError::Config)?;
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            graph,
            host,
        });
        self.running.set(Arc::clone(&shared))?;
        tracing::info!(
            phone_number_id = %self.config.phone_number_id,
            api = %self.config.versioned_base(),
            "whatsapp: starting; Meta's webhook goes to <public url>/whatsapp/webhook"
        );
        Ok(Some(webhook::router(shared)))
    }
}

/// The shared payload fixtures of `platform`, found as the kit finds every network's.
#[cfg(test)]
pub(crate) use switchboard_kit::test_host::fixtures_dir;
