//! `switchboard doctor` for Viber: does Viber take the bot's auth token, and does it post events
//! to this bridge? One read-only call, `get_account_info`: the account's status, name,
//! subscribers and the webhook Viber holds for it.

use serde_json::{json, Value};
use switchboard_channel::Check;
use switchboard_kit::checks::{Credential, Doctor};

use crate::api::{Api, ApiError};
use crate::config::ViberConfig;

const DOCTOR: Doctor = Doctor {
    section: "viber",
    network: "Viber",
    api_url_key: "api_url",
    credential: Credential {
        key: "auth_token",
        source: "the bot's token (Viber Admin Panel → your bot → Token)",
    },
};

/// The checks, in order; a refused token stops there.
pub async fn check(config: &ViberConfig) -> Vec<Check> {
    let what = "auth token (get_account_info)";
    let api = match DOCTOR.client(what, config.validate(), || Api::new(config)) {
        Ok(client) => client,
        Err(failed) => return vec![failed],
    };
    let info = match api.call("get_account_info", &json!({})).await {
        Ok(info) => info,
        Err(ApiError::Status { status: 2, message }) => return vec![DOCTOR.refused(what, &message)],
        Err(ApiError::Status { status, message }) => {
            return vec![DOCTOR.unexpected(what, &format!("status {status}: {message}"))]
        }
        Err(ApiError::Transport(t)) => return vec![DOCTOR.transport(what, &t)],
    };
    let text = |name: &str| info.get(name).and_then(Value::as_str).unwrap_or("");
    let subscribers = info
        .get("subscribers_count")
        .and_then(Value::as_u64)
        .map(|n| format!(", {n} subscribers"))
        .unwrap_or_default();
    let mut checks = vec![DOCTOR.ok(
        what,
        format!(
            "the bot {:?} ({}{subscribers}), status {}",
            text("name"),
            text("id"),
            text("status_message")
        ),
    )];
    checks.push(webhook(config, text("webhook")));
    checks
}

/// Whether the webhook Viber holds is this bridge's.
fn webhook(config: &ViberConfig, held: &str) -> Check {
    let what = "webhook (get_account_info)";
    let expected = config.webhook_url().unwrap_or_default();
    if held == expected {
        DOCTOR.ok(what, format!("Viber posts events to {held}"))
    } else if held.is_empty() && config.register_webhook {
        DOCTOR.ok(
            what,
            format!("none yet; the bridge sets {expected} at start"),
        )
    } else if held.is_empty() {
        DOCTOR.wrong(
            what,
            "Viber holds no webhook, and the bridge does not set one (register_webhook: false)",
            "register_webhook",
            &format!("true, or call set_webhook with {expected} yourself"),
        )
    } else {
        Check::failed(
            what,
            format!("Viber posts events to {held:?}, not to {expected}"),
            "set appservice.public_url to the bridge's public URL (channels.viber.public_url overrides it) and restart the bridge, which sets the webhook (register_webhook: true)",
        )
    }
}
