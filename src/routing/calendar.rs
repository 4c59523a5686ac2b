//! Working time: a team's time zone, weekly hours and holidays, and arithmetic in working time
//! ("2 working hours after Friday 17:00 is Monday 10:00").

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// How "24:00" is kept (a [`NaiveTime`] has no 24:00): read as the end of the day.
const END_OF_DAY: NaiveTime = match NaiveTime::from_hms_opt(23, 59, 59) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

/// When a team works.
#[derive(Clone, Debug)]
pub struct Calendar {
    pub tz: Tz,
    /// Opening and closing time per weekday (Monday = 0); `None` = closed all day.
    pub week: [Option<(NaiveTime, NaiveTime)>; 7],
    pub holidays: BTreeSet<NaiveDate>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CalendarError {
    #[error("unknown time zone {0:?} (use an IANA name like Europe/Berlin)")]
    TimeZone(String),
    #[error(
        "unknown weekday {0:?} (use mon, tue, wed, thu, fri, sat, sun or ranges like mon-fri)"
    )]
    Weekday(String),
    #[error("bad hours {0:?} (use HH:MM-HH:MM, or \"closed\")")]
    Hours(String),
}

fn weekday(s: &str) -> Result<usize, CalendarError> {
    let d = match s.trim().to_ascii_lowercase().get(..3) {
        Some("mon") => 0,
        Some("tue") => 1,
        Some("wed") => 2,
        Some("thu") => 3,
        Some("fri") => 4,
        Some("sat") => 5,
        Some("sun") => 6,
        _ => return Err(CalendarError::Weekday(s.to_string())),
    };
    Ok(d)
}

/// "09:00-18:00" → (09:00, 18:00); "closed" → None.
pub fn parse_hours(s: &str) -> Result<Option<(NaiveTime, NaiveTime)>, CalendarError> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("closed") {
        return Ok(None);
    }
    let bad = || CalendarError::Hours(s.to_string());
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let open = NaiveTime::parse_from_str(a.trim(), "%H:%M").map_err(|_| bad())?;
    let close = if b.trim() == "24:00" {
        NaiveTime::from_hms_opt(23, 59, 59).ok_or_else(bad)?
    } else {
        NaiveTime::parse_from_str(b.trim(), "%H:%M").map_err(|_| bad())?
    };
    if close <= open {
        return Err(bad());
    }
    Ok(Some((open, close)))
}

impl Calendar {
    /// Always open (no hours configured).
    pub fn always(tz: Tz) -> Calendar {
        let all_day = NaiveTime::from_hms_opt(0, 0, 0).zip(NaiveTime::from_hms_opt(23, 59, 59));
        Calendar {
            tz,
            week: [all_day; 7],
            holidays: BTreeSet::new(),
        }
    }

    /// Build from config: `hours` maps day specs ("mon-fri", "sat") to "HH:MM-HH:MM" or
    /// "closed"; days not named are closed. No hours at all means always open.
    pub fn from_config(
        tz: &str,
        hours: &BTreeMap<String, String>,
        holidays: &[NaiveDate],
    ) -> Result<Calendar, CalendarError> {
        let tz: Tz = tz
            .parse()
            .map_err(|_| CalendarError::TimeZone(tz.to_string()))?;
        if hours.is_empty() {
            let mut c = Calendar::always(tz);
            c.holidays = holidays.iter().copied().collect();
            return Ok(c);
        }
        let mut calendar = Calendar {
            tz,
            week: [None; 7],
            holidays: holidays.iter().copied().collect(),
        };
        for (days, span) in hours {
            calendar.set_hours(days, span)?;
        }
        Ok(calendar)
    }

    /// Set the hours of some days (`"mon-fri"`, `"sat"`) to `"HH:MM-HH:MM"` or `"closed"`.
    pub fn set_hours(&mut self, days: &str, span: &str) -> Result<(), CalendarError> {
        let window = parse_hours(span)?;
        let (from, to) = match days.split_once('-') {
            Some((a, b)) => (weekday(a)?, weekday(b)?),
            None => (weekday(days)?, weekday(days)?),
        };
        let mut d = from;
        loop {
            self.week[d] = window;
            if d == to {
                break;
            }
            d = (d + 1) % 7;
        }
        Ok(())
    }

    /// The week as config-style lines ("mon 09:00-18:00", "sat closed").
    pub fn describe_week(&self) -> Vec<String> {
        const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        DAYS.iter()
            .zip(self.week.iter())
            .map(|(d, w)| match w {
                Some((a, b)) => format!("{d} {}-{}", a.format("%H:%M"), b.format("%H:%M")),
                None => format!("{d} closed"),
            })
            .collect()
    }

    /// The working window of a local date, if it is a working day.
    fn window(&self, date: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if self.holidays.contains(&date) {
            return None;
        }
        let (open, close) = self.week[date.weekday().num_days_from_monday() as usize]?;
        let start = self
            .tz
            .from_local_datetime(&date.and_time(open))
            .earliest()?;
        // "24:00" (and "always open") is stored as 23:59:59: it means the day's end, the next
        // day's midnight, or every open day would lose a second of working time.
        let end = match date.succ_opt().zip(NaiveTime::from_hms_opt(0, 0, 0)) {
            Some((next, midnight)) if close == END_OF_DAY => self
                .tz
                .from_local_datetime(&next.and_time(midnight))
                .earliest()?,
            _ => self
                .tz
                .from_local_datetime(&date.and_time(close))
                .latest()?,
        };
        Some((start.with_timezone(&Utc), end.with_timezone(&Utc)))
    }

    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        let date = t.with_timezone(&self.tz).date_naive();
        self.window(date).is_some_and(|(a, b)| t >= a && t < b)
    }

    /// The next opening after `t` within `days` days (`None`: open now, or no working day so
    /// soon).
    pub fn next_open(&self, t: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
        if self.is_open(t) {
            return None;
        }
        let mut date = t.with_timezone(&self.tz).date_naive();
        for _ in 0..=days {
            if let Some((open, close)) = self.window(date) {
                if open > t && close > open {
                    return Some(open);
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// The local date of an instant (for "once per day" rules).
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    /// The instant `work` of working time after `start`. Closed days and hours do not count.
    pub fn add_working(&self, start: DateTime<Utc>, work: Duration) -> DateTime<Utc> {
        let mut left = work;
        let mut date = start.with_timezone(&self.tz).date_naive();
        for _ in 0..800 {
            if let Some((open, close)) = self.window(date) {
                let from = open.max(start);
                if from < close {
                    let available = close - from;
                    if available >= left {
                        return from + left;
                    }
                    left -= available;
                }
            }
            date = match date.succ_opt() {
                Some(d) => d,
                None => break,
            };
        }
        // No working time in two years: treat the work as wall-clock time.
        start + work
    }

    /// Working time between two instants.
    pub fn working_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        if to <= from {
            return total;
        }
        let mut date = from.with_timezone(&self.tz).date_naive();
        let last = to.with_timezone(&self.tz).date_naive();
        while date <= last {
            if let Some((open, close)) = self.window(date) {
                let a = open.max(from);
                let b = close.min(to);
                if b > a {
                    total += b - a;
                }
            }
            date = match date.succ_opt() {
                Some(d) => d,
                None => break,
            };
        }
        total
    }
}

/// Is the day a weekday (Mon–Fri)? Used by tests and defaults.
pub fn is_weekday(d: Weekday) -> bool {
    d.num_days_from_monday() < 5
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office() -> Calendar {
        let mut hours = BTreeMap::new();
        hours.insert("mon-fri".to_string(), "09:00-17:00".to_string());
        let holiday = NaiveDate::from_ymd_opt(2026, 12, 25).unwrap();
        Calendar::from_config("Europe/Berlin", &hours, &[holiday]).unwrap()
    }

    fn berlin(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        chrono_tz::Europe::Berlin
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn two_working_hours_from_friday_afternoon_end_on_monday() {
        let c = office();
        // Friday 2026-11-20 16:00 Berlin: one hour on Friday, one on Monday.
        let due = c.add_working(berlin(2026, 11, 20, 16, 0), Duration::hours(2));
        assert_eq!(due, berlin(2026, 11, 23, 10, 0));
        assert_eq!(
            c.working_between(berlin(2026, 11, 20, 16, 0), due),
            Duration::hours(2)
        );
    }

    #[test]
    fn a_message_at_night_starts_counting_at_opening() {
        let c = office();
        let due = c.add_working(berlin(2026, 11, 24, 22, 30), Duration::hours(2));
        assert_eq!(due, berlin(2026, 11, 25, 11, 0));
        assert!(!c.is_open(berlin(2026, 11, 24, 22, 30)));
        assert!(c.is_open(berlin(2026, 11, 25, 9, 0)));
        assert!(!c.is_open(berlin(2026, 11, 28, 12, 0)), "Saturday");
    }

    #[test]
    fn holidays_do_not_count() {
        let c = office();
        // Thursday 24 Dec 16:00: 1 h that day; Friday 25th is a holiday, then the weekend.
        let due = c.add_working(berlin(2026, 12, 24, 16, 0), Duration::hours(2));
        assert_eq!(due, berlin(2026, 12, 28, 10, 0));
        assert!(!c.is_open(berlin(2026, 12, 25, 12, 0)));
    }

    #[test]
    fn always_open_counts_whole_days() {
        let c = Calendar::always(chrono_tz::UTC);
        let start = berlin(2026, 11, 20, 16, 0);
        assert_eq!(
            c.working_between(start, start + Duration::days(2)),
            Duration::days(2)
        );
        assert_eq!(
            c.add_working(start, Duration::days(2)),
            start + Duration::days(2)
        );
    }

    #[test]
    fn bad_config_is_reported() {
        let mut hours = BTreeMap::new();
        hours.insert("mon-fri".to_string(), "9-5".to_string());
        assert!(matches!(
            Calendar::from_config("UTC", &hours, &[]),
            Err(CalendarError::Hours(_))
        ));
        assert!(matches!(
            Calendar::from_config("Mars/Base", &BTreeMap::new(), &[]),
            Err(CalendarError::TimeZone(_))
        ));
    }
}
