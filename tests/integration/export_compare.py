#!/usr/bin/env python3
"""Compares `mailpipe export ID --format eml` with the bytes the IMAP server serves, for every
message location of one account.

usage: export_compare.py ACCOUNT HOST PORT USER PASSWORD

For each server folder and UID: UID FETCH BODY.PEEK[] over IMAP (stdlib imaplib), the message id
mailpipe stored at that location (psql), and the export's stdout; they must be equal byte for
byte. Prints PASS/FAIL lines and a summary line "compared N messages (B bytes): CR-LF a, bare LF
b, 8-bit c, NUL d"; exits 1 on any difference.
"""
import imaplib
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify import mutf7_decode, psql  # noqa: E402


def fetch_folder(imap, wire):
    """{uid: raw bytes} of one folder, read-only."""
    typ, _ = imap.select(wire, readonly=True)
    if typ != "OK":
        raise RuntimeError(f"SELECT {wire} failed")
    typ, data = imap.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    out = {}
    for item in data:
        if isinstance(item, tuple):
            m = re.search(rb"UID (\d+)", item[0])
            out[int(m.group(1))] = item[1]
    return out


def main():
    account, host, port, user, password = sys.argv[1:6]
    imap = imaplib.IMAP4(host, int(port))
    imap.login(user, password)
    _, lines = imap.list('""', "*")
    stored = {(f, int(u)): int(i) for f, u, i in psql(
        "SELECT f.name, l.uid, l.message_id FROM message_locations l "
        "JOIN email_folders f ON f.id = l.folder_id JOIN accounts a ON a.id = f.account_id "
        "WHERE a.name = :'p0'", account)}
    compared = nbytes = 0
    kinds = {"CR-LF": 0, "bare LF": 0, "8-bit": 0, "NUL": 0}
    missing, different = [], []
    for line in lines:
        m = re.match(rb'\((.*?)\) (?:"(.)"|NIL) (.*)', line)
        if b"\\Noselect" in m.group(1):
            continue
        wire = m.group(3).decode()
        name = mutf7_decode(wire.strip('"'))
        for uid, raw in sorted(fetch_folder(imap, wire if wire.startswith('"') else f'"{wire}"').items()):
            mid = stored.get((name, uid))
            if mid is None:
                missing.append(f"{name}/{uid}")
                continue
            got = subprocess.run(["mailpipe", "export", str(mid), "--format", "eml"],
                                 capture_output=True, check=False)
            compared += 1
            nbytes += len(raw)
            if got.returncode != 0 or got.stdout != raw:
                different.append(f"{name}/{uid} (id {mid}: {len(got.stdout)} bytes exported, "
                                 f"{len(raw)} served, rc {got.returncode})")
            kinds["CR-LF"] += b"\r\n" in raw
            kinds["bare LF"] += re.search(rb"(?<!\r)\n", raw) is not None
            kinds["8-bit"] += any(b >= 0x80 for b in raw)
            kinds["NUL"] += b"\0" in raw
    imap.logout()
    ok = True
    for name, bad in (("every server message has a stored location", missing),
                      ("every export is byte-equal to the server's copy", different)):
        if bad:
            ok = False
            print(f"FAIL {name}: {len(bad)}: {', '.join(bad[:5])}")
        else:
            print(f"PASS {name}")
    print(f"compared {compared} messages ({nbytes} bytes): " +
          ", ".join(f"{k} {v}" for k, v in kinds.items()))
    return 0 if ok and compared else 1


if __name__ == "__main__":
    sys.exit(main())
