#!/usr/bin/env bash
# Issue 11, past one machine: Redis partitions on two redis-server processes AND hash-partitioned
# Postgres tables, together. MAILPIPE_REDIS_PARTITIONS=2 puts each account's work keys under
# {mp:<id mod 2>}; partition 1 lives on a second redis-server (MAILPIPE_REDIS_PARTITION_URLS),
# partition 0 and the global keys on the home one. `mailpipe run` starts workers for both
# partitions; four accounts (two per partition) sync, one of partition 1 while a fetcher of
# partition 1 is frozen holding its job (another of partition 1 must take it over) and the
# writer of partition 1 is killed with SIGKILL. Every account must end exact, every key must sit
# on its partition's server with only its partition's accounts in it, nothing left pending.
. "$(dirname "$0")/lib.sh"

# --- configuration errors: one line naming the variable, exit 2 -------------------------------
bad_config() { # EXPECTED-TEXT, VAR=value...
	local want=$1 out
	shift
	out=$(env "$@" "$ROOT/bin/mailpipe" status 2>&1)
	local rc=$?
	[ "$rc" = 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && [[ "$out" == *"$want"* ]] ||
		{ echo "  exit $rc: $out"; return 1; }
}
check "a partition map naming a partition that does not exist is a one-line error, exit 2" \
	bad_config "MAILPIPE_REDIS_PARTITION_URLS: '2' names a partition outside 0-1" \
	MAILPIPE_REDIS_PARTITIONS=2 MAILPIPE_REDIS_PARTITION_URLS=2=redis://127.0.0.1:1/0
check "a partition map entry that is not P=URL is a one-line error, exit 2" \
	bad_config "MAILPIPE_REDIS_PARTITION_URLS: 'redis://127.0.0.1:1/0' is not P=URL" \
	MAILPIPE_REDIS_PARTITIONS=2 MAILPIPE_REDIS_PARTITION_URLS=redis://127.0.0.1:1/0
check "a map to something that is no Redis URL is a one-line error, exit 2" \
	bad_config "MAILPIPE_REDIS_PARTITION_URLS: 'http://h:1' is not a redis:// or unix:// URL" \
	MAILPIPE_REDIS_PARTITIONS=2 MAILPIPE_REDIS_PARTITION_URLS=1=http://h:1
check "MAILPIPE_PARTITION outside the partitions is a one-line error, exit 2" \
	bad_config "MAILPIPE_PARTITION='3' is not a partition of MAILPIPE_REDIS_PARTITIONS=2" \
	MAILPIPE_REDIS_PARTITIONS=2 MAILPIPE_PARTITION=3

# --- the stack, a second redis-server, hash-partitioned tables ----------------------------------
stack_up 1500 3
P2=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
R2=$MAILPIPE_STACK_DIR/redis2
mkdir -p "$R2"
redis-server --port "$P2" --bind 127.0.0.1 --daemonize yes --pidfile "$R2/redis.pid" \
	--logfile "$R2/redis.log" --dir "$R2" --save "" --appendonly no >/dev/null
for i in $(seq 100); do redis-cli -p "$P2" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
r2_pid=$(cat "$R2/redis.pid" 2>/dev/null)
frozen=
sampler=
cleanup() {
	[ -n "$frozen" ] && kill -CONT "$frozen" 2>/dev/null
	[ -n "$sampler" ] && kill "$sampler" 2>/dev/null
	[ -n "$r2_pid" ] && kill "$r2_pid" 2>/dev/null
	stack_down
}
trap cleanup EXIT
check "a second redis-server answers on port $P2" [ -n "$r2_pid" ]
check "db migrate --partitions 4 hash-partitions the per-account tables" \
	bash -c "mailpipe db migrate --partitions 4 2>&1 | grep -q '^8 tables partitioned by hash of account_id into 4 partitions'"

for u in alice:150:5 bob:120:6; do
	IFS=: read -r name count seed <<<"$u"
	"$ROOT/deploy/local/stack.sh" add-user "$name" "${name}pw" --sample "$count" "$seed" >/dev/null 2>&1 ||
		{ fail "add-user $name"; finish; }
done
add_user_account() { # ACCOUNT USER, extra flags...
	local acc=$1 user=$2
	shift 2
	mailpipe account add "$acc" --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username "$user" \
		--secret "env:PW_$user" --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 \
		--email "$user@example.org" "$@" >/dev/null
}
export PW_alice=alicepw PW_bob=bobpw
# Ids 1-4 in order: big (demo, 1500 messages) and bob on partition 1, alice and big2 on 0.
# bob is due at once and every hour: the scheduler, not `mailpipe sync`, starts his first run.
add_account big
add_user_account alice alice
add_user_account bob bob --interval 3600
add_account big2
declare -A USER=([big]=demo [alice]=alice [bob]=bob [big2]=demo) PART
for acc in big alice bob big2; do
	PART[$acc]=$(( $(sql "SELECT id FROM accounts WHERE name = '$acc'") % 2 ))
done
check "two accounts on each partition (big, bob: 1; alice, big2: 0)" \
	[ "${PART[big]}${PART[bob]}${PART[alice]}${PART[big2]}" = 1100 ]

export MAILPIPE_REDIS_PARTITIONS=2 MAILPIPE_REDIS_PARTITION_URLS="1=redis://127.0.0.1:$P2/0"
export MAILPIPE_FETCHERS=4 MAILPIPE_PARSERS=1 MAILPIPE_WRITERS=1 MAILPIPE_LOG=info
export MAILPIPE_LOCK_TTL_MS=5000 MAILPIPE_FETCH_BATCH=50 MAILPIPE_WRITER_BATCH=50 MAILPIPE_RAW_BUDGET=100
rhome() { redis-cli -p "$MP_REDIS_PORT" "$@"; }
r2() { redis-cli -p "$P2" "$@"; }

# While the syncs run, entries are sampled from each partition's streams (they are deleted once
# acknowledged): which accounts each partition carried.
sample() {
	while :; do
		for s in jobs jobs:first raw parsed; do
			rhome --raw XRANGE "{mp:0}:$s" - + COUNT 20 | grep -ao '"account_id" *: *[0-9]*' | sed 's/.*: *//;s/^/0 /'
			r2 --raw XRANGE "{mp:1}:$s" - + COUNT 20 | grep -ao '"account_id" *: *[0-9]*' | sed 's/.*: *//;s/^/1 /'
		done
		sleep 0.1
	done >"$MAILPIPE_STACK_DIR/seen" 2>/dev/null
}
sample &
sampler=$!

run_start
check "mailpipe run starts 4 fetchers, 2 parsers and 2 writers for 2 partitions (max of count and partitions)" \
	bash -c "sleep 2; [ \$(grep -c 'child=fetcher slot=.* msg=\"started\"' '$RUN_LOG') = 4 ] &&
		[ \$(grep -c 'child=parser slot=.* msg=\"started\"' '$RUN_LOG') = 2 ] &&
		[ \$(grep -c 'child=writer slot=.* msg=\"started\"' '$RUN_LOG') = 2 ]"
# bob's scheduled run first, so that `mailpipe sync bob` joins it rather than racing it.
for i in $(seq 200); do
	[ "$(sql "SELECT count(*) FROM sync_runs WHERE account_id = (SELECT id FROM accounts WHERE name = 'bob')")" -ge 1 ] && break
	sleep 0.05
done
sync_at=$(sql "SELECT now()")
declare -A SYNC
for acc in big alice bob big2; do
	mailpipe sync "$acc" --wait --timeout 170 >"$MAILPIPE_STACK_DIR/$acc.json" 2>"$MAILPIPE_STACK_DIR/$acc.err" &
	SYNC[$acc]=$!
done

# The child of `mailpipe run` named CONSUMER (its slot keeps the name across restarts).
child_pid() { # CONSUMER, or a fetcher lane's CONSUMER.i
	local p c=$1
	case "$c" in *.[0-9] | *.[0-9][0-9]) c=${c%.*} ;; esac
	for p in $(pgrep -P "$RUN_PID"); do
		tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "MAILPIPE_CONSUMER=$c" && { echo "$p"; return; }
	done
}
# pending1 CONSUMER: job entries CONSUMER holds unacknowledged in partition 1's job streams.
pending1() {
	for s in "{mp:1}:jobs" "{mp:1}:jobs:first"; do r2 XINFO CONSUMERS "$s" fetchers; done | awk -v c="$1" '
		prev == "name" { name = $0 } prev == "pending" && name == c { n += $0 } { prev = $0 } END { print n + 0 }'
}
# A partition-1 fetcher mid-job on big's mail (the raw budget keeps fetchers pausing mid-job):
# frozen, and still holding its job once frozen (one that had just finished is let go). Once
# 100 of big's are stored the parsers are frozen too, so the budget fills and the fetchers wait
# mid-job until one is caught: left running, a fast pipeline could finish every fetch between
# two looks (seen in make check: 1,470 of 1,500 stored, no job held).
parsers=$(for p in $(pgrep -P "$RUN_PID"); do
	tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q '^MAILPIPE_CONSUMER=parser-' && echo "$p"; done)
holder=
frozen=
for i in $(seq 600); do
	stored=$(sql "SELECT count(*) FROM messages WHERE account_id = (SELECT id FROM accounts WHERE name = 'big')")
	if [ "$stored" -ge 100 ]; then
		kill -STOP $parsers 2>/dev/null
		holder=$(for s in "{mp:1}:jobs" "{mp:1}:jobs:first"; do r2 XINFO CONSUMERS "$s" fetchers; done | awk '
			prev == "name" { name = $0 } prev == "pending" && $0 > 0 { print name; exit } { prev = $0 }')
		if [ -n "$holder" ]; then
			frozen=$(child_pid "$holder")
			kill -STOP "$frozen"
			sleep 0.3
			[ "$(pending1 "$holder")" -gt 0 ] && break
			kill -CONT "$frozen"
			frozen=
		fi
	fi
	sleep 0.05
done
kill -CONT $parsers 2>/dev/null
check "the parsers were found (to hold the fetchers mid-job)" [ -n "$parsers" ]
check "a partition-1 fetcher is frozen holding a job mid-sync ($stored of 1500 of big's stored, holder $holder)" \
	[ -n "$frozen" ] && [ "$stored" -lt 1500 ]
if [ -n "$frozen" ]; then
	# Frozen, it holds the job and its folder lock without refreshing it: after
	# MAILPIPE_CLAIM_IDLE_MS and the lock's TTL, the other partition-1 fetcher must take over.
	kill -STOP "$frozen"
	wpid=$(child_pid "writer-$(hostname | cut -c1-63)-1")
	[ -z "$wpid" ] && wpid=$(for p in $(pgrep -P "$RUN_PID"); do
		tr '\0' '\n' <"/proc/$p/environ" | grep -q '^MAILPIPE_CONSUMER=writer-.*-1$' && echo "$p"; done)
	check "the partition-1 writer is found and killed with SIGKILL" kill -9 "$wpid"
	for i in $(seq 400); do
		grep -q "reclaimed entries of a dead consumer from {mp:1}:jobs" "$RUN_LOG" && break
		sleep 0.05
	done
	check "another partition-1 fetcher reclaimed the frozen one's job from {mp:1}" \
		grep -q "reclaimed entries of a dead consumer from {mp:1}:jobs" "$RUN_LOG"
	kill -9 "$frozen"
	kill -CONT "$frozen" 2>/dev/null
	frozen=
fi

for acc in big alice bob big2; do
	wait "${SYNC[$acc]}"
	rc=$?
	check "sync of $acc (partition ${PART[$acc]}) exits 0" [ "$rc" = 0 ]
	[ "$rc" = 0 ] || cat "$MAILPIPE_STACK_DIR/$acc.err"
done
kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
sampler=
for acc in big alice bob big2; do
	u=${USER[$acc]}
	pw=demo
	[ "$u" = demo ] || pw=${u}pw
	python3 "$ROOT/tests/integration/verify.py" "$acc" 127.0.0.1 "$MP_IMAP_PORT" "$u" "$pw" ||
		FAILS=$((FAILS + 1))
done
# `mailpipe sync bob` joins that run, or starts a second one when the first has already ended.
check "bob's first run was started by the scheduler on partition 1, before any sync call, and ended ok" \
	[ "$(sql "SELECT count(*) FROM sync_runs WHERE account_id = (SELECT id FROM accounts WHERE name = 'bob')
		AND started_at < '$sync_at' AND status = 'ok'")" = 1 ]

# --- where the keys are ------------------------------------------------------------------------
ids1=$(sql "SELECT string_agg(id::text, ' ' ORDER BY id) FROM accounts WHERE id % 2 = 1")
ids0=$(sql "SELECT string_agg(id::text, ' ' ORDER BY id) FROM accounts WHERE id % 2 = 0")
seen1=$(awk '$1 == 1 { print $2 }' "$MAILPIPE_STACK_DIR/seen" | sort -un | tr '\n' ' ')
seen0=$(awk '$1 == 0 { print $2 }' "$MAILPIPE_STACK_DIR/seen" | sort -un | tr '\n' ' ')
echo "  accounts seen in partition 0's streams: $seen0; in partition 1's: $seen1"
check "partition 1's streams on the second server carried partition-1 accounts only ($ids1)" \
	[ "${seen1% }" = "$ids1" ]
check "partition 0's streams on the home server carried partition-0 accounts only ($ids0)" \
	[ "${seen0% }" = "$ids0" ]
check "partition 1's streams and groups exist on the second server" bash -c "
	for s in jobs jobs:first raw parsed; do redis-cli -p $P2 XINFO GROUPS '{mp:1}:'\$s | grep -q . || exit 1; done"
check "every key on the second server is partition 1's" \
	bash -c "[ -z \"\$(redis-cli -p $P2 --scan | grep -v '^{mp:1}:')\" ] && redis-cli -p $P2 --scan | grep -q '^{mp:1}:epoch$'"
check "the home server holds partition 0 and the global keys, nothing of partition 1's" \
	bash -c "[ -z \"\$(redis-cli -p $MP_REDIS_PORT --scan --pattern '{mp:1}*')\" ] &&
		redis-cli -p $MP_REDIS_PORT EXISTS '{mp:0}:jobs' '{mp}:events' '{mp}:requests' | grep -qx 3 &&
		[ -z \"\$(redis-cli -p $MP_REDIS_PORT --scan --pattern '{mp}:jobs*')\" ]"
check "no entry left pending in any partition" no_pending
mailpipe status | sed -n '/^queues/,$p' | sed 's/^/  /'
check "status --json shows each partition's streams, none pending" bash -c "mailpipe status --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
s = {(x.get(\"partition\"), x[\"stream\"]): x for x in d[\"streams\"]}
for p in (0, 1):
    for n in (\"jobs\", \"jobs:first\", \"raw\", \"parsed\"):
        x = s[(p, \"{mp:%d}:%s\" % (p, n))]
        assert x[\"groups\"] and all(g[\"pending\"] == 0 for g in x[\"groups\"]), x
assert [q[\"partition\"] for q in d[\"queues\"][\"partitions\"]] == [0, 1], d[\"queues\"]
'"
check "each account's messages sit in one Postgres partition, and the four span several" [ "$(sql "
	SELECT (count(DISTINCT tableoid) > 1)::text || ' ' || count(DISTINCT (tableoid, account_id)) FROM messages")" = "true 4" ]

# A second round changes nothing: the partitions' cursors hold.
before=$(snapshot)
for acc in big alice bob big2; do
	mailpipe sync "$acc" --wait --timeout 60 >/dev/null
	check "no-change sync of $acc exits 0" [ $? = 0 ]
done
check "a sync with no change rewrites no message or location row" [ "$(snapshot)" = "$before" ]
check "no entry left pending in any partition after the second round" no_pending

# --- partition 1's server restarted empty mid-sync -----------------------------------------------
# It has lost partition 1's work in flight: the scheduler must close that partition's run as
# failed at once (its epoch is gone) and make the account due; partition 0's run, sharing the
# scheduler, must go on and end ok; the repair run must leave partition 1's account exact.
add_account wipe1 --interval 3600
add_account keep0 --interval 3600
check "wipe1 is on partition 1 and keep0 on partition 0" \
	[ "$(sql "SELECT string_agg((id % 2)::text, ' ' ORDER BY name DESC) FROM accounts WHERE name IN ('wipe1', 'keep0')")" = "1 0" ]
run_of() { sql "SELECT max(run_id) FROM sync_runs WHERE account_id = (SELECT id FROM accounts WHERE name = '$1')"; }
status_of() { sql "SELECT status FROM sync_runs WHERE run_id = ${1:-0}"; }
for i in $(seq 600); do
	n=$(sql "SELECT count(*) FROM messages WHERE account_id = (SELECT id FROM accounts WHERE name = 'wipe1')")
	[ "$n" -ge 100 ] && [ -n "$(run_of keep0)" ] && break
	sleep 0.05
done
w1=$(run_of wipe1) k0=$(run_of keep0)
check "the scheduler started both runs; wipe1's is mid-sync ($n of 1500 stored)" \
	[ "$(status_of "$w1")" = running ] && [ "$n" -lt 1500 ]
check "each run carries its own partition server's epoch" \
	[ "$(sql "SELECT redis_epoch FROM sync_runs WHERE run_id = $w1")" = "$(r2 GET '{mp:1}:epoch')" ] &&
	[ "$(sql "SELECT redis_epoch FROM sync_runs WHERE run_id = $k0")" = "$(rhome GET '{mp:0}:epoch')" ]
kill "$r2_pid"
for i in $(seq 100); do kill -0 "$r2_pid" 2>/dev/null || break; sleep 0.05; done
redis-server --port "$P2" --bind 127.0.0.1 --daemonize yes --pidfile "$R2/redis.pid" \
	--logfile "$R2/redis.log" --dir "$R2" --save "" --appendonly no >/dev/null
for i in $(seq 100); do r2 ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
r2_pid=$(cat "$R2/redis.pid")
for i in $(seq 300); do [ "$(status_of "$w1")" != running ] && break; sleep 0.1; done
check "partition 1's lost run is closed as failed within 30 s" [ "$(status_of "$w1")" = failed ]
check "its error says Redis lost its work" \
	[ "$(sql "SELECT error LIKE 'Redis lost this run%' FROM sync_runs WHERE run_id = $w1")" = t ]
for i in $(seq 1200); do [ "$(status_of "$k0")" != running ] && break; sleep 0.1; done
check "partition 0's run went on and ended ok" [ "$(status_of "$k0")" = ok ]
for i in $(seq 1200); do
	w2=$(sql "SELECT run_id FROM sync_runs WHERE account_id = (SELECT id FROM accounts WHERE name = 'wipe1')
		AND run_id > $w1 AND status <> 'running' LIMIT 1")
	[ -n "$w2" ] && break
	sleep 0.1
done
check "wipe1 was due at once, and the scheduler's repair run ended ok" [ "$(status_of "$w2")" = ok ]
verify wipe1
verify keep0
check "no entry left pending in any partition after the restart" no_pending
finish
