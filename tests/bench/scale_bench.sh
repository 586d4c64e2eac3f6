#!/usr/bin/env bash
# make bench, issue 11's figures: SCALE_ACCOUNTS accounts (default 1000; Dovecot passwd-file
# users, SCALE_MESSAGES small messages each (default 37) in INBOX, Sent and Archive) synced by
# one `mailpipe run` on this machine: time to the first sync of all, then a no-change poll
# round of all of them (every account made due at once); logins and connections per account
# (Dovecot's own log), CPU seconds and peak memory per process kind. Prints figures; asserts
# nothing. IDLE is off here: the figures are those of polling. Then the bad days: 50 accounts
# with a wrong password and 20 behind a throttling server, added while all poll again.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$ROOT/bin:$PATH
N=${SCALE_ACCOUNTS:-1000} PER=${SCALE_MESSAGES:-37}
export MAILPIPE_STACK_DIR
MAILPIPE_STACK_DIR=$(mktemp -d /tmp/mailpipe-scale.XXXXXX)
base=${BENCH_PORT:-24500}
export MP_REDIS_PORT=$((base + 20)) MP_PG_PORT=$((base + 21)) MP_IMAP_PORT=$((base + 22)) MP_IMAPS_PORT=$((base + 23))
export MP_DEMO_COUNT=0 MP_PG_FSYNC=${MP_PG_FSYNC:-on}
run_pid=
trap '[ -n "$run_pid" ] && kill $run_pid 2>/dev/null; wait; "$ROOT/deploy/local/stack.sh" destroy >/dev/null 2>&1' EXIT
export MP_DOVECOT_PROCESSES=${MP_DOVECOT_PROCESSES:-$((2 * N + 600))}
# Dovecot's login processes as a provider runs them (a few serve every TLS connection), not a
# process started per connection: on this 2-core machine the server shares the CPU with what is
# measured, and per-connection login processes cost it a fifth of the first sync's CPU.
export MP_DOVECOT_LOGIN=${MP_DOVECOT_LOGIN:-performance}
"$ROOT/deploy/local/stack.sh" start >/dev/null 2>&1 || { echo "scale bench: stack did not start" >&2; exit 1; }
eval "$("$ROOT/deploy/local/stack.sh" env)"
export MAILPIPE_LOG=warn BENCH_SECRET=scale MAILPIPE_IDLE=0
# A connection kept per account, in each of the two fetchers, so that a poll logs in no more:
# Dovecot's process limits (one imap and one imap-login process per TLS connection) and this
# host's budget are raised to match, as a provider's servers would take them.
export MAILPIPE_CONN_PARKED=${MAILPIPE_CONN_PARKED:-$((N + 100))}
export MAILPIPE_HOST_CONNECTIONS=${MAILPIPE_HOST_CONNECTIONS:-$((2 * N + 400))}
mailpipe db migrate >/dev/null

# N users: one passwd-file line each, and their Maildirs written directly.
"$ROOT/deploy/local/stack.sh" add-user u0 scale >/dev/null
passwd=$MAILPIPE_STACK_DIR/dovecot/passwd
python3 - "$MAILPIPE_STACK_DIR/mail" "$passwd" "$N" "$PER" <<'PY'
import os, sys, time
mail, passwd, n, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(passwd, "a") as p:
    for u in range(1, n):
        p.write(f"u{u}:{{PLAIN}}scale::::::\n")
t0 = int(time.time()) - 86400 * 30
for u in range(n):
    root = os.path.join(mail, f"u{u}", "Maildir")
    for folder in ("", ".Sent", ".Archive"):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, folder, sub), exist_ok=True)
    for i in range(per):
        folder = "" if i % 5 < 3 else (".Sent" if i % 5 == 3 else ".Archive")
        name = f"{t0 + i * 3600}.M{u}_{i}P1.scale:2,{'S' if i % 2 else ''}"
        reply = f"In-Reply-To: <u{u}-{i - 1}@scale.test>\n" if i % 4 == 1 else ""
        with open(os.path.join(root, folder, "cur", name), "w") as f:
            f.write(f"From: Sender {i % 7} <s{i % 7}@example.org>\nTo: u{u}@scale.test\n"
                    f"Subject: message {i} of u{u}\nMessage-ID: <u{u}-{i}@scale.test>\n{reply}"
                    f"Date: Mon, 1 Jan 2024 00:00:00 +0000\n\nBody {i} of user {u}.\n"
                    + "Some text to make it a realistic small message. " * 8 + "\n")
PY
chown -R --reference="$MAILPIPE_STACK_DIR/mail/u0" "$MAILPIPE_STACK_DIR/mail"
t_add0=$(date +%s.%N)
seq 0 $((N - 1)) | xargs -P 4 -I{} mailpipe account add u{} --host 127.0.0.1 --port "$MP_IMAPS_PORT" \
	--tls implicit --username u{} --secret env:BENCH_SECRET --ca-file "$MP_CA_FILE" \
	--interval 3600 --initial-window-days 0 --no-idle >/dev/null
t_add1=$(date +%s.%N)

logins() { grep -c 'imap-login: Info: Login: user=<u' "$MAILPIPE_STACK_DIR/dovecot/info.log" || true; }
conns() { ss -Htn state established "( sport = :$MP_IMAPS_PORT )" | wc -l; } # open at the server
finished() { # accounts with at least $1 finished runs
	psql "$MAILPIPE_DATABASE_URL" -XAtc "SELECT count(*) FROM (SELECT account_id FROM sync_runs
		WHERE status <> 'running' GROUP BY account_id HAVING count(*) >= $1) s"
}
# Waits inside one psql session, looking every 0.1 s: a psql started five times a second
# took 7% of this machine's CPU from the run it measured.
wait_finished() { # RUNS TIMEOUT_S
	psql "$MAILPIPE_DATABASE_URL" -XAtq -v ON_ERROR_STOP=1 -c "DO \$\$
		DECLARE deadline timestamptz := clock_timestamp() + interval '$2 seconds';
		BEGIN
			WHILE (SELECT count(*) FROM (SELECT account_id FROM sync_runs WHERE status <> 'running'
				GROUP BY account_id HAVING count(*) >= $1) s) < $N LOOP
				IF clock_timestamp() > deadline THEN
					RAISE EXCEPTION 'timed out';
				END IF;
				PERFORM pg_sleep(0.1);
			END LOOP;
		END \$\$" 2>/dev/null || { echo "scale bench: only $(finished "$1") of $N accounts done" >&2; return 1; }
}
# CPU clock ticks (utime + stime, and those of reaped children) of a process and everything
# under it: this stack's servers by their pid files, our stages under `mailpipe run`. One pass
# over /proc: with a connection parked per account, Dovecot alone has thousands of processes.
snapshot() {
	python3 - "$run_pid" "$(cat "$MAILPIPE_STACK_DIR/redis/redis.pid")" \
		"$(head -1 "$MAILPIPE_STACK_DIR/pg/data/postmaster.pid")" \
		"$(cat "$MAILPIPE_STACK_DIR/dovecot/run/master.pid")" <<'PY'
import os, sys
run, redis, pg, dovecot = sys.argv[1:]
parent, ticks, comm = {}, {}, {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        head, rest = open(f"/proc/{p}/stat").read().rsplit(")", 1)
        cmd = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        continue
    f = rest.split()
    parent[p], ticks[p], comm[p] = f[1], sum(int(x) for x in f[11:15]), cmd
children = {}
for p, pp in parent.items():
    children.setdefault(pp, []).append(p)
def tree(p):
    return ticks.get(p, 0) + sum(tree(c) for c in children.get(p, []))
out = {f"mailpipe-{k}": 0 for k in ("scheduler", "fetcher", "parser", "writer")}
for c in children.get(run, []):
    for k in out:
        if k in comm[c]:
            out[k] += tree(c)
out.update(redis=tree(redis), postgres=tree(pg), dovecot=tree(dovecot))
print(" ".join(f"{k}={v}" for k, v in out.items()))
PY
}

# The secrets of the bad-days phase at the end: the fetchers read them from their environment.
export WRONG_SECRET=not-the-password THROTTLED_SECRET=pw
mailpipe run 2>"$MAILPIPE_STACK_DIR/run.log" &
run_pid=$!
l0=$(logins)
c0=$(snapshot)
t0=$(date +%s.%N)
wait_finished 1 1800
t1=$(date +%s.%N)
c1=$(snapshot)
l1=$(logins)
k1=$(conns)
msgs=$(psql "$MAILPIPE_DATABASE_URL" -XAtc "SELECT count(*) FROM message_locations")
failed=$(psql "$MAILPIPE_DATABASE_URL" -XAtc "SELECT count(*) FROM sync_runs WHERE status <> 'ok'")
# The no-change round: every account due at once, as after an outage or on a shared interval.
psql "$MAILPIPE_DATABASE_URL" -XAtqc "UPDATE accounts SET next_sync_at = now()"
t2=$(date +%s.%N)
wait_finished 2 1800
t3=$(date +%s.%N)
c2=$(snapshot)
l2=$(logins)
k2=$(conns)
hwm=""
for k in mailpipe-scheduler mailpipe-fetcher mailpipe-parser mailpipe-writer; do
	m=0
	for p in $(pgrep -P "$run_pid" -f "$k" || true); do
		v=$(awk '/^VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
		[ "${v:-0}" -gt "$m" ] && m=$v
	done
	hwm="$hwm $k=$m"
done
python3 - "$N" "$msgs" "$failed" "$t_add0" "$t_add1" "$t0" "$t1" "$t2" "$t3" "$l0" "$l1" "$l2" \
	"$(getconf CLK_TCK)" "$c0" "$c1" "$c2" "$hwm" "$k1" "$k2" <<'PY'
import sys
a = sys.argv[1:]
n, msgs, failed = int(a[0]), int(a[1]), int(a[2])
ta0, ta1, t0, t1, t2, t3 = map(float, a[3:9])
l0, l1, l2, hz = int(a[9]), int(a[10]), int(a[11]), int(a[12])
k1, k2 = int(a[17]), int(a[18])
snap = lambda s: {k: int(v) for k, v in (x.split("=") for x in s.split())}
c0, c1, c2 = snap(a[13]), snap(a[14]), snap(a[15])
hwm = {k: int(v) for k, v in (x.split("=") for x in a[16].split())}
print(f"scale: {n} accounts, {msgs} messages stored, {failed} runs not ok; "
      f"accounts added in {ta1 - ta0:.1f} s (4 CLI processes at once)")
print(f"scale: first sync of all: {t1 - t0:.1f} s ({msgs / (t1 - t0):.0f} msg/s), "
      f"{(l1 - l0) / n:.2f} logins per account")
print(f"scale: no-change poll round of all: {t3 - t2:.1f} s, {(l2 - l1) / n:.2f} logins per account")
print(f"scale: IMAPS connections open at the server after the first sync {k1} "
      f"({k1 / n:.2f} per account), after the round {k2} ({k2 / n:.2f} per account; kept for the next poll)")
print("scale: CPU seconds, first sync | no-change round (per account, ms):")
for k in c0:
    f = (c1[k] - c0[k]) / hz
    r = (c2[k] - c1[k]) / hz
    print(f"  {k:20s} {f:7.1f} s | {r:6.1f} s ({r * 1000 / n:.1f} ms)")
print("scale: peak memory (VmHWM, largest process of each stage): "
      + ", ".join(f"{k.split('-')[1]} {v / 1024:.0f} MB" for k, v in hwm.items()))
PY

# Bad days at scale: 50 more accounts of these users with a wrong password, and 20 behind a
# server that throttles every login ([THROTTLED], "Suggested Backoff Time: 600000 ms"; the
# scripted server of the integration tests), added while all the others poll again at once. A
# wrong password is tried once and waits in auth_failed; a throttled account waits in backoff
# for at least the hint; the others poll as before.
HPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 "$ROOT/tests/integration/hostile_imap.py" --port "$HPORT" --log "$MAILPIPE_STACK_DIR/hostile.jsonl" \
	--ready-file "$MAILPIPE_STACK_DIR/hostile.ready" >/dev/null 2>&1 &
hostile_pid=$!
trap '[ -n "$run_pid" ] && kill $run_pid 2>/dev/null; kill $hostile_pid 2>/dev/null; wait; "$ROOT/deploy/local/stack.sh" destroy >/dev/null 2>&1' EXIT
for _ in $(seq 100); do [ -f "$MAILPIPE_STACK_DIR/hostile.ready" ] && break; sleep 0.1; done
BAD=$((N < 50 ? N : 50))
failed0=$(grep -c 'auth failed' "$MAILPIPE_STACK_DIR/dovecot/info.log" || true)
t4=$(date +%s.%N)
for i in $(seq 0 $((BAD - 1))); do
	mailpipe account add "w$i" --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username "u$i" \
		--secret env:WRONG_SECRET --ca-file "$MP_CA_FILE" --interval 60 --initial-window-days 0 --no-idle >/dev/null
done
for i in $(seq 1 20); do
	mailpipe account add "t$i" --host localhost --port "$HPORT" --tls none --username throttledalways \
		--secret env:THROTTLED_SECRET --interval 60 --initial-window-days 0 --no-idle >/dev/null
done
psql "$MAILPIPE_DATABASE_URL" -XAtqc "UPDATE accounts SET next_sync_at = now() WHERE name LIKE 'u%'"
states() {
	psql "$MAILPIPE_DATABASE_URL" -XAtc "SELECT
		count(*) FILTER (WHERE name LIKE 'w%' AND state = 'auth_failed') || ' ' ||
		count(*) FILTER (WHERE name LIKE 't%' AND state = 'backoff'
			AND next_sync_at >= now() + interval '500 seconds') FROM accounts"
}
end=$(($(date +%s) + 300))
until [ "$(finished 3)" -ge "$N" ] && [ "$(states)" = "$BAD 20" ]; do
	[ "$(date +%s)" -lt "$end" ] || break
	sleep 0.2
done
t5=$(date +%s.%N)
sleep 10 # more scheduler ticks (and a 60 s interval's worth of nothing): none is tried again
failed1=$(grep -c 'auth failed' "$MAILPIPE_STACK_DIR/dovecot/info.log" || true)
throttled=$(grep -c '"login_no"' "$MAILPIPE_STACK_DIR/hostile.jsonl" || true)
printf 'scale: bad days: %d accounts with a wrong password and 20 throttled (hint 600 s) added while all %d poll: %.1f s until every state was reached\n' \
	"$BAD" "$N" "$(echo "$t5 - $t4" | bc)"
read -r af bo <<<"$(states)"
printf 'scale:   %s of %d auth_failed, %s of 20 in backoff past the hint; %d refused logins at Dovecot for the %d (tried once each: %d), %d at the throttling server for the 20; %d of %d others polled again\n' \
	"$af" "$BAD" "$bo" "$((failed1 - failed0))" "$BAD" "$BAD" "$throttled" "$(finished 3)" "$N"
