-- A room's pending events are read in order (outbound.rs drains one room at a time): an index
-- over pending events only, so it stays small however much history is kept.
CREATE INDEX matrix_events_room_pending ON matrix_events (room_id, seq) WHERE state = 'pending';
-- Handled events and transaction ids are pruned by age (src/housekeeping.rs).
CREATE INDEX matrix_events_received ON matrix_events (received_at);
CREATE INDEX appservice_txns_received ON appservice_txns (received_at);
