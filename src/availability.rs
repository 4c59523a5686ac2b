//! What a customer is told before they write ([`Availability`]): whether the team that would
//! answer works now, when it opens next, and how soon it usually answers.
//!
//! * **The team** is the one new conversations of the channel's account go to: the first team
//!   (config order) with a rule naming nothing but the channel and/or the account (a rule with
//!   keywords, tags or an e-mail domain needs the first message to decide); else the first team
//!   with any rule naming them; else none (every operator, always open).
//! * **Open now / next opening** come from the team's working calendar ([`teams::calendar`]:
//!   the config's hours, time zone and holidays with admins' changes).
//! * **Usually answers within** is the median of the team's first responses over the last
//!   [`WINDOW_MS`] (read from the stored conversation events, so it survives restarts and is the
//!   same on every instance), in working time — a question asked on Friday evening and answered
//!   on Monday at 09:05 waited five minutes of the team's time — rounded up to a step a person
//!   reads at a glance ([`round_for_humans`]). Fewer than [`MIN_SAMPLES`] answers say nothing.
//!
//! The web chat asks on every widget load (an unauthenticated GET), so the team, its calendar
//! and the figure are kept for [`CACHE_MS`] per channel and account (a flood of widget loads
//! costs the store one read per half minute); open-now is worked out fresh each time from the
//! kept calendar.

use std::collections::HashMap;
use std::sync::Mutex;

use switchboard_channel::Availability;

use crate::bridge::Bridge;
use crate::clock::to_datetime;
use crate::routing::calendar::Calendar;
use crate::routing::teams::{self, Team};
use crate::store::StoreError;

/// How far back first responses count.
pub const WINDOW_MS: i64 = 7 * 86_400_000;
/// Fewest first responses in the window that make a figure.
pub const MIN_SAMPLES: usize = 3;
/// Most first responses read (the newest).
const MAX_SAMPLES: i64 = 2000;
/// How long a computed figure is reused (real time).
const CACHE_MS: i64 = 30_000;
/// How far ahead the next opening is looked for.
const NEXT_OPEN_DAYS: u32 = 14;

/// Figures kept per channel and account for [`CACHE_MS`].
#[derive(Default)]
pub struct AvailabilityCache {
    entries: Mutex<HashMap<(String, String), Cached>>,
}

#[derive(Clone)]
struct Cached {
    /// Real time (not the bridge's clock) it was computed at.
    computed_at: i64,
    /// The bridge's clock it was computed for (a test moving the clock gets a fresh figure).
    clock_at: i64,
    calendar: Calendar,
    usually_within_secs: Option<u64>,
}

/// The team a new conversation of `channel`'s `account` goes to, as far as can be told before
/// the first message.
pub async fn team_for<'b>(bridge: &'b Bridge, channel: &str, account: &str) -> Option<&'b Team> {
    let names = |rule: &crate::config::RuleConfig| {
        rule.channel.as_deref().is_none_or(|c| c == channel)
            && rule.account.as_deref().is_none_or(|a| a == account)
    };
    let mut fallback = None;
    for team in bridge.teams.iter() {
        let rules = teams::rules(bridge, team).await;
        if rules.iter().any(|r| {
            names(r) && r.keywords.is_empty() && r.tags.is_empty() && r.email_domain.is_none()
        }) {
            return Some(team);
        }
        if fallback.is_none()
            && rules
                .iter()
                .any(|r| names(r) && (r.channel.is_some() || r.account.is_some()))
        {
            fallback = Some(team);
        }
    }
    fallback
}

/// What customers of `channel`'s `account` are told now.
pub async fn availability(
    bridge: &Bridge,
    channel: &str,
    account: &str,
) -> Result<Availability, StoreError> {
    let key = (channel.to_owned(), account.to_owned());
    let now = bridge.clock.now_ms();
    let real_now = crate::store::now_ms();
    let cached = bridge
        .availability
        .entries
        .lock()
        .ok()
        .and_then(|m| m.get(&key).cloned())
        .filter(|c| {
            real_now.saturating_sub(c.computed_at) < CACHE_MS && (now - c.clock_at).abs() < CACHE_MS
        });
    let cached = match cached {
        Some(c) => c,
        None => {
            let team = team_for(bridge, channel, account)
                .await
                .map(|t| t.name.clone());
            let calendar = crate::routing::waiting::calendar_of(bridge, team.as_deref()).await;
            let waits = bridge
                .store
                .first_response_waits(team.as_deref(), now - WINDOW_MS, MAX_SAMPLES)
                .await?;
            let working: Vec<i64> = waits
                .iter()
                .map(|w| {
                    calendar
                        .working_between(to_datetime(w.started), to_datetime(w.answered))
                        .num_milliseconds()
                })
                .collect();
            let fresh = Cached {
                computed_at: real_now,
                clock_at: now,
                usually_within_secs: median(working).map(round_for_humans),
                calendar,
            };
            if let Ok(mut m) = bridge.availability.entries.lock() {
                m.insert(key, fresh.clone());
            }
            fresh
        }
    };
    let at = to_datetime(now);
    let open_now = cached.calendar.is_open(at);
    Ok(Availability {
        open_now,
        next_open_ms: cached
            .calendar
            .next_open(at, NEXT_OPEN_DAYS)
            .map(|t| t.timestamp_millis()),
        usually_within_secs: cached.usually_within_secs,
    })
}

/// The median of at least [`MIN_SAMPLES`] values (the lower middle of an even count).
fn median(mut values: Vec<i64>) -> Option<i64> {
    if values.len() < MIN_SAMPLES {
        return None;
    }
    values.sort_unstable();
    Some(values[(values.len() - 1) / 2])
}

/// A wait rounded up to a step people say: 1, 2, 3, 5, 10, 15, 20, 30, 45 minutes, 1, 2, 3, 4,
/// 6, 8, 12 hours, then whole days. In seconds.
pub fn round_for_humans(ms: i64) -> u64 {
    const MIN: u64 = 60;
    const HOUR: u64 = 3600;
    const STEPS: [u64; 16] = [
        MIN,
        2 * MIN,
        3 * MIN,
        5 * MIN,
        10 * MIN,
        15 * MIN,
        20 * MIN,
        30 * MIN,
        45 * MIN,
        HOUR,
        2 * HOUR,
        3 * HOUR,
        4 * HOUR,
        6 * HOUR,
        8 * HOUR,
        12 * HOUR,
    ];
    let secs = u64::try_from(ms.max(0)).unwrap_or(0).div_ceil(1000);
    STEPS
        .into_iter()
        .find(|step| secs <= *step)
        .unwrap_or_else(|| secs.div_ceil(86_400) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up_to_steps_people_say() {
        assert_eq!(round_for_humans(0), 60);
        assert_eq!(round_for_humans(59_000), 60);
        assert_eq!(round_for_humans(61_000), 120);
        assert_eq!(round_for_humans(8 * 60_000), 600);
        assert_eq!(round_for_humans(10 * 60_000), 600);
        assert_eq!(round_for_humans(10 * 60_000 + 1), 900);
        assert_eq!(round_for_humans(50 * 60_000), 3600);
        assert_eq!(round_for_humans(13 * 3_600_000), 86_400);
        assert_eq!(round_for_humans(30 * 3_600_000), 2 * 86_400);
    }

    #[test]
    fn a_median_needs_enough_answers() {
        assert_eq!(median(vec![5, 1]), None);
        assert_eq!(median(vec![9, 1, 5]), Some(5));
        assert_eq!(median(vec![9, 1, 5, 7]), Some(5));
    }
}
