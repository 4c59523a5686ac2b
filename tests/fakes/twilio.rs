//! A wire-level fake of Twilio's Programmable Messaging API, for the bridge's SMS channel to
//! talk to through its configurable `api_url` (and nothing else: the channel cannot tell).
//!
//! It speaks the documented protocol (<https://www.twilio.com/docs/messaging/api/message-resource>):
//!
//! * `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP Basic auth (account SID
//!   and auth token) and a url-encoded form (`To`, `From` or `MessagingServiceSid`, `Body`,
//!   `MediaUrl` repeated, `StatusCallback`) answers `201` with the Message resource. Refusals use
//!   Twilio's envelope `{"code", "message", "more_info", "status"}`: 401/20003 for wrong
//!   credentials, 404/20404 for another account's path, 400 with 21604 (no `To`), 21211 (`To` not
//!   a phone number), 21606 (`From` not our number), 21602 (no body and no media), 21617 (body
//!   over 1600 characters), 21610 (recipient unsubscribed), 21614 (not a mobile number), and
//!   429/20429 (with `Retry-After`) or 500 when a fault is injected.
//! * Like Twilio, it downloads every `MediaUrl` itself after accepting the message (no auth:
//!   the URL must be fetchable as it is) and records what it got.
//! * `GET …/Messages.json?To=&From=&PageSize=` lists the messages created, newest first.
//! * `GET /2010-04-01/Accounts/{AccountSid}.json`: the Account resource (`sid`,
//!   `friendly_name`, `status` active, `type` Full, …); `GET …/IncomingPhoneNumbers.json` lists
//!   the account's numbers (filtered by `PhoneNumber`), in Twilio's page envelope. Another
//!   account's SID is 404/20404, wrong credentials 401/20003, as for every resource.
//! * Media of incoming MMS live at `…/Messages/{MessageSid}/Media/{MediaSid}`: Basic auth
//!   required, answered with a `307` to a media store URL (no auth), as Twilio does.
//!
//! For tests: [`FakeTwilio::incoming`] posts an incoming SMS/MMS to the bridge's webhook with a
//! correct `X-Twilio-Signature` (computed here, independently of the bridge);
//! [`FakeTwilio::send_status`] posts a status callback for a message the bridge sent;
//! [`FakeTwilio::post_form`] posts any form with any (or no) signature; [`FakeTwilio::calls`] is the
//! record of every API request (path, form, Basic auth, status, time); [`FakeTwilio::fault`]
//! makes the next message creations fail; [`FakeTwilio::unsubscribe`] and
//! [`FakeTwilio::set_landline`] make a recipient refuse. Payload shapes follow
//! `../shared/fixtures/twilio`.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::server::{self, FakeServer};
use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "fake-twilio-auth-token-for-tests";
/// The company's Twilio number.
/// The account's friendly name (the Account resource).
pub const ACCOUNT_NAME: &str = "Acme Support";
pub const COMPANY_NUMBER: &str = "+14155550100";
/// The company's Messaging Service.
pub const MESSAGING_SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";

/// One API request the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    /// The form (or query) parameters, in order, repeated names included.
    pub params: Vec<(String, String)>,
    /// Basic auth credentials, when given.
    pub auth: Option<(String, String)>,
    pub status: u16,
    pub at: Instant,
}

impl Call {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.params
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn is_create(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/Messages.json")
    }
}

/// A message the bridge created.
#[derive(Clone, Debug)]
pub struct SentMessage {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
    pub media_urls: Vec<String>,
    pub status_callback: Option<String>,
    pub created: Instant,
}

/// What the fake got when it downloaded a `MediaUrl` of a message.
#[derive(Clone, Debug)]
pub struct FetchedMedia {
    pub message_sid: String,
    pub url: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// A download of an incoming MMS medium through its API URL.
#[derive(Clone, Debug)]
pub struct MediaFetch {
    pub media_sid: String,
    /// Basic auth credentials, when given.
    pub auth: Option<(String, String)>,
    /// What the fake answered (307 to the media store, 401, 404).
    pub status: u16,
}

/// How a message creation fails.
#[derive(Clone, Debug)]
pub enum FaultKind {
    /// 429 with code 20429 and `Retry-After`.
    TooManyRequests { retry_after: u32 },
    /// 500 with code 20500.
    ServerError,
}

/// What a webhook post got back from the bridge.
#[derive(Clone, Debug)]
pub struct WebhookAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

/// An incoming message as posted: its SID and the exact parameters (for redelivery).
#[derive(Clone, Debug)]
pub struct Incoming {
    pub message_sid: String,
    pub params: Vec<(String, String)>,
    pub answer: WebhookAnswer,
}

#[derive(Default)]
struct Inner {
    faults: Vec<(FaultKind, u32)>,
    unsubscribed: HashSet<String>,
    landlines: HashSet<String>,
    messages: Vec<SentMessage>,
    fetched: Vec<FetchedMedia>,
    /// Incoming MMS media: media sid → (content type, bytes).
    media: HashMap<String, (String, Vec<u8>)>,
    /// Media fetches through the authenticated API URL.
    media_api_fetches: Vec<MediaFetch>,
    /// Hold creations: the message is created but the answer waits.
    hold_creates: bool,
    held: Vec<String>,
}

/// The state; its `changed` wakes held message creations (release).
type Shared = server::Shared<Inner, Call>;

/// The fake API, on 127.0.0.1 and a free port; stops when dropped.
pub struct FakeTwilio {
    server: FakeServer,
    shared: Arc<Shared>,
    http: reqwest::Client,
}

/// A Twilio-style SID: two letters and 32 hex digits.
pub fn sid(prefix: &str) -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

/// `X-Twilio-Signature` of a form POST to `url`: HMAC-SHA1 under the auth token of the URL
/// followed by every parameter's name and value, sorted, base64.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in &sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn encode(params: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn error(status: u16, code: u32, message: &str) -> Response {
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    });
    (
        status_code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

fn authorized(auth: &Option<(String, String)>) -> bool {
    auth.as_ref()
        .is_some_and(|(u, p)| u == ACCOUNT_SID && p == AUTH_TOKEN)
}

fn is_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

fn rfc2822_now() -> String {
    // The fake does not need the real date; Twilio's format is what matters.
    "Mon, 23 Nov 2026 09:00:00 +0000".to_string()
}

fn message_json(m: &SentMessage, status: &str) -> Value {
    json!({
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": m.body,
        "date_created": rfc2822_now(),
        "date_sent": null,
        "date_updated": rfc2822_now(),
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": m.from,
        "messaging_service_sid": null,
        "num_media": m.media_urls.len().to_string(),
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": m.sid,
        "status": status,
        "subresource_uris": {"media": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{}/Media.json", m.sid)},
        "to": m.to,
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{}.json", m.sid),
    })
}

impl FakeTwilio {
    pub async fn start() -> anyhow::Result<FakeTwilio> {
        let bound = FakeServer::bind("Twilio").await?;
        let shared = bound.shared(Inner::default());
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                get(list_messages).post(create_message),
            )
            .route(
                "/2010-04-01/Accounts/{account}/Messages/{message}/Media/{media}",
                get(api_media),
            )
            .route("/2010-04-01/Accounts/{account}", get(fetch_account))
            .route(
                "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json",
                get(list_incoming_numbers),
            )
            .route("/media-store/{media}", get(store_media))
            .with_state(Arc::clone(&shared));
        let server = bound.serve(app);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(FakeTwilio {
            server,
            shared,
            http,
        })
    }

    /// The base URL to configure as `channels.sms.api_url`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The bridge's `channels.sms` section for this fake (numbers without a country code are
    /// read as in `default_region`).
    pub fn channel_config(&self, default_region: &str) -> serde_json::Value {
        serde_json::json!({
            "enabled": true,
            "api_url": self.url(),
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "numbers": [COMPANY_NUMBER],
            "default_region": default_region,
        })
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls()
    }

    /// Message creations (POST Messages.json) so far.
    pub fn creates(&self) -> Vec<Call> {
        self.calls().into_iter().filter(Call::is_create).collect()
    }

    /// Waits until a message creation matching `pred` was received.
    pub async fn wait_for_create(&self, pred: impl Fn(&Call) -> bool) -> anyhow::Result<Call> {
        self.server
            .wait_for("a matching message creation", server::DEFAULT_WAIT, || {
                self.creates().into_iter().find(|c| pred(c))
            })
            .await
    }

    /// The messages created, oldest first.
    pub fn messages(&self) -> Vec<SentMessage> {
        self.shared.lock().messages.clone()
    }

    pub fn message(&self, sid: &str) -> Option<SentMessage> {
        self.messages().into_iter().find(|m| m.sid == sid)
    }

    /// What the fake got when it downloaded messages' `MediaUrl`s.
    pub fn fetched_media(&self) -> Vec<FetchedMedia> {
        self.shared.lock().fetched.clone()
    }

    /// Waits until the media of message `sid` were downloaded.
    pub async fn wait_for_media_fetch(&self, sid: &str) -> anyhow::Result<FetchedMedia> {
        self.server
            .wait_for(
                &format!("the media of {sid} to be fetched"),
                server::DEFAULT_WAIT,
                || {
                    self.fetched_media()
                        .into_iter()
                        .find(|f| f.message_sid == sid)
                },
            )
            .await
    }

    /// Fetches of incoming MMS media through the API URL.
    pub fn media_api_fetches(&self) -> Vec<MediaFetch> {
        self.shared.lock().media_api_fetches.clone()
    }

    /// Make the next `count` message creations fail with `kind`.
    pub fn fault(&self, kind: FaultKind, count: u32) {
        self.shared.lock().faults.push((kind, count));
    }

    /// The recipient replied STOP: sending to them is error 21610.
    pub fn unsubscribe(&self, number: &str) {
        self.shared.lock().unsubscribed.insert(number.to_string());
    }

    /// The recipient is a landline: sending to them is error 21614.
    pub fn set_landline(&self, number: &str) {
        self.shared.lock().landlines.insert(number.to_string());
    }

    /// Keep the answers to message creations hanging (the message is created) until released.
    pub fn hold_creates(&self) {
        self.shared.lock().hold_creates = true;
    }

    pub fn release_creates(&self) {
        self.shared.lock().hold_creates = false;
        self.shared.wake();
    }

    /// SIDs of messages whose creation answer is being held.
    pub fn held(&self) -> Vec<String> {
        self.shared.lock().held.clone()
    }

    /// POST a form to `url` with the given signature header (none when `None`), as Twilio posts
    /// its webhooks.
    pub async fn post_form(
        &self,
        url: &str,
        params: &[(String, String)],
        signature: Option<&str>,
    ) -> anyhow::Result<WebhookAnswer> {
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", "TwilioProxy/1.1")
            .header("i-twilio-idempotency-token", sid(""))
            .body(encode(params));
        if let Some(sig) = signature {
            request = request.header("X-Twilio-Signature", sig);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("posting to {url}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.text().await.unwrap_or_default();
        Ok(WebhookAnswer {
            status,
            content_type,
            body,
        })
    }

    /// POST a form to `url`, signed correctly for `url`.
    pub async fn post_signed(
        &self,
        url: &str,
        params: &[(String, String)],
    ) -> anyhow::Result<WebhookAnswer> {
        let signature = sign(AUTH_TOKEN, url, params);
        self.post_form(url, params, Some(&signature)).await
    }

    /// The parameters of an incoming SMS/MMS from `from` to `to`, as Twilio sends them; media
    /// are stored in the fake and referenced by their API URL.
    pub fn incoming_params(
        &self,
        from: &str,
        to: &str,
        body: &str,
        media: Vec<(Vec<u8>, &str)>,
    ) -> (String, Vec<(String, String)>) {
        let message_sid = sid(if media.is_empty() { "SM" } else { "MM" });
        let num_media = media.len().to_string();
        let mut params = pairs(&[
            ("ToCountry", "US"),
            ("ToState", "CA"),
            ("SmsMessageSid", &message_sid),
            ("NumMedia", &num_media),
            ("ToCity", "SAN FRANCISCO"),
            ("FromZip", ""),
            ("SmsSid", &message_sid),
            ("FromState", ""),
            ("SmsStatus", "received"),
            ("FromCity", ""),
            ("Body", body),
            ("FromCountry", "US"),
            ("To", to),
            ("ToZip", "94105"),
            ("NumSegments", "1"),
            ("MessageSid", &message_sid),
            ("AccountSid", ACCOUNT_SID),
            ("From", from),
            ("ApiVersion", "2010-04-01"),
        ]);
        for (i, (bytes, mime)) in media.into_iter().enumerate() {
            let media_sid = sid("ME");
            self.shared
                .lock()
                .media
                .insert(media_sid.clone(), (mime.to_string(), bytes));
            params.push((format!("MediaContentType{i}"), mime.to_string()));
            params.push((
                format!("MediaUrl{i}"),
                format!(
                    "{}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message_sid}/Media/{media_sid}",
                    self.url()
                ),
            ));
        }
        (message_sid, params)
    }

    /// A customer texts the company: posts a signed incoming-message webhook to
    /// `<bridge>/sms/incoming`.
    ///
    /// As on Twilio, a message that is only an opt-out keyword (`STOP`, `UNSUBSCRIBE`, …)
    /// unsubscribes the sender (later sends to them are error 21610) and `START` (`YES`,
    /// `UNSTOP`) subscribes them again.
    pub async fn incoming(
        &self,
        bridge: &str,
        from: &str,
        body: &str,
        media: Vec<(Vec<u8>, &str)>,
    ) -> anyhow::Result<Incoming> {
        match body.trim().to_ascii_uppercase().as_str() {
            "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "REVOKE"
            | "OPTOUT" => self.unsubscribe(from),
            "START" | "YES" | "UNSTOP" => {
                self.shared.lock().unsubscribed.remove(from);
            }
            _ => {}
        }
        let (message_sid, params) = self.incoming_params(from, COMPANY_NUMBER, body, media);
        let url = format!("{bridge}/sms/incoming");
        let answer = self.post_signed(&url, &params).await?;
        Ok(Incoming {
            message_sid,
            params,
            answer,
        })
    }

    /// Twilio reports a status of message `sid` to its `StatusCallback`, signed.
    pub async fn send_status(
        &self,
        sid: &str,
        status: &str,
        error_code: Option<u32>,
    ) -> anyhow::Result<WebhookAnswer> {
        let m = self
            .message(sid)
            .with_context(|| format!("no message {sid} in the fake"))?;
        let url = m
            .status_callback
            .clone()
            .context("the message has no StatusCallback")?;
        let mut params = Vec::new();
        if let Some(code) = error_code {
            params.push(("ErrorCode".to_string(), code.to_string()));
        }
        params.extend(pairs(&[
            ("SmsSid", sid),
            ("SmsStatus", status),
            ("MessageStatus", status),
            ("To", &m.to),
            ("MessageSid", sid),
            ("AccountSid", ACCOUNT_SID),
            ("From", &m.from),
            ("ApiVersion", "2010-04-01"),
        ]));
        self.post_signed(&url, &params).await
    }
}

fn record(
    shared: &Shared,
    method: &str,
    path: String,
    params: Vec<(String, String)>,
    auth: Option<(String, String)>,
    status: u16,
) {
    shared.record(Call {
        method: method.into(),
        path,
        params,
        auth,
        status,
        at: Instant::now(),
    });
}

async fn create_message(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/Messages.json");
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let auth = basic_auth(&headers);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let answer = |status: u16| {
        record(
            &shared,
            "POST",
            path.clone(),
            params.clone(),
            auth.clone(),
            status,
        );
    };
    if !authorized(&auth) {
        answer(401);
        return error(401, 20003, "Authenticate");
    }
    if account != ACCOUNT_SID {
        answer(404);
        return error(
            404,
            20404,
            &format!("The requested resource {path} was not found"),
        );
    }
    let fault = {
        let mut s = shared.lock();
        let f = s.faults.iter_mut().find(|(_, n)| *n > 0).map(|(k, n)| {
            *n -= 1;
            k.clone()
        });
        s.faults.retain(|(_, n)| *n > 0);
        f
    };
    match fault {
        Some(FaultKind::TooManyRequests { retry_after }) => {
            answer(429);
            let mut r = error(429, 20429, "Too Many Requests");
            if let Ok(v) = retry_after.to_string().parse() {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        Some(FaultKind::ServerError) => {
            answer(500);
            return error(500, 20500, "Internal Server Error");
        }
        None => {}
    }
    let Some(to) = get("To") else {
        answer(400);
        return error(400, 21604, "A 'To' phone number is required.");
    };
    if !is_e164(&to) {
        answer(400);
        return error(
            400,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    let from = match (get("From"), get("MessagingServiceSid")) {
        (Some(f), _) if f == COMPANY_NUMBER => f,
        (Some(f), _) => {
            answer(400);
            return error(400, 21606, &format!("The From phone number {f} is not a valid, SMS-capable inbound phone number or short code for your account."));
        }
        (None, Some(s)) if s == MESSAGING_SERVICE_SID => COMPANY_NUMBER.to_string(),
        (None, Some(s)) => {
            answer(400);
            return error(
                400,
                21705,
                &format!("The Messaging Service Sid {s} is invalid."),
            );
        }
        (None, None) => {
            answer(400);
            return error(
                400,
                21603,
                "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
            );
        }
    };
    let body_text = get("Body").unwrap_or_default();
    let media_urls: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "MediaUrl")
        .map(|(_, v)| v.clone())
        .collect();
    if body_text.is_empty() && media_urls.is_empty() {
        answer(400);
        return error(400, 21602, "Message body is required.");
    }
    if body_text.chars().count() > 1600 {
        answer(400);
        return error(
            400,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    if shared.lock().unsubscribed.contains(&to) {
        answer(400);
        return error(400, 21610, "Attempt to send to unsubscribed recipient");
    }
    if shared.lock().landlines.contains(&to) {
        answer(400);
        return error(
            400,
            21614,
            &format!("'To' number {to} is not a valid mobile number"),
        );
    }
    let message = SentMessage {
        sid: sid("SM"),
        to,
        from,
        body: body_text,
        media_urls: media_urls.clone(),
        status_callback: get("StatusCallback"),
        created: Instant::now(),
    };
    let json = message_json(&message, "queued");
    let message_sid = message.sid.clone();
    shared.lock().messages.push(message);
    answer(201);
    // Twilio downloads the media itself, after accepting the message.
    if !media_urls.is_empty() {
        let shared = Arc::clone(&shared);
        let sid = message_sid.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for url in media_urls {
                let fetched = match http.get(&url).timeout(Duration::from_secs(20)).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let content_type = r
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        let bytes = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                        FetchedMedia {
                            message_sid: sid.clone(),
                            url,
                            status,
                            content_type,
                            bytes,
                        }
                    }
                    Err(_) => FetchedMedia {
                        message_sid: sid.clone(),
                        url,
                        status: 0,
                        content_type: None,
                        bytes: Vec::new(),
                    },
                };
                shared.lock().fetched.push(fetched);
            }
        });
    }
    // Held: the message exists, but the bridge does not hear so until released.
    loop {
        let notified = shared.changed.notified();
        {
            let mut s = shared.lock();
            if !s.hold_creates {
                break;
            }
            if !s.held.contains(&message_sid) {
                s.held.push(message_sid.clone());
            }
        }
        notified.await;
    }
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        json.to_string(),
    )
        .into_response()
}

async fn list_messages(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/Messages.json");
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let auth = basic_auth(&headers);
    if !authorized(&auth) {
        record(&shared, "GET", path, params, auth, 401);
        return error(401, 20003, "Authenticate");
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let page_size: usize = get("PageSize").and_then(|p| p.parse().ok()).unwrap_or(50);
    let messages: Vec<Value> = shared
        .lock()
        .messages
        .iter()
        .rev()
        .filter(|m| get("To").is_none_or(|t| t == m.to) && get("From").is_none_or(|f| f == m.from))
        .take(page_size)
        .map(|m| message_json(m, "sent"))
        .collect();
    record(&shared, "GET", path.clone(), params, auth, 200);
    let body = json!({
        "messages": messages,
        "end": messages.len().saturating_sub(1),
        "first_page_uri": format!("{path}?PageSize={page_size}&Page=0"),
        "next_page_uri": null,
        "page": 0,
        "page_size": page_size,
        "previous_page_uri": null,
        "start": 0,
        "uri": format!("{path}?PageSize={page_size}&Page=0"),
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// An incoming MMS medium through the API: Basic auth, then a redirect to the media store.
async fn api_media(
    State(shared): State<Arc<Shared>>,
    Path((account, _message, media)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let auth = basic_auth(&headers);
    let status = if !authorized(&auth) || account != ACCOUNT_SID {
        401
    } else if shared.lock().media.contains_key(&media) {
        307
    } else {
        404
    };
    shared.lock().media_api_fetches.push(MediaFetch {
        media_sid: media.clone(),
        auth,
        status,
    });
    match status {
        401 => error(401, 20003, "Authenticate"),
        404 => error(404, 20404, "The requested resource was not found"),
        _ => {
            let base = shared.url();
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, format!("{base}/media-store/{media}"))],
            )
                .into_response()
        }
    }
}

/// The media store behind the redirect (no auth, like a signed CDN URL).
async fn store_media(State(shared): State<Arc<Shared>>, Path(media): Path<String>) -> Response {
    match shared.lock().media.get(&media) {
        Some((mime, bytes)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, mime.clone())],
            bytes.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Basic auth, then the path's account: 401/20003 for wrong credentials, 404/20404 for
/// another account, as Twilio answers every account resource.
fn account_access(
    shared: &Shared,
    account: &str,
    path: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Result<(), Response> {
    let auth = basic_auth(headers);
    if !authorized(&auth) {
        record(shared, "GET", path.to_owned(), params.to_vec(), auth, 401);
        return Err(error(401, 20003, "Authenticate"));
    }
    if account != ACCOUNT_SID {
        record(shared, "GET", path.to_owned(), params.to_vec(), auth, 404);
        return Err(error(
            404,
            20404,
            &format!("The requested resource {path} was not found"),
        ));
    }
    record(shared, "GET", path.to_owned(), params.to_vec(), auth, 200);
    Ok(())
}

/// `GET /2010-04-01/Accounts/{AccountSid}.json`: the Account resource.
async fn fetch_account(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}");
    let Some(sid) = account.strip_suffix(".json") else {
        record(
            &shared,
            "GET",
            path.clone(),
            Vec::new(),
            basic_auth(&headers),
            404,
        );
        return error(
            404,
            20404,
            &format!("The requested resource {path} was not found"),
        );
    };
    if let Err(r) = account_access(&shared, sid, &path, &[], &headers) {
        return r;
    }
    let uri = |rest: &str| format!("/2010-04-01/Accounts/{ACCOUNT_SID}{rest}");
    axum::Json(json!({
        "auth_token": AUTH_TOKEN,
        "date_created": "Thu, 02 Jan 2025 10:00:00 +0000",
        "date_updated": "Thu, 02 Jan 2025 10:00:00 +0000",
        "friendly_name": ACCOUNT_NAME,
        "owner_account_sid": ACCOUNT_SID,
        "sid": ACCOUNT_SID,
        "status": "active",
        "subresource_uris": {
            "incoming_phone_numbers": uri("/IncomingPhoneNumbers.json"),
            "messages": uri("/Messages.json"),
        },
        "type": "Full",
        "uri": uri(".json"),
    }))
    .into_response()
}

/// `GET /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json`: the account's numbers
/// (only [`COMPANY_NUMBER`]), filtered by `PhoneNumber` when given.
async fn list_incoming_numbers(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json");
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    if let Err(r) = account_access(&shared, &account, &path, &params, &headers) {
        return r;
    }
    let wanted = params
        .iter()
        .find(|(k, _)| k == "PhoneNumber")
        .map(|(_, v)| v.clone());
    let numbers: Vec<Value> = [COMPANY_NUMBER]
        .iter()
        .filter(|n| wanted.as_deref().is_none_or(|w| w == **n))
        .map(|n| {
            json!({
                "account_sid": ACCOUNT_SID,
                "capabilities": {"fax": false, "mms": true, "sms": true, "voice": true},
                "friendly_name": "(415) 555-0100",
                "phone_number": n,
                "sid": "PN0123456789abcdef0123456789abcdef",
                "sms_method": "POST",
                "status": "in-use",
                "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers/PN0123456789abcdef0123456789abcdef.json"),
            })
        })
        .collect();
    axum::Json(json!({
        "end": numbers.len().saturating_sub(1),
        "first_page_uri": format!("{path}?PageSize=50&Page=0"),
        "incoming_phone_numbers": numbers,
        "next_page_uri": null,
        "page": 0,
        "page_size": 50,
        "previous_page_uri": null,
        "start": 0,
        "uri": format!("{path}?PageSize=50&Page=0"),
    }))
    .into_response()
}
