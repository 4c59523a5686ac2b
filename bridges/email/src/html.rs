//! HTML of inbound mail, made safe and short for the room; and HTML of outbound mail.
//!
//! Inbound: the quoted history is cut at the first marker the big clients put before it (Gmail's
//! `gmail_quote`, Thunderbird's `moz-cite-prefix` / `<blockquote type="cite">`, Outlook's
//! `appendonsend` / `divRplyFwdMsg`, Apple Mail's `<blockquote type="cite">`), then the kit's
//! HTML allow-list (`switchboard_kit::html`) keeps structure and links only: no scripts, styles,
//! forms, event handlers, relative links, and no images at all — remote images are tracking
//! pixels more often than not, and inline `cid:` images reach the room as attachments instead.

use std::sync::LazyLock;

use switchboard_kit::html::{allow_list, BASIC_TAGS, DOCUMENT_TAGS};

use crate::parse::MailFile;

/// Where the quoted history starts in HTML written by common clients.
const QUOTE_MARKERS: &[&str] = &[
    "<div class=\"gmail_quote",
    "<div class=\"moz-cite-prefix",
    "<blockquote type=\"cite\"",
    "<div id=\"appendonsend\"",
    "<div id=\"divRplyFwdMsg\"",
    "<div class=\"yahoo_quoted",
    "<hr id=\"stopSpelling\"",
];

/// Cut the HTML before its quoted history, if that leaves some text.
pub fn cut_quote(html: &str) -> &str {
    let lower = html.to_ascii_lowercase();
    let cut = QUOTE_MARKERS
        .iter()
        .filter_map(|m| lower.find(&m.to_ascii_lowercase()))
        .min();
    match cut {
        Some(at) if html.is_char_boundary(at) => {
            let head = &html[..at];
            let text = mail_parser::decoders::html::html_to_text(head);
            if text.trim().is_empty() {
                html
            } else {
                head
            }
        }
        _ => html,
    }
}

/// What mail HTML may keep: the kit's allow-list with a document's tags.
static MAIL_HTML: LazyLock<ammonia::Builder<'static>> =
    LazyLock::new(|| allow_list(BASIC_TAGS.iter().chain(DOCUMENT_TAGS).copied()));

/// Safe HTML for the room from a mail's HTML body.
pub fn sanitize_mail_html(html: &str, _files: &[MailFile]) -> String {
    MAIL_HTML
        .clean(cut_quote(html))
        .to_string()
        .trim()
        .to_string()
}

/// Text made safe inside HTML: the kit's escaping.
pub use switchboard_kit::escape_html as escape;

/// Plain text as HTML: escaped, line breaks kept.
pub fn text_to_html(text: &str) -> String {
    escape(text).replace('\n', "<br>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_styles_images_go_links_stay() {
        let out = sanitize_mail_html(
            "<html><head><title>T</title><style>p{color:red}</style></head><body><p onclick=\"x()\">Hi <a href=\"https://example.test/a\">link</a></p><script>alert(1)</script><img src=\"https://tracker.test/p.gif\" width=1 height=1><img src=\"cid:logo\"></body></html>",
            &[],
        );
        assert!(out.contains("<a href=\"https://example.test/a\""), "{out}");
        assert!(
            !out.contains("script")
                && !out.contains("alert")
                && !out.contains("color")
                && !out.contains("<img"),
            "{out}"
        );
        assert!(!out.contains("onclick") && !out.contains(">T<"), "{out}");
    }

    /// The kit's one allow-list, as strict as the web chat's: no relative links (a mail has no
    /// page they could point into), no attributes but `href`, and an iframe's or object's
    /// fallback text goes with it (this copy used to keep all three).
    #[test]
    fn relative_links_attributes_and_frames_go() {
        let out = sanitize_mail_html(
            "<p lang=\"en\" title=\"t\">Hi <a href=\"/unsubscribe\">here</a></p><table><tr><td colspan=\"2\">x</td></tr></table><iframe>frame text</iframe><object>object text</object>",
            &[],
        );
        assert_eq!(
            out,
            "<p>Hi <a rel=\"noopener noreferrer\">here</a></p><table><tbody><tr><td>x</td></tr></tbody></table>"
        );
    }

    #[test]
    fn gmail_quote_is_cut() {
        let out = sanitize_mail_html(
            "<div>New answer</div><div class=\"gmail_quote\"><blockquote>old</blockquote></div>",
            &[],
        );
        assert!(out.contains("New answer") && !out.contains("old"), "{out}");
    }
}
