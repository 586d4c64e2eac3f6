#!/usr/bin/env bash
# The walking skeleton end to end: a 400-message sample mailbox in Dovecot (several folders,
# one with a non-ASCII name, some \Seen, some copies in two folders) through `mailpipe run`
# into Postgres, checked against the server; then a second sync that must change nothing.
. "$(dirname "$0")/lib.sh"
stack_up 400 1
add_account it
run_start

out=$MAILPIPE_STACK_DIR/summary1.json
mailpipe sync it --wait --timeout 120 >"$out"
check "first sync exits 0" [ $? -eq 0 ]
verify it --summary "$out"
check "no entry left pending in Redis" no_pending
status=$(mailpipe status it --json)
check "mailpipe status agrees with the database and the last run" python3 -c "
import json, subprocess, sys
s = json.loads(sys.argv[1])
a, = s['accounts']
summary = json.load(open(sys.argv[2]))
assert a['account'] == 'it' and a['last_run']['status'] == 'ok', a
assert a['last_run']['run_id'] == summary['run_id'], (a['last_run'], summary['run_id'])
assert a['message_count'] == int(sys.argv[3]), a['message_count']
folders = {f['name']: (f['message_count'], f['unread_count']) for f in a['folders']}
want = dict((n, (int(c), int(u))) for n, c, u in (l.split('|') for l in sys.argv[4].splitlines()))
assert folders == want, (folders, want)
assert s['queues']['raw'] == 0 and s['queues']['parsed'] == 0, s['queues']" "$status" "$out" \
	"$(sql "SELECT count(*) FROM messages")" \
	"$(sql "SELECT name, message_count, unread_count FROM email_folders ORDER BY name")"
check "mailpipe status (text) names the account and the empty queues" bash -c \
	"mailpipe status | grep -q '^it  active' && mailpipe status | grep -q '^queues: jobs 0, raw 0 '"

before=$(snapshot)
out2=$MAILPIPE_STACK_DIR/summary2.json
mailpipe sync it --wait --timeout 60 >"$out2"
check "second sync exits 0" [ $? -eq 0 ]
verify it --summary "$out2" --expect-new 0
after=$(snapshot)
check "second sync changes no message or location row" [ "$before" = "$after" ]

# The three seed queries of DESIGN.md work as written (the account's provider is 'imap').
check "seed query: folders" [ "$(sql "SELECT count(*) FROM (SELECT name, message_count, unread_count FROM email_folders WHERE provider = 'imap') s")" -ge 5 ]
check "seed query: message count" [ "$(sql "SELECT COUNT(*) FROM messages WHERE provider = 'imap'")" -gt 300 ]
check "seed query: conversations" [ "$(sql "SELECT count(*) FROM (SELECT display_name, message_count FROM conversations WHERE provider = 'imap' ORDER BY last_message_at DESC LIMIT 10) s")" -eq 10 ]
check "every message is in a conversation" [ "$(sql "SELECT count(*) FROM messages WHERE conversation_id IS NULL")" -eq 0 ]

# Search, contacts and the optional subject grouping, on the same mailbox.
subj=$(sql "SELECT subject FROM messages WHERE subject ~ '^[A-Za-z]{6,} [A-Za-z]{6,}' ORDER BY id LIMIT 1")
word=$(echo "$subj" | awk '{print $2}')
check "search finds a message by a word of its subject ('$word')" \
	bash -c "mailpipe search '$word' --json | python3 -c 'import json,sys; assert any(\"$word\".lower() in (m[\"subject\"] or \"\").lower() for m in json.load(sys.stdin))'"
check "every contact counts the messages that name it" [ "$(sql "
	WITH named AS (SELECT m.id, lower(x->>'email') AS email FROM messages m,
	  jsonb_array_elements(m.\"to\" || m.cc || m.bcc || m.reply_to ||
	    CASE WHEN m.from_email IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(jsonb_build_object('email', m.from_email)) END) x
	  WHERE x->>'email' LIKE '%@%' AND length(x->>'email') <= 320),
	counts AS (SELECT email, count(DISTINCT id) AS n FROM named GROUP BY email)
	SELECT count(*) FROM contacts c FULL JOIN counts ON counts.email = lower(c.email)
	WHERE c.message_count IS DISTINCT FROM counts.n")" = 0 ]
addr=$(sql "SELECT email FROM contacts ORDER BY message_count DESC, email LIMIT 1")
frag=${addr:1:6}
check "contacts finds an address by a fragment ('$frag' of $addr)" \
	bash -c "mailpipe contacts '$frag' --json | python3 -c 'import json,sys; assert \"$addr\" in [c[\"email\"] for c in json.load(sys.stdin)]'"
check "pg_trgm indexes serve address lookup" [ "$(sql "SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%_trgm'")" = 3 ]
mailpipe account add subj --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username demo \
	--secret env:TEST_IMAP_SECRET --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 \
	--subject-threading 3650 >/dev/null
mailpipe sync subj --wait --timeout 60 >/dev/null
check "subject grouping only merges reference threads, never splits them" [ "$(sql "
	SELECT count(*) FROM (SELECT a.conversation_id FROM messages a JOIN messages b USING (content_sha256)
	  WHERE a.account_id = (SELECT id FROM accounts WHERE name = 'it')
	    AND b.account_id = (SELECT id FROM accounts WHERE name = 'subj')
	  GROUP BY a.conversation_id HAVING count(DISTINCT b.conversation_id) > 1) s")" = 0 ]
# Accounts with subject grouping take the one-message-at-a-time INSERT path; the others the
# batch COPY path. Both must write the same row for the same content.
check "the COPY and INSERT paths write identical message rows (all columns but ids and times)" \
	same_message_rows it subj 300
# The search vector is the writer's (migration 014): on both paths, each row's is
# mp_search_vector of its own columns, as the generated column was.
check "every message's search vector is mp_search_vector of its own subject, sender and body" [ "$(sql "
	SELECT count(*) FROM messages WHERE search IS NULL OR search IS DISTINCT FROM
	  mp_search_vector(subject, from_name, from_email, coalesce(body_clean, body_text))")" = 0 ]
check "the writer computes search vectors on a second connection of its own" [ "$(sql "
	SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mailpipe writer search'")" -ge 1 ]
# An operator tells the stages' connections apart in pg_stat_activity: every one is named.
names=$(sql "SELECT string_agg(DISTINCT application_name, ',' ORDER BY application_name)
	FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
check "each stage's database connection is named by its stage ($names)" \
	[ "$names" = "mailpipe scheduler,mailpipe writer,mailpipe writer search" ]
check "subject grouping joins replies whose references are missing" [ "$(sql "SELECT count(*) FROM conversations WHERE account_id = (SELECT id FROM accounts WHERE name = 'subj')")" -lt "$(sql "SELECT count(*) FROM conversations WHERE account_id = (SELECT id FROM accounts WHERE name = 'it')")" ]

# SIGTERM to `mailpipe run` drains and stops every stage.
stages_alive() { pgrep -P "$RUN_PID" -f 'mailpipe-(scheduler|fetcher|parser|writer)' >/dev/null; }
check "run has its four kinds of stage running" stages_alive
children=$(pgrep -P "$RUN_PID" | tr '\n' ' ')
kill -TERM "$RUN_PID"
for _ in $(seq 1 100); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
check "SIGTERM stops mailpipe run within 10 s" bash -c "! kill -0 $RUN_PID 2>/dev/null"
check "no stage outlives it ($children)" bash -c "for p in $children; do ! kill -0 \$p 2>/dev/null || exit 1; done"
wait "$RUN_PID" 2>/dev/null
RUN_PID=
check "the writer never fell back from its batch path" bash -c "! grep -q 'retrying message by message' '$RUN_LOG'"

# cli_name URL: the application_name of a `sync --wait` connected with URL, left waiting (no
# stage runs) for 3 s.
cli_name() {
	MAILPIPE_DATABASE_URL=$1 mailpipe sync it --wait --timeout 3 >/dev/null 2>&1 &
	local pid=$! name=
	for _ in $(seq 25); do
		name=$(sql "SELECT string_agg(application_name, ',') FROM pg_stat_activity
			WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
		[ -n "$name" ] && break
		sleep 0.1
	done
	wait "$pid"
	echo "$name"
}
n=$(cli_name "$MAILPIPE_DATABASE_URL")
check "a CLI command's connection is named 'mailpipe cli' ($n)" [ "$n" = "mailpipe cli" ]
n=$(cli_name "$MAILPIPE_DATABASE_URL?application_name=ops-check")
check "an application_name in the database URL wins ($n)" [ "$n" = ops-check ]
finish
