//! Customers' profile photos, for their ghosts' avatars.
//!
//! `getUserProfilePhotos` (first photo, largest size) → download → `Host::put_media`; the
//! result is remembered in the channel's state under `avatar:<user id>` with the photo's
//! `file_unique_id` and when it was checked, so a customer's photo is looked at most once a
//! day and uploaded again only when it changed. Everything here is best effort: a failure
//! leaves the profile without an avatar (or with the one found before) and never holds up a
//! message.

use serde::{Deserialize, Serialize};
use switchboard_channel::MediaRef;
use teloxide::payloads::GetUserProfilePhotosSetters;
use teloxide::prelude::Requester;
use teloxide::types::UserId;

use crate::client;
use crate::Shared;

use switchboard_kit::profile::{remember, store_avatar, MAX_AVATAR_BYTES, RECHECK_MS};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Cached {
    checked_ms: i64,
    unique_id: Option<String>,
    media: Option<MediaRef>,
}

use switchboard_kit::now_ms;

/// The customer's avatar in the media store, if they have a profile photo.
pub async fn avatar(shared: &Shared, user_id: Option<u64>) -> Option<MediaRef> {
    let uid = user_id?;
    if !shared.config.avatars {
        return None;
    }
    let key = format!("avatar:{uid}");
    let cached: Option<Cached> = match shared.host.state_get(&key).await {
        Ok(v) => v.and_then(|s| serde_json::from_str(&s).ok()),
        Err(_) => return None,
    };
    if let Some(c) = &cached {
        if now_ms() - c.checked_ms < RECHECK_MS {
            return c.media.clone();
        }
    }
    let previous = cached.clone().unwrap_or_default();
    let photos = match shared
        .bot
        .get_user_profile_photos(UserId(uid))
        .limit(1)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, uid, "telegram: no profile photo lookup");
            return previous.media;
        }
    };
    let best = photos.photos.first().and_then(|sizes| {
        sizes
            .iter()
            .max_by_key(|p| u64::from(p.width) * u64::from(p.height))
    });
    let fresh = match best {
        None => Cached {
            checked_ms: now_ms(),
            unique_id: None,
            media: None,
        },
        Some(p)
            if previous.unique_id.as_deref() == Some(p.file.unique_id.0.as_str())
                && previous.media.is_some() =>
        {
            Cached {
                checked_ms: now_ms(),
                ..previous
            }
        }
        Some(p) => {
            let bytes = match client::fetch_file(&shared.bot, &p.file.id.0, MAX_AVATAR_BYTES).await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(error = %e, uid, "telegram: profile photo not fetched");
                    return previous.media;
                }
            };
            match store_avatar(shared.host.as_ref(), bytes).await {
                Ok(media) => Cached {
                    checked_ms: now_ms(),
                    unique_id: Some(p.file.unique_id.0.clone()),
                    media: Some(media),
                },
                Err(e) => {
                    tracing::debug!(error = %e, uid, "telegram: profile photo not stored");
                    return previous.media;
                }
            }
        }
    };
    remember(shared.host.as_ref(), "telegram", &key, &fresh).await;
    fresh.media
}
