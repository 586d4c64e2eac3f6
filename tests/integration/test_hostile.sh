#!/usr/bin/env bash
# Issue 8: mailpipe against a scripted IMAP server that misbehaves the way real ones do on bad
# days (tests/integration/hostile_imap.py: huge literals, endless lines and greetings, cuts,
# garbage, BYE, silence, slow-loris, a FETCH answer without one UID, [THROTTLED]/[UNAVAILABLE]/
# [LIMIT] with and without a backoff hint, a wrong password). Every scenario is one account,
# all synced at once next to an honest Dovecot account; each must end within a bounded time in
# the right outcome (a clear error on the folder or account, a retry after the hinted time, or
# the data stored), and the Dovecot account must come out exact. hostile_expect.py holds the
# expected outcome of each scenario and checks it against the summaries, the database and the
# server's own log of what it was sent.
. "$(dirname "$0")/lib.sh"
stack_up 60 5
HERE=$ROOT/tests/integration
OUT=$MAILPIPE_STACK_DIR/hostile
mkdir -p "$OUT"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Scenarios that misbehave before any login cannot be chosen by user name: they get ports.
HPORT=$(free_port) NOGREET_PORT=$(free_port) ENDLESS_PORT=$(free_port)
python3 "$HERE/hostile_imap.py" --port "$HPORT" --log "$OUT/server.jsonl" --ready-file "$OUT/ready" \
	--scenario-port "nogreeting=$NOGREET_PORT" --scenario-port "endlessgreeting=$ENDLESS_PORT" \
	>"$OUT/server.out" 2>&1 &
HOSTILE_PID=$!
trap 'kill $HOSTILE_PID 2>/dev/null; stack_down' EXIT
for _ in $(seq 100); do [ -f "$OUT/ready" ] && break; sleep 0.1; done
check "the hostile server is listening" [ -f "$OUT/ready" ]

# Bounded everywhere: 3 s without progress ends a connection, two retries after 0.2-0.8 s,
# hints up to 5 s are waited for inline (longer ones move the account's next sync).
export MAILPIPE_FETCH_TIMEOUT_S=3 MAILPIPE_FETCH_RETRIES=2 MAILPIPE_RETRY_BASE_MS=300 \
	MAILPIPE_RETRY_MAX_MS=5000 MAILPIPE_FETCHERS=8 MAILPIPE_LOG=info
# IDLE watches would add logins of their own to the counts the checks compare (the scripted
# server offers no IDLE, so a watch only logs in and leaves); test_push.sh covers them.
export MAILPIPE_IDLE=0
export HOSTILE_PW=pw HOSTILE_WRONG=not-pw
SCENARIOS=$(python3 "$HERE/hostile_expect.py" --list)
for s in $SCENARIOS; do
	user=$s secret=env:HOSTILE_PW port=$HPORT
	[ "$s" = badpw ] && user=good secret=env:HOSTILE_WRONG
	[ "$s" = nogreeting ] && port=$NOGREET_PORT
	[ "$s" = endlessgreeting ] && port=$ENDLESS_PORT
	mailpipe account add "$s" --host 127.0.0.1 --port "$port" --tls none --username "$user" \
		--secret "$secret" --interval 0 --initial-window-days 0 >/dev/null
done
add_account calm
run_start

# Every account at once: the hostile ones must not hold up each other or the honest one.
for s in $SCENARIOS calm; do
	(
		start=$(date +%s.%N)
		mailpipe sync "$s" --wait --timeout 150 >"$OUT/$s.json" 2>"$OUT/$s.err"
		echo "$? $start $(date +%s.%N)" >"$OUT/$s.rc"
	) &
done
wait_all() { for _ in $(seq 1700); do [ "$(ls "$OUT"/*.rc 2>/dev/null | wc -l)" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }
check "every sync --wait ended" wait_all $(($(wc -w <<<"$SCENARIOS") + 1))
fetcher_rss=$(for p in $(pgrep -P "$RUN_PID" -f mailpipe-fetcher); do grep VmHWM /proc/$p/status | awk '{print $2}'; done | sort -n | tail -1)
echo "  peak RSS of the largest fetcher: ${fetcher_rss:-?} kB"

check "the honest account beside them syncs exactly" [ "$(cut -d' ' -f1 "$OUT/calm.rc")" = 0 ]
verify calm --summary "$OUT/calm.json"

python3 "$HERE/hostile_expect.py" --check "$OUT" || FAILS=$((FAILS + 1))

# `mailpipe status` shows the failed folder's error to an operator, not only the summary.
check "status shows INBOX's error for account unavailable" \
	bash -c "mailpipe status unavailable | grep -q 'EXAMINE refused .*UNAVAILABLE'"
check "status --json carries the run's missing UID" \
	bash -c "mailpipe status missing --json | grep -q 'did not deliver 1 listed message'"

# A later sync of an account whose folder failed starts a new run instead of joining a stuck
# one, and the server that kept omitting UID 3 is asked for it (and only it) again.
first=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$OUT/unavailable.json")
mailpipe sync unavailable --wait --timeout 60 >"$OUT/unavailable2.json"
second=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$OUT/unavailable2.json")
check "a sync after a failed folder starts a new run ($first -> $second)" [ "$second" -gt "$first" ]
mark=$(wc -l <"$OUT/server.jsonl")
mailpipe sync missing --wait --timeout 60 >"$OUT/missing2.json"
check "the second sync of 'missing' is still incomplete (exit 1)" [ $? -eq 1 ]
python3 "$HERE/hostile_expect.py" --check-resync "$OUT" "$mark" || FAILS=$((FAILS + 1))
check "no entry left pending in Redis" no_pending
check "no secret in the logs" bash -c "! grep -q -e not-pw -e 'HOSTILE_PW=' '$RUN_LOG'"
[ "$FAILS" -gt 0 ] && [ -n "${MP_KEEP_LOGS:-}" ] && cp -r "$OUT" "$RUN_LOG" "$MP_KEEP_LOGS/"
finish
