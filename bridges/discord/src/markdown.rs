//! Formatting in both directions: Discord's markdown → HTML for Matrix, and the core's sanitised
//! HTML → Discord markdown.
//!
//! Inbound, Discord sends the text as the customer typed it: `**bold**`, `*italic*`/`_italic_`,
//! `__underline__`, `~~strike~~`, `||spoiler||`, `` `code` ``, fenced code blocks, `> quotes`,
//! `# headings`, `[masked](https://links)`, bare links, and references in angle brackets
//! (`<@id>` users, `<#id>` channels, `<@&id>` roles, `<:name:id>` custom emoji). [`to_html`]
//! renders what it recognises and escapes everything else; mentions become the names Discord
//! sent along in the message's `mentions`. It is a parser of outside input (fuzzed): it never
//! panics, works on `char` boundaries only and bounds its nesting.
//!
//! Outbound, the core hands over HTML reduced to a small safe set (b, strong, i, em, u, s, del,
//! code, pre, br, p, ul, ol, li, blockquote, a href). [`html_to_markdown`] writes the Discord
//! equivalent and escapes markdown characters in the operator's text so they stay literal.

use std::collections::HashMap;

/// Names for the ids in `<@…>` mentions: user id → display name.
pub type Names = HashMap<String, String>;

/// Deepest nesting of inline formatting rendered; deeper markers stay text.
const MAX_DEPTH: usize = 12;

/// Text made safe inside HTML: the kit's escaping.
pub use switchboard_kit::escape_html as escape;

/// The plain-text body for Matrix: the customer's text with `<@id>`-style references replaced
/// by names, markdown left as typed.
pub fn to_plain(text: &str, names: &Names) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('<') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        match reference(tail, names) {
            Some((shown, used)) => {
                out.push_str(&shown);
                rest = &tail[used..];
            }
            None => {
                out.push('<');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `<@123>`, `<@!123>`, `<#123>`, `<@&123>`, `<:name:123>`, `<a:name:123>`, `<t:123:R>` at the
/// start of `s`: what to show, and how many bytes it took.
fn reference(s: &str, names: &Names) -> Option<(String, usize)> {
    let end = s.find('>')?;
    let inner = s.get(1..end)?;
    if inner.is_empty() || inner.len() > 80 {
        return None;
    }
    let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    let shown = if let Some(id) = inner.strip_prefix("@&") {
        digits(id).then(|| "@role".to_owned())?
    } else if let Some(id) = inner.strip_prefix("@!").or_else(|| inner.strip_prefix('@')) {
        if !digits(id) {
            return None;
        }
        format!(
            "@{}",
            names.get(id).map(String::as_str).unwrap_or("unknown-user")
        )
    } else if let Some(id) = inner.strip_prefix('#') {
        digits(id).then(|| "#channel".to_owned())?
    } else if let Some(emoji) = inner.strip_prefix("a:").or_else(|| inner.strip_prefix(':')) {
        let (name, id) = emoji.split_once(':')?;
        let ok_name = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        (ok_name && digits(id)).then(|| format!(":{name}:"))?
    } else if let Some(ts) = inner.strip_prefix("t:") {
        let secs = ts.split(':').next()?;
        let secs: i64 = secs.parse().ok()?;
        let time = chrono::DateTime::from_timestamp(secs, 0)?;
        time.format("%Y-%m-%d %H:%M UTC").to_string()
    } else {
        return None;
    };
    Some((shown, end + 1))
}

/// Whether `c` can be escaped with a backslash in Discord markdown.
fn escapable(c: char) -> bool {
    matches!(
        c,
        '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '[' | ']' | '(' | ')' | '#' | '-' | ':'
    )
}

/// Discord markdown → HTML, or `None` when the text has no formatting at all (the plain body
/// says everything).
pub fn to_html(text: &str, names: &Names) -> Option<String> {
    let html = blocks(text, names);
    let plain = escape(&to_plain(text, names)).replace('\n', "<br>");
    (html != plain).then_some(html)
}

/// Block level: fenced code blocks, quotes, headings; everything else line by line.
fn blocks(text: &str, names: &Names) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        // A fenced code block: ```lang\n…``` (the language word only when a newline follows).
        if let Some(pos) = rest.find("```") {
            if let Some(close) = rest[pos + 3..].find("```") {
                lines(&rest[..pos], names, &mut out);
                let body = &rest[pos + 3..pos + 3 + close];
                let (lang, code) = match body.split_once('\n') {
                    Some((first, code))
                        if !first.is_empty()
                            && first.chars().all(|c| {
                                c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '_'
                            }) =>
                    {
                        (Some(first), code)
                    }
                    Some(("", code)) => (None, code),
                    _ => (None, body),
                };
                match lang {
                    Some(lang) => {
                        out.push_str(&format!("<pre><code class=\"language-{}\">", escape(lang)))
                    }
                    None => out.push_str("<pre><code>"),
                }
                out.push_str(&escape(code.strip_suffix('\n').unwrap_or(code)));
                out.push_str("</code></pre>");
                rest = &rest[pos + 3 + close + 3..];
                rest = rest.strip_prefix('\n').unwrap_or(rest);
                continue;
            }
        }
        lines(rest, names, &mut out);
        break;
    }
    out
}

/// Lines outside code blocks: `> ` quotes (`>>> ` quotes the rest), `#`/`##`/`###` headings.
fn lines(text: &str, names: &Names, out: &mut String) {
    if text.is_empty() {
        return;
    }
    let all: Vec<&str> = text.split('\n').collect();
    let mut i = 0;
    let mut first = true;
    let newline = |out: &mut String, first: &mut bool| {
        if !*first && !out.ends_with("</blockquote>") && !out.ends_with("</pre>") {
            out.push_str("<br>");
        }
        *first = false;
    };
    while i < all.len() {
        let line = all[i];
        if let Some(quoted) = line.strip_prefix(">>> ") {
            newline(out, &mut first);
            let mut body = vec![quoted];
            body.extend_from_slice(&all[i + 1..]);
            out.push_str("<blockquote>");
            out.push_str(
                &body
                    .iter()
                    .map(|l| inline(l, names, 0))
                    .collect::<Vec<_>>()
                    .join("<br>"),
            );
            out.push_str("</blockquote>");
            return;
        }
        if line.starts_with("> ") || line == ">" {
            newline(out, &mut first);
            let mut quoted = Vec::new();
            while i < all.len() && (all[i].starts_with("> ") || all[i] == ">") {
                quoted.push(inline(all[i].get(2..).unwrap_or(""), names, 0));
                i += 1;
            }
            out.push_str("<blockquote>");
            out.push_str(&quoted.join("<br>"));
            out.push_str("</blockquote>");
            continue;
        }
        newline(out, &mut first);
        let heading = ["### ", "## ", "# "]
            .iter()
            .find_map(|p| line.strip_prefix(p));
        match heading {
            Some(h) => {
                out.push_str("<b>");
                out.push_str(&inline(h, names, 0));
                out.push_str("</b>");
            }
            None => out.push_str(&inline(line, names, 0)),
        }
        i += 1;
    }
}

/// Inline delimiters, longest first: (marker, opening tag, closing tag).
const DELIMITERS: &[(&str, &str, &str)] = &[
    ("***", "<b><i>", "</i></b>"),
    ("**", "<b>", "</b>"),
    ("__", "<u>", "</u>"),
    ("~~", "<s>", "</s>"),
    ("||", "<span data-mx-spoiler=\"\">", "</span>"),
    ("*", "<i>", "</i>"),
    ("_", "<i>", "</i>"),
];

/// One line's inline formatting.
fn inline(text: &str, names: &Names, depth: usize) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut i = 0;
    'outer: while i < text.len() {
        let rest = &text[i..];
        let Some(c) = rest.chars().next() else { break };
        // Backslash escapes.
        if c == '\\' {
            if let Some(next) = rest[1..].chars().next().filter(|n| escapable(*n)) {
                out.push_str(&escape(&next.to_string()));
                i += 1 + next.len_utf8();
                continue;
            }
        }
        // Inline code: a run of backticks closed by the same run.
        if c == '`' {
            let run = rest.bytes().take_while(|b| *b == b'`').count();
            let marker = &rest[..run];
            if let Some(close) = rest[run..].find(marker) {
                let code = &rest[run..run + close];
                if !code.is_empty() {
                    out.push_str("<code>");
                    out.push_str(&escape(code.trim_matches(' ')));
                    out.push_str("</code>");
                    i += run + close + run;
                    continue;
                }
            }
            out.push_str(marker);
            i += run;
            continue;
        }
        if depth < MAX_DEPTH {
            for (marker, open, close) in DELIMITERS {
                if !rest.starts_with(marker) {
                    continue;
                }
                let body_start = marker.len();
                let Some(end) = find_closing(&rest[body_start..], marker) else {
                    continue;
                };
                let body = &rest[body_start..body_start + end];
                out.push_str(open);
                out.push_str(&inline(body, names, depth + 1));
                out.push_str(close);
                i += body_start + end + marker.len();
                continue 'outer;
            }
        }
        if c == '<' {
            if let Some((shown, used)) = reference(rest, names) {
                out.push_str(&escape(&shown));
                i += used;
                continue;
            }
            // <https://…>: a link without an embed.
            if let Some(end) = rest.find('>') {
                let inside = &rest[1..end];
                if is_url(inside) {
                    push_link(&mut out, inside, &escape(inside));
                    i += end + 1;
                    continue;
                }
            }
        }
        if c == '[' {
            if let Some((label, url, used)) = masked_link(rest) {
                push_link(&mut out, url, &inline(label, names, MAX_DEPTH));
                i += used;
                continue;
            }
        }
        if (c == 'h' || c == 'H') && is_url_start(rest) && word_start(text, i) {
            let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let url = rest[..len].trim_end_matches(['.', ',', ')', '!', '?', ';', ':', '"', '\'']);
            if is_url(url) {
                push_link(&mut out, url, &escape(url));
                i += url.len();
                continue;
            }
        }
        out.push_str(&escape(&c.to_string()));
        i += c.len_utf8();
    }
    out
}

/// Where `marker` closes in `s` (a non-empty body that does not start or end with a space for
/// single-character markers, as Discord renders them).
fn find_closing(s: &str, marker: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(pos) = s.get(from..)?.find(marker) {
        let at = from + pos;
        let body = &s[..at];
        let single = marker.len() == 1;
        // `**` inside `*…*` would close too early: skip a marker that is part of a longer run.
        let longer_run = single && s[at + 1..].starts_with(marker);
        let ok = !body.trim().is_empty()
            && !longer_run
            && !(single
                && (body.starts_with(char::is_whitespace) || body.ends_with(char::is_whitespace)));
        if ok {
            return Some(at);
        }
        from = at + marker.len().max(1);
        if longer_run {
            from += s[from..]
                .bytes()
                .take_while(|b| *b == marker.as_bytes()[0])
                .count();
        }
    }
    None
}

fn is_url_start(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

fn is_url(s: &str) -> bool {
    is_url_start(s) && s.len() > 8 && !s.contains(char::is_whitespace) && url::Url::parse(s).is_ok()
}

fn word_start(text: &str, i: usize) -> bool {
    text[..i]
        .chars()
        .next_back()
        .is_none_or(|p| !p.is_alphanumeric())
}

/// `[label](https://url)` at the start of `s`.
fn masked_link(s: &str) -> Option<(&str, &str, usize)> {
    let close = s.find("](")?;
    let label = &s[1..close];
    if label.is_empty() || label.contains('\n') || label.contains('[') {
        return None;
    }
    let after = &s[close + 2..];
    let end = after.find(')')?;
    let url = after[..end].trim_matches(['<', '>']);
    is_url(url).then_some((label, url, close + 2 + end + 1))
}

fn push_link(out: &mut String, url: &str, label_html: &str) {
    out.push_str("<a href=\"");
    out.push_str(&escape(url));
    out.push_str("\">");
    out.push_str(label_html);
    out.push_str("</a>");
}

// ---------------------------------------------------------------------------------------------
// Outbound: HTML → Discord markdown.

/// Escape the operator's text so Discord shows it literally.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut line_start = true;
    for word in text.split_inclusive(char::is_whitespace) {
        // Links are left alone: a backslash would break them, and Discord does not format
        // inside them.
        if is_url_start(word) {
            out.push_str(word);
        } else {
            for (n, c) in word.chars().enumerate() {
                let at_line_start = line_start && n == 0;
                if matches!(c, '\\' | '*' | '_' | '~' | '`' | '|')
                    || (at_line_start && matches!(c, '>' | '#' | '-'))
                {
                    out.push('\\');
                }
                out.push(c);
            }
        }
        line_start = word.ends_with('\n');
    }
    out
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let end = tail.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let name = &tail[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => {
                    let num = name.strip_prefix('#')?;
                    let n = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(n)
                }
            }?;
            Some((c, e + 1))
        });
        match decoded {
            Some((c, used)) => {
                out.push(c);
                rest = &tail[used..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `href="…"` from a tag's attributes.
fn href(attrs: &str) -> Option<String> {
    let pos = attrs.find("href=")?;
    let rest = &attrs[pos + 5..];
    let quote = rest.chars().next().filter(|q| *q == '"' || *q == '\'')?;
    let end = rest[1..].find(quote)?;
    Some(decode_entities(&rest[1..1 + end]))
}

/// What the converter is inside of.
enum Open {
    Mark(&'static str),
    Link { href: String, start: usize },
    List { ordered: bool, n: usize },
    Quote { start: usize },
    Pre,
    Other,
}

/// The core's HTML → Discord markdown.
pub fn html_to_markdown(html: &str) -> String {
    let mut out = String::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut rest = html;
    // Inside code blocks and inline code the text is literal.
    let in_pre = |stack: &[Open]| {
        stack
            .iter()
            .any(|o| matches!(o, Open::Pre | Open::Mark("`")))
    };
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            push_text(&mut out, &decode_entities(rest), in_pre(&stack));
            break;
        };
        push_text(&mut out, &decode_entities(&rest[..lt]), in_pre(&stack));
        let tail = &rest[lt..];
        let Some(gt) = tail.find('>') else {
            push_text(&mut out, &decode_entities(tail), in_pre(&stack));
            break;
        };
        let tag = &tail[1..gt];
        rest = &tail[gt + 1..];
        let closing = tag.starts_with('/');
        let tag = tag.trim_start_matches('/').trim_end_matches('/');
        let (name, attrs) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        let name = name.to_ascii_lowercase();
        if closing {
            close(&mut out, &mut stack, &name);
            continue;
        }
        match name.as_str() {
            "b" | "strong" => open_mark(&mut out, &mut stack, "**"),
            "i" | "em" => open_mark(&mut out, &mut stack, "*"),
            "u" => open_mark(&mut out, &mut stack, "__"),
            "s" | "del" | "strike" => open_mark(&mut out, &mut stack, "~~"),
            "code" if in_pre(&stack) => stack.push(Open::Other),
            "code" => open_mark(&mut out, &mut stack, "`"),
            "span" if attrs.contains("data-mx-spoiler") => open_mark(&mut out, &mut stack, "||"),
            "pre" => {
                block_break(&mut out);
                out.push_str("```\n");
                stack.push(Open::Pre);
            }
            "a" => stack.push(Open::Link {
                href: href(attrs).unwrap_or_default(),
                start: out.len(),
            }),
            "br" => out.push('\n'),
            "p" | "div" => {
                block_break(&mut out);
                stack.push(Open::Other);
            }
            "ul" | "ol" => {
                block_break(&mut out);
                stack.push(Open::List {
                    ordered: name == "ol",
                    n: 0,
                });
            }
            "li" => {
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                let bullet = match stack
                    .iter_mut()
                    .rev()
                    .find(|o| matches!(o, Open::List { .. }))
                {
                    Some(Open::List { ordered: true, n }) => {
                        *n += 1;
                        format!("{n}. ")
                    }
                    _ => "- ".to_owned(),
                };
                out.push_str(&bullet);
                stack.push(Open::Other);
            }
            "blockquote" => {
                block_break(&mut out);
                stack.push(Open::Quote { start: out.len() });
            }
            "mx-reply" => stack.push(Open::Other),
            _ => {}
        }
        // Void elements never get a closing tag.
        if matches!(name.as_str(), "br" | "img" | "hr") {
            continue;
        }
    }
    while let Some(open) = stack.pop() {
        finish(&mut out, open);
    }
    out.trim().to_owned()
}

fn push_text(out: &mut String, text: &str, in_pre: bool) {
    if in_pre {
        // A backtick run inside code would end it early.
        out.push_str(&text.replace("```", "`\u{200b}``"));
    } else {
        let line_start = out.is_empty() || out.ends_with('\n');
        let escaped = escape_markdown(text);
        // escape_markdown treats its input as starting a line; undo that mid-line.
        if !line_start {
            if let Some(stripped) = escaped
                .strip_prefix('\\')
                .filter(|s| s.starts_with(['>', '#', '-']))
            {
                out.push_str(stripped);
                return;
            }
        }
        out.push_str(&escaped);
    }
}

fn block_break(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn open_mark(out: &mut String, stack: &mut Vec<Open>, mark: &'static str) {
    out.push_str(mark);
    stack.push(Open::Mark(mark));
}

fn close(out: &mut String, stack: &mut Vec<Open>, name: &str) {
    let matches = |o: &Open| {
        matches!(
            (o, name),
            (Open::Mark("**"), "b" | "strong")
                | (Open::Mark("*"), "i" | "em")
                | (Open::Mark("__"), "u")
                | (Open::Mark("~~"), "s" | "del" | "strike")
                | (Open::Mark("`"), "code")
                | (Open::Mark("||"), "span")
                | (Open::Link { .. }, "a")
                | (Open::List { .. }, "ul" | "ol")
                | (Open::Quote { .. }, "blockquote")
                | (Open::Pre, "pre")
                | (
                    Open::Other,
                    "p" | "div" | "li" | "code" | "mx-reply" | "span"
                )
        )
    };
    let Some(pos) = stack.iter().rposition(matches) else {
        return;
    };
    while stack.len() > pos {
        if let Some(open) = stack.pop() {
            finish(out, open);
        }
    }
}

fn finish(out: &mut String, open: Open) {
    match open {
        Open::Mark(mark) => out.push_str(mark),
        Open::Link { href, start } => {
            let label = out[start..].to_owned();
            if href.is_empty() || !is_url_start(&href) {
                return;
            }
            out.truncate(start);
            let plain_label = label.replace('\\', "");
            if plain_label == href || label.trim().is_empty() {
                out.push_str(&href);
            } else {
                out.push_str(&format!(
                    "[{}]({})",
                    label.replace(['[', ']'], ""),
                    href.replace(')', "%29")
                ));
            }
        }
        Open::Pre => {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("```\n");
        }
        Open::Quote { start } => {
            let body = out[start..].trim_end_matches('\n').to_owned();
            out.truncate(start);
            for line in body.split('\n') {
                out.push_str("> ");
                out.push_str(line);
                out.push('\n');
            }
        }
        Open::List { .. } => block_break(out),
        Open::Other => {
            if out.ends_with(|c: char| c != '\n') {
                // Paragraphs end with a line break; the next block adds its own.
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        [("42".to_owned(), "Ann".to_owned())].into_iter().collect()
    }

    #[test]
    fn discord_markdown_becomes_html() {
        let n = names();
        assert_eq!(to_html("plain words", &n), None);
        assert_eq!(
            to_html("**bold** and *it* _it_ ~~gone~~", &n).unwrap(),
            "<b>bold</b> and <i>it</i> <i>it</i> <s>gone</s>"
        );
        assert_eq!(
            to_html("__under__ ***both***", &n).unwrap(),
            "<u>under</u> <b><i>both</i></b>"
        );
        assert_eq!(to_html("`a<b`", &n).unwrap(), "<code>a&lt;b</code>");
        assert_eq!(
            to_html("see ||the end||", &n).unwrap(),
            "see <span data-mx-spoiler=\"\">the end</span>"
        );
        assert_eq!(
            to_html("```rust\nfn main() {}\n```\nafter", &n).unwrap(),
            "<pre><code class=\"language-rust\">fn main() {}</code></pre>after"
        );
        assert_eq!(to_html("hi <@42> and <@!7>", &n), None);
        assert_eq!(
            to_plain("hi <@42> and <@!7>", &n),
            "hi @Ann and @unknown-user"
        );
        assert_eq!(to_html("**hi** <@42>", &n).unwrap(), "<b>hi</b> @Ann");
        assert_eq!(to_plain("hi <@42> <:blob:123>", &n), "hi @Ann :blob:");
        assert_eq!(
            to_html("go to https://example.com/a_b_c. or [docs](https://docs.example.com)", &n).unwrap(),
            "go to <a href=\"https://example.com/a_b_c\">https://example.com/a_b_c</a>. or <a href=\"https://docs.example.com\">docs</a>"
        );
        assert_eq!(
            to_html("> quoted\nnot", &n).unwrap(),
            "<blockquote>quoted</blockquote>not"
        );
        assert_eq!(to_html("# Title", &n).unwrap(), "<b>Title</b>");
        assert_eq!(to_html("2 * 3 * 4", &n), None);
        assert_eq!(to_html("\\*not italic\\*", &n).unwrap(), "*not italic*");
        assert_eq!(to_html("a <script> & b", &n), None);
        assert_eq!(to_html("line\n**two**", &n).unwrap(), "line<br><b>two</b>");
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let n = names();
        for s in [
            "*",
            "**",
            "***",
            "||||",
            "```",
            "``",
            "<@",
            "<@>",
            "<t:99999999999999999:R>",
            "[a](",
            "\\",
            "é*é*",
            "<:é:1>",
            "_*_*_*",
        ] {
            let _ = to_html(s, &n);
            let _ = to_plain(s, &n);
            let _ = html_to_markdown(s);
        }
        let deep = "||".repeat(5000);
        let _ = to_html(&deep, &n);
        let nested = "**__~~||".repeat(200) + "x" + &"||~~__**".repeat(200);
        let _ = to_html(&nested, &n);
    }

    /// Pseudo-random strings of markdown and HTML tokens: no panic, only the renderer's own tags,
    /// every `<` in the output starts one of them.
    #[test]
    fn random_token_soup() {
        const TOKENS: &[&str] = &[
            "*",
            "**",
            "***",
            "_",
            "__",
            "~~",
            "||",
            "`",
            "``",
            "```",
            "\\",
            "\n",
            "> ",
            ">>> ",
            "# ",
            "<@42>",
            "<@!1>",
            "<#5>",
            "<:x:9>",
            "<t:1:R>",
            "<",
            ">",
            "[",
            "](",
            ")",
            "https://a.example/x_y",
            "http://",
            "é",
            "😀",
            " ",
            "a",
            "<b>",
            "</b>",
            "<a href=\"https://x\">",
            "</a>",
            "<pre>",
            "</pre>",
            "<code>",
            "</code>",
            "<li>",
            "<ol>",
            "<blockquote>",
            "</blockquote>",
            "&amp;",
            "&#x1F600;",
            "&",
            "<br>",
            "<p>",
            "</p>",
        ];
        const ALLOWED: &[&str] = &[
            "b",
            "i",
            "u",
            "s",
            "code",
            "pre",
            "blockquote",
            "a",
            "br",
            "span",
        ];
        let n = names();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..3000 {
            let mut input = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                input.push_str(TOKENS[(seed % TOKENS.len() as u64) as usize]);
            }
            let _ = to_plain(&input, &n);
            let _ = html_to_markdown(&input);
            if let Some(html) = to_html(&input, &n) {
                for part in html.split('<').skip(1) {
                    let name: String = part
                        .trim_start_matches('/')
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .collect();
                    assert!(
                        ALLOWED.contains(&name.as_str()),
                        "tag {name:?} in {html:?} from {input:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn html_becomes_discord_markdown() {
        assert_eq!(
            html_to_markdown("Sorry! <strong>Checking</strong> now"),
            "Sorry! **Checking** now"
        );
        assert_eq!(
            html_to_markdown("<p>a <em>b</em> <del>c</del> <u>d</u> <code>e_f</code></p>"),
            "a *b* ~~c~~ __d__ `e_f`"
        );
        assert_eq!(
            html_to_markdown("<pre><code class=\"language-rs\">x *y*\n</code></pre>"),
            "```\nx *y*\n```"
        );
        assert_eq!(
            html_to_markdown("<a href=\"https://a.example/x\">the docs</a>"),
            "[the docs](https://a.example/x)"
        );
        assert_eq!(
            html_to_markdown("<a href=\"https://a.example\">https://a.example</a>"),
            "https://a.example"
        );
        assert_eq!(
            html_to_markdown("<ul><li>one</li><li>two</li></ul>"),
            "- one\n- two"
        );
        assert_eq!(
            html_to_markdown("<ol><li>one</li><li>two</li></ol>"),
            "1. one\n2. two"
        );
        assert_eq!(
            html_to_markdown("<blockquote>quoted<br>twice</blockquote>after"),
            "> quoted\n> twice\nafter"
        );
        assert_eq!(
            html_to_markdown("2*3 &lt;tag&gt; file_name"),
            "2\\*3 <tag> file\\_name"
        );
        assert_eq!(html_to_markdown("<p>one</p><p>two</p>"), "one\ntwo");
    }

    #[test]
    fn plain_text_is_escaped() {
        assert_eq!(
            escape_markdown("*hi* see https://x.example/a_b"),
            "\\*hi\\* see https://x.example/a_b"
        );
        assert_eq!(
            escape_markdown("> not a quote\n# nor a title"),
            "\\> not a quote\n\\# nor a title"
        );
    }
}
