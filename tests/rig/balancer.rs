//! A tiny HTTP load balancer in front of several bridge instances, as a deployment has one.
//!
//! Requests go round robin to the backends. A backend that refuses the connection, resets it or
//! does not answer within [`TRY_TIMEOUT`] ([`LAST_TRY_TIMEOUT`] for the last one tried) is
//! skipped for [`DOWN_FOR`] and the request is tried on the next one (like nginx's `proxy_next_upstream error timeout`), so a homeserver transaction
//! or a webhook sent while an instance dies reaches a live one. Retrying a request that may have
//! reached the dead instance is safe here: everything the bridge takes over HTTP is
//! deduplicated (transaction ids, the networks' event ids).
//!
//! Synapse's appservice URL (the registration's `url`) points here in the HA tests
//! (`tests/ha.rs`), and so do the fakes' webhook deliveries.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response, StatusCode};

/// How long one backend gets to answer before the next is tried.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the last backend tried gets (a slow answer beats none: a homeserver whose
/// transaction failed backs off for a while).
pub const LAST_TRY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a backend that failed is left out.
pub const DOWN_FOR: Duration = Duration::from_secs(5);

struct Backend {
    url: String,
    down_until: Option<Instant>,
}

struct Shared {
    backends: Mutex<Vec<Backend>>,
    next: Mutex<usize>,
    http: reqwest::Client,
}

/// The balancer: a loopback port and its task (stopped on drop).
pub struct Balancer {
    port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    /// Starts with no backends (see [`Balancer::set_backends`]).
    pub async fn start() -> anyhow::Result<Balancer> {
        let port = super::free_port()?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .context("binding the balancer")?;
        let shared = Arc::new(Shared {
            backends: Mutex::new(Vec::new()),
            next: Mutex::new(0),
            http: reqwest::Client::builder()
                .build()
                .context("balancer client")?,
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Balancer { port, shared, task })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The base URLs requests go to, in round-robin order.
    pub fn set_backends(&self, urls: &[String]) {
        let mut backends = lock(&self.shared.backends);
        *backends = urls
            .iter()
            .map(|url| Backend {
                url: url.clone(),
                down_until: None,
            })
            .collect();
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The backends to try for one request: live ones from the round-robin position on, then the
/// ones marked down (a request never fails while any backend might answer).
fn order(shared: &Shared) -> Vec<String> {
    let backends = lock(&shared.backends);
    if backends.is_empty() {
        return Vec::new();
    }
    let start = {
        let mut next = lock(&shared.next);
        let start = *next % backends.len();
        *next = next.wrapping_add(1);
        start
    };
    let now = Instant::now();
    let rotated = (0..backends.len()).map(|i| &backends[(start + i) % backends.len()]);
    let (live, down): (Vec<&Backend>, Vec<&Backend>) =
        rotated.partition(|b| b.down_until.is_none_or(|t| t <= now));
    live.into_iter()
        .chain(down)
        .map(|b| b.url.clone())
        .collect()
}

fn mark_down(shared: &Shared, url: &str) {
    for b in lock(&shared.backends).iter_mut() {
        if b.url == url {
            b.down_until = Some(Instant::now() + DOWN_FOR);
        }
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
        return status(StatusCode::BAD_REQUEST, "unreadable request body");
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let backends = order(&shared);
    let last = backends.len().saturating_sub(1);
    for (i, backend) in backends.into_iter().enumerate() {
        let mut req = shared
            .http
            .request(parts.method.clone(), format!("{backend}{path}"))
            .timeout(if i == last {
                LAST_TRY_TIMEOUT
            } else {
                TRY_TIMEOUT
            })
            .body(body.clone());
        for (name, value) in &parts.headers {
            if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
                req = req.header(name, value);
            }
        }
        match req.send().await {
            Ok(resp) => {
                let mut out = Response::builder().status(resp.status());
                for (name, value) in resp.headers() {
                    if name != axum::http::header::TRANSFER_ENCODING
                        && name != axum::http::header::CONTENT_LENGTH
                    {
                        out = out.header(name, value);
                    }
                }
                match resp.bytes().await {
                    Ok(bytes) => {
                        return out
                            .body(Body::from(bytes))
                            .unwrap_or_else(|_| status(StatusCode::BAD_GATEWAY, "bad answer"))
                    }
                    Err(_) => mark_down(&shared, &backend),
                }
            }
            Err(_) => mark_down(&shared, &backend),
        }
    }
    status(StatusCode::BAD_GATEWAY, "no backend answered")
}

fn status(code: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(text.to_string()));
    *r.status_mut() = code;
    r
}
