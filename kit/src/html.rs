//! The one HTML allow-list: what HTML from outside (a customer's mail, an agent's message on
//! its way to a visitor's browser) may keep. A channel picks which tags it shows
//! ([`BASIC_TAGS`], or those and [`DOCUMENT_TAGS`] for mail); everything else is one rule:
//!
//! * links only to `http`, `https` and `mailto`, never relative (there is no page they could
//!   be relative to), with `rel="noopener noreferrer"`; `href` is the only attribute kept
//!   anywhere (no `style`, no `on*` handlers, no `class`, `lang` or `title`);
//! * `script`, `style`, `template`, `noscript`, `iframe`, `object`, `head` and `title` are
//!   removed with their content; other tags not allowed are unwrapped (their text stays);
//! * comments are removed; no images ever (remote images are tracking pixels more often than
//!   not; files reach the room as attachments).

use std::collections::{HashMap, HashSet};

/// Text formatting, lists, quotes, code and links: what every channel's HTML may keep.
pub const BASIC_TAGS: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "s",
    "code",
    "pre",
    "br",
    "p",
    "ul",
    "ol",
    "li",
    "blockquote",
    "a",
];

/// What a document (a mail) adds: headings, sections, tables, rules and deletions.
pub const DOCUMENT_TAGS: &[&str] = &[
    "del", "h1", "h2", "h3", "h4", "h5", "h6", "div", "span", "table", "thead", "tbody", "tr",
    "td", "th", "hr",
];

/// Elements removed with everything inside them.
pub const REMOVED_WITH_CONTENT: &[&str] = &[
    "script", "style", "template", "noscript", "iframe", "object", "head", "title",
];

/// The allow-list cleaner for `tags` (see the module's rules). A channel may add to it (the
/// web chat opens links in a new tab), never loosen it.
pub fn allow_list(tags: impl IntoIterator<Item = &'static str>) -> ammonia::Builder<'static> {
    let mut builder = ammonia::Builder::empty();
    builder
        .add_tags(tags)
        .tag_attributes(HashMap::from([("a", HashSet::from(["href"]))]))
        .generic_attributes(HashSet::new())
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer"))
        .clean_content_tags(REMOVED_WITH_CONTENT.iter().copied().collect())
        .strip_comments(true);
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_tags_and_safe_links_stay() {
        let clean = |html: &str| {
            allow_list(BASIC_TAGS.iter().copied())
                .clean(html)
                .to_string()
        };
        assert_eq!(
            clean("<p onclick=\"x()\" class=\"c\" title=\"t\">Hi <a href=\"https://a.test/\" target=\"_top\">a</a></p>"),
            "<p>Hi <a href=\"https://a.test/\" rel=\"noopener noreferrer\">a</a></p>"
        );
        assert_eq!(
            clean("<a href=\"/relative\">r</a>"),
            "<a rel=\"noopener noreferrer\">r</a>"
        );
        assert_eq!(
            clean("<a href=\"javascript:x()\">j</a>"),
            "<a rel=\"noopener noreferrer\">j</a>"
        );
        assert_eq!(
            clean("<title>T</title><iframe>f</iframe><script>s</script><!-- c --><img src=\"x\"><h1>kept text</h1>"),
            "kept text"
        );
        let document = allow_list(BASIC_TAGS.iter().chain(DOCUMENT_TAGS).copied());
        assert_eq!(
            document
                .clean("<table><tr><td colspan=\"2\" lang=\"en\">x</td></tr></table>")
                .to_string(),
            "<table><tbody><tr><td>x</td></tr></tbody></table>"
        );
    }
}
