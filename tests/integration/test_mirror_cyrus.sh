#!/usr/bin/env bash
# Issue 9 on the second real server: the mirror tests of test_mirror.sh (flags, expunge, MOVE
# and COPY, replies, a non-ASCII folder created, renamed and deleted, a no-change sync) against
# Cyrus IMAP 3.6 (deploy/local/cyrus.sh), whose delimiter is "/" and whose CONDSTORE, QRESYNC
# and MOVE differ from Dovecot's in the details. Both accounts, with and without CONDSTORE.
export MAILPIPE_IDLE=1
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mirror_lib.sh"
CYRUS=$ROOT/deploy/local/cyrus.sh
if ! out=$(MP_CYRUS_SUDO="sudo -n" "$CYRUS" install 2>&1 </dev/null); then
	echo "SKIP test_mirror_cyrus: Cyrus IMAP could not be installed: $(printf '%s\n' "$out" | tail -n 1)"
	exit 0
fi
stack_up 20 1
CY_DIR=$MAILPIPE_STACK_DIR/cyrus
trap 'run_stop; "$CYRUS" stop "$CY_DIR" >/dev/null 2>&1; stack_down' EXIT
CY_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if ! "$CYRUS" start "$CY_DIR" "$CY_PORT" >"$MAILPIPE_STACK_DIR/cyrus.start.log" 2>&1; then
	cat "$MAILPIPE_STACK_DIR/cyrus.start.log"
	fail "Cyrus starts on 127.0.0.1:$CY_PORT"
	finish
fi
check "Cyrus user demo gets a 60-message sample" "$CYRUS" add-user "$CY_DIR" demo demo --sample 60 11
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
