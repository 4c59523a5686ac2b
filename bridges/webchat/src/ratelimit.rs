//! Per-visitor rate limiting of posts (messages, files, edits, deletes).
//!
//! A governor keyed GCRA limiter: `rate_limit_per_minute` sustained with bursts of
//! `rate_limit_burst`. A refusal becomes `429 rate_limited` with `Retry-After`. The limiter lives
//! in memory only; a restart forgets it, which is harmless. Keys of visitors who have been quiet
//! long enough to be back at full burst are dropped by [`Limiter::sweep`].

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Keyed by visitor id.
pub struct Limiter {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl Limiter {
    /// Zero values are raised to 1 (the configuration is validated before this).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        Self {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Count one post by this visitor, or say how long to wait.
    pub fn check(&self, visitor_id: &str) -> Result<(), ApiError> {
        self.limiter
            .check_key(&visitor_id.to_owned())
            .map_err(|not_until| ApiError::RateLimited(not_until.wait_time_from(self.clock.now())))
    }

    /// Forget visitors whose limit has fully recovered. Call now and then.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// How often the channel sweeps the limiter.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_per_visitor() {
        let limiter = Limiter::new(1, 2);
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        match limiter.check("a") {
            Err(ApiError::RateLimited(wait)) => assert!(wait > Duration::from_secs(1)),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(limiter.check("b").is_ok());
    }
}
