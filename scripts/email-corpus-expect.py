#!/usr/bin/env python3
"""What a person reading each mail of tests/corpus/email in a mail client sees, written to
tests/corpus/email/expected.json for bridges/email/tests/corpus.rs.

The reader is Python's `email` package (policy.default), an implementation independent of
the bridge's mail-parser: the sender's address, the subject, the text a client shows (the
preferred body: plain, else HTML without tags; for a mail it cannot split, its raw body),
the names of the attached files and a coarse kind (delivery report, list, auto-reply,
person). A few lines of that text are kept as snippets the room must contain. Entries in
tests/corpus/email/differs.json (kept by hand) say where the room rightly shows something else
and why; this script never writes them.

Run: python3 scripts/email-corpus-expect.py   (from the repository root)
"""
import email
import email.policy
import html
import json
import pathlib
import re

ROOT = pathlib.Path("tests/corpus/email")


def words(s):
    return " ".join(s.split())


def text_of(part):
    try:
        content = part.get_content()
    except Exception:
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", "replace")
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    if not isinstance(content, str):
        return ""
    if part.get_content_type() == "text/html":
        content = re.sub(r"(?is)<(script|style|title|head)[^>]*>.*?</\1>", " ", content)
        content = re.sub(r"(?s)<[^>]+>", " ", content)
        content = html.unescape(content)
    return content


def snippets(text):
    lines = [words(l) for l in text.splitlines()]
    lines = [l for l in lines if len(l) >= 8 and not l.startswith(">") and "=" not in l[-1:]]
    if not lines:
        return []
    picked = [lines[0]] if len(lines) == 1 else [lines[0], lines[-1]]
    return [p[:60].strip() for p in picked]


def kind(msg):
    ct = msg.get_content_type()
    if ct == "multipart/report" and (msg.get_param("report-type") or "").lower() == "delivery-status":
        return "bounce"
    frm = str(msg.get("From", "")).lower()
    if "mailer-daemon" in frm or "postmaster" in frm or "mail delivery" in frm:
        return "bounce"
    if any(k.lower().startswith("list-") or k.lower().startswith("x-mailman") for k in msg.keys()):
        return "list"
    if str(msg.get("Precedence", "")).lower().strip() in ("list", "bulk", "junk"):
        return "list"
    auto = str(msg.get("Auto-Submitted", "")).lower().strip()
    if auto and not auto.startswith("no"):
        return "auto-reply"
    return "person"


def expect(path):
    raw = path.read_bytes()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    entry = {"file": str(path.relative_to(ROOT))}
    try:
        addrs = msg["From"].addresses if msg["From"] is not None else ()
        entry["from"] = addrs[0].addr_spec.lower() if addrs and addrs[0].addr_spec not in ("", "<>") else None
    except Exception:
        entry["from"] = None
    try:
        entry["subject"] = words(str(msg["Subject"])) if msg["Subject"] is not None else ""
    except Exception:
        entry["subject"] = None
    body = msg.get_body(preferencelist=("plain", "html")) if msg.is_multipart() else msg
    shown = body is not None and body.get_content_maintype() == "text" and body.get_content_disposition() != "attachment"
    text = text_of(body) if shown else ""
    if not text.strip() and msg.is_multipart() and not msg.get_payload():
        text = raw.split(b"\n\n", 1)[-1].decode("utf-8", "replace")
    entry["text"] = snippets(text)
    names = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        if name and part.get_content_disposition() == "attachment":
            names.append(words(str(name)))
    entry["files"] = names
    entry["kind"] = kind(msg)
    return entry


def main():
    out = []
    for path in sorted(ROOT.rglob("*")):
        if path.is_file() and path.suffix in (".eml", ".txt") and path.parent != ROOT:
            out.append(expect(path))
    (ROOT / "expected.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(out)} messages")


if __name__ == "__main__":
    main()
