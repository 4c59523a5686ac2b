//! `assign @user`: a lead gives the conversation to an operator
//! ([`crate::service::conversations::assign`]).

use super::Context;
use crate::matrix::MatrixError;
use crate::service::{conversations, Actor};

pub async fn run(ctx: &Context<'_>, actor: &Actor) -> Result<(), MatrixError> {
    let Some((conversation, _)) = ctx.portal().await? else {
        return Ok(());
    };
    ctx.answer(conversations::assign(ctx.bridge, actor, conversation, ctx.args).await)
        .await
}
