#!/usr/bin/env python3
"""Deterministic generator of a realistic Maildir++ sample mailbox for mailpipe.

    sample_mailbox.py --seed N --count N --out MAILDIR [--folder-count-json FILE|-]
                      [--owner 'Name <addr>'] [--no-uidlist]

Same arguments => byte-identical message files, file names and mtimes. Only the standard library
is used and randomness comes from a private splitmix64 generator, so the output does not depend on
the Python version. Everything is written with LF line endings, as an MTA would deliver it.

Layout (Maildir++, '.' hierarchy separator, folder names in modified UTF-7):
    MAILDIR/{cur,new,tmp}                              INBOX
    MAILDIR/.Sent  .Archive  .Archive.2023             (Archive.2023 is nested under Archive)
    MAILDIR/.Projekte.Caf&AOk- Z&APw-rich              "Projekte.Café Zürich" (parent Projekte
                                                       has no directory of its own: \\Noselect)
    MAILDIR/.Trash                                     empty
Each folder also gets a dovecot-uidlist (fixed UIDVALIDITY, UIDs in delivery order) unless
--no-uidlist. A summary line of per-folder counts goes to stderr; --folder-count-json writes the
same figures (messages, seen, unseen, flagged, answered, recent, uidvalidity) as JSON.
"""

import argparse
import base64
import hashlib
import json
import os
import struct
import sys
import zlib

HOST = "mailpipe-sample"
MASK = (1 << 64) - 1
T0 = 1673251200  # Mon, 09 Jan 2023 08:00:00 +0000

# IMAP name (UTF-8, '.' separator), share of the messages in percent, special-use
FOLDERS = [
    ("INBOX", 44, None),
    ("Sent", 16, "\\Sent"),
    ("Archive", 15, "\\Archive"),
    ("Archive.2023", 13, None),
    ("Projekte.Café Zürich", 12, None),
    ("Trash", 0, "\\Trash"),
]
DUP_TARGETS = ["Projekte.Café Zürich", "Archive.2023"]


class Rng:
    """splitmix64: tiny, fast and identical on every platform and Python version."""

    def __init__(self, seed):
        self.s = (seed * 0x2545F4914F6CDD1D + 0x5DEECE66D) & MASK

    def u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        return self.u64() % n

    def between(self, a, b):
        return a + self.below(b - a + 1)

    def pct(self, p):
        return self.below(1000) < int(p * 10)

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def shuffle(self, seq):
        for i in range(len(seq) - 1, 0, -1):
            j = self.below(i + 1)
            seq[i], seq[j] = seq[j], seq[i]

    def hex(self, n):
        return "".join("%016x" % self.u64() for _ in range((n + 15) // 16))[:n]

    def bytes(self, n):
        out = bytearray()
        while len(out) < n:
            out += struct.pack("<Q", self.u64())
        return bytes(out[:n])


# ---------------------------------------------------------------------------------------------
# Encoders (hand-written so the output never changes with the email package's behaviour)

def long_token(idx, what, n):
    """n hex digits that do not compress, the same on every run."""
    out, i = "", 0
    while len(out) < n:
        out += hashlib.sha256(("%d/%s/%d" % (idx, what, i)).encode()).hexdigest()
        i += 1
    return out[:n]


def mutf7(name):
    """RFC 3501 modified UTF-7 of one mailbox name component."""
    out, buf = [], []

    def flush():
        if buf:
            raw = "".join(buf).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            buf.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def qp_body(data):
    """Quoted-printable (RFC 2045) of LF-separated bytes, soft breaks at 76 columns."""
    out = []
    for line in data.split(b"\n"):
        enc = []
        for i, b in enumerate(line):
            last = i == len(line) - 1
            if (33 <= b <= 126 and b != 61) or (b in (9, 32) and not last):
                enc.append(chr(b))
            else:
                enc.append("=%02X" % b)
        cur, col = [], 0
        for tok in enc:
            if col + len(tok) > 75:
                out.append("".join(cur) + "=")
                cur, col = [], 0
            cur.append(tok)
            col += len(tok)
        out.append("".join(cur))
    return "\n".join(out).encode("ascii")


def b64_body(data):
    s = base64.b64encode(data).decode()
    return ("\n".join(s[i:i + 76] for i in range(0, len(s), 76)) + "\n").encode("ascii")


def encoded_words(text, charset, mode):
    """RFC 2047 encoded words (each <= 75 chars), split on character boundaries."""
    cs = charset.upper()
    words, chunk = [], ""

    def enc(s):
        raw = s.encode(charset)
        if mode == "B":
            return "=?%s?B?%s?=" % (cs, base64.b64encode(raw).decode())
        q = "".join(chr(b) if (chr(b).isalnum() and b < 128) or chr(b) in "!*+-/" else
                    "_" if b == 32 else "=%02X" % b for b in raw)
        return "=?%s?Q?%s?=" % (cs, q)

    for ch in text:
        if chunk and len(enc(chunk + ch)) > 75:
            words.append(enc(chunk))
            chunk = ""
        chunk += ch
    if chunk:
        words.append(enc(chunk))
    return " ".join(words)


def is_ascii(s):
    return all(ord(c) < 128 for c in s)


def header_text(text, charset="utf-8", mode="Q"):
    return text if is_ascii(text) else encoded_words(text, charset, mode)


def fold(name, value):
    """Folds an unstructured/structured header at spaces to stay under 78 columns."""
    line, lines = name + ":", []
    for tok in value.split(" "):
        if len(line) + 1 + len(tok) > 76 and line.strip() and not line.endswith(":"):
            lines.append(line)
            line = " " + tok
        else:
            line += " " + tok
    lines.append(line)
    return "\n".join(lines)


def rfc2231(value):
    return "utf-8''" + "".join(c if c.isalnum() and ord(c) < 128 or c in "-._~" else
                               "".join("%%%02X" % b for b in c.encode("utf-8")) for c in value)


DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def rfc5322_date(t, tz_min):
    import time
    tm = time.gmtime(t + tz_min * 60)
    sign = "+" if tz_min >= 0 else "-"
    return "%s, %02d %s %04d %02d:%02d:%02d %s%02d%02d" % (
        DAYS[tm.tm_wday], tm.tm_mday, MONTHS[tm.tm_mon - 1], tm.tm_year, tm.tm_hour, tm.tm_min,
        tm.tm_sec, sign, abs(tz_min) // 60, abs(tz_min) % 60)


def html_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# ---------------------------------------------------------------------------------------------
# Content

# display name, address, header charset for the name, tz offset (minutes), language
PEOPLE = [
    ("Maria Schmidt", "maria.schmidt@example.com", None, 60, "en"),
    ("Jürgen Müller", "j.mueller@beispiel.example", "iso-8859-1", 60, "de"),
    ("Zoë Ångström", "zoe@example.net", "utf-8", 60, "en"),
    ("José Álvarez", "jose.alvarez@ejemplo.example", "utf-8", -300, "en"),
    ("Łukasz Wróbel", "lukasz@example.net", "utf-8", 60, "en"),
    ("田中 太郎", "tanaka@example.jp", "utf-8", 540, "en"),
    ("Françoise Dupré", "f.dupre@exemple.example", "iso-8859-1", 60, "fr"),
    ("Doe, Jane", "jane.doe@example.com", None, -480, "en"),
    ("Bob O'Neill", "bob@example.org", None, 0, "en"),
    ("Priya Raman", "priya@example.com", None, 330, "en"),
    ("Ólafur Þórsson", "olafur@example.is", "iso-8859-1", 0, "en"),
    ("Support Team", "support@vendor.example", None, -300, "en"),
    ("", "noreply@billing.example", None, 0, "en"),
    ("Grüße-Bot", "bot@ci.example.net", "utf-8", 0, "de"),
]
OWNER = ("Alex Beispiel", "alex@example.org", None, 60, "en")
LIST = ("dev-announce", "dev-announce@lists.example.net")

SUBJECTS = [
    "Quarterly report draft", "Meeting notes from Tuesday", "Deploy window this weekend",
    "Invoice 2023-0417", "Your order has shipped", "Question about the API rate limits",
    "Lunch on Friday?", "Budget review", "Travel plans for the conference",
    "Einladung: Workshop in Zürich", "Réunion de lundi — ordre du jour", "Ångström measurements",
    "Übergabe der Schlüssel", "Server migration checklist", "Password reset request",
    "Code review: parser rewrite", "Welcome aboard!", "Holiday schedule",
    "Naïve question about caching", "Contract renewal", "Test results for build 1842",
    "Release 2.4 candidate", "🎉 Launch day", "Mañana: reunión con el cliente",
    "Spreadsheet with Q3 figures", "Slides for the all-hands", "Can you sign this by Thursday?",
    "Outage postmortem", "New office Wi-Fi", "Kündigungsfrist und Verlängerung",
    "A very long subject line that keeps going to make sure that header folding and long "
    "encoded words are exercised by every parser that reads this mailbox",
    "Straßenfest im Sommer – Helfer gesucht", "Weekly digest", "Re: old thread revived",
]

SENTENCES_EN = [
    "Thanks for sending this over so quickly.",
    "I had a look at the numbers and they mostly line up with what we expected.",
    "Could you double-check the totals in the second table?",
    "The deploy is scheduled for Saturday morning, so please hold off on merges.",
    "Let me know if Thursday afternoon works for a quick call.",
    "I've attached the latest version; changes are highlighted.",
    "We should probably loop in the finance team before we commit to anything.",
    "The test suite passed on all platforms except the ARM builders.",
    "Please find the agenda below.",
    "Sorry for the late reply, I was travelling last week.",
    "The café near the office is closed on Mondays, so let's meet at the usual place.",
    "Pricing is 1,250 € per seat per year, which is within budget.",
    "Our naïve approach worked for small inputs but falls over beyond 10k rows.",
    "I'm not sure this is the right list for the question, but here goes.",
    "The migration moved 4.2 million rows without downtime.",
    "Could you forward this to whoever owns the billing service?",
    "No rush on this — next week is fine.",
    "We agreed to revisit the decision at the end of the quarter.",
]
SENTENCES_DE = [
    "Vielen Dank für die schnelle Rückmeldung.",
    "Die Unterlagen liegen im gemeinsamen Ordner unter „Verträge“.",
    "Können wir das Gespräch auf nächste Woche verschieben?",
    "Die Übergabe findet am Freitag um 14 Uhr statt.",
    "Bitte prüfen Sie die beigefügte Aufstellung der Kosten.",
    "Grüße aus dem Büro in Köln.",
]
SENTENCES_FR = [
    "Merci beaucoup pour votre réponse rapide.",
    "La réunion est déplacée à jeudi à 15 h.",
    "Voici le document mis à jour, avec les corrections demandées.",
    "Je reste à votre disposition pour toute question.",
]
CLOSINGS = {"en": ["Best,", "Cheers,", "Thanks,", "Regards,", "--"],
            "de": ["Viele Grüße,", "Beste Grüße,", "Mit freundlichen Grüßen,"],
            "fr": ["Cordialement,", "Bien à vous,", "Merci,"]}
MAILERS = ["Mozilla Thunderbird 115.3.1", "Microsoft Outlook 16.0", "Apple Mail (2.3731.700.6)",
           "Roundcube Webmail/1.6.2", "mutt/2.2.9", "K-9 Mail for Android"]


def latin1_ok(s):
    try:
        s.encode("iso-8859-1")
        return True
    except UnicodeEncodeError:
        return False


class Msg:
    __slots__ = ("idx", "folder", "t", "recv", "tz", "frm", "to", "cc", "subject", "msgid",
                 "irt", "refs", "text", "lang", "kind", "malformed", "parent", "flags",
                 "raw", "in_new", "is_list")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


def fmt_addr(p):
    name, addr, cs = p[0], p[1], p[2]
    if not name:
        return addr
    if not is_ascii(name):
        enc = "Q" if cs == "iso-8859-1" else "B"
        return "%s <%s>" % (encoded_words(name, cs or "utf-8", enc), addr)
    if any(c in name for c in ',.;:"()<>@[]\\\''):
        return '"%s" <%s>' % (name.replace("\\", "\\\\").replace('"', '\\"'), addr)
    return "%s <%s>" % (name, addr)


def make_text(rng, lang, nonascii_ok=True):
    bank = {"de": SENTENCES_DE + SENTENCES_EN[:4], "fr": SENTENCES_FR + SENTENCES_EN[:4]}.get(
        lang, SENTENCES_EN)
    if not nonascii_ok:
        bank = [s for s in bank if is_ascii(s)]
    bank = list(bank)
    rng.shuffle(bank)
    paras = []
    for _ in range(rng.between(1, 4)):
        n = rng.between(1, 4)
        if len(bank) < n:
            break
        paras.append(" ".join(bank[:n]))
        del bank[:n]
    return paras


def wrap(text, width=72):
    out, line = [], ""
    for w in text.split(" "):
        if line and len(line) + 1 + len(w) > width:
            out.append(line)
            line = w
        else:
            line = (line + " " + w) if line else w
    out.append(line)
    return out


def fake_pdf(rng, size):
    head = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    return head + rng.bytes(max(0, size - len(head) - 6)) + b"\n%%EOF"


def png_stored(rng, w=16, h=16):
    """A valid PNG using stored (uncompressed) deflate blocks: no zlib version dependence."""
    raw = b"".join(b"\x00" + rng.bytes(w * 3) for _ in range(h))
    z = b"\x78\x01" + b"\x01" + struct.pack("<HH", len(raw), len(raw) ^ 0xFFFF) + raw + \
        struct.pack(">I", zlib.adler32(raw))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", z) + chunk(b"IEND", b""))


def fake_csv(rng, rows):
    lines = ["month;region;revenue;growth"]
    regions = ["Nord", "Süd", "Zürich", "Île-de-France", "Kraków"]
    for i in range(rows):
        lines.append("%s;%s;%d,%02d;%d%%" % (MONTHS[i % 12], rng.choice(regions),
                                              rng.between(1000, 99999), rng.below(100),
                                              rng.between(-20, 40)))
    return ("\n".join(lines) + "\n").encode("utf-8")


def attachment(rng, big=False):
    kind = rng.below(4)
    if big:
        return ("application/pdf", "Jahresbericht 2023 (final).pdf", fake_pdf(rng, 262144))
    if kind == 0:
        name = rng.choice(["Präsentation Q3.pdf", "contract-signed.pdf", "Rechnung_0417.pdf"])
        return ("application/pdf", name, fake_pdf(rng, rng.between(4000, 40000)))
    if kind == 1:
        return ("image/png", rng.choice(["screenshot.png", "Grafik Umsatz.png"]), png_stored(rng))
    if kind == 2:
        return ("text/csv", rng.choice(["figures-q3.csv", "Zahlen März.csv"]),
                fake_csv(rng, rng.between(20, 80)))
    return ("application/octet-stream", "backup-%s.bin" % rng.hex(6),
            rng.bytes(rng.between(3000, 20000)))


def text_part_headers(charset, cte, flowed=False):
    fl = "; format=flowed" if flowed else ""
    return ["Content-Type: text/plain; charset=%s%s" % (charset, fl),
            "Content-Transfer-Encoding: %s" % cte]


def encode_text(lines, charset, rng):
    """Returns (cte, body bytes) for a text part."""
    data = ("\n".join(lines) + "\n").encode(charset)
    if all(b < 128 for b in data) and all(len(ln) <= 998 for ln in lines):
        return "7bit", data
    if charset == "utf-8" and rng.pct(25):
        return "8bit", data
    return "quoted-printable", qp_body(data[:-1]) + b"\n"


def render_headers(h):
    return b"\n".join(x if isinstance(x, bytes) else x.encode("utf-8") for x in h) + b"\n\n"


def build(msg, rng, msgs_by_idx, big_attachment):
    """Renders one message to bytes."""
    lang = msg.lang
    charset = "utf-8"
    all_text = "\n".join(msg.text)
    if msg.kind in ("plain", "fwd") and latin1_ok(all_text) and not is_ascii(all_text) and \
            rng.pct(45):
        charset = "iso-8859-1"
    h = []
    if msg.folder != "Sent":
        h.append(fold("Return-Path", "<%s>" % msg.frm[1]))
        relay = rng.between(10, 250)
        h.append("Received: from mx%d.%s (mx%d.%s [192.0.2.%d])\n\tby mail.example.org "
                 "(Postfix) with ESMTPS id %s\n\tfor <%s>; %s" % (
                     relay % 3 + 1, msg.frm[1].split("@")[1], relay % 3 + 1,
                     msg.frm[1].split("@")[1], relay, rng.hex(10).upper(), OWNER[1],
                     rfc5322_date(msg.recv, 60)))
    if msg.malformed != "nodate":
        h.append("Date: " + rfc5322_date(msg.t, msg.tz))
    if msg.malformed == "raw8bit":
        h.append(b"From: J\xfcrgen M\xfcller <j.mueller@beispiel.example>")  # raw Latin-1
    else:
        h.append(fold("From", fmt_addr(msg.frm)))
    h.append(fold("To", ", ".join(fmt_addr(p) for p in msg.to)))
    if msg.cc:
        h.append(fold("Cc", ", ".join(fmt_addr(p) for p in msg.cc)))
    if msg.malformed == "long_headers":
        # Values past a btree entry's 2,704-byte limit: the database must still take it.
        h.append(fold("Cc", "<%s@example.org>" % long_token(msg.idx, "cc", 3000)))
        h.append(fold("Subject", "Re: " + " ".join(
            long_token(msg.idx, "subject", 3000)[i:i + 50] for i in range(0, 3000, 50))))
        msg.msgid = "<%s@example.org>" % long_token(msg.idx, "id", 3000)
    elif msg.malformed == "raw8bit":
        h.append("Subject: " + msg.subject)  # raw UTF-8, not encoded
    elif msg.malformed == "badcharset":
        h.append("Subject: =?x-mac-klingon?Q?Qapla=E9_" + "tlhIngan?= status")
    else:
        s = msg.subject
        cs, mode = ("iso-8859-1", "Q") if latin1_ok(s) and rng.pct(40) else \
            ("utf-8", rng.choice(["Q", "B"]))
        h.append(fold("Subject", header_text(s, cs, mode)))
    h.append("Message-ID: " + msg.msgid)
    if msg.irt:
        h.append("In-Reply-To: " + msg.irt)
        h.append(fold("References", " ".join(msg.refs)))
    if msg.is_list:
        h.append("List-Id: Developer announcements <%s>" % LIST[1].replace("@", "."))
        h.append("List-Unsubscribe: <mailto:%s?subject=unsubscribe>" %
                 LIST[1].replace("@", "-request@", 1))
        h.append("Precedence: list")
    h.append("MIME-Version: 1.0")
    h.append(("User-Agent: " if rng.pct(50) else "X-Mailer: ") + rng.choice(MAILERS))

    body_lines = []
    for p in msg.text:
        body_lines += wrap(p) + [""]
    if msg.parent is not None and msg.irt is not None:
        par = msgs_by_idx[msg.parent]
        body_lines.append("On %s, %s wrote:" % (rfc5322_date(par.t, par.tz),
                                                  par.frm[0] or par.frm[1]))
        for p in par.text:
            body_lines += ["> " + ln for ln in wrap(p, 70)] + [">"]
        body_lines.pop()
    elif msg.parent is not None and msg.kind == "fwd":
        par = msgs_by_idx[msg.parent]
        body_lines += ["---------- Forwarded message ---------",
                       "From: %s <%s>" % (par.frm[0], par.frm[1]),
                       "Date: " + rfc5322_date(par.t, par.tz),
                       "Subject: " + par.subject, ""]
        for p in par.text:
            body_lines += wrap(p) + [""]
    closing = rng.choice(CLOSINGS.get(lang, CLOSINGS["en"]))
    if charset == "iso-8859-1" and not latin1_ok(closing):
        closing = "Regards,"
    body_lines += [closing, msg.frm[0] or "The %s team" % msg.frm[1].split("@")[1]]
    if msg.is_list:
        body_lines += ["", "_______________________________________________",
                       "dev-announce mailing list", "https://lists.example.net/dev-announce"]
    if charset == "iso-8859-1" and not latin1_ok("\n".join(body_lines)):
        charset = "utf-8"

    kind = msg.kind
    boundary = "=_%s" % rng.hex(20)
    parts = b""
    if msg.malformed == "broken_boundary":
        cte, data = encode_text(body_lines, "utf-8", rng)
        h.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
        body = ("This is a multi-part message in MIME format.\n\n--%s\n" % boundary).encode()
        body += ("\n".join(text_part_headers("utf-8", cte)) + "\n\n").encode() + data
        body += ("\n--%sX\nContent-Type: text/plain; charset=us-ascii\n\n"
                 "second part with a mistyped delimiter and no closing boundary\n" %
                 boundary[:-1]).encode()
        return render_headers(h) + body
    if msg.malformed == "badcharset":
        h.append("Content-Type: text/plain; charset=x-mac-klingon")
        h.append("Content-Transfer-Encoding: quoted-printable")
        data = ("\n".join(body_lines) + "\n").encode("utf-8")
        return render_headers(h) + qp_body(data[:-1]) + b"\n"
    if msg.malformed in ("raw8bit", "nodate"):
        kind = "plain"

    if kind in ("plain", "reply", "fwd"):
        cte, data = encode_text(body_lines, charset, rng)
        if msg.malformed == "raw8bit":
            h.append("Content-Type: text/plain")  # no charset although the body has 8-bit UTF-8
            h.append("Content-Transfer-Encoding: 8bit")
            data = ("\n".join(body_lines) + "\n").encode("utf-8")
        else:
            h += text_part_headers(charset, cte, flowed=rng.pct(15))
        body = data
    elif kind == "html":
        cte, data = encode_text(body_lines, "utf-8", rng)
        html = ['<!DOCTYPE html>', '<html><head><meta http-equiv="Content-Type" '
                'content="text/html; charset=utf-8"></head>',
                '<body style="font-family: Arial, sans-serif; font-size: 14px;">']
        for p in msg.text:
            html.append("<p>%s</p>" % html_escape(p))
        html.append('<p>More at <a href="https://intranet.example.org/wiki/%s">the wiki</a>.</p>'
                    % rng.hex(8))
        if msg.parent is not None:
            par = msgs_by_idx[msg.parent]
            html.append('<blockquote type="cite" style="border-left: 2px solid #ccc; '
                        'padding-left: 8px;">')
            for p in par.text:
                html.append("<p>%s</p>" % html_escape(p))
            html.append("</blockquote>")
        html.append("<p>%s<br>%s</p>" % (html_escape(closing), html_escape(msg.frm[0] or "")))
        html.append("</body></html>")
        hdata = ("\n".join(html) + "\n").encode("utf-8")
        h.append('Content-Type: multipart/alternative;\n boundary="%s"' % boundary)
        body = ("--%s\n" % boundary).encode()
        body += ("\n".join(text_part_headers("utf-8", cte)) + "\n\n").encode() + data
        body += ("\n--%s\nContent-Type: text/html; charset=utf-8\n"
                 "Content-Transfer-Encoding: quoted-printable\n\n" % boundary).encode()
        body += qp_body(hdata[:-1]) + ("\n\n--%s--\n" % boundary).encode()
    elif kind in ("attach", "fwd_attach"):
        cte, data = encode_text(body_lines, charset, rng)
        h.append('Content-Type: multipart/mixed;\n boundary="%s"' % boundary)
        body = ("This is a multi-part message in MIME format.\n\n--%s\n" % boundary).encode()
        body += ("\n".join(text_part_headers(charset, cte)) + "\n\n").encode() + data
        if kind == "fwd_attach":
            inner = msg.raw
            cte8 = "7bit" if all(b < 128 for b in inner) else "8bit"
            body += ("\n--%s\nContent-Type: message/rfc822\nContent-Transfer-Encoding: %s\n"
                     "Content-Disposition: attachment\n\n" % (boundary, cte8)).encode()
            body += inner if inner.endswith(b"\n") else inner + b"\n"
        else:
            n_att = 1 + (1 if rng.pct(30) else 0)
            for k in range(n_att):
                ctype, fname, payload = attachment(rng, big=big_attachment and k == 0)
                if is_ascii(fname):
                    disp = 'attachment; filename="%s"' % fname
                    cname = '; name="%s"' % fname
                elif rng.pct(50):
                    disp = "attachment;\n filename*=%s" % rfc2231(fname)
                    cname = ""
                else:  # the non-standard but very common Outlook style
                    ew = encoded_words(fname, "utf-8", "B")
                    disp = 'attachment;\n filename="%s"' % ew
                    cname = ';\n name="%s"' % ew
                body += ("\n--%s\nContent-Type: %s%s\nContent-Transfer-Encoding: base64\n"
                         "Content-Disposition: %s\n\n" % (boundary, ctype, cname, disp)).encode()
                body += b64_body(payload)
        body += ("\n--%s--\n" % boundary).encode()
    else:
        raise AssertionError(kind)
    return render_headers(h) + body


# ---------------------------------------------------------------------------------------------

def split_counts(total, weights):
    s = sum(weights)
    raw = [total * w for w in weights]
    base = [r // s for r in raw]
    rest = sorted(range(len(weights)), key=lambda i: (-(raw[i] % s), i))
    for i in rest[:total - sum(base)]:
        base[i] += 1
    return base


def generate(seed, count):
    rng = Rng(seed)
    names = [f[0] for f in FOLDERS]
    per_folder = dict(zip(names, split_counts(count, [f[1] for f in FOLDERS])))
    ndup = (count + 25) // 50 if count >= 20 else 0  # ~2%
    dup_into = {n: 0 for n in names}
    for k in range(ndup):
        dup_into[DUP_TARGETS[k % len(DUP_TARGETS)]] += 1
    seq = []
    for n in names:
        seq += [n] * (per_folder[n] - dup_into[n])
    rng.shuffle(seq)

    avg_gap = max(900, min(172800, 300 * 86400 // max(1, count)))
    t = T0
    msgs = []
    seen_subjects = []
    for i, folder in enumerate(seq):
        t += rng.between(300, 2 * avg_gap)
        outgoing = folder == "Sent"
        candidates = [m for m in msgs[-40:] if not m.malformed and
                      ((m.folder != "Sent") if outgoing else True)]
        r = rng.below(100)
        kind, parent = "new", None
        if candidates and r < (55 if outgoing else 30):
            kind, parent = "reply", rng.choice(candidates)
        elif candidates and r < (65 if outgoing else 35):
            kind, parent = "fwd", rng.choice(candidates)
        is_list = False
        if outgoing:
            frm = OWNER
            if parent is not None and kind == "reply":
                to = [parent.frm]
                cc = [p for p in parent.cc or [] if p != OWNER][:2]
            else:
                to = [rng.choice(PEOPLE[:11]) for _ in range(rng.between(1, 3))]
                cc = [rng.choice(PEOPLE[:11])] if rng.pct(30) else []
            tz = 60
        else:
            frm = rng.choice(PEOPLE)
            if parent is not None and kind == "reply" and parent.folder == "Sent":
                frm = parent.to[0]
            is_list = frm[1] == "bot@ci.example.net" or (not parent and rng.pct(6))
            to = [OWNER] + ([rng.choice(PEOPLE[:11])] if rng.pct(25) else [])
            if is_list:
                to = [(LIST[0], LIST[1], None)]
            cc = [rng.choice(PEOPLE[:11]) for _ in range(rng.between(1, 2))] if rng.pct(25) \
                else []
            tz = frm[3]
        # de-duplicate recipients, keep order
        uniq = []
        for p in to:
            if p not in uniq and p != frm:
                uniq.append(p)
        to = uniq or [OWNER]
        cc = [p for k, p in enumerate(cc) if p not in cc[:k] and p not in to and p != frm]
        lang = frm[4] if len(frm) > 4 else "en"
        if parent is not None:
            base = parent.subject
            while base[:4] in ("Re: ", "RE: ", "AW: ", "Fwd:") or base[:3] == "WG:":
                base = base.split(":", 1)[1].lstrip()
            pre = {"reply": rng.choice(["Re: ", "Re: ", "RE: ", "AW: " if lang == "de" else "Re: "]),
                   "fwd": rng.choice(["Fwd: ", "Fwd: ", "WG: " if lang == "de" else "Fwd: "])}[kind]
            subject = pre + base
            refs = (parent.refs or [])[-9:] + [parent.msgid]
            irt = parent.msgid if kind == "reply" else None
            if kind == "fwd":
                refs, irt = None, None
        else:
            subject = rng.choice(SUBJECTS)
            if subject in seen_subjects[-10:]:
                subject += " (%d)" % rng.between(2, 9)
            refs, irt = None, None
        seen_subjects.append(subject)
        if kind == "fwd" and rng.pct(30):
            kind = "fwd_attach"
        elif kind != "fwd" and rng.pct(6):
            kind = "attach"
        elif kind in ("new", "reply") and rng.pct(38):
            kind = "html"
        elif kind == "new":
            kind = "plain"
        domain = frm[1].split("@")[1]
        m = Msg(idx=i, folder=folder, t=t, recv=t + rng.between(2, 90) if not outgoing else t,
                tz=tz, frm=frm, to=to, cc=cc, subject=subject,
                msgid="<%s.%d@%s>" % (rng.hex(16), i, domain), irt=irt, refs=refs,
                text=make_text(rng, lang), lang=lang, kind=kind, malformed=None,
                parent=parent.idx if parent is not None else None, flags=set(), raw=None,
                in_new=False, is_list=is_list)
        msgs.append(m)

    # Malformed messages at fixed, spread-out positions among the incoming plain/html ones.
    kinds = ["nodate", "broken_boundary", "raw8bit", "badcharset", "long_headers"][:count // 10]
    pool = [m for m in msgs if m.folder in ("INBOX", "Archive") and m.kind in
            ("plain", "html", "reply") and not any(x.parent == m.idx for x in msgs)]
    for k, bad in enumerate(kinds):
        if not pool:
            break
        m = pool[(k * 2 + 1) * len(pool) // (2 * len(kinds))]
        m.malformed = bad
        if bad == "raw8bit":
            m.subject = "Übersicht der Änderungen – bitte prüfen"
            m.frm = PEOPLE[1]
        pool.remove(m)

    # Render (forwards-as-attachment embed the parent's bytes, so parents render first).
    by_idx = {m.idx: m for m in msgs}
    big_idx = msgs[len(msgs) * 2 // 3].idx if count >= 200 else -1
    for m in msgs:
        if m.kind == "attach" and big_idx >= 0 and m.idx >= big_idx:
            m.raw = None
            data = build(m, rng, by_idx, True)
            big_idx = -1
        else:
            if m.kind == "fwd_attach":
                m.raw = by_idx[m.parent].raw
            data = build(m, rng, by_idx, False)
        m.raw = data

    # Flags: answered (+seen) for what the owner replied to, all of Sent seen, then fill to ~30%.
    for m in msgs:
        if m.folder == "Sent":
            m.flags.add("S")
            if m.irt is not None and by_idx[m.parent].folder != "Sent":
                by_idx[m.parent].flags.update("RS")
    target = (count * 30 + 50) // 100
    others = [m for m in msgs if "S" not in m.flags]
    rng.shuffle(others)
    have = sum(1 for m in msgs if "S" in m.flags)
    for m in others:
        if have >= target:
            break
        m.flags.add("S")
        have += 1
    for m in msgs:
        if rng.pct(5):
            m.flags.add("F")
    # The newest few unseen INBOX messages are still in new/ (never seen by any client).
    inbox_unseen = [m for m in msgs if m.folder == "INBOX" and not m.flags]
    for m in inbox_unseen[-max(1, len(inbox_unseen) // 25):] if inbox_unseen else []:
        m.in_new = True

    # Byte-identical copies of a few messages in a second folder.
    files = {n: [] for n in names}
    for m in msgs:
        files[m.folder].append((m.recv, m.raw, "".join(sorted(m.flags)), m.in_new))
    src = [m for m in msgs if m.folder in ("INBOX", "Archive") and not m.malformed and
           not m.in_new]
    for k in range(ndup):
        m = src[(k * 2 + 1) * len(src) // (2 * ndup)]
        files[DUP_TARGETS[k % len(DUP_TARGETS)]].append(
            (m.recv, m.raw, "".join(sorted(m.flags)), False))
    for n in names:
        files[n].sort(key=lambda f: f[0])
        assert len(files[n]) == per_folder[n], (n, len(files[n]), per_folder[n])
    stats = {"malformed": [m.malformed for m in msgs if m.malformed], "duplicates": ndup,
             "threads": sum(1 for m in msgs if m.irt)}
    return files, stats


def write_maildir(out, files, seed, uidlist):
    rng = Rng(seed ^ 0x5EED)
    summary = {}
    serial = 0
    for fi, (name, _, special) in enumerate(FOLDERS):
        d = out if name == "INBOX" else os.path.join(
            out, "." + ".".join(mutf7(c) for c in name.split(".")))
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        last = max([f[0] for f in files[name]] + [T0])
        if name != "INBOX":
            open(os.path.join(d, "maildirfolder"), "wb").close()
            os.utime(os.path.join(d, "maildirfolder"), (T0, T0))
        uidv = 1600000000 + (seed % 10000000) * 8 + fi
        recs = []
        st = {"dir": os.path.basename(d) if name != "INBOX" else "",
              "imap_name_mutf7": ".".join(mutf7(c) for c in name.split(".")), "messages": 0,
              "seen": 0,
              "unseen": 0, "flagged": 0, "answered": 0, "recent": 0, "uidvalidity": uidv,
              "special_use": special}
        for recv, raw, flags, in_new in files[name]:
            serial += 1
            vsize = len(raw) + raw.count(b"\n") - raw.count(b"\r\n")
            base = "%d.M%dP%d.%s,S=%d,W=%d" % (recv, serial, seed % 100000, HOST, len(raw), vsize)
            path = os.path.join(d, "new", base) if in_new else \
                os.path.join(d, "cur", base + ":2," + flags)
            with open(path, "wb") as f:
                f.write(raw)
            os.utime(path, (recv, recv))
            recs.append(base)
            st["messages"] += 1
            st["seen" if "S" in flags else "unseen"] += 1
            st["flagged"] += "F" in flags
            st["answered"] += "R" in flags
            st["recent"] += in_new
        if uidlist:
            lines = ["3 V%d N%d G%s" % (uidv, len(recs) + 1, rng.hex(32))]
            lines += ["%d :%s" % (u + 1, b) for u, b in enumerate(recs)]
            with open(os.path.join(d, "dovecot-uidlist"), "w") as f:
                f.write("\n".join(lines) + "\n")
            os.utime(os.path.join(d, "dovecot-uidlist"), (last, last))
        summary[name] = st
    return summary


def main():
    global OWNER
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True, help="Maildir to create (must be absent or empty)")
    ap.add_argument("--folder-count-json", metavar="FILE",
                    help="write per-folder counts as JSON to FILE ('-' = stdout)")
    ap.add_argument("--owner", help="mailbox owner as 'Name <addr>' (default: %s <%s>)" %
                    OWNER[:2])
    ap.add_argument("--no-uidlist", action="store_true",
                    help="do not write dovecot-uidlist files (UIDs then assigned by the server)")
    a = ap.parse_args()
    if a.count < 0 or a.seed < 0:
        ap.error("--seed and --count must be >= 0")
    if a.owner:
        name, _, addr = a.owner.rpartition("<")
        if not addr.endswith(">") or "@" not in addr:
            ap.error("--owner must look like 'Name <user@host>'")
        OWNER = (name.strip(), addr[:-1].strip(), "utf-8", 60, "en")
    out = os.path.abspath(a.out)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        print("sample_mailbox: %s exists and is not an empty directory" % out, file=sys.stderr)
        return 2
    files, stats = generate(a.seed, a.count)
    os.makedirs(out, exist_ok=True)
    summary = write_maildir(out, files, a.seed, not a.no_uidlist)
    tot = {k: sum(s[k] for s in summary.values()) for k in ("messages", "seen", "unseen",
                                                             "flagged", "recent")}
    print("sample_mailbox: seed=%d count=%d %s | seen=%d unseen=%d flagged=%d recent=%d "
          "duplicates=%d malformed=%d" % (
              a.seed, a.count, " ".join("%s=%d" % (n, s["messages"]) for n, s in summary.items()),
              tot["seen"], tot["unseen"], tot["flagged"], tot["recent"], stats["duplicates"],
              len(stats["malformed"])), file=sys.stderr)
    if a.folder_count_json:
        doc = json.dumps({"seed": a.seed, "count": a.count, "separator": ".",
                          "folders": summary, "totals": tot, "duplicates": stats["duplicates"],
                          "malformed": stats["malformed"]}, indent=2, sort_keys=True,
                         ensure_ascii=False) + "\n"
        if a.folder_count_json == "-":
            sys.stdout.buffer.write(doc.encode("utf-8"))
        else:
            with open(a.folder_count_json, "w", encoding="utf-8") as f:
                f.write(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
