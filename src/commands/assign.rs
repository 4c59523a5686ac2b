//! `assign @user`: a lead gives the conversation to an operator.

use super::{user_arg, Context};
use crate::matrix::MatrixError;

pub async fn run(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some((conversation, mut row)) = ctx.portal().await? else {
        return Ok(());
    };
    let Some(user) = user_arg(ctx.bridge, ctx.args) else {
        return ctx.reply("Usage: `!sb assign @user:server`.").await;
    };
    if crate::routing::level(ctx.bridge, &user).await.is_none() {
        return ctx
            .reply(&format!("{user} is not an operator of this bridge."))
            .await;
    }
    row.owner = Some(user.clone());
    row.escalated = false;
    crate::routing::arm_timers(ctx.bridge, &mut row).await;
    if !ctx.save(conversation, &row).await? {
        return Ok(());
    }
    let _ = ctx
        .bridge
        .store
        .mark_assigned(&user, ctx.bridge.clock.now_ms())
        .await;
    let remove = ctx.bridge.config.routing.remove_uninvolved_on_claim;
    crate::routing::apply_visibility(ctx.bridge, conversation, &row, remove, &[ctx.sender]).await;
    ctx.reply(&format!("Assigned to {user} by {}.", ctx.sender))
        .await
}
