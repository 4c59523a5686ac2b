//! `queue`: every conversation waiting for an answer, oldest first, with its waiting time —
//! nothing unworked ever drops off this list.

use super::Context;
use crate::clock::human;
use crate::matrix::MatrixError;

pub async fn run(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let rows = match ctx.bridge.store.routing_unworked().await {
        Ok(r) => r,
        Err(e) => return ctx.reply(&format!("Cannot read the queue: {e}")).await,
    };
    if rows.is_empty() {
        return ctx
            .reply("Queue empty: every customer message has been answered or dismissed.")
            .await;
    }
    let now = ctx.bridge.clock.now_ms();
    let mut lines = Vec::new();
    for row in &rows {
        let Ok(Some(conversation)) = ctx.bridge.store.conversation(row.conversation_id).await
        else {
            continue;
        };
        let line = crate::routing::lobby::line(ctx.bridge, &conversation, row).await;
        let age = human(now - row.unworked_since.unwrap_or(now));
        lines.push(format!("{age} — {line}"));
    }
    ctx.reply(&format!(
        "{} unanswered: {}",
        lines.len(),
        lines.join(" | ")
    ))
    .await
}
