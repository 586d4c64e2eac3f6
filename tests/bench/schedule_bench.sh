#!/usr/bin/env bash
# One scheduler's planning rate: 100,000 synthetic accounts (SCHEDULE_BENCH_ACCOUNTS), all due
# at once, in a private PostgreSQL and Redis; one mailpipe-scheduler at its defaults (tick 1 s,
# MAILPIPE_SCHEDULE_BATCH 500) plans them; no fetcher runs, so what is timed is planning: a
# run row and a list_folders job on {mp}:jobs per account. Also prints the due query's plan
# (the accounts_due index) and how the next round is spread. Prints figures; asserts nothing.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$ROOT/bin:$PATH
N=${SCHEDULE_BENCH_ACCOUNTS:-100000}
make -s -C "$ROOT" bin/mailpipe bin/mailpipe-scheduler >/dev/null

WORK=$(mktemp -d /tmp/mailpipe-sbench.XXXXXX)
export MAILPIPE_STACK_DIR=$WORK/stack MP_PG_FSYNC=${MP_PG_FSYNC:-on} MP_DEMO_COUNT=0
sched_pid=
cleanup() {
	[ -z "$sched_pid" ] || { kill "$sched_pid" 2>/dev/null; wait "$sched_pid" 2>/dev/null; } || true
	"$ROOT/deploy/local/stack.sh" destroy >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
base=${SCHEDULE_BENCH_PORT:-25300}
for try in 1 2 3; do # another stack may hold the port
	export MP_REDIS_PORT=$base MP_PG_PORT=$((base + 1)) MP_IMAP_PORT=$((base + 2)) \
		MP_IMAPS_PORT=$((base + 3))
	"$ROOT/deploy/local/stack.sh" start redis postgres >"$WORK/start.log" 2>&1 && break
	if [ "$try" = 3 ] || ! grep -q 'already in use' "$WORK/start.log"; then
		cat "$WORK/start.log" >&2
		echo "schedule_bench.sh: redis and postgres did not start" >&2
		exit 1
	fi
	base=$((base + 4))
done
eval "$("$ROOT/deploy/local/stack.sh" env)"
export MAILPIPE_LOG=${MAILPIPE_LOG:-warn} MAILPIPE_IDLE=0
sql() { psql "$MAILPIPE_DATABASE_URL" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }
mailpipe db migrate >/dev/null

sql "INSERT INTO accounts (name, host, port, username, secret_ref, sync_interval_s, next_sync_at)
     SELECT 'bench' || i, 'imap' || (i % 50) || '.example', 993, 'user' || i, 'env:BENCH_SECRET', 60,
            now() - interval '1 minute' FROM generate_series(1, $N) i"
sql "ANALYZE accounts"
echo "schedule bench: $N accounts, interval 60 s, all due; one scheduler, MAILPIPE_TICK_MS=${MAILPIPE_TICK_MS:-1000}, MAILPIPE_SCHEDULE_BATCH=${MAILPIPE_SCHEDULE_BATCH:-500}"
echo "the due query's plan:"
sql "EXPLAIN SELECT d.id FROM accounts d WHERE d.state IN ('active', 'backoff')
     AND d.sync_interval_s > 0 AND d.next_sync_at <= now()
     AND NOT EXISTS (SELECT 1 FROM sync_runs r WHERE r.account_id = d.id AND r.status = 'running')
     ORDER BY d.next_sync_at LIMIT 500 FOR UPDATE SKIP LOCKED" | sed 's/^/  /'

start=$(date +%s.%N)
mailpipe-scheduler 2>"$WORK/scheduler.log" &
sched_pid=$!
while [ "$(sql "SELECT count(*) FROM sync_runs")" -lt "$N" ]; do
	kill -0 "$sched_pid" 2>/dev/null || { cat "$WORK/scheduler.log" >&2; exit 1; }
	sleep 0.2
done
end=$(date +%s.%N)
jobs=$(redis-cli -p "$MP_REDIS_PORT" XLEN '{mp}:jobs')
spread=$(sql "SELECT max(n) || ' ' || count(*) FROM (SELECT date_trunc('second', next_sync_at), count(*) AS n
	FROM accounts GROUP BY 1) s")
python3 - "$start" "$end" "$N" "$jobs" $spread <<'PY'
import sys
s, e, n, jobs, peak, seconds = sys.argv[1:]
t = float(e) - float(s)
print(f"  planned {n} accounts in {t:.1f} s = {int(n) / t * 60:,.0f} accounts a minute ({jobs} jobs on {{mp}}:jobs)")
print(f"  next round spread over {seconds} seconds, at most {peak} accounts due in one second")
PY
