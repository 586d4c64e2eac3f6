#!/usr/bin/env python3
"""IMAP syntax of the scripted server (hostile_imap.py): the tokens of a command (atoms, quoted
strings, literals, parenthesised lists), sequence sets, SEARCH dates, and the FETCH answer of
one of its messages. Owns no state; the server's connections call it."""
import hashlib
from datetime import datetime

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class BadSyntax(Exception):
    pass


def tokenize(buf: bytes, pos: int = 0, depth: int = 0):
    """Returns (tokens, pos). Atoms keep [...] sections whole, spaces and parens included,
    so BODY.PEEK[HEADER.FIELDS (FROM)] is one token."""
    out = []
    n = len(buf)
    while pos < n:
        c = buf[pos:pos + 1]
        if c == b" ":
            pos += 1
        elif c == b"(":
            sub, pos = tokenize(buf, pos + 1, depth + 1)
            out.append(sub)
        elif c == b")":
            if depth == 0:
                raise BadSyntax("unbalanced )")
            return out, pos + 1
        elif c == b'"':
            s = bytearray()
            pos += 1
            while True:
                if pos >= n:
                    raise BadSyntax("unterminated string")
                ch = buf[pos]
                if ch == 0x5C and pos + 1 < n:
                    s.append(buf[pos + 1])
                    pos += 2
                elif ch == 0x22:
                    pos += 1
                    break
                else:
                    s.append(ch)
                    pos += 1
            out.append(bytes(s).decode("utf-8", "replace"))
        elif c == b"{":
            end = buf.index(b"}", pos)
            size = int(buf[pos + 1:end].rstrip(b"+"))
            start = end + 3  # "}\r\n"
            out.append(buf[start:start + size].decode("utf-8", "replace"))
            pos = start + size
        else:
            start = pos
            bracket = 0
            while pos < n:
                ch = buf[pos:pos + 1]
                if ch == b"[":
                    bracket += 1
                elif ch == b"]":
                    bracket -= 1
                elif bracket == 0 and ch in (b" ", b"(", b")"):
                    break
                pos += 1
            out.append(buf[start:pos].decode("utf-8", "replace"))
    if depth:
        raise BadSyntax("unbalanced (")
    return out, pos


def parse_set(text: str, largest: int) -> list:
    """An IMAP sequence set ("1,3:5,9:*") as [lo, hi] ranges; * is `largest`. A range is
    unordered (9:3 == 3:9), so n:* with n above the largest still holds the largest."""
    ranges = []
    for part in text.split(","):
        ends = part.split(":")
        if not part or len(ends) > 2:
            raise BadSyntax(f"bad sequence set {text!r}")
        vals = []
        for e in ends:
            if e == "*":
                vals.append(largest)
            elif e.isdigit() and int(e) > 0:
                vals.append(int(e))
            else:
                raise BadSyntax(f"bad sequence set {text!r}")
        ranges.append((min(vals), max(vals)))
    return ranges


def in_set(ranges: list, v: int) -> bool:
    return any(lo <= v <= hi for lo, hi in ranges)


def parse_date(text: str):
    try:
        d, mon, y = text.split("-")
        return datetime(int(y), MONTHS.index(mon.capitalize()) + 1, int(d)).date()
    except (ValueError, IndexError):
        raise BadSyntax(f"bad date {text!r}")


def imap_date(d: datetime) -> str:
    return f"{d.day:02d}-{MONTHS[d.month - 1]}-{d.year} {d.strftime('%H:%M:%S')} +0000"


def is_set(tok) -> bool:
    return isinstance(tok, str) and tok != "" and all(c in "0123456789:,*" for c in tok)


FETCH_MACROS = {"ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
                "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
                "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]}
# fetch item -> (name in the answer, which bytes)
BODY_ITEMS = {"BODY[]": ("BODY[]", "raw"), "BODY.PEEK[]": ("BODY[]", "raw"),
              "BODY[HEADER]": ("BODY[HEADER]", "header"), "BODY.PEEK[HEADER]": ("BODY[HEADER]", "header"),
              "BODY[TEXT]": ("BODY[TEXT]", "text"), "BODY.PEEK[TEXT]": ("BODY[TEXT]", "text"),
              "RFC822": ("RFC822", "raw"), "RFC822.HEADER": ("RFC822.HEADER", "header"),
              "RFC822.TEXT": ("RFC822.TEXT", "text")}


def parse_items(toks: list) -> list:
    if len(toks) == 1 and isinstance(toks[0], list):
        toks = toks[0]
    items = []
    for t in toks:
        if not isinstance(t, str):
            raise BadSyntax("bad fetch items")
        t = t.upper()
        items.extend(FETCH_MACROS.get(t, [t]))
    return items


def split_partial(item: str):
    """BODY.PEEK[]<0.100> -> ("BODY.PEEK[]", 0, 100)."""
    if item.endswith(">") and "<" in item:
        base, _, rng = item[:-1].rpartition("<")
        off, _, cnt = rng.partition(".")
        if off.isdigit() and cnt.isdigit():
            return base, int(off), int(cnt)
    return item, None, None


def gm_msgid(m) -> int:
    """Gmail's X-GM-MSGID: one per message content, the same in every folder."""
    return int(hashlib.sha256(m.raw).hexdigest()[:15], 16)


def render_fetch(seq: int, m, items: list, with_uid: bool):
    """One FETCH answer as byte parts; returns (parts, index of the first literal's bytes
    or None). Scenarios cut answers at that index."""
    parts, cur, lit = [], [b"* %d FETCH (" % seq], None
    fields = []
    if with_uid or "UID" in items:
        fields.append(b"UID %d" % m.uid)
    for it in items:
        if it == "FLAGS":
            fields.append(b"FLAGS (%s)" % m.flags.encode())
        elif it == "INTERNALDATE":
            fields.append(b'INTERNALDATE "%s"' % imap_date(m.internaldate).encode())
        elif it == "RFC822.SIZE":
            fields.append(b"RFC822.SIZE %d" % len(m.raw))
        elif it == "X-GM-THRID":
            fields.append(b"X-GM-THRID %d" % (1000000 + m.uid))
        elif it == "X-GM-MSGID":
            fields.append(b"X-GM-MSGID %d" % gm_msgid(m))
        else:
            base, off, cnt = split_partial(it)
            if base not in BODY_ITEMS:
                continue  # unknown items are ignored
            name, which = BODY_ITEMS[base]
            data = getattr(m, which)
            if off is not None:
                data = data[off:off + cnt]
                name += "<%d>" % off
            fields.append((name.encode(), data))
    for i, f in enumerate(fields):
        sep = b" " if i else b""
        if isinstance(f, bytes):
            cur.append(sep + f)
        else:
            cur.append(sep + f[0] + b" {%d}\r\n" % len(f[1]))
            parts.append(b"".join(cur))
            if lit is None:
                lit = len(parts)
            parts.append(f[1])
            cur = []
    cur.append(b")\r\n")
    parts.append(b"".join(cur))
    return parts, lit
