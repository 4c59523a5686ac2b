//! Viber channel (in progress).
