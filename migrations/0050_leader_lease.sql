-- Leadership (src/leader.rs, src/store/lease.rs). Several instances may share one PostgreSQL
-- store; exactly one of them, the leader, runs the workers, pollers and timers. It holds the
-- lease named 'leader' here: `holder` is its instance id, `epoch` (the fencing token) grows by
-- one at every change of holder, `expires_at` (ms since the epoch, on the database's clock) is
-- pushed forward at every renewal. A lease past `expires_at` may be taken by any instance.
-- Workers' commits check that (holder, epoch) is still theirs, so work claimed under an old
-- epoch is refused. On SQLite (one instance only) the same table holds that one instance's lease.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    epoch       BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL
);
-- The epoch under which an outbox item was last claimed for sending (NULL: never).
ALTER TABLE outbox ADD COLUMN claimed_epoch BIGINT;
