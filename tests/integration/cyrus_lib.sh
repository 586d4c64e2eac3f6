# Shared by the tests that sync from Cyrus IMAP 3.6 beside the usual stack
# (test_mirror_cyrus.sh, test_objectid.sh): cyrus_up NAME COUNT SEED STACK_SEED installs Cyrus
# if missing (else the test prints SKIP and exits), starts the stack (a 20-message Dovecot
# sample of seed STACK_SEED), starts Cyrus on a free port (CY_DIR, CY_PORT) with user demo/demo
# holding a COUNT-message sample of seed SEED, and stops both on exit. Source lib.sh first.
CYRUS=$ROOT/deploy/local/cyrus.sh
cyrus_up() {
	local name=$1 count=$2 seed=$3 stack_seed=$4 out
	if ! out=$(MP_CYRUS_SUDO="sudo -n" "$CYRUS" install 2>&1 </dev/null); then
		echo "SKIP $name: Cyrus IMAP could not be installed: $(printf '%s\n' "$out" | tail -n 1)"
		exit 0
	fi
	stack_up 20 "$stack_seed"
	CY_DIR=$MAILPIPE_STACK_DIR/cyrus
	trap 'run_stop; "$CYRUS" stop "$CY_DIR" >/dev/null 2>&1; stack_down' EXIT
	CY_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	if ! "$CYRUS" start "$CY_DIR" "$CY_PORT" >"$MAILPIPE_STACK_DIR/cyrus.start.log" 2>&1; then
		cat "$MAILPIPE_STACK_DIR/cyrus.start.log"
		fail "Cyrus starts on 127.0.0.1:$CY_PORT"
		finish
	fi
	check "Cyrus user demo gets a $count-message sample" "$CYRUS" add-user "$CY_DIR" demo demo --sample "$count" "$seed"
}
