//! Input a channel could not read and that names no conversation: shown in the admin room.
//!
//! The channel hands it to [`crate::host::ChannelHost`]'s `unreadable`, which keeps it in the
//! store (`unreadable_input`) before the channel acknowledges its source, then starts
//! [`post_pending`] here. Every kept input whose notice is not posted yet goes to the admin room
//! (`bridge.admin_room`, else the lobby of conversations with no team, which every operator is
//! invited to) as a notice from the bot, with a transaction id derived from its row id, so a
//! post repeated after a failure or a restart appears once. A post that fails stays pending and
//! is tried again with the next unreadable input and at start.

use std::sync::Arc;

use crate::bridge::Bridge;
use crate::matrix::content::notice;

/// The admin room's id: the configured one (an alias is resolved and the bot joins it), else the
/// no-team lobby.
async fn admin_room(bridge: &Bridge) -> anyhow::Result<String> {
    match &bridge.config.bridge.admin_room {
        Some(configured) => {
            let room = if configured.starts_with('#') {
                bridge.homeserver.resolve_alias(configured).await?
            } else {
                configured.clone()
            };
            bridge.homeserver.join(&room, &bridge.namespace.bot).await?;
            Ok(room)
        }
        None => Ok(crate::routing::lobby::room(bridge, None).await?),
    }
}

/// On the leader: post what is pending now and then, for input kept by a standby (which leaves
/// the posting to the leader).
pub async fn keep_posting(bridge: Arc<Bridge>) {
    loop {
        post_pending(bridge.clone()).await;
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    }
}

/// Post every kept input whose notice is still pending. Logs and returns on the first failure:
/// what is left is posted the next time.
pub async fn post_pending(bridge: Arc<Bridge>) {
    static POSTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = POSTING.lock().await;
    let rows = match bridge.store.unreadable_unposted(100).await {
        Ok(rows) if rows.is_empty() => return,
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable input: cannot read what is still to be shown");
            return;
        }
    };
    let room = match admin_room(&bridge).await {
        Ok(room) => room,
        Err(e) => {
            tracing::warn!(error = %e, pending = rows.len(), "unreadable input: no admin room to show it in; kept for later");
            return;
        }
    };
    for row in rows {
        let text = format!("[{}] {}", row.channel, row.input.notice_text());
        let txn = format!("sb-unreadable-{}", row.id);
        if let Err(e) = bridge
            .homeserver
            .send(&room, "m.room.message", &txn, &notice(&text), None, None)
            .await
        {
            tracing::warn!(error = %e, %room, "unreadable input: notice not posted; kept for later");
            return;
        }
        if let Err(e) = bridge.store.unreadable_mark_posted(row.id).await {
            tracing::warn!(error = %e, "unreadable input: posted but not marked (it may be posted again)");
            return;
        }
    }
}
