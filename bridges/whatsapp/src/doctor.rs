//! `switchboard doctor` for WhatsApp: does the Cloud API take the access token, and is the
//! configured phone number id a business number it may use? One read-only call:
//! `GET /{phone-number-id}?fields=display_phone_number,verified_name`.

use serde_json::Value;
use switchboard_channel::Check;
use switchboard_kit::checks::{Credential, Doctor};

use crate::api::{ApiError, Graph};
use crate::config::WhatsAppConfig;

const DOCTOR: Doctor = Doctor {
    section: "whatsapp",
    network: "WhatsApp",
    api_url_key: "api_url",
    credential: Credential {
        key: "access_token",
        source: "a system user's access token with whatsapp_business_messaging (Meta Business Suite → Business settings → System users → Generate new token)",
    },
};

const WHAT: &str = "phone number (GET /{phone_number_id})";

/// The checks, in order.
pub async fn check(config: &WhatsAppConfig) -> Vec<Check> {
    if let Some(failed) = DOCTOR.config(config.validate()) {
        return vec![failed];
    }
    let graph = match Graph::new(config) {
        Ok(graph) => graph,
        Err(e) => return vec![DOCTOR.unreachable(WHAT, &e)],
    };
    vec![match graph.phone_number().await {
        Ok(number) => found(&number),
        Err(e) => failed(e),
    }]
}

fn found(number: &Value) -> Check {
    let field = |name: &str| number.get(name).and_then(Value::as_str).unwrap_or("?");
    DOCTOR.ok(
        WHAT,
        format!(
            "+{} ({:?})",
            field("display_phone_number").trim_start_matches('+'),
            field("verified_name")
        ),
    )
}

fn failed(error: ApiError) -> Check {
    match error {
        ApiError::Http { status, error, .. } => {
            let graph = error.unwrap_or_default();
            let text = graph.text();
            match graph.code {
                190 => DOCTOR.refused(WHAT, &text),
                100 | 33 => DOCTOR.wrong(
                    WHAT,
                    format!("WhatsApp knows no phone number by this id for this token ({text})"),
                    "phone_number_id",
                    "the Phone number ID shown in WhatsApp Manager → API Setup (not the phone number itself)",
                ),
                10 | 200..=299 => DOCTOR.refused(WHAT, &format!("no permission for this number: {text}")),
                _ => DOCTOR.http(WHAT, status, &text),
            }
        }
        ApiError::Network(e) => DOCTOR.unreachable(WHAT, &e),
        ApiError::Unexpected(e) => DOCTOR.unexpected(WHAT, &e),
        ApiError::TooLarge(_) => DOCTOR.unexpected(WHAT, "an answer too large"),
    }
}
