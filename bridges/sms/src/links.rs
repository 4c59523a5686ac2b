//! Public links to operators' files, for Twilio to fetch when it sends an MMS.
//!
//! Twilio's Messages API takes media only as URLs it downloads itself, so the bridge serves each
//! file it sends at `<public_url>/sms/media/<token>`. The token is
//! `<expiry>.<media ref>.<mac>` (the media ref base64url-encoded, the MAC an HMAC-SHA256 of
//! expiry and media ref under a key only the bridge knows), so a link cannot be guessed,
//! altered or extended, stops working after `media_link_ttl_secs`, and there is no listing:
//! nothing is served without a valid token. The file itself comes from the core's media store
//! (`Host::get_media`); nothing is copied.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_channel::MediaRef;

/// Signs and checks media links.
#[derive(Clone)]
pub struct Links {
    key: Vec<u8>,
    ttl_secs: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Links {
    /// Links signed with `secret`, valid for `ttl_secs`.
    pub fn new(secret: &[u8], ttl_secs: u64) -> Links {
        // A dedicated key, so a link's MAC is never a Twilio-style signature of anything.
        let key = mac(secret, b"switchboard-sms media links v1");
        Links { key, ttl_secs }
    }

    fn mac(&self, expires: u64, media: &str) -> Vec<u8> {
        mac(&self.key, format!("{expires}.{media}").as_bytes())
    }

    /// A token for `media`, valid from now for the configured time.
    pub fn token(&self, media: &MediaRef) -> String {
        self.token_at(media, now_secs())
    }

    fn token_at(&self, media: &MediaRef, now: u64) -> String {
        let expires = now + self.ttl_secs;
        format!(
            "{expires}.{}.{}",
            URL_SAFE_NO_PAD.encode(&media.0),
            URL_SAFE_NO_PAD.encode(self.mac(expires, &media.0))
        )
    }

    /// The media a token names, when it is genuine and not expired.
    pub fn check(&self, token: &str) -> Option<MediaRef> {
        self.check_at(token, now_secs())
    }

    fn check_at(&self, token: &str, now: u64) -> Option<MediaRef> {
        let mut parts = token.splitn(3, '.');
        let expires: u64 = parts.next()?.parse().ok()?;
        let media = String::from_utf8(URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
        let given = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
        let genuine = crate::signature::constant_time_eq(&self.mac(expires, &media), &given);
        (genuine && now <= expires).then_some(MediaRef(media))
    }
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; unreachable.
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_until_they_expire() {
        let links = Links::new(b"secret", 3600);
        let media = MediaRef("mxc://localhost/AbCdEf".into());
        let token = links.token_at(&media, 1000);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'),
            "{token}"
        );
        assert_eq!(links.check_at(&token, 1000), Some(media.clone()));
        assert_eq!(links.check_at(&token, 4600), Some(media.clone()));
        assert_eq!(links.check_at(&token, 4601), None, "expired");
    }

    #[test]
    fn forged_or_altered_tokens_are_refused() {
        let links = Links::new(b"secret", 3600);
        let media = MediaRef("mxc://localhost/AbCdEf".into());
        let token = links.token_at(&media, 1000);
        let other = Links::new(b"other secret", 3600);
        assert_eq!(other.check_at(&token, 1000), None, "another key");
        let (expires, rest) = token.split_once('.').unwrap();
        let extended = format!("{}.{rest}", expires.parse::<u64>().unwrap() + 100_000);
        assert_eq!(links.check_at(&extended, 1000), None, "a longer life");
        let (head, _) = token.rsplit_once('.').unwrap();
        let other_media = URL_SAFE_NO_PAD.encode("mxc://localhost/Other");
        assert_eq!(
            links.check_at(
                &format!(
                    "{expires}.{other_media}.{}",
                    token.rsplit('.').next().unwrap()
                ),
                1000
            ),
            None
        );
        assert_eq!(links.check_at(&format!("{head}.AAAA"), 1000), None);
        for junk in [
            "",
            ".",
            "..",
            "1.2.3",
            "x.y.z",
            "99999999999999999999999.a.b",
        ] {
            assert_eq!(links.check_at(junk, 1000), None, "{junk:?}");
        }
    }
}
