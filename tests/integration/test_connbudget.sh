#!/usr/bin/env bash
# Issue 11, connection budgets: however many fetchers and watches want one, an account never
# has more connections open than its limit (--max-connections, else its provider's), nor a
# server host more than MAILPIPE_HOST_CONNECTIONS; jobs over the limit wait their turn and the
# mirror still ends exact. Dovecot itself counts the connections (`doveadm who`), sampled
# while syncs and IDLE watches run.
export MAILPIPE_IDLE=1 MAILPIPE_FETCHERS=4
. "$(dirname "$0")/lib.sh"
stack_up 200 31
export MAILPIPE_LOG=info
# Dovecot's count of demo's sessions; or (SOCKETS=1) the TCP connections open to its IMAPS
# port, counted from our side: a session Dovecot is still tearing down after our LOGOUT is
# not one we hold, and under a churn of closes (a host at its limit asks every fetcher to close
# its parked connections) Dovecot's count lags by seconds on a loaded machine.
count_now() {
	if [ "${SOCKETS:-0}" = 1 ]; then
		ss -Htn state established "( dport = :$MP_IMAPS_PORT )" | wc -l
	else
		doveadm -c "$MP_DOVECOT_CONF" who 2>/dev/null | awk '$1 == "demo" {print $2}'
	fi
}
who_max() { # OUTFILE: samples the connection count until the file stop exists
	local max=0 n
	while [ ! -e "$1.stop" ]; do
		n=$(count_now)
		[ -n "$n" ] && [ "$n" -gt "$max" ] && max=$n
		echo "$max" >"$1"
		sleep 0.05
	done
}
sample() { # NAME, command...: runs it while sampling; prints the most connections seen
	local f=$MAILPIPE_STACK_DIR/who.$1
	shift
	rm -f "$f.stop"
	who_max "$f" &
	local pid=$!
	"$@" >/dev/null
	local rc=$?
	touch "$f.stop"
	wait "$pid"
	echo "$(cat "$f")"
	return $rc
}

# 1. One account limited to 2 connections, with three folders to watch (INBOX, Archive,
# Sent: three watches wanted) and four fetchers taking its folder jobs.
add_account capped --max-connections 2 --idle-folder Archive --idle-folder Sent
run_start
max=$(sample first mailpipe sync capped --wait --timeout 120)
check "the first sync of the capped account succeeds" [ $? -eq 0 ]
sleep 3 # the watches open (and are refused a third connection)
max2=$(sample again bash -c 'for i in 1 2 3; do mailpipe sync capped --wait --timeout 120 >/dev/null || exit 1; done; sleep 3')
check "three more syncs with the watches up succeed" [ $? -eq 0 ]
[ "$max2" -gt "$max" ] && max=$max2
check "the account never had more than its 2 connections (Dovecot saw at most $max)" [ "$max" -le 2 ]
check "... and did use them (at least 1 seen)" [ "$max" -ge 1 ]
grep -q 'connection budget in use (account limit 2)' "$RUN_LOG"
check "a fetcher found the account at its limit and waited" [ $? -eq 0 ]
verify capped
run_stop
# The first part's connections are gone before the second counts (Dovecot's imap processes
# end a moment after their clients).
for _ in $(seq 100); do
	[ -z "$(doveadm -c "$MP_DOVECOT_CONF" who 2>/dev/null | awk '$1 == "demo"')" ] && break
	sleep 0.1
done

# 2. A host limit of 3 over two accounts, each allowed 10, no watches: their syncs together
# never open more than 3.
export MAILPIPE_HOST_CONNECTIONS=3 MAILPIPE_IDLE=0
add_account h1
add_account h2
run_start
max=$(SOCKETS=1 sample host bash -c 'mailpipe sync h1 --wait --timeout 120 & p=$!; mailpipe sync h2 --wait --timeout 120; s=$?; wait $p && [ $s -eq 0 ]')
check "two accounts sync together under a host limit" [ $? -eq 0 ]
check "the host never had more than 3 connections open (at most $max sockets seen)" [ "$max" -le 3 ]
verify h1
verify h2
check "no entry left pending in Redis" no_pending
finish
