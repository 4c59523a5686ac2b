-- When the customer last wrote (the network's timestamp, ms): opens the reply window of channels
-- that have one (24 h on WhatsApp, Messenger and Instagram).
ALTER TABLE conversations ADD COLUMN last_customer_message_at BIGINT;
