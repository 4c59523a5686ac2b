//! `transfer @user` / `transfer <team>`: hand a conversation to another operator or team
//! ([`crate::service::conversations::transfer`]).

use super::Context;
use crate::matrix::MatrixError;
use crate::service::{conversations, Actor};

pub async fn run(ctx: &Context<'_>, actor: &Actor) -> Result<(), MatrixError> {
    let Some((conversation, _)) = ctx.portal().await? else {
        return Ok(());
    };
    ctx.answer(conversations::transfer(ctx.bridge, actor, conversation, ctx.args).await)
        .await
}
