//! Routing state: owner, team, state and stored timers per conversation; participants; lobby
//! rooms; admins' changes to teams; round-robin bookkeeping; each customer's last owner.

use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// A conversation's state (stored as its lowercase name).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConversationState {
    /// The team works on it.
    #[default]
    Open,
    /// Answered; waiting for the customer.
    Pending,
    /// Closed; a new customer message opens it again.
    Resolved,
    /// Hidden until `snooze_until`, then open again.
    Snoozed,
}

impl ConversationState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationState::Open => "open",
            ConversationState::Pending => "pending",
            ConversationState::Resolved => "resolved",
            ConversationState::Snoozed => "snoozed",
        }
    }

    /// The state a stored name stands for.
    pub fn parse(name: &str) -> Option<ConversationState> {
        [
            ConversationState::Open,
            ConversationState::Pending,
            ConversationState::Resolved,
            ConversationState::Snoozed,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for ConversationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a conversation stands.
///
/// A row read from the store remembers what it was read as ([`RoutingRow::loaded`]), and
/// [`Store::put_routing`] writes only the fields changed since: two changes made at once to one
/// conversation (an operator's transfer while the lobby entry is being posted, say) both stay,
/// instead of the later write putting back what the earlier one changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingRow {
    pub conversation_id: i64,
    pub team: Option<String>,
    pub owner: Option<String>,
    pub state: ConversationState,
    pub snooze_until: Option<i64>,
    /// When the oldest unanswered customer message arrived (None: worked).
    pub unworked_since: Option<i64>,
    pub remind_at: Option<i64>,
    pub escalate_at: Option<i64>,
    pub reminded: bool,
    pub escalated: bool,
    pub auto_reply_day: Option<String>,
    pub lobby_room: Option<String>,
    pub lobby_event: Option<String>,
    /// The row as the store gave it (None for a row built anew): what `put_routing` compares
    /// against to know which fields this change is about.
    pub loaded: Option<Box<RoutingRow>>,
}

impl RoutingRow {
    /// This change laid over `current` (the row as stored now): the fields changed since the
    /// row was read take this row's values, the others keep the stored ones. A row built anew
    /// (never read) is written whole.
    fn merged_onto(&self, current: &RoutingRow) -> RoutingRow {
        let Some(base) = self.loaded.as_deref() else {
            return RoutingRow {
                loaded: None,
                ..self.clone()
            };
        };
        macro_rules! pick {
            ($($field:ident),*) => {
                RoutingRow {
                    conversation_id: self.conversation_id,
                    $($field: if self.$field != base.$field {
                        self.$field.clone()
                    } else {
                        current.$field.clone()
                    },)*
                    loaded: None,
                }
            };
        }
        pick!(
            team,
            owner,
            state,
            snooze_until,
            unworked_since,
            remind_at,
            escalate_at,
            reminded,
            escalated,
            auto_reply_day,
            lobby_room,
            lobby_event
        )
    }
}

fn row(r: &sqlx::any::AnyRow) -> Result<RoutingRow, StoreError> {
    let mut read = stored_row(r)?;
    read.loaded = Some(Box::new(read.clone()));
    Ok(read)
}

fn stored_row(r: &sqlx::any::AnyRow) -> Result<RoutingRow, StoreError> {
    Ok(RoutingRow {
        conversation_id: r.try_get("conversation_id")?,
        team: r.try_get("team")?,
        owner: r.try_get("owner")?,
        state: {
            let name: String = r.try_get("state")?;
            ConversationState::parse(&name).ok_or_else(|| {
                StoreError::Decode(format!("unknown conversation state {name:?}").into())
            })?
        },
        snooze_until: r.try_get("snooze_until")?,
        unworked_since: r.try_get("unworked_since")?,
        remind_at: r.try_get("remind_at")?,
        escalate_at: r.try_get("escalate_at")?,
        reminded: r.try_get::<i64, _>("reminded")? != 0,
        escalated: r.try_get::<i64, _>("escalated")? != 0,
        auto_reply_day: r.try_get("auto_reply_day")?,
        lobby_room: r.try_get("lobby_room")?,
        lobby_event: r.try_get("lobby_event")?,
        loaded: None,
    })
}

macro_rules! select_routing {
    ($cond:literal) => {
        concat!(
            "SELECT conversation_id, team, owner, state, snooze_until, unworked_since, remind_at, escalate_at,
                    reminded, escalated, auto_reply_day, lobby_room, lobby_event FROM routing WHERE ",
            $cond
        )
    };
}

impl Store {
    pub async fn routing(&self, conversation_id: i64) -> Result<Option<RoutingRow>, StoreError> {
        let r = sqlx::query(select_routing!("conversation_id = $1"))
            .bind(conversation_id)
            .fetch_optional(self.pool())
            .await?;
        r.as_ref().map(row).transpose()
    }

    /// Write a routing row: a new one whole; a row read from the store only in the fields
    /// changed since it was read, over what is stored now ([`RoutingRow`]). In the same
    /// transaction the conversation events the change means
    /// ([`super::events::routing_changes`]), stamped with `stamp` (the bridge's clock and the
    /// operator who made the change). Returns the row as stored now.
    pub async fn put_routing(
        &self,
        r: &RoutingRow,
        stamp: &super::events::Stamp<'_>,
    ) -> Result<RoutingRow, StoreError> {
        let mut tx = self.pool().begin().await?;
        // Write first: a SQLite transaction that reads before its first write cannot take the
        // write lock once another connection has committed meanwhile (SQLITE_BUSY_SNAPSHOT);
        // on PostgreSQL this locks the row, so two changes to one conversation are diffed one
        // after the other.
        sqlx::query("UPDATE routing SET updated_at = updated_at WHERE conversation_id = $1")
            .bind(r.conversation_id)
            .execute(&mut *tx)
            .await?;
        let old = sqlx::query(select_routing!("conversation_id = $1"))
            .bind(r.conversation_id)
            .fetch_optional(&mut *tx)
            .await?;
        let old = old.as_ref().map(stored_row).transpose()?;
        // Only what this change is about: a field another writer changed since `r` was read
        // keeps its stored value unless this change changed it too.
        let r = &match &old {
            Some(current) => r.merged_onto(current),
            None => RoutingRow {
                loaded: None,
                ..r.clone()
            },
        };
        sqlx::query(
            "INSERT INTO routing (conversation_id, team, owner, state, snooze_until, unworked_since, remind_at,
                                  escalate_at, reminded, escalated, auto_reply_day, lobby_room, lobby_event, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (conversation_id) DO UPDATE SET team = excluded.team, owner = excluded.owner,
               state = excluded.state, snooze_until = excluded.snooze_until, unworked_since = excluded.unworked_since,
               remind_at = excluded.remind_at, escalate_at = excluded.escalate_at, reminded = excluded.reminded,
               escalated = excluded.escalated, auto_reply_day = excluded.auto_reply_day,
               lobby_room = excluded.lobby_room, lobby_event = excluded.lobby_event, updated_at = excluded.updated_at",
        )
        .bind(r.conversation_id)
        .bind(r.team.as_deref())
        .bind(r.owner.as_deref())
        .bind(r.state.as_str())
        .bind(r.snooze_until)
        .bind(r.unworked_since)
        .bind(r.remind_at)
        .bind(r.escalate_at)
        .bind(r.reminded as i64)
        .bind(r.escalated as i64)
        .bind(r.auto_reply_day.as_deref())
        .bind(r.lobby_room.as_deref())
        .bind(r.lobby_event.as_deref())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        for (kind, detail) in super::events::routing_changes(old.as_ref(), r) {
            super::events::insert(
                &mut *tx,
                r.conversation_id,
                stamp,
                kind,
                r.team.as_deref(),
                r.owner.as_deref(),
                detail.as_deref(),
                None,
            )
            .await?;
            if kind == super::events::EventKind::Resolved {
                super::csat::insert_for_resolution(
                    &mut *tx,
                    r.conversation_id,
                    stamp.at,
                    r.team.as_deref(),
                    r.owner.as_deref(),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(RoutingRow {
            loaded: Some(Box::new(r.clone())),
            ..r.clone()
        })
    }

    /// Conversations with a timer due at `now` (reminder, escalation or end of snooze).
    pub async fn routing_due(&self, now: i64) -> Result<Vec<RoutingRow>, StoreError> {
        let rows = sqlx::query(select_routing!(
            "(unworked_since IS NOT NULL AND ((remind_at <= $1 AND reminded = 0) OR (escalate_at <= $1 AND escalated = 0)))
             OR (state = 'snoozed' AND snooze_until <= $1)"
        ))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row).collect()
    }

    /// Conversations waiting for an answer, oldest first (optionally of one team).
    pub async fn routing_unworked(&self) -> Result<Vec<RoutingRow>, StoreError> {
        let rows = sqlx::query(select_routing!(
            "unworked_since IS NOT NULL ORDER BY unworked_since"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row).collect()
    }

    /// Open conversations an operator owns.
    pub async fn routing_open_count(&self, owner: &str) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM routing WHERE owner = $1 AND state IN ('open', 'pending', 'snoozed')")
            .bind(owner)
            .fetch_one(self.pool())
            .await?;
        r.try_get("n")
    }

    pub async fn add_participant(
        &self,
        conversation_id: i64,
        user_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO participants (conversation_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(conversation_id)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn participants(&self, conversation_id: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT user_id FROM participants WHERE conversation_id = $1")
            .bind(conversation_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| r.try_get("user_id")).collect()
    }

    pub async fn team_lobby(&self, team: &str) -> Result<Option<String>, StoreError> {
        let r = sqlx::query("SELECT room_id FROM team_lobbies WHERE team = $1")
            .bind(team)
            .fetch_optional(self.pool())
            .await?;
        r.map(|r| r.try_get("room_id")).transpose()
    }

    pub async fn set_team_lobby(&self, team: &str, room_id: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO team_lobbies (team, room_id) VALUES ($1, $2) ON CONFLICT (team) DO UPDATE SET room_id = excluded.room_id")
            .bind(team)
            .bind(room_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Admins' membership changes: (user, role) with role member | lead | removed.
    pub async fn team_member_overrides(
        &self,
        team: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT user_id, role FROM team_members WHERE team = $1")
            .bind(team)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("user_id")?, r.try_get("role")?)))
            .collect()
    }

    pub async fn set_team_member(
        &self,
        team: &str,
        user_id: &str,
        role: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO team_members (team, user_id, role) VALUES ($1, $2, $3)
             ON CONFLICT (team, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(team)
        .bind(user_id)
        .bind(role)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn team_setting(&self, team: &str, key: &str) -> Result<Option<String>, StoreError> {
        let r = sqlx::query("SELECT value FROM team_settings WHERE team = $1 AND key = $2")
            .bind(team)
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        r.map(|r| r.try_get("value")).transpose()
    }

    pub async fn set_team_setting(
        &self,
        team: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO team_settings (team, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (team, key) DO UPDATE SET value = excluded.value",
        )
        .bind(team)
        .bind(key)
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn last_assigned(&self, user_id: &str) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT last_assigned FROM assignments WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(|r| r.try_get("last_assigned"))
            .transpose()?
            .unwrap_or(0))
    }

    pub async fn mark_assigned(&self, user_id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO assignments (user_id, last_assigned) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET last_assigned = excluded.last_assigned",
        )
        .bind(user_id)
        .bind(at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The operator who last handled this contact's customer (on any of their channels).
    pub async fn last_owner(
        &self,
        channel: &str,
        contact_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let r = sqlx::query(
            "SELECT COALESCE(cu.last_owner, c.last_owner) AS last_owner
             FROM contacts c LEFT JOIN customers cu ON cu.id = c.customer_id
             WHERE c.channel = $1 AND c.contact_id = $2",
        )
        .bind(channel)
        .bind(contact_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(r.map(|r| r.try_get::<Option<String>, _>("last_owner"))
            .transpose()?
            .flatten())
    }

    /// Remember who handled this contact's customer last (sticky routing, across channels).
    pub async fn set_last_owner(
        &self,
        channel: &str,
        contact_id: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE contacts SET last_owner = $1 WHERE channel = $2 AND contact_id = $3")
            .bind(owner)
            .bind(channel)
            .bind(contact_id)
            .execute(self.pool())
            .await?;
        sqlx::query(
            "UPDATE customers SET last_owner = $1
             WHERE id = (SELECT customer_id FROM contacts WHERE channel = $2 AND contact_id = $3)",
        )
        .bind(owner)
        .bind(channel)
        .bind(contact_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events::Stamp;

    async fn kinds(store: &Store, conversation_id: i64) -> Vec<(String, Option<String>)> {
        sqlx::query_as(
            "SELECT kind, team FROM conversation_events WHERE conversation_id = $1 ORDER BY id",
        )
        .bind(conversation_id)
        .fetch_all(store.pool())
        .await
        .expect("events")
    }

    /// An operator transfers a conversation while the bridge, from a read made before, stores
    /// the lobby entry it has just posted: the transfer stays, the lobby entry too, and the
    /// record says the conversation was transferred once (the later write used to put the old
    /// team back, with a second "transferred" event by nobody).
    #[tokio::test]
    async fn two_changes_from_one_read_both_stay() {
        let (_dir, _url, store) = crate::store::temp_store(2).await;
        let bridge = Stamp {
            at: 1_000,
            actor: None,
        };
        let new = RoutingRow {
            conversation_id: 7,
            team: Some("team-a".into()),
            unworked_since: Some(1_000),
            ..Default::default()
        };
        store.put_routing(&new, &bridge).await.expect("created");
        let mut lobby = store.routing(7).await.expect("read").expect("row");
        let mut transfer = store.routing(7).await.expect("read").expect("row");
        transfer.team = Some("team-b".into());
        transfer.lobby_event = None;
        let alice = Stamp {
            at: 2_000,
            actor: Some("@alice:hs"),
        };
        let stored = store
            .put_routing(&transfer, &alice)
            .await
            .expect("transfer");
        assert_eq!(stored.team.as_deref(), Some("team-b"));
        lobby.lobby_room = Some("!lobby-a:hs".into());
        lobby.lobby_event = Some("$entry".into());
        let stored = store
            .put_routing(
                &lobby,
                &Stamp {
                    at: 2_001,
                    ..bridge
                },
            )
            .await
            .expect("lobby entry");
        let now = store.routing(7).await.expect("read").expect("row");
        assert_eq!(stored, now, "put_routing returns the row as stored");
        assert_eq!(
            now.team.as_deref(),
            Some("team-b"),
            "the transfer was undone"
        );
        assert_eq!(now.lobby_event.as_deref(), Some("$entry"));
        assert_eq!(now.unworked_since, Some(1_000));
        assert_eq!(
            kinds(&store, 7).await,
            [
                ("created".to_string(), Some("team-a".to_string())),
                ("transferred".to_string(), Some("team-b".to_string())),
            ]
        );
        // A row built anew (never read) is written whole, as before.
        let again = RoutingRow {
            conversation_id: 7,
            team: Some("team-c".into()),
            ..Default::default()
        };
        let stored = store.put_routing(&again, &bridge).await.expect("whole");
        assert_eq!(stored.team.as_deref(), Some("team-c"));
        assert_eq!(stored.lobby_event, None);
    }
}
