-- How often an outbox item's delivery waited for the bridge's own store (or media repository)
-- rather than failing at the channel (src/relay/outbox_to_channel.rs): such waits space the next
-- try like attempts do, but never count against `bridge.max_attempts`.
ALTER TABLE outbox ADD COLUMN host_waits BIGINT NOT NULL DEFAULT 0;
