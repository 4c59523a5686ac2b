//! Lobby entries brought up to date in the background, off the path that changed them.
//!
//! A conversation's lobby entry ([`super::lobby`]) is one message in its team's lobby room,
//! posted or edited whenever the conversation's summary changes. Each post lands in the same
//! room as every other conversation's of that team, so the homeserver takes them one after
//! another: sixteen customers who write again at the same moment used to hold each of their
//! conversations' next message for 150–270 ms behind the lobby posts of all sixteen (relay
//! benchmark, docs/performance.md "The lobby off the customer's path").
//!
//! So a change only [`LobbyQueue::touch`]es the conversation and goes on. The leader's
//! [`run`] task gives each touched conversation one refresh at a time, which reads the
//! conversation's routing as stored *then*: changes that come while one is on its way are
//! shown together by the next (an entry never shows an older state after a newer one, and
//! two refreshes never both post a first entry for one conversation). At most
//! [`REFRESHES_AT_ONCE`] run at once; more would only queue inside the homeserver.
//!
//! Best effort, as lobby entries always were: a refresh that fails is logged, and touches not
//! yet refreshed when the leader steps down or stops are not kept (the next change, or the
//! waiting-time refresh of [`super::timers`], brings the entry up to date).

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::FutureExt;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::bridge::Bridge;

/// How many lobby entries are refreshed at once.
pub const REFRESHES_AT_ONCE: usize = 4;

/// Conversations whose lobby entry is to be refreshed.
#[derive(Default)]
pub struct LobbyQueue {
    touched: Mutex<HashSet<i64>>,
    wake: Notify,
}

impl LobbyQueue {
    /// `conversation_id`'s lobby entry should show its routing as stored (after the caller's
    /// write).
    pub fn touch(&self, conversation_id: i64) {
        lock(&self.touched).insert(conversation_id);
        self.wake.notify_one();
    }

    /// The touched conversations that no refresh is working on, at most `room` of them,
    /// taken off the list.
    fn take(&self, busy: &HashSet<i64>, room: usize) -> Vec<i64> {
        let mut touched = lock(&self.touched);
        let ready: Vec<i64> = touched
            .iter()
            .copied()
            .filter(|c| !busy.contains(c))
            .take(room)
            .collect();
        for c in &ready {
            touched.remove(c);
        }
        ready
    }
}

/// Refreshes touched lobby entries for as long as this instance leads.
pub async fn run(bridge: Arc<Bridge>) {
    let mut busy: HashSet<i64> = HashSet::new();
    // Dropped (so the refreshes in flight are aborted) when the leader's workers stop.
    let mut refreshes: JoinSet<i64> = JoinSet::new();
    loop {
        let room = REFRESHES_AT_ONCE.saturating_sub(refreshes.len());
        for conversation_id in bridge.lobby_queue.take(&busy, room) {
            busy.insert(conversation_id);
            let bridge = bridge.clone();
            refreshes.spawn(async move {
                if AssertUnwindSafe(refresh(&bridge, conversation_id))
                    .catch_unwind()
                    .await
                    .is_err()
                {
                    tracing::error!(conversation_id, "lobby refresh panicked");
                }
                conversation_id
            });
        }
        tokio::select! {
            _ = bridge.lobby_queue.wake.notified() => {}
            Some(done) = refreshes.join_next(), if !refreshes.is_empty() => {
                if let Ok(conversation_id) = done {
                    busy.remove(&conversation_id);
                }
            }
        }
    }
}

/// The conversation's lobby entry, from its conversation and routing rows as stored now.
async fn refresh(bridge: &Bridge, conversation_id: i64) {
    let rows = async {
        let conversation = bridge.store.conversation(conversation_id).await?;
        let routing = bridge.store.routing(conversation_id).await?;
        Ok::<_, crate::store::StoreError>(conversation.zip(routing))
    };
    match rows.await {
        Ok(Some((conversation, row))) => super::lobby::update(bridge, &conversation, &row).await,
        Ok(None) => {}
        Err(e) => tracing::warn!(conversation_id, error = %e, "lobby entry not updated"),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing is left half-changed by a panic under this lock.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touches_are_taken_once_and_never_for_a_conversation_being_refreshed() {
        let queue = LobbyQueue::default();
        for c in [1, 2, 3, 2] {
            queue.touch(c);
        }
        let busy: HashSet<i64> = [2].into();
        let mut first = queue.take(&busy, 10);
        first.sort();
        assert_eq!(first, [1, 3]);
        // 2 stays listed until its refresh is over, and is taken once.
        assert_eq!(queue.take(&busy, 10), Vec::<i64>::new());
        assert_eq!(queue.take(&HashSet::new(), 10), [2]);
        assert_eq!(queue.take(&HashSet::new(), 10), Vec::<i64>::new());
    }

    #[test]
    fn no_more_are_taken_than_there_is_room_for() {
        let queue = LobbyQueue::default();
        for c in 0..10 {
            queue.touch(c);
        }
        assert_eq!(queue.take(&HashSet::new(), 4).len(), 4);
        assert_eq!(queue.take(&HashSet::new(), 0).len(), 0);
        assert_eq!(queue.take(&HashSet::new(), 10).len(), 6);
    }
}
