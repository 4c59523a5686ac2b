//! Forwarded mail, files with the same name and files kept elsewhere, as a mail client shows
//! them: a `message/rfc822` is quoted in the text with its sender, date, subject and text (and
//! stays a `.eml` file); two files named alike get distinct names; a `message/external-body`
//! is described and never becomes a file. Real messages from `tests/corpus/email`.

use std::path::PathBuf;

use switchboard_email::parse::{parse, ParsedMail};

fn mail(path: &str) -> ParsedMail {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/email")
        .join(path);
    let raw = std::fs::read(&p).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse(&raw).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Apple Mail forwarding a mail as an attachment (mikel/mail): the room's text quotes it.
#[test]
fn a_forwarded_mail_is_quoted_inline_besides_its_eml() {
    let m = mail("mikel-mail/attachment_emails__attachment_message_rfc822.eml");
    for line in [
        "This is the first part.",
        "> From: Test Tester <xxxx@xxxx.com>",
        "> Date: Tue, 10 May 2005 11:26:39 -0600",
        "> Subject: Another PDF",
        "> Just attaching another PDF, here, to see what the message looks like,",
    ] {
        assert!(m.new_text.contains(line), "{line:?} in {}", m.new_text);
    }
    assert!(
        m.new_text.find("This is the first part.") < m.new_text.find("> Subject: Another PDF"),
        "{}",
        m.new_text
    );
    let eml: Vec<_> = m
        .files
        .iter()
        .filter(|f| f.mime == "message/rfc822")
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(eml, ["ForwardedMessage.eml"]);
}

/// A bounce's returned mail is the bounced mail, not something a customer forwarded.
#[test]
fn a_bounce_does_not_quote_the_returned_mail() {
    let m = mail("mikel-mail/multipart_report_emails__multi_address_bounce2.eml");
    assert!(!m.new_text.contains("Forwarded message"), "{}", m.new_text);
}

/// Python's msg_44: two text parts both named msg.txt — two files, two names.
#[test]
fn files_with_the_same_name_get_distinct_names() {
    let m = mail("cpython/msg_44.txt");
    let names: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["msg.txt", "msg (2).txt"]);
}

/// RFC 2046's example of `message/external-body` (mail-parser's rfc/001): three references,
/// described in the text; no file is made of them.
#[test]
fn an_external_body_is_described_never_a_file() {
    let m = mail("mail-parser/rfc_001.eml");
    assert!(
        m.files.is_empty(),
        "{:?}",
        m.files.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
    for words in [
        "\"BodyFormats.ps\" on thumper.bellcore.com in pub (access type ANON-FTP",
        "\"/u/nsb/writing/rfcs/RFC-MIME.ps\" on thumper.bellcore.com (access type local-file",
    ] {
        assert!(m.new_text.contains(words), "{words:?} in {}", m.new_text);
    }
    assert_eq!(
        m.new_text
            .matches("The sender referred to a file kept elsewhere")
            .count(),
        3
    );
}

/// Made-distinct names stay within the kit's limits (200 characters): the number replaces the
/// end of a long name, never the extension.
#[test]
fn distinct_names_stay_within_the_limits() {
    let long = format!("{}.pdf", "к".repeat(196));
    let part = format!(
        "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; \
         filename*=UTF-8''{}\r\n\r\nx\r\n",
        long.bytes()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>()
    );
    let raw = format!(
        "From: a@example.org\r\nSubject: twice\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
         {part}{part}--b--\r\n"
    );
    let m = parse(raw.as_bytes()).expect("parses");
    let names: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names.len(), 2);
    assert_ne!(names[0].to_lowercase(), names[1].to_lowercase());
    assert!(names[1].ends_with(" (2).pdf"), "{}", names[1]);
    assert!(
        names
            .iter()
            .all(|n| n.chars().count() <= 200 && n.len() <= 255),
        "{names:?}"
    );
}
