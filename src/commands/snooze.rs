//! `snooze <duration|HH:MM>`: hide a conversation until then; it reopens by itself.

use chrono::{Duration, NaiveTime, TimeZone};

use super::Context;
use crate::matrix::MatrixError;
use crate::store::routing::ConversationState;

/// "2h", "30m", "1d" → that long from now; "09:30" → the next 09:30 in the team's time zone.
pub fn until(
    arg: &str,
    now: chrono::DateTime<chrono::Utc>,
    tz: chrono_tz::Tz,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let arg = arg.trim();
    if let Ok(d) = humantime::parse_duration(arg) {
        return Duration::from_std(d)
            .ok()
            .map(|d| now + d)
            .filter(|t| *t > now);
    }
    let time = NaiveTime::parse_from_str(arg, "%H:%M").ok()?;
    let local = now.with_timezone(&tz);
    let mut date = local.date_naive();
    for _ in 0..2 {
        if let Some(t) = tz.from_local_datetime(&date.and_time(time)).earliest() {
            let t = t.with_timezone(&chrono::Utc);
            if t > now {
                return Some(t);
            }
        }
        date = date.succ_opt()?;
    }
    None
}

pub async fn run(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some((conversation, mut row)) = ctx.portal().await? else {
        return Ok(());
    };
    let tz = match row.team.as_deref().and_then(|t| ctx.bridge.teams.get(t)) {
        Some(t) => crate::routing::teams::calendar(ctx.bridge, t).await.tz,
        None => chrono_tz::UTC,
    };
    let Some(at) = until(ctx.args, ctx.bridge.clock.now(), tz) else {
        return ctx
            .reply("Usage: `!sb snooze 2h` (a duration) or `!sb snooze 09:30` (a time).")
            .await;
    };
    crate::routing::mark_worked(&mut row);
    row.state = ConversationState::Snoozed;
    row.snooze_until = Some(at.timestamp_millis());
    if !ctx.save(conversation, &row).await? {
        return Ok(());
    }
    ctx.bridge.wake_timers.notify_one();
    ctx.reply(&format!(
        "Snoozed until {} by {}; it reopens then, or when the customer writes.",
        at.with_timezone(&tz).format("%a %d %b %H:%M %Z"),
        ctx.sender
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
            .unwrap();
        assert_eq!(
            until("2h", now, chrono_tz::UTC),
            Some(now + Duration::hours(2))
        );
        assert_eq!(
            until("09:30", now, chrono_tz::UTC),
            Some(
                chrono::Utc
                    .with_ymd_and_hms(2026, 11, 24, 9, 30, 0)
                    .unwrap()
            )
        );
        assert_eq!(
            until("11:00", now, chrono_tz::UTC),
            Some(
                chrono::Utc
                    .with_ymd_and_hms(2026, 11, 23, 11, 0, 0)
                    .unwrap()
            )
        );
        assert_eq!(until("soon", now, chrono_tz::UTC), None);
    }
}
