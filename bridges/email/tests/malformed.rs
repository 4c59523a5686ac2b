//! Mail whose MIME is broken, or whose text is spread over several parts, shown as a mail client
//! shows it: every text part in order in both bodies, and malformed structure read as text —
//! never turned into a file the sender did not attach. The messages are real ones from public
//! mail test suites (`tests/corpus/email/*/PROVENANCE.md`); `derived/` ones change one thing in
//! a real message to make the class it names.

use std::path::PathBuf;

use switchboard_email::parse::{parse, ParsedMail};

fn corpus(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/email")
        .join(path)
}

fn mail(path: &str) -> ParsedMail {
    let raw = std::fs::read(corpus(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse(&raw).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn names(m: &ParsedMail) -> Vec<&str> {
    m.files.iter().map(|f| f.name.as_str()).collect()
}

/// Text, attachment, HTML, text in one multipart/mixed: the plain body has all three texts in
/// order, and so has the formatted one (it used to hold the HTML part only).
#[test]
fn every_text_part_in_order_in_both_bodies() {
    let m = mail("derived/msg_44_plain_html_between_files.txt");
    let plain = &m.full_text;
    let first = plain.find("a simple kind of mirror").expect(plain);
    let third = plain
        .find("after the picture, the third part")
        .expect(plain);
    let fourth = plain.find("the fourth part, plain again").expect(plain);
    assert!(first < third && third < fourth, "{plain}");
    let html = m
        .html
        .as_deref()
        .expect("an HTML part makes a formatted body");
    let first = html.find("a simple kind of mirror").expect(html);
    let third = html.find("<b>after</b> the picture").expect(html);
    let fourth = html.find("the fourth part, plain again").expect(html);
    assert!(first < third && third < fourth, "{html}");
    assert_eq!(names(&m), ["msg.txt", "mirror.png"]);
}

/// `Content-Type: multipart/alternative;` with no boundary (Python's email tests, msg_41):
/// shown as the text it is, not as a file called `attachment-1`.
#[test]
fn a_multipart_without_a_boundary_is_text() {
    let m = mail("cpython/msg_41.txt");
    assert_eq!(m.new_text, "Blah blah blah");
    assert!(m.files.is_empty(), "{:?}", names(&m));
}

/// `boundary=BOUNDARY_` while the parts are delimited by `--BOUNDARY` (msg_31): the body is
/// shown as text, both messages in it.
#[test]
fn a_boundary_that_never_occurs_is_text() {
    let m = mail("cpython/msg_31.txt");
    assert!(
        m.full_text.contains("message 1") && m.full_text.contains("message 2"),
        "{}",
        m.full_text
    );
    assert!(m.files.is_empty(), "{:?}", names(&m));
}

/// The boundary parameter cut short (`boundary="h90VII`): the text is there and no file is made
/// up — the mail reads as the intact one does.
#[test]
fn a_truncated_boundary_parameter_is_text() {
    let m = mail("derived/msg_44_truncated_boundary.txt");
    let intact = mail("cpython/msg_44.txt");
    assert!(
        m.full_text.contains("a simple kind of mirror"),
        "{}",
        m.full_text
    );
    assert_eq!(names(&m), names(&intact));
    assert!(
        m.files.iter().all(|f| !f.mime.starts_with("multipart/")),
        "{:?}",
        names(&m)
    );
}

/// A part whose body follows its headers without an empty line: the body is still its text.
#[test]
fn a_part_without_an_empty_line_after_its_headers_keeps_its_text() {
    let m = mail("derived/msg_44_part_without_empty_line.txt");
    assert_eq!(
        m.full_text.matches("a simple kind of mirror").count(),
        2,
        "{}",
        m.full_text
    );
}

/// The top-level header block runs into the body (msg_35): the line is the body.
#[test]
fn a_header_block_without_an_empty_line_keeps_its_text() {
    let m = mail("cpython/msg_35.txt");
    assert_eq!(m.subject, "here's something interesting");
    assert_eq!(
        m.new_text,
        "counter to RFC 5322, there's no separating newline here"
    );
}

/// `Content-Type: text` (no subtype; ELM wrote it, here a 1999 linux-kernel post): text/plain.
#[test]
fn content_type_text_without_subtype_is_plain_text() {
    let m = mail("lkml/E11VMqH-0007Bz-00.eml");
    assert!(
        m.full_text
            .contains("There is a 2.3.x driver for PPP in kernel space."),
        "{}",
        m.full_text
    );
    assert!(m.files.is_empty(), "{:?}", names(&m));
}

/// Two text parts named `msg.txt` without `Content-Disposition: attachment` (msg_44): both
/// texts are shown, as mail clients show inline parts.
#[test]
fn named_inline_text_parts_are_shown() {
    let m = mail("cpython/msg_44.txt");
    assert_eq!(
        m.full_text.matches("a simple kind of mirror").count(),
        2,
        "{}",
        m.full_text
    );
}
