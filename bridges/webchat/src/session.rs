//! Session tokens that need no stored record until the visitor first writes.
//!
//! `POST /session` used to store a visitor record for every new session, so a script opening
//! sessions by the thousand made the store write for each one, competing with every other
//! channel's inbound writes. Now a new session writes nothing: its token *carries* the visitor
//! (id, issue time, the name and e-mail given) and is signed, so the bridge can trust it
//! without a lookup:
//!
//! ```text
//! s1.<claims: JSON, base64url>.<HMAC-SHA256(key, "s1.<claims>"), base64url>
//! ```
//!
//! The key is the installation's own ([`crate::secret`], `session_key` in the channel's
//! state), so a token cannot be forged, and changing any character of it (an id, a name, the
//! issue time to make it younger) breaks the MAC.
//!
//! A visitor is *stored* from the first state-changing call (a message, a file, a change of
//! name or e-mail): the records are then written from the token ([`crate::store`]) under the
//! token's SHA-256, exactly like the records sessions always had. From then on the stored
//! record is what authenticates ([`resolve`] looks it up first), so whatever expires or removes
//! stored records keeps working; the signature alone admits only a visitor that has none:
//!
//! * a token that was never stored is good for `silent_session_ttl_secs` from its issue time,
//!   like the records of a silent session used to be; after that it is refused (`401`);
//! * a signed token whose visitor id has a conversation marker (`chat:<id>`) or a transcript
//!   but no record under this token is refused: the signature never speaks for a visitor the
//!   store knows or knew (a session revoked by deleting its records stays revoked).
//!
//! Tokens of the older format (64 hex characters, stored from the start) keep working through
//! their stored records.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use switchboard_channel::{Host, HostError};
use switchboard_kit::verify::{hmac_sha256, hmac_sha256_matches};

use crate::secret::DurableKey;
use crate::store::{Marker, Store, Visitor};

/// The prefix of a signed token (the format's version).
const PREFIX: &str = "s1";
/// Where the MAC key lives in the channel's durable state.
const KEY_STATE: &str = "session_key";
/// The longest token accepted (the longest a name of 80 four-byte characters and a 254-byte
/// e-mail make is about 1,000).
pub const MAX_TOKEN_LEN: usize = 1600;
/// How far in the future an issue time may be (the clocks of two instances).
const CLOCK_SKEW_MS: i64 = 60_000;

/// What a signed token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The visitor id (16 hex characters).
    #[serde(rename = "v")]
    pub visitor: String,
    /// When the session started (ms since the epoch).
    #[serde(rename = "t")]
    pub issued_ms: i64,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Claims {
    /// The claims of a visitor who has not written yet.
    pub fn of(visitor: &Visitor) -> Claims {
        Claims {
            visitor: visitor.id.clone(),
            issued_ms: visitor.created_ms,
            name: visitor.name.clone(),
            email: visitor.email.clone(),
        }
    }

    /// The visitor the token speaks for (not stored: `wrote` is false).
    pub fn visitor(self) -> Visitor {
        Visitor {
            id: self.visitor,
            name: self.name,
            email: self.email,
            created_ms: self.issued_ms,
            wrote: false,
        }
    }
}

/// Why a token is not good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not a signed token at all (or not one of ours in shape).
    Malformed,
    /// The MAC does not hold: made or changed by someone without the key.
    Forged,
    /// Older than the silent-session expiry (or from too far in the future).
    Expired,
}

/// Could this be a signed token? (Cheap: decides whether to check a signature at all.)
pub fn is_signed_shaped(token: &str) -> bool {
    token.len() <= MAX_TOKEN_LEN
        && token.starts_with("s1.")
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The token for these claims under `key`.
pub fn sign(key: &[u8], claims: &Claims) -> String {
    // Serialising a struct of strings and an integer cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let signed = format!("{PREFIX}.{}", URL_SAFE_NO_PAD.encode(json));
    let mac = hmac_sha256(key, signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// Check a token at `now_ms`: shape, MAC, then age (good for `ttl_ms` from its issue time).
/// Pure; the claims when it holds.
pub fn verify(key: &[u8], token: &str, now_ms: i64, ttl_ms: i64) -> Result<Claims, Rejection> {
    if !is_signed_shaped(token) {
        return Err(Rejection::Malformed);
    }
    let Some((signed, mac)) = token.rsplit_once('.') else {
        return Err(Rejection::Malformed);
    };
    let Some((PREFIX, claims)) = signed.split_once('.') else {
        return Err(Rejection::Malformed);
    };
    let mac = URL_SAFE_NO_PAD
        .decode(mac)
        .map_err(|_| Rejection::Malformed)?;
    if !hmac_sha256_matches(key, signed.as_bytes(), &mac) {
        return Err(Rejection::Forged);
    }
    // Signed by us: what follows can only fail for a token of another version of us.
    let json = URL_SAFE_NO_PAD
        .decode(claims)
        .map_err(|_| Rejection::Malformed)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| Rejection::Malformed)?;
    if !is_visitor_id(&claims.visitor) {
        return Err(Rejection::Malformed);
    }
    if now_ms >= claims.issued_ms.saturating_add(ttl_ms)
        || claims.issued_ms > now_ms.saturating_add(CLOCK_SKEW_MS)
    {
        return Err(Rejection::Expired);
    }
    Ok(claims)
}

/// Is this shaped like one of our visitor ids (16 lowercase hex characters)?
fn is_visitor_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Issues and checks the channel's session tokens.
pub struct Sessions {
    key: DurableKey,
    /// Signed tokens turned away, and why (rate-limited: forged tokens may come in floods).
    refusals: switchboard_kit::refusals::RefusalLog,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            key: DurableKey::new(KEY_STATE),
            refusals: Default::default(),
        }
    }
}

impl Sessions {
    /// The token of a new visitor (who has not written, so nothing is stored).
    pub async fn issue(&self, host: &dyn Host, visitor: &Visitor) -> Result<String, HostError> {
        let key = self.key.get(host, false).await?;
        Ok(sign(&key, &Claims::of(visitor)))
    }

    /// The claims of a signed token, or why not (the key is read again once before a token
    /// is called forged: another instance may have stored it first).
    pub async fn check(
        &self,
        host: &dyn Host,
        token: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Result<Claims, Rejection>, HostError> {
        let key = self.key.get(host, false).await?;
        match verify(&key, token, now_ms, ttl_ms) {
            Err(Rejection::Forged) => {
                let key = self.key.get(host, true).await?;
                Ok(verify(&key, token, now_ms, ttl_ms))
            }
            verdict => Ok(verdict),
        }
    }
}

/// Who a token belongs to: the stored visitor (`true`: authenticated by its stored record,
/// exactly as before signed tokens), or a visitor with no record yet (`false`: authenticated
/// by the token's signature and age), or nobody.
pub async fn resolve(
    store: &Store,
    sessions: &Sessions,
    token: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Option<(Visitor, bool)>, HostError> {
    if let Some(visitor) = store.visitor_by_token(token).await? {
        return Ok(Some((visitor, true)));
    }
    if !is_signed_shaped(token) {
        return Ok(None);
    }
    let claims = match sessions
        .check(store.host().as_ref(), token, now_ms, ttl_ms)
        .await?
    {
        Ok(claims) => claims,
        Err(why) => {
            let why = match why {
                Rejection::Malformed => "malformed",
                Rejection::Forged => "forged (the signature does not hold)",
                Rejection::Expired => "expired or from the future",
            };
            sessions.refusals.refused("webchat_session_token", why);
            return Ok(None);
        }
    };
    // The marker holds this token's hash: a concurrent first write of this very token is
    // storing the visitor (marker written, record not yet), and they are this token's, as
    // `Store::store_visitor` also holds. Refusing here turned the widget's event stream away
    // (401) while its first message was stored, and the live events of that second (an
    // operator's typing) were lost.
    // The marker is another token's, or the store knew this visitor (their transcript stays
    // while a record of theirs was removed: a revoked session): the signature does not speak
    // for them.
    let mut marker = store.marker(&claims.visitor, token).await?;
    if matches!(marker, Marker::None) && !store.read(&claims.visitor, 0, 1).await?.is_empty() {
        // The transcript was read after the marker, and a first write of this very token may
        // have stored its marker and then its first message in between (one commit since the
        // message, its transcript entry and its record are one transaction). The marker is
        // stored before anything else of a visitor's, so read again it tells: still none means
        // the store knew the visitor and their records were removed (revoked).
        marker = match store.marker(&claims.visitor, token).await? {
            Marker::None => Marker::Other,
            again => again,
        };
    }
    let revoked = match marker {
        Marker::ThisToken => {
            return Ok(Some(match store.visitor_by_token(token).await? {
                Some(visitor) => (visitor, true),
                None => (claims.visitor(), false),
            }))
        }
        Marker::Other => true,
        Marker::None => false,
    };
    if revoked {
        sessions.refusals.refused(
            "webchat_session_token",
            "names a visitor the store knows (revoked)",
        );
        return Ok(None);
    }
    Ok(Some((claims.visitor(), false)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use switchboard_kit::test_host::MemoryHost;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_800_000_000_000;
    const TTL: i64 = 24 * 3600 * 1000;

    fn claims() -> Claims {
        Claims {
            visitor: "0123456789abcdef".into(),
            issued_ms: NOW,
            name: Some("Ann".into()),
            email: Some("ann@example.com".into()),
        }
    }

    #[test]
    fn a_valid_token_gives_back_its_claims() {
        let token = sign(KEY, &claims());
        assert!(is_signed_shaped(&token), "{token}");
        assert_eq!(verify(KEY, &token, NOW + 1000, TTL), Ok(claims()));
        // Up to the last millisecond of its life.
        assert_eq!(verify(KEY, &token, NOW + TTL - 1, TTL), Ok(claims()));
        // Without a name or e-mail.
        let bare = Claims {
            name: None,
            email: None,
            ..claims()
        };
        assert_eq!(verify(KEY, &sign(KEY, &bare), NOW, TTL), Ok(bare));
    }

    #[test]
    fn a_forged_token_is_refused() {
        // Signed with another key (another installation, or a guess).
        let token = sign(b"another key", &claims());
        assert_eq!(verify(KEY, &token, NOW, TTL), Err(Rejection::Forged));
        // Unsigned: the claims with a MAC of anything else.
        let (signed, _) = sign(KEY, &claims())
            .rsplit_once('.')
            .map(|(s, m)| (s.to_owned(), m.to_owned()))
            .unwrap_or_default();
        let unsigned = format!("{signed}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert_eq!(verify(KEY, &unsigned, NOW, TTL), Err(Rejection::Forged));
        // No MAC at all, or an empty one.
        assert!(verify(KEY, &signed, NOW, TTL).is_err());
        assert_eq!(
            verify(KEY, &format!("{signed}."), NOW, TTL),
            Err(Rejection::Forged)
        );
    }

    #[test]
    fn an_altered_token_is_refused() {
        let token = sign(KEY, &claims());
        let (signed, mac) = token.rsplit_once('.').unwrap_or_default();
        // Other claims under the original MAC: another visitor, a younger issue time, a name.
        for other in [
            Claims {
                visitor: "fedcba9876543210".into(),
                ..claims()
            },
            Claims {
                issued_ms: NOW + TTL,
                ..claims()
            },
            Claims {
                name: Some("Mallory".into()),
                ..claims()
            },
        ] {
            let (other_signed, _) = sign(KEY, &other)
                .rsplit_once('.')
                .map(|(s, m)| (s.to_owned(), m.to_owned()))
                .unwrap_or_default();
            assert_eq!(
                verify(KEY, &format!("{other_signed}.{mac}"), NOW, TTL),
                Err(Rejection::Forged)
            );
        }
        // Any one character changed, in the claims or in the MAC.
        for at in [3, signed.len() / 2, signed.len() + 1, token.len() - 1] {
            let mut bytes = token.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap_or_default();
            assert_ne!(altered, token);
            assert!(
                verify(KEY, &altered, NOW, TTL).is_err(),
                "altered at {at}: {altered}"
            );
        }
    }

    #[test]
    fn an_expired_token_is_refused() {
        let token = sign(KEY, &claims());
        assert_eq!(verify(KEY, &token, NOW + TTL, TTL), Err(Rejection::Expired));
        assert_eq!(
            verify(KEY, &token, NOW + 10 * TTL, TTL),
            Err(Rejection::Expired)
        );
        // From the future beyond the allowed clock skew.
        assert_eq!(
            verify(KEY, &token, NOW - 2 * CLOCK_SKEW_MS, TTL),
            Err(Rejection::Expired)
        );
        assert!(verify(KEY, &token, NOW - CLOCK_SKEW_MS / 2, TTL).is_ok());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for token in [
            "",
            "s1",
            "s1.",
            "s1..",
            "s2.abc.def",
            &"a".repeat(64),
            "s1.a b.c",
            &format!("s1.{}", "A".repeat(MAX_TOKEN_LEN)),
        ] {
            assert!(verify(KEY, token, NOW, TTL).is_err(), "{token:?}");
        }
        // Signed, but not claims we would make.
        let bad_id = Claims {
            visitor: "../x".into(),
            ..claims()
        };
        assert_eq!(
            verify(KEY, &sign(KEY, &bad_id), NOW, TTL),
            Err(Rejection::Malformed)
        );
    }

    #[test]
    fn the_longest_name_and_email_fit() {
        let long = Claims {
            name: Some("𝔄".repeat(crate::sanitize::MAX_NAME_CHARS)),
            email: Some(format!("{}@example.com", "a".repeat(242))),
            ..claims()
        };
        let token = sign(KEY, &long);
        assert!(token.len() <= MAX_TOKEN_LEN, "{} characters", token.len());
        assert_eq!(verify(KEY, &token, NOW, TTL), Ok(long));
    }

    #[tokio::test]
    async fn a_new_session_stores_nothing_until_the_visitor_is_stored() {
        let host = Arc::new(MemoryHost::default());
        let store = Store::new(host.clone());
        let sessions = Sessions::default();
        let visitor = Claims {
            issued_ms: switchboard_kit::now_ms(),
            ..claims()
        }
        .visitor();
        let token = sessions
            .issue(host.as_ref(), &visitor)
            .await
            .expect("issue");
        let now = switchboard_kit::now_ms();
        let found = resolve(&store, &sessions, &token, now, TTL).await;
        assert_eq!(found.expect("resolve"), Some((visitor.clone(), false)));
        assert_eq!(
            host.state_get(&format!("chat:{}", visitor.id))
                .await
                .expect("get"),
            None,
            "a session stored a record"
        );
        // Forged, altered and expired tokens are nobody.
        let forged = sign(b"not the key", &Claims::of(&visitor));
        let altered = token.replacen("s1.e", "s1.f", 1);
        for bad in [forged.as_str(), altered.as_str()] {
            assert_eq!(
                resolve(&store, &sessions, bad, now, TTL)
                    .await
                    .expect("resolve"),
                None
            );
        }
        assert_eq!(
            resolve(&store, &sessions, &token, now + TTL, TTL)
                .await
                .expect("resolve"),
            None
        );
        // Stored: the record answers (with what it says), and goes on answering after the
        // token's own age would have ended.
        let stored = store
            .store_visitor(&token, &visitor, now + TTL)
            .await
            .expect("store");
        assert_eq!(stored, Some(visitor.clone()));
        store.keep_visitor(&visitor).await.expect("keep");
        let kept = Visitor {
            wrote: true,
            ..visitor.clone()
        };
        assert_eq!(
            resolve(&store, &sessions, &token, now + 2 * TTL, TTL)
                .await
                .expect("resolve"),
            Some((kept, true))
        );
        // Another signed token for the same visitor id is not them.
        let other = sessions
            .issue(
                host.as_ref(),
                &Visitor {
                    name: Some("Mallory".into()),
                    ..visitor.clone()
                },
            )
            .await
            .expect("issue");
        assert_eq!(
            resolve(&store, &sessions, &other, now, TTL)
                .await
                .expect("resolve"),
            None
        );
        assert_eq!(
            store
                .store_visitor(&other, &visitor, now + TTL)
                .await
                .expect("store"),
            None,
            "a second token took over a stored visitor"
        );

        // A request of a token whose first write is half done (the marker is stored, the
        // record not yet: a concurrent message) is that visitor's, not a revoked one.
        let writing = Visitor {
            id: "00000000000000bb".into(),
            ..visitor.clone()
        };
        let writing_token = sessions
            .issue(host.as_ref(), &writing)
            .await
            .expect("issue");
        host.state_put(
            &format!("chat:{}", writing.id),
            &crate::store::sha256_hex(&writing_token),
        )
        .await
        .expect("put");
        assert_eq!(
            resolve(&store, &sessions, &writing_token, now, TTL)
                .await
                .expect("resolve"),
            Some((writing.clone(), false)),
            "a session was refused while its first write was being stored"
        );
        // Another token of the same visitor id is still refused meanwhile.
        let intruder = sessions
            .issue(
                host.as_ref(),
                &Visitor {
                    name: Some("Mallory".into()),
                    ..writing.clone()
                },
            )
            .await
            .expect("issue");
        assert_eq!(
            resolve(&store, &sessions, &intruder, now, TTL)
                .await
                .expect("resolve"),
            None
        );

        // A visitor whose records were deleted (revoked) while their transcript stays: their
        // signed token, young as it is, does not come back as a new visitor.
        let revoked = Visitor {
            id: "00000000000000aa".into(),
            ..visitor.clone()
        };
        let token = sessions
            .issue(host.as_ref(), &revoked)
            .await
            .expect("issue");
        assert!(resolve(&store, &sessions, &token, now, TTL)
            .await
            .expect("resolve")
            .is_some());
        let entry = crate::transcript::Entry::Delete {
            id: "v.x.y".into(),
            ts: now,
        };
        store
            .append(&revoked.id, "k", &entry)
            .await
            .expect("append");
        assert_eq!(
            resolve(&store, &sessions, &token, now, TTL)
                .await
                .expect("resolve"),
            None,
            "a revoked session came back"
        );
    }
}
