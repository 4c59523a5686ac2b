//! The bridge's clock. Routing timers (escalation, reminders, snoozes, business hours) read time
//! from here, so tests can move it: with `testing.clock_control: true` the endpoint
//! `POST /_switchboard/testing/clock` (authenticated with the hs_token) sets "now" and answers
//! once the timers due at the new time have fired. Off by default; production always runs on the
//! system clock.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

#[derive(Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        crate::store::now_ms() + self.offset_ms.load(Ordering::SeqCst)
    }

    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_else(Utc::now)
    }

    /// Make "now" be `now_ms` (time keeps flowing from there).
    pub fn set(&self, now_ms: i64) {
        self.offset_ms
            .store(now_ms - crate::store::now_ms(), Ordering::SeqCst);
    }

    /// How far "now" is moved from the system clock (kept in the store by test rigs, so a
    /// restarted bridge runs on the test's time from its first timer check).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }

    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::SeqCst);
    }
}

pub fn to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_else(Utc::now)
}

/// "1h 5m", "3d 2h", "45s": for ages and timers in one-line messages.
pub fn human(ms: i64) -> String {
    let s = (ms.max(0) / 1000) as u64;
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_ages() {
        assert_eq!(super::human(59_000), "59s");
        assert_eq!(super::human(7_200_000), "2h");
        assert_eq!(super::human(7_500_000), "2h 5m");
        assert_eq!(super::human(90_000_000), "1d 1h");
    }
}
