#!/usr/bin/env python3
"""Writes a synthetic mbox whose threads only ghost ids and merges can find, and its expected
threads: the connected components of "a message is linked to every id it has or names"
(DESIGN.md, Threading). Deterministic per --seed; called by tests/integration/test_threading.sh.

The mbox has reply trees with a fifth of their messages missing; replies that name only their
parent (In-Reply-To), part of the chain (References), or a parent that never arrives; messages
without a Message-ID (expected as "noid:N", N = 0-based index); two different messages sharing
one Message-ID; cross-posted replies citing two threads; and misleading subjects (replies to
one thread under another's subject), so that grouping by subject would show.

usage: synth.py --seed N --threads N --mbox FILE --groups FILE
"""
import argparse
import random


class Links:
    def __init__(self):
        self.parent = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b):
        self.parent[self.find(a)] = self.find(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=40)
    ap.add_argument("--mbox", required=True)
    ap.add_argument("--groups", required=True)
    a = ap.parse_args()
    rnd = random.Random(a.seed)

    # Reply trees: node k's parent is a random earlier node of the same thread.
    msgs = []  # dicts: id, parent chain (ids, root first), thread, subject
    for t in range(a.threads):
        size = rnd.randint(1, 14)
        chains = []
        for k in range(size):
            mid = "t%d.m%d@synth.example" % (t, k)
            chain = []
            if k:
                p = rnd.randrange(k)
                chain = chains[p] + ["t%d.m%d@synth.example" % (t, p)]
            chains.append(chain)
            msgs.append({"id": mid, "chain": chain, "thread": t})

    written = []
    for m in msgs:
        if rnd.random() < 0.2:
            continue  # never arrives: a ghost the others may still name
        chain = m["chain"]
        refs, irt = [], None
        style = rnd.random()
        if chain:
            if style < 0.35:
                refs, irt = list(chain), chain[-1]
            elif style < 0.55:
                irt = chain[-1]
            elif style < 0.7:
                refs = chain[-1:]
            elif style < 0.85:
                refs = [chain[0], chain[-1]] if len(chain) > 1 else list(chain)
            else:
                # A broken client: References cites the root, In-Reply-To the parent.
                refs, irt = chain[:1], chain[-1]
        written.append({"id": m["id"], "refs": refs, "irt": irt, "thread": m["thread"]})

    # Cross-posted replies citing two threads merge them; each is new mail.
    for c in range(max(1, a.threads // 10)):
        x, y = rnd.sample(msgs, 2)
        written.append({"id": "cross%d@synth.example" % c, "refs": [x["id"], y["id"]],
                        "irt": y["id"], "thread": y["thread"]})
    # Messages without a Message-ID: linked only through what they name.
    for c in range(3):
        x = rnd.choice(msgs)
        written.append({"id": None, "refs": [x["id"]], "irt": None, "thread": x["thread"]})
    # One Message-ID, two different messages: one key, so their threads are one.
    x, y = rnd.sample(written[: len(written) // 2], 2)
    if x["id"] and y["id"]:
        written.append({"id": x["id"], "refs": [y["id"]], "irt": y["id"],
                        "thread": y["thread"], "dup": True})
    rnd.shuffle(written)

    links = Links()
    labels = []
    for i, w in enumerate(written):
        label = w["id"] or "noid:%d" % i
        node = ("msg", i)
        labels.append(label)
        links.find(node)
        for key in [w["id"]] + w["refs"] + [w["irt"]]:
            if key:
                links.union(node, ("key", key))

    with open(a.mbox, "w", encoding="ascii") as f:
        for i, w in enumerate(written):
            day = 1 + rnd.randrange(28)
            f.write("From synth@example  Sat Jan  1 00:00:00 2022\n")
            f.write("From: Person %d <p%d@synth.example>\n" % (i % 17, i % 17))
            f.write("To: list@synth.example\n")
            # Misleading subjects: some replies carry another thread's subject.
            t = w["thread"] if rnd.random() < 0.7 else rnd.randrange(a.threads)
            f.write("Subject: %sTopic %d\n" % ("Re: " if w["refs"] or w["irt"] else "", t))
            f.write("Date: Sat, %d Jan 2022 %02d:%02d:00 +0000\n" % (day, i % 24, i % 60))
            if w["id"]:
                f.write("Message-ID: <%s>\n" % w["id"])
            if w["irt"]:
                f.write("In-Reply-To: <%s>\n" % w["irt"])
            if w["refs"]:
                f.write("References: %s\n" % "\n ".join("<%s>" % r for r in w["refs"]))
            f.write("\nmessage %d%s\n\n" % (i, " (second copy of an id)" if w.get("dup") else ""))

    groups = {}
    for i, label in enumerate(labels):
        groups.setdefault(links.find(("msg", i)), []).append(label)
    with open(a.groups, "w", encoding="ascii") as f:
        f.write("# expected threads of the synthetic mbox (seed %d)\n" % a.seed)
        for g in sorted(groups.values(), key=lambda g: sorted(g)):
            # One Message-ID on two messages is one label, as compare.py counts it.
            f.write(" ".join(sorted(set(g))) + "\n")


if __name__ == "__main__":
    main()
