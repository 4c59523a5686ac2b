//! What the core offers a channel ([`switchboard_channel::Host`]), scoped to that channel.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use switchboard_channel::{
    Availability, ContactProfile, ConversationKey, Host, HostError, Inbound, MediaRef, Recorded,
    Unreadable,
};

use crate::bridge::Bridge;

/// Largest file fetched from the media repository for a channel that states no limit.
const DEFAULT_MAX_MEDIA: u64 = 100 * 1024 * 1024;

pub struct ChannelHost {
    bridge: Arc<Bridge>,
    channel: &'static str,
}

impl ChannelHost {
    pub fn new(bridge: Arc<Bridge>, channel: &'static str) -> ChannelHost {
        ChannelHost { bridge, channel }
    }

    /// An inbound event into the inbox, with the channel's records of it when given (their
    /// log entry's seq comes back).
    async fn store_inbound(
        &self,
        inbound: &Inbound,
        record: Option<&Recorded<'_>>,
    ) -> Result<(bool, Option<i64>), HostError> {
        let ghost = self
            .bridge
            .namespace
            .ghost_user_id(self.channel, &inbound.sender.id);
        let member_ghosts: Vec<String> = inbound
            .group
            .iter()
            .flat_map(|g| &g.members)
            .map(|m| self.bridge.namespace.ghost_user_id(self.channel, &m.id))
            .collect();
        let (fresh, seq) = self
            .bridge
            .queue_inbound(self.channel, &ghost, &member_ghosts, inbound, record)
            .await
            .map_err(store_error)?;
        // The channel hears from its network: it is connected.
        crate::metrics::channel_up(self.channel, true);
        tracing::debug!(channel = self.channel, dedup_key = %inbound.dedup_key, fresh, "stored in the inbox");
        Ok((fresh, seq))
    }
}

fn store_error(e: sqlx::Error) -> HostError {
    HostError::Store(e.to_string())
}

#[async_trait]
impl Host for ChannelHost {
    async fn receive(&self, inbound: Inbound) -> Result<bool, HostError> {
        self.store_inbound(&inbound, None)
            .await
            .map(|(fresh, _)| fresh)
    }

    /// The event and the channel's records of it in one transaction of the store.
    async fn receive_recorded(
        &self,
        inbound: Inbound,
        record: Recorded<'_>,
    ) -> Result<(bool, i64), HostError> {
        match self.store_inbound(&inbound, Some(&record)).await? {
            (fresh, Some(seq)) => Ok((fresh, seq)),
            (_, None) => Err(HostError::Store("the log entry was not written".into())),
        }
    }

    /// Input the channel could not read: a notice in its conversation's room when it names one
    /// (through the inbox, like any event), else kept in the store and shown in the admin room
    /// ([`crate::unreadable`]). Either way it is durably stored before this returns `Ok`.
    async fn unreadable(&self, input: Unreadable) -> Result<(), HostError> {
        tracing::warn!(
            channel = self.channel,
            what = %input.what,
            reason = %input.reason,
            dedup_key = %input.dedup_key,
            conversation = ?input.conversation.as_ref().map(|c| &c.chat),
            "unreadable input kept and shown as a notice"
        );
        if let Some(notice) = input.to_notice() {
            self.receive(notice).await?;
            return Ok(());
        }
        self.bridge
            .store
            .unreadable_insert(self.channel, &input)
            .await
            .map_err(store_error)?;
        // The leader shows it (at once when this instance leads; else within its next round).
        if self.bridge.leader.holds() {
            tokio::spawn(crate::unreadable::post_pending(Arc::clone(&self.bridge)));
        }
        Ok(())
    }

    fn leading(&self) -> switchboard_channel::Leading {
        self.bridge.leader.watch()
    }

    async fn typing(&self, conversation: &ConversationKey, sender: &ContactProfile, active: bool) {
        let Ok(Some(c)) = self
            .bridge
            .store
            .conversation_by_key(self.channel, conversation)
            .await
        else {
            return;
        };
        let Some(room_id) = c.room_id else { return };
        let ghost = self
            .bridge
            .namespace
            .ghost_user_id(self.channel, &sender.id);
        if let Err(e) = self
            .bridge
            .homeserver
            .typing(&room_id, &ghost, active)
            .await
        {
            tracing::debug!(error = %e, "typing not relayed");
        }
    }

    async fn put_media(&self, data: Bytes, mime: &str, name: &str) -> Result<MediaRef, HostError> {
        let mxc = self
            .bridge
            .homeserver
            .upload(data, mime, name)
            .await
            .map_err(|e| HostError::Media(e.to_string()))?;
        Ok(MediaRef(mxc))
    }

    async fn get_media(&self, media: &MediaRef) -> Result<(Bytes, String), HostError> {
        let max = self
            .bridge
            .channel(self.channel)
            .and_then(|c| c.capabilities().max_file_size)
            .unwrap_or(DEFAULT_MAX_MEDIA);
        self.bridge
            .homeserver
            .download(&media.0, max)
            .await
            .map_err(|e| match e.errcode() {
                Some("M_NOT_FOUND") => HostError::NotFound,
                _ => HostError::Media(e.to_string()),
            })
    }

    async fn state_get(&self, key: &str) -> Result<Option<String>, HostError> {
        self.bridge
            .store
            .state_get(self.channel, key)
            .await
            .map_err(store_error)
    }

    async fn state_put(&self, key: &str, value: &str) -> Result<(), HostError> {
        self.bridge
            .store
            .state_put(self.channel, key, value)
            .await
            .map_err(store_error)
    }

    async fn state_put_if_absent(&self, key: &str, value: &str) -> Result<String, HostError> {
        self.bridge
            .store
            .state_put_if_absent(self.channel, key, value)
            .await
            .map_err(store_error)
    }

    async fn state_put_expiring(
        &self,
        key: &str,
        value: &str,
        expires_at_ms: i64,
    ) -> Result<(), HostError> {
        self.bridge
            .store
            .state_put_expiring(self.channel, key, value, expires_at_ms)
            .await
            .map_err(store_error)
    }

    async fn log_append(
        &self,
        stream: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> Result<i64, HostError> {
        self.bridge
            .store
            .log_append(self.channel, stream, key, &body.to_string())
            .await
            .map_err(store_error)
    }

    async fn log_append_recorded(&self, record: Recorded<'_>) -> Result<i64, HostError> {
        self.bridge
            .store
            .log_append_recorded(self.channel, &record)
            .await
            .map_err(store_error)
    }

    async fn log_read(
        &self,
        stream: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, serde_json::Value)>, HostError> {
        let rows = self
            .bridge
            .store
            .log_read(self.channel, stream, after, limit)
            .await
            .map_err(store_error)?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, body)| serde_json::from_str(&body).ok().map(|v| (seq, v)))
            .collect())
    }

    /// The signature of the team the conversation is routed to (`teams.<name>.signature`, or an
    /// admin's `!sb team <name> signature …`).
    async fn signature(&self, conversation: &ConversationKey) -> Result<Option<String>, HostError> {
        let store = &self.bridge.store;
        let Some(c) = store
            .conversation_by_key(self.channel, conversation)
            .await
            .map_err(|e| HostError::Store(e.to_string()))?
        else {
            return Ok(None);
        };
        let team = store
            .routing(c.id)
            .await
            .map_err(|e| HostError::Store(e.to_string()))?
            .and_then(|r| r.team);
        match team.as_deref().and_then(|t| self.bridge.teams.get(t)) {
            Some(team) => Ok(crate::routing::teams::signature(&self.bridge, team).await),
            None => Ok(None),
        }
    }

    /// Open now, next opening and usual answer time of the team this account's new
    /// conversations go to ([`crate::availability`]).
    async fn availability(&self, account: &str) -> Result<Availability, HostError> {
        crate::availability::availability(&self.bridge, self.channel, account)
            .await
            .map_err(|e| HostError::Store(e.to_string()))
    }
}
