//! `done`: the customer's last messages need no answer; they count as worked.

use super::Context;
use crate::matrix::MatrixError;

pub async fn run(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some((conversation, mut row)) = ctx.portal().await? else {
        return Ok(());
    };
    if row.unworked_since.is_none() {
        return ctx.reply("Nothing is waiting for an answer here.").await;
    }
    crate::routing::mark_worked(&mut row);
    if !ctx.save(conversation, &row).await? {
        return Ok(());
    }
    ctx.reply(&format!(
        "Marked as worked by {}; nothing is waiting here now.",
        ctx.sender
    ))
    .await
}
