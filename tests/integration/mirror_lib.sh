# Shared by test_mirror.sh (Dovecot) and test_mirror_cyrus.sh: three accounts, `cs` (through
# QRESYNC), `cso` (CONDSTORE without QRESYNC) and `plain` (neither, scanning flags), synced
# after each change a mail client makes (mirror_change.py), each compared with the server and
# checked for rows that agree.
# The caller defines server_verify ACCOUNT (verify.py against its server).

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
	for acc in cs cso plain; do
		mailpipe sync "$acc" --wait --timeout 120 >"$MAILPIPE_STACK_DIR/$acc.json"
		check "$1: sync of $acc exits 0" [ $? -eq 0 ]
		server_verify "$acc"
		check "$1: $acc's rows hold together" consistent "$acc"
	done
}

mirror_steps() { # HOST PORT DELIMITER
	sync_both "first sync"
	for step in flags expunge move append mkfolder rename rmfolder; do
		python3 "$ROOT/tests/integration/mirror_change.py" "$1" "$2" demo demo "$step" "$3"
		sync_both "$step"
	done
	for acc in cs cso; do
		check "the CONDSTORE account $acc kept HIGHESTMODSEQ and never scanned all flags" \
			[ "$(sql "SELECT bool_and(f.highest_modseq > 0 AND f.last_flag_scan_at IS NULL) FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = '$acc' AND f.last_uid > 0")" = t ]
	done
	# The callers run with MAILPIPE_LOG=info: these lines are how the paths show.
	check "cs learnt flags and expunges from QRESYNC's EXAMINE" \
		grep -q 'account=cs .*mirrored old messages (QRESYNC)' "$RUN_LOG"
	check "cso (--no-qresync) learnt them without QRESYNC" \
		grep -q 'account=cso .*mirrored old messages"' "$RUN_LOG"
	check "cso (--no-qresync) never used QRESYNC" \
		bash -c "! grep -q 'account=cso .*QRESYNC' '$RUN_LOG'"
	check "the account without CONDSTORE scanned flags" \
		[ "$(sql "SELECT bool_and(f.last_flag_scan_at IS NOT NULL) FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = 'plain' AND f.last_uid > 0")" = t ]
	# A sync with nothing changed rewrites no message or location row.
	local before
	before=$(snapshot)
	sync_both "no change"
	check "a sync with no change rewrites no row" [ "$(snapshot)" = "$before" ]
	# ... and costs the CONDSTORE account no folder job at all: the list's STATUS answers
	# showed nothing changed.
	check "a no-change sync of cs queued no folder job" [ "$(sql "SELECT count(*) FROM sync_run_folders s
		WHERE s.run_id = $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$MAILPIPE_STACK_DIR/cs.json")
		AND s.enqueued_at IS NOT NULL")" = 0 ]
}
