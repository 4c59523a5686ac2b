//! Invariants the fuzz targets assert on what Switchboard's parsers let through.
//!
//! "Does not panic" is the floor; these say what the output must look like whatever the input:
//! file names that cannot name another path or hide characters, HTML with nothing but the
//! allowlisted tags and link schemes, text without control characters. Each check panics with
//! the offending value, which libFuzzer reports as a crash with a reproducer.
//!
//! These checks restate the rules **on purpose**, independently of the code under test (the
//! channel kit's `switchboard_kit::file_name`, the core's sanitiser, each channel's parser): a
//! second statement of a policy, written from the rule and not from the code, is what lets the
//! fuzzer find where the code and the rule part ways. Do not replace them by calls into the
//! crates they check.

/// Characters that must never survive in a file name or display name: controls and the
/// zero-width / bidirectional marks that can disguise one (`invoice\u{202E}fdp.exe`).
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// A file name as the channel kit keeps one (`switchboard_kit::safe_file_name`, used by the
/// core for operators' files and by every channel for customers'): non-empty, one path
/// component, no control or bidi characters, no character Windows refuses, not hidden, no
/// trailing dot or space, at most 200 characters and 255 bytes.
pub fn check_core_file_name(raw: &str, name: &str) {
    assert!(!name.is_empty(), "empty file name from {raw:?}");
    assert!(
        !name.contains(['/', '\\']),
        "path separator in {name:?} from {raw:?}"
    );
    assert!(
        !name.chars().any(is_invisible),
        "control or bidi character in {name:?} from {raw:?}"
    );
    assert!(
        !name.contains(['<', '>', ':', '"', '|', '?', '*']),
        "character Windows refuses in {name:?} from {raw:?}"
    );
    assert!(
        !name.starts_with('.'),
        "hidden-file name {name:?} from {raw:?}"
    );
    assert!(
        !name.ends_with(['.', ' ']),
        "trailing dot or space in {name:?} from {raw:?}"
    );
    assert!(
        name.chars().count() <= 200 && name.len() <= 255,
        "file name over 200 characters or 255 bytes from {raw:?}"
    );
}

/// Visitor text as stored: no control characters but newline and tab, no `\r`.
pub fn check_visitor_text(text: &str, max_chars: usize) {
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "control character kept in {text:?}"
    );
    assert!(
        text.chars().count() <= max_chars,
        "text over {max_chars} characters accepted"
    );
}

/// A client id: 1–64 of `[A-Za-z0-9_-]`.
pub fn check_client_id(id: &str) {
    assert!(
        (1..=64).contains(&id.len()),
        "client id length {}: {id:?}",
        id.len()
    );
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "client id {id:?}"
    );
}

/// What an HTML allowlist permits.
pub struct HtmlPolicy<'a> {
    pub tags: &'a [&'a str],
    /// (tag, attribute) pairs; tag `*` is any tag.
    pub attributes: &'a [(&'a str, &'a str)],
    /// Are scheme-less (relative) links allowed?
    pub relative_links: bool,
    /// Link schemes allowed; empty = any (for HTML that is sanitised again downstream).
    pub link_schemes: &'a [&'a str],
}

const WEB_SCHEMES: &[&str] = &["http", "https", "mailto"];

/// Attributes `ammonia::Builder::empty()` still allows (it empties only the tag list): harmless
/// text (`title`, `lang`, `datetime`, table layout), `hreflang`, `<ol start>`, and `cite` — a
/// URL browsers never follow. The core's and the email channel's sanitisers inherit them.
const AMMONIA_DEFAULT_ATTRIBUTES: &[(&str, &str)] = &[
    ("*", "title"),
    ("*", "lang"),
    ("a", "href"),
    ("a", "hreflang"),
    ("a", "rel"),
    ("blockquote", "cite"),
    ("del", "cite"),
    ("del", "datetime"),
    ("ol", "start"),
    ("hr", "align"),
    ("hr", "size"),
    ("hr", "width"),
    ("table", "align"),
    ("table", "char"),
    ("table", "charoff"),
    ("table", "summary"),
    ("tbody", "align"),
    ("tbody", "char"),
    ("tbody", "charoff"),
    ("thead", "align"),
    ("thead", "char"),
    ("thead", "charoff"),
    ("tr", "align"),
    ("tr", "char"),
    ("tr", "charoff"),
    ("td", "align"),
    ("td", "char"),
    ("td", "charoff"),
    ("td", "colspan"),
    ("td", "headers"),
    ("td", "rowspan"),
    ("th", "align"),
    ("th", "char"),
    ("th", "charoff"),
    ("th", "colspan"),
    ("th", "headers"),
    ("th", "rowspan"),
    ("th", "scope"),
];

/// The core's attributes: ammonia's defaults plus Matrix spoilers (`<span data-mx-spoiler>`).
const CORE_ATTRIBUTES: &[(&str, &str)] = &[
    ("*", "title"),
    ("*", "lang"),
    ("a", "href"),
    ("a", "hreflang"),
    ("a", "rel"),
    ("blockquote", "cite"),
    ("del", "cite"),
    ("del", "datetime"),
    ("ol", "start"),
    ("hr", "align"),
    ("hr", "size"),
    ("hr", "width"),
    ("table", "align"),
    ("table", "char"),
    ("table", "charoff"),
    ("table", "summary"),
    ("tbody", "align"),
    ("tbody", "char"),
    ("tbody", "charoff"),
    ("thead", "align"),
    ("thead", "char"),
    ("thead", "charoff"),
    ("tr", "align"),
    ("tr", "char"),
    ("tr", "charoff"),
    ("td", "align"),
    ("td", "char"),
    ("td", "charoff"),
    ("td", "colspan"),
    ("td", "headers"),
    ("td", "rowspan"),
    ("th", "align"),
    ("th", "char"),
    ("th", "charoff"),
    ("th", "colspan"),
    ("th", "headers"),
    ("th", "rowspan"),
    ("th", "scope"),
    ("span", "data-mx-spoiler"),
];

/// The core's policy for Matrix HTML (`content::sanitize_html`).
pub const CORE_HTML: HtmlPolicy<'static> = HtmlPolicy {
    tags: &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "s",
        "del",
        "code",
        "pre",
        "br",
        "p",
        "ul",
        "ol",
        "li",
        "blockquote",
        "a",
        "details",
        "summary",
        "span",
    ],
    attributes: CORE_ATTRIBUTES,
    relative_links: true,
    link_schemes: WEB_SCHEMES,
};

/// The email channel's policy for mail HTML shown in the room (`html::sanitize_mail_html`).
pub const MAIL_HTML: HtmlPolicy<'static> = HtmlPolicy {
    tags: &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "s",
        "del",
        "code",
        "pre",
        "br",
        "p",
        "ul",
        "ol",
        "li",
        "blockquote",
        "a",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "div",
        "span",
        "table",
        "thead",
        "tbody",
        "tr",
        "td",
        "th",
        "hr",
    ],
    attributes: AMMONIA_DEFAULT_ATTRIBUTES,
    relative_links: true,
    link_schemes: WEB_SCHEMES,
};

/// The web chat's policy for agent HTML in the visitor's browser (`sanitize::agent_html`).
pub const AGENT_HTML: HtmlPolicy<'static> = HtmlPolicy {
    tags: &[
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
    ],
    attributes: &[("a", "href"), ("a", "rel"), ("a", "target")],
    relative_links: false,
    link_schemes: WEB_SCHEMES,
};

/// What `switchboard_telegram::format::entities_to_html` renders from a customer's entities:
/// its own tags only (the customer's text is escaped). Link targets are whatever the entity
/// says; the core sanitises them before the room sees them.
pub const TELEGRAM_ENTITIES_HTML: HtmlPolicy<'static> = HtmlPolicy {
    tags: &["b", "i", "u", "s", "code", "pre", "blockquote", "a", "br"],
    attributes: &[("a", "href")],
    relative_links: true,
    link_schemes: &[],
};

/// Undo the entity escapes html5ever's serializer writes in attribute values.
fn unescape_attr(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The scheme a browser would see in `href`, lower-cased; `None` for a relative URL.
fn url_scheme(href: &str) -> Option<String> {
    // Browsers drop leading/trailing C0 controls and spaces and every tab and newline.
    let cleaned: String = href
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let (scheme, _) = cleaned.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then(|| scheme.to_ascii_lowercase())
}

/// Sanitised HTML: every `<` opens an allowlisted tag with allowlisted attributes; links are
/// http, https or mailto (or relative where allowed); no script, style or event handler.
pub fn check_sanitized_html(input: &str, html: &str, policy: &HtmlPolicy<'_>) {
    let lower = html.to_ascii_lowercase();
    assert!(
        !lower.contains("<script"),
        "script tag in {html:?} from {input:?}"
    );
    assert!(
        !lower.contains("<!--"),
        "comment in {html:?} from {input:?}"
    );
    let bytes = html.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        i += 1;
        if bytes.get(i) == Some(&b'/') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let tag = &html[start..i];
        assert!(
            policy.tags.contains(&tag),
            "tag {tag:?} in {html:?} from {input:?}"
        );
        // Attributes: name="value" pairs up to '>'.
        loop {
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            match bytes.get(i) {
                Some(b'>') => {
                    i += 1;
                    break;
                }
                Some(b'/') if bytes.get(i + 1) == Some(&b'>') => {
                    i += 2;
                    break;
                }
                None => panic!("unterminated tag in {html:?} from {input:?}"),
                _ => {}
            }
            let name_start = i;
            while i < bytes.len() && !matches!(bytes[i], b'=' | b' ' | b'>') {
                i += 1;
            }
            let name = &html[name_start..i];
            assert!(
                policy.attributes.contains(&(tag, name))
                    || policy.attributes.contains(&("*", name)),
                "attribute {name:?} on <{tag}> in {html:?} from {input:?}"
            );
            assert!(
                bytes.get(i) == Some(&b'=') && bytes.get(i + 1) == Some(&b'"'),
                "unquoted attribute in {html:?}"
            );
            i += 2;
            let value_start = i;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
            assert!(
                i < bytes.len(),
                "unterminated attribute in {html:?} from {input:?}"
            );
            let value = unescape_attr(&html[value_start..i]);
            i += 1;
            if name == "href" {
                match url_scheme(&value) {
                    Some(scheme) => assert!(
                        policy.link_schemes.is_empty()
                            || policy.link_schemes.contains(&scheme.as_str()),
                        "link scheme {scheme:?} in {html:?} from {input:?}"
                    ),
                    None => assert!(
                        policy.relative_links,
                        "relative link {value:?} in {html:?} from {input:?}"
                    ),
                }
            }
        }
    }
}

/// A header value must be visible ASCII (or space/tab): no CR, LF or other control.
pub fn check_header_value(value: &str) {
    assert!(
        http::HeaderValue::from_str(value).is_ok(),
        "not a valid header value: {value:?}"
    );
    assert!(
        !value.contains(['\r', '\n', '\0']),
        "line break in header value {value:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_checker_catches_what_it_should() {
        check_sanitized_html("", "<b>x</b> &lt;script&gt; <a href=\"https://e.com/?a=1&amp;b=&quot;>\" rel=\"noopener noreferrer\">l</a><br>", &CORE_HTML);
        let bad = [
            "<script>x</script>",
            "<img src=\"x\">",
            "<a href=\"javascript:x\">",
            "<a href=\" JaVa\tScript:x\">",
            "<b onclick=\"x\">",
        ];
        for html in bad {
            assert!(
                std::panic::catch_unwind(|| check_sanitized_html("", html, &CORE_HTML)).is_err(),
                "{html}"
            );
        }
        assert!(std::panic::catch_unwind(|| check_sanitized_html(
            "",
            "<a href=\"/x\">",
            &AGENT_HTML
        ))
        .is_err());
    }
}
