#!/usr/bin/env bash
# make bench, issue 12's figures: mailpipe beside its peers on one mailbox and one machine.
# The mailbox (gen_corpus.py --seed 2 --layout full, PEERS_COUNT messages, default 5000) is a
# Dovecot user of a private local stack, served over IMAPS with the stack's own CA. PEERS_RUNS
# times (default 3), each from scratch and in a rotating order:
#   mailpipe   a fresh account, `mailpipe run` started for it, `mailpipe sync NAME --wait` timed
#              to committed rows (PostgreSQL fsync on, initial window 0 = all mail, no IDLE)
#   mbsync     isync's defaults (Maildir, fsync on), all folders, into a fresh Maildir
#   imapflow   imapflow + mailparser (tests/bench/imapflow_bench.mjs): every message fetched
#              and parsed, nothing stored
# Then: a CPU table of every process during each mailpipe run (tests/bench/proc_sampler.py,
# /proc every 100 ms), the stages' busy time (mailpipe_busy_seconds_total) and peak memory, and
# the ceiling: the last run's messages and locations loaded again with one COPY each. Prints
# figures and writes them to build/bench/peers-COUNT.json; asserts nothing.
#   PEERS_COUNT=50000 PEERS_RUNS=1 bash tests/bench/peers_bench.sh    (the 50,000 mode)
#   PEERS_TOOLS=mailpipe MAILPIPE_WRITER_BATCH=2000 bash tests/bench/peers_bench.sh
#                                     (mailpipe alone, to compare a setting; no ratios then)
#   PEERS_SETUP_SQL="..."             SQL run once after the migration (an experiment)
#   PEERS_BETWEEN_SQL="VACUUM"        what cleans up after a run's account is removed (default
#                                     TRUNCATE accounts CASCADE: the tables as a fresh install
#                                     has them; an experiment)
#   PEERS_AFTER_SQL="..."             SQL run after each mailpipe run, its output kept as
#                                     build/bench/peers-after-runN.txt (an experiment: say,
#                                     pg_stat_statements read and reset; a run's figures then
#                                     include the account removal and add before it)
#   PEERS_RUN_LOG=debug               the level of `mailpipe run` (the writer then times each
#                                     batch's phases); each run's log is kept as
#                                     build/bench/peers-mailpipe-runN.log
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$ROOT/bin:$PATH
HERE=$ROOT/tests/bench
COUNT=${PEERS_COUNT:-5000} RUNS=${PEERS_RUNS:-3}
GEN=$ROOT/../shared/tools/gen_corpus.py
NPM_DIR=${PEERS_NPM_DIR:-$ROOT/build/npm}
NPM_PKGS="imapflow@2.10.2 mailparser@3.14.2"
if [ ! -f "$GEN" ]; then
	echo "SKIP peers bench: $GEN (the shared corpus generator) not found"
	exit 0
fi
export MAILPIPE_STACK_DIR
MAILPIPE_STACK_DIR=$(mktemp -d /tmp/mailpipe-peers.XXXXXX)
W=$MAILPIPE_STACK_DIR/bench # made once the stack is started: it wants an empty directory
base=${BENCH_PORT:-24400}
export MP_REDIS_PORT=$((base + 30)) MP_PG_PORT=$((base + 31)) MP_IMAP_PORT=$((base + 32)) MP_IMAPS_PORT=$((base + 33))
export MP_DEMO_COUNT=0 MP_PG_FSYNC=on
mbase=$((base + 40)) # the stages' metrics ports: mbase .. mbase + 19
run_pid="" sampler_pid=""
cleanup() {
	[ -z "$sampler_pid" ] || kill "$sampler_pid" 2>/dev/null || true
	[ -z "$run_pid" ] || kill "$run_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	"$ROOT/deploy/local/stack.sh" destroy >/dev/null 2>&1 || true
}
trap cleanup EXIT
if ! out=$("$ROOT/deploy/local/stack.sh" start 2>&1); then
	echo "peers bench: the local stack did not start: $(tail -3 <<<"$out")" >&2
	exit 1
fi
mkdir -p "$W" "$ROOT/build/bench"
eval "$("$ROOT/deploy/local/stack.sh" env)"
export MAILPIPE_LOG=warn PEERS_SECRET=peers
user=peers
"$ROOT/deploy/local/stack.sh" add-user "$user" "$PEERS_SECRET" >/dev/null
home=$MAILPIPE_STACK_DIR/mail/$user
python3 "$GEN" --seed 2 --count "$COUNT" --layout full --out "$home/Maildir" >/dev/null
chown -R --reference="$home" "$home/Maildir"
bytes=$(find "$home/Maildir" -type f \( -path '*/cur/*' -o -path '*/new/*' \) -printf '%s\n' | awk '{s += $1} END {print s}')
mailpipe db migrate >/dev/null
# An experiment on the schema or the server (an index dropped, a storage setting), as the
# database owner's superuser, before any run: PEERS_SETUP_SQL="DROP INDEX messages_provider".
if [ -n "${PEERS_SETUP_SQL:-}" ]; then
	psql "postgresql://postgres@127.0.0.1:$MP_PG_PORT/mailpipe" -XAtq -v ON_ERROR_STOP=1 -c "$PEERS_SETUP_SQL"
fi
echo "peers: mailbox gen_corpus.py --seed 2 --count $COUNT --layout full ($((bytes / 1000000)) MB), IMAPS from Dovecot on 127.0.0.1, $RUNS runs each"

# The peers: installed when missing, else skipped with a line saying why.
have_mbsync=1 have_imapflow=1
if ! command -v mbsync >/dev/null; then
	apt-get -y install isync >/dev/null 2>&1 || true
fi
command -v mbsync >/dev/null || { have_mbsync=0; echo "SKIP peers mbsync: isync not installed and apt-get -y install isync failed"; }
npm_ok() {
	local p
	for p in $NPM_PKGS; do
		grep -q "\"version\": \"${p##*@}\"" "$NPM_DIR/node_modules/${p%@*}/package.json" 2>/dev/null || return 1
	done
}
if ! npm_ok && command -v npm >/dev/null; then
	mkdir -p "$NPM_DIR"
	[ -f "$NPM_DIR/package.json" ] || echo '{"private": true}' >"$NPM_DIR/package.json"
	# shellcheck disable=SC2086
	npm install --silent --no-audit --no-fund --prefix "$NPM_DIR" $NPM_PKGS >/dev/null 2>&1 || true
fi
if ! command -v node >/dev/null || ! npm_ok; then
	have_imapflow=0
	echo "SKIP peers imapflow: node or the npm packages $NPM_PKGS could not be had (into $NPM_DIR)"
fi
export NODE_PATH=$NPM_DIR/node_modules

results=$W/results.jsonl
: >"$results"
record() { # TOOL RUN SECONDS MESSAGES [EXTRA_JSON]
	printf '{"tool": "%s", "run": %s, "seconds": %s, "messages": %s%s}\n' "$1" "$2" "$3" "$4" "${5:+, $5}" >>"$results"
}
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
sql() { psql "$MAILPIPE_DATABASE_URL" -XAtqc "$1"; }
checkpoint() { psql "postgresql://postgres@127.0.0.1:$MP_PG_PORT/mailpipe" -XAtqc CHECKPOINT; } # superuser only

stages=$((1 + ${MAILPIPE_FETCHERS:-2} + ${MAILPIPE_PARSERS:-1} + ${MAILPIPE_WRITERS:-1}))
redis_pid=$(cat "$MAILPIPE_STACK_DIR/redis/redis.pid")
pg_pid=$(head -1 "$MAILPIPE_STACK_DIR/pg/data/postmaster.pid")
dc_pid=$(cat "$MAILPIPE_STACK_DIR/dovecot/run/master.pid")

run_mailpipe() { # RUN
	local i=$1 name=peers$1 log=$W/run$1.log
	# From scratch: the last run's account is removed and its tables truncated first (its rows
	# stay until then, for the COPY ceiling after the last run). Truncated, every table is as
	# a fresh install has it, as the first run finds them. A VACUUM of the emptied tables
	# instead (session 9's way) leaves them "known empty" (reltuples 0): the foreign-key
	# checks the writer's backend plans while they are still small then scan conversations
	# whole for the rest of the run (40 buffers a check by its end, against 4 by index),
	# which made every run after the first about a second slower (the writer now plans again
	# as an account's tables grow, writer/main.c; PEERS_BETWEEN_SQL=VACUUM measures that).
	if [ "$i" -gt 1 ]; then
		mailpipe account remove "peers$((i - 1))" >/dev/null
		PGOPTIONS="-c client_min_messages=warning" psql "postgresql://postgres@127.0.0.1:$MP_PG_PORT/mailpipe" \
			-XAtqc "${PEERS_BETWEEN_SQL:-TRUNCATE accounts CASCADE}"
	fi
	mailpipe account add "$name" --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username "$user" \
		--secret env:PEERS_SECRET --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 --no-idle >/dev/null
	checkpoint
	sync
	MAILPIPE_LOG=${PEERS_RUN_LOG:-info} MAILPIPE_METRICS_ADDR=127.0.0.1:$mbase-$((mbase + 19)) mailpipe run 2>"$log" &
	run_pid=$!
	for _ in $(seq 300); do
		[ "$(grep -c 'msg="serving metrics at' "$log")" -ge "$stages" ] && break
		sleep 0.1
	done
	python3 "$HERE/proc_sampler.py" "$W/cpu$i.json" "$W/ready$i" "$redis_pid" "$pg_pid" "$dc_pid" --cli-parent $$ &
	sampler_pid=$!
	for _ in $(seq 100); do [ -e "$W/ready$i" ] && break; sleep 0.05; done
	local t0 t1 wal0 ckpt0 wal ckpt ckpts
	# The WAL the run writes and the checkpoints it meets (each one makes the next change of
	# every page log the whole page).
	ckpts="SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
	wal0=$(sql "SELECT pg_current_wal_lsn()")
	ckpt0=$(sql "$ckpts")
	t0=$(now)
	mailpipe sync "$name" --wait --timeout 7200 >"$W/summary$i.json"
	t1=$(now)
	wal=$(sql "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$wal0')::bigint")
	ckpt=$(($(sql "$ckpts") - ckpt0))
	# Who holds each PostgreSQL connection (the backends have no application_name), and each
	# stage's metrics port: before the sampler stops, while all are alive.
	sql "SELECT pid, backend_type, client_port FROM pg_stat_activity" >"$W/pg$i.txt"
	ss -Htnp "dport = :$MP_PG_PORT" >"$W/pgconn$i.txt" || true
	ss -Htlnp "sport >= :$mbase and sport <= :$((mbase + 19))" >"$W/metrics$i.txt" || true
	kill -TERM "$sampler_pid"
	wait "$sampler_pid" || true
	sampler_pid=""
	sed -n 's/.* addr=\([0-9.:]*\) msg="serving metrics at.*/\1/p' "$log" | while read -r a; do
		printf '%s ' "$a"
		curl -s --max-time 5 "http://$a/metrics" | awk '$1 == "mailpipe_busy_seconds_total" {printf "%s", $2}'
		echo
	done >"$W/prom$i.txt"
	local n aid
	aid=$(sql "SELECT id FROM accounts WHERE name = '$name'")
	n=$(sql "SELECT count(*) FROM message_locations WHERE account_id = $aid")
	kill "$run_pid"
	wait "$run_pid" 2>/dev/null || true
	run_pid=""
	cp "$log" "$ROOT/build/bench/peers-mailpipe-run$i.log"
	if [ -n "${PEERS_AFTER_SQL:-}" ]; then
		psql "postgresql://postgres@127.0.0.1:$MP_PG_PORT/mailpipe" -Xq -f - <<<"$PEERS_AFTER_SQL" \
			>"$ROOT/build/bench/peers-after-run$i.txt" 2>&1 || true
	fi
	record mailpipe "$i" "$(elapsed "$t0" "$t1")" "$n" "\"account_id\": $aid, \"wal_bytes\": $wal, \"checkpoints\": $ckpt"
}

run_mbsync() { # RUN
	local i=$1 d=$W/mbsync$1
	mkdir -p "$d/mail"
	cat >"$d/mbsyncrc" <<EOF
IMAPAccount peers
Host localhost
Port $MP_IMAPS_PORT
User $user
Pass $PEERS_SECRET
SSLType IMAPS
CertificateFile $MP_CA_FILE

IMAPStore remote
Account peers

MaildirStore local
Path $d/mail/
Inbox $d/mail/INBOX
SubFolders Verbatim

Channel peers
Far :remote:
Near :local:
Patterns *
Create Near
EOF
	sync
	local t0 t1 n
	t0=$(now)
	# Its sync state goes to ~/.mbsync/ by default: a fresh HOME keeps each run from scratch.
	if HOME=$d mbsync -q -c "$d/mbsyncrc" -a >"$d/out.txt" 2>&1; then
		t1=$(now)
		n=$(find "$d/mail" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | wc -l)
		record mbsync "$i" "$(elapsed "$t0" "$t1")" "$n"
	else
		echo "peers: mbsync run $i failed, not counted: $(head -3 "$d/out.txt")" >&2
	fi
	rm -rf "$d"
}

run_imapflow() { # RUN [warm]
	local t0 t1 n
	sync
	t0=$(now)
	if ! node "$HERE/imapflow_bench.mjs" 127.0.0.1 "$MP_IMAPS_PORT" "$user" "$PEERS_SECRET" "$MP_CA_FILE" \
		>"$W/imapflow$1.json" 2>"$W/imapflow$1.err"; then
		echo "peers: imapflow run $1 failed, not counted: $(head -3 "$W/imapflow$1.err")" >&2
		return 0
	fi
	t1=$(now)
	n=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['messages'])" "$W/imapflow$1.json")
	[ "${2:-}" = warm ] || record imapflow "$1" "$(elapsed "$t0" "$t1")" "$n"
}

# Dovecot indexes a Maildir on first access, and the page cache is cold: one untimed pass
# first, so that no tool pays for that alone.
if [ "$have_imapflow" = 1 ]; then
	run_imapflow 0 warm
elif [ "$have_mbsync" = 1 ]; then
	run_mbsync 0 && : >"$results"
fi

load0=$(cut -d' ' -f1-3 /proc/loadavg)
tools=(mailpipe)
[ "$have_mbsync" = 1 ] && tools+=(mbsync)
[ "$have_imapflow" = 1 ] && tools+=(imapflow)
if [ -n "${PEERS_TOOLS:-}" ]; then # a subset, in this order
	want=" $PEERS_TOOLS "
	for t in $PEERS_TOOLS; do
		case $t in mailpipe | mbsync | imapflow) ;; *) echo "PEERS_TOOLS: unknown tool '$t'" >&2; exit 2 ;; esac
	done
	kept=()
	for t in "${tools[@]}"; do [[ $want == *" $t "* ]] && kept+=("$t"); done
	tools=("${kept[@]}")
fi
set -- "${tools[@]}"
for i in $(seq "$RUNS"); do
	for t in "$@"; do
		"run_$t" "$i"
		echo "peers: run $i $t done" >&2
	done
	set -- "${@:2}" "$1" # the next run starts with the next tool
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# The ceiling: the last mailpipe run's rows loaded by one COPY per table, into empty clones
# with the same indexes, fsync on, in one transaction.
aid=$(tail -n 1 <(grep '"tool": "mailpipe"' "$results") | python3 -c "import json,sys; print(json.load(sys.stdin)['account_id'])")
sql "SET client_min_messages = warning; DROP TABLE IF EXISTS peers_messages, peers_locations;
	CREATE TABLE peers_messages (LIKE messages INCLUDING ALL);
	CREATE TABLE peers_locations (LIKE message_locations INCLUDING ALL)"
# Generated columns are left out (none since migration 014: the search vectors are data the
# writer computes on its second connection, copied here as its COPY sends them).
cols() { sql "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)
	FROM information_schema.columns WHERE table_name = '$1' AND is_generated = 'NEVER'"; }
mcols=$(cols messages) lcols=$(cols message_locations)
psql "$MAILPIPE_DATABASE_URL" -XAtq -v ON_ERROR_STOP=1 <<EOF
\copy (SELECT $mcols FROM messages WHERE account_id = $aid) TO '$W/messages.copy'
\copy (SELECT $lcols FROM message_locations WHERE account_id = $aid) TO '$W/locations.copy'
EOF
# PEERS_RUNS times, into emptied clones, as the tools ran: one load is too noisy a figure here.
copy_times=""
for _ in $(seq "$RUNS"); do
	sql "TRUNCATE peers_messages, peers_locations"
	checkpoint
	sync
	t0=$(now)
	psql "$MAILPIPE_DATABASE_URL" -XAtq -v ON_ERROR_STOP=1 <<EOF
BEGIN;
\copy peers_messages ($mcols) FROM '$W/messages.copy'
\copy peers_locations ($lcols) FROM '$W/locations.copy'
COMMIT;
EOF
	t1=$(now)
	copy_times="$copy_times${copy_times:+,}$(elapsed "$t0" "$t1")"
done
copy_rows=$(sql "SELECT count(*) FROM peers_messages")
copy_bytes=$(stat -c %s "$W/messages.copy")
sql "DROP TABLE peers_messages, peers_locations"

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false)
python3 "$HERE/peers_report.py" --dir "$W" --results "$results" --count "$COUNT" --runs "$RUNS" \
	--bytes "$bytes" --commit "$commit" --dirty "$dirty" --load "$load0" --load-after "$load1" \
	--copy "$copy_times" "$copy_rows" "$copy_bytes" --pg-port "$MP_PG_PORT" \
	--versions "mbsync=$(mbsync --version 2>/dev/null | head -1 | cut -d' ' -f2),$NPM_PKGS" \
	--out "$ROOT/build/bench/peers-$COUNT.json"
