//! Ghost user ids: `@<prefix><channel>_<escaped contact id>:<domain>`, and the test of whether a
//! user belongs to the bridge's namespace (whose events must never be relayed back).

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
    pub fn ghost_localpart(&self, channel: &str, contact_id: &str) -> String {
        format!("{}{}_{}", self.prefix, channel, escape(contact_id))
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
}
