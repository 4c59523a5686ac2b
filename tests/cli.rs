//! The `switchboard` command as an administrator meets it: help, registration, config errors.

use std::process::Command;

use anyhow::{ensure, Context};

fn switchboard() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    // Keep the developer's own overrides out of these tests.
    for (key, _) in std::env::vars() {
        if key.starts_with("SWITCHBOARD_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

const MINIMAL: &str = "homeserver: {url: 'http://127.0.0.1:8008', domain: example.org}\nappservice: {url: 'http://127.0.0.1:29340'}\n";

#[test]
fn help_lists_the_commands() -> anyhow::Result<()> {
    let out = switchboard().arg("--help").output()?;
    ensure!(out.status.success());
    let text = String::from_utf8(out.stdout)?;
    ensure!(
        text.contains("generate-registration") && text.contains("run"),
        "{text}"
    );
    Ok(())
}

#[test]
fn generate_registration_writes_fresh_tokens_and_namespaces() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, MINIMAL)?;
    let reg_path = dir.path().join("registration.yaml");
    let out = switchboard()
        .args(["generate-registration", "-c"])
        .arg(&config)
        .arg("-r")
        .arg(&reg_path)
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reg: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&reg_path)?)?;
    let as_token = reg["as_token"].as_str().context("as_token")?;
    let hs_token = reg["hs_token"].as_str().context("hs_token")?;
    ensure!(as_token.len() == 64 && hs_token.len() == 64 && as_token != hs_token);
    ensure!(reg["rate_limited"].as_bool() == Some(false));
    ensure!(reg["receive_ephemeral"].as_bool() == Some(true));
    ensure!(reg["url"].as_str() == Some("http://127.0.0.1:29340"));
    ensure!(reg["sender_localpart"].as_str() == Some("switchboard"));
    let users = reg["namespaces"]["users"]
        .as_sequence()
        .context("user namespaces")?;
    ensure!(users.iter().all(|n| n["exclusive"].as_bool() == Some(true)));
    let regexes: Vec<&str> = users.iter().filter_map(|n| n["regex"].as_str()).collect();
    ensure!(
        regexes == ["@switchboard:example\\.org", "@sb_.*:example\\.org"],
        "{regexes:?}"
    );
    let aliases = reg["namespaces"]["aliases"]
        .as_sequence()
        .context("alias namespaces")?;
    ensure!(
        aliases.len() == 1 && aliases[0]["regex"].as_str() == Some("#sb_.*:example\\.org"),
        "{aliases:?}"
    );
    Ok(())
}

/// Run `switchboard run` on a config and return (success, stderr).
fn run_with(config_text: &str, env: &[(&str, &str)]) -> anyhow::Result<(bool, String)> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, config_text)?;
    let mut cmd = switchboard();
    cmd.args(["run", "-c"]).arg(&config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    Ok((out.status.success(), String::from_utf8(out.stderr)?))
}

#[test]
fn a_bad_config_names_the_key_and_the_problem() -> anyhow::Result<()> {
    let cases = [
        (
            format!("{MINIMAL}database: {{url: 'mysql://db/x'}}\n"),
            "database.url: must start with sqlite:// or postgres://",
        ),
        (
            format!("{MINIMAL}bridge: {{attribution: loud}}\n"),
            "bridge.attribution",
        ),
        (
            format!("{MINIMAL}bridge: {{operators: {{alice: admin}}}}\n"),
            "bridge.operators.alice: is not a Matrix user id",
        ),
        (
            format!("{MINIMAL}bridge: {{retry_base: soon}}\n"),
            "bridge.retry_base",
        ),
        (
            format!("{MINIMAL}channels: {{webchat: {{max_upload_bytes: lots}}}}\n"),
            "channels.webchat.max_upload_bytes",
        ),
        (
            format!("{MINIMAL}channels: {{telegrma: {{}}}}\n"),
            "channels.telegrma: unknown channel",
        ),
        (
            format!("{MINIMAL}databse: {{url: 'sqlite://x'}}\n"),
            "databse",
        ),
        (
            "homeserver: {url: 'http://x', domain: example.org}\n".to_string(),
            "appservice",
        ),
    ];
    for (text, expected) in cases {
        let (ok, stderr) = run_with(&text, &[])?;
        ensure!(!ok, "config accepted:\n{text}");
        ensure!(
            stderr.contains(expected),
            "for\n{text}expected {expected:?} in:\n{stderr}"
        );
    }
    Ok(())
}

#[test]
fn environment_variables_override_the_file() -> anyhow::Result<()> {
    // The file is fine; the override makes it wrong, and the error says so by key.
    let (ok, stderr) = run_with(MINIMAL, &[("SWITCHBOARD_DATABASE__URL", "mysql://db/x")])?;
    ensure!(!ok && stderr.contains("database.url"), "{stderr}");
    // Unrelated SWITCHBOARD_ variables (used by the scripts) are not config.
    let (ok, stderr) = run_with(
        "homeserver: {url: 'http://127.0.0.1:8008', domain: example.org}\nappservice: {url: 'http://127.0.0.1:29340', registration: /nonexistent/registration.yaml}\n",
        &[("SWITCHBOARD_CACHE", "/tmp/x")],
    )?;
    ensure!(
        !ok && stderr.contains("appservice.registration"),
        "expected the missing registration to be named:\n{stderr}"
    );
    Ok(())
}
