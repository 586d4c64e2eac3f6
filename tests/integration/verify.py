#!/usr/bin/env python3
"""Compares what mailpipe stored for one account with what the IMAP server holds.

Ground truth comes from the server itself over IMAP (stdlib imaplib): every folder, every UID,
its flags and the sha256 of its raw bytes. The database side is read with psql. Prints one
PASS/FAIL line per invariant and exits 1 when any failed.

usage: verify.py ACCOUNT HOST PORT USER PASSWORD [--summary FILE] [--expect-new N]
"""
import argparse
import hashlib
import imaplib
import json
import os
import re
import subprocess
import sys

failures = 0


def check(name, ok, detail=""):
    global failures
    if ok:
        print(f"PASS {name}")
    else:
        failures += 1
        print(f"FAIL {name}: {detail}")


def psql(sql, *args):
    cmd = ["psql", os.environ["MAILPIPE_DATABASE_URL"], "-X", "-q", "-A", "-t", "-F", "\t",
           "-v", "ON_ERROR_STOP=1"]
    for i, a in enumerate(args):
        cmd += ["-v", f"p{i}={a}"]
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def mutf7_decode(s):
    def dec(m):
        b = m.group(1)
        if b == "":
            return "&"
        b = b.replace(",", "/")
        b += "=" * (-len(b) % 4)
        import base64
        return base64.b64decode(b).decode("utf-16-be")
    return re.sub(r"&([^-]*)-", dec, s)


def server_truth(host, port, user, password):
    imap = imaplib.IMAP4(host, int(port))
    imap.login(user, password)
    typ, lines = imap.list('""', "*")
    folders = {}
    for line in lines:
        m = re.match(rb'\((.*?)\) (?:"(.)"|NIL) (.*)', line)
        attrs, wire = m.group(1).decode(), m.group(3).decode()
        if wire.startswith('"'):
            wire = wire[1:-1]
        if "\\Noselect" in attrs or "\\NonExistent" in attrs:
            continue
        typ, data = imap.select(f'"{wire}"', readonly=True)
        typ, uv = imap.response("UIDVALIDITY")
        msgs = {}
        typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
        for item in data:
            if not isinstance(item, tuple):
                continue
            head, body = item
            uid = int(re.search(rb"UID (\d+)", head).group(1))
            flags = re.search(rb"FLAGS \((.*?)\)", head).group(1).decode().split()
            msgs[uid] = (sorted(f for f in flags if f != "\\Recent"), hashlib.sha256(body).hexdigest())
        status = imap.status(f'"{wire}"', "(MESSAGES UNSEEN)")[1][0].decode()
        n = int(re.search(r"MESSAGES (\d+)", status).group(1))
        unseen = int(re.search(r"UNSEEN (\d+)", status).group(1))
        folders[mutf7_decode(wire)] = {"uidvalidity": int(uv[0]), "messages": msgs,
                                       "count": n, "unseen": unseen}
    imap.logout()
    return folders


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("account")
    ap.add_argument("host")
    ap.add_argument("port")
    ap.add_argument("user")
    ap.add_argument("password")
    ap.add_argument("--summary")
    ap.add_argument("--expect-new", type=int, default=None,
                    help="messages the summarised run should have ingested (default: all)")
    a = ap.parse_args()

    truth = server_truth(a.host, a.port, a.user, a.password)
    total = sum(len(f["messages"]) for f in truth.values())
    distinct = {h for f in truth.values() for (_, h) in f["messages"].values()}

    rows = psql("""SELECT f.name, l.uidvalidity, l.uid, array_to_string(l.flags, ' '), m.content_sha256
                   FROM message_locations l JOIN email_folders f ON f.id = l.folder_id
                   JOIN messages m ON m.id = l.message_id JOIN accounts a ON a.id = f.account_id
                   WHERE a.name = :'p0'""", a.account)
    stored = {}
    dup_locations = 0
    for name, uidv, uid, flags, sha in rows:
        key = (name, int(uidv), int(uid))
        if key in stored:
            dup_locations += 1
        stored[key] = (sorted(flags.split()), sha)
    expected = {(fn, f["uidvalidity"], uid): v for fn, f in truth.items()
                for uid, v in f["messages"].items()}
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    check("every server message has exactly one location", not missing and not extra
          and dup_locations == 0,
          f"{len(missing)} missing e.g. {missing[:3]}, {len(extra)} extra e.g. {extra[:3]}, "
          f"{dup_locations} doubled")
    wrong = [k for k in expected if k in stored and stored[k] != expected[k]]
    check("locations carry the server's flags and content", not wrong,
          f"{len(wrong)} differ, e.g. {wrong[:3]}: {[(stored[k], expected[k]) for k in wrong[:2]]}")

    nmsg = int(psql("SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id "
                    "WHERE a.name = :'p0'", a.account)[0][0])
    check("one message row per distinct content", nmsg == len(distinct),
          f"{nmsg} rows for {len(distinct)} distinct contents ({total} server messages)")

    counts = {r[0]: (int(r[1]), int(r[2])) for r in psql(
        "SELECT f.name, f.message_count, f.unread_count FROM email_folders f "
        "JOIN accounts a ON a.id = f.account_id WHERE a.name = :'p0'", a.account)}
    bad = {fn: (counts.get(fn), (f["count"], f["unseen"])) for fn, f in truth.items()
           if counts.get(fn) != (f["count"], f["unseen"])}
    check("folder message_count and unread_count equal the server's", not bad, f"{bad}")
    check("folders equal the server's list", set(counts) == set(truth),
          f"stored {sorted(counts)} server {sorted(truth)}")

    if a.summary:
        s = json.load(open(a.summary))
        new = len(distinct) if a.expect_new is None else a.expect_new
        fetched = total if a.expect_new is None else a.expect_new
        dups = total - len(distinct) if a.expect_new is None else 0
        check("summary status ok", s.get("status") == "ok", s.get("status"))
        check("summary folder_count", s.get("folder_count") == len(truth),
              f"{s.get('folder_count')} != {len(truth)}")
        check("summary fetched/ingested/duplicate counts",
              (s.get("fetched_count"), s.get("ingested_count"), s.get("duplicate_count"))
              == (fetched, new, dups),
              f"got {(s.get('fetched_count'), s.get('ingested_count'), s.get('duplicate_count'))}"
              f" expected {(fetched, new, dups)}")
        per = {f["folder"]: f for f in s.get("folders", [])}
        badf = [fn for fn, f in truth.items() if fn not in per or per[fn]["status"] != "ok"
                or per[fn]["uidvalidity"] != f["uidvalidity"]
                or per[fn]["last_uid"] < max(f["messages"] or [0])]
        check("summary per-folder status, uidvalidity and last_uid", not badf,
              f"{badf}: {[per.get(fn) for fn in badf[:2]]}")
        if a.expect_new is None:
            fsum = {fn: per[fn]["fetched_count"] for fn in per}
            tsum = {fn: len(f["messages"]) for fn, f in truth.items()}
            check("summary per-folder fetched counts", fsum == tsum, f"{fsum} != {tsum}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
