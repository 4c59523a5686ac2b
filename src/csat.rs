//! Customer satisfaction (CSAT): after a resolution the customer is asked to rate it 1–5 in
//! their own channel, and their answer becomes a rating the room, the lobby, `whois`, `contact`,
//! routing and reports see.
//!
//! The life of one request (`csat_requests`, [`crate::store::csat`]):
//!
//! 1. **Written with the resolution**: the `resolved` event and the request (state `due`) are
//!    one transaction, so each resolution is asked about at most once, and none is forgotten in
//!    a crash.
//! 2. **Asked by the timer worker** ([`run_due`]) once the team's `csat.delay` has passed, if
//!    the conversation is still resolved by that resolution (a customer who wrote meanwhile
//!    reopened it: `cancelled`) and the channel's reply window is still open (else `skipped`,
//!    said in the room). The question goes out like every message the bridge sends a customer:
//!    a notice in the room, then the durable outbox with that notice as its event, so delivery
//!    is retried and its failure shown there. A channel with native buttons
//!    ([`RatingStyle::Native`]) gets [`OutboundAction::RatingRequest`] whose choices carry the
//!    request's nonce; the others get the question with a hint to answer with a digit.
//! 3. **Answered** by a button press ([`on_choice`]: the payload's nonce must name this
//!    conversation's request that is waiting for an answer, so a stale or forged button changes
//!    nothing) or by a message starting with a digit ([`on_message`]). The answer is stored with
//!    the `rated` conversation event in one transaction, at most once; the room is told, a rating
//!    of 2 or less alerts the team's leads in the lobby, and the customer is thanked. Their next
//!    message within `csat.comment_within` is kept as the rating's comment. Neither the answer
//!    nor the comment reopens the conversation; any other message does, and closes the request.

use rand::distr::{Alphanumeric, SampleString};
use switchboard_channel::{Content, ConversationKey, Outbound, OutboundAction, RatingStyle};
use switchboard_kit::rating;

use crate::bridge::Bridge;
use crate::config::CsatConfig;
use crate::matrix::content;
use crate::store::conversations::Conversation;
use crate::store::csat::CsatRequest;
use crate::store::routing::ConversationState;
use crate::store::StoreError;

/// The team's survey settings, when it asks.
fn settings<'b>(bridge: &'b Bridge, team: Option<&str>) -> Option<&'b CsatConfig> {
    let team = bridge.teams.get(team?)?;
    team.config.csat.as_ref().filter(|c| c.enabled)
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One pass over the requests waiting for their delay (called by the timer worker).
pub async fn run_due(bridge: &Bridge) {
    let due = match bridge.store.csat_due().await {
        Ok(due) => due,
        Err(e) => {
            tracing::error!(error = %e, "cannot read rating requests");
            return;
        }
    };
    for request in due {
        if let Err(e) = ask(bridge, &request).await {
            tracing::warn!(request = request.id, error = %e, "rating request not sent yet");
        }
    }
}

/// Ask about one due request, or let it go.
async fn ask(bridge: &Bridge, request: &CsatRequest) -> Result<(), StoreError> {
    let Some(cfg) = settings(bridge, request.team.as_deref()) else {
        bridge
            .store
            .csat_close(request.id, "cancelled", "the team does not ask for ratings")
            .await?;
        return Ok(());
    };
    let now = bridge.clock.now_ms();
    if now < request.resolved_at.saturating_add(ms(cfg.delay)) {
        return Ok(());
    }
    let Some(conversation) = bridge.store.conversation(request.conversation_id).await? else {
        bridge
            .store
            .csat_close(request.id, "cancelled", "the conversation is gone")
            .await?;
        return Ok(());
    };
    let Some(room_id) = conversation.room_id.clone() else {
        return Ok(());
    };
    let resolved = bridge
        .store
        .routing(conversation.id)
        .await?
        .is_some_and(|r| r.state == ConversationState::Resolved);
    let latest = bridge.store.csat_latest(conversation.id).await?;
    if !resolved || latest.as_ref().map(|l| l.id) != Some(request.id) {
        bridge
            .store
            .csat_close(
                request.id,
                "cancelled",
                "opened again before the question went out",
            )
            .await?;
        return Ok(());
    }
    let Some(channel) = bridge.channel(&conversation.channel) else {
        bridge
            .store
            .csat_close(request.id, "skipped", "the channel is not enabled")
            .await?;
        return Ok(());
    };
    let caps = channel.capabilities();
    if let Err(why) =
        crate::relay::matrix_to_outbox::reply_window_open(bridge, &conversation, &caps).await?
    {
        tracing::debug!(
            request = request.id,
            why,
            "rating not asked: reply window closed"
        );
        if bridge
            .store
            .csat_close(request.id, "skipped", "the reply window had closed")
            .await?
        {
            notice(
                bridge,
                &room_id,
                "⭐ The customer was not asked to rate this conversation: the channel's reply window had closed.",
                &format!("sb-csat-window-{}", request.id),
            )
            .await;
        }
        return Ok(());
    }
    let language = crate::canned::customer_language(bridge, &conversation)
        .await
        .ok()
        .flatten();
    let question = CsatConfig::text(&cfg.question, language.as_deref()).unwrap_or_default();
    let fresh = Alphanumeric.sample_string(&mut rand::rng(), 16);
    let nonce = bridge.store.csat_nonce(request.id, &fresh).await?;
    let action = match caps.rating {
        RatingStyle::Native => OutboundAction::RatingRequest(rating::request(question, &nonce)),
        RatingStyle::Digits => {
            let hint = CsatConfig::text(&cfg.hint, language.as_deref()).unwrap_or_default();
            text_action(&rating::fallback_text(question, hint))
        }
    };
    let shown = format!("⭐ Asked the customer to rate this conversation (1–5): {question}");
    to_customer(
        bridge,
        &conversation,
        &room_id,
        &shown,
        action,
        &format!("sb-csat-ask-{}", request.id),
    )
    .await?;
    bridge.store.csat_sent(request, &bridge.stamp(None)).await?;
    Ok(())
}

fn text_action(text: &str) -> OutboundAction {
    OutboundAction::Message {
        content: Content {
            text: text.to_string(),
            html: None,
            attachments: vec![],
        },
        reply_to: None,
    }
}

/// Something the bridge says to the customer: `shown` in the room as the bot's notice (sent with
/// the fixed `txn`, so a retry does not repeat it), then `action` queued in the outbox with that
/// notice as its event (queued once by event id; delivery status and failures land on it).
async fn to_customer(
    bridge: &Bridge,
    conversation: &Conversation,
    room_id: &str,
    shown: &str,
    action: OutboundAction,
    txn: &str,
) -> Result<(), StoreError> {
    let event_id = match bridge
        .homeserver
        .send(
            room_id,
            "m.room.message",
            txn,
            &content::notice(shown),
            None,
            None,
        )
        .await
    {
        Ok(id) => id,
        Err(e) => {
            // Tried again on the next pass (a due request stays due).
            return Err(StoreError::Protocol(format!(
                "cannot post the notice of a message to the customer: {e}"
            )));
        }
    };
    let outbound = Outbound {
        conversation: ConversationKey {
            account: conversation.account.clone(),
            chat: conversation.chat.clone(),
        },
        idempotency_key: event_id.clone(),
        action,
        // Filled from the conversation's people when it is sent.
        participants: Vec::new(),
    };
    bridge
        .queue_outbound(
            conversation.id,
            &event_id,
            room_id,
            &bridge.namespace.bot,
            &outbound,
            None,
        )
        .await
}

async fn notice(bridge: &Bridge, room_id: &str, text: &str, txn: &str) {
    if let Err(e) = bridge
        .homeserver
        .send(
            room_id,
            "m.room.message",
            txn,
            &content::notice(text),
            None,
            None,
        )
        .await
    {
        tracing::warn!(error = %e, "rating notice not sent");
    }
}

/// Whether a sent request still takes answers.
fn open_for_answers(bridge: &Bridge, request: &CsatRequest) -> bool {
    let within = settings(bridge, request.team.as_deref())
        .map(|c| ms(c.answer_within))
        .unwrap_or(7 * 86_400_000);
    request
        .sent_at
        .is_some_and(|sent| bridge.clock.now_ms() <= sent.saturating_add(within))
}

/// A customer's message: `true` when it was their rating (a digit answering the question) or
/// the comment on the rating they just gave; then it does not reopen the conversation. Any
/// other message closes a question still waiting for an answer (the customer wrote instead).
pub async fn on_message(
    bridge: &Bridge,
    conversation: &Conversation,
    room_id: &str,
    text: &str,
    key: &str,
) -> Result<bool, StoreError> {
    let Some(request) = bridge.store.csat_latest(conversation.id).await? else {
        return Ok(false);
    };
    // A replay (after a crash) of the message that was the answer or the comment.
    if request.answer_key.as_deref() == Some(key) {
        if let Some((score, _)) = rating::parse_digits(text) {
            rate(bridge, conversation, room_id, &request, score, None, key).await?;
        }
        return Ok(true);
    }
    if request.comment_key.as_deref() == Some(key) {
        comment_notice(bridge, room_id, &request).await;
        return Ok(true);
    }
    let now = bridge.clock.now_ms();
    match request.state.as_str() {
        "sent" if open_for_answers(bridge, &request) => {
            if let Some((score, comment)) = rating::parse_digits(text) {
                rate(
                    bridge,
                    conversation,
                    room_id,
                    &request,
                    score,
                    comment.as_deref(),
                    key,
                )
                .await?;
                return Ok(true);
            }
            bridge
                .store
                .csat_close(
                    request.id,
                    "skipped",
                    "the customer wrote instead of rating",
                )
                .await?;
            Ok(false)
        }
        "sent" => {
            bridge
                .store
                .csat_close(request.id, "skipped", "not answered in time")
                .await?;
            Ok(false)
        }
        "rated"
            if request.comment.is_none()
                && request.comment_until.is_some_and(|until| now < until)
                && !text.trim().is_empty() =>
        {
            if bridge
                .store
                .csat_comment(request.id, text.trim(), key, now)
                .await?
            {
                comment_notice(bridge, room_id, &request).await;
                return Ok(true);
            }
            Ok(false)
        }
        _ => Ok(false),
    }
}

async fn comment_notice(bridge: &Bridge, room_id: &str, request: &CsatRequest) {
    notice(
        bridge,
        room_id,
        &format!(
            "💬 The message above is the customer's comment on their rating ({}/5).",
            request.score.unwrap_or_default()
        ),
        &format!("sb-csat-comment-{}", request.id),
    )
    .await;
}

/// The customer pressed a choice of a rating request (`payload` as the network handed it back).
pub async fn on_choice(
    bridge: &Bridge,
    conversation: &Conversation,
    room_id: &str,
    payload: &str,
    key: &str,
) -> Result<(), StoreError> {
    let request = match rating::parse_payload(payload) {
        Some((nonce, score)) => bridge
            .store
            .csat_by_nonce(nonce)
            .await?
            .filter(|r| r.conversation_id == conversation.id)
            .map(|r| (r, score)),
        None => None,
    };
    let Some((request, score)) = request else {
        tracing::warn!(
            conversation = conversation.id,
            payload,
            "a choice that names no rating request of this conversation; refused"
        );
        return Ok(());
    };
    let answerable = match request.state.as_str() {
        "sent" => open_for_answers(bridge, &request),
        // A replay of the press after a crash: its follow-ups are made sure of.
        "rated" => request.answer_key.as_deref() == Some(key),
        _ => false,
    };
    if !answerable {
        tracing::info!(
            request = request.id,
            state = request.state,
            "a rating button of a question no longer asked; refused"
        );
        return Ok(());
    }
    rate(bridge, conversation, room_id, &request, score, None, key).await
}

/// Store the rating (once) and tell whom it concerns: the room, the leads when it is low, the
/// customer (thanks). The follow-ups use fixed transaction ids, so after a crash a replay of the
/// same answer completes them without repeating any.
async fn rate(
    bridge: &Bridge,
    conversation: &Conversation,
    room_id: &str,
    request: &CsatRequest,
    score: u8,
    comment: Option<&str>,
    key: &str,
) -> Result<(), StoreError> {
    let cfg = settings(bridge, request.team.as_deref());
    let comment_within = cfg.map(|c| ms(c.comment_within)).unwrap_or(30 * 60_000);
    let now = bridge.clock.now_ms();
    let stored = bridge
        .store
        .csat_rate(
            request,
            score,
            comment,
            now.saturating_add(if comment.is_some() { 0 } else { comment_within }),
            key,
            &bridge.stamp(None),
        )
        .await?;
    let request = if stored {
        bridge
            .store
            .csat_latest(conversation.id)
            .await?
            .filter(|r| r.id == request.id)
            .unwrap_or_else(|| request.clone())
    } else {
        // Answered already: only a replay of the same answer goes on to the follow-ups.
        match bridge.store.csat_latest(conversation.id).await? {
            Some(r) if r.id == request.id && r.answer_key.as_deref() == Some(key) => r,
            _ => return Ok(()),
        }
    };
    let about = request
        .owner
        .as_deref()
        .map(|o| format!(" (about {o})"))
        .unwrap_or_default();
    let said = request
        .comment
        .as_deref()
        .map(|c| format!(": “{c}”"))
        .unwrap_or_default();
    notice(
        bridge,
        room_id,
        &format!("⭐ The customer rated this conversation {score}/5{about}{said}"),
        &format!("sb-csat-rated-{}", request.id),
    )
    .await;
    if score <= 2 {
        alert_leads(bridge, conversation, &request, score, &said).await;
    }
    if let Some(cfg) = cfg {
        let language = crate::canned::customer_language(bridge, conversation)
            .await
            .ok()
            .flatten();
        if let Some(thanks) = CsatConfig::text(&cfg.thanks, language.as_deref()) {
            to_customer(
                bridge,
                conversation,
                room_id,
                &format!("↩️ Thanks sent: {thanks}"),
                text_action(thanks),
                &format!("sb-csat-thanks-{}", request.id),
            )
            .await?;
        }
    }
    Ok(())
}

/// A rating of 2 or less: the team's leads hear of it in the lobby.
async fn alert_leads(
    bridge: &Bridge,
    conversation: &Conversation,
    request: &CsatRequest,
    score: u8,
    said: &str,
) {
    let mut leads = Vec::new();
    if let Some(team) = request.team.as_deref().and_then(|t| bridge.teams.get(t)) {
        match crate::routing::teams::members(bridge, team).await {
            Ok(members) => leads.extend(members.into_iter().filter(|(_, l)| *l).map(|(u, _)| u)),
            Err(e) => tracing::warn!(error = %e, "cannot read the team's leads"),
        }
    }
    let row = bridge
        .store
        .routing(conversation.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let line = crate::routing::lobby::line(bridge, conversation, &row).await;
    let about = request
        .owner
        .as_deref()
        .map(|o| format!(" for {o}"))
        .unwrap_or_default();
    let text = format!("👎 Low rating {score}/5{about}{said} — {line}");
    if let Err(e) = crate::routing::lobby::mention(
        bridge,
        request.team.as_deref(),
        &leads,
        &text,
        &format!("sb-csat-low-{}", request.id),
    )
    .await
    {
        tracing::warn!(error = %e, "low rating not announced in the lobby");
    }
}

/// What `whois` says of the conversation's latest rating request, if any.
pub async fn whois_part(bridge: &Bridge, conversation: &Conversation) -> Option<String> {
    let request = bridge
        .store
        .csat_latest(conversation.id)
        .await
        .ok()
        .flatten()?;
    Some(match request.state.as_str() {
        "rated" => format!(
            "rated {}/5{}",
            request.score.unwrap_or_default(),
            request
                .comment
                .as_deref()
                .map(|c| format!(" (“{c}”)"))
                .unwrap_or_default()
        ),
        "sent" => "rating asked, no answer yet".into(),
        "due" => "rating to be asked".into(),
        _ => return None,
    })
}

/// What `contact` says of the customer's ratings: the latest five, newest first, and their
/// average.
pub async fn contact_line(bridge: &Bridge, conversation: &Conversation) -> Option<String> {
    let ratings = bridge
        .store
        .csat_of_customer(&conversation.channel, &conversation.contact_id)
        .await
        .ok()?;
    if ratings.is_empty() {
        return None;
    }
    let scores: Vec<i64> = ratings.iter().filter_map(|r| r.score).collect();
    let average = scores.iter().sum::<i64>() as f64 / scores.len().max(1) as f64;
    let latest: Vec<String> = ratings
        .iter()
        .take(5)
        .map(|r| {
            let when = crate::clock::to_datetime(r.rated_at.unwrap_or_default())
                .format("%Y-%m-%d")
                .to_string();
            match &r.owner {
                Some(o) => format!("{}/5 for {o} on {when}", r.score.unwrap_or_default()),
                None => format!("{}/5 on {when}", r.score.unwrap_or_default()),
            }
        })
        .collect();
    Some(format!(
        "ratings: {} (average {average:.1} of {}){}",
        latest.join(", "),
        scores.len(),
        if ratings.len() > 5 { ", …" } else { "" }
    ))
}
