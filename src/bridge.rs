//! The bridge's shared state: what every task of the running bridge reads (configuration,
//! store, homeserver client, channels, routing teams, clock) and the bells that wake each relay
//! stage. How it starts, answers health checks and stops is [`crate::startup`]; the stages
//! themselves are [`crate::relay`].

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use switchboard_channel::Channel;
use tokio::sync::Notify;

use crate::config::Config;
use crate::matrix::ghosts::Namespace;
use crate::matrix::Homeserver;
use crate::store::Store;

/// Everything the bridge's tasks share.
pub struct Bridge {
    pub config: Config,
    pub store: Store,
    pub homeserver: Homeserver,
    pub namespace: Namespace,
    pub hs_token: String,
    pub channels: HashMap<&'static str, Arc<dyn Channel>>,
    pub wake_inbound: Notify,
    pub wake_matrix: Notify,
    pub wake_outbound: Notify,
    pub wake_timers: Notify,
    /// A media job was queued ([`crate::media`]).
    pub wake_media: Notify,
    /// One portal room is created at a time ([`crate::portal::ensure_portal`]).
    pub portal_creation: tokio::sync::Semaphore,
    /// Whether a relay stage works now (media jobs let it go first).
    pub relay_activity: crate::relay::activity::RelayActivity,
    pub teams: crate::routing::teams::Teams,
    pub clock: crate::clock::Clock,
    /// Set once the bot is registered and the workers run.
    pub ready: AtomicBool,
    /// The latest results of the background checks (`/_switchboard/ready`).
    pub readiness: crate::readiness::Readiness,
    /// Whether this instance leads (runs the workers) or stands by ([`crate::leader`]).
    pub leader: crate::leader::Leadership,
    /// Answer-time figures shown to customers before they write ([`crate::availability`]).
    pub availability: crate::availability::AvailabilityCache,
    /// The bot's receipts that show operators' messages delivered, one per room at a time
    /// ([`crate::relay::delivery_receipts`]).
    pub delivery_receipts: crate::relay::delivery_receipts::DeliveryReceipts,
    /// Conversations whose lobby entry is to be brought up to date
    /// ([`crate::routing::lobby_queue`]).
    pub lobby_queue: crate::routing::lobby_queue::LobbyQueue,
}

impl Bridge {
    /// A conversation event's stamp: now on the bridge's clock, by `actor` (an operator) or by
    /// the customer or the bridge itself (`None`).
    pub fn stamp<'a>(&self, actor: Option<&'a str>) -> crate::store::events::Stamp<'a> {
        crate::store::events::Stamp {
            at: self.clock.now_ms(),
            actor,
        }
    }

    pub fn channel(&self, name: &str) -> Option<&Arc<dyn Channel>> {
        self.channels.get(name)
    }
}
