//! `report [today|7d|30d|month|YYYY-MM] [by channel|operator|team]`: the figures of a period
//! (definitions in `docs/reports.md`) as a table (HTML with a plain-text fallback), a chart (PNG)
//! and a CSV file. Leads see their teams, admins everything; asked in a lobby or a direct chat
//! with the bot, never in a customer's room.

use super::Context;
use crate::config::Level;
use crate::matrix::MatrixError;
use crate::reports::{self, GroupBy};

const USAGE: &str = "Usage: `!sb report [today|7d|30d|month|YYYY-MM] [by channel|operator|team]`.";

pub async fn run(ctx: &Context<'_>, level: Level) -> Result<(), MatrixError> {
    if ctx.conversation.is_some() {
        return ctx
            .reply("Reports are not shown in a customer's room: ask in a team lobby or in a direct chat with me.")
            .await;
    }
    let words: Vec<&str> = ctx.args.split_whitespace().collect();
    let (period_word, rest) = match words.first() {
        Some(w) if *w != "by" => (*w, &words[1..]),
        _ => ("today", &words[..]),
    };
    let group_by = match rest {
        [] => None,
        ["by", what] => match GroupBy::parse(what) {
            Some(g) => Some(g),
            None => return ctx.reply(USAGE).await,
        },
        _ => return ctx.reply(USAGE).await,
    };
    let period = match reports::period_for(ctx.bridge, ctx.sender, level, period_word).await {
        Ok(Some(p)) => p,
        Ok(None) => return ctx.reply(USAGE).await,
        Err(e) => return ctx.reply(&format!("No report: {e}.")).await,
    };
    let report = match reports::build(ctx.bridge, ctx.sender, level, &period, group_by).await {
        Ok(r) => r,
        Err(e) => return ctx.reply(&format!("No report: {e}.")).await,
    };
    ctx.reply_content(&reports::post::table(&report, Some(ctx.event_id)))
        .await?;
    reports::post::files(
        ctx.bridge,
        ctx.room_id,
        &format!("sb-report-{}", ctx.event_id),
        &report,
        &period,
    )
    .await
}
