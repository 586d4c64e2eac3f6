#!/usr/bin/env bash
# Issue 9, Gmail's ids: where X-GM-EXT-1 is announced, X-GM-MSGID names a message in every
# folder (label) that shows it. The scripted server (hostile_imap.py, user gmail) shows INBOX's
# messages again in "[Gmail]/All Mail" under other UIDs: once INBOX is stored, All Mail's copies
# are linked to the same rows, none downloaded, and the database equals the server.
. "$(dirname "$0")/lib.sh"
stack_up 10 2
HERE=$ROOT/tests/integration
OUT=$MAILPIPE_STACK_DIR/gmail
hostile_up "$OUT" --messages 6
export MAILPIPE_LOG=info
mailpipe account add gm --host 127.0.0.1 --port "$HPORT" --tls none --username gmail \
	--secret env:HOSTILE_PW --interval 0 --initial-window-days 0 >/dev/null
run_start
folder_field() { # FOLDER FIELD of the last summary
	python3 -c 'import json,sys; print([f[sys.argv[3]] for f in json.load(open(sys.argv[1]))["folders"] if f["folder"] == sys.argv[2]][0])' \
		"$OUT/sync.json" "$1" "$2"
}
mailpipe sync gm --folder INBOX --wait --timeout 60 >"$OUT/sync.json"
check "INBOX alone: sync exits 0" [ $? -eq 0 ]
check "INBOX's 6 messages downloaded" [ "$(folder_field INBOX fetched_count)" = 6 ]
check "their X-GM-MSGID is stored" [ "$(sql "SELECT count(*) FROM messages WHERE email_id ~ '^[0-9]+$'")" = 6 ]
ids=$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM messages")
mailpipe sync gm --wait --timeout 60 >"$OUT/sync.json"
check "every folder: sync exits 0" [ $? -eq 0 ]
check "[Gmail]/All Mail: its 6 messages delivered, all linked, none downloaded" \
	[ "$(folder_field '[Gmail]/All Mail' fetched_count):$(sql "SELECT linked_count FROM sync_run_folders s JOIN email_folders f ON f.id = s.folder_id WHERE f.name = '[Gmail]/All Mail' AND s.run_id = $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$OUT/sync.json")")" = 6:6 ]
check "[Gmail]/All Mail: its 6 messages are INBOX's rows" [ "$(sql "SELECT count(DISTINCT l.message_id) FROM message_locations l JOIN email_folders f ON f.id = l.folder_id WHERE f.name = '[Gmail]/All Mail' AND l.message_id IN ($ids)")" = 6 ]
check "Archive's own 3 messages were downloaded" [ "$(folder_field Archive fetched_count)" = 3 ]
check "the X-GM-MSGIDs were asked, never a body of All Mail" \
	python3 - "$OUT/server.jsonl" <<'PY'
import json, sys
asked_ids = bodies_in_all = 0
folder = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") != "command" or not e.get("line"):
        continue
    words = e["line"].split(" ", 2)
    cmd = " ".join(words[1:]).upper()
    if cmd.startswith("EXAMINE") or cmd.startswith("SELECT"):
        folder[e.get("conn")] = "ALL" if "ALL MAIL" in cmd else "OTHER"
    if "X-GM-MSGID" in cmd and "BODY" not in cmd:
        asked_ids += 1
    if "BODY.PEEK[]" in cmd and folder.get(e.get("conn")) == "ALL":
        bodies_in_all += 1
print(f"  id lookups {asked_ids}, body fetches in All Mail {bodies_in_all}")
sys.exit(0 if asked_ids >= 1 and bodies_in_all == 0 else 1)
PY
python3 "$HERE/verify.py" gm 127.0.0.1 "$HPORT" gmail pw >"$OUT/verify.out" 2>&1
ok=$?
[ $ok -eq 0 ] || grep FAIL "$OUT/verify.out"
check "the database equals the scripted server (verify.py)" [ $ok -eq 0 ]
check "no entry left pending in Redis" no_pending
finish
