//! Customers' names and avatars for their ghosts, kept the same way by every channel that
//! looks them up: what was found is remembered as JSON in the channel's state (with when it was
//! checked, so a customer is looked up at most once per [`RECHECK_MS`]), and a profile photo
//! is fetched into the media store only when it changed. Best effort throughout: a failure
//! leaves the profile as it was and never holds up a message.

use serde::de::DeserializeOwned;
use serde::Serialize;
use switchboard_channel::{Host, HostError, MediaRef};

/// How long a looked-up profile is trusted.
pub const RECHECK_MS: i64 = 24 * 60 * 60 * 1000;
/// Largest profile photo fetched.
pub const MAX_AVATAR_BYTES: u64 = 5 * 1024 * 1024;

/// What the channel remembered under `key`; `None` when nothing (or nothing readable) was.
pub async fn recall<T: DeserializeOwned>(host: &dyn Host, key: &str) -> Option<T> {
    let text = host.state_get(key).await.ok().flatten()?;
    serde_json::from_str(&text).ok()
}

/// Remember `value` under `key`; a failure is only logged (the next message looks again).
pub async fn remember<T: Serialize>(host: &dyn Host, network: &str, key: &str, value: &T) {
    let Ok(text) = serde_json::to_string(value) else {
        return;
    };
    if let Err(e) = host.state_put(key, &text).await {
        tracing::debug!(network, key, error = %e, "profile not remembered");
    }
}

/// A fetched profile photo, into the media store (networks serve them as JPEG).
pub async fn store_avatar(host: &dyn Host, bytes: Vec<u8>) -> Result<MediaRef, HostError> {
    host.put_media(bytes.into(), "image/jpeg", "avatar.jpg")
        .await
}
