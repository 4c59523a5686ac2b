//! `switchboard doctor` for Discord: does Discord take the token, and is it a bot's? One
//! read-only call, `GET /users/@me`.

use switchboard_channel::Check;
use switchboard_kit::checks::{Credential, Doctor};

use crate::config::DiscordConfig;
use crate::rest::{Rest, RestError};

const DOCTOR: Doctor = Doctor {
    section: "discord",
    network: "Discord",
    api_url_key: "api_url",
    credential: Credential {
        key: "token",
        source: "the bot's token (Developer Portal → your application → Bot → Reset Token)",
    },
};

/// The check.
pub async fn check(config: &DiscordConfig) -> Vec<Check> {
    let what = "bot token (GET /users/@me)";
    let rest = match DOCTOR.client(what, config.validate(), || Rest::new(config)) {
        Ok(client) => client,
        Err(failed) => return vec![failed],
    };
    vec![match rest.me().await {
        Ok(user) if user.bot => DOCTOR.ok(
            what,
            format!(
                "the bot {} (@{}, id {})",
                user.display_name(),
                user.username,
                user.id
            ),
        ),
        Ok(user) => DOCTOR.wrong(
            what,
            format!(
                "the token is the user account @{}'s, not a bot's",
                user.username
            ),
            "token",
            DOCTOR.credential.source,
        ),
        Err(RestError::Api { status, error, .. }) => {
            DOCTOR.http(what, status.as_u16(), &error.message)
        }
        Err(RestError::Network(e)) => DOCTOR.unreachable(what, &e),
        Err(RestError::Decode(e)) => DOCTOR.unexpected(what, &e),
        Err(RestError::TooLarge(_)) => DOCTOR.unexpected(what, "an answer too large"),
    }]
}
