-- An operator's message longer than its channel carries is sent as several messages
-- (src/split.rs); an edit or deletion of such a message touches each of them. `steps_done`
-- counts the remote sends of an outbox entry already made, so a retry after a failure or a
-- crash goes on from there and never sends a part twice (src/delivery.rs).
ALTER TABLE outbox ADD COLUMN steps_done BIGINT NOT NULL DEFAULT 0;
