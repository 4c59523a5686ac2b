//! `whois`: owner, team, state and timers of this conversation (in its team's working time, and
//! when they fall), its rating (CSAT), the customer's tags and the other channels they write on.

use super::Context;
use crate::matrix::MatrixError;
use crate::routing::waiting;

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
    let calendar = waiting::calendar_of(ctx.bridge, row.team.as_deref()).await;
    if let Some(since) = row.unworked_since {
        let waited = waiting::waited(&calendar, since, now);
        parts.push(format!("unanswered for {}", waited.describe()));
    }
    if let (Some(at), false) = (row.remind_at, row.reminded) {
        parts.push(format!(
            "reminds the owner in {}",
            waiting::until(&calendar, now, at)
        ));
    }
    if let (Some(at), false) = (row.escalate_at, row.escalated) {
        parts.push(format!(
            "escalates in {}",
            waiting::until(&calendar, now, at)
        ));
    }
    if row.escalated {
        parts.push("escalated".into());
    }
    if let Some(until) = row.snooze_until {
        let until = crate::clock::to_datetime(until);
        parts.push(format!(
            "snoozed until {}",
            waiting::local(&calendar, until)
        ));
    }
    if let Some(rating) = crate::csat::whois_part(ctx.bridge, conversation).await {
        parts.push(rating);
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
