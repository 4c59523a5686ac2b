//! Who wrote a mail: a person, an auto-responder, a mail system reporting a failed delivery, or a
//! mailing list — so that only a person's mail becomes a customer message waiting for an answer.
//!
//! Signs read, strongest first:
//!
//! * **bounce**: a `multipart/report; report-type=delivery-status`, or a mail system writing:
//!   `MAILER-DAEMON`, `postmaster`, `mail-daemon` addresses, "Mail Delivery Subsystem" / "Mail
//!   Delivery System" / "Mailer-Daemon" / "postmaster" display names, an empty `From: <>`. Its
//!   reason and failed recipients come from the `message/delivery-status` part, and when the
//!   report's structure is broken, from the same fields, Postfix's `<address>: reason` lines and
//!   the returned mail's headers found anywhere in its text;
//! * **auto-reply**: `Auto-Submitted` other than `no`, `X-Autoreply`, vacation subjects…;
//! * **list**: `List-*` headers, `Precedence: list/bulk/junk`, Mailman's `X-Mailman-*`,
//!   `X-Mailing-List`, ezmlm's `Mailing-List`, a `multipart/digest`, and senders that are a
//!   list's robots (`…-request@`, `…-bounces@`, `…-owner@`, `owner-…@`) in From or Sender.

use mail_parser::{MessageParser, MimeHeaders, PartType};

use crate::parse::{clean_id, header_text, ids, Bounce, MailKind};

fn has_header(message: &mail_parser::Message<'_>, name: &str) -> bool {
    message
        .headers()
        .iter()
        .any(|h| h.name().eq_ignore_ascii_case(name))
}

/// Decide whether a mail is a person writing, an auto-reply, a bounce or list mail.
pub(crate) fn classify(message: &mail_parser::Message<'_>) -> MailKind {
    let content_type = message.root_part().content_type();
    let is_report = content_type.is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct
                .attribute("report-type")
                .is_none_or(|t| t.eq_ignore_ascii_case("delivery-status"))
    });
    let subject = message.subject().unwrap_or("").to_lowercase();
    let report_type = content_type
        .filter(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .and_then(|ct| ct.attribute("report-type"))
        .map(str::to_ascii_lowercase);
    if report_type.as_deref() == Some("disposition-notification") {
        if let Some(ids) = read_notification(message) {
            return MailKind::ReadReceipt(ids);
        }
        return MailKind::AutoReply;
    }
    if is_report {
        if let Some(ids) = delivered(message) {
            return MailKind::Delivered(ids);
        }
        if delayed(message) {
            return MailKind::Delayed(bounce_details(message));
        }
    }
    if is_report || from_mail_system(message) {
        return MailKind::Bounce(bounce_details(message));
    }

    let auto_submitted = header_text(message, "Auto-Submitted").map(|v| v.to_ascii_lowercase());
    let precedence = header_text(message, "Precedence").map(|v| v.to_ascii_lowercase());
    let auto = auto_submitted
        .as_deref()
        .is_some_and(|v| !v.starts_with("no"))
        || has_header(message, "X-Autoreply")
        || has_header(message, "X-Autorespond")
        || header_text(message, "X-Auto-Response-Suppress").is_some_and(|v| {
            v.eq_ignore_ascii_case("all") && subject.starts_with("automatic reply")
        })
        || precedence.as_deref().is_some_and(|p| p == "auto_reply")
        || subject.starts_with("auto:")
        || subject.starts_with("automatic reply")
        || subject.starts_with("autoreply")
        || subject.contains("out of office");
    let list = message.headers().iter().any(|h| {
        let name = h.name().to_ascii_lowercase();
        name.starts_with("list-")
            || name.starts_with("x-mailman-")
            || name == "x-mailing-list"
            || name == "mailing-list"
            || name == "x-beenthere"
    }) || precedence
        .as_deref()
        .is_some_and(|p| p == "list" || p == "bulk" || p == "junk")
        || content_type.is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("digest"))
        })
        || message
            .parts
            .iter()
            .any(|p| p.is_content_type("multipart", "digest"))
        || senders(message)
            .iter()
            .any(|(address, _)| list_robot(address));
    if auto {
        MailKind::AutoReply
    } else if list {
        MailKind::List
    } else {
        MailKind::Personal
    }
}

/// The fields of the report's machine-readable part (`message/<subtype>`), unfolded.
fn report_fields(message: &mail_parser::Message<'_>, subtype: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in &message.parts {
        if part.is_content_type("message", subtype) {
            for line in unfold(&String::from_utf8_lossy(part.contents())) {
                if let Some((k, v)) = line.split_once(':') {
                    out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
        }
    }
    out
}

/// An MDN saying the mail was displayed: the Message-IDs it is about.
fn read_notification(message: &mail_parser::Message<'_>) -> Option<Vec<String>> {
    let fields = report_fields(message, "disposition-notification");
    let displayed = fields.iter().any(|(k, v)| {
        k == "disposition"
            && v.rsplit(';')
                .next()
                .is_some_and(|d| d.trim().to_ascii_lowercase().starts_with("displayed"))
    });
    let ids: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "original-message-id")
        .filter_map(|(_, v)| clean_id(v))
        .collect();
    (displayed && !ids.is_empty()).then_some(ids)
}

/// A DSN where every recipient was delivered, relayed or expanded: the returned Message-IDs.
fn delivered(message: &mail_parser::Message<'_>) -> Option<Vec<String>> {
    let fields = report_fields(message, "delivery-status");
    let actions: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "action")
        .map(|(_, v)| v.to_ascii_lowercase())
        .collect();
    let all_delivered = !actions.is_empty()
        && actions
            .iter()
            .all(|a| a == "delivered" || a == "relayed" || a == "expanded");
    if !all_delivered {
        return None;
    }
    let ids = bounce_details(message).original_message_ids;
    (!ids.is_empty()).then_some(ids)
}

/// A DSN that says delivery is delayed for some recipient and failed for none (the others
/// delivered): a warning, not a bounce.
fn delayed(message: &mail_parser::Message<'_>) -> bool {
    let actions: Vec<String> = report_fields(message, "delivery-status")
        .into_iter()
        .filter(|(k, _)| k == "action")
        .map(|(_, v)| v.to_ascii_lowercase())
        .collect();
    actions.iter().any(|a| a == "delayed")
        && actions
            .iter()
            .all(|a| matches!(a.as_str(), "delayed" | "delivered" | "relayed" | "expanded"))
}

/// The From and Sender addresses (lower-cased) with their display names.
fn senders(message: &mail_parser::Message<'_>) -> Vec<(String, String)> {
    message
        .from()
        .into_iter()
        .chain(message.sender())
        .flat_map(|a| a.iter())
        .map(|a| {
            (
                a.address().unwrap_or("").trim().to_ascii_lowercase(),
                a.name().unwrap_or("").trim().to_lowercase(),
            )
        })
        .collect()
}

/// A mailing list's robot address: `list-request@`, `list-bounces@`, `list-owner@`,
/// `owner-list@` (majordomo).
fn list_robot(address: &str) -> bool {
    let local = address.split('@').next().unwrap_or("");
    local.ends_with("-request")
        || local.ends_with("-bounces")
        || local.contains("-bounces+")
        || local.ends_with("-owner")
        || local.starts_with("owner-")
}

/// A mail system wrote this: its address, its display name, or an empty From.
fn from_mail_system(message: &mail_parser::Message<'_>) -> bool {
    let from = message.from().and_then(|a| a.first());
    let empty_from = message
        .header_raw("From")
        .is_some_and(|v| v.trim() == "<>" || v.trim_end().ends_with("<>"));
    let (address, name) = from
        .map(|a| {
            (
                a.address().unwrap_or("").trim().to_ascii_lowercase(),
                a.name().unwrap_or("").trim().to_lowercase(),
            )
        })
        .unwrap_or_default();
    let local = address.split('@').next().unwrap_or("");
    let daemon_address = matches!(
        local,
        "mailer-daemon" | "mailerdaemon" | "mail-daemon" | "postmaster"
    );
    let daemon_name = [
        "mail delivery subsystem",
        "mail delivery system",
        "mailer-daemon",
        "mailer daemon",
        "mail delivery service",
        "postmaster",
    ]
    .iter()
    .any(|n| name.contains(n));
    daemon_address || daemon_name || empty_from
}

/// The returned mail's Message-ID, the reason and the failed recipients: from the report's
/// parts, and when its structure is broken, from the same fields anywhere in the mail's text.
fn bounce_details(message: &mail_parser::Message<'_>) -> Bounce {
    let mut bounce = Bounce::default();
    let mut fields = DsnFields::default();
    let mut returned_to: Vec<String> = Vec::new();
    let mut found_report = false;
    for part in &message.parts {
        let ct = part.content_type();
        let full = ct
            .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_ascii_lowercase())
            .unwrap_or_default();
        match (&part.body, full.as_str()) {
            (PartType::Message(inner), _) => {
                if let Some(id) = inner.message_id().and_then(clean_id) {
                    bounce.original_message_ids.push(id);
                }
                returned_to.extend(
                    inner
                        .to()
                        .into_iter()
                        .flat_map(|a| a.iter())
                        .filter_map(|a| a.address())
                        .map(|a| a.trim().to_lowercase()),
                );
            }
            (_, "message/delivery-status") | (_, "message/global-delivery-status") => {
                found_report = true;
                fields.read(&String::from_utf8_lossy(part.contents()));
            }
            (_, "text/rfc822-headers") => {
                let contents = part.contents();
                if let Some(headers) = MessageParser::default().parse_headers(contents) {
                    if let Some(id) = headers.message_id().and_then(clean_id) {
                        bounce.original_message_ids.push(id);
                    }
                }
            }
            _ => {}
        }
    }
    // A report whose structure is broken (no boundary, a part mail-parser could not split):
    // the same fields, Postfix's "<address>: reason" lines and the returned mail's
    // Message-ID are still in the text.
    let raw = String::from_utf8_lossy(message.raw_message());
    let body = raw
        .split_once("\r\n\r\n")
        .or_else(|| raw.split_once("\n\n"))
        .map(|(_, b)| b)
        .unwrap_or("");
    if !found_report {
        fields.read(body);
    }
    if fields.recipients.is_empty() {
        fields.read_postfix_lines(body);
    }
    if bounce.original_message_ids.is_empty() {
        for line in unfold(body) {
            if let Some((key, value)) = line.split_once(':') {
                if key.trim().eq_ignore_ascii_case("message-id") {
                    bounce.original_message_ids.extend(clean_id(value));
                }
            }
        }
    }
    bounce.recipients = fields.recipients;
    if let Some(failed) = header_text(message, "X-Failed-Recipients") {
        for r in failed.split(',') {
            let r = r.trim().to_lowercase();
            if !r.is_empty() && !bounce.recipients.contains(&r) {
                bounce.recipients.push(r);
            }
        }
    }
    if bounce.recipients.is_empty() {
        // The returned mail's own To, when the report names no one.
        for r in returned_to {
            if r.contains('@') && !bounce.recipients.contains(&r) {
                bounce.recipients.push(r);
            }
        }
    }
    // A bounce that quotes our mail as In-Reply-To / References (some MTAs do).
    bounce
        .original_message_ids
        .extend(ids(message.in_reply_to()));
    bounce.original_message_ids.dedup();
    let mut reason = fields
        .diagnostics
        .into_iter()
        .next()
        .or_else(|| fields.statuses.first().map(|s| format!("status {s}")))
        .unwrap_or_else(|| {
            message
                .subject()
                .unwrap_or("the mail could not be delivered")
                .to_string()
        });
    if !bounce.recipients.is_empty() {
        reason = format!("{reason} ({})", bounce.recipients.join(", "));
    }
    bounce.reason = reason;
    bounce
}

/// The per-recipient fields of a delivery status notification (RFC 3464).
#[derive(Default)]
struct DsnFields {
    recipients: Vec<String>,
    statuses: Vec<String>,
    diagnostics: Vec<String>,
}

impl DsnFields {
    fn read(&mut self, text: &str) {
        for line in unfold(text) {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim().to_string());
            match key.as_str() {
                "diagnostic-code" => {
                    let d = value
                        .split_once(';')
                        .map(|(_, v)| v.trim().to_string())
                        .unwrap_or(value);
                    if !d.is_empty() {
                        self.diagnostics.push(d);
                    }
                }
                "status" if !value.is_empty() => self.statuses.push(value),
                "final-recipient" | "original-recipient" => {
                    let addr = value
                        .split_once(';')
                        .map(|(_, v)| v.trim())
                        .unwrap_or(&value)
                        .trim_matches(['<', '>'])
                        .to_lowercase();
                    self.add_recipient(addr);
                }
                _ => {}
            }
        }
    }

    /// Postfix's human part: `<someone@example.org>: host … said: 550 …`.
    fn read_postfix_lines(&mut self, text: &str) {
        for line in unfold(text) {
            let Some(rest) = line.strip_prefix('<') else {
                continue;
            };
            let Some((addr, reason)) = rest.split_once(">:") else {
                continue;
            };
            if addr.contains('@') && !addr.contains(char::is_whitespace) {
                self.add_recipient(addr.to_lowercase());
                let reason = reason.trim();
                if !reason.is_empty() {
                    self.diagnostics.push(reason.to_string());
                }
            }
        }
    }

    fn add_recipient(&mut self, addr: String) {
        if addr.contains('@') && !self.recipients.contains(&addr) {
            self.recipients.push(addr);
        }
    }
}

/// Header-style lines with continuation lines joined.
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        if (line.starts_with(' ') || line.starts_with('\t')) && !lines.is_empty() {
            if let Some(last) = lines.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            lines.push(line.trim_end().to_string());
        }
    }
    lines
}
