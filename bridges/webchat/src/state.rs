//! What every request handler and the [`Channel`](switchboard_channel::Channel) impl share once
//! the channel has started: the configuration, the store on top of the core's [`Host`], the live
//! hub and the rate limiter.

use std::sync::Arc;

use switchboard_channel::{ConversationKey, Host};

use crate::challenge::Challenges;
use crate::config::WebchatConfig;
use crate::hub::Hub;
use crate::limits::Limits;
use crate::ratelimit::Limiter;
use crate::store::Store;

/// Shared by all handlers (as axum state) and by `Channel::send`.
pub struct Shared {
    pub config: WebchatConfig,
    pub store: Store,
    pub hub: Hub,
    pub limiter: Limiter,
    /// Per-address and overall limits, event stream counts.
    pub limits: Limits,
    /// Proofs of work for new sessions (when configured).
    pub challenges: Challenges,
    /// `<public_url>/webchat`: the prefix of every public link we hand out.
    pub base: String,
}

impl Shared {
    pub fn new(config: WebchatConfig, host: Arc<dyn Host>) -> Self {
        let limiter = Limiter::new(config.rate_limit_per_minute, config.rate_limit_burst);
        let base = config.channel_base();
        let limits = Limits::new(&config);
        let challenges = Challenges::new(config.proof_of_work_bits);
        Self {
            config,
            store: Store::new(host),
            hub: Hub::default(),
            limiter,
            limits,
            challenges,
            base,
        }
    }

    pub fn host(&self) -> &Arc<dyn Host> {
        self.store.host()
    }

    /// The conversation of a visitor.
    pub fn conversation(&self, visitor_id: &str) -> ConversationKey {
        ConversationKey {
            account: self.config.account.clone(),
            chat: visitor_id.to_owned(),
        }
    }
}

/// The axum state of the channel's router.
pub type AppState = Arc<Shared>;
