#!/usr/bin/env bash
# Issue 9: the database equals the mailbox after every change a mail client makes, not only
# after the first sync. Between syncs the Dovecot mailbox is changed over IMAP
# (mirror_change.py: flags set and cleared, expunge, MOVE and COPY, new mail with replies,
# a non-ASCII folder created, renamed and deleted) and its UIDVALIDITY is reset; after each
# step verify.py compares every folder, UID, flag and count with the server, and the rows
# must hold together: no message without a location, conversations counting their messages.
# Two accounts mirror the same mailbox: one through CONDSTORE (CHANGEDSINCE, HIGHESTMODSEQ),
# one with it turned off, which scans every stored UID's flags, so both paths are proven.
. "$(dirname "$0")/lib.sh"
stack_up 60 11
add_account cs
add_account plain --no-condstore --flag-scan-interval 0
run_start

consistent() { # ACCOUNT: rows that must agree with each other
	local bad
	bad=$(sql "SELECT
	  (SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.name = '$1'
	    AND NOT EXISTS (SELECT 1 FROM message_locations l WHERE l.message_id = m.id)) || ' ' ||
	  (SELECT count(*) FROM conversations c JOIN accounts a ON a.id = c.account_id WHERE a.name = '$1'
	    AND (c.message_count <> (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)
	     OR c.unread_count <> (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id
	        AND NOT EXISTS (SELECT 1 FROM message_locations l WHERE l.message_id = m.id
	          AND '\\Seen' = ANY(l.flags)))
	     OR c.message_count = 0))")
	[ "$bad" = "0 0" ] || { echo "  $1: messages without a location, bad conversations: $bad"; return 1; }
}

sync_both() { # STEP
	for acc in cs plain; do
		mailpipe sync "$acc" --wait --timeout 120 >"$MAILPIPE_STACK_DIR/$acc.json"
		check "$1: sync of $acc exits 0" [ $? -eq 0 ]
		verify "$acc"
		check "$1: $acc's rows hold together" consistent "$acc"
	done
}

sync_both "first sync"
for step in flags expunge move append mkfolder rename rmfolder; do
	python3 "$ROOT/tests/integration/mirror_change.py" 127.0.0.1 "$MP_IMAP_PORT" demo demo "$step"
	sync_both "$step"
done

# Each account took its own path: CONDSTORE keeps modseqs and never needs a full flag scan;
# the other scanned every stored UID's flags.
check "the CONDSTORE account kept HIGHESTMODSEQ and never scanned all flags" \
	[ "$(sql "SELECT bool_and(f.highest_modseq > 0 AND f.last_flag_scan_at IS NULL) FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = 'cs' AND f.last_uid > 0")" = t ]
check "the account without CONDSTORE scanned flags" \
	[ "$(sql "SELECT bool_and(f.last_flag_scan_at IS NOT NULL) FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = 'plain' AND f.last_uid > 0")" = t ]

# A sync with nothing changed rewrites no message or location row.
before=$(snapshot)
sync_both "no change"
check "a sync with no change rewrites no row" [ "$(snapshot)" = "$before" ]

# UIDVALIDITY reset: old locations go, the folder resyncs, no message row is doubled.
msgs=$(sql "SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.name = 'cs'")
doveadm -c "$MP_DOVECOT_CONF" mailbox update -u demo --uid-validity 777 Sent
sync_both "uidvalidity"
check "no message row doubled by the UIDVALIDITY reset" \
	[ "$(sql "SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.name = 'cs'")" = "$msgs" ]
check "no entry left pending in Redis" no_pending
finish
