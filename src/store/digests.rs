//! Weekly digests as stored (`report_digests`): which week of which team has been posted, so
//! the digest timer ([`crate::reports::digest`]) sends each week once, across restarts.

use sqlx::Row;

use super::{Store, StoreError};

/// Where a week's digest stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestState {
    /// The week the schedule was first seen: nothing is sent for it.
    Baseline,
    /// Claimed, not known to be posted (posted again, idempotently, after a crash).
    Sending,
    Sent,
}

impl DigestState {
    fn as_str(self) -> &'static str {
        match self {
            DigestState::Baseline => "baseline",
            DigestState::Sending => "sending",
            DigestState::Sent => "sent",
        }
    }

    fn parse(s: &str) -> DigestState {
        match s {
            "baseline" => DigestState::Baseline,
            "sending" => DigestState::Sending,
            _ => DigestState::Sent,
        }
    }
}

/// One team's week.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestRow {
    pub week: String,
    pub due_at: i64,
    pub state: DigestState,
}

impl Store {
    /// The team's latest week on record (by its scheduled moment), if any.
    pub async fn digest_latest(&self, team: &str) -> Result<Option<DigestRow>, StoreError> {
        let row = sqlx::query(
            "SELECT week, due_at, state FROM report_digests WHERE team = $1
             ORDER BY due_at DESC LIMIT 1",
        )
        .bind(team)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(DigestRow {
                week: r.try_get("week")?,
                due_at: r.try_get("due_at")?,
                state: DigestState::parse(&r.try_get::<String, _>("state")?),
            })
        })
        .transpose()
    }

    /// Record a week in `state` unless it is on record already; `true` when this call did
    /// (so of two callers, one claims it).
    pub async fn digest_claim(
        &self,
        team: &str,
        week: &str,
        due_at: i64,
        state: DigestState,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO report_digests (team, week, due_at, state) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(team)
        .bind(week)
        .bind(due_at)
        .bind(state.as_str())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The week's digest is posted.
    pub async fn digest_sent(&self, team: &str, week: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE report_digests SET state = 'sent', sent_at = $1 WHERE team = $2 AND week = $3",
        )
        .bind(at)
        .bind(team)
        .bind(week)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
