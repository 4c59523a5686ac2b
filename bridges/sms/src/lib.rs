//! Switchboard's SMS/MMS channel: customers text the company's Twilio numbers, operators answer
//! from Matrix, the customer gets the reply from the number they wrote to.
//!
//! Conversations: account = the company's number (E.164), chat = the customer's number
//! (E.164). The customer's ghost is named after a configured contact name or their formatted
//! number, and carries the number as `ContactProfile::phone`.
//!
//! Everything goes through Twilio's Programmable Messaging REST API at `api_url`, and Twilio
//! calls the bridge's webhooks at `public_url`; those two URLs are the only difference between
//! production and the test suite's fake Twilio.
//!
//! Map of the crate, in the order a message travels:
//!
//! * [`config`] — the `channels.sms` section.
//! * [`phone`] — phone numbers to E.164 and back to a readable form.
//! * `webhook` — `/sms/incoming`, `/sms/status`, `/sms/media/<token>`: signature first, store,
//!   then 200.
//! * [`signature`] — `X-Twilio-Signature`.
//! * [`form`], [`inbound`] — a webhook's form → what it says (pure, fuzzed).
//! * `lib.rs` (here) — that → the core's `Inbound`, MMS media fetched into the media store.
//! * `outbound` — `Channel::send`, idempotency without an idempotency key.
//! * [`links`] — signed, expiring links to operators' files for Twilio to fetch.
//! * [`client`] — the REST calls and what Twilio's errors mean.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use bytes::Bytes;
use switchboard_channel::{
    Attachment, Capabilities, ChannelError, ContactProfile, Content, ConversationKey, Host,
    HostError, Inbound, InboundEvent,
};
use switchboard_kit::lifecycle::ChannelOwn;

pub mod client;
pub mod config;
mod doctor;
pub mod form;
pub mod inbound;
pub mod links;
mod outbound;
pub mod phone;
pub mod signature;
mod webhook;

pub use config::SmsConfig;

/// What the running channel shares between the webhooks and `send`.
pub(crate) struct Shared {
    pub config: SmsConfig,
    pub host: Arc<dyn Host>,
    pub client: client::Client,
    pub links: links::Links,
    /// The company's numbers in E.164.
    pub own_numbers: Vec<String>,
}

/// Why an incoming webhook could not be turned into a stored event (Twilio will retry).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RealizeError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("MMS media: {0}")]
    Media(String),
}

pub(crate) use switchboard_kit::now_ms;

/// A number in E.164 when it is one, else as Twilio wrote it (a short code, a sender name).
fn e164_or_raw(shared: &Shared, number: &str) -> (String, bool) {
    match phone::normalize(number, shared.config.region()) {
        Ok(n) => (n, true),
        Err(_) => (number.trim().to_owned(), false),
    }
}

/// The customer's profile: a known name or the formatted number; the number as `phone`.
fn customer(shared: &Shared, number: &str) -> ContactProfile {
    let (id, is_phone) = e164_or_raw(shared, number);
    let name = shared
        .config
        .contact_name(&id)
        .unwrap_or_else(|| phone::format(&id));
    ContactProfile {
        display_name: Some(name),
        phone: is_phone.then(|| id.clone()),
        id,
        ..ContactProfile::default()
    }
}

/// A file name extension for a media type.
fn extension(mime: &str) -> &'static str {
    match mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "image/jpeg" | "image/jpg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/heic" => "heic",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "audio/mpeg" => "mp3",
        "audio/amr" => "amr",
        "audio/ogg" => "ogg",
        "text/vcard" | "text/x-vcard" => "vcf",
        "text/plain" => "txt",
        "application/pdf" => "pdf",
        _ => "bin",
    }
}

/// An incoming SMS/MMS → the core's `Inbound`, its media fetched (with the account's Basic
/// auth) and stored with `Host::put_media`. Media too large or gone for good become a line of
/// text; a media fetch that may work later is an error, so Twilio redelivers.
pub(crate) async fn realize_incoming(
    shared: &Shared,
    m: inbound::Incoming,
) -> Result<Inbound, RealizeError> {
    let sender = customer(shared, &m.from);
    let (account, _) = e164_or_raw(shared, &m.to);
    let mut text = m.body.clone();
    let mut notes = Vec::new();
    let mut attachments = Vec::new();
    for (i, medium) in m.media.iter().enumerate() {
        if !(medium.url.starts_with("https://") || medium.url.starts_with("http://")) {
            notes.push(format!("[MMS attachment {} with an unusable URL]", i + 1));
            continue;
        }
        match shared
            .client
            .fetch_media(&medium.url, shared.config.max_download_size)
            .await
        {
            Ok(Some((bytes, served_mime))) => {
                let mime = if medium.content_type.is_empty()
                    || medium.content_type == "application/octet-stream"
                {
                    served_mime.unwrap_or_else(|| medium.content_type.clone())
                } else {
                    medium.content_type.clone()
                };
                let name = format!("mms-{}-{}.{}", m.message_sid, i + 1, extension(&mime));
                let size = bytes.len() as u64;
                let media = shared
                    .host
                    .put_media(Bytes::from(bytes), &mime, &name)
                    .await?;
                attachments.push(Attachment {
                    media,
                    name,
                    mime,
                    size,
                });
            }
            Ok(None) => notes.push(format!(
                "[MMS attachment {} ({}) is larger than {} bytes and was not fetched]",
                i + 1,
                medium.content_type,
                shared.config.max_download_size
            )),
            Err(e) if e.is_retryable() => return Err(RealizeError::Media(e.to_string())),
            Err(e) => {
                tracing::warn!(sid = m.message_sid, error = %e, "sms: MMS medium cannot be fetched");
                notes.push(format!(
                    "[MMS attachment {} ({}) could not be fetched: {e}]",
                    i + 1,
                    medium.content_type
                ));
            }
        }
    }
    if !notes.is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&notes.join("\n"));
    }
    // Opt-out keywords and empty messages are shown as notices: they ask nothing of operators
    // (and must not reopen the conversation), but operators need to know a STOP happened.
    let notice = match m.opt_out {
        Some(inbound::OptOut::Stop) => Some(format!(
            "{} — the customer unsubscribed: Twilio will not deliver our messages to this number until they text START.",
            text.trim()
        )),
        Some(inbound::OptOut::Start) => {
            Some(format!("{} — the customer subscribed again: our messages can be delivered.", text.trim()))
        }
        None if text.trim().is_empty() && attachments.is_empty() => Some("(an empty text message)".to_owned()),
        None => None,
    };
    let remote_id = m.message_sid.clone();
    let event = match notice {
        Some(text) => InboundEvent::Notice {
            remote_id,
            content: Content {
                text,
                html: None,
                attachments,
            },
        },
        None => InboundEvent::Message {
            remote_id,
            content: Content {
                text,
                html: None,
                attachments,
            },
            reply_to: None,
        },
    };
    Ok(Inbound {
        conversation: ConversationKey {
            account,
            chat: sender.id.clone(),
        },
        sender,
        timestamp_ms: now_ms(),
        dedup_key: format!("msg:{}", m.message_sid),
        event,
        addressed_to: None,
        group: None,
    })
}

/// A status callback → the core's `Inbound` (`Delivered`, `Read` or `Failed`), or `None` for
/// intermediate states (`queued`, `sending`, …) that operators need not see.
pub(crate) async fn realize_status(
    shared: &Shared,
    s: inbound::Status,
) -> Result<Option<Inbound>, RealizeError> {
    let event = match &s.outcome {
        inbound::Outcome::Pending => return Ok(None),
        inbound::Outcome::Delivered => InboundEvent::Delivered {
            remote_id: s.message_sid.clone(),
        },
        inbound::Outcome::Read => InboundEvent::Read {
            remote_id: s.message_sid.clone(),
        },
        inbound::Outcome::Failed { error_code } => InboundEvent::Failed {
            remote_id: s.message_sid.clone(),
            reason: inbound::failure_reason(&s.status, *error_code),
        },
    };
    let conversation = match outbound::conversation_of(shared, &s.message_sid).await? {
        Some(record) => ConversationKey {
            account: record.account,
            chat: record.chat,
        },
        // No record: the callback overtook our write after Twilio's 201, or the message was not
        // sent by this bridge. Only a message from one of our numbers can be ours; anything else
        // (a Messaging Service's other traffic) must not open rooms for strangers.
        None => {
            let (Some(from), Some(to)) = (s.from.as_deref(), s.to.as_deref()) else {
                tracing::info!(
                    sid = s.message_sid,
                    "sms: status of an unknown message without From/To; ignored"
                );
                return Ok(None);
            };
            let account = e164_or_raw(shared, from).0;
            if !shared.own_numbers.contains(&account) {
                tracing::info!(
                    sid = s.message_sid,
                    from,
                    "sms: status of a message this bridge did not send; ignored"
                );
                return Ok(None);
            }
            ConversationKey {
                account,
                chat: e164_or_raw(shared, to).0,
            }
        }
    };
    let sender = customer(shared, &conversation.chat);
    Ok(Some(Inbound {
        conversation,
        sender,
        timestamp_ms: now_ms(),
        dedup_key: format!("status:{}:{}", s.message_sid, s.status),
        event,
        addressed_to: None,
        group: None,
    }))
}

switchboard_kit::channel_struct! {
    /// The SMS channel.
    pub struct Sms {
        config: SmsConfig,
        running: Arc<Shared>,
        label: "SMS",
    }
    impl Channel {
        name: "sms",
        send: |shared, outbound| outbound::send(shared, outbound).await,
        check: |config| doctor::check(config).await,
    }
}

#[async_trait]
impl ChannelOwn for Sms {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_file_size: Some(self.config.max_file_size),
            // Twilio: a Body of up to 1600 characters, with or without media.
            max_text_length: Some(config::MAX_TEXT_CHARS),
            ..Capabilities::default()
        }
    }

    async fn start(self: Arc<Self>, host: Arc<dyn Host>) -> Result<Option<Router>, ChannelError> {
        let client = client::Client::new(
            &self.config.api_url,
            &self.config.account_sid,
            &self.config.auth_token,
        )
        .map_err(ChannelError::Other)?;
        let secret = self
            .config
            .media_link_secret
            .clone()
            .unwrap_or_else(|| self.config.auth_token.clone());
        let links = links::Links::new(secret.as_bytes(), self.config.media_link_ttl_secs);
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            host,
            client,
            links,
            own_numbers: self.config.own_numbers(),
        });
        self.running.set(Arc::clone(&shared))?;
        if !self.config.public_base().starts_with("https://") {
            tracing::warn!(public_url = %self.config.public_base(), "sms: Twilio only calls http:// webhooks when SSL certificate validation is turned off for the account");
        }
        tracing::info!(
            numbers = ?shared.own_numbers,
            api = %self.config.api_url,
            incoming = %self.config.incoming_url(),
            "sms: starting; point the numbers' incoming-message webhook at the incoming URL"
        );
        Ok(Some(webhook::router(shared)))
    }
}

/// The Twilio fixtures (`shared/fixtures/twilio`), found as the kit finds every network's.
#[cfg(test)]
pub(crate) mod test_fixtures {
    /// A fixture's text, or `None` (and a note) when the fixtures are not there.
    pub fn fixture(name: &str) -> Option<String> {
        switchboard_kit::test_host::fixture_text("twilio", name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_get_extensions() {
        assert_eq!(extension("image/jpeg"), "jpg");
        assert_eq!(extension("IMAGE/PNG; q=1"), "png");
        assert_eq!(extension("application/x-unknown"), "bin");
    }
}

/// A `Host` in memory for the crate's unit tests: records what is received, keeps state and
/// media in maps, and can be told to fail storing.
#[cfg(test)]
pub(crate) mod test_host {
    use std::sync::Arc;

    use crate::{client, links, Shared, SmsConfig};

    pub use switchboard_kit::test_host::MemoryHost;

    pub const TOKEN: &str = "unit-test-token";
    pub const COMPANY: &str = "+14155550100";

    /// A configuration whose Twilio is unreachable (port 9) and whose public URL is `public`.
    pub fn config(public: &str) -> SmsConfig {
        SmsConfig {
            enabled: true,
            api_url: "http://127.0.0.1:9".into(),
            account_sid: format!("AC{}", "0".repeat(32)),
            auth_token: TOKEN.into(),
            numbers: vec![COMPANY.into()],
            public_url: Some(public.into()),
            ..SmsConfig::default()
        }
    }

    pub fn shared(config: SmsConfig, host: Arc<MemoryHost>) -> Arc<Shared> {
        let client =
            client::Client::new(&config.api_url, &config.account_sid, &config.auth_token).unwrap();
        let links = links::Links::new(config.auth_token.as_bytes(), config.media_link_ttl_secs);
        let own_numbers = config.own_numbers();
        Arc::new(Shared {
            config,
            host,
            client,
            links,
            own_numbers,
        })
    }
}
