#!/usr/bin/env bash
# Invariant 6: bad input never stops the pipeline. A message that crashes the parser (fault
# injection) three times goes to {mp}:dead and is still stored, unparsed, with parse_error; the
# messages around it are unaffected; malformed mail from the sample is stored with parse_error.
. "$(dirname "$0")/lib.sh"
stack_up 60 5
export MAILPIPE_FAULT_PARSER_ABORT=MAILPIPE-CRASH-ME
printf 'From: a@example.org\r\nTo: demo@example.org\r\nSubject: poison\r\nMessage-ID: <poison@x>\r\n\r\nMAILPIPE-CRASH-ME\r\n' |
	doveadm -c "$MP_DOVECOT_CONF" save -u demo -m INBOX
add_account dl
run_start
out=$MAILPIPE_STACK_DIR/summary.json
mailpipe sync dl --wait --timeout 120 >"$out"
check "sync completes despite a parser-killing message" [ $? -eq 0 ]
verify dl --summary "$out"
check "the poison message is stored unparsed with parse_error" \
	[ "$(sql "SELECT count(*) FROM messages WHERE parse_error LIKE 'parser failed repeatedly%' AND raw IS NOT NULL AND position('MAILPIPE-CRASH-ME' in convert_from(raw, 'UTF8')) > 0")" = 1 ]
check "one entry in the dead-letter stream" [ "$(redis-cli -p "$MP_REDIS_PORT" XLEN '{mp}:dead')" = 1 ]
check "the parser crashed exactly three times" [ "$(grep -c 'child=parser.*signal=6' "$RUN_LOG")" = 3 ]
check "no other message was dead-lettered" \
	[ "$(sql "SELECT count(*) FROM messages WHERE parse_error LIKE 'parser failed repeatedly%'")" = 1 ]
check "malformed sample mail is stored with parse_error" \
	[ "$(sql "SELECT count(*) FROM messages WHERE parse_error IS NOT NULL AND parse_error NOT LIKE 'parser failed%'")" -ge 1 ]
check "no entry left pending in Redis" no_pending
grep -E "child=parser|dead|level=error" "$RUN_LOG" | head -10
finish
