//! Rating requests (`csat_requests`): one row per resolution, written with its `resolved` event
//! ([`Store::put_routing`] calls [`insert_for_resolution`] in its transaction), then moved on by
//! the CSAT worker (`crate::csat`): asked (`sent`), answered (`rated`, with the `rated`
//! conversation event in the same transaction), or let go (`cancelled`, `skipped`). Every move is
//! a conditional update from the state before, so a replay or a second press changes nothing.

use sqlx::Row;

use super::events::{self, EventKind, Stamp};
use super::{Store, StoreError};

/// One rating request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsatRequest {
    pub id: i64,
    pub conversation_id: i64,
    pub resolved_at: i64,
    pub team: Option<String>,
    /// The operator it rates: the owner when the conversation was resolved.
    pub owner: Option<String>,
    pub channel: String,
    pub contact_id: String,
    pub state: String,
    pub nonce: Option<String>,
    pub sent_at: Option<i64>,
    pub score: Option<i64>,
    pub comment: Option<String>,
    pub rated_at: Option<i64>,
    pub comment_until: Option<i64>,
    pub answer_key: Option<String>,
    pub comment_key: Option<String>,
    pub reason: Option<String>,
}

macro_rules! select_csat {
    ($rest:literal) => {
        concat!(
            "SELECT id, conversation_id, resolved_at, team, owner, channel, contact_id, state, nonce,
                    sent_at, score, comment, rated_at, comment_until, answer_key, comment_key, reason
             FROM csat_requests ",
            $rest
        )
    };
}

fn read(r: &sqlx::any::AnyRow) -> Result<CsatRequest, StoreError> {
    Ok(CsatRequest {
        id: r.try_get("id")?,
        conversation_id: r.try_get("conversation_id")?,
        resolved_at: r.try_get("resolved_at")?,
        team: r.try_get("team")?,
        owner: r.try_get("owner")?,
        channel: r.try_get("channel")?,
        contact_id: r.try_get("contact_id")?,
        state: r.try_get("state")?,
        nonce: r.try_get("nonce")?,
        sent_at: r.try_get("sent_at")?,
        score: r.try_get("score")?,
        comment: r.try_get("comment")?,
        rated_at: r.try_get("rated_at")?,
        comment_until: r.try_get("comment_until")?,
        answer_key: r.try_get("answer_key")?,
        comment_key: r.try_get("comment_key")?,
        reason: r.try_get("reason")?,
    })
}

/// A resolution was written: the request that may ask about it (inside the caller's
/// transaction, beside the `resolved` event).
pub async fn insert_for_resolution(
    conn: &mut sqlx::AnyConnection,
    conversation_id: i64,
    resolved_at: i64,
    team: Option<&str>,
    owner: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO csat_requests (id, conversation_id, resolved_at, team, owner, channel, contact_id, state)
         SELECT $1, $2, $3, $4, $5, channel, contact_id, 'due' FROM conversations WHERE id = $2",
    )
    .bind(super::new_id(&mut *conn).await?)
    .bind(conversation_id)
    .bind(resolved_at)
    .bind(team)
    .bind(owner)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Requests waiting for their delay, oldest first.
    pub async fn csat_due(&self) -> Result<Vec<CsatRequest>, StoreError> {
        let rows = sqlx::query(select_csat!("WHERE state = 'due' ORDER BY id"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(read).collect()
    }

    /// The conversation's latest request, if any.
    pub async fn csat_latest(
        &self,
        conversation_id: i64,
    ) -> Result<Option<CsatRequest>, StoreError> {
        let r = sqlx::query(select_csat!(
            "WHERE conversation_id = $1 ORDER BY id DESC LIMIT 1"
        ))
        .bind(conversation_id)
        .fetch_optional(self.pool())
        .await?;
        r.as_ref().map(read).transpose()
    }

    /// The request a button's nonce names.
    pub async fn csat_by_nonce(&self, nonce: &str) -> Result<Option<CsatRequest>, StoreError> {
        let r = sqlx::query(select_csat!("WHERE nonce = $1"))
            .bind(nonce)
            .fetch_optional(self.pool())
            .await?;
        r.as_ref().map(read).transpose()
    }

    /// Give a due request its nonce (once: a retry after a crash keeps the first one, so the
    /// buttons sent before the crash stay valid). Returns the nonce it has.
    pub async fn csat_nonce(&self, id: i64, fresh: &str) -> Result<String, StoreError> {
        sqlx::query("UPDATE csat_requests SET nonce = $1 WHERE id = $2 AND nonce IS NULL")
            .bind(fresh)
            .bind(id)
            .execute(self.pool())
            .await?;
        let r = sqlx::query("SELECT nonce FROM csat_requests WHERE id = $1")
            .bind(id)
            .fetch_one(self.pool())
            .await?;
        Ok(r.try_get::<Option<String>, _>("nonce")?
            .unwrap_or_else(|| fresh.to_string()))
    }

    /// A due request is let go (`cancelled` or `skipped`, with the reason). `false` when it was
    /// no longer due.
    pub async fn csat_close(&self, id: i64, state: &str, reason: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE csat_requests SET state = $1, reason = $2 WHERE id = $3 AND state IN ('due', 'sent')",
        )
        .bind(state)
        .bind(reason)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The question went out: `sent`, and the `rating_requested` conversation event in the same
    /// transaction. `false` when it was no longer due.
    pub async fn csat_sent(
        &self,
        request: &CsatRequest,
        stamp: &Stamp<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE csat_requests SET state = 'sent', sent_at = $1 WHERE id = $2 AND state = 'due'",
        )
        .bind(stamp.at)
        .bind(request.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        events::insert(
            &mut *tx,
            request.conversation_id,
            stamp,
            EventKind::RatingRequested,
            request.team.as_deref(),
            request.owner.as_deref(),
            Some(&request.id.to_string()),
            Some(&format!("rating_requested:{}", request.id)),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The customer answered a sent request: `rated`, and the `rated` conversation event (detail:
    /// the score; owner: the operator rated) in the same transaction. `false` (nothing written)
    /// when the request was not waiting for an answer: answered already, or never sent.
    pub async fn csat_rate(
        &self,
        request: &CsatRequest,
        score: u8,
        comment: Option<&str>,
        comment_until: i64,
        answer_key: &str,
        stamp: &Stamp<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE csat_requests SET state = 'rated', score = $1, comment = $2, rated_at = $3,
               comment_until = $4, answer_key = $5 WHERE id = $6 AND state = 'sent'",
        )
        .bind(i64::from(score))
        .bind(comment)
        .bind(stamp.at)
        .bind(comment_until)
        .bind(answer_key)
        .bind(request.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        events::insert(
            &mut *tx,
            request.conversation_id,
            stamp,
            EventKind::Rated,
            request.team.as_deref(),
            request.owner.as_deref(),
            Some(&score.to_string()),
            Some(&format!("rated:{}", request.id)),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The customer's message after a rating, within its comment window: the rating's comment
    /// (only when it has none yet). `false` when nothing was written.
    pub async fn csat_comment(
        &self,
        id: i64,
        comment: &str,
        key: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE csat_requests SET comment = $1, comment_key = $2, comment_until = NULL
             WHERE id = $3 AND state = 'rated' AND comment IS NULL AND comment_until > $4",
        )
        .bind(comment)
        .bind(key)
        .bind(id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The latest score the customer behind a contact (any of their linked contacts) gave
    /// `operator`, if they ever rated them.
    pub async fn csat_latest_score_for(
        &self,
        channel: &str,
        contact_id: &str,
        operator: &str,
    ) -> Result<Option<i64>, StoreError> {
        let r = sqlx::query(
            "SELECT r.score FROM csat_requests r
             LEFT JOIN contacts k ON k.channel = r.channel AND k.contact_id = r.contact_id
             WHERE r.state = 'rated' AND r.owner = $3
               AND ((r.channel = $1 AND r.contact_id = $2)
                    OR k.customer_id = (SELECT customer_id FROM contacts WHERE channel = $1 AND contact_id = $2))
             ORDER BY r.rated_at DESC, r.id DESC LIMIT 1",
        )
        .bind(channel)
        .bind(contact_id)
        .bind(operator)
        .fetch_optional(self.pool())
        .await?;
        Ok(r.map(|r| r.try_get::<Option<i64>, _>("score"))
            .transpose()?
            .flatten())
    }

    /// An operator's ratings since `since` (ms): how many, and their sum.
    pub async fn csat_operator_since(
        &self,
        operator: &str,
        since: i64,
    ) -> Result<(i64, i64), StoreError> {
        let r = sqlx::query(
            "SELECT COUNT(score) AS n, CAST(COALESCE(SUM(score), 0) AS BIGINT) AS total FROM csat_requests
             WHERE state = 'rated' AND owner = $1 AND rated_at >= $2",
        )
        .bind(operator)
        .bind(since)
        .fetch_one(self.pool())
        .await?;
        Ok((r.try_get("n")?, r.try_get("total")?))
    }

    /// Every rating given by the customer behind a contact (any of their linked contacts),
    /// newest first.
    pub async fn csat_of_customer(
        &self,
        channel: &str,
        contact_id: &str,
    ) -> Result<Vec<CsatRequest>, StoreError> {
        let rows = sqlx::query(select_csat!(
            "WHERE state = 'rated' AND ((channel = $1 AND contact_id = $2) OR (channel, contact_id) IN
               (SELECT channel, contact_id FROM contacts WHERE customer_id =
                  (SELECT customer_id FROM contacts WHERE channel = $1 AND contact_id = $2)))
             ORDER BY rated_at DESC, id DESC"
        ))
        .bind(channel)
        .bind(contact_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(read).collect()
    }
}
