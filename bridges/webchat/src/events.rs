//! The live event stream: `GET /api/v1/events` as Server-Sent Events.
//!
//! A stream first replays the transcript after the client's position, then forwards live
//! entries and agent typing. The position is the `Last-Event-ID` header when the browser
//! reconnects on its own, else `?after=`, else 0 (everything). Every transcript event carries its
//! seq as the SSE `id`, so `EventSource` resumes exactly where it stopped; typing events carry no
//! id and are never replayed.
//!
//! We subscribe to the hub *before* reading the log, so nothing written in between is missed; an
//! entry that arrives both ways is sent once (we remember the seqs we sent). When the broadcast
//! buffer overflows we read the log again instead of dropping events. Keep-alive comments every
//! 15 s keep proxies from closing an idle stream; the stream's task ends when the client leaves.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::auth::VisitorFromQuery;
use crate::hub::Live;
use crate::limits::ClientAddr;
use crate::state::AppState;
use crate::transcript;

/// Log entries read per replay query.
const REPLAY_PAGE: i64 = 200;
/// Seqs remembered to drop events that arrive both from the log and live.
const REMEMBERED: usize = 1024;

#[derive(Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    after: Option<String>,
}

/// Where the client wants to start: `Last-Event-ID` first, then `?after=`, then 0.
fn start_position(headers: &HeaderMap, after: Option<&str>) -> i64 {
    let from_header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    from_header
        .or_else(|| after.and_then(|a| a.trim().parse::<i64>().ok()))
        .unwrap_or(0)
        .max(0)
}

/// `GET /api/v1/events?token=…&after=<seq>`.
pub async fn stream(
    State(state): State<AppState>,
    addr: ClientAddr,
    VisitorFromQuery(auth): VisitorFromQuery,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    // Counted until the stream ends (the slot travels with it): one visitor cannot hold more
    // than a few tabs' worth, nor everyone together more than the total.
    let slot = match state.limits.open_stream(&auth.visitor.id, addr) {
        Ok(slot) => slot,
        Err(e) => return e.into_response(),
    };
    let after = start_position(
        &headers,
        query.as_ref().ok().and_then(|Query(q)| q.after.as_deref()),
    );
    let live = state.hub.subscribe(&auth.visitor.id);
    let (tx, rx) = mpsc::channel::<Event>(32);
    tokio::spawn(pump(state, auth.visitor.id, after, live, tx));
    let events = ReceiverStream::new(rx).map(move |event| {
        let _counted = &slot;
        Ok::<_, Infallible>(event)
    });
    let sse = Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    let mut response = sse.into_response();
    // Tell nginx-style proxies not to buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Feeds one client's stream until it disconnects.
struct Pump {
    state: AppState,
    visitor_id: String,
    tx: mpsc::Sender<Event>,
    /// The client's starting position: it has everything up to here.
    floor: i64,
    /// Highest seq read from the log or sent.
    last: i64,
    sent: BTreeSet<i64>,
}

/// The client went away (or the store failed and the client should reconnect).
struct Stop;

impl Pump {
    async fn emit(&self, event: Event) -> Result<(), Stop> {
        self.tx.send(event).await.map_err(|_| Stop)
    }

    /// Send a transcript entry unless it was sent already.
    async fn entry(&mut self, seq: i64, event: &Value) -> Result<(), Stop> {
        if seq <= self.floor || !self.sent.insert(seq) {
            return Ok(());
        }
        if self.sent.len() > REMEMBERED {
            self.sent.pop_first();
        }
        self.last = self.last.max(seq);
        self.emit(Event::default().id(seq.to_string()).data(event.to_string()))
            .await
    }

    /// Send every log entry after `last`.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let rows = match self
                .state
                .store
                .read(&self.visitor_id, self.last, REPLAY_PAGE)
                .await
            {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(%error, visitor = %self.visitor_id, "webchat: replay failed; closing the stream");
                    return Err(Stop);
                }
            };
            let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= REPLAY_PAGE;
            for (seq, body) in rows {
                self.last = self.last.max(seq);
                if let Some(event) = transcript::present_raw(&body, seq, &self.state.base) {
                    self.entry(seq, &event).await?;
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn run(&mut self, mut live: broadcast::Receiver<Live>) -> Result<(), Stop> {
        // Ask browsers to reconnect after 2 s rather than their default 3–5 s.
        self.emit(
            Event::default()
                .retry(Duration::from_secs(2))
                .comment("switchboard webchat"),
        )
        .await?;
        self.catch_up().await?;
        loop {
            let received = tokio::select! {
                _ = self.tx.closed() => return Err(Stop),
                received = live.recv() => received,
            };
            match received {
                Ok(Live::Entry { seq, event }) => self.entry(seq, &event).await?,
                Ok(Live::Typing { active }) => {
                    let typing = json!({ "type": "typing", "active": active });
                    self.emit(Event::default().data(typing.to_string())).await?;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await?,
                Err(broadcast::error::RecvError::Closed) => return Err(Stop),
            }
        }
    }
}

async fn pump(
    state: AppState,
    visitor_id: String,
    after: i64,
    live: broadcast::Receiver<Live>,
    tx: mpsc::Sender<Event>,
) {
    let mut pump = Pump {
        state,
        visitor_id,
        tx,
        floor: after,
        last: after,
        sent: BTreeSet::new(),
    };
    let _ = pump.run(live).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_position_prefers_last_event_id() {
        let mut headers = HeaderMap::new();
        assert_eq!(start_position(&headers, None), 0);
        assert_eq!(start_position(&headers, Some("7")), 7);
        assert_eq!(start_position(&headers, Some("x")), 0);
        headers.insert("last-event-id", HeaderValue::from_static("12"));
        assert_eq!(start_position(&headers, Some("7")), 12);
        headers.insert("last-event-id", HeaderValue::from_static("-3"));
        assert_eq!(start_position(&headers, Some("7")), 0);
    }
}
