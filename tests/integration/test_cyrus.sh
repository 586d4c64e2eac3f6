#!/usr/bin/env bash
# Issue 9: the pipeline against a second real server, Cyrus IMAP 3.6 (deploy/local/cyrus.sh),
# beside the usual stack. A 120-message sample (several folders, flags, a non-ASCII folder name)
# is APPENDed to Cyrus, synced over IMAPS and over plain IMAP, checked against the server with
# verify.py; a second sync must change nothing and a wrong password must be refused. A second
# Cyrus without altnamespace (folders are INBOX's children, as before Cyrus 3.0) is synced too.
. "$(dirname "$0")/lib.sh"
CYRUS=$ROOT/deploy/local/cyrus.sh

# Installs it when missing (idempotent; sudo must not wait for a password in a test run).
if ! out=$(MP_CYRUS_SUDO="sudo -n" "$CYRUS" install 2>&1 </dev/null); then
	why=$(printf '%s\n' "$out" | grep '^E:' | tail -n 1)
	echo "SKIP test_cyrus: Cyrus IMAP could not be installed: $(printf '%s\n' "$out" | tail -n 1)${why:+ ($why)}"
	exit 0
fi

stack_up 120 1 # Dovecot holds the same sample: the two servers are compared below
CY_DIR=$MAILPIPE_STACK_DIR/cyrus
CY2_DIR=$MAILPIPE_STACK_DIR/cyrus-inbox
cyrus_down() {
	"$CYRUS" stop "$CY_DIR" >/dev/null 2>&1
	"$CYRUS" stop "$CY2_DIR" >/dev/null 2>&1
}
trap 'run_stop; cyrus_down; stack_down' EXIT
export TEST_CY_WRONG=not-demo # the fetchers read secrets from the environment run_start gives them

# Ports nobody listens on (the kernel's pick; a race with other tests is unlikely).
read -r CY_PORT CY_SPORT CY2_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')

t0=$(date +%s%N)
if ! "$CYRUS" start "$CY_DIR" "$CY_PORT" "$CY_SPORT" >"$MAILPIPE_STACK_DIR/cyrus.start.log" 2>&1; then
	cat "$MAILPIPE_STACK_DIR/cyrus.start.log"
	fail "Cyrus starts and greets on 127.0.0.1:$CY_PORT"
	finish
fi
echo "cyrus: started in $((($(date +%s%N) - t0) / 1000000)) ms (imap $CY_PORT, imaps $CY_SPORT)"
pass "Cyrus starts and greets on 127.0.0.1:$CY_PORT and $CY_SPORT"
t0=$(date +%s%N)
check "Cyrus user demo gets the 120-message sample" \
	"$CYRUS" add-user "$CY_DIR" demo demo --sample 120 1
echo "cyrus: sample appended in $((($(date +%s%N) - t0) / 1000000)) ms"

cy_verify() { # ACCOUNT, verify.py flags... (CY_VERIFY_PORT: another Cyrus)
	local account=$1
	shift
	python3 "$ROOT/tests/integration/verify.py" "$account" 127.0.0.1 "${CY_VERIFY_PORT:-$CY_PORT}" \
		demo demo "$@" || FAILS=$((FAILS + 1))
}
folders_of() { # ACCOUNT: name:delimiter:special_use of its folders, sorted
	sql "SELECT string_agg(name || ':' || coalesce(delimiter, '-') || ':' || coalesce(special_use, '-'), ' ' ORDER BY name)
	     FROM email_folders WHERE account_id = (SELECT id FROM accounts WHERE name = '$1')"
}

mailpipe account add cy --host 127.0.0.1 --port "$CY_SPORT" --tls implicit --username demo \
	--secret env:TEST_IMAP_SECRET --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 \
	--email demo@example.org >/dev/null
run_start

out=$MAILPIPE_STACK_DIR/cy-summary1.json
mailpipe sync cy --wait --timeout 120 >"$out"
check "first sync from Cyrus (IMAPS) exits 0" [ $? -eq 0 ]
cy_verify cy --summary "$out"
check "no entry left pending in Redis" no_pending
check "folders have Cyrus's names, '/' delimiter and special uses" [ "$(folders_of cy)" = \
	"Archive:/:\\Archive Archive/2023:/:- INBOX:/:- Projekte:/:- Projekte/Café Zürich:/:- Sent:/:\\Sent Trash:/:\\Trash" ]
check "stored flags never carry \\Recent" [ "$(sql "SELECT count(*) FROM message_locations
	WHERE '\\Recent' = ANY (flags)")" = 0 ]

before=$(snapshot)
out2=$MAILPIPE_STACK_DIR/cy-summary2.json
mailpipe sync cy --wait --timeout 60 >"$out2"
check "second sync from Cyrus exits 0" [ $? -eq 0 ]
cy_verify cy --summary "$out2" --expect-new 0
check "second sync changes no message or location row" [ "$before" = "$(snapshot)" ]

# Syncing never marks mail as read: Cyrus still has the sample's unseen counts.
check "Cyrus's unseen counts are the sample's after the syncs" python3 -c '
import imaplib, json, re, sys
want = json.load(open(sys.argv[2]))["folders"]
imap = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
imap.login("demo", "demo")
for name, f in want.items():
    box = "\"%s\"" % f["imap_name_mutf7"].replace(".", "/")
    st = imap.status(box, "(UNSEEN)")[1][0]
    got = int(re.search(rb"UNSEEN (\d+)", st).group(1))
    assert got == f["unseen"], (name, got, f["unseen"])' "$CY_PORT" "$CY_DIR/sample-counts-demo.json"

# The same sample through Dovecot ('.' delimiter) and Cyrus ('/') must give mailpipe the same
# messages, UIDs and flags folder by folder: nothing in mailpipe depends on which server it is.
add_account dc
mailpipe sync dc --wait --timeout 120 >/dev/null
check "sync of the same sample from Dovecot exits 0" [ $? -eq 0 ]
check "Cyrus and Dovecot give identical contents, UIDs and flags per folder" [ "$(sql "
	WITH l AS (SELECT a.name AS acc, CASE a.name WHEN 'dc' THEN replace(f.name, '.', '/') ELSE f.name END
	             || ' ' || l.uid || ' ' || l.flags::text || ' ' || m.content_sha256 AS x
	           FROM message_locations l JOIN email_folders f ON f.id = l.folder_id
	           JOIN accounts a ON a.id = f.account_id JOIN messages m ON m.id = l.message_id
	           WHERE a.name IN ('dc', 'cy')),
	d AS (SELECT x FROM l WHERE acc = 'dc'), c AS (SELECT x FROM l WHERE acc = 'cy')
	SELECT (SELECT count(*) FROM (TABLE d EXCEPT ALL TABLE c) e) + (SELECT count(*) FROM (TABLE c EXCEPT ALL TABLE d) e)
	  + CASE WHEN (SELECT count(*) FROM c) = 120 THEN 0 ELSE 1000 END")" = 0 ]

mailpipe account add cyplain --host 127.0.0.1 --port "$CY_PORT" --tls none --username demo \
	--secret env:TEST_IMAP_SECRET --interval 0 --initial-window-days 0 \
	--email demo@example.org >/dev/null
out3=$MAILPIPE_STACK_DIR/cy-summary3.json
mailpipe sync cyplain --wait --timeout 120 >"$out3"
check "sync from Cyrus over plain IMAP (--tls none) exits 0" [ $? -eq 0 ]
cy_verify cyplain --summary "$out3"

mailpipe account add cybad --host 127.0.0.1 --port "$CY_SPORT" --tls implicit --username demo \
	--secret env:TEST_CY_WRONG --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 >/dev/null
bad=$(mailpipe sync cybad --wait --timeout 60)
rc=$?
refused=0
case $bad in *"auth failed"*) [ "$rc" -eq 0 ] || refused=1 ;; esac
check "a wrong password is refused by Cyrus and ends the run (exit $rc)" [ "$refused" = 1 ]
[ "$refused" = 1 ] || echo "  summary: $bad"

if MP_CYRUS_ALTNAMESPACE=0 "$CYRUS" start "$CY2_DIR" "$CY2_PORT" >"$MAILPIPE_STACK_DIR/cyrus2.start.log" 2>&1 &&
	"$CYRUS" add-user "$CY2_DIR" demo demo --sample 120 1 >>"$MAILPIPE_STACK_DIR/cyrus2.start.log" 2>&1; then
	pass "a Cyrus without altnamespace starts with the sample on 127.0.0.1:$CY2_PORT"
	mailpipe account add cyinbox --host 127.0.0.1 --port "$CY2_PORT" --tls none --username demo \
		--secret env:TEST_IMAP_SECRET --interval 0 --initial-window-days 0 >/dev/null
	out4=$MAILPIPE_STACK_DIR/cy-summary4.json
	mailpipe sync cyinbox --wait --timeout 120 >"$out4"
	check "sync of folders under INBOX/ exits 0" [ $? -eq 0 ]
	CY_VERIFY_PORT=$CY2_PORT cy_verify cyinbox --summary "$out4"
	check "folders under INBOX keep the server's full names" [ "$(folders_of cyinbox)" = \
		"INBOX:/:- INBOX/Archive:/:\\Archive INBOX/Archive/2023:/:- INBOX/Projekte:/:- INBOX/Projekte/Café Zürich:/:- INBOX/Sent:/:\\Sent INBOX/Trash:/:\\Trash" ]
else
	cat "$MAILPIPE_STACK_DIR/cyrus2.start.log"
	fail "a Cyrus without altnamespace starts with the sample on 127.0.0.1:$CY2_PORT"
fi
finish
