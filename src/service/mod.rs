//! The service layer: every action an operator or an administrator can take, one function each,
//! called by both the chat commands ([`crate::commands`]) and the admin HTTP API
//! ([`crate::admin`]). Permissions are checked here, once, against one table: an action that a
//! chat command also does needs that command's level ([`crate::commands::COMMANDS`]), so the API
//! can never allow more (or less) than the chat does.
//!
//! Who acts is an [`Actor`]: a Matrix user with their level (from `bridge.operators` and the
//! teams, as for commands), or the holder of the admin secret (admin level, acting as the bot).
//! What goes wrong is a [`ServiceError`], whose text is written for the person who asked: the
//! chat shows it as the bot's answer, the API puts it in its error envelope.
//!
//! - [`conversations`]: assign, transfer, resolve, the unworked queue, dead letters.
//! - [`teams`]: teams and their settings, routing rules and the dry run, operators.
//! - [`system`]: status and channels.
//!
//! Canned replies and reports were a service layer before this one (their permission rules are
//! scope- and team-dependent): [`crate::canned`] and [`crate::reports::build`]; the API calls
//! them after [`authorize`] like the commands do.

pub mod conversations;
pub mod system;
pub mod teams;

use crate::bridge::Bridge;
use crate::commands::Command;
use crate::config::Level;
use crate::store::StoreError;

/// Who is acting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The Matrix user acting; for the admin secret, the bot (it acts on the admin's behalf).
    pub user: String,
    pub level: Level,
    /// Authenticated with the admin secret rather than as a Matrix user.
    pub by_secret: bool,
}

impl Actor {
    /// A Matrix user, with their level on this bridge; `None` when they are no operator.
    pub async fn user(bridge: &Bridge, user: &str) -> Option<Actor> {
        crate::routing::level(bridge, user)
            .await
            .map(|level| Actor {
                user: user.to_string(),
                level,
                by_secret: false,
            })
    }

    /// Whoever holds the admin secret: admin level, acting as the bot.
    pub fn admin_secret(bridge: &Bridge) -> Actor {
        Actor {
            user: bridge.namespace.bot.clone(),
            level: Level::Admin,
            by_secret: true,
        }
    }
}

/// What an action needs. Actions a chat command also does are named by that command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// What a chat command does (its level is the command's).
    Command(Command),
    /// The bridge's status and the channels' state (operators see it in `help`'s world too).
    Status,
    /// The list of operators with their levels and teams.
    Operators,
    /// Ask each channel's network again ([`switchboard_channel::Channel::check`]).
    CheckChannels,
    /// The list of dead letters across all conversations (`retry` works one room at a time).
    DeadLetters,
}

impl Action {
    /// The level the action needs.
    pub fn level(self) -> Level {
        match self {
            Action::Command(c) => c.level(),
            Action::Status | Action::Operators | Action::DeadLetters => Level::Operator,
            Action::CheckChannels => Level::Admin,
        }
    }

    fn describe(self) -> String {
        match self {
            Action::Command(c) => format!("`{}`", c.name()),
            Action::Status => "the status".into(),
            Action::Operators => "the operator list".into(),
            Action::CheckChannels => "a channel check".into(),
            Action::DeadLetters => "the dead letter list".into(),
        }
    }
}

/// Refuse `actor` unless their level is enough for `action`.
pub fn authorize(actor: &Actor, action: Action) -> Result<(), ServiceError> {
    let needed = action.level();
    if actor.level >= needed {
        return Ok(());
    }
    Err(ServiceError::Forbidden(format!(
        "{} needs {} rights; {} does not have them on this bridge.",
        action.describe(),
        level_name(needed),
        actor.user
    )))
}

/// The Matrix user `user` as an actor allowed to do `action`, or the refusal (also for someone
/// who is no operator at all).
pub async fn authorize_user(
    bridge: &Bridge,
    user: &str,
    action: Action,
) -> Result<Actor, ServiceError> {
    let Some(actor) = Actor::user(bridge, user).await else {
        return Err(ServiceError::Forbidden(format!(
            "{} needs {} rights; {user} does not have them on this bridge.",
            action.describe(),
            level_name(action.level()),
        )));
    };
    authorize(&actor, action)?;
    Ok(actor)
}

/// `operator`, `lead`, `admin`.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Operator => "operator",
        Level::Lead => "lead",
        Level::Admin => "admin",
    }
}

/// Why an action was not done. The text is for the person who asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The actor's level (or role: owner, team lead) does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// What the action names does not exist (a conversation, a team, a dead letter).
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong (a user who is no operator, a bad rule, a bad date).
    #[error("{0}")]
    Invalid(String),
    #[error("Not done: {0}")]
    Store(#[from] StoreError),
    /// The homeserver failed on the way.
    #[error("Not done: the homeserver failed: {0}")]
    Homeserver(#[from] crate::matrix::MatrixError),
}

impl From<crate::canned::CannedError> for ServiceError {
    fn from(e: crate::canned::CannedError) -> Self {
        use crate::canned::CannedError as C;
        match e {
            C::Denied(m) => ServiceError::Forbidden(m),
            C::NotFound(_) => ServiceError::NotFound(e.to_string()),
            C::Invalid(_) | C::Missing { .. } => ServiceError::Invalid(e.to_string()),
            C::Store(s) => ServiceError::Store(s),
        }
    }
}

impl From<crate::reports::ReportError> for ServiceError {
    fn from(e: crate::reports::ReportError) -> Self {
        match e {
            crate::reports::ReportError::Denied(m) => ServiceError::Forbidden(m),
            crate::reports::ReportError::Store(s) => ServiceError::Store(s),
        }
    }
}
