//! What Twilio's webhooks say, as plain data: an incoming SMS/MMS ([`parse_incoming`]) or a
//! status callback for one of our messages ([`parse_status`]). Pure functions over a decoded
//! [`Form`], fuzzed (`fuzz/fuzz_targets/sms_webhook.rs`); the signature is checked before they
//! run (`webhook`), and turning the result into the core's `Inbound` (fetching media) is
//! `media` + `lib.rs`.
//!
//! Incoming (<https://www.twilio.com/docs/messaging/guides/webhook-request>): `MessageSid`,
//! `AccountSid`, `From`, `To`, `Body`, `NumMedia` and for each medium `MediaUrl{N}` /
//! `MediaContentType{N}` (at most 10). Status callbacks: `MessageSid`, `MessageStatus`
//! (`queued`, `sent`, `delivered`, `undelivered`, `failed`, `read`, …), `ErrorCode` on failures,
//! `From` (our number) and `To` (the customer).

use crate::form::Form;

/// Twilio attaches at most this many media to one message.
pub const MAX_MEDIA: usize = 10;

/// Why a (correctly signed) webhook cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the webhook has no {0}")]
    Missing(&'static str),
}

/// One medium of an MMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Medium {
    pub url: String,
    pub content_type: String,
}

/// An incoming SMS or MMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub message_sid: String,
    pub account_sid: Option<String>,
    /// The customer, as Twilio wrote it (E.164 for phone numbers).
    pub from: String,
    /// The company's number the customer wrote to.
    pub to: String,
    pub body: String,
    pub media: Vec<Medium>,
    /// The message is an opt-out or opt-in keyword Twilio acts on.
    pub opt_out: Option<OptOut>,
}

/// Twilio's opt-out handling: a message that is only `STOP` (or `UNSUBSCRIBE`, `END`, `QUIT`,
/// `STOPALL`, `REVOKE`, `OPTOUT`, `CANCEL`) makes Twilio refuse every later message to that
/// number (error 21610) until the customer texts `START` (or `YES`, `UNSTOP`). With Advanced
/// Opt-Out the webhook says so in `OptOutType`; without, the keywords are the standard ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOut {
    Stop,
    Start,
}

fn opt_out(form: &Form, body: &str) -> Option<OptOut> {
    match form
        .non_empty("OptOutType")
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("STOP") => return Some(OptOut::Stop),
        Some("START") => return Some(OptOut::Start),
        Some(_) => return None,
        None => {}
    }
    match body.trim().to_ascii_uppercase().as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "REVOKE" | "OPTOUT" => {
            Some(OptOut::Stop)
        }
        "START" | "YES" | "UNSTOP" => Some(OptOut::Start),
        _ => None,
    }
}

/// Parse an incoming-message webhook.
pub fn parse_incoming(form: &Form) -> Result<Incoming, ParseError> {
    let message_sid = form
        .non_empty("MessageSid")
        .or_else(|| form.non_empty("SmsMessageSid"))
        .or_else(|| form.non_empty("SmsSid"))
        .ok_or(ParseError::Missing("MessageSid"))?;
    let from = form.non_empty("From").ok_or(ParseError::Missing("From"))?;
    let to = form.non_empty("To").ok_or(ParseError::Missing("To"))?;
    let declared: usize = form
        .get("NumMedia")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let media = (0..declared.min(MAX_MEDIA))
        .filter_map(|i| {
            let url = form.non_empty(&format!("MediaUrl{i}"))?;
            let content_type = form
                .non_empty(&format!("MediaContentType{i}"))
                .unwrap_or("application/octet-stream");
            Some(Medium {
                url: url.to_owned(),
                content_type: content_type.to_owned(),
            })
        })
        .collect();
    let body = form.get("Body").unwrap_or("").to_owned();
    Ok(Incoming {
        message_sid: message_sid.to_owned(),
        account_sid: form.non_empty("AccountSid").map(str::to_owned),
        from: from.to_owned(),
        to: to.to_owned(),
        opt_out: opt_out(form, &body),
        body,
        media,
    })
}

/// Where a message of ours stands, as far as the bridge cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `sent` (the carrier took it) or `delivered` (the phone confirmed it).
    Delivered,
    /// `read` (only on channels that report it).
    Read,
    /// `undelivered` or `failed`, with Twilio's error code when it gave one.
    Failed { error_code: Option<u32> },
    /// Anything else (`queued`, `sending`, `accepted`, …): nothing to show.
    Pending,
}

/// A status callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub message_sid: String,
    /// `MessageStatus` as Twilio wrote it (part of the dedup key).
    pub status: String,
    pub outcome: Outcome,
    /// Our number.
    pub from: Option<String>,
    /// The customer.
    pub to: Option<String>,
}

/// Parse a status callback.
pub fn parse_status(form: &Form) -> Result<Status, ParseError> {
    let message_sid = form
        .non_empty("MessageSid")
        .or_else(|| form.non_empty("SmsSid"))
        .ok_or(ParseError::Missing("MessageSid"))?;
    let status = form
        .non_empty("MessageStatus")
        .or_else(|| form.non_empty("SmsStatus"))
        .ok_or(ParseError::Missing("MessageStatus"))?
        .to_ascii_lowercase();
    let error_code = form
        .non_empty("ErrorCode")
        .and_then(|c| c.parse::<u32>().ok())
        .filter(|c| *c != 0);
    let outcome = match status.as_str() {
        "sent" | "delivered" => Outcome::Delivered,
        "read" => Outcome::Read,
        "undelivered" | "failed" => Outcome::Failed { error_code },
        _ => Outcome::Pending,
    };
    Ok(Status {
        message_sid: message_sid.to_owned(),
        status,
        outcome,
        from: form.non_empty("From").map(str::to_owned),
        to: form.non_empty("To").map(str::to_owned),
    })
}

/// What a Twilio error code means, in words for operators, for the common delivery and
/// sending errors (<https://www.twilio.com/docs/api/errors>).
pub fn explain(code: u32) -> Option<&'static str> {
    Some(match code {
        30003 => "the customer's phone is unreachable (switched off or out of coverage)",
        30004 => "the message was blocked (the customer may have blocked this number)",
        30005 => "the number is unknown or no longer exists",
        30006 => "the number is a landline or cannot receive text messages",
        30007 => "the carrier filtered the message as spam",
        30008 => "the carrier reported an unknown error",
        30034 => "the sending number is not registered for A2P 10DLC messaging",
        21610 => "the customer has unsubscribed from this number (replied STOP); they can text START to opt back in",
        21211 => "the number is not a valid phone number",
        21408 => "sending to this country or region is not enabled on the Twilio account",
        21614 => "the number is not a mobile number and cannot receive text messages",
        21606 => "the sending number is not a Twilio number of this account that can send messages",
        21612 => "Twilio cannot route messages between these two numbers",
        20003 => "Twilio refused the account SID or auth token (check channels.sms in the bridge's configuration)",
        _ => return None,
    })
}

/// The reason shown to operators for a failed status: the explanation and the code.
pub fn failure_reason(status: &str, error_code: Option<u32>) -> String {
    match error_code {
        Some(code) => match explain(code) {
            Some(words) => format!("{words} (Twilio error {code}, status {status})"),
            None => format!("Twilio reported the message {status} (error {code}, see https://www.twilio.com/docs/api/errors/{code})"),
        },
        None => format!("Twilio reported the message {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::parse;
    use crate::test_fixtures::fixture;

    #[test]
    fn an_sms_fixture() {
        let Some(body) = fixture("inbound_sms_zammad.form") else {
            return;
        };
        let m = parse_incoming(&parse(body.as_bytes())).unwrap();
        assert_eq!(m.message_sid, "SM1bd5330f81336e8b54c2d3d9fc1bcb6a");
        assert_eq!(m.from, "+491710000000");
        assert_eq!(m.to, "+4915700000000");
        assert!(
            m.body.starts_with("Ldfhxhcuffufuf. Fifififig.  Fifififiif"),
            "{}",
            m.body
        );
        assert!(m.media.is_empty());
        assert_eq!(
            m.account_sid.as_deref(),
            Some("AC78349f4b974f5f6907c513a77d96756d")
        );
    }

    #[test]
    fn an_mms_fixture() {
        let Some(body) = fixture("inbound_mms_zammad.form") else {
            return;
        };
        let m = parse_incoming(&parse(body.as_bytes())).unwrap();
        assert_eq!(m.body, "");
        assert_eq!(
            m.media,
            vec![Medium {
                url: "https://api.twilio.com/2010-04-01/Accounts/XXXXXX/Messages/XXXXXXX/Media/XXXXXX".into(),
                content_type: "image/jpeg".into()
            }]
        );
    }

    #[test]
    fn media_count_is_bounded_and_gaps_skipped() {
        let f = parse(b"MessageSid=SM1&From=%2B1&To=%2B2&NumMedia=99&MediaUrl0=https%3A%2F%2Fa&MediaUrl2=https%3A%2F%2Fc&MediaContentType2=image%2Fpng");
        let m = parse_incoming(&f).unwrap();
        assert_eq!(m.media.len(), 2);
        assert_eq!(m.media[0].content_type, "application/octet-stream");
        assert_eq!(m.media[1].content_type, "image/png");
        let f = parse(b"MessageSid=SM1&From=%2B1&To=%2B2&NumMedia=-1&MediaUrl0=x");
        assert!(parse_incoming(&f).unwrap().media.is_empty());
    }

    #[test]
    fn opt_out_keywords_are_recognised() {
        let incoming = |q: &str| {
            parse_incoming(&parse(
                format!("MessageSid=SM1&From=%2B1&To=%2B2&{q}").as_bytes(),
            ))
            .unwrap()
            .opt_out
        };
        assert_eq!(incoming("Body=STOP"), Some(OptOut::Stop));
        assert_eq!(incoming("Body=+unsubscribe+"), Some(OptOut::Stop));
        assert_eq!(incoming("Body=Start"), Some(OptOut::Start));
        assert_eq!(
            incoming("Body=Stop+texting+me"),
            None,
            "a sentence is not a keyword"
        );
        assert_eq!(incoming("Body=HELP"), None);
        assert_eq!(
            incoming("Body=Arret&OptOutType=STOP"),
            Some(OptOut::Stop),
            "Advanced Opt-Out's own keywords"
        );
        assert_eq!(incoming("Body=STOP&OptOutType=HELP"), None);
    }

    #[test]
    fn required_fields_are_named() {
        assert_eq!(
            parse_incoming(&parse(b"From=%2B1&To=%2B2")),
            Err(ParseError::Missing("MessageSid"))
        );
        assert_eq!(
            parse_incoming(&parse(b"MessageSid=SM1&To=%2B2")),
            Err(ParseError::Missing("From"))
        );
        assert_eq!(
            parse_status(&parse(b"MessageSid=SM1")),
            Err(ParseError::Missing("MessageStatus"))
        );
    }

    #[test]
    fn status_fixtures() {
        let cases = [
            ("status_queued.form", Outcome::Pending),
            ("status_sent.form", Outcome::Delivered),
            ("status_delivered.form", Outcome::Delivered),
            (
                "status_undelivered_30003.form",
                Outcome::Failed {
                    error_code: Some(30003),
                },
            ),
            (
                "status_failed_30008.form",
                Outcome::Failed {
                    error_code: Some(30008),
                },
            ),
        ];
        for (file, outcome) in cases {
            let Some(body) = fixture(file) else { return };
            let s = parse_status(&parse(body.as_bytes())).unwrap();
            assert_eq!(s.outcome, outcome, "{file}");
            assert_eq!(s.message_sid, "SM1bd5330f81336e8b54c2d3d9fc1bcb6a");
            assert_eq!(s.to.as_deref(), Some("+491710000000"));
            assert_eq!(s.from.as_deref(), Some("+4915700000000"));
        }
        let read = parse_status(&parse(b"MessageSid=SM1&MessageStatus=read")).unwrap();
        assert_eq!(read.outcome, Outcome::Read);
    }

    #[test]
    fn failures_are_explained() {
        assert!(failure_reason("undelivered", Some(30003)).contains("unreachable"));
        assert!(failure_reason("failed", Some(30005)).contains("unknown"));
        assert!(failure_reason("failed", Some(30006)).contains("landline"));
        assert!(failure_reason("failed", Some(30007)).contains("spam"));
        assert!(failure_reason("failed", Some(30008)).contains("unknown error"));
        assert!(failure_reason("failed", Some(21610)).contains("STOP"));
        assert!(failure_reason("failed", Some(12345)).contains("error 12345"));
        assert_eq!(
            failure_reason("failed", None),
            "Twilio reported the message failed"
        );
    }
}
