//! Teams: members and leads (config plus admins' changes made with `!sb team`), calendars,
//! and the routing rules that pick a team for a new conversation.

use std::time::Duration;

use crate::bridge::Bridge;
use crate::config::{Config, Level, TeamConfig};
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

    /// The team whose rules match a new conversation, if any (`tags`: the customer's segment
    /// tags).
    pub fn route(
        &self,
        conversation: &Conversation,
        contact: &Contact,
        tags: &[String],
        first_text: &str,
    ) -> Option<&Team> {
        let text = first_text.to_lowercase();
        let domain = contact
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_lowercase());
        self.list.iter().find(|team| {
            team.config.rules.iter().any(|rule| {
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
            })
        })
    }
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
