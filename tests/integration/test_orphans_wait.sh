#!/usr/bin/env bash
# `mailpipe sync --wait` returns when the database equals the mailbox, also when another run
# of the account is going. A run that finds messages expunged leaves their rows for the last
# run of the account to delete (a move's far side may still be synced: writer/mirror.c); a
# push (IDLE) run going at the same time is such a run. --wait used to return as soon as its
# own run ended, with the expunged messages' rows still stored (test_mirror met it once in
# four make checks: 59 rows for 56 contents). Here, against Dovecot:
#  1. the demo account is synced; three of its INBOX messages are expunged at the server;
#  2. a push run of INBOX is going (a sync_runs row, as the scheduler starts one on IDLE
#     news): `sync --wait` does not report done while the expunged rows wait for it, and
#     times out (exit 1) with them still stored;
#  3. that run ends (failed, as the scheduler fails a stuck run): the next `sync --wait`
#     ends ok, the last run to end, and deletes them; the rows equal the mailbox.
. "$(dirname "$0")/lib.sh"
stack_up 60 3

add_account o
run_start
mailpipe sync o --wait --timeout 60 >/dev/null
check "the first sync ends ok" [ $? -eq 0 ]
rows() { sql "SELECT count(*) FROM messages WHERE account_id = (SELECT id FROM accounts WHERE name = 'o')"; }
before=$(rows)
python3 "$ROOT/tests/integration/mirror_change.py" 127.0.0.1 "$MP_IMAP_PORT" demo demo expunge
push=$(sql "INSERT INTO sync_runs (account_id, folder_filter) SELECT id, '{INBOX}' FROM accounts
	WHERE name = 'o' RETURNING run_id" | head -1)
check "a push run of INBOX is going (run $push)" [ -n "$push" ]

mailpipe sync o --wait --timeout 8 >"$MAILPIPE_STACK_DIR/summary-1.json" 2>"$MAILPIPE_STACK_DIR/wait-1.err"
rc=$?
check "sync --wait does not report done while the expunged rows wait for the push run (exit $rc)" [ $rc -ne 0 ]
check "they are still stored then ($(rows) rows, $before before)" [ "$(rows)" = "$before" ]
check "its run itself ended ok" [ "$(sql "SELECT status FROM sync_runs WHERE account_id =
	(SELECT id FROM accounts WHERE name = 'o') AND run_id > $push ORDER BY run_id DESC LIMIT 1")" = ok ]

sql "UPDATE sync_runs SET status = 'failed', finished_at = now(), error = 'test: stuck'
	WHERE run_id = $push" >/dev/null
mailpipe sync o --wait --timeout 60 >"$MAILPIPE_STACK_DIR/summary-2.json"
check "with the push run over, the next sync --wait ends ok" [ $? -eq 0 ]
check "and the expunged messages' rows are gone ($(rows) rows, $before before)" [ "$(rows)" -lt "$before" ]
run_stop
verify o # (its summary is of a re-sync: verify.py checks first-sync counts)
check "no entry left pending in Redis" no_pending
finish
