#!/usr/bin/env bash
# Invariant 4 on a kept connection. After a folder's UIDVALIDITY was reset, Dovecot once
# answered STATUS with the new UIDVALIDITY and EXAMINE, on the long-lived connection a fetcher
# kept from the last sync, with the old one; the fetcher believed EXAMINE, kept the folder's old
# UIDs, and `sync --wait` returned with the database unlike the mailbox (test_mirror.sh, once in
# a make check). The scripted server's staleview user does this on purpose: a fetcher that
# sees STATUS and EXAMINE disagree on UIDVALIDITY on a kept connection logs in again, and the
# fresh connection's answer stands.
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
inbox() { # the INBOX locations' uidvalidity and count, e.g. "1:6"
	sql "SELECT coalesce(string_agg(u || ':' || n, ',' ORDER BY u), '') FROM (SELECT l.uidvalidity u,
		count(*) n FROM message_locations l JOIN email_folders f ON f.id = l.folder_id
		WHERE f.name = 'INBOX' GROUP BY 1) s"
}
same_as_server() {
	python3 "$ROOT/tests/integration/verify.py" sv 127.0.0.1 "$HPORT" staleview pw >"$OUT/verify.out" 2>&1 ||
		{ grep FAIL "$OUT/verify.out"; return 1; }
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
finish
