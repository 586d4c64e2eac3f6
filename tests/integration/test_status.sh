#!/usr/bin/env bash
# Issue 10, live status: `mailpipe status --json` against the truth in Postgres and Redis while
# a sync is held up (its writer stopped with SIGSTOP mid-run, so the numbers stand still) and
# after it ends; `status --watch` redraws under a pseudo-terminal (script) and ends on SIGINT;
# `sync --wait` draws live progress lines at a terminal and prints only the JSON summary
# otherwise; usage errors exit 2, an unknown account 1.
. "$(dirname "$0")/lib.sh"
export MAILPIPE_RAW_BUDGET=300
stack_up 1500 5
add_account st
run_start
D=$MAILPIPE_STACK_DIR
HERE=$ROOT/tests/integration
rcli() { redis-cli -p "$MP_REDIS_PORT" "$@"; }
mailpipe sync st --wait --timeout 300 >"$D/first.json"
check "first sync exits 0" [ $? -eq 0 ]

# Hold a sync up: the writer stopped, INBOX's UIDVALIDITY reset so every message is fetched
# again, the sync asked for by an app on {mp}:requests (INBOX is known: no LIST needed).
writer=$(pgrep -P "$RUN_PID" -f mailpipe-writer | head -1)
check "the writer of mailpipe run is found" [ -n "$writer" ]
kill -STOP "$writer"
doveadm -c "$MP_DOVECOT_CONF" mailbox update -u demo --uid-validity 4242 INBOX
rcli XADD '{mp}:requests' '*' account st folders '["INBOX"]' request_id hold-1 >/dev/null
# Fetchers and parsers stop at the budget or at the end: wait until nothing moves.
prev=
for try in $(seq 120); do
	now="$(rcli XLEN '{mp}:raw') $(rcli XLEN '{mp}:parsed') $(rcli XLEN '{mp}:jobs')"
	[ "$now" = "$prev" ] && [ "$(rcli XLEN '{mp}:parsed')" -gt 0 ] && break
	prev=$now
	sleep 0.5
done
run=$(sql "SELECT run_id FROM sync_runs WHERE request_id = 'hold-1'")
# An app that took one change and has not acknowledged it yet.
rcli XGROUP CREATE '{mp}:changes' app 0 >/dev/null
rcli XREADGROUP GROUP app probe COUNT 1 STREAMS '{mp}:changes' '>' >/dev/null
rcli XPENDING '{mp}:changes' app | head -2 | paste -sd' ' >"$D/app-pending.txt"
sleep 1
mailpipe status st --json >"$D/during.json"
check "status --json during the held sync exits 0" [ $? -eq 0 ]
# Redis's own view, read right after (nothing moves: the numbers must be equal).
for s in jobs jobs:first raw parsed jobs:backfill requests changes; do
	echo "{mp}:$s $(rcli XLEN "{mp}:$s") $( (rcli --json XINFO GROUPS "{mp}:$s" 2>/dev/null || echo '[]') | paste -sd' ')"
done >"$D/redis.txt"
rcli XPENDING '{mp}:parsed' writers | head -2 | paste -sd' ' >"$D/pending.txt"
rcli TIME | head -1 >"$D/time.txt"
sql "SELECT s.ingested_count + s.duplicate_count, coalesce(s.server_count, f.message_count), (SELECT count(*) FROM message_locations l WHERE l.folder_id = s.folder_id)
     FROM sync_run_folders s JOIN email_folders f ON f.id = s.folder_id WHERE s.run_id = ${run:-0} AND f.name = 'INBOX'" >"$D/pg.txt"
check "status --json during a sync agrees with Postgres and Redis" python3 - "$D" "$run" <<'PY'
import json, sys
d, run = sys.argv[1], int(sys.argv[2])
s = json.load(open(d + "/during.json"))
a, = s["accounts"]
assert a["account"] == "st" and a["state"] == "active", a["state"]
assert a["running_run_id"] == run, (a["running_run_id"], run)
inbox = [f for f in a["folders"] if f["name"] == "INBOX"][0]
p = inbox["progress"]
written, server, stored = map(int, open(d + "/pg.txt").read().split("|"))
assert p["status"] == "running" and p["written"] == written and p["stored_count"] == stored, (p, written, stored)
assert p["parsed"] > written and p["fetched"] >= p["parsed"], p
assert p["server_count"] == server > 0, (p, server)
# per stream: length, and per group consumers/pending/lag as XINFO GROUPS says
redis = {}
for line in open(d + "/redis.txt").read().splitlines():
    key, n, groups = line.split(" ", 2)
    groups = json.loads(groups) if groups.startswith("[") else []
    redis[key] = (int(n), {g["name"]: g for g in groups})
streams = {x["stream"]: x for x in s["streams"]}
assert set(streams) == set(redis), (set(streams), set(redis))
for key, (n, groups) in redis.items():
    x = streams[key]
    assert x["length"] == n, (key, x["length"], n)
    mine = {g["group"]: g for g in x["groups"]}
    assert set(mine) == set(groups), (key, mine, groups)
    for name, g in groups.items():
        m = mine[name]
        assert m["consumers"] == g["consumers"] and m["pending"] == g["pending"], (key, m, g)
        assert m["lag"] == g["lag"], (key, m, g)
parsed = streams["{mp}:parsed"]
assert parsed["length"] > 0, parsed
w = [g for g in parsed["groups"] if g["group"] == "writers"][0]
# XPENDING's summary: the count, then (when there are any) the oldest id
pending = open(d + "/pending.txt").read().split()
now_ms = int(open(d + "/time.txt").read()) * 1000
age = w["oldest_pending_age_ms"]
assert w["pending"] == int(pending[0]), (w, pending)
if w["pending"]:
    assert 0 < age <= now_ms - int(pending[1].split("-")[0]) + 1000, (age, pending, now_ms)
else:
    assert age is None, w
app = [g for g in streams["{mp}:changes"]["groups"] if g["group"] == "app"][0]
count, oldest = open(d + "/app-pending.txt").read().split()
assert app["pending"] == int(count) == 1 and app["consumers"] == 1, app
assert 1000 <= app["oldest_pending_age_ms"] <= now_ms - int(oldest.split("-")[0]) + 1000, (app, oldest, now_ms)
assert s["dead_letters"] == 0
print(f"  INBOX: {p['fetched']} fetched, {p['parsed']} parsed, {p['written']} written; "
      f"{{mp}}:parsed length {parsed['length']}, writers pending {w['pending']}, lag {w['lag']}, "
      f"oldest pending {age} ms")
PY
mailpipe status st >"$D/during.txt"
inbox_id=$(sql "SELECT f.id FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = 'st' AND f.name = 'INBOX'")
hf=$(rcli HGET "{mp}:progress:$run" "$inbox_id:fetched")
check "the fetcher counts what it put on {mp}:raw in the run's progress (${hf:-none})" [ "${hf:-0}" -gt 0 ]
check "status (text) shows the running sync of INBOX" grep -q "syncing: .* fetched, .* parsed, .* written" "$D/during.txt"

kill -CONT "$writer"
for try in $(seq 240); do
	[ "$(sql "SELECT status FROM sync_runs WHERE run_id = ${run:-0}")" != running ] && break
	sleep 0.5
done
check "the held sync completes once the writer runs again" \
	[ "$(sql "SELECT status FROM sync_runs WHERE run_id = ${run:-0}")" = ok ]
check "nothing pending after it" no_pending
mailpipe status st --json >"$D/after.json"
sql "SELECT f.name || '|' || f.wire_name || '|' || f.message_count || '|' || (SELECT count(*) FROM message_locations l WHERE l.folder_id = f.id)
     FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = 'st'" >"$D/folders.txt"
check "status --json after the sync agrees with Postgres and Redis" python3 - "$D" "$run" "$MP_IMAP_PORT" <<'PY'
import imaplib, json, sys
d, run, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = json.load(open(d + "/after.json"))
a, = s["accounts"]
assert a["running_run_id"] is None and a["last_run"]["run_id"] == run, a
assert a["last_run"]["status"] == "ok" and a["last_run"]["request_id"] == "hold-1", a["last_run"]
assert a["last_sync_at"] and a["state"] == "active", a
imap = imaplib.IMAP4("127.0.0.1", port)
imap.login("demo", "demo")
want = {}
for line in open(d + "/folders.txt").read().splitlines():
    name, wire, server, stored = line.split("|")
    typ, data = imap.status('"%s"' % wire, "(MESSAGES)")
    dovecot = int(data[0].decode().rsplit("MESSAGES ", 1)[1].rstrip(")"))
    assert int(server) == dovecot, (name, server, dovecot)
    want[name] = (dovecot, int(stored))
got = {f["name"]: (f["message_count"], f["stored_count"]) for f in a["folders"]}
assert got == want, (got, want)
assert all(g["pending"] == 0 for x in s["streams"] for g in x["groups"] if g["group"] != "app"), s["streams"]
assert s["dead_letters"] == 0
print(f"  folders (server, stored): {got}")
PY

# Backoff and auth failure are the account's state (common/account_state.c): a backoff as the
# writer leaves it when a server asks for an hour's wait (test_states.sh and test_hostile.sh
# bring it about for real), and a refused login through the pipeline.
sql "UPDATE accounts SET state = 'backoff', next_sync_at = now() + interval '1 hour' WHERE name = 'st'"
check "an account whose next sync a server pushed back is in backoff until then" python3 -c '
import json, subprocess
a, = json.loads(subprocess.check_output(["mailpipe", "status", "st", "--json"]))["accounts"]
assert a["state"] == "backoff" and a["backoff_until"] == a["next_sync_at"], a'
mailpipe account resume st >/dev/null
mailpipe account add bad --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username demo \
	--secret env:WRONG_SECRET --ca-file "$MP_CA_FILE" --interval 0 >/dev/null
WRONG_SECRET=nope
export WRONG_SECRET
run_stop
run_start
mailpipe sync bad --wait --timeout 60 >/dev/null
check "an account whose login was refused is auth_failed, with the server's words" python3 -c '
import json, subprocess
a, = json.loads(subprocess.check_output(["mailpipe", "status", "bad", "--json"]))["accounts"]
assert a["state"] == "auth_failed" and "auth failed for account" in a["last_error"], a'

# sync --wait: progress lines at a terminal, the summary alone otherwise.
doveadm -c "$MP_DOVECOT_CONF" mailbox update -u demo --uid-validity 4343 INBOX
script -qfec "mailpipe sync st --wait --timeout 120" /dev/null >"$D/tty.out" 2>&1
check "sync --wait at a terminal exits 0" [ $? -eq 0 ]
check "sync --wait at a terminal draws a progress line for INBOX" \
	grep -aqE 'INBOX +ok +[0-9]+ fetched +[0-9]+ parsed +[1-9][0-9]* written' "$D/tty.out"
check "... and prints the JSON summary" grep -aq '"status": "ok"' "$D/tty.out"
doveadm -c "$MP_DOVECOT_CONF" mailbox update -u demo --uid-validity 4444 INBOX
script -qfec "mailpipe sync st --wait --json --timeout 120" /dev/null >"$D/tty-json.out" 2>&1
check "sync --wait --json at a terminal prints no progress line" \
	bash -c "! grep -aq 'fetched ' '$D/tty-json.out' && grep -aq '\"status\": \"ok\"' '$D/tty-json.out'"
mailpipe sync st --wait --timeout 120 >"$D/plain.out" 2>"$D/plain.err"
check "sync --wait without a terminal: only the JSON summary, on stdout" \
	bash -c "[ ! -s '$D/plain.err' ] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' '$D/plain.out'"

# --watch redraws every second at a terminal and ends on SIGINT.
script -qfc "exec mailpipe status st --watch" "$D/watch.out" >/dev/null 2>&1 &
spid=$!
sleep 3.5
wpid=$(pgrep -P "$spid" | head -1)
kill -INT "$wpid"
wait "$spid"
check "status --watch ends on SIGINT with status 0" [ $? -eq 0 ]
check "status --watch redrew the screen at least three times" \
	[ "$(grep -ao $'\033\\[H\033\\[2J' "$D/watch.out" | wc -l)" -ge 3 ]
mailpipe status --watch --json >"$D/watch.jsonl" &
wpid=$!
sleep 2.5
kill -INT "$wpid"
wait "$wpid"
check "status --watch --json: one JSON document per line until SIGINT" \
	python3 -c 'import json,sys; l = open(sys.argv[1]).read().splitlines(); assert len(l) >= 2; [json.loads(x) for x in l]' "$D/watch.jsonl"

# Usage.
mailpipe status --bogus >/dev/null 2>&1
check "status --bogus exits 2" [ $? -eq 2 ]
mailpipe status st bad >/dev/null 2>&1
check "status with two names exits 2" [ $? -eq 2 ]
err=$(mailpipe status nobody 2>&1)
check "status of an unknown account exits 1 naming it" \
	[ $? -eq 1 -a "$err" = "mailpipe: no account named 'nobody'" ]
mailpipe sync --wait --json >/dev/null 2>&1
check "sync without a NAME exits 2" [ $? -eq 2 ]
finish
