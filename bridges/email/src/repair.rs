//! Raw bytes mended before MIME parsing: a header block that runs into its body.
//!
//! RFC 5322 puts an empty line between a header block and its body. Some senders leave it out —
//! at the top of the mail or after a part's boundary line — and a parser that keeps reading
//! header fields swallows the first line(s) of the text, so the reader sees nothing. Mail
//! readers treat the first line that cannot be a header field as the start of the body
//! (Python's `email` package names this `MissingHeaderBodySeparatorDefect` and does exactly
//! that). [`separate_headers`] inserts the missing empty line there, so mail-parser sees the
//! same structure a person's mail client shows.
//!
//! A line that is not a header field but is followed by more header fields before the empty
//! line is a broken header (a folded line that lost its leading space), not the body: it is
//! left for mail-parser, which skips it and keeps the fields after it.

/// The raw mail with an empty line inserted where a header block runs into its body, or None
/// when every header block is already closed.
pub fn separate_headers(raw: &[u8]) -> Option<Vec<u8>> {
    let lines: Vec<&[u8]> = raw.split_inclusive(|b| *b == b'\n').collect();
    let boundaries = boundaries(raw);
    let newline: &[u8] = if raw.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut insert_before: Vec<usize> = Vec::new();
    let mut in_headers = true;
    let mut fields_seen = 0usize;
    let mut i = 0;
    while i < lines.len() {
        let line = trim_newline(lines[i]);
        if in_headers {
            if i == 0 && line.starts_with(b"From ") {
                // An mbox "From " line before the headers.
            } else if line.is_empty() {
                in_headers = false;
            } else if line[0] == b' ' || line[0] == b'\t' || is_field(line) {
                fields_seen += 1;
            } else if is_boundary(line, &boundaries) {
                // A part with no headers and no body: the next part starts.
                fields_seen = 0;
            } else if fields_seen > 0 && !more_fields_follow(&lines[i + 1..], &boundaries) {
                insert_before.push(i);
                in_headers = false;
            }
        } else if is_boundary(line, &boundaries) {
            in_headers = true;
            fields_seen = 0;
        }
        i += 1;
    }
    if insert_before.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len() + insert_before.len() * 2);
    for (n, line) in lines.iter().enumerate() {
        if insert_before.contains(&n) {
            out.extend_from_slice(newline);
        }
        out.extend_from_slice(line);
    }
    Some(out)
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `name:` with a name of printable ASCII except `:` (RFC 5322 section 2.2), spaces allowed
/// before the colon as obsolete syntax permits.
fn is_field(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return false;
    };
    let name = &line[..colon];
    let name = name
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map(|end| &name[..=end])
        .unwrap_or(&[]);
    !name.is_empty() && name.iter().all(|b| (33..=126).contains(b) && *b != b':')
}

fn more_fields_follow(rest: &[&[u8]], boundaries: &[Vec<u8>]) -> bool {
    for line in rest {
        let line = trim_newline(line);
        if line.is_empty() || is_boundary(line, boundaries) {
            return false;
        }
        if is_field(line) {
            return true;
        }
    }
    false
}

/// `--boundary` or `--boundary--` for any boundary the mail declares.
fn is_boundary(line: &[u8], boundaries: &[Vec<u8>]) -> bool {
    let Some(rest) = line.strip_prefix(b"--") else {
        return false;
    };
    let rest = trim_trailing_space(rest);
    boundaries.iter().any(|b| {
        rest == b.as_slice()
            || rest
                .strip_prefix(b.as_slice())
                .is_some_and(|tail| tail == b"--")
    })
}

fn trim_trailing_space(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(0, |e| e + 1);
    &s[..end]
}

/// Every `boundary=` parameter value in the mail (quoted or not).
fn boundaries(raw: &[u8]) -> Vec<Vec<u8>> {
    const KEY: &[u8] = b"boundary=";
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut at = 0;
    while at + KEY.len() <= raw.len() {
        let Some(found) = raw[at..]
            .windows(KEY.len())
            .position(|w| w.eq_ignore_ascii_case(KEY))
        else {
            break;
        };
        let start = at + found + KEY.len();
        let value: Vec<u8> = if raw.get(start) == Some(&b'"') {
            raw[start + 1..]
                .iter()
                .take_while(|b| **b != b'"' && **b != b'\r' && **b != b'\n')
                .copied()
                .collect()
        } else {
            raw[start..]
                .iter()
                .take_while(|b| !matches!(**b, b';' | b' ' | b'\t' | b'\r' | b'\n'))
                .copied()
                .collect()
        };
        if !value.is_empty() && !out.contains(&value) {
            out.push(value);
        }
        at = start;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_top_level_block_without_its_empty_line_gets_one() {
        let raw = b"From: a@b\nSubject: s\ncounter to RFC 5322, no separating newline\n";
        let fixed = separate_headers(raw).expect("mended");
        assert_eq!(
            fixed,
            b"From: a@b\nSubject: s\n\ncounter to RFC 5322, no separating newline\n"
        );
    }

    #[test]
    fn a_part_without_its_empty_line_gets_one_and_good_mail_is_left_alone() {
        let raw = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/plain\r\nhello\r\n--x--\r\n";
        let fixed = separate_headers(raw).expect("mended");
        assert_eq!(
            fixed,
            b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n--x--\r\n"
        );
        assert_eq!(separate_headers(&fixed), None);
        // A broken header line among headers is not the body.
        assert_eq!(
            separate_headers(b"From: a@b\nbroken line\nSubject: s\n\nbody\n"),
            None
        );
    }
}
