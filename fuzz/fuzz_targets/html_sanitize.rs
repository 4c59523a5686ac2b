//! The two HTML allowlists: the core's for operator HTML (`content::sanitize_html`, also applied
//! to channel HTML going into Matrix) and the web chat's for what reaches a visitor's browser
//! (`sanitize::agent_html`). Their output is checked tag by tag: only allowlisted tags and
//! attributes, only http/https/mailto links (no relative ones in the browser), no script.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::matrix::content::sanitize_html;
use switchboard_fuzz::{check_sanitized_html, AGENT_HTML, CORE_HTML};
use switchboard_webchat::sanitize::agent_html;

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    let core = sanitize_html(&html);
    check_sanitized_html(&html, &core, &CORE_HTML);
    check_sanitized_html(&html, &agent_html(&html), &AGENT_HTML);
    // The path an operator's HTML takes to a visitor: core first, then the web chat again.
    check_sanitized_html(&html, &agent_html(&core), &AGENT_HTML);
});
