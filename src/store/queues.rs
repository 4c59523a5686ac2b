//! Read-only figures about the durable queues and the waiting conversations, for the metrics
//! ([`crate::metrics`]): how much each queue holds and since when, which conversations wait for
//! an answer per team, and the first responses recorded in `conversation_events`. Read from the
//! store, never counted in memory, so they hold across restarts and across instances.

use sqlx::Row;

use super::{Store, StoreError};

/// One queue's depth and the age of its oldest item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueFigures {
    pub depth: i64,
    /// When the oldest item entered the queue (ms since the epoch); `None` when it is empty.
    pub oldest_at: Option<i64>,
}

/// The four queues an operator watches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Queues {
    /// Customer events not yet in their room.
    pub inbox: QueueFigures,
    /// Homeserver events not yet worked.
    pub matrix_events: QueueFigures,
    /// Operators' messages not yet delivered.
    pub outbox: QueueFigures,
    /// Operators' messages given up on (shown in the room as failed; `!sb retry` resends).
    pub dead_letters: QueueFigures,
}

/// Conversations of one team (`None`: no team) waiting for an operator's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unworked {
    pub team: Option<String>,
    pub count: i64,
    /// Since when the longest-waiting one waits (ms since the epoch).
    pub oldest_since: i64,
}

/// A recorded first response: the team it counts for and how long it took (wall clock, from the
/// conversation's creation or last reopening).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirstResponse {
    pub id: i64,
    pub team: Option<String>,
    pub waited_ms: i64,
}

impl Store {
    /// Depth and oldest item of the inbox, the homeserver events, the outbox and the dead
    /// letters, in one read each.
    pub async fn queue_figures(&self) -> Result<Queues, StoreError> {
        Ok(Queues {
            inbox: self
                .figures("SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM inbox WHERE state = 'pending'")
                .await?,
            matrix_events: self
                .figures("SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM matrix_events WHERE state = 'pending'")
                .await?,
            outbox: self
                .figures("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox WHERE state = 'pending'")
                .await?,
            // A dead letter's age counts from when it failed (its last update).
            dead_letters: self
                .figures("SELECT COUNT(*) AS n, MIN(updated_at) AS oldest FROM outbox WHERE state = 'failed'")
                .await?,
        })
    }

    async fn figures(&self, sql: &'static str) -> Result<QueueFigures, StoreError> {
        let row = sqlx::query(sql).fetch_one(self.pool()).await?;
        Ok(QueueFigures {
            depth: row.try_get("n")?,
            oldest_at: row.try_get("oldest")?,
        })
    }

    /// Waiting conversations per team (only teams that have some).
    pub async fn unworked_by_team(&self) -> Result<Vec<Unworked>, StoreError> {
        let rows = sqlx::query(
            "SELECT team, COUNT(*) AS n, MIN(unworked_since) AS oldest FROM routing
             WHERE unworked_since IS NOT NULL GROUP BY team",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Unworked {
                    team: r.try_get("team")?,
                    count: r.try_get("n")?,
                    oldest_since: r.try_get("oldest")?,
                })
            })
            .collect()
    }

    /// First responses recorded after the event `after` (by id, oldest first), at most `limit`.
    pub async fn first_responses_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<FirstResponse>, StoreError> {
        let rows = sqlx::query(
            "SELECT f.id, f.team, f.at,
                    (SELECT MAX(s.at) FROM conversation_events s
                      WHERE s.conversation_id = f.conversation_id AND s.id < f.id
                        AND s.kind IN ('created', 'reopened')) AS started
             FROM conversation_events f
             WHERE f.kind = 'first_response' AND f.id > $1 ORDER BY f.id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let at: i64 = r.try_get("at")?;
            let started: Option<i64> = r.try_get("started")?;
            out.push(FirstResponse {
                id: r.try_get("id")?,
                team: r.try_get("team")?,
                waited_ms: started.map_or(0, |s| (at - s).max(0)),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events::{insert, EventKind, Stamp};

    #[tokio::test]
    async fn empty_queues_have_no_oldest_item() {
        let (_dir, _url, store) = crate::store::temp_store(1).await;
        let q = store.queue_figures().await.unwrap();
        assert_eq!(q, Queues::default());
        assert!(store.unworked_by_team().await.unwrap().is_empty());
    }

    /// A first response's wait counts from the conversation's latest start before it (a
    /// reopening restarts the clock), and the team is the event's own.
    #[tokio::test]
    async fn first_responses_count_from_the_latest_start() {
        let (_dir, _url, store) = crate::store::temp_store(1).await;
        let ev = |at, kind, team| {
            let store = store.clone();
            async move {
                let stamp = Stamp { at, actor: None };
                insert(
                    &mut store.pool().acquire().await.unwrap(),
                    7,
                    &stamp,
                    kind,
                    team,
                    None,
                    None,
                    None,
                )
                .await
                .unwrap();
            }
        };
        ev(1_000, EventKind::Created, Some("sales")).await;
        ev(61_000, EventKind::FirstResponse, Some("sales")).await;
        ev(100_000, EventKind::Reopened, Some("support")).await;
        ev(105_000, EventKind::FirstResponse, Some("support")).await;
        let all = store.first_responses_after(0, 10).await.unwrap();
        let got: Vec<(Option<&str>, i64)> = all
            .iter()
            .map(|f| (f.team.as_deref(), f.waited_ms))
            .collect();
        assert_eq!(got, vec![(Some("sales"), 60_000), (Some("support"), 5_000)]);
        let later = store.first_responses_after(all[0].id, 10).await.unwrap();
        assert_eq!(later.len(), 1);
    }
}
