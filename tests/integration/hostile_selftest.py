#!/usr/bin/env python3
"""Proves hostile_imap.py honest where it should be and hostile the way each scenario says.
Drives it with raw sockets (every read with a timeout), imaplib and, when present, curl.
Run by hand: python3 tests/integration/hostile_selftest.py [-v]; tests/run.sh does not."""
import base64
import imaplib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "hostile_imap.py")
VERBOSE = "-v" in sys.argv
FAILS = []


def check(name, cond, info=""):
    if cond:
        print(f"PASS {name}")
    else:
        print(f"FAIL {name} {info}")
        FAILS.append(name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """A raw IMAP client: lines and literals as bytes, every read bounded by a timeout."""

    def __init__(self, port, timeout=5.0, greet=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.n = 0
        self.greeting = self.line() if greet else None

    def fill(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def cmd(self, text):
        self.n += 1
        tag = f"T{self.n}"
        self.send(f"{tag} {text}")
        return tag

    def response(self, tag):
        """Untagged items (a line, or a line plus its literals, joined) and the tagged line."""
        items = []
        while True:
            line = self.line()
            whole = line
            while re.search(rb"\{(\d+)\}$", line):
                size = int(re.search(rb"\{(\d+)\}$", line).group(1))
                while len(self.buf) < size:
                    self.fill()
                whole += b"\r\n" + self.buf[:size]
                self.buf = self.buf[size:]
                line = self.line()
                whole += line
            if line.startswith(tag.encode() + b" "):
                return items, line
            items.append(whole)

    def run(self, text):
        return self.response(self.cmd(text))

    def login(self, user, pw="pw"):
        return self.run(f"LOGIN {user} {pw}")[1]

    def read_all(self, timeout=3.0, limit=None):
        """Whatever arrives until EOF (eof=True) or a quiet `timeout` (eof=False)."""
        end = time.time() + timeout
        while limit is None or len(self.buf) < limit:
            try:
                self.fill(max(0.05, end - time.time()))
            except EOFError:
                return self.buf, True
            except socket.timeout:
                return self.buf, False
        return self.buf, False

    def close(self):
        self.sock.close()


def fetch_uids(items):
    return [int(m.group(1)) for it in items for m in [re.search(rb"FETCH \(UID (\d+)", it)] if m]


BODY = "UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])"


def log_events(path):
    with open(path) as f:
        return [json.loads(l) for l in f]


def main():
    tmp = tempfile.mkdtemp(prefix="hostile-selftest.")
    port, port_nog, port_endg = free_port(), free_port(), free_port()
    logp, ready = os.path.join(tmp, "log.jsonl"), os.path.join(tmp, "ready")
    proc = subprocess.Popen([sys.executable, SERVER, "--port", str(port), "--log", logp,
                             "--ready-file", ready, "--scenario-port", f"nogreeting={port_nog}",
                             "--scenario-port", f"endlessgreeting={port_endg}"])
    try:
        for _ in range(100):
            if os.path.exists(ready):
                break
            time.sleep(0.05)
        check("server writes its ready file", os.path.exists(ready))
        scenarios(port, port_nog, port_endg, logp)
        far = Client(port)
        far.login("distant")
        t0 = time.time()
        far.run("NOOP")
        late = time.time() - t0
        check("distant: an answer comes 100 ms late", 0.1 <= late < 1.0, late)
        far.close()
        # staleview, last (the reset is the whole server's): after a UIDVALIDITY reset
        # (SIGUSR1) a connection from before it shows the old UIDVALIDITY in EXAMINE and the
        # new one in STATUS; a connection from after it, the new one.
        old = Client(port)
        old.login("staleview")
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        def uidvalidity(items):
            m = re.search(rb"UIDVALIDITY (\d+)", b" ".join(items))
            return m and int(m.group(1))
        seen = [uidvalidity(old.run("EXAMINE INBOX")[0]),
                uidvalidity(old.run("STATUS INBOX (MESSAGES UIDVALIDITY)")[0])]
        new = Client(port)
        caps = new.login("staleview")
        seen.append(uidvalidity(new.run("EXAMINE INBOX")[0]))
        check("staleview: EXAMINE old, STATUS new on a connection from before the reset; "
              "EXAMINE new on one after", seen == [1, 1001, 1001], seen)
        # IDLE (the watch that lends its connection to jobs): offered, continued, ended by DONE.
        tag = new.cmd("IDLE")
        cont = new.line()
        new.send("DONE")
        done = new.response(tag)[1]
        check("staleview: IDLE offered at login, '+' to IDLE, OK after DONE",
              b" IDLE" in caps and cont.startswith(b"+ ") and done.startswith(tag.encode() + b" OK"),
              (caps, cont, done))
        good = Client(port)
        good.login("good")
        good.run("EXAMINE INBOX")
        check("good: no IDLE", good.run("IDLE")[1].startswith(b"T3 BAD"))
        good.close()
        old.close()
        new.close()
        # SIGTERM with connections still open (a silent one among them) ends it cleanly.
        held = Client(port_nog, greet=False)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(5)
        except subprocess.TimeoutExpired:
            rc = None
        held.close()
        check("SIGTERM exits 0 promptly", rc == 0, f"rc={rc}")
        events = log_events(logp)
        keys = {"t", "conn", "user", "n", "event", "line", "detail"}
        check("every log line is JSON with the seven keys", all(set(e) == keys for e in events))
        check("log events are of the documented kinds", {e["event"] for e in events} <=
              {"connect", "command", "login_ok", "login_no", "close", "misbehave",
               "uidvalidity_reset"})
        text = open(logp).read()
        check("no password or SASL response in the log",
              " pw" not in text and base64.b64encode(b"\0good\0pw").decode() not in text)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if VERBOSE:
        print(open(logp).read()[-3000:])
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(FAILS)} failed" if FAILS else "all passed")
    return 1 if FAILS else 0


def scenarios(port, port_nog, port_endg, logp):
    # --- good: the honest server
    c = Client(port)
    check("greeting advertises SASL-IR AUTH=PLAIN UIDPLUS",
          c.greeting == b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN UIDPLUS] hostile ready", c.greeting)
    items, ok = c.run("CAPABILITY")
    check("CAPABILITY", items == [b"* CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN UIDPLUS"] and b"OK" in ok)
    _, ok = c.run("EXAMINE INBOX")
    check("EXAMINE before login is refused", b" BAD " in ok, ok)
    _, ok = c.run("AUTHENTICATE PLAIN " + base64.b64encode(b"\0good\0wrong").decode())
    check("wrong password: NO [AUTHENTICATIONFAILED]",
          ok.endswith(b"NO [AUTHENTICATIONFAILED] Invalid credentials"), ok)
    _, ok = c.run("AUTHENTICATE PLAIN " + base64.b64encode(b"\0good\0pw").decode())
    check("AUTHENTICATE PLAIN with SASL-IR logs in",
          ok.endswith(b"OK [CAPABILITY IMAP4rev1 UIDPLUS] Logged in"), ok)
    items, ok = c.run('LIST "" "*"')
    check("LIST", items == [b'* LIST (\\HasNoChildren) "/" INBOX', b'* LIST (\\HasNoChildren) "/" Archive'], items)
    items, ok = c.run("EXAMINE INBOX")
    check("EXAMINE INBOX", b"* 12 EXISTS" in items and b"* 0 RECENT" in items and
          b"* OK [UIDVALIDITY 1] UIDs valid" in items and b"* OK [UIDNEXT 13] Predicted next UID" in items
          and any(i.startswith(b"* FLAGS (") for i in items) and b"OK [READ-ONLY]" in ok, items)
    for crit, want in [("UID 1:*", list(range(1, 13))), ("UID 20:*", [12]), ("UID 2,4:5,11:*", [2, 4, 5, 11, 12]),
                       ("ALL", list(range(1, 13))), ("SINCE 1-Jan-2024", list(range(1, 13))),
                       ("SINCE 02-Jan-2024", []), ("UID 3:1", [1, 2, 3])]:
        items, ok = c.run("UID SEARCH " + crit)
        got = [int(x) for x in items[0].split()[2:]] if items else None
        check(f"UID SEARCH {crit}", got == want and b"OK" in ok, (items, ok))
    items, ok = c.run("UID FETCH 1,3:5,11:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
    check("UID FETCH set 1,3:5,11:*", fetch_uids(items) == [1, 3, 4, 5, 11, 12] and b"OK" in ok, fetch_uids(items))
    first = items[0]
    m = re.match(rb'\* 1 FETCH \(UID 1 FLAGS \(\\Seen\) INTERNALDATE "01-Jan-2024 10:01:00 \+0000" '
                 rb"RFC822.SIZE (\d+) BODY\[\] \{(\d+)\}\r\n", first)
    check("FETCH answer has the documented shape", m is not None, first[:120])
    if m:
        body = first[m.end():-1]
        check("RFC822.SIZE equals the literal length and the bytes",
              int(m.group(1)) == int(m.group(2)) == len(body) and first.endswith(b")"))
        check("message is RFC 5322 with Message-ID, Subject, From, Date",
              all(h in body for h in (b"Message-ID: <", b"Subject: ", b"From: ", b"Date: ")) and b"\r\n\r\n" in body)
    check("flags alternate", b"FLAGS ()" in items[2] and b"FLAGS (\\Seen)" in items[1])
    items, _ = c.run("UID FETCH 7 (UID FLAGS BODY.PEEK[HEADER] X-GM-THRID FOO)")
    check("BODY.PEEK[HEADER] answers BODY[HEADER]; unknown items ignored",
          re.match(rb"\* 7 FETCH \(UID 7 FLAGS \(\\Seen\) BODY\[HEADER\] \{\d+\}\r\n", items[0]) is not None
          and items[0].endswith(b"\r\n\r\n X-GM-THRID 1000007)"), items[0][:80])
    items, _ = c.run("UID FETCH 1:* (UID RFC822.SIZE)")
    check("RFC822.SIZE probe lists all", fetch_uids(items) == list(range(1, 13)))
    inbox_bodies = {u: it for u, it in zip(range(1, 13), c.run(BODY)[0])}
    items, ok = c.run('STATUS Archive (MESSAGES UIDNEXT UIDVALIDITY)')
    check("STATUS", items == [b"* STATUS Archive (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 7)"], items)
    items, ok = c.run("SELECT Archive")
    check("SELECT Archive", b"* 3 EXISTS" in items and b"* OK [UIDVALIDITY 7] UIDs valid" in items
          and b"OK [READ-WRITE]" in ok, items)
    arch = c.run(BODY)[0]
    bodies = [re.sub(rb"^\* \d+ FETCH \(UID \d+ FLAGS \([^)]*\) INTERNALDATE \"[^\"]*\" ", b"", x)
              for x in list(inbox_bodies.values()) + arch]
    check("15 messages of distinct content", len(bodies) == 15 and len(set(bodies)) == 15)
    _, ok = c.run("XYZZY")
    check("unknown command: BAD", b" BAD " in ok, ok)
    items, ok = c.run("LOGOUT")
    check("LOGOUT: BYE then OK", items and items[0].startswith(b"* BYE") and b" OK " in ok)
    check("LOGOUT closes", c.read_all(2)[1])
    c.close()

    # AUTHENTICATE PLAIN with the continuation, LOGIN with quoted arguments, imaplib.
    c = Client(port)
    tag = c.cmd("AUTHENTICATE PLAIN")
    cont = c.line()
    c.send(base64.b64encode(b"\0good\0pw").decode())
    _, ok = c.response(tag)
    check("AUTHENTICATE PLAIN with the + continuation", cont == b"+ " and b"OK" in ok, (cont, ok))
    c.close()
    c = Client(port)
    check("LOGIN with quoted arguments", b" OK " in c.login('"good"', '"pw"'))
    c.close()
    m = imaplib.IMAP4("127.0.0.1", port, timeout=5)
    m.login("good", "pw")
    typ, data = m.select("Archive", readonly=True)
    typ2, data2 = m.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    check("imaplib reads Archive", data == [b"3"] and len([d for d in data2 if isinstance(d, tuple)]) == 3)
    m.logout()

    # libcurl's own login dance, as mailpipe's fetcher uses it (with SASL-IR advertised it sends
    # AUTHENTICATE PLAIN with the initial response inline).
    if shutil.which("curl"):
        for extra, what in [([], "default"), (["--sasl-ir"], "--sasl-ir")]:
            r = subprocess.run(["curl", "-sS", "--max-time", "10", f"imap://127.0.0.1:{port}/",
                                "-u", "good:pw"] + extra, capture_output=True, text=True)
            check(f"curl logs in ({what}) and lists folders", r.returncode == 0 and "Archive" in r.stdout,
                  r.stderr)
        r = subprocess.run(["curl", "-sS", "--max-time", "10", f"imap://127.0.0.1:{port}/",
                            "-u", "good:nope"], capture_output=True, text=True)
        check("curl: wrong password is a login denial (exit 67)", r.returncode == 67, r.returncode)

    # Many concurrent connections.
    many = [Client(port) for _ in range(30)]
    for cl in many:
        cl.login("good")
    ok_all = all(b"* 12 EXISTS" in cl.run("EXAMINE INBOX")[0] for cl in many)
    check("30 concurrent sessions", ok_all)
    for cl in many:
        cl.close()

    # --- login-time scenarios
    def logins(user, k):
        out = []
        for _ in range(k):
            cl = Client(port)
            out.append(cl.login(user))
            cl.close()
        return out

    r = logins("throttled", 2)
    check("throttled: first login NO with Office 365's hint, second OK",
          r[0].endswith(b"NO [THROTTLED] Request is throttled. Suggested Backoff Time: 2000 milliseconds")
          and b" OK " in r[1], r)
    r = logins("throttlednohint", 3)
    check("throttlednohint: two NO [THROTTLED] Too many requests, then OK",
          all(x.endswith(b"NO [THROTTLED] Too many requests") for x in r[:2]) and b" OK " in r[2], r)
    r = logins("throttledalways", 3)
    check("throttledalways: every login NO with 600000 ms",
          all(x.endswith(b"Suggested Backoff Time: 600000 milliseconds") for x in r), r)
    r = logins("limit", 2)
    check("limit: NO [LIMIT] then OK", r[0].endswith(b"NO [LIMIT] Too many simultaneous connections")
          and b" OK " in r[1], r)
    c = Client(port)
    check("unknown user is refused", b"NO [AUTHENTICATIONFAILED]" in c.login("nosuchscenario"))
    c.close()

    c = Client(port)
    c.login("byelogin")
    c.cmd("NOOP")
    data, eof = c.read_all(3)
    check("byelogin: BYE after login on connection 1, then closed",
          data == b"* BYE [UNAVAILABLE] Try again in 3 seconds\r\n" and eof, (data, eof))
    c.close()
    c = Client(port)
    c.login("byelogin")
    check("byelogin: connection 2 is honest", b"* 12 EXISTS" in c.run("EXAMINE INBOX")[0])
    c.close()

    # --- greeting scenarios, on their own ports
    c = Client(port_nog, greet=False)
    data, eof = c.read_all(1.5)
    check("nogreeting: silent and open", data == b"" and not eof, (data, eof))
    c.close()
    c = Client(port_endg, greet=False)
    data, eof = c.read_all(10, limit=4 << 20)
    check("endlessgreeting: '* OK ' and MBs without CRLF",
          data.startswith(b"* OK aaaa") and len(data) >= 4 << 20 and b"\r\n" not in data, len(data))
    c.close()

    # --- selection scenarios
    c = Client(port)
    c.login("unavailable")
    r1, r2 = c.run("EXAMINE INBOX")[1], c.run("SELECT INBOX")[1]
    items, r3 = c.run("EXAMINE Archive")
    check("unavailable: INBOX always NO [UNAVAILABLE], Archive fine",
          r1.endswith(b"NO [UNAVAILABLE] Mailbox temporarily unavailable") and b"NO [UNAVAILABLE]" in r2
          and b"OK [READ-ONLY]" in r3, (r1, r2, r3))
    c.close()
    c = Client(port)
    c.login("unavailableonce")
    r1, r2 = c.run("EXAMINE INBOX")[1], c.run("EXAMINE INBOX")[1]
    check("unavailableonce: NO the first time, OK after", b"NO [UNAVAILABLE]" in r1 and b"OK" in r2, (r1, r2))
    c.close()

    c = Client(port)
    c.login("garbage")
    check("garbage: Archive honest", len(c.run("EXAMINE Archive")[0]) >= 5 and
          len(c.run(BODY)[0]) == 3)
    items, ok = c.run("EXAMINE INBOX")
    check("garbage: EXAMINE INBOX honest", b"* 12 EXISTS" in items and b"OK" in ok)
    t0 = time.time()
    c.cmd("UID SEARCH UID 1:*")
    data, eof = c.read_all(5)
    took = time.time() - t0
    check("garbage: 4 KB binary with NUL CR LF { ) then close after ~2 s",
          len(data) == 4096 and all(b in data for b in (b"\0", b"\r", b"\n", b"{", b")")) and eof
          and 1.8 <= took <= 4, (len(data), eof, took))
    c.close()

    # --- body-fetch scenarios (INBOX misbehaves; Archive stays honest)
    def body_conn(user, folder="INBOX"):
        cl = Client(port)
        cl.login(user)
        cl.run(f"EXAMINE {folder}")
        return cl

    for user in ("hugeliteral", "endlessline", "cutliteral", "cutcommand", "byefetch", "slowloris",
                 "missing", "missinggone"):
        cl = body_conn(user, "Archive")
        items, ok = cl.run(BODY)
        check(f"{user}: Archive is honest", fetch_uids(items) == [1, 2, 3] and b" OK " in ok)
        cl.close()

    c = body_conn("hugeliteral")
    probe, _ = c.run("UID FETCH 1:* (UID RFC822.SIZE)")
    c.cmd(BODY)
    data, eof = c.read_all(2)
    check("hugeliteral: size probe honest", fetch_uids(probe) == list(range(1, 13)))
    check("hugeliteral: announces {4294967296}, then silence on an open socket",
          data == b"* 1 FETCH (UID 1 BODY[] {4294967296}\r\n" and not eof, (data, eof))
    c.close()

    c = body_conn("endlessline")
    c.cmd(BODY)
    data, eof = c.read_all(10, limit=4 << 20)
    check("endlessline: '* 1 FETCH (UID 1 FLAGS (' then MBs without CRLF",
          data.startswith(b"* 1 FETCH (UID 1 FLAGS (aaaa") and len(data) >= 4 << 20 and b"\r\n" not in data,
          len(data))
    c.close()

    for k in (1, 2):
        c = body_conn("cutliteral")
        c.cmd(BODY)
        data, eof = c.read_all(3)
        head, _, rest = data.partition(b"\r\n")
        size = int(re.search(rb"\{(\d+)\}$", head).group(1)) if re.search(rb"\{(\d+)\}$", head) else 0
        check(f"cutliteral: connection {k} cut at half the literal",
              head.startswith(b"* 1 FETCH (UID 1 ") and size and len(rest) == size // 2 and eof,
              (head, len(rest), eof))
        c.close()

    c = body_conn("cutliteralonce")
    c.cmd(BODY)
    data, eof = c.read_all(3)
    check("cutliteralonce: first body fetch cut", eof and b" OK " not in data)
    c.close()
    c = body_conn("cutliteralonce")
    items, ok = c.run(BODY)
    check("cutliteralonce: then honest", fetch_uids(items) == list(range(1, 13)) and b" OK " in ok)
    c.close()

    for k in (1, 2):
        c = body_conn("cutcommand")
        c.cmd(BODY)
        data, eof = c.read_all(3)
        check(f"cutcommand: connection {k} gets half a line, then EOF",
              data == b"* 1 FETCH (UID 1 FL" and eof, (data, eof))
        c.close()

    c = body_conn("byefetch")
    c.cmd(BODY)
    data, eof = c.read_all(3)
    check("byefetch: two FETCH answers, BYE [UNAVAILABLE], close",
          data.count(b"FETCH (UID") == 2 and data.endswith(
              b")\r\n* BYE [UNAVAILABLE] Server shutting down for maintenance\r\n") and eof, (data[-80:], eof))
    c.close()

    c = body_conn("slowloris")
    c.cmd(BODY)
    data, eof = c.read_all(3.5, limit=100)
    check("slowloris: about one byte a second", 2 <= len(data) <= 5 and b"* 1 FETCH (".startswith(data) and not eof,
          (data, eof))
    c.close()

    c = body_conn("missing")
    search = c.run("UID SEARCH UID 1:*")[0]
    probe = c.run("UID FETCH 1:* (UID RFC822.SIZE)")[0]
    items1, ok1 = c.run(BODY)
    items2, ok2 = c.run("UID FETCH 3 (UID BODY.PEEK[HEADER])")
    check("missing: SEARCH and size probe list UID 3",
          b" 3 " in search[0] and 3 in fetch_uids(probe))
    check("missing: body FETCH lacks UID 3, tagged OK", fetch_uids(items1) == [1, 2] + list(range(4, 13))
          and b" OK " in ok1 and items2 == [] and b" OK " in ok2, (fetch_uids(items1), items2))
    c.close()

    c = body_conn("missingonce")
    items1 = c.run(BODY)[0]
    items2 = c.run(BODY)[0]
    check("missingonce: UID 3 missing the first time only",
          3 not in fetch_uids(items1) and len(items1) == 11 and fetch_uids(items2) == list(range(1, 13)))
    c.close()

    c = body_conn("missinggone")
    before = c.run("UID SEARCH UID 1:*")[0]
    items1 = c.run(BODY)[0]
    after = c.run("UID SEARCH UID 1:*")[0]
    c.close()
    c = Client(port)
    c.login("missinggone")
    status = c.run("STATUS INBOX (MESSAGES UIDNEXT)")[0]
    exists = c.run("EXAMINE INBOX")[0]
    probe = c.run("UID FETCH 1:* (UID RFC822.SIZE)")[0]
    check("missinggone: UID 3 left out of the body FETCH", 3 not in fetch_uids(items1) and len(items1) == 11)
    check("missinggone: then gone from SEARCH, STATUS, EXISTS and FETCH",
          b" 3 " in before[0] and b" 3 " not in after[0] and status == [b"* STATUS INBOX (MESSAGES 11 UIDNEXT 13)"]
          and b"* 11 EXISTS" in exists and 3 not in fetch_uids(probe), (after, status))
    c.close()

    # The log: per-user connection numbers and what tests count.
    time.sleep(0.2)
    ev = log_events(logp)
    thr = [e for e in ev if e["user"] == "throttled" and e["event"] in ("login_ok", "login_no")]
    check("log: throttled shows login_no (n=1) then login_ok (n=2)",
          [(e["event"], e["n"]) for e in thr] == [("login_no", 1), ("login_ok", 2)], thr)
    check("log: misbehave events name the scenario's user",
          any(e["event"] == "misbehave" and e["user"] == "cutcommand" for e in ev))
    check("log: greeting scenarios are attributed to their user",
          any(e["event"] == "connect" and e["user"] == "nogreeting" and e["n"] == 1 for e in ev))


if __name__ == "__main__":
    sys.exit(main())
