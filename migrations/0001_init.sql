-- One schema for SQLite and PostgreSQL: only BIGINT and TEXT columns, ids assigned by the
-- application (src/store/mod.rs), ON CONFLICT DO NOTHING for idempotent inserts.

-- Homeserver transactions already processed (replays change nothing).
CREATE TABLE appservice_txns (
    txn_id      TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL
);

-- One customer identity on one channel, and the ghost that speaks for it.
CREATE TABLE contacts (
    channel        TEXT NOT NULL,
    contact_id     TEXT NOT NULL,
    ghost_user_id  TEXT NOT NULL,
    display_name   TEXT,
    email          TEXT,
    phone          TEXT,
    registered     BIGINT NOT NULL DEFAULT 0,
    synced_name    TEXT,
    PRIMARY KEY (channel, contact_id)
);

-- One customer thread on one account; the portal room.
CREATE TABLE conversations (
    id          BIGINT PRIMARY KEY,
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    chat        TEXT NOT NULL,
    contact_id  TEXT NOT NULL,
    room_id     TEXT,
    created_at  BIGINT NOT NULL,
    UNIQUE (channel, account, chat)
);
CREATE INDEX conversations_room ON conversations (room_id);

-- Events received from channels, stored before the source is acknowledged.
CREATE TABLE inbox (
    id               BIGINT PRIMARY KEY,
    channel          TEXT NOT NULL,
    account          TEXT NOT NULL,
    dedup_key        TEXT NOT NULL,
    conversation_id  BIGINT NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    received_at      BIGINT NOT NULL,
    UNIQUE (channel, account, dedup_key)
);
CREATE INDEX inbox_pending ON inbox (state, conversation_id, id);

-- Events pushed by the homeserver, stored before the transaction is answered.
CREATE TABLE matrix_events (
    event_id     TEXT PRIMARY KEY,
    seq          BIGINT NOT NULL,
    room_id      TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL,
    received_at  BIGINT NOT NULL
);
CREATE INDEX matrix_events_pending ON matrix_events (state, seq);

-- Operator messages waiting for (or done with) delivery to the channel.
CREATE TABLE outbox (
    id               BIGINT PRIMARY KEY,
    conversation_id  BIGINT NOT NULL,
    event_id         TEXT NOT NULL UNIQUE,
    room_id          TEXT NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT,
    remote_id        TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX outbox_pending ON outbox (state, conversation_id, id);

-- Remote message id <-> Matrix event id. A remote message may become several events (text and
-- each attachment): `part` numbers them, 0 being the first.
CREATE TABLE message_map (
    conversation_id  BIGINT NOT NULL,
    remote_id        TEXT NOT NULL,
    part             BIGINT NOT NULL,
    event_id         TEXT NOT NULL,
    direction        TEXT NOT NULL,
    PRIMARY KEY (conversation_id, remote_id, part)
);
CREATE INDEX message_map_event ON message_map (event_id);

-- Channels' own durable state.
CREATE TABLE channel_state (
    channel  TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (channel, key)
);

CREATE TABLE channel_log (
    channel  TEXT NOT NULL,
    stream   TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    key      TEXT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (channel, stream, seq),
    UNIQUE (channel, stream, key)
);
