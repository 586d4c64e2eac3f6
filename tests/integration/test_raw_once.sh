#!/usr/bin/env bash
# Issue 12: a message's raw bytes cross Redis once. The parsed record names its {mp}:raw entry
# (raw_id) instead of carrying the bytes; the parser only acknowledges the raw entry, and the
# writer reads the bytes by id and deletes the raw entry after COMMIT, then the parsed one.
#   1. fetcher + parser, no writer: every parsed message record has raw_id and no raw, and the
#      raw entry it names is still in {mp}:raw, acknowledged (nothing pending for parsers).
#   2. one raw entry deleted by hand, then a writer: that message is still stored (raw NULL,
#      one error line naming account, folder, uid and entry); every other messages.raw hashes to
#      the content_sha256 verify.py checks against Dovecot's bytes; both streams end empty.
#   3. a second account with writers killed by MAILPIPE_FAULT_WRITER_ABORT right after COMMIT
#      (1) and right after the raw deletes (2): after a restart the sync completes with every
#      message stored once, no raw entry leaked and no raw lost.
. "$(dirname "$0")/lib.sh"
ulimit -c 0 # the fault-injected aborts leave no core files
stack_up 300 12
export MAILPIPE_WRITER_BATCH=40
add_account once
RUN_LOG=$MAILPIPE_STACK_DIR/run.log
pids=
trap 'kill $pids 2>/dev/null; wait 2>/dev/null; stack_down' EXIT
start() { "$@" >>"$RUN_LOG" 2>&1 & pids="$pids $!"; last_pid=$!; }
rcli() { redis-cli -p "$MP_REDIS_PORT" "$@"; }
inspect() { python3 "$ROOT/tests/integration/raw_once_check.py" "$MP_REDIS_PORT" '{mp}'; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

# 1. Parsed, not yet written. The writer is needed for the folder list (it records the
# folders the fetcher then syncs); it is frozen (SIGSTOP) as soon as it has done that.
start mailpipe-fetcher
start mailpipe-parser
out=$MAILPIPE_STACK_DIR/summary.json
mailpipe sync once --wait --timeout 300 >"$out" &
sync_pid=$!
for _ in $(seq 600); do [ "$(rcli XLEN '{mp}:parsed')" -gt 0 ] && break; sleep 0.05; done
start mailpipe-writer
writer=$last_pid
for _ in $(seq 3000); do
	[ "$(sql "SELECT count(*) FROM email_folders f JOIN accounts a ON a.id = f.account_id
		WHERE a.name = 'once'")" -gt 0 ] && break
	sleep 0.01
done
kill -STOP "$writer"
# The folders' jobs after the first few wait for the writer (their cursors), so the stream
# fills only so far: wait until it stops growing.
last=-1
for _ in $(seq 60); do
	n=$(inspect | field messages)
	[ "$n" -gt 0 ] && [ "$n" = "$last" ] && break
	last=$n
	sleep 1
done
state=$(inspect)
n=$(field messages <<<"$state")
check "messages parsed while the writer is frozen ($n records)" [ "$n" -gt 10 ]
check "no parsed record carries the raw bytes" [ "$(field with_raw <<<"$state")" -eq 0 ]
check "every parsed record names its raw entry" [ "$(field with_raw_id <<<"$state")" -eq "$n" ]
check "every named raw entry is kept in {mp}:raw until the writer commits" \
	[ "$(field raw_present <<<"$state")" -eq "$n" ]
check "the parser acknowledged them all ({mp}:raw has nothing pending)" \
	[ "$(rcli XPENDING '{mp}:raw' parsers | head -1)" = 0 ]

# 2. One raw entry lost (as when a committed message's parsed record is delivered again).
read -r gone_entry gone_raw gone_uid gone_folder gone_sha < <(python3 -c "
import json, sys
recs = json.loads(sys.argv[1])['records']
shas = [r['sha'] for r in recs]
r = [r for r in recs if not r['delivered'] and shas.count(r['sha']) == 1][-1]
print(r['entry'], r['raw_id'], r['uid'], r['folder_id'], r['sha'])" "$state")
check "its content is stored nowhere yet" [ "$(sql "SELECT count(*) FROM messages
	WHERE content_sha256 = '$gone_sha'")" = 0 ]
check "a raw entry deleted by hand ($gone_raw)" [ "$(rcli XDEL '{mp}:raw' "$gone_raw")" = 1 ]
kill -CONT "$writer"
wait "$sync_pid"
check "the sync completes" [ $? -eq 0 ]
verify once --summary "$out"
acct=$(sql "SELECT id FROM accounts WHERE name = 'once'")
check "the message whose raw entry was gone is stored, without raw" \
	[ "$(sql "SELECT count(*) FROM messages m JOIN message_locations l ON l.message_id = m.id
		WHERE m.account_id = $acct AND l.folder_id = $gone_folder AND l.uid = $gone_uid
		AND m.raw IS NULL")" = 1 ]
check "one error line names its account, folder, uid and entry" \
	[ "$(grep -c "account_id=$acct folder_id=$gone_folder uid=$gone_uid entry=$gone_entry raw_id=$gone_raw .*raw message missing" "$RUN_LOG")" = 1 ]
rows() { sql "SELECT count(*) FROM messages WHERE account_id = $1"; }
raw_ok() { # ACCOUNT, expected count: messages.raw is the bytes content_sha256 (verify.py) hashed
	[ "$(sql "SELECT count(*) FROM messages WHERE account_id = $1
		AND encode(sha256(raw), 'hex') = content_sha256")" = "$2" ]
}
check "every other messages.raw holds the bytes Dovecot serves" raw_ok "$acct" "$(($(rows "$acct") - 1))"
empty() { [ "$(rcli XLEN '{mp}:raw')" = 0 ] && [ "$(rcli XLEN '{mp}:parsed')" = 0 ]; }
settle() { for _ in $(seq 50); do empty && return 0; sleep 0.1; done; return 1; }
check "after the sync {mp}:raw and {mp}:parsed are empty" settle
check "nothing pending" no_pending

# 3. Writers killed between COMMIT and the deletes, and between the two deletes.
# shellcheck disable=SC2086 # a list of pids
kill $pids 2>/dev/null
wait 2>/dev/null
pids=
add_account twice
start mailpipe-fetcher
start mailpipe-parser
MAILPIPE_FAULT_WRITER_ABORT=1 start mailpipe-writer
writer=$last_pid
out2=$MAILPIPE_STACK_DIR/summary2.json
mailpipe sync twice --wait --timeout 300 >"$out2" &
sync_pid=$!
acct2=$(sql "SELECT id FROM accounts WHERE name = 'twice'")
died() { for _ in $(seq 600); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
check "a writer aborts right after its first COMMIT" died "$writer"
committed=$(sql "SELECT count(*) FROM messages WHERE account_id = $acct2")
kept() { [ "$committed" -gt 0 ] && [ "$(rcli XLEN '{mp}:raw')" -ge "$committed" ]; }
check "its batch is committed ($committed messages) and its raw entries are kept" kept
MAILPIPE_FAULT_WRITER_ABORT=2 start mailpipe-writer
writer=$last_pid
check "a writer aborts right after deleting a batch's raw entries" died "$writer"
start mailpipe-writer
wait "$sync_pid"
check "the sync completes after the crashes" [ $? -eq 0 ]
verify twice --summary "$out2"
check "every messages.raw of the crashed sync holds Dovecot's bytes" raw_ok "$acct2" "$(rows "$acct2")"
check "no further missing-raw error (redelivered committed messages are duplicates)" \
	[ "$(grep -c 'raw message missing' "$RUN_LOG")" = 1 ]
check "no raw or parsed entry leaked" settle
check "nothing pending after the crashes" no_pending
finish
