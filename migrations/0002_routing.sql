-- Routing: who owns a conversation, its state, and its timers (stored, so they survive restarts).
CREATE TABLE routing (
    conversation_id  BIGINT PRIMARY KEY,
    team             TEXT,
    owner            TEXT,
    state            TEXT NOT NULL,
    snooze_until     BIGINT,
    unworked_since   BIGINT,
    remind_at        BIGINT,
    escalate_at      BIGINT,
    reminded         BIGINT NOT NULL DEFAULT 0,
    escalated        BIGINT NOT NULL DEFAULT 0,
    auto_reply_day   TEXT,
    lobby_room       TEXT,
    lobby_event      TEXT,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX routing_timers ON routing (unworked_since, escalate_at);

-- Operators who have written in a conversation (they stay when someone claims it).
CREATE TABLE participants (
    conversation_id  BIGINT NOT NULL,
    user_id          TEXT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);

-- The bot's lobby room per team ('' is the lobby of conversations with no team).
CREATE TABLE team_lobbies (
    team     TEXT PRIMARY KEY,
    room_id  TEXT NOT NULL
);

-- Changes admins made with commands, over the config: members (role member|lead|removed) and
-- settings (escalate_after, auto_reply).
CREATE TABLE team_members (
    team     TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    role     TEXT NOT NULL,
    PRIMARY KEY (team, user_id)
);
CREATE TABLE team_settings (
    team   TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (team, key)
);

-- When each operator was last handed a conversation (round robin fairness).
CREATE TABLE assignments (
    user_id        TEXT PRIMARY KEY,
    last_assigned  BIGINT NOT NULL
);

-- The operator who last handled a customer (sticky routing).
ALTER TABLE contacts ADD COLUMN last_owner TEXT;
