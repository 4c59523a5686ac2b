-- The highest event seq is read at start, so ids stay above every stored one even when the
-- clock stepped back while the bridge was down (src/store/mod.rs, `seed_ids`).
CREATE INDEX matrix_events_seq ON matrix_events (seq);
