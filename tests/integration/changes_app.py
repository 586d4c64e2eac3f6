#!/usr/bin/env python3
"""An app on mailpipe's queue API, in plain Python (no Redis package: RESP over a socket).

usage: changes_app.py HOST PORT request ACCOUNT REQUEST_ID [FOLDER...]
       changes_app.py HOST PORT read GROUP [START] [--prefix P] [--block MS]

`request` adds a sync request to {mp}:requests. `read` creates consumer group GROUP on
{mp}:changes (at START, default "$": only new changes) if it is missing, then prints every
entry delivered to it as one JSON line ({"id": ..., "type": ..., fields...}) and acknowledges
it, until a read waits BLOCK ms (default 1000) for nothing. The README's example is this file;
tests/integration/test_changes.sh runs it.
"""
import json
import socket
import sys


class Redis:
    def __init__(self, host, port):
        self.f = socket.create_connection((host, int(port))).makefile("rwb")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.f.write(b"".join(out))
        self.f.flush()
        return self.reply()

    def reply(self):
        line = self.f.readline()[:-2]
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            if int(rest) < 0:
                return None
            data = self.f.read(int(rest) + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)


def main():
    argv = sys.argv[1:]
    prefix, block = "mp", 1000
    if "--prefix" in argv:
        i = argv.index("--prefix")
        prefix = argv[i + 1]
        del argv[i:i + 2]
    if "--block" in argv:
        i = argv.index("--block")
        block = int(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) < 4 or argv[2] not in ("request", "read"):
        sys.exit(__doc__.split("\n\n")[1])
    r = Redis(argv[0], argv[1])
    changes, requests = "{%s}:changes" % prefix, "{%s}:requests" % prefix
    if argv[2] == "request":
        if len(argv) < 5:
            sys.exit("request needs ACCOUNT and REQUEST_ID")
        fields = ["account", argv[3], "request_id", argv[4]]
        if argv[5:]:
            fields += ["folders", json.dumps(argv[5:])]
        print(r.call("XADD", requests, "*", *fields))
        return
    group, start = argv[3], argv[4] if len(argv) > 4 else "$"
    try:
        r.call("XGROUP", "CREATE", changes, group, start, "MKSTREAM")
    except RuntimeError as e:
        if "BUSYGROUP" not in str(e):
            raise
    while True:
        got = r.call("XREADGROUP", "GROUP", group, "app-1", "COUNT", 500, "BLOCK", block,
                     "STREAMS", changes, ">")
        if not got:
            return
        for entry_id, fields in got[0][1]:
            entry = {"id": entry_id}
            entry.update(zip(fields[0::2], fields[1::2]))
            print(json.dumps(entry), flush=True)
            # Acknowledged once handled: a crash before this line gets it again.
            r.call("XACK", changes, group, entry_id)


main()
