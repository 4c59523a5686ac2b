//! Switchboard's core: a Matrix application service that gives every customer conversation its
//! own room and lets a team answer from the company's one account on each channel.
//!
//! Reading order: [`bridge`] (start-up and shared state), [`matrix::appservice`] (what the
//! homeserver pushes), [`outbound`] and [`delivery`] (operator → customer), [`host`] and
//! [`inbound`] (customer → operators), [`portal`] (ghosts and rooms), [`store`] (all state),
//! [`commands`]. Channels live in their own crates and meet the core through
//! [`switchboard_channel`].

pub mod bridge;
pub mod clock;
pub mod commands;
pub mod config;
pub mod delivery;
pub mod ephemeral;
pub mod host;
pub mod housekeeping;
pub mod inbound;
pub mod matrix;
pub mod outbound;
pub mod portal;
pub mod queue;
pub mod registration;
pub mod routing;
pub mod split;
pub mod store;
pub mod unreadable;

pub use switchboard_channel as channel;
