//! `note <text>`: a private note. It stays in the room for the team; being a command, it is
//! never relayed to the customer. In a conversation it is indexed for search (by its event).

use super::Context;
use crate::matrix::MatrixError;

pub async fn run(ctx: &Context<'_>) -> Result<(), MatrixError> {
    if ctx.args.is_empty() {
        return ctx.reply("Usage: `!sb note <text>`.").await;
    }
    if let Some(conversation) = ctx.conversation {
        if let Err(e) = ctx
            .bridge
            .store
            .index_note(conversation.id, ctx.event_id, ctx.sender, ctx.args)
            .await
        {
            tracing::warn!(error = %e, "cannot index a note for search");
            return ctx
                .reply(&format!(
                    "📝 Note kept in this room (the customer does not see it), but search will not find it: {e}"
                ))
                .await;
        }
    }
    ctx.reply("📝 Note kept for the team; the customer does not see it.")
        .await
}
