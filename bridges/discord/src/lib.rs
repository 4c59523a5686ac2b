//! Switchboard's Discord channel: customers write direct messages to the company's bot,
//! operators answer from Matrix, the customer sees the bot reply.
//!
//! Conversations: a DM channel with the bot is a conversation (account = the bot's user id,
//! chat = the DM channel id). Guild channels are ignored unless `guilds: true` (then each
//! channel is one group conversation: each member speaks as a ghost of their own, and the room
//! is named after the channel, `#name`, which `GET /channels/{id}` tells).
//!
//! Everything goes through two base URLs: the HTTP API (`api_url`, default
//! `https://discord.com`, requests to `/api/v10/…`) and the gateway URL that API hands out
//! (`GET /gateway/bot`). They are the only difference between production and the test suite's
//! fake. The crate speaks both protocols itself (reqwest + tokio-tungstenite) rather than
//! through serenity; `docs/discord.md` says why.
//!
//! Map of the crate, in the order an event travels:
//!
//! * [`config`] — the `channels.discord` section.
//! * `gateway` — the WebSocket: identify, heartbeats, resume, ordered storing.
//! * [`inbound`] — a dispatch → what it means ([`inbound::parse_dispatch`], pure, fuzzed) → the
//!   core's `Inbound` with its attachments fetched.
//! * [`markdown`] — Discord markdown → HTML, the core's HTML → Discord markdown.
//! * [`model`] — the Discord objects the bridge reads.
//! * `profile` — who is behind a DM channel, and avatars for ghosts.
//! * `outbound` — `Channel::send`: messages, files, replies, edits, deletions, reactions,
//!   rating questions, idempotency.
//! * [`rating`] — rating questions as buttons, and the answer to a press (within 3 s).
//! * [`rest`] — the HTTP API and what its errors mean (retryable or permanent).

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use axum::Router;
use serde_json::Value;
use switchboard_channel::{Capabilities, ChannelError, Formatting, Host};
use switchboard_kit::lifecycle::ChannelOwn;

mod catchup;
pub mod config;
mod doctor;
mod gateway;
pub mod inbound;
pub mod markdown;
pub mod model;
mod outbound;
mod profile;
pub mod rating;
pub mod rest;

pub use config::DiscordConfig;

/// What the running channel shares between the gateway and `send`.
pub(crate) struct Shared {
    pub config: DiscordConfig,
    pub rest: rest::Rest,
    pub host: Arc<dyn Host>,
    pub options: RwLock<inbound::ParseOptions>,
    pub profiles: profile::Profiles,
}

impl Shared {
    /// The bot's user id from READY (normally the same as the one in the token).
    pub fn set_account(&self, id: &str) {
        if let Ok(mut options) = self.options.write() {
            if options.account != id {
                if !options.account.is_empty() {
                    tracing::warn!(from_token = %options.account, from_ready = %id, "discord: the token names another bot id than READY; using READY's");
                }
                options.account = id.to_owned();
            }
        }
    }

    pub(crate) fn options(&self) -> inbound::ParseOptions {
        self.options.read().map(|o| o.clone()).unwrap_or_default()
    }
}

/// Store one dispatch in the core's inbox (fetching its files first). `Ok` means it is stored
/// or needs nothing.
pub(crate) async fn handle_dispatch(
    shared: &Shared,
    event: &str,
    data: &Value,
) -> Result<(), inbound::RealizeError> {
    let options = shared.options();
    let Some(parsed) = inbound::parse_dispatch(event, data, &options) else {
        if let Some(input) = inbound::unreadable_dispatch(event, data, &options) {
            shared.host.unreadable(input).await?;
        }
        return Ok(());
    };
    let chat = parsed.conversation.chat.clone();
    if let inbound::ParsedKind::Delete { remote_id } = &parsed.kind {
        if shared
            .host
            .state_get(&outbound::deleted_key(&chat, remote_id))
            .await?
            .is_some()
        {
            tracing::debug!(chat, remote_id, "discord: our own deletion echoed; skipped");
            return Ok(());
        }
    }
    let sender = match (&parsed.sender, &parsed.sender_id) {
        (Some(user), _) => Some(shared.profiles.remember(shared, &chat, user).await),
        (None, Some(id)) => shared.profiles.known(shared, &chat, Some(id)).await,
        (None, None) => shared.profiles.known(shared, &chat, None).await,
    };
    let Some(sender) = sender else {
        tracing::debug!(
            event,
            chat,
            "discord: event from someone the bridge has not met; skipped"
        );
        return Ok(());
    };
    if parsed.kind == inbound::ParsedKind::Typing {
        shared
            .host
            .typing(&parsed.conversation, &sender, true)
            .await;
        return Ok(());
    }
    let reaction_state = match &parsed.kind {
        inbound::ParsedKind::Reaction {
            remote_id,
            emoji,
            added,
        } => {
            let key = format!("reaction-in:{chat}:{remote_id}:{}", sender.id);
            let current = shared.host.state_get(&key).await?.unwrap_or_default();
            // A redelivered addition, or the removal of an emoji that is no longer the
            // customer's reaction here: nothing changes.
            if (*added && current == *emoji) || (!*added && current != *emoji) {
                tracing::debug!(
                    chat,
                    remote_id,
                    "discord: reaction changes nothing; skipped"
                );
                return Ok(());
            }
            Some((key, if *added { emoji.clone() } else { String::new() }))
        }
        _ => None,
    };
    let press = match &parsed.kind {
        inbound::ParsedKind::Choice {
            remote_id,
            payload,
            answer,
        } => Some((remote_id.clone(), payload.clone(), answer.clone())),
        _ => None,
    };
    let title = if parsed.group {
        shared.profiles.channel_title(shared, &chat).await
    } else {
        None
    };
    let realizer = inbound::Realizer {
        rest: &shared.rest,
        host: &shared.host,
        max_download: shared.config.max_download_size,
    };
    let dedup = parsed.dedup_key.clone();
    let mut inbound = inbound::realize(parsed, sender, &realizer).await?;
    if let Some(group) = inbound.group.as_mut() {
        group.title = title;
    }
    let fresh = shared.host.receive(inbound).await?;
    if let Some((key, value)) = reaction_state {
        shared.host.state_put(&key, &value).await?;
    }
    // Stored: now the press is answered (Discord wants that within 3 s of its delivery).
    if let Some((id, payload, answer)) = press {
        rating::answer(shared, &chat, &id, &payload, &answer).await;
    }
    tracing::debug!(event, dedup, fresh, "discord: event stored");
    Ok(())
}

/// The bot's user id encoded in its token (`base64(user id).timestamp.hmac`), if it is there.
pub fn bot_id_from_token(token: &str) -> Option<String> {
    let first = token.trim().split('.').next()?;
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in first.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    let id = String::from_utf8(out).ok()?;
    (!id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

switchboard_kit::channel_struct! {
    /// The Discord channel.
    pub struct Discord {
        config: DiscordConfig,
        running: outbound::Outgoing,
        label: "Discord",
    }
    impl Channel {
        name: "discord",
        send: |out, outbound| outbound::send(out, outbound).await,
        typing: |out, conversation, active| outbound::typing(out, conversation, active).await,
        check: |config| doctor::check(config).await,
    }
}

#[async_trait]
impl ChannelOwn for Discord {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            formatting: Formatting::Html,
            max_file_size: Some(self.config.max_file_size),
            // A message's content (with or without files) is at most 2000 characters.
            max_text_length: Some(config::MAX_TEXT_CHARS),
            edits: true,
            deletes: true,
            replies: true,
            typing: true,
            reactions: true,
            // Message components: one button per score (`rating`).
            rating: switchboard_channel::RatingStyle::Native,
            ..Capabilities::default()
        }
    }

    async fn start(self: Arc<Self>, host: Arc<dyn Host>) -> Result<Option<Router>, ChannelError> {
        // wss:// needs a TLS provider; the process may link more than one, so pick one.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let rest = rest::Rest::new(&self.config).map_err(ChannelError::Config)?;
        let account = bot_id_from_token(&self.config.token).unwrap_or_default();
        let options = inbound::ParseOptions {
            account: account.clone(),
            guilds: self.config.guilds,
            guild_channels: self.config.guild_channels.clone(),
        };
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            rest: rest.clone(),
            host: Arc::clone(&host),
            options: RwLock::new(options),
            profiles: profile::Profiles::default(),
        });
        self.running.set(outbound::Outgoing { rest, host })?;
        tracing::info!(account, api = %self.config.api_url, "discord: starting");
        // One gateway session per bot: on the leader only.
        let leading = shared.host.leading();
        switchboard_kit::lifecycle::while_leading("discord gateway", leading, move || {
            gateway::run(Arc::clone(&shared))
        });
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bot_id_from_token() {
        assert_eq!(
            super::bot_id_from_token("MTEwMDAwMDAwMDAwMDAwMDAwMQ.GxYz12.abc").as_deref(),
            Some("1100000000000000001")
        );
        assert_eq!(super::bot_id_from_token("not-a-token"), None);
        assert_eq!(super::bot_id_from_token(""), None);
    }
}
