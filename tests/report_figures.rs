//! The report figures (src/store/figures.rs) give exactly the figures of replaying the events
//! (`reports::replay_from_store`), on both stores: for periods cut at any millisecond, each
//! grouping, a lead's teams, after a team's calendar changed, and after the start-up backfill
//! rebuilt them from the events alone.

#[macro_use]
mod rig;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::ensure;
use rig::Backend;
use switchboard::reports::{self, GroupBy, Period, Teams};
use switchboard::routing::calendar::Calendar;
use switchboard::store::events::{self, EventKind, Stamp};
use switchboard::store::Store;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
/// Monday 2026-11-02 00:00 UTC.
const T0: i64 = 1_793_577_600_000;

async fn store_url(backend: Backend, dir: &tempfile::TempDir) -> anyhow::Result<String> {
    Ok(match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("store.db").display()),
        Backend::Postgres => rig::postgres::fresh_database_url().await?,
    })
}

struct Writer<'a> {
    store: &'a Store,
}

impl Writer<'_> {
    #[allow(clippy::too_many_arguments)]
    async fn ev(
        &self,
        conv: i64,
        at: i64,
        kind: EventKind,
        actor: Option<&str>,
        team: Option<&str>,
        owner: Option<&str>,
        detail: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut tx = self.store.pool().begin().await?;
        events::insert(
            &mut tx,
            conv,
            &Stamp { at, actor },
            kind,
            team,
            owner,
            detail,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Forty conversations over three days on three channels, three teams and none, five
/// operators: answers, first responses, resolutions; every third reopened, moved to another
/// team and answered by someone else; ratings (one with no score); conversation 0 has events
/// but no `created` (from before events were kept).
async fn seed(store: &Store) -> anyhow::Result<()> {
    use EventKind::*;
    let channels = ["email", "telegram", "viber"];
    for i in 0..40i64 {
        let channel = channels[(i % 3) as usize];
        sqlx::query(
            "INSERT INTO contacts (channel, contact_id, ghost_user_id, registered, customer_id)
             VALUES ($1, $2, $3, 1, $4)",
        )
        .bind(channel)
        .bind(format!("k{i}"))
        .bind(format!("@sb_k{i}:x"))
        .bind((i % 4 == 0).then_some(i / 8))
        .execute(store.pool())
        .await?;
        sqlx::query(
            "INSERT INTO conversations (id, channel, account, chat, contact_id, room_id, created_at)
             VALUES ($1, $2, 'acct', $3, $4, $5, $6)",
        )
        .bind(i)
        .bind(channel)
        .bind(format!("c{i}"))
        .bind(format!("k{i}"))
        .bind(format!("!r{i}"))
        .bind(T0)
        .execute(store.pool())
        .await?;
    }
    let w = Writer { store };
    let teams = [Some("a"), Some("b"), Some("c"), None];
    for i in 0..40i64 {
        let team = teams[(i % 4) as usize];
        let op = format!("@op{}:x", i % 5);
        let op = Some(op.as_str());
        let t = T0 + i * 107 * MIN + i * 1_234;
        if i > 0 {
            w.ev(i, t, Created, None, team, None, None).await?;
        }
        w.ev(i, t + 1_000, CustomerMessage, None, team, None, None)
            .await?;
        w.ev(i, t + MIN, Assigned, op, team, op, None).await?;
        let answer = t + (i % 7 + 1) * 13 * MIN + 17;
        w.ev(i, answer, OperatorAnswer, op, team, op, None).await?;
        w.ev(i, answer, FirstResponse, op, team, op, None).await?;
        w.ev(i, answer + 9 * MIN, CustomerMessage, None, team, op, None)
            .await?;
        w.ev(i, answer + 31 * MIN, OperatorAnswer, None, team, op, None)
            .await?;
        let resolved = t + (i % 11 + 2) * 47 * MIN + 5;
        w.ev(i, resolved, Resolved, op, team, op, None).await?;
        if i % 4 == 1 {
            w.ev(
                i,
                resolved + 1_000,
                RatingRequested,
                None,
                team,
                op,
                Some("1"),
            )
            .await?;
            let score = if i % 10 == 1 {
                "9".to_string()
            } else {
                (i % 5 + 1).to_string()
            };
            w.ev(i, resolved + 20 * MIN, Rated, None, team, op, Some(&score))
                .await?;
        }
        if i % 3 == 0 {
            let other = teams[((i + 1) % 4) as usize];
            let op2 = format!("@op{}:x", (i + 2) % 5);
            let op2 = Some(op2.as_str());
            let back = resolved + 5 * HOUR + 3 * MIN;
            w.ev(i, back, CustomerMessage, None, team, op, None).await?;
            w.ev(i, back, Reopened, None, team, op, Some("resolved"))
                .await?;
            w.ev(i, back + 2 * MIN, Transferred, op2, other, op2, None)
                .await?;
            w.ev(
                i,
                back + 2 * HOUR + 7,
                OperatorAnswer,
                op2,
                other,
                op2,
                None,
            )
            .await?;
            w.ev(i, back + 2 * HOUR + 7, FirstResponse, op2, other, op2, None)
                .await?;
            w.ev(i, back + 30 * HOUR, Resolved, None, other, op2, None)
                .await?;
        }
    }
    Ok(())
}

fn teams(a_hours: &str) -> anyhow::Result<Teams> {
    let mut hours = BTreeMap::new();
    hours.insert("mon-fri".to_string(), a_hours.to_string());
    let mut calendars = HashMap::new();
    calendars.insert(
        Some("a".to_string()),
        Calendar::from_config("Europe/Berlin", &hours, &[]).map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    calendars.insert(Some("b".to_string()), Calendar::always(chrono_tz::UTC));
    // Team c has no calendar: its durations count in no figure.
    calendars.insert(None, Calendar::always(chrono_tz::UTC));
    let mut targets = HashMap::new();
    targets.insert(Some("a".to_string()), HOUR);
    targets.insert(Some("b".to_string()), 30 * MIN);
    targets.insert(None, 2 * HOUR);
    Ok(Teams {
        calendars,
        targets,
        only: None,
    })
}

fn period(from: i64, to: i64) -> Period {
    Period {
        from,
        to,
        label: "p".into(),
        tz: chrono_tz::UTC,
    }
}

/// Every grouping, every lead's view, several periods: the figures equal the replay's.
async fn same_as_replay(store: &Store, teams: &mut Teams, what: &str) -> anyhow::Result<()> {
    let periods = [
        period(T0 - HOUR, T0 + 6 * 24 * HOUR),
        period(T0 + 3 * HOUR + 17 * MIN + 123, T0 + 29 * HOUR + 5),
        period(T0 + 24 * HOUR, T0 + 72 * HOUR),
        period(T0 + 5 * HOUR + 2 * MIN, T0 + 5 * HOUR + 58 * MIN),
    ];
    let leads: [Option<BTreeSet<String>>; 3] = [
        None,
        Some(["a".to_string()].into_iter().collect()),
        Some(["a".to_string(), "c".to_string()].into_iter().collect()),
    ];
    let now = T0 + 7 * 24 * HOUR;
    for p in &periods {
        for only in &leads {
            teams.only = only.clone();
            for group in [
                None,
                Some(GroupBy::Channel),
                Some(GroupBy::Operator),
                Some(GroupBy::Team),
            ] {
                let figures = reports::from_store(store, teams, p, group, now).await?;
                let replay = reports::replay_from_store(store, teams, p, group, now).await?;
                ensure!(
                    figures == replay,
                    "{what}: {}..{} {group:?} {only:?}\nfigures {figures:#?}\nreplay {replay:#?}",
                    p.from,
                    p.to
                );
            }
        }
    }
    teams.only = None;
    Ok(())
}

async fn figures_equal_the_replay_of_the_events(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::connect(&store_url(backend, &dir).await?, 2).await?;
    seed(&store).await?;
    let mut teams = teams("09:00-18:00")?;
    // The figures are not trivially equal: the whole period has each kind of figure.
    let all = period(T0 - HOUR, T0 + 6 * 24 * HOUR);
    let r = reports::from_store(&store, &teams, &all, None, T0).await?;
    let t = &r.total;
    ensure!(
        (t.new, t.reopened, t.resolved, t.messages_in, t.messages_out) == (39, 14, 54, 94, 94)
            && t.rated() == 8
            && t.ratings_asked == 10
            && t.first_response_wall.len() > 20
            && t.first_response_within_target > 0
            && r.customers > 20,
        "{backend:?}: {r:#?}"
    );
    same_as_replay(&store, &mut teams, "written with the events").await?;
    // Team a's hours change: its working times are counted again on the new calendar.
    let mut teams = self::teams("10:00-16:00")?;
    same_as_replay(&store, &mut teams, "after a calendar change").await?;
    // The start-up backfill rebuilds the same figures from the events alone.
    for table in ["report_counts", "report_writers", "report_durations"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(store.pool())
            .await?;
    }
    sqlx::query("UPDATE conversation_events SET figured = 0")
        .execute(store.pool())
        .await?;
    let done = store.report_figures_backfill(37, |_| {}).await?;
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM conversation_events")
        .fetch_one(store.pool())
        .await?;
    ensure!(
        done == events as u64,
        "{backend:?}: backfilled {done} of {events}"
    );
    ensure!(
        store.report_figures_backfill(37, |_| {}).await? == 0,
        "{backend:?}: a second backfill found work"
    );
    same_as_replay(&store, &mut teams, "after the backfill").await?;
    Ok(())
}

on_both_stores!(figures_equal_the_replay_of_the_events);
