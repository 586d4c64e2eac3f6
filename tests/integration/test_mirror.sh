#!/usr/bin/env bash
# Issue 9: the database equals the mailbox after every change a mail client makes, not only
# after the first sync. Between syncs the Dovecot mailbox is changed over IMAP
# (mirror_change.py: flags set and cleared, expunge, MOVE and COPY, new mail with replies,
# a non-ASCII folder created, renamed and deleted) and its UIDVALIDITY is reset; after each
# step verify.py compares every folder, UID, flag and count with the server, and the rows
# must hold together: no message without a location, conversations counting their messages.
# Three accounts mirror the same mailbox: one through QRESYNC (EXAMINE hands over flag changes
# and VANISHED UIDs), one through CONDSTORE alone (CHANGEDSINCE, HIGHESTMODSEQ, UID SEARCH for
# expunges), one with both turned off, which scans every stored UID's flags: every path proven.
export MAILPIPE_IDLE=1 MAILPIPE_LOG=info
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mirror_lib.sh"
stack_up 60 11
add_account cs
add_account cso --no-qresync
add_account plain --no-condstore --flag-scan-interval 0
run_start
server_verify() { verify "$1"; }
mirror_steps 127.0.0.1 "$MP_IMAP_PORT" .

# UIDVALIDITY reset: old locations go, the folder resyncs, no message row is doubled.
msgs=$(sql "SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.name = 'cs'")
doveadm -c "$MP_DOVECOT_CONF" mailbox update -u demo --uid-validity 777 Sent
sync_both "uidvalidity"
check "no message row doubled by the UIDVALIDITY reset" \
	[ "$(sql "SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id WHERE a.name = 'cs'")" = "$msgs" ]
check "no entry left pending in Redis" no_pending
finish
