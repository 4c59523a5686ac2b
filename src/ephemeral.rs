//! Ephemeral events from the homeserver (typing, read receipts), relayed to the customer's
//! channel at once and best effort: they are not worth storing, and a lost one is replaced by
//! the next.

use serde_json::Value;
use switchboard_channel::ConversationKey;

use crate::bridge::Bridge;

pub async fn handle(bridge: &Bridge, events: Vec<Value>) {
    for event in events {
        let Some(room_id) = event.get("room_id").and_then(Value::as_str) else {
            continue;
        };
        // Most receipts here are the bot's own (its delivery receipt on every operator message
        // comes back to the bridge), and customers' ghosts': only an operator's read matters,
        // so the others are dropped before the store is asked for the room.
        if event.get("type").and_then(Value::as_str) == Some("m.receipt")
            && !receipt_by_operator(bridge, &event)
        {
            continue;
        }
        let Ok(Some(conversation)) = bridge.store.conversation_by_room(room_id).await else {
            continue;
        };
        let Some(channel) = bridge.channel(&conversation.channel) else {
            continue;
        };
        let key = ConversationKey {
            account: conversation.account.clone(),
            chat: conversation.chat.clone(),
        };
        let is_operator = |u: &str| crate::routing::is_operator_fast(bridge, u);
        match event.get("type").and_then(Value::as_str) {
            Some("m.typing") => {
                if !channel.capabilities().typing {
                    continue;
                }
                let typing = event
                    .pointer("/content/user_ids")
                    .and_then(Value::as_array)
                    .is_some_and(|ids| ids.iter().filter_map(Value::as_str).any(is_operator));
                channel.typing(&key, typing).await;
            }
            Some("m.receipt") => {
                if !channel.capabilities().read_receipts {
                    continue;
                }
                let Some(content) = event.get("content").and_then(Value::as_object) else {
                    continue;
                };
                for (event_id, receipts) in content {
                    let read_by_operator = receipts
                        .get("m.read")
                        .and_then(Value::as_object)
                        .is_some_and(|users| users.keys().any(|u| is_operator(u)));
                    if !read_by_operator {
                        continue;
                    }
                    if let Ok(Some(remote_id)) = bridge
                        .store
                        .remote_for_event(conversation.id, event_id)
                        .await
                    {
                        channel.mark_read(&key, &remote_id).await;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether an `m.receipt` event holds an operator's `m.read` on any event.
fn receipt_by_operator(bridge: &Bridge, event: &Value) -> bool {
    event
        .get("content")
        .and_then(Value::as_object)
        .is_some_and(|content| {
            content.values().any(|receipts| {
                receipts
                    .get("m.read")
                    .and_then(Value::as_object)
                    .is_some_and(|users| {
                        users
                            .keys()
                            .any(|u| crate::routing::is_operator_fast(bridge, u))
                    })
            })
        })
}
