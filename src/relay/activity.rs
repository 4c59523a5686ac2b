//! Whether relay is working right now, so that work that can wait lets it go first.
//!
//! Each relay stage's drain holds a [`Busy`] guard while it works a conversation (or room).
//! The media jobs ([`crate::media`]) ask [`RelayActivity::idle`] before they download a file
//! from the homeserver and before they post a transcript: a customer's message and an
//! operator's answer never queue behind them at the homeserver or the database. The wait is
//! bounded, so a bridge that relays without a pause still gets its transcripts, only later.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How many relay drains are working now, and a bell when the last one ends.
#[derive(Default)]
pub struct RelayActivity {
    busy: AtomicUsize,
    idle: Notify,
}

/// Held while a relay drain works; counts it out when dropped (also on a panic).
pub struct Busy<'a>(&'a RelayActivity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl RelayActivity {
    /// A relay drain starts working.
    pub fn enter(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self)
    }

    /// How many drains work now.
    pub fn working(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    /// Wait until no relay drain works, at most `max`. Returns whether relay was idle (false:
    /// the wait ran out while relay still worked).
    pub async fn idle(&self, max: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            // Registered before the check, so an end between the check and the wait is heard.
            let ended = self.idle.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.working() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return self.working() == 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn waits_for_the_last_drain_and_no_longer_than_asked() {
        let activity = Arc::new(RelayActivity::default());
        assert!(activity.idle(Duration::from_secs(5)).await, "idle at once");

        let first = activity.enter();
        let second = activity.enter();
        assert_eq!(activity.working(), 2);
        let (done_tx, mut done) = tokio::sync::oneshot::channel();
        let waiter = {
            let activity = activity.clone();
            tokio::spawn(async move {
                let idle = activity.idle(Duration::from_secs(60)).await;
                let _ = done_tx.send(idle);
            })
        };
        drop(first);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            done.try_recv().is_err(),
            "ended while one drain still works"
        );
        drop(second);
        let idle = tokio::time::timeout(Duration::from_secs(5), done)
            .await
            .expect("woken when the last drain ended")
            .expect("answer");
        assert!(idle);
        waiter.await.expect("waiter");

        // Relay that never pauses: the wait ends at its bound, saying relay still works.
        let _held = activity.enter();
        let started = tokio::time::Instant::now();
        let idle = tokio::time::timeout(
            Duration::from_secs(5),
            activity.idle(Duration::from_millis(200)),
        )
        .await
        .expect("bounded");
        assert!(!idle);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
