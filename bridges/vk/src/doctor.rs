//! `switchboard doctor` for VK: does VK take the community token, is it the configured
//! community's, and may it write messages? Two read-only methods: `groups.getById` (without
//! `group_id`, a community token answers its own community) and `groups.getTokenPermissions`
//! (the token's rights; the bridge needs `messages`).

use serde_json::Value;
use switchboard_channel::Check;
use switchboard_kit::checks::{Credential, Doctor};

use crate::api::{Api, ApiError};
use crate::config::VkConfig;

const DOCTOR: Doctor = Doctor {
    section: "vk",
    network: "VK",
    api_url_key: "api_url",
    credential: Credential {
        key: "access_token",
        source: "a community token with the messages right (the community → Manage → API usage → Access tokens → Create token)",
    },
};

/// The checks, in order; a refused token stops there.
pub async fn check(config: &VkConfig) -> Vec<Check> {
    let what = "community token (groups.getById)";
    let api = match DOCTOR.client(what, config.validate(), || Api::new(config)) {
        Ok(client) => client,
        Err(failed) => return vec![failed],
    };
    let group = match api.call("groups.getById", &[]).await {
        Ok(answer) => answer,
        Err(e) => return vec![failed(what, e)],
    };
    // Since 5.194 `{"groups": […], "profiles": […]}`; before, the array itself.
    let first = group
        .get("groups")
        .unwrap_or(&group)
        .get(0)
        .cloned()
        .unwrap_or(Value::Null);
    let id = first.get("id").and_then(Value::as_u64).unwrap_or(0);
    let name = first.get("name").and_then(Value::as_str).unwrap_or("?");
    let mut checks = Vec::new();
    if id == config.group_id {
        checks.push(DOCTOR.ok(what, format!("the community {name:?} (id {id})")));
    } else {
        checks.push(DOCTOR.wrong(
            what,
            format!(
                "the token is the community {name:?}'s (id {id}), not {}'s",
                config.group_id
            ),
            "group_id",
            &format!(
                "{id}, or set channels.vk.access_token to a token of the community {}",
                config.group_id
            ),
        ));
    }
    let what = "token rights (groups.getTokenPermissions)";
    checks.push(match api.call("groups.getTokenPermissions", &[]).await {
        Ok(rights) => {
            let names: Vec<&str> = rights
                .get("permissions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("name").and_then(Value::as_str))
                .collect();
            if names.contains(&"messages") {
                DOCTOR.ok(what, format!("rights: {}", names.join(", ")))
            } else {
                DOCTOR.wrong(
                    what,
                    format!(
                        "the token lacks the messages right (it has: {})",
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ),
                    "access_token",
                    DOCTOR.credential.source,
                )
            }
        }
        Err(e) => failed(what, e),
    });
    checks
}

fn failed(what: &str, error: ApiError) -> Check {
    match error {
        ApiError::Vk { code: 5, message } => DOCTOR.refused(what, &message),
        ApiError::Vk { code, message } if matches!(code, 15 | 27 | 28) => DOCTOR.refused(
            what,
            &format!("not a community token, or access denied: {message} (error {code})"),
        ),
        ApiError::Vk { code, message } if matches!(code, 6 | 9 | 10) => {
            DOCTOR.http(what, 503, &format!("{message} (error {code})"))
        }
        ApiError::Vk { code, message } => {
            DOCTOR.unexpected(what, &format!("VK error {code}: {message}"))
        }
        ApiError::Transport(t) => DOCTOR.transport(what, &t),
    }
}
