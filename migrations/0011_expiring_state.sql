-- Channel state that goes away by itself unless written again: a web chat visitor who opened a
-- session but never wrote (src/store/channel_state.rs; pruned by src/housekeeping.rs).
-- NULL: kept for good (every value written before this migration, and every plain state_put).
ALTER TABLE channel_state ADD COLUMN expires_at BIGINT;
CREATE INDEX channel_state_expiry ON channel_state (expires_at);
