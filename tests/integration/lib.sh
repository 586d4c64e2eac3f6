# Shared by the integration tests: a private stack (Redis, PostgreSQL, Dovecot) in a temporary
# directory on ports of its own, `mailpipe run` in the background, cleanup on exit, and
# pass/fail lines counted by tests/run.sh.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PATH=$ROOT/bin:$PATH
FAILS=0

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
check() { # name, command...
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name"; fi
}

# stack_up COUNT SEED: starts a stack whose demo user holds a COUNT-message sample mailbox.
stack_up() {
	local base=$((20000 + ($$ % 2000) * 4))
	export MAILPIPE_STACK_DIR
	MAILPIPE_STACK_DIR=$(mktemp -d /tmp/mailpipe-test.XXXXXX)
	export MP_REDIS_PORT=$base MP_PG_PORT=$((base + 1)) MP_IMAP_PORT=$((base + 2)) MP_IMAPS_PORT=$((base + 3))
	export MP_DEMO_COUNT=${1:-400} MP_DEMO_SEED=${2:-1} MP_PG_FSYNC=off
	trap stack_down EXIT
	if ! "$ROOT/deploy/local/stack.sh" start >"$MAILPIPE_STACK_DIR.start.log" 2>&1; then
		cat "$MAILPIPE_STACK_DIR.start.log"
		fail "local stack did not start"
		exit 1
	fi
	eval "$("$ROOT/deploy/local/stack.sh" env)"
	export MAILPIPE_LOG=${MAILPIPE_LOG:-warn} MAILPIPE_CLAIM_IDLE_MS=3000 TEST_IMAP_SECRET=demo
	# IDLE watches start syncs of their own (a watch that opens asks for one): tests that count
	# runs or check that nothing is pending after their sync run without them. test_push.sh and
	# test_mirror*.sh turn them on, the mirror tests to prove pushes and explicit syncs agree.
	export MAILPIPE_IDLE=${MAILPIPE_IDLE:-0}
	mailpipe db migrate >/dev/null || { fail "db migrate"; exit 1; }
}

# pg_only_up NAME BASE: only PostgreSQL (fsync off, no sample mailbox), in a private stack
# directory /tmp/mailpipe-NAME.XXXXXX on ports from BASE up; tries other ports when another
# stack holds them; ends the test when it does not start.
pg_only_up() {
	export MAILPIPE_STACK_DIR
	MAILPIPE_STACK_DIR=$(mktemp -d "/tmp/mailpipe-$1.XXXXXX")
	export MP_PG_FSYNC=off MP_DEMO_COUNT=0
	trap stack_down EXIT
	local try base
	for try in 1 2 3; do
		base=$(($2 + (($$ + try * 331) % 2000) * 4))
		export MP_REDIS_PORT=$base MP_PG_PORT=$((base + 1)) MP_IMAP_PORT=$((base + 2)) \
			MP_IMAPS_PORT=$((base + 3))
		"$ROOT/deploy/local/stack.sh" start postgres >"$MAILPIPE_STACK_DIR.start.log" 2>&1 && break
		if [ "$try" = 3 ] || ! grep -q 'already in use' "$MAILPIPE_STACK_DIR.start.log"; then
			cat "$MAILPIPE_STACK_DIR.start.log"
			fail "postgres did not start"
			exit 1
		fi
	done
	eval "$("$ROOT/deploy/local/stack.sh" env)"
}

# hostile_up DIR ARGS...: the scripted misbehaving server (hostile_imap.py ARGS...) on a free
# port, its log in DIR/server.jsonl; sets HPORT and HOSTILE_PID, exports HOSTILE_PW (its
# password, for --secret env:HOSTILE_PW) and stops it on exit with the stack (after stack_up).
hostile_up() {
	local dir=$1
	shift
	mkdir -p "$dir"
	HPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	python3 "$ROOT/tests/integration/hostile_imap.py" --port "$HPORT" --log "$dir/server.jsonl" \
		--ready-file "$dir/ready" "$@" >"$dir/server.out" 2>&1 &
	HOSTILE_PID=$!
	export HOSTILE_PW=pw
	trap 'kill $HOSTILE_PID 2>/dev/null; stack_down' EXIT
	for _ in $(seq 100); do [ -f "$dir/ready" ] && break; sleep 0.1; done
	check "the scripted server is listening" [ -f "$dir/ready" ]
}

stack_down() {
	run_stop
	"$ROOT/deploy/local/stack.sh" destroy >/dev/null 2>&1
	rm -f "$MAILPIPE_STACK_DIR.start.log"
}

RUN_PID=
run_start() {
	RUN_LOG=$MAILPIPE_STACK_DIR/run.log
	mailpipe run >>"$RUN_LOG" 2>&1 &
	RUN_PID=$!
}

run_stop() {
	[ -n "$RUN_PID" ] || return 0
	kill -TERM "$RUN_PID" 2>/dev/null
	wait "$RUN_PID" 2>/dev/null
	RUN_PID=
}

add_account() { # NAME, extra flags...
	local name=$1
	shift
	mailpipe account add "$name" --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit \
		--username demo --secret env:TEST_IMAP_SECRET --ca-file "$MP_CA_FILE" --interval 0 \
		--initial-window-days 0 --email demo@example.org "$@" >/dev/null
}

# The IDLE lease of ACCOUNT's FOLDER (default INBOX): the consumer name of the fetcher watching it.
idle_lease() {
	local ids
	ids=$(sql "SELECT a.id || ':' || f.id FROM accounts a JOIN email_folders f ON f.account_id = a.id
		WHERE a.name = '$1' AND f.name = '${2:-INBOX}'")
	redis-cli -p "$MP_REDIS_PORT" GET "{mp}:idle:lease:$ids"
}

sql() { psql "$MAILPIPE_DATABASE_URL" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

# same_message_rows A B MIN [WHERE]: accounts A and B hold the same message rows (every column
# but ids and times, each row as often), and A more than MIN of them; WHERE (SQL on m) narrows
# both sides.
same_message_rows() {
	local where=${4:-true}
	[ "$(sql "
	WITH a AS (SELECT to_jsonb(m) - '{id,account_id,conversation_id,created_at}'::text[] AS j
	  FROM messages m WHERE account_id = (SELECT id FROM accounts WHERE name = '$1') AND ($where)),
	b AS (SELECT to_jsonb(m) - '{id,account_id,conversation_id,created_at}'::text[] AS j
	  FROM messages m WHERE account_id = (SELECT id FROM accounts WHERE name = '$2') AND ($where))
	SELECT (SELECT count(*) FROM (TABLE a EXCEPT ALL TABLE b) d) + (SELECT count(*) FROM (TABLE b EXCEPT ALL TABLE a) d)
	  + CASE WHEN (SELECT count(*) FROM a) > $3 THEN 0 ELSE 1 END")" = 0 ]
}

# vectors_right ACCOUNT: every row's search vector is mp_search_vector of its own columns.
vectors_right() {
	[ "$(sql "SELECT count(*) FROM messages WHERE account_id = (SELECT id FROM accounts WHERE name = '$1')
	  AND (search IS NULL OR search IS DISTINCT FROM
	  mp_search_vector(subject, from_name, from_email, coalesce(body_clean, body_text)))")" = 0 ]
}

# sync_under_terminations ACCOUNT APPLICATION_NAME PERIOD WHAT: syncs ACCOUNT (--wait, summary in
# $MAILPIPE_STACK_DIR/summary-ACCOUNT.json) while the database backends named APPLICATION_NAME
# are terminated every PERIOD seconds; checks that the sync ends ok and that WHAT's backend was
# terminated at least three times during it.
sync_under_terminations() {
	local kills=$MAILPIPE_STACK_DIR/kills-$1 killer rc n
	(while :; do
		sleep "$3"
		sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		     WHERE application_name = '$2'" 2>/dev/null | grep -c t >>"$kills"
	done) &
	killer=$!
	mailpipe sync "$1" --wait --timeout 300 >"$MAILPIPE_STACK_DIR/summary-$1.json"
	rc=$?
	kill "$killer"
	wait "$killer" 2>/dev/null
	check "the sync ends ok while $4 is terminated again and again" [ $rc -eq 0 ]
	n=$(awk '{s += $1} END {print s + 0}' "$kills")
	check "$4's backend was terminated during the sync ($n times)" [ "$n" -ge 3 ]
}

# metrics_on: the stages of the next run_start serve metrics on ports of their own (below the
# ephemeral ports, above stack_up's). stage_metric STAGE SERIES: SERIES's value (the whole
# series as exposed, e.g. 'mailpipe_imap_reconnects_total{kind="kept"}') from the first STAGE
# process of the run's log.
metrics_on() {
	local mbase=$((28000 + ($$ % 190) * 10))
	export MAILPIPE_METRICS_ADDR=127.0.0.1:$mbase-$((mbase + 9))
}
stage_metric() {
	local a
	a=$(sed -n "s/.* stage=$1 addr=\([0-9.:]*\) msg=\"serving metrics at.*/\1/p" "$RUN_LOG" | head -1)
	[ -n "$a" ] && curl -s --max-time 5 "http://$a/metrics" | awk -v k="$2" '$1 == k {print $2}'
}

verify() { # ACCOUNT, verify.py flags...
	local account=$1
	shift
	python3 "$ROOT/tests/integration/verify.py" "$account" 127.0.0.1 "$MP_IMAP_PORT" demo demo "$@" \
		|| FAILS=$((FAILS + 1))
}

# Redis partitions (MAILPIPE_REDIS_PARTITIONS > 1): partition P's hash tag, and the port of
# its server (its MAILPIPE_REDIS_PARTITION_URLS entry, else the home server's).
partition_tag() { if [ "${MAILPIPE_REDIS_PARTITIONS:-1}" -gt 1 ]; then echo "{mp:$1}"; else echo "{mp}"; fi; }
partition_port() {
	local p=$1 item spec url IFS=,
	for item in ${MAILPIPE_REDIS_PARTITION_URLS:-}; do
		spec=${item%%=*} url=${item#*=}
		if [ "$p" -ge "${spec%-*}" ] && [ "$p" -le "${spec#*-}" ]; then
			url=${url#*://}
			url=${url%%/*}
			echo "${url##*:}"
			return
		fi
	done
	echo "$MP_REDIS_PORT"
}

# Everything acknowledged: no stream entry left pending in any group of any partition. Work
# started in the background (an IDLE watch's sync) gets five seconds to settle; an entry stuck
# for good fails.
no_pending() {
	local n pair try p tag port
	for try in $(seq 50); do
		n=0
		for p in $(seq 0 $((${MAILPIPE_REDIS_PARTITIONS:-1} - 1))); do
			tag=$(partition_tag "$p") port=$(partition_port "$p")
			for pair in "$tag:jobs fetchers" "$tag:jobs:first fetchers" "$tag:raw parsers" "$tag:parsed writers"; do
				set -- $pair
				n=$(redis-cli -p "$port" XPENDING "$1" "$2" | head -1)
				[ "$n" = 0 ] || break 2
			done
		done
		[ "$n" = 0 ] && return 0
		sleep 0.1
	done
	echo "  $n entries pending in $1/$2"
	return 1
}

snapshot() { # a digest of every row a re-sync must leave alone
	sql "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
	       SELECT m.id || ':' || m.content_sha256 || ':' || coalesce(m.conversation_id, 0) || ':' || m.xmin AS x FROM messages m
	       UNION ALL SELECT l.id || ':' || l.uid || ':' || l.flags::text || ':' || l.xmin FROM message_locations l) s"
}

# A sanitizer build's stages report into the run log, not into a test's exit status.
sanitized() { grep -qaE '__asan_init|__ubsan_handle' "$ROOT/bin/mailpipe-writer"; }

finish() {
	if [ -n "${RUN_LOG:-}" ] && sanitized; then
		check "no sanitizer report from any stage" \
			bash -c "! grep -E 'ERROR: [A-Za-z]+Sanitizer|runtime error:' '$RUN_LOG'"
	fi
	if [ "$FAILS" -gt 0 ]; then
		echo "--- last lines of mailpipe run's log (whole log kept in ${TMPDIR:-/tmp}/mailpipe-failed-run.log):"
		tail -n 30 "${RUN_LOG:-/dev/null}" 2>/dev/null
		cp "${RUN_LOG:-/dev/null}" "${TMPDIR:-/tmp}/mailpipe-failed-run.log" 2>/dev/null
		exit 1
	fi
	exit 0
}
