#!/usr/bin/env bash
# Issue 9: the mirror's records (flags, vanished, folder removal) are idempotent and survive
# kill -9. After a first sync, a third of the mailbox changes flags and a tenth is expunged;
# the next sync runs while the writer is killed again and again and the fetcher and parser
# once each. The result must equal the server exactly, as an undisturbed run would leave it:
# every UID and flag, no message without a location, conversations counting their messages.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mirror_lib.sh"
stack_up 1500 17
add_account crashy --no-condstore --flag-scan-interval 0
add_account calm
export MAILPIPE_WRITER_BATCH=50 MAILPIPE_IDLE=0
run_start
mailpipe sync crashy --wait --timeout 120 >/dev/null
check "first sync" [ $? -eq 0 ]

python3 - "$MP_IMAP_PORT" <<'PY'
import imaplib, sys
imap = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
imap.login("demo", "demo")
for folder in ("INBOX", "Archive", "Sent"):
    imap.select(folder)
    uids = imap.uid("SEARCH", None, "ALL")[1][0].split()
    for i, u in enumerate(uids):
        if i % 3 == 0:
            imap.uid("STORE", u, "+FLAGS" if i % 2 else "-FLAGS", "(\\Seen)")
        if i % 7 == 0:
            imap.uid("STORE", u, "+FLAGS", "(\\Flagged $Later)")
        if i % 10 == 5:
            imap.uid("STORE", u, "+FLAGS", "(\\Deleted)")
    imap.expunge()
imap.logout()
PY

stage_pid() { pgrep -P "$RUN_PID" -f "mailpipe-$1" | head -1; }
mailpipe sync crashy --wait --timeout 180 >"$MAILPIPE_STACK_DIR/crashy.json" &
sync_pid=$!
kills=0
for victim in fetcher writer parser writer writer writer; do
	sleep 0.4
	pid=$(stage_pid "$victim")
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
done
echo "  $kills stages killed with SIGKILL during the sync"
wait "$sync_pid"
check "the sync completes despite the kills" [ $? -eq 0 ]
# A second sync settles anything a kill left for later (a record still pending then).
mailpipe sync crashy --wait --timeout 120 >/dev/null
verify crashy
check "crashy's rows hold together" consistent crashy
# The same mailbox synced by an account nobody disturbed gives the same locations and flags.
mailpipe sync calm --wait --timeout 120 >/dev/null
same() {
	local q="SELECT md5(string_agg(f.name || ':' || l.uid || ':' || array_to_string(array(SELECT unnest(l.flags) ORDER BY 1), ' ') || ':' || m.content_sha256, '|' ORDER BY f.name, l.uid))
	  FROM message_locations l JOIN email_folders f ON f.id = l.folder_id JOIN messages m ON m.id = l.message_id
	  JOIN accounts a ON a.id = f.account_id WHERE a.name ="
	[ "$(sql "$q 'crashy'")" = "$(sql "$q 'calm'")" ]
}
check "the killed account equals an undisturbed one" same
check "no entry left pending in Redis" no_pending
finish
