#!/usr/bin/env bash
# A message larger than MAILPIPE_MAX_MESSAGE_BYTES must not fail its folder on every sync
# (invariant 5 with 6): the fetcher asks the sizes first, fetches only the header of such a
# message, and it is stored with parse_error naming its size; every other message is whole.
. "$(dirname "$0")/lib.sh"
stack_up 300 4
export MAILPIPE_MAX_MESSAGE_BYTES=65536
add_account big
run_start
out=$MAILPIPE_STACK_DIR/summary.json
mailpipe sync big --wait --timeout 120 >"$out"
check "sync completes with messages over the size limit" [ $? -eq 0 ]
over=$(doveadm -c "$MP_DOVECOT_CONF" fetch -u demo 'size.physical' mailbox '*' all |
	awk '/^size.physical:/ && $2 + 4096 > 65536 { n++ } END { print n + 0 }')
check "the sample has messages over the limit ($over)" [ "$over" -ge 1 ]
check "each is stored with parse_error naming its size" \
	[ "$(sql "SELECT count(*) FROM message_locations l JOIN messages m ON m.id = l.message_id WHERE m.parse_error LIKE 'message of % bytes is over MAILPIPE_MAX_MESSAGE_BYTES%' AND m.size > 61440")" = "$over" ]
total=$(doveadm -c "$MP_DOVECOT_CONF" mailbox status -u demo messages '*' | awk -F= '{ n += $2 } END { print n }')
check "every server message has a location ($total)" [ "$(sql "SELECT count(*) FROM message_locations")" = "$total" ]
check "no entry left pending in Redis" no_pending
finish
