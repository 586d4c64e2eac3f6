#!/usr/bin/env python3
"""CPU clock ticks (utime + stime) and peak memory of process trees, sampled every ~100 ms
until SIGTERM, for the peers bench (tests/bench/peers_bench.sh).

    proc_sampler.py OUT.json READY_FILE PID... [--cli-parent PID]

Tracks each PID and its descendants (through /proc/PID/task/*/children), and with --cli-parent
the children of that PID whose name starts with "mailpipe" (the `mailpipe run` and `mailpipe
sync` processes a bench shell starts) and their descendants. A process seen at the first sample
counts from its value then; one appearing later counts from 0 (it started during the run). A
process that exits keeps the last value sampled: at most one interval of its CPU is lost.
READY_FILE is created after the first sample. Writes OUT.json on SIGTERM:
    {"hz": 100, "interval": 0.1, "samples": N, "procs": [{"pid", "ppid", "comm", "cmdline",
     "first", "last", "hwm_kb", "exited", "series"}...], "sampler_cpu_s": its own CPU}
"series" is [[ms since the first sample, ticks], ...], a point each time the ticks moved (and
the first): the CPU over time, for the report's timeline.
"""
import json
import os
import signal
import sys
import time

INTERVAL = 0.1


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def stat_of(pid):
    """(comm, ppid, ticks, starttime) or None."""
    s = read(f"/proc/{pid}/stat")
    if not s:
        return None
    s = s.decode("utf-8", "replace")
    lp, rp = s.index("("), s.rindex(")")
    comm = s[lp + 1:rp]
    f = s[rp + 2:].split()
    # f[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
    return comm, int(f[1]), int(f[11]) + int(f[12]), int(f[19])


def children_of(pid):
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        c = read(f"/proc/{pid}/task/{t}/children")
        if c:
            out.extend(int(x) for x in c.split())
    return out


def main():
    args = sys.argv[1:]
    cli_parent = None
    if "--cli-parent" in args:
        i = args.index("--cli-parent")
        cli_parent = int(args[i + 1])
        del args[i:i + 2]
    if len(args) < 3:
        print("usage: proc_sampler.py OUT.json READY_FILE PID... [--cli-parent PID]", file=sys.stderr)
        sys.exit(2)
    out, ready, roots = args[0], args[1], [int(p) for p in args[2:]]
    procs = {}  # (pid, starttime) -> record
    live = {}  # pid -> key
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    samples = 0
    t0 = time.monotonic()

    def sample(first):
        nonlocal samples
        samples += 1
        want = list(roots)
        if cli_parent:
            for c in children_of(cli_parent):
                st = stat_of(c)
                if st and st[0].startswith("mailpipe"):
                    want.append(c)
        seen, todo = set(), want
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            st = stat_of(pid)
            if not st:
                continue
            comm, ppid, ticks, start = st
            key = (pid, start)
            rec = procs.get(key)
            if rec is None:
                rec = procs[key] = {"pid": pid, "ppid": ppid, "comm": comm, "cmdline": "",
                                    "first": ticks if first else 0, "last": ticks,
                                    "hwm_kb": 0, "exited": False, "series": []}
            if not rec["series"] or rec["series"][-1][1] != ticks:
                rec["series"].append([round((time.monotonic() - t0) * 1000), ticks])
            rec["last"] = ticks
            live[pid] = key
            # Postgres and Dovecot children retitle themselves after the fork: keep the latest.
            cl = read(f"/proc/{pid}/cmdline")
            if cl:
                rec["cmdline"] = cl.replace(b"\0", b" ").decode("utf-8", "replace").strip()
            if comm.startswith("mailpipe"):
                s = read(f"/proc/{pid}/status")
                for line in (s or b"").decode().splitlines():
                    if line.startswith("VmHWM:"):
                        rec["hwm_kb"] = max(rec["hwm_kb"], int(line.split()[1]))
            todo.extend(children_of(pid))
        for pid in list(live):
            if pid not in seen:
                procs[live.pop(pid)]["exited"] = True

    sample(True)
    open(ready, "w").close()
    while not stop:
        time.sleep(INTERVAL)
        sample(False)
    sample(False)
    with open(out, "w") as f:
        t = os.times()
        json.dump({"hz": os.sysconf("SC_CLK_TCK"), "interval": INTERVAL, "samples": samples,
                   "sampler_cpu_s": t.user + t.system, "procs": list(procs.values())}, f)


if __name__ == "__main__":
    main()
