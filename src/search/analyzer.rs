//! The search analyzer: the one place that turns text into index terms, for both stores and for
//! queries alike (so a word is always looked up the way it was indexed).
//!
//! Text is cut into words (letters, digits and combining marks; an apostrophe between letters,
//! as in п'ять or don't, belongs to its word and is dropped). Each word is normalised (NFKC,
//! combining marks left after it dropped: stress accents), lowercased, and ё folded to е. Its
//! script says which stemmers may apply, and the word is indexed under its folded *surface* form
//! and under each distinct stem:
//! - Cyrillic: Russian (Snowball) and Ukrainian ([`super::ukrainian`]); a letter only one of the
//!   languages has (і ї є ґ; ы э ъ ё) picks that one, otherwise both stems are kept, since short
//!   messages do not tell the two apart reliably.
//! - Latin: English (Snowball Porter2) and Indonesian (Snowball, after Tala), both kept.
//! - Anything else, and words with digits: the surface form only.
//!
//! A query word matches a text word when its surface form or one of its stems equals one of the
//! text word's terms, or (for query words of [`MIN_PREFIX`] letters or more) when one of the
//! text word's terms starts with its surface form: prefix search for partial words. Keeping every candidate stem means a query in one
//! language never fails on text in another; at worst it finds a little more.
//!
//! [`VERSION`] names this behaviour: indexed rows remember the version that wrote their terms,
//! and a change here (bump it) has them rewritten in the background (`super::reindex`).

use std::borrow::Cow;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// The analyzer's version, stored with every indexed row. Bump it whenever the terms a text
/// yields change.
pub const VERSION: i64 = 1;

/// How much of one text is indexed (a mail with a whole thread quoted is cut here).
pub const MAX_INDEXED_CHARS: usize = 100_000;

/// Query words this long or longer also match words they begin.
pub const MIN_PREFIX: usize = 3;

/// Words longer than this are not stemmed (no language has such words; they are ids, hashes).
const MAX_STEMMED_CHARS: usize = 40;

/// The longest surface form kept.
const MAX_WORD_CHARS: usize = 64;

const APOSTROPHES: &[char] = &['\'', '\u{2019}', '\u{02BC}'];

/// One word of a text: where it is (byte offsets into the text) and its terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub start: usize,
    pub end: usize,
    /// Normalised, lowercased, ё folded.
    pub surface: String,
    /// Distinct stems other than the surface form.
    pub stems: Vec<String>,
}

impl Word {
    /// The surface form and the stems.
    pub fn terms(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.surface.as_str()).chain(self.stems.iter().map(String::as_str))
    }
}

/// The words of `text`, in order.
pub fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut raw = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_alphanumeric() || (start.is_some() && is_combining_mark(c)) {
            start.get_or_insert(i);
            raw.push(c);
            continue;
        }
        let inner_apostrophe = APOSTROPHES.contains(&c)
            && raw.chars().last().is_some_and(char::is_alphabetic)
            && chars.peek().is_some_and(|(_, n)| n.is_alphabetic());
        if inner_apostrophe {
            continue;
        }
        if let Some(s) = start.take() {
            out.extend(word(s, i, &raw));
            raw.clear();
        }
    }
    if let Some(s) = start {
        out.extend(word(s, text.len(), &raw));
    }
    out
}

/// The terms the index holds for `text`: every word's surface form and stems, space-separated.
pub fn index_terms(text: &str) -> String {
    let text = match text.char_indices().nth(MAX_INDEXED_CHARS) {
        Some((cut, _)) => &text[..cut],
        None => text,
    };
    let mut out = String::with_capacity(text.len() * 2);
    for w in words(text) {
        for t in w.terms() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(t);
        }
    }
    out
}

/// Normalise, lowercase and fold one word.
pub fn fold(raw: &str) -> String {
    raw.nfkc()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'ё' { 'е' } else { c })
        .filter(|c| c.is_alphanumeric())
        .take(MAX_WORD_CHARS)
        .collect()
}

fn word(start: usize, end: usize, raw: &str) -> Option<Word> {
    let (surface, stems) = analyzed(raw)?;
    Some(Word {
        start,
        end,
        surface,
        stems,
    })
}

/// A word's surface form and stems; `None`: nothing of the word is kept.
type Analyzed = Option<(String, Vec<String>)>;

/// How many distinct words [`analyzed`] remembers per thread before it starts afresh.
const CACHE_WORDS: usize = 50_000;

thread_local! {
    /// Raw word → its surface form and stems. Messages repeat a small vocabulary (a few
    /// thousand words make most of any language's text), and folding and stemming a word
    /// costs far more than looking it up: this is most of the analyzer's time saved. Bounded:
    /// ids, numbers and links are mostly seen once, so the map is emptied when it is full.
    static CACHE: std::cell::RefCell<std::collections::HashMap<String, Analyzed>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// A raw word's surface form and stems (None: nothing of it is kept), remembered.
fn analyzed(raw: &str) -> Analyzed {
    if let Some(hit) = CACHE.with(|c| c.borrow().get(raw).cloned()) {
        return hit;
    }
    let surface = fold(raw);
    let result = if surface.is_empty() {
        None
    } else {
        let lower: String = raw.chars().flat_map(char::to_lowercase).collect();
        let stems = stems(&surface, &lower);
        Some((surface, stems))
    };
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_WORDS {
            c.clear();
        }
        c.insert(raw.to_string(), result.clone());
    });
    result
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Cyrillic,
    Latin,
    Other,
}

fn script(word: &str) -> Script {
    if word.chars().all(|c| ('\u{0400}'..='\u{04FF}').contains(&c)) {
        Script::Cyrillic
    } else if word
        .chars()
        .all(|c| c.is_ascii_lowercase() || ('\u{00DF}'..='\u{024F}').contains(&c))
    {
        Script::Latin
    } else {
        Script::Other
    }
}

/// The distinct stems of a folded word (`lower` is the word before folding: ё tells Russian).
fn stems(surface: &str, lower: &str) -> Vec<String> {
    if surface.chars().count() > MAX_STEMMED_CHARS {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: Cow<str>| {
        if s != surface && !s.is_empty() && !out.iter().any(|o| *o == s) {
            out.push(s.into_owned());
        }
    };
    match script(surface) {
        Script::Cyrillic => {
            let ukrainian_only = surface.contains(['і', 'ї', 'є', 'ґ']);
            let russian_only = lower.contains(['ы', 'э', 'ъ', 'ё']);
            if !ukrainian_only {
                let ru = tantivy_stemmers::algorithms::russian(surface);
                add(Cow::Owned(super::ukrainian::drop_fleeting_vowel(&ru)));
            }
            if !russian_only {
                add(Cow::Owned(super::ukrainian::stem(surface)));
            }
        }
        Script::Latin => {
            add(tantivy_stemmers::algorithms::english_porter_2(surface));
            add(tantivy_stemmers::algorithms::indonesian_tala(surface));
        }
        Script::Other => {}
    }
    out
}

/// How a query word is looked up: exact terms (its surface form and its stems) and the prefix
/// its surface form is, if long enough.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryWord {
    pub exact: Vec<String>,
    pub prefix: Option<String>,
}

impl QueryWord {
    pub fn from_word(w: &Word) -> QueryWord {
        let long = w.surface.chars().count() >= MIN_PREFIX;
        let mut exact = w.stems.clone();
        exact.insert(0, w.surface.clone());
        QueryWord {
            exact,
            prefix: long.then(|| w.surface.clone()),
        }
    }

    /// Does a word of a text match this query word? (As the index decides: one of the word's
    /// terms equals one of ours, or begins with our prefix.)
    pub fn matches(&self, w: &Word) -> bool {
        w.terms().any(|t| {
            self.exact.iter().any(|e| e == t)
                || self.prefix.as_deref().is_some_and(|p| t.starts_with(p))
        })
    }
}

/// The query words of a query text.
pub fn query_words(text: &str) -> Vec<QueryWord> {
    words(text).iter().map(QueryWord::from_word).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Does a query find a text (every query word matches some word of the text)?
    fn finds(query: &str, text: &str) -> bool {
        let text = words(text);
        let q = query_words(query);
        !q.is_empty() && q.iter().all(|qw| text.iter().any(|w| qw.matches(w)))
    }

    fn all_find_each_other(forms: &[&str]) {
        for q in forms {
            for t in forms {
                assert!(finds(q, t), "{q:?} does not find {t:?}");
            }
        }
    }

    #[test]
    fn russian_forms_find_each_other() {
        all_find_each_other(&["счёт", "счета", "счетов", "Счет", "СЧЁТОМ"]);
        all_find_each_other(&["оплата", "оплаты", "оплатой", "оплату"]);
        all_find_each_other(&["звонок", "звонка", "звонку"]);
    }

    #[test]
    fn ukrainian_forms_find_each_other() {
        all_find_each_other(&["рахунок", "рахунку", "рахунки", "рахунків"]);
        all_find_each_other(&["оплата", "оплати", "оплату"]);
    }

    #[test]
    fn indonesian_forms_find_each_other() {
        all_find_each_other(&["bayar", "pembayaran", "dibayar", "membayar"]);
        // (Tala does not restore the k that peng- swallows: pengiriman stems to irim.)
        all_find_each_other(&["kirim", "kiriman", "dikirim", "terkirim"]);
    }

    #[test]
    fn english_forms_find_each_other() {
        all_find_each_other(&["invoice", "invoices", "invoiced"]);
        all_find_each_other(&["pay", "paying", "pays"]);
    }

    #[test]
    fn case_and_yo_are_folded() {
        assert_eq!(fold("ЁЛКА"), "елка");
        assert_eq!(fold("Straße"), "straße");
        // A stress accent (a combining mark) is not part of the word.
        assert_eq!(fold("сче\u{301}т"), "счет");
        assert!(finds("ёлка", "Елка"));
        assert!(finds("елка", "ЁЛКА"));
    }

    #[test]
    fn partial_words_find_whole_ones() {
        assert!(finds("рахун", "Надішліть рахунок"));
        assert!(finds("pembay", "Pembayaran diterima"));
        assert!(finds("inv", "the invoice"));
        // Too short to be a prefix: only the word itself.
        assert!(!finds("in", "invoice"));
        assert!(finds("in", "in stock"));
    }

    #[test]
    fn unrelated_words_do_not_match() {
        assert!(!finds("счёт", "доставка"));
        assert!(!finds("bayar", "kirim"));
        assert!(!finds("рахунок", "оплата"));
    }

    /// Text mixing languages: each word is analyzed by its own script, and a query in one
    /// language finds its word among the others.
    #[test]
    fn mixed_languages_do_not_break_each_other() {
        let text = "Оплатил счета за май, invoice INV-2024-17 paid; rahunok: рахунку №5; sudah dibayar 日本語テキスト";
        for q in [
            "счёт",
            "invoices",
            "2024",
            "рахунок",
            "bayar",
            "оплата",
            "日本語テキスト",
        ] {
            assert!(finds(q, text), "{q}");
        }
        assert!(!finds("доставка", text));
    }

    #[test]
    fn words_keep_their_place_in_the_text() {
        let text = "Привет, п'ять euro's!";
        let ws = words(text);
        let surfaces: Vec<&str> = ws.iter().map(|w| w.surface.as_str()).collect();
        assert_eq!(surfaces, ["привет", "пять", "euros"]);
        assert_eq!(&text[ws[1].start..ws[1].end], "п'ять");
    }

    #[test]
    fn index_terms_hold_surfaces_and_stems() {
        let terms = index_terms("Счета оплачены");
        let list: Vec<&str> = terms.split(' ').collect();
        assert!(list.contains(&"счета"), "{terms}");
        assert!(list.contains(&"счет"), "{terms}");
        assert!(list.iter().all(|t| !t.is_empty()));
        // Long input is cut, never refused.
        let long = "слово ".repeat(MAX_INDEXED_CHARS);
        assert!(index_terms(&long).len() < long.len() * 2);
    }
}
