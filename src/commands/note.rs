//! `note <text>`: a private note. It stays in the room for the team; being a command, it is
//! never relayed to the customer.

use super::Context;
use crate::matrix::MatrixError;

pub async fn run(ctx: &Context<'_>) -> Result<(), MatrixError> {
    if ctx.args.is_empty() {
        return ctx.reply("Usage: `!sb note <text>`.").await;
    }
    ctx.reply("📝 Note kept for the team; the customer does not see it.")
        .await
}
