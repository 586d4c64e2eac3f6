#!/usr/bin/env bash
# Issue 11, past one Postgres: the per-account tables run under PARTITION BY HASH (account_id),
# whose key rule is Citus's (every primary key and unique constraint contains account_id,
# foreign keys between them carry it). One account is synced on the ordinary schema, then
# `mailpipe db migrate --partitions 4` rebuilds the tables partitioned with its rows in them,
# and the whole pipeline runs on them: a second account's first sync, verify.py for both, a
# no-change sync that rewrites nothing, and a mail client's flag changes, expunges and moves.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mirror_lib.sh"
stack_up 200 7
TABLES="'email_folders','conversations','messages','message_locations','contacts','sync_runs','sync_run_folders','conversation_keys'"

add_account p1
run_start
mailpipe sync p1 --wait --timeout 120 >/dev/null
check "first account syncs on the ordinary schema" [ $? -eq 0 ]
run_stop
# What conversion must keep: every message, location, conversation and folder row by id.
rows() {
	sql "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
	  SELECT 'm' || m.id || m.content_sha256 || coalesce(m.conversation_id, 0) AS x FROM messages m
	  UNION ALL SELECT 'l' || l.id || l.account_id || l.message_id || l.folder_id || l.uid || l.flags::text FROM message_locations l
	  UNION ALL SELECT 'c' || c.id || c.message_count || c.unread_count FROM conversations c
	  UNION ALL SELECT 'k' || k.key || k.conversation_id FROM conversation_keys k
	  UNION ALL SELECT 'f' || f.id || f.name || f.last_uid FROM email_folders f
	  UNION ALL SELECT 'r' || s.run_id || s.folder_id || s.status FROM sync_run_folders s) s"
}
before=$(rows)
out=$(mailpipe db migrate --partitions 4 2>&1)
check "db migrate --partitions 4 converts the eight per-account tables" \
	[ "$out" = "$(printf 'database at schema version %s (0 migrations applied)\n8 tables partitioned by hash of account_id into 4 partitions' "$(sql "SELECT max(version) FROM schema_migrations")")" ]
check "conversion keeps every row and id" [ "$(rows)" = "$before" ]
check "a second db migrate --partitions leaves partitioned tables alone" \
	bash -c "mailpipe db migrate --partitions 4 2>/dev/null | grep -q '^0 tables partitioned'"
check "db migrate --partitions 0 is refused with exit 2" \
	bash -c "mailpipe db migrate --partitions 0 2>/dev/null; [ \$? -eq 2 ]"

# The catalog: partitioned by hash of account_id, four partitions each, keys that contain
# (and lead with) account_id, foreign keys between the tables that carry it.
check "each per-account table is hash-partitioned on account_id into 4 partitions" [ "$(sql "
	SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
	WHERE c.relname IN ($TABLES) AND p.partstrat = 'h' AND p.partnatts = 1
	  AND (SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum = p.partattrs[0]) = 'account_id'
	  AND (SELECT count(*) FROM pg_inherits i WHERE i.inhparent = c.oid) = 4")" = 8 ]
check "every primary key and unique index of them leads with account_id" [ "$(sql "
	SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
	WHERE c.relname IN ($TABLES) AND i.indisunique
	  AND (SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum = i.indkey[0]) <> 'account_id'")" = 0 ]
check "every foreign key between them includes account_id" [ "$(sql "
	SELECT count(*) FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class t ON t.oid = k.confrelid
	WHERE k.contype = 'f' AND c.relname IN ($TABLES) AND t.relname IN ($TABLES)
	  AND NOT (SELECT attnum FROM pg_attribute WHERE attrelid = c.oid AND attname = 'account_id') = ANY (k.conkey)")" = 0 ]
# The rule the keys obey is enforced: the old location key is refused on partitioned tables.
check "PostgreSQL refuses a unique key without account_id on them" \
	bash -c "! psql '$MAILPIPE_DATABASE_URL' -XAtq -c 'ALTER TABLE message_locations ADD UNIQUE (folder_id, uidvalidity, uid)' 2>/dev/null"

add_account p2
run_start
# p1 was synced before: nothing new for it. p2's is a first sync.
for acc in p1 p2; do
	mailpipe sync "$acc" --wait --timeout 120 >"$MAILPIPE_STACK_DIR/$acc.json"
	check "sync of $acc on the partitioned tables exits 0" [ $? -eq 0 ]
	if [ "$acc" = p1 ]; then
		verify "$acc" --summary "$MAILPIPE_STACK_DIR/$acc.json" --expect-new 0
	else
		verify "$acc" --summary "$MAILPIPE_STACK_DIR/$acc.json"
	fi
	check "$acc's rows hold together" consistent "$acc"
done
check "p1's sync after conversion fetched nothing new" [ "$(sql "SELECT ingested_count FROM sync_runs
	WHERE account_id = (SELECT id FROM accounts WHERE name = 'p1') ORDER BY run_id DESC LIMIT 1")" = 0 ]
check "each account's rows sit in one partition, and the two accounts in different ones" [ "$(sql "
	SELECT count(DISTINCT tableoid) || ' ' || count(DISTINCT (tableoid, account_id))
	FROM messages")" = "2 2" ]
check "rows reached a partition, not the parent" [ "$(sql "SELECT count(*) FROM ONLY messages")" = 0 ]

before=$(snapshot)
for acc in p1 p2; do
	mailpipe sync "$acc" --wait --timeout 60 >"$MAILPIPE_STACK_DIR/$acc.json"
	check "no-change sync of $acc exits 0" [ $? -eq 0 ]
	verify "$acc" --summary "$MAILPIPE_STACK_DIR/$acc.json" --expect-new 0
done
check "a sync with no change rewrites no message or location row" [ "$(snapshot)" = "$before" ]

for step in flags expunge move; do
	python3 "$ROOT/tests/integration/mirror_change.py" 127.0.0.1 "$MP_IMAP_PORT" demo demo "$step" .
	for acc in p1 p2; do
		mailpipe sync "$acc" --wait --timeout 120 >/dev/null
		check "$step: sync of $acc exits 0" [ $? -eq 0 ]
		verify "$acc"
		check "$step: $acc's rows hold together" consistent "$acc"
	done
done
check "status reads the partitioned tables" bash -c "mailpipe status p2 --json | python3 -c '
import json, sys
a, = json.load(sys.stdin)[\"accounts\"]
assert a[\"message_count\"] > 0 and a[\"folders\"], a'"
check "no entry left pending in Redis" no_pending
check "the writer never fell back from its batch path" bash -c "! grep -q 'retrying message by message' '$RUN_LOG'"
finish
