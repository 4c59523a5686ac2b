//! Meta's webhook signatures: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`.
//!
//! The HMAC is over the exact bytes of the request body, as received (Meta escapes non-ASCII
//! characters in the JSON it signs, so the body must not be re-serialised before checking). The
//! comparison is constant-time (`hmac`'s `verify_slice`). Nothing else of a delivery is read
//! before this check passes.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header Meta signs deliveries in.
pub const HEADER: &str = "x-hub-signature-256";

/// Why a delivery's signature is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Hub-Signature-256 header")]
    Missing,
    #[error("the X-Hub-Signature-256 header is not sha256=<64 hex digits>")]
    Malformed,
    #[error("the signature does not match the body (wrong app_secret, or not from Meta)")]
    Mismatch,
}

/// The signature Meta would send for `body`: `sha256=<lowercase hex>`.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` does not fail; no panic either way.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(app_secret) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Check a delivery: `header` is the value of `X-Hub-Signature-256`, if any.
pub fn verify(app_secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let header = std::str::from_utf8(header)
        .map_err(|_| SignatureError::Malformed)?
        .trim();
    let hex_part = header
        .strip_prefix("sha256=")
        .or_else(|| header.strip_prefix("SHA256="))
        .ok_or(SignatureError::Malformed)?;
    if hex_part.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let given =
        hex::decode(hex_part.to_ascii_lowercase()).map_err(|_| SignatureError::Malformed)?;
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(app_secret) else {
        return Err(SignatureError::Mismatch);
    };
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// Compare two byte strings in time that depends only on their lengths (the verify token).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn meta_fixtures() -> PathBuf {
        crate::fixtures_dir("meta").unwrap_or_default()
    }

    /// The public vectors: pywa's test body and the fixture collection's own, with its tampered
    /// counterpart.
    #[test]
    fn fixture_vectors_verify() {
        let dir = meta_fixtures();
        for name in [
            "signature_vector_pywa.json",
            "signature_vector_fake_secret.json",
        ] {
            let Ok(vector) = std::fs::read_to_string(dir.join(name)) else {
                return;
            };
            let v: serde_json::Value = serde_json::from_str(&vector).unwrap();
            let body = std::fs::read(dir.join(v["body_file"].as_str().unwrap())).unwrap();
            let body = &body[..v["body_length"].as_u64().unwrap() as usize];
            let secret = v["app_secret"].as_str().unwrap().as_bytes();
            let header = v["header_value"]
                .as_str()
                .or_else(|| v["headers"]["X-Hub-Signature-256"].as_str())
                .unwrap();
            assert_eq!(
                verify(secret, body, Some(header.as_bytes())),
                Ok(()),
                "{name}"
            );
            assert_eq!(sign(secret, body), header, "{name}");
            assert_eq!(
                verify(b"another secret", body, Some(header.as_bytes())),
                Err(SignatureError::Mismatch)
            );
            if let Some(tampered) = v["negative_case"]["tampered_sha256"].as_str() {
                assert_eq!(
                    verify(secret, body, Some(tampered.as_bytes())),
                    Err(SignatureError::Mismatch)
                );
                let changed = String::from_utf8_lossy(body).replace("\"Oi\"", "\"Oj\"");
                assert_eq!(sign(secret, changed.as_bytes()), tampered);
            }
        }
    }

    #[test]
    fn bad_headers_are_refused() {
        let body = b"{}";
        let good = sign(b"k", body);
        assert_eq!(verify(b"k", body, Some(good.as_bytes())), Ok(()));
        assert_eq!(verify(b"k", body, None), Err(SignatureError::Missing));
        assert_eq!(
            verify(b"k", body, Some(b"sha1=abc")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"k", body, Some(&good.as_bytes()[..good.len() - 2])),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(
                b"k",
                body,
                Some(format!("sha256={}", "zz".repeat(32)).as_bytes())
            ),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"k", b"{ }", Some(good.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert!(
            constant_time_eq(b"abc", b"abc")
                && !constant_time_eq(b"abc", b"abd")
                && !constant_time_eq(b"a", b"ab")
        );
    }
}
