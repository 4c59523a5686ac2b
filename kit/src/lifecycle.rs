//! A channel's life, the same for every channel: switched off in the configuration, configured
//! but not started yet, or running. What each state means for the core is one rule:
//!
//! * a channel switched off does not start, and a send to it fails for good (a retry cannot
//!   help: the administrator has to switch it on);
//! * a send that comes before the channel started is retried (it is starting);
//! * a channel started twice is a bug in the caller, reported as such.
//!
//! A channel keeps what it needs while running in a [`Running`] (its type declared with
//! [`channel_struct!`](crate::channel_struct)), and opens `start` with [`should_start`].
//!
//! Several instances of the bridge may serve one store; each takes webhooks, but what must run
//! once — a long poll, an IMAP IDLE session, a gateway connection — runs on the leader only:
//! `start` hands it to [`while_leading`] instead of spawning it.

use std::future::Future;
use std::sync::OnceLock;

use switchboard_channel::{ChannelError, Leading, SendError};

/// Run `work` (a poller, a gateway) while this instance leads: started (afresh, by calling
/// `work`) each time it becomes the leader, aborted each time it stops being the leader. Work
/// that ends by itself is started again at the next term. `what` names it in the log.
///
/// Aborting is safe for work that acknowledges its source only after `Host::receive` returned:
/// what was fetched but not stored is fetched again by the next leader.
pub fn while_leading<F, Fut>(
    what: &'static str,
    mut leading: Leading,
    work: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            leading.until(true).await;
            tracing::info!(what, "leading: started");
            let mut task = tokio::spawn(work());
            tokio::select! {
                _ = leading.until(false) => {
                    task.abort();
                    let _ = task.await;
                    tracing::info!(what, "no longer leading: stopped");
                }
                _ = &mut task => {
                    tracing::warn!(what, "ended by itself; started again at the next term");
                    leading.until(false).await;
                }
            }
        }
    })
}

/// Whether a channel should start: `false` (and a log line) when it is switched off; an error
/// when it is switched on but its configuration cannot work.
pub fn should_start<E: std::fmt::Display>(
    channel: &'static str,
    enabled: bool,
    validate: impl FnOnce() -> Result<(), E>,
) -> Result<bool, ChannelError> {
    if !enabled {
        tracing::info!(channel, "disabled in the configuration");
        return Ok(false);
    }
    validate().map_err(|e| ChannelError::Config(e.to_string()))?;
    Ok(true)
}

/// What a channel holds while it runs (its API client, its host, …), set once by `start`.
pub struct Running<S> {
    /// How the channel is named in messages to operators ("Telegram", "the web chat" is
    /// written "web chat").
    label: &'static str,
    enabled: bool,
    cell: OnceLock<S>,
}

impl<S> Running<S> {
    pub fn new(label: &'static str, enabled: bool) -> Self {
        Self {
            label,
            enabled,
            cell: OnceLock::new(),
        }
    }

    /// Keep what `start` made. A second start is refused.
    pub fn set(&self, running: S) -> Result<(), ChannelError> {
        self.cell.set(running).map_err(|_| {
            ChannelError::Other(format!("the {} channel was started twice", self.label))
        })
    }

    /// What the running channel holds, if it runs (for best-effort work such as typing).
    pub fn get(&self) -> Option<&S> {
        self.cell.get()
    }

    /// What the running channel holds, or why a send cannot go now: switched off (permanent)
    /// or not started yet (retried).
    pub fn for_send(&self) -> Result<&S, SendError> {
        match self.cell.get() {
            Some(running) => Ok(running),
            None if !self.enabled => Err(SendError::Permanent {
                reason: format!("the {} channel is disabled", self.label),
            }),
            None => Err(SendError::Retryable {
                reason: format!("the {} channel has not started yet", self.label),
                retry_after: None,
            }),
        }
    }
}

/// Declares a channel's type: its configuration section and a [`Running`] for what it holds
/// while running, with `new(config)` (not started; switched off when the configuration says
/// so) and `config()`. `label` names the channel in messages to operators ([`Running::new`]).
/// The configuration type needs a `pub enabled: bool`.
///
/// ```
/// # struct SmsConfig { enabled: bool }
/// # struct Shared;
/// switchboard_kit::channel_struct! {
///     /// The SMS channel.
///     pub struct Sms { config: SmsConfig, running: Shared, label: "SMS" }
/// }
/// assert!(Sms::new(SmsConfig { enabled: false }).config().enabled == false);
/// ```
#[macro_export]
macro_rules! channel_struct {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            config: $config:ty,
            running: $state:ty,
            label: $label:expr $(,)?
        }
    ) => {
        $(#[$attr])*
        $vis struct $name {
            config: $config,
            running: $crate::lifecycle::Running<$state>,
        }

        impl $name {
            /// The channel, not started yet.
            pub fn new(config: $config) -> Self {
                Self {
                    running: $crate::lifecycle::Running::new($label, config.enabled),
                    config,
                }
            }

            /// The configuration this channel runs with.
            pub fn config(&self) -> &$config {
                &self.config
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_fails_for_good_when_switched_off_and_is_retried_before_start() {
        let off: Running<u8> = Running::new("Telegram", false);
        assert!(matches!(
            off.for_send(),
            Err(SendError::Permanent { reason }) if reason == "the Telegram channel is disabled"
        ));
        let starting: Running<u8> = Running::new("SMS", true);
        assert!(matches!(
            starting.for_send(),
            Err(SendError::Retryable { reason, retry_after: None })
                if reason == "the SMS channel has not started yet"
        ));
        starting.set(7).unwrap();
        assert_eq!(starting.for_send().ok(), Some(&7));
        assert!(matches!(
            starting.set(8),
            Err(ChannelError::Other(m)) if m == "the SMS channel was started twice"
        ));
    }

    /// A type declared with `channel_struct!` keeps its configuration and is switched off,
    /// or starting, as the configuration says, under its label.
    #[test]
    fn a_declared_channel_holds_its_config_and_running_state() {
        struct Config {
            enabled: bool,
            token: &'static str,
        }
        crate::channel_struct! {
            /// A channel for the test.
            struct Test { config: Config, running: u8, label: "Test" }
        }
        let off = Test::new(Config {
            enabled: false,
            token: "t",
        });
        assert_eq!(off.config().token, "t");
        assert!(matches!(
            off.running.for_send(),
            Err(SendError::Permanent { reason }) if reason == "the Test channel is disabled"
        ));
        let on = Test::new(Config {
            enabled: true,
            token: "t",
        });
        assert!(matches!(
            on.running.for_send(),
            Err(SendError::Retryable { .. })
        ));
        on.running.set(3).unwrap();
        assert_eq!(on.running.for_send().ok(), Some(&3));
    }

    /// Work runs while leading, is stopped when leadership goes and started afresh when it
    /// comes back.
    #[tokio::test]
    async fn work_runs_only_while_leading() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let started = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        struct Running(Arc<AtomicUsize>);
        impl Drop for Running {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let (s, r) = (started.clone(), running.clone());
        let handle = while_leading("test", Leading::new(rx), move || {
            let (s, r) = (s.clone(), r.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                r.fetch_add(1, Ordering::SeqCst);
                let _guard = Running(r);
                std::future::pending::<()>().await;
            }
        });
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(50));
        settle().await;
        assert_eq!(started.load(Ordering::SeqCst), 0, "ran on a standby");
        tx.send_replace(true);
        settle().await;
        assert_eq!(running.load(Ordering::SeqCst), 1);
        tx.send_replace(false);
        settle().await;
        assert_eq!(
            running.load(Ordering::SeqCst),
            0,
            "still running after stepping down"
        );
        tx.send_replace(true);
        settle().await;
        assert_eq!(
            (
                started.load(Ordering::SeqCst),
                running.load(Ordering::SeqCst)
            ),
            (2, 1)
        );
        handle.abort();
    }

    #[test]
    fn only_an_enabled_valid_channel_starts() {
        assert!(!should_start("vk", false, || Err::<(), _>("never asked")).unwrap());
        assert!(should_start("vk", true, || Ok::<(), String>(())).unwrap());
        assert!(matches!(
            should_start("vk", true, || Err("channels.vk.token: must be set")),
            Err(ChannelError::Config(m)) if m == "channels.vk.token: must be set"
        ));
    }
}
