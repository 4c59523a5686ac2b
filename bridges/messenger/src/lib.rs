//! Switchboard's Messenger and Instagram channels: customers write to the company's Facebook
//! Page or Instagram professional account, operators answer from Matrix, the customer sees the
//! Page (or the Instagram account) reply.
//!
//! Both networks are Meta's Messenger Platform: the same webhook envelope, the same Send API,
//! the same signatures, so one crate serves both and [`Platform`] says which one a
//! [`MetaChannel`] is. Conversations: account = the Page id / Instagram account id (`entry.id`),
//! chat = the customer's Page-scoped id (PSID) / Instagram-scoped id (IGSID).
//!
//! Everything goes to the Graph API at `api_url` (`https://graph.facebook.com` by default); that
//! base URL is the only difference between production and the test suite's fake.
//!
//! Map of the crate, in the order an event travels:
//!
//! * [`config`] — the `channels.messenger` / `channels.instagram` sections.
//! * `webhook` — `GET /<name>/webhook` (the subscription handshake) and `POST` (signature first,
//!   parse, store every event, then 200).
//! * The handshake and `X-Hub-Signature-256` are Meta's protocol: `switchboard_kit::meta`.
//! * [`parse`] — a delivery → events ([`parse::parse_body`], pure, fuzzed).
//! * `inbound` — an event → the core's `Inbound`: files fetched, profile looked up, receipts'
//!   watermarks resolved to our message ids.
//! * `profile` — customers' names (and pictures) from the Graph API, cached.
//! * `outbound` — `Channel::send`: text, files, reactions, idempotency; typing and mark_seen.
//! * `graph` — the HTTP requests and what Meta's error codes mean.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use switchboard_channel::{
    Capabilities, Channel, ChannelError, ConversationKey, Delivery, Host, Outbound, SendError,
};
use switchboard_kit::lifecycle::{should_start, Running};

pub mod config;
mod doctor;
mod graph;
mod inbound;
mod outbound;
pub mod parse;
mod profile;
mod webhook;

pub use config::MetaConfig;
pub use inbound::{file_name, guess_mime};
pub use parse::Platform;

/// Meta's customer-service window: free-form messages only within 24 h of the customer's last.
pub const REPLY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// What the running channel shares between the webhook and `send`.
pub(crate) struct Shared {
    pub platform: Platform,
    pub config: MetaConfig,
    pub graph: graph::Graph,
    pub host: Arc<dyn Host>,
    pub profiles: profile::Profiles,
    pub recent: inbound::Recent,
}

/// The Messenger channel or the Instagram channel.
pub struct MetaChannel {
    platform: Platform,
    config: MetaConfig,
    running: Running<Arc<Shared>>,
}

impl MetaChannel {
    /// The Messenger channel (`channels.messenger`).
    pub fn messenger(config: MetaConfig) -> Self {
        Self::new(Platform::Messenger, config)
    }

    /// The Instagram channel (`channels.instagram`).
    pub fn instagram(config: MetaConfig) -> Self {
        Self::new(Platform::Instagram, config)
    }

    pub fn new(platform: Platform, config: MetaConfig) -> Self {
        Self {
            platform,
            running: Running::new(platform.label(), config.enabled),
            config,
        }
    }

    pub fn config(&self) -> &MetaConfig {
        &self.config
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }
}

/// Longest text the Send API takes: 2000 characters on Messenger, 1000 on Instagram.
pub fn max_text_chars(platform: Platform) -> usize {
    match platform {
        Platform::Messenger => 2000,
        Platform::Instagram => 1000,
    }
}

#[async_trait]
impl Channel for MetaChannel {
    fn name(&self) -> &'static str {
        self.platform.name()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_file_size: Some(self.config.max_file_size),
            // Send API: files carry no text; the channel sends the text as a message of its own.
            max_text_length: Some(max_text_chars(self.platform)),
            // The Send API has no documented way to quote the message answered.
            replies: false,
            reactions: true,
            read_receipts: true,
            typing: true,
            reply_window: Some(REPLY_WINDOW),
            // Quick replies carry the rating choices.
            rating: switchboard_channel::RatingStyle::Native,
            ..Capabilities::default()
        }
    }

    async fn start(self: Arc<Self>, host: Arc<dyn Host>) -> Result<Option<Router>, ChannelError> {
        let name = self.platform.name();
        if !should_start(name, self.config.enabled, || self.config.validate(name))? {
            return Ok(None);
        }
        let timeout = Duration::from_secs(u64::from(self.config.request_timeout_secs));
        let graph = graph::Graph::new(
            self.config.graph_base(),
            self.config.access_token.clone(),
            self.platform,
            timeout,
        )
        .map_err(ChannelError::Config)?;
        let shared = Arc::new(Shared {
            platform: self.platform,
            config: self.config.clone(),
            graph,
            host,
            profiles: profile::Profiles::default(),
            recent: inbound::Recent::default(),
        });
        self.running.set(Arc::clone(&shared))?;
        tracing::info!(channel = name, api = %self.config.graph_base(), "starting; webhook at /{name}/webhook");
        Ok(Some(webhook::router(shared)))
    }

    async fn send(&self, outbound: &Outbound) -> Result<Delivery, SendError> {
        outbound::send(self.running.for_send()?, outbound).await
    }

    async fn typing(&self, conversation: &ConversationKey, active: bool) {
        if let Some(shared) = self.running.get() {
            let action = if active { "typing_on" } else { "typing_off" };
            outbound::sender_action(shared, conversation, action).await;
        }
    }

    async fn mark_read(&self, conversation: &ConversationKey, _remote_id: &str) {
        if let Some(shared) = self.running.get() {
            outbound::sender_action(shared, conversation, "mark_seen").await;
        }
    }

    async fn check(&self) -> Vec<switchboard_channel::Check> {
        doctor::check(self.platform, &self.config).await
    }
}
