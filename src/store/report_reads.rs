//! What a report reads from the conversation events, shaped so a month of a busy bridge stays
//! quick: messages (most of the events) are counted by the database, grouped by what a report's
//! rows can be (team, operator, channel); the channel mix's distinct customers are counted there
//! too; only the events a report needs one by one (created, reopened, first responses,
//! resolutions, ratings) come back as rows, with their conversation's channel joined in.
//! [`crate::reports::from_store`] puts them together; the definitions are `docs/reports.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::Row;

use super::events::{ConversationEvent, EventKind};
use super::{Store, StoreError};

/// The events a report reads one by one. Messages are counted by [`Store::report_messages`];
/// ownership moves (assigned, transferred, …) count in no figure.
const READ: &str =
    "('created', 'reopened', 'first_response', 'resolved', 'rated', 'rating_requested')";

/// Messages in a period, counted per kind, team, operator and channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageCount {
    pub kind: EventKind,
    pub team: Option<String>,
    /// For an answer, the operator who sent it (else the owner); for a customer's message, the
    /// owner at the time.
    pub who: Option<String>,
    pub channel: String,
    pub n: u64,
}

/// `AND e.team IN ($first, …)` for a lead's teams (`None`: no condition), and the values.
fn team_filter(teams: Option<&BTreeSet<String>>, first: usize) -> (String, Vec<String>) {
    match teams {
        None => (String::new(), Vec::new()),
        Some(t) if t.is_empty() => (" AND 1 = 0".into(), Vec::new()),
        Some(t) => {
            let marks: Vec<String> = (0..t.len()).map(|i| format!("${}", first + i)).collect();
            (
                format!(" AND e.team IN ({})", marks.join(", ")),
                t.iter().cloned().collect(),
            )
        }
    }
}

impl Store {
    /// The events a report reads one by one, of the conversations that have such an event in
    /// `[from, to)`, with every earlier one of theirs (a cycle may start before the period), in
    /// the order they happened; and each conversation's channel.
    pub async fn report_events(
        &self,
        from: i64,
        to: i64,
    ) -> Result<(Vec<ConversationEvent>, HashMap<i64, String>), StoreError> {
        let sql = format!(
            "SELECT e.id, e.conversation_id, e.at, e.kind, e.actor, e.team, e.owner, e.detail,
                    c.channel
             FROM conversation_events e LEFT JOIN conversations c ON c.id = e.conversation_id
             WHERE e.at < $2 AND e.kind IN {READ} AND e.conversation_id IN
               (SELECT conversation_id FROM conversation_events
                WHERE at >= $1 AND at < $2 AND kind IN {READ})
             ORDER BY e.conversation_id, e.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .fetch_all(self.pool())
            .await?;
        let mut events = Vec::with_capacity(rows.len());
        let mut channels = HashMap::new();
        for r in &rows {
            let kind: String = r.try_get("kind")?;
            let Some(kind) = EventKind::parse(&kind) else {
                continue;
            };
            let conversation_id: i64 = r.try_get("conversation_id")?;
            if let Some(channel) = r.try_get::<Option<String>, _>("channel")? {
                channels.entry(conversation_id).or_insert(channel);
            }
            events.push(ConversationEvent {
                id: r.try_get("id")?,
                conversation_id,
                at: r.try_get("at")?,
                kind,
                actor: r.try_get("actor")?,
                team: r.try_get("team")?,
                owner: r.try_get("owner")?,
                detail: r.try_get("detail")?,
            });
        }
        Ok((events, channels))
    }

    /// Customers' messages and operators' answers in `[from, to)`, counted. Per channel only
    /// when `by_channel` (it joins every message to its conversation: a report by operator or
    /// team does without, and its `channel` is empty).
    pub async fn report_messages(
        &self,
        from: i64,
        to: i64,
        by_channel: bool,
    ) -> Result<Vec<MessageCount>, StoreError> {
        let (channel, join) = if by_channel {
            (
                "COALESCE(c.channel, 'unknown')",
                "LEFT JOIN conversations c ON c.id = e.conversation_id",
            )
        } else {
            ("''", "")
        };
        let sql = format!(
            "SELECT e.kind AS kind, e.team AS team,
                    CASE WHEN e.kind = 'operator_answer' THEN COALESCE(e.actor, e.owner)
                         ELSE e.owner END AS who,
                    {channel} AS channel, COUNT(*) AS n
             FROM conversation_events e {join}
             WHERE e.at >= $1 AND e.at < $2 AND e.kind IN ('customer_message', 'operator_answer')
             GROUP BY 1, 2, 3, 4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let kind: String = r.try_get("kind")?;
            let Some(kind) = EventKind::parse(&kind) else {
                continue;
            };
            out.push(MessageCount {
                kind,
                team: r.try_get("team")?,
                who: r.try_get("who")?,
                channel: r.try_get("channel")?,
                n: r.try_get::<i64, _>("n")?.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// The channel mix of `[from, to)`: how many customers wrote (a customer is the person
    /// behind linked contacts; a contact not linked to one is a customer of its own), and per
    /// channel how many of them wrote there. `teams`: only messages to these teams count.
    pub async fn report_channel_mix(
        &self,
        from: i64,
        to: i64,
        teams: Option<&BTreeSet<String>>,
    ) -> Result<(u64, BTreeMap<String, u64>), StoreError> {
        let (filter, values) = team_filter(teams, 3);
        // The conversations a customer wrote in first (many messages, few conversations), then
        // who is behind each: one row per channel and a total (channel NULL).
        let sql = format!(
            "WITH w AS (SELECT DISTINCT e.conversation_id FROM conversation_events e
                        WHERE e.at >= $1 AND e.at < $2 AND e.kind = 'customer_message'{filter}),
                  x AS (SELECT c.channel AS channel,
                               COALESCE('customer:' || CAST(k.customer_id AS TEXT),
                                        'contact:' || c.channel || ':' || c.contact_id) AS who
                        FROM w JOIN conversations c ON c.id = w.conversation_id
                        LEFT JOIN contacts k ON k.channel = c.channel AND k.contact_id = c.contact_id)
             SELECT NULL AS channel, COUNT(DISTINCT who) AS n FROM x
             UNION ALL
             SELECT channel, COUNT(DISTINCT who) AS n FROM x GROUP BY channel"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(from).bind(to);
        for v in &values {
            query = query.bind(v.clone());
        }
        let mut customers = 0i64;
        let mut channels = BTreeMap::new();
        for r in query.fetch_all(self.pool()).await? {
            let n: i64 = r.try_get("n")?;
            match r.try_get::<Option<String>, _>("channel")? {
                None => customers = n,
                Some(channel) => {
                    channels.insert(channel, n.max(0) as u64);
                }
            }
        }
        Ok((customers.max(0) as u64, channels))
    }
}
