//! Configuration: the YAML file, environment overrides, and validation.
//!
//! Values come from the file given with `-c`, then from environment variables named
//! `SWITCHBOARD_<SECTION>__<KEY>` (double underscore between levels), which win. Every problem is
//! reported with the key it concerns, e.g. `database.url: must start with sqlite:// or postgres://`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Yaml};
use figment::Figment;
use serde::Deserialize;

/// Where the configuration could not be used, with the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Parse(String),
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        problem: problem.into(),
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub homeserver: HomeserverConfig,
    pub appservice: AppserviceConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub bridge: BridgeConfig,
    /// Per-channel sections, handed to each channel as it is wired up (`src/main.rs`).
    #[serde(default)]
    pub channels: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Teams (segments) of operators, in routing order.
    #[serde(default)]
    pub teams: BTreeMap<String, TeamConfig>,
    #[serde(default)]
    pub routing: RoutingConfig,
    #[serde(default)]
    pub testing: TestingConfig,
    /// The HTTP server's limits (timeouts, body sizes, connections).
    #[serde(default)]
    pub http: HttpConfig,
    /// Prometheus metrics on a listener of their own (off unless `metrics.listen` is set).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The admin HTTP API (`/_switchboard/admin/v1`, see docs/admin-api.md).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Voice notes to text and images to text ([`crate::media`]).
    #[serde(default)]
    pub media: MediaConfig,
    /// Leadership among instances sharing one PostgreSQL store (docs/ha.md).
    #[serde(default)]
    pub ha: HaConfig,
    /// The figment the config was read from, kept so channel sections can be extracted with
    /// errors naming their keys.
    #[serde(skip)]
    pub source: Option<Figment>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeserverConfig {
    pub url: url::Url,
    pub domain: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppserviceConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// How the homeserver reaches us.
    pub url: url::Url,
    /// How browsers and webhook senders reach us; defaults to `url`.
    #[serde(default)]
    pub public_url: Option<url::Url>,
    #[serde(default = "default_id")]
    pub id: String,
    #[serde(default = "default_bot")]
    pub bot_localpart: String,
    #[serde(default = "default_bot_displayname")]
    pub bot_displayname: String,
    #[serde(default = "default_prefix")]
    pub ghost_prefix: String,
    #[serde(default = "default_registration")]
    pub registration: PathBuf,
    #[serde(default)]
    pub as_token: Option<String>,
    #[serde(default)]
    pub hs_token: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    #[serde(default = "default_db")]
    pub url: String,
    #[serde(default = "default_pool")]
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: default_db(),
            max_connections: default_pool(),
        }
    }
}

/// How the customer learns which operator answered.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Attribution {
    /// The customer sees only the company.
    #[default]
    None,
    /// "Alice: message".
    Prefix,
    /// "message\n— Alice".
    Signature,
}

/// Permission levels for commands, lowest first.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Operator,
    Lead,
    Admin,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    #[serde(default)]
    pub attribution: Attribution,
    #[serde(default)]
    pub operators: BTreeMap<String, Level>,
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_retry_base", with = "humantime_serde")]
    pub retry_base: Duration,
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// Where input a channel could not read and that names no conversation is shown (a room id
    /// or alias the bot is invited to). Unset: the lobby of conversations with no team, which
    /// every operator is invited to.
    #[serde(default)]
    pub admin_room: Option<String>,
    /// The company's name as customers know it (the `company` variable of canned replies).
    #[serde(default)]
    pub company: Option<String>,
    /// How often the running bridge checks the store, the homeserver and each channel's
    /// network again (`/_switchboard/ready`; failures are logged as warnings).
    #[serde(default = "default_check_interval", with = "humantime_serde")]
    pub check_interval: Duration,
    /// How a delivered operator message is shown in its room (a failure is always a notice
    /// replying to it and a failed `com.beeper.message_send_status`).
    #[serde(default)]
    pub delivery_status: DeliveryStatus,
    /// Where an answer goes when the customer has left a channel that reaches them only while
    /// a page is open (the web chat: no chat page open for `channels.webchat.away_after_secs`)
    /// and they gave an address for it: by `channel` from its `account` (e.g. `email` and a
    /// configured mailbox). Their reply there lands in the same room. Unset: answers wait in
    /// the chat for the customer's return.
    #[serde(default)]
    pub continue_by: Option<ContinueBy>,
}

/// `bridge.continue_by` (see [`BridgeConfig::continue_by`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinueBy {
    /// The channel that carries the answer (one with addresses: `email`).
    pub channel: String,
    /// The account it is sent from (for e-mail, the `name` of one of `channels.email.mailboxes`).
    pub account: String,
    /// The first mail's subject.
    #[serde(default = "default_continue_subject")]
    pub subject: String,
}

fn default_continue_subject() -> String {
    "Our answer to your chat".to_owned()
}

/// How success is shown. Every outcome stays visible; they differ in what a success costs the
/// homeserver.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The bot's read receipt on the operator's message (an ephemeral receipt, not a timeline
    /// event: every client shows it as the bot's avatar under the message, as mautrix bridges'
    /// `delivery_receipts` do); status events only for failures.
    #[default]
    Receipts,
    /// Also a `com.beeper.message_send_status` `SUCCESS` event per message, for clients that
    /// render it (Beeper, and mautrix-aware clients); each one is a timeline event Synapse
    /// stores and fans out like a message.
    Events,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            attribution: Attribution::None,
            operators: BTreeMap::new(),
            max_attempts: default_attempts(),
            retry_base: default_retry_base(),
            retry_max: default_retry_max(),
            admin_room: None,
            company: None,
            check_interval: default_check_interval(),
            delivery_status: DeliveryStatus::default(),
            continue_by: None,
        }
    }
}

/// How a team hands out new conversations.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AssignMode {
    /// Every member of the team sees new conversations; whoever claims or answers owns them.
    #[default]
    Team,
    /// One online, on-shift member with room under `max_open_per_operator` gets each new one.
    RoundRobin,
    /// Only leads see new conversations and hand them out (`assign`); members cannot `claim`.
    LeadOnly,
}

/// One routing rule: every field given must match.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    /// Any of these words in the first message (case-insensitive).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The customer's email domain (a segment tag for business customers).
    #[serde(default)]
    pub email_domain: Option<String>,
    /// Any of these segment tags on the customer (set by operators with `!sb tag`; they follow
    /// the customer across channels).
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub leads: Vec<String>,
    /// A room id the bot is in; without it the bot creates the team's lobby.
    #[serde(default)]
    pub lobby: Option<String>,
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Day spec → "HH:MM-HH:MM" or "closed", e.g. `mon-fri: "09:00-18:00"`. Empty: always open.
    #[serde(default)]
    pub hours: BTreeMap<String, String>,
    #[serde(default)]
    pub holidays: Vec<chrono::NaiveDate>,
    #[serde(default = "default_escalate", with = "humantime_serde")]
    pub escalate_after: Duration,
    #[serde(default = "default_remind", with = "humantime_serde")]
    pub remind_before: Duration,
    /// Sent to the customer (once per conversation per day) when a message arrives out of hours.
    #[serde(default)]
    pub auto_reply: Option<String>,
    /// Signs the team's outgoing messages on channels that use signatures (email), in place of
    /// the channel's own default (`channels.email.signature`).
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub mode: AssignMode,
    #[serde(default)]
    pub max_open_per_operator: Option<u32>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// The weekly digest posted to the team's lobby (`docs/reports.md`).
    #[serde(default)]
    pub digest: DigestConfig,
    /// Ask customers to rate resolved conversations (CSAT); off when absent.
    #[serde(default)]
    pub csat: Option<CsatConfig>,
    /// Round-robin prefers, among the eligible members, the one with the better average rating
    /// over the last 90 days (a member not rated yet counts as 3).
    #[serde(default)]
    pub prefer_better_rated: bool,
}

/// When a team's weekly digest goes to its lobby: on `weekday` at `hour`:00 in the team's time
/// zone, covering the 7 days before.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `mon` … `sun`.
    #[serde(default = "default_digest_weekday")]
    pub weekday: String,
    /// 0–23.
    #[serde(default = "default_digest_hour")]
    pub hour: u32,
}

impl Default for DigestConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            weekday: default_digest_weekday(),
            hour: default_digest_hour(),
        }
    }
}

impl DigestConfig {
    /// The configured weekday (`None` when it names none).
    pub fn day(&self) -> Option<chrono::Weekday> {
        self.weekday.parse().ok()
    }
}

fn default_digest_weekday() -> String {
    "mon".into()
}
fn default_digest_hour() -> u32 {
    9
}

/// A team's customer satisfaction survey: after a resolution, the customer is asked to rate it
/// 1–5 in their own channel (buttons where the network has them, else a reply with a digit).
/// Texts are per language (`en`, `ru`, …; the customer's language is their `lang-<code>` tag),
/// falling back to `en`, then to the first one given.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsatConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long after the resolution the question goes out (a customer who writes meanwhile
    /// reopens the conversation, and is not asked).
    #[serde(default = "default_csat_delay", with = "humantime_serde")]
    pub delay: Duration,
    /// The question.
    #[serde(default = "default_csat_question")]
    pub question: BTreeMap<String, String>,
    /// Added below the question where the network has no buttons (e-mail, SMS).
    #[serde(default = "default_csat_hint")]
    pub hint: BTreeMap<String, String>,
    /// Sent once the customer has rated.
    #[serde(default = "default_csat_thanks")]
    pub thanks: BTreeMap<String, String>,
    /// How long an answer is accepted after the question went out.
    #[serde(default = "default_csat_answer_within", with = "humantime_serde")]
    pub answer_within: Duration,
    /// How long after rating the customer's next message is taken as their comment.
    #[serde(default = "default_csat_comment_within", with = "humantime_serde")]
    pub comment_within: Duration,
}

fn default_csat_delay() -> Duration {
    Duration::from_secs(10 * 60)
}
fn default_csat_answer_within() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_csat_comment_within() -> Duration {
    Duration::from_secs(30 * 60)
}
fn english(text: &str) -> BTreeMap<String, String> {
    [("en".to_string(), text.to_string())].into_iter().collect()
}
fn default_csat_question() -> BTreeMap<String, String> {
    english("How would you rate our help?")
}
fn default_csat_hint() -> BTreeMap<String, String> {
    english(
        "Reply with a digit from 1 (poor) to 5 (excellent); add a comment after it if you like.",
    )
}
fn default_csat_thanks() -> BTreeMap<String, String> {
    english("Thank you for your rating! If you want to tell us more, just reply.")
}

impl CsatConfig {
    /// One of the texts in `language` (else `en`, else the first given).
    pub fn text<'a>(
        texts: &'a BTreeMap<String, String>,
        language: Option<&str>,
    ) -> Option<&'a str> {
        language
            .and_then(|l| texts.get(l))
            .or_else(|| texts.get("en"))
            .or_else(|| texts.values().next())
            .map(String::as_str)
    }
}

fn default_tz() -> String {
    "UTC".into()
}
fn default_escalate() -> Duration {
    Duration::from_secs(2 * 3600)
}
fn default_remind() -> Duration {
    Duration::from_secs(15 * 60)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// When someone claims a conversation, operators who have not written in it leave the room.
    #[serde(default = "default_true")]
    pub remove_uninvolved_on_claim: bool,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            remove_uninvolved_on_claim: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// The shared HTTP server (`appservice.listen`: homeserver transactions, webhooks, the web
/// chat) and what it refuses. The defaults suit the open internet; a refusal is logged once a
/// minute per kind with a count of the rest.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// A client must send a request's whole header within this time, from connecting or from
    /// the end of its previous response (so it is also how long an idle keep-alive connection
    /// waits for its next request). Slow-loris clients are closed after it.
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A request's whole body must arrive within this time from its header (uploads included).
    #[serde(default = "default_body_timeout", with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// A connection on which nothing is read or written for this long is closed (event streams
    /// send a keep-alive every 15 s, so they stay open).
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Open connections at most; more are answered `503` with `Retry-After` and closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Largest request body, in bytes, on any route not listed in `body_limits`.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// Largest request body per route prefix (`/_matrix/app/`, `/telegram/`), in bytes; the
    /// longest matching prefix wins. Channels keep their own finer limits inside (the web
    /// chat's JSON and upload limits).
    #[serde(default = "default_body_limits")]
    pub body_limits: BTreeMap<String, u64>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: default_header_timeout(),
            body_read_timeout: default_body_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            max_body_bytes: default_max_body(),
            body_limits: default_body_limits(),
        }
    }
}

impl HttpConfig {
    /// The body limit for a request path: the longest matching prefix's, else the default.
    pub fn body_limit(&self, path: &str) -> u64 {
        self.body_limits
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.max_body_bytes, |(_, limit)| *limit)
    }
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_max_connections() -> usize {
    2048
}
fn default_max_body() -> u64 {
    // Webhooks and the web chat's JSON API: far below this.
    1024 * 1024
}
fn default_body_limits() -> BTreeMap<String, u64> {
    BTreeMap::from([
        // Homeserver transactions: the appservice reads at most 64 MiB and answers M_TOO_LARGE.
        ("/_matrix/".to_string(), 64 * 1024 * 1024 + 64 * 1024),
        // Web chat uploads: channels.webchat.max_upload_bytes (10 MiB by default) and room for
        // the multipart envelope; raise this with it.
        ("/webchat/api/v1/files".to_string(), 64 * 1024 * 1024),
    ])
}

/// Voice notes and images to text: durable jobs ([`crate::media`]) run after the file is
/// relayed, never before.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Jobs run at once (each one an engine run: keep it low on small machines).
    #[serde(default = "default_media_concurrency")]
    pub concurrency: usize,
    /// Largest file fetched for a job, in bytes (the OpenAI API takes 25 MB).
    #[serde(default = "default_media_max_bytes")]
    pub max_file_bytes: u64,
    /// Runs of one job before it is given up (an engine that is down, a timeout).
    #[serde(default = "default_media_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_media_retry_base", with = "humantime_serde")]
    pub retry_base: Duration,
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    #[serde(default)]
    pub transcription: TranscriptionConfig,
    #[serde(default)]
    pub ocr: OcrConfig,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            concurrency: default_media_concurrency(),
            max_file_bytes: default_media_max_bytes(),
            max_attempts: default_media_attempts(),
            retry_base: default_media_retry_base(),
            retry_max: default_retry_max(),
            transcription: TranscriptionConfig::default(),
            ocr: OcrConfig::default(),
        }
    }
}

/// The speech-to-text service, reached through the OpenAI-compatible
/// `POST …/v1/audio/transcriptions` (a hosted service, or `scripts/whisper-server.py`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptionConfig {
    /// The endpoint's full URL; unset: transcription is not configured (jobs wait).
    #[serde(default)]
    pub url: Option<url::Url>,
    /// Sent as `Authorization: Bearer …` when set.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default = "default_whisper_model")]
    pub model: String,
    /// The `language` field: an ISO-639-1 code (`ru`); the project's server also takes a
    /// comma-separated list to detect among (`ru,uk,id,en`). Unset: detected.
    #[serde(default)]
    pub language: Option<String>,
    /// The `prompt` field: words the speakers use (product names), if any.
    #[serde(default)]
    pub prompt: Option<String>,
    /// One request at most this long (upload, transcription and answer).
    #[serde(default = "default_transcription_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for TranscriptionConfig {
    fn default() -> Self {
        Self {
            url: None,
            api_key: None,
            model: default_whisper_model(),
            language: None,
            prompt: None,
            timeout: default_transcription_timeout(),
        }
    }
}

/// Tesseract, run as a separate process per image with a time and a memory limit.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcrConfig {
    /// Off: images are not read (jobs wait until it is on).
    #[serde(default)]
    pub enabled: bool,
    /// The Tesseract program.
    #[serde(default = "default_tesseract")]
    pub command: String,
    /// Tesseract's language packs (apt `tesseract-ocr-<lang>`), all tried at once.
    #[serde(default = "default_ocr_languages")]
    pub languages: Vec<String>,
    /// A run longer than this is stopped.
    #[serde(default = "default_ocr_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The process's address-space limit, in megabytes.
    #[serde(default = "default_ocr_memory")]
    pub max_memory_mb: u64,
    /// Larger images (width × height) are not read: a decompression bomb is refused from its
    /// header, before any decoder sees it.
    #[serde(default = "default_ocr_pixels")]
    pub max_pixels: u64,
    /// Threads one Tesseract run may use (`OMP_THREAD_LIMIT`). 1: on a 2-core machine the
    /// other core stays with relay (with `media.concurrency` 1, one image at a time).
    #[serde(default = "default_ocr_threads")]
    pub threads: u32,
    /// The CPU and I/O class Tesseract runs in: `idle` (the default) uses only the CPU and
    /// disk time nothing else wants (Linux `SCHED_IDLE` and the idle I/O class), so relay and
    /// the homeserver are never kept waiting by it; `normal` runs it in the bridge's own class
    /// at `nice`.
    #[serde(default)]
    pub scheduling: Scheduling,
    /// The niceness Tesseract runs at with `scheduling: normal` (0–19; higher yields more).
    #[serde(default = "default_ocr_nice")]
    pub nice: i32,
}

/// The CPU and I/O scheduling class of an engine process the bridge starts
/// ([`crate::media::process`]).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scheduling {
    /// Linux `SCHED_IDLE` and the idle I/O class: it runs only when a core (a disk) would
    /// otherwise be idle, and any other process that wakes up takes the core from it at once.
    /// Where the kernel refuses the class, nice 19.
    #[default]
    Idle,
    /// The bridge's own classes (inherited), at the configured niceness.
    Normal,
}

impl Default for OcrConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            command: default_tesseract(),
            languages: default_ocr_languages(),
            timeout: default_ocr_timeout(),
            max_memory_mb: default_ocr_memory(),
            max_pixels: default_ocr_pixels(),
            threads: default_ocr_threads(),
            scheduling: Scheduling::default(),
            nice: default_ocr_nice(),
        }
    }
}

fn default_media_concurrency() -> usize {
    1
}
fn default_media_max_bytes() -> u64 {
    25 * 1024 * 1024
}
fn default_media_attempts() -> u32 {
    6
}
fn default_media_retry_base() -> Duration {
    Duration::from_secs(10)
}
fn default_whisper_model() -> String {
    "whisper-1".into()
}
fn default_transcription_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_tesseract() -> String {
    "tesseract".into()
}
fn default_ocr_languages() -> Vec<String> {
    ["rus", "ukr", "ind", "eng"].map(String::from).to_vec()
}
fn default_ocr_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_ocr_memory() -> u64 {
    1024
}
fn default_ocr_pixels() -> u64 {
    40_000_000
}
fn default_ocr_threads() -> u32 {
    1
}
fn default_ocr_nice() -> i32 {
    10
}

/// The admin API's own secret. Operators call the API with their Matrix access token instead.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// A bearer token with admin rights; at least [`ADMIN_SECRET_MIN`] characters. Unset: only
    /// operators' Matrix tokens are accepted.
    #[serde(default)]
    pub secret: Option<String>,
}

/// The shortest admin secret accepted (a guessable one would open every admin endpoint).
pub const ADMIN_SECRET_MIN: usize = 32;

/// Leadership among several instances on one PostgreSQL store (docs/ha.md, [`crate::leader`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaConfig {
    /// How long a lease holds without renewal: a leader that died is replaced this long after
    /// its last renewal, at most.
    #[serde(default = "default_lease", with = "humantime_serde")]
    pub lease: Duration,
    /// How often the leader renews and a standby tries to take an expired lease.
    #[serde(default = "default_renew_every", with = "humantime_serde")]
    pub renew_every: Duration,
    /// This instance's name in the lease and in health answers (default: host name, process id
    /// and a random suffix, new at every start). A fixed name per instance lets a restarted
    /// instance take its own lease back at once instead of waiting for it to expire.
    #[serde(default)]
    pub instance_id: Option<String>,
}

impl Default for HaConfig {
    fn default() -> Self {
        Self {
            lease: default_lease(),
            renew_every: default_renew_every(),
            instance_id: None,
        }
    }
}

fn default_lease() -> Duration {
    Duration::from_secs(5)
}

fn default_renew_every() -> Duration {
    Duration::from_secs(1)
}

/// Switches for test rigs; never on in production.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestingConfig {
    #[serde(default)]
    pub clock_control: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    #[serde(default = "default_filter")]
    pub filter: String,
    /// `pretty` (lines for people) or `json` (one object per line, with the span fields:
    /// channel, conversation id, transaction id, event id).
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            filter: default_filter(),
            format: LogFormat::default(),
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// `/metrics` in the Prometheus text format ([`crate::metrics`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `/metrics` is served (keep it off the internet); unset: no metrics.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// How often the figures kept in the store (queues, unworked conversations, first
    /// responses) are read.
    #[serde(default = "default_metrics_refresh", with = "humantime_serde")]
    pub refresh: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: None,
            refresh: default_metrics_refresh(),
        }
    }
}

fn default_metrics_refresh() -> Duration {
    Duration::from_secs(10)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 29340))
}
fn default_id() -> String {
    "switchboard".into()
}
fn default_bot() -> String {
    "switchboard".into()
}
fn default_bot_displayname() -> String {
    "Switchboard".into()
}
fn default_prefix() -> String {
    "sb_".into()
}
fn default_registration() -> PathBuf {
    PathBuf::from("registration.yaml")
}
fn default_db() -> String {
    "sqlite://switchboard.db".into()
}
fn default_pool() -> u32 {
    8
}
fn default_attempts() -> u32 {
    8
}
fn default_retry_base() -> Duration {
    Duration::from_secs(2)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(600)
}
fn default_check_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_filter() -> String {
    "info".into()
}

impl Config {
    /// Read the file, apply environment overrides, validate. Relative paths in the file are
    /// resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let figment = Figment::new().merge(Yaml::file_exact(path)).merge(
            Env::prefixed("SWITCHBOARD_")
                .filter(|k| is_config_key(k.as_str()))
                .split("__"),
        );
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Parse(describe(e)))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if config.appservice.registration.is_relative() {
            config.appservice.registration = base.join(&config.appservice.registration);
        }
        if let Some(rest) = config.database.url.strip_prefix("sqlite://") {
            let p = Path::new(rest.split('?').next().unwrap_or(rest));
            if p.is_relative() && !rest.starts_with(':') {
                config.database.url = format!("sqlite://{}", base.join(rest).display());
            }
        }
        config.source = Some(figment);
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.ha.lease < Duration::from_secs(2) {
            return Err(invalid("ha.lease", "must be at least 2s"));
        }
        if self.ha.renew_every.is_zero() || self.ha.renew_every * 3 > self.ha.lease {
            return Err(invalid(
                "ha.renew_every",
                "must be above zero and at most a third of ha.lease (a leader gets at least three tries to renew before its lease runs out)",
            ));
        }
        let d = &self.homeserver.domain;
        if d.is_empty() || d.contains('/') || d.contains(' ') {
            return Err(invalid(
                "homeserver.domain",
                "must be a server name like example.com",
            ));
        }
        if !matches!(self.homeserver.url.scheme(), "http" | "https") {
            return Err(invalid(
                "homeserver.url",
                "must be an http:// or https:// URL",
            ));
        }
        let lp_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._=-/".contains(c))
        };
        if !lp_ok(&self.appservice.bot_localpart) {
            return Err(invalid(
                "appservice.bot_localpart",
                "must be a lowercase Matrix localpart",
            ));
        }
        if !lp_ok(&self.appservice.ghost_prefix) {
            return Err(invalid(
                "appservice.ghost_prefix",
                "must be lowercase letters, digits or ._=-/",
            ));
        }
        if self
            .appservice
            .bot_localpart
            .starts_with(&self.appservice.ghost_prefix)
        {
            return Err(invalid(
                "appservice.bot_localpart",
                "must not start with appservice.ghost_prefix (ghosts and the bot would collide)",
            ));
        }
        let db = &self.database.url;
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                "must start with sqlite:// or postgres://",
            ));
        }
        let h = &self.http;
        for (key, value) in [
            ("http.header_read_timeout", h.header_read_timeout),
            ("http.body_read_timeout", h.body_read_timeout),
            ("http.idle_timeout", h.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be longer than 0s"));
            }
        }
        if self.metrics.refresh.is_zero() {
            return Err(invalid("metrics.refresh", "must be longer than 0s"));
        }
        if self.metrics.listen == Some(self.appservice.listen) {
            return Err(invalid(
                "metrics.listen",
                "must differ from appservice.listen (metrics have a listener of their own)",
            ));
        }
        if let Some(secret) = &self.admin.secret {
            if secret.chars().count() < ADMIN_SECRET_MIN {
                return Err(invalid(
                    "admin.secret",
                    format!("is shorter than {ADMIN_SECRET_MIN} characters; use a random one (`openssl rand -hex 32`) or leave it out"),
                ));
            }
        }
        if h.max_connections == 0 {
            return Err(invalid("http.max_connections", "must be at least 1"));
        }
        for (prefix, _) in &h.body_limits {
            if !prefix.starts_with('/') {
                return Err(invalid(
                    &format!("http.body_limits.{prefix}"),
                    "must be a path prefix starting with /",
                ));
            }
        }
        for user in self.bridge.operators.keys() {
            if ruma::UserId::parse(user.as_str()).is_err() {
                return Err(invalid(
                    &format!("bridge.operators.{user}"),
                    "is not a Matrix user id like @alice:example.com",
                ));
            }
        }
        for (name, team) in &self.teams {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(
                    &format!("teams.{name}"),
                    "team names are letters, digits, - and _",
                ));
            }
            for (list, users) in [("members", &team.members), ("leads", &team.leads)] {
                for user in users {
                    if ruma::UserId::parse(user.as_str()).is_err() {
                        return Err(invalid(
                            &format!("teams.{name}.{list}"),
                            format!("{user} is not a Matrix user id"),
                        ));
                    }
                }
            }
            crate::routing::calendar::Calendar::from_config(
                &team.timezone,
                &team.hours,
                &team.holidays,
            )
            .map_err(|e| {
                let key = match e {
                    crate::routing::calendar::CalendarError::TimeZone(_) => "timezone",
                    _ => "hours",
                };
                invalid(&format!("teams.{name}.{key}"), e.to_string())
            })?;
            if team.digest.day().is_none() {
                return Err(invalid(
                    &format!("teams.{name}.digest.weekday"),
                    "say mon, tue, wed, thu, fri, sat or sun",
                ));
            }
            if team.digest.hour > 23 {
                return Err(invalid(
                    &format!("teams.{name}.digest.hour"),
                    "must be 0 to 23",
                ));
            }
            if team.remind_before >= team.escalate_after {
                return Err(invalid(
                    &format!("teams.{name}.remind_before"),
                    "must be shorter than escalate_after",
                ));
            }
            if let Some(csat) = &team.csat {
                for (key, texts) in [
                    ("question", &csat.question),
                    ("hint", &csat.hint),
                    ("thanks", &csat.thanks),
                ] {
                    if texts.is_empty() || texts.values().any(|t| t.trim().is_empty()) {
                        return Err(invalid(
                            &format!("teams.{name}.csat.{key}"),
                            "needs a text in at least one language, and no empty ones",
                        ));
                    }
                }
            }
            for (i, rule) in team.rules.iter().enumerate() {
                for tag in &rule.tags {
                    if crate::store::customers::normalize_tag(tag).as_deref() != Some(tag.as_str())
                    {
                        return Err(invalid(
                            &format!("teams.{name}.rules[{i}].tags"),
                            format!(
                                "`{tag}`: tags are lowercase letters, digits, - and _ (at most 32)"
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(room) = &self.bridge.admin_room {
            if !(room.starts_with('!') || room.starts_with('#')) {
                return Err(invalid(
                    "bridge.admin_room",
                    "must be a room id (!…) or an alias (#…)",
                ));
            }
        }
        let m = &self.media;
        if m.concurrency == 0 {
            return Err(invalid("media.concurrency", "must be at least 1"));
        }
        if m.max_attempts == 0 {
            return Err(invalid("media.max_attempts", "must be at least 1"));
        }
        if m.ocr.threads == 0 {
            return Err(invalid("media.ocr.threads", "must be at least 1"));
        }
        if !(0..=19).contains(&m.ocr.nice) {
            return Err(invalid("media.ocr.nice", "must be from 0 to 19"));
        }
        if m.retry_base.is_zero() || m.retry_base > m.retry_max {
            return Err(invalid(
                "media.retry_base",
                "must be above zero and not above media.retry_max",
            ));
        }
        if let Some(url) = &m.transcription.url {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(
                    "media.transcription.url",
                    "must be an http:// or https:// URL (…/v1/audio/transcriptions)",
                ));
            }
        }
        if m.transcription.timeout.is_zero() || m.ocr.timeout.is_zero() {
            return Err(invalid("media", "timeouts must be longer than 0s"));
        }
        if m.ocr.enabled {
            if m.ocr.languages.is_empty() {
                return Err(invalid(
                    "media.ocr.languages",
                    "name at least one (e.g. eng)",
                ));
            }
            for lang in &m.ocr.languages {
                if lang.is_empty() || !lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(invalid(
                        "media.ocr.languages",
                        format!("`{lang}` is not a Tesseract language name (rus, ukr, ind, eng)"),
                    ));
                }
            }
            if m.ocr.max_memory_mb < 64 {
                return Err(invalid("media.ocr.max_memory_mb", "must be at least 64"));
            }
        }
        if self.bridge.max_attempts == 0 {
            return Err(invalid("bridge.max_attempts", "must be at least 1"));
        }
        if self.bridge.retry_base.is_zero() || self.bridge.retry_base > self.bridge.retry_max {
            return Err(invalid(
                "bridge.retry_base",
                "must be above zero and not above bridge.retry_max",
            ));
        }
        Ok(())
    }

    /// The public base URL (for links customers and webhook senders use).
    pub fn public_url(&self) -> url::Url {
        self.appservice
            .public_url
            .clone()
            .unwrap_or_else(|| self.appservice.url.clone())
    }

    /// Extract one channel's section with errors naming `channels.<name>.<key>`.
    pub fn channel<T: serde::de::DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Result<T, ConfigError> {
        let key = format!("channels.{name}");
        match &self.source {
            Some(fig) if fig.contains(&key) => fig
                .focus(&key)
                .extract::<T>()
                .map_err(|e| ConfigError::Parse(describe_under(e, &key))),
            _ => Ok(T::default()),
        }
    }
}

/// Only `SWITCHBOARD_<SECTION>__…` variables configure the bridge; others with the same prefix
/// (the scripts' `SWITCHBOARD_CACHE`, say) are not config.
fn is_config_key(key: &str) -> bool {
    let section = key.split("__").next().unwrap_or("").to_ascii_lowercase();
    matches!(
        section.as_str(),
        "homeserver"
            | "appservice"
            | "database"
            | "bridge"
            | "channels"
            | "logging"
            | "http"
            | "metrics"
            | "admin"
            | "media"
    )
}

/// Turn figment's errors into "key: problem" lines.
fn describe(error: figment::Error) -> String {
    describe_under(error, "")
}

/// Like [`describe`], for a section extracted on its own (`prefix` is its key).
fn describe_under(error: figment::Error, prefix: &str) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = std::iter::once(prefix.to_string())
                .filter(|p| !p.is_empty())
                .chain(e.path.iter().cloned())
                .collect::<Vec<_>>()
                .join(".");
            let kind = e.kind.to_string();
            let origin = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{kind}{origin}")
            } else {
                format!("{key}: {kind}{origin}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("config.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    const MINIMAL: &str = "homeserver: {url: 'http://127.0.0.1:8008', domain: localhost}\nappservice: {url: 'http://127.0.0.1:29340'}\n";

    #[test]
    fn a_short_admin_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{MINIMAL}admin: {{secret: short-secret}}\n");
        let err = Config::load(&write(dir.path(), &text))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("admin.secret") && err.contains("shorter than 32"),
            "{err}"
        );
        let long = "x".repeat(ADMIN_SECRET_MIN);
        let text = format!("{MINIMAL}admin: {{secret: {long}}}\n");
        let c = Config::load(&write(dir.path(), &text)).unwrap();
        assert_eq!(c.admin.secret.as_deref(), Some(long.as_str()));
    }

    #[test]
    fn minimal_config_gets_defaults_and_resolves_paths() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(&write(dir.path(), MINIMAL)).unwrap();
        assert_eq!(c.appservice.ghost_prefix, "sb_");
        assert_eq!(c.bridge.attribution, Attribution::None);
        assert_eq!(
            c.appservice.registration,
            dir.path().join("registration.yaml")
        );
        assert_eq!(
            c.database.url,
            format!("sqlite://{}", dir.path().join("switchboard.db").display())
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{MINIMAL}database: {{url: 'mysql://x'}}\n");
        let err = Config::load(&write(dir.path(), &text))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("database.url:"), "{err}");

        let text = format!("{MINIMAL}bridge: {{attribution: loud}}\n");
        let err = Config::load(&write(dir.path(), &text))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bridge.attribution"), "{err}");

        let text = format!("{MINIMAL}bridge: {{operators: {{alice: admin}}}}\n");
        let err = Config::load(&write(dir.path(), &text))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bridge.operators.alice"), "{err}");

        let text = "homeserver: {url: 'http://x', domain: localhost}\n";
        let err = Config::load(&write(dir.path(), text))
            .unwrap_err()
            .to_string();
        assert!(err.contains("appservice"), "{err}");
    }

    /// The example config, with its commented teams and routing sections switched on, loads.
    #[test]
    fn the_example_teams_section_is_valid() {
        let example = include_str!("../config/config.example.yaml");
        let text: String = example
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.starts_with("teams:") || rest.starts_with("routing:") => {
                    rest.to_string()
                }
                _ => l
                    .strip_prefix("#   ")
                    .map(|rest| format!("  {rest}"))
                    .unwrap_or_else(|| l.to_string()),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(&write(dir.path(), &text)).unwrap();
        assert_eq!(c.teams.len(), 2);
        let wholesale = &c.teams["wholesale"];
        assert_eq!(wholesale.rules[0].tags, vec!["wholesale".to_string()]);
    }

    /// Metrics are off unless `metrics.listen` is set, and never share the appservice listener;
    /// the log format is `pretty` or `json`.
    #[test]
    fn metrics_and_log_format() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(&write(dir.path(), MINIMAL)).unwrap();
        assert_eq!(c.metrics.listen, None);
        assert_eq!(c.logging.format, LogFormat::Pretty);
        let text = format!(
            "{MINIMAL}metrics: {{listen: '127.0.0.1:9340', refresh: 1s}}\nlogging: {{format: json}}\n"
        );
        let c = Config::load(&write(dir.path(), &text)).unwrap();
        assert_eq!(
            c.metrics.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9340)))
        );
        assert_eq!(c.metrics.refresh, Duration::from_secs(1));
        assert_eq!(c.logging.format, LogFormat::Json);
        let text = format!("{MINIMAL}metrics: {{listen: '127.0.0.1:29340'}}\n");
        let err = Config::load(&write(dir.path(), &text))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("metrics.listen:"), "{err}");
        let text = format!("{MINIMAL}logging: {{format: xml}}\n");
        let err = Config::load(&write(dir.path(), &text))
            .unwrap_err()
            .to_string();
        assert!(err.contains("logging.format"), "{err}");
    }

    #[test]
    fn rule_tags_must_be_tags() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{MINIMAL}teams: {{b2b: {{rules: [{{tags: [Big Customers]}}]}}}}\n");
        let err = Config::load(&write(dir.path(), &text))
            .unwrap_err()
            .to_string();
        assert!(err.contains("teams.b2b.rules[0].tags"), "{err}");
    }
}
