//! `switchboard doctor` as an administrator runs it, against real parts: a real Synapse, both
//! stores, the wire-level Telegram fake. Every check holds on a working installation; each broken
//! part fails its own check, names the fix, and sets the exit status of its class.

mod fakes;
#[macro_use]
mod rig;

use std::process::Output;
use std::time::Duration;

use anyhow::{ensure, Context};
use fakes::telegram::{FakeTelegram, TOKEN};
use rig::{Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;

on_both_stores!(doctor_checks_each_part_and_names_the_fix);

/// Run `switchboard doctor --json` on the test bridge's configuration.
fn doctor(env: &TestEnv) -> anyhow::Result<(i32, Value)> {
    let out: Output = std::process::Command::new(rig::bridge::binary())
        .arg("doctor")
        .arg("-c")
        .arg(env.bridge.config_path())
        .arg("--json")
        .current_dir(env.bridge.dir())
        .output()
        .context("running switchboard doctor")?;
    let code = out.status.code().unwrap_or(-1);
    let report: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "doctor's JSON (exit {code}): {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((code, report))
}

/// The checks of one area, as (what, holds, found, fix).
fn checks(report: &Value, area: &str) -> Vec<(String, bool, String, String)> {
    report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["area"] == area)
        .map(|c| {
            (
                c["what"].as_str().unwrap_or("").to_owned(),
                c["holds"] == true,
                c["found"].as_str().unwrap_or("").to_owned(),
                c["fix"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn set(config: &mut Yaml, path: &[&str], value: Yaml) {
    let mut at = config;
    for key in &path[..path.len() - 1] {
        at = &mut at[*key];
    }
    if let Some(map) = at.as_mapping_mut() {
        map.insert(path[path.len() - 1].into(), value);
    }
}

async fn doctor_checks_each_part_and_names_the_fix(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("doctor checks each part and names the fix");
    let fake = FakeTelegram::start().await?;
    let mut env = TestEnv::start(BridgeOptions::default().backend(backend).channel(
        "telegram",
        json!({"enabled": true, "token": TOKEN, "api_url": fake.url(), "poll_timeout_secs": 2}),
    ))
    .await?;

    steps.step("A working installation, bridge running: every check holds, exit 0");
    let (code, report) = doctor(&env)?;
    ensure!(code == 0 && report["ok"] == true, "exit {code}: {report:#}");
    for area in ["config", "store", "homeserver", "telegram"] {
        ensure!(
            !checks(&report, area).is_empty(),
            "no {area} check: {report:#}"
        );
    }
    let homeserver = checks(&report, "homeserver");
    ensure!(
        homeserver
            .iter()
            .any(|c| c.0.starts_with("appservice token") && c.2.contains("@switchboard:localhost")),
        "whoami names the bot: {homeserver:?}"
    );
    ensure!(
        homeserver
            .iter()
            .any(|c| c.0.starts_with("the homeserver reaches the bridge")
                && c.2.contains("answered by the bridge already listening")),
        "the ping reached the running bridge: {homeserver:?}"
    );
    let telegram = checks(&report, "telegram");
    ensure!(
        telegram
            .iter()
            .any(|c| c.0 == "bot token (getMe)" && c.1 && c.2.starts_with("the bot @")),
        "getMe names the bot: {telegram:?}"
    );
    ensure!(
        telegram
            .iter()
            .any(|c| c.0.starts_with("update delivery") && c.1 && c.2.contains("polling")),
        "polling, no webhook: {telegram:?}"
    );

    steps.step("Bridge stopped: the homeserver's ping reaches the doctor itself");
    env.bridge.stop(Duration::from_secs(10)).await?;
    let (code, report) = doctor(&env)?;
    ensure!(code == 0, "exit {code}: {report:#}");
    ensure!(
        checks(&report, "homeserver")
            .iter()
            .any(|c| c.1 && c.2 == "the homeserver's ping reached this process"),
        "{report:#}"
    );

    steps.step("A token Telegram refuses: the channel's check fails with the fix, exit 5");
    env.bridge.edit_config(|c| {
        set(
            c,
            &["channels", "telegram", "token"],
            "123456:not-the-token".into(),
        )
    })?;
    let (code, report) = doctor(&env)?;
    ensure!(code == 5, "exit {code}: {report:#}");
    let telegram = checks(&report, "telegram");
    ensure!(
        telegram
            .iter()
            .any(|c| !c.1 && c.2.contains("refused the token") && c.3.contains("@BotFather")),
        "{telegram:?}"
    );
    ensure!(
        ["config", "store", "homeserver"]
            .iter()
            .all(|area| checks(&report, area).iter().all(|c| c.1)),
        "only the channel fails: {report:#}"
    );
    env.bridge
        .edit_config(|c| set(c, &["channels", "telegram", "token"], TOKEN.into()))?;

    steps.step("A homeserver that is not there: exit 4, the URL named as the fix");
    let real_homeserver = env.bridge.config()?["homeserver"]["url"].clone();
    let nowhere = format!("http://127.0.0.1:{}", rig::free_port()?);
    env.bridge
        .edit_config(|c| set(c, &["homeserver", "url"], nowhere.as_str().into()))?;
    let (code, report) = doctor(&env)?;
    ensure!(code == 4, "exit {code}: {report:#}");
    ensure!(
        checks(&report, "homeserver")
            .iter()
            .any(|c| !c.1 && c.3.contains("homeserver.url")),
        "{report:#}"
    );
    env.bridge
        .edit_config(|c| set(c, &["homeserver", "url"], real_homeserver))?;

    steps.step("A registration that no longer matches the configuration: exit 2");
    env.bridge
        .edit_config(|c| set(c, &["appservice", "bot_localpart"], "someone_else".into()))?;
    let (code, report) = doctor(&env)?;
    ensure!(code == 2, "exit {code}: {report:#}");
    ensure!(
        checks(&report, "config").iter().any(|c| !c.1
            && c.2.contains("sender_localpart")
            && c.3.contains("generate the registration again")),
        "{report:#}"
    );
    steps.finish()
}

/// A configuration that does not load is a configuration failure, in JSON too.
#[test]
fn a_configuration_that_does_not_load_is_exit_2() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "homeserver: {url: 'not a url'}\n")?;
    let out = std::process::Command::new(rig::bridge::binary())
        .args(["doctor", "--json", "-c"])
        .arg(&path)
        .output()?;
    ensure!(out.status.code() == Some(2), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(
        report["ok"] == false && report["checks"][0]["class"] == "config",
        "{report}"
    );
    Ok(())
}
