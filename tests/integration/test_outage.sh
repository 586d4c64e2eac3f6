#!/usr/bin/env bash
# Invariants 1-3 across server outages: Redis restarted with its AOF, Redis restarted empty,
# PostgreSQL restarted (briefly, and down for 30 s) and Dovecot restarted, each in the middle of
# a sync. Every run must end, and each account's rows must equal the server's, nothing doubled.
. "$(dirname "$0")/lib.sh"
export MP_REDIS_PERSIST=1 MAILPIPE_LOG=info
stack_up 3000 11
# Small batches and a small raw budget stretch a sync over seconds, so each disruption lands
# while messages are still being fetched and written. Reclaiming a dead consumer's entries
# takes two minutes here: a stage must resume its own work after an outage, not wait for that.
export MAILPIPE_WRITER_BATCH=100 MAILPIPE_FETCH_BATCH=100 MAILPIPE_FETCH_PIPELINE=1 \
	MAILPIPE_RAW_BUDGET=300 MAILPIPE_CLAIM_IDLE_MS=120000
STACK=$ROOT/deploy/local/stack.sh
run_start

rows() { sql "SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.name = '$1'"; }
last_run() { sql "SELECT r.run_id FROM sync_runs r JOIN accounts a ON a.id = r.account_id WHERE a.name = '$1' ORDER BY r.run_id DESC LIMIT 1"; }
run_status() { sql "SELECT status FROM sync_runs WHERE run_id = $1"; }
now_ms() { date +%s%3N; }

# mid_sync ACCOUNT ROWS: waits until ROWS of the account's messages are committed while its run
# is still running; fails when the run ended first (the disruption would not be mid-sync).
mid_sync() {
	local n run
	for _ in $(seq 1 1200); do
		run=$(last_run "$1")
		n=$(rows "$1")
		if [ "$n" -ge "$2" ]; then
			[ -n "$run" ] && [ "$(run_status "$run")" = running ] && [ "$n" -lt 2500 ] && {
				echo "  disruption at $n committed messages of run $run"
				return 0
			}
			echo "  run $run of $1 was no longer running at $n messages"
			return 1
		fi
		sleep 0.05
	done
	return 1
}

# sync_bg ACCOUNT TIMEOUT: mailpipe sync --wait in the background; SYNC_PID, SYNC_OUT.
sync_bg() {
	SYNC_OUT=$MAILPIPE_STACK_DIR/summary-$1.json
	mailpipe sync "$1" --wait --timeout "$2" >"$SYNC_OUT" 2>"$SYNC_OUT.err" &
	SYNC_PID=$!
}

summary_ok() { [ "$(jq -r .status "$1")" = ok ]; }
# sync_wait: waits for the background sync; SYNC_RC, and its stderr shown when it failed.
sync_wait() {
	wait "$SYNC_PID"
	SYNC_RC=$?
	[ "$SYNC_RC" = "${1:-0}" ] || sed 's/^/  sync: /' "$SYNC_OUT.err" | tail -n 5
}
doubled() { # message rows or locations stored twice for the account (0 expected)
	sql "SELECT (SELECT count(*) - count(DISTINCT m.content_sha256) FROM messages m JOIN accounts a
	       ON a.id = m.account_id WHERE a.name = '$1')
	     + (SELECT count(*) - count(DISTINCT (l.folder_id, l.uidvalidity, l.uid)) FROM message_locations l
	       JOIN email_folders f ON f.id = l.folder_id JOIN accounts a ON a.id = f.account_id WHERE a.name = '$1')"
}
exact() { # ACCOUNT: the database equals the server, nothing doubled, nothing left pending
	verify "$1"
	check "$1: no message or location doubled" [ "$(doubled "$1")" = 0 ]
	check "$1: no entry left pending in Redis" settled
}
# A job queued twice (a fetcher's retry) may still be finishing as a no-op when its run ends.
settled() {
	for _ in $(seq 1 40); do
		no_pending >/dev/null && return 0
		sleep 0.25
	done
	no_pending
}

echo "--- 1. redis-server restarted mid-sync with its AOF"
# Nothing is lost with the AOF, so the run itself must end ok, with no repair run.
add_account aof
sync_bg aof 90
if check "aof: sync is mid-way" mid_sync aof 300; then
	t0=$(now_ms)
	"$STACK" restart redis >/dev/null 2>&1
	echo "  redis restarted in $(($(now_ms) - t0)) ms"
fi
sync_wait
check "aof: sync --wait exits 0 after the Redis restart" [ $SYNC_RC -eq 0 ]
check "aof: the run ended ok" summary_ok "$SYNC_OUT"
exact aof

echo "--- 2. redis-server restarted empty mid-sync (no persistence, data deleted)"
export MP_REDIS_PERSIST=0
"$STACK" restart redis >/dev/null 2>&1
# An hourly account: after the first run, only the repair can make it due again so soon.
add_account wipe --interval 3600
# Its first run is the scheduler's, on the scheduler's idle connection to the Redis that just
# restarted: the run must start all the same, not fail and wait an hour.
first=
for _ in $(seq 1 100); do
	first=$(sql "SELECT r.run_id FROM sync_runs r JOIN accounts a ON a.id = r.account_id
	             WHERE a.name = 'wipe' AND r.status = 'running'")
	[ -n "$first" ] && break
	sleep 0.1
done
check "wipe: the scheduler started a run at once" [ -n "$first" ]
check "wipe: and no failed one before it" [ "$(sql "SELECT count(*) FROM sync_runs r JOIN accounts a
	ON a.id = r.account_id WHERE a.name = 'wipe' AND r.status = 'failed'")" = 0 ]
# A `sync --wait` joins the scheduler's run: it must end with it.
sync_bg wipe 120
if check "wipe: sync is mid-way" mid_sync wipe 300; then
	epoch=$(redis-cli -p "$MP_REDIS_PORT" GET '{mp}:epoch')
	check "wipe: the run carries the Redis epoch" [ "$(sql "SELECT redis_epoch FROM sync_runs WHERE run_id = $first")" = "${epoch:-none}" ]
	"$STACK" stop redis >/dev/null 2>&1
	find "$MAILPIPE_STACK_DIR/redis/data" -mindepth 1 -delete
	"$STACK" start redis >/dev/null 2>&1
	t_up=$(now_ms)
	for _ in $(seq 1 300); do
		[ "$(run_status "$first")" != running ] && break
		sleep 0.1
	done
	echo "  run $first ended $(($(now_ms) - t_up)) ms after Redis came back empty"
	check "wipe: Redis came back empty, with a new epoch" \
		[ "$(redis-cli -p "$MP_REDIS_PORT" GET '{mp}:epoch')" != "$epoch" ]
	check "wipe: the lost run is closed as failed within 30 s" [ "$(run_status "$first")" = failed ]
	check "wipe: its error says Redis lost its work" [ "$(sql "SELECT error LIKE 'Redis lost this run%' FROM sync_runs WHERE run_id = $first")" = t ]
	check "wipe: none of its folders is left queued" \
		[ "$(sql "SELECT count(*) FROM sync_run_folders WHERE run_id = $first AND status = 'queued'")" = 0 ]
fi
sync_wait 1
rc=$SYNC_RC
check "wipe: the joined sync --wait ends, exit 1, with the failed run" \
	[ "$rc:$(jq -r '.status + ":" + (.run_id | tostring)' "$SYNC_OUT")" = "1:failed:$first" ]
# The account is due at once: the scheduler's next run repairs everything from the cursors.
second=
for _ in $(seq 1 1200); do
	second=$(sql "SELECT run_id FROM sync_runs r JOIN accounts a ON a.id = r.account_id
	              WHERE a.name = 'wipe' AND r.run_id > ${first:-0} AND r.status <> 'running' LIMIT 1")
	[ -n "$second" ] && break
	sleep 0.1
done
echo "  repair run ${second:-none}: $(sql "SELECT round(extract(epoch FROM finished_at - started_at)::numeric, 1) || ' s, ' || fetched_count || ' fetched, ' || ingested_count || ' new' FROM sync_runs WHERE run_id = ${second:-0}")"
check "wipe: the next scheduled run ends ok" [ "$(run_status "${second:-0}")" = ok ]
exact wipe

echo "--- 3a. PostgreSQL restarted mid-sync (pg_ctl restart -m fast)"
add_account pgfast
sync_bg pgfast 120
if check "pgfast: sync is mid-way" mid_sync pgfast 300; then
	t0=$(now_ms)
	"$STACK" restart postgres >/dev/null 2>&1
	echo "  postgres restarted in $(($(now_ms) - t0)) ms"
fi
sync_wait
check "pgfast: sync --wait exits 0 after the Postgres restart" [ $SYNC_RC -eq 0 ]
check "pgfast: the run ended ok" summary_ok "$SYNC_OUT"
exact pgfast

echo "--- 3b. PostgreSQL down for 30 s mid-sync"
add_account pgdown
sync_bg pgdown 200
if check "pgdown: sync is mid-way" mid_sync pgdown 300; then
	"$STACK" stop postgres >/dev/null 2>&1
	sleep 30
	"$STACK" start postgres >/dev/null 2>&1
	t_up=$(now_ms)
fi
sync_wait
rc=$SYNC_RC
echo "  run ended $(($(now_ms) - t_up)) ms after Postgres came back"
check "pgdown: sync --wait exits 0 after the outage" [ $rc -eq 0 ]
check "pgdown: the run ended ok" summary_ok "$SYNC_OUT"
# Before the writer re-read its own pending entries after reconnecting, the run waited for
# XAUTOCLAIM (two minutes here, 90 s after Postgres is back).
check "pgdown: the run ended within 30 s of Postgres coming back" [ $(($(now_ms) - t_up)) -lt 30000 ]
exact pgdown

echo "--- 3c. scheduled polls after the Postgres restarts"
# The writer and the scheduler prepared their per-poll statements (common/pg.c's cache) on
# connections that died with the server: on their new connections they prepare them again,
# and the scheduler's runs of every account end ok, with no statement reported missing.
top=$(sql "SELECT max(run_id) FROM sync_runs")
# Hourly from now on (they were made with --interval 0, which the scheduler never polls).
sql "UPDATE accounts SET sync_interval_s = 3600, next_sync_at = now()" >/dev/null
polled() {
	sql "SELECT count(*) FROM accounts a WHERE EXISTS (SELECT 1 FROM sync_runs r WHERE
	     r.account_id = a.id AND r.run_id > $top AND r.status <> 'running')"
}
for _ in $(seq 1 600); do
	[ "$(polled)" = 4 ] && break
	sleep 0.1
done
check "every account's scheduled run after the restarts ended" [ "$(polled)" = 4 ]
check "and each ended ok" [ "$(sql "SELECT count(*) FROM sync_runs WHERE run_id > $top
	AND status <> 'ok'")" = 0 ]
check "no prepared statement was reported missing" \
	bash -c "! grep -q 'prepared statement .* does not exist' '$RUN_LOG'"

echo "--- 4. Dovecot restarted mid-fetch"
add_account dovecot
sync_bg dovecot 120
if check "dovecot: sync is mid-way" mid_sync dovecot 300; then
	t0=$(now_ms)
	"$STACK" restart dovecot >/dev/null 2>&1
	echo "  dovecot restarted in $(($(now_ms) - t0)) ms"
fi
sync_wait
check "dovecot: sync --wait exits 0 after the Dovecot restart" [ $SYNC_RC -eq 0 ]
check "dovecot: the run ended ok" summary_ok "$SYNC_OUT"
exact dovecot

echo "--- 5. mailpipe run stopped while Redis is down"
"$STACK" stop redis >/dev/null 2>&1
sleep 3 # every stage has met the outage and is reconnecting
t0=$(now_ms)
run_stop
echo "  mailpipe run stopped in $(($(now_ms) - t0)) ms"
# Its stages drain on SIGTERM within seconds; one that ignores it is killed after 30 s.
check "every stage stops on SIGTERM while Redis is away" [ $(($(now_ms) - t0)) -lt 15000 ]
finish
