-- What a run learns when things go wrong. A folder the server would not fully deliver is
-- 'incomplete' (its cursor stays below the UIDs still missing, which the next sync asks for
-- again); the missing UIDs are kept with the folder job for the summary. redis_epoch names the
-- Redis instance that carries a run's work in flight: when Redis comes back empty, runs of an
-- older epoch can never finish and are closed at once so that the next sync repairs them.
ALTER TABLE sync_run_folders DROP CONSTRAINT sync_run_folders_status_check;
ALTER TABLE sync_run_folders ADD CONSTRAINT sync_run_folders_status_check
	CHECK (status IN ('queued', 'done', 'incomplete', 'failed'));
ALTER TABLE sync_run_folders
	ADD COLUMN missing_count int NOT NULL DEFAULT 0,
	ADD COLUMN missing text;

ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_status_check;
ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_status_check
	CHECK (status IN ('running', 'ok', 'incomplete', 'failed'));
ALTER TABLE sync_runs
	ADD COLUMN missing_count int NOT NULL DEFAULT 0,
	ADD COLUMN redis_epoch text;
