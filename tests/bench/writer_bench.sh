#!/usr/bin/env bash
# Writer throughput next to its ceiling: a private PostgreSQL (only), the schema, a generated
# mailbox, then build/bench/writer_bench (store_messages vs plain COPY of the same rows, same
# server, same run). Prints figures; asserts nothing. Knobs: WRITER_BENCH_COUNT (5000),
# MAILPIPE_WRITER_BATCH (500), MP_PG_FSYNC (on), WRITER_BENCH_PORT (24900, four ports from it),
# WRITER_BENCH_VARIANTS (1: also the COPY variants), WRITER_BENCH_STATS (1:
# pg_stat_statements and function timing, which cost a PostgreSQL restart),
# WRITER_BENCH_PARTITIONS (unset; N: the per-account tables hash-partitioned into N).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$ROOT/bin:$PATH
COUNT=${WRITER_BENCH_COUNT:-5000}

make -s -C "$ROOT" build/bench/writer_bench bin/mailpipe >/dev/null

# Settings of an enclosing bench (tests/bench/run.sh exports its own stack's) must not leak in.
WORK=$(mktemp -d /tmp/mailpipe-wbench.XXXXXX)
export MAILPIPE_STACK_DIR=$WORK/stack MP_PG_FSYNC=${MP_PG_FSYNC:-on} MP_DEMO_COUNT=0
cleanup() {
	"$ROOT/deploy/local/stack.sh" destroy >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
base=${WRITER_BENCH_PORT:-24900}
for try in 1 2 3; do # another stack may hold the port
	export MP_REDIS_PORT=$base MP_PG_PORT=$((base + 1)) MP_IMAP_PORT=$((base + 2)) \
		MP_IMAPS_PORT=$((base + 3))
	"$ROOT/deploy/local/stack.sh" start postgres >"$WORK/start.log" 2>&1 && break
	if [ "$try" = 3 ] || ! grep -q 'already in use' "$WORK/start.log"; then
		cat "$WORK/start.log" >&2
		echo "writer_bench.sh: postgres did not start" >&2
		exit 1
	fi
	base=$((base + 4))
done
eval "$("$ROOT/deploy/local/stack.sh" env)"
export MAILPIPE_LOG=${MAILPIPE_LOG:-warn}
admin() { "$MP_PG_BIN/psql" -X -q -w -h 127.0.0.1 -p "$MP_PG_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"; }

# Per-statement and per-function server time; ALTER SYSTEM survives stack.sh's restart (it
# rewrites only mailpipe.conf, which postgresql.auto.conf overrides).
if [ "${WRITER_BENCH_STATS:-1}" = 1 ] &&
	[ -f "$("$MP_PG_BIN/pg_config" --sharedir 2>/dev/null || echo /usr/share/postgresql/15)/extension/pg_stat_statements.control" ]; then
	admin -d postgres >/dev/null <<-'SQL'
		ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';
		ALTER SYSTEM SET track_functions = 'pl';
	SQL
	"$ROOT/deploy/local/stack.sh" restart postgres >>"$WORK/start.log" 2>&1 ||
		{ cat "$WORK/start.log" >&2; exit 1; }
	admin -d mailpipe >/dev/null <<-'SQL'
		CREATE EXTENSION pg_stat_statements;
		ALTER DATABASE mailpipe SET pg_stat_statements.track = 'all';
		GRANT EXECUTE ON FUNCTION pg_stat_statements_reset TO mailpipe;
	SQL
fi
# CHECKPOINT before each timed pass, so that none pays for the previous one's dirty buffers.
admin -d mailpipe -c 'GRANT pg_checkpoint TO mailpipe' >/dev/null
mailpipe db migrate ${WRITER_BENCH_PARTITIONS:+--partitions "$WRITER_BENCH_PARTITIONS"} >/dev/null

GEN=$ROOT/../shared/tools/gen_corpus.py
if [ -f "$GEN" ]; then
	python3 "$GEN" --seed 1 --count "$COUNT" --layout simple --out "$WORK/Maildir" >/dev/null
	echo "writer bench corpus: gen_corpus.py --seed 1 --count $COUNT --layout simple"
else
	python3 "$ROOT/deploy/local/sample_mailbox.py" --seed 1 --count "$COUNT" --out "$WORK/Maildir" 2>/dev/null
	echo "writer bench corpus: deploy/local/sample_mailbox.py --seed 1 --count $COUNT (no ../shared/tools/gen_corpus.py)"
fi

args=
if [ "${WRITER_BENCH_VARIANTS:-1}" = 1 ]; then args=--variants; fi
# shellcheck disable=SC2086 # args is a list of flags
"$ROOT/build/bench/writer_bench" $args "$WORK/Maildir"
