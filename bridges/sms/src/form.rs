//! `application/x-www-form-urlencoded` bodies, as Twilio posts its webhooks.
//!
//! A [`Form`] keeps every pair in order, repeated names included (the signature covers them
//! all). Decoding never fails: bytes that are not UTF-8 become U+FFFD, as in every form parser,
//! and the signature check then fails unless Twilio signed exactly that.

/// A decoded form body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form(Vec<(String, String)>);

/// Decode a form body.
pub fn parse(body: &[u8]) -> Form {
    Form(
        form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

impl Form {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, when it is not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded_in_order() {
        let f = parse(b"Body=Hi+there%21&To=%2B4915700000000&Body=again&Empty=&Bare");
        assert_eq!(f.get("Body"), Some("Hi there!"));
        assert_eq!(f.get("To"), Some("+4915700000000"));
        assert_eq!(f.non_empty("Empty"), None);
        assert_eq!(f.get("Bare"), Some(""));
        assert_eq!(f.pairs().len(), 5);
        assert_eq!(parse(b"").pairs().len(), 0);
        assert_eq!(parse(b"A=%FF").get("A"), Some("\u{fffd}"));
    }
}
