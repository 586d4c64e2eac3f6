#!/usr/bin/env bash
# make demo: starts the local stack (Redis, PostgreSQL, Dovecot with a 400-message sample
# mailbox for user demo/demo), runs the whole pipeline, prints the sync summary and the three
# seed queries of DESIGN.md, and leaves everything running. `make demo-stop` stops it.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
./deploy/local/stack.sh start
eval "$(./deploy/local/stack.sh env)"
export MAILPIPE_DEMO_SECRET=demo
./bin/mailpipe db migrate
if ! ./bin/mailpipe account show demo >/dev/null 2>&1; then
	# provider stays 'imap' for a local Dovecot; the seed queries below filter on it.
	./bin/mailpipe account add demo --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit \
		--username demo --secret env:MAILPIPE_DEMO_SECRET --ca-file "$MP_CA_FILE" \
		--email demo@example.org --initial-window-days 0 --interval 300
fi
RUN_LOG=$MAILPIPE_STACK_DIR/mailpipe-run.log
if ! pgrep -f "$ROOT/bin/mailpipe run" >/dev/null; then
	MAILPIPE_LOG=${MAILPIPE_LOG:-info} nohup "$ROOT/bin/mailpipe" run >>"$RUN_LOG" 2>&1 &
	echo $! >"$MAILPIPE_STACK_DIR/mailpipe-run.pid"
fi
start=$(date +%s.%N)
./bin/mailpipe sync demo --wait --timeout 300
end=$(date +%s.%N)
q() { psql "$MAILPIPE_DATABASE_URL" -X -P pager=off -c "$1"; }
echo
echo "== SELECT name, message_count, unread_count FROM email_folders WHERE provider = 'imap';"
q "SELECT name, message_count, unread_count FROM email_folders WHERE provider = 'imap' ORDER BY name"
echo "== SELECT COUNT(*) FROM messages WHERE provider = 'imap';"
q "SELECT COUNT(*) FROM messages WHERE provider = 'imap'"
echo "== SELECT display_name, message_count FROM conversations WHERE provider = 'imap' ORDER BY last_message_at DESC LIMIT 10;"
q "SELECT display_name, message_count FROM conversations WHERE provider = 'imap' ORDER BY last_message_at DESC LIMIT 10"
awk -v s="$start" -v e="$end" 'BEGIN { printf "sync --wait took %.2f s\n", e - s }'
cat <<MSG

The stack is still running. To explore:
  eval "\$(deploy/local/stack.sh env)"
  psql "\$MAILPIPE_DATABASE_URL"
  bin/mailpipe status
  tail -f $RUN_LOG
Stop everything with: make demo-stop
MSG
