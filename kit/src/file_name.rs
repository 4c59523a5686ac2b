//! The one sanitiser for file names that come from outside (customers' attachments, operators'
//! uploads, e-mail parts): what is shown in a room, stored, and handed to another network.
//!
//! A name is cut to its last path component; control characters and the invisible and
//! bidirectional formatting characters that can disguise a name (`invoice\u{202E}fdp.exe`
//! shows as `invoiceexe.pdf`) are removed; characters Windows refuses in names become `_`;
//! leading dots and spaces (hidden files) and trailing dots and spaces (which Windows drops,
//! turning `x.exe.` into `x.exe`) are trimmed; a reserved device name (`CON`, `NUL`, `COM1`, …)
//! gets a `_` in front; the result is at most [`MAX_CHARS`] characters and [`MAX_BYTES`]
//! bytes of UTF-8 with its extension kept; an empty result is the caller's fallback.

/// Longest name kept, in characters.
pub const MAX_CHARS: usize = 200;
/// Longest name kept, in bytes of UTF-8 (what file systems limit).
pub const MAX_BYTES: usize = 255;
/// Longest extension kept whole when a name is cut (`.docx`, `.tar.gz`'s `.gz`).
const MAX_EXTENSION_CHARS: usize = 16;

pub use crate::text::is_invisible;

/// Characters Windows refuses in a file name (besides the path separators, already gone).
fn is_reserved(c: char) -> bool {
    matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*')
}

/// Names Windows gives to devices, whatever the extension (`con.txt` is the console).
fn is_device_name(stem: &str) -> bool {
    let upper = stem.trim_end().to_ascii_uppercase();
    matches!(
        upper.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) || ((upper.starts_with("COM") || upper.starts_with("LPT"))
        && upper.len() == 4
        && upper.as_bytes()[3].is_ascii_digit()
        && upper.as_bytes()[3] != b'0')
}

/// A file name from outside made safe to show, store and send on (see the module docs);
/// `fallback` when nothing of it is left.
pub fn safe_file_name(name: &str, fallback: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| if is_reserved(c) { '_' } else { c })
        .collect();
    let trimmed = cleaned
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    if trimmed.is_empty() {
        return fallback.to_owned();
    }
    let stem = trimmed.split('.').next().unwrap_or("");
    let named = if is_device_name(stem) {
        format!("_{trimmed}")
    } else {
        trimmed.to_owned()
    };
    clip(&named)
}

/// `name` within [`MAX_CHARS`] characters and [`MAX_BYTES`] bytes, its extension kept.
fn clip(name: &str) -> String {
    if name.chars().count() <= MAX_CHARS && name.len() <= MAX_BYTES {
        return name.to_owned();
    }
    let extension = name
        .rfind('.')
        .map(|i| &name[i..])
        .filter(|e| e.chars().count() <= MAX_EXTENSION_CHARS + 1 && e.len() > 1)
        .unwrap_or("");
    let stem = &name[..name.len() - extension.len()];
    let room_chars = MAX_CHARS - extension.chars().count();
    let mut out = String::new();
    for c in stem.chars().take(room_chars) {
        if out.len() + c.len_utf8() + extension.len() > MAX_BYTES {
            break;
        }
        out.push(c);
    }
    let out = out.trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    format!("{out}{extension}")
}

/// A `Content-Disposition` header value for serving a file: an ASCII fallback name (quotes,
/// backslashes, control and non-ASCII characters become `_`) and the exact UTF-8 name in
/// RFC 5987 form (`filename*=UTF-8''…`, attr-chars kept, every other byte percent-encoded), so
/// no name can break out of the header. `inline` asks the browser to show it rather than save it.
pub fn content_disposition(name: &str, inline: bool) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile names and what is left of them.
    #[test]
    fn hostile_names_are_made_safe() {
        let long_stem = "a".repeat(300);
        let cases: Vec<(String, &str)> = vec![
            ("report.pdf".into(), "report.pdf"),
            ("invoice\u{202E}fdp.exe".into(), "invoicefdp.exe"),
            ("in\u{200B}voice\u{2066}.pdf\u{2069}".into(), "invoice.pdf"),
            ("\u{FEFF}bom.txt".into(), "bom.txt"),
            ("tag\u{E0041}\u{E0042}.txt".into(), "tag.txt"),
            ("../../etc/passwd".into(), "passwd"),
            ("C:\\Windows\\system32\\cmd.exe".into(), "cmd.exe"),
            (". .bashrc".into(), "bashrc"),
            ("...".into(), "file"),
            ("   ".into(), "file"),
            ("".into(), "file"),
            ("dir/".into(), "file"),
            ("nul\u{0000}byte\r\n.txt".into(), "nulbyte.txt"),
            ("evil.exe. . ".into(), "evil.exe"),
            ("what?<is>this*.txt".into(), "what__is_this_.txt"),
            ("a:b|c\"d.txt".into(), "a_b_c_d.txt"),
            ("CON".into(), "_CON"),
            ("con.txt".into(), "_con.txt"),
            ("Com1.log".into(), "_Com1.log"),
            ("lpt9".into(), "_lpt9"),
            ("COM0.txt".into(), "COM0.txt"),
            ("console.txt".into(), "console.txt"),
            ("счёт №5.pdf".into(), "счёт №5.pdf"),
        ];
        for (raw, want) in cases {
            assert_eq!(safe_file_name(&raw, "file"), want, "{raw:?}");
        }
        // Cut in characters, the extension kept.
        let cut = safe_file_name(&format!("{long_stem}.docx"), "file");
        assert_eq!(cut.chars().count(), MAX_CHARS);
        assert!(cut.ends_with("a.docx"), "{cut}");
        // Cut in bytes: 150 Cyrillic letters are 300 bytes.
        let cyrillic = format!("{}.pdf", "ж".repeat(150));
        let cut = safe_file_name(&cyrillic, "file");
        assert!(cut.len() <= MAX_BYTES && cut.ends_with("ж.pdf"), "{cut}");
        // A "extension" longer than an extension is part of the name.
        let odd = format!("x.{}", "y".repeat(300));
        let cut = safe_file_name(&odd, "file");
        assert_eq!(cut.chars().count(), MAX_CHARS, "{cut}");
        assert!(cut.starts_with("x.y"));
    }

    #[test]
    fn the_fallback_is_used_only_when_nothing_is_left() {
        assert_eq!(safe_file_name("\u{202E}", "attachment-7"), "attachment-7");
        assert_eq!(safe_file_name("a", "attachment-7"), "a");
    }

    #[test]
    fn every_result_is_within_the_limits() {
        for raw in [
            "é".repeat(400),
            "😀".repeat(100),
            format!("{}.{}", "x".repeat(250), "😀".repeat(20)),
        ] {
            let safe = safe_file_name(&raw, "file");
            assert!(
                safe.chars().count() <= MAX_CHARS && safe.len() <= MAX_BYTES && !safe.is_empty(),
                "{safe}"
            );
        }
    }

    #[test]
    fn content_disposition_is_header_safe() {
        let value = content_disposition("a \"b\"\r\n.txt", false);
        assert!(!value.contains('\r') && !value.contains('\n'));
        assert_eq!(
            value,
            "attachment; filename=\"a _b___.txt\"; filename*=UTF-8''a%20%22b%22%0D%0A.txt"
        );
        let cyrillic = content_disposition("счёт \"1\".pdf", true);
        assert!(cyrillic.is_ascii());
        assert!(
            cyrillic.starts_with("inline; filename=\"____ _1_.pdf\""),
            "{cyrillic}"
        );
    }
}
