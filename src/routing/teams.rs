//! Teams: members and leads (config plus admins' changes made with `!sb team`), calendars,
//! and the routing rules that pick a team for a new conversation.

use std::time::Duration;

use crate::bridge::Bridge;
use crate::config::{Config, Level, RuleConfig, TeamConfig};
use crate::routing::calendar::Calendar;
use crate::store::conversations::{Contact, Conversation};
use crate::store::StoreError;

pub struct Team {
    pub name: String,
    pub config: TeamConfig,
    pub calendar: Calendar,
}

/// All teams, in config order (the first matching rule wins).
pub struct Teams {
    list: Vec<Team>,
}

impl Teams {
    /// Build from a validated config.
    pub fn from_config(config: &Config) -> Teams {
        let list = config
            .teams
            .iter()
            .map(|(name, c)| Team {
                name: name.clone(),
                calendar: Calendar::from_config(&c.timezone, &c.hours, &c.holidays)
                    .unwrap_or_else(|_| Calendar::always(chrono_tz::UTC)),
                config: c.clone(),
            })
            .collect();
        Teams { list }
    }

    pub fn get(&self, name: &str) -> Option<&Team> {
        self.list.iter().find(|t| t.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Team> {
        self.list.iter()
    }
}

/// The team whose rules match a new conversation, if any (`tags`: the customer's segment
/// tags). Teams are tried in config order; each team's rules are the config's unless an admin
/// replaced them (`!sb team <name> rule …`).
pub async fn route<'t>(
    bridge: &'t Bridge,
    conversation: &Conversation,
    contact: &Contact,
    tags: &[String],
    first_text: &str,
) -> Option<&'t Team> {
    for team in bridge.teams.iter() {
        if rules(bridge, team)
            .await
            .iter()
            .any(|rule| rule_matches(rule, conversation, contact, tags, first_text))
        {
            return Some(team);
        }
    }
    None
}

/// Does one rule match (every field it gives)?
pub fn rule_matches(
    rule: &RuleConfig,
    conversation: &Conversation,
    contact: &Contact,
    tags: &[String],
    first_text: &str,
) -> bool {
    let text = first_text.to_lowercase();
    let domain = contact
        .email
        .as_deref()
        .and_then(|e| e.rsplit_once('@'))
        .map(|(_, d)| d.to_lowercase());
    rule.channel
        .as_ref()
        .is_none_or(|c| *c == conversation.channel)
        && rule
            .account
            .as_ref()
            .is_none_or(|a| *a == conversation.account)
        && (rule.keywords.is_empty()
            || rule
                .keywords
                .iter()
                .any(|k| text.contains(&k.to_lowercase())))
        && rule
            .email_domain
            .as_ref()
            .is_none_or(|d| domain.as_deref() == Some(d.to_lowercase().as_str()))
        && (rule.tags.is_empty()
            || rule
                .tags
                .iter()
                .any(|t| tags.iter().any(|have| have.eq_ignore_ascii_case(t))))
}

/// A team's routing rules: an admin's list (stored) when there is one, else the config's.
pub async fn rules(bridge: &Bridge, team: &Team) -> Vec<RuleConfig> {
    match bridge.store.team_setting(&team.name, "rules").await {
        Ok(Some(v)) => serde_json::from_str(&v).unwrap_or_else(|e| {
            tracing::warn!(team = team.name, error = %e, "stored rules unreadable; using the config's");
            team.config.rules.clone()
        }),
        Ok(None) => team.config.rules.clone(),
        Err(e) => {
            tracing::warn!(team = team.name, error = %e, "cannot read stored rules; using the config's");
            team.config.rules.clone()
        }
    }
}

/// A rule from `field=value` words (`channel=sms tags=vip,wholesale keywords=refund,invoice
/// account=… email_domain=…`).
pub fn parse_rule(words: &str) -> Result<RuleConfig, String> {
    let mut rule = RuleConfig::default();
    let list = |v: &str| -> Vec<String> {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    for word in words.split_whitespace() {
        let Some((field, value)) = word.split_once('=').filter(|(_, v)| !v.is_empty()) else {
            return Err(format!("`{word}` is not field=value."));
        };
        match field {
            "channel" => rule.channel = Some(value.to_string()),
            "account" => rule.account = Some(value.to_string()),
            "email_domain" => rule.email_domain = Some(value.to_lowercase()),
            "keywords" => rule.keywords = list(value),
            "tags" => {
                for t in list(value) {
                    let tag = crate::store::customers::normalize_tag(&t)
                        .ok_or_else(|| format!("`{t}` is not a tag."))?;
                    rule.tags.push(tag);
                }
            }
            _ => {
                return Err(format!(
                    "Unknown field `{field}`: channel, account, keywords, email_domain, tags."
                ))
            }
        }
    }
    if rule == RuleConfig::default() {
        return Err("A rule needs at least one field.".into());
    }
    Ok(rule)
}

/// One line per rule, for answers: `1. channel=sms tags=vip`.
pub fn describe_rules(rules: &[RuleConfig]) -> String {
    if rules.is_empty() {
        return "no rules".into();
    }
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut parts = Vec::new();
            if let Some(c) = &r.channel {
                parts.push(format!("channel={c}"));
            }
            if let Some(a) = &r.account {
                parts.push(format!("account={a}"));
            }
            if !r.keywords.is_empty() {
                parts.push(format!("keywords={}", r.keywords.join(",")));
            }
            if let Some(d) = &r.email_domain {
                parts.push(format!("email_domain={d}"));
            }
            if !r.tags.is_empty() {
                parts.push(format!("tags={}", r.tags.join(",")));
            }
            format!("{}. {}", i + 1, parts.join(" "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Members of a team with whether each is a lead (config, then admins' changes).
pub async fn members(bridge: &Bridge, team: &Team) -> Result<Vec<(String, bool)>, StoreError> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for u in &team.config.members {
        out.push((u.clone(), team.config.leads.contains(u)));
    }
    for u in &team.config.leads {
        if !out.iter().any(|(m, _)| m == u) {
            out.push((u.clone(), true));
        }
    }
    for (user, role) in bridge.store.team_member_overrides(&team.name).await? {
        out.retain(|(m, _)| *m != user);
        match role.as_str() {
            "lead" => out.push((user, true)),
            "member" => out.push((user, false)),
            _ => {}
        }
    }
    Ok(out)
}

/// Admins' changes to a team's calendar (`!sb team <name> hours|holiday|timezone`), stored as
/// team settings and applied over the config in the order they were made.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CalendarChanges {
    #[serde(default)]
    pub timezone: Option<String>,
    /// (days, "HH:MM-HH:MM" | "closed"), applied in order.
    #[serde(default)]
    pub hours: Vec<(String, String)>,
    #[serde(default)]
    pub holidays_added: Vec<chrono::NaiveDate>,
    #[serde(default)]
    pub holidays_removed: Vec<chrono::NaiveDate>,
}

pub async fn calendar_changes(bridge: &Bridge, team: &Team) -> CalendarChanges {
    match bridge.store.team_setting(&team.name, "calendar").await {
        Ok(Some(v)) => serde_json::from_str(&v).unwrap_or_default(),
        _ => CalendarChanges::default(),
    }
}

/// The config's calendar with `changes` applied.
pub fn calendar_with(
    team: &Team,
    changes: &CalendarChanges,
) -> Result<Calendar, crate::routing::calendar::CalendarError> {
    let tz = changes.timezone.as_deref().unwrap_or(&team.config.timezone);
    let mut calendar = Calendar::from_config(tz, &team.config.hours, &team.config.holidays)?;
    if team.config.hours.is_empty() && !changes.hours.is_empty() {
        // "Always open" until now: as in the config, days not named are closed.
        calendar.week = [None; 7];
    }
    for (days, span) in &changes.hours {
        calendar.set_hours(days, span)?;
    }
    for d in &changes.holidays_added {
        calendar.holidays.insert(*d);
    }
    for d in &changes.holidays_removed {
        calendar.holidays.remove(d);
    }
    Ok(calendar)
}

/// The team's calendar now: the config's, with admins' changes.
pub async fn calendar(bridge: &Bridge, team: &Team) -> Calendar {
    let changes = calendar_changes(bridge, team).await;
    if changes.hours.is_empty()
        && changes.timezone.is_none()
        && changes.holidays_added.is_empty()
        && changes.holidays_removed.is_empty()
    {
        return team.calendar.clone();
    }
    calendar_with(team, &changes).unwrap_or_else(|_| team.calendar.clone())
}

pub async fn escalate_after(bridge: &Bridge, team: &Team) -> Duration {
    match bridge
        .store
        .team_setting(&team.name, "escalate_after")
        .await
    {
        Ok(Some(v)) => humantime::parse_duration(&v).unwrap_or(team.config.escalate_after),
        _ => team.config.escalate_after,
    }
}

/// The team's signature for channels that sign messages (email): an admin's (`!sb team <name>
/// signature …`) over the config's; empty means none.
pub async fn signature(bridge: &Bridge, team: &Team) -> Option<String> {
    let value = match bridge.store.team_setting(&team.name, "signature").await {
        Ok(Some(v)) => Some(v),
        _ => team.config.signature.clone(),
    };
    value.filter(|s| !s.trim().is_empty())
}

pub async fn auto_reply(bridge: &Bridge, team: &Team) -> Option<String> {
    match bridge.store.team_setting(&team.name, "auto_reply").await {
        Ok(Some(v)) if v.is_empty() => None,
        Ok(Some(v)) => Some(v),
        _ => team.config.auto_reply.clone(),
    }
}

/// Everyone who may work conversations: configured operators and every team's members.
pub async fn all_operators(bridge: &Bridge) -> Vec<String> {
    let mut out: Vec<String> = bridge.config.bridge.operators.keys().cloned().collect();
    for team in bridge.teams.iter() {
        for (u, _) in members(bridge, team).await.unwrap_or_default() {
            if !out.contains(&u) {
                out.push(u);
            }
        }
    }
    out
}

/// A user's permission level: the configured level, raised to lead for team leads; team members
/// are operators.
pub async fn level(bridge: &Bridge, user: &str) -> Option<Level> {
    let mut best = bridge.config.bridge.operators.get(user).copied();
    for team in bridge.teams.iter() {
        for (u, lead) in members(bridge, team).await.unwrap_or_default() {
            if u == user {
                let l = if lead { Level::Lead } else { Level::Operator };
                best = Some(best.map_or(l, |b| b.max(l)));
            }
        }
    }
    best
}

/// Quick check without the store (for ephemeral events): configured operators and team members.
pub fn is_operator_fast(bridge: &Bridge, user: &str) -> bool {
    bridge.config.bridge.operators.contains_key(user)
        || bridge.teams.iter().any(|t| {
            t.config
                .members
                .iter()
                .chain(&t.config.leads)
                .any(|m| m == user)
        })
}
