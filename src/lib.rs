//! Switchboard's core: a Matrix application service that gives every customer conversation its
//! own room and lets a team answer from the company's one account on each channel.
//!
//! Reading order: [`startup`] (start-up, health, shutdown), [`bridge`] (shared state), [`matrix::appservice`] (what the
//! homeserver pushes), [`relay`] (the three stages: customer inbox → Matrix, Matrix events →
//! outbox, outbox → channel), [`host`] (what channels call), [`portal`] (ghosts and rooms), [`store`] (all state),
//! [`commands`]. Channels live in their own crates and meet the core through
//! [`switchboard_channel`].

pub mod admin;
pub mod availability;
pub mod bridge;
pub mod canned;
pub mod clock;
pub mod commands;
pub mod config;
pub mod csat;
pub mod doctor;
pub mod ephemeral;
pub mod host;
pub mod housekeeping;
pub mod leader;
pub mod matrix;
pub mod media;
pub mod metrics;
pub mod portal;
pub mod readiness;
pub mod registration;
pub mod relay;
pub mod reports;
pub mod routing;
pub mod search;
pub mod server;
pub mod service;
pub mod split;
pub mod startup;
pub mod store;
pub mod unreadable;

pub use switchboard_channel as channel;
