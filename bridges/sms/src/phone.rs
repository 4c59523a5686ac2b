//! Phone numbers: anything a person or Twilio writes → E.164 (`+<country code><number>`), and
//! E.164 → a readable form for ghost names.
//!
//! Twilio itself sends E.164 in `From`/`To`, but configuration (the company's numbers, known
//! contacts) and the occasional national form do not, so every number goes through
//! [`normalize`] with the configured default [`Region`]: a leading `+` is international; the
//! region's international call prefix (`00`, `011`, …) is too; otherwise the number is national,
//! its trunk prefix (`0`, or `1` in North America) dropped and the region's country code put in
//! front. Separators (spaces, dashes, dots, parentheses, slashes) are ignored; letters are not
//! a number. This is deliberately not libphonenumber: it knows each region's prefixes, not
//! every numbering plan, so it checks lengths (E.164 allows at most 15 digits) rather than
//! whether a number is assigned — Twilio answers that (error 21211).

/// A numbering region: its country calling code and dialling prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// ISO 3166 alpha-2 code.
    pub code: &'static str,
    /// Country calling code (without `+`).
    pub calling_code: &'static str,
    /// Dialled before a national number from within the country (`0`; `1` in North America);
    /// empty when the national number has none or keeps it (Italy).
    pub trunk_prefix: &'static str,
    /// Dialled before an international number from within the country.
    pub international_prefix: &'static str,
    /// Digits of a national significant number, when the plan fixes it (10 in North America).
    pub national_length: Option<usize>,
}

const fn region(
    code: &'static str,
    cc: &'static str,
    trunk: &'static str,
    intl: &'static str,
) -> Region {
    Region {
        code,
        calling_code: cc,
        trunk_prefix: trunk,
        international_prefix: intl,
        national_length: None,
    }
}

/// A region of the North American Numbering Plan (+1, ten-digit national numbers).
const fn nanp(code: &'static str) -> Region {
    Region {
        code,
        calling_code: "1",
        trunk_prefix: "1",
        international_prefix: "011",
        national_length: Some(10),
    }
}

/// The regions [`Region::parse`] knows.
const REGIONS: &[(&str, &str, &str, &str)] = &[
    ("GB", "44", "0", "00"),
    ("IE", "353", "0", "00"),
    ("DE", "49", "0", "00"),
    ("AT", "43", "0", "00"),
    ("CH", "41", "0", "00"),
    ("FR", "33", "0", "00"),
    ("BE", "32", "0", "00"),
    ("NL", "31", "0", "00"),
    ("LU", "352", "", "00"),
    ("ES", "34", "", "00"),
    ("PT", "351", "", "00"),
    ("IT", "39", "", "00"),
    ("DK", "45", "", "00"),
    ("NO", "47", "", "00"),
    ("SE", "46", "0", "00"),
    ("FI", "358", "0", "00"),
    ("PL", "48", "", "00"),
    ("CZ", "420", "", "00"),
    ("UA", "380", "0", "00"),
    ("RU", "7", "8", "810"),
    ("KZ", "7", "8", "810"),
    ("TR", "90", "0", "00"),
    ("IL", "972", "0", "00"),
    ("AE", "971", "0", "00"),
    ("IN", "91", "0", "00"),
    ("ID", "62", "0", "001"),
    ("SG", "65", "", "000"),
    ("MY", "60", "0", "00"),
    ("PH", "63", "0", "00"),
    ("JP", "81", "0", "010"),
    ("KR", "82", "0", "001"),
    ("CN", "86", "0", "00"),
    ("AU", "61", "0", "0011"),
    ("NZ", "64", "0", "00"),
    ("BR", "55", "0", "00"),
    ("MX", "52", "", "00"),
    ("AR", "54", "0", "00"),
    ("CO", "57", "", "00"),
    ("ZA", "27", "0", "00"),
    ("NG", "234", "0", "009"),
    ("KE", "254", "0", "000"),
    ("EG", "20", "0", "00"),
];

impl Region {
    pub const US: Region = nanp("US");

    /// A region by its ISO code (case-insensitive).
    pub fn parse(code: &str) -> Option<Region> {
        let code = code.trim().to_ascii_uppercase();
        if let Some(nanp_code) = ["US", "CA", "PR"].iter().find(|c| **c == code) {
            return Some(nanp(nanp_code));
        }
        REGIONS
            .iter()
            .find(|r| r.0 == code)
            .map(|&(c, cc, trunk, intl)| region(c, cc, trunk, intl))
    }
}

/// Why a string is not a phone number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("no digits")]
    Empty,
    #[error("{0:?} is not allowed in a phone number")]
    BadCharacter(char),
    #[error("{0} digits is not a phone number length")]
    BadLength(usize),
    #[error("a country code never starts with 0")]
    BadCountryCode,
}

/// A number in E.164 form, or why not.
pub fn normalize(input: &str, region: Region) -> Result<String, PhoneError> {
    let s = input.trim();
    let s = s.strip_prefix("tel:").unwrap_or(s);
    let mut digits = String::new();
    let mut plus = false;
    for (i, c) in s.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 || (digits.is_empty() && !plus) => plus = true,
            ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' | '\u{2010}'..='\u{2015}' => {}
            other => return Err(PhoneError::BadCharacter(other)),
        }
    }
    if digits.is_empty() {
        return Err(PhoneError::Empty);
    }
    let international = if plus {
        digits
    } else if let Some(rest) = digits
        .strip_prefix(region.international_prefix)
        .filter(|_| !region.international_prefix.is_empty())
    {
        rest.to_owned()
    } else {
        let mut national = digits.as_str();
        let has_trunk =
            !region.trunk_prefix.is_empty() && national.starts_with(region.trunk_prefix);
        match region.national_length {
            // North America: "1 415 555 0100" is the trunk prefix + 10 digits.
            Some(len) if has_trunk && national.len() == len + region.trunk_prefix.len() => {
                national = &national[region.trunk_prefix.len()..];
            }
            Some(len) if national.len() != len => {
                return Err(PhoneError::BadLength(national.len()))
            }
            Some(_) => {}
            None if has_trunk => national = &national[region.trunk_prefix.len()..],
            None => {}
        }
        format!("{}{national}", region.calling_code)
    };
    if international.starts_with('0') {
        return Err(PhoneError::BadCountryCode);
    }
    if !(7..=15).contains(&international.len()) {
        return Err(PhoneError::BadLength(international.len()));
    }
    Ok(format!("+{international}"))
}

/// Two-digit country calling codes (ITU-T E.164 assignments); `1` and `7` are the one-digit
/// ones; every other code has three digits.
const TWO_DIGIT_CODES: &[&str] = &[
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
];

/// The country calling code of an E.164 number's digits.
fn split_country(digits: &str) -> (&str, &str) {
    let cc_len = if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else if TWO_DIGIT_CODES.iter().any(|c| digits.starts_with(c)) {
        2
    } else {
        3
    };
    digits.split_at(cc_len.min(digits.len()))
}

/// A readable form of an E.164 number: `+1 415 555 0100`, `+49 171 000 0000`. Anything else
/// is returned as it is.
pub fn format(e164: &str) -> String {
    let Some(digits) = e164
        .strip_prefix('+')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    else {
        return e164.to_owned();
    };
    let (cc, national) = split_country(digits);
    let mut out = format!("+{cc}");
    let mut rest = national;
    while !rest.is_empty() {
        let take = if rest.len() <= 4 { rest.len() } else { 3 };
        out.push(' ');
        out.push_str(&rest[..take]);
        rest = &rest[take..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(s: &str) -> Result<String, PhoneError> {
        normalize(s, Region::US)
    }

    fn de(s: &str) -> Result<String, PhoneError> {
        normalize(s, Region::parse("de").unwrap())
    }

    #[test]
    fn international_forms_keep_their_country() {
        assert_eq!(us("+14155552345").as_deref(), Ok("+14155552345"));
        assert_eq!(us("+49 171 0000000").as_deref(), Ok("+491710000000"));
        assert_eq!(us("tel:+44-20-7946-0018").as_deref(), Ok("+442079460018"));
        assert_eq!(us("011 44 20 7946 0018").as_deref(), Ok("+442079460018"));
        assert_eq!(de("0049 171 0000000").as_deref(), Ok("+491710000000"));
        assert_eq!(de("+1 (415) 555-2345").as_deref(), Ok("+14155552345"));
    }

    #[test]
    fn national_forms_take_the_default_region() {
        assert_eq!(us("(415) 555-2345").as_deref(), Ok("+14155552345"));
        assert_eq!(us("415.555.2345").as_deref(), Ok("+14155552345"));
        assert_eq!(us("1-415-555-2345").as_deref(), Ok("+14155552345"));
        assert_eq!(de("0171 0000000").as_deref(), Ok("+491710000000"));
        assert_eq!(de("030/1234567").as_deref(), Ok("+49301234567"));
        let gb = Region::parse("GB").unwrap();
        assert_eq!(
            normalize("020 7946 0018", gb).as_deref(),
            Ok("+442079460018")
        );
        let it = Region::parse("IT").unwrap();
        assert_eq!(
            normalize("06 1234 5678", it).as_deref(),
            Ok("+390612345678"),
            "Italy keeps its leading 0"
        );
        let ru = Region::parse("RU").unwrap();
        assert_eq!(
            normalize("8 (912) 345-67-89", ru).as_deref(),
            Ok("+79123456789")
        );
        assert_eq!(
            normalize("810 49 171 0000000", ru).as_deref(),
            Ok("+491710000000")
        );
    }

    #[test]
    fn what_is_not_a_number_says_why() {
        assert_eq!(us(""), Err(PhoneError::Empty));
        assert_eq!(us("+"), Err(PhoneError::Empty));
        assert_eq!(us("call me"), Err(PhoneError::BadCharacter('c')));
        assert_eq!(
            us("555-2345"),
            Err(PhoneError::BadLength(7)),
            "a US number needs its area code"
        );
        assert_eq!(us("+1234"), Err(PhoneError::BadLength(4)));
        assert_eq!(us("+1234567890123456"), Err(PhoneError::BadLength(16)));
        assert_eq!(us("+0123456789"), Err(PhoneError::BadCountryCode));
        assert_eq!(us("+1 415 555 2345 +"), Err(PhoneError::BadCharacter('+')));
        assert_eq!(
            us("whatsapp:+14155552345"),
            Err(PhoneError::BadCharacter('w'))
        );
    }

    #[test]
    fn numbers_are_formatted_by_country() {
        assert_eq!(format("+14155552345"), "+1 415 555 2345");
        assert_eq!(format("+491710000000"), "+49 171 000 0000");
        assert_eq!(format("+442079460018"), "+44 207 946 0018");
        assert_eq!(format("+79123456789"), "+7 912 345 6789");
        assert_eq!(format("+3531234567"), "+353 123 4567");
        assert_eq!(format("12345"), "12345", "a short code stays as it is");
        assert_eq!(format("+"), "+");
    }

    #[test]
    fn regions_are_parsed_by_code() {
        assert_eq!(Region::parse("us"), Some(Region::US));
        assert_eq!(Region::parse("CA").map(|r| r.calling_code), Some("1"));
        assert_eq!(Region::parse("DE").map(|r| r.calling_code), Some("49"));
        assert_eq!(Region::parse("XX"), None);
    }
}
