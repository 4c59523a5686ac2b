-- The customer's avatar (a stored media reference) and the one last set on the ghost.
ALTER TABLE contacts ADD COLUMN avatar TEXT;
ALTER TABLE contacts ADD COLUMN synced_avatar TEXT;
