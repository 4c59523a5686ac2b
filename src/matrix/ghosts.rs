//! Ghost user ids: `@<prefix><channel>_<escaped contact id>:<domain>`, and the test of whether a
//! user belongs to the bridge's namespace (whose events must never be relayed back).

/// The longest user id the Matrix spec allows, in bytes.
pub const MAX_USER_ID_BYTES: usize = 255;

/// The bridge's naming of users.
#[derive(Clone, Debug)]
pub struct Namespace {
    pub prefix: String,
    pub bot: String,
    pub domain: String,
}

impl Namespace {
    pub fn new(prefix: &str, bot_localpart: &str, domain: &str) -> Namespace {
        Namespace {
            prefix: prefix.to_string(),
            bot: format!("@{bot_localpart}:{domain}"),
            domain: domain.to_string(),
        }
    }

    /// Localpart of the ghost for a contact on a channel.
    ///
    /// A user id is at most 255 bytes (the spec's limit, enforced by homeservers). A contact id
    /// too long for that (an e-mail address near its own 254-character limit, escaped) keeps
    /// as much of its escaped form as fits and ends with a hash of the whole id, so it stays
    /// unique and the same every time.
    pub fn ghost_localpart(&self, channel: &str, contact_id: &str) -> String {
        let head = format!("{}{}_", self.prefix, channel);
        let escaped = escape(contact_id);
        // "@" + localpart + ":" + domain
        let room = MAX_USER_ID_BYTES.saturating_sub(head.len() + self.domain.len() + 2);
        if escaped.len() <= room {
            return format!("{head}{escaped}");
        }
        use sha2::Digest;
        let digest = hex::encode(&sha2::Sha256::digest(contact_id.as_bytes())[..10]);
        // `=h` never occurs in an escaped id (`=` is always followed by two hex digits), so a
        // hashed localpart cannot equal another contact's plain one.
        let keep = room.saturating_sub(digest.len() + 2);
        format!("{head}{}=h{digest}", &escaped[..keep])
    }

    pub fn ghost_user_id(&self, channel: &str, contact_id: &str) -> String {
        format!(
            "@{}:{}",
            self.ghost_localpart(channel, contact_id),
            self.domain
        )
    }

    /// Is this user the bot or one of our ghosts?
    pub fn is_ours(&self, user_id: &str) -> bool {
        if user_id == self.bot {
            return true;
        }
        let Some(rest) = user_id.strip_prefix('@') else {
            return false;
        };
        let Some((local, server)) = rest.split_once(':') else {
            return false;
        };
        server == self.domain && local.starts_with(&self.prefix)
    }

    /// Regex of the ghosts' user ids for registration.yaml.
    pub fn ghost_regex(&self) -> String {
        format!(
            "@{}.*:{}",
            regex_escape(&self.prefix),
            regex_escape(&self.domain)
        )
    }
}

/// Map any string to Matrix localpart characters, reversibly: lowercase letters, digits, `.` and
/// `-` stay; `_` becomes `__`; an upper-case letter becomes `_` + lower case; any other byte
/// becomes `=xx`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' => out.push(b as char),
            b'_' => out.push_str("__"),
            b'A'..=b'Z' => {
                out.push('_');
                out.push(b.to_ascii_lowercase() as char);
            }
            _ => out.push_str(&format!("={b:02x}")),
        }
    }
    out
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if ".^$*+?()[]{}|\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_ids_apart_and_valid() {
        assert_eq!(escape("abc-1.2"), "abc-1.2");
        assert_eq!(escape("Ab_c"), "_ab__c");
        assert_eq!(escape("a b/ü"), "a=20b=2f=c3=bc");
        assert_ne!(escape("A"), escape("_a"));
        let valid = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._=-".contains(c))
        };
        assert!(valid(&escape("Ünïcode 💬 @x:y")));
    }

    #[test]
    fn namespace_recognises_own_users_only() {
        let ns = Namespace::new("sb_", "switchboard", "example.com");
        assert_eq!(
            ns.ghost_user_id("webchat", "V1"),
            "@sb_webchat__v1:example.com"
        );
        assert!(ns.is_ours("@sb_webchat__v1:example.com"));
        assert!(ns.is_ours("@switchboard:example.com"));
        assert!(!ns.is_ours("@sb_webchat__v1:other.org"));
        assert!(!ns.is_ours("@alice:example.com"));
        assert_eq!(ns.ghost_regex(), "@sb_.*:example\\.com");
    }

    /// The longest e-mail address (254 characters) still makes a valid user id, unique and
    /// stable, recognised as ours.
    #[test]
    fn long_contact_ids_make_valid_user_ids() {
        let ns = Namespace::new("sb_", "switchboard", "example.com");
        let long = |c: char| format!("{}@{}.example", "J".repeat(64), c.to_string().repeat(180));
        let (a, b) = (long('a'), long('b'));
        let (ga, gb) = (ns.ghost_user_id("email", &a), ns.ghost_user_id("email", &b));
        assert!(ga.len() <= MAX_USER_ID_BYTES, "{} bytes", ga.len());
        assert_ne!(ga, gb);
        assert_eq!(ga, ns.ghost_user_id("email", &a));
        assert!(ns.is_ours(&ga));
        assert!(ga.starts_with("@sb_email__j_j_j"), "{ga}");
        let short = ns.ghost_user_id("email", "jane@example.org");
        assert_eq!(short, "@sb_email_jane=40example.org:example.com");
    }
}
