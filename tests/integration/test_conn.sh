#!/usr/bin/env bash
# Issue 9, one connection per account: a fetcher logs in once and runs the account's folder
# jobs on that connection in turn, keeps it between syncs, and lends it from the IDLE watch
# (which IDLEs between jobs). Counted in Dovecot's own log of logins. Also: when the server
# drops the kept connections (doveadm kick, as an autologout or a restart would), the next
# sync logs in again at once and ends exact.
export MAILPIPE_IDLE=1 MAILPIPE_FETCHERS=1
. "$(dirname "$0")/lib.sh"
export MAILPIPE_LOG=info # the log must name a dropped connection
stack_up 60 21
metrics_on
add_account solo
run_start
DOVE_LOG=$MAILPIPE_STACK_DIR/dovecot/info.log
logins() { grep -c 'imap-login: Info: Login: user=<demo>' "$DOVE_LOG"; }

mailpipe sync solo --wait --timeout 60 >/dev/null
check "first sync" [ $? -eq 0 ]
folders=$(sql "SELECT count(*) FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = 'solo'")
first=$(logins)
# One for the jobs; the IDLE watch may log in once more if it opened before a job handed it
# the connection. A connection per job would be one per folder and one for the list.
check "first sync of $folders folders logged in $first time(s), at most twice" [ "$first" -le 2 ]
# The watch is up and holds the account's connection.
for _ in $(seq 100); do
	[ -n "$(idle_lease solo)" ] && break
	sleep 0.1
done
settled=$(logins)
for i in 1 2 3; do
	mailpipe sync solo --wait --timeout 60 >/dev/null || fail "no-change sync $i"
done
check "three more syncs of every folder logged in no more ($settled, then $(logins))" [ "$(logins)" -eq "$settled" ]

out=$(python3 "$ROOT/tests/integration/push_append.py" 127.0.0.1 "$MP_IMAP_PORT" demo demo solo 3 15)
check "push still works on the connection the jobs borrow" [ $? -eq 0 ]
echo "  $out" | tail -1
# push_append logs in itself (it appends as a mail client would): its own logins are not ours.
before_kick=$(logins)

# An account without IDLE keeps its connection parked between jobs.
add_account still --no-idle
mailpipe sync still --wait --timeout 60 >/dev/null || fail "first sync of still"
before_kick=$(logins)
mailpipe sync still --wait --timeout 60 >/dev/null || fail "second sync of still"
check "a parked connection serves the next sync of an account without IDLE" [ "$(logins)" -eq "$before_kick" ]

doveadm -c "$MP_DOVECOT_CONF" kick demo >/dev/null 2>&1
check "doveadm kicked our connections" [ $? -eq 0 ]
sleep 0.5
for acc in still solo; do
	mailpipe sync $acc --wait --timeout 60 >/dev/null
	check "$acc: the sync after the server dropped every kept connection succeeds" [ $? -eq 0 ]
done
check "... by logging in again ($before_kick, then $(logins))" [ "$(logins)" -gt "$before_kick" ]
grep -q 'kept connection gone' "$RUN_LOG"
check "the dropped parked connection is logged and logged in again, not a job failure" [ $? -eq 0 ]
n=$(grep -c 'kept connection gone' "$RUN_LOG")
kept=$(stage_metric fetcher 'mailpipe_imap_reconnects_total{kind="kept"}')
check "the fetcher's metrics count each such login again as kind=\"kept\" (${kept:-none}, logged $n)" \
	[ "${kept:-0}" = "$n" ]
check "no folder failed" [ "$(sql "SELECT count(*) FROM email_folders WHERE last_error IS NOT NULL")" = 0 ]
verify solo
verify still
check "no entry left pending in Redis" no_pending
finish
