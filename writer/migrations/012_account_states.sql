-- Account states (common/account_state.c owns the transitions; README "Account states"):
-- active, backoff (next_sync_at is the end of the wait), auth_failed (skipped until the secret
-- changes, MAILPIPE_AUTH_RETRY_S passes or `account resume`), disabled (until resumed).
ALTER TABLE accounts ADD CONSTRAINT accounts_state_known
	CHECK (state IN ('active', 'backoff', 'auth_failed', 'disabled'));
-- Failed runs in a row (the exponent of the backoff), reset by a run that lists the folders.
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS failure_count int NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS state_changed_at timestamptz NOT NULL DEFAULT now();
-- The secret helper's column too (IF NOT EXISTS, so both migrations merge): a secret newer than
-- an auth failure is worth one more login.
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS secret_changed_at timestamptz;

-- A new secret reference is a new secret, whoever writes it (the CLI, an operator's UPDATE).
CREATE OR REPLACE FUNCTION accounts_secret_changed() RETURNS trigger AS $$
BEGIN
	IF NEW.secret_ref IS DISTINCT FROM OLD.secret_ref THEN
		NEW.secret_changed_at := now();
	END IF;
	RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS accounts_secret_changed ON accounts;
CREATE TRIGGER accounts_secret_changed BEFORE UPDATE OF secret_ref ON accounts
	FOR EACH ROW EXECUTE FUNCTION accounts_secret_changed();

-- The scheduler finds due accounts by index, oldest first, whatever the number of accounts.
CREATE INDEX IF NOT EXISTS accounts_due ON accounts (next_sync_at)
	WHERE state IN ('active', 'backoff') AND sync_interval_s > 0;
-- Accounts whose login was refused are few; they are checked apart for a new secret.
CREATE INDEX IF NOT EXISTS accounts_auth_failed ON accounts (next_sync_at) WHERE state = 'auth_failed';
-- "Is a run of this account in progress" for every due account, and the in-flight count per
-- account of the job cap, both by index.
CREATE INDEX IF NOT EXISTS sync_runs_running ON sync_runs (account_id) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS sync_run_folders_in_flight ON sync_run_folders (run_id)
	WHERE status = 'queued' AND enqueued_at IS NOT NULL;
