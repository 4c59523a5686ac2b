//! `transcribe` and `ocr`, written in reply to a voice message or an image: run its media job
//! again ([`crate::media`]). The command only queues (the room's other events never wait for
//! an engine); the worker answers the operator who asked: the text as a reply to the file, or
//! why there is none. A file whose job is done answers from the store at once (the engine never
//! runs twice for one file); a file that has no job yet (sent before jobs existed, or by an
//! operator) gets one.

use super::Context;
use crate::matrix::MatrixError;
use crate::store::media_jobs::{JobKind, NewJob, Requested};

pub async fn run(ctx: &Context<'_>, kind: JobKind) -> Result<(), MatrixError> {
    let (file, command, doing) = match kind {
        JobKind::Transcribe => ("voice message", "transcribe", "Transcribing"),
        JobKind::Ocr => ("image", "ocr", "Reading"),
    };
    let Some(conversation) = ctx.conversation else {
        return ctx
            .reply(&format!(
                "`{command}` works in a conversation room, in reply to a {file}."
            ))
            .await;
    };
    let Some(target) = ctx.reply_to else {
        return ctx
            .reply(&format!(
                "Reply `!sb {command}` to the {file} you want as text."
            ))
            .await;
    };
    let store = &ctx.bridge.store;
    let job = match store.media_job_for(target, kind).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            match queue_for_event(ctx, conversation, target, kind).await? {
                Ok(()) => {}
                Err(why) => return ctx.reply(&why).await,
            }
            match store.media_job_for(target, kind).await {
                Ok(Some(job)) => job,
                Ok(None) => return ctx.reply("Not queued: the job vanished.").await,
                Err(e) => return ctx.reply(&format!("Not queued: {e}")).await,
            }
        }
        Err(e) => return ctx.reply(&format!("Cannot read the job: {e}")).await,
    };
    if let Some(why) = crate::media::missing(&ctx.bridge.config.media, kind) {
        return ctx
            .reply(&format!(
                "Not done: {why}. The {file} is kept and its job waits until an engine is configured."
            ))
            .await;
    }
    match store
        .media_job_request(job.id, ctx.sender, ctx.event_id)
        .await
    {
        Ok(Requested::Queued) => {
            ctx.bridge.wake_media.notify_one();
            let before = job
                .last_error
                .map(|e| format!(" (the last try said: {e})"))
                .unwrap_or_default();
            ctx.reply(&format!(
                "{doing} the {file}; the text will reply to it{before}."
            ))
            .await
        }
        Ok(Requested::Running) => {
            ctx.reply(&format!(
                "The {file} is being worked on right now; the text will reply to it."
            ))
            .await
        }
        Ok(Requested::Done { text, .. }) if text.trim().is_empty() => {
            ctx.reply(&format!(
                "This {file} was checked already: no text was found in it."
            ))
            .await
        }
        Ok(Requested::Done { text, .. }) => {
            ctx.reply(&format!(
                "This {file} was done already (each file is worked once): {text}"
            ))
            .await
        }
        Err(e) => ctx.reply(&format!("Not queued: {e}")).await,
    }
}

/// A job for the file event `target` of this room, made from the event itself. `Err` holds
/// the answer when it is not a file of the kind.
async fn queue_for_event(
    ctx: &Context<'_>,
    conversation: &crate::store::conversations::Conversation,
    target: &str,
    kind: JobKind,
) -> Result<Result<(), String>, MatrixError> {
    let what = match kind {
        JobKind::Transcribe => "a voice message",
        JobKind::Ocr => "an image",
    };
    let Some(event) = ctx.bridge.homeserver.event(ctx.room_id, target).await? else {
        return Ok(Err("The message replied to is not in this room.".into()));
    };
    let content = event.get("content").cloned().unwrap_or_default();
    let text = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let url = text(content.get("url"));
    let mime = text(content.pointer("/info/mimetype"));
    let name = match text(content.get("filename")) {
        n if n.is_empty() => text(content.get("body")),
        n => n,
    };
    if !url.starts_with("mxc://") || crate::media::kind_of(&mime, &name) != Some(kind) {
        return Ok(Err(format!(
            "The message replied to is not {what} (an unencrypted file is needed)."
        )));
    }
    let sender = text(event.get("sender"));
    let from_customer = ctx.bridge.namespace.is_ours(&sender) && sender != ctx.bridge.namespace.bot;
    let job = NewJob {
        kind,
        conversation_id: conversation.id,
        room_id: ctx.room_id.to_string(),
        event_id: target.to_string(),
        remote: None,
        media: url,
        mime,
        name,
        size: content
            .pointer("/info/size")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        sender: if from_customer {
            conversation.contact_id.clone()
        } else {
            sender
        },
        from_customer,
        ts: event
            .get("origin_server_ts")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or_else(crate::store::now_ms),
    };
    match ctx.bridge.store.media_job_enqueue(&job).await {
        Ok(_) => Ok(Ok(())),
        Err(e) => Ok(Err(format!("Not queued: {e}"))),
    }
}
