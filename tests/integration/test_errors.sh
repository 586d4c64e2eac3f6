#!/usr/bin/env bash
# What users meet when things are not perfect: STARTTLS, a wrong password, an unverifiable
# certificate, bad command-line use, and a UIDVALIDITY change on the server (invariant 4).
. "$(dirname "$0")/lib.sh"
stack_up 120 3
export WRONG_SECRET=not-the-password
run_start

# STARTTLS on the plain port, one folder only.
mailpipe account add stls --host 127.0.0.1 --port "$MP_IMAP_PORT" --tls starttls --username demo \
	--secret env:TEST_IMAP_SECRET --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 \
	--folder INBOX >/dev/null
out=$(mailpipe sync stls --wait --timeout 60)
check "sync over STARTTLS succeeds" [ $? -eq 0 ]
inbox=$(doveadm -c "$MP_DOVECOT_CONF" mailbox status -u demo messages INBOX | sed 's/.*=//')
check "--folder INBOX syncs INBOX only ($inbox messages)" \
	[ "$(sql "SELECT count(*) FROM message_locations l JOIN email_folders f ON f.id = l.folder_id JOIN accounts a ON a.id = f.account_id WHERE a.name = 'stls'")" = "$inbox" ]
check "summary lists one folder" [ "$(echo "$out" | python3 -c 'import json,sys;print(json.load(sys.stdin)["folder_count"])')" = 1 ]

# A wrong password: exit 1, and the error names the account, the server and its words.
mailpipe account add badpw --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username demo \
	--secret env:WRONG_SECRET --ca-file "$MP_CA_FILE" --interval 0 >/dev/null
out=$(mailpipe sync badpw --wait --timeout 60)
check "wrong password: sync exits 1" [ $? -eq 1 ]
check "wrong password: error names account and server" \
	grep -q "auth failed for account 'badpw' at 127.0.0.1:$MP_IMAPS_PORT: .*AUTHENTICATIONFAILED" <<<"$out"
check "the account shows its last error" \
	[ "$(sql "SELECT last_error LIKE 'auth failed for account ''badpw''%' FROM accounts WHERE name = 'badpw'")" = t ]
check "no secret in the logs" bash -c "! grep -q -e not-the-password -e 'demo:demo' '$RUN_LOG'"

# The server's certificate is signed by a private CA: without --ca-file it must not verify.
mailpipe account add noca --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username demo \
	--secret env:TEST_IMAP_SECRET --interval 0 >/dev/null
out=$(mailpipe sync noca --wait --timeout 60)
check "unverifiable certificate: sync exits 1" [ $? -eq 1 ]
check "unverifiable certificate: error says so" grep -qi "certificate" <<<"$out"

# A missing secret variable is named, not guessed.
mailpipe account add nosecret --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit \
	--username demo --secret env:MAILPIPE_TEST_UNSET --ca-file "$MP_CA_FILE" --interval 0 >/dev/null
out=$(mailpipe sync nosecret --wait --timeout 60)
check "missing secret: error names the reference" grep -q "env:MAILPIPE_TEST_UNSET is not set" <<<"$out"

# Bad command-line use exits 2 with usage.
mailpipe account add x --host h --username u --secret hunter2 2>/dev/null
check "a literal secret is refused with exit 2" [ $? -eq 2 ]
mailpipe sync 2>/dev/null
check "sync without a name exits 2" [ $? -eq 2 ]
mailpipe frobnicate 2>/dev/null
check "unknown command exits 2" [ $? -eq 2 ]
mailpipe sync nobody --wait >/dev/null 2>&1
check "unknown account exits 1" [ $? -eq 1 ]

# UIDVALIDITY change: old locations dropped, folder resynced, no message row doubled.
add_account uv
mailpipe sync uv --wait --timeout 60 >/dev/null
msgs_before=$(sql "SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.name = 'uv'")
doveadm -c "$MP_DOVECOT_CONF" mailbox update -u demo --uid-validity 4242 INBOX
out=$MAILPIPE_STACK_DIR/uv.json
mailpipe sync uv --wait --timeout 60 >"$out"
check "sync after UIDVALIDITY change exits 0" [ $? -eq 0 ]
verify uv
check "no stale location of the old UIDVALIDITY" \
	[ "$(sql "SELECT count(*) FROM message_locations l JOIN email_folders f ON f.id = l.folder_id JOIN accounts a ON a.id = f.account_id WHERE a.name = 'uv' AND f.name = 'INBOX' AND l.uidvalidity <> 4242")" = 0 ]
check "no message row doubled by the resync" \
	[ "$(sql "SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.name = 'uv'")" = "$msgs_before" ]
grep -E "stage=writer.*level=(error|warn)|level=(error|warn).*stage=writer" "$RUN_LOG" | head -5
finish
