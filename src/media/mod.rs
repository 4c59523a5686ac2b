//! Voice messages and images → text, as durable jobs beside relay, never in its way.
//!
//! A customer's file is relayed first; once its event is in the room, a job is queued for it
//! ([`enqueue_inbound`]: audio → transcription, images → OCR; decided by the attachment's type
//! from the channel contract, whatever the channel). The worker ([`run`], one call at start-up)
//! works due jobs a few at a time through the same scheduler as the relay queues
//! ([`crate::relay::queue`]): claim (a lease), fetch the file from the homeserver, run the
//! engine ([`transcribe`]: the OpenAI-compatible HTTP API; [`ocr`]: a Tesseract process with
//! time and memory limits), keep the text, post it as the bot's reply to the file, and index it
//! for search, each a short write of its own. Nothing here holds a database transaction or a
//! relay task while an engine works, and the engines run out of process, so relay's latency
//! does not depend on them (`bench/media.rs`); a job's own use of the homeserver (fetching the
//! file, posting the text) waits while relay works, up to [`RELAY_FIRST_AT_MOST`]
//! ([`crate::relay::activity`]).
//!
//! Failures: an engine that is down or not configured leaves the job waiting (retried with
//! backoff, up to `media.max_attempts`); a file the engine cannot read (corrupt audio, a
//! decompression bomb, a run past its time limit) fails at once with a note replying to the
//! file. `!sb transcribe` / `!sb ocr` ([`crate::commands`]) queue a job again and the worker
//! tells the operator who asked how it went. A job done once keeps its text: asking again
//! answers from the store, the engine never runs twice for one file.

pub mod ocr;
pub mod process;
pub mod transcribe;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use switchboard_channel::Content;
use tracing::Instrument;

use crate::bridge::Bridge;
use crate::matrix::{content, MatrixError};
use crate::relay::queue;
use crate::store::media_jobs::{Job, JobKind, NewJob};
use crate::store::{now_ms, StoreError};

/// Why an engine gave no text.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The file cannot be read (corrupt, too large, a bomb, too slow): not retried.
    #[error("{0}")]
    BadInput(String),
    /// The engine is down or refused for a reason of its own: retried with backoff.
    #[error("{reason}")]
    Unavailable {
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// Which job a file gets, from its type (or, for files sent as `application/octet-stream`,
/// its name): audio is transcribed, images are read. Vector images have no pixels to read.
pub fn kind_of(mime: &str, name: &str) -> Option<JobKind> {
    let mime = mime.to_ascii_lowercase();
    if mime.starts_with("audio/") {
        return Some(JobKind::Transcribe);
    }
    if mime.starts_with("image/") {
        return (!mime.starts_with("image/svg")).then_some(JobKind::Ocr);
    }
    if mime == "application/octet-stream" || mime.is_empty() {
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        return match ext.as_deref() {
            Some("ogg" | "oga" | "opus" | "mp3" | "m4a" | "wav" | "flac" | "aac" | "amr") => {
                Some(JobKind::Transcribe)
            }
            Some("png" | "jpg" | "jpeg" | "webp" | "tif" | "tiff" | "bmp" | "gif") => {
                Some(JobKind::Ocr)
            }
            _ => None,
        };
    }
    None
}

/// The engines this bridge has: which kinds of job it can work.
pub struct Engines {
    pub transcriber: Option<transcribe::Transcriber>,
    pub ocr: Option<crate::config::OcrConfig>,
}

impl Engines {
    pub fn from_config(config: &crate::config::MediaConfig) -> Engines {
        Engines {
            transcriber: transcribe::Transcriber::new(&config.transcription),
            ocr: config.ocr.enabled.then(|| config.ocr.clone()),
        }
    }

    pub fn kinds(&self) -> Vec<JobKind> {
        let mut kinds = Vec::new();
        if self.transcriber.is_some() {
            kinds.push(JobKind::Transcribe);
        }
        if self.ocr.is_some() {
            kinds.push(JobKind::Ocr);
        }
        kinds
    }
}

/// Why a kind of job cannot run on this bridge, if it cannot (no engine configured).
pub fn missing(config: &crate::config::MediaConfig, kind: JobKind) -> Option<&'static str> {
    match kind {
        JobKind::Transcribe if config.transcription.url.is_none() => Some(
            "transcription is not configured on this bridge (media.transcription.url is not set)",
        ),
        JobKind::Ocr if !config.ocr.enabled => {
            Some("reading images (OCR) is off on this bridge (media.ocr.enabled is false)")
        }
        _ => None,
    }
}

/// Queue jobs for the files of a customer's message whose events are in the room now
/// (`events`: the message's Matrix events in order, as [`content::to_matrix`] made them).
/// Idempotent: a replay of the message queues nothing new.
pub async fn enqueue_inbound(
    bridge: &Bridge,
    conversation_id: i64,
    room_id: &str,
    remote_id: &str,
    message: &Content,
    events: &[String],
    sender: &str,
    ts: i64,
) -> Result<(), StoreError> {
    // As to_matrix numbers them: the text first (when any), then one event per file.
    let first_file = usize::from(!message.text.is_empty() || message.attachments.is_empty());
    let mut queued = false;
    for (i, a) in message.attachments.iter().enumerate() {
        let Some(kind) = kind_of(&a.mime, &a.name) else {
            continue;
        };
        let part = first_file + i;
        let Some(event_id) = events.get(part) else {
            continue;
        };
        let job = NewJob {
            kind,
            conversation_id,
            room_id: room_id.to_string(),
            event_id: event_id.clone(),
            remote: Some((remote_id.to_string(), part as i64)),
            media: a.media.0.clone(),
            mime: a.mime.clone(),
            name: a.name.clone(),
            size: a.size,
            sender: sender.to_string(),
            from_customer: true,
            ts,
        };
        queued |= bridge.store.media_job_enqueue(&job).await?;
    }
    if queued {
        bridge.wake_media.notify_one();
    }
    Ok(())
}

/// The media job worker: runs until the process stops. The one call the start-up makes.
pub async fn run(bridge: Arc<Bridge>) {
    match bridge.store.media_jobs_resume().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            jobs = n,
            "media jobs interrupted by a restart are due again"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot resume interrupted media jobs"),
    }
    let engines = Arc::new(Engines::from_config(&bridge.config.media));
    let kinds = engines.kinds();
    if kinds.is_empty() {
        tracing::info!(
            "media jobs: no engine configured (media.transcription, media.ocr); jobs wait"
        );
        return;
    }
    let b = bridge.clone();
    let ready = move || {
        let b = b.clone();
        let kinds = kinds.clone();
        async move { b.store.media_jobs_due(&kinds, 50).await }
    };
    let b = bridge.clone();
    let drain = move |id: i64| {
        let (b, engines) = (b.clone(), engines.clone());
        async move { work(&b, &engines, id).await }
    };
    queue::run(
        "media",
        &bridge.wake_media,
        ready,
        drain,
        bridge.config.media.concurrency,
    )
    .await;
}

/// The longest a job waits for relay to pause before it uses the homeserver anyway.
const RELAY_FIRST_AT_MOST: Duration = Duration::from_secs(10);

/// Before a job downloads from or posts to the homeserver: let customers' and operators'
/// messages that are being relayed go first ([`crate::relay::activity`]).
async fn let_relay_go_first(bridge: &Bridge) {
    if !bridge.relay_activity.idle(RELAY_FIRST_AT_MOST).await {
        tracing::debug!("relay kept working; the media job goes on beside it");
    }
}

/// How long a claimed job is left to its run before another worker may take it.
fn lease(bridge: &Bridge, kind: JobKind) -> Duration {
    let engine = match kind {
        JobKind::Transcribe => bridge.config.media.transcription.timeout,
        JobKind::Ocr => bridge.config.media.ocr.timeout,
    };
    // Fetching the file and posting the answer take their own time beside the engine's.
    engine * 2 + Duration::from_secs(120)
}

/// One job, claimed and worked to its next state.
async fn work(bridge: &Bridge, engines: &Engines, id: i64) {
    // The kind is known only once claimed: the longer lease of the two.
    let lease = lease(bridge, JobKind::Transcribe).max(lease(bridge, JobKind::Ocr));
    let job = match bridge
        .store
        .media_job_claim(id, lease.as_millis() as i64)
        .await
    {
        Ok(Some(job)) => job,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(job = id, error = %e, "cannot claim a media job");
            return;
        }
    };
    let span = tracing::info_span!(
        "media",
        job = job.id,
        kind = job.kind.as_str(),
        conversation_id = job.conversation_id,
        event_id = %job.event_id
    );
    attempt(bridge, engines, &job).instrument(span).await;
}

async fn attempt(bridge: &Bridge, engines: &Engines, job: &Job) {
    // A text found before a crash is posted without running the engine again.
    let outcome = match &job.result {
        Some(text) => Ok(text.clone()),
        None => {
            let started = std::time::Instant::now();
            let r = run_engine(bridge, engines, job).await;
            tracing::info!(elapsed = ?started.elapsed(), ok = r.is_ok(), "engine ran");
            if let Ok(text) = &r {
                if let Err(e) = bridge.store.media_job_result(job.id, text).await {
                    tracing::warn!(error = %e, "cannot keep the text found yet; posting it anyway");
                }
            }
            r
        }
    };
    let result = match outcome {
        Ok(text) => finish(bridge, job, &text).await,
        Err(EngineError::BadInput(reason)) => give_up(bridge, job, &reason).await,
        Err(EngineError::Unavailable {
            reason,
            retry_after,
        }) => {
            let max = bridge.config.media.max_attempts as i64;
            if job.attempts >= max {
                let reason = format!("{reason} (gave up after {} attempts)", job.attempts);
                give_up(bridge, job, &reason).await
            } else {
                retry(bridge, job, &reason, retry_after).await
            }
        }
    };
    if let Err(e) = result {
        // The answer could not be posted or stored: the job comes back after a pause, with
        // its text kept.
        tracing::warn!(error = %e, "media job not finished; will retry");
        let delay = queue::backoff(
            job.attempts.clamp(0, 20) as u32,
            bridge.config.media.retry_base,
            bridge.config.media.retry_max,
            None,
        );
        if let Err(e) = bridge
            .store
            .media_job_retry(job.id, &e.to_string(), now_ms() + delay.as_millis() as i64)
            .await
        {
            tracing::error!(error = %e, "cannot reschedule a media job");
        }
    }
}

/// Fetch the file and run the job's engine on it.
async fn run_engine(bridge: &Bridge, engines: &Engines, job: &Job) -> Result<String, EngineError> {
    let max = bridge.config.media.max_file_bytes;
    if job.size > max {
        return Err(EngineError::BadInput(too_large(job.size, max)));
    }
    let (data, served_mime) = fetch(bridge, &job.media, max).await?;
    let mime = if job.mime.is_empty() || job.mime == "application/octet-stream" {
        served_mime
    } else {
        job.mime.clone()
    };
    match job.kind {
        JobKind::Transcribe => match &engines.transcriber {
            Some(t) => t.transcribe(data, &job.name, &mime).await,
            None => Err(unconfigured(bridge, job.kind)),
        },
        JobKind::Ocr => match &engines.ocr {
            Some(config) => ocr::read(config, data).await,
            None => Err(unconfigured(bridge, job.kind)),
        },
    }
}

fn unconfigured(bridge: &Bridge, kind: JobKind) -> EngineError {
    EngineError::Unavailable {
        reason: missing(&bridge.config.media, kind)
            .unwrap_or("not configured")
            .to_string(),
        retry_after: None,
    }
}

fn too_large(size: u64, max: u64) -> String {
    format!(
        "the file is {:.1} MB, over the {:.1} MB this bridge fetches for it (media.max_file_bytes)",
        size as f64 / 1_048_576.0,
        max as f64 / 1_048_576.0
    )
}

async fn fetch(bridge: &Bridge, mxc: &str, max: u64) -> Result<(Bytes, String), EngineError> {
    let_relay_go_first(bridge).await;
    match bridge.homeserver.download(mxc, max).await {
        Ok((data, _)) if data.len() as u64 > max => {
            Err(EngineError::BadInput(too_large(data.len() as u64, max)))
        }
        Ok(found) => Ok(found),
        Err(MatrixError::Protocol(p)) if p.starts_with("file larger") => {
            Err(EngineError::BadInput(too_large(max + 1, max)))
        }
        Err(e) if e.is_retryable() => Err(EngineError::Unavailable {
            reason: format!("cannot fetch the file from the homeserver: {e}"),
            retry_after: e.retry_after(),
        }),
        Err(e) => Err(EngineError::BadInput(format!(
            "the homeserver does not give the file: {e}"
        ))),
    }
}

/// What the bot calls a job's file and its outcome.
fn words(kind: JobKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        JobKind::Transcribe => ("voice message", "transcribed", "transcribe"),
        JobKind::Ocr => ("image", "read", "ocr"),
    }
}

/// The text found: posted as the bot's reply to the file (nothing for an image without text,
/// unless an operator asked), then the job is done and the text indexed.
async fn finish(bridge: &Bridge, job: &Job, text: &str) -> Result<(), JobError> {
    let_relay_go_first(bridge).await;
    let txn = |what: &str| format!("sb-media-{}-{}-{what}", job.id, job.round);
    let answer = if !text.trim().is_empty() {
        let body = match job.kind {
            JobKind::Transcribe => format!("🎙️ Transcript: {text}"),
            JobKind::Ocr => format!("🖼️ Text in the image:\n{text}"),
        };
        let mut notice = content::with_reply(content::notice(&body), &job.event_id);
        if let Some(obj) = notice.as_object_mut() {
            obj.insert(
                "org.switchboard.media".into(),
                json!({"kind": job.kind.as_str(), "text": text}),
            );
        }
        Some(
            bridge
                .homeserver
                .send(
                    &job.room_id,
                    "m.room.message",
                    &txn("text"),
                    &notice,
                    None,
                    None,
                )
                .await?,
        )
    } else {
        if let (Some(who), Some(command)) = (&job.requested_by, &job.request_event) {
            let (file, _, _) = words(job.kind);
            let what = match job.kind {
                JobKind::Transcribe => "no speech was recognised in it",
                JobKind::Ocr => "no text was found in it",
            };
            let note = content::with_reply(
                content::notice(&format!("{who}: the {file} was checked: {what}.")),
                command,
            );
            bridge
                .homeserver
                .send(
                    &job.room_id,
                    "m.room.message",
                    &txn("empty"),
                    &note,
                    None,
                    None,
                )
                .await?;
        }
        None
    };
    bridge
        .store
        .media_job_done(job, text, answer.as_deref())
        .await?;
    tracing::info!(chars = text.chars().count(), "media job done");
    Ok(())
}

/// Not retried: a note saying why, replying to the file (or, when an operator asked, to their
/// command, naming them), then the job is failed.
async fn give_up(bridge: &Bridge, job: &Job, reason: &str) -> Result<(), JobError> {
    let (file, done, command) = words(job.kind);
    tracing::warn!(%reason, "media job failed");
    let (text, reply_to) = match (&job.requested_by, &job.request_event) {
        (Some(who), Some(cmd)) => (
            format!("{who}: ⚠️ The {file} was not {done}: {reason}."),
            cmd.as_str(),
        ),
        _ => (
            format!("⚠️ This {file} was not {done}: {reason}. Reply `!sb {command}` to it to try again."),
            job.event_id.as_str(),
        ),
    };
    let note = content::with_reply(content::notice(&text), reply_to);
    bridge
        .homeserver
        .send(
            &job.room_id,
            "m.room.message",
            &format!("sb-media-{}-{}-failed", job.id, job.round),
            &note,
            None,
            None,
        )
        .await?;
    bridge.store.media_job_failed(job.id, reason).await?;
    Ok(())
}

/// The engine is unavailable: try again later. An operator who asked hears of the first
/// failure of their round at once (later ones stay quiet until it is given up).
async fn retry(
    bridge: &Bridge,
    job: &Job,
    reason: &str,
    hint: Option<Duration>,
) -> Result<(), JobError> {
    let media = &bridge.config.media;
    let delay = queue::backoff(
        (job.attempts - 1).clamp(0, 20) as u32,
        media.retry_base,
        media.retry_max,
        hint,
    );
    tracing::warn!(%reason, retry_in = ?delay, attempts = job.attempts, "media engine unavailable; will retry");
    bridge
        .store
        .media_job_retry(job.id, reason, now_ms() + delay.as_millis() as i64)
        .await?;
    if let (Some(who), Some(cmd), 1) = (&job.requested_by, &job.request_event, job.attempts) {
        let (file, done, _) = words(job.kind);
        let text = format!(
            "{who}: the {file} is not {done} yet: {reason}. It is tried again in {} (up to {} times).",
            humantime::format_duration(Duration::from_secs(delay.as_secs().max(1))),
            media.max_attempts
        );
        let note = content::with_reply(content::notice(&text), cmd);
        bridge
            .homeserver
            .send(
                &job.room_id,
                "m.room.message",
                &format!("sb-media-{}-{}-waiting", job.id, job.round),
                &note,
                None,
                None,
            )
            .await?;
    }
    Ok(())
}

/// Posting or storing a job's outcome failed (the job itself is retried).
#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Matrix(#[from] MatrixError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_get_the_job_their_type_needs() {
        assert_eq!(kind_of("audio/ogg", "voice.oga"), Some(JobKind::Transcribe));
        assert_eq!(
            kind_of("audio/ogg; codecs=opus", "x"),
            Some(JobKind::Transcribe)
        );
        assert_eq!(kind_of("audio/mpeg", "a.mp3"), Some(JobKind::Transcribe));
        assert_eq!(kind_of("image/jpeg", "p.jpg"), Some(JobKind::Ocr));
        assert_eq!(kind_of("image/svg+xml", "logo.svg"), None);
        assert_eq!(
            kind_of("application/octet-stream", "Note.M4A"),
            Some(JobKind::Transcribe)
        );
        assert_eq!(
            kind_of("application/octet-stream", "scan.png"),
            Some(JobKind::Ocr)
        );
        assert_eq!(kind_of("application/pdf", "a.pdf"), None);
        assert_eq!(kind_of("video/mp4", "v.mp4"), None);
    }
}
