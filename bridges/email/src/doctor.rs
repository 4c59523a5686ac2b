//! `switchboard doctor` for email: for each mailbox, an IMAP login and a `SELECT` of its folder
//! (read-only: nothing is fetched or flagged); for sending, an SMTP conversation up to
//! EHLO, STARTTLS (or implicit TLS) and AUTH as configured, then `NOOP` and `QUIT` — no mail
//! is sent (lettre's `test_connection`).

use switchboard_channel::Check;
use switchboard_kit::checks::{Credential, Doctor};

use crate::config::{EmailConfig, MailboxConfig};
use crate::imap::{self, ImapError};

/// The email channel's doctor; its keys are written out per mailbox below.
const DOCTOR: Doctor = Doctor {
    section: "email",
    network: "the mail server",
    api_url_key: "smtp.host",
    credential: Credential {
        key: "smtp.password",
        source: "the SMTP account's password (with channels.email.smtp.username its login)",
    },
};

/// The checks: each mailbox, then SMTP.
pub async fn check(config: &EmailConfig) -> Vec<Check> {
    if let Some(failed) = DOCTOR.config(config.validate()) {
        return vec![failed];
    }
    let mut checks = Vec::new();
    for (i, mailbox) in config.mailboxes.iter().enumerate() {
        checks.push(imap_check(i, mailbox).await);
    }
    checks.push(smtp_check(config).await);
    checks
}

async fn imap_check(i: usize, mailbox: &MailboxConfig) -> Check {
    let imap = &mailbox.imap;
    let at = format!("mailboxes[{i}].imap");
    let what = format!(
        "mailbox {}: IMAP login and SELECT {} ({}:{})",
        mailbox.name, imap.folder, imap.host, imap.port
    );
    let tls = match crate::tls::for_ca_file(
        imap.tls_ca_file.as_deref(),
        &DOCTOR.key(&format!("{at}.tls_ca_file")),
    ) {
        Ok(tls) => tls,
        Err(e) => {
            return DOCTOR.wrong(
                what,
                e,
                &format!("{at}.tls_ca_file"),
                "a readable PEM file of the CA that signed the server's certificate",
            )
        }
    };
    let mut session = match imap::connect(mailbox, tls).await {
        Ok(session) => session,
        Err(ImapError::Connect(e)) => {
            return Check::failed(
                what,
                format!("cannot connect: {e}"),
                format!(
                    "check {} (host, port and tls: none, starttls or tls) against the mail server's IMAP settings",
                    DOCTOR.key(&at)
                ),
            )
        }
        Err(ImapError::Imap(async_imap::error::Error::No(e) | async_imap::error::Error::Bad(e))) => {
            return DOCTOR.wrong(
                what,
                format!("the IMAP server refused the login of {:?}: {e}", imap.username),
                &format!("{at}.password"),
                &format!(
                    "the mailbox's password (and {} to its login name)",
                    DOCTOR.key(&format!("{at}.username"))
                ),
            )
        }
        Err(e) => {
            return Check::failed(
                what,
                format!("the IMAP conversation failed: {e}"),
                format!(
                    "check {} against the mail server's IMAP settings",
                    DOCTOR.key(&at)
                ),
            )
        }
    };
    let check = match session.select(&imap.folder).await {
        Ok(folder) => DOCTOR.ok(
            what,
            format!(
                "logged in as {}; {} holds {} messages",
                imap.username, imap.folder, folder.exists
            ),
        ),
        Err(e) => DOCTOR.wrong(
            what,
            format!("logged in, but the folder cannot be selected: {e}"),
            &format!("{at}.folder"),
            "a folder of this mailbox (usually INBOX)",
        ),
    };
    let _ = session.logout().await;
    check
}

async fn smtp_check(config: &EmailConfig) -> Check {
    let smtp = &config.smtp;
    let steps = match (smtp.tls, smtp.username.is_some()) {
        (crate::config::Tls::Starttls, true) => "EHLO, STARTTLS, AUTH",
        (crate::config::Tls::Starttls, false) => "EHLO, STARTTLS",
        (crate::config::Tls::Tls, true) => "TLS, EHLO, AUTH",
        (crate::config::Tls::Tls, false) => "TLS, EHLO",
        (crate::config::Tls::None, true) => "EHLO, AUTH",
        (crate::config::Tls::None, false) => "EHLO",
    };
    let what = format!("SMTP {steps} ({}:{}), nothing sent", smtp.host, smtp.port);
    let transport = match crate::outbound::transport(config) {
        Ok(transport) => transport,
        Err(e) => {
            return DOCTOR.wrong(
                what,
                e,
                "smtp.tls_ca_file",
                "a readable PEM file of the CA that signed the server's certificate",
            )
        }
    };
    match transport.test_connection().await {
        Ok(true) => DOCTOR.ok(what, "the server accepts the bridge's connection"),
        Ok(false) => Check::failed(
            what,
            "the server closed the connection after the greeting",
            format!("check {} against the mail server's submission settings", DOCTOR.key("smtp")),
        ),
        Err(e) if e.status().is_some_and(|c| c.to_string() == "535") || (e.is_client() && e.to_string().contains("authentication")) => {
            DOCTOR.wrong(
                what,
                format!("the SMTP server refused the login: {e}"),
                "smtp.password",
                "the submission account's password (and channels.email.smtp.username to its login), or leave both unset if the server takes mail from this machine without AUTH",
            )
        }
        Err(e) if e.is_tls() => Check::failed(
            what,
            format!("TLS with the SMTP server failed: {e}"),
            "set channels.email.smtp.tls to what the port speaks (starttls on 587, tls on 465); a private CA belongs in channels.email.smtp.tls_ca_file",
        ),
        Err(e) => Check::failed(
            what,
            format!("the SMTP conversation failed: {e}"),
            format!(
                "check {} (host, port, tls) against the mail server's submission settings",
                DOCTOR.key("smtp")
            ),
        ),
    }
}
