//! `resolve` and `reopen`: close a conversation (nothing waits in it any more) and open it again
//! (it waits for an answer again, with its timers running from the reopening). `resolve` is
//! [`crate::service::conversations::resolve`].

use super::Context;
use crate::matrix::MatrixError;
use crate::service::{conversations, Actor};
use crate::store::routing::ConversationState;

pub async fn resolve(ctx: &Context<'_>, actor: &Actor) -> Result<(), MatrixError> {
    let Some((conversation, _)) = ctx.portal().await? else {
        return Ok(());
    };
    ctx.answer(conversations::resolve(ctx.bridge, actor, conversation).await)
        .await
}

pub async fn reopen(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some((conversation, mut row)) = ctx.portal().await? else {
        return Ok(());
    };
    if row.state == ConversationState::Open {
        return ctx.reply("This conversation is already open.").await;
    }
    row.state = ConversationState::Open;
    row.snooze_until = None;
    // Open means waiting for us: it is in the queue again and its timers run from now.
    if row.unworked_since.is_none() {
        row.unworked_since = Some(ctx.bridge.clock.now_ms());
        crate::routing::arm_timers(ctx.bridge, &mut row).await;
    }
    if !ctx.save(conversation, &row).await? {
        return Ok(());
    }
    ctx.bridge.wake_timers.notify_one();
    ctx.reply(&format!(
        "Reopened by {}; it waits for an answer (or `!sb done`) again.",
        ctx.sender
    ))
    .await
}
