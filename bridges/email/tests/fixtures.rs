//! The parser on every sample in `../shared/fixtures/email` (see its README for provenance):
//! charsets decode to the right text, HTML-only mail renders, bounces and auto-replies are
//! recognised, and no input — truncated or corrupt — makes it panic.

use std::path::PathBuf;

use switchboard_email::parse::{parse, MailKind, ParsedMail};

/// The samples, found as the kit finds every network's (beside a checkout or above a worktree).
fn dir() -> PathBuf {
    switchboard_kit::test_host::fixtures_dir("email").expect("shared/fixtures/email")
}

fn raw(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn mail(name: &str) -> ParsedMail {
    parse(&raw(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_fixture_parses_and_every_prefix_is_harmless() {
    let mut count = 0;
    for entry in std::fs::read_dir(dir()).expect("fixtures dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("eml") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        let m = parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!m.message_id.is_empty());
        // Truncated anywhere (a connection cut mid-FETCH): a result, never a panic.
        for cut in (0..bytes.len()).step_by(97) {
            let _ = parse(&bytes[..cut]);
        }
        count += 1;
    }
    assert!(count >= 22, "found {count} fixtures");
}

#[test]
fn koi8r_and_windows1251_in_base64_and_8bit() {
    for name in [
        "thunderbird_koi8r_base64.eml",
        "thunderbird_windows1251_base64.eml",
        "derived_thunderbird_koi8r_8bit.eml",
        "derived_thunderbird_windows1251_8bit.eml",
    ] {
        let m = mail(name);
        assert_eq!(m.subject, "Алфавит", "{name}");
        assert_eq!(m.new_text, "Вопрос", "{name}");
        assert_eq!(m.kind, MailKind::Personal);
    }
}

#[test]
fn multipart_koi8r_text_cp1251_html_and_cyrillic_file_name() {
    let m = mail("constructed_ru_koi8r_8bit_multipart.eml");
    assert_eq!(m.from_name.as_deref(), Some("Иван Петров"));
    assert_eq!(m.from_address.as_deref(), Some("ivan.petrov@example.ru"));
    assert_eq!(m.subject, "Не могу войти в личный кабинет");
    assert!(
        m.new_text.contains("Здравствуйте!") && m.new_text.contains("Сессия истекла"),
        "{}",
        m.new_text
    );
    let html = m.html.expect("html part");
    assert!(html.contains("«Сессия истекла»"), "{html}");
    assert_eq!(m.files.len(), 1);
    assert_eq!(m.files[0].name, "скриншот.png");
    assert_eq!(m.files[0].mime, "image/png");
}

#[test]
fn mixed_charset_encoded_words_in_headers() {
    let m = mail("kix_mixed_charset_headers_cp1251.eml");
    assert!(
        m.subject.contains("Сергей Углицких")
            && m.subject.contains("Priorität")
            && m.subject.contains("使って"),
        "{}",
        m.subject
    );
    let m = mail("kix_koi8r_encoded_filename_msword.eml");
    assert_eq!(m.subject, "Заявка на генерацию 402 240108 (3)");
    assert_eq!(m.files[0].name, "Заявка на генерацию 402 240108 (3).doc");
    assert_eq!(m.files[0].mime, "application/msword");
    let m = mail("mikel_mail_windows1251_qp_bad_date.eml");
    assert_eq!(m.from_name.as_deref(), Some("Атиковa"));
    assert_eq!(m.date_ms, None, "a Date in the year 3609 is ignored");
    let m = mail("mikel_mail_rfc6532_utf8_headers.eml");
    assert_eq!(m.from_name.as_deref(), Some("Jöhn Doe"));
    assert_eq!(m.subject, "Säying Hello");
    assert!(
        m.message_id.ends_with("@no-message-id.switchboard.invalid"),
        "a stable id is made up: {}",
        m.message_id
    );
    assert_eq!(
        parse(&raw("mikel_mail_rfc6532_utf8_headers.eml"))
            .unwrap()
            .message_id,
        m.message_id
    );
}

#[test]
fn shift_jis_windows1252_and_arabic() {
    let m = mail("mikel_mail_shift_jis.eml");
    assert!(
        m.new_text.contains("このメールはテスト用のメールです。"),
        "{}",
        m.new_text
    );
    let m = mail("zbateson_windows1252_qp.eml");
    assert!(
        m.subject.contains("Frösche") && m.new_text.contains("mißliche"),
        "{}",
        m.subject
    );
    let m = mail("chatwoot_non_utf_encoded_mail.eml");
    assert_eq!(m.subject, "أهلين عميلنا الكريم");
    assert!(m.new_text.contains("أنظروا"));
}

#[test]
fn html_only_mail_renders() {
    let m = mail("chatwoot_only_html.eml");
    assert_eq!(m.new_text, "This is html only mail");
    let html = m.html.expect("html");
    assert!(
        html.contains("<h1>") && html.contains("This is html only mail"),
        "{html}"
    );
    assert!(m.in_reply_to.is_empty(), "an empty In-Reply-To is no id");
}

#[test]
fn threading_headers() {
    let m = mail("chatwoot_references.eml");
    assert_eq!(
        m.references,
        vec![
            "4e6e35f5a38b4_479f13bb90078178@small-app-01.mail",
            "test-in-reply-to"
        ]
    );
    assert_eq!(
        m.in_reply_to,
        vec!["4e6e35f5a38b4_479f13bb90078178@small-app-01.mail"]
    );
    let m = mail("mikel_mail_reply.eml");
    assert_eq!(
        m.in_reply_to,
        vec!["348F04F142D69C21-291E56D292BC@xxxx.net"]
    );
    assert_eq!(m.references.len(), 2);
}

#[test]
fn attachments_keep_names_and_types() {
    let m = mail("mikel_mail_attachment_pdf.eml");
    assert_eq!(m.subject, "Another PDF with 🎉 Unicode chars in it 🍿");
    assert_eq!(
        (m.files[0].name.as_str(), m.files[0].mime.as_str()),
        ("broken.pdf", "application/pdf")
    );
    assert!(m.files[0].data.starts_with(b"%PDF"));
    let m = mail("mikel_mail_attachment_nonascii_filename.eml");
    assert_eq!(m.files[0].name, "ciële.txt");
    let m = mail("mikel_mail_nested_rfc822_attachment.eml");
    assert!(
        m.files
            .iter()
            .any(|f| f.name == "truncated.png" && f.mime == "image/png"),
        "{:?}",
        m.files.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
}

#[test]
fn bounces_name_the_returned_mail_and_the_reason() {
    let cases = [
        (
            "zammad_mail033_postfix_bounce.eml",
            "notification.20150830145600.1.4.5f4fd063-f69b-4e64-a92d-5e7128bd6682@127.0.0.1:3000",
            "User unknown",
        ),
        (
            "mikel_mail_bounce_report_530.eml",
            "200712232303.lBNN3jDq002941@mail12.rrrr.com.au",
            "Unknown E-Mail Address",
        ),
        (
            "chatwoot_bounced_gmail.eml",
            "conversation/93775311-9416-4428-964b-862001f8a8b2/messages/27855337@gmail.com",
            "alex.jones@fictionalcorp.com",
        ),
    ];
    for (name, original, reason) in cases {
        let m = mail(name);
        let MailKind::Bounce(b) = &m.kind else {
            panic!("{name}: not a bounce: {:?}", m.kind)
        };
        assert!(
            b.original_message_ids.iter().any(|i| i == original),
            "{name}: {:?}",
            b.original_message_ids
        );
        assert!(b.reason.contains(reason), "{name}: {}", b.reason);
        assert!(m.files.is_empty(), "a bounce's parts are not uploaded");
        assert_eq!(m.kind.prefix(), Some("[bounce]"));
    }
}

#[test]
fn auto_replies_and_list_mail_are_recognised() {
    assert_eq!(
        mail("chatwoot_non_utf_encoded_mail.eml").kind,
        MailKind::AutoReply
    );
    let ooo = b"From: Bob <bob@example.test>\r\nTo: support@example.test\r\nSubject: Automatic reply: Your order\r\nMessage-ID: <ooo@x>\r\n\r\nI am away.\r\n";
    assert_eq!(parse(ooo).unwrap().kind, MailKind::AutoReply);
    let auto = b"From: b@example.test\r\nAuto-Submitted: auto-replied (vacation)\r\nSubject: Hi\r\n\r\nAway\r\n";
    assert_eq!(parse(auto).unwrap().kind, MailKind::AutoReply);
    let no = b"From: b@example.test\r\nAuto-Submitted: no\r\nSubject: Hi\r\n\r\nHere\r\n";
    assert_eq!(parse(no).unwrap().kind, MailKind::Personal);
    let list = b"From: news@example.test\r\nList-Id: <news.example.test>\r\nList-Unsubscribe: <mailto:u@example.test>\r\nSubject: News\r\n\r\nNews\r\n";
    assert_eq!(parse(list).unwrap().kind, MailKind::List);
    let bulk = b"From: news@example.test\r\nPrecedence: bulk\r\nSubject: News\r\n\r\nNews\r\n";
    assert_eq!(parse(bulk).unwrap().kind, MailKind::List);
}

#[test]
fn replies_are_folded_to_what_is_new() {
    let reply = "From: Jane <jane@example.test>\r\nSubject: Re: Order\r\nMessage-ID: <r1@x>\r\nIn-Reply-To: <o1@x>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYes, please send it again.\r\n\r\nJane\r\n-- \r\nJane Doe, ACME\r\n\r\nOn Tue, 4 Mar 2025 Support <support@example.test> wrote:\r\n> Shall we resend?\r\n";
    let m = parse(reply.as_bytes()).unwrap();
    assert_eq!(m.new_text, "Yes, please send it again.\n\nJane");
    assert!(m.folded && m.full_text.contains("> Shall we resend?"));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(parse(b"").is_err());
    assert!(parse(b"   \r\n").is_err());
    assert!(parse(&[0xff, 0xfe, 0x00, 0x01, 0x02, 0x80, 0x81]).is_err());
    assert!(parse(b"\x00\x00\x00\x00binary junk without any header at all\xff\xfe").is_err());
    // Deep multipart nesting and an unterminated boundary.
    let mut deep = String::from("From: a@b\r\nSubject: deep\r\n");
    for i in 0..200 {
        deep.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    let _ = parse(deep.as_bytes());
    // Found by the email_parse fuzz target: this mail trips an internal assertion of
    // mail-parser ("Invalid part ID, could not find multipart") in debug builds. It must come
    // back as a result (the mail kept as unreadable), never as a panic of the reader task.
    let _ = parse(include_bytes!("data/fuzz-mail-parser-assert.eml"));
}

#[test]
fn utf8_labelled_x_mac_cyrillic_reads_as_russian() {
    // SendBlaster labels UTF-8 as x-mac-cyrillic, and its own template already carried the
    // Russian through that mistake once: both are undone (see `charset`).
    let m = mail("phpmimemailparser_x_mac_cyrillic_qp.eml");
    assert!(
        m.full_text.contains("<f>Текущий счет</f>"),
        "{}",
        m.full_text
    );
    assert!(
        m.full_text
            .contains("© 2019 Science and Education Foundation"),
        "{}",
        m.full_text
    );
    assert!(!m.full_text.contains('¬'), "{}", m.full_text);
    let html = m.html.as_deref().unwrap_or_default();
    assert!(html.contains("© 2019 Science"), "{html}");
    assert!(!html.contains("¬©"), "{html}");
}

/// File names go through the kit's sanitiser (this copy used to keep bidirectional overrides,
/// reserved Windows characters and device names), and an unnamed part is named by the kit's
/// mime table (a .docx, not a bare `attachment-2`).
#[test]
fn file_names_follow_the_kit() {
    let raw = concat!(
        "From: a@example.org\r\nTo: b@example.org\r\nSubject: files\r\n",
        "Message-ID: <k@example.org>\r\nMIME-Version: 1.0\r\n",
        "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
        "--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n",
        "--b\r\nContent-Type: application/octet-stream\r\n",
        "Content-Disposition: attachment; filename*=UTF-8''invoice%E2%80%AEfdp.exe\r\n\r\nx\r\n",
        "--b\r\nContent-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document\r\n",
        "Content-Disposition: attachment\r\n\r\ny\r\n",
        "--b\r\nContent-Type: text/plain\r\n",
        "Content-Disposition: attachment; filename=\"con.txt\"\r\n\r\nz\r\n",
        "--b--\r\n",
    );
    let m = parse(raw.as_bytes()).expect("parses");
    let names: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["invoicefdp.exe", "attachment-2.docx", "_con.txt"],
        "{names:?}"
    );
}
