-- A room's pending events are read in order (outbound.rs drains one room at a time): an index
-- over pending events only, so it stays small however much history is kept.
CREATE INDEX matrix_events_room_pending ON matrix_events (room_id, seq) WHERE state = 'pending';
-- Handled events and transaction ids are pruned by age (src/housekeeping.rs).
CREATE INDEX matrix_events_received ON matrix_events (received_at);
CREATE INDEX appservice_txns_received ON appservice_txns (received_at);

-- Homeserver transactions can arrive out of order around a failure (Synapse sends the next
-- transaction before its recoverer re-sends the one that failed). Transaction ids that are
-- numbers are remembered, missing ones are gaps, and events after a gap are held until the gap
-- is filled or has waited long enough (src/store/matrix_events.rs).
ALTER TABLE appservice_txns ADD COLUMN txn_num BIGINT;
CREATE INDEX appservice_txns_num ON appservice_txns (txn_num);
ALTER TABLE matrix_events ADD COLUMN txn_num BIGINT;
ALTER TABLE matrix_events ADD COLUMN hold_until BIGINT NOT NULL DEFAULT 0;
CREATE TABLE appservice_txn_gaps (
    txn_num    BIGINT PRIMARY KEY,
    opened_at  BIGINT NOT NULL
);
