#!/usr/bin/env bash
# Issue 10, the queue API for apps: the change stream {mp}:changes read by an app's own
# consumer group (changes_app.py, plain Python over the Redis protocol) tells exactly what
# each sync committed, with the ids of the rows: the first sync's messages and folders, then
# flags set and cleared, an expunge, new mail, a folder created, renamed and deleted on
# Dovecot between syncs (mirror_change.py); each set of entries is compared with the rows
# before and after (changes_check.py). A request an app adds to {mp}:requests with a
# request_id becomes a run whose sync_finished carries that request_id; an unknown account's
# request is rejected by name; MAILPIPE_CHANGES_MAXLEN bounds the stream, and 0 turns it off.
. "$(dirname "$0")/lib.sh"
stack_up 200 11
add_account cs
export TEST_IMAP_SECRET_WRONG=wrong
run_start
D=$MAILPIPE_STACK_DIR
HERE=$ROOT/tests/integration
app() { python3 "$HERE/changes_app.py" 127.0.0.1 "$MP_REDIS_PORT" "$@"; }
acc_id=$(sql "SELECT id FROM accounts WHERE name = 'cs'")
snap() {
	sql "SELECT l.folder_id || ' ' || l.uid || ' ' || l.message_id || ' ' || array_to_string(l.flags, ',')
	     FROM message_locations l JOIN email_folders f ON f.id = l.folder_id
	     WHERE f.account_id = $acc_id ORDER BY 1" >"$1"
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))' "$@"; }
# entries TYPE FIELD: that field of the last read's entries of that type, one a line, sorted
entries() {
	python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["type"] == sys.argv[2]: print(e.get(sys.argv[3], ""))' "$D/entries.jsonl" "$1" "$2" | sort
}

# The app's group starts at "$" before the first sync: it is told everything from then on.
app read app '$' --block 10 >/dev/null
: >"$D/before"
step() { # NAME: sync, read the app's new entries, compare them with the rows
	mailpipe sync cs --wait --timeout 120 >"$D/summary.json"
	check "$1: sync exits 0" [ $? -eq 0 ]
	snap "$D/after"
	sql "SELECT id FROM messages WHERE account_id = $acc_id AND deleted_at IS NULL" >"$D/stored"
	app read app >"$D/entries.jsonl"
	check "$1: the entries tell exactly what changed, with the rows' ids" \
		python3 "$HERE/changes_check.py" "$D/before" "$D/after" "$D/stored" "$D/entries.jsonl" "$acc_id"
	check "$1: sync_finished names the run, the account and its status" \
		[ "$(entries sync_finished run_id)" = "$(field "$D/summary.json" run_id)" \
		-a "$(entries sync_finished account)" = cs -a "$(entries sync_finished status)" = ok ]
	cp "$D/after" "$D/before"
}

step "first sync"
check "first sync: folder_added for every folder, with its id and name" \
	[ "$(entries folder_added folder_id | tr '\n' ' ')" = "$(sql "SELECT id FROM email_folders WHERE account_id = $acc_id ORDER BY id::text" | tr '\n' ' ')" ]
check "first sync: 200 or more message_added entries" [ "$(entries message_added uid | wc -l)" -ge 200 ]
for change in flags expunge append; do
	python3 "$HERE/mirror_change.py" 127.0.0.1 "$MP_IMAP_PORT" demo demo "$change" . >/dev/null
	step "$change"
	case $change in
	flags) check "flags: at least 7 flag changes told" [ "$(entries flags_changed uid | wc -l)" -ge 7 ] ;;
	expunge) check "expunge: 3 removals told" [ "$(entries message_removed uid | wc -l)" = 3 ] ;;
	append) check "append: 3 new messages told" [ "$(entries message_added uid | wc -l)" = 3 ] ;;
	esac
done
python3 "$HERE/mirror_change.py" 127.0.0.1 "$MP_IMAP_PORT" demo demo mkfolder . >/dev/null
step "mkfolder"
new_id=$(sql "SELECT id FROM email_folders WHERE account_id = $acc_id AND name = 'Reisen.Zürich'")
check "mkfolder: folder_added names the new folder's row" \
	[ -n "$new_id" -a "$(entries folder_added folder_id)" = "$new_id" -a "$(entries folder_added name)" = Reisen.Zürich ]
python3 "$HERE/mirror_change.py" 127.0.0.1 "$MP_IMAP_PORT" demo demo rename . >/dev/null
step "rename"
renamed_id=$(sql "SELECT id FROM email_folders WHERE account_id = $acc_id AND name = 'Reisen.Genève'")
check "rename: folder_renamed names the old and the new folder" \
	[ -n "$renamed_id" -a "$(entries folder_renamed old_folder_id)" = "$new_id" \
	  -a "$(entries folder_renamed folder_id)" = "$renamed_id" -a "$(entries folder_renamed old_name)" = Reisen.Zürich \
	  -a "$(entries folder_renamed name)" = Reisen.Genève ]
python3 "$HERE/mirror_change.py" 127.0.0.1 "$MP_IMAP_PORT" demo demo rmfolder . >/dev/null
step "rmfolder"
check "rmfolder: folder_removed names the deleted folder" \
	[ "$(entries folder_removed folder_id)" = "$renamed_id" -a "$(entries folder_removed name)" = Reisen.Genève ]

# A UIDVALIDITY reset: the folder's old locations go in one folder_reset, the new ones are added.
inbox_id=$(sql "SELECT id FROM email_folders WHERE account_id = $acc_id AND name = 'INBOX'")
old_uidv=$(sql "SELECT uidvalidity FROM email_folders WHERE id = $inbox_id")
doveadm -c "$MP_DOVECOT_CONF" mailbox update -u demo --uid-validity 777 INBOX
mailpipe sync cs --wait --timeout 120 >/dev/null
app read app >"$D/entries.jsonl"
check "uidvalidity: folder_reset names the folder, both UIDVALIDITYs and the locations dropped" \
	[ "$(entries folder_reset folder_id) $(entries folder_reset old_uidvalidity) $(entries folder_reset uidvalidity)" = "$inbox_id $old_uidv 777" \
	  -a "$(entries folder_reset removed_count)" = "$(sql "SELECT count(*) FROM message_locations WHERE folder_id = $inbox_id")" ]
check "uidvalidity: every location under the new UIDVALIDITY is told as message_added" \
	[ "$(entries message_added uidvalidity | sort -u)" = 777 \
	  -a "$(entries message_added uid | wc -l)" = "$(sql "SELECT count(*) FROM message_locations WHERE folder_id = $inbox_id AND uidvalidity = 777")" ]

# Requests: the app asks, the scheduler runs it, sync_finished carries the request's id.
wait_for() { # TYPE FIELD VALUE: read the app's entries until one matches (30 s)
	: >"$D/entries.jsonl"
	for try in $(seq 30); do
		app read app >>"$D/entries.jsonl"
		[ -n "$(entries "$1" "$2" | grep -Fx "$3")" ] && return 0
	done
	return 1
}
app request cs req-77 >/dev/null
check "a request by an app ends with sync_finished carrying its request_id" \
	wait_for sync_finished request_id req-77
run=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get("request_id") == "req-77": print(e["run_id"])' "$D/entries.jsonl")
check "that run is in sync_runs with the request_id, finished ok" \
	[ "$(sql "SELECT request_id || ' ' || status FROM sync_runs WHERE run_id = ${run:-0}")" = "req-77 ok" ]
app request cs req-78 INBOX >/dev/null
check "a request for INBOX alone ends with sync_finished carrying its request_id" \
	wait_for sync_finished request_id req-78
check "that run synced INBOX only" \
	[ "$(sql "SELECT folder_filter::text FROM sync_runs WHERE request_id = 'req-78'")" = "{INBOX}" ]
app request nobody req-79 >/dev/null
check "a request for an unknown account is rejected by request_id" \
	wait_for request_rejected request_id req-79
redis-cli -p "$MP_REDIS_PORT" XADD '{mp}:requests' '*' account cs folders INBOX request_id req-81 >/dev/null
check "a request whose folders are not a JSON list is rejected by request_id" \
	wait_for request_rejected request_id req-81

# A refused login: account_failed names the account and the server's words, and the
# request's run ends failed, carrying its request_id.
mailpipe account add bad --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username demo \
	--secret env:TEST_IMAP_SECRET_WRONG --ca-file "$MP_CA_FILE" --interval 0 >/dev/null
app request bad req-80 >/dev/null
check "the request for an account whose login is refused ends with sync_finished" \
	wait_for sync_finished request_id req-80
check "... status failed" [ "$(entries sync_finished status)" = failed ]
check "... after account_failed naming the account and the server's words" \
	[ "$(entries account_failed account)" = bad -a -n "$(entries account_failed error | grep 'auth failed for account .bad.')" ]
# A run the scheduler closes (here one older than MAILPIPE_RUN_TIMEOUT_S) ends the same way.
sql "INSERT INTO sync_runs (account_id, started_at, request_id) VALUES ($acc_id, now() - interval '1 day', 'stuck-1')"
check "a run the scheduler closes as stuck ends with sync_finished carrying its request_id" \
	wait_for sync_finished request_id stuck-1
check "... with status failed" bash -c "grep '\"stuck-1\"' '$D/entries.jsonl' | grep -q '\"status\": \"failed\"'"

# MAXLEN bounds the stream; 0 publishes nothing.
before_len=$(redis-cli -p "$MP_REDIS_PORT" XLEN '{mp}:changes')
run_stop
MAILPIPE_CHANGES_MAXLEN=20 run_start
add_account cs2
mailpipe sync cs2 --wait --timeout 120 >/dev/null
len=$(redis-cli -p "$MP_REDIS_PORT" XLEN '{mp}:changes')
echo "  {mp}:changes held $before_len entries; after 200+ more with MAILPIPE_CHANGES_MAXLEN=20: $len"
check "MAILPIPE_CHANGES_MAXLEN=20 keeps the stream near 20 entries (MAXLEN ~ trims whole nodes of 100)" \
	[ "$before_len" -gt 200 -a "$len" -le 120 -a "$len" -gt 0 ]
run_stop
MAILPIPE_CHANGES_MAXLEN=0 run_start
last=$(redis-cli -p "$MP_REDIS_PORT" XREVRANGE '{mp}:changes' + - COUNT 1 | head -1)
python3 "$HERE/mirror_change.py" 127.0.0.1 "$MP_IMAP_PORT" demo demo append . >/dev/null
mailpipe sync cs --wait --timeout 120 >/dev/null
check "MAILPIPE_CHANGES_MAXLEN=0 publishes nothing" \
	[ "$(redis-cli -p "$MP_REDIS_PORT" XREVRANGE '{mp}:changes' + - COUNT 1 | head -1)" = "$last" ]
check "no entry left pending in Redis" no_pending
finish
