-- Weekly report digests (src/reports/digest.rs, src/store/digests.rs): one row per team and
-- week, so a digest goes out once per week however often the bridge restarts.
--   week:   the local date (team's time zone) of the week's scheduled moment, YYYY-MM-DD
--   due_at: that moment (ms)
--   state:  'baseline' (the week the schedule was first seen: nothing is sent for it, so a new
--           bridge does not post last week's digest), 'sending' (claimed; posted again with the
--           same transaction ids after a crash), 'sent'
CREATE TABLE report_digests (
    team     TEXT NOT NULL,
    week     TEXT NOT NULL,
    due_at   BIGINT NOT NULL,
    state    TEXT NOT NULL,
    sent_at  BIGINT,
    PRIMARY KEY (team, week)
);
