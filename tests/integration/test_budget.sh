#!/usr/bin/env bash
# Invariant 5: Redis holds at most a configured budget of in-flight raw bytes. With a fetcher
# and a writer but no parser, nothing drains {mp}:raw, so only the budget stops the fetcher;
# the stream's memory must stay near MAILPIPE_RAW_BUDGET_BYTES. A parser started later
# drains it and the sync completes with every message.
. "$(dirname "$0")/lib.sh"
stack_up 1000 5
BUDGET=262144
export MAILPIPE_RAW_BUDGET_BYTES=$BUDGET
add_account budget
RUN_LOG=$MAILPIPE_STACK_DIR/run.log
pids=
trap 'kill $pids 2>/dev/null; wait 2>/dev/null; stack_down' EXIT
mailpipe-fetcher >>"$RUN_LOG" 2>&1 &
pids="$pids $!"
mailpipe-writer >>"$RUN_LOG" 2>&1 &
pids="$pids $!"

out=$MAILPIPE_STACK_DIR/summary.json
mailpipe sync budget --wait --timeout 120 >"$out" &
sync_pid=$!
raw_bytes() { redis-cli -p "$MP_REDIS_PORT" MEMORY USAGE '{mp}:raw' SAMPLES 0 | sed 's/^$/0/'; }
peak=0
for _ in $(seq 1 60); do
	b=$(raw_bytes)
	[ "${b:-0}" -gt "$peak" ] && peak=$b
	sleep 0.1
done
entries=$(redis-cli -p "$MP_REDIS_PORT" XLEN '{mp}:raw')
total=$(doveadm -c "$MP_DOVECOT_CONF" mailbox status -u demo messages '*' | awk -F= '{ n += $2 } END { print n }')
largest=$(doveadm -c "$MP_DOVECOT_CONF" fetch -u demo 'size.physical' mailbox '*' all |
	awk '/^size.physical:/ && $2 > m { m = $2 } END { print m + 0 }')
# The fetcher checks after every budget/16 bytes it appends, so the stream may pass the budget
# by that, one message, and the entries' own overhead (their meta, the stream's nodes).
allowed=$((BUDGET + BUDGET / 8 + largest + 65536))
within() { [ "$1" -gt 0 ] && [ "$1" -le "$2" ]; } # N, MAX
check "the fetcher paused: {mp}:raw holds $entries of $total messages" within "$entries" "$((total / 2))"
check "{mp}:raw peaked at $peak bytes, within budget $BUDGET + slack ($allowed; largest message $largest)" \
	within "$peak" "$allowed"
status=$(mailpipe status budget --json)
check "mailpipe status shows {mp}:raw's entries and bytes against the budget" python3 -c "
import json, sys
q = json.loads(sys.argv[1])['queues']
assert q['raw'] == $entries and q['budget_bytes'] == $BUDGET, q
assert 0 < q['raw_bytes'] <= $allowed, q" "$status"

mailpipe-parser >>"$RUN_LOG" 2>&1 &
pids="$pids $!"
wait "$sync_pid"
check "with a parser the sync completes" [ $? -eq 0 ]
check "every server message has a location ($total)" [ "$(sql "SELECT count(*) FROM message_locations")" = "$total" ]
check "no entry left pending in Redis" no_pending
kill -TERM $pids 2>/dev/null
wait $pids 2>/dev/null
pids=

# Many small accounts at once under an entries budget smaller than their folder count: each
# folder job ends with a cursor record that the writer holds until the job's messages, still
# behind the parser, are committed. Those must not count against the parser's budget (it
# stopped for good once they outnumbered it), and a fetcher must look at the budget before a
# small job's first message too (its lanes never reached the 256th and ran {mp}:raw far past
# the budget).
export MAILPIPE_RAW_BUDGET=20 MAILPIPE_RAW_BUDGET_BYTES=67108864
"$ROOT/deploy/local/stack.sh" add-user small smallpw --sample 12 9 >/dev/null 2>&1 || fail "add-user small"
export PW_small=smallpw
names=
for i in $(seq 1 24); do
	mailpipe account add "small$i" --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username small \
		--secret env:PW_small --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 >/dev/null
	names="$names small$i"
done
run_start
peak=0
raw_len() { redis-cli -p "$MP_REDIS_PORT" XLEN '{mp}:raw'; }
( while :; do echo "$(raw_len)"; sleep 0.05; done ) >"$MAILPIPE_STACK_DIR/rawlen" &
sampler=$!
pids="$pids $sampler"
sync_pids=
for n in $names; do
	mailpipe sync "$n" --wait --timeout 150 >/dev/null &
	sync_pids="$sync_pids $!"
done
ok=0
for p in $sync_pids; do wait "$p" || ok=1; done
kill "$sampler" 2>/dev/null
peak=$(sort -n "$MAILPIPE_STACK_DIR/rawlen" | tail -1)
check "24 small accounts' first syncs at once end, under an entries budget of 20" [ "$ok" -eq 0 ]
folders=$(sql "SELECT count(*) FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name LIKE 'small%'")
check "... with more folders ($folders) than the budget: cursor records outnumbered it" [ "$folders" -gt 20 ]
# Each lane looks before its job's first message, so at most every lane (4 lanes, 2 fetchers)
# passes the budget by one job's messages (12): 20 + 8 x 12. Without that look: 176 seen.
check "{mp}:raw stayed near its budget (peak $peak entries, at most 116)" [ "${peak:-0}" -le 116 ]
total=$(doveadm -c "$MP_DOVECOT_CONF" mailbox status -u small messages '*' | awk -F= '{ n += $2 } END { print n }')
check "every small account holds all $total of its messages" \
	[ "$(sql "SELECT count(DISTINCT (l.account_id, l.folder_id, l.uid)) FROM message_locations l JOIN accounts a ON a.id = l.account_id WHERE a.name LIKE 'small%'")" = "$((24 * total))" ]
check "no entry left pending in Redis" no_pending
run_stop
finish
