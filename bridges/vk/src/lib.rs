//! Switchboard's VK channel: customers write to the company's VK community, operators answer
//! from Matrix, the customer sees the community reply.
//!
//! Conversations: a customer's private dialogue with the community is a conversation (account =
//! the community's id, chat = the peer id, which for a private dialogue is the user's id). A group
//! chat the community was added to is one conversation too (`chats: true`), its members' messages
//! prefixed with their names.
//!
//! Inbound comes through the Callback API (VK posts events to `/vk/callback`); outbound through
//! the API methods at `api_url`. That base URL is the only difference between production and the
//! test suite's fake VK.
//!
//! Map of the crate, in the order an event travels:
//!
//! * [`config`] — the `channels.vk` section.
//! * `callback` — the endpoint: community and secret first, confirmation, store, then `ok`.
//! * [`inbound`] — an event → what it means ([`inbound::parse_event`], pure, fuzzed) → the
//!   core's `Inbound` with its files fetched ([`inbound::realize`]).
//! * `profile` — `users.get` for ghosts' names and avatars.
//! * `outbound` — `Channel::send`: messages, uploads, edits, deletions, rating keyboards,
//!   idempotency.
//! * [`api`] — method calls, uploads, downloads, and what VK's error codes mean.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use switchboard_channel::{Capabilities, ChannelError, Host};
use switchboard_kit::lifecycle::ChannelOwn;

pub mod api;
mod callback;
pub mod config;
mod doctor;
pub mod inbound;
mod outbound;
mod profile;

pub use config::VkConfig;
pub use outbound::random_id;

/// What the running channel shares between the callback endpoint and `send`.
pub(crate) struct Shared {
    pub config: VkConfig,
    pub api: api::Api,
    pub host: Arc<dyn Host>,
    pub options: inbound::ParseOptions,
    pub out: outbound::Outgoing,
}

/// Store one parsed callback (fetching its files and the sender's profile first). `Ok` means it
/// is durably stored or needs nothing; only then may the callback be answered `ok`.
pub(crate) async fn handle(
    shared: &Shared,
    callback: inbound::Callback,
) -> Result<(), inbound::RealizeError> {
    let parsed = match callback {
        inbound::Callback::Event(p) => *p,
        inbound::Callback::Ignored(why) => {
            tracing::debug!(why, "vk: event not bridged");
            return Ok(());
        }
        inbound::Callback::Confirmation => return Ok(()),
        inbound::Callback::Unreadable(input) => {
            shared.host.unreadable(*input).await?;
            return Ok(());
        }
    };
    // A rating button's press is answered (`messages.sendMessageEventAnswer`) once stored.
    let press = match &parsed.kind {
        inbound::ParsedKind::Choice { event_id, .. } => Some((
            event_id.clone(),
            parsed.user_id,
            parsed
                .conversation
                .chat
                .parse::<i64>()
                .unwrap_or(parsed.user_id),
        )),
        _ => None,
    };
    let sender = profile::profile(shared, parsed.user_id).await;
    let Some(inbound) = inbound::realize(
        parsed,
        sender,
        &shared.api,
        &shared.host,
        shared.config.max_download_size,
    )
    .await?
    else {
        return Ok(());
    };
    let key = inbound.dedup_key.clone();
    let fresh = shared.host.receive(inbound).await?;
    tracing::debug!(dedup_key = %key, fresh, "vk: event stored");
    if let Some((event_id, user, peer)) = press {
        outbound::answer_event(&shared.out, &event_id, user, peer).await;
    }
    Ok(())
}

switchboard_kit::channel_struct! {
    /// The VK channel.
    pub struct Vk {
        config: VkConfig,
        running: Arc<Shared>,
        label: "VK",
    }
    impl Channel {
        name: "vk",
        send: |shared, outbound| outbound::send(&shared.out, outbound).await,
        typing: |shared, conversation, active| {
            outbound::typing(&shared.out, conversation, active).await
        },
        mark_read: |shared, conversation, _up_to| {
            outbound::mark_read(&shared.out, conversation).await
        },
        check: |config| doctor::check(config).await,
    }
}

#[async_trait]
impl ChannelOwn for Vk {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_file_size: Some(self.config.max_file_size),
            // messages.send: the text goes beside attachments, under the same limit.
            max_text_length: Some(config::MAX_TEXT_CHARS),
            edits: true,
            deletes: true,
            replies: true,
            read_receipts: true,
            typing: true,
            // Inline keyboards with `callback` buttons carry the rating choices.
            rating: switchboard_channel::RatingStyle::Native,
            ..Capabilities::default()
        }
    }

    async fn start(self: Arc<Self>, host: Arc<dyn Host>) -> Result<Option<Router>, ChannelError> {
        let api = api::Api::new(&self.config).map_err(ChannelError::Config)?;
        let group_id = i64::try_from(self.config.group_id)
            .map_err(|_| ChannelError::Config("channels.vk.group_id: too large".into()))?;
        let options = inbound::ParseOptions {
            group_id,
            chats: self.config.chats,
        };
        let out = outbound::Outgoing {
            api: api.clone(),
            host: Arc::clone(&host),
            account: self.config.account(),
            group_id,
        };
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            api,
            host,
            options,
            out,
        });
        self.running.set(Arc::clone(&shared))?;
        tracing::info!(group_id, api = %self.config.api_url, "vk: callback endpoint ready at /vk/callback");
        Ok(Some(callback::router(shared)))
    }
}
