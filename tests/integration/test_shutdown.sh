#!/usr/bin/env bash
# Graceful shutdown under load. SIGTERM to `mailpipe run` in the middle of a sync: every stage
# drains and exits before the supervisor's 30 s deadline (none is SIGKILLed), and a restarted
# `mailpipe run` completes the run with nothing lost, doubled or left pending. Then SIGTERM to
# one fetcher, the parser and the writer, each in the middle of a sync of its own: the stage
# exits within 10 s, the supervisor starts it again, and the sync still completes exactly.
. "$(dirname "$0")/lib.sh"
stack_up 3000 13
# A small budget on {mp}:raw and {mp}:parsed paces the fetchers and the parser to the writer,
# so that a stop finds every stage with work in hand: fetchers mid-job, entries pending.
export MAILPIPE_WRITER_BATCH=100 MAILPIPE_FETCH_BATCH=200 MAILPIPE_RAW_BUDGET=300
since() { echo "$(date +%s.%N) - $1" | bc; }
locations() { sql "SELECT count(*) FROM message_locations l JOIN email_folders f ON f.id = l.folder_id
                   JOIN accounts a ON a.id = f.account_id WHERE a.name = '$1'"; }
wait_locations() { # ACCOUNT N: until N of its messages are committed (at most 60 s)
	for _ in $(seq 1 1200); do
		[ "$(locations "$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}
stage_pids() { pgrep -P "$RUN_PID" -f "mailpipe-$1"; }
consumer_of() { tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n 's/^MAILPIPE_CONSUMER=//p'; }
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_gone() { # PID SECONDS: polls every 50 ms
	local end=$((SECONDS + $2))
	until gone "$1"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.05
	done
}
total=$(doveadm -c "$MP_DOVECOT_CONF" mailbox status -u demo messages '*' | awk -F= '{ n += $2 } END { print n }')

# --- 1. SIGTERM to mailpipe run mid-sync, then a restart completes the run.
add_account shut
run_start
out=$MAILPIPE_STACK_DIR/summary-shut.json
mailpipe sync shut --wait --timeout 170 >"$out.first" &
waiter=$!
check "the sync is under way (500 of $total committed)" wait_locations shut 500
pids=$(pgrep -P "$RUN_PID")
run_pid=$RUN_PID
t0=$(date +%s.%N)
kill -TERM "$run_pid"
wait_gone "$run_pid" 40
check "mailpipe run exits after SIGTERM mid-sync" gone "$run_pid"
drain=$(since "$t0")
wait "$run_pid" 2>/dev/null
RUN_PID=
at_stop=$(locations shut)
printf '  drained and exited %.2f s after SIGTERM, %s of %s messages committed\n' "$drain" "$at_stop" "$total"
check "it exited within the 30 s deadline" [ "$(echo "$drain < 30" | bc)" = 1 ]
check "no stage had to be killed" bash -c "! grep -q 'did not stop in time' '$RUN_LOG'"
alive=
for p in $pids; do gone "$p" || alive="$alive $p"; done
check "every stage process exited" [ -z "$alive" ]
check "the stop came before the end of the sync" [ "$at_stop" -lt "$total" ]
check "the run is still open in the database" \
	[ "$(sql "SELECT status FROM sync_runs r JOIN accounts a ON a.id = r.account_id WHERE a.name = 'shut'")" = running ]
for g in "{mp}:jobs fetchers" "{mp}:jobs:first fetchers" "{mp}:raw parsers" "{mp}:parsed writers"; do
	set -- $g
	echo "  left in $1: $(redis-cli -p "$MP_REDIS_PORT" XLEN "$1") entries, $(redis-cli -p "$MP_REDIS_PORT" XPENDING "$1" "$2" | head -1) pending"
done

run_start
mailpipe sync shut --wait --timeout 170 >"$out"
check "after a restart the joined sync completes" [ $? -eq 0 ]
wait "$waiter"
check "the sync --wait that saw the stop completes too" [ $? -eq 0 ]
check "both waited for the same run" cmp -s "$out" "$out.first"
verify shut --summary "$out"
check "no entry left pending in Redis" no_pending

# --- 2. SIGTERM to one stage mid-sync: it exits promptly and is restarted.
term_stage() { # STAGE
	local stage=$1 acct=term-$1 pid= p
	add_account "$acct"
	mailpipe sync "$acct" --wait --timeout 170 >"$MAILPIPE_STACK_DIR/summary-$acct.json" &
	local sync_pid=$!
	check "$stage: the sync is under way" wait_locations "$acct" 300
	# A fetcher in the middle of a job: the one whose consumer holds a job (a first sync's
	# folder jobs are on {mp}:jobs:first).
	for p in $(stage_pids "$stage"); do
		if [ "$stage" != fetcher ] ||
			redis-cli -p "$MP_REDIS_PORT" XINFO CONSUMERS '{mp}:jobs:first' fetchers | paste - - - - - - - - |
			grep -q "name	$(consumer_of "$p")\(\.[0-9]*\)\{0,1\}	pending	[1-9]"; then
			pid=$p
			break
		fi
	done
	if [ -z "$pid" ]; then
		echo "  no $stage holds a job now"
		pid=$(stage_pids "$stage" | head -1)
	fi
	local consumer t0 took
	consumer=$(consumer_of "$pid")
	t0=$(date +%s.%N)
	kill -TERM "$pid"
	wait_gone "$pid" 15
	took=$(since "$t0")
	printf '  %s %s (pid %s) exited %.2f s after SIGTERM, at %s committed\n' "$stage" "$consumer" "$pid" \
		"$took" "$(locations "$acct")"
	check "$stage exits within 10 s of SIGTERM" [ "$(echo "$took < 10" | bc)" = 1 ]
	restarted() {
		local q
		for q in $(stage_pids "$stage"); do
			[ "$q" != "$pid" ] && [ "$(consumer_of "$q")" = "$consumer" ] && return 0
		done
		return 1
	}
	local ok=1
	for _ in $(seq 1 100); do restarted && ok=0 && break; sleep 0.1; done
	check "$stage is restarted by mailpipe run under its own name" [ $ok = 0 ]
	wait "$sync_pid"
	check "$stage: the sync completes" [ $? -eq 0 ]
	verify "$acct" --summary "$MAILPIPE_STACK_DIR/summary-$acct.json"
}
run_stop
run_start
term_stage fetcher
term_stage parser
term_stage writer
check "no entry left pending in Redis" no_pending
check "no stage had to be killed" bash -c "! grep -q 'did not stop in time' '$RUN_LOG'"
finish
