//! Start-up, health and shutdown of the bridge process.
//!
//! Start-up order matters for "nothing lost": the store is opened and migrated first; channels
//! start and mount their routes; the HTTP server starts listening (so the homeserver can push
//! transactions and customers can write even while the homeserver is still coming up); then the
//! election ([`crate::leader`]) runs, and whenever this instance leads, [`leader_workers`] —
//! the relay stages ([`crate::relay`]), timers, housekeeping — resume whatever the queues hold.
//! Shutdown hands leadership over first (workers stopped, lease given up), then stops accepting,
//! gives requests in flight a moment, and leaves the rest in the store for the next leader.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use switchboard_channel::Channel;
use tokio::sync::Notify;

use crate::bridge::Bridge;
use crate::config::Config;
use crate::matrix::ghosts::Namespace;
use crate::matrix::Homeserver;
use crate::registration::Registration;
use crate::store::Store;

/// Run the bridge until the process is stopped.
pub async fn run(config: Config, channels: Vec<Arc<dyn Channel>>) -> anyhow::Result<()> {
    let (as_token, hs_token) = tokens(&config)?;
    // A SQLite store serves one instance: a second one stops here, saying why.
    let _sqlite_lock = crate::leader::lock_sqlite(&config.database.url)?;
    let instance = crate::leader::instance_id(config.ha.instance_id.as_deref());
    let metrics = crate::metrics::start(&config).await?;
    let pool_url = crate::leader::with_application_name(
        &config.database.url,
        &format!("switchboard/{instance}"),
    );
    let store = Store::connect(&pool_url, config.database.max_connections)
        .await
        .with_context(|| {
            format!(
                "database.url: cannot open {}",
                redact_url(&config.database.url)
            )
        })?;
    // Report figures for the events written before they existed (migration 0120): resumable,
    // batch by batch, before anything writes new events.
    let figured = store
        .report_figures_backfill(20_000, |n| {
            tracing::info!(events = n, "report figures: backfilling")
        })
        .await
        .context("report figures backfill")?;
    if figured > 0 {
        tracing::info!(events = figured, "report figures: backfilled");
    }
    let homeserver = Homeserver::new(
        &config.homeserver.url,
        &as_token,
        &config.homeserver.domain,
        &config.appservice.bot_localpart,
    );
    let namespace = Namespace::new(
        &config.appservice.ghost_prefix,
        &config.appservice.bot_localpart,
        &config.homeserver.domain,
    );
    let bridge = Arc::new(Bridge {
        store,
        delivery_receipts: crate::relay::delivery_receipts::DeliveryReceipts::new(
            homeserver.clone(),
        ),
        lobby_queue: Default::default(),
        homeserver,
        namespace,
        hs_token,
        channels: channels.iter().map(|c| (c.name(), c.clone())).collect(),
        wake_inbound: Notify::new(),
        wake_matrix: Notify::new(),
        wake_outbound: Notify::new(),
        wake_timers: Notify::new(),
        wake_media: Notify::new(),
        relay_activity: Default::default(),
        portal_creation: tokio::sync::Semaphore::new(1),
        teams: crate::routing::teams::Teams::from_config(&config),
        clock: crate::clock::Clock::default(),
        ready: AtomicBool::new(false),
        readiness: crate::readiness::Readiness::new(),
        leader: crate::leader::Leadership::new(instance),
        availability: crate::availability::AvailabilityCache::default(),
        config,
    });
    tracing::info!(instance = bridge.leader.instance(), "instance id");

    let mut app = Router::new()
        .merge(crate::matrix::appservice::routes())
        .merge(crate::admin::routes())
        .route("/_switchboard/health", get(health))
        .route("/_switchboard/ready", get(crate::readiness::ready))
        .route(
            "/_switchboard/testing/clock",
            axum::routing::post(set_clock),
        )
        .with_state(bridge.clone());
    for channel in channels {
        let name = channel.name();
        let host = Arc::new(crate::host::ChannelHost::new(bridge.clone(), name));
        let routes = channel
            .start(host)
            .await
            .with_context(|| format!("channels.{name}: could not start"))?;
        if let Some(routes) = routes {
            app = app.nest(&format!("/{name}"), routes);
        }
        crate::metrics::channel_up(name, true);
        tracing::info!(channel = name, "channel started");
    }
    let limits = crate::server::Limits {
        config: Arc::new(bridge.config.http.clone()),
        refusals: Arc::new(switchboard_kit::RefusalLog::new()),
    };
    let app = crate::server::with_body_limits(app, limits.clone())
        .layer(tower_http::trace::TraceLayer::new_for_http());

    let listener = tokio::net::TcpListener::bind(bridge.config.appservice.listen)
        .await
        .with_context(|| {
            format!(
                "appservice.listen: cannot listen on {}",
                bridge.config.appservice.listen
            )
        })?;
    tracing::info!(address = %bridge.config.appservice.listen, "listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server =
        tokio::spawn(async move { crate::server::serve(listener, app, limits, stop_rx).await });

    // The doctor's checks, in the background: warnings in the log, `/_switchboard/ready`.
    tokio::spawn(crate::readiness::run(bridge.clone()));

    if bridge.config.testing.clock_control {
        if let Ok(Some(offset)) = bridge
            .store
            .state_get(TESTING_STATE, "clock_offset_ms")
            .await
        {
            bridge.clock.set_offset_ms(offset.parse().unwrap_or(0));
        }
    }
    // Queues are watched from the start: a homeserver that is not up yet is when they grow.
    if metrics.is_some() {
        tokio::spawn(crate::metrics::watch(bridge.clone()));
    }
    let starter = bridge.clone();
    let election_stop = stop_tx.subscribe();
    let election = tokio::spawn(async move {
        ensure_bot(&starter).await;
        starter.ready.store(true, Ordering::SeqCst);
        ping_homeserver(&starter).await;
        tracing::info!("bridge ready");
        crate::leader::run(starter, leader_workers, election_stop).await;
    });

    tokio::select! {
        result = server => {
            result.context("server task")?.context("server")?;
        }
        _ = shutdown_signal() => {
            // Leadership first: the workers stop and the lease is given up, so a standby
            // takes over while this instance still finishes the requests in flight.
            let _ = stop_tx.send(true);
            let handover = bridge.config.ha.renew_every * 2 + Duration::from_secs(1);
            let _ = tokio::time::timeout(handover, election).await;
            // Open event streams (web chat tabs) never end by themselves: give requests in flight
            // a moment, then stop. Everything acknowledged is already in the store.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// What runs on the leader only: started at every takeover, stopped (all of it, by aborting the
/// one task) at every step-down ([`crate::leader`]). One more leader-only worker is one more
/// line in `workers`.
fn leader_workers(bridge: &Arc<Bridge>) -> Vec<tokio::task::JoinHandle<()>> {
    let b = bridge;
    let workers: Vec<futures::future::BoxFuture<'static, ()>> = vec![
        Box::pin(crate::relay::customer_to_matrix::run(b.clone())),
        Box::pin(crate::relay::matrix_to_outbox::run(b.clone())),
        Box::pin(crate::relay::outbox_to_channel::run(b.clone())),
        Box::pin(crate::routing::timers::run(b.clone())),
        Box::pin(crate::routing::lobby_queue::run(b.clone())),
        Box::pin(crate::housekeeping::run(b.clone())),
        Box::pin(crate::search::reindex::background(b.store.clone())),
        Box::pin(crate::unreadable::keep_posting(b.clone())),
        // Voice notes and images to text (jobs wait while no engine is configured).
        Box::pin(crate::media::run(b.clone())),
    ];
    let bridge = bridge.clone();
    vec![tokio::spawn(async move {
        // Lobbies exist before the workers route anything, so operators can join them (and
        // share a room with the bot, which lets it see their presence for round robin).
        for team in bridge.teams.iter() {
            if let Err(e) = crate::routing::lobby::room(&bridge, Some(&team.name)).await {
                tracing::warn!(team = team.name, error = %e, "cannot set up the team lobby");
            }
        }
        futures::future::join_all(workers).await;
    })]
}

/// Tell the homeserver we are (back) up, so it sends what it queued for us now rather than after
/// its retry backoff. A homeserver without the endpoint (spec < v1.7) only loses that speed-up.
async fn ping_homeserver(bridge: &Bridge) {
    let txn = format!("sb-ping-{}", crate::store::now_ms());
    match bridge
        .homeserver
        .ping_appservice(&bridge.config.appservice.id, &txn)
        .await
    {
        Ok(()) => tracing::info!("homeserver pinged us back: transactions flow both ways"),
        Err(e) => {
            tracing::warn!(error = %e, "appservice ping failed (the homeserver may not reach this bridge)")
        }
    }
}

/// Register the bot and set its name, waiting for the homeserver as long as it takes.
async fn ensure_bot(bridge: &Bridge) {
    let mut delay = Duration::from_millis(200);
    loop {
        let result = async {
            bridge
                .homeserver
                .register(&bridge.config.appservice.bot_localpart)
                .await?;
            bridge
                .homeserver
                .set_displayname(
                    &bridge.namespace.bot,
                    &bridge.config.appservice.bot_displayname,
                )
                .await
        }
        .await;
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "homeserver not ready for the bot yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// `/_switchboard/health`: 200 once this instance serves (leader and standby alike: both take
/// every request), with its `role` (`leader` or `standby`), its instance id and, while it
/// leads, the lease's epoch.
async fn health(State(bridge): State<Arc<Bridge>>) -> impl IntoResponse {
    let leader = &bridge.leader;
    let role = leader.role();
    let body = |status: &str| {
        json!({
            "status": status,
            "role": role,
            "instance": leader.instance(),
            "epoch": leader.epoch(),
        })
    };
    if bridge.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, Json(body("ready")))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(body("starting")))
    }
}

/// Test rigs move the routing clock (only with `testing.clock_control: true`, and only with the
/// hs_token).
/// Where the test clock's offset is kept (`channel_state`, under a name no channel can have).
const TESTING_STATE: &str = "_testing";

async fn set_clock(
    State(bridge): State<Arc<Bridge>>,
    headers: axum::http::HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> impl IntoResponse {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !bridge.config.testing.clock_control {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "clock control is off"})),
        );
    }
    if token != Some(bridge.hs_token.as_str()) {
        return (StatusCode::FORBIDDEN, Json(json!({"error": "wrong token"})));
    }
    let Some(now) = body.get("now_ms").and_then(serde_json::Value::as_i64) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "now_ms (integer) is required"})),
        );
    };
    bridge.clock.set(now);
    if let Err(e) = bridge
        .store
        .state_put(
            TESTING_STATE,
            "clock_offset_ms",
            &bridge.clock.offset_ms().to_string(),
        )
        .await
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string()})),
        );
    }
    // Answer once the timers due at the new time have fired: a test then knows that whatever
    // it sees from here on happened after the move, and that nothing due is still to come.
    if !crate::routing::timers::settle(&bridge, Duration::from_secs(20)).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "clock set, but the timers did not finish a pass within 20 s"})),
        );
    }
    (
        StatusCode::OK,
        Json(json!({"now_ms": bridge.clock.now_ms()})),
    )
}

/// The as/hs tokens: from the config (or its environment overrides), else the registration file.
fn tokens(config: &Config) -> anyhow::Result<(String, String)> {
    if let (Some(a), Some(h)) = (&config.appservice.as_token, &config.appservice.hs_token) {
        return Ok((a.clone(), h.clone()));
    }
    let path = &config.appservice.registration;
    let reg = Registration::read(path).with_context(|| {
        format!(
            "appservice.registration: cannot read {} (run `switchboard generate-registration` first, or set appservice.as_token and appservice.hs_token)",
            path.display()
        )
    })?;
    Ok((
        config.appservice.as_token.clone().unwrap_or(reg.as_token),
        config.appservice.hs_token.clone().unwrap_or(reg.hs_token),
    ))
}

pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
