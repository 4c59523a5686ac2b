//! The first responses a team gave lately, read for the figure customers see before they write
//! ("usually answers within 10 minutes", [`crate::availability`]): each recorded
//! `first_response` conversation event with the start of the wait it ended (the conversation's
//! creation or last reopening), as `conversation_events` keeps them.

use sqlx::Row;

use super::{Store, StoreError};

/// One first response: when the wait started and when the answer was queued (ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    pub started: i64,
    pub answered: i64,
}

impl Store {
    /// First responses of `team` (`None`: conversations with no team) recorded at or after
    /// `since` (ms), newest first, at most `limit`.
    pub async fn first_response_waits(
        &self,
        team: Option<&str>,
        since: i64,
        limit: i64,
    ) -> Result<Vec<Wait>, StoreError> {
        // Two spellings rather than `$3 IS NULL`: PostgreSQL cannot type a parameter that is
        // only ever compared with NULL.
        let sql = if team.is_some() {
            "SELECT f.at,
                    (SELECT MAX(s.at) FROM conversation_events s
                      WHERE s.conversation_id = f.conversation_id AND s.id < f.id
                        AND s.kind IN ('created', 'reopened')) AS started
             FROM conversation_events f
             WHERE f.kind = 'first_response' AND f.at >= $1 AND f.team = $3
             ORDER BY f.at DESC LIMIT $2"
        } else {
            "SELECT f.at,
                    (SELECT MAX(s.at) FROM conversation_events s
                      WHERE s.conversation_id = f.conversation_id AND s.id < f.id
                        AND s.kind IN ('created', 'reopened')) AS started
             FROM conversation_events f
             WHERE f.kind = 'first_response' AND f.at >= $1 AND f.team IS NULL AND $3 = ''
             ORDER BY f.at DESC LIMIT $2"
        };
        let rows = sqlx::query(sql)
            .bind(since)
            .bind(limit)
            .bind(team.unwrap_or(""))
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let answered: i64 = r.try_get("at")?;
            let started: Option<i64> = r.try_get("started")?;
            if let Some(started) = started {
                out.push(Wait {
                    started: started.min(answered),
                    answered,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::events::{insert, EventKind, Stamp};

    #[tokio::test]
    async fn waits_are_the_team_s_within_the_window() {
        let (_dir, _url, store) = crate::store::temp_store(1).await;
        let ev = |conversation: i64, at: i64, kind: EventKind, team: Option<&'static str>| {
            let store = store.clone();
            async move {
                let stamp = Stamp { at, actor: None };
                insert(
                    &mut store.pool().acquire().await.unwrap(),
                    conversation,
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
        ev(1, 1_000, EventKind::Created, Some("support")).await;
        ev(1, 61_000, EventKind::FirstResponse, Some("support")).await;
        ev(2, 100_000, EventKind::Created, Some("sales")).await;
        ev(2, 700_000, EventKind::FirstResponse, Some("sales")).await;
        ev(3, 200_000, EventKind::Created, None).await;
        ev(3, 500_000, EventKind::Reopened, None).await;
        ev(3, 560_000, EventKind::FirstResponse, None).await;
        let support = store
            .first_response_waits(Some("support"), 0, 10)
            .await
            .unwrap();
        assert_eq!(support.len(), 1);
        assert_eq!(support[0].answered - support[0].started, 60_000);
        let none = store.first_response_waits(None, 0, 10).await.unwrap();
        assert_eq!(none.len(), 1);
        assert_eq!(
            none[0].answered - none[0].started,
            60_000,
            "from the reopening"
        );
        assert!(store
            .first_response_waits(Some("support"), 62_000, 10)
            .await
            .unwrap()
            .is_empty());
    }
}
