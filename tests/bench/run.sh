#!/usr/bin/env bash
# make bench: end-to-end throughput of the whole pipeline (Dovecot over TLS -> fetcher ->
# parser -> writer -> PostgreSQL) on a generated mailbox in a private stack. Prints figures;
# asserts nothing. BENCH_COUNT (default 5000) and MP_PG_FSYNC (default on) are the knobs.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$ROOT/bin:$PATH

# Parser alone, on the shared generator's medium mix when it is there (else our own sample).
PARSER_DIR=$(mktemp -d /tmp/mailpipe-parser-bench.XXXXXX)
GEN=$ROOT/../shared/tools/gen_corpus.py
if [ -f "$GEN" ]; then
	python3 "$GEN" --seed 1 --count "${PARSER_BENCH_COUNT:-5000}" --layout simple --out "$PARSER_DIR/Maildir" >/dev/null
	echo "corpus: gen_corpus.py --seed 1 --count ${PARSER_BENCH_COUNT:-5000} --layout simple"
else
	python3 "$ROOT/deploy/local/sample_mailbox.py" --seed 1 --count "${PARSER_BENCH_COUNT:-5000}" --out "$PARSER_DIR/Maildir" 2>/dev/null
	echo "corpus: deploy/local/sample_mailbox.py (../shared/tools/gen_corpus.py not found)"
fi
"$ROOT/build/bench/parser_bench" "$PARSER_DIR/Maildir"
rm -rf "$PARSER_DIR"
COUNT=${BENCH_COUNT:-5000}
export MAILPIPE_STACK_DIR
MAILPIPE_STACK_DIR=$(mktemp -d /tmp/mailpipe-bench.XXXXXX)
export MP_REDIS_PORT=${BENCH_PORT:-24400} MP_PG_PORT=$((${BENCH_PORT:-24400} + 1))
export MP_IMAP_PORT=$((${BENCH_PORT:-24400} + 2)) MP_IMAPS_PORT=$((${BENCH_PORT:-24400} + 3))
export MP_DEMO_COUNT=$COUNT MP_DEMO_SEED=11 MP_PG_FSYNC=${MP_PG_FSYNC:-on}
trap '"$ROOT/deploy/local/stack.sh" destroy >/dev/null 2>&1; kill $run_pid 2>/dev/null; wait' EXIT
run_pid=
# The shared generator's mix (median 8 KB, attachments up to MBs, many charsets) when it is
# there, as the parser and writer benches use; else our own sample mailbox (small messages).
user=demo
if [ -f "$GEN" ]; then
	MP_DEMO_COUNT=0 "$ROOT/deploy/local/stack.sh" start >/dev/null 2>&1 ||
		{ echo "bench: the local stack did not start" >&2; exit 1; }
	user=bench
	"$ROOT/deploy/local/stack.sh" add-user "$user" demo >/dev/null
	home=$MAILPIPE_STACK_DIR/mail/$user
	python3 "$GEN" --seed 1 --count "$COUNT" --layout simple --out "$home/Maildir" >/dev/null
	chown -R --reference="$home" "$home/Maildir"
	mailbox="gen_corpus.py --seed 1 --count $COUNT --layout simple"
else
	"$ROOT/deploy/local/stack.sh" start >/dev/null 2>&1 ||
		{ echo "bench: the local stack did not start" >&2; exit 1; }
	mailbox="deploy/local/sample_mailbox.py --seed 11 --count $COUNT"
fi
eval "$("$ROOT/deploy/local/stack.sh" env)"
export MAILPIPE_LOG=warn BENCH_SECRET=demo
mailpipe db migrate >/dev/null
mailpipe account add bench --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username "$user" \
	--secret env:BENCH_SECRET --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 >/dev/null
bytes=$(du -sb "$MAILPIPE_STACK_DIR/mail" | cut -f1)
mailpipe run 2>"$MAILPIPE_STACK_DIR/run.log" &
run_pid=$!
start=$(date +%s.%N)
mailpipe sync bench --wait --timeout 1800 >"$MAILPIPE_STACK_DIR/summary.json"
end=$(date +%s.%N)
n=$(python3 -c "import json;print(json.load(open('$MAILPIPE_STACK_DIR/summary.json'))['fetched_count'])")
fsync=$(psql "$MAILPIPE_DATABASE_URL" -XAtc 'SHOW fsync')
start2=$(date +%s.%N)
mailpipe sync bench --wait >/dev/null
end2=$(date +%s.%N)
python3 - "$start" "$end" "$n" "$bytes" "$fsync" "$start2" "$end2" "$mailbox" <<'PY'
import sys
s, e, n, b, fsync, s2, e2, mailbox = sys.argv[1:]
t = float(e) - float(s)
print(f"pipeline (imaps -> redis -> postgres, 1 scheduler, fetchers/parsers/writers per MAILPIPE_*, fsync={fsync}; mailbox {mailbox}):")
print(f"  {n} messages, {int(b)/1e6:.1f} MB in {t:.2f} s = {int(n)/t:.0f} msg/s, {int(b)/1e6/t:.1f} MB/s")
print(f"  no-change re-sync: {float(e2)-float(s2):.2f} s")
PY
"$ROOT/tests/bench/writer_bench.sh"
"$ROOT/tests/bench/mirror_bench.sh"
"$ROOT/tests/bench/scale_bench.sh"
"$ROOT/tests/bench/schedule_bench.sh"
"$ROOT/tests/bench/peers_bench.sh"
