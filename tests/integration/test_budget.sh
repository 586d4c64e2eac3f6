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
finish
