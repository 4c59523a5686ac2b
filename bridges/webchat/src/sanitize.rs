//! Pure checks and clean-ups of everything that comes from outside: client ids, visitor names and
//! e-mail addresses, uploaded file names and mime types, and agent HTML.
//!
//! Nothing here touches the network or the store, so all of it is unit-tested. The rule for HTML
//! is "sanitise again at the edge": the core already sanitised agent HTML for Matrix, but what
//! reaches a visitor's browser passes through [`agent_html`], a strict allowlist of our own, so a
//! looser core or a bug upstream cannot put script into a customer's page.

use std::sync::LazyLock;

use switchboard_kit::html::{allow_list, BASIC_TAGS};
use switchboard_kit::is_invisible;

/// Longest visitor display name, in characters.
pub const MAX_NAME_CHARS: usize = 80;
/// Longest e-mail address (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// A client id is 1–64 characters of `[A-Za-z0-9_-]`: safe in remote ids, keys and URLs.
pub fn is_valid_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A visitor's message text as we store it: line endings normalised to `\n`, control characters
/// other than newline and tab removed (a NUL would be refused by PostgreSQL and mean nothing to
/// an operator anyway). Everything else, emoji and right-to-left text included, is kept.
pub fn visitor_text(raw: &str) -> String {
    raw.replace("\r\n", "\n")
        .chars()
        .map(|c| if c == '\r' { '\n' } else { c })
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

/// Make an uploaded file's name safe to store and show: the kit's one rule
/// ([`switchboard_kit::safe_file_name`]: last path component, no control, invisible or bidi
/// characters, no hidden or reserved names, at most 200 characters and 255 bytes with the
/// extension kept), `file` when nothing is left.
pub fn file_name(raw: &str) -> String {
    switchboard_kit::safe_file_name(raw, "file")
}

/// Is this a well-formed `type/subtype` (lowercase, no parameters)?
fn is_mime_essence(mime: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    matches!(mime.split_once('/'), Some((t, s)) if token(t) && token(s))
}

/// The mime type of an upload: the part's declared content type when it is well-formed and says
/// more than `application/octet-stream`, otherwise a guess from the file name.
pub fn mime_type(declared: Option<&str>, name: &str) -> String {
    if let Some(declared) = declared {
        let essence = declared
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if is_mime_essence(&essence) && essence != "application/octet-stream" {
            return essence;
        }
    }
    switchboard_kit::mime::mime_for_name_or_binary(name).to_owned()
}

/// Image types a browser may show inline from our origin. Not SVG: it can carry script.
pub fn is_inline_image(mime: &str) -> bool {
    matches!(
        mime,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/avif" | "image/bmp"
    )
}

pub use switchboard_kit::file_name::content_disposition;

/// A visitor's display name: control, invisible and bidi characters removed (the kit's
/// [`is_invisible`]), trimmed, at most [`MAX_NAME_CHARS`]. `None` when nothing is left.
pub fn display_name(raw: &str) -> Option<String> {
    let cleaned: String = raw.chars().filter(|c| !is_invisible(*c)).collect();
    let cleaned: String = cleaned.trim().chars().take(MAX_NAME_CHARS).collect();
    let cleaned = cleaned.trim_end();
    (!cleaned.is_empty()).then(|| cleaned.to_owned())
}

/// A plausible e-mail address: one `@` with text on both sides, a dot in the domain, no spaces
/// or control characters, at most [`MAX_EMAIL_CHARS`]. We do not verify it; operators see it as
/// the visitor typed it.
pub fn is_plausible_email(email: &str) -> bool {
    if email.is_empty() || email.chars().count() > MAX_EMAIL_CHARS {
        return false;
    }
    if email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
    {
        return false;
    }
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && domain.contains('.')
        }
        None => false,
    }
}

/// The kit's allow-list with the basic tags; links open in a new tab.
static AGENT_HTML: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut builder = allow_list(BASIC_TAGS.iter().copied());
    builder.set_tag_attribute_value("a", "target", "_blank");
    builder
});

/// Agent HTML as it may reach a visitor's browser: only `b strong i em u s code pre br p ul ol li
/// blockquote a`, links only to http/https/mailto with `rel="noopener noreferrer"
/// target="_blank"`, no other attributes (no `style`, no `on*` handlers), no images: the kit's
/// allow-list (`switchboard_kit::html`). Script, style, iframe, head and title elements are
/// removed with their content; other unknown tags are unwrapped.
pub fn agent_html(html: &str) -> String {
    AGENT_HTML.clean(html).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        assert!(is_valid_client_id("a"));
        assert!(is_valid_client_id("Abc_123-xyz"));
        assert!(is_valid_client_id(&"x".repeat(64)));
        assert!(!is_valid_client_id(""));
        assert!(!is_valid_client_id(&"x".repeat(65)));
        assert!(!is_valid_client_id("a.b"));
        assert!(!is_valid_client_id("a/b"));
        assert!(!is_valid_client_id("a b"));
        assert!(!is_valid_client_id("é"));
    }

    #[test]
    fn visitor_text_keeps_content_drops_controls() {
        assert_eq!(visitor_text("a\r\nb\rc\u{0}d\te 😀"), "a\nb\ncd\te 😀");
        assert_eq!(visitor_text("<b>kept as text</b>"), "<b>kept as text</b>");
    }

    #[test]
    fn file_names_lose_paths_and_controls() {
        assert_eq!(file_name("../../etc/passwd"), "passwd");
        assert_eq!(file_name("C:\\Users\\me\\report.pdf"), "report.pdf");
        assert_eq!(file_name("a\u{0}b\nc\u{202E}fdp.exe"), "abcfdp.exe");
        assert_eq!(file_name(".htaccess"), "htaccess");
        assert_eq!(file_name(". .bashrc"), "bashrc");
        assert_eq!(file_name("x/ .\u{0} .profile"), "profile");
        assert_eq!(file_name("  photo.jpg  "), "photo.jpg");
        assert_eq!(file_name(""), "file");
        assert_eq!(file_name("dir/"), "file");
        assert_eq!(file_name("..."), "file");
        assert_eq!(file_name("Отчёт за май.docx"), "Отчёт за май.docx");
    }

    #[test]
    fn long_file_names_keep_their_extension() {
        // The kit's limits: 200 characters (this copy cut at 120) and 255 bytes.
        let name = file_name(&format!("{}.pdf", "a".repeat(500)));
        assert_eq!(name.chars().count(), switchboard_kit::file_name::MAX_CHARS);
        assert!(name.ends_with(".pdf"));
        let name = file_name(&"ж".repeat(500));
        assert_eq!(name.len(), 254, "127 two-byte letters fit in 255 bytes");
        // Stricter than this copy was: reserved Windows characters, trailing dots, devices.
        assert_eq!(file_name("a:b?.pdf. "), "a_b_.pdf");
        assert_eq!(file_name("PRN.txt"), "_PRN.txt");
    }

    #[test]
    fn mime_types() {
        assert_eq!(
            mime_type(Some("image/PNG; charset=x"), "a.bin"),
            "image/png"
        );
        assert_eq!(
            mime_type(Some("application/octet-stream"), "a.pdf"),
            "application/pdf"
        );
        assert_eq!(mime_type(None, "photo.jpeg"), "image/jpeg");
        assert_eq!(
            mime_type(Some("not a mime"), "x"),
            "application/octet-stream"
        );
        assert_eq!(mime_type(Some("text/html\r\nX: y"), "x.txt"), "text/plain");
        // What mime_guess knew before the kit's table took over.
        for (name, mime) in [
            ("shot.avif", "image/avif"),
            ("clip.mkv", "video/x-matroska"),
            ("logs.7z", "application/x-7z-compressed"),
            ("book.EPUB", "application/epub+zip"),
        ] {
            assert_eq!(mime_type(None, name), mime, "{name}");
        }
        assert!(is_inline_image("image/png"));
        assert!(!is_inline_image("image/svg+xml"));
    }

    #[test]
    fn names_and_emails() {
        assert_eq!(display_name("  Ann\u{7} Lee "), Some("Ann Lee".to_owned()));
        assert_eq!(display_name(" \n "), None);
        // The kit's wider set of invisible characters (word joiner, soft hyphen, tags).
        assert_eq!(
            display_name("A\u{2060}n\u{AD}n\u{E0041}"),
            Some("Ann".to_owned())
        );
        assert_eq!(
            display_name(&"n".repeat(200)).map(|n| n.len()),
            Some(MAX_NAME_CHARS)
        );
        assert!(is_plausible_email("ann@example.com"));
        assert!(!is_plausible_email("ann@example"));
        assert!(!is_plausible_email("ann example.com"));
        assert!(!is_plausible_email("@example.com"));
        assert!(!is_plausible_email("a b@example.com"));
    }

    #[test]
    fn html_allowlist_keeps_formatting() {
        assert_eq!(
            agent_html("<b>bold</b> <em>x</em> <code>c</code>"),
            "<b>bold</b> <em>x</em> <code>c</code>"
        );
        assert_eq!(
            agent_html("<a href=\"https://example.com/x\">link</a>"),
            "<a href=\"https://example.com/x\" target=\"_blank\" rel=\"noopener noreferrer\">link</a>"
        );
        assert_eq!(agent_html("<ul><li>one</li></ul>"), "<ul><li>one</li></ul>");
    }

    #[test]
    fn html_allowlist_strips_script_and_handlers() {
        let out = agent_html("hi<script>alert(1)</script><style>body{}</style>");
        assert_eq!(out, "hi");
        let out = agent_html("<img src=x onerror=alert(1)>pic");
        assert_eq!(out, "pic");
        let out = agent_html("<p onclick=\"alert(1)\" style=\"color:red\" class=\"x\">p</p>");
        assert_eq!(out, "<p>p</p>");
        let out = agent_html("<a href=\"javascript:alert(1)\" onmouseover=\"x()\">bad</a>");
        assert!(
            !out.contains("javascript") && !out.contains("onmouseover"),
            "{out}"
        );
        assert!(out.contains("bad"));
        let out =
            agent_html("<a href=\"JaVaScRiPt:alert(1)\">bad</a><a href=\"data:text/html,x\">d</a>");
        assert!(
            !out.to_ascii_lowercase().contains("javascript") && !out.contains("data:"),
            "{out}"
        );
        let out = agent_html("<a href=\"/relative\">r</a><a href=\"mailto:a@b.c\">m</a>");
        assert!(
            !out.contains("/relative") && out.contains("mailto:a@b.c"),
            "{out}"
        );
        let out =
            agent_html("<svg><script>x</script></svg><iframe src=\"https://e.com\">f</iframe>");
        assert!(!out.contains('<'), "{out}");
    }

    /// The kit's one allow-list: what mail loses, a browser loses too — a document's head and
    /// title go with their content (this copy used to unwrap them, leaving their text).
    #[test]
    fn head_and_title_go_with_their_content() {
        let out = agent_html("<head><title>Invoice 42</title></head><p>hi</p>");
        assert_eq!(out, "<p>hi</p>");
    }
}
