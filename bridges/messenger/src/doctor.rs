//! `switchboard doctor` for Messenger and Instagram: does the Graph API take the Page access
//! token, and is it the token of the configured account? One read-only call, `GET /me` with
//! the token: it answers the Page the token belongs to (and, asked for
//! `instagram_business_account`, the Instagram professional account linked to that Page).

use std::time::Duration;

use serde_json::Value;
use switchboard_channel::Check;
use switchboard_kit::checks::{Credential, Doctor};

use crate::config::MetaConfig;
use crate::graph::{Graph, GraphError};
use crate::parse::Platform;

fn doctor(platform: Platform) -> Doctor {
    match platform {
        Platform::Messenger => Doctor {
            section: "messenger",
            network: "Messenger",
            api_url_key: "api_url",
            credential: Credential {
                key: "access_token",
                source: "the Page's access token with pages_messaging (Meta app dashboard → Messenger → Settings → Access tokens, or a system user's Page token)",
            },
        },
        Platform::Instagram => Doctor {
            section: "instagram",
            network: "Instagram",
            api_url_key: "api_url",
            credential: Credential {
                key: "access_token",
                source: "the access token of the Page linked to the Instagram professional account, with instagram_manage_messages (Meta app dashboard → Instagram → API setup with Facebook login)",
            },
        },
    }
}

/// The checks, in order; a refused token stops there.
pub async fn check(platform: Platform, config: &MetaConfig) -> Vec<Check> {
    let doctor = doctor(platform);
    if let Some(failed) = doctor.config(config.validate(platform.name())) {
        return vec![failed];
    }
    let what = "Page access token (GET /me)";
    let graph = match Graph::new(
        config.graph_base(),
        config.access_token.clone(),
        platform,
        Duration::from_secs(u64::from(config.request_timeout_secs.max(1))),
    ) {
        Ok(graph) => graph,
        Err(e) => return vec![doctor.unreachable(what, &e)],
    };
    let fields = match platform {
        Platform::Messenger => "id,name",
        Platform::Instagram => "id,name,instagram_business_account",
    };
    let me = match graph.profile("me", fields).await {
        Ok(me) => me,
        Err(e) => return vec![failed(&doctor, what, e)],
    };
    let id = me.get("id").and_then(Value::as_str).unwrap_or("");
    let name = me.get("name").and_then(Value::as_str).unwrap_or("?");
    let mut checks = vec![doctor.ok(what, format!("the Page {name:?} (id {id})"))];
    let want = config.account_id.as_str();
    checks.push(match platform {
        Platform::Messenger => {
            let what = "account (channels.messenger.account_id)";
            if want.is_empty() {
                doctor.ok(what, format!("not set; conversations are the Page {id}'s"))
            } else if want == id {
                doctor.ok(what, format!("the token's Page, {id}"))
            } else {
                doctor.wrong(
                    what,
                    format!("the token is the Page {id}'s ({name:?}), not {want}'s"),
                    "account_id",
                    &format!("{id}, or set channels.messenger.access_token to the token of the Page {want}"),
                )
            }
        }
        Platform::Instagram => {
            let what = "Instagram account (instagram_business_account)";
            let linked = me
                .pointer("/instagram_business_account/id")
                .and_then(Value::as_str)
                .unwrap_or("");
            if linked.is_empty() {
                doctor.wrong(
                    what,
                    format!("the Page {name:?} has no Instagram professional account linked"),
                    "access_token",
                    "the token of the Page the Instagram account is linked to (link them in the Instagram app: Settings → Business tools → Connect a Facebook Page)",
                )
            } else if want.is_empty() || want == linked {
                doctor.ok(what, format!("{linked}, linked to the Page {name:?}"))
            } else {
                doctor.wrong(
                    what,
                    format!("the Page {name:?} is linked to the Instagram account {linked}, not {want}"),
                    "account_id",
                    &format!("{linked}, or set channels.instagram.access_token to the token of the Page linked to {want}"),
                )
            }
        }
    });
    checks
}

fn failed(doctor: &Doctor, what: &str, error: GraphError) -> Check {
    match error {
        GraphError::Api {
            status,
            code,
            message,
            ..
        } => match code {
            Some(190) => doctor.refused(what, &message),
            Some(10 | 200..=299) => doctor.refused(what, &format!("missing permission: {message}")),
            _ => doctor.http(what, status, &message),
        },
        GraphError::Network(e) => doctor.unreachable(what, &e),
    }
}
