-- What the parser now extracts beyond MIME: the cleaner's version (so bodies can be re-cleaned
-- when it changes), threading keys for the writer, and Gmail's thread id where offered.
ALTER TABLE messages
	ADD COLUMN cleaner_version int,
	ADD COLUMN base_subject text,
	ADD COLUMN is_reply boolean NOT NULL DEFAULT false,
	ADD COLUMN thread_parent text,
	ADD COLUMN gm_thrid text;
CREATE INDEX messages_gm_thrid ON messages (account_id, gm_thrid) WHERE gm_thrid IS NOT NULL;
