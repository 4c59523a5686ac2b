-- Report figures (src/store/figures.rs): what a report reads instead of replaying every
-- conversation event. Written in the same transaction as the event they count (events::insert),
-- or by the resumable backfill for events from before this migration (figured = 0).
--   figured: 1 once an event is in the figures below (every event written by this version)
ALTER TABLE conversation_events ADD COLUMN figured BIGINT NOT NULL DEFAULT 0;
CREATE INDEX conversation_events_unfigured ON conversation_events (id) WHERE figured = 0;

-- Counted events per bucket of time (span 'h': hour, 'd': UTC day; bucket = at / span length),
-- per kind ('rated:N' for a rating of N), team, operator (who: the actor of an answer or a
-- resolution, else the owner; '' for none), team ('' for none) and the conversation's channel.
CREATE TABLE report_counts (
    span     TEXT NOT NULL,
    bucket   BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    team     TEXT NOT NULL,
    who      TEXT NOT NULL,
    channel  TEXT NOT NULL,
    n        BIGINT NOT NULL,
    PRIMARY KEY (span, bucket, kind, team, who, channel)
);

-- The conversations a customer wrote in, per bucket and team (the channel mix).
CREATE TABLE report_writers (
    span             TEXT NOT NULL,
    bucket           BIGINT NOT NULL,
    conversation_id  BIGINT NOT NULL,
    team             TEXT NOT NULL,
    PRIMARY KEY (span, bucket, conversation_id, team)
);

-- One row per first response and resolution: its cycle's start (NULL: the conversation has no
-- created/reopened event before it) and its working time on the team's calendar, with the
-- calendar's fingerprint (recomputed when the calendar changes; 0: the team has no calendar).
CREATE TABLE report_durations (
    event_id    BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    team        TEXT NOT NULL,
    who         TEXT NOT NULL,
    channel     TEXT NOT NULL,
    start_at    BIGINT,
    working_ms  BIGINT,
    calendar    BIGINT
);
CREATE INDEX report_durations_kind_at ON report_durations (kind, at, team, who, channel, start_at, working_ms, calendar);

-- The backfill's lock row: each batch starts by updating it, so two instances never count an
-- event twice.
CREATE TABLE report_figures_backfill (
    id       BIGINT PRIMARY KEY,
    batches  BIGINT NOT NULL
);
INSERT INTO report_figures_backfill (id, batches) VALUES (1, 0);
