//! The weekly digest: each team's report of the last 7 days by operator (the figures of
//! `!sb report 7d by operator` for that team: table, CSV and chart) posted to its lobby on the
//! configured weekday and hour in the team's time zone (`teams.<name>.digest`).
//!
//! A durable timer: the timer worker ([`crate::routing::timers`]) calls [`Digests::tick`] on
//! every pass. The week's scheduled moment is the latest configured weekday and hour at or
//! before the bridge's clock; a week is claimed in the store (`report_digests`) before it is
//! posted and marked sent after, so a week is never posted twice, and one whose moment passed
//! while the bridge was down is posted when it comes back. A claimed week whose posting a crash
//! interrupted is posted again with the same transaction ids, which the homeserver
//! deduplicates. The week in which a team's schedule is first seen is recorded as the baseline
//! and not posted: a new bridge does not greet a lobby with last week's figures.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::{build_for, post, GroupBy, Period};
use crate::bridge::Bridge;
use crate::routing::teams::Team;
use crate::store::digests::DigestState;

const WEEK_MS: i64 = 7 * 86_400_000;

/// The latest moment at or before `now` that is `day` at `hour`:00 in `tz`: its local date and
/// the instant (ms). Where a clock change skips that hour, the first instant after it.
pub fn latest_moment(
    now: DateTime<Utc>,
    tz: Tz,
    day: Weekday,
    hour: u32,
) -> Option<(NaiveDate, i64)> {
    let today = now.with_timezone(&tz).date_naive();
    let back = (today.weekday().num_days_from_monday() + 7 - day.num_days_from_monday()) % 7;
    let mut date = today.checked_sub_days(Days::new(back.into()))?;
    for _ in 0..2 {
        let at = (hour..hour + 3).find_map(|h| {
            date.and_hms_opt(h, 0, 0)
                .and_then(|t| tz.from_local_datetime(&t).earliest())
        })?;
        if at <= now {
            return Some((date, at.timestamp_millis()));
        }
        date = date.checked_sub_days(Days::new(7))?;
    }
    None
}

/// The digest timer's memory of the weeks it knows are done (a cache: the store decides).
#[derive(Default)]
pub struct Digests {
    done: HashMap<String, String>,
    /// When the schedule was last looked at: the real instant and the bridge's clock then.
    last: Option<(std::time::Instant, i64)>,
}

/// How often the schedule is looked at (besides at once when the bridge's clock jumps).
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

impl Digests {
    /// Post every team's digest that is due and not posted yet. Looks at the schedule every
    /// [`CHECK_EVERY`], or at once when the bridge's clock moved otherwise than time passed
    /// (a test's clock).
    pub async fn tick(&mut self, bridge: &Bridge) {
        let now = bridge.clock.now();
        if let Some((when, clock)) = self.last {
            let elapsed = when.elapsed();
            let expected = clock + elapsed.as_millis() as i64;
            if elapsed < CHECK_EVERY && (now.timestamp_millis() - expected).abs() < 2_000 {
                return;
            }
        }
        self.last = Some((std::time::Instant::now(), now.timestamp_millis()));
        for team in bridge.teams.iter() {
            let digest = &team.config.digest;
            let Some(day) = digest.day().filter(|_| digest.enabled) else {
                continue;
            };
            let tz = crate::routing::teams::calendar(bridge, team).await.tz;
            let Some((date, due)) = latest_moment(now, tz, day, digest.hour) else {
                continue;
            };
            let week = date.format("%Y-%m-%d").to_string();
            if self.done.get(&team.name) == Some(&week) {
                continue;
            }
            match due_week(bridge, team, &week, due, tz).await {
                Ok(()) => {
                    self.done.insert(team.name.clone(), week);
                }
                Err(e) => {
                    tracing::warn!(team = %team.name, %week, error = %e, "weekly digest not posted; will retry")
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum DigestError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Report(#[from] super::ReportError),
    #[error(transparent)]
    Lobby(#[from] crate::routing::lobby::LobbyError),
    #[error(transparent)]
    Matrix(#[from] crate::matrix::MatrixError),
}

/// Bring the team's digests up to `week` (scheduled at `due`).
async fn due_week(
    bridge: &Bridge,
    team: &Team,
    week: &str,
    due: i64,
    tz: Tz,
) -> Result<(), DigestError> {
    let store = &bridge.store;
    let Some(latest) = store.digest_latest(&team.name).await? else {
        store
            .digest_claim(&team.name, week, due, DigestState::Baseline)
            .await?;
        return Ok(());
    };
    if latest.state == DigestState::Sending {
        // Claimed and interrupted (by a crash): post it again, idempotently.
        post_week(bridge, team, &latest.week, latest.due_at, tz).await?;
    }
    if latest.due_at >= due {
        // This week is on record (or the clock went back): nothing more to do.
        return Ok(());
    }
    if store
        .digest_claim(&team.name, week, due, DigestState::Sending)
        .await?
    {
        post_week(bridge, team, week, due, tz).await?;
    }
    Ok(())
}

/// Post the digest of the 7 days before `due` to the team's lobby and mark it sent.
async fn post_week(
    bridge: &Bridge,
    team: &Team,
    week: &str,
    due: i64,
    tz: Tz,
) -> Result<(), DigestError> {
    let local = crate::clock::to_datetime(due).with_timezone(&tz);
    let period = Period {
        from: due - WEEK_MS,
        to: due,
        label: format!(
            "the week to {} ({}), {} team: weekly digest",
            local.format("%a %Y-%m-%d %H:%M"),
            tz.name(),
            team.name
        ),
        tz,
    };
    let only: BTreeSet<String> = [team.name.clone()].into_iter().collect();
    let report = build_for(bridge, Some(only), &period, Some(GroupBy::Operator)).await?;
    let room = crate::routing::lobby::room(bridge, Some(&team.name)).await?;
    let txn = format!("sb-digest-{}-{week}", team.name);
    bridge
        .homeserver
        .send(
            &room,
            "m.room.message",
            &txn,
            &post::table(&report, None),
            None,
            None,
        )
        .await?;
    post::files(bridge, &room, &txn, &report, &period).await?;
    bridge
        .store
        .digest_sent(&team.name, week, bridge.clock.now_ms())
        .await?;
    tracing::info!(team = %team.name, %week, "weekly digest posted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_moment_is_read_in_the_teams_zone() {
        let moscow: Tz = "Europe/Moscow".parse().unwrap();
        let utc = |d, h, m| Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).single().unwrap();
        // Mon 14 Dec 09:00 in Moscow is 06:00 UTC.
        let (date, at) = latest_moment(utc(14, 6, 0), moscow, Weekday::Mon, 9).unwrap();
        assert_eq!(date.to_string(), "2026-12-14");
        assert_eq!(at, utc(14, 6, 0).timestamp_millis());
        // A minute before it, the moment is the week before.
        let (date, _) = latest_moment(utc(14, 5, 59), moscow, Weekday::Mon, 9).unwrap();
        assert_eq!(date.to_string(), "2026-12-07");
        // Sunday 22:00 UTC is already Monday 01:00 in Moscow, still before 09:00.
        let (date, _) = latest_moment(utc(13, 22, 0), moscow, Weekday::Mon, 9).unwrap();
        assert_eq!(date.to_string(), "2026-12-07");
        // Mid-week: that week's Monday.
        let (date, _) = latest_moment(utc(17, 12, 0), moscow, Weekday::Mon, 9).unwrap();
        assert_eq!(date.to_string(), "2026-12-14");
    }
}
