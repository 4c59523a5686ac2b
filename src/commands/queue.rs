//! `queue`: every conversation waiting for an answer, oldest first, with its waiting time in
//! its team's working time (and on the wall clock) — nothing unworked ever drops off this list.

use super::Context;
use crate::matrix::MatrixError;
use crate::routing::waiting;

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
        let calendar = waiting::calendar_of(ctx.bridge, row.team.as_deref()).await;
        let age = waiting::waited(&calendar, row.unworked_since.unwrap_or(now), now).describe();
        lines.push(format!("{age} — {line}"));
    }
    ctx.reply(&format!(
        "{} unanswered: {}",
        lines.len(),
        lines.join(" | ")
    ))
    .await
}
