//! `whois`: owner, team, state and timers of this conversation, the customer's tags and the
//! other channels they write on.

use super::Context;
use crate::clock::human;
use crate::matrix::MatrixError;

pub async fn run(ctx: &Context<'_>) -> Result<(), MatrixError> {
    let Some((conversation, row)) = ctx.portal().await? else {
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
    // The same person on other channels (linked by phone, email or an operator).
    if let Ok(customer) = ctx
        .bridge
        .store
        .customer_of(&conversation.channel, &conversation.contact_id)
        .await
    {
        if let Ok(customer) = ctx.bridge.store.customer(customer).await {
            if let Some(also) = super::customer::also_on(&customer, conversation) {
                parts.push(format!("also on {also}"));
            }
            if !customer.tags.is_empty() {
                parts.push(format!("tags: {}", customer.tags.join(", ")));
            }
        }
    }
    ctx.reply(&parts.join(" · ")).await
}
