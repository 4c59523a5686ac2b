//! Formatting in both directions: Telegram's message entities → HTML for Matrix, and the core's
//! sanitised HTML → the subset of HTML Telegram's `parse_mode=HTML` accepts.
//!
//! Inbound, Telegram sends plain text plus *entities* (bold from offset 3, length 5, …) whose
//! offsets count UTF-16 code units. [`entities_to_html`] renders them as HTML, clamping every
//! offset to the text and to character boundaries so that no input can make it panic: it is a
//! parser of outside input and one of the fuzz targets.
//!
//! Outbound, the core hands over HTML already reduced to a safe set (b, strong, i, em, u, s,
//! del, code, pre, br, p, ul, ol, li, blockquote, a href). Telegram knows b/i/u/s/code/pre/a/
//! blockquote but not paragraphs, lists or line-break tags, and of named character references
//! only `&lt; &gt; &amp; &quot;`. [`html_to_telegram`] keeps what Telegram knows, turns
//! structure into newlines and bullets, and re-escapes the rest. If Telegram still refuses the
//! result ("can't parse entities") the sender falls back to the plain text.

use teloxide::types::{MessageEntity, MessageEntityKind as Kind};

/// Escape text for Telegram's HTML (and Matrix's). Not the kit's `escape_html`: Telegram's
/// `parse_mode=HTML` names only `&lt; &gt; &amp; &quot;`, and its attributes are always written
/// in double quotes here, so `'` stays as it is (the kit writes `&#39;`, which Telegram's own
/// parser takes but other readers of its HTML may show as it is).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Opening and closing tags for an entity, or `None` for entities that are not formatting
/// (mentions, hashtags, commands, …: they stay plain text).
fn tags(kind: &Kind, text: &str) -> Option<(String, &'static str)> {
    Some(match kind {
        Kind::Bold => ("<b>".into(), "</b>"),
        Kind::Italic => ("<i>".into(), "</i>"),
        Kind::Underline => ("<u>".into(), "</u>"),
        Kind::Strikethrough => ("<s>".into(), "</s>"),
        Kind::Code => ("<code>".into(), "</code>"),
        Kind::Pre { .. } => ("<pre><code>".into(), "</code></pre>"),
        Kind::Blockquote | Kind::ExpandableBlockquote => ("<blockquote>".into(), "</blockquote>"),
        Kind::TextLink { url } => (format!("<a href=\"{}\">", escape(url.as_str())), "</a>"),
        Kind::Url => {
            let href = if text.contains("://") {
                text.to_owned()
            } else {
                format!("https://{text}")
            };
            (format!("<a href=\"{}\">", escape(&href)), "</a>")
        }
        Kind::Email => (format!("<a href=\"mailto:{}\">", escape(text)), "</a>"),
        _ => return None,
    })
}

/// Byte index in `text` of each UTF-16 offset that falls on a character boundary, plus the end.
/// Offsets inside a surrogate pair round down to the character's start.
fn utf16_to_byte(text: &str, offset: usize) -> usize {
    let mut units = 0usize;
    for (byte, c) in text.char_indices() {
        if units >= offset {
            return byte;
        }
        units += c.len_utf16();
        if units > offset {
            return byte;
        }
    }
    text.len()
}

/// Render Telegram text with entities as HTML. `None` when there is no formatting at all (the
/// plain text says everything).
pub fn entities_to_html(text: &str, entities: &[MessageEntity]) -> Option<String> {
    // (byte position, order, is_open, entity index, tag)
    let mut marks: Vec<(usize, usize, bool, usize, String)> = Vec::new();
    for (i, e) in entities.iter().enumerate() {
        let start = utf16_to_byte(text, e.offset);
        let end = utf16_to_byte(text, e.offset.saturating_add(e.length));
        if end <= start {
            continue;
        }
        let inner = &text[start..end];
        let Some((open, close)) = tags(&e.kind, inner) else {
            continue;
        };
        marks.push((start, end, true, i, open));
        marks.push((end, start, false, i, close.to_owned()));
    }
    if marks.is_empty() {
        return None;
    }
    // At one position: closes before opens; closes innermost (latest start) first; opens
    // outermost (furthest end) first. That nests properly whenever the entities do.
    marks.sort_by(|a, b| {
        a.0.cmp(&b.0).then(a.2.cmp(&b.2)).then_with(|| {
            if a.2 {
                b.1.cmp(&a.1).then(a.3.cmp(&b.3))
            } else {
                b.1.cmp(&a.1).then(b.3.cmp(&a.3))
            }
        })
    });
    let mut out = String::with_capacity(text.len() + marks.len() * 8);
    let mut pos = 0usize;
    let mut pre_depth = 0usize;
    for (at, _, is_open, _, tag) in &marks {
        push_text(&mut out, &text[pos..*at], pre_depth > 0);
        pos = *at;
        if tag.starts_with("<pre>") {
            pre_depth += 1;
        } else if tag.ends_with("</pre>") {
            pre_depth = pre_depth.saturating_sub(1);
        }
        let _ = is_open;
        out.push_str(tag);
    }
    push_text(&mut out, &text[pos..], pre_depth > 0);
    Some(out)
}

fn push_text(out: &mut String, text: &str, in_pre: bool) {
    let escaped = escape(text);
    if in_pre {
        out.push_str(&escaped);
    } else {
        out.push_str(&escaped.replace('\n', "<br>"));
    }
}

/// Tags Telegram's HTML parse mode accepts, as we emit them.
fn telegram_tag(name: &str) -> Option<&'static str> {
    Some(match name {
        "b" | "strong" => "b",
        "i" | "em" => "i",
        "u" | "ins" => "u",
        "s" | "del" | "strike" => "s",
        "code" => "code",
        "pre" => "pre",
        "a" => "a",
        "blockquote" => "blockquote",
        _ => return None,
    })
}

/// The value of `href` in a tag's attribute text, if any.
fn href(attrs: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let at = lower.find("href")?;
    let rest = attrs[at + 4..].trim_start();
    let rest = rest.strip_prefix('=')?.trim_start();
    let value = match rest.chars().next()? {
        q @ ('"' | '\'') => rest[1..].split(q).next()?,
        _ => rest.split(|c: char| c.is_whitespace() || c == '>').next()?,
    };
    Some(decode_entities(value))
}

/// Decode the character references the core's sanitiser may emit. Unknown ones stay as text.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let end = after.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &after[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ if name.starts_with("#x") || name.starts_with("#X") => {
                    u32::from_str_radix(&name[2..], 16)
                        .ok()
                        .and_then(char::from_u32)
                }
                _ if name.starts_with('#') => {
                    name[1..].parse::<u32>().ok().and_then(char::from_u32)
                }
                _ => None,
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Convert the core's sanitised HTML to Telegram's HTML subset. Tags Telegram does not know
/// are dropped (their text kept); block structure becomes newlines; lists become bullets.
pub fn html_to_telegram(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    // Open tags we emitted, to close whatever is left open at the end.
    let mut open: Vec<&'static str> = Vec::new();
    // Ordered-list counters (None for a bullet list).
    let mut lists: Vec<Option<u32>> = Vec::new();
    let mut pre_depth = 0usize;
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            push_telegram_text(&mut out, rest, pre_depth > 0);
            break;
        };
        push_telegram_text(&mut out, &rest[..lt], pre_depth > 0);
        let after = &rest[lt..];
        let Some(gt) = after.find('>') else {
            // A lone '<': text.
            push_telegram_text(&mut out, after, pre_depth > 0);
            break;
        };
        let inner = &after[1..gt];
        rest = &after[gt + 1..];
        let closing = inner.starts_with('/');
        let body = inner.trim_start_matches('/').trim_end_matches('/').trim();
        let name_end = body.find(|c: char| c.is_whitespace()).unwrap_or(body.len());
        let name = body[..name_end].to_ascii_lowercase();
        let attrs = &body[name_end..];
        match (name.as_str(), closing) {
            ("br", _) => out.push('\n'),
            ("p" | "div", false) => newline_block(&mut out),
            ("p" | "div", true) => {
                while !out.is_empty() && !out.ends_with("\n\n") {
                    out.push('\n');
                }
            }
            ("ul", false) => {
                newline_block(&mut out);
                lists.push(None);
            }
            ("ol", false) => {
                newline_block(&mut out);
                lists.push(Some(0));
            }
            ("ul" | "ol", true) => {
                lists.pop();
            }
            ("li", false) => {
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                let depth = lists.len().saturating_sub(1);
                out.push_str(&"  ".repeat(depth));
                match lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        out.push_str(&format!("{n}. "));
                    }
                    _ => out.push_str("• "),
                }
            }
            ("li", true) => {}
            (other, false) => {
                let Some(tag) = telegram_tag(other) else {
                    continue;
                };
                if tag == "a" {
                    match href(attrs) {
                        Some(h) => out.push_str(&format!("<a href=\"{}\">", escape(&h))),
                        None => continue,
                    }
                } else {
                    if tag == "blockquote" {
                        newline_block(&mut out);
                    }
                    out.push('<');
                    out.push_str(tag);
                    out.push('>');
                }
                if tag == "pre" {
                    pre_depth += 1;
                }
                open.push(tag);
            }
            (other, true) => {
                let Some(tag) = telegram_tag(other) else {
                    continue;
                };
                // Close only what is open; close anything opened inside it first.
                if let Some(at) = open.iter().rposition(|t| *t == tag) {
                    while open.len() > at {
                        if let Some(t) = open.pop() {
                            if t == "pre" {
                                pre_depth = pre_depth.saturating_sub(1);
                            }
                            out.push_str("</");
                            out.push_str(t);
                            out.push('>');
                        }
                    }
                }
            }
        }
    }
    while let Some(t) = open.pop() {
        out.push_str("</");
        out.push_str(t);
        out.push('>');
    }
    out.trim_matches('\n').to_owned()
}

/// Start a block on a new line (no blank line at the very start).
fn newline_block(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Text between tags: decode what the sanitiser encoded, escape what Telegram requires. Outside
/// `<pre>`, HTML whitespace (newlines) is not a line break.
fn push_telegram_text(out: &mut String, text: &str, in_pre: bool) {
    let decoded = decode_entities(text);
    let decoded = if in_pre {
        decoded
    } else {
        decoded.replace('\n', " ")
    };
    out.push_str(&escape(&decoded));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(kind: Kind, offset: usize, length: usize) -> MessageEntity {
        MessageEntity {
            kind,
            offset,
            length,
        }
    }

    #[test]
    fn entities_render_as_nested_html() {
        let text = "Hello bold world\nnext <line>";
        let e = [entity(Kind::Bold, 6, 10), entity(Kind::Italic, 11, 5)];
        assert_eq!(
            entities_to_html(text, &e).as_deref(),
            Some("Hello <b>bold <i>world</i></b><br>next &lt;line&gt;")
        );
        assert_eq!(entities_to_html("plain", &[]), None);
        assert_eq!(
            entities_to_html("#tag", &[entity(Kind::Hashtag, 0, 4)]),
            None
        );
    }

    #[test]
    fn offsets_count_utf16_units() {
        // "😀" is two UTF-16 units; "Привет" one each.
        let text = "😀 Привет мир";
        let e = [entity(Kind::Bold, 3, 6)];
        assert_eq!(
            entities_to_html(text, &e).as_deref(),
            Some("😀 <b>Привет</b> мир")
        );
    }

    #[test]
    fn nonsense_offsets_never_panic() {
        let text = "a😀b";
        for offset in 0..8 {
            for length in 0..8 {
                let _ = entities_to_html(
                    text,
                    &[
                        entity(Kind::Code, offset, length),
                        entity(Kind::Bold, length, offset),
                    ],
                );
            }
        }
        let _ = entities_to_html("x", &[entity(Kind::Bold, usize::MAX, usize::MAX)]);
    }

    #[test]
    fn links_and_pre() {
        let url = url::Url::parse("https://example.com/?a=1&b=2").unwrap();
        let text = "see docs\ncode\nhere";
        let e = [
            entity(Kind::TextLink { url }, 4, 4),
            entity(Kind::Pre { language: None }, 9, 9),
        ];
        assert_eq!(
            entities_to_html(text, &e).as_deref(),
            Some("see <a href=\"https://example.com/?a=1&amp;b=2\">docs</a><br><pre><code>code\nhere</code></pre>")
        );
    }

    #[test]
    fn core_html_becomes_telegram_html() {
        assert_eq!(
            html_to_telegram("Sorry! <strong>Checking</strong> now"),
            "Sorry! <b>Checking</b> now"
        );
        assert_eq!(
            html_to_telegram("<p>one</p><p>two &amp; <em>three</em></p>"),
            "one\n\ntwo &amp; <i>three</i>"
        );
        assert_eq!(
            html_to_telegram("<ul><li>a</li><li>b</li></ul>"),
            "• a\n• b"
        );
        assert_eq!(
            html_to_telegram("<ol><li>a</li><li>b</li></ol>"),
            "1. a\n2. b"
        );
        assert_eq!(
            html_to_telegram(
                "<a href=\"https://x.example/?q=1&amp;r=2\" rel=\"noopener noreferrer\">x</a>"
            ),
            "<a href=\"https://x.example/?q=1&amp;r=2\">x</a>"
        );
        assert_eq!(html_to_telegram("a<br>b&nbsp;c"), "a\nb\u{a0}c");
        assert_eq!(
            html_to_telegram("<pre><code>x\n  y</code></pre>"),
            "<pre><code>x\n  y</code></pre>"
        );
        // Unbalanced input is balanced; unknown tags vanish, their text stays.
        assert_eq!(
            html_to_telegram("<b>open <span>and</span> <i>more"),
            "<b>open and <i>more</i></b>"
        );
        assert_eq!(html_to_telegram("1 < 2"), "1 &lt; 2");
        assert_eq!(
            html_to_telegram("<blockquote>q</blockquote>after"),
            "<blockquote>q</blockquote>after"
        );
    }

    #[test]
    fn garbage_html_never_panics() {
        for s in [
            "<",
            ">",
            "<<>>",
            "</b></b>",
            "&#xZZ;",
            "&#99999999;",
            "<a href>",
            "<a href=>x</a>",
            "<li></ol>",
            "<😀>",
        ] {
            let _ = html_to_telegram(s);
        }
    }
}
