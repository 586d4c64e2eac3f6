#!/usr/bin/env bash
# Two schedulers: a second mailpipe-scheduler beside `mailpipe run`'s. Only the holder of the
# planning lease ({mp}:scheduler:lease) starts runs; kill -9 it and the other takes the lease
# within MAILPIPE_SCHEDULER_LEASE_MS and the accounts keep syncing; a graceful stop hands the
# lease over at once.
. "$(dirname "$0")/lib.sh"
stack_up 20 7
export MAILPIPE_TICK_MS=200 MAILPIPE_SCHEDULER_LEASE_MS=2000 MAILPIPE_LOG=info
LEASE='{mp}:scheduler:lease'
holder() { redis-cli -p "$MP_REDIS_PORT" GET "$LEASE"; }
held_by() { [[ "$(holder)" == $1 ]]; } # PATTERN
runs() { sql "SELECT count(*) FROM sync_runs"; }
planned() { # FILE: runs a scheduler's log says it started
	grep -h "stage=scheduler" "$1" | grep -o 'runs=[0-9]* ms=[0-9]* msg="scheduled syncs' |
		awk -F'[= ]' '{ n += $2 } END { print n + 0 }'
}
wait_for() { # SECONDS, 'condition' (evaluated afresh every 0.1 s)
	local end=$((SECONDS + $1))
	until eval "$2"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.1
	done
}
for n in a b c; do add_account "$n" --interval 1; done

B_LOG=$MAILPIPE_STACK_DIR/scheduler-b.log
MAILPIPE_CONSUMER=sched-b mailpipe-scheduler >"$B_LOG" 2>&1 &
B_PID=$!
trap 'kill -9 $B_PID 2>/dev/null; stack_down' EXIT
check "the lone scheduler B takes the lease" wait_for 10 '[[ "$(holder)" == sched-b:$B_PID ]]'
run_start # scheduler A (consumer scheduler-<host>-0), fetchers, parser, writer
check "the accounts sync" wait_for 30 '[ "$(sql "SELECT count(*) FROM accounts a WHERE EXISTS (SELECT 1 FROM sync_runs r WHERE r.account_id = a.id AND r.status = '\''ok'\'')")" = 3 ]'
sleep 3
a=$(planned "$RUN_LOG")
b=$(planned "$B_LOG")
check "only the lease holder plans: B started $b runs, A $a" [ "$b" -gt 3 -a "$a" = 0 ]
check "A saw the lease held and waited (no 'lease taken' in its log)" \
	bash -c "! grep -q 'planning lease taken' '$RUN_LOG'"
check "B still holds the lease ($(holder))" held_by "sched-b:$B_PID"
check "every run was started once: no account has two running runs" \
	[ "$(sql "SELECT count(*) FROM (SELECT account_id FROM sync_runs WHERE status = 'running' GROUP BY 1 HAVING count(*) > 1) d")" = 0 ]

# kill -9 the holder: its lease is not released, only left to expire.
kill -9 $B_PID
wait $B_PID 2>/dev/null
t0=$(date +%s%N)
r0=$(runs)
check "A takes the lease within the lease time (+ a tick)" wait_for 5 '[[ "$(holder)" == scheduler-* ]]'
ms=$((($(date +%s%N) - t0) / 1000000))
echo "  takeover after ${ms} ms (lease 2000 ms, tick 200 ms)"
check "takeover took at most the lease, a tick and some slack: 3 s ($ms ms)" [ "$ms" -le 3000 ]
check "the accounts keep syncing under A" wait_for 10 '[ "$(runs)" -gt $((r0 + 5)) ]'
check "A logged the takeover" grep -q "planning lease taken" "$RUN_LOG"
check "A now plans ($(planned "$RUN_LOG") runs)" [ "$(planned "$RUN_LOG")" -gt 0 ]
failed=$(sql "SELECT count(*) FROM sync_runs WHERE status = 'failed'")
check "no run failed across the takeover ($failed)" [ "$failed" = 0 ]

# A graceful stop gives the lease up: a waiting scheduler plans at once, not a lease later.
MAILPIPE_CONSUMER=sched-c mailpipe-scheduler >"$MAILPIPE_STACK_DIR/scheduler-c.log" 2>&1 &
C_PID=$!
trap 'kill -9 $C_PID 2>/dev/null; stack_down' EXIT
sleep 1
check "C waits while A holds the lease ($(holder))" held_by "scheduler-*"
run_stop
t0=$(date +%s%N)
check "A's SIGTERM hands the lease to C" wait_for 3 '[[ "$(holder)" == sched-c:$C_PID ]]'
ms=$((($(date +%s%N) - t0) / 1000000))
echo "  handover after a graceful stop: ${ms} ms"
check "handover well within the lease time ($ms ms < 1500)" [ "$ms" -lt 1500 ]
kill -TERM $C_PID
wait $C_PID 2>/dev/null
check "C released the lease when stopped" [ -z "$(holder)" ]
finish
