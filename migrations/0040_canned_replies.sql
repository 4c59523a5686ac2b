-- Canned replies (src/store/canned.rs, src/canned.rs): prepared answers an operator sends with
-- `!sb t <name>` or `::name`. A reply lives in one scope: 'personal' (owner = the operator's
-- user id), 'team' (owner = the team's name) or 'everyone' (owner = ''); each language variant
-- is a row of its own ('' is the variant for customers whose language is unknown or has none).
-- `body` is a minijinja template; `attachment` the JSON of a file sent with it, if any.
CREATE TABLE canned_replies (
    id          BIGINT PRIMARY KEY,
    scope       TEXT NOT NULL,
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    language    TEXT NOT NULL,
    body        TEXT NOT NULL,
    attachment  TEXT,
    updated_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (scope, owner, name, language)
);
CREATE INDEX canned_replies_name ON canned_replies (name);
