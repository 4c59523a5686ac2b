-- Reports (src/store/report_reads.rs) count a period's messages, find who wrote, and read its
-- routing events by kind and time: this index holds every column those reads need, so they
-- scan the period's events of the kinds they want without touching the table.
CREATE INDEX conversation_events_kind_at
    ON conversation_events (kind, at, conversation_id, team, owner, actor);
