-- First-sync window and backfill (issue 9). A first sync limited to the account's window
-- (initial_window_days) leaves older mail on the server; with the account option backfill,
-- backfill_uid is the UID below which the folder still has mail to fetch, fetched newest
-- first in chunks by low-priority jobs ({mp}:jobs:backfill) that never wait in front of a
-- poll or a push. NULL when there is nothing (more) to backfill.
ALTER TABLE email_folders
	ADD COLUMN backfill_uid bigint,
	ADD COLUMN backfill_enqueued_at timestamptz;
CREATE INDEX email_folders_backfill ON email_folders (backfill_enqueued_at) WHERE backfill_uid > 1;

-- One job per folder in flight (jobs_enqueue_queued): finding an older unfinished job of the
-- same folder needs this index.
CREATE INDEX sync_run_folders_folder_queued ON sync_run_folders (folder_id, run_id) WHERE status = 'queued';
