//! The client-server API calls the bridge makes, as its bot or as a ghost (identity assertion
//! with `?user_id=`). Plain HTTP with the appservice's as_token; event contents are built with ruma
//! types by the callers.
//!
//! Errors keep the homeserver's `errcode` and say whether a retry can help, so the queues can tell
//! an outage from a refusal.

use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Characters escaped in a path segment (everything but unreserved ones).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("homeserver unreachable: {0}")]
    Unreachable(String),
    #[error("homeserver answered {status}: {errcode} {message}")]
    Api {
        status: u16,
        errcode: String,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("unexpected answer from homeserver: {0}")]
    Protocol(String),
}

impl MatrixError {
    /// An outage, a rate limit or a server error: the same call may work later.
    pub fn is_retryable(&self) -> bool {
        match self {
            MatrixError::Unreachable(_) => true,
            MatrixError::Api { status, .. } => *status == 429 || *status >= 500,
            MatrixError::Protocol(_) => false,
        }
    }

    pub fn errcode(&self) -> Option<&str> {
        match self {
            MatrixError::Api { errcode, .. } => Some(errcode),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            MatrixError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A request sent, counted in the metrics by its route template and status
/// ([`crate::metrics::homeserver_request`]); no answer is [`MatrixError::Unreachable`].
async fn measured(
    method: &str,
    path: &str,
    request: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
) -> Result<reqwest::Response, MatrixError> {
    let started = std::time::Instant::now();
    let result = request.await;
    let status = result.as_ref().ok().map(|r| r.status().as_u16());
    crate::metrics::homeserver_request(method, path, status, started.elapsed());
    result.map_err(|e| MatrixError::Unreachable(e.to_string()))
}

/// The homeserver as the appservice sees it.
#[derive(Clone)]
pub struct Homeserver {
    http: reqwest::Client,
    base: String,
    as_token: String,
    pub domain: String,
    pub bot: String,
}

impl Homeserver {
    pub fn new(base: &url::Url, as_token: &str, domain: &str, bot_localpart: &str) -> Homeserver {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Homeserver {
            http,
            base: base.as_str().trim_end_matches('/').to_string(),
            as_token: as_token.to_string(),
            domain: domain.to_string(),
            bot: format!("@{bot_localpart}:{domain}"),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        as_user: Option<&str>,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, MatrixError> {
        let label = method.clone();
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.as_token);
        let mut q: Vec<(&str, String)> = query.to_vec();
        if let Some(user) = as_user {
            if user != self.bot {
                q.push(("user_id", user.to_string()));
            }
        }
        if !q.is_empty() {
            req = req.query(&q);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = measured(label.as_str(), path, req.send()).await?;
        Self::decode(resp).await
    }

    async fn decode(resp: reqwest::Response) -> Result<Value, MatrixError> {
        let status = resp.status();
        let retry_header = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp
            .text()
            .await
            .map_err(|e| MatrixError::Unreachable(e.to_string()))?;
        if status.is_success() {
            if text.is_empty() {
                return Ok(json!({}));
            }
            return serde_json::from_str(&text).map_err(|e| MatrixError::Protocol(e.to_string()));
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let retry_after = body
            .get("retry_after_ms")
            .and_then(Value::as_u64)
            .map(Duration::from_millis)
            .or(retry_header);
        Err(MatrixError::Api {
            status: status.as_u16(),
            errcode: body
                .get("errcode")
                .and_then(Value::as_str)
                .unwrap_or("M_UNKNOWN")
                .to_string(),
            message: body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or(&text)
                .chars()
                .take(300)
                .collect(),
            retry_after,
        })
    }

    /// Is the homeserver up and does it accept our token?
    pub async fn whoami(&self) -> Result<String, MatrixError> {
        let v = self
            .call(
                Method::GET,
                "/_matrix/client/v3/account/whoami",
                None,
                &[],
                None,
            )
            .await?;
        v.get("user_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| MatrixError::Protocol("whoami".into()))
    }

    /// Whose access token `token` is (`whoami` asked with that token, not ours): how the admin
    /// API learns which operator calls it.
    pub async fn whoami_token(&self, token: &str) -> Result<String, MatrixError> {
        let resp = self
            .http
            .get(format!("{}/_matrix/client/v3/account/whoami", self.base))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| MatrixError::Unreachable(e.to_string()))?;
        Self::decode(resp)
            .await?
            .get("user_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| MatrixError::Protocol("whoami".into()))
    }

    /// Register a user in our namespace; an existing one is fine.
    pub async fn register(&self, localpart: &str) -> Result<(), MatrixError> {
        let body = json!({"type": "m.login.application_service", "username": localpart, "inhibit_login": true});
        match self
            .call(
                Method::POST,
                "/_matrix/client/v3/register",
                None,
                &[],
                Some(&body),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn set_displayname(&self, user: &str, name: &str) -> Result<(), MatrixError> {
        let path = format!("/_matrix/client/v3/profile/{}/displayname", seg(user));
        self.call(
            Method::PUT,
            &path,
            Some(user),
            &[],
            Some(&json!({"displayname": name})),
        )
        .await
        .map(|_| ())
    }

    pub async fn set_avatar_url(&self, user: &str, mxc: &str) -> Result<(), MatrixError> {
        let path = format!("/_matrix/client/v3/profile/{}/avatar_url", seg(user));
        self.call(
            Method::PUT,
            &path,
            Some(user),
            &[],
            Some(&json!({"avatar_url": mxc})),
        )
        .await
        .map(|_| ())
    }

    /// Create a room as the bot; returns its id.
    pub async fn create_room(&self, body: &Value) -> Result<String, MatrixError> {
        let v = self
            .call(
                Method::POST,
                "/_matrix/client/v3/createRoom",
                None,
                &[],
                Some(body),
            )
            .await?;
        v.get("room_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| MatrixError::Protocol("createRoom".into()))
    }

    pub async fn join(&self, room_id: &str, user: &str) -> Result<(), MatrixError> {
        let path = format!("/_matrix/client/v3/rooms/{}/join", seg(room_id));
        self.call(Method::POST, &path, Some(user), &[], Some(&json!({})))
            .await
            .map(|_| ())
    }

    /// Leave a room, or decline an invite to it (the same call in the spec).
    pub async fn leave(&self, room_id: &str, user: &str) -> Result<(), MatrixError> {
        let path = format!("/_matrix/client/v3/rooms/{}/leave", seg(room_id));
        self.call(Method::POST, &path, Some(user), &[], Some(&json!({})))
            .await
            .map(|_| ())
    }

    pub async fn invite(&self, room_id: &str, user: &str) -> Result<(), MatrixError> {
        let path = format!("/_matrix/client/v3/rooms/{}/invite", seg(room_id));
        match self
            .call(
                Method::POST,
                &path,
                None,
                &[],
                Some(&json!({"user_id": user})),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Already in the room or invited: the goal is met.
            Err(MatrixError::Api {
                status: 403,
                ref message,
                ..
            }) if message.contains("already in the room") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Send a message-like event; `txn_id` makes retries idempotent, `ts` sets the timestamp.
    pub async fn send(
        &self,
        room_id: &str,
        event_type: &str,
        txn_id: &str,
        content: &Value,
        as_user: Option<&str>,
        ts: Option<i64>,
    ) -> Result<String, MatrixError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/{}/{}",
            seg(room_id),
            seg(event_type),
            seg(txn_id)
        );
        let query: Vec<(&str, String)> =
            ts.map(|t| vec![("ts", t.to_string())]).unwrap_or_default();
        let v = self
            .call(Method::PUT, &path, as_user, &query, Some(content))
            .await?;
        v.get("event_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| MatrixError::Protocol("send".into()))
    }

    pub async fn send_state(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
        content: &Value,
    ) -> Result<(), MatrixError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            seg(room_id),
            seg(event_type),
            seg(state_key)
        );
        self.call(Method::PUT, &path, None, &[], Some(content))
            .await
            .map(|_| ())
    }

    /// One event of a room, as the bot sees it (`None` when there is no such event).
    pub async fn event(&self, room_id: &str, event_id: &str) -> Result<Option<Value>, MatrixError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            seg(room_id),
            seg(event_id)
        );
        match self.call(Method::GET, &path, None, &[], None).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A room's state event content (`None` when the room has no such state).
    pub async fn state(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Value>, MatrixError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            seg(room_id),
            seg(event_type),
            seg(state_key)
        );
        match self.call(Method::GET, &path, None, &[], None).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn redact(
        &self,
        room_id: &str,
        event_id: &str,
        txn_id: &str,
        as_user: Option<&str>,
    ) -> Result<(), MatrixError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/{}",
            seg(room_id),
            seg(event_id),
            seg(txn_id)
        );
        self.call(Method::PUT, &path, as_user, &[], Some(&json!({})))
            .await
            .map(|_| ())
    }

    /// Mark an event read by a user (a ghost's read receipt).
    pub async fn read_receipt(
        &self,
        room_id: &str,
        event_id: &str,
        as_user: &str,
    ) -> Result<(), MatrixError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
            seg(room_id),
            seg(event_id)
        );
        self.call(Method::POST, &path, Some(as_user), &[], Some(&json!({})))
            .await
            .map(|_| ())
    }

    pub async fn typing(&self, room_id: &str, user: &str, active: bool) -> Result<(), MatrixError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/typing/{}",
            seg(room_id),
            seg(user)
        );
        let body = if active {
            json!({"typing": true, "timeout": 30000})
        } else {
            json!({"typing": false})
        };
        self.call(Method::PUT, &path, Some(user), &[], Some(&body))
            .await
            .map(|_| ())
    }

    /// Upload a file to the media repository as the bot; returns the `mxc://` URI.
    pub async fn upload(
        &self,
        data: Bytes,
        mime: &str,
        filename: &str,
    ) -> Result<String, MatrixError> {
        let path = "/_matrix/media/v3/upload";
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.as_token)
            .query(&[("filename", filename)])
            .header(reqwest::header::CONTENT_TYPE, mime)
            .body(data)
            .send();
        let resp = measured("POST", path, request).await?;
        let v = Self::decode(resp).await?;
        v.get("content_uri")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| MatrixError::Protocol("upload".into()))
    }

    /// Download a file from the media repository (authenticated media); returns bytes and mime.
    pub async fn download(
        &self,
        mxc: &str,
        max_bytes: u64,
    ) -> Result<(Bytes, String), MatrixError> {
        let rest = mxc
            .strip_prefix("mxc://")
            .ok_or_else(|| MatrixError::Protocol(format!("not an mxc URI: {mxc}")))?;
        let (server, media_id) = rest
            .split_once('/')
            .ok_or_else(|| MatrixError::Protocol(format!("bad mxc URI: {mxc}")))?;
        let path = format!(
            "/_matrix/client/v1/media/download/{}/{}",
            seg(server),
            seg(media_id)
        );
        let request = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.as_token)
            .send();
        let resp = measured("GET", &path, request).await?;
        if resp.status() != StatusCode::OK {
            return Err(Self::decode(resp)
                .await
                .err()
                .unwrap_or(MatrixError::Protocol("download".into())));
        }
        if resp.content_length().is_some_and(|n| n > max_bytes) {
            return Err(MatrixError::Protocol(format!(
                "file larger than {max_bytes} bytes"
            )));
        }
        let mime = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let data = resp
            .bytes()
            .await
            .map_err(|e| MatrixError::Unreachable(e.to_string()))?;
        Ok((data, mime))
    }
}

impl Homeserver {
    /// A user's presence ("online", "unavailable", "offline"), as the bot may see it.
    pub async fn presence(&self, user: &str) -> Result<Option<String>, MatrixError> {
        let path = format!("/_matrix/client/v3/presence/{}/status", seg(user));
        let v = self.call(Method::GET, &path, None, &[], None).await?;
        Ok(v.get("presence")
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// Members of a room with their membership (join, invite, leave, …).
    pub async fn members(&self, room_id: &str) -> Result<Vec<(String, String)>, MatrixError> {
        let path = format!("/_matrix/client/v3/rooms/{}/members", seg(room_id));
        let v = self.call(Method::GET, &path, None, &[], None).await?;
        Ok(v.get("chunk")
            .and_then(Value::as_array)
            .map(|events| {
                events
                    .iter()
                    .filter_map(|e| {
                        let user = e.get("state_key")?.as_str()?.to_string();
                        let m = e.get("content")?.get("membership")?.as_str()?.to_string();
                        Some((user, m))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Remove a user from a room (also withdraws an invite).
    pub async fn kick(&self, room_id: &str, user: &str, reason: &str) -> Result<(), MatrixError> {
        let path = format!("/_matrix/client/v3/rooms/{}/kick", seg(room_id));
        self.call(
            Method::POST,
            &path,
            None,
            &[],
            Some(&json!({"user_id": user, "reason": reason})),
        )
        .await
        .map(|_| ())
    }

    /// A page of room history, oldest first from `from` (None: the start). Returns the events and
    /// the token of the next page, if any.
    pub async fn messages(
        &self,
        room_id: &str,
        from: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Value>, Option<String>), MatrixError> {
        let path = format!("/_matrix/client/v3/rooms/{}/messages", seg(room_id));
        let mut query = vec![("dir", "f".to_string()), ("limit", limit.to_string())];
        if let Some(f) = from {
            query.push(("from", f.to_string()));
        }
        let v = self.call(Method::GET, &path, None, &query, None).await?;
        let events = v
            .get("chunk")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let end = v.get("end").and_then(Value::as_str).map(str::to_string);
        Ok((events, end))
    }

    /// Ask the homeserver to ping this appservice (`POST /_matrix/client/v1/appservice/{id}/ping`,
    /// spec v1.7). Besides proving both directions work, Synapse answers a successful ping by
    /// sending the transactions it queued while we were away at once, instead of waiting out
    /// its retry backoff (up to minutes after a restart).
    pub async fn ping_appservice(
        &self,
        appservice_id: &str,
        txn_id: &str,
    ) -> Result<(), MatrixError> {
        let path = format!("/_matrix/client/v1/appservice/{}/ping", seg(appservice_id));
        self.call(
            Method::POST,
            &path,
            None,
            &[],
            Some(&serde_json::json!({"transaction_id": txn_id})),
        )
        .await
        .map(|_| ())
    }

    /// The room an alias points to.
    pub async fn resolve_alias(&self, alias: &str) -> Result<String, MatrixError> {
        let path = format!("/_matrix/client/v3/directory/room/{}", seg(alias));
        let v = self.call(Method::GET, &path, None, &[], None).await?;
        v.get("room_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| MatrixError::Protocol("directory".into()))
    }

    /// A user's display name, if they set one.
    pub async fn displayname(&self, user: &str) -> Result<Option<String>, MatrixError> {
        let path = format!("/_matrix/client/v3/profile/{}/displayname", seg(user));
        match self.call(Method::GET, &path, None, &[], None).await {
            Ok(v) => Ok(v
                .get("displayname")
                .and_then(Value::as_str)
                .map(str::to_string)),
            Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// User ids of a room's joined members (as seen by the bot).
    pub async fn joined_members(&self, room_id: &str) -> Result<Vec<String>, MatrixError> {
        let path = format!("/_matrix/client/v3/rooms/{}/joined_members", seg(room_id));
        let v = self.call(Method::GET, &path, None, &[], None).await?;
        Ok(v.get("joined")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default())
    }
}
