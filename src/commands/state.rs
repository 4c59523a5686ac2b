//! `resolve` and `reopen`.

use super::Context;
use crate::matrix::MatrixError;

pub async fn resolve(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some((conversation, mut row)) = ctx.portal().await? else {
        return Ok(());
    };
    crate::routing::mark_worked(&mut row);
    row.state = "resolved".into();
    row.snooze_until = None;
    if !ctx.save(conversation, &row).await? {
        return Ok(());
    }
    ctx.reply(&format!(
        "Resolved by {}. A new message from the customer reopens it.",
        ctx.sender
    ))
    .await
}

pub async fn reopen(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some((conversation, mut row)) = ctx.portal().await? else {
        return Ok(());
    };
    if row.state == "open" {
        return ctx.reply("This conversation is already open.").await;
    }
    row.state = "open".into();
    row.snooze_until = None;
    if !ctx.save(conversation, &row).await? {
        return Ok(());
    }
    ctx.reply(&format!("Reopened by {}.", ctx.sender)).await
}
