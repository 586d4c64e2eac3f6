#!/usr/bin/env python3
"""What test_raw_once.sh asks of Redis, byte-exact (redis-cli splits values on newlines):
the parsed stream's message records, which fields they carry, and whether the raw entry each
names is still in the raw stream. Usage: raw_once_check.py PORT TAG. Prints one JSON object:
messages, with_raw, with_raw_id, raw_present (raw_ids found in TAG:raw), records (a list of
{entry, raw_id, uid, folder_id, sha, delivered: read by a writer yet} for the message records)."""
import json
import socket
import sys


class Redis:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.read()

    def read(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)


def main():
    port, tag = int(sys.argv[1]), sys.argv[2]
    r = Redis(port)
    res = {"messages": 0, "with_raw": 0, "with_raw_id": 0, "raw_present": 0, "records": []}
    delivered = (0, 0)  # the writers group's last-delivered-id
    for g in r.cmd("XINFO", "GROUPS", tag + ":parsed"):
        g = dict(zip(g[0::2], g[1::2]))
        if g[b"name"] == b"writers":
            delivered = tuple(int(x) for x in g[b"last-delivered-id"].split(b"-"))
    for entry_id, fields in r.cmd("XRANGE", tag + ":parsed", "-", "+"):
        f = dict(zip(fields[0::2], fields[1::2]))
        if f.get(b"type") != b"message":
            continue
        res["messages"] += 1
        res["with_raw"] += b"raw" in f
        raw_id = f.get(b"raw_id")
        meta = json.loads(f.get(b"meta", b"{}"))
        msg = json.loads(f.get(b"msg", b"{}"))
        rec = {"entry": entry_id.decode(), "raw_id": raw_id and raw_id.decode(),
               "uid": meta.get("uid"), "folder_id": meta.get("folder_id"),
               "sha": msg.get("content_sha256"),
               "delivered": tuple(int(x) for x in entry_id.split(b"-")) <= delivered}
        res["records"].append(rec)
        if raw_id:
            res["with_raw_id"] += 1
            got = r.cmd("XRANGE", tag + ":raw", raw_id, raw_id)
            if got and dict(zip(got[0][1][0::2], got[0][1][1::2])).get(b"raw") is not None:
                res["raw_present"] += 1
    print(json.dumps(res))


if __name__ == "__main__":
    main()
