-- Customer ratings (CSAT, src/store/csat.rs, src/csat.rs): one row per resolution of a
-- conversation, written in the same transaction as its `resolved` event, so a resolution is
-- asked about at most once and a crash loses none. The timer worker decides what happens to it:
--   state:  due       waiting for the team's delay (or for the worker to find the team has CSAT off)
--           sent      the customer was asked; `nonce` binds the question's buttons to this row
--           rated     the customer answered (`score` 1–5, an optional `comment`)
--           cancelled the conversation opened again before the question went out, or CSAT is off
--           skipped   not asked (`reason`: the reply window had closed, the customer wrote instead)
--   owner:  the operator the rating is about (the owner when it was resolved)
--   channel, contact_id: the customer it was asked of (sticky routing reads their ratings)
--   comment_until: until when the customer's next message is taken as the rating's comment
--   answer_key, comment_key: the inbox rows that were the answer and the comment (a replay of
--           either after a crash is recognised, not taken for a second message)
CREATE TABLE csat_requests (
    id               BIGINT PRIMARY KEY,
    conversation_id  BIGINT NOT NULL,
    resolved_at      BIGINT NOT NULL,
    team             TEXT,
    owner            TEXT,
    channel          TEXT NOT NULL,
    contact_id       TEXT NOT NULL,
    state            TEXT NOT NULL,
    nonce            TEXT UNIQUE,
    sent_at          BIGINT,
    score            BIGINT,
    comment          TEXT,
    rated_at         BIGINT,
    comment_until    BIGINT,
    answer_key       TEXT,
    comment_key      TEXT,
    reason           TEXT
);
CREATE INDEX csat_requests_state ON csat_requests (state);
CREATE INDEX csat_requests_conversation ON csat_requests (conversation_id, id);
CREATE INDEX csat_requests_owner ON csat_requests (owner, rated_at);
