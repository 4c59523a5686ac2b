//! Customers' Viber names and avatars, for their ghosts.
//!
//! Viber puts the sender's name and avatar URL into every message, so no lookup is needed; the
//! avatar is downloaded into the media store only when its URL changed (remembered under
//! `avatar:<user id>` in the channel's state). Best effort: a failure leaves the avatar out.

use serde::{Deserialize, Serialize};
use switchboard_channel::{ContactProfile, MediaRef};

use crate::inbound::Sender;
use crate::Shared;

use switchboard_kit::profile::{recall, remember, store_avatar, MAX_AVATAR_BYTES};

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
    let cached: Option<Cached> = recall(shared.host.as_ref(), &key).await;
    if let Some(c) = cached.as_ref().filter(|c| c.url == url) {
        return c.media.clone();
    }
    let media = match shared.api.endpoint().download(url, MAX_AVATAR_BYTES).await {
        Ok(bytes) => store_avatar(shared.host.as_ref(), bytes).await.ok(),
        Err(e) => {
            tracing::debug!(error = %e, "viber: avatar not fetched");
            return cached.and_then(|c| c.media);
        }
    };
    let fresh = Cached {
        url: url.to_owned(),
        media: media.clone(),
    };
    remember(shared.host.as_ref(), "viber", &key, &fresh).await;
    media
}
