#!/usr/bin/env python3
"""Changes a mailbox for test_objectid.sh, over IMAP, and prints what the test needs to know.

usage: objectid_change.py HOST PORT USER PASSWORD STEP ARGS...

Steps:
  caps                          prints the CAPABILITY list after login
  sha FOLDER UID                prints the sha256 of that message's raw bytes
  move FROM TO                  UID MOVE of FROM's lowest UID to TO; prints its sha256
  copy FROM TO                  UID COPY of FROM's lowest UID to TO; prints its sha256
  rename FROM TO                RENAME
  recreate FOLDER               deletes FOLDER and creates it again with the same messages
                                (bytes, flags, internal dates): a new UIDVALIDITY; prints it
  append FOLDER SUBJECT         APPENDs a new message; prints "EMAILID SHA256" (EMAILID is
                                "-" when the server has none)
"""
import hashlib
import imaplib
import re
import sys


def lowest_uid(imap, folder):
    typ, _ = imap.select(folder)
    assert typ == "OK", folder
    typ, data = imap.uid("SEARCH", None, "ALL")
    return sorted(int(x) for x in data[0].split())[0]


def raw_of(imap, uid):
    typ, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
    return next(part[1] for part in data if isinstance(part, tuple))


def main():
    host, port, user, pw, step, *args = sys.argv[1:]
    imap = imaplib.IMAP4(host, int(port))
    imap.login(user, pw)
    if step == "caps":
        print(" ".join(imap.capabilities))
    elif step == "sha":
        imap.select(args[0], readonly=True)
        print(hashlib.sha256(raw_of(imap, int(args[1]))).hexdigest())
    elif step in ("move", "copy"):
        uid = lowest_uid(imap, args[0])
        print(hashlib.sha256(raw_of(imap, uid)).hexdigest())
        typ, data = imap.uid(step.upper(), str(uid), args[1])
        assert typ == "OK", data
    elif step == "rename":
        typ, data = imap.rename(args[0], args[1])
        assert typ == "OK", data
    elif step == "recreate":
        folder = args[0]
        imap.select(folder, readonly=True)
        typ, data = imap.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        msgs = []
        for part in data:
            if not isinstance(part, tuple):
                continue
            head = part[0].decode()
            flags = re.search(r"FLAGS \(([^)]*)\)", head).group(1)
            flags = " ".join(f for f in flags.split() if f.lower() != "\\recent")
            date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
            msgs.append((flags, '"' + date + '"', part[1]))
        imap.close()
        for typ, data in (imap.delete(folder), imap.create(folder)):
            assert typ == "OK", data
        for flags, date, raw in msgs:
            typ, data = imap.append(folder, "(" + flags + ")", date, raw)
            assert typ == "OK", data
        typ, data = imap.status(folder, "(UIDVALIDITY)")
        print(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1).decode())
    elif step == "append":
        folder, subject = args
        raw = ("From: Someone <someone@example.org>\r\nTo: demo@example.org\r\n"
               f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@example.org>\r\n"
               "Date: Mon, 1 Dec 2025 10:00:00 +0000\r\n\r\nA message appended by "
               f"objectid_change.py: {subject}.\r\n").encode()
        typ, data = imap.append(folder, "()", None, raw)
        assert typ == "OK", data
        emailid = "-"
        if "OBJECTID" in imap.capabilities:
            imap.select(folder, readonly=True)
            typ, data = imap.uid("SEARCH", None, "HEADER", "Subject", '"' + subject + '"')
            uid = data[0].split()[-1].decode()
            typ, data = imap.uid("FETCH", uid, "(EMAILID)")
            emailid = re.search(rb"EMAILID \(([^)]+)\)", data[0]).group(1).decode()
        print(emailid, hashlib.sha256(raw).hexdigest())
    else:
        sys.exit(f"unknown step {step}")
    imap.logout()


if __name__ == "__main__":
    main()
