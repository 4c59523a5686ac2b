//! The scheduling shared by the inbound, outbound and Matrix-event queues: conversations (or
//! rooms) run in parallel, events within one conversation strictly in order.
//!
//! A dispatcher asks the store which keys (conversation ids, room ids) have a due event at the
//! head of their queue and starts one drain task per key that is not already being drained. It
//! wakes when told (a new event was stored), when a drain ends (a slot is free), and otherwise
//! every `tick`, which is when backoff deadlines come due.
//!
//! **Fairness** ([`run_fair`]): each key belongs to a lane (the inbound queue's lanes are
//! channels). A lane takes up to `per_lane` of the `concurrency` slots whenever one is free;
//! beyond that share it takes a slot only while `per_lane` slots stay free after it, kept for
//! the other lanes. The store lists keys interleaved across lanes, so a flood on one channel — a
//! thousand new web chat conversations — waits behind itself while a WhatsApp customer's message
//! takes a kept slot at once; and a channel that is busy alone (sixteen customers writing at
//! once on one channel) is not held to its share while the slots sit idle. One conversation is
//! drained by one task at a time, so a flood in one conversation holds one slot. Order within a conversation and exactly-once are the drains' business and are not
//! touched by the choice of which conversation goes next.
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
/// once, and never one key by two tasks. All keys share one lane.
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
    let one_lane = || {
        let listed = ready();
        async move { Ok(listed.await?.into_iter().map(|k| ((), k)).collect()) }
    };
    run_fair(name, wake, one_lane, drain, concurrency, concurrency).await
}

/// Run a queue whose keys come in lanes (`ready` lists `(lane, key)`, interleaved across lanes):
/// at most `concurrency` keys at once, never one key by two tasks; a lane beyond `per_lane` keys
/// only while `per_lane` slots stay free for the other lanes (see the module docs).
pub async fn run_fair<L, K, R, RF, D, DF>(
    name: &'static str,
    wake: &Notify,
    ready: R,
    drain: D,
    concurrency: usize,
    per_lane: usize,
) where
    L: Eq + Hash + Clone + Send + 'static,
    K: Eq + Hash + Clone + Send + 'static,
    R: Fn() -> RF,
    RF: Future<Output = Result<Vec<(L, K)>, StoreError>>,
    D: Fn(K) -> DF + Clone + Send + 'static,
    DF: Future<Output = ()> + Send + 'static,
{
    let busy: Arc<Mutex<HashSet<K>>> = Arc::new(Mutex::new(HashSet::new()));
    let in_lane: Arc<Mutex<HashMap<L, usize>>> = Arc::new(Mutex::new(HashMap::new()));
    // Keys whose last drain panicked: how many times in a row, and when to try again.
    let panicked: Arc<Mutex<HashMap<K, (u32, Instant)>>> = Arc::new(Mutex::new(HashMap::new()));
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let per_lane = per_lane.clamp(1, concurrency.max(1));
    // The slots a lane beyond its share leaves free for the others (none with one lane per
    // queue: `run`).
    let reserve = if per_lane >= concurrency { 0 } else { per_lane };
    let freed = Arc::new(Notify::new());
    let tick = Duration::from_millis(250);
    loop {
        match ready().await {
            Ok(keys) => {
                for (lane, key) in keys {
                    if lock(&panicked)
                        .get(&key)
                        .is_some_and(|(_, until)| *until > Instant::now())
                    {
                        continue;
                    }
                    if lock(&busy).contains(&key) {
                        continue;
                    }
                    let over_share = lock(&in_lane).get(&lane).is_some_and(|n| *n >= per_lane);
                    if over_share && slots.available_permits() <= reserve {
                        continue;
                    }
                    // No free slot: the rest waits for the next round, listed afresh and in
                    // lane order again, rather than in this round's order.
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        break;
                    };
                    lock(&busy).insert(key.clone());
                    *lock(&in_lane).entry(lane.clone()).or_insert(0) += 1;
                    let (busy, in_lane, panicked, freed) = (
                        busy.clone(),
                        in_lane.clone(),
                        panicked.clone(),
                        freed.clone(),
                    );
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
                        {
                            let mut in_lane = lock(&in_lane);
                            if let Some(n) = in_lane.get_mut(&lane) {
                                *n -= 1;
                                if *n == 0 {
                                    in_lane.remove(&lane);
                                }
                            }
                        }
                        drop(permit);
                        freed.notify_one();
                    });
                }
            }
            Err(e) => tracing::error!(queue = name, error = %e, "cannot read queue; retrying"),
        }
        tokio::select! {
            _ = tokio::time::timeout(tick, wake.notified()) => {}
            _ = freed.notified() => {}
        }
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

    /// A lane listing many keys, all slow, cannot take every slot: a key of another lane,
    /// listed after all of them, is drained while the flood is still stuck.
    #[tokio::test]
    async fn a_flooded_lane_leaves_slots_for_the_others() {
        let wake = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let other_done = Arc::new(Notify::new());
        let ready = || async {
            let mut keys: Vec<(&str, String)> =
                (0..50).map(|i| ("webchat", format!("flood-{i}"))).collect();
            keys.push(("whatsapp", "customer".to_string()));
            Ok::<_, StoreError>(keys)
        };
        let drain = {
            let (release, other_done) = (release.clone(), other_done.clone());
            move |key: String| {
                let (release, other_done) = (release.clone(), other_done.clone());
                async move {
                    if key == "customer" {
                        other_done.notify_one();
                    } else {
                        release.notified().await;
                    }
                }
            }
        };
        let queue = {
            let wake = wake.clone();
            tokio::spawn(async move { run_fair("test", &wake, ready, drain, 8, 4).await })
        };
        tokio::time::timeout(Duration::from_secs(5), other_done.notified())
            .await
            .expect("the flooded lane took every slot");
        release.notify_waiters();
        queue.abort();
    }

    /// A lane busy alone is not held to its share while slots sit idle: sixteen slots, a share
    /// of four, one lane listing fifty stuck keys: twelve run at once, never more (four stay
    /// kept for other lanes), and a key of another lane still runs at once.
    #[tokio::test]
    async fn a_lane_alone_uses_the_slots_the_others_do_not_need() {
        let wake = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let other_done = Arc::new(Notify::new());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let other_listed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ready = {
            let other_listed = other_listed.clone();
            move || {
                let other = other_listed.load(Ordering::SeqCst);
                async move {
                    let mut keys: Vec<(&str, String)> =
                        (0..50).map(|i| ("webchat", format!("busy-{i}"))).collect();
                    if other {
                        keys.push(("whatsapp", "customer".to_string()));
                    }
                    Ok::<_, StoreError>(keys)
                }
            }
        };
        let drain = {
            let (release, other_done) = (release.clone(), other_done.clone());
            let (running, most) = (running.clone(), most.clone());
            move |key: String| {
                let (release, other_done) = (release.clone(), other_done.clone());
                let (running, most) = (running.clone(), most.clone());
                async move {
                    if key == "customer" {
                        other_done.notify_one();
                        return;
                    }
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    release.notified().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                }
            }
        };
        let queue = {
            let wake = wake.clone();
            tokio::spawn(async move { run_fair("test", &wake, ready, drain, 16, 4).await })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while running.load(Ordering::SeqCst) < 12 {
            assert!(
                Instant::now() < deadline,
                "a lane alone got only {} slots",
                running.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // More dispatch rounds list the same fifty keys: the four kept slots stay free.
        for _ in 0..5 {
            wake.notify_one();
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(most.load(Ordering::SeqCst), 12);
        other_listed.store(true, Ordering::SeqCst);
        wake.notify_one();
        tokio::time::timeout(Duration::from_secs(5), other_done.notified())
            .await
            .expect("the busy lane took the slots kept for the others");
        release.notify_waiters();
        queue.abort();
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
