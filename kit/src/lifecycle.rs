//! A channel's life, the same for every channel: switched off in the configuration, configured
//! but not started yet, or running. What each state means for the core is one rule:
//!
//! * a channel switched off does not start, and a send to it fails for good (a retry cannot
//!   help: the administrator has to switch it on);
//! * a send that comes before the channel started is retried (it is starting);
//! * a channel started twice is a bug in the caller, reported as such.
//!
//! A channel keeps what it needs while running in a [`Running`] (its type declared with
//! [`channel_struct!`](crate::channel_struct)), and opens `start` with [`should_start`]. The
//! macro's second form writes the channel's whole `Channel` impl: its name, that check, and each
//! call that goes to the running state, written once here; the channel implements
//! [`ChannelOwn`] (what it can carry, how it starts) and names what each call does.
//!
//! Several instances of the bridge may serve one store; each takes webhooks, but what must run
//! once — a long poll, an IMAP IDLE session, a gateway connection — runs on the leader only:
//! `start` hands it to [`while_leading`] instead of spawning it.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::Router;
use switchboard_channel::{Capabilities, ChannelError, Host, Leading, SendError};

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

/// A channel's own part of its [`Channel`](switchboard_channel::Channel) impl when its type is
/// declared with the second form of [`channel_struct!`](crate::channel_struct): what its
/// network can carry and how it starts. The rest of the impl — its name, the check that it is
/// switched on and configured, and the calls that go to the running state (`send`, `typing`,
/// …) — is written by the macro.
#[async_trait::async_trait]
pub trait ChannelOwn: Send + Sync + 'static {
    /// What the network can carry ([`Channel::capabilities`](switchboard_channel::Channel::capabilities)).
    fn capabilities(&self) -> Capabilities;

    /// Start the channel ([`Channel::start`](switchboard_channel::Channel::start)): called only
    /// when it is switched on and its configuration passed `validate` ([`should_start`]). Keeps
    /// what it runs with in its [`Running`].
    async fn start(self: Arc<Self>, host: Arc<dyn Host>) -> Result<Option<Router>, ChannelError>;
}

/// What [`channel_struct!`](crate::channel_struct) names in the code it writes.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use axum::Router;
    pub use std::sync::Arc;
    pub use switchboard_channel::{
        Begin, Capabilities, Channel, ChannelError, Check, ConversationKey, Delivery, Host,
        Outbound, SendError,
    };
}

/// Declares a channel's type: its configuration section and a [`Running`] for what it holds
/// while running, with `new(config)` (not started; switched off when the configuration says
/// so) and `config()`. `label` names the channel in messages to operators ([`Running::new`]).
/// The configuration type needs a `pub enabled: bool`.
///
/// The second form adds an `impl Channel { … }` part and writes the type's whole
/// [`Channel`](switchboard_channel::Channel) impl: `name`; `start` that checks the switch and
/// `validate()` of the configuration ([`should_start`]) before the channel's own
/// [`ChannelOwn::start`]; `capabilities` from [`ChannelOwn`]; and the calls that go to the
/// running state, each given as `|state, arguments…| body` in this order: `send` (required;
/// before start it fails as [`Running::for_send`] says), `send_continued`, `typing`, `mark_read`
/// (dropped before start), `customer_left` (`None` before start), `check` (given the
/// configuration: `|config| …`). Those left out keep the contract's default.
///
/// ```ignore
/// switchboard_kit::channel_struct! {
///     /// The VK channel.
///     pub struct Vk { config: VkConfig, running: Arc<Shared>, label: "VK" }
///     impl Channel {
///         name: "vk",
///         send: |shared, outbound| outbound::send(&shared.out, outbound).await,
///         typing: |shared, conversation, active| outbound::typing(&shared.out, conversation, active).await,
///         check: |config| doctor::check(config).await,
///     }
/// }
/// ```
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
    // The second form: the type and its `Channel` impl. The channel writes `ChannelOwn`
    // (capabilities, start); each call that goes to the running state is given here as
    // `|state, arguments…| body`, the state being what `start` kept in the `Running`.
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            config: $config:ty,
            running: $state:ty,
            label: $label:expr $(,)?
        }
        impl Channel {
            name: $channel:literal,
            send: |$send_state:pat_param, $send_item:pat_param| $send:expr,
            $(send_continued: |$cont_state:pat_param, $cont_item:pat_param, $cont_begin:pat_param| $cont:expr,)?
            $(typing: |$typing_state:pat_param, $typing_conv:pat_param, $typing_active:pat_param| $typing:expr,)?
            $(mark_read: |$read_state:pat_param, $read_conv:pat_param, $read_id:pat_param| $read:expr,)?
            $(customer_left: |$left_state:pat_param, $left_conv:pat_param| $left:expr,)?
            $(check: |$check_config:pat_param| $check:expr,)?
        }
    ) => {
        $crate::channel_struct! {
            $(#[$attr])*
            $vis struct $name { config: $config, running: $state, label: $label }
        }

        #[$crate::lifecycle::__private::async_trait]
        impl $crate::lifecycle::__private::Channel for $name {
            fn name(&self) -> &'static str {
                $channel
            }

            fn capabilities(&self) -> $crate::lifecycle::__private::Capabilities {
                <Self as $crate::lifecycle::ChannelOwn>::capabilities(self)
            }

            async fn start(
                self: $crate::lifecycle::__private::Arc<Self>,
                host: $crate::lifecycle::__private::Arc<dyn $crate::lifecycle::__private::Host>,
            ) -> ::std::result::Result<
                ::std::option::Option<$crate::lifecycle::__private::Router>,
                $crate::lifecycle::__private::ChannelError,
            > {
                if !$crate::lifecycle::should_start($channel, self.config.enabled, || {
                    self.config.validate()
                })? {
                    return Ok(None);
                }
                <Self as $crate::lifecycle::ChannelOwn>::start(self, host).await
            }

            async fn send(
                &self,
                $send_item: &$crate::lifecycle::__private::Outbound,
            ) -> ::std::result::Result<
                $crate::lifecycle::__private::Delivery,
                $crate::lifecycle::__private::SendError,
            > {
                let $send_state = self.running.for_send()?;
                $send
            }

            $(
                async fn send_continued(
                    &self,
                    $cont_item: &$crate::lifecycle::__private::Outbound,
                    $cont_begin: &$crate::lifecycle::__private::Begin,
                ) -> ::std::result::Result<
                    $crate::lifecycle::__private::Delivery,
                    $crate::lifecycle::__private::SendError,
                > {
                    let $cont_state = self.running.for_send()?;
                    $cont
                }
            )?

            $(
                async fn typing(
                    &self,
                    $typing_conv: &$crate::lifecycle::__private::ConversationKey,
                    $typing_active: bool,
                ) {
                    if let Some($typing_state) = self.running.get() {
                        $typing;
                    }
                }
            )?

            $(
                async fn mark_read(
                    &self,
                    $read_conv: &$crate::lifecycle::__private::ConversationKey,
                    $read_id: &str,
                ) {
                    if let Some($read_state) = self.running.get() {
                        $read;
                    }
                }
            )?

            $(
                async fn customer_left(
                    &self,
                    $left_conv: &$crate::lifecycle::__private::ConversationKey,
                ) -> ::std::option::Option<i64> {
                    let $left_state = self.running.get()?;
                    $left
                }
            )?

            $(
                async fn check(&self) -> ::std::vec::Vec<$crate::lifecycle::__private::Check> {
                    let $check_config = &self.config;
                    $check
                }
            )?
        }
    };

    // The first form: the type alone.
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

    /// The second form of `channel_struct!`: the `Channel` impl checks the switch and the
    /// configuration before the channel's own `start`, and hands each call to the running
    /// state only once started (a send before is retried; typing and read receipts are
    /// dropped).
    #[tokio::test]
    async fn a_declared_channel_impl_delegates_to_its_running_state() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use switchboard_channel::{Capabilities, Channel, ConversationKey, Delivery};

        struct Config {
            enabled: bool,
            valid: bool,
        }
        impl Config {
            fn validate(&self) -> Result<(), String> {
                if self.valid {
                    Ok(())
                } else {
                    Err("channels.test.token: is required".into())
                }
            }
        }
        #[derive(Default)]
        struct State {
            typing: AtomicUsize,
            read: AtomicUsize,
        }
        crate::channel_struct! {
            /// A channel for the test.
            struct Test { config: Config, running: Arc<State>, label: "Test" }
            impl Channel {
                name: "test",
                send: |_state, item| Ok(Delivery::sent(item.idempotency_key.clone())),
                typing: |state, _conversation, active| {
                    state.typing.fetch_add(usize::from(active), Ordering::SeqCst)
                },
                mark_read: |state, _conversation, _up_to| state.read.fetch_add(1, Ordering::SeqCst),
                check: |config| vec![switchboard_channel::Check::ok("valid", config.valid.to_string())],
            }
        }
        #[async_trait::async_trait]
        impl ChannelOwn for Test {
            fn capabilities(&self) -> Capabilities {
                Capabilities {
                    typing: true,
                    ..Capabilities::default()
                }
            }
            async fn start(
                self: Arc<Self>,
                _host: Arc<dyn Host>,
            ) -> Result<Option<Router>, ChannelError> {
                self.running.set(Arc::default())?;
                Ok(None)
            }
        }

        let (_memory, host) = crate::test_host::MemoryHost::for_channel(false);
        let conversation = ConversationKey {
            account: "account".into(),
            chat: "chat".into(),
        };
        let item = crate::test_host::text_item(&conversation, "k1", "hello");
        let channel = |enabled, valid| Arc::new(Test::new(Config { enabled, valid }));

        let off = channel(false, false);
        assert!(Channel::start(off.clone(), Arc::clone(&host))
            .await
            .unwrap()
            .is_none());
        assert!(matches!(
            off.send(&item).await,
            Err(SendError::Permanent { .. })
        ));

        let invalid = channel(true, false);
        assert!(matches!(
            Channel::start(invalid.clone(), Arc::clone(&host)).await,
            Err(ChannelError::Config(m)) if m == "channels.test.token: is required"
        ));

        let on = channel(true, true);
        assert_eq!(on.name(), "test");
        assert!(on.config().valid);
        assert!(Channel::capabilities(&*on).typing);
        assert_eq!(on.check().await[0].found, "true");
        assert!(matches!(
            on.send(&item).await,
            Err(SendError::Retryable { .. })
        ));
        on.typing(&conversation, true).await;
        on.mark_read(&conversation, "r1").await;
        Channel::start(on.clone(), Arc::clone(&host)).await.unwrap();
        assert_eq!(on.send(&item).await.unwrap().remote_id, "k1");
        on.typing(&conversation, true).await;
        on.mark_read(&conversation, "r1").await;
        let state = on.running.get().unwrap();
        assert_eq!(
            state.typing.load(Ordering::SeqCst),
            1,
            "typing before start reached the state"
        );
        assert_eq!(state.read.load(Ordering::SeqCst), 1);
        assert!(
            on.customer_left(&conversation).await.is_none(),
            "the contract's default"
        );
        assert!(matches!(
            Channel::start(on.clone(), host).await,
            Err(ChannelError::Other(m)) if m == "the Test channel was started twice"
        ));
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
