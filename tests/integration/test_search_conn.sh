#!/usr/bin/env bash
# The writer's second connection (writer/search.c), on which a thread computes the search
# vectors of new messages while the first connection writes them, on its bad days:
#  1. its backend is terminated again and again during a 2,000-message sync: the batches it
#     served are retried, and nothing is lost, doubled, or stored without its vector;
#  2. MAILPIPE_WRITER_SEARCH_CONN=0: the main connection computes them, with the same rows; and
#     the same when the second connection cannot be had (the database takes no new ones);
#  3. the server refuses one message's vector: that message is stored unparsed (invariant 6)
#     and the sync ends, rather than the batch being retried for ever;
# and rows without a vector, as a writer older than migration 014 inserts them, are filled.
. "$(dirname "$0")/lib.sh"
stack_up 2000 7
export MAILPIPE_WRITER_BATCH=100 # more batches, so terminations land inside them
helpers() { sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mailpipe writer search'"; }

# 1. Terminated again and again.
add_account a
run_start
sync_under_terminations a 'mailpipe writer search' 0.1 "the search connection"
out=$MAILPIPE_STACK_DIR/summary-a.json
check "the writer met the terminations and carried on" grep -q 'search vectors: .*terminat' "$RUN_LOG"
check "each batch it served was retried whole, none stored message by message" \
	bash -c "! grep -q 'retrying message by message' '$RUN_LOG'"
verify a --summary "$out"
check "every message has its search vector, as mp_search_vector computes it" vectors_right a
check "no entry left pending in Redis" no_pending
run_stop

# A writer older than migration 014 (in a rolling upgrade) inserts rows without a vector: the
# next writer to start fills them.
sql "UPDATE messages SET search = NULL WHERE id IN (SELECT id FROM messages
	WHERE account_id = (SELECT id FROM accounts WHERE name = 'a') ORDER BY id LIMIT 5)" >/dev/null

# 2. No second connection.
add_account b
MAILPIPE_WRITER_SEARCH_CONN=0 run_start
out=$MAILPIPE_STACK_DIR/summary-b.json
mailpipe sync b --wait --timeout 300 >"$out"
check "with MAILPIPE_WRITER_SEARCH_CONN=0 the sync ends ok" [ $? -eq 0 ]
check "and the writer opens no search connection" [ "$(helpers)" = 0 ]
verify b --summary "$out"
check "the main connection computes the same vectors: the rows equal the first account's" same_message_rows a b 1500
check "the writer filled the five vectors an older writer would have left out" vectors_right a
check "and said so" grep -q 'rows=5 msg="filled search vectors missing' "$RUN_LOG"
run_stop

# 2b. No second connection to be had: the database takes no new connection (ALLOW_CONNECTIONS
# false) while a sync asked for through {mp}:requests runs; the writer, whose main connection is
# open, says so and computes the vectors on it.
add_account d
run_start
for _ in $(seq 100); do # the scheduler's two connections and the writer's main one are open
	[ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
		AND pid <> pg_backend_pid()")" -ge 3 ] && break
	sleep 0.1
done
sleep 1
admin_url=${MAILPIPE_DATABASE_URL%/*}/postgres
db=${MAILPIPE_DATABASE_URL##*/}
db=${db%%\?*}
psql "$admin_url" -XAtqc "ALTER DATABASE $db ALLOW_CONNECTIONS false"
redis-cli -p "$MP_REDIS_PORT" XADD '{mp}:requests' '*' account d request_id sc-2b >/dev/null
finished() { redis-cli -p "$MP_REDIS_PORT" XRANGE '{mp}:changes' - + | grep -A1 -x request_id | grep -qx sc-2b; }
for _ in $(seq 1200); do finished && break; sleep 0.1; done
psql "$admin_url" -XAtqc "ALTER DATABASE $db ALLOW_CONNECTIONS true"
check "the sync asked for while the database took no new connection ended" finished
check "and the writer opened no search connection" [ "$(helpers)" = 0 ]
check "it said why, in one line" grep -q 'msg="no second database connection for search vectors: the main one computes them' "$RUN_LOG"
check "the run ended ok" [ "$(sql "SELECT string_agg(status, ',') FROM sync_runs
	WHERE account_id = (SELECT id FROM accounts WHERE name = 'd')")" = ok ]
verify d
check "every message has its search vector, computed on the main connection" vectors_right d
run_stop

# 3. A vector the server refuses: the function is replaced by one that raises on one subject
# (of a message stored once in the first account, kept in a table of the test's).
sql "CREATE TABLE test_poison AS SELECT subject FROM messages
	WHERE account_id = (SELECT id FROM accounts WHERE name = 'a') AND subject <> ''
	GROUP BY subject HAVING count(*) = 1 ORDER BY subject LIMIT 1" >/dev/null
subject=$(sql "SELECT subject FROM test_poison")
sql "CREATE OR REPLACE FUNCTION mp_search_vector(subject text, from_name text, from_email text, body text)
	RETURNS tsvector LANGUAGE plpgsql IMMUTABLE AS \$f\$
	BEGIN
		IF subject IN (SELECT p.subject FROM test_poison p) THEN
			RAISE EXCEPTION 'test refuses the vector of its subject';
		END IF;
		RETURN setweight(to_tsvector('simple', coalesce(subject, '')), 'A') ||
			setweight(to_tsvector('simple', coalesce(from_name, '') || ' ' || coalesce(from_email, '')), 'B') ||
			setweight(to_tsvector('simple', left(coalesce(body, ''), 200000)), 'C');
	END \$f\$" >/dev/null
add_account c
run_start
out=$MAILPIPE_STACK_DIR/summary-c.json
timeout 300 mailpipe sync c --wait --timeout 240 >"$out"
check "the sync ends ok although the server refuses one message's vector ('$subject')" [ $? -eq 0 ]
verify c --summary "$out"
check "that message is stored unparsed, parse_error naming the refusal" [ "$(sql "
	SELECT count(*) FROM messages WHERE account_id = (SELECT id FROM accounts WHERE name = 'c')
	  AND subject IS NULL AND parse_error LIKE 'stored unparsed: %test refuses the vector of its subject%'")" = 1 ]
check "every other message is stored parsed, with its vector" [ "$(sql "
	SELECT count(*) FROM messages WHERE account_id = (SELECT id FROM accounts WHERE name = 'c')
	  AND (parse_error LIKE 'stored unparsed%' OR search IS NULL)")" = 1 ]
check "its batch went message by message" [ "$(grep -c 'retrying message by message' "$RUN_LOG")" -ge 1 ]
check "no entry left pending in Redis" no_pending
finish
