-- When a gap was "nudged": one transaction after it was refused so that the homeserver's
-- recoverer re-sends the oldest unsent one (src/store/matrix_events.rs).
ALTER TABLE appservice_txn_gaps ADD COLUMN nudged_at BIGINT NOT NULL DEFAULT 0;
