//! `queue`: every conversation waiting for an answer, oldest first, with its waiting time in
//! its team's working time (and on the wall clock) — nothing unworked ever drops off this list
//! ([`crate::service::conversations::queue`], which the admin API's `/queue` shows too).

use super::Context;
use crate::matrix::MatrixError;
use crate::service::{conversations, Actor};

pub async fn run(ctx: &Context<'_>, actor: &Actor) -> Result<(), MatrixError> {
    let entries = match conversations::queue(ctx.bridge, actor).await {
        Ok(e) => e,
        Err(e) => return ctx.reply(&format!("Cannot read the queue: {e}")).await,
    };
    if entries.is_empty() {
        return ctx
            .reply("Queue empty: every customer message has been answered or dismissed.")
            .await;
    }
    let lines: Vec<String> = entries
        .iter()
        .map(|e| format!("{} — {}", e.waited, e.summary))
        .collect();
    ctx.reply(&format!(
        "{} unanswered: {}",
        lines.len(),
        lines.join(" | ")
    ))
    .await
}
