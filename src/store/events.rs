//! Conversation events (`conversation_events`): the append-only record of what happened to each
//! conversation, written inside the transaction of the change it records: a routing change
//! ([`Store::put_routing`] diffs the stored row against the new one, see [`routing_changes`]), a
//! customer message noted ([`Store::note_customer_message`]), an operator's answer queued
//! ([`Store::outbox_enqueue`]). Reports and ratings read it back; every event written here is
//! also counted in the report figures (`super::figures`) in the same transaction.

use sqlx::{Any, Executor, Row};

use super::routing::{ConversationState, RoutingRow};
use super::{Store, StoreError};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Created,
    CustomerMessage,
    OperatorAnswer,
    /// The first operator answer since the conversation was created or last reopened.
    FirstResponse,
    Assigned,
    Unassigned,
    Transferred,
    Escalated,
    Snoozed,
    Resolved,
    Reopened,
    /// A rating request went out to the customer (detail: the request's id).
    RatingRequested,
    /// The customer rated the conversation (detail: the score 1–5; owner: the operator rated).
    Rated,
}

impl EventKind {
    pub const ALL: [EventKind; 13] = [
        EventKind::Created,
        EventKind::CustomerMessage,
        EventKind::OperatorAnswer,
        EventKind::FirstResponse,
        EventKind::Assigned,
        EventKind::Unassigned,
        EventKind::Transferred,
        EventKind::Escalated,
        EventKind::Snoozed,
        EventKind::Resolved,
        EventKind::Reopened,
        EventKind::RatingRequested,
        EventKind::Rated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::CustomerMessage => "customer_message",
            EventKind::OperatorAnswer => "operator_answer",
            EventKind::FirstResponse => "first_response",
            EventKind::Assigned => "assigned",
            EventKind::Unassigned => "unassigned",
            EventKind::Transferred => "transferred",
            EventKind::Escalated => "escalated",
            EventKind::Snoozed => "snoozed",
            EventKind::Resolved => "resolved",
            EventKind::Reopened => "reopened",
            EventKind::RatingRequested => "rating_requested",
            EventKind::Rated => "rated",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One stored event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationEvent {
    pub id: i64,
    pub conversation_id: i64,
    pub at: i64,
    pub kind: EventKind,
    pub actor: Option<String>,
    pub team: Option<String>,
    pub owner: Option<String>,
    pub detail: Option<String>,
}

/// An event about to be written: when, who, and (for replayable ones) its dedup key.
#[derive(Clone, Debug, Default)]
pub struct Stamp<'a> {
    /// The bridge's clock (ms).
    pub at: i64,
    /// The operator who made the change; `None` for the customer and the bridge's timers.
    pub actor: Option<&'a str>,
}

/// The events a routing change means, with their details, in the order they happened: `old` is
/// the stored row (`None`: the conversation is new), `new` what replaces it.
///
/// - no row before: `created`, then `assigned` when it starts with an owner;
/// - another team: `transferred` (detail: the previous team, or empty);
/// - another owner: `assigned` (detail: the previous owner, or empty), or `unassigned`
///   (detail: the previous owner) when nobody owns it now;
/// - escalated becoming set: `escalated`;
/// - into snoozed: `snoozed` (detail: until when, ms); into resolved: `resolved`;
/// - out of resolved or snoozed into open or pending: `reopened`.
pub fn routing_changes(
    old: Option<&RoutingRow>,
    new: &RoutingRow,
) -> Vec<(EventKind, Option<String>)> {
    let mut out = Vec::new();
    let Some(old) = old else {
        out.push((EventKind::Created, None));
        if new.owner.is_some() {
            out.push((EventKind::Assigned, None));
        }
        if new.state == ConversationState::Resolved {
            out.push((EventKind::Resolved, None));
        }
        return out;
    };
    let closed = |s: ConversationState| {
        matches!(s, ConversationState::Resolved | ConversationState::Snoozed)
    };
    if closed(old.state) && !closed(new.state) {
        out.push((EventKind::Reopened, Some(old.state.as_str().to_string())));
    }
    if old.team != new.team {
        out.push((
            EventKind::Transferred,
            Some(old.team.clone().unwrap_or_default()),
        ));
    }
    if old.owner != new.owner {
        match &new.owner {
            Some(_) => out.push((
                EventKind::Assigned,
                Some(old.owner.clone().unwrap_or_default()),
            )),
            None => out.push((EventKind::Unassigned, old.owner.clone())),
        }
    }
    if !old.escalated && new.escalated {
        out.push((EventKind::Escalated, None));
    }
    if old.state != new.state {
        match new.state {
            ConversationState::Snoozed => {
                out.push((EventKind::Snoozed, new.snooze_until.map(|t| t.to_string())))
            }
            ConversationState::Resolved => out.push((EventKind::Resolved, None)),
            _ => {}
        }
    }
    out
}

/// Append one event (inside the caller's transaction). With a `dedup` key seen before, nothing is
/// written (`false`).
#[allow(clippy::too_many_arguments)]
pub async fn insert(
    conn: &mut sqlx::AnyConnection,
    conversation_id: i64,
    stamp: &Stamp<'_>,
    kind: EventKind,
    team: Option<&str>,
    owner: Option<&str>,
    detail: Option<&str>,
    dedup: Option<&str>,
) -> Result<bool, StoreError> {
    let id = super::new_id(&mut *conn).await?;
    let done = sqlx::query(
        "INSERT INTO conversation_events (id, conversation_id, at, kind, actor, team, owner, detail, dedup, figured)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(conversation_id)
    .bind(stamp.at)
    .bind(kind.as_str())
    .bind(stamp.actor)
    .bind(team)
    .bind(owner)
    .bind(detail)
    .bind(dedup)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    // The report figures count it in the same transaction (src/store/figures.rs).
    super::figures::record(
        &mut *conn,
        id,
        conversation_id,
        stamp.at,
        kind,
        stamp.actor,
        team,
        owner,
        detail,
        None,
    )
    .await?;
    Ok(true)
}

/// Append one event whose team and owner are the conversation's as stored now (inside the
/// caller's transaction); `false` when `dedup` was seen before.
pub async fn insert_with_routing(
    conn: &mut sqlx::AnyConnection,
    conversation_id: i64,
    stamp: &Stamp<'_>,
    kind: EventKind,
    dedup: Option<&str>,
) -> Result<bool, StoreError> {
    let id = super::new_id(&mut *conn).await?;
    let written = sqlx::query(
        "INSERT INTO conversation_events (id, conversation_id, at, kind, actor, team, owner, detail, dedup, figured)
         VALUES ($1, $2, $3, $4, $5,
                 (SELECT team FROM routing WHERE conversation_id = $2),
                 (SELECT owner FROM routing WHERE conversation_id = $2), NULL, $6, 1)
         ON CONFLICT DO NOTHING
         RETURNING team, owner, (SELECT channel FROM conversations WHERE id = $2) AS channel",
    )
    .bind(id)
    .bind(conversation_id)
    .bind(stamp.at)
    .bind(kind.as_str())
    .bind(stamp.actor)
    .bind(dedup)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(written) = written else {
        return Ok(false);
    };
    let team: Option<String> = written.try_get("team")?;
    let owner: Option<String> = written.try_get("owner")?;
    let channel: Option<String> = written.try_get("channel")?;
    // The report figures count it in the same transaction (src/store/figures.rs).
    super::figures::record(
        &mut *conn,
        id,
        conversation_id,
        stamp.at,
        kind,
        stamp.actor,
        team.as_deref(),
        owner.as_deref(),
        None,
        Some(channel),
    )
    .await?;
    Ok(true)
}

/// Whether an operator answer now is the conversation's first response: no answer since it was
/// created or last reopened (a conversation from before events were kept has none).
pub async fn is_first_response<'c, E: Executor<'c, Database = Any>>(
    executor: E,
    conversation_id: i64,
) -> Result<bool, StoreError> {
    let last = sqlx::query(
        "SELECT kind FROM conversation_events WHERE conversation_id = $1
           AND kind IN ('created', 'reopened', 'operator_answer') ORDER BY id DESC LIMIT 1",
    )
    .bind(conversation_id)
    .fetch_optional(executor)
    .await?;
    let last: Option<String> = last.map(|r| r.try_get("kind")).transpose()?;
    Ok(matches!(last.as_deref(), Some("created" | "reopened")))
}

/// `SELECT … FROM conversation_events <rest>` with the columns [`read`] reads.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT id, conversation_id, at, kind, actor, team, owner, detail FROM conversation_events ",
            $rest
        )
    };
}

fn read(r: &sqlx::any::AnyRow) -> Result<ConversationEvent, StoreError> {
    let kind: String = r.try_get("kind")?;
    Ok(ConversationEvent {
        id: r.try_get("id")?,
        conversation_id: r.try_get("conversation_id")?,
        at: r.try_get("at")?,
        kind: EventKind::parse(&kind)
            .ok_or_else(|| StoreError::Decode(format!("unknown event kind {kind:?}").into()))?,
        actor: r.try_get("actor")?,
        team: r.try_get("team")?,
        owner: r.try_get("owner")?,
        detail: r.try_get("detail")?,
    })
}

impl Store {
    /// Every event of one conversation, in the order they happened.
    pub async fn conversation_events(
        &self,
        conversation_id: i64,
    ) -> Result<Vec<ConversationEvent>, StoreError> {
        let rows = sqlx::query(select_events!("WHERE conversation_id = $1 ORDER BY id"))
            .bind(conversation_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(read).collect()
    }

    /// Every event before `to` of the conversations that have an event in `[from, to)`, in the
    /// order they happened (what a report over that period needs: a first response in the
    /// period may answer a conversation created before it).
    pub async fn events_for_period(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<ConversationEvent>, StoreError> {
        let rows = sqlx::query(select_events!(
            "WHERE at < $2 AND conversation_id IN
               (SELECT conversation_id FROM conversation_events WHERE at >= $1 AND at < $2)
             ORDER BY conversation_id, id"
        ))
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(read).collect()
    }

    /// For the conversations with an event in `[from, to)`: their channel and their customer
    /// (the customer id, or the contact when it has none yet).
    pub async fn conversation_channels(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, c.channel, c.contact_id, k.customer_id FROM conversations c
             LEFT JOIN contacts k ON k.channel = c.channel AND k.contact_id = c.contact_id
             WHERE c.id IN (SELECT conversation_id FROM conversation_events WHERE at >= $1 AND at < $2)",
        )
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let channel: String = r.try_get("channel")?;
                let customer: Option<i64> = r.try_get("customer_id")?;
                let who = match customer {
                    Some(id) => format!("customer:{id}"),
                    None => format!(
                        "contact:{channel}:{}",
                        r.try_get::<String, _>("contact_id")?
                    ),
                };
                Ok((r.try_get("id")?, channel, who))
            })
            .collect()
    }

    /// Every event from `from` (inclusive) to `to` (exclusive), in the order they happened.
    pub async fn events_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<ConversationEvent>, StoreError> {
        let rows = sqlx::query(select_events!("WHERE at >= $1 AND at < $2 ORDER BY id"))
            .bind(from)
            .bind(to)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(read).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: ConversationState, team: Option<&str>, owner: Option<&str>) -> RoutingRow {
        RoutingRow {
            conversation_id: 1,
            team: team.map(str::to_string),
            owner: owner.map(str::to_string),
            state,
            ..Default::default()
        }
    }

    fn kinds(v: Vec<(EventKind, Option<String>)>) -> Vec<&'static str> {
        v.into_iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn each_change_is_one_event() {
        use ConversationState::*;
        let open = row(Open, Some("support"), None);
        assert_eq!(kinds(routing_changes(None, &open)), ["created"]);
        let owned = row(Open, Some("support"), Some("@a:x"));
        assert_eq!(
            kinds(routing_changes(None, &owned)),
            ["created", "assigned"]
        );
        assert_eq!(
            kinds(routing_changes(Some(&open), &open)),
            Vec::<&str>::new()
        );
        let moved = row(Open, Some("billing"), Some("@b:x"));
        let changes = routing_changes(Some(&owned), &moved);
        assert_eq!(
            changes,
            vec![
                (EventKind::Transferred, Some("support".into())),
                (EventKind::Assigned, Some("@a:x".into()))
            ]
        );
        let mut escalated = owned.clone();
        escalated.escalated = true;
        assert_eq!(
            kinds(routing_changes(Some(&owned), &escalated)),
            ["escalated"]
        );
        let resolved = row(Resolved, Some("support"), Some("@a:x"));
        assert_eq!(
            kinds(routing_changes(Some(&owned), &resolved)),
            ["resolved"]
        );
        assert_eq!(
            kinds(routing_changes(Some(&resolved), &owned)),
            ["reopened"]
        );
        let mut snoozed = row(Snoozed, Some("support"), Some("@a:x"));
        snoozed.snooze_until = Some(42);
        assert_eq!(
            routing_changes(Some(&owned), &snoozed),
            vec![(EventKind::Snoozed, Some("42".into()))]
        );
        assert_eq!(kinds(routing_changes(Some(&snoozed), &owned)), ["reopened"]);
        let pending = row(Pending, Some("support"), Some("@a:x"));
        assert_eq!(
            kinds(routing_changes(Some(&owned), &pending)),
            Vec::<&str>::new()
        );
        assert_eq!(
            routing_changes(Some(&owned), &open),
            vec![(EventKind::Unassigned, Some("@a:x".into()))]
        );
    }
}
