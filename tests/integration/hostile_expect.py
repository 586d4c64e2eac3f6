#!/usr/bin/env python3
"""The expected outcome of each hostile_imap.py scenario, checked by test_hostile.sh.

usage: hostile_expect.py --list | --check DIR | --check-resync DIR MARK

DIR holds each account's `sync --wait` summary (NAME.json), its exit status and start/end times
(NAME.rc) and the server's own log (server.jsonl: one JSON object per connection event and
command). Checks read the database with psql. Prints PASS/FAIL lines and a table of figures:
time to the outcome, connections and logins the server saw; exits 1 when any check failed.
"""
import json
import os
import re
import subprocess
import sys

RETRIES = int(os.environ.get("MAILPIPE_FETCH_RETRIES", "2"))
ALL = {"INBOX": 12, "Archive": 3}

# name -> expectation. rc: exit status of sync --wait; status: the run's; inbox: INBOX's status
# in the summary; error: a regex the failing folder's (or the run's) error must match; stored:
# locations per folder; and a few scenario-specific checks below.
SCENARIOS = {
    "good": dict(rc=0, status="ok", stored=ALL),
    "hugeliteral": dict(rc=1, inbox="failed", error=r"literal larger than max_literal \(\d+\)",
                        stored={"INBOX": 0, "Archive": 3}),
    "endlessline": dict(rc=1, inbox="failed", error=r"line longer than max_line \(\d+\)",
                        stored={"INBOX": 0, "Archive": 3}),
    "endlessgreeting": dict(rc=1, run_error=r"account 'endlessgreeting' at 127\.0\.0\.1:\d+"),
    "nogreeting": dict(rc=1, run_error=r"account 'nogreeting' at 127\.0\.0\.1:\d+: .*[Tt]imeout|timed out"),
    "cutliteral": dict(rc=1, inbox="failed", error=r"server closed the connection",
                       stored={"INBOX": 0, "Archive": 3}, inbox_attempts=RETRIES + 1),
    "cutliteralonce": dict(rc=0, status="ok", stored=ALL),
    "cutcommand": dict(rc=1, inbox="failed", error=r"server closed the connection",
                       stored={"INBOX": 0, "Archive": 3}, inbox_attempts=RETRIES + 1),
    "garbage": dict(rc=1, inbox="failed", error=r"bad response from server|closed the connection",
                    stored={"Archive": 3}),
    "byefetch": dict(rc=1, inbox="failed", error=r"\[UNAVAILABLE\] Server shutting down",
                     stored={"INBOX": 2 * (RETRIES + 1), "Archive": 3}, last_uid={"INBOX": 0}),
    "slowloris": dict(rc=1, inbox="failed", error=r"server too slow: \d+ bytes in 3s",
                      stored={"INBOX": 0, "Archive": 3}),
    "missing": dict(rc=1, status="incomplete", inbox="incomplete",
                    error=r"did not deliver 1 listed message \(UIDs 3\)",
                    stored={"INBOX": 11, "Archive": 3}, last_uid={"INBOX": 2}, missing="3"),
    "missingonce": dict(rc=0, status="ok", stored=ALL, last_uid={"INBOX": 12}),
    "missinggone": dict(rc=0, status="ok", stored={"INBOX": 11, "Archive": 3},
                        last_uid={"INBOX": 12}),
    "throttled": dict(rc=0, status="ok", stored=ALL, login_gap=2.0),
    "throttlednohint": dict(rc=0, status="ok", stored=ALL),
    "throttledalways": dict(rc=1, run_error=r"login refused .*\[THROTTLED\]", logins=1,
                            next_sync_after_s=590),
    "limit": dict(rc=0, status="ok", stored=ALL),
    "unavailable": dict(rc=1, inbox="failed", error=r"EXAMINE refused .*\[UNAVAILABLE\] Mailbox",
                        stored={"INBOX": 0, "Archive": 3}, examines=RETRIES + 1),
    "unavailableonce": dict(rc=0, status="ok", stored=ALL),
    "byelogin": dict(rc=0, status="ok", stored=ALL, login_gap=3.0),
    "badpw": dict(rc=1, run_error=r"auth failed for account 'badpw' at 127\.0\.0\.1:\d+: "
                                  r".*AUTHENTICATIONFAILED", refused_logins=1, user="good"),
}

failures = 0


def check(name, ok, detail=""):
    global failures
    print(f"PASS {name}" if ok else f"FAIL {name}: {detail}")
    failures += 0 if ok else 1


def psql(sql, *args):
    cmd = ["psql", os.environ["MAILPIPE_DATABASE_URL"], "-X", "-q", "-A", "-t", "-F", "\t",
           "-v", "ON_ERROR_STOP=1"]
    for i, a in enumerate(args):
        cmd += ["-v", f"p{i}={a}"]
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def server_log(d, start=0):
    with open(os.path.join(d, "server.jsonl")) as f:
        return [json.loads(line) for i, line in enumerate(f) if i >= start and line.strip()]


def stored(account):
    rows = psql("SELECT f.name, count(l.id), f.last_uid FROM email_folders f "
                "JOIN accounts a ON a.id = f.account_id "
                "LEFT JOIN message_locations l ON l.folder_id = f.id "
                "WHERE a.name = :'p0' GROUP BY f.name, f.last_uid", account)
    return {r[0]: int(r[1]) for r in rows}, {r[0]: int(r[2]) for r in rows}


def uid_set(text):
    out = set()
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def body_fetches(events, user, folder="INBOX"):
    """The UID sets of UID FETCH commands that asked for message bodies in folder."""
    sets, selected = [], {}
    for e in events:
        line = e.get("line") or ""
        if e.get("user") != user or e.get("event") != "command":
            continue
        sel = re.match(r"\S+ (?:EXAMINE|SELECT) \"?([^\"]*)\"?$", line, re.I)
        if sel:
            selected[e.get("conn")] = sel.group(1)
        m = re.match(r"\S+ UID FETCH ([\d:,]+) \((.*)\)", line, re.I)
        if m and "BODY" in m.group(2).upper() and selected.get(e.get("conn")) == folder:
            sets.append(uid_set(m.group(1)))
    return sets


def check_scenario(d, name, exp, events, figures):
    rc_line = open(os.path.join(d, f"{name}.rc")).read().split()
    rc, elapsed = int(rc_line[0]), float(rc_line[2]) - float(rc_line[1])
    try:
        summary = json.load(open(os.path.join(d, f"{name}.json")))
    except ValueError:
        summary = {}
    user = exp.get("user", name)
    mine = [e for e in events if e.get("user") == user]
    logins = [e for e in mine if e.get("event") in ("login_ok", "login_no")]
    figures.append((name, rc, elapsed, len({e.get("conn") for e in mine}), len(logins)))

    check(f"{name}: sync --wait exits {exp['rc']}", rc == exp["rc"], f"exit {rc}")
    check(f"{name}: the run ended ({summary.get('status')})",
          summary.get("status") in ("ok", "failed", "incomplete"), json.dumps(summary)[:300])
    if "status" in exp:
        check(f"{name}: run status {exp['status']}", summary.get("status") == exp["status"],
              summary.get("status"))
    folders = {f["folder"]: f for f in summary.get("folders", [])}
    if "inbox" in exp:
        inbox = folders.get("INBOX", {})
        check(f"{name}: INBOX is {exp['inbox']}", inbox.get("status") == exp["inbox"],
              json.dumps(inbox))
        check(f"{name}: INBOX's error names the cause", re.search(exp["error"], inbox.get("error") or ""),
              inbox.get("error"))
        err = psql("SELECT f.last_error FROM email_folders f JOIN accounts a ON a.id = f.account_id "
                   "WHERE a.name = :'p0' AND f.name = 'INBOX'", name)
        check(f"{name}: the folder row keeps the error", err and re.search(exp["error"], err[0][0] or ""),
              err)
        check(f"{name}: Archive still synced", folders.get("Archive", {}).get("status") == "ok",
              json.dumps(folders.get("Archive")))
        check(f"{name}: error is one line naming the account and folder",
              exp["inbox"] == "incomplete" or ("\n" not in (inbox.get("error") or "") and
              f"'{name}'" in (inbox.get("error") or "") and "INBOX" in (inbox.get("error") or "")),
              inbox.get("error"))
    if "run_error" in exp:
        check(f"{name}: the run's error names the cause", re.search(exp["run_error"], summary.get("error") or ""),
              summary.get("error"))
        acc = psql("SELECT last_error FROM accounts WHERE name = :'p0'", name)
        check(f"{name}: the account keeps the error", acc and re.search(exp["run_error"], acc[0][0] or ""), acc)
    counts, last_uid = stored(name)
    for folder, n in exp.get("stored", {}).items():
        check(f"{name}: {folder} holds {n} messages", counts.get(folder, 0) == n, counts)
    for folder, n in exp.get("last_uid", {}).items():
        check(f"{name}: {folder}'s cursor is at {n}", last_uid.get(folder) == n, last_uid)
    if "missing" in exp:
        inbox = folders.get("INBOX", {})
        check(f"{name}: summary counts UID {exp['missing']} as missing",
              inbox.get("missing") == exp["missing"] and inbox.get("missing_count") == 1
              and summary.get("missing_count") == 1, json.dumps(inbox))
        asked = [s for s in body_fetches(events, user) if 3 in s]
        check(f"{name}: UID 3 was asked for twice in the job", len(asked) == 2, asked)
    if "inbox_attempts" in exp:
        n = len([e for e in mine if e.get("event") == "misbehave"])
        check(f"{name}: the server saw {exp['inbox_attempts']} attempts on INBOX", n == exp["inbox_attempts"], n)
    if "examines" in exp:
        n = len([e for e in mine if e.get("event") == "command" and
                 re.match(r"\S+ (EXAMINE|SELECT) \"?INBOX\"?$", e.get("line") or "", re.I)])
        check(f"{name}: INBOX was tried {exp['examines']} times", n == exp["examines"], n)
    if "logins" in exp:
        check(f"{name}: tried to log in {exp['logins']} time(s) only", len(logins) == exp["logins"], len(logins))
    if "refused_logins" in exp:
        n = len([e for e in logins if e.get("event") == "login_no"])
        check(f"{name}: a refused password is tried {exp['refused_logins']} time only", n == exp["refused_logins"], n)
    if "login_gap" in exp:
        t = sorted(e["t"] for e in logins)
        gap = t[1] - t[0] if len(t) > 1 else 0
        check(f"{name}: retried after the hinted {exp['login_gap']} s (waited {gap:.2f} s)",
              gap >= exp["login_gap"], t[:3])
    if "next_sync_after_s" in exp:
        left = psql("SELECT extract(epoch FROM a.next_sync_at - r.finished_at)::int FROM accounts a "
                    "JOIN sync_runs r ON r.account_id = a.id WHERE a.name = :'p0' "
                    "ORDER BY r.run_id LIMIT 1", name)
        check(f"{name}: the next sync waits for the server's hint ({left[0][0]} s after the run)",
              int(left[0][0]) >= exp["next_sync_after_s"], left)


def main():
    if sys.argv[1] == "--list":
        print(" ".join(SCENARIOS))
        return 0
    d = sys.argv[2]
    if sys.argv[1] == "--check":
        events, figures = server_log(d), []
        for name, exp in SCENARIOS.items():
            check_scenario(d, name, exp, events, figures)
        print("  scenario          exit  seconds  connections  logins")
        for f in figures:
            print(f"  {f[0]:<17} {f[1]:>4}  {f[2]:>7.1f}  {f[3]:>11}  {f[4]:>6}")
    elif sys.argv[1] == "--check-resync":
        events = server_log(d, int(sys.argv[3]))
        sets = body_fetches(events, "missing")
        check("missing, second sync: only UID 3 is asked for again (nothing stored is downloaded twice)",
              sets and all(s == {3} for s in sets), sets)
        counts, last_uid = stored("missing")
        check("missing, second sync: cursor still below UID 3, 11 stored",
              last_uid.get("INBOX") == 2 and counts.get("INBOX") == 11, (counts, last_uid))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
