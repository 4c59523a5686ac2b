//! Customers' Viber names and avatars, for their ghosts.
//!
//! Viber puts the sender's name and avatar URL into every message, so no lookup is needed; the
//! avatar is downloaded into the media store only when its URL changed (remembered under
//! `avatar:<user id>` in the channel's state). Best effort: a failure leaves the avatar out.

use serde::{Deserialize, Serialize};
use switchboard_channel::{ContactProfile, MediaRef};

use crate::inbound::Sender;
use crate::Shared;

const MAX_AVATAR_BYTES: u64 = 5 * 1024 * 1024;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Cached {
    url: String,
    media: Option<MediaRef>,
}

/// The ghost profile of a sender.
pub async fn profile(shared: &Shared, sender: &Sender) -> ContactProfile {
    let mut profile = ContactProfile {
        id: sender.id.clone(),
        display_name: sender.name.clone(),
        phone: sender.phone.clone(),
        ..ContactProfile::default()
    };
    if let (true, Some(url)) = (shared.config.avatars, sender.avatar_url.as_deref()) {
        profile.avatar = avatar(shared, &sender.id, url).await;
    }
    profile
}

async fn avatar(shared: &Shared, user: &str, url: &str) -> Option<MediaRef> {
    let key = format!("avatar:{user}");
    let cached: Option<Cached> = shared
        .host
        .state_get(&key)
        .await
        .ok()
        .flatten()
        .and_then(|s| serde_json::from_str(&s).ok());
    if let Some(c) = cached.as_ref().filter(|c| c.url == url) {
        return c.media.clone();
    }
    let media = match shared.api.download(url, MAX_AVATAR_BYTES).await {
        Ok(bytes) => shared
            .host
            .put_media(bytes.into(), "image/jpeg", "avatar.jpg")
            .await
            .ok(),
        Err(e) => {
            tracing::debug!(error = %e, "viber: avatar not fetched");
            return cached.and_then(|c| c.media);
        }
    };
    if let Ok(text) = serde_json::to_string(&Cached {
        url: url.to_owned(),
        media: media.clone(),
    }) {
        if let Err(e) = shared.host.state_put(&key, &text).await {
            tracing::debug!(error = %e, "viber: avatar not remembered");
        }
    }
    media
}
