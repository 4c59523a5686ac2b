//! Operators' formatting → WhatsApp's markup.
//!
//! WhatsApp has no HTML; its clients render `*bold*`, `_italic_`, `~strikethrough~`,
//! `` `inline code` ``, ```` ```monospace``` ````, `> quote` and `- list` lines. The core hands us
//! its sanitised HTML subset (b/strong, i/em, s/del, u, code, pre, a, p, br, ul/ol/li,
//! blockquote); [`html_to_whatsapp`] rewrites it into that markup. Anything it does not know is
//! dropped to its text, so the result is never worse than the plain text. Links keep their
//! text and gain the URL in brackets when the two differ.

/// Rewrite the core's sanitised HTML as WhatsApp markup.
pub fn html_to_whatsapp(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut links: Vec<Option<String>> = Vec::new();
    let mut list_counters: Vec<Option<u32>> = Vec::new();
    let mut in_pre = false;
    let mut quote_depth = 0usize;
    while let Some(lt) = rest.find('<') {
        push_text(&mut out, &rest[..lt], quote_depth);
        let after = &rest[lt..];
        let Some(gt) = after.find('>') else {
            push_text(&mut out, after, quote_depth);
            rest = "";
            break;
        };
        let inner = &after[1..gt];
        rest = &after[gt + 1..];
        let closing = inner.starts_with('/');
        let name: String = inner
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match (name.as_str(), closing) {
            ("b" | "strong", _) => out.push('*'),
            ("i" | "em", _) => out.push('_'),
            ("s" | "del" | "strike", _) => out.push('~'),
            ("code", _) if !in_pre => out.push('`'),
            ("pre", false) => {
                in_pre = true;
                out.push_str("```");
            }
            ("pre", true) => {
                in_pre = false;
                out.push_str("```");
            }
            ("br", _) => newline(&mut out, quote_depth),
            ("p", true) => {
                newline(&mut out, quote_depth);
            }
            ("p", false) if !out.is_empty() && !out.ends_with('\n') => {
                newline(&mut out, quote_depth)
            }
            ("blockquote", false) => {
                if quote_depth == 0 {
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str(quote_prefix(1));
                }
                quote_depth += 1;
            }
            ("blockquote", true) => {
                quote_depth = quote_depth.saturating_sub(1);
                if quote_depth == 0 && !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            ("ul", false) => list_counters.push(None),
            ("ol", false) => list_counters.push(Some(0)),
            ("ul" | "ol", true) => {
                list_counters.pop();
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            ("li", false) => {
                if !out.is_empty() && !out.ends_with('\n') {
                    newline(&mut out, quote_depth);
                }
                match list_counters.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        out.push_str(&format!("{n}. "));
                    }
                    _ => out.push_str("- "),
                }
            }
            ("a", false) => links.push(href(inner)),
            ("a", true) => {
                if let Some(Some(url)) = links.pop() {
                    let shown = url.strip_prefix("mailto:").unwrap_or(&url);
                    if !out.ends_with(shown) {
                        out.push_str(&format!(" ({shown})"));
                    }
                }
            }
            _ => {}
        }
    }
    push_text(&mut out, rest, quote_depth);
    out.trim_end().to_owned()
}

/// WhatsApp renders one level of `> ` quote; nested quotes stay one level (which also keeps
/// the output linear in the input).
fn quote_prefix(depth: usize) -> &'static str {
    if depth > 0 {
        "> "
    } else {
        ""
    }
}

fn newline(out: &mut String, quote_depth: usize) {
    out.push('\n');
    out.push_str(quote_prefix(quote_depth));
}

fn push_text(out: &mut String, text: &str, quote_depth: usize) {
    let decoded = decode_entities(text);
    let mut first = true;
    for line in decoded.split('\n') {
        if !first {
            newline(out, quote_depth);
        }
        first = false;
        out.push_str(line);
    }
}

/// The `href` of an `<a …>` tag's inside.
fn href(inner: &str) -> Option<String> {
    let start = inner.find("href=")? + 5;
    let value = &inner[start..];
    let quote = value.chars().next()?;
    let url = if quote == '"' || quote == '\'' {
        let v = &value[1..];
        &v[..v.find(quote)?]
    } else {
        value.split(|c: char| c.is_whitespace()).next()?
    };
    Some(decode_entities(url))
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        // Entities are short ASCII: look for the `;` within the first 12 bytes, never slicing
        // inside a multi-byte character (found by the whatsapp_webhook fuzz target).
        let Some(semi) = after.bytes().take(12).position(|b| b == b';') else {
            out.push('&');
            rest = &after[1..];
            continue;
        };
        let entity = &after[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" | "#x27" => Some('\''),
            "nbsp" => Some(' '),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_next_to_multibyte_text_do_not_panic() {
        assert_eq!(
            decode_entities("&#h:p_&ngfi\u{78d}x"),
            "&#h:p_&ngfi\u{78d}x"
        );
        assert_eq!(decode_entities("&amp;\u{78d}"), "&\u{78d}");
    }

    #[test]
    fn emphasis_code_and_links() {
        assert_eq!(
            html_to_whatsapp("Sorry! <strong>Checking</strong> now"),
            "Sorry! *Checking* now"
        );
        assert_eq!(
            html_to_whatsapp("<em>a</em> <del>b</del> <code>c</code>"),
            "_a_ ~b~ `c`"
        );
        assert_eq!(
            html_to_whatsapp("<pre><code>let x = 1;\n</code></pre>"),
            "```let x = 1;\n```"
        );
        assert_eq!(
            html_to_whatsapp(r#"see <a href="https://acme.example/t?a=1&amp;b=2">tracking</a>"#),
            "see tracking (https://acme.example/t?a=1&b=2)"
        );
        assert_eq!(
            html_to_whatsapp(r#"<a href="https://x.example">https://x.example</a>"#),
            "https://x.example"
        );
        assert_eq!(
            html_to_whatsapp("1 &lt; 2 &amp;&amp; 3 &gt; 2 &#128512;"),
            "1 < 2 && 3 > 2 😀"
        );
    }

    #[test]
    fn blocks() {
        assert_eq!(html_to_whatsapp("<p>one</p><p>two</p>"), "one\ntwo");
        assert_eq!(
            html_to_whatsapp("<ul><li>a</li><li>b</li></ul>"),
            "- a\n- b"
        );
        assert_eq!(
            html_to_whatsapp("<ol><li>a</li><li>b</li></ol>"),
            "1. a\n2. b"
        );
        assert_eq!(
            html_to_whatsapp("<blockquote>quoted</blockquote>answer"),
            "> quoted\nanswer"
        );
        assert_eq!(html_to_whatsapp("a<br>b<br/>c"), "a\nb\nc");
        assert_eq!(html_to_whatsapp("broken <b"), "broken <b");
        assert_eq!(
            html_to_whatsapp("<blockquote><blockquote>a<br>b</blockquote></blockquote>"),
            "> a\n> b"
        );
    }
}
