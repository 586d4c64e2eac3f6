-- Apps match their sync request to its run and to the sync_finished change that ends it.
ALTER TABLE sync_runs ADD COLUMN IF NOT EXISTS request_id text;
-- The server's message count of a folder job's folder when the run listed it (STATUS): what
-- `mailpipe status` measures a running first sync against before the folder's cursor is set.
ALTER TABLE sync_run_folders ADD COLUMN IF NOT EXISTS server_count int;
