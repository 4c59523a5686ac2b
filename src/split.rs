//! Long answers, cut to what a network carries: one operator message becomes several remote
//! messages, in order, when its text is longer than the channel's limit.
//!
//! Each channel only declares its limits ([`Capabilities::max_text_length`],
//! [`Capabilities::max_caption_length`]) and how it counts them ([`TextUnit`]: Telegram counts
//! UTF-16 code units, the others characters); the cutting is done here, once, for every channel.
//!
//! Text is cut at the best boundary that leaves a part at most the limit long: a paragraph (a
//! blank line, or the end of a block in HTML), else a line, else the end of a sentence, else a
//! space; only a "word" longer than the limit is cut inside. Formatted text (HTML) is cut the
//! same way on its visible text, and every part is valid HTML on its own: tags open at the cut
//! are closed at the end of the part and opened again at the start of the next one. Each part's
//! plain text is derived from its HTML, so the fallback says the same as the formatted part.
//!
//! A message with files whose text is too long for a caption becomes the text (in as many parts
//! as it needs) followed by the files without a caption.

use switchboard_channel::{Capabilities, Content, Formatting, TextUnit};

/// Share of the limit kept free when cutting formatted text: networks whose markup counts
/// towards the limit (Markdown on Discord and WhatsApp) need a few characters per part for it.
const MARKUP_RESERVE_PERCENT: usize = 5;

/// How long `s` is in `unit`.
pub fn length(s: &str, unit: TextUnit) -> usize {
    match unit {
        TextUnit::Chars => s.chars().count(),
        TextUnit::Utf16 => s.encode_utf16().count(),
    }
}

fn char_len(c: char, unit: TextUnit) -> usize {
    match unit {
        TextUnit::Chars => 1,
        TextUnit::Utf16 => c.len_utf16(),
    }
}

/// The contents one message must be sent as: itself when it fits.
pub fn split_content(content: &Content, caps: &Capabilities) -> Vec<Content> {
    let Some(max) = caps.max_text_length.filter(|m| *m > 0) else {
        return vec![content.clone()];
    };
    let unit = caps.text_unit;
    let limit = if content.attachments.is_empty() {
        max
    } else {
        caps.max_caption_length.unwrap_or(max).min(max)
    };
    let html = content
        .html
        .as_deref()
        .filter(|_| caps.formatting == Formatting::Html);
    let text_fits = length(&content.text, unit) <= limit;
    let html_fits = html.is_none_or(|h| length(&visible_text(h), unit) <= limit);
    if text_fits && html_fits {
        return vec![content.clone()];
    }
    let mut parts: Vec<Content> = match html {
        Some(h) => {
            let budget = max - max * MARKUP_RESERVE_PERCENT / 100;
            split_html(h, budget.max(1), unit)
                .into_iter()
                .map(|part| Content {
                    text: visible_text(&part),
                    html: Some(part),
                    attachments: Vec::new(),
                })
                .collect()
        }
        None => split_text(&content.text, max, unit)
            .into_iter()
            .map(|text| Content {
                text,
                html: None,
                attachments: Vec::new(),
            })
            .collect(),
    };
    parts.retain(|p| !p.text.trim().is_empty());
    if !content.attachments.is_empty() {
        parts.push(Content {
            text: String::new(),
            html: None,
            attachments: content.attachments.clone(),
        });
    }
    if parts.is_empty() {
        return vec![content.clone()];
    }
    parts
}

/// How good a place to cut is: higher is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Boundary {
    Inside,
    Space,
    Sentence,
    Line,
    Paragraph,
}

/// Whether a boundary found later in a part should replace the best one so far: a better or
/// equal kind, or any kind when the best so far would leave a part under a third of the limit.
fn better(best: Option<(Boundary, usize)>, kind: Boundary, third: usize) -> bool {
    best.is_none_or(|(k, at)| kind >= k || at < third)
}

/// Where in `window` (a part's candidate text, which ends where the limit is reached) to cut,
/// as a byte offset just after the boundary ([`better`] decides which).
fn best_cut(window: &str) -> usize {
    let third = window.len() / 3;
    let mut best: Option<(Boundary, usize)> = None;
    let bytes = window.as_bytes();
    for (i, c) in window.char_indices() {
        let kind = match c {
            '\n' if i > 0 && bytes[i - 1] == b'\n' => Boundary::Paragraph,
            '\n' => Boundary::Line,
            c if c.is_whitespace() => {
                if i > 0 && matches!(bytes[i - 1], b'.' | b'!' | b'?' | b';' | b':') {
                    Boundary::Sentence
                } else {
                    Boundary::Space
                }
            }
            _ => continue,
        };
        if better(best, kind, third) {
            best = Some((kind, i + c.len_utf8()));
        }
    }
    match best {
        Some((_, at)) if at > 0 => at,
        _ => window.len(),
    }
}

/// Plain text cut into parts of at most `max` (in `unit`), each trimmed at the cut.
pub fn split_text(text: &str, max: usize, unit: TextUnit) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while length(rest, unit) > max {
        // The longest prefix that fits.
        let mut used = 0;
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            let l = char_len(c, unit);
            if used + l > max {
                break;
            }
            used += l;
            end = i + c.len_utf8();
        }
        if end == 0 {
            // A single character longer than the limit (a UTF-16 pair with max 1): take it.
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let cut = best_cut(&rest[..end]);
        let part = rest[..cut].trim_end();
        if !part.is_empty() {
            parts.push(part.to_string());
        }
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_string());
    }
    parts
}

/// One piece of HTML: a tag or text.
#[derive(Clone, Debug)]
enum Token<'a> {
    Open { name: String, raw: &'a str },
    Close { name: String, raw: &'a str },
    Void { name: String, raw: &'a str },
    Text(&'a str),
}

fn tokenize(html: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut rest = html;
    while !rest.is_empty() {
        if rest.starts_with('<') {
            let end = rest.find('>').map_or(rest.len(), |e| e + 1);
            let raw = &rest[..end];
            let inner = raw.trim_start_matches('<').trim_end_matches('>');
            let closing = inner.starts_with('/');
            let self_closing = inner.ends_with('/');
            let name: String = inner
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            let void = self_closing
                || matches!(name.as_str(), "br" | "hr" | "img" | "wbr")
                || name.is_empty();
            tokens.push(if closing {
                Token::Close { name, raw }
            } else if void {
                Token::Void { name, raw }
            } else {
                Token::Open { name, raw }
            });
            rest = &rest[end..];
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            tokens.push(Token::Text(&rest[..end]));
            rest = &rest[end..];
        }
    }
    tokens
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "li"
            | "ul"
            | "ol"
            | "blockquote"
            | "pre"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "table"
            | "tr"
    )
}

/// One visible unit of text: a character, or an entity that shows as one.
fn units(text: &str) -> Vec<(usize, usize, char)> {
    // (byte start, byte end, the character it shows)
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.starts_with('&') {
            if let Some(semi) = rest[..rest.len().min(12)].find(';') {
                let shown = decode_entity(&rest[..=semi]).unwrap_or('&');
                if shown != '&' || &rest[..=semi] == "&amp;" {
                    out.push((i, i + semi + 1, shown));
                    i += semi + 1;
                    continue;
                }
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push((i, i + c.len_utf8(), c));
        i += c.len_utf8();
    }
    out
}

fn decode_entity(entity: &str) -> Option<char> {
    let inner = entity.strip_prefix('&')?.strip_suffix(';')?;
    match inner {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" | "#39" => Some('\''),
        "nbsp" => Some('\u{a0}'),
        _ => {
            let num = inner.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// The text a reader sees in `html`: tags dropped, entities decoded, blocks and `<br>` as
/// line breaks.
pub fn visible_text(html: &str) -> String {
    let mut out = String::new();
    for token in tokenize(html) {
        match token {
            Token::Text(t) => out.extend(units(t).into_iter().map(|(_, _, c)| c)),
            Token::Void { name, .. } if name == "br" => out.push('\n'),
            Token::Close { name, .. } if is_block(&name) => {
                if name == "p" || name == "blockquote" || name == "pre" {
                    out.push_str("\n\n");
                } else {
                    out.push('\n');
                }
            }
            _ => {}
        }
    }
    out.trim().to_string()
}

/// A place to cut formatted text: what the part holds up to there, and where the rest starts.
struct Cut {
    kind: Boundary,
    /// Length of the part's HTML up to the cut.
    out_len: usize,
    /// Visible length of the part up to the cut.
    visible: usize,
    /// Tags open at the cut: (name, the tag as written).
    open: Vec<(String, String)>,
    /// The token the rest starts in, and the byte offset in it (for text).
    token: usize,
    offset: usize,
}

/// HTML cut into parts whose visible text is at most `max` (in `unit`), each valid on its own.
pub fn split_html(html: &str, max: usize, unit: TextUnit) -> Vec<String> {
    let tokens = tokenize(html);
    let mut parts: Vec<String> = Vec::new();
    let mut open: Vec<(String, String)> = Vec::new();
    let mut out = String::new();
    let mut visible = 0usize;
    let mut best: Option<Cut> = None;
    let (mut t, mut offset) = (0usize, 0usize);
    while t < tokens.len() {
        // Where this token overflows the part (a cut is needed before byte `at` of it).
        let mut overflow: Option<usize> = None;
        match &tokens[t] {
            Token::Open { name, raw } => {
                out.push_str(raw);
                open.push((name.clone(), raw.to_string()));
            }
            Token::Close { name, raw } => {
                out.push_str(raw);
                if let Some(pos) = open.iter().rposition(|(n, _)| n == name) {
                    open.truncate(pos);
                }
                if is_block(name) {
                    consider(
                        &mut best,
                        Boundary::Paragraph,
                        &out,
                        visible,
                        &open,
                        (t + 1, 0),
                        max,
                    );
                }
            }
            Token::Void { name, raw } => {
                if name == "br" && visible + 1 > max && visible > 0 {
                    overflow = Some(0);
                } else {
                    out.push_str(raw);
                    if name == "br" {
                        visible += 1;
                        consider(
                            &mut best,
                            Boundary::Line,
                            &out,
                            visible,
                            &open,
                            (t + 1, 0),
                            max,
                        );
                    }
                }
            }
            Token::Text(text) => {
                let mut prev: Option<char> = None;
                for (start, end, c) in units(text).into_iter().filter(|(s, _, _)| *s >= offset) {
                    let l = char_len(c, unit);
                    if visible + l > max && visible > 0 {
                        overflow = Some(start);
                        break;
                    }
                    out.push_str(&text[start..end]);
                    visible += l;
                    let kind = match c {
                        '\n' => Boundary::Line,
                        c if c.is_whitespace() => match prev {
                            Some('.' | '!' | '?' | ';' | ':') => Boundary::Sentence,
                            _ => Boundary::Space,
                        },
                        _ => {
                            prev = Some(c);
                            continue;
                        }
                    };
                    prev = Some(c);
                    consider(&mut best, kind, &out, visible, &open, (t, end), max);
                }
            }
        }
        let Some(at) = overflow else {
            t += 1;
            offset = 0;
            continue;
        };
        let cut = match best.take() {
            Some(cut) if cut.visible > 0 => cut,
            // No boundary in this part: cut right here, inside the word.
            _ => Cut {
                kind: Boundary::Inside,
                out_len: out.len(),
                visible,
                open: open.clone(),
                token: t,
                offset: at,
            },
        };
        out.truncate(cut.out_len);
        for (name, _) in cut.open.iter().rev() {
            out.push_str(&format!("</{name}>"));
        }
        parts.push(std::mem::take(&mut out));
        out = cut.open.iter().map(|(_, raw)| raw.as_str()).collect();
        open = cut.open;
        visible = 0;
        (t, offset) = (cut.token, cut.offset);
        skip_leading_space(&tokens, &mut t, &mut offset);
    }
    if visible > 0 || parts.is_empty() {
        parts.push(out);
    }
    parts
}

/// Remember the place just reached as the best cut so far when it is ([`better`]).
fn consider(
    best: &mut Option<Cut>,
    kind: Boundary,
    out: &str,
    visible: usize,
    open: &[(String, String)],
    (token, offset): (usize, usize),
    max: usize,
) {
    if better(best.as_ref().map(|b| (b.kind, b.visible)), kind, max / 3) {
        *best = Some(Cut {
            kind,
            out_len: out.len(),
            visible,
            open: open.to_vec(),
            token,
            offset,
        });
    }
}

/// Past the whitespace at a cut (it would start the next part with a blank).
fn skip_leading_space(tokens: &[Token<'_>], t: &mut usize, offset: &mut usize) {
    if let Some(Token::Text(text)) = tokens.get(*t) {
        let rest = &text[*offset..];
        *offset += rest.len() - rest.trim_start().len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_channel::{Attachment, MediaRef};

    fn caps(max: usize, unit: TextUnit, formatting: Formatting) -> Capabilities {
        Capabilities {
            formatting,
            max_file_size: None,
            max_text_length: Some(max),
            max_caption_length: Some(max / 4),
            text_unit: unit,
            edits: true,
            deletes: true,
            replies: true,
            reactions: false,
            read_receipts: false,
            typing: false,
            reply_window: None,
            templates: false,
            rating: Default::default(),
        }
    }

    /// Balanced tags, in order, in one HTML part.
    fn balanced(html: &str) -> bool {
        let mut stack = Vec::new();
        for token in tokenize(html) {
            match token {
                Token::Open { name, .. } => stack.push(name),
                Token::Close { name, .. } => {
                    if stack.pop().as_deref() != Some(name.as_str()) {
                        return false;
                    }
                }
                _ => {}
            }
        }
        stack.is_empty()
    }

    #[test]
    fn paragraphs_then_sentences_then_words() {
        let para = "First paragraph here.\n\nSecond one is a bit longer. It has two sentences.";
        assert_eq!(
            split_text(para, 40, TextUnit::Chars),
            [
                "First paragraph here.",
                "Second one is a bit longer.",
                "It has two sentences."
            ]
        );
        let words = "alpha beta gamma delta epsilon zeta eta theta";
        let parts = split_text(words, 12, TextUnit::Chars);
        assert!(parts.iter().all(|p| p.chars().count() <= 12), "{parts:?}");
        assert_eq!(parts.join(" "), words);
        let long_word = "x".repeat(25);
        assert_eq!(
            split_text(&long_word, 10, TextUnit::Chars).concat(),
            long_word
        );
    }

    #[test]
    fn nothing_is_lost_and_every_part_fits() {
        let text: String = (0..500)
            .map(|i| match i % 7 {
                0 => "Привет, мир! ".to_string(),
                1 => "😀😀 emoji count twice in UTF-16. ".to_string(),
                2 => "\n\n".to_string(),
                3 => format!("word{i} "),
                _ => "lorem ipsum dolor sit amet, ".to_string(),
            })
            .collect();
        for unit in [TextUnit::Chars, TextUnit::Utf16] {
            for max in [50, 333, 4096] {
                let parts = split_text(&text, max, unit);
                assert!(
                    parts.iter().all(|p| length(p, unit) <= max),
                    "{unit:?} {max}"
                );
                let squash = |s: &str| s.split_whitespace().collect::<String>();
                assert_eq!(squash(&parts.join(" ")), squash(&text), "{unit:?} {max}");
            }
        }
        // Telegram counts an emoji as two: 4096 of them do not fit in one message.
        let emoji = "😀".repeat(4096);
        assert_eq!(split_text(&emoji, 4096, TextUnit::Chars).len(), 1);
        assert_eq!(split_text(&emoji, 4096, TextUnit::Utf16).len(), 2);
    }

    #[test]
    fn html_parts_are_valid_and_keep_their_formatting() {
        let html = format!(
            "<p>Intro <b>bold start {} bold end</b> tail.</p><ul><li>one</li><li><a href=\"https://x.example/?a=1&amp;b=2\">link {}</a></li></ul><pre><code>{}</code></pre>",
            "word ".repeat(30),
            "text ".repeat(20),
            "let x = 1;\n".repeat(20)
        );
        let parts = split_html(&html, 60, TextUnit::Chars);
        assert!(parts.len() > 3, "{parts:#?}");
        for p in &parts {
            assert!(balanced(p), "unbalanced part: {p}");
            assert!(length(&visible_text(p), TextUnit::Chars) <= 60, "{p}");
        }
        // Bold is closed at the cut and opened again in the next part.
        let bold: Vec<_> = parts.iter().filter(|p| p.contains("<b>")).collect();
        assert!(bold.len() >= 2, "{parts:#?}");
        assert!(parts.iter().any(|p| p
            .starts_with("<ul><li><a href=\"https://x.example/?a=1&amp;b=2\">")
            || p.starts_with("<a href")
            || p.contains("<a href=\"https://x.example/?a=1&amp;b=2\">")));
        let squash = |s: &str| s.split_whitespace().collect::<String>();
        let whole: String = parts
            .iter()
            .map(|p| visible_text(p))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(squash(&whole), squash(&visible_text(&html)));
    }

    #[test]
    fn content_is_cut_only_when_needed_and_files_keep_no_caption() {
        let caps = caps(100, TextUnit::Chars, Formatting::Plain);
        let short = Content {
            text: "short".into(),
            html: None,
            attachments: vec![],
        };
        assert_eq!(split_content(&short, &caps), [short.clone()]);
        let long = Content {
            text: "Sentence number one. ".repeat(12),
            html: Some("<b>ignored by a plain channel</b>".into()),
            attachments: vec![],
        };
        let parts = split_content(&long, &caps);
        assert_eq!(parts.len(), 3);
        assert!(parts
            .iter()
            .all(|p| p.html.is_none() && p.text.len() <= 100));
        let file = Attachment {
            media: MediaRef("mxc://x/y".into()),
            name: "a.pdf".into(),
            mime: "application/pdf".into(),
            size: 10,
        };
        // The caption limit here is 25: a 40-character caption goes in a message of its own.
        let with_file = Content {
            text: "This caption is forty characters long!!".into(),
            html: None,
            attachments: vec![file.clone()],
        };
        let parts = split_content(&with_file, &caps);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].text, with_file.text);
        assert!(parts[0].attachments.is_empty());
        assert_eq!(
            (parts[1].text.as_str(), &parts[1].attachments),
            ("", &vec![file])
        );
    }
}
