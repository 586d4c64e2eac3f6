#!/usr/bin/env bash
# Issue 10: `mailpipe account add NAME --from-env icloud|mailatlas` takes the variables of the
# iCloud setup guide and of MailAtlas, stores the password as a reference (env:VAR), never its
# value, lets explicit flags win, names a missing variable in one line (exit 2), and the
# accounts it adds sync from Dovecot.
. "$(dirname "$0")/lib.sh"
stack_up 40 7

# The variables as the seeds' guides set them; Dovecot stands in for the providers.
export ICLOUD_IMAP_HOST=127.0.0.1 ICLOUD_IMAP_PORT=$MP_IMAPS_PORT ICLOUD_IMAP_USER=demo \
	ICLOUD_IMAP_PASS=demo ICLOUD_IMAP_TLS=true ICLOUD_FROM_EMAIL=demo@example.org ICLOUD_SYNC_INTERVAL=0
out=$(mailpipe account add ic --from-env icloud --ca-file "$MP_CA_FILE" --initial-window-days 0)
check "account add --from-env icloud succeeds ($out)" [ $? = 0 ]
show=$(mailpipe account show ic --json)
check "the iCloud account stores env:ICLOUD_IMAP_PASS, not the password" python3 -c "
import json, sys
a, = json.loads(sys.argv[1])
want = dict(provider='icloud', host='127.0.0.1', port=int(sys.argv[2]), tls='implicit', username='demo',
            auth='password', secret_ref='env:ICLOUD_IMAP_PASS', email='demo@example.org', interval=0)
assert {k: a[k] for k in want} == want, a" "$show" "$MP_IMAPS_PORT"
check "no column but username holds the password's value (demo)" [ "$(sql "SELECT count(*)
	FROM accounts a, jsonb_each_text(to_jsonb(a)) kv WHERE a.name = 'ic' AND kv.value LIKE '%demo%'
	  AND kv.key NOT IN ('username', 'email')")" = 0 ]

run_start
mailpipe sync ic --wait --timeout 60 >"$MAILPIPE_STACK_DIR/ic.json"
check "a sync of the account added from the iCloud variables exits 0" [ $? = 0 ]
verify ic --summary "$MAILPIPE_STACK_DIR/ic.json"
check "its messages count under provider 'icloud' (the guide's query)" \
	[ "$(sql "SELECT COUNT(*) FROM messages WHERE provider = 'icloud'")" -gt 30 ]

# Explicit flags override the environment; an unset password variable is named.
mailpipe account add ic2 --from-env icloud --host imap.mail.me.com --port 993 --email other@example.org \
	--interval 300 >/dev/null
check "explicit flags override the iCloud variables" [ "$(sql "SELECT host || ' ' || port || ' ' || email || ' ' || sync_interval_s || ' ' || secret_ref FROM accounts WHERE name = 'ic2'")" = "imap.mail.me.com 993 other@example.org 300 env:ICLOUD_IMAP_PASS" ]
err=$(env -u ICLOUD_IMAP_PASS mailpipe account add ic3 --from-env icloud 2>&1 >/dev/null)
rc=$?
check "a missing ICLOUD_IMAP_PASS is named in one line, exit 2 ($err)" \
	bash -c "[ $rc = 2 ] && [ \$(printf '%s\n' \"$err\" | wc -l) = 1 ] && [[ \"$err\" == *ICLOUD_IMAP_PASS* ]]"
err=$(ICLOUD_IMAP_USER= mailpipe account add ic3 --from-env icloud 2>&1 >/dev/null)
check "an empty ICLOUD_IMAP_USER is named ($err)" bash -c "[[ \"$err\" == *ICLOUD_IMAP_USER* ]]"
err=$(ICLOUD_IMAP_PORT=nine mailpipe account add ic3 --from-env icloud 2>&1 >/dev/null)
check "a malformed ICLOUD_IMAP_PORT is named ($err)" bash -c "[[ \"$err\" == *ICLOUD_IMAP_PORT=\'nine\'* ]]"
ICLOUD_IMAP_TLS=false mailpipe account add ic4 --from-env icloud --host 127.0.0.1 >/dev/null
check "ICLOUD_IMAP_TLS=false means STARTTLS, never clear text" [ "$(sql "SELECT tls FROM accounts WHERE name = 'ic4'")" = starttls ]
check "no account was added by the failed attempts" [ "$(sql "SELECT count(*) FROM accounts WHERE name = 'ic3'")" = 0 ]
mailpipe account remove ic2 >/dev/null && mailpipe account remove ic4 >/dev/null # no such servers

# MailAtlas: password, then access token (XOAUTH2).
unset ICLOUD_IMAP_HOST ICLOUD_IMAP_PORT ICLOUD_IMAP_USER ICLOUD_IMAP_PASS ICLOUD_IMAP_TLS ICLOUD_FROM_EMAIL ICLOUD_SYNC_INTERVAL
err=$(MAILATLAS_IMAP_HOST=127.0.0.1 mailpipe account add ma0 --from-env mailatlas 2>&1 >/dev/null)
rc=$?
check "a missing MAILATLAS_IMAP_USERNAME is named, exit 2 ($err)" \
	bash -c "[ $rc = 2 ] && [[ \"$err\" == *MAILATLAS_IMAP_USERNAME* ]]"
err=$(MAILATLAS_IMAP_HOST=127.0.0.1 MAILATLAS_IMAP_USERNAME=demo mailpipe account add ma0 --from-env mailatlas 2>&1 >/dev/null)
rc=$?
check "neither MAILATLAS_IMAP_PASSWORD nor _ACCESS_TOKEN: named, exit 2 ($err)" \
	bash -c "[ $rc = 2 ] && [[ \"$err\" == *MAILATLAS_IMAP_PASSWORD* ]] && [[ \"$err\" == *MAILATLAS_IMAP_ACCESS_TOKEN* ]]"
export MAILATLAS_IMAP_HOST=127.0.0.1 MAILATLAS_IMAP_USERNAME=demo MAILATLAS_IMAP_PASSWORD=demo
export MAILATLAS_IMAP_PORT=$MP_IMAPS_PORT
mailpipe account add ma --from-env mailatlas --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 >/dev/null
check "account add --from-env mailatlas (password) stores env:MAILATLAS_IMAP_PASSWORD" python3 -c "
import json, sys
a, = json.loads(sys.argv[1])
want = dict(provider='imap', host='127.0.0.1', port=int(sys.argv[2]), tls='implicit', username='demo',
            auth='password', secret_ref='env:MAILATLAS_IMAP_PASSWORD')
assert {k: a[k] for k in want} == want, a" "$(mailpipe account show ma --json)" "$MP_IMAPS_PORT"
# The fetchers resolve env:MAILATLAS_IMAP_PASSWORD from their own environment: restart them in it.
run_stop
run_start
mailpipe sync ma --wait --timeout 60 >"$MAILPIPE_STACK_DIR/ma.json"
check "a sync of the account added from the MailAtlas variables exits 0" [ $? = 0 ]
verify ma --summary "$MAILPIPE_STACK_DIR/ma.json"

MAILATLAS_IMAP_ACCESS_TOKEN=tok-123 MAILATLAS_IMAP_PASSWORD= MAILATLAS_IMAP_PORT= \
	mailpipe account add mat --from-env mailatlas --interval 0 >/dev/null
check "an access token means xoauth2 with env:MAILATLAS_IMAP_ACCESS_TOKEN, 993 implicit by default" \
	[ "$(sql "SELECT auth || ' ' || secret_ref || ' ' || port || ' ' || tls FROM accounts WHERE name = 'mat'")" = "xoauth2 env:MAILATLAS_IMAP_ACCESS_TOKEN 993 implicit" ]
check "the token's value is nowhere in the database" [ "$(sql "SELECT count(*) FROM accounts a WHERE a::text LIKE '%tok-123%'")" = 0 ]
mailpipe account add x --from-env outlook >/dev/null 2>&1
check "--from-env with an unknown setup is a usage error" [ $? = 2 ]
finish
