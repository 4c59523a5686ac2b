//! `transfer @user` / `transfer <team>`: hand a conversation to another operator or team.

use super::{user_arg, Context};
use crate::config::Level;
use crate::matrix::MatrixError;

pub async fn run(ctx: &Context<'_>, level: Level) -> Result<(), MatrixError> {
    let Some((conversation, mut row)) = ctx.portal().await? else {
        return Ok(());
    };
    if let Some(owner) = &row.owner {
        if owner != ctx.sender && level < Level::Lead {
            return ctx
                .reply(&format!(
                    "Only {owner} (the owner) or a lead can transfer this conversation."
                ))
                .await;
        }
    }
    let target = ctx.args.trim();
    if target.is_empty() {
        return ctx
            .reply("Usage: `!sb transfer @user:server` or `!sb transfer <team>`.")
            .await;
    }
    let what = if let Some(team) = ctx.bridge.teams.get(target) {
        row.team = Some(team.name.clone());
        row.owner = None;
        format!("team {}", team.name)
    } else if let Some(user) = user_arg(ctx.bridge, target).filter(|_| target.starts_with('@')) {
        if crate::routing::level(ctx.bridge, &user).await.is_none() {
            return ctx
                .reply(&format!("{user} is not an operator of this bridge."))
                .await;
        }
        row.owner = Some(user.clone());
        user
    } else {
        let names: Vec<&str> = ctx.bridge.teams.iter().map(|t| t.name.as_str()).collect();
        return ctx
            .reply(&format!(
                "No team or user `{target}`. Teams: {}.",
                names.join(", ")
            ))
            .await;
    };
    row.escalated = false;
    crate::routing::arm_timers(ctx.bridge, &mut row).await;
    // The entry moves to the new team's lobby.
    row.lobby_event = None;
    if !ctx.save(conversation, &row).await? {
        return Ok(());
    }
    crate::routing::apply_visibility(ctx.bridge, conversation, &row, false, &[]).await;
    ctx.reply(&format!("Transferred to {what} by {}.", ctx.sender))
        .await
}
