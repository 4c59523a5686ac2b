//! Per-installation secrets kept in the channel's durable state: the MAC keys of proof-of-work
//! challenges ([`crate::challenge`]) and of session tokens ([`crate::session`]).
//!
//! A key is 32 random bytes, made the first time it is needed and stored through the core's
//! [`Host`] (hex) only if no instance stored one first ([`Host::state_put_if_absent`]), so every
//! instance on one store — two starting at once on a new store included — signs and checks with
//! the same key, and a restart does not invalidate what was signed before it. Each instance
//! caches the key after the first read; a caller whose check fails asks again with `reload`.

use switchboard_channel::{Host, HostError};
use tokio::sync::RwLock;

/// One named secret of the channel.
pub struct DurableKey {
    /// Its key in the channel's state.
    state_key: &'static str,
    cached: RwLock<Option<Vec<u8>>>,
}

impl DurableKey {
    pub fn new(state_key: &'static str) -> Self {
        Self {
            state_key,
            cached: RwLock::new(None),
        }
    }

    /// The key: cached, else from the durable state, else made and stored now. `reload`
    /// reads the state again even when a key is cached.
    pub async fn get(&self, host: &dyn Host, reload: bool) -> Result<Vec<u8>, HostError> {
        if !reload {
            if let Some(key) = self.cached.read().await.as_ref() {
                return Ok(key.clone());
            }
        }
        let mut slot = self.cached.write().await;
        let stored = host
            .state_get(self.state_key)
            .await?
            .and_then(|hex_key| hex::decode(hex_key).ok())
            .filter(|k| k.len() == 32);
        let key = match stored {
            Some(key) => key,
            None => {
                let made = rand::random::<[u8; 32]>();
                let made_hex = hex::encode(made);
                // Another instance may have stored its key since our read: its key wins.
                let stored = host.state_put_if_absent(self.state_key, &made_hex).await?;
                match hex::decode(&stored).ok().filter(|k| k.len() == 32) {
                    Some(key) => key,
                    // What is stored is no key (damaged): ours replaces it, and says so (what
                    // was signed with the old one is refused from now on).
                    None => {
                        tracing::warn!(
                            key = self.state_key,
                            "webchat: the stored key is damaged (not 32 bytes of hex); replaced by a new one"
                        );
                        host.state_put(self.state_key, &made_hex).await?;
                        made.to_vec()
                    }
                }
            }
        };
        *slot = Some(key.clone());
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_kit::test_host::MemoryHost;

    #[tokio::test]
    async fn a_key_is_made_once_and_shared_through_the_store() {
        let host = MemoryHost::default();
        let one = DurableKey::new("test_key");
        let key = one.get(&host, false).await.expect("key");
        assert_eq!(key.len(), 32);
        assert_eq!(one.get(&host, false).await.expect("cached"), key);
        // Another instance on the same store reads the same key.
        let other = DurableKey::new("test_key");
        assert_eq!(other.get(&host, false).await.expect("stored"), key);
        // Another name is another key.
        let third = DurableKey::new("other_key");
        assert_ne!(third.get(&host, false).await.expect("other"), key);
    }

    /// A damaged stored key (not 32 bytes of hex) is replaced by a new one, which is stored.
    #[tokio::test]
    async fn a_damaged_key_is_replaced() {
        let host = MemoryHost::default();
        host.state_put("test_key", "not a key").await.expect("put");
        let key = DurableKey::new("test_key")
            .get(&host, false)
            .await
            .expect("key");
        assert_eq!(key.len(), 32);
        assert_eq!(
            host.state_get("test_key").await.expect("get"),
            Some(hex::encode(&key))
        );
    }
}
