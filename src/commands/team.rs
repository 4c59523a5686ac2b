//! `team <name> …`: admins change teams without editing the config. Changes are stored and
//! apply over the config: `add @user`, `lead @user`, `remove @user`, `escalate <duration>`,
//! `autoreply <text>|off`, `signature <text>|off`, `hours <days> <HH:MM-HH:MM|closed>` / `hours reset`,
//! `holiday add|remove <YYYY-MM-DD>`, `timezone <Area/City>`, `calendar` (show),
//! `rules` (show), `rule add <field=value…>`, `rule remove <n>`, `rules reset`,
//! `lobby <room id|#alias>`.
//!
//! This file only reads the words; the change is [`crate::service::teams::change`], which the
//! admin API's team endpoints call too.

use super::Context;
use crate::matrix::MatrixError;
use crate::service::teams::{self, MemberRole, RuleSource, TeamChange};
use crate::service::Actor;

const USAGE: &str = "Usage: `!sb team <name> add|lead|remove @user`, `escalate <2h>`, `autoreply <text>|off`, `signature <text>|off`, \
`hours mon-fri 09:00-18:00` (or `closed`; `hours reset`), `holiday add|remove 2026-12-25`, `timezone Europe/Berlin`, `calendar`, \
`rules`, `rule add channel=sms tags=vip keywords=refund,invoice`, `rule remove <n>`, `rules reset`, `lobby <room id|#alias>`.";

/// The change the words ask for, or the answer saying how to write it.
fn parse(action: &str, rest: &str) -> Result<TeamChange, String> {
    let off = |rest: &str| -> Option<String> {
        Some(rest.to_string()).filter(|r| !r.eq_ignore_ascii_case("off"))
    };
    let (op, arg) = rest
        .split_once(char::is_whitespace)
        .map(|(o, a)| (o, a.trim()))
        .unwrap_or((rest, ""));
    let mut words = rest.split_whitespace();
    Ok(match action {
        "add" | "lead" | "remove" => TeamChange::Member {
            user: rest.to_string(),
            role: match action {
                "add" => MemberRole::Member,
                "lead" => MemberRole::Lead,
                _ => MemberRole::Removed,
            },
        },
        "escalate" => TeamChange::EscalateAfter(rest.to_string()),
        "autoreply" => TeamChange::AutoReply(off(rest)),
        "signature" => {
            if rest.is_empty() {
                return Err("Usage: `!sb team <name> signature <text>` or `signature off`.".into());
            }
            TeamChange::Signature(off(rest))
        }
        "calendar" => TeamChange::ShowCalendar,
        "hours" => match (words.next(), words.next()) {
            (Some("reset"), None) => TeamChange::HoursReset,
            (Some(days), Some(span)) => TeamChange::Hours {
                days: days.into(),
                span: span.into(),
            },
            _ => return Err(USAGE.into()),
        },
        "holiday" => match (words.next(), words.next()) {
            (Some(op @ ("add" | "remove")), Some(date)) => TeamChange::Holiday {
                date: date.into(),
                add: op == "add",
            },
            _ => return Err(USAGE.into()),
        },
        "timezone" => match (words.next(), words.next()) {
            (Some(tz), None) => TeamChange::TimeZone(tz.into()),
            _ => return Err(USAGE.into()),
        },
        "rules" => match op {
            "" => TeamChange::ShowRules,
            "reset" => TeamChange::RulesReset,
            _ => return Err(USAGE.into()),
        },
        "rule" => match op {
            "add" => TeamChange::RuleAdd(RuleSource::Words(arg.to_string())),
            "remove" => TeamChange::RuleRemove(arg.parse().unwrap_or(0)),
            _ => return Err(USAGE.into()),
        },
        "lobby" => TeamChange::Lobby(rest.to_string()),
        _ => return Err(format!("Unknown team action. {USAGE}")),
    })
}

pub async fn run(ctx: &Context<'_>, actor: &Actor) -> Result<(), MatrixError> {
    let mut words = ctx.args.splitn(3, char::is_whitespace);
    let (Some(name), Some(action)) = (words.next(), words.next()) else {
        return ctx.reply(USAGE).await;
    };
    let rest = words.next().unwrap_or("").trim();
    match parse(action, rest) {
        Ok(change) => {
            ctx.answer(teams::change(ctx.bridge, actor, name, change).await)
                .await
        }
        Err(usage) => ctx.reply(&usage).await,
    }
}
