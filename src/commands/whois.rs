//! `whois`: owner, team, state and timers of this conversation.

use super::Context;
use crate::clock::human;
use crate::matrix::MatrixError;

pub async fn run(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some((_, row)) = ctx.portal().await? else {
        return Ok(());
    };
    let now = ctx.bridge.clock.now_ms();
    let owner = row.owner.clone().unwrap_or_else(|| "nobody".into());
    let team = row
        .team
        .clone()
        .unwrap_or_else(|| "none (visible to every operator)".into());
    let mut parts = vec![
        format!("owner: {owner}"),
        format!("team: {team}"),
        format!("state: {}", row.state),
    ];
    if let Some(since) = row.unworked_since {
        parts.push(format!("unanswered for {}", human(now - since)));
    }
    if let (Some(at), false) = (row.escalate_at, row.escalated) {
        parts.push(format!("escalates in {}", human(at - now)));
    }
    if row.escalated {
        parts.push("escalated".into());
    }
    if let Some(until) = row.snooze_until {
        parts.push(format!("snoozed for {}", human(until - now)));
    }
    ctx.reply(&parts.join(" · ")).await
}
