#!/usr/bin/env bash
# make bench, issue 9's figures: (1) a no-change poll of an account with one 100,000-message
# folder: IMAP commands after login and the fetcher's CPU for it; (2) push latency from APPEND
# to committed row (median and p95 of 50, IDLE on loopback); (3) the fetcher's memory with 200
# idle accounts (IMAPS IDLE connections). Prints figures; asserts nothing. MIRROR_BENCH_COUNT
# (default 100000) and MIRROR_BENCH_IDLE (default 200) are the knobs.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$ROOT/bin:$PATH
COUNT=${MIRROR_BENCH_COUNT:-100000} IDLERS=${MIRROR_BENCH_IDLE:-200}
export MAILPIPE_STACK_DIR
MAILPIPE_STACK_DIR=$(mktemp -d /tmp/mailpipe-mbench.XXXXXX)
base=${BENCH_PORT:-24400}
export MP_REDIS_PORT=$((base + 10)) MP_PG_PORT=$((base + 11)) MP_IMAP_PORT=$((base + 12)) MP_IMAPS_PORT=$((base + 13))
export MP_DEMO_COUNT=40 MP_DEMO_SEED=3 MP_PG_FSYNC=${MP_PG_FSYNC:-on}
run_pid=
trap '[ -n "$run_pid" ] && kill $run_pid 2>/dev/null; wait; "$ROOT/deploy/local/stack.sh" destroy >/dev/null 2>&1' EXIT
"$ROOT/deploy/local/stack.sh" start >/dev/null 2>&1 || { echo "mirror bench: stack did not start" >&2; exit 1; }
eval "$("$ROOT/deploy/local/stack.sh" env)"
# Every account here is on one host (the local Dovecot): its connection budget must hold the
# 200 watches, the jobs' connections beside them, within Dovecot's 512 processes.
export MAILPIPE_LOG=warn BENCH_SECRET=demo MAILPIPE_FETCHERS=1 MAILPIPE_HOST_CONNECTIONS=500
mailpipe db migrate >/dev/null

# A folder of COUNT small messages, written straight into a Maildir (doveadm save of each would
# take an hour); Dovecot indexes it on first access.
"$ROOT/deploy/local/stack.sh" add-user big demo >/dev/null
home=$MAILPIPE_STACK_DIR/mail/big
python3 - "$home/Maildir" "$COUNT" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
for sub in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(d, sub), exist_ok=True)
t0 = int(time.time()) - n
for i in range(n):
    name = f"{t0 + i}.M{i}P1.bench:2,{'S' if i % 3 else ''}"
    with open(os.path.join(d, "cur", name), "w") as f:
        f.write(f"From: s{i % 97}@example.org\nTo: big@example.org\nSubject: m {i}\n"
                f"Message-ID: <big-{i}@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\nbody {i}\n")
PY
chown -R --reference="$home" "$home/Maildir"
mailpipe account add big --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username big \
	--secret env:BENCH_SECRET --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 \
	--folder INBOX --no-idle >/dev/null
MAILPIPE_LOG=debug mailpipe run 2>"$MAILPIPE_STACK_DIR/run.log" &
run_pid=$!
t0=$(date +%s.%N)
mailpipe sync big --wait --timeout 3600 >/dev/null
t1=$(date +%s.%N)
fpid=$(pgrep -P "$run_pid" -f mailpipe-fetcher | head -1)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
logins() { grep -c 'imap-login: Info: Login: user=<big>' "$MAILPIPE_STACK_DIR/dovecot/info.log" || true; }
mark=$(wc -l <"$MAILPIPE_STACK_DIR/run.log")
l0=$(logins)
c0=$(cpu "$fpid")
p0=$(date +%s.%N)
# The whole account, as the scheduler polls it: one list job, and no folder job when the
# list's STATUS answers show nothing changed; on the connection the first sync left open.
# POLLS of them, since the kernel counts CPU in 10 ms ticks (idle time between them included).
POLLS=${MIRROR_BENCH_POLLS:-20}
for _ in $(seq "$POLLS"); do mailpipe sync big --wait >/dev/null; done
p1=$(date +%s.%N)
c1=$(cpu "$fpid")
l1=$(logins)
cmds=$(tail -n +"$((mark + 1))" "$MAILPIPE_STACK_DIR/run.log" | grep -c 'stage=fetcher.*msg="C: M' || true)
list=$(tail -n +"$((mark + 1))" "$MAILPIPE_STACK_DIR/run.log" | grep 'stage=fetcher.*msg="C: M' | sed 's/.*msg="C: M[0-9]* //; s/ .*//; s/"//g' | tr '\n' ' ')
hz=$(getconf CLK_TCK)
list=$(echo "$list" | tr ' ' '\n' | grep . | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}')
python3 - "$COUNT" "$t0" "$t1" "$p0" "$p1" "$c0" "$c1" "$hz" "$cmds" "$list" "$((l1 - l0))" "$POLLS" <<'PY'
import sys
n, t0, t1, p0, p1, c0, c1, hz, cmds, lst, logins, polls = sys.argv[1:]
polls = int(polls)
print(f"mirror: first sync of one {int(n):,}-message folder: {float(t1)-float(t0):.1f} s")
print(f"mirror: no-change poll of the account, {polls} of them: {int(logins)} logins, "
      f"{int(cmds)/polls:.1f} IMAP commands each ({lst.strip(', ')}; sent together: one round trip), "
      f"fetcher CPU {(int(c1)-int(c0))*1000/int(hz)/polls:.1f} ms each, "
      f"wall {(float(p1)-float(p0))/polls:.2f} s each for the whole run (CLI, scheduler, writer)")
PY
kill "$run_pid"; wait "$run_pid" 2>/dev/null || true; run_pid=

# Push latency and idle memory, with IDLE on (MAILPIPE_IDLE defaults to 1).
mailpipe account add push --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username demo \
	--secret env:BENCH_SECRET --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 >/dev/null
mailpipe run 2>>"$MAILPIPE_STACK_DIR/run.log" &
run_pid=$!
mailpipe sync push --wait --timeout 120 >/dev/null
sleep 3 # the watch opens within a refresh (2 s)
out=$(python3 "$ROOT/tests/integration/push_append.py" 127.0.0.1 "$MP_IMAP_PORT" demo demo push 50 10 | tail -1)
echo "push: APPEND to committed row over IDLE, 50 messages one after another: $out"

fpid=$(pgrep -P "$run_pid" -f mailpipe-fetcher | head -1)
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
before=$(rss "$fpid")
for i in $(seq "$IDLERS"); do
	mailpipe account add "idle$i" --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username demo \
		--secret env:BENCH_SECRET --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 >/dev/null
done
# Their INBOX rows, as a first sync would leave them: the scheduler then lists them to watch.
psql "$MAILPIPE_DATABASE_URL" -XAqc "INSERT INTO email_folders (account_id, provider, name, wire_name)
	SELECT id, provider, 'INBOX', 'INBOX' FROM accounts WHERE name LIKE 'idle%'"
leases() { redis-cli -p "$MP_REDIS_PORT" --scan --pattern '{mp}:idle:lease:*' | wc -l; }
for _ in $(seq 600); do [ "$(leases)" -ge $((IDLERS + 1)) ] && break; sleep 0.5; done
sleep 5 # the watches' first sync requests settle
after=$(rss "$fpid")
n=$(leases)
python3 - "$before" "$after" "$n" "$IDLERS" <<'PY'
import sys
b, a, n, want = map(int, sys.argv[1:])
print(f"idle: one fetcher holding {n} IMAPS IDLE watches ({want} accounts + 1): RSS {b/1024:.1f} -> "
      f"{a/1024:.1f} MiB, {(a-b)/max(n-1,1):.0f} KB per connection")
PY
