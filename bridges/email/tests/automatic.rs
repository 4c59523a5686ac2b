//! Mail no person wrote — delivery reports, mailing-list mail — is recognised beyond the
//! `List-*` / `Precedence` headers, and a report whose structure is broken still names the
//! reason and the failed recipients. Real messages from `tests/corpus/email` (see each
//! source's PROVENANCE.md); header variants are made from them in the test, one header at a
//! time.

use std::path::PathBuf;

use switchboard_email::parse::{parse, MailKind, ParsedMail};

fn raw(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/email")
        .join(path);
    String::from_utf8(std::fs::read(&p).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn mail(text: &str) -> ParsedMail {
    parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// Header lines of `text` whose name starts with one of `prefixes`, removed (with their
/// continuation lines).
fn without_headers(text: &str, prefixes: &[&str]) -> String {
    let (head, body) = text.split_once("\n\n").expect("a header block");
    let mut out = Vec::new();
    let mut dropping = false;
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if !dropping {
                out.push(line);
            }
            continue;
        }
        let lower = line.to_ascii_lowercase();
        dropping = prefixes.iter().any(|p| lower.starts_with(p));
        if !dropping {
            out.push(line);
        }
    }
    format!("{}\n\n{body}", out.join("\n"))
}

fn replace_header(text: &str, name: &str, value: &str) -> String {
    let (head, body) = text.split_once("\n\n").expect("a header block");
    let lines: Vec<String> = head
        .lines()
        .map(|l| {
            if l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            {
                format!("{name}: {value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    format!("{}\n\n{body}", lines.join("\n"))
}

/// A Mailman list post (mail-parser's third-party sample 014, from the Shapelib list): list
/// mail with all its headers, and still list mail with only Mailman's own, or only a list
/// robot as Sender, or as a digest from the list's -request address.
#[test]
fn mailing_list_mail_is_recognised_beyond_list_headers() {
    let post = raw("mail-parser/thirdparty_014.eml").replace("\r\n", "\n");
    assert_eq!(mail(&post).kind, MailKind::List);
    let bare = without_headers(
        &post,
        &[
            "list-",
            "precedence",
            "x-mailman",
            "sender",
            "errors-to",
            "x-beenthere",
        ],
    );
    assert_eq!(
        mail(&bare).kind,
        MailKind::Personal,
        "the control: no list sign left"
    );
    let mailman_only = format!("X-Mailman-Version: 2.1.9\n{bare}");
    assert_eq!(mail(&mailman_only).kind, MailKind::List);
    let robot_sender = format!("Sender: shapelib-bounces@lists.maptools.org\n{bare}");
    assert_eq!(mail(&robot_sender).kind, MailKind::List);
    let digest = replace_header(&bare, "From", "shapelib-request@lists.maptools.org");
    let digest = replace_header(&digest, "Subject", "Shapelib Digest, Vol 45, Issue 2");
    assert_eq!(mail(&digest).kind, MailKind::List);
    let majordomo = format!("Sender: owner-linux-kernel@vger.rutgers.edu\n{bare}");
    assert_eq!(mail(&majordomo).kind, MailKind::List);
}

/// A report from "Mail Delivery Subsystem" with no report type, no subject, a headerless part
/// and an empty returned message (Python's msg_42): a bounce naming the returned mail's
/// recipient, never a customer's message. So is a mail from postmaster or MAILER-DAEMON in any
/// spelling, or with an empty From.
#[test]
fn mail_systems_are_recognised_by_name_and_address() {
    let report = raw("cpython/msg_42.txt");
    let m = mail(&report);
    let MailKind::Bounce(b) = &m.kind else {
        panic!("not a bounce: {:?}", m.kind)
    };
    assert_eq!(b.recipients, ["zzz@example.com"]);
    for from in [
        "postmaster@example.com",
        "Postmaster <admin@example.com>",
        "MAILER-DAEMON@example.com",
        "Mail Delivery System <MAILER-DAEMON@example.com>",
        "MAILER DAEMON <>",
    ] {
        let m = mail(&replace_header(&report, "From", from));
        assert!(
            matches!(m.kind, MailKind::Bounce(_)),
            "{from}: {:?}",
            m.kind
        );
    }
    let person = replace_header(&report, "From", "Dana Post <dana@example.com>");
    assert_eq!(mail(&person).kind, MailKind::Personal, "the control");
}

/// A Postfix bounce whose boundary never occurs: the parts cannot be split, yet the reason,
/// all five failed recipients and the returned mail's Message-ID are read from its text.
#[test]
fn a_broken_bounce_still_names_reason_and_recipients() {
    let intact = mail(&raw(
        "mikel-mail/multipart_report_emails__multi_address_bounce2.eml",
    ));
    let broken = mail(&raw(
        "derived/multi_address_bounce2_boundary_never_occurs.eml",
    ));
    let (MailKind::Bounce(intact), MailKind::Bounce(broken)) = (&intact.kind, &broken.kind) else {
        panic!("{:?} / {:?}", intact.kind, broken.kind)
    };
    assert_eq!(broken.recipients.len(), 5, "{:?}", broken.recipients);
    assert_eq!(broken.recipients, intact.recipients);
    assert!(
        broken.reason.contains("550") && broken.reason.contains("does not exist"),
        "{}",
        broken.reason
    );
    assert_eq!(broken.original_message_ids, intact.original_message_ids);
}

/// A read notification as RFC 8098 section 3 lays it out (constructed: no real MDN was found in
/// the public suites), for `<answer-1@support.example.test>`.
fn mdn(disposition: &str) -> String {
    format!(
        "From: Jane Customer <customer@example.test>\r\nTo: support@example.test\r\n\
         Subject: Read: Re: Order 1234\r\nMessage-ID: <mdn-1@customer.example.test>\r\n\
         Date: Mon, 3 Mar 2025 11:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=disposition-notification; boundary=\"r\"\r\n\r\n\
         --r\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         The message sent on 3 Mar 2025 to customer@example.test was displayed.\r\n\
         --r\r\nContent-Type: message/disposition-notification\r\n\r\n\
         Reporting-UA: mail.example.test; Thunderbird\r\n\
         Final-Recipient: rfc822;customer@example.test\r\n\
         Original-Message-ID: <answer-1@support.example.test>\r\n\
         Disposition: manual-action/MDN-sent-manually; {disposition}\r\n\r\n\
         --r--\r\n"
    )
}

/// An MDN saying "displayed" is the customer's read receipt for our answer; one saying
/// "deleted" is not, and neither is a customer's message.
#[test]
fn read_notifications_name_the_mail_that_was_read() {
    assert_eq!(
        mail(&mdn("displayed")).kind,
        MailKind::ReadReceipt(vec!["answer-1@support.example.test".into()])
    );
    assert_eq!(mail(&mdn("deleted")).kind, MailKind::AutoReply);
}

/// A delivery report whose every recipient was delivered (the Postfix report with its actions
/// changed) names the delivered mail; the same report with failures stays a bounce.
#[test]
fn delivery_reports_say_delivered_or_failed() {
    let failed = mail(&raw(
        "mikel-mail/multipart_report_emails__multi_address_bounce2.eml",
    ));
    let MailKind::Bounce(bounce) = &failed.kind else {
        panic!("{:?}", failed.kind)
    };
    let delivered = mail(&raw("derived/multi_address_bounce2_delivered.eml"));
    assert_eq!(
        delivered.kind,
        MailKind::Delivered(bounce.original_message_ids.clone())
    );
}

/// A report that delivery is only delayed (RFC 3464 `Action: delayed`: "could not send message
/// for past 8 hours", a real one from the corpus) is a warning, not a bounce: nothing failed
/// yet. The reason and the recipient are kept for the notice operators read.
#[test]
fn a_delay_warning_is_not_a_failure() {
    let warning = mail(&raw("mikel-mail/multipart_report_emails__report_422.eml"));
    let MailKind::Delayed(delay) = &warning.kind else {
        panic!("{:?}", warning.kind)
    };
    assert!(!delay.recipients.is_empty(), "{delay:?}");
    assert!(!delay.reason.is_empty(), "{delay:?}");
    // The same report with the delayed recipient failed is a bounce again.
    let failed = raw("mikel-mail/multipart_report_emails__report_422.eml")
        .replace("Action: delayed", "Action: failed");
    assert!(matches!(mail(&failed).kind, MailKind::Bounce(_)));
}
