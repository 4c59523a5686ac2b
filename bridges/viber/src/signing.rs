//! HMAC-SHA256 twice over: checking that a callback is Viber's, and signing the media links
//! Viber fetches operators' files from.
//!
//! * **Callbacks**: Viber signs the exact raw body with the bot's auth token and sends the
//!   lowercase hex digest in `X-Viber-Content-Signature` (or as `?sig=`). [`verify_body`]
//!   recomputes it and compares in constant time (the kit's `hmac_sha256_matches`).
//! * **Media links**: Viber only takes files by URL, so an operator's file is served from
//!   `<public_url>/viber/media/<token>`. The token is `<id>.<expires>.<mac>`: `id` names a record
//!   in the channel's state (which file, its type and name), `expires` is a Unix time, and `mac`
//!   is the hex HMAC of both under the media secret. Without the secret nobody can make a valid
//!   token; a token stops working when it expires; nothing lists the files.

use switchboard_kit::verify::{hmac_sha256, hmac_sha256_matches};

/// Lowercase hex HMAC-SHA256 of `body` under `key`.
pub fn sign_hex(key: &[u8], body: &[u8]) -> String {
    hex::encode(hmac_sha256(key, body))
}

/// Whether `signature` (hex, either case, surrounding spaces ignored) is `body`'s HMAC under
/// `key`. Constant time in the digest comparison.
pub fn verify_body(key: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(given) = hex::decode(signature.trim()) else {
        return false;
    };
    hmac_sha256_matches(key, body, &given)
}

/// A media link token for record `id` valid until `expires` (Unix seconds).
pub fn media_token(secret: &[u8], id: &str, expires: u64) -> String {
    format!(
        "{id}.{expires}.{}",
        sign_hex(secret, format!("{id}.{expires}").as_bytes())
    )
}

/// Why a media token is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed media token")]
    Malformed,
    #[error("bad media token signature")]
    BadSignature,
    #[error("expired media token")]
    Expired,
}

/// Check a media token; returns the record id.
pub fn check_media_token<'t>(
    secret: &[u8],
    token: &'t str,
    now: u64,
) -> Result<&'t str, TokenError> {
    let mut parts = token.splitn(3, '.');
    let (Some(id), Some(expires), Some(mac_hex)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TokenError::Malformed);
    }
    let Ok(expires_at) = expires.parse::<u64>() else {
        return Err(TokenError::Malformed);
    };
    if !verify_body(secret, format!("{id}.{expires}").as_bytes(), mac_hex) {
        return Err(TokenError::BadSignature);
    }
    if expires_at < now {
        return Err(TokenError::Expired);
    }
    Ok(id)
}

/// The default media secret: derived from the auth token, so it needs no configuration and
/// changes when the token is regenerated (which only invalidates links not yet fetched).
pub fn derived_media_secret(auth_token: &str) -> Vec<u8> {
    hmac_sha256(auth_token.as_bytes(), b"switchboard viber media links v1").to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector both official Viber SDKs test with (`../shared/fixtures/viber`).
    #[test]
    fn official_signature_vector() {
        let (Some(meta), Some(body)) = (
            switchboard_kit::test_host::fixture_text("viber", "signature_vector.json"),
            switchboard_kit::test_host::fixture("viber", "signature_vector_body.json"),
        ) else {
            return;
        };
        let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
        let token = meta["auth_token"].as_str().unwrap();
        let expected = meta["header_value"].as_str().unwrap();
        let body = body.strip_suffix(b"\n").unwrap_or(&body);
        assert_eq!(sign_hex(token.as_bytes(), body), expected);
        assert!(verify_body(token.as_bytes(), body, expected));
        assert!(verify_body(
            token.as_bytes(),
            body,
            &expected.to_uppercase()
        ));
        let bad = meta["invalid_example"]["header_value"].as_str().unwrap();
        assert!(!verify_body(
            token.as_bytes(),
            meta["invalid_example"]["body"].as_str().unwrap().as_bytes(),
            bad
        ));
        assert!(!verify_body(token.as_bytes(), b"{}", expected));
        assert!(!verify_body(token.as_bytes(), body, "zz"));
    }

    #[test]
    fn media_tokens() {
        let secret = derived_media_secret("token");
        let t = media_token(&secret, "abc123", 1000);
        assert_eq!(check_media_token(&secret, &t, 999), Ok("abc123"));
        assert_eq!(
            check_media_token(&secret, &t, 1001),
            Err(TokenError::Expired)
        );
        assert_eq!(
            check_media_token(&derived_media_secret("other"), &t, 999),
            Err(TokenError::BadSignature)
        );
        let longer = t.replace(".1000.", ".9000.");
        assert_eq!(
            check_media_token(&secret, &longer, 999),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            check_media_token(&secret, "../etc/passwd", 0),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            check_media_token(&secret, "", 0),
            Err(TokenError::Malformed)
        );
    }
}
