-- Stable object ids (RFC 8474 OBJECTID, Gmail's X-GM-MSGID), issue 9. messages.email_id is
-- the server's id of the message's content (the first one seen): a message moved, copied or
-- renumbered by a UIDVALIDITY change keeps it, so the fetcher links the new UID to the stored
-- row instead of downloading the body again (the lookup itself is a Redis hash the writer
-- keeps, this column is its durable copy). email_folders.mailbox_id (MAILBOXID) lets a folder
-- renamed on the server keep its row, locations and cursor. sync_run_folders.unlinked holds
-- the UIDs a job linked to a message that was gone by the time the link was applied: its
-- cursor stays below them and the next sync downloads them.
ALTER TABLE messages ADD COLUMN email_id text;
CREATE INDEX messages_email_id ON messages (account_id, email_id) WHERE email_id IS NOT NULL;
ALTER TABLE email_folders ADD COLUMN mailbox_id text;
CREATE INDEX email_folders_mailbox_id ON email_folders (account_id, mailbox_id)
	WHERE mailbox_id IS NOT NULL;
-- linked_count: of a job's fetched_count (messages delivered), those linked without a download
-- (each also a duplicate: a new location of a stored message).
ALTER TABLE sync_run_folders
	ADD COLUMN unlinked bigint[],
	ADD COLUMN linked_count int NOT NULL DEFAULT 0;
-- A message that lost its last location in a run is deleted when the run ends, not at once:
-- a move to a folder synced later in the same run then finds its row (a link, or the content
-- hash) and keeps its id. orphans_pending says a run left such messages to look at.
ALTER TABLE sync_runs ADD COLUMN orphans_pending boolean NOT NULL DEFAULT false;
