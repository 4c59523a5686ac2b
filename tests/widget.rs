//! The website chat as a customer uses it: the real widget in headless Chromium, embedded in the
//! demo page with its one script tag, talking to the real bridge and a real Synapse, with an
//! operator answering through a real Matrix client.

mod rig;

use std::time::Duration;

use anyhow::{ensure, Context};
use rig::{Backend, BridgeOptions, Browser, TestEnv};
use serde_json::Value;

const AGENT_ROW: &str = "[data-testid=message][data-from=agent]";
const VISITOR_ROW: &str = "[data-testid=message][data-from=visitor]";

/// JavaScript that reads something inside the widget's shadow root.
fn in_widget(expr: &str) -> String {
    format!("(() => {{ const root = document.querySelector('switchboard-webchat').shadowRoot; return {expr}; }})()")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_conversation_sqlite() -> anyhow::Result<()> {
    widget_conversation(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_conversation_postgres() -> anyhow::Result<()> {
    widget_conversation(Backend::Postgres).await
}

async fn widget_conversation(backend: Backend) -> anyhow::Result<()> {
    let env = TestEnv::start(BridgeOptions::default().backend(backend)).await?;
    let mut browser = Browser::launch().await?;
    let wait = Duration::from_secs(30);

    // The demo page embeds the widget with one script tag.
    browser.goto(&format!("{}/demo", env.webchat_url())).await?;
    let tags = browser
        .eval("document.querySelectorAll('script[src$=\"/webchat/widget.js\"]').length")
        .await?;
    ensure!(tags == 1, "one script tag on the page, found {tags}");
    browser.click("[data-testid=launcher]").await?;
    browser.wait_for("[data-testid=panel]", None, wait).await?;
    browser.fill("[data-testid=name]", "Wendy Web").await?;
    browser
        .fill("[data-testid=email]", "wendy@example.com")
        .await?;
    browser
        .fill(
            "[data-testid=input]",
            "Hello from the widget <b>not bold</b>",
        )
        .await?;
    browser.click("[data-testid=send]").await?;

    // The operator gets the conversation with the customer's name on the ghost and the room.
    let room = env.alice.wait_for_invite("Wendy Web").await?;
    let first = env
        .alice
        .wait_for_text(&room, "Hello from the widget")
        .await?;
    ensure!(
        first.body == "Hello from the widget <b>not bold</b>",
        "visitor text arrives as text: {}",
        first.body
    );
    ensure!(
        first.formatted_body.is_none(),
        "no HTML injected from the visitor side"
    );

    // Operator typing shows in the widget.
    env.alice.typing(&room, true).await?;
    browser.wait_for("[data-testid=typing]", None, wait).await?;
    env.alice.typing(&room, false).await?;

    // The answer appears live, formatted, and hostile HTML does nothing.
    let answer = env
        .alice
        .send_html(
            &room,
            "Welcome! We are here.",
            "<b>Welcome!</b> We are here.<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>",
        )
        .await?;
    browser
        .wait_for(AGENT_ROW, Some("We are here."), wait)
        .await?;
    let bold = browser
        .eval(&in_widget(
            "root.querySelectorAll('[data-from=agent] b').length",
        ))
        .await?;
    ensure!(bold == 1, "formatting kept: {bold}");
    let imgs = browser
        .eval(&in_widget(
            "root.querySelectorAll('[data-from=agent] img, [data-from=agent] script').length",
        ))
        .await?;
    ensure!(imgs == 0, "no injected elements: {imgs}");
    ensure!(
        browser.eval("window.__pwned === undefined").await? == true,
        "injected code ran"
    );

    // The visitor has seen it: the ghost's read receipt lands on the operator's message.
    env.alice
        .wait_for_read_receipt(&room, &first.sender, &answer)
        .await?;
    // The operator reads the visitor's message: "Seen" in the widget.
    env.alice.send_read_receipt(&room, &first.event_id).await?;
    browser.wait_for("[data-testid=seen]", None, wait).await?;

    // A file from the widget reaches the room with its name, type and bytes.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("receipt.txt");
    let bytes = b"order 123, paid 49.90 EUR\n".to_vec();
    std::fs::write(&path, &bytes)?;
    browser.set_files("[data-testid=attach]", &path).await?;
    let file = env
        .alice
        .wait_for_message(&room, |m| m.msgtype == "m.file")
        .await?;
    ensure!(
        file.filename() == "receipt.txt" && file.mimetype() == Some("text/plain"),
        "{:?}",
        file.content
    );
    ensure!(env.alice.fetch_file(&file).await? == bytes);

    // A file from the operator shows in the widget; an image inline.
    env.alice
        .send_file(&room, "label.png", "image/png", rig::tiny_png())
        .await?;
    browser
        .wait_for("[data-testid=attachment-image]", None, wait)
        .await?;
    browser
        .wait_until(&in_widget("[...root.querySelectorAll('[data-testid=attachment-image]')].some(i => i.complete && i.naturalWidth === 1)"))
        .await
        .context("the operator's image loads in the widget")?;

    // Operator edits and deletes show in the widget.
    let typo = env
        .alice
        .send_text(&room, "Your parcel ships tomorow")
        .await?;
    browser.wait_for(AGENT_ROW, Some("tomorow"), wait).await?;
    env.alice
        .edit(&room, &typo, "Your parcel ships tomorrow")
        .await?;
    browser.wait_for(AGENT_ROW, Some("tomorrow"), wait).await?;
    browser.wait_for("[data-testid=edited]", None, wait).await?;
    let oops = env.alice.send_text(&room, "internal: check stock").await?;
    browser
        .wait_for(AGENT_ROW, Some("check stock"), wait)
        .await?;
    env.alice.redact(&room, &oops, None).await?;
    browser
        .wait_for("[data-testid=message][data-deleted=true]", None, wait)
        .await?;

    // A reply from the widget keeps reply-to.
    let rows_before = browser.count(VISITOR_ROW).await?;
    browser
        .eval(&in_widget("[...root.querySelectorAll('[data-from=agent]')].find(r => r.textContent.includes('tomorrow')).querySelector('[data-testid=reply]').click()"))
        .await?;
    browser
        .wait_for("[data-testid=reply-preview]", None, wait)
        .await?;
    browser
        .fill("[data-testid=input]", "Thanks, see you")
        .await?;
    browser.press("[data-testid=input]", "Enter").await?;
    let reply = env.alice.wait_for_text(&room, "Thanks, see you").await?;
    ensure!(
        reply.in_reply_to() == Some(typo.as_str()),
        "reply-to from the widget: {:?}",
        reply.relates_to
    );
    ensure!(browser.count(VISITOR_ROW).await? == rows_before + 1);

    // Coming back later (reload): same conversation, history shown, same room.
    browser.reload().await?;
    browser.click("[data-testid=launcher]").await?;
    browser
        .wait_for(AGENT_ROW, Some("We are here."), wait)
        .await?;
    browser.fill("[data-testid=input]", "Back again").await?;
    browser.click("[data-testid=send]").await?;
    env.alice.wait_for_text(&room, "Back again").await?;
    let portals = env.rooms_named("Wendy Web").await?;
    ensure!(portals == [room.clone()], "no second portal: {portals:?}");

    screenshot(&mut browser, "widget-desktop.png").await?;
    // Phone width: the panel fills the screen without overflowing it.
    browser.viewport(375, 700).await?;
    screenshot(&mut browser, "widget-phone.png").await?;
    let width: Value = browser
        .eval(&in_widget(
            "root.querySelector('[data-testid=panel]').getBoundingClientRect().width",
        ))
        .await?;
    let width = width.as_f64().context("panel width")?;
    ensure!(
        width > 300.0 && width <= 375.0,
        "panel width at 375 px: {width}"
    );
    let overflow = browser
        .eval("document.documentElement.scrollWidth > window.innerWidth")
        .await?;
    ensure!(overflow == false, "horizontal overflow at phone width");
    Ok(())
}

/// With `SWITCHBOARD_SCREENSHOTS=<dir>`, keep pictures of the widget for a person to look at.
async fn screenshot(browser: &mut Browser, name: &str) -> anyhow::Result<()> {
    if let Some(dir) = std::env::var_os("SWITCHBOARD_SCREENSHOTS") {
        std::fs::create_dir_all(&dir)?;
        browser
            .screenshot(&std::path::Path::new(&dir).join(name))
            .await?;
    }
    Ok(())
}

/// A visitor opens the widget on the demo page and writes `text` under `name`.
async fn visitor_writes(env: &TestEnv, name: &str, text: &str) -> anyhow::Result<Browser> {
    let mut browser = Browser::launch().await?;
    browser.goto(&format!("{}/demo", env.webchat_url())).await?;
    browser.click("[data-testid=launcher]").await?;
    browser
        .wait_for("[data-testid=panel]", None, Duration::from_secs(30))
        .await?;
    browser.fill("[data-testid=name]", name).await?;
    browser.fill("[data-testid=input]", text).await?;
    browser.click("[data-testid=send]").await?;
    Ok(browser)
}

/// A nonce whose SHA-256 with `challenge` has a number of leading zero bits that `fits`.
fn nonce_where(challenge: &str, fits: impl Fn(u32) -> bool) -> String {
    use sha2::{Digest, Sha256};
    (0u64..)
        .map(|n| n.to_string())
        .find(|nonce| {
            let digest = Sha256::digest(format!("{challenge}:{nonce}").as_bytes());
            let mut zeros = 0;
            for byte in digest {
                zeros += byte.leading_zeros();
                if byte != 0 {
                    break;
                }
            }
            fits(zeros)
        })
        .unwrap_or_default()
}

/// With a proof of work configured (docs/webchat.md, `GET /challenge`), a visitor's widget solves
/// it without the visitor noticing, while a script that skips it, forges it, under-solves it or
/// spends it twice gets no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_visitor_proves_work_unnoticed_and_a_script_cannot_skip_it() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("proof of work for new web chat sessions");
    let env = TestEnv::start(
        BridgeOptions::default().webchat(serde_json::json!({"proof_of_work_bits": 12})),
    )
    .await?;
    let api = format!("{}/api/v1", env.webchat_url());
    let http = reqwest::Client::new();
    let session = |proof: Option<Value>| {
        let mut body = serde_json::json!({"name": "Script"});
        if let Some(proof) = proof {
            body["proof"] = proof;
        }
        http.post(format!("{api}/session")).json(&body).send()
    };
    let refused = |resp: reqwest::Response| async move {
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or_default();
        (
            status,
            body["error"].as_str().unwrap_or("").to_owned(),
            body["message"].as_str().unwrap_or("").to_owned(),
        )
    };

    steps.step("A script asks for a session without a proof: 428 proof_required");
    let (status, code, _) = refused(session(None).await?).await;
    ensure!(status == 428 && code == "proof_required", "{status} {code}");

    steps.step("It fetches a challenge but sends a nonce that does not solve it: refused");
    let challenge: Value = http
        .get(format!("{api}/challenge"))
        .send()
        .await?
        .json()
        .await?;
    ensure!(challenge["bits"] == 12, "{challenge}");
    let text = challenge["challenge"]
        .as_str()
        .context("challenge")?
        .to_owned();
    let wrong = nonce_where(&text, |zeros| zeros < 12);
    let (status, _, message) =
        refused(session(Some(serde_json::json!({"challenge": text, "nonce": wrong}))).await?).await;
    ensure!(
        status == 428 && message.contains("does not solve"),
        "{status} {message}"
    );

    steps.step("A forged challenge (its signature changed) is refused even when solved");
    let last = text.chars().last().context("empty challenge")?;
    let forged = format!(
        "{}{}",
        &text[..text.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let nonce = nonce_where(&forged, |zeros| zeros >= 12);
    let (status, _, message) = refused(
        session(Some(
            serde_json::json!({"challenge": forged, "nonce": nonce}),
        ))
        .await?,
    )
    .await;
    ensure!(
        status == 428 && message.contains("not issued"),
        "{status} {message}"
    );

    steps.step("Solved, it opens one session; the same proof again opens none");
    let proof =
        serde_json::json!({"challenge": text, "nonce": nonce_where(&text, |zeros| zeros >= 12)});
    let first = session(Some(proof.clone())).await?;
    ensure!(first.status() == 200, "solved: {}", first.status());
    let (status, _, message) = refused(session(Some(proof)).await?).await;
    ensure!(
        status == 428 && message.contains("already used"),
        "{status} {message}"
    );

    steps.step("A visitor in the widget just writes: the message reaches the team");
    let browser = visitor_writes(&env, "Pia Proof", "Hello, is anyone there?").await?;
    let room = env.alice.wait_for_invite("Pia Proof").await?;
    env.alice
        .wait_for_text(&room, "Hello, is anyone there?")
        .await?;
    browser.close().await?;
    steps.finish()
}

/// A visitor who starts a conversation while the team is being flooded (the overall limit on new
/// conversations is spent) is told so in the widget, and their message goes out by itself when
/// the limit allows: once, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_over_the_limit_is_told_and_their_message_goes_out_later() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("web chat limits as a visitor sees them");
    // One new conversation at once, then one every ten seconds.
    let env = TestEnv::start(
        BridgeOptions::default().webchat(serde_json::json!({"new_conversations_per_minute": 6})),
    )
    .await?;

    steps.step("A first visitor's conversation takes the one free place");
    let first = visitor_writes(&env, "Fay First", "First in line").await?;
    let room = env.alice.wait_for_invite("Fay First").await?;
    env.alice.wait_for_text(&room, "First in line").await?;

    steps.step("A second visitor writes at once: the widget says to wait");
    let mut second = visitor_writes(&env, "Sam Second", "Second in line").await?;
    second
        .wait_for(
            "[data-testid=error]",
            Some("try again"),
            Duration::from_secs(10),
        )
        .await?;

    steps.step("When the limit allows, the widget sends it by itself: in the room once");
    let room = env.alice.wait_for_invite("Sam Second").await?;
    env.alice.wait_for_text(&room, "Second in line").await?;
    second.wait_hidden("[data-testid=error]").await?;
    let copies = env
        .alice
        .messages(&room)
        .iter()
        .filter(|m| m.body == "Second in line")
        .count();
    ensure!(copies == 1, "the message arrived {copies} times");
    first.close().await?;
    second.close().await?;
    steps.finish()
}

/// Issue 19 in the browser: the operator's reaction shows on the visitor's message (and goes
/// when taken back); the visitor reacts to the operator's answer from the widget's picker, the
/// ghost's `m.reaction` lands on it in the room, and picking it again takes it back (a
/// redaction). A reload shows the reactions again from the transcript.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_show_and_are_made_in_the_widget() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("reactions in the widget");
    let env = TestEnv::start(BridgeOptions::default()).await?;
    let wait = Duration::from_secs(30);
    let mut browser = visitor_writes(&env, "Wendy Web", "Is the shop open on Sunday?").await?;
    let room = env.alice.wait_for_invite("Wendy Web").await?;
    let question = env
        .alice
        .wait_for_text(&room, "Is the shop open on Sunday?")
        .await?;
    let answer = env.alice.send_text(&room, "Yes, 10 to 16").await?;
    browser.wait_for(AGENT_ROW, Some("10 to 16"), wait).await?;

    steps.step("The operator reacts 👍 to the visitor's message: the visitor sees it");
    let thumbs = env.alice.react(&room, &question.event_id, "👍").await?;
    let agent_reaction = format!("{VISITOR_ROW} [data-testid=reaction][data-from=agent]");
    browser.wait_for(&agent_reaction, Some("👍"), wait).await?;
    screenshot(&mut browser, "reaction-from-agent.png").await?;

    steps.step("The operator takes it back: gone from the widget");
    env.alice.redact(&room, &thumbs, None).await?;
    browser.wait_hidden(&agent_reaction).await?;

    steps.step("The visitor reacts ❤️ to the answer from the picker: the ghost's m.reaction");
    browser
        .click(&format!("{AGENT_ROW} [data-testid=react]"))
        .await?;
    browser
        .click(&format!(
            "{AGENT_ROW} [data-testid=reaction-choice][data-key=\"❤️\"]"
        ))
        .await?;
    let own = format!("{AGENT_ROW} [data-testid=reaction][data-from=visitor]");
    browser.wait_for(&own, Some("❤️"), wait).await?;
    let reaction_id = env
        .alice
        .wait_for_reaction_by(&room, &answer, "❤️", &question.sender)
        .await?;
    screenshot(&mut browser, "reaction-from-visitor.png").await?;

    steps.step("The operator reacts 🙏 to the question; a reload shows both reactions again");
    env.alice.react(&room, &question.event_id, "🙏").await?;
    browser.wait_for(&agent_reaction, Some("🙏"), wait).await?;
    browser.reload().await?;
    browser.click("[data-testid=launcher]").await?;
    browser.wait_for(&agent_reaction, Some("🙏"), wait).await?;
    browser.wait_for(&own, Some("❤️"), wait).await?;

    steps.step("Picking ❤️ again takes it back: the reaction is redacted in the room");
    browser
        .click(&format!("{AGENT_ROW} [data-testid=react]"))
        .await?;
    browser
        .click(&format!(
            "{AGENT_ROW} [data-testid=reaction-choice][data-key=\"❤️\"]"
        ))
        .await?;
    browser.wait_hidden(&own).await?;
    env.alice
        .wait_for_redaction(&room, &reaction_id)
        .await
        .context("the visitor's reaction taken back")?;
    Ok(())
}
