#!/usr/bin/env bash
# Issue 9, push: after one first sync, mail appended to INBOX (and to a folder the account
# names with --idle-folder) is committed without any `sync`
# call and with no poll interval (--interval 0): a fetcher's IDLE watch sees EXISTS and asks
# the scheduler for a sync on {mp}:requests. Also: an account with --no-idle gets no watch,
# the watch survives a renewal cycle (DONE, NOOP, IDLE), and when its fetcher is killed
# another fetcher takes the lease over and push keeps working.
export MAILPIPE_IDLE=1
. "$(dirname "$0")/lib.sh"
stack_up 40 13
add_account pushy --idle-folder Archive
add_account quiet --no-idle
# debug: the watches' state transitions are in the run log, so their renewal can be seen.
export MAILPIPE_IDLE_RENEW_S=2 MAILPIPE_FETCHERS=2 MAILPIPE_LOG=debug
run_start
mailpipe sync pushy --wait --timeout 60 >/dev/null
check "first sync of pushy" [ $? -eq 0 ]
mailpipe sync quiet --wait --timeout 60 >/dev/null

lease() { idle_lease "$@"; }
wait_lease() { for _ in $(seq 100); do [ -n "$(lease "$1")" ] && return 0; sleep 0.1; done; return 1; }
check "a fetcher holds the IDLE lease of pushy" wait_lease pushy
check "no fetcher watches quiet (--no-idle)" [ -z "$(lease quiet)" ]
wait_lease_archive() { for _ in $(seq 100); do [ -n "$(lease pushy Archive)" ] && return 0; sleep 0.1; done; return 1; }
check "a fetcher also watches pushy's Archive (--idle-folder Archive)" wait_lease_archive
check "... and not its Sent" [ -z "$(lease pushy Sent)" ]
sleep 3 # past one renewal (MAILPIPE_IDLE_RENEW_S=2): the watch must still deliver

out=$(python3 "$ROOT/tests/integration/push_append.py" 127.0.0.1 "$MP_IMAP_PORT" demo demo pushy 5 10)
check "appended mail is committed without a sync call" [ $? -eq 0 ]
echo "$out" | tail -1
out=$(python3 "$ROOT/tests/integration/push_append.py" 127.0.0.1 "$MP_IMAP_PORT" demo demo pushy 3 10 Archive)
check "mail appended to the watched Archive is committed without a sync call" [ $? -eq 0 ]
echo "$out" | tail -1
renewals=$(grep -c 'account=pushy msg="idle noop -> idle_start"' "$RUN_LOG")
check "the watch renewed its IDLE (DONE, NOOP, IDLE: $renewals times)" [ "$renewals" -ge 1 ]

# Kill the fetcher that holds the lease: the other takes the account over.
holder=$(lease pushy)
pid=$(pgrep -P "$RUN_PID" -f mailpipe-fetcher | while read -r p; do
	tr '\0' '\n' </proc/$p/environ | grep -qx "MAILPIPE_CONSUMER=$holder" && echo "$p"; done | head -1)
check "found the watching fetcher ($holder)" [ -n "$pid" ]
kill -9 "$pid"
# The supervisor restarts the killed fetcher under the same consumer name, so either it or
# the other fetcher may hold the lease next; what matters is that someone does and push works.
# The old lease lapses within 15 s; whoever holds it then must be alive.
sleep 16
check "the lease is held again after the kill" wait_lease pushy
now=$(lease pushy)
alive=$(pgrep -P "$RUN_PID" -f mailpipe-fetcher | while read -r p; do
	tr '\0' '\n' </proc/$p/environ | grep -qx "MAILPIPE_CONSUMER=$now" && echo "$p"; done | head -1)
check "a live fetcher holds it ($now)" [ -n "$alive" ]
out=$(python3 "$ROOT/tests/integration/push_append.py" 127.0.0.1 "$MP_IMAP_PORT" demo demo pushy 3 15)
check "push works again after the watching fetcher was killed" [ $? -eq 0 ]
verify pushy
check "no entry left pending in Redis" no_pending
finish
