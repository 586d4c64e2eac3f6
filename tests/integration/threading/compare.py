#!/usr/bin/env python3
"""Compares the grouping thread_driver stored (its --tsv file) with a corpus's expected threads
(which messages share a thread, never the tree shape) and prints PASS/FAIL with the agreement
figure. Called by tests/integration/test_threading.sh.

usage: compare.py --set NAME --tsv FILE [--allow FILE] KIND ARG...
       compare.py --batch FILE [--allow FILE]   (many sets, one per line, see --help)
  KIND notmuch-tree FILE     notmuch-tree output (threads by date + author of each message)
  KIND mail-thread FILE BOX  Mail::Thread EXPECTED.txt, section of testbox BOX
  KIND mhonarc FILE          MHonArc "by thread" page (.gz or not); labels = 0-based mbox index
  KIND imaptest FILE         imaptest script: the first THREAD response; labels = 1-based seq
  KIND groups FILE           one thread per line, message-ids separated by spaces ("noid:N" =
                             input N, which has no Message-ID)
"""
import argparse
import collections
import gzip
import re
import sys

# The thread expectation of a corpus: a list of threads, each a list of labels. How a stored
# message is labelled depends on the corpus (see label_of).


def read_tsv(path):
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            c = line.rstrip("\n").split("\t")
            c += [""] * (8 - len(c))
            rows.append({"idx": int(c[0]), "conv": int(c[1]), "mid": c[2], "date": c[3],
                         "name": c[4], "email": c[5], "subject": c[6], "source": c[7]})
    return rows


def expect_notmuch_tree(path):
    """notmuch-tree draws a thread's first message with a glyph run starting '─' or '┬';
    replies start with '├', '│', '╰' or a space. A message is known by date + author (20
    columns), which notmuch prints in UTC."""
    threads = []
    line_re = re.compile(r"^  (\d{4}-\d\d-\d\d)  (.{20})  (.)")
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = line_re.match(line)
            if not m:
                continue
            label = m.group(1) + " " + m.group(2).strip()
            if m.group(3) in "─┬":
                threads.append([])
            threads[-1].append(label)
    return threads


def expect_mail_thread(path, box):
    """Depth-0 lines start a thread; dummy containers are not messages."""
    threads, inside, rootset = [], False, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("== "):
                inside = line.split()[1] == box
                if inside:
                    m = re.search(r"rootset=(\S+)", line)
                    rootset = m.group(1) if m else None
                continue
            if not inside or "\t" not in line:
                continue
            depth, subject, mid = line.rstrip("\n").split("\t")
            if depth == "0":
                threads.append([])
            if subject != "[ Message not available ]":
                threads[-1].append(mid)
    return [t for t in threads if t], rootset


def expect_mhonarc(path):
    """Each <li> directly inside the outermost thread list is a thread; everything nested
    under it belongs to it."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="latin-1") as f:
        text = f.read()
    text = text[text.upper().index("<HR>"):]
    threads, depth = [], 0
    for tok in re.finditer(r'<(/?)ul>|<li>|name="(\d+)"', text, re.I):
        if tok.group(0).lower() == "<ul>":
            depth += 1
        elif tok.group(0).lower() == "</ul>":
            depth -= 1
            if depth == 0:
                break
        elif tok.group(0).lower() == "<li>":
            if depth == 1:
                threads.append([])
        elif tok.group(2) is not None and depth >= 1:
            threads[-1].append(str(int(tok.group(2))))
    return threads


def expect_imaptest(path):
    """The first THREAD response of the script (RFC 5256): each top-level parenthesised list
    is a thread, and every number inside it, at any depth, a member."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    response = next(lines[i + 1] for i, l in enumerate(lines)
                    if re.match(r"ok thread ", l, re.I))
    body = re.sub(r"^\*\s+thread\s*", "", response, flags=re.I)
    threads, depth = [], 0
    for tok in re.finditer(r"\(|\)|\d+", body):
        t = tok.group(0)
        if t == "(":
            if depth == 0:
                threads.append([])
            depth += 1
        elif t == ")":
            depth -= 1
        else:
            threads[-1].append(t)
    return threads


def expect_groups(path):
    with open(path, encoding="utf-8") as f:
        return [l.split() for l in f if l.strip() and not l.startswith("#")]


def label_of(kind, row):
    if kind == "notmuch-tree":
        return row["date"][:10] + " " + (row["name"].strip() or row["email"])[:20].strip()
    if kind == "mhonarc":
        return str(row["idx"])
    if kind == "imaptest":
        return str(row["idx"] + 1)
    if row["mid"].endswith("@mailpipe.invalid"):
        return "noid:%d" % row["idx"]  # made up by the parser: the message has none
    return row["mid"]


def stored_threads(kind, rows):
    """mailpipe's conversations as label lists. Several files with one Message-ID are one
    message to notmuch and Mail::Thread, so they count once there; the sequence-numbered sets
    keep every input. An input the writer did not store is a thread of its own."""
    by_conv = collections.OrderedDict()
    for r in rows:
        key = r["conv"] if r["conv"] >= 0 else ("unstored", r["idx"])
        by_conv.setdefault(key, []).append(r)
    threads = []
    for members in by_conv.values():
        if kind in ("mhonarc", "imaptest"):
            threads.append([label_of(kind, r) for r in members])
        else:
            seen = collections.OrderedDict()
            for r in members:
                seen.setdefault(r["mid"], label_of(kind, r))
            threads.append(list(seen.values()))
    return threads


def read_allow(path, name):
    allow = {}
    if not path:
        return allow
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            c = line.rstrip("\n").split("\t")
            if len(c) >= 3 and c[0] == name:
                for label in c[1].split(","):
                    allow[label] = c[2]
    return allow


def short(labels, n=4):
    labels = sorted(labels)
    s = ", ".join(labels[:n])
    return "{" + s + (", ... %d in all" % len(labels) if len(labels) > n else "") + "}"


def compare(name, kind, expected, stored, allow):
    key = lambda t: tuple(sorted(t))
    stored_keys = collections.Counter(key(t) for t in stored)
    where = {}
    for i, t in enumerate(stored):
        for l in t:
            where.setdefault(l, i)
    expected_labels = set(l for t in expected for l in t)
    agree, allowed, bad, notes = 0, [], [], []
    for t in expected:
        hits = ["*"] if "*" in allow else [l for l in t if l in allow]
        hit = hits[0] if hits else None
        if stored_keys[key(t)] > 0:
            stored_keys[key(t)] -= 1
            agree += 1
            if hit is not None and hit != "*":
                notes.append("allow-list entry %s %s matches: no longer needed?" % (name, hit))
            continue
        parts = sorted(set(where.get(l, -1) for l in t))
        got = " + ".join(short(stored[p]) if p >= 0 else "{not stored}" for p in parts)
        line = "expected %s, mailpipe %s" % (short(t), got)
        if hit is not None:
            allowed.append("; ".join(dict.fromkeys(allow[h] for h in hits)))
        else:
            bad.append(line)
    extra = [l for t in stored for l in t if l not in expected_labels]
    if extra:
        bad.append("messages the expectation does not know: %s" % short(extra))
    figure = "agreement %d/%d threads" % (agree, len(expected))
    if allowed:
        figure += ", %d allowed" % len(allowed)
    print("%s %s: %s" % ("FAIL" if bad else "PASS", name, figure))
    for l in bad[:8]:
        print("  mismatch: " + l)
    if len(bad) > 8:
        print("  ... %d more mismatches" % (len(bad) - 8))
    for reason, n in collections.Counter(allowed).items():
        print("  allowed (%d thread%s): %s" % (n, "s" if n > 1 else "", reason))
    for l in notes:
        print("  note: " + l)
    return 1 if bad else 0


def compare_set(name, tsv, allow_file, kind, args):
    rows = read_tsv(tsv)
    if kind == "notmuch-tree":
        expected = expect_notmuch_tree(args[0])
    elif kind == "mail-thread":
        expected, rootset = expect_mail_thread(args[0], args[1])
        if not expected and rootset == "1":
            # Only the root count is asserted: one thread holding every message.
            expected = [sorted(set(r["mid"] for r in rows))]
        elif not expected:
            print("  %s: the corpus asserts no grouping (rootset=%s)" % (name, rootset))
            return 0
    elif kind == "mhonarc":
        expected = expect_mhonarc(args[0])
    elif kind == "imaptest":
        expected = expect_imaptest(args[0])
    elif kind == "groups":
        expected = expect_groups(args[0])
    else:
        raise SystemExit("compare.py: unknown kind " + kind)
    stored = stored_threads(kind, rows)
    return compare(name, kind, expected, stored, read_allow(allow_file, name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--set")
    ap.add_argument("--tsv")
    ap.add_argument("--allow")
    ap.add_argument("--batch", help="file of lines SET<TAB>TSV<TAB>OUT<TAB>KIND<TAB>ARG...: "
                    "compares each set, writing its lines to OUT (one process for all sets)")
    ap.add_argument("kind", nargs="?")
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()
    if a.batch:
        rc = 0
        with open(a.batch, encoding="utf-8") as f:
            specs = [l.rstrip("\n").split("\t") for l in f if l.strip()]
        for name, tsv, out, kind, *args in specs:
            with open(out, "w", encoding="utf-8") as o:
                sys.stdout = o
                try:
                    rc |= compare_set(name, tsv, a.allow, kind, args)
                except (OSError, ValueError, IndexError) as e:
                    print("FAIL %s: cannot compare: %s" % (name, e))
                    rc = 1
                finally:
                    sys.stdout = sys.__stdout__
        return rc
    if not (a.set and a.tsv and a.kind and a.args):
        ap.error("--set, --tsv, KIND and ARG are needed without --batch")
    return compare_set(a.set, a.tsv, a.allow, a.kind, a.args)


if __name__ == "__main__":
    sys.exit(main())
