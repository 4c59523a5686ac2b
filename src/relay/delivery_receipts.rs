//! Delivery receipts: the bot's `m.read` receipt on an operator's message is how the room
//! shows that the customer's channel took it (`bridge.delivery_status`, see
//! [`crate::relay::outbox_to_channel::send_status`]).
//!
//! An `m.read` receipt is a marker: a receipt on an event says every earlier event of the room
//! was read too. So during a burst of answers in one conversation only the newest delivered
//! message needs one. Each room has at most one receipt on its way to the homeserver, and after
//! each receipt a pause: whatever is delivered while a receipt is in flight or paused after is
//! shown by one receipt on the newest message at the end of it. The first delivery in a quiet
//! room is shown at once and the first pause is [`INTERVAL`]; while the room stays busy each
//! pause doubles, up to [`LONGEST_INTERVAL`], and a quiet pause (nothing newer delivered) ends
//! the room's run. Answers at a person's pace are each shown at once; a sustained burst of 60
//! answers delivered within 30 s costs the homeserver 10 receipts rather than 60 (each
//! persisted, fanned out to every member's sync and pushed back to the bridge), and its newest
//! delivery is shown at most 4 s late. The delivery itself never waits for a receipt.
//!
//! Receipts are best effort, as they always were: one that the homeserver refuses is logged,
//! and one still waiting when the bridge stops is not sent (the message was delivered; its
//! outbox row says so).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::matrix::client::Homeserver;

/// The pause after a room's first receipt: the shortest time between two receipts in a room.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The longest pause: while a room stays busy its pauses double up to this.
pub const LONGEST_INTERVAL: Duration = Duration::from_secs(4);

/// The pause after the `n`th receipt (from 0) of a room's busy run.
fn pause(first: Duration, longest: Duration, n: u32) -> Duration {
    first.saturating_mul(1 << n.min(16)).min(longest)
}

/// Who posts a receipt (the homeserver as the bot; a recorder in unit tests).
pub trait PostReceipt: Send + Sync + 'static {
    fn post(&self, room_id: &str, event_id: &str) -> impl Future<Output = ()> + Send;
}

impl PostReceipt for Homeserver {
    async fn post(&self, room_id: &str, event_id: &str) {
        if let Err(e) = self.read_receipt(room_id, event_id, &self.bot).await {
            tracing::warn!(room_id, event_id, error = %e, "cannot post the delivery receipt");
        }
    }
}

/// Rooms with a receipt in flight or within its interval, and the newest delivered message
/// of each that no receipt covers yet.
pub struct DeliveryReceipts<P: PostReceipt = Homeserver> {
    poster: Arc<P>,
    rooms: Arc<Mutex<HashMap<String, Option<String>>>>,
    interval: Duration,
    longest: Duration,
}

impl<P: PostReceipt> DeliveryReceipts<P> {
    pub fn new(poster: P) -> Self {
        Self::with_intervals(poster, INTERVAL, LONGEST_INTERVAL)
    }

    fn with_intervals(poster: P, interval: Duration, longest: Duration) -> Self {
        DeliveryReceipts {
            poster: Arc::new(poster),
            rooms: Default::default(),
            interval,
            longest,
        }
    }

    /// `event_id` (the newest so far in `room_id`) was delivered: show it.
    pub fn delivered(&self, room_id: &str, event_id: &str) {
        let mut rooms = lock(&self.rooms);
        if let Some(pending) = rooms.get_mut(room_id) {
            // The room's sender is busy: it takes the newest when its interval ends.
            *pending = Some(event_id.to_owned());
            return;
        }
        rooms.insert(room_id.to_owned(), None);
        drop(rooms);
        let (poster, rooms) = (self.poster.clone(), self.rooms.clone());
        let (first_pause, longest) = (self.interval, self.longest);
        let (room_id, first) = (room_id.to_owned(), event_id.to_owned());
        tokio::spawn(async move {
            let mut event_id = first;
            for n in 0.. {
                poster.post(&room_id, &event_id).await;
                tokio::time::sleep(pause(first_pause, longest, n)).await;
                let mut waiting = lock(&rooms);
                match waiting.get_mut(&room_id).and_then(Option::take) {
                    Some(newer) => event_id = newer,
                    None => {
                        waiting.remove(&room_id);
                        return;
                    }
                }
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing is left half-changed by a panic under this lock.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Semaphore;

    /// Records each receipt as its post starts; a post ends only when the test lets it.
    #[derive(Clone)]
    struct Gated {
        posted: Arc<Mutex<Vec<(String, String)>>>,
        gate: Arc<Semaphore>,
    }

    impl PostReceipt for Gated {
        async fn post(&self, room_id: &str, event_id: &str) {
            lock(&self.posted).push((room_id.into(), event_id.into()));
            if let Ok(permit) = self.gate.acquire().await {
                permit.forget();
            }
        }
    }

    impl Gated {
        fn events(&self, room: &str) -> Vec<String> {
            lock(&self.posted)
                .iter()
                .filter(|(r, _)| r == room)
                .map(|(_, e)| e.clone())
                .collect()
        }

        /// Waits (5 s at most) until `room`'s receipts are `expected`.
        async fn until(&self, room: &str, expected: &[&str]) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while self.events(room) != expected {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{room}: posted {:?}, expected {expected:?}",
                    self.events(room)
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    #[tokio::test]
    async fn a_burst_in_one_room_is_shown_by_a_receipt_on_its_newest_message() {
        let poster = Gated {
            posted: Default::default(),
            gate: Arc::new(Semaphore::new(0)),
        };
        // The interval's pause is the test's gate here: a receipt is "in flight" until let go.
        let receipts =
            DeliveryReceipts::with_intervals(poster.clone(), Duration::ZERO, Duration::ZERO);
        // A quiet room: its first delivery is shown at once.
        receipts.delivered("!a", "$1");
        poster.until("!a", &["$1"]).await;
        // Three more while that receipt is on its way: no receipt of their own yet.
        for event in ["$2", "$3", "$4"] {
            receipts.delivered("!a", event);
        }
        // Another room is not held up by the first one's receipt.
        receipts.delivered("!b", "$b1");
        poster.until("!b", &["$b1"]).await;
        assert_eq!(poster.events("!a"), ["$1"]);
        // The first receipt done: one more, on the newest, covers the three.
        poster.gate.add_permits(1);
        poster.until("!a", &["$1", "$4"]).await;
        // Both rooms' receipts done and nothing newer: nothing more is posted, the rooms are
        // forgotten, and the next delivery is shown at once.
        poster.gate.add_permits(2);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !lock(&receipts.rooms).is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "idle rooms are kept"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(poster.events("!a"), ["$1", "$4"]);
        receipts.delivered("!a", "$5");
        poster.until("!a", &["$1", "$4", "$5"]).await;
        poster.gate.add_permits(1);
    }

    #[test]
    fn a_busy_room_pauses_twice_as_long_each_time_up_to_the_longest() {
        let pauses: Vec<u64> = (0..7)
            .map(|n| pause(INTERVAL, LONGEST_INTERVAL, n).as_secs())
            .collect();
        assert_eq!(pauses, [1, 2, 4, 4, 4, 4, 4]);
        assert_eq!(
            pause(INTERVAL, LONGEST_INTERVAL, u32::MAX),
            LONGEST_INTERVAL
        );
    }

    /// Records when each receipt was posted.
    #[derive(Clone, Default)]
    struct Timed(Arc<Mutex<Vec<(tokio::time::Instant, String)>>>);

    impl PostReceipt for Timed {
        async fn post(&self, _room_id: &str, event_id: &str) {
            lock(&self.0).push((tokio::time::Instant::now(), event_id.into()));
        }
    }

    #[tokio::test]
    async fn a_sustained_burst_gets_fewer_receipts_the_longer_it_lasts_and_its_newest_is_shown() {
        let first = Duration::from_millis(40);
        let poster = Timed::default();
        let receipts = DeliveryReceipts::with_intervals(poster.clone(), first, first * 4);
        // A delivery every 5 ms for 1.2 s: 240 messages in one room.
        let mut newest = String::new();
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        let end = tokio::time::Instant::now() + Duration::from_millis(1200);
        let mut n = 0;
        while tokio::time::Instant::now() < end {
            tick.tick().await;
            n += 1;
            newest = format!("${n}");
            receipts.delivered("!a", &newest);
        }
        // The newest delivery is shown once the run's last pause is over.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while lock(&poster.0).last().map(|(_, e)| e.as_str()) != Some(newest.as_str()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{newest} never shown"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let posted = lock(&poster.0).clone();
        // No two receipts closer than the room's schedule allows: 40, 80, then 160 ms.
        for (k, pair) in posted.windows(2).enumerate() {
            let gap = pair[1].0 - pair[0].0;
            let allowed = pause(first, first * 4, k as u32);
            assert!(
                gap >= allowed,
                "receipt {k}: {gap:?} after the one before, under {allowed:?}"
            );
        }
        // 1.2 s of deliveries at a fixed 40 ms would have taken 30 receipts; backing off to
        // 160 ms, at most 10.
        assert!(
            posted.len() <= 10,
            "{} receipts for {n} deliveries",
            posted.len()
        );
    }
}
