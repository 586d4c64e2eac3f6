#!/usr/bin/env bash
# The writer makes its plans again as its tables grow (writer/main.c, replan_when_due).
# PostgreSQL keeps a connection's plans, the foreign-key checks' among them, until a VACUUM or
# ANALYZE of their tables drops them; one made while a table is small reads the table whole on
# every use as it grows. A database whose accounts were removed and vacuumed is in that state:
# its tables are "known empty" (reltuples 0) until autovacuum analyzes them again, up to a
# minute later, so a first sync then checked each message's conversation by a sequential scan
# of conversations. Here, with one `mailpipe run` throughout (its writer stays connected):
#  1. account a is synced, removed, and its tables vacuumed: conversations is known empty;
#  2. account b's first sync (2,000 messages, batches of 100): the writer, meeting an account
#     new to it, made its plans again after b's 1st, 2nd, 4th, 8th and 16th batches, and
#     conversations was read by sequential scans a few dozen rows a message (23 to 66), not
#     whole for every check of its rows (1,126 a message with no replanning, 2.2 million rows;
#     with the schedule counted only from the connection, the first replan came after b's
#     12th batch);
#  3. b's rows are right.
# Autovacuum is off on conversations, so that no ANALYZE of its own replans meanwhile.
export MAILPIPE_WRITER_BATCH=100 MAILPIPE_LOG=debug
. "$(dirname "$0")/lib.sh"
stack_up 2000 11

sql "ALTER TABLE conversations SET (autovacuum_enabled = off)" >/dev/null

# 1. An account synced, removed, vacuumed away, the writer running throughout.
add_account a
run_start
mailpipe sync a --wait --timeout 120 >/dev/null
check "account a's first sync ends ok" [ $? -eq 0 ]
mailpipe account remove a >/dev/null
check "account a removed" [ "$(sql "SELECT count(*) FROM messages")" = 0 ]
sql "VACUUM conversations, conversation_keys, messages, message_locations" >/dev/null
check "conversations is known empty after VACUUM (reltuples 0)" \
	[ "$(sql "SELECT reltuples FROM pg_class WHERE relname = 'conversations'")" = 0 ]

# 2. Another account's first sync into it.
seq_read() { # rows read by sequential scans of conversations so far (reported at backend exit)
	sql "SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = 'conversations'"
}
before=$(seq_read)
add_account b
from=$(($(wc -l <"$RUN_LOG") + 1))
mailpipe sync b --wait --timeout 120 >"$MAILPIPE_STACK_DIR/summary-b.json"
check "account b's first sync ends ok" [ $? -eq 0 ]
run_stop
sleep 1 # the backends report their statistics when they exit
convs=$(sql "SELECT count(*) FROM conversations WHERE account_id = (SELECT id FROM accounts WHERE name = 'b')")
msgs=$(sql "SELECT count(*) FROM messages WHERE account_id = (SELECT id FROM accounts WHERE name = 'b')")
read=$(($(seq_read) - before))
echo "  $msgs messages, $convs conversations; $read conversation rows read by sequential scans"
replans=$(tail -n +"$from" "$RUN_LOG" | grep 'msg="plans discarded' | sed 's/.*batches=\([0-9]*\) .*/\1/' | tr '\n' ' ')
# (more batches when the writer outruns the parser and reads fewer than 100: 32 and on too)
check "the writer made its plans again after b's batches 1 2 4 8 16 (after: $replans)" \
	[ "${replans#1 2 4 8 16 }" != "$replans" ]
# 23 to 66 rows a message with the replanning (66 in a loaded `make check`: smaller batches
# when the writer outruns the parser keep a small table's plan a batch longer); 458 with the
# schedule counted only from the connection, 1,126 with none.
check "conversations was not read whole for each message ($read rows by sequential scans, at most 200 for each of $msgs messages)" \
	[ "$read" -le $((200 * msgs)) ]

# 3. The rows.
verify b --summary "$MAILPIPE_STACK_DIR/summary-b.json"
check "every message of b has its search vector" vectors_right b
check "no entry left pending in Redis" no_pending
finish
