#!/usr/bin/env bash
# Invariant 4 on a kept connection. After a folder's UIDVALIDITY was reset, Dovecot once
# answered STATUS with the new UIDVALIDITY and EXAMINE, on the long-lived connection a fetcher
# kept from the last sync, with the old one; the fetcher believed EXAMINE, kept the folder's old
# UIDs, and `sync --wait` returned with the database unlike the mailbox (test_mirror.sh, once in
# a make check). The scripted server's staleview user does this on purpose: a fetcher that
# sees STATUS and EXAMINE disagree on UIDVALIDITY on a kept connection logs in again, and the
# fresh connection's answer stands: 1. on a connection parked between jobs (IDLE off); 2. on
# the connection an IDLE watch lends to each job, after which the watch IDLEs on the new one.
. "$(dirname "$0")/lib.sh"
stack_up 10 3
OUT=$MAILPIPE_STACK_DIR/staleview
hostile_up "$OUT" --messages 6
export MAILPIPE_LOG=info
# One fetcher: the second sync's INBOX job runs on the connection the first one kept.
export MAILPIPE_FETCHERS=1
metrics_on
mailpipe account add sv --host 127.0.0.1 --port "$HPORT" --tls none --username staleview \
	--secret env:HOSTILE_PW --interval 0 --initial-window-days 0 >/dev/null
run_start
inbox() { # ACCOUNT (default sv): its INBOX locations' uidvalidity and count, e.g. "1:6"
	sql "SELECT coalesce(string_agg(u || ':' || n, ',' ORDER BY u), '') FROM (SELECT l.uidvalidity u,
		count(*) n FROM message_locations l JOIN email_folders f ON f.id = l.folder_id
		JOIN accounts a ON a.id = f.account_id WHERE a.name = '${1:-sv}' AND f.name = 'INBOX'
		GROUP BY 1) s"
}
same_as_server() { # ACCOUNT (default sv)
	python3 "$ROOT/tests/integration/verify.py" "${1:-sv}" 127.0.0.1 "$HPORT" staleview pw \
		>"$OUT/verify.out" 2>&1 || { grep FAIL "$OUT/verify.out"; return 1; }
}
logins() { grep -c '"event": "login_ok"' "$OUT/server.jsonl"; }

kept() { stage_metric fetcher 'mailpipe_imap_reconnects_total{kind="kept"}'; } # logins again

mailpipe sync sv --wait --timeout 60 >"$OUT/sync1.json"
check "first sync exits 0" [ $? -eq 0 ]
check "no kept connection was logged in again yet ($(kept))" [ "$(kept)" = 0 ]
check "INBOX's 6 messages stored under UIDVALIDITY 1 ($(inbox))" [ "$(inbox)" = 1:6 ]

kill -USR1 "$HOSTILE_PID"
for _ in $(seq 50); do grep -q '"uidvalidity_reset"' "$OUT/server.jsonl" && break; sleep 0.1; done
check "the server reset INBOX's UIDVALIDITY" grep -q '"uidvalidity_reset"' "$OUT/server.jsonl"
mailpipe sync sv --wait --timeout 60 >"$OUT/sync2.json"
check "the sync after the reset exits 0" [ $? -eq 0 ]
check "the kept connection's EXAMINE showed the old UIDVALIDITY (the case is met)" \
	grep -q 'shows a stale UIDVALIDITY' "$OUT/server.jsonl"
check "the fetcher logged in again on seeing STATUS and EXAMINE disagree" \
	grep -q 'account=sv folder="INBOX" .*on a kept connection; logging in again' "$RUN_LOG"
check "the fetcher's metrics count that login again as kind=\"kept\" ($(kept))" [ "$(kept)" = 1 ]
check "INBOX's 6 messages now under UIDVALIDITY 1001, none under 1 ($(inbox))" [ "$(inbox)" = 1001:6 ]
check "no message row doubled by the reset" [ "$(sql "SELECT count(*) FROM messages")" = 9 ]
check "the database equals the scripted server (verify.py)" same_as_server

before=$(logins)
mailpipe sync sv --wait --timeout 60 >"$OUT/sync3.json"
check "a sync with nothing changed exits 0" [ $? -eq 0 ]
check "it kept INBOX as it was ($(inbox))" [ "$(inbox)" = 1001:6 ]
check "and needed no login of its own ($before -> $(logins) logins)" [ "$(logins)" = "$before" ]
check "no entry left pending in Redis" no_pending
run_stop

# 2. With IDLE: the account's connection is its INBOX watch's, lent to each job, so the stale
#    view is the watch's. The job logs in again, the dead connection goes back to the watch,
#    and the watch opens again on a connection of its own.
#    One lane, so that each job borrows the watch's connection in turn: two lanes would run
#    INBOX's job on a connection of its own while the other job has the watch's.
mailpipe account disable sv >/dev/null
export MAILPIPE_IDLE=1 MAILPIPE_FETCHER_LANES=1
mailpipe account add sw --host 127.0.0.1 --port "$HPORT" --tls none --username staleview \
	--secret env:HOSTILE_PW --interval 0 --initial-window-days 0 >/dev/null
from=$(($(wc -l <"$RUN_LOG") + 1))
run_start
mailpipe sync sw --wait --timeout 60 >"$OUT/sync4.json"
check "sw: first sync, IDLE on, exits 0" [ $? -eq 0 ]
settled() { # the watch holds INBOX and no run is going (its first EXAMINE may start one)
	[ -n "$(idle_lease sw)" ] && [ "$(sql "SELECT count(*) FROM sync_runs WHERE status = 'running'")" = 0 ]
}
# Settled for a second: a single look could fall between the watch's lease and the sync its
# first EXAMINE asks for.
steady=1
for _ in $(seq 60); do settled && sleep 1 && settled && steady=0 && break; sleep 0.1; done
check "an IDLE watch holds sw's INBOX, no run going" [ "$steady" = 0 ]
kept0=$(kept)
kill -USR1 "$HOSTILE_PID"
for _ in $(seq 50); do [ "$(grep -c '"uidvalidity_reset"' "$OUT/server.jsonl")" = 2 ] && break; sleep 0.1; done
mailpipe sync sw --wait --timeout 60 >"$OUT/sync5.json"
check "sw: the sync after the second reset exits 0" [ $? -eq 0 ]
check "the job on the watch's connection logged in again on seeing STATUS and EXAMINE disagree" \
	bash -c "tail -n +$from '$RUN_LOG' | grep -q 'account=sw folder=\"INBOX\" .*on a kept connection; logging in again'"
check "counted as kind=\"kept\" ($kept0 -> $(kept))" [ "$(kept)" = $((kept0 + 1)) ]
check "sw's INBOX now under UIDVALIDITY 2001 ($(inbox sw))" [ "$(inbox sw)" = 2001:6 ]
check "sw's database equals the scripted server (verify.py)" same_as_server sw
# The connection now IDLEing logged in after the reset (the server's log: its last IDLE's).
idle_fresh() {
	python3 - "$OUT/server.jsonl" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
reset = [r["t"] for r in recs if r["event"] == "uidvalidity_reset"][-1]
idles = [r["conn"] for r in recs if r["event"] == "command" and (r["line"] or "").endswith(" IDLE")]
login = {r["conn"]: r["t"] for r in recs if r["event"] == "login_ok"}
sys.exit(0 if idles and login.get(idles[-1], 0) > reset else 1)
PY
}
held=1
for _ in $(seq 100); do idle_fresh && settled && held=0 && break; sleep 0.1; done
check "the watch IDLEs again, on the connection the job logged in with after the reset" idle_fresh
check "and holds INBOX's lease, no run going" [ "$held" = 0 ]
check "no entry left pending in Redis" no_pending
finish
