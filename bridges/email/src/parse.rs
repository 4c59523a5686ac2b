//! Raw RFC 5322 bytes → [`ParsedMail`]: what the channel needs of one inbound email.
//!
//! Pure and total: any byte string gives a `ParsedMail` or a [`ParseError`], never a panic (this
//! is the fuzz target `email_parse`). MIME structure, transfer encodings (quoted-printable,
//! base64, 8bit) and charsets (UTF-8, koi8-r, windows-1251, ISO-2022-JP, Shift_JIS, RFC 2047
//! encoded words in headers, RFC 2231 file names) are mail-parser's work (with [`crate::charset`]
//! repairing parts whose declared charset lies); this module decides
//! what the room should show:
//!
//! * the **new** text — quoted history and the signature folded away ([`crate::fold`]);
//! * sanitised HTML ([`crate::html`]) — or the text as HTML when the mail had none;
//! * files, inline `cid:` images included, to upload as attachments;
//! * the **kind** of mail: a person writing, an auto-reply, a bounce (with the Message-ID of the
//!   mail that bounced and the reason), or mailing-list mail. Only a person's mail is a customer
//!   message; the others are shown as notices and never answered automatically.

use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};
use switchboard_kit::mime::with_extension;
use switchboard_kit::safe_file_name;

use crate::body;
use crate::fold;
use crate::html;
use crate::kind;
use crate::repair;

/// Largest mail the parser looks at (bigger ones are kept raw and shown as unreadable).
pub const MAX_MAIL_BYTES: usize = 50 * 1024 * 1024;

/// What kind of mail this is, for loop prevention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailKind {
    /// A person wrote it.
    Personal,
    /// Out-of-office, vacation notice, ticket-system acknowledgement…
    AutoReply,
    /// A delivery status notification about a failed delivery.
    Bounce(Bounce),
    /// Mailing-list or bulk mail.
    List,
    /// A read notification (RFC 8098 MDN, disposition "displayed") for these Message-IDs.
    ReadReceipt(Vec<String>),
    /// A delivery status notification saying these Message-IDs were delivered (every
    /// recipient's Action is delivered, relayed or expanded — RFC 3464).
    Delivered(Vec<String>),
    /// A delivery status notification saying delivery is delayed (an Action `delayed`, none
    /// `failed` — RFC 3464 §2.3.3): the mail system keeps trying, so this is no failure yet.
    Delayed(Bounce),
}

impl MailKind {
    /// The prefix put before the text in the room, so operators see at once that it is not a
    /// customer writing (the contract has no notice flag yet).
    pub fn prefix(&self) -> Option<&'static str> {
        match self {
            MailKind::Personal => None,
            MailKind::AutoReply => Some("[auto-reply]"),
            MailKind::Bounce(_) => Some("[bounce]"),
            MailKind::List => Some("[list mail]"),
            MailKind::ReadReceipt(_) => Some("[read receipt]"),
            MailKind::Delivered(_) => Some("[delivery report]"),
            MailKind::Delayed(_) => Some("[delivery delayed]"),
        }
    }
}

/// What a bounce says about the mail that failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bounce {
    /// Message-IDs (without `<>`) of the returned mail, from its headers in the report.
    pub original_message_ids: Vec<String>,
    /// Recipients that failed.
    pub recipients: Vec<String>,
    /// Readable reason: the diagnostic code or status.
    pub reason: String,
}

/// One file carried by the mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailFile {
    pub name: String,
    pub mime: String,
    pub data: Vec<u8>,
    /// `Content-ID` without `<>`, for inline images referenced as `cid:`.
    pub content_id: Option<String>,
}

/// One inbound email, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedMail {
    /// Message-ID without `<>`; synthesised from a hash of the bytes when the mail has none.
    pub message_id: String,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Lower-cased sender address (`From`, else `Sender`, else `Return-Path`).
    pub from_address: Option<String>,
    pub from_name: Option<String>,
    /// Lower-cased addresses of To, Cc, Delivered-To and X-Original-To.
    pub recipients: Vec<String>,
    /// The people of To and Cc (lower-cased address, display name), in header order, each
    /// once: who else the sender wrote to (the envelope's Delivered-To is not among them).
    pub addressed: Vec<(String, Option<String>)>,
    pub subject: String,
    /// Date header, ms since the epoch (None when missing or absurd).
    pub date_ms: Option<i64>,
    /// The whole decoded text (from text/plain, else from the HTML).
    pub full_text: String,
    /// What is new: `full_text` without quoted history and signature.
    pub new_text: String,
    /// True when something was folded away.
    pub folded: bool,
    /// Sanitised HTML of the new part (HTML mail) or None (plain mail).
    pub html: Option<String>,
    pub files: Vec<MailFile>,
    pub kind: MailKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is too large ({0} bytes)")]
    TooLarge(usize),
    #[error("the message has no headers and no body that could be read")]
    Unreadable,
}

/// Strip `<>` and whitespace from a message id; empty → None.
pub fn clean_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if id.is_empty() || id.len() > 998 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        None
    } else {
        Some(id.to_string())
    }
}

pub(crate) fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    let mut out = Vec::new();
    match value {
        HeaderValue::Text(t) => out.extend(t.split_whitespace().filter_map(clean_id)),
        HeaderValue::TextList(list) => {
            for t in list {
                out.extend(t.split_whitespace().filter_map(clean_id));
            }
        }
        _ => {}
    }
    out.dedup();
    out
}

/// A synthetic id for a mail without Message-ID: stable for the same bytes.
pub fn synthetic_id(raw: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(raw);
    format!(
        "{}@no-message-id.switchboard.invalid",
        &hex::encode(digest)[..32]
    )
}

pub(crate) fn header_text<'a>(
    message: &'a mail_parser::Message<'_>,
    name: &str,
) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .and_then(|h| h.value().as_text())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Parse one raw mail.
pub fn parse(raw: &[u8]) -> Result<ParsedMail, ParseError> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    if raw.len() > MAX_MAIL_BYTES {
        return Err(ParseError::TooLarge(raw.len()));
    }
    // A header block that runs into its body is closed first (see `repair`).
    let mended = repair::separate_headers(raw);
    let input = mended.as_deref().unwrap_or(raw);
    // mail-parser has internal assertions that malformed input can trip (found by the
    // email_parse fuzz target: "Invalid part ID, could not find multipart"); a mail that makes
    // the parser panic is unreadable mail, kept raw and shown, never a dead reader task.
    let message = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        MessageParser::default().parse(input)
    }))
    .ok()
    .flatten()
    .ok_or(ParseError::Unreadable)?;
    // mail-parser accepts almost anything; a "mail" without a single header it recognises and
    // without From is not a mail.
    if message.headers().is_empty() {
        return Err(ParseError::Unreadable);
    }
    let has_structure = message.from().is_some()
        || message.message_id().is_some()
        || message.subject().is_some()
        || message.date().is_some();
    if !has_structure {
        return Err(ParseError::Unreadable);
    }

    let message_id = message
        .message_id()
        .and_then(clean_id)
        .unwrap_or_else(|| synthetic_id(raw));
    let in_reply_to = ids(message.in_reply_to());
    let references = ids(message.references());

    let sender = message.from().or(message.sender()).and_then(|a| a.first());
    // `From: Big Bug bb@bug.com` (no angle brackets) or two bare addresses: the first word
    // that is an address.
    let mut from_address = sender
        .and_then(|a| a.address())
        .map(|a| a.trim().to_lowercase())
        .map(|a| match a.split_whitespace().find(|w| w.contains('@')) {
            Some(word) if a.contains(char::is_whitespace) => {
                word.trim_matches(['<', '>', '"', ',']).to_string()
            }
            _ => a,
        })
        .filter(|a| !a.is_empty());
    if from_address.is_none() {
        from_address = message
            .return_address()
            .map(|a| a.trim().trim_matches(['<', '>']).to_lowercase())
            .filter(|a| !a.is_empty());
    }
    let from_name = sender
        .and_then(|a| a.name())
        .map(|n| n.trim().trim_matches('"').trim().to_string())
        .filter(|n| !n.is_empty() && Some(n.to_lowercase()) != from_address);

    let mut addressed: Vec<(String, Option<String>)> = Vec::new();
    for a in message.to().into_iter().chain(message.cc()) {
        for a in a.iter() {
            let Some(address) = a.address().map(|a| a.trim().to_lowercase()) else {
                continue;
            };
            if address.contains('@') && !addressed.iter().any(|(x, _)| *x == address) {
                let name = a
                    .name()
                    .map(|n| n.trim().trim_matches('"').trim().to_string())
                    .filter(|n| !n.is_empty() && n.to_lowercase() != address);
                addressed.push((address, name));
            }
        }
    }
    let mut recipients: Vec<String> = Vec::new();
    for a in message.to().into_iter().chain(message.cc()) {
        recipients.extend(
            a.iter()
                .filter_map(|a| a.address())
                .map(|a| a.trim().to_lowercase()),
        );
    }
    for name in ["Delivered-To", "X-Original-To"] {
        for v in message.header_values(name) {
            if let Some(t) = v.as_text() {
                recipients.push(t.trim().trim_matches(['<', '>']).to_lowercase());
            }
        }
    }
    recipients.retain(|r| r.contains('@'));
    recipients.dedup();

    // A mail with two Subject fields shows the first, as mail clients do (mail-parser's
    // `subject()` is the last).
    let subject = message
        .header_values("Subject")
        .find_map(|v| v.as_text())
        .or(message.subject())
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    // Dates in the far future or before email existed are spam or broken clocks.
    let date_ms = message
        .date()
        .map(|d| d.to_timestamp())
        .filter(|s| (0..4_102_444_800).contains(s))
        .map(|s| s * 1000);

    // Bodies: every displayable part in order, in both forms (see `body`).
    let bodies = body::bodies(&message);
    let full_text = normalise_newlines(&bodies.text);

    let kind = kind::classify(&message);

    // Files: attachments and inline images (not the text/HTML bodies themselves).
    let mut files = Vec::new();
    if !matches!(kind, MailKind::Bounce(_)) {
        // What mail-parser calls attachments, and text parts shown inline that the sender
        // named (mail clients list those as files too).
        let mut ids: Vec<u32> = message
            .attachments
            .iter()
            .copied()
            .filter(|id| !bodies.text_only.contains(id))
            .chain(
                message
                    .text_body
                    .iter()
                    .chain(&message.html_body)
                    .copied()
                    .filter(|id| {
                        message.parts.get(*id as usize).is_some_and(|p| {
                            matches!(p.body, PartType::Text(_) | PartType::Html(_))
                                && p.attachment_name().is_some()
                        })
                    }),
            )
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in &ids {
            let Some(part) = message.parts.get(*id as usize) else {
                continue;
            };
            if let Some(file) = file_of(part, files.len()) {
                files.push(file);
            }
        }
    }

    let folding = fold::fold(&full_text);
    let mut new_text = folding.new_text.clone();
    let mut full_text = full_text;
    let folded = folding.folded.is_some();
    let mut html = bodies.html;
    // External bodies and forwarded mail are added after folding, so that their quoting is
    // shown rather than folded away; a bounce's returned mail is not forwarded mail.
    let mut extra_text: Vec<String> = bodies.external.clone();
    let mut extra_html: Vec<String> = bodies
        .external
        .iter()
        .map(|e| format!("<p><i>{}</i></p>", html::escape(e)))
        .collect();
    if !matches!(kind, MailKind::Bounce(_)) {
        for q in &bodies.forwarded {
            extra_text.push(q.text.clone());
            extra_html.push(q.html.clone());
        }
    }
    if !extra_text.is_empty() {
        for t in [&mut new_text, &mut full_text] {
            let joined = extra_text.join("\n\n");
            *t = if t.is_empty() {
                joined
            } else {
                format!("{t}\n\n{joined}")
            };
        }
        if let Some(h) = html.as_mut() {
            h.push_str(&extra_html.concat());
        }
    }
    distinct_names(&mut files);

    Ok(ParsedMail {
        message_id,
        in_reply_to,
        references,
        from_address,
        from_name,
        recipients,
        addressed,
        subject,
        date_ms,
        full_text,
        new_text,
        folded,
        html,
        files,
        kind,
    })
}

/// Two files with the same name get distinct ones: `a.txt`, `a (2).txt`, … (compared without
/// case, as the file systems operators save them to do), still within the kit's name limits.
fn distinct_names(files: &mut [MailFile]) {
    let mut taken: Vec<String> = Vec::new();
    for file in files.iter_mut() {
        if taken.contains(&file.name.to_lowercase()) {
            let (stem, ext) = match file.name.rsplit_once('.') {
                Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
                _ => (file.name.clone(), String::new()),
            };
            let mut n = 2;
            let mut candidate = numbered(&stem, n, &ext);
            while taken.contains(&candidate.to_lowercase()) {
                n += 1;
                candidate = numbered(&stem, n, &ext);
            }
            file.name = candidate;
        }
        taken.push(file.name.to_lowercase());
    }
}

/// `stem (n).ext`, the stem shortened to keep the whole within the kit's limits.
fn numbered(stem: &str, n: usize, ext: &str) -> String {
    use switchboard_kit::file_name::{MAX_BYTES, MAX_CHARS};
    let suffix = format!(" ({n}){ext}");
    let mut out = String::new();
    for (chars, c) in stem.chars().enumerate() {
        if chars + 1 + suffix.chars().count() > MAX_CHARS
            || out.len() + c.len_utf8() + suffix.len() > MAX_BYTES
        {
            break;
        }
        out.push(c);
    }
    out + &suffix
}

fn normalise_newlines(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .trim_matches('\n')
        .to_string()
}

fn file_of(part: &mail_parser::MessagePart<'_>, index: usize) -> Option<MailFile> {
    let (data, default_mime): (Vec<u8>, &str) = match &part.body {
        PartType::Binary(b) | PartType::InlineBinary(b) => (b.to_vec(), "application/octet-stream"),
        PartType::Text(t) => (t.as_bytes().to_vec(), "text/plain"),
        PartType::Html(h) => (h.as_bytes().to_vec(), "text/html"),
        PartType::Message(m) => (m.raw_message().to_vec(), "message/rfc822"),
        PartType::Multipart(_) => return None,
    };
    let mime = part
        .content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .map(|m| m.to_ascii_lowercase())
        .unwrap_or_else(|| default_mime.to_string());
    let content_id = part.content_id().and_then(clean_id);
    let name = part
        .attachment_name()
        .map(str::to_string)
        .or_else(|| match &part.body {
            PartType::Message(m) => m.subject().map(|s| format!("{s}.eml")),
            _ => None,
        })
        .unwrap_or_else(|| with_extension(&format!("attachment-{}", index + 1), &mime));
    Some(MailFile {
        name: safe_file_name(&name, "attachment"),
        mime,
        data,
        content_id,
    })
}
