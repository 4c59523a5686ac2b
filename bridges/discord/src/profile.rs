//! Who is behind a conversation, and their avatar.
//!
//! MESSAGE_DELETE and TYPING_START do not say who the customer is (a deletion names only the
//! message, typing only a user id), so the last author seen in each channel is remembered, in
//! memory and in the channel's state (`user:<channel id>`), and used for those events.
//!
//! Avatars: `<cdn_url>/avatars/<user id>/<hash>.png` → `Host::put_media`, remembered under
//! `avatar:<user id>` with the hash, so the file is fetched again only when the customer changes
//! their avatar. Best effort: a failure leaves the ghost without a picture.
//!
//! A guild channel's name (issue 19): gateway events name a channel by id only, so the name a
//! group room is given (`#support`) comes from `GET /channels/{id}`, kept in memory and in the
//! channel's state (`channel-name:<id>`), so it is asked once per channel. Best effort: without
//! it the room is named after the first member who wrote, as before.

use std::collections::HashMap;

use switchboard_channel::{ContactProfile, MediaRef};
use tokio::sync::Mutex;

use crate::inbound;
use crate::model::User;
use crate::Shared;

/// Largest avatar fetched.
const MAX_AVATAR: u64 = 10 * 1024 * 1024;

#[derive(Default)]
pub struct Profiles {
    /// Channel id → the last author seen there, with their avatar.
    by_channel: Mutex<HashMap<String, (User, Option<MediaRef>)>>,
    /// Guild channel id → its title (`#name`).
    titles: Mutex<HashMap<String, String>>,
}

fn to_profile(user: &User, avatar: Option<MediaRef>) -> ContactProfile {
    ContactProfile {
        avatar,
        ..inbound::profile(user)
    }
}

impl Profiles {
    /// Remember the author of a message in `channel`; their profile with the avatar.
    pub async fn remember(&self, shared: &Shared, channel: &str, user: &User) -> ContactProfile {
        if let Some((known, avatar)) = self.by_channel.lock().await.get(channel) {
            if known == user {
                return to_profile(user, avatar.clone());
            }
        }
        let avatar = avatar(shared, user).await;
        let key = format!("user:{channel}");
        match serde_json::to_string(user) {
            Ok(json) => {
                if let Err(e) = shared.host.state_put(&key, &json).await {
                    tracing::debug!(error = %e, "discord: cannot remember the channel's customer");
                }
            }
            Err(e) => tracing::debug!(error = %e, "discord: cannot encode a user"),
        }
        self.by_channel
            .lock()
            .await
            .insert(channel.to_owned(), (user.clone(), avatar.clone()));
        to_profile(user, avatar)
    }

    /// The title of guild channel `channel` (`#` and its name), for its room's name; `None`
    /// when Discord does not tell (no access, an outage: asked again next time).
    pub async fn channel_title(&self, shared: &Shared, channel: &str) -> Option<String> {
        if let Some(title) = self.titles.lock().await.get(channel) {
            return Some(title.clone());
        }
        let key = format!("channel-name:{channel}");
        let stored = shared.host.state_get(&key).await.ok().flatten();
        let title = match stored {
            Some(title) => title,
            None => {
                let found = match shared.rest.channel(channel).await {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::info!(channel, error = %e, "discord: cannot read the guild channel's name");
                        return None;
                    }
                };
                let name: String = found
                    .get("name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(100)
                    .collect();
                if name.trim().is_empty() {
                    return None;
                }
                let title = format!("#{}", name.trim());
                if let Err(e) = shared.host.state_put(&key, &title).await {
                    tracing::debug!(error = %e, "discord: cannot remember a channel's name");
                }
                title
            }
        };
        self.titles
            .lock()
            .await
            .insert(channel.to_owned(), title.clone());
        Some(title)
    }

    /// The customer last seen in `channel` (when `id` is given, only if it is them).
    pub async fn known(
        &self,
        shared: &Shared,
        channel: &str,
        id: Option<&str>,
    ) -> Option<ContactProfile> {
        let cached = self.by_channel.lock().await.get(channel).cloned();
        let (user, avatar) = match cached {
            Some(found) => found,
            None => {
                let stored = shared
                    .host
                    .state_get(&format!("user:{channel}"))
                    .await
                    .ok()
                    .flatten()?;
                let user: User = serde_json::from_str(&stored).ok()?;
                let avatar = avatar(shared, &user).await;
                self.by_channel
                    .lock()
                    .await
                    .insert(channel.to_owned(), (user.clone(), avatar.clone()));
                (user, avatar)
            }
        };
        if id.is_some_and(|id| id != user.id) {
            // Someone else in a guild channel: known by id only.
            return id.map(|id| ContactProfile {
                id: id.to_owned(),
                ..ContactProfile::default()
            });
        }
        Some(to_profile(&user, avatar))
    }
}

/// The user's avatar in the media repository, fetched when it changed.
async fn avatar(shared: &Shared, user: &User) -> Option<MediaRef> {
    if !shared.config.avatars {
        return None;
    }
    let hash = user
        .avatar
        .as_deref()
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))?;
    let key = format!("avatar:{}", user.id);
    if let Ok(Some(cached)) = shared.host.state_get(&key).await {
        if let Some((cached_hash, media)) = cached.split_once('\n') {
            if cached_hash == hash {
                return Some(MediaRef(media.to_owned()));
            }
        }
    }
    let url = format!(
        "{}/avatars/{}/{hash}.png?size=256",
        shared.config.cdn_url.trim_end_matches('/'),
        user.id
    );
    let (bytes, _) = match shared.rest.download(&url, MAX_AVATAR).await {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(error = %e, user = %user.id, "discord: avatar not fetched");
            return None;
        }
    };
    let media = match shared
        .host
        .put_media(bytes, "image/png", "avatar.png")
        .await
    {
        Ok(media) => media,
        Err(e) => {
            tracing::debug!(error = %e, "discord: avatar not stored");
            return None;
        }
    };
    if let Err(e) = shared
        .host
        .state_put(&key, &format!("{hash}\n{}", media.0))
        .await
    {
        tracing::debug!(error = %e, "discord: avatar not remembered");
    }
    Some(media)
}
