#!/usr/bin/env python3
"""The tables of tests/bench/peers_bench.sh, printed and written as JSON: each tool's times,
the CPU of every process during each mailpipe run (from proc_sampler.py's files), and the COPY
ceiling. Reads the bench's work directory; see peers_bench.sh for what is in it."""
import argparse
import datetime
import json
import os
import re
import statistics


def parse_args():
    a = argparse.ArgumentParser()
    a.add_argument("--dir", required=True)
    a.add_argument("--results", required=True)
    a.add_argument("--count", type=int, required=True)
    a.add_argument("--runs", type=int, required=True)
    a.add_argument("--bytes", type=int, required=True)
    a.add_argument("--commit", default="unknown")
    a.add_argument("--dirty", default="false")
    a.add_argument("--load", default="")
    a.add_argument("--load-after", default="")
    a.add_argument("--copy", nargs=3, metavar=("SECONDS,...", "ROWS", "BYTES"))
    a.add_argument("--pg-port", type=int, required=True)
    a.add_argument("--versions", default="")
    a.add_argument("--out", required=True)
    return a.parse_args()


def ss_pids(path):
    """{port: (pid, name)} of an `ss -Htnp`/`-Htlnp` listing: the local port of each socket."""
    out = {}
    if not os.path.exists(path):
        return out
    for line in open(path):
        f = line.split()
        if len(f) < 6:
            continue
        m = re.search(r'\(\("([^"]+)",pid=(\d+)', line)
        if m:
            out[int(f[3].rsplit(":", 1)[1])] = (int(m.group(2)), m.group(1))
    return out


def stage_of(cmdline):
    """'fetcher', 'run', 'sync', ... of a mailpipe process, from its command line."""
    words = cmdline.split()
    if not words:
        return None
    exe = os.path.basename(words[0])
    if exe.startswith("mailpipe-"):
        return exe[len("mailpipe-"):]
    if exe == "mailpipe" and len(words) > 1:
        return {"run": "run (supervisor)", "sync": "sync (CLI)"}.get(words[1], words[1])
    return None


def cpu_table(d, i, messages, wall):
    """Rows of every process of mailpipe run i: group, name, cpu s, s per 1,000 messages,
    busy s (stages), peak RSS (stages)."""
    path = os.path.join(d, f"cpu{i}.json")
    if not os.path.exists(path):
        return None
    data = json.load(open(path))
    hz = data["hz"]
    procs = data["procs"]
    # Postgres client backends: whose connection each is, by its client port.
    conn = ss_pids(os.path.join(d, f"pgconn{i}.txt"))
    backend_of = {}
    if os.path.exists(os.path.join(d, f"pg{i}.txt")):
        for line in open(os.path.join(d, f"pg{i}.txt")):
            f = line.strip().split("|")
            if len(f) == 3 and f[2] and int(f[2]) in conn:
                backend_of[int(f[0])] = conn[int(f[2])][0]
    # The stages' busy seconds, by the pid listening on each metrics port.
    listen = ss_pids(os.path.join(d, f"metrics{i}.txt"))
    busy = {}
    if os.path.exists(os.path.join(d, f"prom{i}.txt")):
        for line in open(os.path.join(d, f"prom{i}.txt")):
            f = line.split()
            if len(f) == 2:
                port = int(f[0].rsplit(":", 1)[1])
                if port in listen:
                    busy[listen[port][0]] = float(f[1])
    by_pid = {p["pid"]: p for p in procs}
    name_of_pid = {}
    for p in procs:
        st = stage_of(p["cmdline"]) if p["comm"].startswith("mailpipe") else None
        if st:
            name_of_pid[p["pid"]] = st
    rows = []
    for p in procs:
        ticks = p["last"] - p["first"]
        comm, cl = p["comm"], p["cmdline"]
        busy_s = hwm = None
        if comm.startswith("mailpipe"):
            group, name = "mailpipe", name_of_pid.get(p["pid"], comm)
            busy_s = busy.get(p["pid"])
            hwm = p["hwm_kb"]
        elif comm == "redis-server" or cl.startswith("redis-server"):
            group, name = "redis", "redis-server"
        elif comm == "postgres" or cl.startswith("postgres"):
            group = "postgres"
            title = cl[len("postgres: "):] if cl.startswith("postgres: ") else ""
            if not title:
                name = "postmaster"
            elif p["pid"] in backend_of:
                owner = backend_of[p["pid"]]
                name = "backend of " + name_of_pid.get(owner, by_pid.get(owner, {}).get("comm", str(owner)))
            elif "(" in title or "[local]" in title:
                name = "backend, exited (CLI and others)" if p["exited"] else "backend, other"
            else:
                name = title.split("  ")[0].strip()
        elif comm in ("imap", "imap-login", "dovecot") or cl.startswith("dovecot"):
            group = "dovecot"
            name = {"dovecot": "master", "imap-login": "imap-login (TLS proxy)", "imap": "imap"}.get(comm, comm)
        else:
            group, name = "other", comm
        rows.append({"group": group, "name": name, "pid": p["pid"], "exited": p["exited"],
                     "cpu_s": ticks / hz, "busy_s": busy_s, "hwm_kb": hwm,
                     "series": p.get("series", [])})
    # Several processes of one name (two fetchers, many backends): numbered by pid.
    names = {}
    for r in rows:
        names.setdefault((r["group"], r["name"]), []).append(r)
    for rs in names.values():
        if len(rs) > 1:
            for k, r in enumerate(sorted(rs, key=lambda r: r["pid"]), 1):
                r["name"] = f"{r['name']} {k}"
    out = rows
    for r in out:
        r["cpu_s_per_1000"] = r["cpu_s"] * 1000 / messages if messages else None
    out.sort(key=lambda r: -r["cpu_s"])
    total = sum(r["cpu_s"] for r in out)
    groups = {}
    for r in out:
        groups[r["group"]] = groups.get(r["group"], 0) + r["cpu_s"]
    return {"run": i, "wall_s": wall, "messages": messages, "hz": hz,
            "samples": data["samples"], "interval_s": data["interval"],
            "sampler_cpu_s": data.get("sampler_cpu_s"), "rows": out,
            "total_cpu_s": total, "groups_cpu_s": groups}


def timeline(t, top=4, step=0.5):
    """Cores each of the top processes (and the rest, and all) used in each step of the run: where
    the machine was full, and where the longest chain waited. Points of a process's series are
    [ms, ticks]; a step gets the ticks that moved within it."""
    hz, wall = t["hz"], t["wall_s"]
    n = max(1, int(wall / step + 0.999))
    rows = [r for r in t["rows"] if r["series"]]
    heads = rows[:top]

    def per_step(r):
        out = [0.0] * n
        s = r["series"]
        for (_, a), (ms, b) in zip(s, s[1:]):
            k = min(n - 1, int(ms / 1000 / step))
            out[k] += (b - a) / hz / step
        return out

    cols = [(r["name"], per_step(r)) for r in heads]
    rest = [0.0] * n
    for r in rows[top:]:
        for k, v in enumerate(per_step(r)):
            rest[k] += v
    total = [sum(c[1][k] for c in cols) + rest[k] for k in range(n)]
    return {"step_s": step, "columns": [c[0] for c in cols] + ["rest", "all"],
            "cores": [[round(c[1][k], 2) for c in cols] + [round(rest[k], 2), round(total[k], 2)]
                      for k in range(n)]}


def print_timeline(tl):
    cols = tl["columns"]
    w = max(10, max(len(c) for c in cols))
    print(f"peers: cores busy in each {tl['step_s']:.1f} s of that run (2.00 = both cores; "
          "/proc ticks, 10 ms each)")
    print("  " + f"{'from s':>7s} " + " ".join(f"{c[-w:]:>{w}s}" for c in cols))
    for k, row in enumerate(tl["cores"]):
        print("  " + f"{k * tl['step_s']:7.1f} " + " ".join(f"{v:{w}.2f}" for v in row))


def main():
    a = parse_args()
    res = [json.loads(l) for l in open(a.results) if l.strip()]
    tools = {}
    for r in res:
        tools.setdefault(r["tool"], []).append(r)
    summary = {}
    for t, rs in tools.items():
        s = [r["seconds"] for r in rs]
        med = statistics.median(s)
        summary[t] = {"runs": rs, "median_s": med, "min_s": min(s), "max_s": max(s),
                      "messages": rs[-1]["messages"],
                      "msg_per_s": rs[-1]["messages"] / med if med else None}
    ratios = {}
    if "mailpipe" in summary:
        for t in summary:
            if t != "mailpipe":
                ratios[f"mailpipe/{t}"] = summary["mailpipe"]["median_s"] / summary[t]["median_s"]
    print(f"peers: {a.count} messages, {a.bytes / 1e6:.0f} MB, medians of {a.runs} runs "
          f"(load average {a.load} before, {a.load_after} after; {os.cpu_count()} cores, shared)")
    print(f"  {'tool':10s} {'median s':>9s} {'min s':>7s} {'max s':>7s} {'msg/s':>7s}  messages  each run (s)")
    for t, s in summary.items():
        each = " ".join(f"{r['seconds']:.2f}" for r in s["runs"])
        print(f"  {t:10s} {s['median_s']:9.2f} {s['min_s']:7.2f} {s['max_s']:7.2f} "
              f"{s['msg_per_s']:7.0f}  {s['messages']:8d}  {each}")
    for k, v in ratios.items():
        print(f"  time {k}: {v:.2f}")
    walrs = [r for r in tools.get("mailpipe", []) if "wal_bytes" in r]
    if walrs:
        print("peers: PostgreSQL WAL written by each mailpipe run: "
              + ", ".join(f"{r['wal_bytes'] / 1e6:.0f} MB ({r['wal_bytes'] / r['messages'] / 1e3:.1f} KB "
                          f"a message, {r['checkpoints']} checkpoints)" for r in walrs))

    cpu = []
    for r in tools.get("mailpipe", []):
        t = cpu_table(a.dir, r["run"], r["messages"], r["seconds"])
        if t:
            cpu.append(t)
    if cpu:
        t = cpu[-1]
        print(f"peers: CPU of every process during mailpipe run {t['run']} ({t['messages']} messages "
              f"in {t['wall_s']:.2f} s; /proc sampled every {t['interval_s'] * 1000:.0f} ms, "
              f"{t['samples']} samples, the sampler's own CPU {t['sampler_cpu_s']:.2f} s):")
        print(f"  {'process':54s} {'CPU s':>7s} {'s/1000 msg':>10s} {'busy s':>7s} {'peak RSS':>9s}")
        idle = [r for r in t["rows"] if r["cpu_s"] == 0 and r["group"] != "mailpipe"]
        for r in t["rows"]:
            if r in idle:
                continue
            name = f"{r['group']} {r['name']}" + (" [exited]" if r["exited"] else "")
            busy = f"{r['busy_s']:7.2f}" if r["busy_s"] is not None else " " * 7
            hwm = f"{r['hwm_kb'] / 1024:6.1f} MB" if r["hwm_kb"] else " " * 9
            print(f"  {name:54s} {r['cpu_s']:7.2f} {r['cpu_s_per_1000']:10.3f} {busy} {hwm}")
        if idle:
            print(f"  ({len(idle)} more with no CPU tick: "
                  + ", ".join(f"{r['group']} {r['name']}" for r in idle) + ")")
        print(f"  {'total':54s} {t['total_cpu_s']:7.2f} {t['total_cpu_s'] * 1000 / t['messages']:10.3f}"
              f"   ({t['total_cpu_s'] / t['wall_s']:.2f} cores busy on average)")
        print("  by group: " + ", ".join(f"{g} {v:.2f} s" for g, v in
                                        sorted(t["groups_cpu_s"].items(), key=lambda x: -x[1])))
        t["timeline"] = timeline(t)
        print_timeline(t["timeline"])
    for t in cpu:
        for r in t["rows"]:
            del r["series"]
    copy = None
    if a.copy:
        times = [float(x) for x in a.copy[0].split(",")]
        rows, nbytes = int(a.copy[1]), int(a.copy[2])
        secs = statistics.median(times)
        copy = {"runs_s": times, "median_s": secs, "min_s": min(times), "max_s": max(times),
                "rows": rows, "file_bytes": nbytes, "msg_per_s": rows / secs if secs else None}
        print(f"peers: ceiling: the last run's {rows} messages and their locations loaded with one COPY "
              f"each ({nbytes / 1e6:.0f} MB of COPY text) into empty clones with the same indexes, "
              f"fsync on, {len(times)} times: median {secs:.2f} s = {rows / secs:.0f} msg/s "
              f"(min {min(times):.2f}, max {max(times):.2f})")
        if "mailpipe" in summary:
            copy["time_ratio_mailpipe"] = summary["mailpipe"]["median_s"] / secs
            print(f"  time mailpipe/COPY: {copy['time_ratio_mailpipe']:.2f}")
    doc = {"commit": a.commit, "dirty": a.dirty == "true",
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "count": a.count, "runs": a.runs, "bytes": a.bytes, "cores": os.cpu_count(),
           "load_average_before": a.load, "load_average_after": a.load_after,
           "versions": a.versions, "tools": summary, "time_ratios": ratios,
           "cpu": cpu, "copy_ceiling": copy}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"peers: written to {a.out}")


if __name__ == "__main__":
    main()
