//! The admin HTTP API (`/_switchboard/admin/v1`, docs/admin-api.md) as an administrator and
//! operators use it: with the admin secret or their own Matrix access tokens (real Synapse
//! logins, checked by the bridge with `whoami`), every endpoint, refusals for the wrong level,
//! a missing or wrong token and someone who is no operator, a routing dry run that says where a
//! real customer message then goes, and changes made through the API seen in the rooms and by
//! the chat commands (one service layer behind both). Customers: web chat visitors and a
//! Telegram user (through the Bot API fake, which also gives a dead letter); both stores.

#[macro_use]
mod rig;
#[allow(dead_code)]
mod fakes;

use std::time::Duration;

use anyhow::{ensure, Context};
use fakes::telegram::{FakeTelegram, FaultKind, TgUser, TOKEN};
use reqwest::{Method, StatusCode};
use rig::{command, Backend, BridgeOptions, TestEnv};
use serde_json::{json, Value};

on_both_stores!(the_admin_api_does_what_the_chat_does_with_the_same_permissions);

const SECRET: &str = "admin-secret-for-tests-0123456789abcdef";

fn options(backend: Backend, telegram_url: String) -> BridgeOptions {
    let teams: serde_yaml::Value = serde_yaml::to_value(json!({
        "billing": {
            "members": ["@bob:localhost"],
            "leads": ["@carol:localhost"],
            "rules": [{"keywords": ["invoice"]}],
        },
        "support": {
            "members": ["@bob:localhost"],
            "rules": [{"channel": "webchat"}],
        },
    }))
    .unwrap_or_default();
    let telegram = serde_yaml::to_value(json!({
        "enabled": true, "token": TOKEN, "api_url": telegram_url,
        "poll_timeout_secs": 1, "request_timeout_secs": 3,
    }))
    .unwrap_or_default();
    BridgeOptions::default()
        .backend(backend)
        .max_attempts(2)
        .edit_config(move |c| {
            if let Some(map) = c.as_mapping_mut() {
                map.insert("teams".into(), teams.clone());
                map.insert(
                    "admin".into(),
                    serde_yaml::to_value(json!({"secret": SECRET})).unwrap_or_default(),
                );
                if let Some(channels) = map.get_mut("channels").and_then(|v| v.as_mapping_mut()) {
                    channels.insert("telegram".into(), telegram.clone());
                }
            }
        })
}

/// A client of the admin API.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// `(status, JSON body)` of a call with `token` (none: no Authorization header).
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.http.request(
            method.clone(),
            format!("{}/_switchboard/admin/v1{path}", self.base),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        let value = serde_json::from_str(&text)
            .with_context(|| format!("{method} {path} answered {status} with no JSON: {text}"))?;
        Ok((status, value))
    }

    async fn get(&self, path: &str, token: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(
        &self,
        path: &str,
        token: &str,
        body: Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// A call that must succeed; its body.
    async fn ok(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.call(method.clone(), path, Some(token), body).await?;
        ensure!(
            status == StatusCode::OK,
            "{method} {path}: {status} {value}"
        );
        Ok(value)
    }

    /// A call that must be refused with `status` and the envelope's `error` code; its message.
    async fn refused(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        status: StatusCode,
        error: &str,
    ) -> anyhow::Result<String> {
        let (got, value) = self.call(method.clone(), path, token, body).await?;
        ensure!(
            got == status && value["error"] == error && value["message"].is_string(),
            "{method} {path}: expected {status} {error}, got {got} {value}"
        );
        Ok(value["message"].as_str().unwrap_or_default().to_string())
    }

    /// The queue entry whose summary names `customer`, once it has a room.
    async fn queued(&self, token: &str, customer: &str) -> anyhow::Result<Value> {
        rig::poll_until(
            &format!("{customer} in the queue"),
            Duration::from_secs(30),
            || async {
                let (_, queue) = self.get("/queue", token).await?;
                Ok(queue.as_array().and_then(|q| {
                    q.iter()
                        .find(|e| {
                            e["summary"].as_str().is_some_and(|s| s.contains(customer))
                                && e["room_id"].is_string()
                        })
                        .cloned()
                }))
            },
        )
        .await
    }
}

async fn the_admin_api_does_what_the_chat_does_with_the_same_permissions(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut steps =
        rig::Steps::new("the admin API does what the chat does, with the same permissions");
    let fake = FakeTelegram::start().await?;
    let env = TestEnv::start(options(backend, fake.url())).await?;
    let carol = env.new_operator("carol", "carol-test-password").await?;
    let dave = env.new_operator("dave", "dave-test-password").await?;
    let api = Api {
        base: env.bridge.base_url(),
        http: reqwest::Client::new(),
    };
    let token = |op: &rig::Operator| op.access_token().unwrap_or_default();
    let (alice, bob, carol_t, dave_t) = (
        token(&env.alice),
        token(&env.bob),
        token(&carol),
        token(&dave),
    );

    steps.step("No token, a wrong secret, a token of someone who is no operator: refused");
    let get = Method::GET;
    api.refused(
        get.clone(),
        "/status",
        None,
        None,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await?;
    let wrong = "admin-secret-for-tests-0123456789abcdeX";
    api.refused(
        get.clone(),
        "/status",
        Some(wrong),
        None,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await?;
    let why = api
        .refused(
            get.clone(),
            "/status",
            Some(&dave_t),
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await?;
    ensure!(why.contains("@dave:localhost is not an operator"), "{why}");
    api.refused(
        get.clone(),
        "/nothing-here",
        Some(SECRET),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    steps.step("A body that is not JSON, a path that is not an id: refused in the envelope too");
    let resp = api
        .http
        .post(format!(
            "{}/_switchboard/admin/v1/routing/dry-run",
            api.base
        ))
        .bearer_auth(SECRET)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await?;
    ensure!(
        resp.status() == StatusCode::BAD_REQUEST,
        "{}",
        resp.status()
    );
    let body: Value = resp.json().await?;
    ensure!(
        body["error"] == "invalid" && body["message"].as_str().is_some_and(|m| m.contains("JSON")),
        "{body}"
    );
    api.refused(
        Method::POST,
        "/conversations/abc/resolve",
        Some(SECRET),
        None,
        StatusCode::BAD_REQUEST,
        "invalid",
    )
    .await?;
    api.refused(
        Method::POST,
        "/routing/dry-run",
        Some(SECRET),
        Some(json!({"text": "no channel"})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
    )
    .await?;

    steps.step("The OpenAPI document is served, and it is the committed one");
    let (status, served) = api.call(get.clone(), "/openapi.json", None, None).await?;
    ensure!(status == StatusCode::OK, "{status}");
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(
        rig::repo_root().join("docs/openapi.json"),
    )?)?;
    ensure!(
        served == committed,
        "served and committed OpenAPI documents differ"
    );

    steps.step("Status: an operator's token works, and so does the secret");
    let status = api.ok(get.clone(), "/status", &bob, None).await?;
    ensure!(status["ready"] == true, "{status}");
    ensure!(
        status["channels"] == json!(["telegram", "webchat"]),
        "{status}"
    );
    ensure!(status["teams"] == json!(["billing", "support"]), "{status}");
    api.ok(get.clone(), "/status", SECRET, None).await?;

    steps.step("Dry runs (admins only, as `!sb team … rules`): where would these messages go?");
    let invoice = json!({"channel": "webchat", "text": "A question about invoice 42"});
    let hello = json!({"channel": "webchat", "text": "Hello there"});
    let telegram = json!({"channel": "telegram", "text": "my parcel"});
    for who in [&bob, &carol_t] {
        let why = api
            .refused(
                Method::POST,
                "/routing/dry-run",
                Some(who),
                Some(invoice.clone()),
                StatusCode::FORBIDDEN,
                "forbidden",
            )
            .await?;
        ensure!(why.contains("needs admin rights"), "{why}");
    }
    let (_, dry_invoice) = api
        .post("/routing/dry-run", &alice, invoice.clone())
        .await?;
    let (_, dry_hello) = api.post("/routing/dry-run", SECRET, hello.clone()).await?;
    let (_, dry_telegram) = api
        .post("/routing/dry-run", SECRET, telegram.clone())
        .await?;
    ensure!(dry_invoice["team"] == "billing", "{dry_invoice}");
    ensure!(dry_hello["team"] == "support", "{dry_hello}");
    ensure!(dry_telegram["team"].is_null(), "{dry_telegram}");
    let mut billing_sees: Vec<String> = serde_json::from_value(dry_invoice["visible_to"].clone())?;
    billing_sees.sort();
    ensure!(
        billing_sees == ["@bob:localhost", "@carol:localhost"],
        "{billing_sees:?}"
    );

    steps.step("The same messages for real: each goes where the dry run said");
    let ivan = env.visitor("Ivan Invoice", "ivan@example.com").await?;
    ivan.send("A question about invoice 42").await?;
    let hana = env.visitor("Hana Hello", "hana@example.com").await?;
    hana.send("Hello there").await?;
    let olga = TgUser::new(5_550_101, "Olga", Some("Ivanova"), None);
    fake.push_update(fake.message_update(&olga, 1, json!({"text": "my parcel"})));
    let ivan_entry = api.queued(&bob, "Ivan Invoice").await?;
    let hana_entry = api.queued(&bob, "Hana Hello").await?;
    let olga_entry = api.queued(&bob, "Olga Ivanova").await?;
    ensure!(
        ivan_entry["team"] == dry_invoice["team"],
        "{ivan_entry} vs {dry_invoice}"
    );
    ensure!(
        hana_entry["team"] == dry_hello["team"],
        "{hana_entry} vs {dry_hello}"
    );
    ensure!(
        olga_entry["team"] == dry_telegram["team"],
        "{olga_entry} vs {dry_telegram}"
    );
    let ivan_room = carol.wait_for_invite("Ivan Invoice").await?;
    ensure!(
        ivan_entry["room_id"] == ivan_room.as_str() && ivan_entry["channel"] == "webchat",
        "{ivan_entry}"
    );
    ensure!(
        ivan_entry["state"] == "open" && ivan_entry["waited"].is_string(),
        "{ivan_entry}"
    );
    let status = api.ok(get.clone(), "/status", &bob, None).await?;
    ensure!(status["unworked"] == 3, "{status}");

    steps.step("Assign needs a lead, as `!sb assign`: Bob is refused, Carol assigns him");
    let ivan_id = ivan_entry["conversation_id"].as_i64().context("id")?;
    let assign = format!("/conversations/{ivan_id}/assign");
    let why = api
        .refused(
            Method::POST,
            &assign,
            Some(&bob),
            Some(json!({"user": "@bob:localhost"})),
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await?;
    ensure!(why.contains("`assign` needs lead rights"), "{why}");
    let why = api
        .refused(
            Method::POST,
            &assign,
            Some(&carol_t),
            Some(json!({"user": "@dave:localhost"})),
            StatusCode::BAD_REQUEST,
            "invalid",
        )
        .await?;
    ensure!(why.contains("not an operator"), "{why}");
    carol.join(&ivan_room).await?;
    let done = api
        .ok(
            Method::POST,
            &assign,
            &carol_t,
            Some(json!({"user": "@bob:localhost"})),
        )
        .await?;
    ensure!(
        done["message"] == "Assigned to @bob:localhost by @carol:localhost.",
        "{done}"
    );
    carol
        .wait_for_text(
            &ivan_room,
            "Assigned to @bob:localhost by @carol:localhost. (admin API)",
        )
        .await?;
    let entry = api.queued(&bob, "Ivan Invoice").await?;
    ensure!(entry["owner"] == "@bob:localhost", "{entry}");

    steps.step("Transfer: the owner may, others below lead may not (as `!sb transfer`)");
    let hana_id = hana_entry["conversation_id"].as_i64().context("id")?;
    let transfer = format!("/conversations/{ivan_id}/transfer");
    let bob_owned_by_alice = format!("/conversations/{hana_id}/assign");
    api.ok(
        Method::POST,
        &bob_owned_by_alice,
        SECRET,
        Some(json!({"user": "@alice:localhost"})),
    )
    .await?;
    let why = api
        .refused(
            Method::POST,
            &format!("/conversations/{hana_id}/transfer"),
            Some(&bob),
            Some(json!({"to": "billing"})),
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await?;
    ensure!(
        why.contains("Only @alice:localhost (the owner) or a lead"),
        "{why}"
    );
    let done = api
        .ok(
            Method::POST,
            &transfer,
            &bob,
            Some(json!({"to": "support"})),
        )
        .await?;
    ensure!(
        done["message"] == "Transferred to team support by @bob:localhost.",
        "{done}"
    );
    let entry = api.queued(&bob, "Ivan Invoice").await?;
    ensure!(
        entry["team"] == "support" && entry["owner"].is_null(),
        "{entry}"
    );
    api.refused(
        Method::POST,
        &transfer,
        Some(&bob),
        Some(json!({"to": "nowhere"})),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    steps.step("Resolve: gone from the queue; an unknown conversation is a 404");
    let done = api
        .ok(
            Method::POST,
            &format!("/conversations/{ivan_id}/resolve"),
            &bob,
            None,
        )
        .await?;
    ensure!(
        done["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Resolved by @bob:localhost")),
        "{done}"
    );
    let (_, queue) = api.get("/queue", &bob).await?;
    ensure!(
        !queue.to_string().contains("Ivan Invoice") && queue.as_array().map(Vec::len) == Some(2),
        "{queue}"
    );
    api.refused(
        Method::POST,
        "/conversations/4242/resolve",
        Some(&bob),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    steps.step("A reply the customer blocked becomes a dead letter; it is listed and resent");
    let olga_room = env.alice.wait_for_invite("Olga Ivanova").await?;
    env.alice.join(&olga_room).await?;
    env.alice.wait_for_text(&olga_room, "my parcel").await?;
    fake.fault(Some("sendMessage"), FaultKind::Blocked, 1);
    let lost = env
        .alice
        .send_text(&olga_room, "your parcel is on its way")
        .await?;
    let letters = rig::poll_until("a dead letter", Duration::from_secs(60), || async {
        let (_, list) = api.get("/dead-letters", &bob).await?;
        Ok(list.as_array().filter(|l| !l.is_empty()).cloned())
    })
    .await?;
    let letter = &letters[0];
    ensure!(
        letter["event_id"] == lost.as_str()
            && letter["channel"] == "telegram"
            && letter["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("blocked")),
        "{letter}"
    );
    let (_, channels) = api.get("/channels", &bob).await?;
    let tg = channels
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "telegram"))
        .context("telegram in /channels")?;
    ensure!(
        tg["dead_letters"] == 1
            && tg["state"] == "unchecked"
            && tg["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("blocked")),
        "{tg}"
    );
    let status = api.ok(get.clone(), "/status", &bob, None).await?;
    ensure!(status["dead_letters"] == 1, "{status}");
    let letter_id = letter["id"].as_i64().context("id")?;
    let resend = format!("/dead-letters/{letter_id}/resend");
    api.refused(
        Method::POST,
        &resend,
        Some(&dave_t),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    api.ok(Method::POST, &resend, &bob, None).await?;
    fake.wait_for_call_within("sendMessage", Duration::from_secs(60), |c| {
        c.status == 200 && c.str("text").as_deref() == Some("your parcel is on its way")
    })
    .await?;
    api.refused(
        Method::POST,
        &resend,
        Some(&bob),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    steps.step("Channels: a re-check is for admins and asks the network (getMe)");
    api.refused(
        Method::POST,
        "/channels/telegram/check",
        Some(&bob),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    let checked = api
        .ok(Method::POST, "/channels/telegram/check", SECRET, None)
        .await?;
    ensure!(checked["state"] == "ok", "{checked}");
    ensure!(
        checked["last_check"]["checks"]
            .to_string()
            .contains("getMe"),
        "{checked}"
    );
    ensure!(!fake.calls("getMe").is_empty(), "getMe was not asked");
    api.refused(
        Method::POST,
        "/channels/nope/check",
        Some(SECRET),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    steps.step("Operators: levels as the chat has them");
    let (_, operators) = api.get("/operators", &bob).await?;
    let level = |user: &str| {
        operators
            .as_array()
            .and_then(|o| o.iter().find(|o| o["user_id"] == user))
            .map(|o| o["level"].clone())
    };
    ensure!(
        level("@alice:localhost") == Some(json!("admin"))
            && level("@bob:localhost") == Some(json!("operator"))
            && level("@carol:localhost") == Some(json!("lead"))
            && level("@dave:localhost").is_none(),
        "{operators}"
    );

    steps.step("Teams: admins only; members added through the API gain their level at once");
    api.refused(
        get.clone(),
        "/teams",
        Some(&carol_t),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    let teams = api.ok(get.clone(), "/teams", &alice, None).await?;
    ensure!(
        teams[0]["name"] == "billing" && teams[0]["leads"] == json!(["@carol:localhost"]),
        "{teams}"
    );
    let billing = api.ok(get.clone(), "/teams/billing", &alice, None).await?;
    ensure!(
        billing["members"]
            == json!([{"user_id": "@bob:localhost", "lead": false}, {"user_id": "@carol:localhost", "lead": true}])
            && billing["escalate_after"] == "2h"
            && billing["timezone"] == "UTC"
            && billing["rules"]
                == json!([{"channel": null, "account": null, "keywords": ["invoice"], "email_domain": null, "tags": []}]),
        "{billing}"
    );
    api.refused(
        get.clone(),
        "/teams/support/rules",
        Some(&bob),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;
    let rules = api
        .ok(get.clone(), "/teams/support/rules", SECRET, None)
        .await?;
    ensure!(
        rules.as_array().map(Vec::len) == Some(1) && rules[0]["channel"] == "webchat",
        "{rules}"
    );
    let member = "/teams/support/members/@dave:localhost";
    api.ok(Method::PUT, member, SECRET, Some(json!({"role": "member"})))
        .await?;
    api.ok(get.clone(), "/status", &dave_t, None).await?;
    api.ok(Method::DELETE, member, SECRET, None).await?;
    api.refused(
        get.clone(),
        "/status",
        Some(&dave_t),
        None,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await?;

    steps.step(
        "Teams: hours, holidays, time zone, escalation, auto-reply, signature; the chat sees them",
    );
    let patched = api
        .ok(
            Method::PATCH,
            "/teams/billing",
            SECRET,
            Some(json!({
                "escalate_after": "30m", "auto_reply": "We answer on Monday.",
                "signature": "Billing, ACME", "timezone": "Europe/Berlin",
                "hours": [{"days": "mon-fri", "span": "09:00-17:00"}],
                "holidays_add": ["2026-12-25"],
            })),
        )
        .await?;
    ensure!(
        patched["escalate_after"] == "30m"
            && patched["escalate_after_seconds"] == 1800
            && patched["auto_reply"] == "We answer on Monday."
            && patched["signature"] == "Billing, ACME"
            && patched["timezone"] == "Europe/Berlin"
            && patched["hours"][0] == "mon 09:00-17:00"
            && patched["hours"][6] == "sun closed"
            && patched["holidays"] == json!(["2026-12-25"]),
        "{patched}"
    );
    let calendar = command(&env.alice, &olga_room, "!sb team billing calendar").await?;
    ensure!(
        calendar.contains("Team billing (Europe/Berlin): mon 09:00-17:00")
            && calendar.contains("2026-12-25"),
        "{calendar}"
    );
    let why = api
        .refused(
            Method::PATCH,
            "/teams/billing",
            Some(SECRET),
            Some(json!({"timezone": "Mars/Olympus"})),
            StatusCode::BAD_REQUEST,
            "invalid",
        )
        .await?;
    ensure!(why.contains("Not changed"), "{why}");
    api.refused(
        get.clone(),
        "/teams/nope",
        Some(SECRET),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    steps.step("Rules: added, removed, reset, through the API; the chat lists the same");
    let rules = api
        .ok(
            Method::POST,
            "/teams/support/rules",
            SECRET,
            Some(json!({"tags": ["vip"]})),
        )
        .await?;
    ensure!(
        rules
            == json!([{"channel": "webchat", "account": null, "keywords": [], "email_domain": null, "tags": []}, {"channel": null, "account": null, "keywords": [], "email_domain": null, "tags": ["vip"]}]),
        "{rules}"
    );
    let listed = command(&env.alice, &olga_room, "!sb team support rules").await?;
    ensure!(
        listed.contains("1. channel=webchat; 2. tags=vip"),
        "{listed}"
    );
    let (_, dry_vip) = api
        .post(
            "/routing/dry-run",
            SECRET,
            json!({"channel": "telegram", "text": "hi", "tags": ["vip"]}),
        )
        .await?;
    ensure!(dry_vip["team"] == "support", "{dry_vip}");
    api.refused(
        Method::POST,
        "/teams/support/rules",
        Some(SECRET),
        Some(json!({})),
        StatusCode::BAD_REQUEST,
        "invalid",
    )
    .await?;
    api.refused(
        Method::DELETE,
        "/teams/support/rules/9",
        Some(SECRET),
        None,
        StatusCode::BAD_REQUEST,
        "invalid",
    )
    .await?;
    let rules = api
        .ok(Method::DELETE, "/teams/support/rules/2", SECRET, None)
        .await?;
    ensure!(rules.as_array().map(Vec::len) == Some(1), "{rules}");
    api.ok(
        Method::POST,
        "/teams/support/rules",
        SECRET,
        Some(json!({"keywords": ["refund"]})),
    )
    .await?;
    let rules = api
        .ok(Method::DELETE, "/teams/support/rules", SECRET, None)
        .await?;
    ensure!(
        rules
            == json!([{"channel": "webchat", "account": null, "keywords": [], "email_domain": null, "tags": []}]),
        "{rules}"
    );

    steps.step("Canned replies: personal for anyone, everyone's for admins (as `!sb canned`)");
    let added = api
        .ok(
            Method::POST,
            "/canned",
            &bob,
            Some(json!({"name": "hi", "text": "Hello {{ first_name }}!"})),
        )
        .await?;
    ensure!(
        added["scope"] == "personal" && added["owner"] == "@bob:localhost",
        "{added}"
    );
    let why = api
        .refused(
            Method::POST,
            "/canned",
            Some(&bob),
            Some(json!({"name": "bye", "scope": "everyone", "text": "Bye"})),
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await?;
    ensure!(why.contains("only admins"), "{why}");
    api.ok(
        Method::POST,
        "/canned",
        SECRET,
        Some(json!({"name": "bye", "scope": "everyone", "text": "Bye"})),
    )
    .await?;
    api.refused(
        Method::POST,
        "/canned",
        Some(&bob),
        Some(json!({"name": "bad", "text": "{{ oops"})),
        StatusCode::BAD_REQUEST,
        "invalid",
    )
    .await?;
    let (_, bobs) = api.get("/canned", &bob).await?;
    let (_, carols) = api.get("/canned", &carol_t).await?;
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect()
    };
    ensure!(
        names(&bobs) == ["bye", "hi"] || names(&bobs) == ["hi", "bye"],
        "{bobs}"
    );
    ensure!(
        names(&carols) == ["bye"],
        "Bob's personal reply is his: {carols}"
    );
    let edited = api
        .ok(
            Method::PUT,
            "/canned/hi",
            &bob,
            Some(json!({"text": "Hi {{ first_name }}"})),
        )
        .await?;
    ensure!(edited["text"] == "Hi {{ first_name }}", "{edited}");
    api.ok(
        Method::PUT,
        "/canned/bye",
        SECRET,
        Some(json!({"scope": "everyone", "text": "Goodbye {{ first_name }}"})),
    )
    .await?;
    let shown = command(&env.alice, &olga_room, "!sb canned show bye").await?;
    ensure!(
        shown.contains("Goodbye {{ first_name }}"),
        "the chat shows the API's edit: {shown}"
    );
    api.ok(Method::DELETE, "/canned/hi?scope=personal", &bob, None)
        .await?;
    api.refused(
        Method::DELETE,
        "/canned/hi",
        Some(&bob),
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await?;

    steps.step("Reports as JSON: leads and admins (as `!sb report`)");
    let why = api
        .refused(
            get.clone(),
            "/reports?period=today",
            Some(&bob),
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await?;
    ensure!(why.contains("`report` needs lead rights"), "{why}");
    let all = api
        .ok(
            get.clone(),
            "/reports?period=today&by=channel",
            SECRET,
            None,
        )
        .await?;
    ensure!(
        all["total"]["new"] == 3 && all["total"]["resolved"] == 1,
        "{all}"
    );
    let channels: Vec<&str> = all["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["group"].as_str())
        .collect();
    ensure!(channels == ["telegram", "webchat"], "{all}");
    ensure!(all["customers"] == 3 && all["unworked_now"] == 1, "{all}");
    let carols_report = api
        .ok(get.clone(), "/reports?period=today", &carol_t, None)
        .await?;
    ensure!(
        carols_report["total"]["new"].as_u64() < Some(3),
        "a lead sees her teams only: {carols_report}"
    );
    api.refused(
        get.clone(),
        "/reports?period=someday",
        Some(SECRET),
        None,
        StatusCode::BAD_REQUEST,
        "invalid",
    )
    .await?;
    steps.finish()
}
