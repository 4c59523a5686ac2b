//! Teams: what a team is now (members, leads, calendar, escalation, auto-reply, signature, rules),
//! admins' changes to it ([`change`], the chat's `!sb team <name> …` and the API's team
//! endpoints), the routing dry run ("where would this message go?", through the very function
//! that routes real conversations, [`crate::routing::decide_team`]), and the operator list.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{authorize, level_name, Action, Actor, ServiceError};
use crate::bridge::Bridge;
use crate::commands::{user_arg, Command};
use crate::config::{AssignMode, RuleConfig};
use crate::routing::teams::{self as routing_teams, Team};
use crate::store::conversations::{Contact, Conversation};

/// A team member.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: String,
    pub lead: bool,
}

/// A team as it is now: the config with admins' changes applied.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TeamView {
    pub name: String,
    /// `team`, `round_robin` or `lead_only`.
    pub mode: String,
    pub members: Vec<MemberView>,
    /// The members who are leads.
    pub leads: Vec<String>,
    /// IANA time zone of the working hours.
    pub timezone: String,
    /// The week, one line per day: `mon 09:00-18:00`, `sat closed`.
    pub hours: Vec<String>,
    /// Dates (YYYY-MM-DD) on which the team does not work.
    pub holidays: Vec<String>,
    /// Working time an unanswered conversation waits before the team is called (`2h`).
    pub escalate_after: String,
    pub escalate_after_seconds: u64,
    /// Sent once a day per conversation to customers who write out of hours.
    pub auto_reply: Option<String>,
    /// Signs the team's emails.
    pub signature: Option<String>,
    /// Routing rules: a new conversation matching any goes to this team (teams in config order).
    pub rules: Vec<RuleConfig>,
}

fn team<'b>(bridge: &'b Bridge, name: &str) -> Result<&'b Team, ServiceError> {
    bridge.teams.get(name).ok_or_else(|| {
        let names: Vec<&str> = bridge.teams.iter().map(|t| t.name.as_str()).collect();
        ServiceError::NotFound(format!("No team `{name}`. Teams: {}.", names.join(", ")))
    })
}

async fn view(bridge: &Bridge, team: &Team) -> Result<TeamView, ServiceError> {
    let members = routing_teams::members(bridge, team).await?;
    let calendar = routing_teams::calendar(bridge, team).await;
    let escalate = routing_teams::escalate_after(bridge, team).await;
    Ok(TeamView {
        name: team.name.clone(),
        mode: match team.config.mode {
            AssignMode::Team => "team",
            AssignMode::RoundRobin => "round_robin",
            AssignMode::LeadOnly => "lead_only",
        }
        .into(),
        leads: members
            .iter()
            .filter(|(_, l)| *l)
            .map(|(u, _)| u.clone())
            .collect(),
        members: members
            .into_iter()
            .map(|(user_id, lead)| MemberView { user_id, lead })
            .collect(),
        timezone: calendar.tz.to_string(),
        hours: calendar.describe_week(),
        holidays: calendar.holidays.iter().map(|d| d.to_string()).collect(),
        escalate_after: humantime::format_duration(escalate).to_string(),
        escalate_after_seconds: escalate.as_secs(),
        auto_reply: routing_teams::auto_reply(bridge, team).await,
        signature: routing_teams::signature(bridge, team).await,
        rules: routing_teams::rules(bridge, team).await,
    })
}

/// Every team (admins: the `team` command's level).
pub async fn list(bridge: &Bridge, actor: &Actor) -> Result<Vec<TeamView>, ServiceError> {
    authorize(actor, Action::Command(Command::Team))?;
    let mut out = Vec::new();
    for t in bridge.teams.iter() {
        out.push(view(bridge, t).await?);
    }
    Ok(out)
}

/// One team.
pub async fn get(bridge: &Bridge, actor: &Actor, name: &str) -> Result<TeamView, ServiceError> {
    authorize(actor, Action::Command(Command::Team))?;
    view(bridge, team(bridge, name)?).await
}

/// A change an admin makes to a team (over its config; stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TeamChange {
    /// Add as member, make lead, or remove.
    Member {
        user: String,
        role: MemberRole,
    },
    /// A duration like `2h` or `30m`.
    EscalateAfter(String),
    /// `None`: no auto-reply.
    AutoReply(Option<String>),
    /// `None`: no signature.
    Signature(Option<String>),
    /// `days` like `mon-fri`, `span` like `09:00-18:00` or `closed`.
    Hours {
        days: String,
        span: String,
    },
    HoursReset,
    Holiday {
        date: String,
        add: bool,
    },
    TimeZone(String),
    /// Show the calendar (changes nothing).
    ShowCalendar,
    /// Show the rules (changes nothing).
    ShowRules,
    /// `field=value…` words, or the rule itself.
    RuleAdd(RuleSource),
    /// 1-based, as listed.
    RuleRemove(usize),
    RulesReset,
    /// A room id or `#alias` the bot is invited to.
    Lobby(String),
}

/// A rule to add: as typed in the chat, or as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleSource {
    Words(String),
    Rule(RuleConfig),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Member,
    Lead,
    Removed,
}

/// Apply `change` to team `name`; the sentence the chat answers with.
pub async fn change(
    bridge: &Bridge,
    actor: &Actor,
    name: &str,
    change: TeamChange,
) -> Result<String, ServiceError> {
    authorize(actor, Action::Command(Command::Team))?;
    let team = team(bridge, name)?;
    let store = &bridge.store;
    match change {
        TeamChange::Member { user, role } => {
            let user = user_arg(bridge, &user)
                .ok_or_else(|| ServiceError::Invalid("Name a user: `@user:server`.".into()))?;
            let role = match role {
                MemberRole::Member => "member",
                MemberRole::Lead => "lead",
                MemberRole::Removed => "removed",
            };
            store.set_team_member(&team.name, &user, role).await?;
            Ok(format!("{user} is now {role} of team {}.", team.name)
                .replace("now removed of", "removed from"))
        }
        TeamChange::EscalateAfter(value) => {
            if humantime::parse_duration(&value).is_err() {
                return Err(ServiceError::Invalid(
                    "Usage: `!sb team <name> escalate 2h`.".into(),
                ));
            }
            store
                .set_team_setting(&team.name, "escalate_after", &value)
                .await?;
            Ok(format!(
                "Team {} escalates after {value} of working time.",
                team.name
            ))
        }
        TeamChange::AutoReply(value) => {
            let value = value.unwrap_or_default();
            store
                .set_team_setting(&team.name, "auto_reply", &value)
                .await?;
            Ok(if value.is_empty() {
                format!("Team {} sends no auto-reply.", team.name)
            } else {
                format!("Team {} auto-reply set.", team.name)
            })
        }
        TeamChange::Signature(value) => {
            let value = value.unwrap_or_default();
            store
                .set_team_setting(&team.name, "signature", &value)
                .await?;
            Ok(if value.is_empty() {
                format!("Team {} signs no messages.", team.name)
            } else {
                format!("Team {} signs its emails with: {value}", team.name)
            })
        }
        TeamChange::Hours { .. }
        | TeamChange::HoursReset
        | TeamChange::Holiday { .. }
        | TeamChange::TimeZone(_)
        | TeamChange::ShowCalendar => calendar_change(bridge, team, change).await,
        TeamChange::ShowRules
        | TeamChange::RuleAdd(_)
        | TeamChange::RuleRemove(_)
        | TeamChange::RulesReset => rules_change(bridge, team, change).await,
        TeamChange::Lobby(room) => lobby_change(bridge, team, &room).await,
    }
}

/// Change (or show) a team's working calendar; the answer shows the week as it now is.
async fn calendar_change(
    bridge: &Bridge,
    team: &Team,
    change: TeamChange,
) -> Result<String, ServiceError> {
    use crate::routing::teams::{calendar_changes, calendar_with};
    let mut changes = calendar_changes(bridge, team).await;
    let show = change == TeamChange::ShowCalendar;
    match change {
        TeamChange::HoursReset => changes.hours.clear(),
        TeamChange::Hours { days, span } => changes.hours.push((days, span)),
        TeamChange::Holiday { date, add } => {
            let date = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").map_err(|_| {
                ServiceError::Invalid(format!("`{date}` is not a date (YYYY-MM-DD)."))
            })?;
            changes.holidays_added.retain(|d| *d != date);
            changes.holidays_removed.retain(|d| *d != date);
            if add {
                changes.holidays_added.push(date)
            } else {
                changes.holidays_removed.push(date)
            }
        }
        TeamChange::TimeZone(tz) => changes.timezone = Some(tz),
        _ => {}
    }
    let calendar = calendar_with(team, &changes)
        .map_err(|e| ServiceError::Invalid(format!("Not changed: {e}.")))?;
    if !show {
        let value =
            serde_json::to_string(&changes).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        bridge
            .store
            .set_team_setting(&team.name, "calendar", &value)
            .await?;
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

/// Show or change a team's routing rules; the answer lists them as they now are.
async fn rules_change(
    bridge: &Bridge,
    team: &Team,
    change: TeamChange,
) -> Result<String, ServiceError> {
    use crate::routing::teams::{describe_rules, parse_rule, rules};
    let mut list = rules(bridge, team).await;
    let changed = match change {
        TeamChange::RulesReset => {
            list = team.config.rules.clone();
            true
        }
        TeamChange::RuleAdd(source) => {
            let rule = match source {
                RuleSource::Words(words) => parse_rule(&words)
                    .map_err(|e| ServiceError::Invalid(format!("Not changed: {e}")))?,
                RuleSource::Rule(rule) => {
                    if rule == RuleConfig::default() {
                        return Err(ServiceError::Invalid(
                            "Not changed: A rule needs at least one field.".into(),
                        ));
                    }
                    rule
                }
            };
            list.push(rule);
            true
        }
        TeamChange::RuleRemove(n) => {
            if !(1..=list.len()).contains(&n) {
                return Err(ServiceError::Invalid(format!(
                    "Not changed: give a rule number, 1 to {}.",
                    list.len()
                )));
            }
            list.remove(n - 1);
            true
        }
        _ => false,
    };
    if changed {
        let value =
            serde_json::to_string(&list).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        bridge
            .store
            .set_team_setting(&team.name, "rules", &value)
            .await?;
    }
    Ok(format!(
        "Team {} rules (first matching team wins, in config order): {}.",
        team.name,
        describe_rules(&list)
    ))
}

/// Move a team's lobby to another room (the bot joins it; entries posted from now on go there).
async fn lobby_change(bridge: &Bridge, team: &Team, rest: &str) -> Result<String, ServiceError> {
    let hs = &bridge.homeserver;
    let room = if rest.starts_with('#') {
        hs.resolve_alias(rest)
            .await
            .map_err(|e| ServiceError::NotFound(format!("Cannot find `{rest}`: {e}")))?
    } else if rest.starts_with('!') {
        rest.to_string()
    } else {
        return Err(ServiceError::Invalid(
            "Usage: `!sb team <name> lobby <room id|#alias>` (invite the bot first).".into(),
        ));
    };
    hs.join(&room, &bridge.namespace.bot).await.map_err(|e| {
        ServiceError::Invalid(format!("The bot cannot join {rest} (invite it first): {e}"))
    })?;
    bridge.store.set_team_lobby(&team.name, &room).await?;
    Ok(format!("Team {} lobby is now {rest}.", team.name))
}

/// A message to route in a dry run.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct DryRunRequest {
    /// The channel it arrives on (`webchat`, `email`, `telegram`, …).
    pub channel: String,
    /// The company's account on that channel (as in rules' `account`); empty when not given.
    #[serde(default)]
    pub account: String,
    /// The customer's first message.
    pub text: String,
    /// The customer's email address, if known (rules' `email_domain`).
    #[serde(default)]
    pub email: Option<String>,
    /// The customer's segment tags (rules' `tags`), besides those of a known contact.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A known contact on that channel: their stored tags and email count too.
    #[serde(default)]
    pub contact_id: Option<String>,
}

/// Where a new conversation with that message would go.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DryRunResult {
    /// The team whose rules match first (teams in config order); none: the unknown segment.
    pub team: Option<String>,
    /// Who would be invited before anyone owns it: the team (its leads in lead-only mode), or
    /// every operator for the unknown segment.
    pub visible_to: Vec<String>,
}

/// "Where would this message go?" — the routing rules of [`crate::routing::decide_team`], which
/// routes real new conversations; nothing is stored.
pub async fn dry_run(
    bridge: &Bridge,
    actor: &Actor,
    request: &DryRunRequest,
) -> Result<DryRunResult, ServiceError> {
    authorize(actor, Action::Command(Command::Team))?;
    let contact_id = request.contact_id.clone().unwrap_or_default();
    let known = if contact_id.is_empty() {
        None
    } else {
        bridge.store.contact(&request.channel, &contact_id).await?
    };
    let contact = Contact {
        email: request
            .email
            .clone()
            .or_else(|| known.as_ref().and_then(|c| c.email.clone())),
        ..known.clone().unwrap_or(Contact {
            channel: request.channel.clone(),
            contact_id: contact_id.clone(),
            ghost_user_id: String::new(),
            display_name: None,
            email: None,
            phone: None,
            registered: false,
            synced_name: None,
            avatar: None,
            synced_avatar: None,
        })
    };
    let conversation = Conversation {
        id: 0,
        channel: request.channel.clone(),
        account: request.account.clone(),
        chat: contact_id,
        contact_id: contact.contact_id.clone(),
        room_id: None,
    };
    let team = crate::routing::decide_team(
        bridge,
        &conversation,
        &contact,
        known.is_some(),
        &request.tags,
        &request.text,
    )
    .await?;
    let row = crate::store::routing::RoutingRow {
        team: team.map(|t| t.name.clone()),
        ..Default::default()
    };
    let visible_to = crate::routing::visible_to(bridge, &row).await?;
    Ok(DryRunResult {
        team: team.map(|t| t.name.clone()),
        visible_to,
    })
}

/// An operator of this bridge.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OperatorView {
    pub user_id: String,
    /// `operator`, `lead` or `admin`: what their commands and API calls may do.
    pub level: String,
    /// Teams they belong to.
    pub teams: Vec<String>,
    /// Teams they lead.
    pub leads: Vec<String>,
}

/// Everyone who may work conversations, with their level and teams.
pub async fn operators(bridge: &Bridge, actor: &Actor) -> Result<Vec<OperatorView>, ServiceError> {
    authorize(actor, Action::Operators)?;
    let mut out = Vec::new();
    for user in crate::routing::all_operators(bridge).await {
        let level = crate::routing::level(bridge, &user).await;
        let (mut teams, mut leads) = (Vec::new(), Vec::new());
        for t in bridge.teams.iter() {
            for (u, lead) in routing_teams::members(bridge, t).await? {
                if u == user {
                    teams.push(t.name.clone());
                    if lead {
                        leads.push(t.name.clone());
                    }
                }
            }
        }
        out.push(OperatorView {
            level: level.map(level_name).unwrap_or("operator").to_string(),
            user_id: user,
            teams,
            leads,
        });
    }
    Ok(out)
}
