//! Report figures: what a report reads instead of replaying every conversation event
//! (migration 0120). Each event a report counts is recorded here by [`record`], called from
//! [`super::events::insert`] inside the transaction that writes the event, so the figures are
//! never behind the events; events from before the figures existed are put in by the resumable
//! [`Store::report_figures_backfill`] (run at start-up).
//!
//! - `report_counts`: counted events (created, reopened, resolved, rating questions, ratings by
//!   score, messages in and out) per UTC day and per hour, per kind, team, operator and channel.
//!   A report sums the whole days and hours inside its period and counts the events of the
//!   partial hours at its edges from `conversation_events` ([`cover`]), so a 30-day report reads
//!   a few thousand rows, not a million messages, and its figures are exactly the events'.
//! - `report_writers`: the conversations a customer wrote in, per day and hour (the channel
//!   mix: who is behind a conversation is read at report time, as customers get merged).
//! - `report_durations`: one row per first response and resolution with its cycle's start (the
//!   last `created` or `reopened` before it) and its working time. Working time depends on the
//!   team's calendar, which can change: each row keeps the fingerprint of the calendar it was
//!   counted on, and [`Store::report_fill_working`] recomputes the rows of a period whose team's
//!   calendar is not the one the report uses. Medians and p90 are taken by the database
//!   ([`Store::report_quantiles`]): a report holds no list of durations.
//!
//! Every read returns rows bounded by the number of teams × operators × channels, never by the
//! number of events. The definitions are `docs/reports.md`; `tests/report_figures.rs` checks the
//! figures against the replay of the events on both stores.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use super::events::EventKind;
use super::{Store, StoreError};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// The buckets, largest first: a period is covered by whole days, then whole hours.
const SPANS: [(&str, i64); 2] = [("d", DAY_MS), ("h", HOUR_MS)];

/// The operator an event's figures are credited to (`docs/reports.md`, "Rows"): whoever
/// answered, first-responded, resolved or was rated, else the owner at the event.
pub fn credited<'a>(
    kind: EventKind,
    actor: Option<&'a str>,
    owner: Option<&'a str>,
) -> Option<&'a str> {
    match kind {
        EventKind::OperatorAnswer
        | EventKind::FirstResponse
        | EventKind::Resolved
        | EventKind::Rated => actor.or(owner),
        _ => owner,
    }
}

/// `credited` in SQL, over `conversation_events e` ('' for nobody).
const WHO_SQL: &str =
    "CASE WHEN e.kind IN ('operator_answer', 'first_response', 'resolved', 'rated')
                        THEN COALESCE(e.actor, e.owner, '') ELSE COALESCE(e.owner, '') END";

/// The kinds counted in `report_counts` as themselves (`rated` is counted per score). A first
/// response counts in no figure but gives its operator a row, as it did when reports replayed
/// the events.
const COUNTED_SQL: &str = "('created', 'reopened', 'resolved', 'rating_requested', 'customer_message', 'operator_answer', 'first_response')";

/// The name an event is counted under: its kind, or `rated:N` for a rating of N (`rated:?` for
/// a detail that is no score 1–5); `None` for events no figure counts.
pub fn counted_as(kind: EventKind, detail: Option<&str>) -> Option<String> {
    match kind {
        EventKind::Created
        | EventKind::Reopened
        | EventKind::Resolved
        | EventKind::RatingRequested
        | EventKind::CustomerMessage
        | EventKind::OperatorAnswer
        | EventKind::FirstResponse => Some(kind.as_str().to_string()),
        EventKind::Rated => Some(match detail.and_then(|d| d.parse::<usize>().ok()) {
            Some(score @ 1..=5) => format!("rated:{score}"),
            _ => "rated:?".to_string(),
        }),
        _ => None,
    }
}

/// `[from, to)` as whole buckets (span, first bucket, end bucket) and the ranges left over at
/// the edges, which are read from the events themselves.
pub fn cover(from: i64, to: i64) -> (Vec<(&'static str, i64, i64)>, Vec<(i64, i64)>) {
    fn go(
        from: i64,
        to: i64,
        spans: &[(&'static str, i64)],
        buckets: &mut Vec<(&'static str, i64, i64)>,
        raw: &mut Vec<(i64, i64)>,
    ) {
        if from >= to {
            return;
        }
        let Some(((span, len), rest)) = spans.split_first() else {
            raw.push((from, to));
            return;
        };
        let first = -((-from).div_euclid(*len));
        let end = to.div_euclid(*len);
        if first < end {
            go(from, first * len, rest, buckets, raw);
            buckets.push((span, first, end));
            go(end * len, to, rest, buckets, raw);
        } else {
            go(from, to, rest, buckets, raw);
        }
    }
    let (mut buckets, mut raw) = (Vec::new(), Vec::new());
    go(from, to, &SPANS, &mut buckets, &mut raw);
    (buckets, raw)
}

async fn add_count(
    conn: &mut sqlx::AnyConnection,
    at: i64,
    kind: &str,
    team: &str,
    who: &str,
    channel: &str,
) -> Result<(), StoreError> {
    // Both buckets (day and hour) in one statement: their keys differ by `span`, so no row is
    // touched twice (which PostgreSQL's ON CONFLICT DO UPDATE would refuse).
    let [(day, day_len), (hour, hour_len)] = SPANS;
    sqlx::query(
        "INSERT INTO report_counts (span, bucket, kind, team, who, channel, n)
         VALUES ($1, $2, $5, $6, $7, $8, 1), ($3, $4, $5, $6, $7, $8, 1)
         ON CONFLICT (span, bucket, kind, team, who, channel)
         DO UPDATE SET n = report_counts.n + 1",
    )
    .bind(day)
    .bind(at.div_euclid(day_len))
    .bind(hour)
    .bind(at.div_euclid(hour_len))
    .bind(kind)
    .bind(team)
    .bind(who)
    .bind(channel)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Record one event just written into the figures (inside its transaction; the event is
/// written with `figured = 1`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record(
    conn: &mut sqlx::AnyConnection,
    event_id: i64,
    conversation_id: i64,
    at: i64,
    kind: EventKind,
    actor: Option<&str>,
    team: Option<&str>,
    owner: Option<&str>,
    detail: Option<&str>,
    channel: Option<Option<String>>,
) -> Result<(), StoreError> {
    let counted = counted_as(kind, detail);
    let duration = matches!(kind, EventKind::FirstResponse | EventKind::Resolved);
    if counted.is_none() && !duration {
        return Ok(());
    }
    // The caller may have read the conversation's channel already (`Some`): not read twice.
    let channel: Option<String> = match channel {
        Some(known) => known,
        None => {
            sqlx::query_scalar("SELECT channel FROM conversations WHERE id = $1")
                .bind(conversation_id)
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    let channel = channel.unwrap_or_else(|| "unknown".into());
    let team = team.unwrap_or("");
    let who = credited(kind, actor, owner).unwrap_or("");
    if let Some(name) = counted {
        add_count(&mut *conn, at, &name, team, who, &channel).await?;
    }
    if kind == EventKind::CustomerMessage {
        let [(day, day_len), (hour, hour_len)] = SPANS;
        sqlx::query(
            "INSERT INTO report_writers (span, bucket, conversation_id, team)
             VALUES ($1, $2, $5, $6), ($3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(day)
        .bind(at.div_euclid(day_len))
        .bind(hour)
        .bind(at.div_euclid(hour_len))
        .bind(conversation_id)
        .bind(team)
        .execute(&mut *conn)
        .await?;
    }
    if duration {
        // The cycle's start: the last creation or reopening before this event.
        let start: Option<i64> = sqlx::query_scalar(
            "SELECT at FROM conversation_events WHERE conversation_id = $1 AND id < $2
               AND kind IN ('created', 'reopened') ORDER BY id DESC LIMIT 1",
        )
        .bind(conversation_id)
        .bind(event_id)
        .fetch_optional(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO report_durations (event_id, at, kind, team, who, channel, start_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(event_id)
        .bind(at)
        .bind(kind.as_str())
        .bind(team)
        .bind(who)
        .bind(&channel)
        .bind(start)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Counted events of a part of a period, per kind (as [`counted_as`] names it), team, operator
/// and channel (`None`: no team / nobody).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountRow {
    pub kind: String,
    pub team: Option<String>,
    pub who: Option<String>,
    pub channel: String,
    pub n: u64,
}

/// A quantile row of [`Store::report_quantiles`]: the durations of one group (`group` `None`:
/// the whole report), how many, their median and p90 (nearest rank).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantileRow {
    pub group: Option<String>,
    pub n: u64,
    pub median: Option<i64>,
    pub p90: Option<i64>,
}

/// What a report's rows are, in `report_durations` / `report_counts` columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupColumn {
    Team,
    Who,
    Channel,
}

impl GroupColumn {
    fn sql(self) -> &'static str {
        match self {
            GroupColumn::Team => "team",
            GroupColumn::Who => "who",
            GroupColumn::Channel => "channel",
        }
    }
}

/// ` AND <column> IN ($first, …)` for a lead's teams (`None`: no condition), and the values.
fn team_filter(
    column: &str,
    teams: Option<&BTreeSet<String>>,
    first: usize,
) -> (String, Vec<String>) {
    match teams {
        None => (String::new(), Vec::new()),
        Some(t) if t.is_empty() => (" AND 1 = 0".into(), Vec::new()),
        Some(t) => {
            let marks: Vec<String> = (0..t.len()).map(|i| format!("${}", first + i)).collect();
            (
                format!(" AND {column} IN ({})", marks.join(", ")),
                t.iter().cloned().collect(),
            )
        }
    }
}

fn none_if_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl Store {
    /// Put the events written before the figures existed (`figured = 0`) into them, `batch`
    /// events per transaction, oldest first; returns how many. Resumable: a batch commits with
    /// its events marked, and a batch starts by locking the backfill's row, so two instances
    /// never count an event twice. `progress` is told the running total after each batch.
    pub async fn report_figures_backfill(
        &self,
        batch: i64,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, StoreError> {
        let batch = batch.max(1);
        let mut total = 0u64;
        loop {
            let mut tx = self.pool().begin().await?;
            sqlx::query("UPDATE report_figures_backfill SET batches = batches + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM conversation_events WHERE figured = 0 ORDER BY id LIMIT 1 OFFSET $1",
            )
            .bind(batch - 1)
            .fetch_optional(&mut *tx)
            .await?;
            let last = match last {
                Some(last) => last,
                None => {
                    let max: Option<i64> = sqlx::query_scalar(
                        "SELECT MAX(id) FROM conversation_events WHERE figured = 0",
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    match max {
                        Some(max) => max,
                        None => {
                            tx.commit().await?;
                            return Ok(total);
                        }
                    }
                }
            };
            for (span, len) in SPANS {
                // The span's length is ours: written into the statement so both databases
                // group by the same expression.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO report_counts (span, bucket, kind, team, who, channel, n)
                     SELECT '{span}', e.at / {len}, e.kind, COALESCE(e.team, ''), {WHO_SQL},
                            COALESCE(c.channel, 'unknown'), COUNT(*)
                     FROM conversation_events e LEFT JOIN conversations c ON c.id = e.conversation_id
                     WHERE e.figured = 0 AND e.id <= $1 AND e.kind IN {COUNTED_SQL}
                     GROUP BY 2, 3, 4, 5, 6
                     ON CONFLICT (span, bucket, kind, team, who, channel)
                     DO UPDATE SET n = report_counts.n + excluded.n"
                )))
                .bind(last)
                .execute(&mut *tx)
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO report_writers (span, bucket, conversation_id, team)
                     SELECT DISTINCT '{span}', e.at / {len}, e.conversation_id, COALESCE(e.team, '')
                     FROM conversation_events e
                     WHERE e.figured = 0 AND e.id <= $1 AND e.kind = 'customer_message'
                     ON CONFLICT DO NOTHING"
                )))
                .bind(last)
                .execute(&mut *tx)
                .await?;
            }
            // Ratings are counted per score, parsed as `record` parses them.
            let rated = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT e.at AS at, COALESCE(e.team, '') AS team, {WHO_SQL} AS who, e.detail AS detail,
                        COALESCE(c.channel, 'unknown') AS channel
                 FROM conversation_events e LEFT JOIN conversations c ON c.id = e.conversation_id
                 WHERE e.figured = 0 AND e.id <= $1 AND e.kind = 'rated'"
            )))
            .bind(last)
            .fetch_all(&mut *tx)
            .await?;
            for r in &rated {
                let detail: Option<String> = r.try_get("detail")?;
                let Some(name) = counted_as(EventKind::Rated, detail.as_deref()) else {
                    continue;
                };
                let (team, who, channel): (String, String, String) =
                    (r.try_get("team")?, r.try_get("who")?, r.try_get("channel")?);
                add_count(&mut tx, r.try_get("at")?, &name, &team, &who, &channel).await?;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO report_durations (event_id, at, kind, team, who, channel, start_at)
                 SELECT e.id, e.at, e.kind, COALESCE(e.team, ''), {WHO_SQL},
                        COALESCE(c.channel, 'unknown'),
                        (SELECT s.at FROM conversation_events s
                         WHERE s.conversation_id = e.conversation_id AND s.id < e.id
                           AND s.kind IN ('created', 'reopened')
                         ORDER BY s.id DESC LIMIT 1)
                 FROM conversation_events e LEFT JOIN conversations c ON c.id = e.conversation_id
                 WHERE e.figured = 0 AND e.id <= $1 AND e.kind IN ('first_response', 'resolved')
                 ON CONFLICT DO NOTHING"
            )))
            .bind(last)
            .execute(&mut *tx)
            .await?;
            let done = sqlx::query(
                "UPDATE conversation_events SET figured = 1 WHERE figured = 0 AND id <= $1",
            )
            .bind(last)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            total += done.rows_affected();
            progress(total);
        }
    }

    /// Give the durations of `[from, to)` the working time of the calendar each team has now:
    /// `calendars` names each team's calendar by a fingerprint (team `""`: conversations with
    /// no team; a team not named has no calendar, and its durations count in no figure), and
    /// `working(team, start, end)` computes the working time. Only rows counted on another
    /// calendar (or none yet) are computed, 500 at a time. Returns how many were.
    pub async fn report_fill_working(
        &self,
        calendars: &[(String, i64)],
        working: impl Fn(&str, i64, i64) -> Option<i64>,
        from: i64,
        to: i64,
    ) -> Result<u64, StoreError> {
        let mut case = String::from("CASE team");
        for i in 0..calendars.len() {
            case.push_str(&format!(" WHEN ${} THEN ${}", 3 + 2 * i, 4 + 2 * i));
        }
        case.push_str(" ELSE 0 END");
        let sql = format!(
            "SELECT event_id, team, start_at, at FROM report_durations
             WHERE kind IN ('first_response', 'resolved') AND at >= $1 AND at < $2
               AND start_at IS NOT NULL AND COALESCE(calendar, -1) <> {case}
             LIMIT 500"
        );
        let tag = |team: &str| {
            calendars
                .iter()
                .find(|(t, _)| t == team)
                .map_or(0, |(_, tag)| *tag)
        };
        let mut total = 0u64;
        loop {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(from)
                .bind(to);
            for (team, tag) in calendars {
                query = query.bind(team.clone()).bind(*tag);
            }
            let rows = query.fetch_all(self.pool()).await?;
            if rows.is_empty() {
                return Ok(total);
            }
            let mut values = Vec::with_capacity(rows.len());
            for r in &rows {
                let team: String = r.try_get("team")?;
                let (start, at): (i64, i64) = (r.try_get("start_at")?, r.try_get("at")?);
                let id: i64 = r.try_get("event_id")?;
                let calendar = tag(&team);
                let ms = if calendar == 0 {
                    None
                } else {
                    working(&team, start, at)
                };
                values.push((id, ms, calendar));
            }
            let marks: Vec<String> = (0..values.len())
                .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
                .collect();
            let update = format!(
                "UPDATE report_durations SET working_ms = v.column2, calendar = v.column3
                 FROM (VALUES {}) AS v WHERE report_durations.event_id = v.column1",
                marks.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(update));
            for (id, ms, calendar) in &values {
                query = query.bind(*id).bind(*ms).bind(*calendar);
            }
            query.execute(self.pool()).await?;
            total += values.len() as u64;
        }
    }

    /// The counted events of `[from, to)`: the sums of the whole days and hours in it, and the
    /// events of its edges counted from `conversation_events`. A key may come back more than
    /// once (once per part of the period): add them up.
    pub async fn report_counts(&self, from: i64, to: i64) -> Result<Vec<CountRow>, StoreError> {
        let (buckets, raw) = cover(from, to);
        let mut out = Vec::new();
        for (span, first, end) in buckets {
            let rows = sqlx::query(
                "SELECT kind, team, who, channel, CAST(SUM(n) AS BIGINT) AS n FROM report_counts
                 WHERE span = $1 AND bucket >= $2 AND bucket < $3
                 GROUP BY kind, team, who, channel",
            )
            .bind(span)
            .bind(first)
            .bind(end)
            .fetch_all(self.pool())
            .await?;
            for r in &rows {
                out.push(CountRow {
                    kind: r.try_get("kind")?,
                    team: none_if_empty(r.try_get("team")?),
                    who: none_if_empty(r.try_get("who")?),
                    channel: r.try_get("channel")?,
                    n: r.try_get::<i64, _>("n")?.max(0) as u64,
                });
            }
        }
        for (a, b) in raw {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT e.kind AS kind, COALESCE(e.team, '') AS team, {WHO_SQL} AS who,
                        COALESCE(c.channel, 'unknown') AS channel,
                        CASE WHEN e.kind = 'rated' THEN e.detail END AS detail, COUNT(*) AS n
                 FROM conversation_events e LEFT JOIN conversations c ON c.id = e.conversation_id
                 WHERE e.at >= $1 AND e.at < $2 AND (e.kind IN {COUNTED_SQL} OR e.kind = 'rated')
                 GROUP BY 1, 2, 3, 4, 5"
            )))
            .bind(a)
            .bind(b)
            .fetch_all(self.pool())
            .await?;
            for r in &rows {
                let kind: String = r.try_get("kind")?;
                let detail: Option<String> = r.try_get("detail")?;
                let Some(kind) =
                    EventKind::parse(&kind).and_then(|k| counted_as(k, detail.as_deref()))
                else {
                    continue;
                };
                out.push(CountRow {
                    kind,
                    team: none_if_empty(r.try_get("team")?),
                    who: none_if_empty(r.try_get("who")?),
                    channel: r.try_get("channel")?,
                    n: r.try_get::<i64, _>("n")?.max(0) as u64,
                });
            }
        }
        Ok(out)
    }

    /// Median and p90 (nearest rank) of the first responses or resolutions (`kind`) of
    /// `[from, to)`, wall-clock or `working` time, for the whole report and per `group`, as
    /// the database sorts them. Only durations with a cycle start and a team calendar count
    /// (run [`Store::report_fill_working`] first). `teams`: only these teams' durations.
    pub async fn report_quantiles(
        &self,
        kind: EventKind,
        working: bool,
        group: Option<GroupColumn>,
        from: i64,
        to: i64,
        teams: Option<&BTreeSet<String>>,
    ) -> Result<Vec<QuantileRow>, StoreError> {
        let (filter, values) = team_filter("team", teams, 4);
        let v = if working {
            "working_ms"
        } else {
            "at - start_at"
        };
        let grouped = match group {
            Some(g) => format!(
                "SELECT CAST(0 AS BIGINT) AS t, {} AS g, v FROM d UNION ALL ",
                g.sql()
            ),
            None => String::new(),
        };
        let sql = format!(
            "WITH d AS (SELECT team, who, channel, {v} AS v FROM report_durations
                        WHERE kind = $1 AND at >= $2 AND at < $3 AND start_at IS NOT NULL
                          AND working_ms IS NOT NULL{filter}),
                  g AS ({grouped}SELECT CAST(1 AS BIGINT) AS t, '' AS g, v FROM d),
                  r AS (SELECT t, g, v, ROW_NUMBER() OVER (PARTITION BY t, g ORDER BY v) AS rn,
                               COUNT(*) OVER (PARTITION BY t, g) AS n FROM g)
             SELECT t, g, n, rn, v FROM r
             WHERE rn = (n * 50 + 99) / 100 OR rn = (n * 90 + 99) / 100"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(kind.as_str())
            .bind(from)
            .bind(to);
        for value in values {
            query = query.bind(value);
        }
        let mut out: BTreeMap<(i64, String), QuantileRow> = BTreeMap::new();
        for r in query.fetch_all(self.pool()).await? {
            let (t, g): (i64, String) = (r.try_get("t")?, r.try_get("g")?);
            let (n, rn, v): (i64, i64, i64) = (r.try_get("n")?, r.try_get("rn")?, r.try_get("v")?);
            let row = out.entry((t, g.clone())).or_insert_with(|| QuantileRow {
                group: (t == 0).then_some(g),
                n: n.max(0) as u64,
                median: None,
                p90: None,
            });
            if rn == (n * 50 + 99) / 100 {
                row.median = Some(v);
            }
            if rn == (n * 90 + 99) / 100 {
                row.p90 = Some(v);
            }
        }
        Ok(out.into_values().collect())
    }

    /// First responses of `[from, to)` within their team's target (`targets`: per team, `""`
    /// for no team, in ms of working time; other teams `default`), for the whole report
    /// (`None`) and per `group`.
    pub async fn report_within_target(
        &self,
        group: Option<GroupColumn>,
        from: i64,
        to: i64,
        targets: &[(String, i64)],
        default: i64,
        teams: Option<&BTreeSet<String>>,
    ) -> Result<Vec<(Option<String>, u64)>, StoreError> {
        let mut case = String::from("CASE team");
        for i in 0..targets.len() {
            case.push_str(&format!(" WHEN ${} THEN ${}", 4 + 2 * i, 5 + 2 * i));
        }
        case.push_str(" ELSE $3 END");
        let (filter, values) = team_filter("team", teams, 4 + 2 * targets.len());
        let grouped = match group {
            Some(g) => format!(
                "SELECT CAST(0 AS BIGINT) AS t, {} AS g, within FROM d UNION ALL ",
                g.sql()
            ),
            None => String::new(),
        };
        let sql = format!(
            "WITH d AS (SELECT team, who, channel,
                               CASE WHEN working_ms <= {case} THEN 1 ELSE 0 END AS within
                        FROM report_durations
                        WHERE kind = 'first_response' AND at >= $1 AND at < $2
                          AND start_at IS NOT NULL AND working_ms IS NOT NULL{filter}),
                  g AS ({grouped}SELECT CAST(1 AS BIGINT) AS t, '' AS g, within FROM d)
             SELECT t, g, CAST(SUM(within) AS BIGINT) AS n FROM g GROUP BY t, g"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .bind(default);
        for (team, target) in targets {
            query = query.bind(team.clone()).bind(*target);
        }
        for value in values {
            query = query.bind(value);
        }
        let mut out = Vec::new();
        for r in query.fetch_all(self.pool()).await? {
            let (t, g, n): (i64, String, i64) = (r.try_get("t")?, r.try_get("g")?, r.try_get("n")?);
            out.push(((t == 0).then_some(g), n.max(0) as u64));
        }
        Ok(out)
    }

    /// The channel mix of `[from, to)` from the figures: how many customers wrote (the person
    /// behind linked contacts; a contact not linked to one is a customer of its own), and per
    /// channel how many of them wrote there. `teams`: only messages to these teams count.
    pub async fn report_figures_mix(
        &self,
        from: i64,
        to: i64,
        teams: Option<&BTreeSet<String>>,
    ) -> Result<(u64, BTreeMap<String, u64>), StoreError> {
        let (buckets, raw) = cover(from, to);
        let (writers_filter, values) = team_filter("team", teams, 1);
        let (events_filter, _) = team_filter("e.team", teams, 1);
        // Bucket bounds are our own integers, written into the statement.
        let mut parts: Vec<String> = buckets
            .iter()
            .map(|(span, first, end)| {
                format!(
                    "SELECT conversation_id FROM report_writers
                     WHERE span = '{span}' AND bucket >= {first} AND bucket < {end}{writers_filter}"
                )
            })
            .collect();
        parts.extend(raw.iter().map(|(a, b)| {
            format!(
                "SELECT e.conversation_id FROM conversation_events e
                 WHERE e.kind = 'customer_message' AND e.at >= {a} AND e.at < {b}{events_filter}"
            )
        }));
        if parts.is_empty() {
            return Ok((0, BTreeMap::new()));
        }
        let sql = format!(
            "WITH w AS ({}),
                  x AS (SELECT c.channel AS channel,
                               COALESCE('customer:' || CAST(k.customer_id AS TEXT),
                                        'contact:' || c.channel || ':' || c.contact_id) AS who
                        FROM w JOIN conversations c ON c.id = w.conversation_id
                        LEFT JOIN contacts k ON k.channel = c.channel AND k.contact_id = c.contact_id)
             SELECT NULL AS channel, COUNT(DISTINCT who) AS n FROM x
             UNION ALL
             SELECT channel, COUNT(DISTINCT who) AS n FROM x GROUP BY channel",
            parts.join(" UNION ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_whole_days_then_whole_hours_then_its_edges() {
        let m = 60_000;
        let from = 2 * DAY_MS - 90 * m; // 22:30 on day 1
        let to = 4 * DAY_MS + 2 * HOUR_MS + 5 * m; // 02:05 on day 4
        let (buckets, raw) = cover(from, to);
        assert_eq!(buckets, vec![("h", 47, 48), ("d", 2, 4), ("h", 96, 98)]);
        assert_eq!(
            raw,
            vec![(from, 47 * HOUR_MS), (4 * DAY_MS + 2 * HOUR_MS, to)]
        );
        // Inside one hour: all from the events.
        assert_eq!(cover(10 * m, 20 * m), (vec![], vec![(10 * m, 20 * m)]));
        assert_eq!(cover(5, 5), (vec![], vec![]));
    }
}
