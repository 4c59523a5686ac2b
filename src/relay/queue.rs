//! The scheduling shared by the inbound, outbound and Matrix-event queues: conversations (or
//! rooms) run in parallel, events within one conversation strictly in order.
//!
//! A dispatcher asks the store which keys (conversation ids, room ids) have a due event at the
//! head of their queue and starts one drain task per key that is not already being drained. It wakes when told
//! (a new event was stored) and otherwise every `tick`, which is when backoff deadlines come due.
//!
//! A drain that panics (a bug) is logged and its key is freed, then left alone for a growing
//! pause before it is tried again: one poisoned conversation neither stalls forever nor spins.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::store::StoreError;

/// How long to wait before attempt `attempts + 1`: exponential from `base`, capped at `max`,
/// never shorter than the remote side's own hint.
pub fn backoff(attempts: u32, base: Duration, max: Duration, hint: Option<Duration>) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(attempts.min(20)).unwrap_or(u32::MAX));
    let delay = exp.min(max);
    match hint {
        Some(h) if h > delay => h,
        _ => delay,
    }
}

/// Run a per-conversation (or per-room) queue forever: at most `concurrency` keys are drained at
/// once, and never one key by two tasks.
pub async fn run<K, R, RF, D, DF>(
    name: &'static str,
    wake: &Notify,
    ready: R,
    drain: D,
    concurrency: usize,
) where
    K: Eq + Hash + Clone + Send + 'static,
    R: Fn() -> RF,
    RF: Future<Output = Result<Vec<K>, StoreError>>,
    D: Fn(K) -> DF + Clone + Send + 'static,
    DF: Future<Output = ()> + Send + 'static,
{
    let busy: Arc<Mutex<HashSet<K>>> = Arc::new(Mutex::new(HashSet::new()));
    // Keys whose last drain panicked: how many times in a row, and when to try again.
    let panicked: Arc<Mutex<HashMap<K, (u32, Instant)>>> = Arc::new(Mutex::new(HashMap::new()));
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let tick = Duration::from_millis(250);
    loop {
        match ready().await {
            Ok(keys) => {
                for key in keys {
                    if lock(&panicked)
                        .get(&key)
                        .is_some_and(|(_, until)| *until > Instant::now())
                    {
                        continue;
                    }
                    if !lock(&busy).insert(key.clone()) {
                        continue;
                    }
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let (busy, panicked) = (busy.clone(), panicked.clone());
                    let drain = drain.clone();
                    tokio::spawn(async move {
                        let outcome = AssertUnwindSafe(drain(key.clone())).catch_unwind().await;
                        {
                            let mut panicked = lock(&panicked);
                            if outcome.is_err() {
                                let times = panicked.get(&key).map_or(0, |(n, _)| *n) + 1;
                                let pause = backoff(times - 1, PANIC_PAUSE, PANIC_PAUSE_MAX, None);
                                tracing::error!(queue = name, times, retry_in = ?pause, "a drain task panicked; its queue is paused");
                                panicked.insert(key.clone(), (times, Instant::now() + pause));
                            } else {
                                panicked.remove(&key);
                            }
                        }
                        lock(&busy).remove(&key);
                        drop(permit);
                    });
                }
            }
            Err(e) => tracing::error!(queue = name, error = %e, "cannot read queue; retrying"),
        }
        let _ = tokio::time::timeout(tick, wake.notified()).await;
    }
}

/// First pause after a drain panicked, doubled on each panic in a row up to the maximum.
const PANIC_PAUSE: Duration = Duration::from_secs(1);
const PANIC_PAUSE_MAX: Duration = Duration::from_secs(300);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A key whose drain is stuck does not hold up other keys, and one key is never drained by
    /// two tasks at once even while the store keeps listing it.
    #[tokio::test]
    async fn keys_run_in_parallel_and_each_key_alone() {
        let wake = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let fast_done = Arc::new(Notify::new());
        let in_slow = Arc::new(AtomicUsize::new(0));
        let max_in_slow = Arc::new(AtomicUsize::new(0));
        let ready = || async { Ok::<_, StoreError>(vec!["slow".to_string(), "fast".to_string()]) };
        let drain = {
            let (release, fast_done) = (release.clone(), fast_done.clone());
            let (in_slow, max_in_slow) = (in_slow.clone(), max_in_slow.clone());
            move |key: String| {
                let (release, fast_done) = (release.clone(), fast_done.clone());
                let (in_slow, max_in_slow) = (in_slow.clone(), max_in_slow.clone());
                async move {
                    if key == "slow" {
                        let now = in_slow.fetch_add(1, Ordering::SeqCst) + 1;
                        max_in_slow.fetch_max(now, Ordering::SeqCst);
                        release.notified().await;
                        in_slow.fetch_sub(1, Ordering::SeqCst);
                    } else {
                        fast_done.notify_one();
                    }
                }
            }
        };
        let queue = {
            let wake = wake.clone();
            tokio::spawn(async move { run("test", &wake, ready, drain, 4).await })
        };
        // "fast" finishes while "slow" is stuck.
        tokio::time::timeout(Duration::from_secs(5), fast_done.notified())
            .await
            .expect("a stuck key held up another key");
        // Several dispatch rounds list "slow" again; still one drain of it at a time.
        for _ in 0..5 {
            wake.notify_one();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(max_in_slow.load(Ordering::SeqCst), 1);
        release.notify_one();
        queue.abort();
    }

    /// A drain that panics frees its key: the key is drained again (after a pause) and other
    /// keys go on meanwhile.
    #[tokio::test]
    async fn a_panicking_drain_does_not_leave_its_key_stuck() {
        let wake = Arc::new(Notify::new());
        let calls: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
        let recovered = Arc::new(Notify::new());
        let other_done = Arc::new(Notify::new());
        let ready =
            || async { Ok::<_, StoreError>(vec!["poison".to_string(), "other".to_string()]) };
        let drain = {
            let (calls, recovered, other_done) =
                (calls.clone(), recovered.clone(), other_done.clone());
            move |key: String| {
                let (calls, recovered, other_done) =
                    (calls.clone(), recovered.clone(), other_done.clone());
                async move {
                    if key == "other" {
                        other_done.notify_one();
                        return;
                    }
                    let n = {
                        let mut calls = lock(&calls);
                        calls.push(Instant::now());
                        calls.len()
                    };
                    match n {
                        1 => panic!("a bug in handling one conversation"),
                        2 => recovered.notify_one(),
                        _ => {}
                    }
                }
            }
        };
        let queue = {
            let wake = wake.clone();
            tokio::spawn(async move { run("test", &wake, ready, drain, 4).await })
        };
        tokio::time::timeout(Duration::from_secs(5), other_done.notified())
            .await
            .expect("other keys stalled");
        tokio::time::timeout(Duration::from_secs(10), recovered.notified())
            .await
            .expect("the key of a panicked drain was never drained again");
        queue.abort();
        let calls = lock(&calls);
        assert!(
            calls[1] - calls[0] >= PANIC_PAUSE,
            "retried {:?} after the panic, before the pause ended",
            calls[1] - calls[0]
        );
    }

    #[test]
    fn backoff_grows_caps_and_honours_hints() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        assert_eq!(backoff(0, base, max, None), Duration::from_secs(1));
        assert_eq!(backoff(3, base, max, None), Duration::from_secs(8));
        assert_eq!(backoff(30, base, max, None), max);
        assert_eq!(
            backoff(0, base, max, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(
            backoff(5, base, max, Some(Duration::from_millis(10))),
            Duration::from_secs(32)
        );
    }
}
