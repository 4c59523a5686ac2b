//! A wire-level fake of the WhatsApp Business Cloud API (Meta's Graph API), for the bridge's
//! WhatsApp channel to talk to through its configurable `api_url` (and nothing else: the
//! channel cannot tell), and the Meta side of the webhook.
//!
//! It speaks the documented protocol
//! (<https://developers.facebook.com/docs/whatsapp/cloud-api/reference>):
//!
//! * `POST /{version}/{phone-number-id}/messages` (JSON, `Authorization: Bearer`): text, image,
//!   audio, video, document, sticker (by uploaded media id), reaction, template; `status: read`
//!   marks a customer's message read. Answers `{"messaging_product":"whatsapp","contacts":[…],
//!   "messages":[{"id":"wamid…"}]}`. Checks what Meta checks: `messaging_product`, `to`, a
//!   non-empty body of at most 4096 characters, known media ids, known templates in their
//!   language with the right number of parameters, and the 24-hour customer-service window
//!   (a free-form message more than 24 h after the customer's last message is error 131047).
//! * `POST /{version}/{phone-number-id}/media` (multipart `messaging_product`, `type`, `file`)
//!   → `{"id":"<media id>"}`; only the supported media types ([`UPLOAD_TYPES`]; any other is
//!   error 100 naming them) up to 100 MB.
//! * Media messages check the media against their kind as the "Supported media types" table
//!   says (image JPEG/PNG ≤ 5 MB, video MP4/3GPP ≤ 16 MB, audio ≤ 16 MB, sticker WebP ≤ 100 KB
//!   or 500 KB animated, document ≤ 100 MB): a breach is error 131053 "Media upload error".
//! * `GET /{version}/{media-id}` → `{url, mime_type, sha256, file_size, id,
//!   messaging_product}`; the URL answers the bytes only with the Bearer token.
//! * `GET /{version}/{phone-number-id}?fields=display_phone_number,verified_name` → the phone
//!   number node's fields asked for and `id`; an unknown field is error 100, an id that is
//!   neither the number nor a media id 400 with code 100, subcode 33 ("Unsupported get
//!   request").
//! * Interactive messages (`type: interactive`), as the Cloud API documents them
//!   (<https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/interactive-list-messages>,
//!   `…/interactive-reply-buttons-messages`): a `list` needs a body (1–4096 characters), a
//!   button text (1–20), 1–10 sections (each titled, at most 24 characters, when there are
//!   several) with 1–10 rows in all, each row an `id` (1–200 characters, unique in the
//!   message), a `title` (1–24) and an optional `description` (at most 72); `button` (reply
//!   buttons) needs a body (1–1024) and 1–3 buttons of type `reply`, each with a unique `id`
//!   (1–256) and a unique `title` (1–20); a header or footer text at most 60. A missing part is
//!   error 100, a value out of bounds 131009 "Parameter value is not valid", naming which.
//!   Interactive messages are free-form: the 24-hour window applies to them as to text.
//! * Errors in Graph's envelope `{"error":{"message","type","code","error_subcode",
//!   "error_data":{"messaging_product","details"},"fbtrace_id"}}`: a wrong token is 401 with
//!   code 190; an unknown phone number id 400 with code 100.
//!
//! For tests: [`FakeWhatsApp::message`] builds a customer's message delivery (and remembers
//! the time for the window), [`FakeWhatsApp::tap`] the customer's tap on a list row or reply
//! button of a sent interactive message (as the app sends it: an `interactive` message with
//! `list_reply` / `button_reply` and `context`), [`FakeWhatsApp::status`] a status delivery, and
//! [`FakeWhatsApp::deliver`] posts one to the bridge's webhook signed with the app secret as
//! Meta does (`X-Hub-Signature-256`, non-ASCII escaped as `\uXXXX`); [`FakeWhatsApp::calls`]
//! is the record of every request (kind, path, JSON body or form, uploaded file, Bearer token,
//! time, status) to assert on; [`FakeWhatsApp::fault`] makes the next N message sends fail with
//! a chosen HTTP status and Graph error.
#![allow(dead_code)]
// Handlers return finished error responses early; their size does not matter in a test fake.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::server::{self, FakeServer};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The system user's access token in tests.
pub const TOKEN: &str = "EAAFakeWhatsAppTokenForSwitchboardTests0123456789";
/// The Meta app's secret (webhook signatures).
pub const APP_SECRET: &str = "fake-app-secret-for-tests-only";
/// The webhook's verify token, as typed into the App Dashboard.
pub const VERIFY_TOKEN: &str = "meatyhamhock";
/// The business phone number's id and the number itself.
pub const PHONE_NUMBER_ID: &str = "1122334455667";
pub const DISPLAY_PHONE_NUMBER: &str = "15550001234";
/// The business's verified name on the number (the phone number node's `verified_name`).
pub const VERIFIED_NAME: &str = "Acme Support";
/// The WhatsApp Business Account's id.
pub const WABA_ID: &str = "1234567890987654321";
pub const VERSION: &str = "v21.0";
/// Largest upload the Cloud API takes (documents: 100 MB).
/// <https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types>
pub const MAX_UPLOAD: usize = 100 * 1024 * 1024;
const MB: usize = 1024 * 1024;
/// `image`: image/jpeg, image/png, 5 MB (same page, "Image").
pub const MAX_IMAGE: usize = 5 * MB;
/// `audio` and `video`: 16 MB each (same page, "Audio", "Video").
pub const MAX_AUDIO_VIDEO: usize = 16 * MB;
/// `sticker`: image/webp, 100 KB static, 500 KB animated (same page, "Sticker").
pub const MAX_STATIC_STICKER: usize = 100 * 1024;
pub const MAX_ANIMATED_STICKER: usize = 500 * 1024;
/// The only `type`s `POST /{phone-number-id}/media` takes, in the order (and with the words)
/// of the Graph error it answers for any other type: "(#100) Param file must be a file with one
/// of the following types: … Received file of type '…'." (error text as Meta sends it, e.g.
/// <https://github.com/fbsamples/whatsapp-api-examples/issues/10>; the list is the "Supported
/// media types" table of
/// <https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types>).
pub const UPLOAD_TYPES: &[&str] = &[
    "audio/aac",
    "audio/mp4",
    "audio/mpeg",
    "audio/amr",
    "audio/ogg",
    "audio/opus",
    "application/vnd.ms-powerpoint",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/pdf",
    "text/plain",
    "application/vnd.ms-excel",
    "image/jpeg",
    "image/png",
    "image/webp",
    "video/mp4",
    "video/3gpp",
];

/// A customer on WhatsApp.
#[derive(Clone, Debug)]
pub struct Customer {
    /// The phone number in digits, as WhatsApp ids it.
    pub wa_id: String,
    pub name: String,
}

impl Customer {
    pub fn new(wa_id: &str, name: &str) -> Customer {
        Customer {
            wa_id: wa_id.into(),
            name: name.into(),
        }
    }
}

/// A file uploaded to the fake in a multipart request.
#[derive(Clone, Debug)]
pub struct Upload {
    pub name: String,
    pub mime: String,
    pub bytes: Vec<u8>,
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    /// `messages`, `media` (upload), `media_info`, `download`.
    pub kind: String,
    pub path: String,
    /// The JSON body, or the form's text fields, or the query.
    pub body: Value,
    pub upload: Option<Upload>,
    /// The Bearer token sent, if any.
    pub bearer: Option<String>,
    pub at: Instant,
    /// The status the fake answered with.
    pub status: u16,
}

impl Call {
    /// The message type of a `messages` call (`text`, `image`, `reaction`, `template`, …).
    pub fn message_type(&self) -> Option<&str> {
        self.body.get("type").and_then(Value::as_str)
    }

    /// The text body of a `messages` call of type text.
    pub fn text(&self) -> Option<&str> {
        self.body.pointer("/text/body").and_then(Value::as_str)
    }
}

/// How a failing send answers.
#[derive(Clone, Debug)]
pub struct Fault {
    pub http_status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    pub details: String,
    /// A `Retry-After` header, in seconds.
    pub retry_after: Option<u32>,
}

impl Fault {
    /// Plain HTTP 429 with Graph's application-level throttling code 4 and a `Retry-After`.
    pub fn too_many_requests(retry_after: u32) -> Fault {
        Fault {
            http_status: 429,
            code: 4,
            subcode: None,
            message: "(#4) Application request limit reached".into(),
            details: "Too many calls from this app".into(),
            retry_after: Some(retry_after),
        }
    }

    /// WhatsApp's cloud rate limit, as Meta sends it (HTTP 400, code 130429, no Retry-After).
    pub fn rate_limit_130429() -> Fault {
        Fault {
            http_status: 400,
            code: 130429,
            subcode: Some(2494055),
            message: "(#130429) Rate limit hit".into(),
            details: "Message failed to send because there were too many messages sent from this phone number in a short period of time".into(),
            retry_after: None,
        }
    }

    /// The 24-hour window closed on Meta's side (say, the bridge's clock is behind).
    pub fn reengagement_131047() -> Fault {
        Fault {
            http_status: 400,
            code: 131047,
            subcode: Some(2494078),
            message: "(#131047) Re-engagement message".into(),
            details: "Message failed to send because more than 24 hours have passed since the customer last replied to this number.".into(),
            retry_after: None,
        }
    }

    /// The message cannot reach this number (not on WhatsApp, old app…).
    pub fn undeliverable_131026() -> Fault {
        Fault {
            http_status: 400,
            code: 131026,
            subcode: None,
            message: "(#131026) Message Undeliverable".into(),
            details: "Unable to deliver message. Reasons can include: the recipient phone number is not a WhatsApp phone number".into(),
            retry_after: None,
        }
    }
}

#[derive(Clone, Debug)]
struct StoredMedia {
    bytes: Vec<u8>,
    mime: String,
}

#[derive(Default)]
struct Inner {
    faults: Vec<(Fault, u32)>,
    media: HashMap<String, StoredMedia>,
    next_id: u64,
    /// Customers' last message time (seconds), for the 24-hour window.
    last_inbound: HashMap<String, i64>,
    /// Messages the business sent: wamid → body.
    sent: Vec<(String, Value)>,
    /// Templates: name → (language, number of body parameters).
    templates: HashMap<String, (String, usize)>,
    /// Media downloads still to fail with a 500.
    failing_downloads: u32,
}

type Shared = server::Shared<Inner, Call>;

/// The fake Cloud API, on 127.0.0.1 and a free port; stops when dropped.
pub struct FakeWhatsApp {
    server: FakeServer,
    shared: Arc<Shared>,
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Graph's error envelope.
fn graph_error(
    status: u16,
    code: i64,
    subcode: Option<i64>,
    message: &str,
    details: &str,
) -> Response {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details},
        "fbtrace_id": "AFakeTraceId0123456789",
    });
    if let Some(s) = subcode {
        error["error_subcode"] = s.into();
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(json!({ "error": error }))).into_response()
}

fn invalid_parameter(details: &str) -> Response {
    graph_error(400, 100, None, "(#100) Invalid parameter", details)
}

/// Sign a body as Meta does.
pub fn sign(body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(APP_SECRET.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// JSON with every non-ASCII character escaped as `\uXXXX`, the way Meta serialises (and
/// signs) webhook bodies.
pub fn meta_json(value: &Value) -> String {
    let plain = value.to_string();
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

impl FakeWhatsApp {
    pub async fn start() -> anyhow::Result<FakeWhatsApp> {
        let mut inner = Inner {
            next_id: 1,
            ..Inner::default()
        };
        inner
            .templates
            .insert("hello_world".into(), ("en_US".into(), 0));
        inner
            .templates
            .insert("order_update".into(), ("en_US".into(), 2));
        let bound = FakeServer::bind("WhatsApp").await?;
        let shared = bound.shared(inner);
        let app = Router::new()
            .route("/download/{media_id}", get(download))
            .route("/{version}/{id}", get(media_info))
            .route("/{version}/{id}/{edge}", post(edge))
            .layer(DefaultBodyLimit::max(MAX_UPLOAD + 1024 * 1024))
            .with_state(Arc::clone(&shared));
        let server = bound.serve(app);
        Ok(FakeWhatsApp { server, shared })
    }

    /// The base URL to configure as `api_url`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The bridge's `channels.whatsapp` section for this fake.
    pub fn channel_config(&self) -> serde_json::Value {
        serde_json::json!({
            "enabled": true,
            "phone_number_id": PHONE_NUMBER_ID,
            "access_token": TOKEN,
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
            "api_url": self.url(),
            "api_version": "v21.0",
        })
    }

    fn next_id(&self) -> u64 {
        let mut s = self.shared.lock();
        s.next_id += 1;
        s.next_id
    }

    /// A new wamid (shaped like Meta's).
    pub fn new_wamid(&self) -> String {
        format!(
            "wamid.HBgLMTU1NTAwMDEyMzQVAgASGBQzQUZBS0Uw{:08}AA==",
            self.next_id()
        )
    }

    /// Keep a customer's file on WhatsApp's side; returns its media id.
    pub fn add_media(&self, bytes: Vec<u8>, mime: &str) -> String {
        let id = format!("{}", 900_000_000_000u64 + self.next_id());
        self.shared.lock().media.insert(
            id.clone(),
            StoredMedia {
                bytes,
                mime: mime.into(),
            },
        );
        id
    }

    /// The bytes of a file the bridge uploaded.
    pub fn media_bytes(&self, media_id: &str) -> Option<Vec<u8>> {
        self.shared
            .lock()
            .media
            .get(media_id)
            .map(|m| m.bytes.clone())
    }

    /// A delivery with one customer message: `fields` are the message's type-specific fields
    /// (`{"type":"text","text":{"body":"hi"}}`, `{"type":"image","image":{…}}`, `context`, …).
    /// `at` is the message's time (seconds; now when `None`). Returns (wamid, payload).
    pub fn message(&self, customer: &Customer, fields: Value, at: Option<i64>) -> (String, Value) {
        let wamid = self.new_wamid();
        let at = at.unwrap_or_else(now_secs);
        {
            let mut s = self.shared.lock();
            let last = s.last_inbound.entry(customer.wa_id.clone()).or_insert(at);
            *last = (*last).max(at);
        }
        let mut message = json!({"from": customer.wa_id, "id": wamid, "timestamp": at.to_string()});
        if let (Some(m), Value::Object(f)) = (message.as_object_mut(), fields) {
            m.extend(f);
        }
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": DISPLAY_PHONE_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": customer.name}, "wa_id": customer.wa_id}],
            "messages": [message],
        });
        (wamid, envelope(value))
    }

    /// The customer taps choice `index` of the interactive message `sent_wamid` the business
    /// sent them (a row of a list, counted across its sections, or a reply button). As WhatsApp
    /// delivers it: a message of type `interactive` with `list_reply` {`id`, `title`,
    /// `description`?} or `button_reply` {`id`, `title`}, whose `context` names the message
    /// tapped. Returns (wamid of the tap, payload).
    pub fn tap(
        &self,
        customer: &Customer,
        sent_wamid: &str,
        index: usize,
    ) -> anyhow::Result<(String, Value)> {
        let body = self
            .sent()
            .into_iter()
            .find(|(w, _)| w == sent_wamid)
            .map(|(_, b)| b)
            .ok_or_else(|| anyhow::anyhow!("the business sent no message {sent_wamid}"))?;
        anyhow::ensure!(
            body["to"].as_str().map(|t| t.trim_start_matches('+')) == Some(customer.wa_id.as_str()),
            "{sent_wamid} was not sent to {}",
            customer.wa_id
        );
        let interactive = &body["interactive"];
        let (kind, reply) = match interactive["type"].as_str() {
            Some("list") => {
                let rows: Vec<&Value> = interactive["action"]["sections"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|s| s["rows"].as_array().into_iter().flatten())
                    .collect();
                let row = rows
                    .get(index)
                    .ok_or_else(|| anyhow::anyhow!("no row {index} in {body}"))?;
                let mut reply = json!({"id": row["id"], "title": row["title"]});
                if let Some(d) = row.get("description") {
                    reply["description"] = d.clone();
                }
                ("list_reply", reply)
            }
            Some("button") => {
                let button = interactive["action"]["buttons"]
                    .get(index)
                    .ok_or_else(|| anyhow::anyhow!("no button {index} in {body}"))?;
                (
                    "button_reply",
                    json!({"id": button["reply"]["id"], "title": button["reply"]["title"]}),
                )
            }
            _ => anyhow::bail!("{sent_wamid} is not a list or reply-button message: {body}"),
        };
        Ok(self.message(
            customer,
            json!({
                "context": {"from": DISPLAY_PHONE_NUMBER, "id": sent_wamid},
                "type": "interactive",
                "interactive": {"type": kind, kind: reply},
            }),
            None,
        ))
    }

    /// A status delivery for our message `wamid`: `sent`, `delivered`, `read` or `failed`
    /// (with `errors`).
    pub fn status(
        &self,
        customer: &Customer,
        wamid: &str,
        status: &str,
        errors: Option<Value>,
    ) -> Value {
        let mut s = json!({
            "id": wamid, "status": status, "timestamp": now_secs().to_string(), "recipient_id": customer.wa_id,
        });
        if status != "failed" {
            s["conversation"] =
                json!({"id": "7270432eae37498234f4444b35ffc5", "origin": {"type": "service"}});
            s["pricing"] = json!({"billable": true, "pricing_model": "CBP", "category": "service"});
        }
        if let Some(e) = errors {
            s["errors"] = e;
        }
        envelope(json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": DISPLAY_PHONE_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
            "statuses": [s],
        }))
    }

    /// POST a delivery to the webhook, signed as Meta signs it; returns the HTTP status.
    pub async fn deliver(&self, url: &str, payload: &Value) -> anyhow::Result<u16> {
        let body = meta_json(payload);
        let signature = sign(body.as_bytes());
        self.deliver_raw(url, body.into_bytes(), Some(&signature))
            .await
    }

    /// POST any body with any signature header (or none).
    pub async fn deliver_raw(
        &self,
        url: &str,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> anyhow::Result<u16> {
        let signature: Vec<_> = signature
            .map(|s| ("X-Hub-Signature-256", s))
            .into_iter()
            .collect();
        let response = server::post_webhook(url, body, &signature, Duration::from_secs(60)).await?;
        Ok(response.status().as_u16())
    }

    /// Every request so far.
    pub fn all_calls(&self) -> Vec<Call> {
        self.shared.calls()
    }

    /// The requests of one kind so far.
    pub fn calls(&self, kind: &str) -> Vec<Call> {
        self.shared.calls_where(|c| c.kind == kind)
    }

    /// Waits until a call of `kind` matching `pred` was received.
    pub async fn wait_for_call(
        &self,
        kind: &str,
        pred: impl Fn(&Call) -> bool,
    ) -> anyhow::Result<Call> {
        self.server
            .wait_for(
                &format!("a matching {kind} call"),
                server::DEFAULT_WAIT,
                || self.calls(kind).into_iter().find(|c| pred(c)),
            )
            .await
    }

    /// Make the next `count` message sends fail with `fault`.
    pub fn fault(&self, fault: Fault, count: u32) {
        self.shared.lock().faults.push((fault, count));
    }

    /// Make the next `count` media downloads fail with 500 (the CDN having trouble).
    pub fn fail_downloads(&self, count: u32) {
        self.shared.lock().failing_downloads = count;
    }

    /// Messages the business sent (accepted ones), in order: (wamid, body).
    pub fn sent(&self) -> Vec<(String, Value)> {
        self.shared.lock().sent.clone()
    }
}

fn envelope(value: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}]})
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
}

fn record(
    shared: &Shared,
    kind: &str,
    path: String,
    body: Value,
    upload: Option<Upload>,
    bearer: Option<String>,
    status: u16,
) {
    shared.record(Call {
        kind: kind.into(),
        path,
        body,
        upload,
        bearer,
        at: Instant::now(),
        status,
    });
}

fn check_auth(headers: &HeaderMap) -> Result<(), Response> {
    match bearer(headers) {
        Some(t) if t == TOKEN => Ok(()),
        Some(_) => Err(graph_error(
            401,
            190,
            None,
            "Invalid OAuth access token - Cannot parse access token",
            "",
        )),
        None => Err(graph_error(
            401,
            190,
            None,
            "An access token is required to request this resource.",
            "",
        )),
    }
}

fn check_version(version: &str) -> Result<(), Response> {
    let ok = version.strip_prefix('v').is_some_and(|v| {
        v.split('.').count() == 2 && v.split('.').all(|p| p.parse::<u32>().is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(graph_error(400, 2500, None, "Unknown path components", ""))
    }
}

fn unknown_object(id: &str) -> Response {
    graph_error(
        400,
        100,
        Some(33),
        &format!("Unsupported post request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."),
        "",
    )
}

async fn edge(
    State(shared): State<Arc<Shared>>,
    Path((version, id, edge)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let token = bearer(&headers);
    let kind = if edge == "media" { "media" } else { "messages" };
    let (body, upload, response) = match edge_answer(&shared, &version, &id, &edge, request).await {
        Ok((body, upload, response)) => (body, upload, response),
        Err((body, response)) => (body, None, response),
    };
    record(
        &shared,
        kind,
        path,
        body,
        upload,
        token,
        response.status().as_u16(),
    );
    response
}

type EdgeResult = Result<(Value, Option<Upload>, Response), (Value, Response)>;

async fn edge_answer(
    shared: &Arc<Shared>,
    version: &str,
    id: &str,
    edge: &str,
    request: Request,
) -> EdgeResult {
    let headers = request.headers().clone();
    check_version(version).map_err(|r| (Value::Null, r))?;
    check_auth(&headers).map_err(|r| (Value::Null, r))?;
    if id != PHONE_NUMBER_ID || !(edge == "messages" || edge == "media") {
        return Err((Value::Null, unknown_object(id)));
    }
    if edge == "media" {
        return upload(shared, request).await;
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let raw = Bytes::from_request(request, &())
        .await
        .map_err(|_| (Value::Null, invalid_parameter("body too large")))?;
    let body: Value = match serde_json::from_slice(&raw) {
        Ok(v @ Value::Object(_)) if is_json => v,
        _ => {
            return Err((
                Value::Null,
                invalid_parameter("The request body must be a JSON object"),
            ))
        }
    };
    let response = send_message(shared, &body);
    Ok((body, None, response))
}

async fn upload(shared: &Arc<Shared>, request: Request) -> EdgeResult {
    let mut form = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|e| {
            (
                Value::Null,
                invalid_parameter(&format!("multipart form expected: {e}")),
            )
        })?;
    let mut fields = Map::new();
    let mut file = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let file_name = field.file_name().map(str::to_owned);
                let mime = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let bytes = field.bytes().await.map_err(|_| {
                    (
                        Value::Null,
                        graph_error(
                            413,
                            131052,
                            None,
                            "(#131052) Media upload error",
                            "file too large",
                        ),
                    )
                })?;
                match file_name {
                    Some(file_name) if name == "file" => {
                        file = Some(Upload {
                            name: file_name,
                            mime,
                            bytes: bytes.to_vec(),
                        })
                    }
                    _ => {
                        fields.insert(
                            name,
                            Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                        );
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                return Err((
                    Value::Object(fields),
                    invalid_parameter(&format!("bad multipart body: {e}")),
                ))
            }
        }
    }
    let body = Value::Object(fields.clone());
    if fields.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err((
            body,
            invalid_parameter("The parameter messaging_product is required."),
        ));
    }
    let Some(file) = file else {
        return Err((body, invalid_parameter("The parameter file is required.")));
    };
    let Some(mime) = fields
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| t.contains('/'))
    else {
        return Err((body, invalid_parameter("The parameter type is required.")));
    };
    // Only the supported media types are taken (see UPLOAD_TYPES), whatever the file is.
    let essence = mime_essence(mime);
    if !UPLOAD_TYPES.contains(&essence.as_str()) {
        let message = format!(
            "(#100) Param file must be a file with one of the following types: {}. Received file of type '{essence}'.",
            UPLOAD_TYPES.join(", ")
        );
        return Err((body, graph_error(400, 100, None, &message, &message)));
    }
    if file.bytes.len() > MAX_UPLOAD {
        return Err((
            body,
            graph_error(
                400,
                131053,
                None,
                "(#131053) Media upload error",
                "Unable to upload the media used in the message: the file is larger than 100 MB.",
            ),
        ));
    }
    let media_id = {
        let mut s = shared.lock();
        s.next_id += 1;
        let id = format!("{}", 1_037_543_291_000_000u64 + s.next_id);
        s.media.insert(
            id.clone(),
            StoredMedia {
                bytes: file.bytes.clone(),
                mime: mime.to_owned(),
            },
        );
        id
    };
    let response = (StatusCode::OK, axum::Json(json!({"id": media_id}))).into_response();
    Ok((body, Some(file), response))
}

/// A MIME type without parameters, lower case (`audio/ogg; codecs=opus` → `audio/ogg`).
fn mime_essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// An animated WebP has the `ANIM` chunk (<https://developers.google.com/speed/webp/docs/riff_container#animation>).
fn is_animated_webp(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w == b"ANIM")
}

/// Why media of this type and size cannot go out as a message of `kind`, per the "Supported
/// media types" table (<https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types>):
/// image JPEG/PNG ≤ 5 MB; video MP4/3GPP ≤ 16 MB; audio AAC/AMR/MP3/M4A/OGG ≤ 16 MB;
/// sticker WebP ≤ 100 KB (animated ≤ 500 KB); document ≤ 100 MB (any uploaded type: a photo
/// can go as a document).
fn media_kind_problem(kind: &str, media: &StoredMedia) -> Option<String> {
    let mime = mime_essence(&media.mime);
    let size = media.bytes.len();
    let (types, max): (&[&str], usize) = match kind {
        "image" => (&["image/jpeg", "image/png"], MAX_IMAGE),
        "video" => (&["video/mp4", "video/3gpp"], MAX_AUDIO_VIDEO),
        "audio" => (
            &[
                "audio/aac",
                "audio/amr",
                "audio/mpeg",
                "audio/mp4",
                "audio/ogg",
                "audio/opus",
            ],
            MAX_AUDIO_VIDEO,
        ),
        "sticker" if is_animated_webp(&media.bytes) => (&["image/webp"], MAX_ANIMATED_STICKER),
        "sticker" => (&["image/webp"], MAX_STATIC_STICKER),
        _ => (UPLOAD_TYPES, MAX_UPLOAD),
    };
    if !types.contains(&mime.as_str()) {
        Some(format!("Media of type {mime} cannot be sent as {kind}."))
    } else if size > max {
        Some(format!(
            "The {kind} is {size} bytes; at most {max} bytes are allowed for {kind}."
        ))
    } else {
        None
    }
}

fn take_fault(shared: &Shared) -> Option<Fault> {
    let mut s = shared.lock();
    let slot = s.faults.iter_mut().find(|(_, n)| *n > 0)?;
    slot.1 -= 1;
    Some(slot.0.clone())
}

fn send_message(shared: &Arc<Shared>, body: &Value) -> Response {
    if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return invalid_parameter("The parameter messaging_product is required.");
    }
    // Marking a customer's message read.
    if body.get("status").and_then(Value::as_str) == Some("read") {
        return match body.get("message_id").and_then(Value::as_str) {
            Some(_) => (StatusCode::OK, axum::Json(json!({"success": true}))).into_response(),
            None => invalid_parameter("The parameter message_id is required."),
        };
    }
    if let Some(f) = take_fault(shared) {
        let mut response = graph_error(f.http_status, f.code, f.subcode, &f.message, &f.details);
        if let Some(after) = f.retry_after {
            if let Ok(v) = after.to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        return response;
    }
    let Some(to) = body
        .get("to")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return invalid_parameter("The parameter to is required.");
    };
    let wa_id = to.trim_start_matches('+').to_owned();
    if body
        .get("recipient_type")
        .is_some_and(|r| r != "individual")
    {
        return invalid_parameter("recipient_type must be individual");
    }
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("text");
    let object = body.get(kind);
    let problem = match (kind, object) {
        ("text", Some(t)) => match t.get("body").and_then(Value::as_str) {
            Some(b) if b.trim().is_empty() => Some("Param text['body'] is required".to_owned()),
            Some(b) if b.chars().count() > 4096 => {
                Some("Param text['body'] must be at most 4096 characters long.".to_owned())
            }
            Some(_) => None,
            None => Some("Param text['body'] is required".to_owned()),
        },
        ("image" | "audio" | "video" | "document" | "sticker", Some(m)) => {
            let known = m
                .get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| shared.lock().media.contains_key(id));
            let link = m.get("link").and_then(Value::as_str).is_some();
            let stored = m
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| shared.lock().media.get(id).cloned());
            if !known && !link {
                Some(format!("Param {kind}['id'] is not a valid media id"))
            } else if let Some(wrong) = stored.and_then(|m| media_kind_problem(kind, &m)) {
                // Error code 131053 "Media upload error", HTTP 400: "Unable to upload the media
                // used in the message" (the media is not of a type or size this message type
                // takes). <https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes>
                return graph_error(
                    400,
                    131053,
                    None,
                    "(#131053) Media upload error",
                    &format!("Unable to upload the media used in the message. {wrong}"),
                );
            } else if kind == "audio" && m.get("caption").is_some() {
                Some("Param audio['caption'] is not allowed".into())
            } else if m
                .get("caption")
                .and_then(Value::as_str)
                .is_some_and(|c| c.chars().count() > 1024)
            {
                // Cloud API media object: "caption … Maximum 1024 characters".
                Some(format!(
                    "Param {kind}['caption'] must be at most 1024 characters long."
                ))
            } else {
                None
            }
        }
        ("reaction", Some(r)) => match (
            r.get("message_id").and_then(Value::as_str),
            r.get("emoji").and_then(Value::as_str),
        ) {
            (Some(_), Some(_)) => None,
            _ => Some("Param reaction['message_id'] and reaction['emoji'] are required".into()),
        },
        ("template", Some(t)) => {
            let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
            let lang = t
                .pointer("/language/code")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let params = t
                .get("components")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == "body"))
                .and_then(|b| b.get("parameters"))
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            match shared.lock().templates.get(name).cloned() {
                Some((l, _)) if l != lang => {
                    return graph_error(404, 132001, None, "(#132001) Template name does not exist in the translation", &format!("template name ({name}) does not exist in {lang}"))
                }
                Some((_, n)) if n != params => {
                    return graph_error(400, 132000, None, "(#132000) Number of parameters does not match the expected number of params", &format!("body: number of localizable_params ({params}) does not match the expected number of params ({n})"))
                }
                Some(_) => None,
                None => {
                    return graph_error(404, 132001, None, "(#132001) Template name does not exist in the translation", &format!("template name ({name}) does not exist in {lang}"))
                }
            }
        }
        ("interactive", Some(i)) => match interactive_problem(i) {
            Some(Problem::Missing(p)) => Some(p),
            Some(Problem::OutOfBounds(p)) => {
                return graph_error(
                    400,
                    131009,
                    None,
                    "(#131009) Parameter value is not valid",
                    &p,
                )
            }
            None => None,
        },
        (other, _) => Some(format!("Param {other} is required or not a message type")),
    };
    if let Some(p) = problem {
        return invalid_parameter(&p);
    }
    // The customer-service window: free-form messages only within 24 h of the customer's last one.
    if kind != "template" {
        let last = shared.lock().last_inbound.get(&wa_id).copied();
        if last.is_none_or(|at| now_secs() - at >= 24 * 3600) {
            return graph_error(
                400,
                131047,
                Some(2494078),
                "(#131047) Re-engagement message",
                "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
            );
        }
    }
    let wamid = {
        let mut s = shared.lock();
        s.next_id += 1;
        let wamid = format!("wamid.HBgLMTU1NTAwMDEyMzQVAgARGBJPVVQ{:08}AA==", s.next_id);
        s.sent.push((wamid.clone(), body.clone()));
        wamid
    };
    let mut message = json!({"id": wamid});
    if kind == "template" {
        message["message_status"] = "accepted".into();
    }
    (
        StatusCode::OK,
        axum::Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": wa_id}],
            "messages": [message],
        })),
    )
        .into_response()
}

/// What is wrong with an `interactive` object.
enum Problem {
    /// A required part is missing or of the wrong kind: error 100.
    Missing(String),
    /// A value is outside the documented bounds: error 131009.
    OutOfBounds(String),
}

/// The checks the Cloud API makes on an interactive `list` or reply-`button` message (see the
/// module documentation for the limits and where they are written).
fn interactive_problem(i: &Value) -> Option<Problem> {
    use Problem::{Missing, OutOfBounds};
    let chars = |v: &Value| v.as_str().map(|s| s.chars().count());
    let text_within = |v: &Value, what: &str, max: usize| -> Option<Problem> {
        match chars(v) {
            None => Some(Missing(format!("Param {what} is required"))),
            Some(0) => Some(OutOfBounds(format!("{what} must not be empty"))),
            Some(n) if n > max => Some(OutOfBounds(format!(
                "{what} is {n} characters long; at most {max} are allowed"
            ))),
            Some(_) => None,
        }
    };
    let optional_within = |v: Option<&Value>, what: &str, max: usize| -> Option<Problem> {
        v.and_then(|v| text_within(v, what, max))
    };
    if let Some(p) = optional_within(
        i.pointer("/footer/text"),
        "interactive['footer']['text']",
        60,
    ) {
        return Some(p);
    }
    match i.get("type").and_then(Value::as_str) {
        Some("list") => {
            if let Some(header) = i.get("header") {
                if header.get("type").and_then(Value::as_str) != Some("text") {
                    return Some(Missing(
                        "A list message's header must be of type text".into(),
                    ));
                }
                if let Some(p) = text_within(&header["text"], "interactive['header']['text']", 60) {
                    return Some(p);
                }
            }
            if let Some(p) = text_within(&i["body"]["text"], "interactive['body']['text']", 4096) {
                return Some(p);
            }
            let action = &i["action"];
            if let Some(p) = text_within(&action["button"], "interactive['action']['button']", 20) {
                return Some(p);
            }
            let Some(sections) = action["sections"].as_array() else {
                return Some(Missing(
                    "Param interactive['action']['sections'] is required".into(),
                ));
            };
            if sections.is_empty() || sections.len() > 10 {
                return Some(OutOfBounds(format!(
                    "A list message has 1 to 10 sections, not {}",
                    sections.len()
                )));
            }
            let mut ids = std::collections::HashSet::new();
            let mut rows_in_all = 0;
            for (n, section) in sections.iter().enumerate() {
                let title = section.get("title");
                if sections.len() > 1 && title.is_none() {
                    return Some(Missing(format!(
                        "Param interactive['action']['sections'][{n}]['title'] is required when there are several sections"
                    )));
                }
                if let Some(p) = optional_within(title, "A section title", 24) {
                    return Some(p);
                }
                let Some(rows) = section["rows"].as_array() else {
                    return Some(Missing(format!(
                        "Param interactive['action']['sections'][{n}]['rows'] is required"
                    )));
                };
                if rows.is_empty() {
                    return Some(OutOfBounds(format!("Section {n} has no rows")));
                }
                rows_in_all += rows.len();
                for row in rows {
                    if let Some(p) = text_within(&row["id"], "A row id", 200)
                        .or_else(|| text_within(&row["title"], "A row title", 24))
                        .or_else(|| {
                            optional_within(row.get("description"), "A row description", 72)
                        })
                    {
                        return Some(p);
                    }
                    if !ids.insert(row["id"].as_str().unwrap_or_default().to_owned()) {
                        return Some(OutOfBounds(format!(
                            "Row ids must be unique in the message; {} is not",
                            row["id"]
                        )));
                    }
                }
            }
            if rows_in_all > 10 {
                return Some(OutOfBounds(format!(
                    "A list message has at most 10 rows in all, not {rows_in_all}"
                )));
            }
            None
        }
        Some("button") => {
            if let Some(p) = optional_within(
                i.pointer("/header/text"),
                "interactive['header']['text']",
                60,
            ) {
                return Some(p);
            }
            if let Some(p) = text_within(&i["body"]["text"], "interactive['body']['text']", 1024) {
                return Some(p);
            }
            let Some(buttons) = i["action"]["buttons"].as_array() else {
                return Some(Missing(
                    "Param interactive['action']['buttons'] is required".into(),
                ));
            };
            if buttons.is_empty() || buttons.len() > 3 {
                return Some(OutOfBounds(format!(
                    "A reply-button message has 1 to 3 buttons, not {}",
                    buttons.len()
                )));
            }
            let (mut ids, mut titles) = (Vec::new(), Vec::new());
            for b in buttons {
                if b["type"] != "reply" {
                    return Some(Missing("A button's type must be reply".into()));
                }
                if let Some(p) = text_within(&b["reply"]["id"], "A button id", 256)
                    .or_else(|| text_within(&b["reply"]["title"], "A button title", 20))
                {
                    return Some(p);
                }
                let (id, title) = (&b["reply"]["id"], &b["reply"]["title"]);
                if ids.contains(&id) || titles.contains(&title) {
                    return Some(OutOfBounds(
                        "Button ids and titles must be unique in the message".into(),
                    ));
                }
                ids.push(id);
                titles.push(title);
            }
            None
        }
        other => Some(Missing(format!(
            "Param interactive['type'] must be list or button here, not {other:?}"
        ))),
    }
}

async fn media_info(
    State(shared): State<Arc<Shared>>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let response = (|| {
        check_version(&version)?;
        check_auth(&headers)?;
        if id == PHONE_NUMBER_ID {
            return Ok(phone_number_node(&query));
        }
        let s = shared.lock();
        let Some(m) = s.media.get(&id) else {
            return Err(unknown_get(&id));
        };
        let base = shared.url();
        Ok((
            StatusCode::OK,
            axum::Json(json!({
                "url": format!("{base}/download/{id}?ext=1&hash=ATfake"),
                "mime_type": m.mime,
                "sha256": hex::encode(Sha256::digest(&m.bytes)),
                "file_size": m.bytes.len(),
                "id": id,
                "messaging_product": "whatsapp",
            })),
        )
            .into_response())
    })()
    .unwrap_or_else(|r| r);
    record(
        &shared,
        "media_info",
        path,
        json!({"query": query}),
        None,
        bearer(&headers),
        response.status().as_u16(),
    );
    response
}

/// The business phone number node (`GET /{phone-number-id}?fields=…`): the fields asked for
/// among those the node has, and `id`, as Graph answers a node read. Without `fields`, Graph's
/// default set (`verified_name`, `display_phone_number`, `quality_rating`, `id`, …).
fn phone_number_node(query: &str) -> Response {
    let node = json!({
        "id": PHONE_NUMBER_ID,
        "display_phone_number": "+1 555-000-1234",
        "verified_name": VERIFIED_NAME,
        "quality_rating": "GREEN",
        "code_verification_status": "VERIFIED",
        "platform_type": "CLOUD_API",
        "throughput": {"level": "STANDARD"},
    });
    let fields: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "fields")
        .map(|(_, v)| v.split(',').map(|f| f.trim().to_owned()).collect())
        .unwrap_or_default();
    if fields.is_empty() {
        return (StatusCode::OK, axum::Json(node)).into_response();
    }
    let mut out = json!({"id": PHONE_NUMBER_ID});
    for field in &fields {
        match node.get(field.as_str()) {
            Some(v) => out[field.as_str()] = v.clone(),
            None => {
                return graph_error(
                    400,
                    100,
                    None,
                    &format!("(#100) Tried accessing nonexisting field ({field}) on node type (WhatsAppBusinessPhoneNumber)"),
                    "",
                )
            }
        }
    }
    (StatusCode::OK, axum::Json(out)).into_response()
}

/// Graph's answer to a read of an id it does not know (or the token may not see).
fn unknown_get(id: &str) -> Response {
    graph_error(
        400,
        100,
        Some(33),
        &format!("Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"),
        "",
    )
}

async fn download(
    State(shared): State<Arc<Shared>>,
    Path(media_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let failing = {
        let mut s = shared.lock();
        let failing = s.failing_downloads > 0;
        s.failing_downloads = s.failing_downloads.saturating_sub(1);
        failing
    };
    let response = match check_auth(&headers) {
        Err(r) => r,
        Ok(()) if failing => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
        Ok(()) => match shared.lock().media.get(&media_id) {
            Some(m) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, m.mime.clone())],
                m.bytes.clone(),
            )
                .into_response(),
            None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
        },
    };
    record(
        &shared,
        "download",
        format!("/download/{media_id}"),
        Value::Null,
        None,
        bearer(&headers),
        response.status().as_u16(),
    );
    response
}
