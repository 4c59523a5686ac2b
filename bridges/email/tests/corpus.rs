//! The corpus test: every real message in `tests/corpus/email/<source>/` (provenance and
//! licence in each source's PROVENANCE.md), checked against what a person reading it in a mail
//! client sees — `tests/corpus/email/expected.json`, written by
//! `scripts/email-corpus-expect.py` with Python's `email` package as the reader, an
//! implementation independent of the bridge's. Per message: it parses (no panic, no error),
//! the sender's address, the subject, the text (snippets of the body the reader shows must be
//! in the room's text), every attached file by name, the kind (person, auto-reply, bounce,
//! list), and no file that is a bare multipart.
//!
//! Where the room rightly shows something else than that reader, `differs.json` says which
//! check and why (kept by hand); the test prints those with the counts, so the note can report
//! them, and fails on any other difference.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use switchboard_email::parse::{parse, MailKind, ParsedMail};
use switchboard_kit::safe_file_name;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/email")
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn kind_name(kind: &MailKind) -> &'static str {
    match kind {
        MailKind::Personal => "person",
        MailKind::AutoReply => "auto-reply",
        MailKind::Bounce(_) => "bounce",
        MailKind::List => "list",
        MailKind::ReadReceipt(_) => "read receipt",
        MailKind::Delivered(_) => "delivery report",
        MailKind::Delayed(_) => "delay warning",
    }
}

/// The differences between the room and the reader for one message: (check, detail).
fn check(expected: &Value, mail: &ParsedMail) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(from) = expected["from"].as_str() {
        if mail.from_address.as_deref() != Some(from) {
            out.push(("from", format!("{:?} ≠ {from:?}", mail.from_address)));
        }
    }
    if let Some(subject) = expected["subject"].as_str() {
        if words(&mail.subject) != words(subject) {
            out.push(("subject", format!("{:?} ≠ {subject:?}", mail.subject)));
        }
    }
    // The room's text: the plain body (the formatted one holds the same parts in order).
    let shown = words(&mail.full_text);
    for snippet in expected["text"].as_array().into_iter().flatten() {
        let snippet = words(snippet.as_str().unwrap_or_default());
        if !shown.contains(&snippet) {
            out.push(("text", format!("{snippet:?} not in {:?}", cut(&shown))));
        }
    }
    let names: Vec<&str> = mail.files.iter().map(|f| f.name.as_str()).collect();
    for name in expected["files"].as_array().into_iter().flatten() {
        let name = safe_file_name(name.as_str().unwrap_or_default(), "attachment");
        if !names.contains(&name.as_str()) {
            out.push(("files", format!("{name:?} not in {names:?}")));
        }
    }
    if let Some(f) = mail.files.iter().find(|f| f.mime.starts_with("multipart/")) {
        out.push((
            "files",
            format!("a bare multipart became the file {:?}", f.name),
        ));
    }
    let kind = kind_name(&mail.kind);
    if expected["kind"].as_str() != Some(kind) {
        out.push(("kind", format!("{kind} ≠ {}", expected["kind"])));
    }
    out
}

fn cut(s: &str) -> String {
    s.chars().take(160).collect()
}

#[test]
fn every_corpus_message_shows_what_a_mail_client_shows() {
    let expected: Vec<Value> = serde_json::from_slice(
        &std::fs::read(root().join("expected.json")).expect("expected.json"),
    )
    .expect("expected.json is JSON");
    let differs: BTreeMap<String, BTreeMap<String, String>> =
        serde_json::from_slice(&std::fs::read(root().join("differs.json")).expect("differs.json"))
            .expect("differs.json is JSON");

    // Every message on disk is in the manifest (a new file without expectations fails).
    let mut on_disk = 0;
    for source in std::fs::read_dir(root()).expect("corpus dir") {
        let source = source.expect("entry").path();
        if !source.is_dir() {
            continue;
        }
        assert!(
            source.join("PROVENANCE.md").exists(),
            "{} has no PROVENANCE.md",
            source.display()
        );
        on_disk += std::fs::read_dir(&source)
            .expect("source dir")
            .filter(|e| {
                e.as_ref().is_ok_and(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.ends_with(".eml") || n.ends_with(".txt")
                })
            })
            .count();
    }
    assert_eq!(on_disk, expected.len(), "expected.json is out of date");
    assert!(expected.len() >= 100, "{} messages", expected.len());

    let mut passed = 0;
    let mut agree = 0;
    let mut explained: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in &expected {
        let file = entry["file"].as_str().expect("file");
        let raw = std::fs::read(root().join(file)).expect("message");
        let allowed = differs.get(file).cloned().unwrap_or_default();
        let mail = match parse(&raw) {
            Ok(m) => m,
            Err(e) => {
                match allowed.get("parse") {
                    Some(why) => explained.push(format!("{file}: parse ({e}): {why}")),
                    None => failures.push(format!("{file}: parse error: {e}")),
                }
                continue;
            }
        };
        *by_kind.entry(kind_name(&mail.kind)).or_default() += 1;
        let mut ok = true;
        for (what, detail) in check(entry, &mail) {
            match allowed.get(what) {
                Some(why) => explained.push(format!("{file}: {what}: {why}")),
                None => {
                    ok = false;
                    failures.push(format!("{file}: {what}: {detail}"));
                }
            }
        }
        // An explanation that no longer explains anything is stale.
        for what in allowed.keys() {
            if what != "parse" && !check(entry, &mail).iter().any(|(w, _)| w == what) {
                failures.push(format!(
                    "{file}: differs.json explains {what}, which now agrees"
                ));
                ok = false;
            }
        }
        if ok {
            passed += 1;
            if allowed.is_empty() {
                agree += 1;
            }
        }
        // Truncated anywhere (a connection cut mid-FETCH): a result, never a panic.
        for cut in (0..raw.len()).step_by(raw.len() / 7 + 1) {
            let _ = parse(&raw[..cut]);
        }
    }
    println!(
        "email corpus: {} messages, {passed} passed ({agree} exactly as the reader shows them, {} \
         with {} explained differences), {} failed; kinds {by_kind:?}",
        expected.len(),
        passed - agree,
        explained.len(),
        failures.len()
    );
    for e in &explained {
        println!("  differs (explained): {e}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} messages differ from what a mail client shows:\n{}",
        failures.len(),
        expected.len(),
        failures.join("\n")
    );
}
