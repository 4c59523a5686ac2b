//! `team <name> …`: admins change teams without editing the config. Changes are stored and
//! apply over the config: `add @user`, `lead @user`, `remove @user`, `escalate <duration>`,
//! `autoreply <text>|off`.

use super::{user_arg, Context};
use crate::matrix::MatrixError;

pub async fn run(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let mut words = ctx.args.splitn(3, char::is_whitespace);
    let (Some(name), Some(action)) = (words.next(), words.next()) else {
        return ctx.reply("Usage: `!sb team <name> add|lead|remove @user`, `escalate <2h>`, `autoreply <text>|off`.").await;
    };
    let rest = words.next().unwrap_or("").trim();
    let Some(team) = ctx.bridge.teams.get(name) else {
        let names: Vec<&str> = ctx.bridge.teams.iter().map(|t| t.name.as_str()).collect();
        return ctx.reply(&format!("No team `{name}`. Teams: {}.", names.join(", "))).await;
    };
    let store = &ctx.bridge.store;
    let result = match action {
        "add" | "lead" | "remove" => {
            let Some(user) = user_arg(ctx.bridge, rest) else { return ctx.reply("Name a user: `@user:server`.").await };
            let role = match action {
                "add" => "member",
                "lead" => "lead",
                _ => "removed",
            };
            store.set_team_member(&team.name, &user, role).await.map(|_| format!("{user} is now {role} of team {}.", team.name).replace("now removed of", "removed from"))
        }
        "escalate" => match humantime::parse_duration(rest) {
            Ok(_) => store.set_team_setting(&team.name, "escalate_after", rest).await.map(|_| format!("Team {} escalates after {rest} of working time.", team.name)),
            Err(_) => return ctx.reply("Usage: `!sb team <name> escalate 2h`.").await,
        },
        "autoreply" => {
            let value = if rest.eq_ignore_ascii_case("off") { "" } else { rest };
            store.set_team_setting(&team.name, "auto_reply", value).await.map(|_| {
                if value.is_empty() { format!("Team {} sends no auto-reply.", team.name) } else { format!("Team {} auto-reply set.", team.name) }
            })
        }
        _ => return ctx.reply("Unknown team action; use add, lead, remove, escalate or autoreply.").await,
    };
    match result {
        Ok(text) => ctx.reply(&text).await,
        Err(e) => ctx.reply(&format!("Not done: {e}")).await,
    }
}
