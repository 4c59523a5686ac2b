-- Search over all history (src/store/search.rs). One row per thing that can be found: a customer's
-- message part (its text, or one attachment's file name), an operator's message, a private note.
-- Inbound rows are written in the transaction that stores the inbox event, before any Matrix
-- event exists: they name the remote message (`remote_id`, `part`), and message_map gives the
-- event. Outbound rows and notes name their Matrix event at once.
--
-- `terms` is the analyzer's output (src/search/analyzer.rs), the text the full-text index
-- covers; `analyzer` is the version that wrote it (a newer analyzer rewrites older rows in the
-- background). The index itself differs by database and is created at start-up beside these
-- migrations (src/store/search.rs, `ensure_index`): an FTS5 table kept in step by triggers on
-- SQLite, a GIN index over a stored column tsv = to_tsvector('simple', terms) on PostgreSQL.
CREATE TABLE search_docs (
    id               BIGINT PRIMARY KEY,
    conversation_id  BIGINT NOT NULL,
    remote_id        TEXT,
    part             BIGINT NOT NULL DEFAULT 0,
    event_id         TEXT,
    kind             TEXT NOT NULL,
    sender           TEXT NOT NULL,
    media            TEXT,
    ts               BIGINT NOT NULL,
    body             TEXT NOT NULL,
    terms            TEXT NOT NULL,
    analyzer         BIGINT NOT NULL
);
CREATE UNIQUE INDEX search_docs_remote ON search_docs (conversation_id, remote_id, part);
CREATE UNIQUE INDEX search_docs_event ON search_docs (event_id);
CREATE INDEX search_docs_conversation ON search_docs (conversation_id, id);
CREATE INDEX search_docs_analyzer ON search_docs (analyzer, id);

-- The last search of each operator, for `!sb search more` (the query and how far its results
-- were shown).
CREATE TABLE search_sessions (
    user_id     TEXT PRIMARY KEY,
    query       TEXT NOT NULL,
    shown       BIGINT NOT NULL,
    scanned     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Each operator's direct chat with the bot, where search results go.
CREATE TABLE operator_dms (
    user_id  TEXT PRIMARY KEY,
    room_id  TEXT NOT NULL
);
