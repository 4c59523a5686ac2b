//! Rating requests (CSAT), the rules every channel and the core share:
//!
//! * the **payload** each choice carries ([`payload`], [`parse_payload`]): `sbr1:<nonce>:<score>`,
//!   ASCII, at most [`MAX_PAYLOAD`] bytes (Telegram's `callback_data` limit, the strictest of the
//!   networks). The nonce is drawn by the core for one request, which belongs to one resolution of
//!   one conversation: a button pressed on an older request, or a payload made up by hand, names
//!   no request the core is waiting on and is refused;
//! * the **choices** of a request ([`request`]): scores 1 to 5, worst first, with labels short
//!   enough for every network's buttons ([`MAX_LABEL`]: Messenger's and WhatsApp's 20 characters);
//! * the **digit fallback** for networks without buttons (e-mail, SMS): the question followed by
//!   a hint ([`fallback_text`]), and the reading of an answer ([`parse_digits`]): a message that
//!   starts with a single digit 1–5, whatever follows being the customer's comment;
//! * what a channel with buttons checks before sending ([`Limits::check`]): that the choices
//!   fit its network's documented limits (number of buttons, label length, payload length), so
//!   a request the network would refuse fails at once with a reason operators can read, and
//!   the question text clipped to what the network shows ([`clip`]).

use switchboard_channel::{RatingChoice, RatingRequest};

/// What every rating payload starts with (the format's version is its last character).
pub const PAYLOAD_PREFIX: &str = "sbr1:";
/// The longest payload ([Telegram's `callback_data`](https://core.telegram.org/bots/api#inlinekeyboardbutton): 1–64 bytes).
pub const MAX_PAYLOAD: usize = 64;
/// The longest label, in characters (Messenger quick replies and WhatsApp reply buttons: 20).
pub const MAX_LABEL: usize = 20;
/// The scores, worst first.
pub const SCORES: std::ops::RangeInclusive<u8> = 1..=5;

/// What a channel without native rating buttons answers when asked to send them anyway (the
/// core sends such channels the digit fallback instead, so this is a bug's trace).
pub fn not_native(channel: &str) -> switchboard_channel::SendError {
    switchboard_channel::SendError::Permanent {
        reason: format!("{channel} has no rating buttons (the question goes as text)"),
    }
}

/// A network's limits on the buttons of one message, as its documentation gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The network's name, for the reason of a refusal.
    pub network: &'static str,
    /// Most buttons (rows, choices) in one message.
    pub max_choices: usize,
    /// Longest label, in characters.
    pub max_label: usize,
    /// Longest payload (the id the network hands back), in characters.
    pub max_payload: usize,
}

impl Limits {
    /// `Ok` when every choice of `request` fits; else the permanent failure saying what does
    /// not (the core never builds such a request; this keeps a change there from turning into
    /// the network's own, vaguer refusal).
    pub fn check(&self, request: &RatingRequest) -> Result<(), switchboard_channel::SendError> {
        let refuse = |what: String| {
            Err(switchboard_channel::SendError::Permanent {
                reason: format!(
                    "the rating question cannot be shown on {}: {what}",
                    self.network
                ),
            })
        };
        if request.choices.is_empty() || request.choices.len() > self.max_choices {
            return refuse(format!(
                "{} choices, and a message takes 1 to {}",
                request.choices.len(),
                self.max_choices
            ));
        }
        for c in &request.choices {
            if c.label.trim().is_empty() || c.label.chars().count() > self.max_label {
                return refuse(format!(
                    "the label {:?} is not 1 to {} characters long",
                    c.label, self.max_label
                ));
            }
            if c.payload.is_empty() || c.payload.chars().count() > self.max_payload {
                return refuse(format!(
                    "the payload of choice {} is not 1 to {} characters long",
                    c.score, self.max_payload
                ));
            }
        }
        Ok(())
    }
}

/// `text` cut to at most `max` characters (an ellipsis ending a cut one); `fallback` when it is
/// blank (a network that requires a text, such as WhatsApp's message body, refuses an empty one).
pub fn clip(text: &str, max: usize, fallback: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return fallback.to_owned();
    }
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The payload of the choice `score` of the request with `nonce` (`nonce`: [A-Za-z0-9], as
/// the core draws it).
pub fn payload(nonce: &str, score: u8) -> String {
    format!("{PAYLOAD_PREFIX}{nonce}:{score}")
}

/// The nonce and score a payload names; `None` when it is not a well-formed rating payload
/// (another button of the network, or garbage).
pub fn parse_payload(payload: &str) -> Option<(&str, u8)> {
    if payload.len() > MAX_PAYLOAD {
        return None;
    }
    let rest = payload.strip_prefix(PAYLOAD_PREFIX)?;
    let (nonce, score) = rest.split_once(':')?;
    if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let score: u8 = match score.as_bytes() {
        [d] if d.is_ascii_digit() => d - b'0',
        _ => return None,
    };
    SCORES.contains(&score).then_some((nonce, score))
}

/// A choice's label: the score and as many stars.
pub fn label(score: u8) -> String {
    format!("{score} {}", "⭐".repeat(usize::from(score)))
}

/// The request with its five choices.
pub fn request(question: &str, nonce: &str) -> RatingRequest {
    RatingRequest {
        question: question.to_string(),
        choices: SCORES
            .map(|score| RatingChoice {
                score,
                label: label(score),
                payload: payload(nonce, score),
            })
            .collect(),
    }
}

/// The request as text, for a network without buttons: the question, then the hint (which
/// says to answer with a digit, in the customer's language).
pub fn fallback_text(question: &str, hint: &str) -> String {
    format!("{question}\n{hint}")
}

/// The score (and the comment after it) of a customer's answer by text: the message must start
/// with one digit 1–5 (after blanks), not followed by another digit ("12 boxes" is not a
/// rating); stars ("⭐⭐⭐⭐", "★★★★") count too. A `/5` or `/ 5` after the digit is
/// skipped; then separators (`.,:;-–—!)`) and blanks; the rest, if any, is the comment.
pub fn parse_digits(text: &str) -> Option<(u8, Option<String>)> {
    let t = text.trim_start();
    let mut chars = t.char_indices();
    let (score, mut rest) = match chars.next()? {
        (_, c @ '1'..='5') => {
            let after = &t[c.len_utf8()..];
            if after.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            (c as u8 - b'0', after)
        }
        _ => {
            let stars = t
                .chars()
                .take_while(|c| matches!(c, '⭐' | '★' | '\u{fe0f}'))
                .collect::<String>();
            let n = stars.chars().filter(|c| *c != '\u{fe0f}').count();
            if !(1..=5).contains(&n) {
                return None;
            }
            (n as u8, &t[stars.len()..])
        }
    };
    let trimmed = rest.trim_start();
    if let Some(r) = trimmed.strip_prefix('/') {
        let r = r.trim_start();
        if let Some(r) = r.strip_prefix('5') {
            rest = r;
        }
    }
    let comment = rest
        .trim_start_matches(|c: char| c.is_whitespace() || ".,:;-–—!)".contains(c))
        .trim_end();
    Some((score, (!comment.is_empty()).then(|| comment.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_fit_every_network() {
        let nonce = "a1B2c3D4e5F6g7H8";
        let req = request("How did we do?", nonce);
        assert_eq!(req.choices.len(), 5);
        for (i, c) in req.choices.iter().enumerate() {
            assert_eq!(usize::from(c.score), i + 1);
            assert!(c.payload.len() <= MAX_PAYLOAD && c.payload.is_ascii());
            assert!(c.label.chars().count() <= MAX_LABEL, "{}", c.label);
            assert_eq!(parse_payload(&c.payload), Some((nonce, c.score)));
        }
        assert_eq!(req.choices[3].label, "4 ⭐⭐⭐⭐");
    }

    #[test]
    fn forged_or_foreign_payloads_are_refused() {
        for p in [
            "",
            "sbr1:",
            "sbr1:abc",
            "sbr1:abc:6",
            "sbr1:abc:0",
            "sbr1:abc:44",
            "sbr1::4",
            "sbr1:a-b:4",
            "sbr2:abc:4",
            "like",
            &format!("sbr1:{}:4", "a".repeat(60)),
        ] {
            assert_eq!(parse_payload(p), None, "{p:?}");
        }
    }

    #[test]
    fn limits_are_checked_and_texts_clipped() {
        let req = request("How did we do?", "a1B2c3D4e5F6g7H8");
        let whatsapp_list = Limits {
            network: "WhatsApp",
            max_choices: 10,
            max_label: 24,
            max_payload: 200,
        };
        assert_eq!(whatsapp_list.check(&req), Ok(()));
        let reply_buttons = Limits {
            max_choices: 3,
            ..whatsapp_list
        };
        let Err(switchboard_channel::SendError::Permanent { reason }) = reply_buttons.check(&req)
        else {
            panic!("five choices fit three buttons")
        };
        assert!(
            reason.contains("5 choices") && reason.contains("WhatsApp"),
            "{reason}"
        );
        let short = Limits {
            max_label: 3,
            ..whatsapp_list
        };
        assert!(short.check(&req).is_err());
        let tight = Limits {
            max_payload: 10,
            ..whatsapp_list
        };
        assert!(tight.check(&req).is_err());
        assert_eq!(clip("  Rate us  ", 20, "?"), "Rate us");
        assert_eq!(clip("abcdef", 4, "?"), "abc…");
        assert_eq!(clip(" ", 4, "⭐"), "⭐");
    }

    #[test]
    fn answers_by_text() {
        assert_eq!(parse_digits("5"), Some((5, None)));
        assert_eq!(parse_digits("  4\n"), Some((4, None)));
        assert_eq!(
            parse_digits("2 - the parcel was late"),
            Some((2, Some("the parcel was late".into())))
        );
        assert_eq!(parse_digits("4/5 ok"), Some((4, Some("ok".into()))));
        assert_eq!(parse_digits("⭐⭐⭐"), Some((3, None)));
        assert_eq!(parse_digits("★★★★★ great"), Some((5, Some("great".into()))));
        assert_eq!(parse_digits("12 boxes are missing"), None);
        assert_eq!(parse_digits("6"), None);
        assert_eq!(parse_digits("0"), None);
        assert_eq!(parse_digits("Where is my parcel?"), None);
        assert_eq!(parse_digits(""), None);
    }
}
