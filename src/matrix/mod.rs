//! The Matrix side: the homeserver client the bridge acts through ([`client`]), the appservice
//! endpoints the homeserver pushes to ([`appservice`]), and the conversion between Matrix
//! message content and channel content ([`content`]); an event's JSON read as written
//! ([`event_json`]).

pub mod appservice;
pub mod client;
pub mod content;
pub mod event_json;
pub mod ghosts;

pub use client::{Homeserver, MatrixError};
