//! `team <name> …`: admins change teams without editing the config. Changes are stored and
//! apply over the config: `add @user`, `lead @user`, `remove @user`, `escalate <duration>`,
//! `autoreply <text>|off`, `signature <text>|off`, `hours <days> <HH:MM-HH:MM|closed>` / `hours reset`,
//! `holiday add|remove <YYYY-MM-DD>`, `timezone <Area/City>`, `calendar` (show),
//! `rules` (show), `rule add <field=value…>`, `rule remove <n>`, `rules reset`,
//! `lobby <room id|#alias>`.

use super::{user_arg, Context};
use crate::matrix::MatrixError;

const USAGE: &str = "Usage: `!sb team <name> add|lead|remove @user`, `escalate <2h>`, `autoreply <text>|off`, `signature <text>|off`, \
`hours mon-fri 09:00-18:00` (or `closed`; `hours reset`), `holiday add|remove 2026-12-25`, `timezone Europe/Berlin`, `calendar`, \
`rules`, `rule add channel=sms tags=vip keywords=refund,invoice`, `rule remove <n>`, `rules reset`, `lobby <room id|#alias>`.";

/// Show or change a team's routing rules; the answer lists them as they now are.
async fn rules_change(
    ctx: &Context<'_>,
    team: &crate::routing::teams::Team,
    action: &str,
    rest: &str,
) -> Result<String, String> {
    use crate::routing::teams::{describe_rules, parse_rule, rules};
    let mut list = rules(ctx.bridge, team).await;
    let (op, arg) = rest
        .split_once(char::is_whitespace)
        .map(|(o, a)| (o, a.trim()))
        .unwrap_or((rest, ""));
    let changed = match (action, op) {
        ("rules", "") => false,
        ("rules", "reset") => {
            list = team.config.rules.clone();
            true
        }
        ("rule", "add") => {
            list.push(parse_rule(arg).map_err(|e| format!("Not changed: {e}"))?);
            true
        }
        ("rule", "remove") => {
            let n: usize = arg
                .parse()
                .ok()
                .filter(|n| (1..=list.len()).contains(n))
                .ok_or_else(|| format!("Not changed: give a rule number, 1 to {}.", list.len()))?;
            list.remove(n - 1);
            true
        }
        _ => return Err(USAGE.to_string()),
    };
    if changed {
        let value = serde_json::to_string(&list).map_err(|e| e.to_string())?;
        ctx.bridge
            .store
            .set_team_setting(&team.name, "rules", &value)
            .await
            .map_err(|e| format!("Not changed: {e}"))?;
    }
    Ok(format!(
        "Team {} rules (first matching team wins, in config order): {}.",
        team.name,
        describe_rules(&list)
    ))
}

/// Move a team's lobby to another room (the bot joins it; entries posted from now on go there).
async fn lobby_change(
    ctx: &Context<'_>,
    team: &crate::routing::teams::Team,
    rest: &str,
) -> Result<String, String> {
    let hs = &ctx.bridge.homeserver;
    let room = if rest.starts_with('#') {
        hs.resolve_alias(rest)
            .await
            .map_err(|e| format!("Cannot find `{rest}`: {e}"))?
    } else if rest.starts_with('!') {
        rest.to_string()
    } else {
        return Err(
            "Usage: `!sb team <name> lobby <room id|#alias>` (invite the bot first).".into(),
        );
    };
    hs.join(&room, &ctx.bridge.namespace.bot)
        .await
        .map_err(|e| format!("The bot cannot join {rest} (invite it first): {e}"))?;
    ctx.bridge
        .store
        .set_team_lobby(&team.name, &room)
        .await
        .map_err(|e| format!("Not changed: {e}"))?;
    Ok(format!("Team {} lobby is now {rest}.", team.name))
}

/// Change (or show) a team's working calendar; the answer shows the week as it now is.
async fn calendar_change(
    ctx: &Context<'_>,
    team: &crate::routing::teams::Team,
    action: &str,
    rest: &str,
) -> Result<String, String> {
    use crate::routing::teams::{calendar_changes, calendar_with};
    let mut changes = calendar_changes(ctx.bridge, team).await;
    let mut words = rest.split_whitespace();
    match (action, words.next(), words.next()) {
        ("calendar", _, _) => {}
        ("hours", Some("reset"), None) => changes.hours.clear(),
        ("hours", Some(days), Some(span)) => {
            changes.hours.push((days.to_string(), span.to_string()))
        }
        ("holiday", Some(op @ ("add" | "remove")), Some(date)) => {
            let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|_| format!("`{date}` is not a date (YYYY-MM-DD)."))?;
            changes.holidays_added.retain(|d| *d != date);
            changes.holidays_removed.retain(|d| *d != date);
            if op == "add" {
                changes.holidays_added.push(date)
            } else {
                changes.holidays_removed.push(date)
            }
        }
        ("timezone", Some(tz), None) => changes.timezone = Some(tz.to_string()),
        _ => return Err(USAGE.to_string()),
    }
    let calendar = calendar_with(team, &changes).map_err(|e| format!("Not changed: {e}."))?;
    if action != "calendar" {
        let value = serde_json::to_string(&changes).map_err(|e| e.to_string())?;
        ctx.bridge
            .store
            .set_team_setting(&team.name, "calendar", &value)
            .await
            .map_err(|e| format!("Not changed: {e}"))?;
    }
    let holidays: Vec<String> = calendar.holidays.iter().map(|d| d.to_string()).collect();
    Ok(format!(
        "Team {} ({}): {}; holidays: {}.",
        team.name,
        calendar.tz,
        calendar.describe_week().join(", "),
        if holidays.is_empty() {
            "none".to_string()
        } else {
            holidays.join(", ")
        }
    ))
}

pub async fn run(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let mut words = ctx.args.splitn(3, char::is_whitespace);
    let (Some(name), Some(action)) = (words.next(), words.next()) else {
        return ctx.reply(USAGE).await;
    };
    let rest = words.next().unwrap_or("").trim();
    let Some(team) = ctx.bridge.teams.get(name) else {
        let names: Vec<&str> = ctx.bridge.teams.iter().map(|t| t.name.as_str()).collect();
        return ctx
            .reply(&format!("No team `{name}`. Teams: {}.", names.join(", ")))
            .await;
    };
    let store = &ctx.bridge.store;
    let result = match action {
        "add" | "lead" | "remove" => {
            let Some(user) = user_arg(ctx.bridge, rest) else {
                return ctx.reply("Name a user: `@user:server`.").await;
            };
            let role = match action {
                "add" => "member",
                "lead" => "lead",
                _ => "removed",
            };
            store
                .set_team_member(&team.name, &user, role)
                .await
                .map(|_| {
                    format!("{user} is now {role} of team {}.", team.name)
                        .replace("now removed of", "removed from")
                })
        }
        "escalate" => match humantime::parse_duration(rest) {
            Ok(_) => store
                .set_team_setting(&team.name, "escalate_after", rest)
                .await
                .map(|_| format!("Team {} escalates after {rest} of working time.", team.name)),
            Err(_) => return ctx.reply("Usage: `!sb team <name> escalate 2h`.").await,
        },
        "autoreply" => {
            let value = if rest.eq_ignore_ascii_case("off") {
                ""
            } else {
                rest
            };
            store
                .set_team_setting(&team.name, "auto_reply", value)
                .await
                .map(|_| {
                    if value.is_empty() {
                        format!("Team {} sends no auto-reply.", team.name)
                    } else {
                        format!("Team {} auto-reply set.", team.name)
                    }
                })
        }
        "signature" => {
            let value = if rest.eq_ignore_ascii_case("off") {
                ""
            } else {
                rest
            };
            if value.is_empty() && !rest.eq_ignore_ascii_case("off") {
                return ctx
                    .reply("Usage: `!sb team <name> signature <text>` or `signature off`.")
                    .await;
            }
            store
                .set_team_setting(&team.name, "signature", value)
                .await
                .map(|_| {
                    if value.is_empty() {
                        format!("Team {} signs no messages.", team.name)
                    } else {
                        format!("Team {} signs its emails with: {value}", team.name)
                    }
                })
        }
        "hours" | "holiday" | "timezone" | "calendar" => {
            match calendar_change(ctx, team, action, rest).await {
                Ok(text) => Ok(text),
                Err(why) => return ctx.reply(&why).await,
            }
        }
        "rules" | "rule" => match rules_change(ctx, team, action, rest).await {
            Ok(text) => Ok(text),
            Err(why) => return ctx.reply(&why).await,
        },
        "lobby" => match lobby_change(ctx, team, rest).await {
            Ok(text) => Ok(text),
            Err(why) => return ctx.reply(&why).await,
        },
        _ => return ctx.reply(&format!("Unknown team action. {USAGE}")).await,
    };
    match result {
        Ok(text) => ctx.reply(&text).await,
        Err(e) => ctx.reply(&format!("Not done: {e}")).await,
    }
}
