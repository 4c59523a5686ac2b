//! Webhook signatures: Meta signs every delivery with the app secret, as
//! `X-Hub-Signature-256: sha256=<lowercase hex HMAC-SHA256 of the raw body>`.
//!
//! The check runs on the raw bytes, before anything parses them, and compares in constant time
//! (the `hmac` crate's `verify_slice`). A missing, malformed or wrong header is refused; the
//! older SHA-1 header (`X-Hub-Signature`) is not accepted on its own.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header Meta puts the SHA-256 signature in.
pub const HEADER: &str = "x-hub-signature-256";

/// Why a delivery's signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("no X-Hub-Signature-256 header")]
    Missing,
    #[error("the X-Hub-Signature-256 header is not sha256=<64 hex digits>")]
    Malformed,
    #[error("the signature does not match the body (wrong app secret, or the body was altered)")]
    Mismatch,
}

/// `sha256=<hex>` of `body` under `secret`: what Meta sends (and the test fake sends).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => String::new(),
    }
}

/// Check the header's value against the body.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let header = std::str::from_utf8(header)
        .map_err(|_| SignatureError::Malformed)?
        .trim();
    let hex_part = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    if hex_part.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let given =
        hex::decode(hex_part.to_ascii_lowercase()).map_err(|_| SignatureError::Malformed)?;
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return Err(SignatureError::Mismatch);
    };
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> (serde_json::Value, Vec<u8>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/meta");
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap())
                .unwrap();
        let body = std::fs::read(dir.join(meta["body_file"].as_str().unwrap())).unwrap();
        (meta, body)
    }

    #[test]
    fn the_published_vectors_verify() {
        let (meta, body) = vector("signature_vector_pywa");
        assert_eq!(body.len() as u64, meta["body_length"].as_u64().unwrap());
        let secret = meta["app_secret"].as_str().unwrap().as_bytes();
        let header = meta["header_value"].as_str().unwrap();
        assert_eq!(verify(secret, &body, Some(header.as_bytes())), Ok(()));
        assert_eq!(sign(secret, &body), header);

        let (meta, body) = vector("signature_vector_fake_secret");
        assert_eq!(body.len() as u64, meta["body_length"].as_u64().unwrap());
        let secret = meta["app_secret"].as_str().unwrap().as_bytes();
        let header = meta["headers"]["X-Hub-Signature-256"].as_str().unwrap();
        assert_eq!(verify(secret, &body, Some(header.as_bytes())), Ok(()));
        // The same body with one letter changed does not verify against that header.
        let tampered = String::from_utf8(body.clone())
            .unwrap()
            .replace("\"Oi\"", "\"Oj\"");
        assert_eq!(
            verify(secret, tampered.as_bytes(), Some(header.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        let tampered_header = meta["negative_case"]["tampered_sha256"].as_str().unwrap();
        assert_eq!(sign(secret, tampered.as_bytes()), tampered_header);
    }

    #[test]
    fn wrong_or_missing_headers_are_refused() {
        let body = b"{\"object\":\"page\"}";
        let good = sign(b"s3cret", body);
        assert_eq!(verify(b"s3cret", body, Some(good.as_bytes())), Ok(()));
        assert_eq!(
            verify(
                b"s3cret",
                body,
                Some(good.to_uppercase().replace("SHA256=", "sha256=").as_bytes())
            ),
            Ok(())
        );
        assert_eq!(
            verify(b"other", body, Some(good.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(b"s3cret", body, None), Err(SignatureError::Missing));
        assert_eq!(
            verify(b"s3cret", body, Some(b"sha1=abc")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"s3cret", body, Some(&good.as_bytes()[..good.len() - 1])),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"s3cret", body, Some(b"sha256=zz")),
            Err(SignatureError::Malformed)
        );
    }
}
