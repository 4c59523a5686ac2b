//! Switchboard's email channel: mailboxes read over IMAP (IDLE), answers sent over SMTP.
//!
//! Every email thread is a conversation: account = the mailbox's `name` from the config, chat =
//! the Message-ID of the mail that started the thread. Replies find their room through
//! In-Reply-To / References ([`threads`]); a customer's new thread opens a new conversation
//! linked to the same contact (their lower-cased address). Mailboxes can be the shared support
//! address and operators' personal addresses (`personal_of`): mail to a personal address says
//! so in the room.
//!
//! Map of the crate, in the order a mail travels:
//!
//! * [`config`] — the `channels.email` section.
//! * `imap` — one task per mailbox: IDLE (or polling), UID bookkeeping, acknowledge after store.
//! * [`parse`] — raw bytes → [`parse::ParsedMail`]: MIME, charsets, kind (person, auto-reply,
//!   bounce, list — decided in `kind`). Pure; a fuzz target. [`repair`] closes header blocks that run into their
//!   body; [`body`] gathers every text part in order, as mail clients show it.
//! * [`charset`] — text whose declared charset is wrong (UTF-8 labelled x-mac-cyrillic).
//! * [`fold`], [`html`] — quoted history and signatures folded away; HTML sanitised.
//! * `inbound` — a parsed mail → `Host::receive` (bounces of our mail → `Failed`).
//! * `outbound` — an operator's answer → a threaded email via lettre.
//! * [`tls`] — whom IMAP and SMTP connections trust: public roots plus `tls_ca_file`.
//! * [`transcript`] — the HTML transcript for `!sb export`.

use std::sync::Arc;

use async_trait::async_trait;
use switchboard_channel::{Capabilities, ChannelError, Formatting, Host};
use switchboard_kit::lifecycle::ChannelOwn;

pub mod body;
pub mod charset;
pub mod config;
mod doctor;
pub mod fold;
pub mod html;
mod imap;
mod inbound;
mod kind;
mod outbound;
pub mod parse;
pub mod repair;
pub mod threads;
pub mod tls;
pub mod transcript;

pub use config::EmailConfig;
pub use transcript::{render_transcript, TranscriptEntry};

struct Running {
    host: Arc<dyn Host>,
    config: Arc<EmailConfig>,
    smtp: outbound::Transport,
}

switchboard_kit::channel_struct! {
    /// The email channel.
    pub struct Email {
        config: EmailConfig,
        running: Running,
        label: "email",
    }
    impl Channel {
        name: "email",
        send: |r, outbound| outbound::send(&*r.host, &r.config, &r.smtp, outbound).await,
        // A conversation the core continues by e-mail (a web chat visitor who left): its
        // thread is begun with the visitor's address and the given subject when it has none
        // yet, then the answer goes out as every answer does; the visitor's reply finds the
        // thread by its `In-Reply-To` like any other.
        send_continued: |r, outbound, begin| {
            outbound::begin_thread(&*r.host, outbound, begin).await?;
            outbound::send(&*r.host, &r.config, &r.smtp, outbound).await
        },
        check: |config| doctor::check(config).await,
    }
}

#[async_trait]
impl ChannelOwn for Email {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            formatting: Formatting::Html,
            max_file_size: Some(self.config.max_file_size),
            // Mail has no length limit.
            max_text_length: None,
            replies: true,
            // Read notifications, when asked for (`request_read_receipts`) and sent back.
            read_receipts: self.config.request_read_receipts,
            ..Capabilities::default()
        }
    }

    async fn start(
        self: Arc<Self>,
        host: Arc<dyn Host>,
    ) -> Result<Option<axum::Router>, ChannelError> {
        let smtp = outbound::transport(&self.config).map_err(ChannelError::Config)?;
        let config = Arc::new(self.config.clone());
        self.running.set(Running {
            host: Arc::clone(&host),
            config: Arc::clone(&config),
            smtp,
        })?;
        let mut readers = Vec::new();
        for (i, mailbox) in self.config.mailboxes.iter().enumerate() {
            let tls = tls::for_ca_file(
                mailbox.imap.tls_ca_file.as_deref(),
                &format!("channels.email.mailboxes[{i}].imap.tls_ca_file"),
            )
            .map_err(ChannelError::Config)?;
            readers.push((mailbox.clone(), tls));
        }
        // One IDLE session per mailbox: on the leader only.
        for (mailbox, tls) in readers {
            let (host, config) = (Arc::clone(&host), Arc::clone(&config));
            switchboard_kit::lifecycle::while_leading(
                "email IMAP IDLE",
                host.leading(),
                move || {
                    imap::run(
                        Arc::clone(&host),
                        Arc::clone(&config),
                        mailbox.clone(),
                        tls.clone(),
                    )
                },
            );
        }
        tracing::info!(mailboxes = self.config.mailboxes.len(), "email: ready");
        Ok(None)
    }
}
