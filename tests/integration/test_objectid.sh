#!/usr/bin/env bash
# Issue 9, stable object ids: on Cyrus IMAP 3.6 (OBJECTID), a message moved or copied between
# folders, or renumbered by a UIDVALIDITY change, is linked to its stored row by its EMAILID and
# not downloaded again (the run's fetched_count equals its linked_count), keeps its
# message id, and the database equals the server (verify.py); a folder renamed on the server
# keeps its row (MAILBOXID). A link whose message row is gone falls back to a download and
# still ends exact; a writer killed while link records wait in it changes nothing. Dovecot 2.3 (no OBJECTID) covers the fallback path of a move: downloaded,
# yet one message row with the same id.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cyrus_lib.sh"
cyrus_up test_objectid 40 5 3
mailpipe account add oid --host 127.0.0.1 --port "$CY_PORT" --tls none --username demo \
	--secret env:TEST_IMAP_SECRET --interval 0 --initial-window-days 0 \
	--email demo@example.org >/dev/null
add_account dov
export MAILPIPE_LOG=info
run_start

CHANGE=$ROOT/tests/integration/objectid_change.py
cy() { python3 "$CHANGE" 127.0.0.1 "$CY_PORT" demo demo "$@"; }
dv() { python3 "$CHANGE" 127.0.0.1 "$MP_IMAP_PORT" demo demo "$@"; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$MAILPIPE_STACK_DIR/$1.json" "$2"; }
sync_acc() { # ACCOUNT STEP: sync, exit 0, equal to the server
	mailpipe sync "$1" --wait --timeout 120 >"$MAILPIPE_STACK_DIR/$1.json"
	check "$2: sync of $1 exits 0" [ $? -eq 0 ]
	if [ "$1" = oid ]; then
		python3 "$ROOT/tests/integration/verify.py" oid 127.0.0.1 "$CY_PORT" demo demo >"$MAILPIPE_STACK_DIR/verify.out" 2>&1
	else
		python3 "$ROOT/tests/integration/verify.py" dov 127.0.0.1 "$MP_IMAP_PORT" demo demo >"$MAILPIPE_STACK_DIR/verify.out" 2>&1
	fi
	local ok=$?
	[ $ok -eq 0 ] || grep FAIL "$MAILPIPE_STACK_DIR/verify.out"
	check "$2: $1 equals the server (verify.py)" [ $ok -eq 0 ]
}
# Of the last sync's messages: downloaded (fetched minus linked), and linked without a download.
downloaded() { sql "SELECT coalesce(sum(fetched_count - linked_count), 0) FROM sync_run_folders WHERE run_id = $(field "$1" run_id)"; }
linked() { sql "SELECT coalesce(sum(linked_count), 0) FROM sync_run_folders WHERE run_id = $(field "$1" run_id)"; }
msg_id() { sql "SELECT m.id FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.name = '$1' AND m.content_sha256 = '$2'"; }
locs() { sql "SELECT count(*) FROM message_locations l JOIN messages m ON m.id = l.message_id WHERE m.content_sha256 = '$2' AND m.account_id = (SELECT id FROM accounts WHERE name = '$1')"; }
ids() { sql "SELECT string_agg(m.id::text, ',' ORDER BY m.id) FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.name = '$1'"; }
folder_id() { sql "SELECT f.id FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = '$1' AND f.name = '$2'"; }

check "Cyrus announces OBJECTID" bash -c "python3 '$CHANGE' 127.0.0.1 '$CY_PORT' demo demo caps | grep -qw OBJECTID"
if dv caps | grep -qw OBJECTID; then
	echo "note: this Dovecot announces OBJECTID; its part below is not the fallback path"
else
	echo "note: Dovecot $(dovecot --version 2>/dev/null | cut -d' ' -f1) does not announce OBJECTID: it takes the download path"
fi

sync_acc oid "first sync"
first=$(downloaded oid)
check "first sync downloaded every message ($first)" [ "$first" -gt 30 ]
check "the messages carry their EMAILID" [ "$(sql "SELECT count(*) FILTER (WHERE email_id IS NULL) FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.name = 'oid'")" = 0 ]
check "every folder knows its MAILBOXID" [ "$(sql "SELECT count(*) FILTER (WHERE mailbox_id IS NULL) FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = 'oid'")" = 0 ]

# MOVE: a vanish in INBOX, a new UID in Archive, no body.
sha=$(cy move INBOX Archive)
before=$(msg_id oid "$sha")
sync_acc oid "move"
check "move: nothing downloaded, one message linked ($(downloaded oid), $(linked oid))" [ "$(downloaded oid):$(linked oid)" = 0:1 ]
check "move: the message keeps its row id ($before)" [ "$(msg_id oid "$sha")" = "$before" ]
check "move: the link was applied" grep -q 'msg="links applied"' "$RUN_LOG"

# COPY: a second location of the same row, no body.
sha=$(cy copy Archive Sent)
before=$(msg_id oid "$sha")
nloc=$(locs oid "$sha")
sync_acc oid "copy"
check "copy: nothing downloaded, one message linked" [ "$(downloaded oid):$(linked oid)" = 0:1 ]
check "copy: one more location of the same row ($before)" [ "$(msg_id oid "$sha"):$(locs oid "$sha")" = "$before:$((nloc + 1))" ]

# RENAME (with a child folder): the rows, their locations and cursors stay.
parent=$(folder_id oid Projekte)
child=$(folder_id oid 'Projekte/Café Zürich')
all=$(ids oid)
cy rename Projekte Projects
sync_acc oid "rename"
check "rename: Projects is Projekte's row ($parent)" [ "$(folder_id oid Projects)" = "$parent" ]
check "rename: its child kept its row too ($child)" [ "$(folder_id oid 'Projects/Café Zürich')" = "$child" ]
check "rename: nothing downloaded" [ "$(downloaded oid)" = 0 ]
check "rename: every message kept its id" [ "$(ids oid)" = "$all" ]

# UIDVALIDITY change: Archive/2023 deleted and created again with the same messages.
all=$(ids oid)
uv=$(cy recreate Archive/2023)
sync_acc oid "uidvalidity"
check "uidvalidity: the folder has the new UIDVALIDITY $uv" [ "$(sql "SELECT uidvalidity FROM email_folders WHERE id = $(folder_id oid Archive/2023)")" = "$uv" ]
n=$(sql "SELECT count(*) FROM message_locations WHERE folder_id = $(folder_id oid Archive/2023)")
check "uidvalidity: nothing downloaded, its $n messages linked" [ "$(downloaded oid):$(linked oid)" = "0:$n" ]
check "uidvalidity: every message kept its id" [ "$(ids oid)" = "$all" ]

# Fallback: the hash names a message row that is gone (deleted after the lookup, in real
# life): the link cannot be applied, the cursor stays below it, the next sync downloads it.
read -r emailid sha < <(cy append INBOX objectid-fallback)
acc=$(sql "SELECT id FROM accounts WHERE name = 'oid'")
redis-cli -p "$MP_REDIS_PORT" HSET "{mp}:emailid:$acc" "$emailid" 999999999 >/dev/null
mailpipe sync oid --wait --timeout 120 >"$MAILPIPE_STACK_DIR/oid.json"
check "fallback: the sync with a dead link ends incomplete, not ok" [ "$(field oid status)" = incomplete ]
check "fallback: INBOX is reported incomplete and the message is not stored" \
	[ "$(python3 -c 'import json,sys; print([f["status"] for f in json.load(open(sys.argv[1]))["folders"] if f["folder"] == "INBOX"][0])' "$MAILPIPE_STACK_DIR/oid.json"):$(sql "SELECT count(*) FROM messages WHERE content_sha256 = '$sha'")" = incomplete:0 ]
check "fallback: the dead hash entry was dropped" [ "$(redis-cli -p "$MP_REDIS_PORT" HEXISTS "{mp}:emailid:$acc" "$emailid")" = 0 ]
sync_acc oid "fallback, next sync"
check "fallback: the message was downloaded" [ "$(downloaded oid):$(linked oid)" = 1:0 ]
check "fallback: and stored once" [ "$(sql "SELECT count(*) FROM messages WHERE content_sha256 = '$sha'")" = 1 ]
check "fallback: the hash names it now" [ "$(redis-cli -p "$MP_REDIS_PORT" HGET "{mp}:emailid:$acc" "$emailid")" = "$(msg_id oid "$sha")" ]

# kill -9: three moves; the writer holds what it reads for 4 s (its batch window), and is killed
# while the link records wait in it. The restarted writer takes them over: exact, no download.
run_stop
MAILPIPE_WRITER_BATCH_MS=4000 run_start
shas=$(for _ in 1 2 3; do cy move INBOX Trash; done)
all=$(ids oid)
in_trash() { sql "SELECT count(*) FROM message_locations l JOIN email_folders f ON f.id = l.folder_id JOIN messages m ON m.id = l.message_id WHERE f.name = 'Trash' AND m.content_sha256 IN ($(printf "'%s'," $shas | sed 's/,$//'))"; }
mailpipe sync oid --wait --timeout 120 >"$MAILPIPE_STACK_DIR/oid.json" &
sync_pid=$!
for _ in $(seq 200); do
	redis-cli -p "$MP_REDIS_PORT" XRANGE '{mp}:parsed' - + | grep -qx link && break
	sleep 0.05
done
links_waiting() {
	[ "$(redis-cli -p "$MP_REDIS_PORT" XRANGE '{mp}:parsed' - + | grep -cx link)" -gt 0 ] && [ "$(in_trash)" = 0 ]
}
check "kill: the link records are in the stream, not yet applied" links_waiting
writer=$(pgrep -P "$RUN_PID" -f mailpipe-writer | head -1)
check "kill: the writer is killed (pid $writer)" kill -9 "$writer"
wait "$sync_pid"
check "kill: the sync completes after the writer was killed" [ $? -eq 0 ]
python3 "$ROOT/tests/integration/verify.py" oid 127.0.0.1 "$CY_PORT" demo demo >"$MAILPIPE_STACK_DIR/verify.out" 2>&1
check "kill: oid equals the server (verify.py)" [ $? -eq 0 ]
check "kill: the three moves were linked, nothing downloaded" [ "$(downloaded oid):$(linked oid)" = 0:3 ]
check "kill: every message kept its id" [ "$(ids oid)" = "$all" ]
check "kill: each moved message is in Trash once" [ "$(in_trash)" = 3 ]
run_stop
run_start

# Dovecot without OBJECTID: a move is downloaded, but the run keeps the row (the orphan
# deletion waits for the run's end; the content hash finds it).
sync_acc dov "dovecot first sync"
sha=$(dv move INBOX Archive)
before=$(msg_id dov "$sha")
sync_acc dov "dovecot move"
check "dovecot move: downloaded (no OBJECTID)" [ "$(downloaded dov):$(linked dov)" = 1:0 ]
check "dovecot move: still one row with the same id ($before)" [ "$(msg_id dov "$sha")" = "$before" ]
check "no message of either account is left without a location" \
	[ "$(sql "SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM message_locations l WHERE l.message_id = m.id)")" = 0 ]
check "no entry left pending in Redis" no_pending
grep -hE 'linked=[1-9]|unlinked=|renamed on the server' "$RUN_LOG" | sed 's/^/  log: /'
finish
