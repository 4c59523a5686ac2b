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
}

fn row(r: &sqlx::any::AnyRow) -> Result<RoutingRow, StoreError> {
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

    /// Write the whole routing row (insert or replace), and in the same transaction the
    /// conversation events the change means ([`super::events::routing_changes`]), stamped with
    /// `stamp` (the bridge's clock and the operator who made the change).
    pub async fn put_routing(
        &self,
        r: &RoutingRow,
        stamp: &super::events::Stamp<'_>,
    ) -> Result<(), StoreError> {
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
        let old = old.as_ref().map(row).transpose()?;
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
        Ok(())
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
