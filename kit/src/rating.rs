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
//! * what a network with buttons checks alike before sending them ([`Buttons::check`]: no more
//!   buttons than a message takes, each label and payload within the network's own limits
//!   ([`check_fits`]), or the request is refused with a reason), and
//!   how a press that comes back as the customer's **text** is told from a message
//!   ([`press_in_text`]: Viber's `reply` buttons send their `ActionBody` as a message).

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

/// Refuse a request a network would refuse: a label longer than `max_label` characters or a
/// payload longer than `max_payload` bytes (VK: 40 and 255; Viber: 250 characters of `Text`,
/// `ActionBody` well over 64). The kit's own choices always fit; this guards against a core
/// that sends others, naming the network in the reason an operator reads.
pub fn check_fits(
    request: &RatingRequest,
    network: &str,
    max_label: usize,
    max_payload: usize,
) -> Result<(), switchboard_channel::SendError> {
    let refuse = |reason: String| Err(switchboard_channel::SendError::Permanent { reason });
    if request.choices.is_empty() {
        return refuse(format!("a rating request for {network} has no choices"));
    }
    for c in &request.choices {
        if c.label.is_empty() || c.label.chars().count() > max_label {
            return refuse(format!(
                "the rating button {:?} does not fit {network}'s labels (1 to {max_label} characters)",
                c.label
            ));
        }
        if c.payload.len() > max_payload {
            return refuse(format!(
                "the rating button {:?} carries more than {network}'s {max_payload}-byte payload",
                c.label
            ));
        }
    }
    Ok(())
}

/// What one kind of a network's button message takes: how many buttons, how long a label
/// (characters) and a payload (bytes). One table per network, checked by one rule
/// ([`Buttons::check`]).
#[derive(Clone, Copy, Debug)]
pub struct Buttons {
    /// The network and the kind of message, as operators read it ("a Discord message", "a
    /// WhatsApp list").
    pub message: &'static str,
    /// The network's name in the label and payload refusals.
    pub network: &'static str,
    pub max_buttons: usize,
    pub max_label: usize,
    pub max_payload: usize,
}

impl Buttons {
    /// Whether the request fits: not more choices than the message takes, and each label and
    /// payload within the network's limits ([`check_fits`]).
    pub fn check(&self, request: &RatingRequest) -> Result<(), switchboard_channel::SendError> {
        let n = request.choices.len();
        if n > self.max_buttons {
            return Err(switchboard_channel::SendError::Permanent {
                reason: format!(
                    "the rating question has {n} choices; {} takes at most {} buttons",
                    self.message, self.max_buttons
                ),
            });
        }
        check_fits(request, self.network, self.max_label, self.max_payload)
    }
}

/// A customer's text that is a rating button's payload coming back (a network whose buttons
/// answer with a message, e.g. Viber's `reply` buttons): the payload, trimmed of the blanks a
/// client may add. `None` for any other text, so it stays an ordinary message (a customer who
/// types a rating payload by hand only makes a press the core checks like any other).
pub fn press_in_text(text: &str) -> Option<&str> {
    let t = text.trim();
    parse_payload(t).map(|_| t)
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

/// A question as a network with a length limit shows it: `text` cut to at most `max`
/// characters (an ellipsis ending a cut one), `fallback` when it is blank (a network that
/// requires a text, such as WhatsApp's message body, refuses an empty one).
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
    fn requests_are_checked_against_a_networks_limits() {
        let req = request("How did we do?", "abc123");
        assert!(check_fits(&req, "VK", 40, 255).is_ok());
        // The stricter network refuses what a laxer one takes.
        assert!(check_fits(&req, "X", 3, 255).is_err());
        assert!(check_fits(&req, "X", 40, 10).is_err());
        let empty = RatingRequest {
            question: "?".into(),
            choices: vec![],
        };
        assert!(check_fits(&empty, "VK", 40, 255).is_err());
        let buttons = |max_buttons| Buttons {
            message: "a test message",
            network: "X",
            max_buttons,
            max_label: 40,
            max_payload: 255,
        };
        assert!(buttons(5).check(&req).is_ok());
        assert!(matches!(
            buttons(4).check(&req),
            Err(switchboard_channel::SendError::Permanent { reason })
                if reason == "the rating question has 5 choices; a test message takes at most 4 buttons"
        ));
        assert!(buttons(5).check(&empty).is_err());
    }

    #[test]
    fn presses_in_text_are_only_payloads() {
        assert_eq!(press_in_text(" sbr1:abc:4\n"), Some("sbr1:abc:4"));
        assert_eq!(press_in_text("4"), None);
        assert_eq!(press_in_text("sbr1:abc:4 thanks"), None);
        assert_eq!(press_in_text("hello"), None);
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

    #[test]
    fn questions_are_clipped_to_a_networks_length() {
        assert_eq!(clip("  Rate us  ", 20, "?"), "Rate us");
        assert_eq!(clip("abcdef", 4, "?"), "abc…");
        assert_eq!(clip(" ", 4, "⭐"), "⭐");
    }
}
