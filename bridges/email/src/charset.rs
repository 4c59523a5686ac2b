//! Repairs for text parts whose declared charset is wrong.
//!
//! mail-parser decodes every part with the charset its `Content-Type` names. Some bulk-mail
//! tools label UTF-8 text `x-mac-cyrillic` (SendBlaster does, see the fixture
//! `phpmimemailparser_x_mac_cyrillic_qp.eml`): decoded as labelled, `© 2019` becomes `¬© 2019`
//! and Russian turns into `вАУ¬Ґ…`. Worse, the same tools have often already run their own
//! Russian text through that mistake once, so the UTF-8 itself spells `–¢–µ–Ї—Г—Й–Є–є` where
//! `Текущий` was meant.
//!
//! [`repair`] undoes both, and only for the Mac Cyrillic labels:
//!
//! 1. x-mac-cyrillic maps each of the 256 byte values to its own character, so encoding the
//!    decoded text again gives back the part's exact bytes. When those bytes are valid UTF-8
//!    with at least one multi-byte sequence, they are UTF-8: genuine Mac Cyrillic text (letters
//!    at 0x80–0xDF followed by more letters) is practically never valid UTF-8.
//! 2. In that UTF-8, a word made only of characters that Mac Cyrillic can encode and whose bytes
//!    then form valid UTF-8 made only of Cyrillic letters is that same mistake made earlier:
//!    it is replaced by the Cyrillic. Real words of `–`, `—`, `¢` and friends do not exist,
//!    so nothing readable is touched.
//!
//! Text with any other label is returned as it is.

use encoding_rs::X_MAC_CYRILLIC;

/// Labels decoded with the Mac Cyrillic table (mail-parser's aliases).
fn is_mac_cyrillic(charset: &str) -> bool {
    let c = charset
        .trim()
        .trim_matches('"')
        .to_ascii_lowercase()
        .replace('_', "-");
    matches!(
        c.as_str(),
        "x-mac-cyrillic" | "x-mac-ukrainian" | "maccyrillic"
    )
}

/// The text of a part as it was meant, given the charset its header declared.
pub fn repair(text: &str, declared: Option<&str>) -> Option<String> {
    if !declared.is_some_and(is_mac_cyrillic) || text.is_ascii() {
        return None;
    }
    let (bytes, _, unmappable) = X_MAC_CYRILLIC.encode(text);
    if unmappable {
        return None;
    }
    let utf8 = std::str::from_utf8(&bytes).ok()?;
    Some(unmangle_words(utf8))
}

/// Step 2: words that are Cyrillic UTF-8 read as Mac Cyrillic, turned back into Cyrillic.
fn unmangle_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars() {
        if c.is_ascii() {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn flush(word: &mut String, out: &mut String) {
    if word.is_empty() {
        return;
    }
    out.push_str(&unmangle(word).unwrap_or_else(|| word.clone()));
    word.clear();
}

fn unmangle(word: &str) -> Option<String> {
    if word.chars().count() < 2 {
        return None;
    }
    // Older Mac OS tables (still used by Windows' code page 10007) had `¢` at 0xA2 and `∂` at
    // 0xB6 where encoding_rs (and macOS since 9.0) have `Ґ` and `ґ`: accept both.
    let word: String = word
        .chars()
        .map(|c| match c {
            '¢' => 'Ґ',
            '∂' => 'ґ',
            c => c,
        })
        .collect();
    let (bytes, _, unmappable) = X_MAC_CYRILLIC.encode(&word);
    if unmappable {
        return None;
    }
    let fixed = std::str::from_utf8(&bytes).ok()?;
    fixed
        .chars()
        .all(|c| ('\u{0400}'..='\u{04FF}').contains(&c))
        .then(|| fixed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_mac(utf8: &str) -> String {
        X_MAC_CYRILLIC
            .decode_without_bom_handling(utf8.as_bytes())
            .0
            .into_owned()
    }

    /// What Windows' code page 10007 makes of UTF-8 (0xA2 is `¢` there).
    fn as_cp10007(utf8: &str) -> String {
        as_mac(utf8).replace('Ґ', "¢").replace('ґ', "∂")
    }

    #[test]
    fn utf8_labelled_mac_cyrillic_is_read_as_utf8() {
        let garbled = as_mac("© 2019 Привет");
        assert_ne!(garbled, "© 2019 Привет");
        assert_eq!(
            repair(&garbled, Some("x-mac-cyrillic")).as_deref(),
            Some("© 2019 Привет")
        );
    }

    #[test]
    fn mojibake_made_by_the_sender_is_undone() {
        let sender_mistake = as_cp10007("Текущий счет");
        assert_eq!(sender_mistake, "–¢–µ–Ї—Г—Й–Є–є —Б—З–µ—В");
        let on_the_wire = as_mac(&format!("<f>{sender_mistake}</f>"));
        assert_eq!(
            repair(&on_the_wire, Some("\"X-MAC-CYRILLIC\"")).as_deref(),
            Some("<f>Текущий счет</f>")
        );
        // The same mistake made with the newer table.
        let newer = as_mac(&as_mac("Жёлтый"));
        assert_eq!(
            repair(&newer, Some("x-mac-cyrillic")).as_deref(),
            Some("Жёлтый")
        );
    }

    #[test]
    fn real_mac_cyrillic_and_other_labels_are_left_alone() {
        // Genuine Mac Cyrillic bytes are not UTF-8: kept as decoded.
        let (bytes, _, _) = X_MAC_CYRILLIC.encode("Добрый день, — это тест");
        let decoded = X_MAC_CYRILLIC
            .decode_without_bom_handling(&bytes)
            .0
            .into_owned();
        assert_eq!(repair(&decoded, Some("x-mac-cyrillic")), None);
        assert_eq!(repair("–¢–µ", Some("utf-8")), None);
        assert_eq!(repair("plain ascii", Some("x-mac-cyrillic")), None);
        // A lone dash or a price stays as written.
        assert_eq!(unmangle_words("5 ¢ – ok"), "5 ¢ – ok");
    }
}
