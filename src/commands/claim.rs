//! `claim` and `unassign`: take a conversation, or give it back to the team.

use super::Context;
use crate::config::{AssignMode, Level};
use crate::matrix::MatrixError;

pub async fn run(ctx: &Context<'_>, level: Level) -> Result<(), MatrixError> {
    let Some((conversation, mut row)) = ctx.portal().await? else {
        return Ok(());
    };
    let team = row.team.as_deref().and_then(|t| ctx.bridge.teams.get(t));
    if team.is_some_and(|t| t.config.mode == AssignMode::LeadOnly) && level < Level::Lead {
        return ctx
            .reply(
                "In this team only a lead hands out conversations (`!sb assign`); ask your lead.",
            )
            .await;
    }
    if row.owner.as_deref() == Some(ctx.sender) {
        return ctx.reply("You already own this conversation.").await;
    }
    let previous = row.owner.replace(ctx.sender.to_string());
    row.escalated = false;
    crate::routing::arm_timers(ctx.bridge, &mut row).await;
    if !ctx.save(conversation, &row).await? {
        return Ok(());
    }
    let _ = ctx
        .bridge
        .store
        .set_last_owner(&conversation.channel, &conversation.contact_id, ctx.sender)
        .await;
    let remove = ctx.bridge.config.routing.remove_uninvolved_on_claim;
    crate::routing::apply_visibility(ctx.bridge, conversation, &row, remove, &[ctx.sender]).await;
    match previous {
        Some(p) => {
            ctx.reply(&format!(
                "{} claimed this conversation (was {p}).",
                ctx.sender
            ))
            .await
        }
        None => {
            ctx.reply(&format!("{} claimed this conversation.", ctx.sender))
                .await
        }
    }
}

pub async fn unassign(ctx: &Context<'_>, level: Level) -> Result<(), MatrixError> {
    let Some((conversation, mut row)) = ctx.portal().await? else {
        return Ok(());
    };
    let Some(owner) = row.owner.clone() else {
        return ctx.reply("Nobody owns this conversation.").await;
    };
    if owner != ctx.sender && level < Level::Lead {
        return ctx
            .reply(&format!(
                "Only {owner} or a lead can unassign this conversation."
            ))
            .await;
    }
    row.owner = None;
    crate::routing::arm_timers(ctx.bridge, &mut row).await;
    if !ctx.save(conversation, &row).await? {
        return Ok(());
    }
    crate::routing::apply_visibility(ctx.bridge, conversation, &row, false, &[]).await;
    ctx.reply(&format!(
        "{owner} no longer owns this conversation; the team sees it."
    ))
    .await
}
