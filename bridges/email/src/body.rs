//! What a mail client shows as the message itself: every text part, in order.
//!
//! mail-parser lists the parts it would display (`text_body`, `html_body`: one choice per
//! `multipart/alternative`, every inline part of a `multipart/mixed`) and calls the rest
//! attachments. This module turns those lists into the room's two bodies:
//!
//! * the **plain** body: every displayable part in order, HTML parts as text;
//! * the **formatted** body: every displayable part in order, text parts as escaped HTML —
//!   only when at least one part is HTML (a plain mail is shown from its folded text).
//!
//! and takes back from the attachments what a mail client shows as text although mail-parser
//! could not classify it (a file is only ever what the sender attached):
//!
//! * a `multipart/*` without a `boundary` parameter, or whose boundary never occurs (RFC 2046
//!   makes the boundary mandatory; RFC 2045 section 5.2 says a syntactically invalid
//!   Content-Type is read as `text/plain`, which is what Python's `email` package and
//!   Thunderbird show);
//! * `Content-Type: text` without a subtype (the same rule);
//! * a `text/plain` part mail-parser set aside after an encoding problem, or because it carries
//!   a `name` without `Content-Disposition: attachment` — mail clients show such parts inline
//!   (and list the named ones as files too, as we do).
//!
//! Forwarded mail (`message/rfc822`) is shown quoted with its sender, date and subject; a
//! `message/external-body` is described in words and never becomes a file.

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use crate::charset;
use crate::html;

/// The two bodies, and the attachment parts that were shown as text instead.
#[derive(Debug, Default)]
pub struct Bodies {
    /// Every displayable part as text, in order.
    pub text: String,
    /// Every displayable part as sanitised HTML, in order; None when no part is HTML.
    pub html: Option<String>,
    /// Part ids taken back from the attachments and shown as text only (never a file).
    pub text_only: Vec<u32>,
    /// Forwarded mails (`message/rfc822`), each quoted with its sender, date, subject and text.
    pub forwarded: Vec<Quoted>,
    /// `message/external-body` parts described in words (they never become files).
    pub external: Vec<String>,
}

/// A forwarded mail as shown in the room: plain text (each line quoted with `> `) and HTML (a
/// blockquote).
#[derive(Debug, Default)]
pub struct Quoted {
    pub text: String,
    pub html: String,
}

/// How deep forwarded mail inside forwarded mail is quoted.
const MAX_FORWARD_DEPTH: usize = 3;

/// One piece of the message as a reader sees it.
enum Piece {
    Text(String),
    Html(String),
}

/// The bodies of `message`.
pub fn bodies(message: &Message<'_>) -> Bodies {
    let mut rescued_named: Vec<u32> = Vec::new();
    let mut text_only: Vec<u32> = Vec::new();
    for &id in &message.attachments {
        let Some(part) = message.parts.get(id as usize) else {
            continue;
        };
        match shown_as_text(part) {
            Shown::No => {}
            Shown::TextOnly => text_only.push(id),
            Shown::TextAndFile => rescued_named.push(id),
        }
    }
    let extra: Vec<u32> = text_only.iter().chain(&rescued_named).copied().collect();

    let ordered = |list: &[u32]| -> Vec<u32> {
        let mut ids: Vec<u32> = list.iter().chain(&extra).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };

    let text_pieces: Vec<Piece> = ordered(&message.text_body)
        .into_iter()
        .filter_map(|id| piece(message, id, &text_only))
        .collect();
    let html_pieces: Vec<Piece> = ordered(&message.html_body)
        .into_iter()
        .filter_map(|id| piece(message, id, &text_only))
        .collect();

    let text = text_pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.trim_matches(['\r', '\n']).to_string(),
            Piece::Html(h) => mail_parser::decoders::html::html_to_text(h)
                .trim_matches(['\r', '\n'])
                .to_string(),
        })
        .filter(|t| !t.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    let html = html_pieces
        .iter()
        .any(|p| matches!(p, Piece::Html(_)))
        .then(|| {
            html_pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => html::text_to_html(t.trim_matches(['\r', '\n'])),
                    Piece::Html(h) => html::sanitize_mail_html(h, &[]),
                })
                .filter(|h| !h.trim().is_empty())
                .collect::<Vec<_>>()
                .join("<hr>")
        });
    let mut forwarded = Vec::new();
    let mut external = Vec::new();
    for &id in &message.attachments {
        let Some(part) = message.parts.get(id as usize) else {
            continue;
        };
        if let PartType::Message(inner) = &part.body {
            forwarded.push(quote(inner, 0));
        } else if part.is_content_type("message", "external-body") {
            external.push(describe_external(part));
            text_only.push(id);
        }
    }
    Bodies {
        text,
        html,
        text_only,
        forwarded,
        external,
    }
}

/// A forwarded mail quoted: who sent it, when, about what, then its text.
fn quote(inner: &Message<'_>, depth: usize) -> Quoted {
    let from = inner
        .from()
        .and_then(|a| a.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(n), Some(addr)) => format!("{} <{addr}>", n.trim()),
            (None, Some(addr)) => addr.to_string(),
            (Some(n), None) => n.trim().to_string(),
            (None, None) => String::new(),
        })
        .filter(|f| !f.is_empty());
    let date = inner.date().map(|d| d.to_rfc822());
    let subject = inner
        .subject()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
    let mut head: Vec<(&str, String)> = Vec::new();
    head.extend(from.map(|f| ("From", f)));
    head.extend(date.map(|d| ("Date", d)));
    head.extend(subject.map(|s| ("Subject", s)));
    let inner_bodies = bodies(inner);
    let mut lines = vec!["Forwarded message:".to_string()];
    lines.extend(head.iter().map(|(k, v)| format!("{k}: {v}")));
    lines.push(String::new());
    lines.extend(inner_bodies.text.lines().map(str::to_string));
    let mut html = String::from("<blockquote><p><b>Forwarded message</b><br>");
    for (k, v) in &head {
        html.push_str(&format!("<b>{k}:</b> {}<br>", html::escape(v)));
    }
    html.push_str("</p>");
    html.push_str(
        &inner_bodies
            .html
            .unwrap_or_else(|| html::text_to_html(&inner_bodies.text)),
    );
    for nested in inner_bodies.forwarded {
        if depth + 1 < MAX_FORWARD_DEPTH {
            lines.push(String::new());
            lines.extend(nested.text.lines().map(str::to_string));
            html.push_str(&nested.html);
        }
    }
    html.push_str("</blockquote>");
    let text = lines
        .iter()
        .map(|l| {
            if l.is_empty() {
                ">".to_string()
            } else {
                format!("> {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    Quoted { text, html }
}

/// What a `message/external-body` points to (RFC 2046 section 5.2.3), in words.
fn describe_external(part: &MessagePart<'_>) -> String {
    let ct = part.content_type();
    let param = |name: &str| {
        ct.and_then(|c| c.attribute(name))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut where_: Vec<String> = Vec::new();
    if let Some(url) = param("url") {
        where_.push(format!("at {url}"));
    }
    if let Some(site) = param("site") {
        where_.push(format!("on {site}"));
    }
    if let Some(dir) = param("directory") {
        where_.push(format!("in {dir}"));
    }
    if let Some(server) = param("server") {
        where_.push(format!("from the mail server {server}"));
    }
    let access = param("access-type").unwrap_or_else(|| "unknown".into());
    let mut text = format!(
        "The sender referred to a file kept elsewhere instead of attaching it: {}",
        param("name")
            .map(|n| format!("\"{n}\""))
            .unwrap_or_else(|| "(no name)".into())
    );
    if !where_.is_empty() {
        text.push(' ');
        text.push_str(&where_.join(" "));
    }
    text.push_str(&format!(" (access type {access}"));
    if let Some(exp) = param("expiration") {
        text.push_str(&format!(", available until {exp}"));
    }
    text.push(')');
    text
}

enum Shown {
    No,
    TextOnly,
    TextAndFile,
}

/// Whether a part mail-parser called an attachment is text a mail client shows.
fn shown_as_text(part: &MessagePart<'_>) -> Shown {
    let attached = part
        .content_disposition()
        .is_some_and(|d| d.is_attachment());
    let (ctype, subtype) = part
        .content_type()
        .map(|ct| {
            (
                ct.ctype().to_ascii_lowercase(),
                ct.subtype().map(str::to_ascii_lowercase),
            )
        })
        .unwrap_or_else(|| ("text".into(), Some("plain".into())));
    match &part.body {
        // A multipart mail-parser could not split: its boundary is missing or never occurs.
        PartType::Text(_) | PartType::Binary(_) | PartType::InlineBinary(_)
            if ctype == "multipart" =>
        {
            Shown::TextOnly
        }
        PartType::Text(_) if ctype == "text" && !attached => match subtype.as_deref() {
            None => {
                if part.attachment_name().is_some() {
                    Shown::TextAndFile
                } else {
                    Shown::TextOnly
                }
            }
            Some("plain") => {
                if part.attachment_name().is_some() {
                    Shown::TextAndFile
                } else {
                    Shown::TextOnly
                }
            }
            _ => Shown::No,
        },
        _ => Shown::No,
    }
}

fn charset_of(part: &MessagePart<'_>) -> Option<String> {
    part.content_type()
        .and_then(|c| c.attribute("charset"))
        .map(str::to_string)
}

/// The text of a displayable part, charset repaired. Binary parts (inline images) are shown
/// as files, except a multipart that could not be split (`rescued`), which is text.
fn piece(message: &Message<'_>, id: u32, rescued: &[u32]) -> Option<Piece> {
    let part = message.parts.get(id as usize)?;
    let label = charset_of(part);
    match &part.body {
        PartType::Text(t) => Some(Piece::Text(
            charset::repair(t, label.as_deref()).unwrap_or_else(|| t.to_string()),
        )),
        PartType::Html(h) => Some(Piece::Html(
            charset::repair(h, label.as_deref()).unwrap_or_else(|| h.to_string()),
        )),
        PartType::Binary(b) | PartType::InlineBinary(b) if rescued.contains(&id) => {
            Some(Piece::Text(decode(b, label)))
        }
        PartType::Binary(_) | PartType::InlineBinary(_) => None,
        PartType::Message(_) | PartType::Multipart(_) => None,
    }
}

/// Bytes in the part's declared charset (UTF-8 when none or unknown).
fn decode(bytes: &[u8], label: Option<String>) -> String {
    let encoding = label
        .and_then(|l| encoding_rs::Encoding::for_label(l.trim_matches('"').as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    encoding.decode_without_bom_handling(bytes).0.into_owned()
}
