//! What timer texts say: how long a conversation has waited and how long until its next
//! deadline, measured in its team's working time (weekly hours, time zone, holidays) — the time
//! the deadlines themselves are counted in — next to the wall-clock time since it started
//! waiting. Every text about a timer (reminder, escalation, lobby step, `queue`, `whois`) takes
//! its numbers and its words from here, so no text can print wall-clock time and call it working
//! time.

use chrono::{DateTime, Duration, Utc};

use super::calendar::Calendar;
use crate::bridge::Bridge;
use crate::clock::{human, to_datetime};

/// The calendar a conversation's timers run on: its team's (config plus admins' changes), or
/// always open (UTC) for a conversation with no team.
pub async fn calendar_of(bridge: &Bridge, team: Option<&str>) -> Calendar {
    match team.and_then(|t| bridge.teams.get(t)) {
        Some(t) => super::teams::calendar(bridge, t).await,
        None => Calendar::always(chrono_tz::UTC),
    }
}

/// How long a conversation has waited, at some instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waited {
    /// Working time (the calendar's open hours only).
    pub working: Duration,
    /// Wall-clock time.
    pub wall: Duration,
    /// When the wait started, as the team reads it.
    pub since: String,
}

/// How long something waiting since `since_ms` has waited by `now_ms`.
pub fn waited(calendar: &Calendar, since_ms: i64, now_ms: i64) -> Waited {
    let (since, now) = (to_datetime(since_ms), to_datetime(now_ms));
    Waited {
        working: calendar.working_between(since, now),
        wall: (now - since).max(Duration::zero()),
        since: local(calendar, since),
    }
}

impl Waited {
    /// "2h 1m of working time (2d 18h since Fri 20 Nov 17:00 CET)"; the wall-clock part is
    /// left out when it reads the same ("45m of working time (since …)").
    pub fn describe(&self) -> String {
        let working = human(self.working.num_milliseconds());
        let wall = human(self.wall.num_milliseconds());
        if working == wall {
            format!("{working} of working time (since {})", self.since)
        } else {
            format!("{working} of working time ({wall} since {})", self.since)
        }
    }
}

/// The working time left until a deadline, and when it falls: "15m of working time (at Mon 23
/// Nov 10:00 CET)".
pub fn until(calendar: &Calendar, now_ms: i64, at_ms: i64) -> String {
    let (now, at) = (to_datetime(now_ms), to_datetime(at_ms));
    let left = calendar.working_between(now, at);
    format!(
        "{} of working time (at {})",
        human(left.num_milliseconds()),
        local(calendar, at)
    )
}

/// An instant as the team reads it: "Fri 20 Nov 17:00 CET".
pub fn local(calendar: &Calendar, t: DateTime<Utc>) -> String {
    t.with_timezone(&calendar.tz)
        .format("%a %d %b %H:%M %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;

    fn berlin_office() -> Calendar {
        let mut hours = BTreeMap::new();
        hours.insert("mon-fri".to_string(), "09:00-17:00".to_string());
        Calendar::from_config("Europe/Berlin", &hours, &[]).expect("a valid calendar")
    }

    fn berlin(d: u32, h: u32, m: u32) -> i64 {
        chrono_tz::Europe::Berlin
            .with_ymd_and_hms(2026, 11, d, h, m, 0)
            .single()
            .expect("a Berlin time")
            .timestamp_millis()
    }

    /// The defect of issue 15: Friday 16:00 → Monday 10:01 is 2 h 1 min of working time, not
    /// the 2 d 18 h on the wall clock.
    #[test]
    fn friday_evening_to_monday_morning_is_two_working_hours() {
        let w = waited(&berlin_office(), berlin(20, 16, 0), berlin(23, 10, 1));
        assert_eq!(w.working, Duration::minutes(121));
        assert_eq!(
            w.describe(),
            "2h 1m of working time (2d 18h since Fri 20 Nov 16:00 CET)"
        );
    }

    #[test]
    fn within_hours_working_and_wall_time_read_the_same() {
        let w = waited(&berlin_office(), berlin(23, 9, 0), berlin(23, 9, 45));
        assert_eq!(
            w.describe(),
            "45m of working time (since Mon 23 Nov 09:00 CET)"
        );
    }

    #[test]
    fn time_left_counts_working_time_to_the_deadline() {
        // Friday 16:50: 10 min left on Friday, the deadline 20 min into Monday.
        let left = until(&berlin_office(), berlin(20, 16, 50), berlin(23, 9, 20));
        assert_eq!(left, "30m of working time (at Mon 23 Nov 09:20 CET)");
    }

    #[test]
    fn no_team_means_always_working() {
        let c = Calendar::always(chrono_tz::UTC);
        let start = Utc
            .with_ymd_and_hms(2026, 11, 20, 16, 0, 0)
            .single()
            .expect("a time")
            .timestamp_millis();
        let w = waited(&c, start, start + 2 * 86_400_000);
        assert_eq!(w.working, Duration::days(2));
        assert_eq!(
            w.describe(),
            "2d of working time (since Fri 20 Nov 16:00 UTC)"
        );
    }
}
