//! `switchboard doctor` for Telegram: is the token accepted (`getMe`), and do updates reach the
//! bridge the way the configuration says (`getWebhookInfo`)? Read-only calls only.

use switchboard_channel::Check;
use teloxide::errors::{ApiError, RequestError};
use teloxide::prelude::Requester;

use crate::client;
use crate::config::{Mode, TelegramConfig};

/// The checks, in order; a refused token stops there (nothing else can be asked).
pub async fn check(config: &TelegramConfig) -> Vec<Check> {
    let bot = match client::bot(config) {
        Ok(bot) => bot,
        Err(e) => {
            return vec![Check::failed(
            "Bot API client",
            e,
            "set channels.telegram.api_url to the Bot API's base URL (https://api.telegram.org)",
        )]
        }
    };
    let mut checks = Vec::new();
    match bot.get_me().await {
        Ok(me) => checks.push(Check::ok(
            "bot token (getMe)",
            format!("the bot @{} (id {})", me.username(), me.id),
        )),
        Err(RequestError::Api(ApiError::InvalidToken)) => {
            checks.push(Check::failed(
                "bot token (getMe)",
                "Telegram refused the token (Unauthorized)",
                "set channels.telegram.token to the token @BotFather gives for the bot (/token)",
            ));
            return checks;
        }
        Err(e) => {
            checks.push(Check::failed(
                "bot token (getMe)",
                format!("no answer from the Bot API: {e}"),
                "check that channels.telegram.api_url is reachable from this machine",
            ));
            return checks;
        }
    }
    match bot.get_webhook_info().await {
        Ok(info) => checks.push(delivery(
            config,
            info.url.as_ref().map(|u| u.as_str()),
            info.last_error_message.as_deref(),
        )),
        Err(e) => checks.push(Check::failed(
            "update delivery (getWebhookInfo)",
            format!("Telegram did not answer: {e}"),
            "try again; if it persists, check the Bot API's status",
        )),
    }
    checks
}

/// Whether the webhook Telegram holds fits the configured mode.
fn delivery(config: &TelegramConfig, url: Option<&str>, last_error: Option<&str>) -> Check {
    let what = "update delivery (getWebhookInfo)";
    let url = url.unwrap_or("");
    match config.mode {
        Mode::Polling if url.is_empty() => Check::ok(what, "polling, no webhook set"),
        Mode::Polling => Check::failed(
            what,
            format!("a webhook is set ({url}), so getUpdates is refused"),
            "remove it (the bridge does so at start), or set channels.telegram.mode: webhook",
        ),
        Mode::Webhook => {
            let expected = config.webhook_url().unwrap_or_default();
            match last_error {
                _ if url.is_empty() && config.register_webhook => Check::ok(
                    what,
                    format!("no webhook yet; the bridge sets {expected} at start"),
                ),
                _ if url != expected => Check::failed(
                    what,
                    format!("Telegram posts updates to {url:?}, not to {expected}"),
                    "let the bridge set it (channels.telegram.register_webhook: true) or set it to the bridge's URL",
                ),
                Some(error) => Check::failed(
                    what,
                    format!("Telegram's last delivery to {url} failed: {error}"),
                    "make appservice.public_url reachable from the internet over HTTPS",
                ),
                None => Check::ok(what, format!("webhook {url}")),
            }
        }
    }
}
