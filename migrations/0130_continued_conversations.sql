-- Conversations continued on another channel (src/store/continued.rs): a web chat visitor who
-- left the page and gave an e-mail address is answered by e-mail, and their reply by e-mail
-- must land in the same conversation and room. One row per conversation and channel it is
-- continued on: `channel`/`account`/`chat` is the key the other channel knows it by (its
-- `ConversationKey`), `address` the customer's address there.
CREATE TABLE continued_conversations (
    conversation_id  BIGINT NOT NULL,
    channel          TEXT NOT NULL,
    account          TEXT NOT NULL,
    chat             TEXT NOT NULL,
    address          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, channel)
);
CREATE UNIQUE INDEX continued_conversations_key ON continued_conversations (channel, account, chat);
