//! `search <words> [filters]` and `search more`: search over all history (the syntax is in
//! [`crate::search::query`]).
//!
//! What an operator may find is decided in the store's query ([`Scope`]): their teams'
//! conversations, those with no team and those they own; admins find everything. Results go to
//! the operator's direct chat with the bot, never into the room where they asked (its other
//! members may not be allowed to see those conversations); that room gets a one-line pointer.
//! Each hit names its date, channel and customer, shows a snippet with the matched words in
//! bold, and links to the exact message (a matrix.to event permalink). Where an operator is in
//! their search (the query, how many hits shown, how far the store was read) is stored, so
//! `search more` goes on from there, after a restart too.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::json;
use switchboard_kit::text::escape_html;

use super::Context;
use crate::config::Level;
use crate::matrix::{content, MatrixError};
use crate::search::query;
use crate::store::search::{Hit, Scope};
use crate::store::StoreError;

/// Hits per page.
const PAGE: usize = 10;

/// Rows read from the store at a time (phrases are checked on them).
const BATCH: i64 = 50;

/// Rows read at most for one page (a phrase that matches rarely does not read all history).
const MAX_SCAN: i64 = 2_000;

const USAGE: &str = "Usage: `!sb search <words> [\"a phrase\"] [channel:…] [from:…] [team:…] [after:YYYY-MM-DD] [before:YYYY-MM-DD] [has:file|image|voice] [sort:best]`, then `!sb search more`.";

pub async fn run(ctx: &Context<'_>, level: Level) -> Result<(), MatrixError> {
    let args = ctx.args.trim();
    if args.is_empty() {
        return ctx.reply(USAGE).await;
    }
    let store = &ctx.bridge.store;
    let (text, shown, scanned) = if args.eq_ignore_ascii_case("more") {
        match store.search_session(ctx.sender).await {
            Ok(Some(session)) => session,
            Ok(None) => {
                return ctx
                    .reply("No search to go on with: start one with `!sb search <words>`.")
                    .await
            }
            Err(e) => {
                return ctx
                    .reply(&format!("Cannot read your last search: {e}"))
                    .await
            }
        }
    } else {
        (args.to_string(), 0, 0)
    };
    let search = match query::parse(&text) {
        Ok(s) => s,
        Err(e) => {
            return ctx
                .reply(&format!("Search not understood: {e}. {USAGE}"))
                .await
        }
    };
    let scope = match scope(ctx, level).await {
        Ok(scope) => scope,
        Err(e) => return ctx.reply(&format!("Search failed: {e}")).await,
    };

    // Read the store in batches until a page is full, checking phrases on the way.
    let mut hits: Vec<Hit> = Vec::new();
    let mut offset = scanned;
    let mut exhausted = false;
    'pages: while hits.len() < PAGE && offset - scanned < MAX_SCAN {
        let batch = match store.search(&search.query, &scope, offset, BATCH).await {
            Ok(b) => b,
            Err(e) => return ctx.reply(&format!("Search failed: {e}")).await,
        };
        let read = batch.len() as i64;
        for hit in batch {
            offset += 1;
            if query::holds_phrases(&search.phrases, &hit.body) {
                hits.push(hit);
                if hits.len() == PAGE {
                    break 'pages;
                }
            }
        }
        if read < BATCH {
            exhausted = true;
            break;
        }
    }
    if let Err(e) = store
        .put_search_session(ctx.sender, &text, shown + hits.len() as i64, offset)
        .await
    {
        tracing::warn!(error = %e, "cannot remember a search for `search more`");
    }

    let page = render(ctx, &search, &text, &hits, shown, exhausted);
    let in_dm = super::is_dm(ctx.bridge, ctx.room_id).await?;
    if in_dm {
        let page = content::with_reply(page, ctx.event_id);
        ctx.reply_content(&page).await?;
        return Ok(());
    }
    let dm = match direct_chat(ctx).await {
        Ok(room) => room,
        Err(e) => {
            return ctx
                .reply(&format!(
                    "Could not open a direct chat with you for the results: {e}"
                ))
                .await
        }
    };
    ctx.bridge
        .homeserver
        .send(
            &dm,
            "m.room.message",
            &format!("sb-search-{}", ctx.event_id),
            &page,
            None,
            None,
        )
        .await?;
    let what = match hits.len() {
        0 => "No results".to_string(),
        1 => "1 result".to_string(),
        n => format!("{n} results"),
    };
    ctx.reply(&format!(
        "🔎 {what} for “{text}” sent to your direct chat with me."
    ))
    .await
}

/// What the operator may see (an error when their teams cannot be read: a search that
/// silently left out their teams' conversations would say "No results" where there are some).
async fn scope(ctx: &Context<'_>, level: Level) -> Result<Scope, StoreError> {
    if level == Level::Admin {
        return Ok(Scope::All);
    }
    let mut teams = Vec::new();
    for team in ctx.bridge.teams.iter() {
        let members = crate::routing::teams::members(ctx.bridge, team).await?;
        if members.iter().any(|(u, _)| u == ctx.sender) {
            teams.push(team.name.clone());
        }
    }
    Ok(Scope::Of {
        user: ctx.sender.to_string(),
        teams,
    })
}

/// The operator's direct chat with the bot: the one made before, or a new one they are
/// invited to.
async fn direct_chat(ctx: &Context<'_>) -> Result<String, String> {
    let store = &ctx.bridge.store;
    if let Some(room) = store
        .operator_dm(ctx.sender)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(room);
    }
    let room = ctx
        .bridge
        .homeserver
        .create_room(&json!({
            "preset": "trusted_private_chat",
            "is_direct": true,
            "invite": [ctx.sender],
            "name": "Switchboard direct chat",
            "topic": "Your direct chat with Switchboard: search results, and commands without !sb.",
        }))
        .await
        .map_err(|e| e.to_string())?;
    store
        .set_operator_dm(ctx.sender, &room)
        .await
        .map_err(|e| e.to_string())?;
    Ok(room)
}

/// A matrix.to link that opens the event in any client.
fn permalink(room_id: &str, event_id: &str, via: &str) -> String {
    format!(
        "https://matrix.to/#/{}/{}?via={}",
        utf8_percent_encode(room_id, NON_ALPHANUMERIC),
        utf8_percent_encode(event_id, NON_ALPHANUMERIC),
        utf8_percent_encode(via, NON_ALPHANUMERIC),
    )
}

fn when(ts: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// Who wrote it, for the hit's heading.
fn who(hit: &Hit) -> String {
    let customer = hit
        .customer
        .clone()
        .unwrap_or_else(|| hit.contact_id.clone());
    match hit.kind.as_str() {
        "out" => format!("{} → {customer}", hit.sender),
        "note" => format!("note by {} ({customer})", hit.sender),
        _ => customer,
    }
}

/// The page of results as a notice, in plain text and HTML.
fn render(
    ctx: &Context<'_>,
    search: &query::Search,
    text: &str,
    hits: &[Hit],
    shown: i64,
    exhausted: bool,
) -> serde_json::Value {
    let words = &search.query.words;
    let mut body = String::new();
    let mut html = String::new();
    if hits.is_empty() {
        let line = if shown == 0 {
            format!("🔎 No results for “{text}”.")
        } else {
            format!("🔎 No more results for “{text}”.")
        };
        return json!({"msgtype": "m.notice", "body": line});
    }
    let first = shown + 1;
    let last = shown + hits.len() as i64;
    body.push_str(&format!("🔎 “{text}”: results {first}–{last}\n"));
    html.push_str(&format!(
        "<p>🔎 “{}”: results {first}–{last}</p><ol start=\"{first}\">",
        escape_html(text)
    ));
    for (i, hit) in hits.iter().enumerate() {
        let n = first + i as i64;
        let plain = query::snippet(words, &hit.body, |w| format!("**{w}**"), str::to_string);
        let marked = query::snippet(
            words,
            &hit.body,
            |w| format!("<b>{}</b>", escape_html(w)),
            escape_html,
        );
        let file = match hit.media.as_deref() {
            Some("image") => " 🖼",
            Some("voice") => " 🎤",
            Some(_) => " 📎",
            None => "",
        };
        let head = format!("{} · {} · {}{file}", when(hit.ts), hit.channel, who(hit));
        let link = match (&hit.room_id, &hit.event_id) {
            (Some(room), Some(event)) => Some(permalink(room, event, &ctx.bridge.namespace.domain)),
            _ => None,
        };
        body.push_str(&format!("{n}. {head}\n   {plain}\n"));
        html.push_str(&format!("<li>{} — {marked}", escape_html(&head)));
        match &link {
            Some(l) => {
                body.push_str(&format!("   {l}\n"));
                html.push_str(&format!(" <a href=\"{}\">open</a></li>", escape_html(l)));
            }
            None => html.push_str(" (not in its room yet)</li>"),
        }
    }
    html.push_str("</ol>");
    if !exhausted {
        body.push_str("More: `!sb search more`");
        html.push_str("<p>More: <code>!sb search more</code></p>");
    }
    json!({
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
    })
}
