#!/usr/bin/env python3
"""Changes the demo mailbox the way a mail client does, over IMAP, for test_mirror.sh.

usage: mirror_change.py HOST PORT USER PASSWORD STEP [DELIMITER]

Steps: flags (set and clear \\Seen, \\Flagged, \\Answered and a keyword), expunge, move (MOVE
and COPY between folders), append (new mail, some of it replies to stored threads), mkfolder
(create a folder with a non-ASCII name and mail in it), rename (rename it, non-ASCII again),
rmfolder (delete it). Prints one line saying what it did.
"""
import base64
import imaplib
import re
import sys
import time


def mutf7(name):
    out, buf = [], ""
    def flush():
        nonlocal buf
        if buf:
            b = base64.b64encode(buf.encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out.append("&" + b + "-")
            buf = ""
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf += ch
    flush()
    return "".join(out)


def q(name):
    return '"' + mutf7(name) + '"'


def uids(imap, folder, criteria="ALL"):
    imap.select(q(folder))
    typ, data = imap.uid("SEARCH", None, criteria)
    return [int(x) for x in data[0].split()]


def message(n, subject, reply_to=None):
    hdr = [f"From: Changer <changer{n}@example.org>", "To: demo@example.org",
           f"Subject: {subject}", f"Date: Mon, 0{1 + n % 9} Jun 2026 10:00:00 +0000",
           f"Message-ID: <mirror-{n}-{time.time_ns()}@example.org>"]
    if reply_to:
        hdr += [f"In-Reply-To: {reply_to}", f"References: {reply_to}"]
    return ("\r\n".join(hdr) + f"\r\n\r\nBody of mirror message {n}.\r\n").encode()


def main():
    host, port, user, password, step = sys.argv[1:6]
    d = sys.argv[6] if len(sys.argv) > 6 else "."
    new, renamed = f"Reisen{d}Zürich", f"Reisen{d}Genève"
    imap = imaplib.IMAP4(host, int(port))
    imap.login(user, password)
    if step == "flags":
        unseen = uids(imap, "INBOX", "UNSEEN")
        seen = uids(imap, "INBOX", "SEEN")
        for u in unseen[:3]:
            imap.uid("STORE", str(u), "+FLAGS", "(\\Seen)")
        for u in seen[:2]:
            imap.uid("STORE", str(u), "-FLAGS", "(\\Seen)")
        allu = uids(imap, "INBOX")
        imap.uid("STORE", f"{allu[5]},{allu[6]}", "+FLAGS", "(\\Flagged $Work)")
        imap.uid("STORE", str(allu[7]), "+FLAGS", "(\\Answered)")
        flagged = uids(imap, "INBOX", "FLAGGED")
        if len(flagged) > 2:
            imap.uid("STORE", str(flagged[-1]), "-FLAGS", "(\\Flagged)")
        sent = uids(imap, "Sent")
        if sent:
            imap.uid("STORE", str(sent[0]), "+FLAGS", "(\\Flagged)")
        print(f"flags: INBOX +Seen {unseen[:3]} -Seen {seen[:2]} +Flagged/$Work {allu[5:7]} +Answered {allu[7]}")
    elif step == "expunge":
        allu = uids(imap, "INBOX")
        gone = [allu[1], allu[10], allu[-1]]
        imap.uid("STORE", ",".join(map(str, gone)), "+FLAGS", "(\\Deleted)")
        imap.expunge()
        print(f"expunge: INBOX {gone}")
    elif step == "move":
        allu = uids(imap, "INBOX")
        moved, copied = allu[2:4], allu[4:6]
        imap.uid("MOVE", ",".join(map(str, moved)), q("Archive"))
        imap.uid("COPY", ",".join(map(str, copied)), q("Sent"))
        print(f"move: INBOX {moved} -> Archive, copy {copied} -> Sent")
    elif step == "append":
        imap.select(q("INBOX"))
        typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        ids = [re.search(rb"<[^>]+>", d[1]).group(0).decode() for d in data
               if isinstance(d, tuple) and re.search(rb"<[^>]+>", d[1])]
        for n in range(3):
            reply = ids[n * 3] if n < 2 and len(ids) > n * 3 else None
            imap.append(q("INBOX"), "(\\Seen)" if n == 0 else "()", None,
                        message(n, "Re: thread" if reply else "A new thread", reply))
        print(f"append: 3 to INBOX, replies to {ids[0:4:3]}")
    elif step == "mkfolder":
        imap.create(q(new))
        for n in range(10, 12):
            imap.append(q(new), "()", None, message(n, "Reiseplan"))
        print(f"mkfolder: {new} with 2 messages")
    elif step == "rename":
        typ, data = imap.rename(q(new), q(renamed))
        print(f"rename: {new} -> {renamed}: {typ}")
    elif step == "rmfolder":
        typ, data = imap.delete(q(renamed))
        print(f"rmfolder: {renamed}: {typ}")
    else:
        sys.exit(f"unknown step {step}")
    imap.logout()


main()
