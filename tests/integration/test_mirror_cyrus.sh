#!/usr/bin/env bash
# Issue 9 on the second real server: the mirror tests of test_mirror.sh (flags, expunge, MOVE
# and COPY, replies, a non-ASCII folder created, renamed and deleted, a no-change sync) against
# Cyrus IMAP 3.6 (deploy/local/cyrus.sh), whose delimiter is "/" and whose CONDSTORE, QRESYNC
# and MOVE differ from Dovecot's in the details. Both accounts, with and without CONDSTORE.
export MAILPIPE_IDLE=1 MAILPIPE_LOG=info
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mirror_lib.sh"
. "$(dirname "$0")/cyrus_lib.sh"
cyrus_up test_mirror_cyrus 60 11 1
for a in "cs" "cso --no-qresync" "plain --no-condstore --flag-scan-interval 0"; do
	set -- $a
	mailpipe account add "$@" --host 127.0.0.1 --port "$CY_PORT" --tls none --username demo \
		--secret env:TEST_IMAP_SECRET --interval 0 --initial-window-days 0 \
		--email demo@example.org >/dev/null
done
run_start
server_verify() { python3 "$ROOT/tests/integration/verify.py" "$1" 127.0.0.1 "$CY_PORT" demo demo || FAILS=$((FAILS + 1)); }
mirror_steps 127.0.0.1 "$CY_PORT" /
check "no entry left pending in Redis" no_pending
finish
