//! Rate-limited logging of refusals: what the HTTP server and the channels turn away (a
//! connection over the cap, a body too large or too slow, a visitor over a limit).
//!
//! A flood must be visible in the log without the log becoming the flood: the first refusal of
//! a kind is logged at once, with its detail (the peer address, the route); further refusals of
//! that kind within [`WINDOW`] are only counted, and the next one logged after the window says
//! how many were left out. Nothing is counted in memory beyond one counter per kind.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long refusals of one kind are counted rather than logged after one was logged.
pub const WINDOW: Duration = Duration::from_secs(60);

/// One per server or channel; cheap to share behind an `Arc`.
#[derive(Default)]
pub struct RefusalLog {
    kinds: Mutex<HashMap<&'static str, Kind>>,
}

struct Kind {
    logged_at: Instant,
    suppressed: u64,
}

impl RefusalLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Note one refusal of `kind` (a short stable name: `connection_cap`, `body_too_large`)
    /// with what identifies it; logs it unless one of its kind was logged within the window.
    /// Returns whether it was logged.
    pub fn refused(&self, kind: &'static str, detail: &str) -> bool {
        let now = Instant::now();
        let suppressed = {
            let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
            match kinds.get_mut(kind) {
                Some(k) if now.duration_since(k.logged_at) < WINDOW => {
                    k.suppressed += 1;
                    return false;
                }
                Some(k) => {
                    let n = k.suppressed;
                    *k = Kind {
                        logged_at: now,
                        suppressed: 0,
                    };
                    n
                }
                None => {
                    kinds.insert(
                        kind,
                        Kind {
                            logged_at: now,
                            suppressed: 0,
                        },
                    );
                    0
                }
            }
        };
        tracing::warn!(
            refusal = kind,
            detail,
            more_in_last_window = suppressed,
            "refused (further refusals of this kind are counted for {}s, then summed up here)",
            WINDOW.as_secs()
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_a_kind_is_logged_the_rest_counted() {
        let log = RefusalLog::new();
        assert!(log.refused("connection_cap", "127.0.0.1:1"));
        assert!(!log.refused("connection_cap", "127.0.0.1:2"));
        assert!(!log.refused("connection_cap", "127.0.0.1:3"));
        assert!(log.refused("body_too_large", "/x"));
        let kinds = log.kinds.lock().unwrap();
        assert_eq!(kinds["connection_cap"].suppressed, 2);
    }
}
