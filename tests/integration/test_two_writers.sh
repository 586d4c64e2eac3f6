#!/usr/bin/env bash
# Writers scale out: two writers (and two parsers) sharing the streams produce the same
# database as one writer. The same mailbox is synced into two accounts, once with each set-up,
# and everything a user sees is compared: messages, locations, folder counts, the grouping of
# conversations and their counts, contacts.
. "$(dirname "$0")/lib.sh"
stack_up 1500 9
add_account one
add_account two
export MAILPIPE_WRITER_BATCH=40

MAILPIPE_WRITERS=1 MAILPIPE_PARSERS=1 run_start
mailpipe sync one --wait --timeout 180 >/dev/null
check "sync with one writer" [ $? -eq 0 ]
run_stop

MAILPIPE_WRITERS=2 MAILPIPE_PARSERS=2 run_start
mailpipe sync two --wait --timeout 180 >/dev/null
check "sync with two writers" [ $? -eq 0 ]
check "both writers took part" [ "$(redis-cli -p "$MP_REDIS_PORT" XINFO CONSUMERS '{mp}:parsed' writers | grep -c '^writer-')" = 2 ]

view() { # everything a user reads for one account, without ids
	sql "WITH a AS (SELECT id FROM accounts WHERE name = '$1')
	SELECT 'm', content_sha256, coalesce(subject, ''), coalesce(body_clean, ''), direction FROM messages, a WHERE account_id = a.id
	UNION ALL SELECT 'l', f.name, l.uid::text, l.flags::text, m.content_sha256 FROM message_locations l
	  JOIN email_folders f ON f.id = l.folder_id JOIN messages m ON m.id = l.message_id, a WHERE f.account_id = a.id
	UNION ALL SELECT 'f', name, message_count::text, unread_count::text, last_uid::text FROM email_folders, a WHERE account_id = a.id
	UNION ALL SELECT 'c', string_agg(m.content_sha256, ',' ORDER BY m.content_sha256), max(c.message_count)::text,
	  max(c.unread_count)::text, coalesce(max(c.display_name), '') FROM messages m JOIN conversations c ON c.id = m.conversation_id, a
	  WHERE m.account_id = a.id GROUP BY c.id
	UNION ALL SELECT 'p', lower(email), coalesce(name, ''), message_count::text, first_seen_at::text FROM contacts, a WHERE account_id = a.id
	ORDER BY 1, 2, 3, 4, 5" | md5sum
}
check "the database is the same with two writers as with one" [ "$(view one)" = "$(view two)" ]
# Several accounts at once: the writers' batches mix them, and each batch locks its accounts
# in one order, so neither writer waits on the other in a cycle or on one global lock.
add_account three
add_account four
mailpipe sync three --wait --timeout 180 >/dev/null &
p3=$!
mailpipe sync four --wait --timeout 180 >/dev/null
r4=$?
wait "$p3"
r3=$?
check "two accounts synced at once with two writers" [ "$r3.$r4" = "0.0" ]
check "each is the same database as one account alone" \
	[ "$(view three) $(view four)" = "$(view one) $(view one)" ]
check "no deadlock was detected" \
	bash -c "! grep -q 'deadlock' '$RUN_LOG' '$MAILPIPE_STACK_DIR/pg/postgres.log'"
check "conversations were built" [ "$(sql "SELECT count(*) FROM conversations")" -gt 100 ]
check "contacts were built" [ "$(sql "SELECT count(*) FROM contacts")" -gt 10 ]
check "the writer never fell back from its batch path" bash -c "! grep -q 'retrying message by message' '$RUN_LOG'"
finish
