#!/usr/bin/env bash
# One connection per account on a distant server. With IDLE on, an account's jobs run on its
# INBOX watch's connection, lent for each job and given back; the watch then EXAMINEs its
# folder again before it IDLEs. The lane that waited for the account's last job came during
# that EXAMINE, found no idling watch and logged in anew: on a server 100 ms away (the
# scripted server's distant user) every first sync after the watch opened cost a second
# connection, which a provider's low connection limit (--max-connections) counts. Now the job
# waits for the watch's command to end and borrows its connection. Each sync here runs a job
# per folder (a flag scan due every second) with four lanes.
. "$(dirname "$0")/lib.sh"
stack_up 10 5
OUT=$MAILPIPE_STACK_DIR/distant
hostile_up "$OUT" --messages 6
export MAILPIPE_LOG=debug MAILPIPE_IDLE=1 MAILPIPE_FETCHERS=1 MAILPIPE_FETCHER_LANES=4
mailpipe account add far --host 127.0.0.1 --port "$HPORT" --tls none --username distant \
	--secret env:HOSTILE_PW --interval 0 --initial-window-days 0 --flag-scan-interval 1 >/dev/null
run_start
logins() { grep -c '"event": "login_ok"' "$OUT/server.jsonl"; }
settled() { # the watch holds INBOX and no run is going (its first EXAMINE may start one)
	[ -n "$(idle_lease far)" ] && [ "$(sql "SELECT count(*) FROM sync_runs WHERE status = 'running'")" = 0 ]
}

mailpipe sync far --wait --timeout 60 >"$OUT/sync0.json"
check "first sync exits 0" [ $? -eq 0 ]
# Settled for a second: the watch's first EXAMINE (100 ms after its lease) asks for a sync of
# its own, which a single look could miss (a loaded make check did).
steady=1
for _ in $(seq 60); do settled && sleep 1 && settled && steady=0 && break; sleep 0.1; done
check "an IDLE watch holds far's INBOX, no run going" [ "$steady" = 0 ]
before=$(logins) from=$(($(wc -l <"$RUN_LOG") + 1))
for i in 1 2 3; do
	sleep 2 # the flag scans (every second) are due again
	mailpipe sync far --wait --timeout 60 >"$OUT/sync$i.json" || fail "sync $i"
	for _ in $(seq 50); do settled && break; sleep 0.1; done
done
jobs=$(tail -n +"$from" "$RUN_LOG" | grep -c 'account=far folder=.* msg="folder fetched"')
check "three syncs ran a job per folder ($jobs jobs)" [ "$jobs" -ge 6 ]
lent=$(tail -n +"$from" "$RUN_LOG" | grep -c 'msg="IDLE connection lent to a job"')
check "each job and folder list ran on the watch's connection, lent ($lent times)" [ "$lent" -ge 9 ]
check "and none logged in ($before logins before, $(logins) after)" [ "$(logins)" = "$before" ]
check "one login in all: the first sync's connection became the watch's ($(logins))" [ "$(logins)" = 1 ]
check "the database equals the scripted server (verify.py)" \
	python3 "$ROOT/tests/integration/verify.py" far 127.0.0.1 "$HPORT" distant pw
check "no entry left pending in Redis" no_pending
finish
