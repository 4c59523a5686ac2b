-- Outside input a channel could not read and that named no conversation (src/store/unreadable.rs):
-- kept raw, and shown as a notice in the admin room (`bridge.admin_room`); `posted_at` is set once
-- the notice is sent, so one that could not be sent is sent again later.
CREATE TABLE unreadable_input (
    id          BIGINT PRIMARY KEY,
    channel     TEXT NOT NULL,
    dedup_key   TEXT NOT NULL,
    what        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    raw         TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    posted_at   BIGINT,
    UNIQUE (channel, dedup_key)
);
CREATE INDEX unreadable_input_unposted ON unreadable_input (id) WHERE posted_at IS NULL;
