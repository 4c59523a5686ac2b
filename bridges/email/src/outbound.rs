//! An operator's answer → a proper email in the customer's thread (lettre over SMTP).
//!
//! The mail comes from the conversation's mailbox address, goes to the thread's customer (in a
//! thread of several customer addresses: To the one who wrote last, Cc every other one still
//! in the conversation, [`recipients`]), is
//! titled `Re: <thread subject>`, carries `In-Reply-To` (the mail answered, else the thread's
//! latest) and `References` (the thread's chain), a text and an HTML part, the team signature
//! when configured, and the operator's files as attachments.
//!
//! Idempotency: the Message-ID is derived from the outbox item's idempotency key (UUID v5), and
//! `sent:<key>` remembers a mail that went out. A retry of an item already sent returns the same
//! Message-ID without sending; a crash between the server's 250 and that note sends once more
//! with the *same* Message-ID, which mail clients show as one message.
//!
//! SMTP 5xx (the server refuses for good: unknown recipient, rejected content) is a permanent
//! failure whose reason quotes the server; 4xx, timeouts and connection errors are retried.

use lettre::message::header::ContentType;
use lettre::message::{Attachment as MailAttachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls as SmtpTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use switchboard_channel::{Delivery, Host, Outbound, OutboundAction, SendError};
use switchboard_kit::send::{attachment_bytes, host_unavailable, permanent};

use crate::config::{EmailConfig, Tls};

/// `Disposition-Notification-To: <address>` (RFC 8098 section 2.1): where the customer's mail
/// client sends its read notification, if the customer allows it.
#[derive(Clone)]
struct DispositionNotificationTo(String);

impl lettre::message::header::Header for DispositionNotificationTo {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Disposition-Notification-To")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.trim().trim_matches(['<', '>']).to_string()))
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}
use crate::html::{escape, text_to_html};
use crate::threads::{self, MessageRecord};

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

fn retryable(reason: impl Into<String>) -> SendError {
    SendError::Retryable {
        reason: reason.into(),
        retry_after: None,
    }
}

/// The SMTP transport as configured.
pub fn transport(config: &EmailConfig) -> Result<Transport, String> {
    let smtp = &config.smtp;
    // Whom to trust: lettre's public roots (webpki-roots), plus the private CA if configured.
    let params = || -> Result<TlsParameters, String> {
        let mut params = TlsParameters::builder(smtp.host.clone());
        if let Some(path) = &smtp.tls_ca_file {
            let key = "channels.email.smtp.tls_ca_file";
            let pem = std::fs::read(path).map_err(|e| format!("{key}: cannot read {path}: {e}"))?;
            crate::tls::load_ca(path, key)?;
            let ca = Certificate::from_pem(&pem).map_err(|e| format!("{key}: {path}: {e}"))?;
            params = params.add_root_certificate(ca);
        }
        params.build_rustls().map_err(|e| format!("smtp TLS: {e}"))
    };
    let builder = Transport::builder_dangerous(smtp.host.clone());
    let builder = match smtp.tls {
        Tls::None => builder,
        Tls::Starttls => builder.tls(SmtpTls::Required(params()?)),
        Tls::Tls => builder.tls(SmtpTls::Wrapper(params()?)),
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(std::time::Duration::from_secs(
            smtp.timeout_secs.max(1),
        )));
    if let (Some(user), Some(pass)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    Ok(builder.build())
}

/// The Message-ID (without `<>`) of the mail for one outbox item.
pub fn message_id_for(key: &str, domain: &str) -> String {
    let uuid = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("switchboard-email:{key}").as_bytes(),
    );
    format!("{uuid}@{domain}")
}

/// A thread for a conversation the core continues by e-mail, when it has none yet: to
/// `begin.address`, titled `begin.subject` (the first mail carries no `Re:`).
pub async fn begin_thread(
    host: &dyn Host,
    outbound: &Outbound,
    begin: &switchboard_channel::Begin,
) -> Result<(), SendError> {
    let conversation = &outbound.conversation;
    if threads::thread(host, conversation)
        .await
        .map_err(host_unavailable)?
        .is_some()
    {
        return Ok(());
    }
    if !begin.address.contains('@') {
        return Err(permanent(format!(
            "{:?} is not an e-mail address to continue the conversation at",
            begin.address
        )));
    }
    let thread = threads::Thread {
        contact: begin.address.clone(),
        contact_name: begin.name.clone(),
        subject: begin.subject.clone(),
        ids: Vec::new(),
    };
    threads::put_thread(host, conversation, &thread)
        .await
        .map_err(host_unavailable)
}

/// `Channel::send`.
pub async fn send(
    host: &dyn Host,
    config: &EmailConfig,
    smtp: &Transport,
    outbound: &Outbound,
) -> Result<Delivery, SendError> {
    let (content, reply_to) = match &outbound.action {
        OutboundAction::Message { content, reply_to } => (content, reply_to.clone()),
        OutboundAction::Edit { .. } => return Err(permanent("a sent email cannot be edited")),
        OutboundAction::Delete { .. } => return Err(permanent("a sent email cannot be deleted")),
        OutboundAction::React { .. } => return Err(permanent("email has no reactions")),
        OutboundAction::Template { .. } => return Err(permanent("email has no message templates")),
        OutboundAction::RatingRequest(_) => {
            return Err(switchboard_kit::rating::not_native("email"))
        }
    };
    let sent_key = format!("sent:{}", outbound.idempotency_key);
    if let Some(id) = host.state_get(&sent_key).await.map_err(host_unavailable)? {
        return Ok(Delivery::sent(id));
    }
    let conversation = &outbound.conversation;
    let mailbox = config.mailbox(&conversation.account).ok_or_else(|| {
        permanent(format!(
            "the mailbox \"{}\" is no longer configured",
            conversation.account
        ))
    })?;
    let mut thread = threads::thread(host, conversation)
        .await
        .map_err(host_unavailable)?
        .ok_or_else(|| permanent("this conversation has no email thread to answer"))?;

    let id = message_id_for(&outbound.idempotency_key, &config.message_id_domain());
    let from: Mailbox = match &mailbox.display_name {
        Some(name) => format!("{name} <{}>", mailbox.address),
        None => mailbox.address.clone(),
    }
    .parse()
    .map_err(|e| {
        permanent(format!(
            "the mailbox address {} is not valid: {e}",
            mailbox.address
        ))
    })?;
    let (to, cc) = recipients(config, &thread, &outbound.participants)?;
    let subject = if thread.subject.is_empty() {
        "Re: your message".to_string()
    } else if thread.ids.is_empty() {
        // The first mail of a thread we begin (a conversation continued by e-mail).
        thread.subject.clone()
    } else {
        format!("Re: {}", thread.subject)
    };

    let answered = reply_to
        .filter(|r| thread.ids.contains(r))
        .or_else(|| thread.ids.last().cloned());
    let mut builder = lettre::Message::builder().from(from).to(to);
    for person in cc {
        builder = builder.cc(person);
    }
    let mut builder = builder
        .subject(subject)
        .message_id(Some(format!("<{id}>")))
        .date_now()
        .user_agent("Switchboard".into());
    if let Some(a) = &answered {
        builder = builder.in_reply_to(format!("<{a}>"));
    }
    if config.request_read_receipts {
        builder = builder.header(DispositionNotificationTo(mailbox.address.clone()));
    }
    if !thread.ids.is_empty() {
        let refs: Vec<String> = thread.ids.iter().map(|i| format!("<{i}>")).collect();
        builder = builder.references(refs.join(" "));
    }

    let mut text = content.text.clone();
    let mut html = content
        .html
        .clone()
        .unwrap_or_else(|| text_to_html(&content.text));
    // The handling team's signature, else the channel's default.
    let signature = match host
        .signature(conversation)
        .await
        .map_err(host_unavailable)?
    {
        Some(team) => Some(team),
        None => config.signature.clone(),
    };
    if let Some(sig) = &signature {
        text = format!("{text}\n\n-- \n{sig}");
        html = format!("{html}<br><br>-- <br>{}", text_to_html(sig));
    }
    let html = format!("<!DOCTYPE html><html><body>{html}</body></html>");
    let body = MultiPart::alternative_plain_html(text, html);
    let message = if content.attachments.is_empty() {
        builder.multipart(body)
    } else {
        let mut mixed = MultiPart::mixed().multipart(body);
        for a in &content.attachments {
            let (bytes, mime) = attachment_bytes(host, a).await?;
            if bytes.len() as u64 > config.max_file_size {
                return Err(permanent(format!(
                    "the file {} is {} bytes; mail carries at most {}",
                    a.name,
                    bytes.len(),
                    config.max_file_size
                )));
            }
            let ct = ContentType::parse(&mime)
                .unwrap_or(ContentType::parse("application/octet-stream").expect("valid mime"));
            mixed = mixed.singlepart(MailAttachment::new(a.name.clone()).body(bytes.to_vec(), ct));
        }
        builder.multipart(mixed)
    }
    .map_err(|e| permanent(format!("the mail could not be built: {e}")))?;

    match smtp.send(message).await {
        Ok(_) => {}
        // A certificate we do not trust: retried (the server may fix an expired one), but
        // named for what it is, and where the bridge's administrator can fix it.
        Err(e) if crate::tls::untrusted_certificate(&e).is_some() => {
            let why = crate::tls::untrusted_certificate(&e).unwrap_or_default();
            return Err(retryable(format!(
                "the mail server's TLS certificate is not trusted ({why}); a private CA belongs in channels.email.smtp.tls_ca_file"
            )));
        }
        Err(e) if e.is_permanent() => {
            return Err(permanent(format!(
                "the mail server refused the mail: {}",
                smtp_text(&e)
            )));
        }
        Err(e) => {
            return Err(retryable(format!(
                "the mail server is unavailable: {}",
                smtp_text(&e)
            )))
        }
    }

    // Sent: remember it (for retries, threading and bounces).
    host.state_put(&sent_key, &id)
        .await
        .map_err(host_unavailable)?;
    threads::put_message(
        host,
        &id,
        &MessageRecord {
            account: conversation.account.clone(),
            chat: conversation.chat.clone(),
            ours: true,
        },
    )
    .await
    .map_err(host_unavailable)?;
    thread.push(&id);
    threads::put_thread(host, conversation, &thread)
        .await
        .map_err(host_unavailable)?;
    let _ = escape;
    Ok(Delivery::sent(id))
}

/// Whom an answer goes to: the thread's customer, or in a thread of several customer addresses
/// (the core's `participants`, latest writer first) the one who wrote last, with every other
/// one still in the conversation in Cc. The company's own addresses are never among them; an
/// address an operator removed from the room is not in `participants`.
fn recipients(
    config: &EmailConfig,
    thread: &threads::Thread,
    participants: &[String],
) -> Result<(Mailbox, Vec<Mailbox>), SendError> {
    let mailbox = |address: &str| {
        let name = (address.eq_ignore_ascii_case(&thread.contact))
            .then(|| thread.contact_name.clone())
            .flatten();
        address
            .parse::<lettre::Address>()
            .map(|a| Mailbox::new(name, a))
            .map_err(|e| {
                permanent(format!(
                    "the customer's address {address} is not valid: {e}"
                ))
            })
    };
    let people: Vec<&String> = participants
        .iter()
        .filter(|a| a.contains('@') && !config.is_own(a))
        .collect();
    match people.split_first() {
        Some((to, others)) => Ok((
            mailbox(to)?,
            others
                .iter()
                .filter_map(|a| match mailbox(a) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        // One odd Cc must not keep the answer from everyone else.
                        tracing::warn!(address = %a, error = %e, "email: Cc address left out");
                        None
                    }
                })
                .collect(),
        )),
        None if thread.contact.is_empty() || !thread.contact.contains('@') => Err(permanent(
            "the customer's email address is unknown (only automatic mail came in)",
        )),
        None => Ok((mailbox(&thread.contact)?, Vec::new())),
    }
}

/// The server's words, for operators.
fn smtp_text(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    // lettre says "Connection error: Connection error: …" for a wrapped I/O error.
    while let Some(i) = text.find(": ") {
        let (head, rest) = (&text[..i], &text[i + 2..]);
        if !rest.starts_with(&format!("{head}: ")) {
            break;
        }
        text = rest.to_string();
    }
    text
}
