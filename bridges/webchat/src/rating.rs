//! Rating requests (CSAT) in the widget: the team's question shown as five stars, and the
//! visitor's click handed to the core.
//!
//! * **Asked** ([`ask`], from `Channel::send` of an `OutboundAction::RatingRequest`): the
//!   question and its choices (score, label, payload — made by `switchboard_kit::rating`) go
//!   into the visitor's transcript as an [`Entry::Rating`], so a page opened later still shows
//!   them, and a record `rating:<nonce>` remembers whose request it is and what was chosen.
//! * **Chosen** ([`choose`], `POST /api/v1/rating {"payload": …}`): the payload must be a
//!   rating payload of a request in *this* visitor's chat. The choice reaches the core as
//!   `InboundEvent::Choice` with the payload exactly as given (the core checks the nonce against
//!   the request it is waiting on, so a forged or stale payload changes nothing), then the
//!   transcript records it ([`Entry::Rated`]) so every open tab shows the chosen stars. Clicking
//!   the same star again answers the same; another score after the first is refused (one
//!   rating per request). The optional comment is the visitor's next message, as on every
//!   channel (the core keeps it as the rating's comment).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use switchboard_channel::{InboundEvent, RatingRequest, SendError};
use switchboard_kit::now_ms;
use switchboard_kit::rating;
use switchboard_kit::send::{host_unavailable, permanent};

use axum::extract::State;
use axum::Json;

use crate::api::JsonBody;
use crate::auth::Authed;
use crate::error::ApiError;
use crate::inbound::{hand_over, publish};
use crate::state::{AppState, Shared};
use crate::transcript::{Entry, RatingChoiceEntry};

/// What the channel remembers of one request (`rating:<nonce>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingRecord {
    pub visitor: String,
    /// The transcript entry's id (`a.<hex>`).
    pub id: String,
    /// The score the visitor chose, once they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    #[serde(default)]
    pub rated_seq: i64,
}

fn record_key(nonce: &str) -> String {
    format!("rating:{nonce}")
}

/// Show a rating request in the visitor's chat (idempotent by the outbox's `key`).
pub async fn ask(
    shared: &Shared,
    visitor: &str,
    key: &str,
    remote_id: &str,
    request: &RatingRequest,
) -> Result<(), SendError> {
    let mut nonce = None;
    for choice in &request.choices {
        match rating::parse_payload(&choice.payload) {
            Some((n, score)) if score == choice.score && nonce.is_none_or(|seen| seen == n) => {
                nonce = Some(n);
            }
            _ => {
                return Err(permanent(format!(
                    "the rating choice {:?} carries no rating payload the widget can send back",
                    choice.label
                )))
            }
        }
    }
    let Some(nonce) = nonce else {
        return Err(permanent("a rating request with no choices"));
    };
    let record = RatingRecord {
        visitor: visitor.to_owned(),
        id: remote_id.to_owned(),
        score: None,
        rated_seq: 0,
    };
    // Known before the visitor can see the stars (a click at once must find it); a retry
    // writes it again only while nothing was chosen.
    let existing: Option<RatingRecord> = shared
        .store
        .get_record(&record_key(nonce))
        .await
        .map_err(host_unavailable)?;
    if existing.as_ref().is_none_or(|r| r.score.is_none()) {
        shared
            .store
            .put_record(&record_key(nonce), &record)
            .await
            .map_err(host_unavailable)?;
    }
    let entry = Entry::Rating {
        id: remote_id.to_owned(),
        question: request.question.clone(),
        choices: request
            .choices
            .iter()
            .map(|c| RatingChoiceEntry {
                score: c.score,
                label: c.label.clone(),
                payload: c.payload.clone(),
            })
            .collect(),
        ts: now_ms(),
    };
    let seq = shared
        .store
        .append(visitor, key, &entry)
        .await
        .map_err(host_unavailable)?;
    publish(shared, visitor, &entry, seq);
    Ok(())
}

/// The body of `POST /api/v1/rating`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChooseRequest {
    pub payload: String,
}

/// `POST /api/v1/rating`: the visitor clicked a star.
pub async fn choose(
    State(state): State<AppState>,
    Authed { visitor, .. }: Authed,
    JsonBody(body): JsonBody<ChooseRequest>,
) -> Result<Json<Value>, ApiError> {
    let Some((nonce, score)) = rating::parse_payload(&body.payload) else {
        return Err(ApiError::bad_request(
            "invalid_payload",
            "That is not a rating choice.",
        ));
    };
    let key = record_key(nonce);
    let record: RatingRecord = match state.store.get_record::<RatingRecord>(&key).await? {
        Some(r) if r.visitor == visitor.id => r,
        _ => {
            return Err(ApiError::NotFound(
                "There is no such rating request in this chat.".into(),
            ))
        }
    };
    match record.score {
        Some(chosen) if chosen == score => {
            return Ok(Json(
                json!({ "id": record.id, "score": score, "seq": record.rated_seq }),
            ));
        }
        Some(_) => {
            return Err(ApiError::unprocessable(
                "already_rated",
                "You have already rated this conversation.",
            ))
        }
        None => {}
    }
    state.limiter.check(&visitor.id)?;
    let press = format!("{}.r{score}", record.id);
    let ts = now_ms();
    hand_over(
        &state,
        &visitor,
        format!("rate.{press}"),
        ts,
        InboundEvent::Choice {
            remote_id: press,
            payload: body.payload.clone(),
        },
    )
    .await?;
    let entry = Entry::Rated {
        id: record.id.clone(),
        score,
        ts,
    };
    // Keyed by the request: of two clicks racing, the log keeps the first.
    let seq = state
        .store
        .append(&visitor.id, &format!("rated.{}", record.id), &entry)
        .await?;
    let record = RatingRecord {
        score: Some(score),
        rated_seq: seq,
        ..record
    };
    state.store.put_record(&key, &record).await?;
    publish(&state, &visitor.id, &entry, seq);
    Ok(Json(json!({ "id": record.id, "score": score, "seq": seq })))
}
