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
