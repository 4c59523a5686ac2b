//! Request bodies of the JSON API, decoded and validated without a server.
//!
//! Each function here is exactly what a handler in [`crate::api`] does with a body before it
//! touches the store or the rate limiter, so a body refused here is refused by the server with
//! the same [`ApiError`] (status, machine code, message). They are public so that the fuzz
//! targets in `fuzz/` exercise the server's own code: [`session_body`], [`message_body`],
//! [`edit_body`], [`typing_body`], [`read_body`], the upload form ([`parse_upload`]) and, in
//! [`crate::sanitize`], file names, names, e-mail addresses and agent HTML.
//!
//! Unknown fields are ignored (a newer widget may send more); a field of the wrong type, bytes
//! that are not UTF-8 JSON, and nesting past serde_json's recursion limit are `400 invalid_json`.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::ApiError;
use crate::inbound::check_text;
use crate::sanitize;

pub use crate::files::{parse_upload, UploadForm};

/// Decode a JSON request body; an empty (or all-whitespace) body counts as `{}`.
pub fn decode_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let raw: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        raw
    };
    serde_json::from_slice(raw).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("The request body is not valid: {e}."),
        )
    })
}

/// Validate a client id from a request (400 otherwise).
pub fn check_client_id(client_id: &str) -> Result<(), ApiError> {
    if sanitize::is_valid_client_id(client_id) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_client_id",
            "client_id must be 1–64 characters of A–Z, a–z, 0–9, _ and -.",
        ))
    }
}

/// `POST /session` as sent.
#[derive(Deserialize)]
pub struct SessionRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// A solved challenge, for a new session when the bridge asks for one.
    #[serde(default)]
    pub proof: Option<crate::challenge::Proof>,
}

/// `POST /session`, checked: the name cleaned ([`sanitize::display_name`]), the e-mail trimmed
/// and plausible. `None` for what was absent or empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInput {
    pub name: Option<String>,
    pub email: Option<String>,
}

impl SessionRequest {
    pub fn validate(self) -> Result<SessionInput, ApiError> {
        let name = self.name.as_deref().and_then(sanitize::display_name);
        let email = self
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        if let Some(email) = email {
            if !sanitize::is_plausible_email(email) {
                return Err(ApiError::unprocessable(
                    "invalid_email",
                    "That e-mail address does not look right.",
                ));
            }
        }
        Ok(SessionInput {
            name,
            email: email.map(str::to_owned),
        })
    }
}

/// Decode and check a `POST /session` body.
pub fn session_body(raw: &[u8]) -> Result<SessionInput, ApiError> {
    decode_json::<SessionRequest>(raw)?.validate()
}

/// `POST /messages` as sent.
#[derive(Deserialize)]
pub struct PostMessage {
    pub client_id: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// `POST /messages`, checked: a valid client id, the text cleaned ([`sanitize::visitor_text`]),
/// within the limit and not blank. `reply_to` is checked against the store by the handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageInput {
    pub client_id: String,
    pub text: String,
    pub reply_to: Option<String>,
}

impl PostMessage {
    pub fn validate(self) -> Result<MessageInput, ApiError> {
        check_client_id(&self.client_id)?;
        let text = check_text(&self.text)?;
        if text.trim().is_empty() {
            return Err(ApiError::bad_request(
                "empty_message",
                "The message is empty.",
            ));
        }
        Ok(MessageInput {
            client_id: self.client_id,
            text,
            reply_to: self.reply_to,
        })
    }
}

/// Decode and check a `POST /messages` body.
pub fn message_body(raw: &[u8]) -> Result<MessageInput, ApiError> {
    decode_json::<PostMessage>(raw)?.validate()
}

/// `PATCH /messages/{id}` as sent.
#[derive(Deserialize)]
pub struct EditMessage {
    pub text: String,
}

impl EditMessage {
    /// The new text, cleaned, within the limit and not blank.
    pub fn validate(self) -> Result<String, ApiError> {
        let text = check_text(&self.text)?;
        if text.trim().is_empty() {
            return Err(ApiError::bad_request(
                "empty_message",
                "The new text is empty; delete the message instead.",
            ));
        }
        Ok(text)
    }
}

/// Decode and check a `PATCH /messages/{id}` body: the new text.
pub fn edit_body(raw: &[u8]) -> Result<String, ApiError> {
    decode_json::<EditMessage>(raw)?.validate()
}

/// `PUT /messages/{id}/reaction` as sent.
#[derive(Deserialize)]
pub struct ReactionRequest {
    pub key: String,
}

impl ReactionRequest {
    /// The emoji, if it is one (the kit's rule: what a person picks from an emoji palette).
    pub fn validate(self) -> Result<String, ApiError> {
        if switchboard_kit::reaction::is_emoji(&self.key) {
            Ok(self.key)
        } else {
            Err(ApiError::Unprocessable {
                code: "invalid_reaction",
                message: "A reaction is one emoji.".into(),
            })
        }
    }
}

/// `POST /typing` as sent.
#[derive(Deserialize)]
pub struct TypingRequest {
    pub active: bool,
}

/// Decode a `POST /typing` body: whether the visitor is typing.
pub fn typing_body(raw: &[u8]) -> Result<bool, ApiError> {
    decode_json::<TypingRequest>(raw).map(|t| t.active)
}

/// `POST /read` as sent.
#[derive(Deserialize)]
pub struct ReadRequest {
    pub up_to: String,
}

/// Decode a `POST /read` body: the agent message read up to (looked up by the handler).
pub fn read_body(raw: &[u8]) -> Result<String, ApiError> {
    decode_json::<ReadRequest>(raw).map(|r| r.up_to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_like_the_server_does() {
        assert_eq!(
            typing_body(b"  ").map_err(|e| e.code()).unwrap_err(),
            "invalid_json"
        );
        assert!(typing_body(br#"{"active": true, "extra": [1]}"#).unwrap());
        assert_eq!(
            session_body(b"").unwrap(),
            SessionInput {
                name: None,
                email: None
            }
        );
        assert_eq!(
            session_body(br#"{"email": "x"}"#).unwrap_err().code(),
            "invalid_email"
        );
        assert_eq!(
            message_body(br#"{"client_id": "a/b", "text": "x"}"#)
                .unwrap_err()
                .code(),
            "invalid_client_id"
        );
        assert_eq!(
            message_body(br#"{"client_id": "a", "text": " \u0000 "}"#)
                .unwrap_err()
                .code(),
            "empty_message"
        );
        assert_eq!(
            message_body(b"{\"client_id\": \"a\", \"text\": \"\xff\"}")
                .unwrap_err()
                .code(),
            "invalid_json"
        );
        let m = message_body(br#"{"client_id": "a", "text": "<script>x</script>\r\n"}"#).unwrap();
        assert_eq!(m.text, "<script>x</script>\n");
        assert_eq!(
            edit_body(br#"{"text": 5}"#).unwrap_err().code(),
            "invalid_json"
        );
        assert_eq!(read_body(br#"{"up_to": "a.1"}"#).unwrap(), "a.1");
        let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
        assert_eq!(
            read_body(deep.as_bytes()).unwrap_err().code(),
            "invalid_json"
        );
    }
}

/// Most languages read from one list (an `Accept-Language` header or the widget's `lang`).
pub const MAX_LANGUAGES: usize = 8;

/// The visitor's languages, most preferred first, from an `Accept-Language` header
/// (`ru-RU,ru;q=0.9,en;q=0.8`) or the widget's `lang` parameter (`navigator.languages` joined
/// by commas). Tags that are not `[A-Za-z0-9-]`, at most 35 characters, are skipped, as are
/// `*` and tags weighted `q=0`; at most [`MAX_LANGUAGES`].
pub fn languages(list: &str) -> Vec<String> {
    let mut weighted: Vec<(u16, usize, String)> = Vec::new();
    for (index, item) in list.split(',').take(32).enumerate() {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim();
        if tag.is_empty()
            || tag.len() > 35
            || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            continue;
        }
        let mut q: u16 = 1000;
        for param in parts {
            if let Some(v) = param.trim().strip_prefix("q=") {
                q = v
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
                    .map_or(0, |q| (q * 1000.0).round() as u16);
            }
        }
        if q > 0 {
            weighted.push((q, index, tag.to_owned()));
        }
    }
    weighted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    weighted
        .into_iter()
        .map(|(_, _, tag)| tag)
        .take(MAX_LANGUAGES)
        .collect()
}

#[cfg(test)]
mod language_tests {
    use super::languages;

    #[test]
    fn accept_language_in_order_of_preference() {
        assert_eq!(
            languages("en;q=0.5, ru-RU,ru;q=0.9 , *;q=0.1"),
            vec!["ru-RU", "ru", "en"]
        );
        assert_eq!(languages("de,fr;q=0"), vec!["de"]);
        assert_eq!(languages("x<script>,en"), vec!["en"]);
        assert!(languages("").is_empty());
    }
}
