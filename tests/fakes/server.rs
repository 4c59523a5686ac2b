//! The base every fake in this folder stands on: the listener, the serving task, the shared
//! state and the log of what the bridge asked, written once.
//!
//! A fake starts in two steps, so that its state can know its own address (upload URLs, CDN
//! links, the gateway URL) before its routes are built:
//!
//! ```ignore
//! let bound = FakeServer::bind("Telegram").await?;      // 127.0.0.1, a free port, kept
//! let shared = bound.shared(Inner::default());          // Arc<Shared<Inner>>, knows the URL
//! let app = Router::new().route(..).with_state(Arc::clone(&shared));
//! let server = bound.serve(app);                        // serving until `server` drops
//! ```
//!
//! The listener bound in the first step is the one served in the last: the port is never let
//! go, so nothing can take it in between.
//!
//! Every request the server answers goes into its [`Request`] log (method, path, query,
//! headers, body, the status answered, when). [`FakeServer::calls`] looks requests up by method
//! and path; [`FakeServer::wait_for_call`] waits for one; [`FakeServer::wait_for`] waits for
//! anything a fake can check (its own, typed call records). When a wait's deadline passes, the
//! error lists the last requests, so a failing test shows what the bridge did instead.
//!
//! [`post_webhook`] is the other direction: a platform posting an event to the bridge.
//!
//! Waits are woken by each request the server answers and by [`Shared::wake`]; they also look
//! again every 25 ms, for state that changes without either (a task of the fake's own).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;
use tokio::sync::Notify;

/// How long a wait lasts unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// How many of the last requests a timed-out wait prints.
const LAST_SHOWN: usize = 10;

/// One HTTP request a fake received, as it came, and the status it was answered with.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The status answered; `None` while the answer is still pending (a held download, a
    /// long poll).
    pub status: Option<u16>,
    pub at: Instant,
}

impl Request {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The query's parameters, decoded, in order.
    pub fn query_params(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }

    /// The body as an url-encoded form, decoded, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// One line for a failure message: `POST /path?query -> 200 <body, shortened>`.
    pub fn line(&self) -> String {
        let status = self
            .status
            .map_or_else(|| "(not answered yet)".to_owned(), |s| s.to_string());
        let query = if self.query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.query)
        };
        let content_type = self.header("content-type").unwrap_or("");
        let body = if self.body.is_empty() {
            String::new()
        } else if content_type.starts_with("multipart/") {
            format!(" <multipart, {} bytes>", self.body.len())
        } else {
            match std::str::from_utf8(&self.body) {
                Ok(text) => {
                    let short: String = text.chars().take(300).collect();
                    let more = if short.len() < text.len() { "…" } else { "" };
                    format!(" {short}{more}")
                }
                Err(_) => format!(" <{} bytes>", self.body.len()),
            }
        };
        format!("{} {}{query} -> {status}{body}", self.method, self.path)
    }
}

/// The request log, shared between the server's recording layer and the test.
#[derive(Default)]
struct Log {
    requests: Mutex<Vec<Request>>,
    changed: Notify,
}

impl Log {
    fn lock(&self) -> MutexGuard<'_, Vec<Request>> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A fake's state, behind one mutex, with the server's base URL, a [`Notify`] for whatever
/// waits on a change of it, and the fake's own log of calls `C` (its typed view of the requests:
/// the API method, the parsed parameters, the upload, the answer).
pub struct Shared<T, C = ()> {
    state: Mutex<T>,
    calls: Mutex<Vec<C>>,
    /// Wakes long polls, held answers and waits (see [`Shared::wake`]).
    pub changed: Notify,
    url: String,
    log: Arc<Log>,
}

impl<T, C> Shared<T, C> {
    /// The state (a panic elsewhere while it was held does not make it unusable).
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `http://127.0.0.1:<port>`: the server's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Wakes every task waiting on `changed` and every wait of the server.
    pub fn wake(&self) {
        self.changed.notify_waiters();
        self.log.changed.notify_waiters();
    }

    /// Adds a call to the fake's log (and wakes the server's waits).
    pub fn record(&self, call: C) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
        self.log.changed.notify_waiters();
    }

    /// Every call logged so far, oldest first.
    pub fn calls(&self) -> Vec<C>
    where
        C: Clone,
    {
        self.calls_where(|_| true)
    }

    /// The calls logged so far that match `pred`, oldest first.
    pub fn calls_where(&self, pred: impl Fn(&C) -> bool) -> Vec<C>
    where
        C: Clone,
    {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.iter().filter(|c| pred(c)).cloned().collect()
    }
}

/// A listener bound to 127.0.0.1 and a free port, not serving yet (see the module doc).
pub struct Bound {
    name: String,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    log: Arc<Log>,
}

impl Bound {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The fake's shared state, knowing the server's URL, with an empty log of calls `C`.
    pub fn shared<T, C>(&self, state: T) -> Arc<Shared<T, C>> {
        Arc::new(Shared {
            state: Mutex::new(state),
            calls: Mutex::new(Vec::new()),
            changed: Notify::new(),
            url: self.url(),
            log: Arc::clone(&self.log),
        })
    }

    /// Serves `app` on the kept listener, every request recorded, until the server drops.
    pub fn serve(self, app: Router) -> FakeServer {
        let app = app.layer(axum::middleware::from_fn_with_state(
            Arc::clone(&self.log),
            record,
        ));
        let listener = self.listener;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeServer {
            name: self.name,
            addr: self.addr,
            log: self.log,
            task,
        }
    }
}

/// Records each request before the fake sees it, and its status once answered.
async fn record(
    State(log): State<Arc<Log>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    // The whole body, whatever its size: the fake's own extractors still apply its limits.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                format!("reading the body: {e}"),
            )
                .into_response()
        }
    };
    let index = {
        let mut requests = log.lock();
        requests.push(Request {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or("").to_owned(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.clone(),
            status: None,
            at: Instant::now(),
        });
        requests.len() - 1
    };
    let response = next
        .run(axum::extract::Request::from_parts(parts, Body::from(body)))
        .await;
    if let Some(r) = log.lock().get_mut(index) {
        r.status = Some(response.status().as_u16());
    }
    log.changed.notify_waiters();
    response
}

/// A fake's HTTP server on 127.0.0.1; stops serving when dropped.
pub struct FakeServer {
    name: String,
    addr: SocketAddr,
    log: Arc<Log>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Binds 127.0.0.1 on a free port for the fake called `name` (named in errors).
    pub async fn bind(name: &str) -> anyhow::Result<Bound> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .with_context(|| format!("binding the fake {name}"))?;
        let addr = listener.local_addr()?;
        Ok(Bound {
            name: name.to_owned(),
            listener,
            addr,
            log: Arc::default(),
        })
    }

    /// [`FakeServer::bind`] and [`Bound::serve`] at once, for a fake whose state need not know
    /// its URL.
    pub async fn start(name: &str, app: Router) -> anyhow::Result<FakeServer> {
        Ok(Self::bind(name).await?.serve(app))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().clone()
    }

    /// The requests with `method` (`"*"`: any) to `path` (ending in `*`: any path it starts
    /// with), oldest first.
    pub fn calls(&self, method: &str, path: &str) -> Vec<Request> {
        self.log
            .lock()
            .iter()
            .filter(|r| method == "*" || r.method.eq_ignore_ascii_case(method))
            .filter(|r| match path.strip_suffix('*') {
                Some(prefix) => r.path.starts_with(prefix),
                None => r.path == path,
            })
            .cloned()
            .collect()
    }

    /// The last `n` requests, one [`Request::line`] each, newest last.
    pub fn last_requests(&self, n: usize) -> String {
        let requests = self.log.lock();
        let start = requests.len().saturating_sub(n);
        if requests.is_empty() {
            return "  (none)".to_owned();
        }
        requests[start..]
            .iter()
            .map(|r| format!("  {}", r.line()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until an answered request matches `pred`, for `within` at most.
    pub async fn wait_for_call(
        &self,
        within: Duration,
        pred: impl Fn(&Request) -> bool,
    ) -> anyhow::Result<Request> {
        self.wait_for("a matching request", within, || {
            self.log
                .lock()
                .iter()
                .find(|r| r.status.is_some() && pred(r))
                .cloned()
        })
        .await
    }

    /// Waits until `check` finds something, for `within` at most; then fails saying what was
    /// awaited (`what`) and listing the server's last requests.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        within: Duration,
        check: impl FnMut() -> Option<T>,
    ) -> anyhow::Result<T> {
        self.wait_for_showing(what, within, check, |server| {
            format!("its last requests:\n{}", server.last_requests(LAST_SHOWN))
        })
        .await
    }

    /// [`FakeServer::wait_for`] whose failure shows `shown` instead of the last requests (a
    /// fake's gateway frames, say).
    pub async fn wait_for_showing<T>(
        &self,
        what: &str,
        within: Duration,
        mut check: impl FnMut() -> Option<T>,
        shown: impl FnOnce(&FakeServer) -> String,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + within;
        loop {
            let changed = self.log.changed.notified();
            if let Some(found) = check() {
                return Ok(found);
            }
            let now = Instant::now();
            if now >= deadline {
                anyhow::bail!(
                    "timed out after {within:?} waiting for {what} at the fake {}; {}",
                    self.name,
                    shown(self)
                );
            }
            let nap = (deadline - now).min(Duration::from_millis(25));
            let _ = tokio::time::timeout(nap, changed).await;
        }
    }
}

/// POSTs `body` to the bridge's webhook `url` as a platform does: a JSON body, the `headers`
/// given (a signature, a secret; none for an unsigned delivery), answered within `within`.
pub async fn post_webhook(
    url: &str,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
    within: Duration,
) -> anyhow::Result<reqwest::Response> {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .timeout(within)
        .send()
        .await
        .with_context(|| format!("posting to the webhook {url}"))
}
