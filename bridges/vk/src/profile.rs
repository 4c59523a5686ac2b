//! Customers' names and photos, for their ghosts.
//!
//! `users.get` (with `photo_200`) gives "First Last" and a photo URL; the photo is downloaded
//! into the media store. The result is remembered in the channel's state under
//! `profile:<user id>` with when it was checked, so a customer is looked up at most once a day
//! and their photo uploaded again only when its URL changed. Best effort throughout: a failure
//! leaves the name out (the core keeps the one it had) and never holds up a message.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_channel::{ContactProfile, MediaRef};
use switchboard_kit::now_ms;

use crate::Shared;

use switchboard_kit::profile::{recall, remember, store_avatar, MAX_AVATAR_BYTES, RECHECK_MS};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Cached {
    checked_ms: i64,
    name: Option<String>,
    photo_url: Option<String>,
    media: Option<MediaRef>,
}

/// "First Last" from a `users.get` item.
pub fn full_name(user: &Value) -> Option<String> {
    let first = user
        .get("first_name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    let last = user
        .get("last_name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    let name = format!("{first} {last}").trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// The ghost profile of VK user `user_id`.
pub async fn profile(shared: &Shared, user_id: i64) -> ContactProfile {
    let mut profile = ContactProfile {
        id: user_id.to_string(),
        ..ContactProfile::default()
    };
    if !shared.config.profiles {
        return profile;
    }
    let key = format!("profile:{user_id}");
    let cached: Option<Cached> = recall(shared.host.as_ref(), &key).await;
    let fresh = match &cached {
        Some(c) if now_ms() - c.checked_ms < RECHECK_MS => c.clone(),
        _ => lookup(shared, user_id, cached.clone().unwrap_or_default()).await,
    };
    profile.display_name = fresh.name.clone();
    profile.avatar = fresh.media.clone();
    profile
}

async fn lookup(shared: &Shared, user_id: i64, previous: Cached) -> Cached {
    let answer = shared
        .api
        .call(
            "users.get",
            &[
                ("user_ids", user_id.to_string()),
                ("fields", "photo_200".into()),
            ],
        )
        .await;
    let user = match answer {
        Ok(Value::Array(users)) if !users.is_empty() => users[0].clone(),
        Ok(_) => return previous,
        Err(e) => {
            tracing::debug!(error = %e, user_id, "vk: users.get failed");
            return previous;
        }
    };
    let name = full_name(&user).or(previous.name.clone());
    let photo_url = user
        .get("photo_200")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let media = match &photo_url {
        Some(url)
            if previous.photo_url.as_deref() == Some(url.as_str()) && previous.media.is_some() =>
        {
            previous.media.clone()
        }
        Some(url) => match shared.api.endpoint().download(url, MAX_AVATAR_BYTES).await {
            Ok(bytes) => store_avatar(shared.host.as_ref(), bytes).await.ok(),
            Err(e) => {
                tracing::debug!(error = %e, user_id, "vk: profile photo not fetched");
                previous.media.clone()
            }
        },
        None => None,
    };
    let fresh = Cached {
        checked_ms: now_ms(),
        name,
        photo_url,
        media,
    };
    remember(
        shared.host.as_ref(),
        "vk",
        &format!("profile:{user_id}"),
        &fresh,
    )
    .await;
    fresh
}
