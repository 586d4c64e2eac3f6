#!/usr/bin/env python3
"""Appends messages to INBOX (or FOLDER) over IMAP and times how long each takes to be committed.

usage: push_append.py HOST PORT USER PASSWORD ACCOUNT COUNT [TIMEOUT_S [FOLDER]]

For each of COUNT messages (one at a time): APPEND with a unique Message-ID, then poll the
database until a message row with that Message-ID exists for ACCOUNT. Prints one line per
message and a last line "latency_ms median=M p95=P max=X missing=N"; exits 1 when any message
was not committed within TIMEOUT_S (default 10).
"""
import imaplib
import os
import subprocess
import sys
import time


def committed(account, msgid):
    sql = ("SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id "
           f"WHERE a.name = '{account}' AND m.message_id = '{msgid}'")
    out = subprocess.run(["psql", os.environ["MAILPIPE_DATABASE_URL"], "-X", "-q", "-A", "-t",
                          "-c", sql], capture_output=True, text=True).stdout.strip()
    return out == "1"


def main():
    host, port, user, password, account, count = sys.argv[1:7]
    timeout = float(sys.argv[7]) if len(sys.argv) > 7 else 10.0
    folder = sys.argv[8] if len(sys.argv) > 8 else "INBOX"
    imap = imaplib.IMAP4(host, int(port))
    imap.login(user, password)
    lat, missing = [], 0
    for i in range(int(count)):
        msgid = f"push-{i}-{time.time_ns()}@example.org"
        raw = (f"From: Pusher <push@example.org>\r\nTo: demo@example.org\r\nSubject: push {i}\r\n"
               f"Message-ID: <{msgid}>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\n"
               f"pushed body {i}\r\n").encode()
        t0 = time.monotonic()
        imap.append(f'"{folder}"', "()", None, raw)
        while not committed(account, msgid):
            if time.monotonic() - t0 > timeout:
                missing += 1
                break
            time.sleep(0.005)
        else:
            lat.append((time.monotonic() - t0) * 1000)
            print(f"message {i}: committed after {lat[-1]:.0f} ms")
    imap.logout()
    lat.sort()
    if lat:
        p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
        print(f"latency_ms median={lat[len(lat) // 2]:.0f} p95={p95:.0f} max={lat[-1]:.0f} missing={missing}")
    else:
        print(f"latency_ms median=- p95=- max=- missing={missing}")
    return 1 if missing else 0


sys.exit(main())
