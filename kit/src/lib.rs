//! The shared channel kit: what every channel (`bridges/<name>`) and the core apply alike,
//! written once so that a rule changed here holds everywhere.
//!
//! It depends only on the channel contract (`switchboard-channel`). A channel keeps what is
//! its own network's (its wire format, its limits, its error codes); anything two channels
//! would otherwise write twice lives here:
//!
//! * [`lifecycle`]: a channel switched off, starting or running, and what a send gets in each;
//!   [`channel_struct!`] declares a channel's type (its configuration and what it holds while
//!   running) with its constructor, and, in its second form, the channel's `Channel` impl
//!   around its own [`lifecycle::ChannelOwn`];
//! * [`config`]: checking a channel's configuration section, with one kind of message;
//!   [`config_section!`] declares a section with the keys channels share, their defaults,
//!   documentation and checks;
//! * [`checks`]: a channel's checks of itself against its network (`Channel::check`), and how
//!   a failure that is not the network's own words becomes a check that names its fix;
//! * [`file_name`]: the one strict sanitiser for names customers and operators give files;
//! * [`mime`]: mime type ↔ file extension, one table;
//! * [`html`]: the one allow-list for HTML from outside (mail, agents' HTML for browsers);
//! * [`http`]: the HTTP client every channel builds, `Retry-After`, size-limited downloads,
//!   and how an HTTP status becomes a [`switchboard_channel::SendError`];
//! * [`verify`]: constant-time comparison and the HMAC helpers webhook signatures use;
//! * [`media`]: fetching a message's files into the media store, or naming those not fetched;
//! * [`meta`]: Meta's webhook protocol (the `hub.challenge` handshake and
//!   `X-Hub-Signature-256`), shared by WhatsApp, Messenger and Instagram;
//! * [`profile`]: customers' names and avatars remembered in the channel's state, photos
//!   stored only when they changed;
//! * [`rating`]: rating requests (CSAT): the payload that binds a button to its request, the
//!   choices' labels, and the digit fallback for networks without buttons;
//! * [`reaction`]: reaction keys: what is an emoji, two spellings of one, a network's fixed
//!   palette and the reason an operator reads when a reaction is not in it;
//! * [`refusals`]: rate-limited logging of what the server and channels turn away;
//! * [`send`]: the two kinds of send failure, and fetching an operator's file from the store;
//! * [`text`]: the wall clock in milliseconds, HTML escaping, and the invisible and bidi
//!   characters no name shown to people may carry;
//! * `test_host` (feature `test-host`): an in-memory `Host` for the channels' unit tests.

pub mod checks;
pub mod config;
pub mod file_name;
pub mod html;
pub mod http;
pub mod lifecycle;
pub mod media;
pub mod meta;
pub mod mime;
pub mod profile;
pub mod rating;
pub mod reaction;
pub mod refusals;
pub mod send;
pub mod text;
pub mod verify;

#[cfg(any(test, feature = "test-host"))]
pub mod test_host;

pub use file_name::safe_file_name;
pub use refusals::RefusalLog;
pub use text::{escape_html, is_invisible, now_ms, without_invisible};
pub use verify::constant_time_eq;
