//! Operator HTML on its way to Telegram (`switchboard_telegram::format::html_to_telegram`), after
//! the core's sanitiser as in production and on raw input too.
//!
//! Invariants: the output is what Telegram's `parse_mode=HTML` accepts — only b/i/u/s/code/pre/
//! a/blockquote tags, properly nested and closed, `<a>` with exactly one quoted href, and no
//! character reference but `&lt; &gt; &amp; &quot;` — so a refusal ("can't parse entities")
//! can only come from Telegram changing its rules; and converting never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::matrix::content::sanitize_html;
use switchboard_telegram::format::html_to_telegram;

fn check_telegram_html(input: &str, out: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = out;
    while let Some(pos) = rest.find(['<', '&', '>']) {
        let here = &rest[pos..];
        assert!(
            !here.starts_with('>'),
            "unescaped '>' in {out:?} from {input:?}"
        );
        if here.starts_with('&') {
            let ok = ["&lt;", "&gt;", "&amp;", "&quot;"]
                .iter()
                .any(|e| here.starts_with(e));
            assert!(ok, "bare or unsupported entity in {out:?} from {input:?}");
            rest = &here[1..];
            continue;
        }
        let end = here
            .find('>')
            .unwrap_or_else(|| panic!("unclosed tag in {out:?} from {input:?}"));
        let tag = &here[1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name),
                "misnested </{name}> in {out:?} from {input:?}"
            );
        } else {
            let name = tag.split(' ').next().unwrap_or("");
            assert!(
                ["b", "i", "u", "s", "code", "pre", "a", "blockquote"].contains(&name),
                "tag <{tag}> in {out:?} from {input:?}"
            );
            if name == "a" {
                let href = tag
                    .strip_prefix("a href=\"")
                    .and_then(|h| h.strip_suffix('"'));
                assert!(
                    href.is_some_and(|h| !h.contains('"')),
                    "bad link <{tag}> in {out:?}"
                );
            } else {
                assert_eq!(tag, name, "attributes on <{tag}> in {out:?}");
            }
            stack.push(name.to_owned());
        }
        rest = &here[end + 1..];
    }
    assert!(
        stack.is_empty(),
        "unclosed {stack:?} in {out:?} from {input:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    check_telegram_html(&html, &html_to_telegram(&sanitize_html(&html)));
    check_telegram_html(&html, &html_to_telegram(&html));
});
