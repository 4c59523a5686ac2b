//! Media jobs in the store (`media_jobs`): voice notes to transcribe and images to read, worked
//! by [`crate::media`] like the outbox. A job is queued once per file and kind (its Matrix
//! event); it is claimed for a lease before its engine runs, and every step after the run (the
//! text found, the answer posted, the search row) is its own short write, so no database
//! transaction is ever held while an engine works.

use sqlx::Row;

use super::search::{insert_doc, Kind, Media, NewDoc};
use super::{now_ms, Store, StoreError};

/// What a job does with its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Speech to text (the transcription service).
    Transcribe,
    /// Text in an image (Tesseract).
    Ocr,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Transcribe => "transcribe",
            JobKind::Ocr => "ocr",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        match s {
            "transcribe" => Some(JobKind::Transcribe),
            "ocr" => Some(JobKind::Ocr),
            _ => None,
        }
    }

    /// The kind of file, for search (`has:voice`, `has:image`).
    pub fn media(self) -> Media {
        match self {
            JobKind::Transcribe => Media::Voice,
            JobKind::Ocr => Media::Image,
        }
    }
}

/// A file to queue a job for.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub kind: JobKind,
    pub conversation_id: i64,
    pub room_id: String,
    pub event_id: String,
    /// The customer's message and which of its events (for the search row), when inbound.
    pub remote: Option<(String, i64)>,
    pub media: String,
    pub mime: String,
    pub name: String,
    pub size: u64,
    /// A contact id (the customer's file) or an operator's user id.
    pub sender: String,
    pub from_customer: bool,
    pub ts: i64,
}

/// A job as the worker sees it.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub conversation_id: i64,
    pub room_id: String,
    pub event_id: String,
    pub remote: Option<(String, i64)>,
    pub media: String,
    pub mime: String,
    pub name: String,
    pub size: u64,
    pub sender: String,
    pub from_customer: bool,
    pub ts: i64,
    pub state: String,
    /// Runs claimed in this round, this one included.
    pub attempts: i64,
    pub round: i64,
    pub requested_by: Option<String>,
    pub request_event: Option<String>,
    pub last_error: Option<String>,
    pub result: Option<String>,
    pub answer_event: Option<String>,
}

/// How far the store is with one job (for `!sb transcribe` / `!sb ocr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requested {
    /// Queued again (a new round); the worker answers.
    Queued,
    /// Already working on it (claimed in this round).
    Running,
    /// Done before: its text (empty when none was found) and the answer event, if posted.
    Done {
        text: String,
        answer: Option<String>,
    },
}

/// The part number of a job's search row beside the message's own rows (one row per event:
/// these never meet the message's text or file-name rows, and a deletion of the message,
/// which removes its rows by remote id, removes this one too).
pub const SEARCH_PART_BASE: i64 = 1000;

const COLUMNS: &str = "id, kind, conversation_id, room_id, event_id, remote_id, part, media, mime, name, size, sender, from_customer, ts, state, attempts, round, requested_by, request_event, last_error, result, answer_event";

fn job_of(r: &sqlx::any::AnyRow) -> Result<Job, StoreError> {
    let kind: String = r.try_get("kind")?;
    let remote_id: Option<String> = r.try_get("remote_id")?;
    let part: i64 = r.try_get("part")?;
    Ok(Job {
        id: r.try_get("id")?,
        kind: JobKind::parse(&kind)
            .ok_or_else(|| StoreError::Decode(format!("media job kind {kind}").into()))?,
        conversation_id: r.try_get("conversation_id")?,
        room_id: r.try_get("room_id")?,
        event_id: r.try_get("event_id")?,
        remote: remote_id.map(|id| (id, part)),
        media: r.try_get("media")?,
        mime: r.try_get("mime")?,
        name: r.try_get("name")?,
        size: r.try_get::<i64, _>("size")?.max(0) as u64,
        sender: r.try_get("sender")?,
        from_customer: r.try_get::<i64, _>("from_customer")? != 0,
        ts: r.try_get("ts")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        round: r.try_get("round")?,
        requested_by: r.try_get("requested_by")?,
        request_event: r.try_get("request_event")?,
        last_error: r.try_get("last_error")?,
        result: r.try_get("result")?,
        answer_event: r.try_get("answer_event")?,
    })
}

impl Store {
    /// Queue a job for a file, due now; nothing when one is queued for it already. Returns
    /// whether a job was added.
    pub async fn media_job_enqueue(&self, job: &NewJob) -> Result<bool, StoreError> {
        let now = now_ms();
        let (remote_id, part) = match &job.remote {
            Some((r, p)) => (Some(r.as_str()), *p),
            None => (None, 0),
        };
        let done = sqlx::query(
            "INSERT INTO media_jobs (id, kind, conversation_id, room_id, event_id, remote_id, part,
               media, mime, name, size, sender, from_customer, ts, state, attempts,
               next_attempt_at, round, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'pending', 0,
               $15, 0, $15, $15)
             ON CONFLICT DO NOTHING",
        )
        .bind(self.new_id().await?)
        .bind(job.kind.as_str())
        .bind(job.conversation_id)
        .bind(&job.room_id)
        .bind(&job.event_id)
        .bind(remote_id)
        .bind(part)
        .bind(&job.media)
        .bind(&job.mime)
        .bind(&job.name)
        .bind(job.size.min(i64::MAX as u64) as i64)
        .bind(&job.sender)
        .bind(i64::from(job.from_customer))
        .bind(job.ts)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Jobs of these kinds that are due now (pending and due, or claimed by a run whose lease
    /// ran out), oldest first.
    pub async fn media_jobs_due(
        &self,
        kinds: &[JobKind],
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let list = kinds
            .iter()
            .map(|k| format!("'{}'", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        // The list holds only this module's own constant kind names.
        let sql = format!(
            "SELECT id FROM media_jobs
             WHERE kind IN ({list})
               AND ((state = 'pending' AND next_attempt_at <= $1)
                    OR (state = 'running' AND lease_until < $1))
             ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now_ms())
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| r.try_get("id")).collect()
    }

    /// Claim a due job for `lease_ms`: `None` when it is not due (any more), e.g. another
    /// worker has it. Counts the attempt.
    pub async fn media_job_claim(&self, id: i64, lease_ms: i64) -> Result<Option<Job>, StoreError> {
        let now = now_ms();
        let claimed = sqlx::query(
            "UPDATE media_jobs SET state = 'running', lease_until = $1, attempts = attempts + 1,
               updated_at = $2
             WHERE id = $3 AND ((state = 'pending' AND next_attempt_at <= $2)
                                OR (state = 'running' AND lease_until < $2))",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(None);
        }
        self.media_job(id).await
    }

    pub async fn media_job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM media_jobs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(job_of).transpose()
    }

    /// The job of a file (its Matrix event) and kind.
    pub async fn media_job_for(
        &self,
        event_id: &str,
        kind: JobKind,
    ) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM media_jobs WHERE event_id = $1 AND kind = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(event_id)
            .bind(kind.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(job_of).transpose()
    }

    /// Keep the engine's text (before it is posted, so a crash in between never runs the
    /// engine again for this file).
    pub async fn media_job_result(&self, id: i64, text: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE media_jobs SET result = $1, updated_at = $2 WHERE id = $3")
            .bind(text)
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Done: the answer the bot posted (if any) and, when there is text, its search row, in
    /// one transaction.
    pub async fn media_job_done(
        &self,
        job: &Job,
        text: &str,
        answer_event: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE media_jobs SET state = 'done', result = $1, answer_event = $2,
               lease_until = NULL, last_error = NULL, updated_at = $3
             WHERE id = $4",
        )
        .bind(text)
        .bind(answer_event)
        .bind(now_ms())
        .bind(job.id)
        .execute(&mut *tx)
        .await?;
        if let (Some(answer), false) = (answer_event, text.trim().is_empty()) {
            let doc = NewDoc {
                conversation_id: job.conversation_id,
                remote: job
                    .remote
                    .as_ref()
                    .map(|(r, p)| (r.clone(), SEARCH_PART_BASE + p)),
                event_id: Some(answer.to_string()),
                kind: if job.from_customer {
                    Kind::Customer
                } else {
                    Kind::Operator
                },
                sender: job.sender.clone(),
                media: Some(job.kind.media()),
                ts: job.ts,
                body: text.to_string(),
            };
            insert_doc(&mut tx, &doc).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Try again at `at` (ms), with the reason it failed this time.
    pub async fn media_job_retry(&self, id: i64, error: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE media_jobs SET state = 'pending', next_attempt_at = $1, last_error = $2,
               lease_until = NULL, updated_at = $3
             WHERE id = $4",
        )
        .bind(at)
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Given up (bad input, or too many failures): the reason stays for `!sb` and the admin.
    pub async fn media_job_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE media_jobs SET state = 'failed', last_error = $1, lease_until = NULL,
               updated_at = $2
             WHERE id = $3",
        )
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// An operator asks for a job again (`!sb transcribe`, `!sb ocr`): a job done before keeps
    /// its text (the engine never runs twice for one file); one in progress is left alone;
    /// any other (waiting, failed) is due now in a new round whose answer goes to `request_event`.
    pub async fn media_job_request(
        &self,
        id: i64,
        requested_by: &str,
        request_event: &str,
    ) -> Result<Requested, StoreError> {
        let now = now_ms();
        let queued = sqlx::query(
            "UPDATE media_jobs SET state = 'pending', next_attempt_at = $1, attempts = 0,
               round = round + 1, requested_by = $2, request_event = $3, lease_until = NULL,
               updated_at = $1
             WHERE id = $4 AND (state = 'failed' OR (state = 'pending'
               AND (request_event IS NULL OR request_event <> $3)))",
        )
        .bind(now)
        .bind(requested_by)
        .bind(request_event)
        .bind(id)
        .execute(self.pool())
        .await?;
        if queued.rows_affected() == 1 {
            return Ok(Requested::Queued);
        }
        match self.media_job(id).await? {
            Some(job) if job.state == "done" => Ok(Requested::Done {
                text: job.result.unwrap_or_default(),
                answer: job.answer_event,
            }),
            Some(job) if job.state == "running" => Ok(Requested::Running),
            // The same request again (a replayed command event): already queued.
            Some(_) => Ok(Requested::Queued),
            None => Err(StoreError::RowNotFound),
        }
    }

    /// At the worker's start: runs a crash interrupted are due again at once (their lease
    /// would free them later anyway; only one instance runs the worker).
    pub async fn media_jobs_resume(&self) -> Result<u64, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE media_jobs SET state = 'pending', next_attempt_at = $1, lease_until = NULL,
               updated_at = $1
             WHERE state = 'running'",
        )
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// How many jobs are in each state (for the admin and the metrics).
    pub async fn media_job_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, state, COUNT(*) AS n FROM media_jobs GROUP BY kind, state ORDER BY kind, state",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("state")?, r.try_get("n")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_job(event: &str) -> NewJob {
        NewJob {
            kind: JobKind::Ocr,
            conversation_id: 7,
            room_id: "!r".into(),
            event_id: event.into(),
            remote: Some(("m1".into(), 1)),
            media: "mxc://hs/a".into(),
            mime: "image/png".into(),
            name: "a.png".into(),
            size: 10,
            sender: "cust".into(),
            from_customer: true,
            ts: 1,
        }
    }

    /// Queued once per file; claimed by one worker at a time; a result kept before a crash is
    /// still there after it; a request on a done job answers from the store.
    #[tokio::test]
    async fn a_job_is_queued_once_claimed_once_and_keeps_its_result() {
        let (_dir, _, store) = crate::store::temp_store(2).await;
        assert!(store.media_job_enqueue(&new_job("$e1")).await.unwrap());
        assert!(!store.media_job_enqueue(&new_job("$e1")).await.unwrap());
        let due = store.media_jobs_due(&[JobKind::Ocr], 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert!(store
            .media_jobs_due(&[JobKind::Transcribe], 10)
            .await
            .unwrap()
            .is_empty());
        let job = store
            .media_job_claim(due[0], 60_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.attempts, 1);
        assert!(store
            .media_job_claim(due[0], 60_000)
            .await
            .unwrap()
            .is_none());
        store.media_job_result(job.id, "текст").await.unwrap();
        // A restart: the interrupted run is due again, with its result.
        assert_eq!(store.media_jobs_resume().await.unwrap(), 1);
        let again = store
            .media_job_claim(job.id, 60_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.result.as_deref(), Some("текст"));
        store
            .media_job_done(&again, "текст", Some("$answer"))
            .await
            .unwrap();
        assert_eq!(
            store
                .media_job_request(job.id, "@op:hs", "$cmd")
                .await
                .unwrap(),
            Requested::Done {
                text: "текст".into(),
                answer: Some("$answer".into())
            }
        );
        assert!(store
            .media_jobs_due(&[JobKind::Ocr], 10)
            .await
            .unwrap()
            .is_empty());
    }
}
