#!/usr/bin/env bash
# The writer reads its next batch ahead (writer/batch.c): once a batch's COPY is sent, it reads
# the next one and starts its search vectors while it finishes the first. On a bad day:
#  1. the writer's main database connection is terminated again and again during a
#     2,000-message sync, so batches read ahead are in hand, unacknowledged, when their
#     predecessor's transaction dies: the writer drops them, re-reads its pending entries, and
#     the sync ends exact, every vector right, nothing doubled, nothing pending;
#  2. with MAILPIPE_WRITER_READ_AHEAD=0 a second account gets the same rows;
#  3. a batch retried (as after a deadlock, MAILPIPE_FAULT_WRITER_RETRY) after its COPY, while
#     the next batch's vectors are under way: the retry takes the search connection back (it
#     had waited for ever on vectors the connection was never asked for);
#  4. a COPY the server rejects (a trigger of the test's refuses one message's row): the next
#     batch is read ahead while the server finishes a COPY, so it is already in hand, its
#     vectors under way, when the batch goes message by message; the sync ends the same;
#  5. Redis drops the writer's connection while it reads ahead inside a COPY, before the read
#     and between the entries and their raw bytes (MAILPIPE_FAULT_WRITER_AHEAD): the batch
#     being stored commits, the writer reconnects and re-reads what it was given, and the sync
#     ends the same, nothing lost, nothing doubled, nothing left in Redis.
# (test_crash.sh kills the writer with SIGKILL mid-sync, reading ahead as it does by default.)
export MAILPIPE_WRITER_BATCH=100 MAILPIPE_LOG=debug # batches of 100: many read ahead
. "$(dirname "$0")/lib.sh"
stack_up 2000 11

# 1. The main connection terminated again and again.
add_account a
run_start
sync_under_terminations a 'mailpipe writer' 0.25 "the writer's main connection"
out=$MAILPIPE_STACK_DIR/summary-a.json
check "the writer reconnected and re-read its pending entries" \
	grep -q 're-reading own pending entries' "$RUN_LOG"
read_ahead() { # batch timing lines of the run log from line $1 on that read the next batch
	tail -n +"$1" "$RUN_LOG" | grep 'msg="batch timing"' | grep -E ' ahead_ms=[0-9.]+ ' |
		grep -v ' ahead_ms=0.0 ' | grep -vc 'entries=0 '
}
ahead=$(read_ahead 1)
check "batches were read ahead ($ahead batches read the next one)" [ "$ahead" -ge 5 ]
verify a --summary "$out"
check "every message has its search vector, as mp_search_vector computes it" vectors_right a
check "no entry left pending in Redis" no_pending
run_stop

# sync_with ACCOUNT VAR=VALUE WHAT: a new ACCOUNT's first sync by a `mailpipe run` started with
# that setting (within 120 s), checked ok as WHAT; from is the run log's first line of it.
sync_with() {
	add_account "$1"
	from=$(($(wc -l <"$RUN_LOG") + 1))
	export "$2"
	run_start
	unset "${2%%=*}"
	mailpipe sync "$1" --wait --timeout 120 >"$MAILPIPE_STACK_DIR/summary-$1.json"
	check "$3" [ $? -eq 0 ]
	run_stop
}

# 2. Without reading ahead: the same rows.
sync_with b MAILPIPE_WRITER_READ_AHEAD=0 "with MAILPIPE_WRITER_READ_AHEAD=0 the sync ends ok"
n=$(read_ahead "$from")
check "and no batch was read ahead ($n)" [ "$n" -eq 0 ]
check "the rows are the same as with reading ahead" same_message_rows a b 1500
verify b --summary "$MAILPIPE_STACK_DIR/summary-b.json"

# 3. Batches retried while the next one's vectors are under way.
sync_with d MAILPIPE_FAULT_WRITER_RETRY=5 "the sync ends ok with batches retried after their COPY"
n=$(tail -n +"$from" "$RUN_LOG" | grep -c 'fault injected: batch retried')
check "five batches were retried while the next was read ahead ($n)" [ "$n" -eq 5 ]
check "the rows are the same as without retries" same_message_rows a d 1500
verify d --summary "$MAILPIPE_STACK_DIR/summary-d.json"
check "every message of d has its vector" vectors_right d
check "no entry left pending in Redis" no_pending

# 4. A COPY rejected while the next batch is read ahead.
sql "CREATE TABLE test_poison AS SELECT subject FROM (
	SELECT subject, count(*) OVER () AS n, row_number() OVER (ORDER BY min(id)) AS k FROM messages
	WHERE account_id = (SELECT id FROM accounts WHERE name = 'a') AND subject <> ''
	GROUP BY subject HAVING count(*) = 1) s WHERE k = n / 2" >/dev/null
subject=$(sql "SELECT subject FROM test_poison")
check "a subject of one message, half way through the mailbox, to refuse ('$subject')" [ -n "$subject" ]
sql "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS \$f\$
	BEGIN
		IF NEW.account_id = (SELECT id FROM accounts WHERE name = 'e')
		   AND NEW.subject IN (SELECT p.subject FROM test_poison p) THEN
			RAISE EXCEPTION 'test refuses the row of its subject';
		END IF;
		RETURN NEW;
	END \$f\$;
	CREATE TRIGGER test_refuse BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION test_refuse()" >/dev/null
sync_with e MAILPIPE_LOG=debug "the sync ends ok although the server rejects one row of a COPY ('$subject')"
check "that batch went message by message" \
	[ "$(tail -n +"$from" "$RUN_LOG" | grep -c 'retrying message by message')" -ge 1 ]
# The writer's own lines only: the other stages write to the same log at the same time. The
# refused message is half way through the mailbox, when the parser is far ahead of the writer.
check "with the next batch read ahead before the server's answer to its COPY" bash -c "
	tail -n +$from '$RUN_LOG' | grep ' stage=writer ' |
		grep -B1 'copy messages: test refuses the row' | grep -q 'next batch read ahead'"
n=$(read_ahead "$from")
check "batches were read ahead meanwhile ($n)" [ "$n" -ge 5 ]
check "the refused message is stored unparsed, parse_error naming the refusal" [ "$(sql "
	SELECT count(*) FROM messages WHERE account_id = (SELECT id FROM accounts WHERE name = 'e')
	  AND subject IS NULL AND parse_error LIKE '%test refuses the row of its subject%'")" = 1 ]
sql "DROP TRIGGER test_refuse ON messages" >/dev/null
check "every other row is the same as the first account's" same_message_rows a e 1500 \
	"m.subject IS NOT NULL AND m.subject IS DISTINCT FROM (SELECT subject FROM test_poison)"
verify e --summary "$MAILPIPE_STACK_DIR/summary-e.json"
check "every message of e has its vector" vectors_right e
check "no entry left pending in Redis" no_pending

# 5. Redis drops the writer's connection while it reads ahead inside a COPY (every batch of a
#    first sync has new rows, so its read ahead comes between the COPY's end and the server's
#    answer): before the read (the batch being stored commits, then its change notices fail,
#    so it is not acknowledged) and between the entries read ahead and their raw bytes
#    (entries delivered to the writer, nothing stored of them). The writer reconnects and
#    reads its own pending entries first. Its metrics count Redis errors, not database ones.
export MAILPIPE_LOG=debug # part 4's sync_with unset it
add_account f
from=$(($(wc -l <"$RUN_LOG") + 1))
mbase=$((28000 + ($$ % 190) * 10)) # below the ephemeral ports, above lib.sh's stack ports
export MAILPIPE_FAULT_WRITER_AHEAD=4 MAILPIPE_METRICS_ADDR=127.0.0.1:$mbase-$((mbase + 9))
run_start
unset MAILPIPE_FAULT_WRITER_AHEAD MAILPIPE_METRICS_ADDR
mailpipe sync f --wait --timeout 120 >"$MAILPIPE_STACK_DIR/summary-f.json"
check "the sync ends ok although Redis dropped the writer's connection four times" [ $? -eq 0 ]
waddr=$(tail -n +"$from" "$RUN_LOG" | sed -n 's/.* stage=writer addr=\([0-9.:]*\) msg="serving metrics at.*/\1/p' | head -1)
curl -s --max-time 5 "http://$waddr/metrics" >"$MAILPIPE_STACK_DIR/writer-f.prom"
run_stop
metric() { awk -v k="$1" '$1 == k {print $2}' "$MAILPIPE_STACK_DIR/writer-f.prom"; }
n=$(metric 'mailpipe_errors_total{kind="redis"}')
check "the writer's metrics count the Redis errors (${n:-none}, at least 4)" [ "${n:-0}" -ge 4 ]
n=$(metric 'mailpipe_errors_total{kind="database"}')
check "and no database error (${n:-none})" [ "$n" = 0 ]
log_f() { tail -n +"$from" "$RUN_LOG" | grep ' stage=writer '; }
n=$(log_f | grep -c 'fault injected: Redis connection dropped before reading ahead inside a COPY')
check "twice before reading ahead inside a COPY ($n)" [ "$n" -eq 2 ]
n=$(log_f | grep -c 'fault injected: Redis connection dropped inside a COPY, between the entries read ahead')
check "twice inside a COPY, between the entries read ahead and their raw bytes ($n)" [ "$n" -eq 2 ]
# The COPY was the server's to answer then: each fault is followed by that batch committing
# (its notices failing on the dropped connection), not by the batch failing.
n=$(log_f | grep -A4 'fault injected: Redis' | grep -c 'not stored at once\|copy messages:')
check "no batch failed its COPY for it ($n)" [ "$n" -eq 0 ]
n=$(log_f | grep -c 'change notices not published')
check "the change notices of the batches being stored failed ($n), so they were not acknowledged and came back" [ "$n" -ge 2 ]
check "the rows are the same as the first account's" same_message_rows a f 1500
verify f --summary "$MAILPIPE_STACK_DIR/summary-f.json"
check "every message of f has its vector" vectors_right f
check "no entry left pending in Redis" no_pending
check "no raw message left in {mp}:raw" [ "$(redis-cli -p "$MP_REDIS_PORT" XLEN '{mp}:raw')" = 0 ]
finish
