//! Ghosts and portals: the Matrix user that speaks for a contact, and the room of a conversation.
//!
//! Both are created lazily, the first time an event needs them. A ghost is registered in the
//! bridge's exclusive namespace (`M_USER_IN_USE` is fine: it already exists) and named after the
//! customer. A portal is created private by the bot (who holds the top power level), carries
//! `m.bridge` / `uk.half-shot.bridge` state, is named after the customer and the channel, gets the
//! ghost joined and the configured operators invited.

use std::time::Duration;

use serde_json::{json, Value};
use switchboard_kit::without_invisible;

use crate::bridge::Bridge;
use crate::matrix::MatrixError;
use crate::store::conversations::{Contact, Conversation};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error(transparent)]
    Matrix(#[from] MatrixError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("contact {0} is unknown")]
    NoContact(String),
}

impl PortalError {
    pub fn is_retryable(&self) -> bool {
        match self {
            PortalError::Matrix(e) => e.is_retryable(),
            PortalError::Store(_) => true,
            PortalError::NoContact(_) => false,
        }
    }
}

/// The longest customer name shown in Matrix (ghost display name, room name, lobby lines), in
/// characters. Homeservers refuse long display names (Synapse: over 256 characters) and a name
/// that long helps no one; the full name stays in the store.
pub const MAX_NAME_CHARS: usize = 80;

/// The name a customer goes by in Matrix (ghost display name, room name, lobby lines), at most
/// [`MAX_NAME_CHARS`] long and without the kit's invisible and bidi characters
/// ([`switchboard_kit::is_invisible`]), whatever channel it came from: a name ending in U+202E
/// cannot make the room name's `(telegram)` read backwards.
pub fn customer_name(contact: &Contact) -> String {
    let visible = |n: &String| Some(without_invisible(n)).filter(|n| !n.trim().is_empty());
    let full = [&contact.display_name, &contact.email, &contact.phone]
        .into_iter()
        .flatten()
        .find_map(visible)
        .unwrap_or_else(|| without_invisible(&contact.contact_id));
    clip_name(full.trim())
}

/// `name` cut to [`MAX_NAME_CHARS`] characters (an ellipsis marks the cut).
fn clip_name(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        return name.to_string();
    }
    let cut: String = name.chars().take(MAX_NAME_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// Make sure the contact's ghost exists and carries the customer's current name and avatar.
///
/// Returns whether the ghost can speak. A profile the homeserver refuses for good (a name it
/// does not take, an avatar it cannot use) is logged and left as it is: the ghost speaks
/// without it. A ghost the homeserver will not register at all gives `false`, and the bot posts
/// the customer's messages with their name instead ([`crate::relay::customer_to_matrix`]): a customer's message
/// never waits on their profile.
pub async fn ensure_ghost(bridge: &Bridge, contact: &Contact) -> Result<bool, PortalError> {
    let name = customer_name(contact);
    if !(contact.registered && contact.synced_name.as_deref() == Some(name.as_str())) {
        if !contact.registered {
            let localpart = bridge
                .namespace
                .ghost_localpart(&contact.channel, &contact.contact_id);
            match bridge.homeserver.register(&localpart).await {
                Ok(()) => {}
                Err(e) if e.is_retryable() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(
                        ghost = contact.ghost_user_id,
                        error = %e,
                        "the homeserver refuses the customer's ghost; the bot posts for them"
                    );
                    return Ok(false);
                }
            }
        }
        match bridge
            .homeserver
            .set_displayname(&contact.ghost_user_id, &name)
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => tracing::warn!(
                ghost = contact.ghost_user_id,
                error = %e,
                "the homeserver refuses the customer's name; the ghost goes without it"
            ),
        }
        bridge
            .store
            .contact_synced(&contact.channel, &contact.contact_id, &name)
            .await?;
    }
    if let Some(avatar) = contact
        .avatar
        .as_deref()
        .filter(|a| contact.synced_avatar.as_deref() != Some(*a))
    {
        match bridge
            .homeserver
            .set_avatar_url(&contact.ghost_user_id, avatar)
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => tracing::warn!(
                ghost = contact.ghost_user_id,
                avatar,
                error = %e,
                "the homeserver refuses the customer's avatar; the ghost goes without it"
            ),
        }
        bridge
            .store
            .contact_avatar_synced(&contact.channel, &contact.contact_id, avatar)
            .await?;
    }
    Ok(true)
}

/// A conversation's room and who speaks for the customer there.
#[derive(Clone, Debug)]
pub struct Portal {
    pub room_id: String,
    pub contact: Contact,
    /// The customer's ghost, when the homeserver lets it speak; `None`: the bot posts for
    /// the customer, naming them.
    pub ghost: Option<String>,
    /// The name the customer goes by ([`customer_name`]).
    pub name: String,
}

/// The portal room of a conversation, created when missing, and who speaks for the customer in it.
/// A group conversation's room is named after the group (`group_title`) when it has a name.
pub async fn ensure_portal(
    bridge: &Bridge,
    conversation: &Conversation,
    first_text: &str,
    addressed_to: Option<&str>,
    group_title: Option<&str>,
) -> Result<Portal, PortalError> {
    let contact = bridge
        .store
        .contact(&conversation.channel, &conversation.contact_id)
        .await?
        .ok_or_else(|| PortalError::NoContact(conversation.contact_id.clone()))?;
    let ghost = ensure_ghost(bridge, &contact)
        .await?
        .then(|| contact.ghost_user_id.clone());
    let name = customer_name(&contact);
    if let Some(room_id) = &conversation.room_id {
        return Ok(Portal {
            room_id: room_id.clone(),
            contact,
            ghost,
            name,
        });
    }
    let channel = &conversation.channel;
    let group_name = group_title
        .map(without_invisible)
        .filter(|t| !t.trim().is_empty())
        .map(|t| clip_name(t.trim()));
    let room_name = group_name.clone().unwrap_or_else(|| name.clone());
    let mut topic = match &group_name {
        Some(group) => format!("{channel} group {group}, first written to us by {name}"),
        None => format!("{channel} conversation with {name}"),
    };
    if let Some(email) = contact
        .email
        .as_deref()
        .filter(|e| Some(*e) != contact.display_name.as_deref())
    {
        topic.push_str(&format!(" <{}>", without_invisible(email)));
    }
    if let Some(phone) = &contact.phone {
        topic.push_str(&format!(", {}", without_invisible(phone)));
    }
    let bridge_state = bridge_info(bridge, conversation, &room_name);
    let state_key = format!(
        "net.switchboard://{channel}/{}/{}",
        conversation.account, conversation.chat
    );
    // Routing decides who sees the new conversation (owner, team, or every operator).
    let plan =
        crate::routing::plan_new(bridge, conversation, &contact, first_text, addressed_to).await?;
    let mut invite: Vec<String> = ghost.iter().cloned().collect();
    invite.extend(plan.invite.iter().cloned());
    // A deterministic alias makes creation idempotent: if an earlier attempt created the room
    // but crashed before storing its id, the retry finds it instead of making a second portal.
    let alias_local = format!("{}{channel}_{}", bridge.namespace.prefix, conversation.id);
    let body = json!({
        "room_alias_name": alias_local,
        "preset": "private_chat",
        "visibility": "private",
        "name": format!("{room_name} ({channel})"),
        "topic": topic,
        "invite": invite,
        "initial_state": [
            {"type": "m.bridge", "state_key": state_key, "content": bridge_state},
            {"type": "uk.half-shot.bridge", "state_key": state_key, "content": bridge_state},
            // Customer conversations are private: no guests, no one who was not invited.
            {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
        ],
        "power_level_content_override": {
            // Operators may redact and change the topic; the customer's ghost has no extra power.
            "redact": 50,
            "users_default": 0,
        },
    });
    // One creation at a time: a burst of new conversations (a flood the web chat's limits let
    // through, a campaign's replies) keeps the homeserver busy with one room's dozen events at
    // a time, so messages to existing rooms interleave with them instead of queueing behind
    // several (bench/flood.rs). Held until the room is stored and the ghost joined.
    // (The semaphore is never closed.)
    let _one_at_a_time = bridge.portal_creation.acquire().await.ok();
    let (room_id, reused) = match bridge.homeserver.create_room(&body).await {
        Ok(id) => (id, false),
        Err(e) if e.errcode() == Some("M_ROOM_IN_USE") => {
            let alias = format!("#{alias_local}:{}", bridge.namespace.domain);
            let id = bridge.homeserver.resolve_alias(&alias).await?;
            tracing::info!(
                room_id = id,
                alias,
                "portal was created before a restart; reusing it"
            );
            (id, true)
        }
        Err(e) => return Err(e.into()),
    };
    if reused {
        // The earlier attempt may still be running on the homeserver (killing the bridge does
        // not stop its createRoom), or the homeserver may have died before sending its invites
        // (the alias exists before them). Inviting at once would race the running creation: the
        // invite forks the room's history at its first events, and the invited operator sees an
        // invite without the room's name. So wait for the creation's own invites first, and
        // invite only whoever is still missing after that.
        let missing = invited_after_creation(bridge, &room_id, &invite).await;
        if !missing.is_empty() {
            // The creation died half-way (or is slower than the grace): an invite must not
            // reach anyone before the room says whose conversation it is.
            tracing::info!(
                room_id,
                ?missing,
                "portal creation did not finish; completing it"
            );
            complete_state(bridge, &room_id, &body).await;
        }
        for user in missing {
            if let Err(e) = bridge.homeserver.invite(&room_id, &user).await {
                tracing::debug!(user, error = %e, "re-inviting to a reused portal");
            }
        }
    }
    // Stored once everyone is invited: a crash before this finds the room again by its alias
    // and finishes the invites (a stored room is taken as complete).
    bridge.store.set_room(conversation.id, &room_id).await?;
    let ghost = match ghost {
        Some(ghost) => match ensure_joined(bridge, &room_id, &ghost).await {
            Ok(()) => Some(ghost),
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(room_id, ghost, error = %e, "the customer's ghost cannot join; the bot posts for them");
                None
            }
        },
        None => None,
    };
    tracing::info!(room_id, conversation = conversation.id, team = ?plan.row.team, owner = ?plan.row.owner, "portal created");
    Ok(Portal {
        room_id,
        contact,
        ghost,
        name,
    })
}

/// `m.bridge` state content (MSC2346).
fn bridge_info(bridge: &Bridge, conversation: &Conversation, name: &str) -> Value {
    json!({
        "bridgebot": bridge.namespace.bot,
        "protocol": {"id": conversation.channel, "displayname": conversation.channel},
        "network": {"id": conversation.account, "displayname": conversation.account},
        "channel": {"id": conversation.chat, "displayname": name},
    })
}

/// How long a reused portal's creation (still running on the homeserver) is given to send its
/// invites before the missing ones are sent again.
const CREATION_GRACE: Duration = Duration::from_secs(20);

/// Of `expected`, those with no membership in the room once the homeserver's own creation is
/// seen to be complete (everyone invited) or [`CREATION_GRACE`] has passed.
async fn invited_after_creation(
    bridge: &Bridge,
    room_id: &str,
    expected: &[String],
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + CREATION_GRACE;
    loop {
        let missing: Vec<String> = match bridge.homeserver.members(room_id).await {
            Ok(members) => expected
                .iter()
                .filter(|u| {
                    !members
                        .iter()
                        .any(|(m, state)| m == *u && (state == "invite" || state == "join"))
                })
                .cloned()
                .collect(),
            Err(e) => {
                tracing::debug!(room_id, error = %e, "cannot read a reused portal's members");
                expected.to_vec()
            }
        };
        if missing.is_empty() || tokio::time::Instant::now() >= deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Send the state a `createRoom` body sets (name, topic, `initial_state`) that the room lacks.
async fn complete_state(bridge: &Bridge, room_id: &str, create_body: &Value) {
    let mut wanted: Vec<(String, String, Value)> = Vec::new();
    for (event_type, field) in [("m.room.name", "name"), ("m.room.topic", "topic")] {
        if let Some(value) = create_body.get(field) {
            wanted.push((event_type.into(), String::new(), json!({ field: value })));
        }
    }
    for event in create_body["initial_state"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let (Some(t), Some(k)) = (event["type"].as_str(), event["state_key"].as_str()) {
            wanted.push((t.into(), k.into(), event["content"].clone()));
        }
    }
    for (event_type, state_key, content) in wanted {
        match bridge
            .homeserver
            .state(room_id, &event_type, &state_key)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => {
                if let Err(e) = bridge
                    .homeserver
                    .send_state(room_id, &event_type, &state_key, &content)
                    .await
                {
                    tracing::warn!(room_id, event_type, error = %e, "completing a portal's state");
                }
            }
            Err(e) => tracing::debug!(room_id, event_type, error = %e, "reading a portal's state"),
        }
    }
}

/// Who speaks for `contact_id` in a group conversation's room ([`switchboard_channel::Group`]):
/// their own ghost, made (with their name and avatar) and joined to the room. The portal's room
/// stays the group's; only the speaker changes. A ghost the homeserver will not let in leaves
/// the bot to post for them, naming them, as for a one-customer conversation.
pub async fn group_speaker(
    bridge: &Bridge,
    portal: &Portal,
    channel: &str,
    contact_id: &str,
) -> Result<Portal, PortalError> {
    if portal.contact.contact_id == contact_id {
        return Ok(portal.clone());
    }
    let contact = bridge
        .store
        .contact(channel, contact_id)
        .await?
        .ok_or_else(|| PortalError::NoContact(contact_id.to_string()))?;
    let mut ghost = ensure_ghost(bridge, &contact)
        .await?
        .then(|| contact.ghost_user_id.clone());
    if let Some(g) = &ghost {
        // Joined before it acts: a receipt or a reaction of someone new to the room must not
        // be refused. Joining a member again changes nothing on the homeserver.
        match ensure_joined(bridge, &portal.room_id, g).await {
            Ok(()) => {}
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(room_id = portal.room_id, ghost = g, error = %e, "a group member's ghost cannot join; the bot posts for them");
                ghost = None;
            }
        }
    }
    Ok(Portal {
        room_id: portal.room_id.clone(),
        name: customer_name(&contact),
        contact,
        ghost,
    })
}

/// A group member named by an event but not writing it (an email's Cc) joins the room as their
/// own ghost, so operators see whom an answer reaches. Someone an operator removed stays out.
pub async fn join_member(
    bridge: &Bridge,
    portal: &Portal,
    conversation_id: i64,
    channel: &str,
    contact_id: &str,
) -> Result<(), PortalError> {
    if bridge
        .store
        .participant_removed(conversation_id, contact_id)
        .await?
    {
        return Ok(());
    }
    group_speaker(bridge, portal, channel, contact_id).await?;
    Ok(())
}

/// Make sure the ghost is in the room (it may have left, or its join may have failed before).
pub async fn ensure_joined(bridge: &Bridge, room_id: &str, ghost: &str) -> Result<(), MatrixError> {
    match bridge.homeserver.join(room_id, ghost).await {
        Ok(()) => Ok(()),
        Err(MatrixError::Api { status: 403, .. }) => {
            bridge.homeserver.invite(room_id, ghost).await?;
            bridge.homeserver.join(room_id, ghost).await
        }
        Err(e) => Err(e),
    }
}
