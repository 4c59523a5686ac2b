//! The JSON endpoints of `/webchat/api/v1`: widget configuration, sessions, messages (post,
//! history, edit, delete), typing and read receipts. Files are in [`crate::files`], the live
//! event stream in [`crate::events`].
//!
//! Handlers are thin: parse and validate the request (every failure is an [`ApiError`] with a
//! JSON body), apply the rate limit where posting, and hand the work to [`crate::inbound`].
//! Request bodies are read by [`JsonBody`], which turns malformed JSON into a readable 400
//! instead of axum's plain-text rejection; decoding and validating them is [`crate::parse`]
//! (pure functions, fuzzed).

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{bearer, Authed};
use crate::config::MAX_TEXT_CHARS;
use crate::error::ApiError;
use crate::inbound::{self, Accepted, NewMessage};
use crate::limits::ClientAddr;
use crate::parse::{
    decode_json, EditMessage, MessageInput, PostMessage, ReactionRequest, ReadRequest,
    SessionRequest, TypingRequest,
};
use crate::state::AppState;
use crate::store::{random_hex, Visitor};
use crate::transcript;
use switchboard_kit::now_ms;

/// Most history entries returned by one request.
pub const MAX_HISTORY_PAGE: i64 = 500;

/// A JSON request body; an empty body counts as `{}`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge {
                    code: "body_too_large",
                    message: "The request body is too large.".into(),
                }
            } else {
                ApiError::bad_request("invalid_body", rejection.body_text())
            }
        })?;
        decode_json(&bytes).map(JsonBody)
    }
}

#[derive(Deserialize)]
pub struct ConfigQuery {
    /// The browser's languages (`navigator.languages` joined by commas).
    #[serde(default)]
    lang: Option<String>,
}

/// `GET /api/v1/config?lang=<languages>` (no token): what a widget needs to draw itself — the
/// greeting in the visitor's language (from `lang`, else `Accept-Language`), and whether the
/// team works now, when it opens next and how soon it usually answers (from the core's
/// `Host::availability`; left out when the store cannot say).
pub async fn config(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    query: Result<Query<ConfigQuery>, QueryRejection>,
) -> Json<Value> {
    let from_query = query.ok().and_then(|Query(q)| q.lang).unwrap_or_default();
    let mut languages = crate::parse::languages(&from_query);
    if languages.is_empty() {
        if let Some(header) = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        {
            languages = crate::parse::languages(header);
        }
    }
    let (language, greeting) = state.config.greeting_for(&languages);
    let availability = match state.host().availability(&state.config.account).await {
        Ok(a) => Some(a),
        Err(error) => {
            tracing::warn!(%error, "webchat: availability unknown");
            None
        }
    };
    Json(json!({
        "site_name": state.config.site_name,
        "greeting": greeting,
        "language": language,
        "availability": availability,
        "max_upload_bytes": state.config.max_upload_bytes,
        "max_text_length": MAX_TEXT_CHARS,
        "proof_of_work_bits": state.challenges.bits(),
    }))
}

/// `GET /api/v1/challenge` (no token): a proof-of-work challenge for a new session
/// ([`crate::challenge`]). Answered even when no proof is required (`bits` 0).
pub async fn challenge(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let challenge = state.challenges.issue(state.host().as_ref()).await?;
    Ok(Json(json!({
        "challenge": challenge,
        "bits": state.challenges.bits(),
    })))
}

fn session_body(token: &str, visitor: &Visitor) -> Json<Value> {
    Json(json!({
        "token": token,
        "visitor_id": visitor.id,
        "name": visitor.name,
        "email": visitor.email,
    }))
}

/// `POST /api/v1/session`: resume the visitor named by the bearer token (updating name and
/// e-mail when given) or, without a token or with an unknown one, start a new visitor.
///
/// A new visitor is not stored: the answer's token is signed and carries them
/// ([`crate::session`]) until their first state-changing call, so a flood of sessions that
/// never write costs the store nothing. Changing the name or e-mail of such a visitor is one:
/// it stores their records (expiring, as a silent session's do), and the token stays the same.
pub async fn session(
    State(state): State<AppState>,
    addr: ClientAddr,
    headers: axum::http::HeaderMap,
    JsonBody(mut body): JsonBody<SessionRequest>,
) -> Result<Json<Value>, ApiError> {
    let proof = body.proof.take();
    let crate::parse::SessionInput { name, email } = body.validate()?;

    if let Some(token) = bearer(&headers) {
        let found = crate::session::resolve(
            &state.store,
            &state.sessions,
            &token,
            now_ms(),
            state.silent_ttl_ms(),
        )
        .await?;
        if let Some((visitor, stored)) = found {
            let changed = (name.is_some() && name != visitor.name)
                || (email.is_some() && email != visitor.email);
            if !changed {
                return Ok(session_body(&token, &visitor));
            }
            let mut authed = Authed {
                visitor,
                token,
                stored,
            };
            authed.ensure_stored(&state).await?;
            let Authed {
                mut visitor, token, ..
            } = authed;
            visitor.name = name.or(visitor.name);
            visitor.email = email.or(visitor.email);
            state
                .store
                .save_visitor(&token, &visitor, state.silent_ttl_ms())
                .await?;
            return Ok(session_body(&token, &visitor));
        }
    }
    // A new visitor: the proof of work first (it costs the client, not us), then the limits.
    state
        .challenges
        .admit(state.host().as_ref(), proof.as_ref())
        .await?;
    state.limits.new_session(addr)?;
    // 64 random bits: short enough for ghost user ids; a collision (with a stored visitor) is
    // refused when the second one would be stored.
    let visitor = Visitor {
        id: random_hex::<8>(),
        name,
        email,
        created_ms: now_ms(),
        wrote: false,
    };
    let token = state
        .sessions
        .issue(state.host().as_ref(), &visitor)
        .await?;
    tracing::debug!(visitor = %visitor.id, "webchat: new visitor");
    Ok(session_body(&token, &visitor))
}

/// `POST /api/v1/messages`: the visitor sends a text message. Idempotent by `client_id`.
pub async fn post_message(
    State(state): State<AppState>,
    addr: ClientAddr,
    mut authed: Authed,
    JsonBody(body): JsonBody<PostMessage>,
) -> Result<Json<Accepted>, ApiError> {
    let MessageInput {
        client_id,
        text,
        reply_to,
    } = body.validate()?;
    // A retry of a message we already have is answered without counting against the limit
    // (a visitor with no records has no messages).
    if authed.stored {
        if let Some(accepted) =
            inbound::already_accepted(&state, &authed.visitor, &client_id).await?
        {
            return Ok(Json(accepted));
        }
    }
    state.limiter.check(&authed.visitor.id)?;
    if !authed.visitor.wrote {
        state.limits.new_conversation(addr)?;
    }
    inbound::check_reply_target(&state, &authed.visitor, reply_to.as_deref()).await?;
    // Only now, with every limit passed, does the session cost the store anything.
    authed.ensure_stored(&state).await?;
    let visitor = authed.visitor;
    let message = NewMessage {
        client_id,
        text,
        files: Vec::new(),
        reply_to,
    };
    inbound::accept_message(&state, &visitor, message)
        .await
        .map(Json)
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/v1/messages?after=<seq>&limit=<n>`: transcript entries after `after`, oldest first.
pub async fn history(
    State(state): State<AppState>,
    Authed { visitor, .. }: Authed,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let after = query.after.unwrap_or(0).max(0);
    let limit = query
        .limit
        .unwrap_or(MAX_HISTORY_PAGE)
        .clamp(1, MAX_HISTORY_PAGE);
    let rows = state.store.read(&visitor.id, after, limit).await?;
    let last_seq = rows.last().map_or(after, |(seq, _)| *seq);
    let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
    let events: Vec<Value> = rows
        .iter()
        .filter_map(|(seq, body)| transcript::present_raw(body, *seq, &state.base))
        .collect();
    Ok(Json(
        json!({ "events": events, "last_seq": last_seq, "more": more }),
    ))
}

/// `PATCH /api/v1/messages/{id}`: the visitor changes the text of their own message.
pub async fn edit_message(
    State(state): State<AppState>,
    Authed { visitor, .. }: Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<EditMessage>,
) -> Result<Json<Accepted>, ApiError> {
    let text = body.validate()?;
    state.limiter.check(&visitor.id)?;
    inbound::edit_message(&state, &visitor, &id, text)
        .await
        .map(Json)
}

/// `DELETE /api/v1/messages/{id}`: the visitor deletes their own message.
pub async fn delete_message(
    State(state): State<AppState>,
    Authed { visitor, .. }: Authed,
    Path(id): Path<String>,
) -> Result<Json<Accepted>, ApiError> {
    state.limiter.check(&visitor.id)?;
    inbound::delete_message(&state, &visitor, &id)
        .await
        .map(Json)
}

/// `PUT /api/v1/messages/{id}/reaction`: the visitor's reaction to an agent's message becomes
/// `key` (idempotent: the same again changes nothing).
pub async fn put_reaction(
    State(state): State<AppState>,
    Authed { visitor, .. }: Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ReactionRequest>,
) -> Result<Json<inbound::Reacted>, ApiError> {
    let key = body.validate()?;
    state.limiter.check(&visitor.id)?;
    inbound::react(&state, &visitor, &id, Some(key))
        .await
        .map(Json)
}

/// `DELETE /api/v1/messages/{id}/reaction`: the visitor takes their reaction back (idempotent).
pub async fn delete_reaction(
    State(state): State<AppState>,
    Authed { visitor, .. }: Authed,
    Path(id): Path<String>,
) -> Result<Json<inbound::Reacted>, ApiError> {
    state.limiter.check(&visitor.id)?;
    inbound::react(&state, &visitor, &id, None).await.map(Json)
}

/// `POST /api/v1/typing`: the visitor started or stopped typing (best effort, 204).
pub async fn typing(
    State(state): State<AppState>,
    Authed { visitor, .. }: Authed,
    JsonBody(body): JsonBody<TypingRequest>,
) -> StatusCode {
    let conversation = state.conversation(&visitor.id);
    state
        .host()
        .typing(&conversation, &visitor.profile(), body.active)
        .await;
    StatusCode::NO_CONTENT
}

/// `POST /api/v1/read`: the visitor has seen the agents' messages up to `up_to` (204).
pub async fn read(
    State(state): State<AppState>,
    Authed { visitor, .. }: Authed,
    JsonBody(body): JsonBody<ReadRequest>,
) -> Result<StatusCode, ApiError> {
    inbound::read_up_to(&state, &visitor, &body.up_to).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Anything else under `/webchat`.
pub async fn not_found() -> impl IntoResponse {
    ApiError::NotFound("No such endpoint.".into())
}
