#!/usr/bin/env bash
# Issue 9, first-sync window and backfill: an account whose first sync is limited to the last
# day gets only the recent mail at first (newest first); with --backfill, low-priority jobs
# then fetch the older mail below the window, newest chunk first, until the database equals
# the whole mailbox. Without --backfill, older mail stays on the server only.
. "$(dirname "$0")/lib.sh"
stack_up 120 19
export MAILPIPE_BACKFILL_CHUNK=15 MAILPIPE_TICK_MS=200
# Five messages of today: the sample's own dates are older than a day.
python3 - "$MP_IMAP_PORT" <<'PY'
import imaplib, sys, time
imap = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
imap.login("demo", "demo")
for i in range(5):
    raw = (f"From: Recent <recent@example.org>\r\nTo: demo@example.org\r\nSubject: recent {i}\r\n"
           f"Message-ID: <recent-{i}-{time.time_ns()}@example.org>\r\n\r\nnew mail {i}\r\n").encode()
    imap.append("INBOX", "()", imaplib.Time2Internaldate(time.time()), raw)
imap.logout()
PY
add_account windowed --initial-window-days 1
add_account back --initial-window-days 1 --backfill
run_start
mailpipe sync windowed --wait --timeout 60 >/dev/null
check "windowed first sync exits 0" [ $? -eq 0 ]
inbox_rows() { sql "SELECT count(*) FROM message_locations l JOIN email_folders f ON f.id = l.folder_id JOIN accounts a ON a.id = f.account_id WHERE a.name = '$1' AND f.name = 'INBOX'"; }
check "the window holds only today's 5 INBOX messages" [ "$(inbox_rows windowed)" = 5 ]
check "INBOX's counts are the server's, not the window's" \
	[ "$(sql "SELECT f.message_count > 5 FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = 'windowed' AND f.name = 'INBOX'")" = t ]

mailpipe sync back --wait --timeout 60 >/dev/null
check "backfill account's first sync exits 0" [ $? -eq 0 ]
done_backfill() {
	for _ in $(seq 300); do
		[ "$(sql "SELECT count(*) FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = 'back' AND f.backfill_uid IS NOT NULL")" = 0 ] && return 0
		sleep 0.2
	done
	return 1
}
check "backfill ends" done_backfill
verify back
# Newest first: the earliest backfilled INBOX location has a higher UID than the last one.
check "backfill fetched newest first" [ "$(sql "WITH l AS (SELECT l.id, l.uid FROM message_locations l
	JOIN email_folders f ON f.id = l.folder_id JOIN accounts a ON a.id = f.account_id
	WHERE a.name = 'back' AND f.name = 'INBOX' ORDER BY l.id OFFSET 5)
	SELECT (SELECT uid FROM l ORDER BY id LIMIT 1) > (SELECT uid FROM l ORDER BY id DESC LIMIT 1)")" = t ]
check "without --backfill older mail is not fetched" [ "$(inbox_rows windowed)" = 5 ]
check "no entry left pending in Redis" no_pending
finish
