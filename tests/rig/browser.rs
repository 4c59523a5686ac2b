//! Real headless Chromium for web chat tests, driven by playwright-core.
//!
//! Playwright has no Rust binding, so [`Browser`] spawns `node tests/rig/browser-driver.mjs` and
//! speaks the JSON-lines protocol documented at the top of that file: one command per line on
//! the driver's stdin, one `{"ok":…}` answer per line on its stdout, in order. The driver drives
//! the system Chromium (`/usr/bin/chromium`) with a fresh profile; Playwright never downloads a
//! browser. Selectors are Playwright's: CSS pierces open shadow roots, so the widget's insides are
//! reachable from the page.
//!
//! `scripts/ensure-browser.sh` runs once per test process before the first launch (installs
//! Chromium with apt when missing, `npm ci` in tests/ when `node_modules` is missing or stale).
//! Dropping a `Browser` closes the driver's stdin and sends SIGTERM (the driver closes Chromium),
//! then SIGKILLs the process group after 5 s.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::{kill_process_group, repo_root, SIGKILL, SIGTERM};

static DEPS: tokio::sync::Mutex<Option<String>> = tokio::sync::Mutex::const_new(None);

/// Default timeout of a command inside the driver (Playwright's own wait).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the driver may take to start Chromium.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Browser {
    child: Child,
    /// Chromium's profile; removed after the driver has exited (see `Drop`).
    profile: Option<tempfile::TempDir>,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
    next_id: u64,
    /// Chromium's version, as the driver reported it.
    pub version: String,
    /// Default timeout for waiting commands (`wait_for`, `click`, …).
    pub timeout: Duration,
}

/// Installs what the driver needs, once per test process.
pub async fn ensure_deps() -> anyhow::Result<()> {
    super::run_script_cached(&DEPS, "ensure-browser.sh")
        .await
        .map(|_| ())
}

impl Browser {
    /// Starts the driver and Chromium; returns once the page is ready.
    pub async fn launch() -> anyhow::Result<Browser> {
        Self::launch_with_locale(None).await
    }

    /// Like [`Browser::launch`], with the browser's language (`navigator.languages` and
    /// `Accept-Language`), e.g. `ru-RU`.
    pub async fn launch_with_locale(locale: Option<&str>) -> anyhow::Result<Browser> {
        ensure_deps().await?;
        let tests_dir = repo_root().join("tests");
        let profile = tempfile::Builder::new()
            .prefix("sb-chromium-")
            .tempdir()
            .context("creating a Chromium profile dir")?;
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(tests_dir.join("rig").join("browser-driver.mjs"))
            .current_dir(&tests_dir)
            .env("SWITCHBOARD_BROWSER_PROFILE", profile.path())
            .env("SWITCHBOARD_BROWSER_LOCALE", locale.unwrap_or(""))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = cmd
            .spawn()
            .context("spawning node tests/rig/browser-driver.mjs")?;
        let stdin = child.stdin.take().context("driver stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("driver stdout")?).lines();
        let stderr_pipe = child.stderr.take().context("driver stderr")?;
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr_pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut s = stderr.lock().unwrap_or_else(|e| e.into_inner());
                    s.push_str(&line);
                    s.push('\n');
                    if s.len() > 64 * 1024 {
                        let mut cut = s.len() - 32 * 1024;
                        while !s.is_char_boundary(cut) {
                            cut += 1;
                        }
                        s.drain(..cut);
                    }
                }
            });
        }
        let mut browser = Browser {
            child,
            profile: Some(profile),
            stdin: Some(stdin),
            stdout,
            stderr,
            next_id: 0,
            version: String::new(),
            timeout: COMMAND_TIMEOUT,
        };
        let ready = browser
            .read_line(LAUNCH_TIMEOUT, "the driver to launch Chromium")
            .await?;
        if ready.get("ready").and_then(Value::as_bool) != Some(true) {
            bail!(
                "the browser driver failed to start: {ready}\n{}",
                browser.stderr_tail()
            );
        }
        browser.version = ready
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(browser)
    }

    /// Chromium's profile dir (removed when the `Browser` is dropped).
    pub fn profile_dir(&self) -> Option<&Path> {
        self.profile.as_ref().map(|p| p.path())
    }

    fn stderr_tail(&self) -> String {
        let s = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        if s.is_empty() {
            String::new()
        } else {
            format!("--- driver stderr ---\n{s}")
        }
    }

    async fn read_line(&mut self, timeout: Duration, what: &str) -> anyhow::Result<Value> {
        let line = match tokio::time::timeout(timeout, self.stdout.next_line()).await {
            Err(_) => bail!(
                "no answer from the browser driver within {timeout:?} ({what})\n{}",
                self.stderr_tail()
            ),
            Ok(Err(e)) => bail!(
                "reading from the browser driver ({what}): {e}\n{}",
                self.stderr_tail()
            ),
            Ok(Ok(None)) => {
                // Give the stderr reader a moment to collect the driver's last words.
                let status = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
                bail!(
                    "the browser driver exited ({status:?}) while waiting for {what}\n{}",
                    self.stderr_tail()
                )
            }
            Ok(Ok(Some(line))) => line,
        };
        serde_json::from_str(&line)
            .with_context(|| format!("browser driver said something that is not JSON: {line}"))
    }

    /// Sends a raw command object and returns its `value`; an `{"ok":false}` answer is an error.
    pub async fn command(&mut self, mut cmd: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let timeout_ms = cmd
            .get("timeout_ms")
            .and_then(Value::as_u64)
            .unwrap_or(self.timeout.as_millis() as u64);
        if let Some(obj) = cmd.as_object_mut() {
            obj.insert("id".into(), id.into());
            obj.entry("timeout_ms").or_insert(timeout_ms.into());
        }
        let what = cmd
            .get("cmd")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let mut line = serde_json::to_string(&cmd).context("serialising a browser command")?;
        line.push('\n');
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("the browser driver is closed"))?;
        let written = match stdin.write_all(line.as_bytes()).await {
            Ok(()) => stdin.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            bail!(
                "writing {what} to the browser driver: {e}\n{}",
                self.stderr_tail()
            );
        }
        let answer = self
            .read_line(
                Duration::from_millis(timeout_ms) + Duration::from_secs(15),
                &format!("the answer to {cmd}"),
            )
            .await?;
        if answer
            .get("id")
            .and_then(Value::as_u64)
            .is_some_and(|got| got != id)
        {
            bail!("browser driver answered out of order: sent #{id}, got {answer}");
        }
        if answer.get("ok").and_then(Value::as_bool) == Some(true) {
            Ok(answer.get("value").cloned().unwrap_or(Value::Null))
        } else {
            let err = answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("(no error text)");
            bail!("browser command {cmd} failed: {err}")
        }
    }

    /// Navigates and waits for `load`; returns the final URL.
    pub async fn goto(&mut self, url: &str) -> anyhow::Result<String> {
        let v = self.command(json!({"cmd": "goto", "url": url})).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub async fn click(&mut self, selector: &str) -> anyhow::Result<()> {
        self.command(json!({"cmd": "click", "selector": selector}))
            .await
            .map(|_| ())
    }

    /// Replaces an input's value (as a paste would).
    pub async fn fill(&mut self, selector: &str, text: &str) -> anyhow::Result<()> {
        self.command(json!({"cmd": "fill", "selector": selector, "text": text}))
            .await
            .map(|_| ())
    }

    /// Types key by key (fires keydown/keypress/input/keyup per character).
    pub async fn type_text(&mut self, selector: &str, text: &str) -> anyhow::Result<()> {
        self.command(json!({"cmd": "type", "selector": selector, "text": text}))
            .await
            .map(|_| ())
    }

    /// Presses a key (`Enter`, `Shift+Enter`, `Escape`, …) in the element.
    pub async fn press(&mut self, selector: &str, key: &str) -> anyhow::Result<()> {
        self.command(json!({"cmd": "press", "selector": selector, "key": key}))
            .await
            .map(|_| ())
    }

    /// Sets the files of an `<input type=file>`.
    pub async fn set_files(&mut self, selector: &str, path: &Path) -> anyhow::Result<()> {
        self.command(
            json!({"cmd": "set_files", "selector": selector, "path": path.to_string_lossy()}),
        )
        .await
        .map(|_| ())
    }

    /// Waits until an element matching `selector` (and containing `text`, if given) is visible.
    pub async fn wait_for(
        &mut self,
        selector: &str,
        text: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        self.command(json!({
            "cmd": "wait_for", "selector": selector, "text": text, "timeout_ms": timeout.as_millis() as u64,
        }))
        .await
        .map(|_| ())
    }

    /// Waits (default timeout) for a visible element matching `selector` that contains `text`.
    pub async fn wait_for_text(&mut self, selector: &str, text: &str) -> anyhow::Result<()> {
        let t = self.timeout;
        self.wait_for(selector, Some(text), t).await
    }

    /// Waits until no element matching `selector` is visible.
    pub async fn wait_hidden(&mut self, selector: &str) -> anyhow::Result<()> {
        self.command(json!({"cmd": "wait_for", "selector": selector, "state": "hidden"}))
            .await
            .map(|_| ())
    }

    /// Waits until the JavaScript expression is truthy in the page.
    pub async fn wait_until(&mut self, js: &str) -> anyhow::Result<()> {
        self.command(json!({"cmd": "wait_fn", "js": js}))
            .await
            .map(|_| ())
    }

    /// `innerText` of the first match.
    pub async fn text(&mut self, selector: &str) -> anyhow::Result<String> {
        let v = self
            .command(json!({"cmd": "text", "selector": selector}))
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// `innerText` of every match.
    pub async fn texts(&mut self, selector: &str) -> anyhow::Result<Vec<String>> {
        let v = self
            .command(json!({"cmd": "texts", "selector": selector}))
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn attr(&mut self, selector: &str, name: &str) -> anyhow::Result<Option<String>> {
        let v = self
            .command(json!({"cmd": "attr", "selector": selector, "name": name}))
            .await?;
        Ok(v.as_str().map(str::to_string))
    }

    pub async fn count(&mut self, selector: &str) -> anyhow::Result<u64> {
        let v = self
            .command(json!({"cmd": "count", "selector": selector}))
            .await?;
        v.as_u64().with_context(|| format!("count answered {v}"))
    }

    pub async fn is_visible(&mut self, selector: &str) -> anyhow::Result<bool> {
        let v = self
            .command(json!({"cmd": "visible", "selector": selector}))
            .await?;
        Ok(v.as_bool().unwrap_or(false))
    }

    /// Evaluates a JavaScript expression (a function source is called) and returns its JSON value.
    pub async fn eval(&mut self, js: &str) -> anyhow::Result<Value> {
        self.command(json!({"cmd": "eval", "js": js})).await
    }

    /// Full-page PNG screenshot.
    pub async fn screenshot(&mut self, path: &Path) -> anyhow::Result<()> {
        self.command(json!({"cmd": "screenshot", "path": path.to_string_lossy()}))
            .await
            .map(|_| ())
    }

    pub async fn viewport(&mut self, width: u32, height: u32) -> anyhow::Result<()> {
        self.command(json!({"cmd": "viewport", "width": width, "height": height}))
            .await
            .map(|_| ())
    }

    pub async fn reload(&mut self) -> anyhow::Result<()> {
        self.command(json!({"cmd": "reload"})).await.map(|_| ())
    }

    pub async fn url(&mut self) -> anyhow::Result<String> {
        let v = self.command(json!({"cmd": "url"})).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Console errors/warnings, page errors and failed requests seen so far (for diagnostics).
    pub async fn console(&mut self) -> anyhow::Result<Vec<String>> {
        let v = self.command(json!({"cmd": "console"})).await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Closes Chromium and the driver, waiting for them to exit.
    pub async fn close(mut self) -> anyhow::Result<()> {
        let _ = self.command(json!({"cmd": "close"})).await;
        self.stdin.take();
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => bail!("the browser driver did not exit within 10 s of close"),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // EOF and SIGTERM both make the driver close Chromium and exit.
        self.stdin.take();
        if let Some(pid) = self.child.id() {
            kill_process_group(pid, SIGTERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let mut exited = false;
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    exited = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !exited {
                kill_process_group(pid, SIGKILL);
                let _ = self.child.start_kill();
            }
        }
        // After the driver (which closed Chromium) is gone.
        drop(self.profile.take());
    }
}
