#!/usr/bin/env bash
# A run ends although the writer's database connection dies as it ends it. The writer closes a
# folder job (the cursor record, or at once for an unchanged folder in the folders record),
# commits, then ends the run if that was its last job, in a transaction of its own. A
# connection lost between the two left the record acknowledged and the run running: `sync
# --wait` timed out and the account waited for the scheduler to fail the run after
# MAILPIPE_RUN_TIMEOUT_S (six hours). CI met it once in test_read_ahead, whose terminations
# every quarter second landed there. Here a trigger terminates the writer's own backend as it
# ends each run, the first time only:
#  1. a first sync (ended by the last cursor record);
#  2. a sync with nothing new (every folder unchanged, ended by the folders record);
#  3. the same, the end refused by the server rather than the connection lost;
# each ends ok, promptly, with the same rows, nothing left pending.
export MAILPIPE_LOG=info # the writer's reconnection is said at info
. "$(dirname "$0")/lib.sh"
stack_up 300 5

# Odd attempts to end a run die with their connection: each run's first, not its second.
sql "CREATE SEQUENCE test_run_end_tries;
	CREATE FUNCTION test_run_end_kill() RETURNS trigger LANGUAGE plpgsql AS \$f\$
	BEGIN
		IF nextval('test_run_end_tries') % 2 = 1 THEN
			PERFORM pg_terminate_backend(pg_backend_pid());
			PERFORM pg_sleep(5); -- the termination is taken here
		END IF;
		RETURN NEW;
	END \$f\$;
	CREATE TRIGGER test_run_end_kill BEFORE UPDATE ON sync_runs FOR EACH ROW
		WHEN (OLD.status = 'running' AND NEW.status <> 'running')
		EXECUTE FUNCTION test_run_end_kill()" >/dev/null
tries() { sql "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM test_run_end_tries"; }

add_account a
run_start

# 1. The first sync.
out=$MAILPIPE_STACK_DIR/summary-1.json
mailpipe sync a --wait --timeout 60 >"$out"
check "the first sync ends ok although the connection died as it ended the run" [ $? -eq 0 ]
check "the run was ended twice: the first try died with its connection ($(tries))" [ "$(tries)" = 2 ]
check "the writer said the run was not ended and its record is read again" \
	grep -q 'msg="run not ended, its record is read again"' "$RUN_LOG"
check "the writer reconnected and re-read its pending entries" \
	grep -q 're-reading own pending entries' "$RUN_LOG"
verify a --summary "$out"

# 2. Nothing new: the folders record ends the run, every folder done at once.
out=$MAILPIPE_STACK_DIR/summary-2.json
mailpipe sync a --wait --timeout 60 >"$out"
check "a sync with nothing new ends ok although the connection died as it ended the run" [ $? -eq 0 ]
check "its end was tried twice too ($(tries) tries in all)" [ "$(tries)" = 4 ]
n=$(sql "SELECT count(*) FROM sync_run_folders s WHERE s.run_id = (SELECT max(run_id) FROM sync_runs)
	AND (s.status <> 'done' OR s.fetched_count <> 0)")
check "every folder of that run was unchanged, done without a job ($n not)" [ "$n" = 0 ]
verify a --summary "$out" --expect-new 0

# 3. The end refused by the server, the connection alive (the trigger raises instead): the
#    record stays pending and comes back by XAUTOCLAIM (claim_idle, 3 s here), which ends it.
sql "CREATE OR REPLACE FUNCTION test_run_end_kill() RETURNS trigger LANGUAGE plpgsql AS \$f\$
	BEGIN
		IF nextval('test_run_end_tries') % 2 = 1 THEN
			RAISE EXCEPTION 'test refuses to end the run';
		END IF;
		RETURN NEW;
	END \$f\$" >/dev/null
out=$MAILPIPE_STACK_DIR/summary-3.json
mailpipe sync a --wait --timeout 60 >"$out"
check "a sync whose end the server refused once ends ok" [ $? -eq 0 ]
check "its end was tried twice ($(tries) tries in all)" [ "$(tries)" = 6 ]
check "the refusal was logged" grep -q 'msg="finish run: test refuses to end the run' "$RUN_LOG"
verify a --summary "$out" --expect-new 0

check "no run left running" [ "$(sql "SELECT count(*) FROM sync_runs WHERE status <> 'ok'")" = 0 ]
check "the account shows no error" [ "$(sql "SELECT coalesce(last_error, '') FROM accounts")" = "" ]
check "no entry left pending in Redis" no_pending
finish
