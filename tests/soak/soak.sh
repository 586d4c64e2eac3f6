#!/usr/bin/env bash
# make soak: the pipeline under sustained faults. For SOAK_SECONDS (default 600) accounts over
# an MP_DEMO_COUNT-message mailbox (default 5000) are synced one after another while stage
# processes (children of `mailpipe run`) are killed with SIGKILL at random, and Redis (AOF on)
# and PostgreSQL are restarted. Then the last run is let finish, every account is compared with
# the server (verify.py) and nothing may be doubled or pending. Between those, one database
# connection of a stage, picked at random, is terminated (pg_terminate_backend), as a pooler or
# an operator does: the process lives on and must notice. Prints a summary; exits 1 on any
# mismatch. Not part of make check.
#   SOAK_SECONDS=600 MP_DEMO_COUNT=5000 SOAK_KILL_EVERY=3 (s) SOAK_REDIS_EVERY=25 SOAK_PG_EVERY=35
#   SOAK_TERM_EVERY=2
. "$(dirname "$0")/../integration/lib.sh"
SOAK_SECONDS=${SOAK_SECONDS:-600}
KILL_EVERY=${SOAK_KILL_EVERY:-3}
REDIS_EVERY=${SOAK_REDIS_EVERY:-25}
PG_EVERY=${SOAK_PG_EVERY:-35}
TERM_EVERY=${SOAK_TERM_EVERY:-2}
export MP_REDIS_PERSIST=1
stack_up "${MP_DEMO_COUNT:-5000}" 21
export MAILPIPE_LOG=${MAILPIPE_LOG:-info}
stack() { "$ROOT/deploy/local/stack.sh" "$@" >>"$MAILPIPE_STACK_DIR/stack-restarts.log" 2>&1; }
now() { date +%s; }
rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

declare -A kills=([scheduler]=0 [fetcher]=0 [parser]=0 [writer]=0) peak=()
redis_restarts=0 pg_restarts=0 terms=0 runs_ok=0 runs_failed=0 rejoins=0 longest=0 acct_started=0 waiter_errors=0
accounts=()

# Peak resident memory of every stage process seen, read before it is killed too.
sample_rss() {
	local p stage kb
	for p in $(pgrep -P "$RUN_PID"); do
		stage=$(sed -n 's/.*mailpipe-\([a-z]*\).*/\1/p' "/proc/$p/cmdline" 2>/dev/null | tr -d '\0')
		[ -n "$stage" ] || continue
		kb=$(rss_kb "$p")
		[ -n "$kb" ] && [ "$kb" -gt "${peak[$stage]:-0}" ] && peak[$stage]=$kb
	done
}
kill_random_stage() {
	local pids p stage
	pids=($(pgrep -P "$RUN_PID"))
	[ ${#pids[@]} -gt 0 ] || return 0
	p=${pids[RANDOM % ${#pids[@]}]}
	stage=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | sed -n 's/.*mailpipe-\([a-z]*\).*/\1/p')
	[ -n "$stage" ] || return 0
	sample_rss
	kill -9 "$p" 2>/dev/null && kills[$stage]=$((kills[$stage] + 1))
	echo "  $(date +%T) kill -9 $stage (pid $p)"
}

# One database connection of a stage (application_name 'mailpipe ...'), picked at random.
terminate_random_backend() {
	local who
	who=$(sql "SELECT s.application_name || ' (pid ' || s.pid || ')' FROM (SELECT pid,
	           application_name FROM pg_stat_activity WHERE application_name LIKE 'mailpipe %'
	           ORDER BY random() LIMIT 1) s WHERE pg_terminate_backend(s.pid)" 2>/dev/null)
	[ -n "$who" ] || return 0
	terms=$((terms + 1))
	echo "  $(date +%T) terminate backend of $who"
}

# One waiter per account: `sync --wait` is run again (joining the run) when it ends without
# the run's end, e.g. when the database went away under it.
sync_pid= acct= acct_n=0
next_account() {
	acct_n=$((acct_n + 1))
	acct=soak-$acct_n
	until add_account "$acct" 2>/dev/null; do sleep 1; done
	accounts+=("$acct")
	acct_started=$(now)
	start_waiter
}
start_waiter() {
	mailpipe sync "$acct" --wait --timeout 900 >"$MAILPIPE_STACK_DIR/summary-$acct.json" \
		2>>"$MAILPIPE_STACK_DIR/sync-errors.log" &
	sync_pid=$!
}
waiter_done() { # the waiter ended: the run finished (ok/failed) or the waiter gave up
	wait "$sync_pid"
	local rc=$? status
	status=$(sql "SELECT status FROM sync_runs r JOIN accounts a ON a.id = r.account_id
	              WHERE a.name = '$acct' ORDER BY run_id DESC LIMIT 1" 2>/dev/null)
	case $rc:$status in
	*:ok) # a waiter may end with an error just as its run ends (Redis or the database gone)
		[ "$rc" = 0 ] || waiter_errors=$((waiter_errors + 1))
		runs_ok=$((runs_ok + 1))
		[ $(($(now) - acct_started)) -gt "$longest" ] && longest=$(($(now) - acct_started))
		echo "  $(date +%T) run of $acct completed in $(($(now) - acct_started)) s"
		;;
	*:running | *:)
		rejoins=$((rejoins + 1)) waiter_errors=$((waiter_errors + 1))
		start_waiter
		return 1
		;;
	*) runs_failed=$((runs_failed + 1)); echo "  $(date +%T) run of $acct ended $status (exit $rc)" ;;
	esac
	return 0
}

run_start
start=$(now)
next_kill=$((start + KILL_EVERY)) next_redis=$((start + REDIS_EVERY)) next_pg=$((start + PG_EVERY))
next_term=$((start + TERM_EVERY))
echo "soak: ${SOAK_SECONDS} s, ${MP_DEMO_COUNT} messages per account, stack in $MAILPIPE_STACK_DIR"
next_account
while [ $(($(now) - start)) -lt "$SOAK_SECONDS" ]; do
	sample_rss
	if ! kill -0 "$sync_pid" 2>/dev/null; then
		waiter_done && next_account
	fi
	t=$(now)
	if [ "$t" -ge "$next_kill" ]; then
		kill_random_stage
		next_kill=$((t + 1 + RANDOM % (2 * KILL_EVERY)))
	fi
	if [ "$t" -ge "$next_term" ]; then
		terminate_random_backend
		next_term=$((t + 1 + RANDOM % (2 * TERM_EVERY)))
	fi
	if [ "$t" -ge "$next_redis" ]; then
		echo "  $(date +%T) restart redis"
		stack restart redis && redis_restarts=$((redis_restarts + 1))
		next_redis=$((t + REDIS_EVERY))
	fi
	if [ "$t" -ge "$next_pg" ]; then
		echo "  $(date +%T) restart postgres"
		stack restart postgres && pg_restarts=$((pg_restarts + 1))
		next_pg=$((t + PG_EVERY))
	fi
	sleep 0.5
done

echo "soak: faults stopped after $(($(now) - start)) s; letting the last run ($acct) finish"
finish_by=$(($(now) + 600))
while [ "$(now)" -lt "$finish_by" ]; do
	sample_rss
	if ! kill -0 "$sync_pid" 2>/dev/null; then
		waiter_done && break
	fi
	sleep 0.5
done
kill -0 "$sync_pid" 2>/dev/null && { fail "the last run ($acct) did not finish within 600 s"; kill "$sync_pid"; }
# Any account whose run failed under the faults is synced once more, undisturbed.
for a in "${accounts[@]}"; do
	[ "$(sql "SELECT status FROM sync_runs r JOIN accounts x ON x.id = r.account_id
	          WHERE x.name = '$a' ORDER BY run_id DESC LIMIT 1")" = ok ] && continue
	echo "  re-syncing $a, whose last run did not end ok"
	mailpipe sync "$a" --wait --timeout 600 >/dev/null || fail "re-sync of $a"
done
sample_rss

echo "--- verify (${#accounts[@]} accounts)"
for a in "${accounts[@]}"; do
	echo "== $a"
	verify "$a"
done
check "no entry left pending in Redis" no_pending
check "no location doubled" [ "$(sql "SELECT count(*) FROM (SELECT 1 FROM message_locations
	GROUP BY folder_id, uidvalidity, uid HAVING count(*) > 1) d")" = 0 ]
check "no message doubled" [ "$(sql "SELECT count(*) FROM (SELECT 1 FROM messages
	GROUP BY account_id, content_sha256 HAVING count(*) > 1) d")" = 0 ]
check "no stage had to be killed at the stop" bash -c "! grep -q 'did not stop in time' '$RUN_LOG'"
run_stop

echo "--- soak summary"
echo "duration:       ${SOAK_SECONDS} s of faults, ${MP_DEMO_COUNT} messages per account"
echo "kills (-9):     fetcher ${kills[fetcher]}, parser ${kills[parser]}, writer ${kills[writer]}, scheduler ${kills[scheduler]}"
echo "restarts:       redis $redis_restarts, postgres $pg_restarts"
echo "terminated:     $terms database connections of stages"
echo "runs:           $runs_ok completed ok, $runs_failed ended failed, longest run ${longest} s"
echo "sync --wait:    $waiter_errors exits with an error while the run went on ($rejoins re-joined)"
printf 'peak RSS:      '
for s in scheduler fetcher parser writer; do printf ' %s %s MiB' "$s" "$(( ${peak[$s]:-0} / 1024 ))"; done
echo
echo "messages:       $(sql "SELECT count(*) FROM messages") rows, $(sql "SELECT count(*) FROM message_locations") locations"
echo "result:         $FAILS failed checks"
finish
