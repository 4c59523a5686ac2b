//! Reading one mailbox: IMAP IDLE (polling when the server has none), forever, reconnecting.
//!
//! Bookkeeping is UIDVALIDITY + UID, stored as `uid:<mailbox>` = `<uidvalidity>:<last uid>`
//! only after every mail up to that UID was stored by the core. Each round fetches
//! `UID <last+1>:*` with `BODY.PEEK[]`, so the `\Seen` flag is neither read nor set: a mail
//! another client already read is still bridged, and that client still sees it as unread.
//! After the core stored a mail it is acknowledged on the server — a keyword (`$Switchboard`)
//! or a move — so people looking at the mailbox see what the bridge took.
//!
//! If UIDVALIDITY changes (the folder was recreated), or the server's UIDNEXT is not above the
//! stored UID (UIDs went backwards without a new UIDVALIDITY, e.g. a restored backup), UIDs are
//! not to be trusted: everything is read again, and the core's dedup by Message-ID keeps the
//! rooms free of duplicates ([`resume_after`]).
//!
//! Any error — the server restarting mid-IDLE, a network cut, the core's store being down —
//! drops the connection; the loop reconnects with backoff and resumes from the stored UID, so
//! nothing is lost or read twice.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use switchboard_channel::Host;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::ClientConfig;

use crate::config::{Ack, EmailConfig, MailboxConfig, Tls};
use crate::inbound;

/// Longest IDLE before we re-issue it (RFC 2177 says the server may drop us after 30 min).
const MAX_IDLE: Duration = Duration::from_secs(25 * 60);
/// Mails fetched per round (the rest in the next one, without waiting).
const BATCH: u32 = 50;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}

type Session = async_imap::Session<Box<dyn Io>>;

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("connecting: {0}")]
    Connect(String),
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("store: {0}")]
    Host(#[from] switchboard_channel::HostError),
}

async fn tls_wrap(
    tcp: TcpStream,
    host: &str,
    tls: Arc<ClientConfig>,
) -> Result<Box<dyn Io>, ImapError> {
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| ImapError::Connect(format!("{host}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| match crate::tls::untrusted_certificate(&e) {
            Some(why) => ImapError::Connect(format!(
                "TLS with {host}: {why} (the server's certificate is not trusted; a private CA \
                 belongs in imap.tls_ca_file)"
            )),
            None => ImapError::Connect(format!("TLS with {host}: {e}")),
        })?;
    Ok(Box::new(stream))
}

/// Connect and log in; `tls` says whom to trust ([`crate::tls`]).
pub async fn connect(
    mailbox: &MailboxConfig,
    tls: Arc<ClientConfig>,
) -> Result<Session, ImapError> {
    let imap = &mailbox.imap;
    let addr = format!("{}:{}", imap.host, imap.port);
    let tcp = tokio::time::timeout(Duration::from_secs(20), TcpStream::connect(&addr))
        .await
        .map_err(|_| ImapError::Connect(format!("{addr}: timed out")))?
        .map_err(|e| ImapError::Connect(format!("{addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let client = match imap.tls {
        Tls::None => {
            let mut client = async_imap::Client::new(Box::new(tcp) as Box<dyn Io>);
            client
                .read_response()
                .await
                .map_err(|e| ImapError::Connect(format!("greeting: {e}")))?;
            client
        }
        Tls::Tls => {
            let stream = tls_wrap(tcp, &imap.host, tls).await?;
            let mut client = async_imap::Client::new(stream);
            client
                .read_response()
                .await
                .map_err(|e| ImapError::Connect(format!("greeting: {e}")))?;
            client
        }
        Tls::Starttls => {
            let mut client = async_imap::Client::new(tcp);
            client
                .read_response()
                .await
                .map_err(|e| ImapError::Connect(format!("greeting: {e}")))?;
            client.run_command_and_check_ok("STARTTLS", None).await?;
            let tcp = client.into_inner();
            async_imap::Client::new(tls_wrap(tcp, &imap.host, tls).await?)
        }
    };
    let session = client
        .login(&imap.username, &imap.password)
        .await
        .map_err(|(e, _)| ImapError::Imap(e))?;
    Ok(session)
}

/// Read `mailbox` forever.
pub async fn run(
    host: Arc<dyn Host>,
    config: Arc<EmailConfig>,
    mailbox: MailboxConfig,
    tls: Arc<ClientConfig>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match session(&*host, &config, &mailbox, Arc::clone(&tls)).await {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(mailbox = %mailbox.name, error = %e, retry_in = ?backoff, "email: mailbox connection lost");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn parse_uid_state(value: Option<String>) -> (u32, u32) {
    value
        .and_then(|v| {
            let (a, b) = v.split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((0, 0))
}

/// The UID to read after, from what was stored and what the server says at SELECT. UIDs are
/// the server's counter: when UIDVALIDITY changed (the folder was recreated), or the server's
/// next UID is not above the stored one (a server restored from a backup without changing
/// UIDVALIDITY, which RFC 3501 forbids but happens), new mail could sit at or below the stored
/// UID and `UID <last+1>:*` would skip it: read the folder again from the start (the core
/// drops what it already has by Message-ID).
pub fn resume_after(
    stored_validity: u32,
    stored_last: u32,
    validity: u32,
    uid_next: Option<u32>,
) -> u32 {
    if stored_validity != validity {
        return 0;
    }
    match uid_next {
        Some(next) if next <= stored_last => 0,
        _ => stored_last,
    }
}

/// One connection's life: select, catch up, wait (IDLE or poll), catch up, …
async fn session(
    host: &dyn Host,
    config: &EmailConfig,
    mailbox: &MailboxConfig,
    tls: Arc<ClientConfig>,
) -> Result<(), ImapError> {
    let mut session = connect(mailbox, tls).await?;
    let folder = mailbox.imap.folder.clone();
    let selected = session.select(&folder).await?;
    let validity = selected.uid_validity.unwrap_or(0);
    let key = format!("uid:{}", mailbox.name);
    let (stored_validity, stored_last) = parse_uid_state(host.state_get(&key).await?);
    let last = resume_after(stored_validity, stored_last, validity, selected.uid_next);
    if stored_validity != 0 && last == 0 && stored_last != 0 {
        tracing::warn!(mailbox = %mailbox.name, old_validity = stored_validity, new_validity = validity, stored_last, uid_next = ?selected.uid_next, "email: the folder's UIDs were reset; reading the folder again");
    }
    let mut last = last;
    let idle = session.capabilities().await?.has_str("IDLE");
    if config.ack == Ack::Move {
        // Make sure the target exists; an error here means it already does.
        let _ = session.create(&config.move_to).await;
        // Mail stored before a crash but not yet moved is still here, below the stored UID:
        // move it now (it is never read again either way).
        if last > 0 {
            if let Err(e) = session.uid_mv(format!("1:{last}"), &config.move_to).await {
                tracing::warn!(mailbox = %mailbox.name, error = %e, "email: could not move mail stored earlier");
            }
        }
    }
    tracing::info!(mailbox = %mailbox.name, folder = %folder, uidvalidity = validity, last_uid = last, idle, "email: mailbox open");
    loop {
        // Catch up: everything above `last`, in UID order, until a round brings nothing new.
        loop {
            let mails = fetch_after(&mut session, last).await?;
            let n = mails.len();
            for (uid, raw) in mails {
                inbound::deliver(host, config, mailbox, &raw).await?;
                host.state_put(&key, &format!("{validity}:{uid}")).await?;
                last = uid;
                acknowledge(&mut session, config, uid).await;
            }
            if n < BATCH as usize {
                break;
            }
        }
        if idle {
            let mut handle = session.idle();
            handle.init().await?;
            let wait = Duration::from_secs(config.poll_interval_secs.max(1))
                .min(MAX_IDLE)
                .max(Duration::from_secs(60));
            let (response, _stop) = handle.wait_with_timeout(wait);
            response.await?;
            session = handle.done().await?;
        } else {
            tokio::time::sleep(Duration::from_secs(config.poll_interval_secs.max(1))).await;
            session.noop().await?;
        }
    }
}

/// UIDs above `last` with their raw bytes, oldest first, at most [`BATCH`].
async fn fetch_after(session: &mut Session, last: u32) -> Result<Vec<(u32, Vec<u8>)>, ImapError> {
    // `N:*` always matches the highest UID even when it is below N: filter.
    let set = format!("{}:*", last.saturating_add(1));
    let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
    {
        let mut stream = session.uid_fetch(&set, "(UID BODY.PEEK[])").await?;
        while let Some(fetch) = stream.try_next().await? {
            let Some(uid) = fetch.uid else { continue };
            if uid <= last {
                continue;
            }
            out.push((uid, fetch.body().map(<[u8]>::to_vec).unwrap_or_default()));
        }
    }
    out.sort_by_key(|(uid, _)| *uid);
    out.truncate(BATCH as usize);
    Ok(out)
}

/// Mark a stored mail on the server. Best effort: the stored UID is what prevents re-reading,
/// the flag or move is for the people looking at the mailbox.
async fn acknowledge(session: &mut Session, config: &EmailConfig, uid: u32) {
    let result = match config.ack {
        Ack::Flag => match session
            .uid_store(uid.to_string(), format!("+FLAGS.SILENT ({})", config.flag))
            .await
        {
            Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()),
            Err(e) => Err(e),
        },
        Ack::Move => session.uid_mv(uid.to_string(), &config.move_to).await,
    };
    if let Err(e) = result {
        tracing::warn!(uid, error = %e, "email: could not acknowledge a stored mail on the server");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: UIDs that went backwards on the server's side never make new mail be skipped.
    #[test]
    fn uids_reset_on_the_server_are_read_again() {
        assert_eq!(
            resume_after(7, 40, 7, Some(41)),
            40,
            "same folder: carry on"
        );
        assert_eq!(
            resume_after(7, 40, 7, None),
            40,
            "no UIDNEXT: trust the stored UID"
        );
        assert_eq!(resume_after(7, 40, 8, Some(100)), 0, "new UIDVALIDITY");
        assert_eq!(
            resume_after(7, 40, 7, Some(12)),
            0,
            "UIDNEXT below the stored UID"
        );
        assert_eq!(
            resume_after(7, 40, 7, Some(40)),
            0,
            "UIDNEXT at the stored UID"
        );
        assert_eq!(resume_after(0, 0, 7, Some(1)), 0, "first start");
    }
}
