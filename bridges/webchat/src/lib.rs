//! Switchboard's website chat channel: an embeddable widget, a JSON API and a live event stream.
//!
//! A company puts one tag on its site —
//! `<script src="https://bridge.example/webchat/widget.js" async></script>` — and every visitor
//! who writes gets a conversation (account = the configured `account`, chat = the visitor id)
//! that the core maps to a Matrix room. Operators answer from Matrix; [`Channel::send`] writes
//! their messages into the visitor's transcript and pushes them to the open page.
//!
//! Map of the crate, in the order a request travels:
//!
//! * [`config`] — the `channels.webchat` section.
//! * [`widget`] — `widget.js` and the `/demo` page (static, from `assets/`).
//! * `auth` — the visitor token (bearer header; `?token=` for SSE and downloads); `session` —
//!   signed tokens, so a new session stores nothing until the visitor first writes; `secret`
//!   — the installation's MAC keys (sessions, proof-of-work challenges).
//! * `api` — JSON endpoints: session, messages, edit/delete, typing, read, history.
//! * `files` — uploads (size-limited, sanitised names) and access-checked downloads.
//! * `inbound` — visitor actions to the core: `Host::receive` first, then transcript and push.
//! * `outbound` — operator actions to the visitor (`send`, `typing`, `mark_read`).
//! * `rating` — the team's rating request shown as stars, and the visitor's click.
//! * `events` — the Server-Sent Events stream (replay from the transcript, then live).
//! * `transcript`, `store`, `hub` — the durable transcript and records (through the `Host`),
//!   and the in-memory live fan-out.
//! * [`parse`], [`sanitize`], `ratelimit`, `error` — request bodies decoded and checked, input
//!   clean-up (both pure and public, for the fuzz targets in `fuzz/`), per-visitor limits, JSON
//!   errors ([`ApiError`]); `limits` — per client address and overall (sessions, new
//!   conversations, uploads, event streams), with the client address taken safely.
//!
//! The wire format is documented for third-party widgets in `docs/webchat.md`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::routing::{get, patch, post, put};
use axum::Router;
use switchboard_channel::{Capabilities, ChannelError, Formatting, Host};
use switchboard_kit::lifecycle::ChannelOwn;
use tower_http::cors::{AllowOrigin, CorsLayer};

mod api;
mod auth;
pub mod challenge;
pub mod config;
mod error;
mod events;
mod files;
mod hub;
mod inbound;
mod limits;
mod outbound;
pub mod parse;
mod ratelimit;
mod rating;
pub mod sanitize;
mod secret;
mod session;
mod state;
mod store;
mod transcript;
mod widget;

pub use config::WebchatConfig;
pub use error::ApiError;

use crate::config::MAX_TEXT_CHARS;
use crate::state::{AppState, Shared};

/// Largest JSON request body (a 10 000-character message with escapes fits easily).
const JSON_BODY_LIMIT: usize = 256 * 1024;

switchboard_kit::channel_struct! {
    /// The web chat channel.
    pub struct Webchat {
        config: WebchatConfig,
        running: Arc<Shared>,
        label: "web chat",
    }
    impl Channel {
        name: "webchat",
        send: |shared, outbound| outbound::send(shared, outbound).await,
        typing: |shared, conversation, active| outbound::typing(shared, conversation, active),
        mark_read: |shared, conversation, remote_id| {
            outbound::mark_read(shared, conversation, remote_id).await
        },
        customer_left: |shared, conversation| shared.customer_left(conversation),
    }
}

/// Browsers may call the API from `allowed_origins` (any when it contains `"*"`).
fn cors(config: &WebchatConfig) -> CorsLayer {
    let origins = if config.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// The channel's routes, relative to where the core nests them (`/webchat`).
fn router(state: AppState) -> Router {
    let upload_limit = state
        .config
        .max_upload_bytes
        .saturating_add(files::BODY_LIMIT_SLACK);
    let upload_limit = usize::try_from(upload_limit).unwrap_or(usize::MAX);
    let json_api = Router::new()
        .route("/api/v1/config", get(api::config))
        .route("/api/v1/session", post(api::session))
        .route("/api/v1/challenge", get(api::challenge))
        .route(
            "/api/v1/messages",
            get(api::history).post(api::post_message),
        )
        .route(
            "/api/v1/messages/{id}",
            patch(api::edit_message).delete(api::delete_message),
        )
        .route(
            "/api/v1/messages/{id}/reaction",
            put(api::put_reaction).delete(api::delete_reaction),
        )
        .route("/api/v1/rating", post(rating::choose))
        .route("/api/v1/typing", post(api::typing))
        .route("/api/v1/read", post(api::read))
        .route("/api/v1/events", get(events::stream))
        .route("/api/v1/files/{file_id}", get(files::download))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT));
    let uploads = Router::new()
        .route("/api/v1/files", post(files::upload))
        .layer(DefaultBodyLimit::max(upload_limit));
    Router::new()
        .route("/widget.js", get(widget::script))
        .route("/demo", get(widget::demo))
        .merge(json_api)
        .merge(uploads)
        .fallback(api::not_found)
        .layer(cors(&state.config))
        .with_state(state)
}

/// Drop idle rate-limiter keys now and then, for as long as the channel exists.
fn spawn_limiter_sweeper(shared: Weak<Shared>) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(ratelimit::SWEEP_INTERVAL);
        loop {
            interval.tick().await;
            match shared.upgrade() {
                Some(shared) => {
                    shared.limiter.sweep();
                    shared.limits.sweep();
                    let away = i64::try_from(shared.config.away_after_secs.saturating_mul(1000))
                        .unwrap_or(i64::MAX);
                    shared
                        .limits
                        .forget_departures(switchboard_kit::now_ms().saturating_sub(away));
                }
                None => return,
            }
        }
    });
}

#[async_trait]
impl ChannelOwn for Webchat {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            formatting: Formatting::Html,
            max_file_size: Some(self.config.max_upload_bytes),
            // Our own widget: the same limit with files.
            max_text_length: Some(MAX_TEXT_CHARS),
            edits: true,
            deletes: true,
            replies: true,
            read_receipts: true,
            typing: true,
            reactions: true,
            // Stars in the widget ([`rating`]).
            rating: switchboard_channel::RatingStyle::Native,
            ..Capabilities::default()
        }
    }

    async fn start(self: Arc<Self>, host: Arc<dyn Host>) -> Result<Option<Router>, ChannelError> {
        let shared = Arc::new(Shared::new(self.config.clone(), host));
        self.running.set(Arc::clone(&shared))?;
        spawn_limiter_sweeper(Arc::downgrade(&shared));
        if self.config.public_url.is_none() {
            tracing::warn!("webchat: no public_url; file links will be relative to the page");
        }
        tracing::info!(base = %shared.base, account = %self.config.account, "webchat: ready");
        Ok(Some(router(shared)))
    }
}
