//! Reports for team leads: figures over a period computed from the stored conversation events
//! ([`crate::store::events`]), never from counters in memory. Definitions are in
//! `docs/reports.md`; this module computes them ([`compute`], pure) and writes them as a plain
//! text table, an HTML table and CSV ([`Report::text`], [`Report::html`], [`Report::csv`]).
//! `!sb report` (`src/commands/report.rs`) loads the events and answers with them.
//!
//! A *cycle* of a conversation starts when it is created or reopened. Its first response is the
//! first operator answer in the cycle; its resolution time runs from the cycle's start to the
//! `resolved` event. So a reopen restarts both clocks, and a snooze or a transfer does not.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::routing::calendar::Calendar;
use crate::store::events::{ConversationEvent, EventKind};

pub mod chart;
pub mod digest;
pub mod post;

/// The period a report covers: `[from, to)` in ms, and how it is named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    pub from: i64,
    pub to: i64,
    pub label: String,
    /// The zone its days are read in.
    pub tz: Tz,
}

impl Period {
    /// `report-<first day>-<last day>`, the days as the period's zone reads them.
    pub fn file_stem(&self) -> String {
        let day = |ms: i64| {
            crate::clock::to_datetime(ms)
                .with_timezone(&self.tz)
                .format("%Y-%m-%d")
                .to_string()
        };
        format!("report-{}-{}", day(self.from), day(self.to - 1))
    }
}

/// `today`, `7d`, `30d`, `month` (this calendar month so far) or `YYYY-MM`, ending now (or at
/// the month's end). Days and months are those of the clock on the wall in `tz` (the team's
/// time zone, see [`zone`]): `today` starts at local midnight, a month on its local first day.
pub fn period(word: &str, now: DateTime<Utc>, tz: Tz) -> Option<Period> {
    let local_now = now.with_timezone(&tz);
    let now_ms = now.timestamp_millis();
    let zone = if tz == chrono_tz::UTC {
        "UTC".to_string()
    } else {
        tz.name().to_string()
    };
    match word {
        "" | "today" => Some(Period {
            from: local_midnight(tz, local_now.date_naive())?,
            to: now_ms,
            label: format!("today ({}, {zone})", local_now.format("%Y-%m-%d")),
            tz,
        }),
        "7d" | "30d" => {
            let days: i64 = word.trim_end_matches('d').parse().ok()?;
            Some(Period {
                from: now_ms - days * 86_400_000,
                to: now_ms,
                label: format!("the last {days} days"),
                tz,
            })
        }
        "month" => {
            let first = NaiveDate::from_ymd_opt(local_now.year(), local_now.month(), 1)?;
            Some(Period {
                from: local_midnight(tz, first)?,
                to: now_ms,
                label: format!("{} (so far, {zone})", local_now.format("%Y-%m")),
                tz,
            })
        }
        ym => {
            let (y, m) = ym.split_once('-')?;
            let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
            let first = NaiveDate::from_ymd_opt(y, m, 1)?;
            let next = if m == 12 {
                NaiveDate::from_ymd_opt(y + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(y, m + 1, 1)?
            };
            Some(Period {
                from: local_midnight(tz, first)?,
                to: local_midnight(tz, next)?,
                label: format!("{y:04}-{m:02} ({zone})"),
                tz,
            })
        }
    }
}

/// The instant (ms) a local day starts in `tz`: its midnight, or the first instant after it
/// where a clock change skips midnight.
pub fn local_midnight(tz: Tz, day: NaiveDate) -> Option<i64> {
    (0..=3)
        .find_map(|h| {
            day.and_hms_opt(h, 0, 0)
                .and_then(|t| tz.from_local_datetime(&t).earliest())
        })
        .map(|t| t.timestamp_millis())
}

/// The time zone a report's days and months are read in: the zone of the teams it covers
/// (`only`, or every team) when they all share one, else UTC.
pub async fn zone(bridge: &crate::bridge::Bridge, only: Option<&BTreeSet<String>>) -> Tz {
    let mut zones = BTreeSet::new();
    for team in bridge.teams.iter() {
        if only.is_none_or(|o| o.contains(&team.name)) {
            zones.insert(
                crate::routing::teams::calendar(bridge, team)
                    .await
                    .tz
                    .name(),
            );
        }
    }
    match zones.len() {
        1 => zones
            .first()
            .and_then(|z| z.parse::<Tz>().ok())
            .unwrap_or(chrono_tz::UTC),
        _ => chrono_tz::UTC,
    }
}

/// The teams `actor` sees figures of: `None` (all) for admins, the teams they lead for leads;
/// refused for anyone else. Permissions for reports are checked here, for every caller.
pub async fn teams_for(
    bridge: &crate::bridge::Bridge,
    actor: &str,
    level: crate::config::Level,
) -> Result<Option<BTreeSet<String>>, ReportError> {
    use crate::config::Level;
    let mut led = BTreeSet::new();
    for team in bridge.teams.iter() {
        for (user, lead) in crate::routing::teams::members(bridge, team).await? {
            if lead && user == actor {
                led.insert(team.name.clone());
            }
        }
    }
    match level {
        Level::Admin => Ok(None),
        _ if !led.is_empty() => Ok(Some(led)),
        _ => Err(ReportError::Denied(
            "reports are for admins and team leads (of their teams)".into(),
        )),
    }
}

/// The period `word` names for `actor`, read in the zone of the teams they see.
pub async fn period_for(
    bridge: &crate::bridge::Bridge,
    actor: &str,
    level: crate::config::Level,
    word: &str,
) -> Result<Option<Period>, ReportError> {
    let only = teams_for(bridge, actor, level).await?;
    let tz = zone(bridge, only.as_ref()).await;
    Ok(period(word, bridge.clock.now(), tz))
}

/// What the rows of a report are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Channel,
    Operator,
    Team,
}

impl GroupBy {
    pub fn parse(word: &str) -> Option<GroupBy> {
        match word {
            "channel" => Some(GroupBy::Channel),
            "operator" => Some(GroupBy::Operator),
            "team" => Some(GroupBy::Team),
            _ => None,
        }
    }
}

/// Durations (ms) summed up: how many, their median and 90th percentile (nearest rank: the
/// smallest value with at least p% of the values at or below it). A report keeps no list of
/// them: the database ranks them (`Store::report_quantiles`), or [`Durations::of`] does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durations {
    pub n: u64,
    pub median: Option<i64>,
    pub p90: Option<i64>,
}

impl Durations {
    /// The summary of some durations.
    pub fn of(mut values: Vec<i64>) -> Durations {
        values.sort_unstable();
        let rank = |p: usize| {
            let k = (p * values.len()).div_ceil(100).max(1);
            values.get(k - 1).copied()
        };
        Durations {
            n: values.len() as u64,
            median: rank(50),
            p90: rank(90),
        }
    }
    pub fn median(&self) -> Option<i64> {
        self.median
    }
    pub fn p90(&self) -> Option<i64> {
        self.p90
    }
    pub fn len(&self) -> u64 {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// The figures of one row (or of the whole report).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    pub new: u64,
    pub resolved: u64,
    pub reopened: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    /// First response times: wall clock and working time (the team's calendar).
    pub first_response_wall: Durations,
    pub first_response_working: Durations,
    /// First responses within the team's target (its `escalate_after`, in working time).
    pub first_response_within_target: u64,
    pub resolution_wall: Durations,
    pub resolution_working: Durations,
    /// Rating questions sent (`rating_requested`) and ratings given (`rated`), by score.
    pub ratings_asked: u64,
    pub ratings: [u64; 5],
}

impl Figures {
    /// How many ratings were given.
    pub fn rated(&self) -> u64 {
        self.ratings.iter().sum()
    }

    /// CSAT score: the share of ratings that are 4 or 5, in whole percent.
    pub fn csat_percent(&self) -> Option<u64> {
        let n = self.rated();
        (n > 0).then(|| ((self.ratings[3] + self.ratings[4]) * 100 + n / 2) / n)
    }

    /// The average score, in hundredths.
    pub fn average_rating(&self) -> Option<u64> {
        let n = self.rated();
        let sum: u64 = (1..=5u64).zip(self.ratings).map(|(s, c)| s * c).sum();
        (n > 0).then(|| (sum * 100 + n / 2) / n)
    }

    /// Response rate: ratings given per question sent, in whole percent (ratings in the period
    /// may answer questions sent before it, so it can pass 100).
    pub fn response_rate_percent(&self) -> Option<u64> {
        let n = self.ratings_asked;
        (n > 0).then(|| (self.rated() * 100 + n / 2) / n)
    }

    /// Share of first responses within target, in whole percent.
    pub fn within_target_percent(&self) -> Option<u64> {
        let n = self.first_response_wall.len();
        (n > 0).then(|| (self.first_response_within_target * 100 + n / 2) / n)
    }
}

/// What a report needs besides the events.
pub struct Context<'a> {
    /// Each conversation's channel and customer.
    pub conversations: &'a HashMap<i64, (String, String)>,
    /// Each team's calendar (`None`: conversations with no team).
    pub calendars: &'a HashMap<Option<String>, Calendar>,
    /// Each team's first-response target (ms of working time).
    pub targets: &'a HashMap<Option<String>, i64>,
    /// Only events of these teams count (a lead's report); `None`: every event.
    pub teams: Option<&'a BTreeSet<String>>,
}

/// A computed report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub period: Option<Period>,
    pub total: Figures,
    pub rows: BTreeMap<String, Figures>,
    pub group_by: Option<GroupBy>,
    /// Channel mix: customers who wrote in the period, and per channel how many of them wrote
    /// there (a customer on two channels counts in both).
    pub customers: u64,
    pub channel_customers: BTreeMap<String, u64>,
    /// Conversations waiting for an answer now, and how long the oldest has waited (ms).
    pub unworked_now: u64,
    pub oldest_unworked: Option<i64>,
}

/// Compute the figures of `period` from `events` (every event before `period.to` of the
/// conversations concerned, ordered by conversation then id).
pub fn compute(
    events: &[ConversationEvent],
    period: &Period,
    group_by: Option<GroupBy>,
    ctx: &Context<'_>,
) -> Report {
    let mut report = Report {
        period: Some(period.clone()),
        group_by,
        ..Default::default()
    };
    let mut customers: BTreeSet<&str> = BTreeSet::new();
    let mut by_channel: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    // The start of the current cycle of each conversation.
    let mut cycle_start: HashMap<i64, i64> = HashMap::new();
    // The durations of the total (key None) and of each row: first response wall and working,
    // resolution wall and working; summed up into the figures at the end.
    let mut durations: HashMap<Option<String>, [Vec<i64>; 4]> = HashMap::new();
    let unknown = (String::from("unknown"), String::new());
    for e in events {
        if matches!(e.kind, EventKind::Created | EventKind::Reopened) {
            cycle_start.insert(e.conversation_id, e.at);
        }
        if e.at < period.from || e.at >= period.to {
            continue;
        }
        if let Some(teams) = ctx.teams {
            if !e.team.as_ref().is_some_and(|t| teams.contains(t)) {
                continue;
            }
        }
        let (channel, customer) = ctx
            .conversations
            .get(&e.conversation_id)
            .unwrap_or(&unknown);
        let key = match group_by {
            None => None,
            Some(GroupBy::Channel) => Some(channel.clone()),
            Some(GroupBy::Team) => Some(e.team.clone().unwrap_or_else(|| "(no team)".into())),
            Some(GroupBy::Operator) => {
                let who = match e.kind {
                    EventKind::OperatorAnswer
                    | EventKind::FirstResponse
                    | EventKind::Resolved
                    | EventKind::Rated => e.actor.clone().or_else(|| e.owner.clone()),
                    _ => e.owner.clone(),
                };
                Some(who.unwrap_or_else(|| "(nobody)".into()))
            }
        };
        let times = |e: &ConversationEvent| -> Option<(i64, i64)> {
            let start = *cycle_start.get(&e.conversation_id)?;
            let calendar = ctx.calendars.get(&e.team)?;
            let working = calendar
                .working_between(
                    crate::clock::to_datetime(start),
                    crate::clock::to_datetime(e.at),
                )
                .num_milliseconds();
            Some((e.at - start, working))
        };
        let apply = |f: &mut Figures, d: &mut [Vec<i64>; 4]| match e.kind {
            EventKind::Created => f.new += 1,
            EventKind::Resolved => {
                f.resolved += 1;
                if let Some((wall, working)) = times(e) {
                    d[2].push(wall);
                    d[3].push(working);
                }
            }
            EventKind::Reopened => f.reopened += 1,
            EventKind::RatingRequested => f.ratings_asked += 1,
            EventKind::Rated => {
                let score = e.detail.as_deref().and_then(|d| d.parse::<usize>().ok());
                if let Some(score @ 1..=5) = score {
                    f.ratings[score - 1] += 1;
                }
            }
            EventKind::CustomerMessage => f.messages_in += 1,
            EventKind::OperatorAnswer => f.messages_out += 1,
            EventKind::FirstResponse => {
                if let Some((wall, working)) = times(e) {
                    d[0].push(wall);
                    d[1].push(working);
                    let target = ctx.targets.get(&e.team).copied().unwrap_or(2 * 3_600_000);
                    if working <= target {
                        f.first_response_within_target += 1;
                    }
                }
            }
            _ => {}
        };
        apply(&mut report.total, durations.entry(None).or_default());
        if let Some(key) = key {
            apply(
                report.rows.entry(key.clone()).or_default(),
                durations.entry(Some(key)).or_default(),
            );
        }
        if e.kind == EventKind::CustomerMessage {
            customers.insert(customer);
            by_channel.entry(channel).or_default().insert(customer);
        }
    }
    for (key, [frw, frk, rw, rk]) in durations {
        let f = match key {
            None => &mut report.total,
            Some(key) => report.rows.entry(key).or_default(),
        };
        f.first_response_wall = Durations::of(frw);
        f.first_response_working = Durations::of(frk);
        f.resolution_wall = Durations::of(rw);
        f.resolution_working = Durations::of(rk);
    }
    report.customers = customers.len() as u64;
    report.channel_customers = by_channel
        .into_iter()
        .map(|(c, set)| (c.to_string(), set.len() as u64))
        .collect();
    report
}

/// "1h 05m", "12m", "45s", "–".
fn dur(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "–".into();
    };
    let s = ms.max(0) / 1000;
    let (h, m) = (s / 3600, (s % 3600) / 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

/// The columns of every table, in order.
pub const COLUMNS: [&str; 14] = [
    "",
    "new",
    "resolved",
    "reopened",
    "messages in",
    "messages out",
    "first response median",
    "first response p90",
    "first response median (working)",
    "within target",
    "resolution median",
    "resolution p90",
    "CSAT",
    "rating response rate",
];

/// "80% (4 of 5)" or "–".
fn csat_cell(f: &Figures) -> String {
    f.csat_percent().map_or("–".into(), |p| {
        format!("{p}% ({} of {})", f.ratings[3] + f.ratings[4], f.rated())
    })
}

fn cells(name: &str, f: &Figures) -> Vec<String> {
    vec![
        name.to_string(),
        f.new.to_string(),
        f.resolved.to_string(),
        f.reopened.to_string(),
        f.messages_in.to_string(),
        f.messages_out.to_string(),
        dur(f.first_response_wall.median()),
        dur(f.first_response_wall.p90()),
        dur(f.first_response_working.median()),
        f.within_target_percent()
            .map_or("–".into(), |p| format!("{p}%")),
        dur(f.resolution_wall.median()),
        dur(f.resolution_wall.p90()),
        csat_cell(f),
        f.response_rate_percent()
            .map_or("–".into(), |p| format!("{p}%")),
    ]
}

impl Report {
    /// Every row of the table: the groups, then the total.
    pub fn table(&self) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = self.rows.iter().map(|(k, f)| cells(k, f)).collect();
        out.push(cells("all", &self.total));
        out
    }

    /// Channel mix as "email 97%, viber 15%", largest first.
    pub fn channel_mix(&self) -> String {
        if self.customers == 0 {
            return "no customer wrote".into();
        }
        let mut v: Vec<(&String, &u64)> = self.channel_customers.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.iter()
            .map(|(c, n)| format!("{c} {}%", (*n * 100 + self.customers / 2) / self.customers))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn heading(&self) -> String {
        let label = self.period.as_ref().map_or("", |p| p.label.as_str());
        format!("Report for {label}")
    }

    fn footer(&self) -> Vec<String> {
        vec![
            format!(
                "Channel mix ({} customers who wrote): {}",
                self.customers,
                self.channel_mix()
            ),
            format!(
                "Unworked now: {}{}",
                self.unworked_now,
                self.oldest_unworked
                    .map(|o| format!(", the oldest waiting {}", dur(Some(o))))
                    .unwrap_or_default()
            ),
            match (self.total.csat_percent(), self.total.average_rating()) {
                (Some(p), Some(avg)) => format!(
                    "CSAT: {p}% satisfied ({} of {} ratings were 4 or 5), average {}.{:02}; response rate {} ({} ratings to {} questions)",
                    self.total.ratings[3] + self.total.ratings[4],
                    self.total.rated(),
                    avg / 100,
                    avg % 100,
                    self.total
                        .response_rate_percent()
                        .map_or("–".into(), |r| format!("{r}%")),
                    self.total.rated(),
                    self.total.ratings_asked,
                ),
                _ => format!(
                    "CSAT: no ratings in this period ({} questions sent).",
                    self.total.ratings_asked
                ),
            },
        ]
    }

    /// A plain-text table (the fallback of [`Report::html`]).
    pub fn text(&self) -> String {
        let mut rows = vec![COLUMNS.iter().map(|c| c.to_string()).collect::<Vec<_>>()];
        rows.extend(self.table());
        let widths: Vec<usize> = (0..COLUMNS.len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = format!("{}\n", self.heading());
        for r in &rows {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(line.join(" | ").trim_end());
            out.push('\n');
        }
        out.push_str(&self.footer().join("\n"));
        out
    }

    /// An HTML table.
    pub fn html(&self) -> String {
        let esc = switchboard_kit::text::escape_html;
        let mut out = format!(
            "<p><strong>{}</strong></p><table><tr>",
            esc(&self.heading())
        );
        for c in COLUMNS {
            out.push_str(&format!("<th>{}</th>", esc(c)));
        }
        out.push_str("</tr>");
        for r in self.table() {
            out.push_str("<tr>");
            for c in r {
                out.push_str(&format!("<td>{}</td>", esc(&c)));
            }
            out.push_str("</tr>");
        }
        out.push_str("</table>");
        for line in self.footer() {
            out.push_str(&format!("<p>{}</p>", esc(&line)));
        }
        out
    }

    /// The same figures as CSV (durations in seconds, empty when there are none).
    pub fn csv(&self) -> String {
        let secs = |d: Option<i64>| d.map(|ms| (ms / 1000).to_string()).unwrap_or_default();
        let mut out = String::from("group,new,resolved,reopened,messages_in,messages_out,first_response_median_s,first_response_p90_s,first_response_working_median_s,first_response_working_p90_s,first_response_within_target_percent,resolution_median_s,resolution_p90_s,resolution_working_median_s,resolution_working_p90_s,ratings,ratings_4_or_5,csat_percent,ratings_asked,response_rate_percent\n");
        let mut rows: Vec<(&str, &Figures)> =
            self.rows.iter().map(|(k, f)| (k.as_str(), f)).collect();
        rows.push(("all", &self.total));
        for (name, f) in rows {
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            out.push_str(&format!(
                "{quoted},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                f.new,
                f.resolved,
                f.reopened,
                f.messages_in,
                f.messages_out,
                secs(f.first_response_wall.median()),
                secs(f.first_response_wall.p90()),
                secs(f.first_response_working.median()),
                secs(f.first_response_working.p90()),
                f.within_target_percent()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                secs(f.resolution_wall.median()),
                secs(f.resolution_wall.p90()),
                secs(f.resolution_working.median()),
                secs(f.resolution_working.p90()),
                f.rated(),
                f.ratings[3] + f.ratings[4],
                f.csat_percent().map(|p| p.to_string()).unwrap_or_default(),
                f.ratings_asked,
                f.response_rate_percent()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
            ));
        }
        out
    }
}

/// `ChronoDuration` in ms (for targets from the config).
pub fn ms(d: std::time::Duration) -> i64 {
    ChronoDuration::from_std(d)
        .map(|d| d.num_milliseconds())
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    /// Mon 23 Nov 2026 + `day` days, `h:m` UTC.
    fn at(day: i64, h: i64, m: i64) -> i64 {
        Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0)
            .single()
            .map_or(0, |t| t.timestamp_millis())
            + day * 24 * HOUR
            + h * HOUR
            + m * MIN
    }

    struct Script(Vec<ConversationEvent>);

    impl Script {
        fn ev(&mut self, conv: i64, at: i64, kind: EventKind, team: &str, who: Option<&str>) {
            self.0.push(ConversationEvent {
                id: self.0.len() as i64 + 1,
                conversation_id: conv,
                at,
                kind,
                actor: who.map(str::to_string),
                team: Some(team.to_string()),
                owner: who.map(str::to_string),
                detail: None,
            });
        }
    }

    /// A week: two support conversations of customer A (email, then Viber, the second one
    /// answered the next working morning), a sales conversation of B on Telegram resolved,
    /// reopened by B and resolved again, and C's e-mail on Friday evening left unanswered.
    /// Support works Mon–Fri 09:00–17:00 UTC with a 1 h target; sales is always open, 2 h.
    fn week() -> (Vec<ConversationEvent>, HashMap<i64, (String, String)>) {
        use EventKind::*;
        let (bob, alice) = (Some("@bob:x"), Some("@alice:x"));
        let mut s = Script(Vec::new());
        s.ev(1, at(0, 9, 0), Created, "support", None);
        s.ev(1, at(0, 9, 0), CustomerMessage, "support", None);
        s.ev(1, at(0, 9, 30), Assigned, "support", bob);
        s.ev(1, at(0, 9, 30), OperatorAnswer, "support", bob);
        s.ev(1, at(0, 9, 30), FirstResponse, "support", bob);
        s.ev(1, at(0, 9, 45), OperatorAnswer, "support", bob);
        s.ev(1, at(0, 10, 0), Resolved, "support", bob);
        s.ev(2, at(0, 16, 30), Created, "support", None);
        s.ev(2, at(0, 16, 30), CustomerMessage, "support", None);
        s.ev(2, at(1, 9, 30), OperatorAnswer, "support", bob);
        s.ev(2, at(1, 9, 30), FirstResponse, "support", bob);
        s.ev(2, at(1, 10, 0), Resolved, "support", bob);
        s.ev(3, at(2, 12, 0), Created, "sales", None);
        s.ev(3, at(2, 12, 0), CustomerMessage, "sales", None);
        s.ev(3, at(2, 12, 10), OperatorAnswer, "sales", alice);
        s.ev(3, at(2, 12, 10), FirstResponse, "sales", alice);
        s.ev(3, at(2, 12, 20), Resolved, "sales", alice);
        s.ev(3, at(3, 8, 0), CustomerMessage, "sales", alice);
        s.ev(3, at(3, 8, 0), Reopened, "sales", None);
        s.ev(3, at(3, 11, 0), OperatorAnswer, "sales", alice);
        s.ev(3, at(3, 11, 0), FirstResponse, "sales", alice);
        s.ev(3, at(3, 11, 30), Resolved, "sales", alice);
        s.ev(4, at(4, 16, 0), Created, "support", None);
        s.ev(4, at(4, 16, 0), CustomerMessage, "support", None);
        let mut events = s.0;
        events.sort_by_key(|e| (e.conversation_id, e.id));
        let conversations = [
            (1, "email", "A"),
            (2, "viber", "A"),
            (3, "telegram", "B"),
            (4, "email", "C"),
        ]
        .into_iter()
        .map(|(id, c, who)| (id, (c.to_string(), who.to_string())))
        .collect();
        (events, conversations)
    }

    fn context_maps() -> (
        HashMap<Option<String>, Calendar>,
        HashMap<Option<String>, i64>,
    ) {
        let mut hours = BTreeMap::new();
        hours.insert("mon-fri".to_string(), "09:00-17:00".to_string());
        let support = Calendar::from_config("UTC", &hours, &[]).unwrap();
        let calendars = [
            (Some("support".to_string()), support),
            (Some("sales".to_string()), Calendar::always(chrono_tz::UTC)),
        ]
        .into_iter()
        .collect();
        let targets = [
            (Some("support".to_string()), HOUR),
            (Some("sales".to_string()), 2 * HOUR),
        ]
        .into_iter()
        .collect();
        (calendars, targets)
    }

    fn the_week() -> Period {
        Period {
            from: at(0, 0, 0),
            to: at(7, 0, 0),
            label: "the week".into(),
            tz: chrono_tz::UTC,
        }
    }

    #[test]
    fn a_scripted_week_gives_the_exact_figures() {
        let (events, conversations) = week();
        let (calendars, targets) = context_maps();
        let ctx = Context {
            conversations: &conversations,
            calendars: &calendars,
            targets: &targets,
            teams: None,
        };
        let r = compute(&events, &the_week(), Some(GroupBy::Team), &ctx);
        let t = &r.total;
        assert_eq!(
            (t.new, t.resolved, t.reopened, t.messages_in, t.messages_out),
            (4, 4, 1, 5, 5)
        );
        // First responses: 30 min, 17 h (16:30 → 09:30 next day), 10 min, 3 h (the reopening
        // at 08:00 restarted the clock).
        assert_eq!(t.first_response_wall.len(), 4);
        assert_eq!(t.first_response_wall.median(), Some(30 * MIN));
        assert_eq!(t.first_response_wall.p90(), Some(17 * HOUR));
        // In working time the overnight wait is one hour: 16:30–17:00 and 09:00–09:30 (the
        // larger of support's two), so the working p90 is sales' 3 h.
        assert_eq!(t.first_response_working.median(), Some(30 * MIN));
        assert_eq!(t.first_response_working.p90(), Some(3 * HOUR));
        assert_eq!(r.rows["support"].first_response_working.p90(), Some(HOUR));
        // Within target: support's two (≤ 1 h working), sales' first (≤ 2 h), not its 3 h.
        assert_eq!(t.first_response_within_target, 3);
        assert_eq!(t.within_target_percent(), Some(75));
        assert_eq!(t.resolution_wall.median(), Some(HOUR));
        assert_eq!(t.resolution_wall.p90(), Some(17 * HOUR + 30 * MIN));
        // Channel mix: A wrote by e-mail and Viber, B on Telegram, C by e-mail.
        assert_eq!(r.customers, 3);
        assert_eq!(r.channel_mix(), "email 67%, telegram 33%, viber 33%");
        let support = &r.rows["support"];
        let sales = &r.rows["sales"];
        assert_eq!((support.new, support.resolved, support.reopened), (3, 2, 0));
        assert_eq!((sales.new, sales.resolved, sales.reopened), (1, 2, 1));
        assert_eq!(support.within_target_percent(), Some(100));
        assert_eq!(sales.within_target_percent(), Some(50));
        let csv = r.csv();
        assert!(
            csv.contains("\n\"all\",4,4,1,5,5,1800,61200,1800,10800,75,3600,63000,"),
            "{csv}"
        );
        let text = r.text();
        assert!(text.contains("support") && text.contains("75%"), "{text}");
        assert!(r.html().contains("<td>17h 00m</td>"), "{}", r.html());
    }

    #[test]
    fn a_lead_sees_their_teams_and_a_period_cuts_by_time() {
        let (events, conversations) = week();
        let (calendars, targets) = context_maps();
        let only: BTreeSet<String> = ["sales".to_string()].into_iter().collect();
        let ctx = Context {
            conversations: &conversations,
            calendars: &calendars,
            targets: &targets,
            teams: Some(&only),
        };
        let r = compute(&events, &the_week(), Some(GroupBy::Operator), &ctx);
        assert_eq!(
            r.rows.keys().collect::<Vec<_>>(),
            vec!["(nobody)", "@alice:x"]
        );
        assert_eq!((r.total.new, r.total.resolved), (1, 2));
        // Thursday only: the reopening, its answer and resolution; the cycle began in the period.
        let ctx = Context { teams: None, ..ctx };
        let thursday = Period {
            from: at(3, 0, 0),
            to: at(4, 0, 0),
            label: "thu".into(),
            tz: chrono_tz::UTC,
        };
        let r = compute(&events, &thursday, None, &ctx);
        assert_eq!(
            (
                r.total.new,
                r.total.resolved,
                r.total.reopened,
                r.total.messages_in
            ),
            (0, 1, 1, 1)
        );
        assert_eq!(
            r.total.resolution_wall,
            Durations {
                n: 1,
                median: Some(3 * HOUR + 30 * MIN),
                p90: Some(3 * HOUR + 30 * MIN)
            }
        );
    }

    /// Ratings of the scripted week: five questions sent after resolutions (Bob's two, Alice's
    /// two on conversation 3, one on C's conversation by Bob), three answers: 5 and 2 for Bob,
    /// 4 for Alice; one press the next Monday falls outside the week.
    #[test]
    fn ratings_give_the_csat_score_and_response_rate() {
        use EventKind::*;
        let (mut events, conversations) = week();
        let mut next = events.len() as i64 + 100;
        let mut add =
            |conv: i64, at: i64, kind: EventKind, team: &str, owner: &str, detail: &str| {
                next += 1;
                events.push(ConversationEvent {
                    id: next,
                    conversation_id: conv,
                    at,
                    kind,
                    actor: None,
                    team: Some(team.to_string()),
                    owner: Some(owner.to_string()),
                    detail: Some(detail.to_string()),
                });
            };
        add(1, at(0, 10, 10), RatingRequested, "support", "@bob:x", "11");
        add(1, at(0, 10, 20), Rated, "support", "@bob:x", "5");
        add(2, at(1, 10, 10), RatingRequested, "support", "@bob:x", "12");
        add(2, at(1, 11, 0), Rated, "support", "@bob:x", "2");
        add(3, at(2, 12, 30), RatingRequested, "sales", "@alice:x", "13");
        add(3, at(3, 11, 40), RatingRequested, "sales", "@alice:x", "14");
        add(3, at(3, 12, 0), Rated, "sales", "@alice:x", "4");
        add(4, at(4, 16, 30), RatingRequested, "support", "@bob:x", "15");
        add(4, at(7, 9, 0), Rated, "support", "@bob:x", "1");
        // A detail that is no score is not counted.
        add(4, at(4, 17, 0), Rated, "support", "@bob:x", "9");
        events.sort_by_key(|e| (e.conversation_id, e.id));
        let (calendars, targets) = context_maps();
        let ctx = Context {
            conversations: &conversations,
            calendars: &calendars,
            targets: &targets,
            teams: None,
        };
        let r = compute(&events, &the_week(), Some(GroupBy::Operator), &ctx);
        let t = &r.total;
        assert_eq!(t.ratings, [0, 1, 0, 1, 1]);
        assert_eq!((t.rated(), t.ratings_asked), (3, 5));
        assert_eq!(t.csat_percent(), Some(67));
        assert_eq!(t.average_rating(), Some(367));
        assert_eq!(t.response_rate_percent(), Some(60));
        // The other figures are what they were without ratings.
        assert_eq!((t.new, t.resolved, t.messages_in), (4, 4, 5));
        let bob = &r.rows["@bob:x"];
        assert_eq!((bob.rated(), bob.ratings_asked), (2, 3));
        assert_eq!(
            (bob.csat_percent(), bob.response_rate_percent()),
            (Some(50), Some(67))
        );
        let alice = &r.rows["@alice:x"];
        assert_eq!(
            (alice.csat_percent(), alice.response_rate_percent()),
            (Some(100), Some(50))
        );
        let text = r.text();
        assert!(
            text.contains("CSAT: 67% satisfied (2 of 3 ratings were 4 or 5), average 3.67; response rate 60% (3 ratings to 5 questions)"),
            "{text}"
        );
        assert!(text.contains("67% (2 of 3)"), "{text}");
        let csv = r.csv();
        assert!(csv.contains(",3,2,67,5,60\n"), "{csv}");
        assert!(csv.starts_with("group,new,"), "{csv}");
        assert!(
            csv.lines().next().is_some_and(|h| h.ends_with(
                ",ratings,ratings_4_or_5,csat_percent,ratings_asked,response_rate_percent"
            )),
            "{csv}"
        );
        // No ratings: said as such.
        let (events, _) = week();
        let r = compute(&events, &the_week(), None, &ctx);
        assert!(r
            .text()
            .contains("CSAT: no ratings in this period (0 questions sent)."));
    }

    #[test]
    fn periods() {
        let utc = chrono_tz::UTC;
        let now = Utc
            .with_ymd_and_hms(2026, 11, 25, 15, 0, 0)
            .single()
            .unwrap();
        let p = period("2026-02", now, utc).unwrap();
        assert_eq!(p.to - p.from, 28 * 24 * HOUR);
        let p = period("today", now, utc).unwrap();
        assert_eq!(p.to - p.from, 15 * HOUR);
        assert_eq!(
            period("7d", now, utc).unwrap().to - period("7d", now, utc).unwrap().from,
            7 * 24 * HOUR
        );
        assert!(period("2026-13", now, utc).is_none() && period("soon", now, utc).is_none());
    }

    #[test]
    fn days_and_months_are_the_zones() {
        // 22:30 UTC on 30 Nov is 01:30 on 1 Dec in Moscow (UTC+3): its "today" began at 21:00
        // UTC, its month is December, and November ends at 21:00 UTC on the 30th.
        let moscow: Tz = "Europe/Moscow".parse().unwrap();
        let now = Utc
            .with_ymd_and_hms(2026, 11, 30, 22, 30, 0)
            .single()
            .unwrap();
        let p = period("today", now, moscow).unwrap();
        assert_eq!(p.to - p.from, HOUR + 30 * MIN);
        assert!(p.label.contains("2026-12-01") && p.label.contains("Europe/Moscow"));
        assert_eq!(p.file_stem(), "report-2026-12-01-2026-12-01");
        let p = period("month", now, moscow).unwrap();
        assert_eq!(p.to - p.from, HOUR + 30 * MIN);
        let p = period("2026-11", now, moscow).unwrap();
        let nov_30_21h = Utc
            .with_ymd_and_hms(2026, 11, 30, 21, 0, 0)
            .single()
            .unwrap()
            .timestamp_millis();
        assert_eq!(p.to, nov_30_21h);
        assert_eq!(p.to - p.from, 30 * 24 * HOUR);
        // In UTC it is still 30 November.
        assert!(period("today", now, chrono_tz::UTC)
            .unwrap()
            .label
            .contains("2026-11-30"));
    }
}

/// Why a report was not made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Denied(String),
    #[error("the store failed: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// The report `actor` asked for: every team for admins, the teams they lead for leads
/// (permissions are checked here, for every caller).
pub async fn build(
    bridge: &crate::bridge::Bridge,
    actor: &str,
    level: crate::config::Level,
    period: &Period,
    group_by: Option<GroupBy>,
) -> Result<Report, ReportError> {
    let only = teams_for(bridge, actor, level).await?;
    build_for(bridge, only, period, group_by).await
}

/// The report over the teams `only` (`None`: everything), with no permission check: for
/// callers that checked already ([`build`]) and for the bridge's own weekly digest.
pub async fn build_for(
    bridge: &crate::bridge::Bridge,
    only: Option<BTreeSet<String>>,
    period: &Period,
    group_by: Option<GroupBy>,
) -> Result<Report, ReportError> {
    let mut calendars = HashMap::new();
    let mut targets = HashMap::new();
    calendars.insert(
        None,
        crate::routing::waiting::calendar_of(bridge, None).await,
    );
    targets.insert(None, 2 * 3_600_000);
    for team in bridge.teams.iter() {
        let key = Some(team.name.clone());
        calendars.insert(
            key.clone(),
            crate::routing::teams::calendar(bridge, team).await,
        );
        targets.insert(
            key,
            ms(crate::routing::teams::escalate_after(bridge, team).await),
        );
    }
    let teams = Teams {
        calendars,
        targets,
        only,
    };
    from_store(
        &bridge.store,
        &teams,
        period,
        group_by,
        bridge.clock.now_ms(),
    )
    .await
}

/// The teams' side of a report: each team's calendar and first-response target (key `None`:
/// conversations with no team), and the teams whose events count (`None`: all).
pub struct Teams {
    pub calendars: HashMap<Option<String>, Calendar>,
    pub targets: HashMap<Option<String>, i64>,
    pub only: Option<BTreeSet<String>>,
}

/// A calendar's fingerprint: the same for the same hours, zone and holidays (never 0 or -1,
/// which `report_durations.calendar` uses for "no calendar" and "not counted yet").
pub fn fingerprint(calendar: &Calendar) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{calendar:?}").bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ((hash >> 2) as i64) | 1
}

/// Read `period`'s report from the report figures (`crate::store::figures`): counts summed per
/// day and hour, durations ranked by the database, so memory holds one row per group, never
/// the period's events (`now`: for the unworked figures). What the report benchmark
/// (`bench/reports.rs`) times; [`replay_from_store`] computes the same from the events.
pub async fn from_store(
    store: &crate::store::Store,
    teams: &Teams,
    period: &Period,
    group_by: Option<GroupBy>,
    now: i64,
) -> Result<Report, ReportError> {
    use crate::store::figures::GroupColumn;
    let only = teams.only.as_ref();
    let key_of = |team: Option<&str>| team.unwrap_or_default().to_string();
    let tags: Vec<(String, i64)> = teams
        .calendars
        .iter()
        .map(|(team, c)| (key_of(team.as_deref()), fingerprint(c)))
        .collect();
    store
        .report_fill_working(
            &tags,
            |team, start, end| {
                let key = (!team.is_empty()).then(|| team.to_string());
                let calendar = teams.calendars.get(&key)?;
                Some(
                    calendar
                        .working_between(
                            crate::clock::to_datetime(start),
                            crate::clock::to_datetime(end),
                        )
                        .num_milliseconds(),
                )
            },
            period.from,
            period.to,
        )
        .await?;
    let mut report = Report {
        period: Some(period.clone()),
        group_by,
        ..Default::default()
    };
    for c in store.report_counts(period.from, period.to).await? {
        if let Some(teams) = only {
            if !c.team.as_ref().is_some_and(|t| teams.contains(t)) {
                continue;
            }
        }
        // The rows compute() gives an event (see its `key`).
        let key = match group_by {
            None => None,
            Some(GroupBy::Channel) => Some(c.channel.clone()),
            Some(GroupBy::Team) => Some(c.team.clone().unwrap_or_else(|| "(no team)".into())),
            Some(GroupBy::Operator) => Some(c.who.clone().unwrap_or_else(|| "(nobody)".into())),
        };
        let n = c.n;
        let add = |f: &mut Figures| match c.kind.as_str() {
            "created" => f.new += n,
            "resolved" => f.resolved += n,
            "reopened" => f.reopened += n,
            "rating_requested" => f.ratings_asked += n,
            "customer_message" => f.messages_in += n,
            "operator_answer" => f.messages_out += n,
            other => {
                if let Some(score @ 1..=5) = other
                    .strip_prefix("rated:")
                    .and_then(|s| s.parse::<usize>().ok())
                {
                    f.ratings[score - 1] += n;
                }
            }
        };
        add(&mut report.total);
        if let Some(key) = key {
            add(report.rows.entry(key).or_default());
        }
    }
    let column = group_by.map(|g| match g {
        GroupBy::Channel => GroupColumn::Channel,
        GroupBy::Operator => GroupColumn::Who,
        GroupBy::Team => GroupColumn::Team,
    });
    // A group's name as compute() spells it.
    let row_name = |g: String| -> String {
        match group_by {
            Some(GroupBy::Team) if g.is_empty() => "(no team)".into(),
            Some(GroupBy::Operator) if g.is_empty() => "(nobody)".into(),
            _ => g,
        }
    };
    for (kind, working) in [
        (EventKind::FirstResponse, false),
        (EventKind::FirstResponse, true),
        (EventKind::Resolved, false),
        (EventKind::Resolved, true),
    ] {
        for q in store
            .report_quantiles(kind, working, column, period.from, period.to, only)
            .await?
        {
            let f = match q.group {
                None => &mut report.total,
                Some(g) => report.rows.entry(row_name(g)).or_default(),
            };
            let d = Durations {
                n: q.n,
                median: q.median,
                p90: q.p90,
            };
            match (kind, working) {
                (EventKind::FirstResponse, false) => f.first_response_wall = d,
                (EventKind::FirstResponse, true) => f.first_response_working = d,
                (_, false) => f.resolution_wall = d,
                (_, true) => f.resolution_working = d,
            }
        }
    }
    let targets: Vec<(String, i64)> = teams
        .targets
        .iter()
        .map(|(team, t)| (key_of(team.as_deref()), *t))
        .collect();
    for (group, n) in store
        .report_within_target(
            column,
            period.from,
            period.to,
            &targets,
            2 * 3_600_000,
            only,
        )
        .await?
    {
        let f = match group {
            None => &mut report.total,
            Some(g) => report.rows.entry(row_name(g)).or_default(),
        };
        f.first_response_within_target = n;
    }
    let (customers, by_channel) = store
        .report_figures_mix(period.from, period.to, only)
        .await?;
    report.customers = customers;
    report.channel_customers = by_channel;
    add_unworked(store, &mut report, only, now).await?;
    Ok(report)
}

/// The conversations waiting for an answer now (of `only`'s teams), and the oldest wait.
async fn add_unworked(
    store: &crate::store::Store,
    report: &mut Report,
    only: Option<&BTreeSet<String>>,
    now: i64,
) -> Result<(), ReportError> {
    for row in store.routing_unworked().await? {
        if let Some(teams) = only {
            if !row.team.as_ref().is_some_and(|t| teams.contains(t)) {
                continue;
            }
        }
        report.unworked_now += 1;
        if let Some(since) = row.unworked_since {
            let waited = now - since;
            report.oldest_unworked = Some(report.oldest_unworked.map_or(waited, |o| o.max(waited)));
        }
    }
    Ok(())
}

/// The report computed by replaying the period's events ([`compute`]), as reports were made
/// before the report figures: the reference `tests/report_figures.rs` holds [`from_store`] to.
pub async fn replay_from_store(
    store: &crate::store::Store,
    teams: &Teams,
    period: &Period,
    group_by: Option<GroupBy>,
    now: i64,
) -> Result<Report, ReportError> {
    let only = &teams.only;
    // Messages are counted by the database; the events compute() reads one by one come back
    // as rows ([`crate::store::report_reads`]).
    let (events, channels) = store.report_events(period.from, period.to).await?;
    let conversations: HashMap<i64, (String, String)> = channels
        .into_iter()
        .map(|(id, channel)| (id, (channel, String::new())))
        .collect();
    let ctx = Context {
        conversations: &conversations,
        calendars: &teams.calendars,
        targets: &teams.targets,
        teams: only.as_ref(),
    };
    let mut report = compute(&events, period, group_by, &ctx);
    let by_channel = group_by == Some(GroupBy::Channel);
    for m in store
        .report_messages(period.from, period.to, by_channel)
        .await?
    {
        if let Some(teams) = only {
            if !m.team.as_ref().is_some_and(|t| teams.contains(t)) {
                continue;
            }
        }
        // The same rows compute() gives a message event (see its `key`).
        let key = match group_by {
            None => None,
            Some(GroupBy::Channel) => Some(m.channel.clone()),
            Some(GroupBy::Team) => Some(m.team.clone().unwrap_or_else(|| "(no team)".into())),
            Some(GroupBy::Operator) => Some(m.who.clone().unwrap_or_else(|| "(nobody)".into())),
        };
        let add = |f: &mut Figures| match m.kind {
            EventKind::CustomerMessage => f.messages_in += m.n,
            EventKind::OperatorAnswer => f.messages_out += m.n,
            _ => {}
        };
        add(&mut report.total);
        if let Some(key) = key {
            add(report.rows.entry(key).or_default());
        }
    }
    let (customers, by_channel) = store
        .report_channel_mix(period.from, period.to, only.as_ref())
        .await?;
    report.customers = customers;
    report.channel_customers = by_channel;
    add_unworked(store, &mut report, only.as_ref(), now).await?;
    Ok(report)
}
