#!/usr/bin/env bash
# Issue 11: one fetcher process drives several accounts' connections at once. A lone fetcher
# with 4 lanes (MAILPIPE_FETCHER_LANES) first-syncs four accounts: at some moment its lanes
# hold jobs of at least three different accounts together (the raw budget pauses each job
# mid-way, so a lane that holds one keeps it a while); each account still logs in once, since
# two lanes never run one account's jobs together (the second queues its job again and the
# account's connection passes from job to job); every account ends exact, nothing pending.
# The local Dovecot runs its login processes in the performance mode the scale bench uses
# (MP_DOVECOT_LOGIN): the four kept connections share its few imap-login processes.
export MAILPIPE_FETCHERS=1 MAILPIPE_FETCHER_LANES=4 MP_DOVECOT_LOGIN=performance
. "$(dirname "$0")/lib.sh"
stack_up 1200 23
export MAILPIPE_RAW_BUDGET=300
DOVE_LOG=$MAILPIPE_STACK_DIR/dovecot/info.log
logins() { grep -c 'imap-login: Info: Login: user=<demo>' "$DOVE_LOG"; }
rcli() { redis-cli -p "$MP_REDIS_PORT" "$@"; }

for a in la lb lc ld; do add_account "$a"; done
run_start
l0=$(logins)
pids=
for a in la lb lc ld; do
	mailpipe sync "$a" --wait --timeout 170 >"$MAILPIPE_STACK_DIR/summary-$a.json" &
	pids="$pids $!"
done

# Which accounts the fetcher's consumers hold jobs of right now: XINFO CONSUMERS gives each
# lane's pending count, XPENDING each entry's consumer; the jobs name their account.
held_accounts() {
	local key ids
	for key in '{mp}:jobs' '{mp}:jobs:first'; do
		rcli XPENDING "$key" fetchers - + 100 | awk 'NR % 4 == 1' | while read -r id; do
			rcli XRANGE "$key" "$id" "$id" | grep -o '"account_id" *: *[0-9]*' | head -1
		done
	done | sort -u | wc -l
}
lanes_seen=$MAILPIPE_STACK_DIR/lanes.max
echo 0 >"$lanes_seen"
watch_lanes() {
	local n max=0
	while [ ! -e "$lanes_seen.stop" ]; do
		n=$(held_accounts)
		[ "$n" -gt "$max" ] && max=$n && echo "$max" >"$lanes_seen"
		sleep 0.05
	done
}
watch_lanes &
watcher=$!
ok=0
for p in $pids; do wait "$p" || ok=1; done
touch "$lanes_seen.stop"
wait "$watcher"
check "four accounts synced at once by one fetcher" [ "$ok" -eq 0 ]
most=$(cat "$lanes_seen")
check "its lanes held jobs of several accounts at once (at most $most seen together)" [ "$most" -ge 3 ]
lanes=$(rcli XINFO CONSUMERS '{mp}:jobs:first' fetchers | grep -c '^fetcher-.*\.[0-9]*$')
check "lanes beyond the first read jobs under their own consumer names ($lanes seen)" [ "$lanes" -ge 1 ]
n=$(($(logins) - l0))
check "each account logged in once: 4 logins for 4 accounts (Dovecot saw $n)" [ "$n" -eq 4 ]
for a in la lb lc ld; do verify "$a" --summary "$MAILPIPE_STACK_DIR/summary-$a.json"; done
logins_procs=$(pgrep -c -P "$(cat "$MAILPIPE_STACK_DIR/dovecot/run/master.pid")" imap-login || true)
imaps=$(ss -Htn state established "( sport = :$MP_IMAPS_PORT )" | wc -l)
shared() { [ "$imaps" -ge 4 ] && [ "$logins_procs" -ge 1 ] && [ "$logins_procs" -le "$(nproc)" ]; }
check "Dovecot's performance login mode: $imaps kept TLS connections share $logins_procs imap-login processes" shared
check "no entry left pending in Redis" no_pending
finish
