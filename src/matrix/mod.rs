//! The Matrix side: the homeserver client the bridge acts through ([`client`]), the appservice
//! endpoints the homeserver pushes to ([`appservice`]), and the conversion between Matrix
//! message content and channel content ([`content`]).

pub mod appservice;
pub mod client;
pub mod content;
pub mod ghosts;

pub use client::{Homeserver, MatrixError};
