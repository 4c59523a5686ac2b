//! Proof of work for new sessions (`proof_of_work_bits`, off by default): before the bridge
//! creates a visitor (a stored record, and soon a room for the team), the browser must have
//! spent a little CPU. A visitor never notices (the widget solves it in well under a second);
//! a script that opens thousands of sessions pays for each one.
//!
//! The protocol is stateless for the bridge until a proof is spent:
//! 1. `GET /api/v1/challenge` answers `{"challenge": "v1.<issued ms>.<random>.<mac>", "bits": N}`;
//!    the MAC (HMAC-SHA256 under a key kept in the channel's durable state ([`crate::secret`]), so every instance
//!    on one store accepts every instance's challenges) covers the issue time, the random part
//!    and `N`, so a challenge cannot be forged, aged back or made easier.
//! 2. The browser finds a `nonce` (at most [`MAX_NONCE_LEN`] characters) such that
//!    SHA-256(`<challenge>:<nonce>`) starts with `N` zero bits (2^N tries on average).
//! 3. `POST /api/v1/session` carries `"proof": {"challenge": …, "nonce": …}`. A challenge is good
//!    for [`CHALLENGE_TTL`] and for one session: spent challenges are remembered in memory until
//!    they expire (per instance: behind a load balancer, one challenge could open one session per
//!    instance, which a flood cannot turn into much).
//!
//! A session request without a valid proof is answered `428 proof_required`; the widget then
//! fetches a challenge, solves it and asks again. Resuming a session (a known token) needs none.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use switchboard_channel::{Host, HostError};
use switchboard_kit::verify::{hmac_sha256, hmac_sha256_matches};

use crate::error::ApiError;
use crate::secret::DurableKey;

/// How long a challenge may be used after it was issued.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// The longest nonce accepted (a counter in decimal or hex fits many times over).
pub const MAX_NONCE_LEN: usize = 32;
/// The hardest work the configuration may ask for (2^24 hashes is seconds on a slow phone).
pub const MAX_BITS: u8 = 24;
/// Where the MAC key lives in the channel's durable state.
const KEY_STATE: &str = "proof_of_work_key";

/// A proof as the browser sends it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    pub challenge: String,
    pub nonce: String,
}

/// Issues and checks challenges; remembers spent ones.
pub struct Challenges {
    bits: u8,
    key: DurableKey,
    /// Spent challenges and when they expire (ms since the epoch).
    spent: Mutex<HashMap<String, u64>>,
}

impl Challenges {
    /// `bits` 0 turns the proof off.
    pub fn new(bits: u8) -> Self {
        Self {
            bits,
            key: DurableKey::new(KEY_STATE),
            spent: Mutex::new(HashMap::new()),
        }
    }

    /// Whether new sessions need a proof.
    pub fn required(&self) -> bool {
        self.bits > 0
    }

    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// A fresh challenge.
    pub async fn issue(&self, host: &dyn Host) -> Result<String, ApiError> {
        let key = self.key(host, false).await?;
        let random = rand::random::<[u8; 12]>();
        Ok(challenge_for(
            &key,
            self.bits,
            now_ms(),
            &hex::encode(random),
        ))
    }

    /// Check `proof` for a new session and spend its challenge.
    pub async fn admit(&self, host: &dyn Host, proof: Option<&Proof>) -> Result<(), ApiError> {
        if !self.required() {
            return Ok(());
        }
        let proof = proof.ok_or_else(|| refused("A new chat needs a proof of work."))?;
        let now = now_ms();
        let key = self.key(host, false).await?;
        let verdict = verify(&key, self.bits, proof, now);
        let verdict = if verdict == Err(Rejection::Forged) {
            // Another instance may have written the key first: read it again once.
            let key = self.key(host, true).await?;
            verify(&key, self.bits, proof, now)
        } else {
            verdict
        };
        let expires = verdict.map_err(|r| refused(r.message()))?;
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        spent.retain(|_, until| *until > now);
        if spent.insert(proof.challenge.clone(), expires).is_some() {
            return Err(refused(Rejection::Spent.message()));
        }
        Ok(())
    }

    /// The MAC key ([`DurableKey`]).
    async fn key(&self, host: &dyn Host, reload: bool) -> Result<Vec<u8>, HostError> {
        self.key.get(host, reload).await
    }
}

fn refused(message: &str) -> ApiError {
    ApiError::ProofRequired(message.to_owned())
}

/// Why a proof does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    Malformed,
    Forged,
    Expired,
    Insufficient,
    Spent,
}

impl Rejection {
    fn message(self) -> &'static str {
        match self {
            Rejection::Malformed => "The proof of work is malformed.",
            Rejection::Forged => "The challenge was not issued by this chat.",
            Rejection::Expired => "The challenge has expired; fetch a new one.",
            Rejection::Insufficient => "The proof of work does not solve the challenge.",
            Rejection::Spent => "The challenge was already used; fetch a new one.",
        }
    }
}

fn signed_part(issued_ms: u64, random: &str, bits: u8) -> String {
    format!("v1.{issued_ms}.{random}.{bits}")
}

/// The challenge string for these parts.
pub fn challenge_for(key: &[u8], bits: u8, issued_ms: u64, random: &str) -> String {
    let mac = hmac_sha256(key, signed_part(issued_ms, random, bits).as_bytes());
    format!("v1.{issued_ms}.{random}.{}", hex::encode(mac))
}

/// Check a proof at time `now` (ms): the challenge's MAC, age and the work. Pure; returns when
/// the challenge expires.
pub fn verify(key: &[u8], bits: u8, proof: &Proof, now: u64) -> Result<u64, Rejection> {
    if proof.nonce.is_empty()
        || proof.nonce.len() > MAX_NONCE_LEN
        || proof.challenge.len() > 200
        || !proof.nonce.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Rejection::Malformed);
    }
    let mut parts = proof.challenge.split('.');
    let (Some("v1"), Some(issued), Some(random), Some(mac), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(Rejection::Malformed);
    };
    let issued: u64 = issued.parse().map_err(|_| Rejection::Malformed)?;
    let mac = hex::decode(mac).map_err(|_| Rejection::Malformed)?;
    if !hmac_sha256_matches(key, signed_part(issued, random, bits).as_bytes(), &mac) {
        return Err(Rejection::Forged);
    }
    let expires = issued.saturating_add(CHALLENGE_TTL.as_millis() as u64);
    // A challenge from the future (clocks of two instances) is allowed a minute's skew.
    if now >= expires || issued > now.saturating_add(60_000) {
        return Err(Rejection::Expired);
    }
    let digest = Sha256::digest(format!("{}:{}", proof.challenge, proof.nonce).as_bytes());
    if leading_zero_bits(&digest) < u32::from(bits) {
        return Err(Rejection::Insufficient);
    }
    Ok(expires)
}

fn leading_zero_bits(bytes: &[u8]) -> u32 {
    let mut zeros = 0;
    for b in bytes {
        if *b == 0 {
            zeros += 8;
        } else {
            return zeros + b.leading_zeros();
        }
    }
    zeros
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// What the widget does: count until the hash has enough zero bits.
    fn solve(challenge: &str, bits: u8) -> String {
        (0u64..)
            .map(|n| n.to_string())
            .find(|nonce| {
                let d = Sha256::digest(format!("{challenge}:{nonce}").as_bytes());
                leading_zero_bits(&d) >= u32::from(bits)
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_solved_challenge_holds_and_nothing_else_does() {
        let now = 1_800_000_000_000;
        let challenge = challenge_for(KEY, 10, now, "a1b2c3");
        let nonce = solve(&challenge, 10);
        let proof = Proof {
            challenge: challenge.clone(),
            nonce: nonce.clone(),
        };
        assert_eq!(
            verify(KEY, 10, &proof, now + 1000),
            Ok(now + CHALLENGE_TTL.as_millis() as u64)
        );
        // Too late.
        assert_eq!(
            verify(KEY, 10, &proof, now + CHALLENGE_TTL.as_millis() as u64),
            Err(Rejection::Expired)
        );
        // The same challenge checked at a higher difficulty: its MAC covers the bits.
        assert_eq!(verify(KEY, 12, &proof, now), Err(Rejection::Forged));
        // Another key (another bridge), an edited time, a wrong nonce.
        assert_eq!(
            verify(b"another key", 10, &proof, now),
            Err(Rejection::Forged)
        );
        let aged = Proof {
            challenge: challenge.replacen(&now.to_string(), &(now + 100_000).to_string(), 1),
            nonce: nonce.clone(),
        };
        assert_eq!(verify(KEY, 10, &aged, now), Err(Rejection::Forged));
        let wrong = (0u64..)
            .map(|n| n.to_string())
            .find(|n| {
                let d = Sha256::digest(format!("{challenge}:{n}").as_bytes());
                leading_zero_bits(&d) < 10
            })
            .unwrap_or_default();
        assert_eq!(
            verify(
                KEY,
                10,
                &Proof {
                    challenge: challenge.clone(),
                    nonce: wrong
                },
                now
            ),
            Err(Rejection::Insufficient)
        );
        for (challenge, nonce) in [
            ("v1.x.y", "1"),
            ("nonsense", "1"),
            (challenge.as_str(), ""),
            (challenge.as_str(), "a nonce with spaces"),
            (challenge.as_str(), &"9".repeat(MAX_NONCE_LEN + 1)),
        ] {
            let proof = Proof {
                challenge: challenge.to_owned(),
                nonce: nonce.to_owned(),
            };
            assert_eq!(verify(KEY, 10, &proof, now), Err(Rejection::Malformed));
        }
    }

    #[test]
    fn zero_bits_are_counted_across_bytes() {
        assert_eq!(leading_zero_bits(&[0, 0, 0x10, 0xff]), 19);
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }

    #[tokio::test]
    async fn a_challenge_opens_one_session_and_the_key_is_shared_through_the_store() {
        let host = switchboard_kit::test_host::MemoryHost::default();
        let challenges = Challenges::new(8);
        let challenge = challenges.issue(&host).await.expect("issue");
        let proof = Proof {
            nonce: solve(&challenge, 8),
            challenge,
        };
        assert!(challenges.admit(&host, None).await.is_err());
        assert!(challenges.admit(&host, Some(&proof)).await.is_ok());
        assert!(matches!(
            challenges.admit(&host, Some(&proof)).await,
            Err(ApiError::ProofRequired(m)) if m.contains("already used")
        ));
        // A second instance on the same store accepts the first one's challenges.
        let other = Challenges::new(8);
        let challenge = challenges.issue(&host).await.expect("issue");
        let proof = Proof {
            nonce: solve(&challenge, 8),
            challenge,
        };
        assert!(other.admit(&host, Some(&proof)).await.is_ok());
        // Off: nothing is asked.
        assert!(Challenges::new(0).admit(&host, None).await.is_ok());
    }
}
