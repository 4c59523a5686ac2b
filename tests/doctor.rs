//! `switchboard doctor` as an administrator runs it, against real parts: a real Synapse, both
//! stores, the wire-level fakes of every network and the mail rig (Dovecot + Postfix). Every
//! check holds on a working installation; each broken part fails its own check, names the fix
//! (the configuration key to change), and sets the exit status of its class. The same checks
//! run inside the running bridge and back `/_switchboard/ready`.

mod fakes;
#[macro_use]
mod rig;

use std::process::Output;
use std::time::Duration;

use anyhow::{ensure, Context};
use fakes::discord::FakeDiscord;
use fakes::messenger::FakeMeta;
use fakes::telegram::{FakeTelegram, TOKEN};
use fakes::twilio::FakeTwilio;
use fakes::viber::FakeViber;
use fakes::vk::FakeVk;
use fakes::whatsapp::FakeWhatsApp;
use rig::mail::{MailOptions, MailServer};
use rig::{Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;

on_both_stores!(
    doctor_checks_each_part_and_names_the_fix,
    readiness_follows_the_checks,
);

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

/// What breaks one channel's check, and the key its fix must name.
struct Breakage {
    area: &'static str,
    /// What the test does, in words (for the step log and failures).
    what: &'static str,
    /// Puts a wrong value into the configuration (the right one is put back after).
    edit: fn(&mut Yaml),
    /// The key the failing check's fix names.
    key: &'static str,
}

fn section<'a>(config: &'a mut Yaml, channel: &str) -> &'a mut Yaml {
    &mut config["channels"][channel]
}

const BREAKAGES: &[Breakage] = &[
    Breakage {
        area: "telegram",
        what: "a Telegram token Telegram refuses",
        key: "channels.telegram.token",
        edit: |c| section(c, "telegram")["token"] = "123456:not-the-token".into(),
    },
    Breakage {
        area: "whatsapp",
        what: "a WhatsApp access token Meta refuses",
        key: "channels.whatsapp.access_token",
        edit: |c| section(c, "whatsapp")["access_token"] = "EAAnot-the-token".into(),
    },
    Breakage {
        area: "whatsapp",
        what: "a phone number id that is not the business's",
        key: "channels.whatsapp.phone_number_id",
        edit: |c| section(c, "whatsapp")["phone_number_id"] = "1000000000001".into(),
    },
    Breakage {
        area: "messenger",
        what: "a Page token Meta refuses (Messenger)",
        key: "channels.messenger.access_token",
        edit: |c| section(c, "messenger")["access_token"] = "EAAnot-the-page-token".into(),
    },
    Breakage {
        area: "messenger",
        what: "a Page id that is not the token's Page",
        key: "channels.messenger.account_id",
        edit: |c| section(c, "messenger")["account_id"] = "100000000000999".into(),
    },
    Breakage {
        area: "instagram",
        what: "a Page token Meta refuses (Instagram)",
        key: "channels.instagram.access_token",
        edit: |c| section(c, "instagram")["access_token"] = "EAAnot-the-page-token".into(),
    },
    Breakage {
        area: "instagram",
        what: "an Instagram account not linked to the token's Page",
        key: "channels.instagram.account_id",
        edit: |c| section(c, "instagram")["account_id"] = "17841400000000000".into(),
    },
    Breakage {
        area: "vk",
        what: "a VK token VK refuses",
        key: "channels.vk.access_token",
        edit: |c| section(c, "vk")["access_token"] = "vk1.a.not-the-token".into(),
    },
    Breakage {
        area: "vk",
        what: "a VK community that is not the token's",
        key: "channels.vk.group_id",
        edit: |c| section(c, "vk")["group_id"] = 1234567.into(),
    },
    Breakage {
        area: "viber",
        what: "a Viber token Viber refuses",
        key: "channels.viber.auth_token",
        edit: |c| {
            section(c, "viber")["auth_token"] =
                "0000000000000000-0000000000000000-0000000000000000".into()
        },
    },
    Breakage {
        area: "viber",
        what: "a public URL that is not where Viber posts events",
        key: "appservice.public_url",
        edit: |c| section(c, "viber")["public_url"] = "https://bridge.example.com".into(),
    },
    Breakage {
        area: "discord",
        what: "a Discord token Discord refuses",
        key: "channels.discord.token",
        edit: |c| {
            section(c, "discord")["token"] =
                "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GxYz12.not-the-token".into()
        },
    },
    Breakage {
        area: "sms",
        what: "a Twilio auth token Twilio refuses",
        key: "channels.sms.auth_token",
        edit: |c| section(c, "sms")["auth_token"] = "not-the-twilio-auth-token".into(),
    },
    Breakage {
        area: "sms",
        what: "a number that is not the Twilio account's",
        key: "channels.sms.numbers",
        edit: |c| section(c, "sms")["numbers"] = vec![Yaml::from("+14155550199")].into(),
    },
    Breakage {
        area: "email",
        what: "an IMAP password Dovecot refuses",
        key: "channels.email.mailboxes[0].imap.password",
        edit: |c| {
            section(c, "email")["mailboxes"][0]["imap"]["password"] = "not-the-password".into()
        },
    },
    Breakage {
        area: "email",
        what: "an IMAP folder that does not exist",
        key: "channels.email.mailboxes[1].imap.folder",
        edit: |c| section(c, "email")["mailboxes"][1]["imap"]["folder"] = "Nowhere".into(),
    },
    Breakage {
        area: "email",
        what: "an SMTP password Postfix refuses",
        key: "channels.email.smtp.password",
        edit: |c| section(c, "email")["smtp"]["password"] = "not-the-password".into(),
    },
];

/// The channel areas of the all-channels bridge.
const CHANNELS: [&str; 9] = [
    "telegram",
    "whatsapp",
    "messenger",
    "instagram",
    "vk",
    "viber",
    "discord",
    "sms",
    "email",
];

/// One bridge with every channel enabled against the fakes and the mail rig: every channel's
/// checks hold; then each channel's credential (and account) broken in turn fails that
/// channel's check alone, with exit 5 and a fix naming the key to change. The channels' checks
/// do not touch the store, so one store is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_checks_itself_against_its_network() -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("every channel checks itself against its network");
    let telegram = FakeTelegram::start().await?;
    let whatsapp = FakeWhatsApp::start().await?;
    let meta = FakeMeta::start().await?;
    let vk = FakeVk::start().await?;
    let viber = FakeViber::start().await?;
    let discord = FakeDiscord::start().await?;
    let twilio = FakeTwilio::start().await?;
    let mail = MailServer::start_with(MailOptions {
        tls: true,
        smtp_auth: true,
        ..MailOptions::default()
    })
    .await?;
    let meta_section = json!({
        "enabled": true, "access_token": fakes::messenger::PAGE_TOKEN,
        "app_secret": fakes::messenger::APP_SECRET, "verify_token": fakes::messenger::VERIFY_TOKEN,
        "api_url": meta.url(), "api_version": "v21.0",
    });
    let options = BridgeOptions::default()
        .backend(Backend::Sqlite)
        .channel("telegram", json!({"enabled": true, "token": TOKEN, "api_url": telegram.url(), "poll_timeout_secs": 2}))
        .channel("whatsapp", whatsapp.channel_config())
        .channel("messenger", meta_section.clone())
        .channel("instagram", meta_section)
        .channel("vk", json!({"enabled": true, "api_url": vk.api_url(), "access_token": fakes::vk::TOKEN,
            "group_id": fakes::vk::GROUP_ID, "secret": fakes::vk::SECRET, "confirmation": fakes::vk::CONFIRMATION}))
        .channel("viber", json!({"enabled": true, "api_url": viber.api_url(), "auth_token": fakes::viber::TOKEN,
            "bot_name": fakes::viber::BOT_NAME}))
        .channel("discord", json!({"enabled": true, "token": fakes::discord::TOKEN, "api_url": discord.url(),
            "cdn_url": discord.cdn_url()}))
        .channel("sms", twilio.channel_config("US"))
        .channel("email", mail.channel_config());
    let env = TestEnv::start(options).await?;
    // Viber holds the webhook once the bridge registered it at start.
    rig::poll_until("Viber's webhook set", Duration::from_secs(30), || async {
        Ok(viber.webhook())
    })
    .await?;

    steps.step("Every channel enabled, right credentials: every check holds, exit 0");
    let (code, report) = doctor(&env)?;
    ensure!(code == 0 && report["ok"] == true, "exit {code}: {report:#}");
    for area in CHANNELS {
        let found = checks(&report, area);
        ensure!(
            !found.is_empty() && found.iter().all(|c| c.1),
            "{area}: {found:?}"
        );
    }
    let has = |area: &str, what: &str, found: &str| {
        checks(&report, area)
            .iter()
            .any(|c| c.0.starts_with(what) && c.2.contains(found))
    };
    ensure!(
        has(
            "whatsapp",
            "phone number",
            "+1 555-000-1234 (\"Acme Support\")"
        ),
        "{report:#}"
    );
    ensure!(
        has("messenger", "Page access token", fakes::messenger::PAGE_ID),
        "{report:#}"
    );
    ensure!(
        has("instagram", "Instagram account", fakes::messenger::IG_ID),
        "{report:#}"
    );
    ensure!(
        has("vk", "community token", &fakes::vk::GROUP_ID.to_string()),
        "{report:#}"
    );
    ensure!(has("vk", "token rights", "messages"), "{report:#}");
    ensure!(
        has("viber", "auth token", fakes::viber::BOT_NAME),
        "{report:#}"
    );
    ensure!(
        has(
            "viber",
            "webhook",
            &format!("{}/viber/callback", env.bridge.base_url())
        ),
        "{report:#}"
    );
    ensure!(
        has("discord", "bot token", fakes::discord::BOT_ID),
        "{report:#}"
    );
    ensure!(has("sms", "account", "active"), "{report:#}");
    ensure!(
        has(
            "sms",
            &format!("number {}", fakes::twilio::COMPANY_NUMBER),
            "the account's number"
        ),
        "{report:#}"
    );
    ensure!(
        has(
            "email",
            "mailbox support: IMAP login and SELECT INBOX",
            "logged in as support@"
        ),
        "{report:#}"
    );
    ensure!(
        has("email", "mailbox alice", "logged in as alice@"),
        "{report:#}"
    );
    ensure!(
        has("email", "SMTP EHLO, STARTTLS, AUTH", "accepts"),
        "{report:#}"
    );
    ensure!(
        mail.postfix_log().contains("starttls=1 auth=1"),
        "Postfix saw the doctor's AUTH: {}",
        mail.postfix_log()
    );

    for breakage in BREAKAGES {
        steps.step(&format!(
            "{}: exit 5, the fix names {}",
            breakage.what, breakage.key
        ));
        let right = env.bridge.config()?;
        env.bridge.edit_config(breakage.edit)?;
        let result = doctor(&env);
        env.bridge.write_config(&right)?;
        let (code, report) = result?;
        ensure!(code == 5, "{}: exit {code}: {report:#}", breakage.what);
        let found = checks(&report, breakage.area);
        ensure!(
            found.iter().any(|c| !c.1 && c.3.contains(breakage.key)),
            "{}: no failing {} check naming {}: {found:?}",
            breakage.what,
            breakage.area,
            breakage.key
        );
        for area in CHANNELS.iter().filter(|a| **a != breakage.area) {
            ensure!(
                checks(&report, area).iter().all(|c| c.1),
                "{}: only {} fails, yet {area} does: {report:#}",
                breakage.what,
                breakage.area
            );
        }
    }

    steps.step("A VK token without the messages right: the rights check fails, naming the token");
    vk.set_token_rights(&["photos", "docs"]);
    let (code, report) = doctor(&env)?;
    vk.set_token_rights(fakes::vk::DEFAULT_RIGHTS);
    ensure!(code == 5, "exit {code}: {report:#}");
    ensure!(
        checks(&report, "vk").iter().any(|c| !c.1
            && c.0.starts_with("token rights")
            && c.2.contains("lacks the messages right")
            && c.3.contains("channels.vk.access_token")),
        "{report:#}"
    );
    steps.finish()
}

/// GET `/_switchboard/ready`: (status, body).
async fn ready(env: &TestEnv) -> anyhow::Result<(u16, Value)> {
    let answer = reqwest::get(format!("{}/_switchboard/ready", env.bridge.base_url())).await?;
    Ok((answer.status().as_u16(), answer.json().await?))
}

/// Poll `/_switchboard/ready` until `want` holds for it.
async fn ready_until(
    env: &TestEnv,
    what: &str,
    want: impl Fn(u16, &Value) -> bool,
) -> anyhow::Result<Value> {
    rig::poll_until(what, Duration::from_secs(60), || async {
        let (status, body) = ready(env).await?;
        Ok(want(status, &body).then_some(body))
    })
    .await
}

/// The running bridge checks itself at start and every `bridge.check_interval`: ready (200)
/// with right credentials; 503 naming the channel and its fix when its network stops taking
/// the token's rights, ready again when they come back, and 503 after a restart with a token
/// the network refuses — the bridge itself starts and serves all along.
async fn readiness_follows_the_checks(backend: Backend) -> anyhow::Result<()> {
    let mut steps = rig::Steps::new("readiness follows the checks");
    let vk = FakeVk::start().await?;
    let mut env = TestEnv::start(
        BridgeOptions::default()
            .backend(backend)
            .channel("vk", json!({"enabled": true, "api_url": vk.api_url(), "access_token": fakes::vk::TOKEN,
                "group_id": fakes::vk::GROUP_ID, "secret": fakes::vk::SECRET, "confirmation": fakes::vk::CONFIRMATION}))
            .edit_config(|c| set(c, &["bridge", "check_interval"], "1s".into())),
    )
    .await?;

    steps.step("Right credentials: ready, every part named as holding");
    let body = ready_until(&env, "ready (200)", |status, _| status == 200).await?;
    ensure!(
        body["ready"] == true && body["channels"]["vk"] == true && body["failing"] == json!([]),
        "{body:#}"
    );

    steps.step("The token loses the messages right: 503 naming vk and the key, without a restart");
    vk.set_token_rights(&["photos"]);
    let body = ready_until(&env, "not ready (503)", |status, _| status == 503).await?;
    ensure!(
        body["failing"].as_array().is_some_and(|f| f.len() == 1
            && f[0]["area"] == "vk"
            && f[0]["fix"]
                .as_str()
                .is_some_and(|fix| fix.contains("channels.vk.access_token"))),
        "{body:#}"
    );
    ensure!(
        env.bridge.log().contains("readiness check failed"),
        "the failure is a warning in the log"
    );

    steps.step("The right comes back: ready again at the next check");
    vk.set_token_rights(fakes::vk::DEFAULT_RIGHTS);
    ready_until(&env, "ready again (200)", |status, _| status == 200).await?;

    steps.step("A token VK refuses, and a restart: the bridge starts and serves, ready says 503");
    env.bridge.stop(Duration::from_secs(10)).await?;
    env.bridge.edit_config(|c| {
        set(
            c,
            &["channels", "vk", "access_token"],
            "vk1.a.not-the-token".into(),
        )
    })?;
    env.bridge.start().await?;
    let body = ready_until(&env, "not ready after restart (503)", |status, body| {
        status == 503 && body["channels"]["vk"] == false
    })
    .await?;
    ensure!(
        body["failing"]
            .as_array()
            .is_some_and(|f| f.iter().any(|c| c["area"] == "vk"
                && c["found"]
                    .as_str()
                    .is_some_and(|t| t.contains("VK refused the access token"))
                && c["fix"]
                    .as_str()
                    .is_some_and(|t| t.contains("channels.vk.access_token")))),
        "{body:#}"
    );
    ensure!(
        body["failing"]
            .as_array()
            .is_some_and(|f| f.iter().all(|c| c["area"] == "vk")),
        "the store and the homeserver hold: {body:#}"
    );
    steps.finish()
}
