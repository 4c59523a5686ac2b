//! One raw mail from a mailbox → the core's inbox.
//!
//! [`deliver`] is called by the IMAP reader for every new mail, in UID order, and returns only
//! when the core has stored it (`Host::receive` returned `Ok`) — the reader acknowledges the
//! mail on the server after that and not before. Calling it twice for the same mail is harmless:
//! the dedup key is the Message-ID, and the thread lookups give the same answer again.
//!
//! What becomes of a mail:
//!
//! * a bounce of a mail we sent → `Failed { remote_id: <our Message-ID> }` in that mail's
//!   conversation (the core turns it into a failure notice on the operator's message); a
//!   delivery report saying it was delivered → `Delivered`; a read notification (MDN,
//!   "displayed") → `Read`, the customer's read receipt on the operator's message; a report
//!   that delivery is delayed → a `Notice` in that conversation saying so (nothing failed yet);
//! * any other mail → a `Message` in the conversation its In-Reply-To / References point to, or
//!   a new conversation keyed by its own Message-ID. Auto-replies, bounces of unknown mail and
//!   list mail carry a `[auto-reply]` / `[bounce]` / `[list mail]` prefix (the contract has no
//!   notice flag yet) and never become the thread's customer address;
//! * a mail that cannot be parsed → a message saying so, with the raw `.eml` attached, in the
//!   mailbox's "unreadable mail" conversation. It never blocks the mail after it.

use bytes::Bytes;
use switchboard_channel::{
    Attachment, ContactProfile, Content, ConversationKey, Group, Host, HostError, Inbound,
    InboundEvent,
};

use crate::config::{EmailConfig, MailboxConfig};
use switchboard_kit::now_ms;

use crate::html::{escape, text_to_html};
use crate::parse::{self, MailKind, ParsedMail};
use crate::threads::{self, MessageRecord};

/// The chat of a mailbox's conversation for mail that could not be read.
pub const UNREADABLE_CHAT: &str = "unreadable-mail";

/// Store one mail received by `mailbox`. `Ok` means the core has it.
pub async fn deliver(
    host: &dyn Host,
    config: &EmailConfig,
    mailbox: &MailboxConfig,
    raw: &[u8],
) -> Result<(), HostError> {
    match parse::parse(raw) {
        Ok(mail) => deliver_parsed(host, config, mailbox, &mail).await,
        Err(e) => deliver_unreadable(host, mailbox, raw, &e.to_string()).await,
    }
}

async fn deliver_unreadable(
    host: &dyn Host,
    mailbox: &MailboxConfig,
    raw: &[u8],
    why: &str,
) -> Result<(), HostError> {
    let id = parse::synthetic_id(raw);
    let short = id[..12].to_string();
    let media = host
        .put_media(
            Bytes::copy_from_slice(raw),
            "message/rfc822",
            &format!("unreadable-{short}.eml"),
        )
        .await?;
    let text = format!(
        "[unreadable mail] A mail to {} could not be read ({why}). The raw message is attached.",
        mailbox.address
    );
    let inbound = Inbound {
        conversation: ConversationKey {
            account: mailbox.name.clone(),
            chat: UNREADABLE_CHAT.into(),
        },
        sender: ContactProfile {
            id: format!("unreadable@{}", mailbox.name),
            display_name: Some("Unreadable mail".into()),
            ..ContactProfile::default()
        },
        timestamp_ms: now_ms(),
        dedup_key: format!("raw:{id}"),
        event: InboundEvent::Message {
            remote_id: id,
            content: Content {
                html: Some(format!(
                    "<b>[unreadable mail]</b> {}",
                    escape(&text["[unreadable mail] ".len()..])
                )),
                text,
                attachments: vec![Attachment {
                    media,
                    name: format!("unreadable-{short}.eml"),
                    mime: "message/rfc822".into(),
                    size: raw.len() as u64,
                }],
            },
            reply_to: None,
        },
        addressed_to: None,
        group: None,
    };
    host.receive(inbound).await.map(|_| ())
}

/// The conversation a mail belongs to: the one of the mail itself (seen in another mailbox),
/// of the mail it answers, or of any mail it references, newest first.
async fn find_conversation(
    host: &dyn Host,
    mail: &ParsedMail,
) -> Result<Option<(ConversationKey, Option<String>)>, HostError> {
    if let Some(r) = threads::message(host, &mail.message_id).await? {
        return Ok(Some((r.conversation(), None)));
    }
    for id in &mail.in_reply_to {
        if let Some(r) = threads::message(host, id).await? {
            return Ok(Some((r.conversation(), Some(id.clone()))));
        }
    }
    for id in mail.references.iter().rev() {
        if let Some(r) = threads::message(host, id).await? {
            return Ok(Some((r.conversation(), None)));
        }
    }
    Ok(None)
}

/// What operators read when the mail system reports a delay.
fn delay_notice(recipients: &[String], reason: Option<&str>) -> String {
    let to = if recipients.is_empty() {
        String::new()
    } else {
        format!(" to {}", recipients.join(", "))
    };
    let why = reason
        .filter(|r| !r.trim().is_empty())
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    format!(
        "⏳ Delivery of the answer{to} is delayed{why}. The mail system keeps trying; a failure, \
         if it comes, will show on the answer."
    )
}

/// The other customer addresses a customer's mail was written to (To and Cc, without the
/// sender and the company's own addresses): members of the thread's group.
fn thread_people(config: &EmailConfig, mail: &ParsedMail) -> Vec<ContactProfile> {
    mail.addressed
        .iter()
        .filter(|(address, _)| Some(address) != mail.from_address.as_ref())
        .filter(|(address, _)| !config.is_own(address))
        .map(|(address, name)| ContactProfile {
            id: address.clone(),
            display_name: name.clone(),
            email: Some(address.clone()),
            ..ContactProfile::default()
        })
        .collect()
}

async fn deliver_parsed(
    host: &dyn Host,
    config: &EmailConfig,
    mailbox: &MailboxConfig,
    mail: &ParsedMail,
) -> Result<(), HostError> {
    let timestamp_ms = mail.date_ms.unwrap_or_else(now_ms);

    // A report about one of our mails — a bounce, a delivery report, a read notification —
    // becomes that message's status in its room.
    let status = match &mail.kind {
        MailKind::Bounce(bounce) => Some((
            &bounce.original_message_ids,
            "bounce",
            Some(format!("the mail bounced: {}", bounce.reason)),
        )),
        MailKind::Delivered(ids) => Some((ids, "dsn", None)),
        MailKind::Delayed(delay) => Some((
            &delay.original_message_ids,
            "delayed",
            Some(delay.reason.clone()),
        )),
        MailKind::ReadReceipt(ids) => Some((ids, "mdn", None)),
        _ => None,
    };
    if let Some((ids, what, failure)) = status {
        for original in ids {
            let Some(record) = threads::message(host, original).await? else {
                continue;
            };
            if !record.ours {
                continue;
            }
            let conversation = record.conversation();
            let thread = threads::thread(host, &conversation)
                .await?
                .unwrap_or_default();
            let remote_id = original.clone();
            let event = match (&mail.kind, &failure) {
                (MailKind::Bounce(_), Some(reason)) => InboundEvent::Failed {
                    remote_id,
                    reason: reason.clone(),
                },
                (MailKind::Delivered(_), _) => InboundEvent::Delivered { remote_id },
                // Shown in the room, the answer's status untouched: nothing failed yet.
                (MailKind::Delayed(delay), reason) => InboundEvent::Notice {
                    remote_id: format!("delayed:{}", mail.message_id),
                    content: Content {
                        text: delay_notice(&delay.recipients, reason.as_deref()),
                        ..Content::default()
                    },
                },
                _ => InboundEvent::Read { remote_id },
            };
            let inbound = Inbound {
                conversation,
                sender: ContactProfile {
                    id: thread.contact.clone(),
                    display_name: thread.contact_name.clone(),
                    email: Some(thread.contact.clone()),
                    ..ContactProfile::default()
                },
                timestamp_ms,
                dedup_key: format!("{what}:{}", mail.message_id),
                event,
                addressed_to: None,
                group: None,
            };
            host.receive(inbound).await?;
            return Ok(());
        }
    }

    let found = find_conversation(host, mail).await?;
    let new_thread = found.is_none();
    let (conversation, reply_to) = found.unwrap_or_else(|| {
        (
            ConversationKey {
                account: mailbox.name.clone(),
                chat: mail.message_id.clone(),
            },
            None,
        )
    });
    let mut thread = threads::thread(host, &conversation)
        .await?
        .unwrap_or_default();

    let address = mail
        .from_address
        .clone()
        .unwrap_or_else(|| "unknown-sender".into());
    let sender = ContactProfile {
        id: address.clone(),
        display_name: mail.from_name.clone(),
        email: mail.from_address.clone(),
        ..ContactProfile::default()
    };

    // What the room shows: [kind] Subject, who it was addressed to, the new text.
    let subject = if mail.subject.is_empty() {
        "(no subject)".to_string()
    } else {
        mail.subject.clone()
    };
    let show_subject = new_thread || threads::base_subject(&subject) != thread.subject;
    let mut text_lines: Vec<String> = Vec::new();
    let mut html = String::new();
    if let Some(prefix) = mail.kind.prefix() {
        text_lines.push(prefix.to_string());
        html.push_str(&format!("<b>{}</b><br>", escape(prefix)));
    }
    // A report of a failed delivery of mail we do not know: its reason and recipients, which a
    // broken report may bury in its text.
    if let MailKind::Bounce(bounce) = &mail.kind {
        text_lines.push(format!("Delivery failed: {}", bounce.reason));
        html.push_str(&format!(
            "<b>Delivery failed:</b> {}<br>",
            escape(&bounce.reason)
        ));
    }
    if show_subject {
        text_lines.push(format!("Subject: {subject}"));
        html.push_str(&format!("<b>Subject:</b> {}<br>", escape(&subject)));
    }
    // Mail to an operator's personal address: say whose, so routing (and people) can act on it.
    let personal: Vec<&MailboxConfig> = config
        .mailboxes
        .iter()
        .filter(|m| m.personal_of.is_some())
        .filter(|m| {
            m.name == mailbox.name
                || mail
                    .recipients
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&m.address))
        })
        .collect();
    for m in &personal {
        let who = m.personal_of.as_deref().unwrap_or_default();
        text_lines.push(format!("To: {} (personal address of {who})", m.address));
        html.push_str(&format!(
            "<b>To:</b> {} (personal address of {})<br>",
            escape(&m.address),
            escape(who)
        ));
    }
    if !text_lines.is_empty() {
        html.push_str("<br>");
    }
    text_lines.push(mail.new_text.clone());
    let text = text_lines.join("\n");
    match &mail.html {
        Some(h) if !h.trim().is_empty() => html.push_str(h),
        _ => html.push_str(&text_to_html(&mail.new_text)),
    }

    // Files, then the full text when part of it was folded away.
    let mut attachments = Vec::new();
    for file in &mail.files {
        if file.data.len() as u64 > config.max_file_size {
            tracing::warn!(name = %file.name, size = file.data.len(), "email: attachment over max_file_size dropped");
            continue;
        }
        let media = host
            .put_media(Bytes::from(file.data.clone()), &file.mime, &file.name)
            .await?;
        attachments.push(Attachment {
            media,
            name: file.name.clone(),
            mime: file.mime.clone(),
            size: file.data.len() as u64,
        });
    }
    if mail.folded {
        let media = host
            .put_media(
                Bytes::from(mail.full_text.clone().into_bytes()),
                "text/plain; charset=utf-8",
                "full message.txt",
            )
            .await?;
        attachments.push(Attachment {
            media,
            name: "full message.txt".into(),
            mime: "text/plain".into(),
            size: mail.full_text.len() as u64,
        });
    }

    let inbound = Inbound {
        conversation: conversation.clone(),
        sender,
        timestamp_ms,
        dedup_key: format!("mail:{}", mail.message_id),
        event: if mail.kind == MailKind::Personal {
            InboundEvent::Message {
                remote_id: mail.message_id.clone(),
                content: Content {
                    text,
                    html: Some(html),
                    attachments,
                },
                reply_to,
            }
        } else {
            // Auto-replies, bounces and list mail are shown, never answered or counted as waiting.
            InboundEvent::Notice {
                remote_id: mail.message_id.clone(),
                content: Content {
                    text,
                    html: Some(html),
                    attachments,
                },
            }
        },
        // The mailbox it arrived in first, else a personal address among the recipients.
        addressed_to: personal
            .iter()
            .find(|m| m.name == mailbox.name)
            .or(personal.first())
            .and_then(|m| m.personal_of.clone()),
        // A customer's own mail makes the thread a group of every customer address on it:
        // the sender and the other people of To and Cc (never the company's own addresses).
        // Automatic mail (auto-replies, bounces, lists) adds no one and speaks for the thread.
        group: (mail.kind == MailKind::Personal).then(|| Group {
            title: None,
            members: thread_people(config, mail),
        }),
    };
    host.receive(inbound).await?;

    // Only now: remember the mail and the thread.
    threads::put_message(
        host,
        &mail.message_id,
        &MessageRecord {
            account: conversation.account.clone(),
            chat: conversation.chat.clone(),
            ours: false,
        },
    )
    .await?;
    if thread.subject.is_empty() {
        thread.subject = threads::base_subject(&subject);
    }
    if mail.kind == MailKind::Personal && (thread.contact.is_empty() || new_thread) {
        thread.contact = address;
        thread.contact_name = mail.from_name.clone();
    }
    if thread.ids.is_empty() {
        // Keep what the customer's own mail referenced, so our answer's References are complete.
        for r in &mail.references {
            thread.push(r);
        }
    }
    thread.push(&mail.message_id);
    threads::put_thread(host, &conversation, &thread).await?;
    Ok(())
}
