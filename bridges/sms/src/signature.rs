//! Twilio's request signature (`X-Twilio-Signature`): how webhooks prove they come from Twilio.
//!
//! The signature is `base64(HMAC-SHA1(auth token, url + name₁ + value₁ + name₂ + value₂ …))`
//! over the full URL Twilio posted to (scheme, host, port, path and query, exactly as configured
//! in the console) followed by every POST parameter, sorted by name (and by value for repeated
//! names), with names and values URL-decoded. The URL is the bridge's configured public URL,
//! never the `Host` header: behind a proxy the request the bridge sees is not the one Twilio
//! signed, and the `Host` header is whatever the sender wants it to be.
//!
//! Twilio's own validators accept the signature computed with or without the default port
//! (`:443` / `:80`), because some of Twilio's systems include it and some do not; so does
//! [`verify`]. The comparison is constant-time.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The header Twilio puts the signature in.
pub const HEADER: &str = "x-twilio-signature";

/// The signature of a form POST to `url` with `params`.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = match Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Does `given` sign a POST of `params` to `url`? Tries `url` as written and with its
/// default port added or removed.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], given: &str) -> bool {
    let mut ok = false;
    for candidate in url_variants(url) {
        // No early return: every variant is computed and compared in full.
        ok |= constant_time_eq(
            compute(auth_token, &candidate, params).as_bytes(),
            given.trim().as_bytes(),
        );
    }
    ok
}

pub use switchboard_kit::constant_time_eq;

/// `url`, and `url` with its scheme's default port removed (when written) or added (when not).
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The port is after the last ':' that follows any IPv6 literal's ']'.
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    match authority[host_end..].rfind(':').map(|i| i + host_end) {
        Some(colon) if &authority[colon + 1..] == default_port => {
            out.push(format!("{scheme}://{}{tail}", &authority[..colon]));
        }
        Some(_) => {}
        None => out.push(format!("{scheme}://{authority}:{default_port}{tail}")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    use crate::test_fixtures::fixture;

    fn params_of(vector: &Value) -> Vec<(String, String)> {
        if let Some(map) = vector["params"].as_object() {
            return map
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
        }
        if let Some(list) = vector["params_list"].as_array() {
            return list
                .iter()
                .map(|pair| {
                    (
                        pair[0].as_str().unwrap_or_default().to_owned(),
                        pair[1].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
        }
        if let Some(file) = vector["params_file"].as_str() {
            return crate::form::parse(fixture(file).unwrap_or_default().as_bytes()).into_pairs();
        }
        Vec::new()
    }

    /// Every form vector of the fixtures (the JSON-body one is not a form and is skipped).
    #[test]
    fn the_published_vectors_verify() {
        let Some(vectors) = fixture("signature_vectors.json") else {
            return;
        };
        let vectors: Value = serde_json::from_str(&vectors).unwrap();
        let mut checked = 0;
        for v in vectors["vectors"].as_array().unwrap() {
            if v.get("body").is_some() {
                continue;
            }
            let token = v["auth_token"].as_str().unwrap();
            let url = v["url"].as_str().unwrap();
            let expected = v["expected_signature"].as_str().unwrap();
            let params = params_of(v);
            assert!(
                verify(token, url, &params, expected),
                "vector {}",
                v["name"]
            );
            assert!(
                !verify("wrong", url, &params, expected),
                "vector {} with a wrong token",
                v["name"]
            );
            checked += 1;
        }
        assert_eq!(checked, 6);
    }

    #[test]
    fn the_canonical_vector_computes_exactly() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            compute(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        // The explicit default port is accepted both ways.
        let sig = compute(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
        );
        assert!(verify(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params,
            &sig
        ));
    }

    #[test]
    fn anything_changed_breaks_the_signature() {
        let params = vec![
            ("Body".to_string(), "hello".to_string()),
            ("From".to_string(), "+14155550100".to_string()),
        ];
        let url = "https://bridge.example/sms/incoming";
        let sig = compute("token", url, &params);
        assert!(verify("token", url, &params, &sig));
        assert!(!verify(
            "token",
            "https://evil.example/sms/incoming",
            &params,
            &sig
        ));
        let mut changed = params.clone();
        changed[0].1 = "hello!".into();
        assert!(!verify("token", url, &changed, &sig));
        let mut extra = params.clone();
        extra.push(("X".into(), String::new()));
        assert!(!verify("token", url, &extra, &sig));
        assert!(!verify("token", url, &params, ""));
        assert!(!verify("token", url, &params, &sig[1..]));
    }

    #[test]
    fn default_ports_vary_and_others_do_not() {
        assert_eq!(
            url_variants("https://a.example/x"),
            vec!["https://a.example/x", "https://a.example:443/x"]
        );
        assert_eq!(
            url_variants("http://a.example:80?q=1"),
            vec!["http://a.example:80?q=1", "http://a.example?q=1"]
        );
        assert_eq!(
            url_variants("http://a.example:8080/x"),
            vec!["http://a.example:8080/x"]
        );
        assert_eq!(
            url_variants("https://[::1]/x"),
            vec!["https://[::1]/x", "https://[::1]:443/x"]
        );
        assert_eq!(url_variants("nonsense"), vec!["nonsense"]);
    }
}
