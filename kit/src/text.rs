//! Small things every channel needs alike: the wall clock in milliseconds, HTML escaping, and
//! the one rule for characters that must never reach a name people read ([`is_invisible`]).

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `text` safe inside HTML text and attribute values: `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Characters that never belong in a name shown to people (a file name, a room name, a ghost's
/// display name): controls (Unicode Cc) and the format characters (Cf) that are invisible or
/// change the direction of text (a customer named `Ann\u{202E}` would make the `(telegram)` after
/// her name in a room name read backwards).
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// `text` without the characters of [`is_invisible`]: what a name from outside becomes before
/// it is shown in Matrix.
pub fn without_invisible(text: &str) -> String {
    text.chars().filter(|c| !is_invisible(*c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_covers_text_and_attributes() {
        assert_eq!(
            escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert!(now_ms() > 1_700_000_000_000);
    }

    #[test]
    fn bidi_overrides_and_invisible_characters_are_removed_from_names() {
        assert_eq!(
            without_invisible("Ann\u{202E}\u{2066}\u{200B}\u{7} Lee"),
            "Ann Lee"
        );
        assert_eq!(without_invisible("Ана Ли"), "Ана Ли");
    }
}
