//! `export`: the conversation's transcript as the official record — an HTML file attached in the
//! room and sent to the customer on their channel (by email, as an attachment, for email).

use bytes::Bytes;
use serde_json::Value;
use switchboard_channel::{
    Attachment, Content, ConversationKey, MediaRef, Outbound, OutboundAction,
};

use super::Context;
use crate::matrix::content::escape_html;
use crate::matrix::MatrixError;

/// One line of the record.
struct Entry {
    time_ms: i64,
    sender: String,
    text: String,
}

pub async fn run(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some((conversation, _)) = ctx.portal().await? else {
        return Ok(());
    };
    let contact = ctx
        .bridge
        .store
        .contact(&conversation.channel, &conversation.contact_id)
        .await
        .ok()
        .flatten();
    let customer = contact
        .as_ref()
        .map(crate::portal::customer_name)
        .unwrap_or_else(|| conversation.contact_id.clone());
    let ghost = contact
        .as_ref()
        .map(|c| c.ghost_user_id.clone())
        .unwrap_or_default();

    // Read the whole room, oldest first.
    let mut entries = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..100 {
        let (events, end) = ctx
            .bridge
            .homeserver
            .messages(ctx.room_id, from.as_deref(), 200)
            .await?;
        if events.is_empty() {
            break;
        }
        for e in &events {
            if let Some(entry) = entry(ctx, e, &ghost, &customer) {
                entries.push(entry);
            }
        }
        match end {
            Some(t) if Some(&t) != from.as_ref() => from = Some(t),
            _ => break,
        }
    }
    let title = format!("Conversation with {customer} ({})", conversation.channel);
    let html = render(&title, &entries);
    let name = format!(
        "transcript-{}.html",
        ctx.bridge.clock.now().format("%Y-%m-%d")
    );
    let size = html.len() as u64;
    let mxc = ctx
        .bridge
        .homeserver
        .upload(Bytes::from(html), "text/html", &name)
        .await?;
    let attachment = Attachment {
        media: MediaRef(mxc),
        name,
        mime: "text/html".into(),
        size,
    };
    let file_events = crate::matrix::content::to_matrix(&Content {
        text: String::new(),
        html: None,
        attachments: vec![attachment.clone()],
    });
    let Some(file_event) = file_events.first() else {
        return Ok(());
    };
    let event_id = ctx
        .bridge
        .homeserver
        .send(
            ctx.room_id,
            "m.room.message",
            &format!("sb-export-{}", ctx.event_id),
            file_event,
            None,
            None,
        )
        .await?;
    // Send the same file to the customer through the outbox (delivered once, with retries).
    let outbound = Outbound {
        conversation: ConversationKey {
            account: conversation.account.clone(),
            chat: conversation.chat.clone(),
        },
        idempotency_key: event_id.clone(),
        participants: Vec::new(),
        action: OutboundAction::Message {
            content: Content {
                text: format!("{title}: the transcript is attached."),
                html: None,
                attachments: vec![attachment],
            },
            reply_to: None,
        },
    };
    if let Err(e) = ctx
        .bridge
        .queue_outbound(
            conversation.id,
            &event_id,
            ctx.room_id,
            ctx.sender,
            &outbound,
            None,
        )
        .await
    {
        return ctx
            .reply(&format!(
                "Transcript attached here, but not sent to the customer: {e}"
            ))
            .await;
    }
    ctx.reply(&format!(
        "Transcript of {} messages attached here and sent to the customer.",
        entries.len()
    ))
    .await
}

/// A message worth recording: the customer's and operators' messages; not the bot's notices or
/// commands (notes stay internal).
fn entry(ctx: &Context<'_>, e: &Value, ghost: &str, customer: &str) -> Option<Entry> {
    if e.get("type")?.as_str()? != "m.room.message" {
        return None;
    }
    let sender = e.get("sender")?.as_str()?;
    let content = e.get("content")?;
    if sender == ctx.bridge.namespace.bot
        || content
            .get("m.relates_to")
            .and_then(|r| r.get("rel_type"))
            .is_some()
    {
        return None;
    }
    let body = content.get("body")?.as_str()?;
    if body.trim_start().starts_with("!sb") {
        return None;
    }
    let text = match content.get("msgtype").and_then(Value::as_str) {
        Some("m.image" | "m.file" | "m.audio" | "m.video") => format!(
            "[file: {}]",
            content
                .get("filename")
                .and_then(Value::as_str)
                .unwrap_or(body)
        ),
        _ => body.to_string(),
    };
    let who = if sender == ghost {
        customer.to_string()
    } else {
        sender.to_string()
    };
    Some(Entry {
        time_ms: e.get("origin_server_ts")?.as_i64()?,
        sender: who,
        text,
    })
}

fn render(title: &str, entries: &[Entry]) -> String {
    let mut rows = String::new();
    for e in entries {
        let time = chrono::DateTime::from_timestamp_millis(e.time_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        rows.push_str(&format!(
            "<tr><td class=\"t\">{}</td><td class=\"s\">{}</td><td>{}</td></tr>\n",
            escape_html(&time),
            escape_html(&e.sender),
            escape_html(&e.text).replace('\n', "<br>")
        ));
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>body{{font-family:sans-serif;margin:2em}}td{{vertical-align:top;padding:.3em .6em;border-bottom:1px solid #ddd}}.t{{white-space:nowrap;color:#666}}.s{{font-weight:bold}}</style></head><body><h1>{t}</h1><table>\n{rows}</table></body></html>\n",
        t = escape_html(title)
    )
}
