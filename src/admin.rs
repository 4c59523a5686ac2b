//! The admin HTTP API, `/_switchboard/admin/v1`, mounted on the bridge's shared HTTP server.
//!
//! This module is only the HTTP side: it authenticates the caller, turns paths and JSON bodies
//! into calls of the service layer ([`crate::service`]) — the same functions the chat commands
//! call, which check permissions — and turns their answers and errors into JSON. Nothing here
//! decides who may do what.
//!
//! - **Auth**: `Authorization: Bearer <token>`. The admin secret (`admin.secret`, compared in
//!   constant time) acts as an admin; any other token is asked of the homeserver (`whoami` with
//!   that token) and the user it names acts with their level on this bridge, as in the chat.
//! - **Errors**: `{"error": "<code>", "message": "<for a person>"}` with `unauthorized` (401),
//!   `forbidden` (403), `not_found` (404), `invalid` (400), `homeserver` (502) or `store` (503).
//! - **OpenAPI**: [`ApiDoc`] is generated from the handlers' annotations and served at
//!   `/_switchboard/admin/v1/openapi.json`; `docs/openapi.json` is its committed copy (a test
//!   fails when they differ; `switchboard openapi > docs/openapi.json` regenerates it).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::bridge::Bridge;
use crate::commands::Command;
use crate::service::conversations::{self, DeadLetterView, QueueEntry};
use crate::service::system::{self, ChannelView, Status};
use crate::service::teams::{
    self, DryRunRequest, DryRunResult, MemberRole, OperatorView, RuleSource, TeamChange, TeamView,
};
use crate::service::{authorize, Action, Actor, ServiceError};
use crate::store::canned::{CannedRow, Scope};

/// Where the API lives.
pub const PREFIX: &str = "/_switchboard/admin/v1";

/// The API's routes, to merge into the bridge's router.
pub fn routes() -> Router<Arc<Bridge>> {
    let api = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/status", get(status))
        .route("/channels", get(channels))
        .route("/channels/{channel}/check", post(check_channel))
        .route("/teams", get(list_teams))
        .route("/teams/{team}", get(get_team).patch(patch_team))
        .route(
            "/teams/{team}/members/{user}",
            put(put_member).delete(delete_member),
        )
        .route(
            "/teams/{team}/rules",
            get(get_rules).post(add_rule).delete(reset_rules),
        )
        .route(
            "/teams/{team}/rules/{number}",
            axum::routing::delete(remove_rule),
        )
        .route("/routing/dry-run", post(dry_run))
        .route("/operators", get(operators))
        .route("/queue", get(queue))
        .route("/conversations/{id}/assign", post(assign))
        .route("/conversations/{id}/transfer", post(transfer))
        .route("/conversations/{id}/resolve", post(resolve))
        .route("/dead-letters", get(dead_letters))
        .route("/dead-letters/{id}/resend", post(resend))
        .route("/canned", get(list_canned).post(add_canned))
        .route("/canned/{name}", put(edit_canned).delete(remove_canned))
        .route("/reports", get(report))
        .fallback(not_found);
    Router::new().nest(PREFIX, api)
}

/// The OpenAPI document of this API, generated from the code.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard admin API",
        description = "Administer a Switchboard bridge: status, channels, teams, routing rules, operators, the unworked queue, conversations, dead letters, canned replies and reports. Every action is the one the `!sb` chat commands do, with the same permissions. Authenticate with `Authorization: Bearer <token>`: the admin secret (`admin.secret`), or an operator's Matrix access token.",
        license(name = "AGPL-3.0-or-later")
    ),
    paths(
        status, channels, check_channel, list_teams, get_team, patch_team, put_member,
        delete_member, get_rules, add_rule, reset_rules, remove_rule, dry_run, operators, queue,
        assign, transfer, resolve, dead_letters, resend, list_canned, add_canned, edit_canned,
        remove_canned, report
    ),
    components(schemas(ApiError)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as served and committed (pretty JSON with a final newline).
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    // Paths in the document are the full ones a client calls.
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(p, item)| (format!("{PREFIX}{p}"), item))
        .collect();
    let mut text = doc.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

/// The error envelope of every refusal.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    /// `unauthorized`, `forbidden`, `not_found`, `invalid`, `homeserver` or `store`.
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
}

/// An error answer.
pub struct Failure(StatusCode, &'static str, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let Failure(status, error, message) = self;
        (
            status,
            Json(ApiError {
                error: error.into(),
                message,
            }),
        )
            .into_response()
    }
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        let (status, code) = match &e {
            ServiceError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ServiceError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            ServiceError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store"),
            ServiceError::Homeserver(_) => (StatusCode::BAD_GATEWAY, "homeserver"),
        };
        Failure(status, code, e.to_string())
    }
}

async fn not_found() -> Failure {
    Failure(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such endpoint; the API is described at {PREFIX}/openapi.json"),
    )
}

type Answer<T> = Result<Json<T>, Failure>;

/// axum's extractors with their refusals in the API's envelope (`invalid`), not plain text.
macro_rules! enveloped {
    ($name:ident, $inner:ident, $trait:ident, $method:ident, $input:ty, $what:literal) => {
        #[doc = concat!("`", stringify!($inner), "`, refused in the API's envelope (", $what, ").")]
        pub struct $name<T>(pub T);

        impl<T, S> axum::extract::$trait<S> for $name<T>
        where
            T: serde::de::DeserializeOwned + Send,
            S: Send + Sync,
        {
            type Rejection = Failure;

            async fn $method(input: $input, state: &S) -> Result<Self, Failure> {
                match $inner::<T>::$method(input, state).await {
                    Ok($inner(value)) => Ok($name(value)),
                    Err(rejection) => Err(Failure(
                        rejection.status(),
                        "invalid",
                        format!("{}: {}", $what, rejection.body_text()),
                    )),
                }
            }
        }
    };
}

enveloped!(
    ApiJson,
    Json,
    FromRequest,
    from_request,
    axum::extract::Request,
    "the JSON body"
);
enveloped!(
    ApiPath,
    Path,
    FromRequestParts,
    from_request_parts,
    &mut Parts,
    "the path"
);
enveloped!(
    ApiQuery,
    Query,
    FromRequestParts,
    from_request_parts,
    &mut Parts,
    "the query"
);

/// The caller, authenticated (an extractor: handlers that take it refuse anonymous calls).
pub struct Caller(pub Actor);

impl FromRequestParts<Arc<Bridge>> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut Parts,
        bridge: &Arc<Bridge>,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: &str| Failure(StatusCode::UNAUTHORIZED, "unauthorized", m.into());
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                unauthorized("send `Authorization: Bearer <token>`: the admin secret or your Matrix access token")
            })?;
        if let Some(secret) = &bridge.config.admin.secret {
            if switchboard_kit::constant_time_eq(token.as_bytes(), secret.as_bytes()) {
                return Ok(Caller(Actor::admin_secret(bridge)));
            }
        }
        let user = match bridge.homeserver.whoami_token(token).await {
            Ok(user) => user,
            Err(e) if e.errcode().is_some() => {
                return Err(unauthorized(
                    "the token is neither the admin secret nor a Matrix access token the homeserver knows",
                ))
            }
            Err(e) => {
                return Err(Failure(
                    StatusCode::BAD_GATEWAY,
                    "homeserver",
                    format!("cannot ask the homeserver whose token this is: {e}"),
                ))
            }
        };
        match Actor::user(bridge, &user).await {
            Some(actor) => Ok(Caller(actor)),
            None => Err(Failure(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("{user} is not an operator of this bridge."),
            )),
        }
    }
}

/// A change's answer: the sentence the chat would have answered with.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    pub message: String,
}

/// Post what an API call changed in the conversation's room, as the chat command's answer
/// would be, so the operators there see it.
async fn tell_room(bridge: &Bridge, room: Option<&str>, text: &str) {
    let Some(room) = room else { return };
    let txn = format!("sb-admin-{:016x}", rand::random::<u64>());
    let content = crate::matrix::content::notice(&format!("{text} (admin API)"));
    if let Err(e) = bridge
        .homeserver
        .send(room, "m.room.message", &txn, &content, None, None)
        .await
    {
        tracing::warn!(room, error = %e, "cannot post the admin API's change in the room");
    }
}

#[utoipa::path(get, path = "/status", tag = "status",
    responses((status = 200, body = Status), (status = 401, body = ApiError)))]
async fn status(State(bridge): State<Arc<Bridge>>, Caller(actor): Caller) -> Answer<Status> {
    Ok(Json(system::status(&bridge, &actor).await?))
}

#[utoipa::path(get, path = "/channels", tag = "channels",
    responses((status = 200, body = Vec<ChannelView>), (status = 401, body = ApiError)))]
async fn channels(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
) -> Answer<Vec<ChannelView>> {
    Ok(Json(system::channels(&bridge, &actor).await?))
}

/// Check the channel against its network now (admins).
#[utoipa::path(post, path = "/channels/{channel}/check", tag = "channels",
    params(("channel" = String, Path, description = "channel name, e.g. `telegram`")),
    responses((status = 200, body = ChannelView), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
async fn check_channel(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath(channel): ApiPath<String>,
) -> Answer<ChannelView> {
    Ok(Json(
        system::check_channel(&bridge, &actor, &channel).await?,
    ))
}

#[utoipa::path(get, path = "/teams", tag = "teams",
    responses((status = 200, body = Vec<TeamView>), (status = 403, body = ApiError)))]
async fn list_teams(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
) -> Answer<Vec<TeamView>> {
    Ok(Json(teams::list(&bridge, &actor).await?))
}

#[utoipa::path(get, path = "/teams/{team}", tag = "teams",
    params(("team" = String, Path)),
    responses((status = 200, body = TeamView), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
async fn get_team(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath(team): ApiPath<String>,
) -> Answer<TeamView> {
    Ok(Json(teams::get(&bridge, &actor, &team).await?))
}

/// Working hours of some days.
#[derive(Debug, Deserialize, ToSchema)]
pub struct HoursChange {
    /// `mon-fri`, `sat`, `mon,wed`…
    pub days: String,
    /// `09:00-18:00` or `closed`.
    pub span: String,
}

/// Changes to a team; fields left out stay as they are. Applied in the order listed here,
/// stopping at the first that is refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamPatch {
    /// Working time before escalation, like `2h` or `30m`.
    #[serde(default)]
    pub escalate_after: Option<String>,
    /// The out-of-hours auto-reply; empty: none.
    #[serde(default)]
    pub auto_reply: Option<String>,
    /// The email signature; empty: none.
    #[serde(default)]
    pub signature: Option<String>,
    /// IANA time zone, like `Europe/Berlin`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Forget earlier hours changes (back to the config's week) before applying `hours`.
    #[serde(default)]
    pub hours_reset: bool,
    #[serde(default)]
    pub hours: Vec<HoursChange>,
    /// Dates (YYYY-MM-DD) to add as holidays.
    #[serde(default)]
    pub holidays_add: Vec<String>,
    #[serde(default)]
    pub holidays_remove: Vec<String>,
}

#[utoipa::path(patch, path = "/teams/{team}", tag = "teams",
    params(("team" = String, Path)), request_body = TeamPatch,
    responses((status = 200, body = TeamView), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
async fn patch_team(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath(team): ApiPath<String>,
    ApiJson(patch): ApiJson<TeamPatch>,
) -> Answer<TeamView> {
    let mut changes = Vec::new();
    if let Some(v) = patch.escalate_after {
        changes.push(TeamChange::EscalateAfter(v));
    }
    if let Some(v) = patch.auto_reply {
        changes.push(TeamChange::AutoReply(Some(v).filter(|s| !s.is_empty())));
    }
    if let Some(v) = patch.signature {
        changes.push(TeamChange::Signature(Some(v).filter(|s| !s.is_empty())));
    }
    if let Some(v) = patch.timezone {
        changes.push(TeamChange::TimeZone(v));
    }
    if patch.hours_reset {
        changes.push(TeamChange::HoursReset);
    }
    for h in patch.hours {
        changes.push(TeamChange::Hours {
            days: h.days,
            span: h.span,
        });
    }
    for date in patch.holidays_add {
        changes.push(TeamChange::Holiday { date, add: true });
    }
    for date in patch.holidays_remove {
        changes.push(TeamChange::Holiday { date, add: false });
    }
    // Refused before anything changes when the caller may not change teams at all.
    authorize(&actor, Action::Command(Command::Team))?;
    for change in changes {
        teams::change(&bridge, &actor, &team, change).await?;
    }
    Ok(Json(teams::get(&bridge, &actor, &team).await?))
}

/// A member's role.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MemberBody {
    /// `member` or `lead`.
    pub role: MemberRole,
}

#[utoipa::path(put, path = "/teams/{team}/members/{user}", tag = "teams",
    params(("team" = String, Path), ("user" = String, Path, description = "Matrix user id")),
    request_body = MemberBody,
    responses((status = 200, body = TeamView), (status = 403, body = ApiError)))]
async fn put_member(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath((team, user)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<MemberBody>,
) -> Answer<TeamView> {
    let role = match body.role {
        MemberRole::Removed => {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                "invalid",
                "role is `member` or `lead`; DELETE removes".into(),
            ))
        }
        r => r,
    };
    teams::change(&bridge, &actor, &team, TeamChange::Member { user, role }).await?;
    Ok(Json(teams::get(&bridge, &actor, &team).await?))
}

#[utoipa::path(delete, path = "/teams/{team}/members/{user}", tag = "teams",
    params(("team" = String, Path), ("user" = String, Path)),
    responses((status = 200, body = TeamView), (status = 403, body = ApiError)))]
async fn delete_member(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath((team, user)): ApiPath<(String, String)>,
) -> Answer<TeamView> {
    let change = TeamChange::Member {
        user,
        role: MemberRole::Removed,
    };
    teams::change(&bridge, &actor, &team, change).await?;
    Ok(Json(teams::get(&bridge, &actor, &team).await?))
}

#[utoipa::path(get, path = "/teams/{team}/rules", tag = "routing",
    params(("team" = String, Path)),
    responses((status = 200, body = Vec<crate::config::RuleConfig>), (status = 403, body = ApiError)))]
async fn get_rules(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath(team): ApiPath<String>,
) -> Answer<Vec<crate::config::RuleConfig>> {
    Ok(Json(teams::get(&bridge, &actor, &team).await?.rules))
}

#[utoipa::path(post, path = "/teams/{team}/rules", tag = "routing",
    params(("team" = String, Path)), request_body = crate::config::RuleConfig,
    responses((status = 200, body = Vec<crate::config::RuleConfig>), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
async fn add_rule(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath(team): ApiPath<String>,
    ApiJson(rule): ApiJson<crate::config::RuleConfig>,
) -> Answer<Vec<crate::config::RuleConfig>> {
    let change = TeamChange::RuleAdd(RuleSource::Rule(rule));
    teams::change(&bridge, &actor, &team, change).await?;
    Ok(Json(teams::get(&bridge, &actor, &team).await?.rules))
}

/// Back to the config's rules.
#[utoipa::path(delete, path = "/teams/{team}/rules", tag = "routing",
    params(("team" = String, Path)),
    responses((status = 200, body = Vec<crate::config::RuleConfig>), (status = 403, body = ApiError)))]
async fn reset_rules(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath(team): ApiPath<String>,
) -> Answer<Vec<crate::config::RuleConfig>> {
    teams::change(&bridge, &actor, &team, TeamChange::RulesReset).await?;
    Ok(Json(teams::get(&bridge, &actor, &team).await?.rules))
}

#[utoipa::path(delete, path = "/teams/{team}/rules/{number}", tag = "routing",
    params(("team" = String, Path), ("number" = usize, Path, description = "1-based, as listed")),
    responses((status = 200, body = Vec<crate::config::RuleConfig>), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
async fn remove_rule(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath((team, number)): ApiPath<(String, usize)>,
) -> Answer<Vec<crate::config::RuleConfig>> {
    teams::change(&bridge, &actor, &team, TeamChange::RuleRemove(number)).await?;
    Ok(Json(teams::get(&bridge, &actor, &team).await?.rules))
}

/// Where would a new conversation starting with this message go? Decided by the function that
/// routes real conversations; nothing is stored.
#[utoipa::path(post, path = "/routing/dry-run", tag = "routing",
    request_body = DryRunRequest,
    responses((status = 200, body = DryRunResult), (status = 403, body = ApiError)))]
async fn dry_run(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiJson(request): ApiJson<DryRunRequest>,
) -> Answer<DryRunResult> {
    Ok(Json(teams::dry_run(&bridge, &actor, &request).await?))
}

#[utoipa::path(get, path = "/operators", tag = "operators",
    responses((status = 200, body = Vec<OperatorView>), (status = 401, body = ApiError)))]
async fn operators(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
) -> Answer<Vec<OperatorView>> {
    Ok(Json(teams::operators(&bridge, &actor).await?))
}

/// Conversations waiting for an answer, oldest first.
#[utoipa::path(get, path = "/queue", tag = "conversations",
    responses((status = 200, body = Vec<QueueEntry>), (status = 401, body = ApiError)))]
async fn queue(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
) -> Answer<Vec<QueueEntry>> {
    Ok(Json(conversations::queue(&bridge, &actor).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AssignBody {
    /// The operator, `@user:server`.
    pub user: String,
}

/// Give the conversation to an operator (leads and admins).
#[utoipa::path(post, path = "/conversations/{id}/assign", tag = "conversations",
    params(("id" = i64, Path, description = "conversation id, as in the queue")),
    request_body = AssignBody,
    responses((status = 200, body = Done), (status = 400, body = ApiError), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
async fn assign(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AssignBody>,
) -> Answer<Done> {
    authorize(&actor, Action::Command(Command::Assign))?;
    let conversation = conversations::find(&bridge, id).await?;
    let message = conversations::assign(&bridge, &actor, &conversation, &body.user).await?;
    tell_room(&bridge, conversation.room_id.as_deref(), &message).await;
    Ok(Json(Done { message }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TransferBody {
    /// An operator (`@user:server`) or a team's name.
    pub to: String,
}

/// Hand the conversation to an operator or a team (its owner, or a lead).
#[utoipa::path(post, path = "/conversations/{id}/transfer", tag = "conversations",
    params(("id" = i64, Path)), request_body = TransferBody,
    responses((status = 200, body = Done), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
async fn transfer(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<TransferBody>,
) -> Answer<Done> {
    authorize(&actor, Action::Command(Command::Transfer))?;
    let conversation = conversations::find(&bridge, id).await?;
    let message = conversations::transfer(&bridge, &actor, &conversation, &body.to).await?;
    tell_room(&bridge, conversation.room_id.as_deref(), &message).await;
    Ok(Json(Done { message }))
}

#[utoipa::path(post, path = "/conversations/{id}/resolve", tag = "conversations",
    params(("id" = i64, Path)),
    responses((status = 200, body = Done), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
async fn resolve(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Answer<Done> {
    authorize(&actor, Action::Command(Command::Resolve))?;
    let conversation = conversations::find(&bridge, id).await?;
    let message = conversations::resolve(&bridge, &actor, &conversation).await?;
    tell_room(&bridge, conversation.room_id.as_deref(), &message).await;
    Ok(Json(Done { message }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// At most this many (1 to 1000; default 100).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// Messages that could not be delivered, newest first.
#[utoipa::path(get, path = "/dead-letters", tag = "dead letters", params(LimitQuery),
    responses((status = 200, body = Vec<DeadLetterView>), (status = 401, body = ApiError)))]
async fn dead_letters(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Answer<Vec<DeadLetterView>> {
    Ok(Json(
        conversations::dead_letters(&bridge, &actor, q.limit.unwrap_or(100)).await?,
    ))
}

/// Put a dead letter back in the outbox (the right `retry` needs).
#[utoipa::path(post, path = "/dead-letters/{id}/resend", tag = "dead letters",
    params(("id" = i64, Path)),
    responses((status = 200, body = Done), (status = 404, body = ApiError)))]
async fn resend(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Answer<Done> {
    let room = conversations::resend(&bridge, &actor, id).await?;
    Ok(Json(Done {
        message: format!("Resending dead letter {id} (room {room})."),
    }))
}

/// A canned reply variant.
#[derive(Debug, Serialize, ToSchema)]
pub struct CannedView {
    pub name: String,
    /// `personal`, `team` or `everyone`.
    pub scope: String,
    /// The owner of a personal reply, the team of a team's.
    pub owner: Option<String>,
    /// Language code; empty for the default variant.
    pub language: String,
    /// The text (a template: `{{ first_name }}`…).
    pub text: String,
}

fn canned_view(row: CannedRow) -> CannedView {
    let (scope, owner) = row.scope.columns();
    CannedView {
        name: row.name,
        scope: scope.into(),
        owner: Some(owner.to_string()).filter(|o| !o.is_empty()),
        language: row.language,
        text: row.body,
    }
}

/// Every canned reply variant the caller may use.
#[utoipa::path(get, path = "/canned", tag = "canned replies",
    responses((status = 200, body = Vec<CannedView>), (status = 401, body = ApiError)))]
async fn list_canned(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
) -> Answer<Vec<CannedView>> {
    authorize(&actor, Action::Command(Command::Canned))?;
    let rows = crate::canned::visible(&bridge, &actor.user, actor.level)
        .await
        .map_err(ServiceError::from)?;
    Ok(Json(rows.into_iter().map(canned_view).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CannedBody {
    /// Lowercase letters, digits, `-` and `_`.
    #[serde(default)]
    pub name: Option<String>,
    /// `personal` (default), `everyone` or a team's name.
    #[serde(default)]
    pub scope: Option<String>,
    /// Language code (`en`, `ru`, `pt-br`); none for the default variant.
    #[serde(default)]
    pub language: Option<String>,
    pub text: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CannedQuery {
    /// `personal` (default), `everyone` or a team's name.
    #[serde(default)]
    pub scope: Option<String>,
    /// One language's variant only; all of them when left out.
    #[serde(default)]
    pub language: Option<String>,
}

fn scope_of(bridge: &Bridge, actor: &Actor, word: Option<&str>) -> Result<Scope, ServiceError> {
    match word.unwrap_or("personal") {
        "personal" => Ok(Scope::Personal(actor.user.clone())),
        "everyone" => Ok(Scope::Everyone),
        team if bridge.teams.get(team).is_some() => Ok(Scope::Team(team.to_string())),
        other => Err(ServiceError::Invalid(format!(
            "scope `{other}`: say personal, everyone or a team's name"
        ))),
    }
}

fn language_of(word: Option<&str>) -> Result<String, ServiceError> {
    match word {
        None | Some("") => Ok(String::new()),
        Some(w) => crate::canned::normalize_language(w).ok_or_else(|| {
            ServiceError::Invalid(format!(
                "`{w}` is not a language code (`en`, `ru`, `pt-br`)"
            ))
        }),
    }
}

async fn save_canned(
    bridge: &Bridge,
    actor: &Actor,
    name: String,
    body: CannedBody,
    new: bool,
) -> Answer<CannedView> {
    authorize(actor, Action::Command(Command::Canned))?;
    let row = CannedRow {
        scope: scope_of(bridge, actor, body.scope.as_deref())?,
        name: name.to_lowercase(),
        language: language_of(body.language.as_deref())?,
        body: body.text,
        attachment: None,
        updated_by: actor.user.clone(),
        updated_at: 0,
    };
    crate::canned::save(bridge, &actor.user, actor.level, row.clone(), new)
        .await
        .map_err(ServiceError::from)?;
    Ok(Json(canned_view(row)))
}

/// Add a canned reply (personal ones: anyone; a team's: its leads and admins; everyone's:
/// admins).
#[utoipa::path(post, path = "/canned", tag = "canned replies", request_body = CannedBody,
    responses((status = 200, body = CannedView), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
async fn add_canned(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<CannedBody>,
) -> Answer<CannedView> {
    let Some(name) = body.name.clone() else {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "invalid",
            "`name` is required".into(),
        ));
    };
    save_canned(&bridge, &actor, name, body, true).await
}

/// Change a canned reply's text.
#[utoipa::path(put, path = "/canned/{name}", tag = "canned replies",
    params(("name" = String, Path)), request_body = CannedBody,
    responses((status = 200, body = CannedView), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
async fn edit_canned(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<CannedBody>,
) -> Answer<CannedView> {
    save_canned(&bridge, &actor, name, body, false).await
}

#[utoipa::path(delete, path = "/canned/{name}", tag = "canned replies",
    params(("name" = String, Path), CannedQuery),
    responses((status = 200, body = Done), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
async fn remove_canned(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<CannedQuery>,
) -> Answer<Done> {
    authorize(&actor, Action::Command(Command::Canned))?;
    let scope = scope_of(&bridge, &actor, q.scope.as_deref())?;
    let language = language_of(q.language.as_deref())?;
    let language = Some(language.as_str()).filter(|l| !l.is_empty());
    let n = crate::canned::remove(&bridge, &actor.user, actor.level, &scope, &name, language)
        .await
        .map_err(ServiceError::from)?;
    Ok(Json(Done {
        message: format!("Removed {n} variant(s) of `{name}` ({scope})."),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `today` (default), `7d`, `30d`, `month` or `YYYY-MM`.
    #[serde(default)]
    pub period: Option<String>,
    /// `channel`, `operator` or `team`.
    #[serde(default)]
    pub by: Option<String>,
}

/// The figures of a group (or of the whole period); durations in ms (definitions in
/// docs/reports.md), `null` when nothing was measured.
#[derive(Debug, Serialize, ToSchema)]
pub struct FiguresView {
    /// The group (a channel, an operator or a team); `all` for the total.
    pub group: String,
    pub new: u64,
    pub resolved: u64,
    pub reopened: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub first_response_median_ms: Option<i64>,
    pub first_response_p90_ms: Option<i64>,
    pub first_response_working_median_ms: Option<i64>,
    pub first_response_working_p90_ms: Option<i64>,
    /// Share of first responses within the team's target, in whole percent.
    pub first_response_within_target_percent: Option<u64>,
    pub resolution_median_ms: Option<i64>,
    pub resolution_working_median_ms: Option<i64>,
    /// Ratings given (CSAT, docs/csat.md), and how many were 4 or 5.
    pub ratings: u64,
    pub ratings_4_or_5: u64,
    /// CSAT score: the share of ratings that were 4 or 5, in whole percent.
    pub csat_percent: Option<u64>,
    /// Rating questions sent, and ratings per question in whole percent.
    pub ratings_asked: u64,
    pub rating_response_rate_percent: Option<u64>,
}

fn figures_view(group: &str, f: &crate::reports::Figures) -> FiguresView {
    FiguresView {
        group: group.to_string(),
        new: f.new,
        resolved: f.resolved,
        reopened: f.reopened,
        messages_in: f.messages_in,
        messages_out: f.messages_out,
        first_response_median_ms: f.first_response_wall.median(),
        first_response_p90_ms: f.first_response_wall.p90(),
        first_response_working_median_ms: f.first_response_working.median(),
        first_response_working_p90_ms: f.first_response_working.p90(),
        first_response_within_target_percent: f.within_target_percent(),
        resolution_median_ms: f.resolution_wall.median(),
        resolution_working_median_ms: f.resolution_working.median(),
        ratings: f.rated(),
        ratings_4_or_5: f.ratings[3] + f.ratings[4],
        csat_percent: f.csat_percent(),
        ratings_asked: f.ratings_asked,
        rating_response_rate_percent: f.response_rate_percent(),
    }
}

/// A report as JSON: the same figures as `!sb report` (definitions in docs/reports.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    /// Start and end of the period (ms since the epoch; the end is excluded).
    pub from: i64,
    pub to: i64,
    pub group_by: Option<String>,
    /// One per group (none without `by`).
    pub rows: Vec<FiguresView>,
    pub total: FiguresView,
    /// Customers who wrote in the period, and per channel how many.
    pub customers: u64,
    pub channel_customers: std::collections::BTreeMap<String, u64>,
    /// Conversations waiting for an answer now; the oldest's wait (ms).
    pub unworked_now: u64,
    pub oldest_unworked_ms: Option<i64>,
}

/// Figures of a period (leads: their teams; admins: all).
#[utoipa::path(get, path = "/reports", tag = "reports", params(ReportQuery),
    responses((status = 200, body = ReportView), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
async fn report(
    State(bridge): State<Arc<Bridge>>,
    Caller(actor): Caller,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Answer<ReportView> {
    use crate::reports::{self, GroupBy};
    authorize(&actor, Action::Command(Command::Report))?;
    let invalid = |m: String| Failure(StatusCode::BAD_REQUEST, "invalid", m);
    let word = q.period.as_deref().unwrap_or("today");
    let period = reports::period_for(&bridge, &actor.user, actor.level, word)
        .await
        .map_err(ServiceError::from)?
        .ok_or_else(|| {
            invalid(format!(
                "period `{word}`: say today, 7d, 30d, month or YYYY-MM"
            ))
        })?;
    let group_by = match q.by.as_deref() {
        None => None,
        Some(w) => Some(
            GroupBy::parse(w)
                .ok_or_else(|| invalid(format!("by `{w}`: say channel, operator or team")))?,
        ),
    };
    let report = reports::build(&bridge, &actor.user, actor.level, &period, group_by)
        .await
        .map_err(ServiceError::from)?;
    let rows = report
        .rows
        .iter()
        .map(|(group, f)| figures_view(group, f))
        .collect();
    Ok(Json(ReportView {
        from: period.from,
        to: period.to,
        group_by: q.by,
        rows,
        total: figures_view("all", &report.total),
        customers: report.customers,
        channel_customers: report.channel_customers.clone(),
        unworked_now: report.unworked_now,
        oldest_unworked_ms: report.oldest_unworked,
    }))
}

#[cfg(test)]
mod tests {
    /// Each `{name}` of a path is declared as a path parameter, and nothing else is.
    #[test]
    fn path_parameters_are_declared_where_they_are() {
        let doc: serde_json::Value = serde_json::from_str(&super::openapi_json()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 19, "{}", paths.len());
        for (path, item) in paths {
            let mut named: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            named.sort();
            for (method, op) in item.as_object().unwrap() {
                let mut declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                declared.sort();
                assert_eq!(declared, named, "{method} {path}");
            }
        }
    }

    /// CI fails when the API changes and docs/openapi.json was not regenerated with it.
    #[test]
    fn the_committed_openapi_document_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == super::openapi_json(),
            "docs/openapi.json differs from the API in the code: run `switchboard openapi > docs/openapi.json` (cargo run -- openapi > docs/openapi.json) and commit it"
        );
    }
}
