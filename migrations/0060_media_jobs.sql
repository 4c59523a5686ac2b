-- Media jobs (src/store/media_jobs.rs, src/media/): a voice note to transcribe or an image to
-- read (OCR), one row per file (its Matrix event) and kind, worked like the outbox: claimed,
-- retried with backoff, resumed after a restart, never run twice for one file (a result, once
-- stored, is posted and indexed without running the engine again).
--   kind:        transcribe | ocr
--   event_id:    the Matrix event of the file (what the bot's answer replies to)
--   remote_id, part: the customer's message and which of its events, for the search row
--   sender, from_customer: whose file (a contact id, or an operator's user id)
--   state:       pending (due at next_attempt_at) | running (claimed until lease_until) |
--                done | failed (last_error says why)
--   round:       0 for the automatic run; each `!sb transcribe` / `!sb ocr` starts a new one
--                (requested_by, request_event: who asked, and where the answer goes)
--   result:      the text the engine found (stored before it is posted: a crash between the
--                two posts it without running the engine again); answer_event: the bot's post
CREATE TABLE media_jobs (
    id               BIGINT PRIMARY KEY,
    kind             TEXT NOT NULL,
    conversation_id  BIGINT NOT NULL,
    room_id          TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    remote_id        TEXT,
    part             BIGINT NOT NULL DEFAULT 0,
    media            TEXT NOT NULL,
    mime             TEXT NOT NULL,
    name             TEXT NOT NULL,
    size             BIGINT NOT NULL DEFAULT 0,
    sender           TEXT NOT NULL,
    from_customer    BIGINT NOT NULL DEFAULT 1,
    ts               BIGINT NOT NULL,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT,
    round            BIGINT NOT NULL DEFAULT 0,
    requested_by     TEXT,
    request_event    TEXT,
    last_error       TEXT,
    result           TEXT,
    answer_event     TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX media_jobs_file ON media_jobs (event_id, kind);
CREATE INDEX media_jobs_due ON media_jobs (state, next_attempt_at);
