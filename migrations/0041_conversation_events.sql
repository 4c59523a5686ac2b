-- Conversation events (src/store/events.rs): one append-only row per thing that happened to a
-- conversation, written in the same transaction as the change it records. Reports and ratings
-- read it; nothing is counted in memory only.
--   kind:   created, customer_message, operator_answer, first_response, assigned, unassigned,
--           transferred, escalated, snoozed, resolved, reopened, rated
--   at:     the bridge's clock (ms), so tests moving the clock see their own times
--   actor:  the operator who did it; NULL for the customer and for the bridge's own timers
--   team, owner: the conversation's team and owner right after the event
--   detail: what the kind needs (the previous owner or team, the snooze's end, a rating)
--   dedup:  for events a replay could repeat (a message's id); NULL otherwise
CREATE TABLE conversation_events (
    id               BIGINT PRIMARY KEY,
    conversation_id  BIGINT NOT NULL,
    at               BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    actor            TEXT,
    team             TEXT,
    owner            TEXT,
    detail           TEXT,
    dedup            TEXT UNIQUE
);
CREATE INDEX conversation_events_at ON conversation_events (at);
CREATE INDEX conversation_events_conversation ON conversation_events (conversation_id, id);
