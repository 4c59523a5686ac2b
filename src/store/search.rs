//! The search index in the store: the rows (`search_docs`), written in the same database
//! transaction as what they index (the inbox event, the outbox item, the note), and the
//! full-text index over their analyzed terms, which each database keeps in its own way:
//!
//! - SQLite: an FTS5 table over `search_docs.terms` (external content, so the text is stored
//!   once), kept in step by triggers, so no write can reach one without the other.
//! - PostgreSQL: a GIN index over a stored generated column `tsv = to_tsvector('simple',
//!   terms)`; `simple` only splits on spaces and lowercases, since the terms are already the analyzer's (PostgreSQL's own
//!   configurations have no Ukrainian and would stem twice).
//!
//! Queries are built from the analyzer's [`QueryWord`]s: each word is a group of alternatives
//! (its surface form and stems exactly, its surface form as a prefix), and all groups must
//! match. What an operator may see is part of the query ([`Scope`]), never filtered afterwards.
//!
//! A prefix is written as the terms it begins, read from a list of every indexed term
//! (`search_terms`, written in the same transaction as the row by a trigger: SQLite's beside
//! the FTS5 ones, PostgreSQL's from the row's tsvector). Both indexes answer a prefix query
//! (FTS5's `"pre"*`, a tsquery's `pre:*`) by merging the entries of every term it begins over
//! all history before the first row comes out (tens to hundreds of milliseconds at a million
//! messages), while a few plain terms are read newest first and stop at the page (FTS5), or
//! skipped through from the rarest (GIN). A prefix that begins more than [`MAX_PREFIX_TERMS`]
//! terms, or a store whose list is still being filled ([`Store::search_terms_backfill_batch`]),
//! uses the index's own prefix query, so results never depend on how far the filling got.
//! One rule writes both databases' queries ([`alternatives`]); only the syntax differs.

use sqlx::{Any, AnyConnection, AnyPool, Executor, Row};
use switchboard_channel::{Content, Inbound, InboundEvent, Outbound, OutboundAction};

use super::{now_ms, Store, StoreError};
use crate::search::analyzer::{self, QueryWord};

/// What kind of file a row is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    File,
    Image,
    Voice,
}

impl Media {
    pub fn as_str(self) -> &'static str {
        match self {
            Media::File => "file",
            Media::Image => "image",
            Media::Voice => "voice",
        }
    }

    pub fn parse(s: &str) -> Option<Media> {
        match s {
            "file" => Some(Media::File),
            "image" => Some(Media::Image),
            "voice" | "audio" => Some(Media::Voice),
            _ => None,
        }
    }

    pub fn of_mime(mime: &str) -> Media {
        if mime.starts_with("image/") {
            Media::Image
        } else if mime.starts_with("audio/") {
            Media::Voice
        } else {
            Media::File
        }
    }
}

/// Who wrote a row's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The customer (or their side: a notice).
    Customer,
    /// An operator's message to the customer.
    Operator,
    /// A private note.
    Note,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Customer => "in",
            Kind::Operator => "out",
            Kind::Note => "note",
        }
    }
}

/// A row to index.
#[derive(Clone, Debug)]
pub struct NewDoc {
    pub conversation_id: i64,
    /// Inbound: the remote message and which of its Matrix events (message_map's `part`).
    pub remote: Option<(String, i64)>,
    /// The Matrix event, when known at writing time.
    pub event_id: Option<String>,
    pub kind: Kind,
    /// The contact id (customer) or Matrix user id (operator).
    pub sender: String,
    pub media: Option<Media>,
    pub ts: i64,
    pub body: String,
}

/// Create the full-text index where it is missing (see the module doc), and fill it from the
/// stored rows when it is new; then the term list ([`TERMS_READY`]) and the triggers keeping
/// index and list in step with `search_docs`. Returns whether the term list is complete.
///
/// On PostgreSQL, which several instances may share, all of it runs in one transaction under
/// an advisory lock, so instances starting together do not race on the same DDL.
pub(super) async fn ensure_index(pool: &AnyPool, sqlite: bool) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    if sqlite {
        ensure_fts5(&mut tx).await?;
    } else {
        (&mut *tx)
            .execute("SELECT pg_advisory_xact_lock(hashtext('switchboard search index'))")
            .await?;
        ensure_gin(&mut tx).await?;
    }
    (&mut *tx)
        .execute(
            "CREATE TABLE IF NOT EXISTS search_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        )
        .await?;
    if !exists(&mut tx, sqlite, "search_terms").await? {
        let create: &[&str] = if sqlite {
            &[
                "CREATE TABLE search_terms (term TEXT PRIMARY KEY) WITHOUT ROWID",
                "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts_vocab USING fts5vocab(search_fts, row)",
            ]
        } else {
            // Not unique: two transactions listing the same new term would otherwise wait on
            // each other (and, listing several in different orders, deadlock). A term listed
            // twice by writers racing is read once (`DISTINCT` in the lookup). Byte order
            // ("C"), so a prefix is a range of the index.
            &[
                "CREATE TABLE search_terms (term TEXT COLLATE \"C\" NOT NULL)",
                "CREATE INDEX search_terms_term ON search_terms (term)",
            ]
        };
        for sql in create {
            (&mut *tx).execute(*sql).await?;
        }
        // A store with no rows yet has nothing to list; one with rows has them listed in the
        // background ([`Store::search_terms_backfill_batch`]).
        let any: Option<i64> = sqlx::query_scalar("SELECT id FROM search_docs LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        if any.is_none() {
            sqlx::query("INSERT INTO search_state (key, value) VALUES ($1, '1')")
                .bind(TERMS_READY)
                .execute(&mut *tx)
                .await?;
        }
    }
    if sqlite {
        sqlite_triggers(&mut tx).await?;
    } else {
        postgres_trigger(&mut tx).await?;
    }
    let ready: Option<String> = sqlx::query_scalar("SELECT value FROM search_state WHERE key = $1")
        .bind(TERMS_READY)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(ready.is_some())
}

/// SQLite: the FTS5 table, filled from the rows when it is new.
async fn ensure_fts5(conn: &mut AnyConnection) -> Result<(), StoreError> {
    if !exists(&mut *conn, true, "search_fts").await? {
        // remove_diacritics 0: the analyzer folds what should be folded (ё), and й ≠ и.
        (&mut *conn)
            .execute(
                "CREATE VIRTUAL TABLE search_fts USING fts5(terms, content='search_docs',
                 content_rowid='id', tokenize='unicode61 remove_diacritics 0')",
            )
            .await?;
        (&mut *conn)
            .execute("INSERT INTO search_fts (search_fts) VALUES ('rebuild')")
            .await?;
    }
    Ok(())
}

/// PostgreSQL: the stored tsvector and its GIN index. A stored tsvector: when the planner
/// walks rows newest first and filters (a rare word), each row is a lookup, not a new
/// to_tsvector of its terms.
async fn ensure_gin(conn: &mut AnyConnection) -> Result<(), StoreError> {
    (&mut *conn)
        .execute(
            "ALTER TABLE search_docs ADD COLUMN IF NOT EXISTS tsv tsvector
             GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, terms)) STORED",
        )
        .await?;
    (&mut *conn)
        .execute("CREATE INDEX IF NOT EXISTS search_docs_fts ON search_docs USING GIN (tsv)")
        .await?;
    Ok(())
}

/// SQLite: the triggers, written anew at every start, so a store made by an older build gets
/// this build's. Each new or changed row's terms go into the FTS5 index and into the term
/// list. Terms are letters and digits only (the analyzer's `fold`), so joining them with
/// `","` makes a JSON array; anything else (a row written by hand) lists nothing.
async fn sqlite_triggers(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let list_terms = "INSERT OR IGNORE INTO search_terms (term)
           SELECT value FROM json_each(CASE WHEN json_valid('[\"' || replace(new.terms, ' ', '\",\"') || '\"]')
             THEN '[\"' || replace(new.terms, ' ', '\",\"') || '\"]' ELSE '[]' END)
           WHERE value <> ''";
    for sql in [
        "DROP TRIGGER IF EXISTS search_docs_ai".to_string(),
        "DROP TRIGGER IF EXISTS search_docs_ad".to_string(),
        "DROP TRIGGER IF EXISTS search_docs_au".to_string(),
        format!(
            "CREATE TRIGGER search_docs_ai AFTER INSERT ON search_docs BEGIN
               INSERT INTO search_fts (rowid, terms) VALUES (new.id, new.terms);
               {list_terms};
             END"
        ),
        "CREATE TRIGGER search_docs_ad AFTER DELETE ON search_docs BEGIN
           INSERT INTO search_fts (search_fts, rowid, terms) VALUES ('delete', old.id, old.terms);
         END"
        .to_string(),
        format!(
            "CREATE TRIGGER search_docs_au AFTER UPDATE OF terms ON search_docs BEGIN
               INSERT INTO search_fts (search_fts, rowid, terms) VALUES ('delete', old.id, old.terms);
               INSERT INTO search_fts (rowid, terms) VALUES (new.id, new.terms);
               {list_terms};
             END"
        ),
        // Every message is its own transaction, so each adds a small segment to the index,
        // and FTS5 merges segments as it goes. Merging when 8 of a level have gathered rather
        // than 4 (the default) rewrites each entry about half as often (README, "Search").
        format!("INSERT INTO search_fts (search_fts, rank) VALUES ('automerge', {AUTOMERGE})"),
    ] {
        (&mut *conn).execute(sqlx::AssertSqlSafe(sql)).await?;
    }
    Ok(())
}

/// PostgreSQL: the trigger listing each new or changed row's terms, written anew at every
/// start like SQLite's. It lists the row's tsvector lexemes, the very terms the GIN index
/// holds for it; a term already listed is skipped without waiting on anyone (see the table's
/// note in [`ensure_index`]). Being in the database, it lists what every writer writes, an
/// instance of an older build included.
async fn postgres_trigger(conn: &mut AnyConnection) -> Result<(), StoreError> {
    for sql in [
        "CREATE OR REPLACE FUNCTION search_docs_list_terms() RETURNS trigger
           LANGUAGE plpgsql AS $$
         BEGIN
           INSERT INTO search_terms (term)
             SELECT t FROM unnest(tsvector_to_array(NEW.tsv)) AS t
             WHERE NOT EXISTS (SELECT 1 FROM search_terms s WHERE s.term = t);
           RETURN NULL;
         END $$",
        "CREATE OR REPLACE TRIGGER search_docs_terms AFTER INSERT OR UPDATE OF terms
           ON search_docs FOR EACH ROW EXECUTE FUNCTION search_docs_list_terms()",
    ] {
        (&mut *conn).execute(sql).await?;
    }
    Ok(())
}

/// Whether the store has a table (SQLite: also a view or trigger) of that name.
async fn exists(conn: &mut AnyConnection, sqlite: bool, name: &str) -> Result<bool, StoreError> {
    let sql = if sqlite {
        "SELECT name FROM sqlite_master WHERE name = $1"
    } else {
        "SELECT CAST(to_regclass($1) AS TEXT)"
    };
    let found: Option<Option<String>> = sqlx::query_scalar(sql)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.flatten().is_some())
}

/// FTS5's `automerge` on SQLite (see [`ensure_index`]).
const AUTOMERGE: i64 = 8;

/// The `search_state` key saying the term list holds every indexed term.
const TERMS_READY: &str = "terms_ready";
/// The `search_state` key holding where the background listing got to (SQLite: the last term
/// listed; PostgreSQL: the last row's id).
const TERMS_AFTER: &str = "terms_after";

/// A query word's prefix is looked up as the terms it begins (from the term list) when there
/// are at most this many: FTS5 and GIN answer a prefix by merging every such term's entries
/// for the whole history before they yield a row, and a few plain terms by reading only what
/// the page needs.
const MAX_PREFIX_TERMS: i64 = 64;

pub(super) async fn insert_doc(conn: &mut AnyConnection, doc: &NewDoc) -> Result<(), StoreError> {
    if doc.body.trim().is_empty() {
        return Ok(());
    }
    let (remote_id, part) = match &doc.remote {
        Some((r, p)) => (Some(r.as_str()), *p),
        None => (None, 0),
    };
    let id = super::new_id(&mut *conn).await?;
    sqlx::query(
        "INSERT INTO search_docs
           (id, conversation_id, remote_id, part, event_id, kind, sender, media, ts, body, terms, analyzer)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(doc.conversation_id)
    .bind(remote_id)
    .bind(part)
    .bind(doc.event_id.as_deref())
    .bind(doc.kind.as_str())
    .bind(&doc.sender)
    .bind(doc.media.map(Media::as_str))
    .bind(doc.ts)
    .bind(&doc.body)
    .bind(analyzer::index_terms(&doc.body))
    .bind(analyzer::VERSION)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The rows of a message's content, numbered as its Matrix events are
/// ([`crate::matrix::content::to_matrix`]): the text (when there is text, or nothing else),
/// then one per attachment, found by its file name.
fn content_parts(c: &Content) -> Vec<(String, Option<Media>)> {
    let mut parts = Vec::new();
    if !c.text.is_empty() || c.attachments.is_empty() {
        parts.push((c.text.clone(), None));
    }
    for a in &c.attachments {
        parts.push((a.name.clone(), Some(Media::of_mime(&a.mime))));
    }
    parts
}

/// Index an inbound event, in the transaction that stores it: a message or notice adds its
/// rows, an edit replaces its text, a deletion removes its rows.
pub(super) async fn index_inbound(
    conn: &mut AnyConnection,
    conversation_id: i64,
    inbound: &Inbound,
) -> Result<(), StoreError> {
    match &inbound.event {
        InboundEvent::Message {
            remote_id, content, ..
        }
        | InboundEvent::Notice { remote_id, content } => {
            for (part, (body, media)) in content_parts(content).into_iter().enumerate() {
                let doc = NewDoc {
                    conversation_id,
                    remote: Some((remote_id.clone(), part as i64)),
                    event_id: None,
                    kind: Kind::Customer,
                    sender: inbound.sender.id.clone(),
                    media,
                    ts: inbound.timestamp_ms,
                    body,
                };
                insert_doc(conn, &doc).await?;
            }
        }
        InboundEvent::Edit { remote_id, content } if !content.text.is_empty() => {
            sqlx::query(
                "UPDATE search_docs SET body = $1, terms = $2, analyzer = $3
                 WHERE conversation_id = $4 AND remote_id = $5 AND part = 0 AND media IS NULL",
            )
            .bind(&content.text)
            .bind(analyzer::index_terms(&content.text))
            .bind(analyzer::VERSION)
            .bind(conversation_id)
            .bind(remote_id)
            .execute(&mut *conn)
            .await?;
        }
        InboundEvent::Delete { remote_id } => {
            sqlx::query("DELETE FROM search_docs WHERE conversation_id = $1 AND remote_id = $2")
                .bind(conversation_id)
                .bind(remote_id)
                .execute(&mut *conn)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Index an operator's message, in the transaction that queues it: a message adds its row, an
/// edit replaces the text of the message it edits, a deletion removes it (reactions and
/// templates index nothing).
pub(super) async fn index_outbound(
    conn: &mut AnyConnection,
    conversation_id: i64,
    event_id: &str,
    author: &str,
    outbound: &Outbound,
) -> Result<(), StoreError> {
    // An operator's row is keyed by its Matrix event; the action names the remote message,
    // which the message map leads back to that event.
    let content = match &outbound.action {
        OutboundAction::Message { content, .. } => content,
        OutboundAction::Edit { remote_id, content } if !content.text.is_empty() => {
            sqlx::query(
                "UPDATE search_docs SET body = $1, terms = $2, analyzer = $3
                 WHERE conversation_id = $4 AND kind = 'out' AND event_id IN
                   (SELECT event_id FROM message_map WHERE conversation_id = $5 AND remote_id = $6)",
            )
            .bind(&content.text)
            .bind(analyzer::index_terms(&content.text))
            .bind(analyzer::VERSION)
            .bind(conversation_id)
            .bind(conversation_id)
            .bind(remote_id)
            .execute(&mut *conn)
            .await?;
            return Ok(());
        }
        OutboundAction::Delete { remote_id } => {
            sqlx::query(
                "DELETE FROM search_docs
                 WHERE conversation_id = $1 AND kind = 'out' AND event_id IN
                   (SELECT event_id FROM message_map WHERE conversation_id = $2 AND remote_id = $3)",
            )
            .bind(conversation_id)
            .bind(conversation_id)
            .bind(remote_id)
            .execute(&mut *conn)
            .await?;
            return Ok(());
        }
        _ => return Ok(()),
    };
    let mut body = content.text.clone();
    for a in &content.attachments {
        if !body.is_empty() {
            body.push('\n');
        }
        body.push_str(&a.name);
    }
    let doc = NewDoc {
        conversation_id,
        remote: None,
        event_id: Some(event_id.to_string()),
        kind: Kind::Operator,
        sender: author.to_string(),
        media: content.attachments.first().map(|a| Media::of_mime(&a.mime)),
        ts: now_ms(),
        body,
    };
    insert_doc(conn, &doc).await
}

/// Who may see what: everything (admins), or conversations of the operator's teams, with no
/// team, or owned by them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Of { user: String, teams: Vec<String> },
}

/// A parsed search (see [`crate::search::query`] for the syntax).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Every one must match.
    pub words: Vec<QueryWord>,
    pub channel: Option<String>,
    /// Part of a customer's name or id, or of an operator's user id.
    pub from: Option<String>,
    pub team: Option<String>,
    /// Only rows before this time (ms).
    pub before: Option<i64>,
    /// Only rows at or after this time (ms).
    pub after: Option<i64>,
    pub media: Option<Media>,
    /// Best match first (else newest first).
    pub best: bool,
}

/// One row found, with where it is.
#[derive(Clone, Debug)]
pub struct Hit {
    pub doc_id: i64,
    pub conversation_id: i64,
    pub room_id: Option<String>,
    /// The Matrix event (none while an inbound message has not reached its room).
    pub event_id: Option<String>,
    pub channel: String,
    pub customer: Option<String>,
    pub contact_id: String,
    pub sender: String,
    pub kind: String,
    pub media: Option<String>,
    pub ts: i64,
    pub body: String,
}

#[derive(Clone)]
enum Arg {
    Text(String),
    Int(i64),
}

fn arg(args: &mut Vec<Arg>, a: Arg) -> String {
    args.push(a);
    format!("${}", args.len())
}

/// A query word's alternatives, the one rule both databases' queries are written from: the
/// terms to match exactly (its surface form and stems, and the terms its prefix begins when
/// `begun` lists them), and the prefix left to the index's own prefix query when it does not
/// (`None` in `begun`: too many terms, or a term list still being filled).
fn alternatives<'a>(
    w: &'a QueryWord,
    begun: Option<&'a Option<Vec<String>>>,
) -> (Vec<&'a str>, Option<&'a str>) {
    let mut terms: Vec<&str> = w.exact.iter().map(String::as_str).collect();
    match (&w.prefix, begun) {
        (Some(_), Some(Some(list))) => {
            for t in list {
                if !terms.contains(&t.as_str()) {
                    terms.push(t);
                }
            }
            (terms, None)
        }
        (Some(p), _) => (terms, Some(p.as_str())),
        (None, _) => (terms, None),
    }
}

/// The FTS5 MATCH expression: `("a" OR "b" OR "c"*) AND (…)` (see [`alternatives`]).
fn fts5_match(words: &[QueryWord], begun: &[Option<Vec<String>>]) -> String {
    words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let (terms, prefix) = alternatives(w, begun.get(i));
            let mut all: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
            all.extend(prefix.map(|p| format!("\"{p}\"*")));
            format!("({})", all.join(" OR "))
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The tsquery: `('a' | 'b' | 'c':*) & (…)` (see [`alternatives`]). Each term is quoted, so a
/// listed term is read as a term whatever it holds.
fn tsquery(words: &[QueryWord], begun: &[Option<Vec<String>>]) -> String {
    let quote = |t: &str| format!("'{}'", t.replace('\\', "\\\\").replace('\'', "''"));
    words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let (terms, prefix) = alternatives(w, begun.get(i));
            let mut all: Vec<String> = terms.iter().map(|t| quote(t)).collect();
            all.extend(prefix.map(|p| format!("{}:*", quote(p))));
            format!("({})", all.join(" | "))
        })
        .collect::<Vec<_>>()
        .join(" & ")
}

/// SQLite backfill: up to `limit` terms of FTS5's vocabulary after `after`, into the list.
/// Returns how many and the last.
async fn list_vocabulary(
    conn: &mut AnyConnection,
    after: Option<String>,
    limit: i64,
) -> Result<(i64, Option<String>), StoreError> {
    let terms: Vec<String> = sqlx::query_scalar(
        "SELECT term FROM search_fts_vocab WHERE term > $1 ORDER BY term LIMIT $2",
    )
    .bind(after.unwrap_or_default())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    if !terms.is_empty() {
        let list = serde_json::to_string(&terms).unwrap_or_else(|_| "[]".into());
        sqlx::query("INSERT OR IGNORE INTO search_terms (term) SELECT value FROM json_each($1)")
            .bind(list)
            .execute(&mut *conn)
            .await?;
    }
    Ok((terms.len() as i64, terms.last().cloned()))
}

/// PostgreSQL backfill: the lexemes of up to `limit` rows after the row `after` (an id), into
/// the list. Returns how many rows and the last one's id.
async fn list_rows(
    conn: &mut AnyConnection,
    after: Option<String>,
    limit: i64,
) -> Result<(i64, Option<String>), StoreError> {
    let after: i64 = after.and_then(|a| a.parse().ok()).unwrap_or(i64::MIN);
    let row = sqlx::query(
        "WITH batch AS (
           SELECT id, tsv FROM search_docs WHERE id > $1 ORDER BY id LIMIT $2
         ), listed AS (
           INSERT INTO search_terms (term)
           SELECT DISTINCT t FROM batch, unnest(tsvector_to_array(batch.tsv)) AS t
           WHERE NOT EXISTS (SELECT 1 FROM search_terms s WHERE s.term = t)
         )
         SELECT COUNT(*) AS n, MAX(id) AS last FROM batch",
    )
    .bind(after)
    .bind(limit)
    .fetch_one(&mut *conn)
    .await?;
    let n: i64 = row.try_get("n")?;
    let last: Option<i64> = row.try_get("last")?;
    Ok((n, last.map(|l| l.to_string())))
}

/// How many of the newest visible matches `sort:best` ranks: enough that an operator's query
/// finds the best of months of conversations, few enough that a word in every third message
/// is ranked in tens of milliseconds (README, "Search": figures).
pub const BEST_CANDIDATES: i64 = 5_000;

/// PostgreSQL: how many of the newest rows a newest-first search with words reads before it
/// judges how rare its words are (see [`Store::search`]).
const WINDOW: i64 = 5_000;

/// PostgreSQL: what reading a match through the GIN index costs, in rows walked newest first.
const INDEX_READ_COST: f64 = 10.0;

impl Store {
    /// Rows matching `query` that `scope` may see, best or newest first, `limit` of them
    /// after skipping `offset`.
    pub async fn search(
        &self,
        query: &Query,
        scope: &Scope,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Hit>, StoreError> {
        let mut args = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        let has_words = !query.words.is_empty();
        // `from`, newest first, and (with words) a relevance score where lower is better.
        let (from, newest, score) = if !has_words {
            ("search_docs d".to_string(), "d.id DESC", None)
        } else if self.sqlite {
            let begun = self.search_prefix_terms(&query.words).await?;
            let m = arg(&mut args, Arg::Text(fts5_match(&query.words, &begun)));
            conds.push(format!("search_fts MATCH {m}"));
            (
                "search_fts JOIN search_docs d ON d.id = search_fts.rowid".to_string(),
                "search_fts.rowid DESC",
                Some("search_fts.rank".to_string()),
            )
        } else {
            let begun = self.search_prefix_terms(&query.words).await?;
            let q = arg(&mut args, Arg::Text(tsquery(&query.words, &begun)));
            conds.push(format!("d.tsv @@ to_tsquery('simple'::regconfig, {q})"));
            (
                "search_docs d".to_string(),
                "d.id DESC",
                Some(format!(
                    "-ts_rank(d.tsv, to_tsquery('simple'::regconfig, {q}))"
                )),
            )
        };
        let score = score.filter(|_| query.best);
        if let Some(channel) = &query.channel {
            let p = arg(&mut args, Arg::Text(channel.to_lowercase()));
            conds.push(format!("c.channel = {p}"));
        }
        if let Some(from) = &query.from {
            let p = arg(&mut args, Arg::Text(format!("%{}%", from.to_lowercase())));
            conds.push(format!(
                "(LOWER(d.sender) LIKE {p} OR (d.kind = 'in' AND LOWER(COALESCE(ct.display_name, '')) LIKE {p}))"
            ));
        }
        if let Some(team) = &query.team {
            let p = arg(&mut args, Arg::Text(team.clone()));
            conds.push(format!("r.team = {p}"));
        }
        if let Some(before) = query.before {
            let p = arg(&mut args, Arg::Int(before));
            conds.push(format!("d.ts < {p}"));
        }
        if let Some(after) = query.after {
            let p = arg(&mut args, Arg::Int(after));
            conds.push(format!("d.ts >= {p}"));
        }
        match query.media {
            Some(Media::File) => conds.push("d.media IS NOT NULL".into()),
            Some(m) => {
                let p = arg(&mut args, Arg::Text(m.as_str().into()));
                conds.push(format!("d.media = {p}"));
            }
            None => {}
        }
        if let Scope::Of { user, teams } = scope {
            let mut alts = vec!["r.team IS NULL".to_string()];
            let p = arg(&mut args, Arg::Text(user.clone()));
            alts.push(format!("r.owner = {p}"));
            if !teams.is_empty() {
                let list: Vec<String> = teams
                    .iter()
                    .map(|t| arg(&mut args, Arg::Text(t.clone())))
                    .collect();
                alts.push(format!("r.team IN ({})", list.join(", ")));
            }
            conds.push(format!("({})", alts.join(" OR ")));
        }
        let lim = arg(&mut args, Arg::Int(limit));
        let off = arg(&mut args, Arg::Int(offset));
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        // What a hit shows, for the rows `page` names (its `id`, and `score` when ranked).
        let columns = "d.id, d.conversation_id, c.room_id, COALESCE(d.event_id, m.event_id) AS event_id,
                    c.channel, ct.display_name, c.contact_id, d.sender, d.kind, d.media, d.ts, d.body";
        let shown = "JOIN conversations c ON c.id = d.conversation_id
             LEFT JOIN contacts ct ON ct.channel = c.channel AND ct.contact_id = c.contact_id
             LEFT JOIN message_map m ON m.conversation_id = d.conversation_id
                  AND m.remote_id = d.remote_id AND m.part = d.part";
        // The newest-first query, with `{from}` and `{newest}` left to fill.
        let plain_sql = format!(
            "SELECT {columns}
             FROM {{from}}
             JOIN conversations c ON c.id = d.conversation_id
             LEFT JOIN routing r ON r.conversation_id = d.conversation_id
             LEFT JOIN contacts ct ON ct.channel = c.channel AND ct.contact_id = c.contact_id
             LEFT JOIN message_map m ON m.conversation_id = d.conversation_id
                  AND m.remote_id = d.remote_id AND m.part = d.part
             {where_} ORDER BY {{newest}} LIMIT {lim} OFFSET {off}"
        );
        let sql = match &score {
            None => plain_sql
                .replace("{from}", &from)
                .replace("{newest}", newest),
            // Best first: rank the newest matches the asker may see (ranking every match of a
            // common word costs a scan of all of them), page through that ranking, and only
            // then read what the page's rows show (a customer's name, the Matrix event): the
            // candidates carry just what the filters need.
            Some(score) => format!(
                "SELECT {columns}, page.score
                 FROM (
                   SELECT id, score FROM ({candidates}) candidates
                   ORDER BY score, id DESC LIMIT {lim} OFFSET {off}
                 ) page
                 JOIN search_docs d ON d.id = page.id
                 {shown}
                 ORDER BY page.score, d.id DESC",
                candidates = if self.sqlite && conds.len() == 1 {
                    // Nothing but the words: the candidates are the index's newest entries,
                    // with no row read for them (every row has its conversation).
                    format!(
                        "SELECT search_fts.rowid AS id, {score} AS score FROM search_fts
                         {where_} ORDER BY {newest} LIMIT {BEST_CANDIDATES}"
                    )
                } else {
                    format!(
                        "SELECT d.id AS id, {score} AS score
                         FROM {from}
                         JOIN conversations c ON c.id = d.conversation_id
                         LEFT JOIN routing r ON r.conversation_id = d.conversation_id
                         {contacts}
                         {where_} ORDER BY {newest} LIMIT {BEST_CANDIDATES}",
                        contacts = if query.from.is_some() {
                            "LEFT JOIN contacts ct ON ct.channel = c.channel AND ct.contact_id = c.contact_id"
                        } else {
                            ""
                        },
                    )
                },
            ),
        };
        // PostgreSQL, newest first with words: its planner cannot tell a rare term from one in
        // 0.5% of rows (a lexeme below its statistics' most common ones is estimated at that),
        // so for a rare word it walks all history newest first, filtering every row (400 ms
        // at a million rows), where the GIN index would find the few rows at once. So first
        // the newest WINDOW rows only: a page found there is the answer. Else the density
        // seen there decides: few matches in all (10 · d² · rows < what the page needs) are read
        // through the index and sorted; more, newest first as the planner would.
        let rows = if !self.sqlite && has_words && score.is_none() {
            let window = format!("(SELECT * FROM search_docs ORDER BY id DESC LIMIT {WINDOW}) d");
            let recent = self
                .fetch_search(
                    plain_sql
                        .replace("{from}", &window)
                        .replace("{newest}", "d.id DESC"),
                    args.clone(),
                )
                .await?;
            if recent.len() as i64 >= limit {
                recent
            } else {
                let rows_in_all: f64 = sqlx::query_scalar(
                    "SELECT CAST(reltuples AS DOUBLE PRECISION) FROM pg_class
                     WHERE oid = CAST(to_regclass('search_docs') AS OID)",
                )
                .fetch_optional(self.pool())
                .await?
                .unwrap_or(0.0);
                // Matches in the window, counted past the page's offset.
                let seen = if recent.is_empty() {
                    0
                } else {
                    offset + recent.len() as i64
                };
                let density = seen as f64 / WINDOW as f64;
                // A match read through the index (a random heap read, then the sort) costs
                // about ten rows walked newest first (bench/search.rs at 200,000 messages).
                let few = INDEX_READ_COST * density * density * rows_in_all.max(WINDOW as f64)
                    < (offset + limit) as f64;
                // `d.id + 0`: an order no index gives, so the planner reads the matches
                // through the GIN index and sorts them.
                let order = if few { "d.id + 0 DESC" } else { "d.id DESC" };
                self.fetch_search(
                    plain_sql
                        .replace("{from}", "search_docs d")
                        .replace("{newest}", order),
                    args,
                )
                .await?
            }
        } else {
            self.fetch_search(sql, args).await?
        };
        rows.iter()
            .map(|r| {
                Ok(Hit {
                    doc_id: r.try_get("id")?,
                    conversation_id: r.try_get("conversation_id")?,
                    room_id: r.try_get("room_id")?,
                    event_id: r.try_get("event_id")?,
                    channel: r.try_get("channel")?,
                    customer: r.try_get("display_name")?,
                    contact_id: r.try_get("contact_id")?,
                    sender: r.try_get("sender")?,
                    kind: r.try_get("kind")?,
                    media: r.try_get("media")?,
                    ts: r.try_get("ts")?,
                    body: r.try_get("body")?,
                })
            })
            .collect()
    }

    /// Run a search's query with its arguments (every value bound; the text holds only
    /// [`Store::search`]'s own fragments).
    async fn fetch_search(
        &self,
        sql: String,
        args: Vec<Arg>,
    ) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        let mut q = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql));
        for a in args {
            q = match a {
                Arg::Text(s) => q.bind(s),
                Arg::Int(i) => q.bind(i),
            };
        }
        q.fetch_all(self.pool()).await
    }

    /// Whether the term list holds every indexed term, so prefixes are looked up in it. An
    /// instance that does not fill the list itself (a follower) learns it from the store when
    /// it next asks ([`Store::search_prefix_terms`]).
    pub fn search_terms_complete(&self) -> bool {
        self.search_terms_ready
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// For each query word, the indexed terms its prefix begins, when the term list is
    /// complete and they are few enough ([`MAX_PREFIX_TERMS`]); else `None` (the index's own
    /// prefix query). A term the list holds but no row does any more matches nothing.
    pub async fn search_prefix_terms(
        &self,
        words: &[QueryWord],
    ) -> Result<Vec<Option<Vec<String>>>, StoreError> {
        let mut out: Vec<Option<Vec<String>>> = vec![None; words.len()];
        if !words.iter().any(|w| w.prefix.is_some()) {
            return Ok(out);
        }
        if !self.search_terms_complete() {
            // Completed since (by the leader, or before a restart): from now on, use it.
            let ready: Option<String> =
                sqlx::query_scalar("SELECT value FROM search_state WHERE key = $1")
                    .bind(TERMS_READY)
                    .fetch_optional(self.pool())
                    .await?;
            if ready.is_none() {
                return Ok(out);
            }
            self.search_terms_ready
                .store(true, std::sync::atomic::Ordering::Release);
        }
        // One query for every word: each word's terms, up to one more than a match lists.
        let mut parts = Vec::new();
        let mut args: Vec<String> = Vec::new();
        for (i, w) in words.iter().enumerate() {
            let Some(p) = w.prefix.as_ref() else {
                continue;
            };
            out[i] = Some(Vec::new());
            // Every term that begins with p sorts from p up to p followed by the highest
            // code point (which no term holds: terms are letters and digits), in byte order
            // as both lists compare.
            args.push(p.clone());
            args.push(format!("{p}\u{10FFFF}"));
            parts.push(format!(
                "SELECT CAST({i} AS BIGINT) AS word, term FROM (SELECT DISTINCT term FROM search_terms
                   WHERE term >= ${} AND term < ${} ORDER BY term LIMIT {}) begun",
                args.len() - 1,
                args.len(),
                MAX_PREFIX_TERMS + 1
            ));
        }
        let sql = parts.join(" UNION ALL ");
        let mut q = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql));
        for a in args {
            q = q.bind(a);
        }
        for row in q.fetch_all(self.pool()).await? {
            let i: i64 = row.try_get("word")?;
            let term: String = row.try_get("term")?;
            if let Some(Some(list)) = out.get_mut(i as usize) {
                list.push(term);
            }
        }
        for o in &mut out {
            if o.as_ref()
                .is_some_and(|l| l.len() as i64 > MAX_PREFIX_TERMS)
            {
                *o = None;
            }
        }
        Ok(out)
    }

    /// List the terms of a store indexed before the term list existed, a batch at a time, on
    /// from where the last batch stopped (saved in `search_state` in the batch's own
    /// transaction, so a restart goes on from there). A batch is up to `limit` index entries
    /// in term order on SQLite (FTS5's vocabulary), up to `limit` rows in id order on
    /// PostgreSQL (their tsvectors; rows written meanwhile are listed by the trigger). Returns
    /// how many; 0 when the list is complete (from then on searches use it).
    pub async fn search_terms_backfill_batch(&self, limit: i64) -> Result<u64, StoreError> {
        if self.search_terms_complete() {
            return Ok(0);
        }
        let mut tx = self.pool().begin().await?;
        let after: Option<String> =
            sqlx::query_scalar("SELECT value FROM search_state WHERE key = $1")
                .bind(TERMS_AFTER)
                .fetch_optional(&mut *tx)
                .await?;
        let (listed, last) = if self.sqlite {
            list_vocabulary(&mut tx, after, limit).await?
        } else {
            list_rows(&mut tx, after, limit).await?
        };
        let done = listed < limit;
        let (key, value) = match last {
            Some(last) if !done => (TERMS_AFTER, last),
            _ => (TERMS_READY, "1".to_string()),
        };
        sqlx::query(
            "INSERT INTO search_state (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if done {
            self.search_terms_ready
                .store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(listed.max(1) as u64)
    }

    /// Index a private note (its event is the note's only other record, and is pruned with
    /// time). Idempotent by event id.
    pub async fn index_note(
        &self,
        conversation_id: i64,
        event_id: &str,
        author: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        let doc = NewDoc {
            conversation_id,
            remote: None,
            event_id: Some(event_id.to_string()),
            kind: Kind::Note,
            sender: author.to_string(),
            media: None,
            ts: now_ms(),
            body: text.to_string(),
        };
        insert_doc(&mut conn, &doc).await
    }

    /// Index many rows in one transaction (seeding a benchmark or importing history).
    pub async fn index_docs(&self, docs: &[NewDoc]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for doc in docs {
            insert_doc(&mut tx, doc).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Rewrite the terms of up to `limit` rows written by another analyzer version, in one
    /// transaction. Returns how many; 0 when the index is up to date. Each batch stands on its
    /// own, so a rebuild stopped anywhere goes on from there.
    pub async fn search_reindex_batch(&self, limit: i64) -> Result<u64, StoreError> {
        let rows = sqlx::query(
            "SELECT id, body FROM search_docs WHERE analyzer <> $1 ORDER BY analyzer, id LIMIT $2",
        )
        .bind(analyzer::VERSION)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool().begin().await?;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let body: String = row.try_get("body")?;
            sqlx::query("UPDATE search_docs SET terms = $1, analyzer = $2 WHERE id = $3")
                .bind(analyzer::index_terms(&body))
                .bind(analyzer::VERSION)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// Mark every row for reindexing (`switchboard search reindex --all`); on SQLite the FTS
    /// table is rebuilt from the rows too.
    pub async fn search_mark_all_stale(&self) -> Result<u64, StoreError> {
        let n = sqlx::query("UPDATE search_docs SET analyzer = 0")
            .execute(self.pool())
            .await?
            .rows_affected();
        if self.sqlite {
            self.pool()
                .execute("INSERT INTO search_fts (search_fts) VALUES ('rebuild')")
                .await?;
        }
        Ok(n)
    }

    /// Rows still written by another analyzer version.
    pub async fn search_stale_count(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM search_docs WHERE analyzer <> $1")
            .bind(analyzer::VERSION)
            .fetch_one(self.pool())
            .await
    }

    /// Remember an operator's last search and how far it was shown.
    pub async fn put_search_session(
        &self,
        user: &str,
        query: &str,
        shown: i64,
        scanned: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO search_sessions (user_id, query, shown, scanned, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (user_id) DO UPDATE SET query = excluded.query, shown = excluded.shown,
               scanned = excluded.scanned, updated_at = excluded.updated_at",
        )
        .bind(user)
        .bind(query)
        .bind(shown)
        .bind(scanned)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// An operator's last search: (query, shown, scanned).
    pub async fn search_session(
        &self,
        user: &str,
    ) -> Result<Option<(String, i64, i64)>, StoreError> {
        let row =
            sqlx::query("SELECT query, shown, scanned FROM search_sessions WHERE user_id = $1")
                .bind(user)
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| {
            Ok((
                r.try_get("query")?,
                r.try_get("shown")?,
                r.try_get("scanned")?,
            ))
        })
        .transpose()
    }

    /// The operator's direct chat with the bot, if one was made.
    pub async fn operator_dm(&self, user: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT room_id FROM operator_dms WHERE user_id = $1")
            .bind(user)
            .fetch_optional(self.pool())
            .await
    }

    pub async fn set_operator_dm(&self, user: &str, room_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO operator_dms (user_id, room_id) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET room_id = excluded.room_id",
        )
        .bind(user)
        .bind(room_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_channel::{Attachment, ContactProfile, ConversationKey, MediaRef};

    fn inbound(remote_id: &str, text: &str, attachments: Vec<Attachment>) -> Inbound {
        Inbound {
            conversation: ConversationKey {
                account: "acct".into(),
                chat: "chat-1".into(),
            },
            sender: ContactProfile {
                id: "cust-1".into(),
                display_name: Some("Оксана".into()),
                ..Default::default()
            },
            timestamp_ms: 1_700_000_000_000,
            dedup_key: remote_id.into(),
            event: InboundEvent::Message {
                remote_id: remote_id.into(),
                content: Content {
                    text: text.into(),
                    html: None,
                    attachments,
                },
                reply_to: None,
            },
            addressed_to: None,
            group: None,
        }
    }

    fn q(words: &str) -> Query {
        Query {
            words: analyzer::query_words(words),
            ..Default::default()
        }
    }

    async fn bodies(store: &Store, query: &Query) -> Vec<String> {
        store
            .search(query, &Scope::All, 0, 50)
            .await
            .expect("search")
            .into_iter()
            .map(|h| h.body)
            .collect()
    }

    /// What the inbox stores is findable at once, by any form of its words, and its files by
    /// name; a redelivery adds nothing; an edit replaces the text; a deletion removes it.
    #[tokio::test]
    async fn inbound_messages_are_indexed_with_the_inbox() {
        let (_dir, _, store) = crate::store::temp_store(2).await;
        let file = Attachment {
            media: MediaRef("mxc://hs/1".into()),
            name: "рахунок-травень.pdf".into(),
            mime: "application/pdf".into(),
            size: 10,
        };
        let first = inbound(
            "m1",
            "Надішліть, будь ласка, рахунку за травень",
            vec![file],
        );
        assert!(store.inbox_insert("web", "@g:hs", &first).await.unwrap());
        assert!(!store.inbox_insert("web", "@g:hs", &first).await.unwrap());
        store
            .inbox_insert(
                "web",
                "@g:hs",
                &inbound("m2", "Pembayaran sudah diterima", vec![]),
            )
            .await
            .unwrap();
        let found = bodies(&store, &q("рахунок")).await;
        assert_eq!(
            found,
            [
                "рахунок-травень.pdf",
                "Надішліть, будь ласка, рахунку за травень"
            ],
            "newest first"
        );
        assert_eq!(
            bodies(&store, &q("bayar")).await,
            ["Pembayaran sudah diterima"]
        );
        assert_eq!(
            bodies(&store, &q("травень pdf")).await,
            ["рахунок-травень.pdf"]
        );
        assert!(bodies(&store, &q("доставка")).await.is_empty());
        let files = Query {
            media: Some(Media::File),
            ..q("рахунок")
        };
        assert_eq!(bodies(&store, &files).await, ["рахунок-травень.pdf"]);

        let mut edit = inbound("m2-edit", "", vec![]);
        edit.event = InboundEvent::Edit {
            remote_id: "m2".into(),
            content: Content {
                text: "Payment received".into(),
                ..Default::default()
            },
        };
        store.inbox_insert("web", "@g:hs", &edit).await.unwrap();
        assert!(bodies(&store, &q("bayar")).await.is_empty());
        assert_eq!(bodies(&store, &q("payments")).await, ["Payment received"]);

        let mut delete = inbound("m1-delete", "", vec![]);
        delete.event = InboundEvent::Delete {
            remote_id: "m1".into(),
        };
        store.inbox_insert("web", "@g:hs", &delete).await.unwrap();
        assert!(bodies(&store, &q("рахунок")).await.is_empty());
    }

    /// The index and the rows cannot part: a failed inbox write leaves neither.
    #[tokio::test]
    async fn a_failed_inbox_write_indexes_nothing() {
        let (_dir, _, store) = crate::store::temp_store(1).await;
        sqlx::query("DROP TABLE inbox")
            .execute(store.pool())
            .await
            .unwrap();
        let r = store
            .inbox_insert("web", "@g:hs", &inbound("m1", "счёт за май", vec![]))
            .await;
        assert!(r.is_err());
        assert!(bodies(&store, &q("счет")).await.is_empty());
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM search_docs")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(rows, 0);
    }

    /// An operator sees their teams' conversations, those with no team and those they own;
    /// an admin sees all.
    #[tokio::test]
    async fn the_scope_limits_what_is_found() {
        let (_dir, _, store) = crate::store::temp_store(2).await;
        for chat in ["a", "b", "none", "owned"] {
            let mut m = inbound(&format!("m-{chat}"), &format!("счёт {chat}"), vec![]);
            m.conversation.chat = chat.into();
            m.dedup_key = chat.into();
            store.inbox_insert("web", "@g:hs", &m).await.unwrap();
            let id: i64 = sqlx::query_scalar("SELECT id FROM conversations WHERE chat = $1")
                .bind(chat)
                .fetch_one(store.pool())
                .await
                .unwrap();
            let (team, owner) = match chat {
                "a" => (Some("team-a"), None),
                "b" => (Some("team-b"), None),
                "owned" => (Some("team-b"), Some("@ann:hs")),
                _ => (None, None),
            };
            sqlx::query(
                "INSERT INTO routing (conversation_id, team, owner, state, updated_at)
                 VALUES ($1, $2, $3, 'open', 0)",
            )
            .bind(id)
            .bind(team)
            .bind(owner)
            .execute(store.pool())
            .await
            .unwrap();
        }
        let query = q("счета");
        let found = |scope: Scope| {
            let store = store.clone();
            let query = query.clone();
            async move {
                let mut b: Vec<String> = store
                    .search(&query, &scope, 0, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|h| h.body)
                    .collect();
                b.sort();
                b
            }
        };
        let ann = Scope::Of {
            user: "@ann:hs".into(),
            teams: vec!["team-a".into()],
        };
        assert_eq!(found(ann).await, ["счёт a", "счёт none", "счёт owned"]);
        let bob = Scope::Of {
            user: "@bob:hs".into(),
            teams: vec![],
        };
        assert_eq!(found(bob).await, ["счёт none"]);
        assert_eq!(found(Scope::All).await.len(), 4);
    }

    /// A change of analyzer: stale rows are rewritten in batches until none is left, and are
    /// found again.
    #[tokio::test]
    async fn reindexing_rewrites_stale_rows_in_batches() {
        let (_dir, _, store) = crate::store::temp_store(2).await;
        for i in 0..5 {
            store
                .inbox_insert(
                    "web",
                    "@g:hs",
                    &inbound(&format!("m{i}"), &format!("счета номер {i}"), vec![]),
                )
                .await
                .unwrap();
        }
        // As an older analyzer would have left them: no stems.
        sqlx::query("UPDATE search_docs SET terms = 'x', analyzer = 0")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(bodies(&store, &q("счёт")).await.is_empty());
        assert_eq!(store.search_stale_count().await.unwrap(), 5);
        assert_eq!(store.search_reindex_batch(2).await.unwrap(), 2);
        assert_eq!(store.search_stale_count().await.unwrap(), 3);
        while store.search_reindex_batch(2).await.unwrap() > 0 {}
        assert_eq!(bodies(&store, &q("счёт")).await.len(), 5);
        assert_eq!(store.search_mark_all_stale().await.unwrap(), 5);
        while store.search_reindex_batch(2).await.unwrap() > 0 {}
        assert_eq!(bodies(&store, &q("счёт")).await.len(), 5);
    }

    /// Both queries are written from one rule: a prefix the term list gives terms for is
    /// matched as those terms, never as the index's prefix query; one it gives none for (too
    /// many, or a list still being filled) as the index's prefix query. (The store-level
    /// behaviour, on both databases: `tests/search.rs`.)
    #[test]
    fn listed_prefixes_are_written_as_terms_on_both_databases() {
        let words = q("pembay 12").words;
        assert_eq!(words[1].prefix, None, "too short to be a prefix");
        let listed = [Some(vec!["pembayaran".to_string()]), None];
        let m = fts5_match(&words, &listed);
        assert!(m.contains("\"pembayaran\"") && !m.contains('*'), "{m}");
        let t = tsquery(&words, &listed);
        assert!(t.contains("'pembayaran'") && !t.contains(":*"), "{t}");
        let unlisted = [None, None];
        assert!(fts5_match(&words, &unlisted).contains("\"pembay\"*"));
        assert!(tsquery(&words, &unlisted).contains("'pembay':*"));
        // A term holding what tsquery syntax reads stays one quoted term.
        let odd = [Some(vec!["o'k\\".to_string()]), None];
        assert!(tsquery(&words, &odd).contains("'o''k\\\\'"));
    }
}
