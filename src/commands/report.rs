//! `report [today|7d|30d|month|YYYY-MM] [by channel|operator|team]`: the figures of a period
//! (definitions in `docs/reports.md`) as a table (HTML with a plain-text fallback), a chart (PNG)
//! and a CSV file. Leads see their teams, admins everything; asked in a lobby or a direct chat
//! with the bot, never in a customer's room.

use bytes::Bytes;
use serde_json::json;
use switchboard_channel::{Attachment, Content, MediaRef};

use super::Context;
use crate::config::Level;
use crate::matrix::{content, MatrixError};
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
    let Some(period) = reports::period(period_word, ctx.bridge.clock.now()) else {
        return ctx.reply(USAGE).await;
    };
    let report = match reports::build(ctx.bridge, ctx.sender, level, &period, group_by).await {
        Ok(r) => r,
        Err(e) => return ctx.reply(&format!("No report: {e}.")).await,
    };
    let table = content::with_reply(
        json!({
            "msgtype": "m.notice",
            "body": report.text(),
            "format": "org.matrix.custom.html",
            "formatted_body": report.html(),
        }),
        ctx.event_id,
    );
    ctx.reply_content(&table).await?;
    let day = |ms: i64| crate::clock::to_datetime(ms).format("%Y-%m-%d").to_string();
    let stem = format!("report-{}-{}", day(period.from), day(period.to - 1));
    let mut files = vec![(format!("{stem}.csv"), "text/csv", report.csv().into_bytes())];
    match reports::chart::png(&report) {
        Ok(png) => files.push((format!("{stem}.png"), "image/png", png)),
        Err(e) => tracing::warn!(error = %e, "report chart not drawn"),
    }
    for (i, (name, mime, data)) in files.into_iter().enumerate() {
        let size = data.len() as u64;
        let mxc = ctx
            .bridge
            .homeserver
            .upload(Bytes::from(data), mime, &name)
            .await?;
        let events = content::to_matrix(&Content {
            text: String::new(),
            html: None,
            attachments: vec![Attachment {
                media: MediaRef(mxc),
                name,
                mime: mime.into(),
                size,
            }],
        });
        if let Some(event) = events.first() {
            ctx.bridge
                .homeserver
                .send(
                    ctx.room_id,
                    "m.room.message",
                    &format!("sb-report-{i}-{}", ctx.event_id),
                    event,
                    None,
                    None,
                )
                .await?;
        }
    }
    Ok(())
}
