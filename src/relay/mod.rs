//! The relay: three stages, each a durable queue in the store drained by its own worker, in
//! order per conversation (or room) and in parallel across them ([`queue`]).
//!
//! 1. **Customer inbox → Matrix** ([`customer_to_matrix`]): what channels stored through
//!    `Host::receive` becomes events in the conversation's room, sent by the customer's ghost.
//! 2. **Matrix events → outbox** ([`matrix_to_outbox`]): what the homeserver pushed (stored
//!    before the transaction was answered) is worked: commands run, operators' messages become
//!    outbox items.
//! 3. **Outbox → channel** ([`outbox_to_channel`]): each item is sent through its channel, with
//!    retries, and the outcome shown in the room; an answer to a customer who has left a live
//!    channel goes by another one when configured ([`continued`]).
//!
//! Each stage is fed by one call that both stores and wakes its worker ([`Bridge::queue_inbound`],
//! [`Bridge::queue_matrix_events`], [`Bridge::queue_outbound`], [`Bridge::requeue_failed`]), so
//! no caller can store work and forget to wake the stage; a missed wake-up would only be
//! noticed at the next tick.

pub mod activity;
pub mod continued;
pub mod customer_to_matrix;
pub mod delivery_receipts;
pub mod matrix_to_outbox;
pub mod outbox_to_channel;
pub mod queue;

use crate::bridge::Bridge;
use crate::store::StoreError;
use switchboard_channel::{Inbound, Outbound, Recorded, SendError};

/// A delivery stopped by the bridge's own store, not by the channel: waited out by the outbox,
/// never counted as an attempt ([`SendError::HostUnavailable`]).
pub(crate) fn store_unavailable(e: StoreError) -> SendError {
    SendError::HostUnavailable {
        reason: format!("the bridge's store is unavailable: {e}"),
    }
}

impl Bridge {
    /// Stage 1's input: store a channel's event in the customer inbox (once per dedup key) and
    /// wake the stage. `false` when it was stored before (a redelivery). `member_ghosts`: the
    /// ghosts of the group members the event names (`Inbound::group`), in their order;
    /// `record`: the channel's own records of the event, stored with it (their log entry's seq
    /// comes back).
    pub async fn queue_inbound(
        &self,
        channel: &str,
        ghost_user_id: &str,
        member_ghosts: &[String],
        inbound: &Inbound,
        record: Option<&Recorded<'_>>,
    ) -> Result<(bool, Option<i64>), StoreError> {
        let (fresh, seq) = self
            .store
            .inbox_insert_recorded(channel, ghost_user_id, member_ghosts, inbound, record)
            .await?;
        if fresh {
            self.wake_inbound.notify_one();
        }
        Ok((fresh, seq))
    }

    /// Stage 2's input: store a homeserver transaction's events (`(event_id, room_id, raw)`)
    /// and wake the stage. `false` when the transaction's events were stored before (a replay).
    pub async fn queue_matrix_events(
        &self,
        txn_id: &str,
        events: &[(String, String, String)],
    ) -> Result<bool, StoreError> {
        let fresh = self.store.store_transaction(txn_id, events).await?;
        if fresh {
            self.wake_matrix.notify_one();
        }
        Ok(fresh)
    }

    /// Stage 3's input: queue an outbound item for the Matrix event `event_id` that `author`
    /// sent (marking the event handled and indexing the message for search in the same
    /// transaction) and wake the stage.
    pub async fn queue_outbound(
        &self,
        conversation_id: i64,
        event_id: &str,
        room_id: &str,
        author: &str,
        outbound: &Outbound,
        operator: Option<&str>,
    ) -> Result<(), StoreError> {
        // Only a message or a template counts as the operator's answer (not an edit, a deletion
        // or a reaction).
        let answer = match (&outbound.action, operator) {
            (
                switchboard_channel::OutboundAction::Message { .. }
                | switchboard_channel::OutboundAction::Template { .. },
                Some(op),
            ) => Some(self.stamp(Some(op))),
            _ => None,
        };
        self.store
            .outbox_enqueue(
                conversation_id,
                event_id,
                room_id,
                author,
                outbound,
                answer.as_ref(),
            )
            .await?;
        self.wake_outbound.notify_one();
        Ok(())
    }

    /// Put a room's failed outbound items (dead letters) back in stage 3 and wake it; how many.
    pub async fn requeue_failed(&self, room_id: &str) -> Result<u64, StoreError> {
        let n = self.store.outbox_requeue_failed(room_id).await?;
        if n > 0 {
            self.wake_outbound.notify_one();
        }
        Ok(n)
    }
}
