//! Reaction keys as the networks take them: what counts as an emoji a person could have picked
//! (Matrix allows any text as a reaction key; the networks do not), how two spellings of the
//! same emoji are recognised as one (variation selectors, skin tones), and a network's fixed
//! palette ([`Palette`]: Telegram lets bots react with a listed set only), with the reason an
//! operator reads when their reaction cannot go out.

/// Longest reaction key taken, in characters: the longest emoji ZWJ sequences (families, flags
/// with tags) are under 12 code points.
const MAX_KEY_CHARS: usize = 16;

/// Whether `key` is an emoji as a person picks one: not empty, short, no letters, digits,
/// spaces, punctuation or control characters (Matrix clients also send text keys such as
/// `+1` or `ok`, which no network shows as a reaction).
pub fn is_emoji(key: &str) -> bool {
    let chars = key.chars().count();
    if chars == 0 || chars > MAX_KEY_CHARS {
        return false;
    }
    let mut pictographic = false;
    for c in key.chars() {
        if c.is_ascii() || c.is_control() || c.is_whitespace() || c.is_alphanumeric() {
            // Keycaps (`1️⃣`) are the one emoji spelled with ASCII; they are rare as
            // reactions and no network's palette has them.
            return false;
        }
        if !is_joiner_or_modifier(c) {
            pictographic = true;
        }
    }
    pictographic
}

/// Zero-width joiner, variation selectors, skin tones, tag characters: parts of an emoji that
/// are not one by themselves.
fn is_joiner_or_modifier(c: char) -> bool {
    matches!(c, '\u{200D}' | '\u{FE0E}' | '\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}' | '\u{E0020}'..='\u{E007F}')
}

/// `key` without variation selectors and skin tones: the form two spellings of one emoji
/// share (`❤️` and `❤`, `👍🏽` and `👍`).
pub fn bare(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '\u{FE0E}' | '\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}'))
        .collect()
}

/// A network's fixed set of reactions, and close emoji mapped onto it.
#[derive(Clone, Copy, Debug)]
pub struct Palette {
    /// The network's name as operators know it ("Telegram").
    pub network: &'static str,
    /// The emoji the network takes, spelled as it wants them.
    pub allowed: &'static [&'static str],
    /// `(asked, sent)`: emoji outside the palette that mean what one inside does.
    pub aliases: &'static [(&'static str, &'static str)],
}

impl Palette {
    /// The palette's spelling of `key`: itself, the same emoji spelled otherwise, or its
    /// alias. `Err` is the reason, for the operator, why it cannot be sent.
    pub fn pick(&self, key: &str) -> Result<&'static str, String> {
        if let Some(exact) = self.allowed.iter().find(|a| **a == key) {
            return Ok(exact);
        }
        let wanted = bare(key);
        if let Some(same) = self.allowed.iter().find(|a| bare(a) == wanted) {
            return Ok(same);
        }
        if let Some((_, sent)) = self.aliases.iter().find(|(asked, _)| bare(asked) == wanted) {
            return Ok(sent);
        }
        Err(format!(
            "{} lets the bot react only with {}; the reaction {key} was not sent",
            self.network,
            self.allowed.join(" ")
        ))
    }

    /// Whether the network would take `key` exactly as it is.
    pub fn contains(&self, key: &str) -> bool {
        self.allowed.contains(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Palette = Palette {
        network: "Net",
        allowed: &["👍", "❤", "🤣"],
        aliases: &[("😂", "🤣")],
    };

    #[test]
    fn emoji_and_not() {
        for yes in ["👍", "❤️", "👍🏽", "👨‍💻", "🇩🇪", "🏳️‍🌈", "✍"]
        {
            assert!(is_emoji(yes), "{yes}");
        }
        for no in [
            "", "+1", "ok", "👍 ok", "a👍", "\u{200D}", "\u{FE0F}", "👍\n", "Ж",
        ] {
            assert!(!is_emoji(no), "{no:?}");
        }
        assert!(!is_emoji(&"👍".repeat(17)));
    }

    #[test]
    fn palette_maps_spellings_and_aliases_and_names_the_refused() {
        assert_eq!(P.pick("👍"), Ok("👍"));
        assert_eq!(P.pick("❤️"), Ok("❤"));
        assert_eq!(P.pick("👍🏿"), Ok("👍"));
        assert_eq!(P.pick("😂"), Ok("🤣"));
        let refused = P.pick("🦆").unwrap_err();
        assert!(refused.contains("Net lets the bot react only with 👍 ❤ 🤣"));
        assert!(refused.contains("🦆 was not sent"));
        assert!(P.contains("❤") && !P.contains("❤️"));
    }
}
