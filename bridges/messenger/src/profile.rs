//! Customers' names for their ghosts, from the Graph API's user profile endpoint:
//! `GET /<PSID>?fields=first_name,last_name,profile_pic` on Messenger,
//! `GET /<IGSID>?fields=name,username,profile_pic` on Instagram, with the Page token.
//!
//! Looked up once per contact and kept in memory for an hour (ten minutes after a failure, so
//! a contact whose profile Meta withholds is not asked about on every message). A failure is
//! never fatal: the ghost is then named by the core from the contact id. With `avatars`, the
//! profile picture is fetched and stored with `Host::put_media` the first time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_channel::ContactProfile;

use crate::parse::Platform;
use crate::Shared;

const FRESH: Duration = Duration::from_secs(3600);
const FRESH_AFTER_FAILURE: Duration = Duration::from_secs(600);
/// Largest profile picture fetched.
const MAX_AVATAR: u64 = 5 * 1024 * 1024;

/// The cache of looked-up profiles.
#[derive(Default)]
pub struct Profiles {
    cache: Mutex<HashMap<String, (ContactProfile, Instant)>>,
}

/// The name a profile answer gives the ghost.
pub fn display_name(platform: Platform, v: &Value) -> Option<String> {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let name = match platform {
        Platform::Messenger => match (s("first_name"), s("last_name")) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(f), None) => Some(f.to_owned()),
            (None, Some(l)) => Some(l.to_owned()),
            (None, None) => s("name").map(str::to_owned),
        },
        Platform::Instagram => s("name")
            .map(str::to_owned)
            .or_else(|| s("username").map(|u| format!("@{u}"))),
    }?;
    let name: String = name.chars().filter(|c| !c.is_control()).take(100).collect();
    (!name.trim().is_empty()).then_some(name)
}

impl Profiles {
    /// The contact's profile, from the cache or the Graph API.
    pub async fn get(&self, shared: &Shared, contact: &str) -> ContactProfile {
        if let Ok(cache) = self.cache.lock() {
            if let Some((p, until)) = cache.get(contact) {
                if *until > Instant::now() {
                    return p.clone();
                }
            }
        }
        let fields = match shared.platform {
            Platform::Messenger => "first_name,last_name,profile_pic",
            Platform::Instagram => "name,username,profile_pic",
        };
        let mut profile = ContactProfile {
            id: contact.to_owned(),
            ..ContactProfile::default()
        };
        let fresh = match shared.graph.profile(contact, fields).await {
            Ok(v) => {
                profile.display_name = display_name(shared.platform, &v);
                if shared.config.avatars {
                    if let Some(url) = v
                        .get("profile_pic")
                        .and_then(Value::as_str)
                        .filter(|u| u.starts_with("http"))
                    {
                        profile.avatar = avatar(shared, url).await;
                    }
                }
                FRESH
            }
            Err(e) => {
                tracing::info!(channel = shared.platform.name(), contact, error = %e, "profile not available");
                FRESH_AFTER_FAILURE
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                contact.to_owned(),
                (profile.clone(), Instant::now() + fresh),
            );
        }
        profile
    }
}

async fn avatar(shared: &Shared, url: &str) -> Option<switchboard_channel::MediaRef> {
    let (bytes, mime) = match shared.graph.download(url, MAX_AVATAR).await {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(error = %e, "profile picture not fetched");
            return None;
        }
    };
    let mime = mime
        .filter(|m| m.starts_with("image/"))
        .unwrap_or_else(|| "image/jpeg".to_owned());
    shared.host.put_media(bytes, &mime, "avatar").await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_from_profiles() {
        let m = json!({"first_name": "Jane", "last_name": "Doe", "profile_pic": "https://x", "id": "1"});
        assert_eq!(
            display_name(Platform::Messenger, &m).as_deref(),
            Some("Jane Doe")
        );
        assert_eq!(
            display_name(Platform::Messenger, &json!({"first_name": " Jo "})).as_deref(),
            Some("Jo")
        );
        let i = json!({"name": "Peter Chang", "username": "peter_chang_live"});
        assert_eq!(
            display_name(Platform::Instagram, &i).as_deref(),
            Some("Peter Chang")
        );
        assert_eq!(
            display_name(Platform::Instagram, &json!({"username": "pc"})).as_deref(),
            Some("@pc")
        );
        assert_eq!(display_name(Platform::Instagram, &json!({})), None);
    }
}
