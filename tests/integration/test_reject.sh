#!/usr/bin/env bash
# Invariant 6 at the writer: a message the database refuses in its parsed form (a value the
# schema cannot hold, a constraint a DBA added) is stored unparsed, with parse_error naming the
# refusal, so that the folder's cursor passes it and the sync completes with nothing lost. The
# refusal is a real trigger in the real PostgreSQL, on one message's Message-ID.
. "$(dirname "$0")/lib.sh"
stack_up 300 6
add_account rej
file=$(grep -l -m1 '^Message-ID: <' "$MAILPIPE_STACK_DIR"/mail/demo/Maildir/cur/* | head -1)
mid=$(grep -m1 '^Message-ID:' "$file" | sed 's/^[^<]*<\([^>]*\)>.*$/\1/')
sql "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN RAISE EXCEPTION 'test refuses %', NEW.message_id; END \$\$;
     CREATE TRIGGER test_refuse BEFORE INSERT ON messages FOR EACH ROW
	WHEN (NEW.message_id = '$mid' AND NEW.parse_error IS NULL) EXECUTE FUNCTION test_refuse()" >/dev/null
run_start
out=$MAILPIPE_STACK_DIR/summary.json
mailpipe sync rej --wait --timeout 120 >"$out"
check "the sync completes although the database refuses one message ($mid)" [ $? -eq 0 ]
verify rej --summary "$out"
check "that message is stored unparsed, with parse_error naming the refusal" [ "$(sql "
	SELECT count(*) FROM messages WHERE message_id IS NULL
	  AND parse_error = 'stored unparsed: the database rejected the parsed message (test refuses $mid)'")" = 1 ]
check "every other message is stored parsed" [ "$(sql "SELECT count(*) FROM messages WHERE parse_error LIKE 'stored unparsed%'")" = 1 ]
check "the writer's log names its account, folder and uid" \
	grep -qE 'account_id=[0-9]+ folder_id=[0-9]+ uid=[0-9]+ msg="the database rejected the parsed message' "$RUN_LOG"
check "no entry left pending in Redis" no_pending
finish
