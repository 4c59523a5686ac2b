//! The HTTP server every route shares (homeserver transactions, channel webhooks, the web chat),
//! with the limits an open port on the internet needs ([`HttpConfig`]).
//!
//! `axum::serve` has no timeouts and no connection cap, so the accept loop is our own, on hyper:
//!
//! * **connection cap**: at most `max_connections` connections are served at once; one more is
//!   answered `503` with `Retry-After` and closed, never left waiting in the kernel's backlog;
//! * **header timeout**: hyper closes a connection whose request header is not complete within
//!   `header_read_timeout`, counted from connecting or from the end of the previous response, so
//!   slow-loris clients and idle keep-alive connections both go;
//! * **body timeout**: a request body must be complete within `body_read_timeout` of its header;
//!   past it the handler reads an error and the connection is closed;
//! * **idle timeout**: a connection on which nothing moved either way for `idle_timeout` is
//!   dropped (a stalled reader of a response, a hung exchange);
//! * **body limits per route**: a declared length over the route's limit is refused before
//!   anything is read, a chunked body is cut at it; the refusal speaks the route's dialect
//!   (a Matrix error under `/_matrix/`, the API's `{"error", "message"}` elsewhere).
//!
//! Every request carries the peer address as axum's [`ConnectInfo`], which the web chat's
//! per-address limits read. Every refusal is logged through the kit's [`RefusalLog`]: the first
//! of its kind at once, the rest counted.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use switchboard_kit::RefusalLog;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::HttpConfig;

/// What the per-route body limit middleware needs.
#[derive(Clone)]
pub struct Limits {
    pub config: Arc<HttpConfig>,
    pub refusals: Arc<RefusalLog>,
}

/// Wrap `app` in the per-route body limits (call before [`serve`]).
pub fn with_body_limits(app: Router, limits: Limits) -> Router {
    app.layer(axum::middleware::from_fn_with_state(limits, body_limit))
}

/// Serve `app` on `listener` until `stop` turns true (see the module docs).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.config.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    limits.refusals.refused("accept_failed", &e.to_string());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return Ok(()),
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            limits.refusals.refused(
                "connection_cap",
                &format!("{peer} (cap {})", limits.config.max_connections),
            );
            tokio::spawn(refuse_connection(stream));
            continue;
        };
        let (app, limits, stop) = (app.clone(), limits.clone(), stop.clone());
        tokio::spawn(async move {
            serve_connection(stream, peer, app, limits, stop).await;
            drop(slot);
        });
    }
}

/// A connection over the cap: a short `503` and close. The request's first bytes are read
/// first (for at most a second), as clients take an answer before their request for a broken
/// connection.
async fn refuse_connection(mut stream: TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut head)).await;
    let body =
        r#"{"error":"too_many_connections","message":"the server is busy; try again in a second"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let started = Instant::now();
    let last_activity = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Watched {
        inner: stream,
        started,
        last_activity: last_activity.clone(),
    });
    let body_timeout = limits.config.body_read_timeout;
    let refusals = limits.refusals.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let refusals = refusals.clone();
        async move {
            let (mut parts, body) = req.into_parts();
            parts.extensions.insert(ConnectInfo(peer));
            let what = format!("{peer} {} {}", parts.method, parts.uri.path());
            let body = with_deadline(Body::new(body), body_timeout, refusals, what);
            app.oneshot(Request::from_parts(parts, body)).await
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.config.header_read_timeout);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let idle = limits.config.idle_timeout;
    let mut stopping = false;
    loop {
        let idle_since = started + Duration::from_millis(last_activity.load(Ordering::Relaxed));
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() {
                        limits.refusals.refused("header_timeout", &peer.to_string());
                    } else {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                return;
            }
            _ = tokio::time::sleep_until(idle_since + idle) => {
                let moved = started + Duration::from_millis(last_activity.load(Ordering::Relaxed));
                if moved + idle <= Instant::now() {
                    limits.refusals.refused("idle_timeout", &peer.to_string());
                    return;
                }
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The connection's socket, noting when anything was last read or written.
struct Watched {
    inner: TcpStream,
    started: Instant,
    /// Milliseconds from `started` to the last read or write.
    last_activity: Arc<AtomicU64>,
}

impl Watched {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The body was not complete within `body_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the time allowed")]
struct BodyTimeout;

/// `body`, ending in an error when it is not complete by `timeout` from now.
fn with_deadline(body: Body, timeout: Duration, refusals: Arc<RefusalLog>, what: String) -> Body {
    let deadline = Instant::now() + timeout;
    let data = body.into_data_stream();
    let stream = futures::stream::unfold(Some(data), move |state| {
        let refusals = refusals.clone();
        let what = what.clone();
        async move {
            let mut data = state?;
            match tokio::time::timeout_at(deadline, data.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(data))),
                Ok(Some(Err(e))) => Some((Err(axum::BoxError::from(e)), None)),
                Ok(None) => None,
                Err(_) => {
                    refusals.refused("body_timeout", &what);
                    Some((Err(axum::BoxError::from(BodyTimeout)), None))
                }
            }
        }
    });
    Body::from_stream(stream)
}

/// The per-route body limit: a declared length over it is refused at once; a body without
/// one is cut at it.
async fn body_limit(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let limit = limits.config.body_limit(&path);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default();
        limits.refusals.refused(
            "body_too_large",
            &format!("{peer} {path} (limit {limit} bytes)"),
        );
        return too_large(&path, limit);
    }
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    next.run(Request::from_parts(parts, Body::new(limited)))
        .await
}

/// `413` in the dialect of the route: a Matrix error for the homeserver, the API's elsewhere.
fn too_large(path: &str, limit: u64) -> Response {
    let message = format!("the request body is over {limit} bytes");
    let body = if path.starts_with("/_matrix/") {
        json!({"errcode": "M_TOO_LARGE", "error": message})
    } else {
        json!({"error": "body_too_large", "message": message})
    };
    (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_matching_prefix_sets_the_limit() {
        let config = HttpConfig::default();
        assert_eq!(config.body_limit("/telegram/webhook"), 1024 * 1024);
        assert_eq!(
            config.body_limit("/_matrix/app/v1/transactions/1"),
            64 * 1024 * 1024 + 64 * 1024
        );
        assert_eq!(config.body_limit("/webchat/api/v1/files"), 64 * 1024 * 1024);
        assert_eq!(config.body_limit("/webchat/api/v1/messages"), 1024 * 1024);
    }
}
