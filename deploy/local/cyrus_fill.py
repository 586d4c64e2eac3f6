#!/usr/bin/env python3
"""Creates a Cyrus user's mailbox over IMAP and fills it from a sample Maildir; called by cyrus.sh.

    cyrus_fill.py --port P --admin NAME --user NAME [--maildir DIR] [--host H]
    (passwords in MP_CYRUS_ADMIN_PASSWORD and MP_CYRUS_USER_PASSWORD)

The admin CREATEs user/NAME (Cyrus's INBOX of NAME). With --maildir, the user then CREATEs each
folder of sample_mailbox.py's Maildir++ under the server's personal namespace (NAMESPACE says
whether folders are INBOX's siblings or children, and the delimiter), with its special use, and
APPENDs every message with its Maildir flags and its file time as internal date, in delivery
order, so UIDs follow the same order as Dovecot's. A mailbox that already holds mail is left
alone. Only the standard library is used.
"""
import argparse
import imaplib
import os
import re
import socket
import sys

FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted",
         "P": "$Forwarded"}
SPECIAL = {"Sent": "\\Sent", "Archive": "\\Archive", "Trash": "\\Trash"}


def quote(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ok(imap, what, typ, data):
    if typ != "OK":
        raise SystemExit("cyrus_fill: %s refused: %s" % (what, data))


def delimiter(imap):
    typ, data = imap.list('""', '""')
    ok(imap, 'LIST "" ""', typ, data)
    m = re.match(rb'\(.*?\) (?:"((?:\\.|[^"\\])+)"|NIL)', data[0] or b"")
    if not m:
        raise SystemExit("cyrus_fill: cannot read the delimiter from %r" % data)
    return m.group(1).decode().replace("\\\\", "\\") if m.group(1) else "/"


def personal_prefix(imap):
    """The personal namespace's prefix: "" (altnamespace) or "INBOX/" (or "INBOX.")."""
    typ, data = imap.namespace()
    ok(imap, "NAMESPACE", typ, data)
    m = re.match(rb'\(\("([^"]*)" ', data[0])
    if not m:
        raise SystemExit("cyrus_fill: no personal namespace in %r" % data[0])
    return m.group(1).decode()


def maildir_folders(root):
    """[(mUTF-7 components, dir)] with INBOX first; Maildir++ names folders .a.b (mUTF-7)."""
    out = [([], root)]
    for d in sorted(os.listdir(root)):
        if d.startswith(".") and d not in (".", "..") and os.path.isdir(os.path.join(root, d)):
            out.append((d[1:].split("."), os.path.join(root, d)))
    return out


def messages(folder_dir):
    """[(serial, path, flags, mtime)] in delivery order (the M<serial> in the file name)."""
    msgs = []
    for sub in ("cur", "new"):
        p = os.path.join(folder_dir, sub)
        for f in os.listdir(p) if os.path.isdir(p) else []:
            m = re.search(r"\.M(\d+)P", f)
            if not m:
                continue
            flags = f.split(":2,", 1)[1] if ":2," in f else ""
            path = os.path.join(p, f)
            msgs.append((int(m.group(1)), path, flags, os.stat(path).st_mtime))
    msgs.sort()
    return msgs


def connect(host, port):
    imap = imaplib.IMAP4(host, port)
    # imaplib waits for "+" before each literal: without NODELAY every APPEND costs a delayed
    # ACK (60 ms instead of 12 ms against Cyrus).
    imap.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return imap


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--admin", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--maildir")
    a = ap.parse_args()

    imap = connect(a.host, a.port)
    imap.login(a.admin, os.environ["MP_CYRUS_ADMIN_PASSWORD"])
    # The admin sees the internal namespace: user/NAME is NAME's INBOX ('/' as delimiter with
    # unixhierarchysep; '.' without).
    delim = delimiter(imap)
    box = "user" + delim + a.user
    typ, data = imap.create(quote(box))
    if typ != "OK" and b"exists" not in b" ".join(data).lower():
        ok(imap, "CREATE " + box, typ, data)
    imap.logout()
    if not a.maildir:
        return 0

    imap = connect(a.host, a.port)
    imap.login(a.user, os.environ["MP_CYRUS_USER_PASSWORD"])
    prefix, delim = personal_prefix(imap), delimiter(imap)
    typ, data = imap.status("INBOX", "(MESSAGES)")
    ok(imap, "STATUS INBOX", typ, data)
    if not re.search(rb"MESSAGES 0\b", data[0]):
        print("cyrus_fill: %s already has mail; sample not appended" % a.user, file=sys.stderr)
        imap.logout()
        return 0
    total = 0
    for comps, d in maildir_folders(a.maildir):
        name = prefix + delim.join(comps) if comps else "INBOX"
        if comps:
            use = SPECIAL.get(comps[0]) if len(comps) == 1 else None
            if use:
                typ, data = imap._simple_command("CREATE", quote(name), "(USE (%s))" % use)
                typ, data = imap._untagged_response(typ, data, "CREATE")
            else:
                typ, data = imap.create(quote(name))
            if typ != "OK" and b"exists" not in b" ".join(data).lower():
                ok(imap, "CREATE " + name, typ, data)
        for _, path, flags, mtime in messages(d):
            with open(path, "rb") as f:
                raw = f.read()
            fl = " ".join(FLAGS[c] for c in flags if c in FLAGS)
            typ, data = imap.append(quote(name), "(%s)" % fl if fl else None,
                                    imaplib.Time2Internaldate(mtime), raw)
            ok(imap, "APPEND of %s to %s" % (os.path.basename(path), name), typ, data)
            total += 1
    imap.logout()
    print("cyrus_fill: %s: %d messages appended" % (a.user, total), file=sys.stderr)
    return 0


sys.exit(main())
