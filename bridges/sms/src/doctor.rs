//! `switchboard doctor` for SMS (Twilio): does Twilio take the account SID and auth token, is
//! the account active, and are the configured numbers the account's? Read-only calls:
//! `GET /2010-04-01/Accounts/{AccountSid}.json`, then one
//! `GET …/IncomingPhoneNumbers.json?PhoneNumber=<number>` per configured number.

use serde_json::Value;
use switchboard_channel::Check;
use switchboard_kit::checks::{Credential, Doctor};

use crate::client::{Client, TwilioError};
use crate::config::SmsConfig;

const DOCTOR: Doctor = Doctor {
    section: "sms",
    network: "Twilio",
    api_url_key: "api_url",
    credential: Credential {
        key: "auth_token",
        source: "the Auth Token shown beside the Account SID in the Twilio Console (Account Info), with channels.sms.account_sid set to that Account SID",
    },
};

/// The checks, in order; refused credentials stop there.
pub async fn check(config: &SmsConfig) -> Vec<Check> {
    let what = "account (GET /Accounts/{account_sid}.json)";
    let client = match DOCTOR.client(what, config.validate(), || {
        Client::new(&config.api_url, &config.account_sid, &config.auth_token)
    }) {
        Ok(client) => client,
        Err(failed) => return vec![failed],
    };
    let account = match client.get_account_json(".json").await {
        Ok(account) => account,
        Err(e) => return vec![failed(what, e)],
    };
    let text = |name: &str| account.get(name).and_then(Value::as_str).unwrap_or("?");
    let mut checks = vec![match text("status") {
        "active" => DOCTOR.ok(
            what,
            format!("{:?}, active ({} account)", text("friendly_name"), text("type")),
        ),
        status => Check::failed(
            what,
            format!("the account {:?} is {status}", text("friendly_name")),
            "reactivate the account in the Twilio Console (a suspended account neither sends nor receives), or set channels.sms.account_sid and auth_token to an active account's",
        ),
    }];
    for number in config.own_numbers() {
        let what = format!("number {number} (IncomingPhoneNumbers)");
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("PhoneNumber", &number)
            .finish();
        checks.push(
            match client
                .get_account_json(&format!("/IncomingPhoneNumbers.json?{query}"))
                .await
            {
                Ok(page) => {
                    let owned = page
                        .get("incoming_phone_numbers")
                        .and_then(Value::as_array)
                        .is_some_and(|numbers| {
                            numbers.iter().any(|n| n.get("phone_number").and_then(Value::as_str) == Some(number.as_str()))
                        });
                    if owned {
                        DOCTOR.ok(what, "the account's number")
                    } else {
                        DOCTOR.wrong(
                            what,
                            format!("{number} is not a number of this account"),
                            "numbers",
                            "the account's own numbers (Twilio Console → Phone Numbers → Active numbers)",
                        )
                    }
                }
                Err(e) => failed(&what, e),
            },
        );
    }
    checks
}

fn failed(what: &str, error: TwilioError) -> Check {
    match error {
        TwilioError::Api { status, body, .. } => {
            let message = body.message.unwrap_or_default();
            match body.code {
                Some(20003) => DOCTOR.refused(what, &format!("{message}, error 20003")),
                Some(20404) => DOCTOR.wrong(
                    what,
                    format!("Twilio knows no such account for these credentials ({message}, error 20404)"),
                    "account_sid",
                    "the Account SID (AC…) from the Twilio Console's Account Info",
                ),
                _ => DOCTOR.http(what, status, &message),
            }
        }
        TwilioError::Network(e) => DOCTOR.unreachable(what, &e),
        TwilioError::Decode(e) => DOCTOR.unexpected(what, &e),
    }
}
