#!/usr/bin/env bash
# A first sync waits for no timer between its LIST and its folders' jobs. The LIST's `folders`
# record is applied by the writer as soon as it is read, not after the batch window
# (MAILPIPE_WRITER_BATCH_MS, set long here: before the fix the record waited out all of it),
# and the folder jobs the writer then queues on {mp}:jobs:first are taken at once by a fetcher
# lane idle on {mp}:jobs (before the fix it slept out its one-second BLOCK on {mp}:jobs first:
# 0.7-0.9 s of every first sync). One fetcher, one lane, so the lane that ran the LIST is the
# one that waits. The times come from the stream entry ids (the XADD's millisecond) and the
# debug log's timestamps; the bounds are far above what the fixed path takes here (under 20
# ms) and below what the old one took. Last, `sync --wait --timeout` waits its whole timeout.
export MAILPIPE_FETCHERS=1 MAILPIPE_FETCHER_LANES=1 MAILPIPE_WRITER_BATCH_MS=5000 MAILPIPE_LOG=debug
. "$(dirname "$0")/lib.sh"
stack_up 300 31

ms_of_ts() { # ts=2026-12-03T19:47:03.664Z -> Unix milliseconds
	local t=${1#ts=}
	echo $(($(date -u -d "${t%.*}" +%s) * 1000 + 10#$(sed 's/.*\.\([0-9]*\)Z/\1/' <<<"$t")))
}

for a in wa wb; do
	add_account "$a"
	run_start
	mailpipe sync "$a" --wait --timeout 60 >"$MAILPIPE_STACK_DIR/summary-$a.json"
	check "$a: first sync ended ok" grep -q '"status": *"ok"' "$MAILPIPE_STACK_DIR/summary-$a.json"
	run_stop
	aid=$(sql "SELECT id FROM accounts WHERE name = '$a'")
	# The LIST job's end (its connection kept for the next job), the first folder job's
	# entry id (queued by the writer) and the moment a lane took it.
	listed=$(grep "stage=fetcher account_id=$aid msg=\"connection kept" "$RUN_LOG" | head -1 | cut -d' ' -f1)
	taken=$(grep "stream={mp}:jobs:first job=sync_folder account_id=$aid " "$RUN_LOG" | head -1)
	entry=$(sed 's/.* entry=\([0-9]*\)-.*/\1/' <<<"$taken")
	if [ -z "$listed" ] || [ -z "$taken" ]; then
		fail "$a: the log shows the LIST's end and the first folder job taken"
		continue
	fi
	queued_after=$((entry - $(ms_of_ts "$listed")))
	taken_after=$(($(ms_of_ts "$(cut -d' ' -f1 <<<"$taken")") - entry))
	check "$a: folder jobs queued ${queued_after} ms after the LIST ended, not after the 5 s batch window" \
		[ "$queued_after" -lt 2000 ]
	check "$a: the idle lane took the first folder job ${taken_after} ms after it was queued (under 500)" \
		[ "$taken_after" -lt 500 ]
	verify "$a" --summary "$MAILPIPE_STACK_DIR/summary-$a.json"
done
check "nothing left pending" no_pending

# `sync --wait --timeout N` waits N seconds in full when nothing runs the sync, however often
# events wake it: its deadline had been counted in whole seconds, so a wait woken often (other
# runs' events on {mp}:events, here one every 50 ms) ended up to one second early (this failed
# test_mcp's progress check in make check). Three tries: the old clock ended each under 1.95 s
# in 19 cases of 20.
add_account wt
(while :; do redis-cli -p "$MP_REDIS_PORT" XADD '{mp}:events' MAXLEN '~' 1000 '*' test tick >/dev/null; sleep 0.05; done) &
ticker=$!
for try in 1 2 3; do
	t0=$(date +%s.%N)
	mailpipe sync wt --wait --timeout 2 >/dev/null 2>"$MAILPIPE_STACK_DIR/timeout.err"
	rc=$?
	took=$(echo "$(date +%s.%N) - $t0" | bc)
	check "try $try: with no stage running the wait ends (exit $rc) with a clear error" \
		bash -c "[ $rc -eq 1 ] && grep -q 'did not finish within 2s; is .mailpipe run. running' '$MAILPIPE_STACK_DIR/timeout.err'"
	check "try $try: after the whole 2 s ($took s)" [ "$(echo "$took >= 1.95" | bc)" = 1 ]
done
kill "$ticker"
wait "$ticker" 2>/dev/null
finish
