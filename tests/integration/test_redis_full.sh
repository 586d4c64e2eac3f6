#!/usr/bin/env bash
# Redis full: its maxmemory reached (the default policy, noeviction), it refuses XADD, HINCRBY
# and the like ("OOM command not allowed when used memory > 'maxmemory'") and still runs XACK,
# XDEL, XCLAIM and XREADGROUP; its memory frees only as the writer deletes the entries of
# committed messages. 1. A 2,000-message first sync with 3 MB to spare; 2. Redis refusing every
# write for 15 s in the middle of one (maxmemory 1 byte); 3. Redis over half full of data not
# the pipeline's. Before:
#  - the writer's change notices were refused, so it acknowledged and deleted nothing, and the
#    pipeline stood still for good (the sync never ended);
#  - each refused batch counted as a crash of the parser on its messages, so good mail went to
#    {mp}:dead and was stored unparsed (12 messages in one run);
#  - a log line per refused command: 34,786 in two minutes.
# Now fetchers pause while Redis is half full and parsers at three quarters (the streams' own
# budgets apart), the writer deletes the raw entries of what it committed although the
# notices were refused (they come back and tell again), the parser takes a refused delivery
# back (XCLAIM RETRYCOUNT), both wait between refused batches, and a pipeline's refusals are
# one line.
. "$(dirname "$0")/lib.sh"
export MAILPIPE_LOG=info
stack_up 2000 11
rcli() { redis-cli -p "$MP_REDIS_PORT" "$@"; }
oom_lines() { tail -n +"$1" "$RUN_LOG" | grep -c "OOM command not allowed"; }
dead() { rcli XLEN '{mp}:dead'; }
run_start

# 1. 3 MB to spare from the start.
used=$(rcli INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}')
rcli CONFIG SET maxmemory $((used + 3 * 1024 * 1024)) >/dev/null
check "Redis limited to 3 MB above the $((used / 1024)) KB it uses" \
	[ "$(rcli CONFIG GET maxmemory | tail -1)" = $((used + 3 * 1024 * 1024)) ]
add_account a
mailpipe sync a --wait --timeout 240 >"$MAILPIPE_STACK_DIR/summary-a.json"
check "the sync ends ok within Redis's limit" [ $? -eq 0 ]
n=$(oom_lines 1)
check "refusals, if any, logged a line per pipeline ($n lines, under 500)" [ "$n" -lt 500 ]
check "no message went to {mp}:dead ($(dead))" [ "$(dead)" = 0 ]
verify a --summary "$MAILPIPE_STACK_DIR/summary-a.json"
rcli CONFIG SET maxmemory 0 >/dev/null

# 2. Every write refused for 15 s once 300 messages are stored.
add_account b
from=$(($(wc -l <"$RUN_LOG") + 1))
mailpipe sync b --wait --timeout 240 >"$MAILPIPE_STACK_DIR/summary-b.json" &
waiter=$!
stored() { sql "SELECT count(*) FROM messages WHERE account_id = (SELECT id FROM accounts WHERE name = 'b')"; }
for _ in $(seq 300); do [ "$(stored)" -ge 300 ] && break; sleep 0.05; done
at=$(stored)
rcli CONFIG SET maxmemory 1 >/dev/null
sleep 15
rcli CONFIG SET maxmemory 0 >/dev/null
wait "$waiter"
check "the sync ends ok after Redis refused every write for 15 s (from $at messages stored)" [ $? -eq 0 ]
n=$(oom_lines "$from")
check "Redis did refuse them ($n log lines, a line per pipeline: under 2,000)" \
	[ "$n" -gt 0 -a "$n" -lt 2000 ]
n=$(tail -n +"$from" "$RUN_LOG" | grep -c 'stage=writer .*msg="change notices not published')
check "the writer's change notices were refused ($n times), and it went on" [ "$n" -gt 0 ]
check "no message went to {mp}:dead for it ($(dead))" [ "$(dead)" = 0 ]
n=$(tail -n +"$from" "$RUN_LOG" | grep -c 'redis SET epoch failed')
check "the scheduler read Redis's epoch, which it need not write ($n refused SETs)" [ "$n" = 0 ]
verify b --summary "$MAILPIPE_STACK_DIR/summary-b.json"

# 3. Redis over half full of data not ours (5 MB, then 3 MB to spare): the fetchers pause only
#    while the streams hold what the writers will delete, so the sync goes on.
head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' x >"$MAILPIPE_STACK_DIR/filler"
rcli -x SET test:filler <"$MAILPIPE_STACK_DIR/filler" >/dev/null
now=$(rcli INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}')
rcli CONFIG SET maxmemory $((now + 3 * 1024 * 1024)) >/dev/null
check "Redis over half full of others' data ($((now / 1024)) KB of $(((now + 3145728) / 1024)))" \
	[ "$(rcli EXISTS test:filler)" = 1 -a "$now" -gt $(((now + 3145728) / 2)) ]
add_account c
mailpipe sync c --wait --timeout 180 >"$MAILPIPE_STACK_DIR/summary-c.json"
check "with Redis over half full of others' data the sync still ends ok" [ $? -eq 0 ]
rcli DEL test:filler >/dev/null
rcli CONFIG SET maxmemory 0 >/dev/null
verify c --summary "$MAILPIPE_STACK_DIR/summary-c.json"

# The same mailbox with room to spare: the same rows, parsed alike.
add_account ref
mailpipe sync ref --wait --timeout 120 >/dev/null
check "with room to spare the same mailbox syncs ok" [ $? -eq 0 ]
check "the rows of 1. are the same, none stored unparsed for the limit" same_message_rows ref a 1500
check "the rows of 2. are the same, none stored unparsed for the refusals" same_message_rows ref b 1500
check "the rows of 3. are the same" same_message_rows ref c 1500
check "no entry left pending in Redis" no_pending
finish
