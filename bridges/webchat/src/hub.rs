//! Live fan-out of events to a visitor's open event streams.
//!
//! One `tokio::sync::broadcast` channel per visitor with at least one listener (several tabs
//! each hold one). The hub is only a doorbell: the transcript log is the truth, and an SSE
//! stream that lags behind the broadcast buffer re-reads the log instead of losing events.
//! Channels with no listeners left are dropped on the next publish or subscribe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

/// Broadcast buffer per visitor; a slower stream falls back to reading the log.
const BUFFER: usize = 64;

/// One live event.
#[derive(Clone, Debug)]
pub enum Live {
    /// A transcript entry as presented to the browser (carries `seq`).
    Entry { seq: i64, event: Arc<Value> },
    /// An agent started or stopped typing (ephemeral, not in the transcript).
    Typing { active: bool },
}

/// The per-visitor broadcast channels.
#[derive(Default)]
pub struct Hub {
    senders: Mutex<HashMap<String, broadcast::Sender<Live>>>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, broadcast::Sender<Live>>> {
        // A panic while holding this lock cannot leave the map inconsistent; keep going.
        self.senders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Listen to a visitor's live events.
    pub fn subscribe(&self, visitor_id: &str) -> broadcast::Receiver<Live> {
        let mut senders = self.lock();
        senders.retain(|_, sender| sender.receiver_count() > 0);
        senders
            .entry(visitor_id.to_owned())
            .or_insert_with(|| broadcast::channel(BUFFER).0)
            .subscribe()
    }

    /// Tell a visitor's open streams about an event. Nobody listening is fine.
    pub fn publish(&self, visitor_id: &str, event: Live) {
        let mut senders = self.lock();
        if let Some(sender) = senders.get(visitor_id) {
            if sender.send(event).is_err() {
                senders.remove(visitor_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fan_out_and_cleanup() {
        let hub = Hub::default();
        let mut a = hub.subscribe("v1");
        let mut b = hub.subscribe("v1");
        hub.publish("v1", Live::Typing { active: true });
        hub.publish("v2", Live::Typing { active: true });
        assert!(matches!(a.recv().await, Ok(Live::Typing { active: true })));
        assert!(matches!(b.recv().await, Ok(Live::Typing { active: true })));
        drop((a, b));
        hub.publish("v1", Live::Typing { active: false });
        assert!(hub.lock().is_empty());
    }
}
