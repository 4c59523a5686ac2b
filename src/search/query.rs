//! The search syntax operators type, and what a hit shows.
//!
//! `!sb search <words> [filters]`: every word must match (any of its forms, or as the start of a
//! longer word); `"quoted words"` must stand together in that order. Filters: `channel:<name>`,
//! `from:<part of a customer's name or id, or an operator's user id>`, `team:<name>`,
//! `before:YYYY-MM-DD` (earlier than that day), `after:YYYY-MM-DD` (that day or later, UTC),
//! `has:file` (any attachment), `has:image`, `has:voice`, `sort:best` (best match first; newest
//! first otherwise). A word with a colon that is not a filter (a link) is searched as words.

use chrono::NaiveDate;

use super::analyzer::{self, QueryWord, Word};
use crate::store::search::{Media, Query};

/// A parsed search: what the store looks up, and the phrases checked on what it finds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Search {
    pub query: Query,
    pub phrases: Vec<Vec<QueryWord>>,
}

/// What is wrong with a search, in words for the operator.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyntaxError {
    #[error("`{0}` is not a date (write YYYY-MM-DD)")]
    Date(String),
    #[error("`has:{0}` is not known (file, image or voice)")]
    Has(String),
    #[error("`sort:{0}` is not known (best or new)")]
    Sort(String),
    #[error("nothing to search for")]
    Empty,
}

fn day_ms(value: &str) -> Result<i64, SyntaxError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| SyntaxError::Date(value.to_string()))
}

/// Parse what follows `search`.
pub fn parse(text: &str) -> Result<Search, SyntaxError> {
    let mut s = Search::default();
    let mut free = String::new();
    // Quoted phrases first: their words are searched like the others, and stand together.
    let mut rest = String::new();
    let mut parts = text.split('"');
    if let Some(first) = parts.next() {
        rest.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        if i % 2 == 0 {
            let words = analyzer::query_words(part);
            if !words.is_empty() {
                s.query.words.extend(words.iter().cloned());
                if words.len() > 1 {
                    s.phrases.push(words);
                }
            }
        } else {
            rest.push(' ');
            rest.push_str(part);
        }
    }
    for token in rest.split_whitespace() {
        let Some((key, value)) = token.split_once(':') else {
            free.push_str(token);
            free.push(' ');
            continue;
        };
        let value = value.trim();
        match key.to_lowercase().as_str() {
            "channel" if !value.is_empty() => s.query.channel = Some(value.to_lowercase()),
            "from" if !value.is_empty() => s.query.from = Some(value.to_string()),
            "team" if !value.is_empty() => s.query.team = Some(value.to_string()),
            "before" => s.query.before = Some(day_ms(value)?),
            "after" => s.query.after = Some(day_ms(value)?),
            "has" => {
                s.query.media = Some(
                    Media::parse(&value.to_lowercase())
                        .ok_or_else(|| SyntaxError::Has(value.to_string()))?,
                )
            }
            "sort" => match value.to_lowercase().as_str() {
                "best" => s.query.best = true,
                "new" | "newest" => s.query.best = false,
                _ => return Err(SyntaxError::Sort(value.to_string())),
            },
            _ => {
                free.push_str(token);
                free.push(' ');
            }
        }
    }
    s.query.words.extend(analyzer::query_words(&free));
    let filtered = s.query.channel.is_some()
        || s.query.from.is_some()
        || s.query.team.is_some()
        || s.query.before.is_some()
        || s.query.after.is_some()
        || s.query.media.is_some();
    if s.query.words.is_empty() && !filtered {
        return Err(SyntaxError::Empty);
    }
    Ok(s)
}

/// Does the text hold every phrase, its words one after another?
pub fn holds_phrases(phrases: &[Vec<QueryWord>], text: &str) -> bool {
    if phrases.is_empty() {
        return true;
    }
    let words = analyzer::words(text);
    phrases.iter().all(|phrase| {
        words
            .windows(phrase.len())
            .any(|window| window.iter().zip(phrase).all(|(w, q)| q.matches(w)))
    })
}

/// How many words a snippet shows around the first match.
const SNIPPET_WORDS: usize = 24;

/// A short piece of `text` around its first matching word, with every matching word marked
/// by `mark(word)`; `plain(text)` renders what lies between (escaping, for HTML).
pub fn snippet(
    words_of_query: &[QueryWord],
    text: &str,
    mark: impl Fn(&str) -> String,
    plain: impl Fn(&str) -> String,
) -> String {
    let words: Vec<Word> = analyzer::words(text);
    let hit = |w: &Word| words_of_query.iter().any(|q| q.matches(w));
    let first = words.iter().position(hit).unwrap_or(0);
    let from = first.saturating_sub(SNIPPET_WORDS / 3);
    let to = (from + SNIPPET_WORDS).min(words.len());
    let mut out = String::new();
    if words.is_empty() {
        return plain(&text.chars().take(200).collect::<String>());
    }
    let mut pos = if from == 0 { 0 } else { words[from].start };
    if from > 0 {
        out.push('…');
    }
    for w in &words[from..to] {
        out.push_str(&plain(&text[pos..w.start]));
        let original = &text[w.start..w.end];
        if hit(w) {
            out.push_str(&mark(original));
        } else {
            out.push_str(&plain(original));
        }
        pos = w.end;
    }
    if to < words.len() {
        out.push('…');
    } else {
        out.push_str(&plain(&text[pos..]));
    }
    // One line per hit.
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_words_and_phrases() {
        let s = parse(
            r#"счёт "акт сверки" channel:Telegram from:Oksana team:b2b after:2026-01-02 before:2026-02-01 has:image sort:best https://x.example/inv"#,
        )
        .unwrap();
        assert_eq!(s.query.channel.as_deref(), Some("telegram"));
        assert_eq!(s.query.from.as_deref(), Some("Oksana"));
        assert_eq!(s.query.team.as_deref(), Some("b2b"));
        assert_eq!(s.query.after, Some(1_767_312_000_000));
        assert_eq!(s.query.before, Some(1_769_904_000_000));
        assert_eq!(s.query.media, Some(Media::Image));
        assert!(s.query.best);
        let surfaces: Vec<&str> = s.query.words.iter().map(|w| w.exact[0].as_str()).collect();
        assert_eq!(
            surfaces,
            ["акт", "сверки", "счет", "https", "x", "example", "inv"],
            "phrase words, then the others; a link is words"
        );
        assert_eq!(s.phrases.len(), 1);
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(
            parse("счёт before:yesterday"),
            Err(SyntaxError::Date("yesterday".into()))
        );
        assert_eq!(parse("has:video x"), Err(SyntaxError::Has("video".into())));
        assert_eq!(parse("   "), Err(SyntaxError::Empty));
        assert!(parse("has:voice").is_ok(), "a filter alone is a search");
    }

    #[test]
    fn phrases_need_their_words_together() {
        let s = parse(r#""акт сверки""#).unwrap();
        assert!(holds_phrases(&s.phrases, "Пришлите акты сверки за май"));
        assert!(!holds_phrases(&s.phrases, "Акт пришлём, сверки не будет"));
    }

    #[test]
    fn snippets_mark_every_matching_form() {
        let q = parse("счёт").unwrap().query.words;
        let text = "Добрый день! Пришлите, пожалуйста, счёт за март и два счета за апрель.";
        let s = snippet(&q, text, |w| format!("**{w}**"), str::to_string);
        assert_eq!(
            s,
            "Добрый день! Пришлите, пожалуйста, **счёт** за март и два **счета** за апрель."
        );
        let long = format!("{} счёт {}", "слово ".repeat(50), "ещё ".repeat(50));
        let s = snippet(&q, &long, |w| format!("<b>{w}</b>"), str::to_string);
        assert!(
            s.starts_with('…') && s.ends_with('…') && s.contains("<b>счёт</b>"),
            "{s}"
        );
    }
}
