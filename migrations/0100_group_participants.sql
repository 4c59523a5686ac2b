-- The remote people of a group conversation (a Telegram group, a Discord guild channel, an email
-- thread with several customer addresses; `Inbound::group` in the channel contract): one row per
-- person who wrote in it or was addressed in it (an email's Cc). Answers to the group include
-- those not removed, whoever wrote last first (`Outbound::participants`; src/store/participants.rs).
--   last_message_at: when they last wrote (the channel's time, ms); 0 if they never wrote
--   removed:         1 once an operator removed their ghost from the room; their next message
--                    brings them back (0)
CREATE TABLE conversation_participants (
    conversation_id  BIGINT NOT NULL,
    contact_id       TEXT NOT NULL,
    last_message_at  BIGINT NOT NULL DEFAULT 0,
    removed          BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, contact_id)
);
