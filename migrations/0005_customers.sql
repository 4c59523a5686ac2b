-- Customers: a person behind one or more contacts (linked by exact E.164 phone or email match, or
-- by operators with `!sb link`). Routing reads its segment tags and its last owner (sticky
-- across channels).
CREATE TABLE customers (
    id          BIGINT PRIMARY KEY,
    last_owner  TEXT,
    created_at  BIGINT NOT NULL
);

-- Segment tags of a customer (lowercase words; routing rules match them).
CREATE TABLE customer_tags (
    customer_id  BIGINT NOT NULL,
    tag          TEXT NOT NULL,
    PRIMARY KEY (customer_id, tag)
);

ALTER TABLE contacts ADD COLUMN customer_id BIGINT;
-- An operator's decision about this contact ('linked' or 'unlinked', and who): automatic
-- matching never moves it again, and an unlinked contact is never matched to anyone.
ALTER TABLE contacts ADD COLUMN link_state TEXT;
ALTER TABLE contacts ADD COLUMN linked_by TEXT;
CREATE INDEX contacts_customer ON contacts (customer_id);
CREATE INDEX contacts_phone ON contacts (phone);
CREATE INDEX contacts_email ON contacts (LOWER(email));
