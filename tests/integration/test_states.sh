#!/usr/bin/env bash
# The account state machine on the real stack: a wrong password is tried once and the account
# waits in auth_failed (shown by status) over many scheduler ticks, until `account resume` or a
# new secret; a server that refuses connections backs off with growing waits; disable stops an
# account and resume starts it again. Logins refused are counted in Dovecot's own log.
. "$(dirname "$0")/lib.sh"
stack_up 20 5
# Short ticks, intervals and backoff, so minutes of a real deployment pass in seconds.
export MAILPIPE_TICK_MS=200 MAILPIPE_BACKOFF_BASE_MS=1000 MAILPIPE_BACKOFF_MAX_MS=16000 \
	MAILPIPE_AUTH_RETRY_S=3600 MAILPIPE_RETRY_BASE_MS=50 MAILPIPE_RETRY_MAX_MS=100 \
	WRONG_SECRET=not-the-password
INFO_LOG=$MAILPIPE_STACK_DIR/dovecot/info.log
refused() { grep -c "auth failed" "$INFO_LOG" 2>/dev/null || true; }
state() { sql "SELECT state FROM accounts WHERE name = '$1'"; }
runs() { sql "SELECT count(*) FROM sync_runs r JOIN accounts a ON a.id = r.account_id WHERE a.name = '$1'"; }
wait_for() { # SECONDS, 'condition' (evaluated afresh every 0.2 s)
	local end=$((SECONDS + $1))
	until eval "$2"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.2
	done
}
status_state() { # the state `mailpipe status --json` shows for an account
	mailpipe status --json | python3 -c "import json,sys
for a in json.load(sys.stdin)['accounts']:
    if a['account'] == '$1': print(a['state'], a.get('backoff_until') is not None)"
}
messages() { sql "SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.name = '$1'"; }

PWFILE=$MAILPIPE_STACK_DIR/badpw.secret
echo wrong-password >"$PWFILE"
chmod 600 "$PWFILE"
add_account good --interval 1
add_account badpw --interval 1 --secret "file:$PWFILE"
before=$(refused)
run_start

# 1. A wrong password: one login, then auth_failed and no more logins at each interval.
check "wrong password: the account goes auth_failed" wait_for 30 '[ "$(state badpw)" = auth_failed ]'
good_runs=$(runs good)
sleep 4 # twenty ticks, four intervals of the account
check "the good account kept syncing meanwhile ($good_runs -> $(runs good) runs)" [ "$(runs good)" -gt "$((good_runs + 1))" ]
n=$(( $(refused) - before ))
check "Dovecot refused exactly one login of it over twenty ticks ($n)" [ "$n" = 1 ]
check "it was not scheduled again (one run: $(runs badpw))" [ "$(runs badpw)" = 1 ]
check "status --json shows auth_failed with its retry time" [ "$(status_state badpw)" = "auth_failed True" ]
mailpipe status badpw | head -1 | tee "$MAILPIPE_STACK_DIR/status.txt" | sed 's/^/  /'
check "status shows 'auth_failed until T'" grep -q "^badpw  auth_failed until " "$MAILPIPE_STACK_DIR/status.txt"

# A corrected secret file is not news to mailpipe (the reference did not change): still one
# refused login, until an operator resumes the account.
echo demo >"$PWFILE"
sleep 2
check "a fixed secret file alone is not retried ($(runs badpw) run)" [ "$(runs badpw)" = 1 ]
out=$(mailpipe account resume badpw)
check "account resume says what changed ($out)" grep -q "badpw' active (was auth_failed)" <<<"$out"
check "after resume it syncs: active with its messages" \
	wait_for 30 '[ "$(state badpw)" = active -a "$(messages badpw)" -gt 0 ]'
n=$(( $(refused) - before ))
check "still one refused login in all ($n)" [ "$n" = 1 ]
out=$(mailpipe account resume badpw)
check "resuming an active account changes nothing" grep -q "is active already" <<<"$out"

# 2. A new secret reference ends auth_failed by itself (the secret helper's secret_changed_at
# is bumped by a trigger when secret_ref changes).
add_account newsecret --interval 1 --secret env:WRONG_SECRET
check "a second wrong password: auth_failed" wait_for 30 '[ "$(state newsecret)" = auth_failed ]'
sleep 2
check "... and left alone (one run: $(runs newsecret))" [ "$(runs newsecret)" = 1 ]
sql "UPDATE accounts SET secret_ref = 'env:TEST_IMAP_SECRET' WHERE name = 'newsecret'"
check "a new secret reference: it syncs and is active" \
	wait_for 30 '[ "$(state newsecret)" = active -a "$(messages newsecret)" -gt 0 ]'
n=$(( $(refused) - before ))
check "two refused logins in all, one per wrong secret ($n)" [ "$n" = 2 ]

# 3. A server that refuses connections: runs come with growing waits (1 s, 2, 4, 8 ... with
# jitter), the account shows backoff until T, and failure_count counts them.
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mailpipe account add down --host 127.0.0.1 --port "$closed" --tls implicit --username demo \
	--secret env:TEST_IMAP_SECRET --interval 1 >/dev/null
check "a closed port: five failed runs within a minute" \
	wait_for 60 '[ "$(sql "SELECT count(*) FROM sync_runs r JOIN accounts a ON a.id = r.account_id WHERE a.name = '\''down'\'' AND r.status = '\''failed'\''")" -ge 5 ]'
gaps=$(sql "SELECT string_agg(round(g::numeric, 2)::text, ' ' ORDER BY run_id) FROM (
	SELECT run_id, extract(epoch FROM started_at - lag(started_at) OVER (ORDER BY run_id)) AS g
	FROM sync_runs r JOIN accounts a ON a.id = r.account_id WHERE a.name = 'down') s WHERE g IS NOT NULL")
echo "  gaps between the closed port's runs (s): $gaps"
read -r g1 g2 g3 g4 _ <<<"$gaps"
check "the waits grow: third >= 2 s, fourth >= 4 s, fourth > twice the first ($gaps)" \
	python3 -c "import sys; g=[float(x) for x in '$g1 $g2 $g3 $g4'.split()]; sys.exit(not (g[2] >= 1.9 and g[3] >= 3.9 and g[3] > 2 * g[0]))"
check "status shows backoff until T" [ "$(status_state down)" = "backoff True" ]
mailpipe status down | head -1 | sed 's/^/  /'
grep -h "account=[a-z]* state=" "$RUN_LOG" | sed 's/^/  /' | head -12
check "failure_count counts the failures in a row" [ "$(sql "SELECT failure_count >= 5 FROM accounts WHERE name = 'down'")" = t ]
grep -q "account=down state=active->backoff" "$RUN_LOG"
check "the writer logged the transition active->backoff" [ $? -eq 0 ]

# 4. disable stops the schedule; resume starts it again.
mailpipe account disable good >/dev/null
sleep 1
r1=$(runs good)
sleep 3
check "a disabled account is not scheduled ($r1 -> $(runs good) runs)" [ "$(runs good)" = "$r1" ]
check "status shows disabled" [ "$(status_state good)" = "disabled False" ]
mailpipe account resume good >/dev/null
check "resumed, it syncs again" wait_for 10 '[ "$(runs good)" -gt "$r1" ]'

# 5. Fair scheduling: at most MAILPIPE_ACCOUNT_JOBS_MAX folder jobs of one account out at once.
# A scheduler alone (no fetcher to finish anything) turns a request for all six of good's
# folders into a run: two jobs go out, four wait; fetchers started later finish them all.
sql "UPDATE accounts SET sync_interval_s = 0"
wait_for 30 '[ "$(sql "SELECT count(*) FROM sync_runs WHERE status = '\''running'\''")" = 0 ]'
run_stop
MAILPIPE_ACCOUNT_JOBS_MAX=2 mailpipe-scheduler >>"$RUN_LOG" 2>&1 &
SCHED_PID=$!
folders=$(sql "SELECT json_agg(f.name) FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = 'good'")
redis-cli -p "$MP_REDIS_PORT" XADD '{mp}:requests' '*' account good folders "$folders" request_id capped >/dev/null
check "the request became a run" wait_for 10 '[ -n "$(sql "SELECT run_id FROM sync_runs WHERE request_id = '\''capped'\''")" ]'
sleep 1
split=$(sql "SELECT count(*) FILTER (WHERE s.enqueued_at IS NOT NULL) || ' ' || count(*) FROM sync_run_folders s
	JOIN sync_runs r ON r.run_id = s.run_id WHERE r.request_id = 'capped'")
check "two of its six folder jobs went out, the rest wait ($split)" [ "$split" = "2 6" ]
kill -TERM $SCHED_PID
wait $SCHED_PID 2>/dev/null
# The scheduler's tick (which claims for every account) is ten minutes here: the waiting jobs go
# out only as the writer claims the account's next ones after each of its cursors.
MAILPIPE_ACCOUNT_JOBS_MAX=2 MAILPIPE_TICK_MS=600000 run_start
check "fetchers started, the writer sends the waiting jobs as others end: the capped run ends ok with every folder done" \
	wait_for 60 '[ "$(sql "SELECT r.status || count(*) FILTER (WHERE s.status = '\''done'\'') FROM sync_runs r JOIN sync_run_folders s ON s.run_id = r.run_id WHERE r.request_id = '\''capped'\'' GROUP BY r.status")" = ok6 ]'

mailpipe account resume nobody >/dev/null 2>&1
check "resume of an unknown account exits 1" [ $? -eq 1 ]
mailpipe account resume 2>/dev/null
check "resume without a name exits 2" [ $? -eq 2 ]
check "no secret in the logs" bash -c "! grep -q -e not-the-password -e wrong-password '$RUN_LOG'"
finish
