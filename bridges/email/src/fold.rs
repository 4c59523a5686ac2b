//! Folding quoted history and signatures out of a reply, so the room shows what is new.
//!
//! Mail clients quote the whole thread under (or over) every answer. The room already has those
//! messages, so the text shown is cut at the first of:
//!
//! * an attribution line that introduces the quote: `On … wrote:`, `… написал(а):`,
//!   `Am … schrieb …:`, `Le … a écrit :` (also when a client wrapped it over two lines);
//! * Outlook's separators: `-----Original Message-----`, or a `From:` line followed within a
//!   few lines by `Sent:`/`Date:` and `To:`/`Subject:`;
//! * a trailing block of `>` lines (inline answers between quoted lines are kept);
//! * the signature separator `-- ` and the usual `Sent from my …` phone footers.
//!
//! If cutting would leave nothing (a mail that is only a quote), nothing is folded.

/// The result of folding a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folded {
    pub new_text: String,
    /// What was cut off (quote, signature), when anything was.
    pub folded: Option<String>,
}

fn is_attribution(line: &str) -> bool {
    let l = line.trim();
    if l.is_empty() || l.len() > 400 {
        return false;
    }
    let lower = l.to_lowercase();
    let ends_colon = l.ends_with(':');
    (lower.starts_with("on ") && lower.contains("wrote"))
        || (ends_colon
            && (lower.contains(" wrote") || lower.contains("написал") || lower.contains("пишет")))
        || (lower.starts_with("am ") && lower.contains("schrieb"))
        || (lower.starts_with("le ") && lower.contains("a écrit"))
        || lower.starts_with("-----original message-----")
        || lower.starts_with("----- original message -----")
        || lower.starts_with("-----исходное сообщение-----")
        || lower.starts_with("________________________________")
}

fn is_outlook_header(lines: &[&str], i: usize) -> bool {
    let starts = |l: &str, keys: &[&str]| {
        let t = l.trim_start().trim_start_matches('*').to_lowercase();
        keys.iter().any(|k| t.starts_with(k))
    };
    if !starts(lines[i], &["from:", "от:", "von:", "de :"]) {
        return false;
    }
    let window = &lines[i + 1..(i + 6).min(lines.len())];
    window
        .iter()
        .any(|l| starts(l, &["sent:", "date:", "отправлено:", "дата:", "gesendet:"]))
        && window
            .iter()
            .any(|l| starts(l, &["to:", "subject:", "кому:", "тема:", "an:", "betreff:"]))
}

fn is_signature_start(line: &str) -> bool {
    let t = line.trim_end();
    t == "--" || t == "-- " || line == "-- " || {
        let lower = line.trim().to_lowercase();
        lower.starts_with("sent from my ")
            || lower.starts_with("get outlook for ")
            || lower.starts_with("отправлено с ")
    }
}

/// Fold quoted history and signature out of `text`.
pub fn fold(text: &str) -> Folded {
    let lines: Vec<&str> = text.lines().collect();
    let mut cut = lines.len();
    for i in 0..lines.len() {
        let line = lines[i];
        let two = if i + 1 < lines.len() {
            format!("{} {}", line.trim(), lines[i + 1].trim())
        } else {
            String::new()
        };
        if is_attribution(line)
            || (line.trim().to_lowercase().starts_with("on ")
                && !two.is_empty()
                && is_attribution(&two))
            || is_outlook_header(&lines, i)
            || is_signature_start(line)
        {
            cut = i;
            break;
        }
        // A block of quoted lines that runs to the end.
        if line.starts_with('>')
            && lines[i..]
                .iter()
                .all(|l| l.starts_with('>') || l.trim().is_empty())
        {
            cut = i;
            break;
        }
    }
    let new_text = lines[..cut].join("\n").trim_end().to_string();
    if cut == lines.len() || new_text.trim().is_empty() {
        return Folded {
            new_text: text.trim_end().to_string(),
            folded: None,
        };
    }
    let rest = lines[cut..].join("\n").trim().to_string();
    Folded {
        new_text,
        folded: if rest.is_empty() { None } else { Some(rest) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_style_quote_is_folded() {
        let f = fold("Thanks, that works.\n\nOn Mon, 3 Mar 2025 at 10:00, Support <support@example.test> wrote:\n> Try again\n> please");
        assert_eq!(f.new_text, "Thanks, that works.");
        assert!(f.folded.unwrap().contains("> Try again"));
    }

    #[test]
    fn wrapped_attribution_is_folded() {
        let f = fold("Yes.\nOn Mon, 3 Mar 2025 at 10:00, Support\n<support@example.test> wrote:\n> Try again");
        assert_eq!(f.new_text, "Yes.");
    }

    #[test]
    fn russian_attribution_outlook_and_signature() {
        assert_eq!(
            fold("Да, спасибо\n\n3 марта 2025 г., Поддержка написал(а):\n> текст").new_text,
            "Да, спасибо"
        );
        assert_eq!(
            fold("Fine\n\nFrom: Support <s@x>\nSent: Monday\nTo: me\nSubject: Re: x\n\nold")
                .new_text,
            "Fine"
        );
        assert_eq!(fold("Hello\n-- \nJohn Smith\nACME").new_text, "Hello");
        assert_eq!(fold("Hello\n\nSent from my iPhone").new_text, "Hello");
    }

    #[test]
    fn inline_answers_are_kept_and_pure_quotes_are_not_folded() {
        let t = "> question one\nanswer one\n> question two\nanswer two";
        assert_eq!(fold(t).new_text, t);
        assert_eq!(fold("> only a quote").new_text, "> only a quote");
        assert!(fold("no quote here").folded.is_none());
    }
}
