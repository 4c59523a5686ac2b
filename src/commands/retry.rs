//! `retry`: put this conversation's undelivered messages (dead letters) back in the outbox
//! ([`crate::service::conversations::retry_room`]).

use super::Context;
use crate::matrix::MatrixError;
use crate::service::{conversations, Actor};

pub async fn run(ctx: &Context<'_>, actor: &Actor) -> Result<(), MatrixError> {
    if ctx.conversation.is_none() {
        return ctx.reply("`retry` works in a conversation room.").await;
    }
    match conversations::retry_room(ctx.bridge, actor, ctx.room_id).await {
        Ok(0) => {
            ctx.reply("Nothing to resend: every message here was delivered.")
                .await
        }
        Ok(n) => {
            ctx.reply(&format!("Resending {n} undelivered message(s)."))
                .await
        }
        Err(e) => ctx.reply(&format!("Could not resend: {e}")).await,
    }
}
