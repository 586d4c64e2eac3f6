#!/usr/bin/env bash
# Issue 10, queries: `mailpipe export ID --format eml` gives back every message exactly as Dovecot
# serves it (the sample mailbox plus hand-made malformed ones: bare LF, mixed line ends, raw
# 8-bit, NUL bytes, no final newline, no body), and as the scripted server of test_hostile.sh
# serves its Raw folder (NUL and bare LF sent as they are); `--format json` the parsed message; an unknown
# format is a usage error; `folders` filters by --account/--folder/--limit; every listing and
# show command takes --json.
. "$(dirname "$0")/lib.sh"
stack_up 120 3

# Malformed messages dropped straight into the Maildir (APPEND would normalise line ends).
inbox=$MAILPIPE_STACK_DIR/mail/demo/Maildir
python3 - "$inbox/new" <<'EOF'
import os, sys, time
d = sys.argv[1]
msgs = {
    "lf": b"From: Bare LF <lf@example.org>\nTo: demo@example.org\nSubject: bare LF only\n"
          b"Message-ID: <export-lf@example.org>\nDate: Tue, 01 Dec 2026 10:00:00 +0000\n\n"
          b"line one\nline two with 8-bit \xc3\xa9t\xc3\xa9 and no charset\n",
    "nul": b"From: Nul <nul@example.org>\r\nTo: demo@example.org\r\nSubject: NUL bytes\r\n"
           b"Message-ID: <export-nul@example.org>\r\nDate: Tue, 01 Dec 2026 10:01:00 +0000\r\n\r\n"
           b"before\x00after\r\n\x00\x00\r\nend\r\n",
    "mixed": b"From: Mixed <mixed@example.org>\r\nTo: demo@example.org\nSubject: caf\xe9 latin-1 header\r\n"
             b"Message-ID: <export-mixed@example.org>\nDate: Tue, 01 Dec 2026 10:02:00 +0000\r\n\r\n"
             b"crlf line\r\nlf line\nno final newline",
    "headonly": b"From: Head <head@example.org>\r\nSubject: no body at all\r\n"
                b"Message-ID: <export-head@example.org>\r\n",
}
for i, (k, raw) in enumerate(msgs.items()):
    path = os.path.join(d, "%d.M%dP1.export-%s,S=%d" % (time.time(), i, k, len(raw)))
    with open(path, "wb") as f:
        f.write(raw)
    st = os.stat(d)
    os.chown(path, st.st_uid, st.st_gid)
EOF
add_account ex
# Dovecot rewrites NUL and bare LF (below), so the scripted server sends them as they are.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HPORT=$(free_port)
python3 "$ROOT/tests/integration/hostile_imap.py" --port "$HPORT" --messages 2 --raw-folder \
	--log "$MAILPIPE_STACK_DIR/hostile.jsonl" --ready-file "$MAILPIPE_STACK_DIR/hostile.ready" \
	>"$MAILPIPE_STACK_DIR/hostile.out" 2>&1 &
HOSTILE_PID=$!
trap 'kill $HOSTILE_PID 2>/dev/null; stack_down' EXIT
for _ in $(seq 100); do [ -f "$MAILPIPE_STACK_DIR/hostile.ready" ] && break; sleep 0.1; done
export HOSTILE_PW=pw
mailpipe account add raw --host 127.0.0.1 --port "$HPORT" --tls none --username good \
	--secret env:HOSTILE_PW --interval 0 --initial-window-days 0 >/dev/null
run_start
mailpipe sync ex --wait --timeout 120 >"$MAILPIPE_STACK_DIR/summary.json"
check "sync of the sample mailbox and the malformed messages exits 0" [ $? -eq 0 ]
check "the four hand-made messages are stored" [ "$(sql "SELECT count(*) FROM messages WHERE message_id LIKE 'export-%'")" = 4 ]

out=$MAILPIPE_STACK_DIR/compare.out
python3 "$ROOT/tests/integration/export_compare.py" ex 127.0.0.1 "$MP_IMAP_PORT" demo demo >"$out"
cmp_rc=$?
cat "$out"
check "export_compare.py found no difference" [ "$cmp_rc" = 0 ]
summary=$(grep '^compared' "$out")
check "every location was compared, 8-bit ones included ($summary)" python3 -c "
import re, sys
d = dict((k, int(v)) for k, v in re.findall(r'(CR-LF|bare LF|8-bit|NUL) (\\d+)', sys.argv[1]))
assert int(sys.argv[1].split()[1]) == int(sys.argv[2]) and d['8-bit'] > 0, (d, sys.argv[2])" \
	"$summary" "$(sql "SELECT count(*) FROM message_locations l JOIN email_folders f ON f.id = l.folder_id
	       JOIN accounts a ON a.id = f.account_id WHERE a.name = 'ex'")"

mailpipe sync raw --wait --timeout 60 >"$MAILPIPE_STACK_DIR/raw.json"
check "sync of the scripted server's Raw folder (NUL, bare LF, bare CR, 8-bit headers) exits 0" [ $? -eq 0 ]
python3 "$ROOT/tests/integration/export_compare.py" raw 127.0.0.1 "$HPORT" good pw >"$out"
cmp_rc=$?
cat "$out"
check "export_compare.py found no difference on the scripted server either" [ "$cmp_rc" = 0 ]
summary=$(grep '^compared' "$out")
check "those messages carried bare LF and NUL bytes ($summary)" python3 -c "
import re, sys
d = dict((k, int(v)) for k, v in re.findall(r'(CR-LF|bare LF|8-bit|NUL) (\\d+)', sys.argv[1]))
assert d['bare LF'] >= 2 and d['NUL'] >= 1 and d['8-bit'] >= 2, d" "$summary"

# Dovecot serves a stored NUL as 0x80 and a bare LF as CR-LF (BODY[] is not BINARY[]), so from
# it mailpipe receives, and must keep, those bytes instead: the comparison above covers 8-bit
# and the line ends as served; NUL and bare LF never arrive from Dovecot.
nul_id=$(sql "SELECT id FROM messages WHERE message_id = 'export-nul@example.org'")
check "export --format eml of the NUL message is exactly the server's bytes" python3 -c "
import imaplib, subprocess, sys
i = imaplib.IMAP4('127.0.0.1', int(sys.argv[1])); i.login('demo', 'demo'); i.select('INBOX', readonly=True)
_, d = i.uid('SEARCH', 'HEADER', 'Message-ID', 'export-nul@example.org')
_, f = i.uid('FETCH', d[0].split()[0], '(BODY.PEEK[])')
served = f[0][1]
got = subprocess.run(['mailpipe', 'export', sys.argv[2], '--format', 'eml'], capture_output=True).stdout
print('  server sent', repr(served[-40:]))
assert got == served" "$MP_IMAP_PORT" "$nul_id"

id=$(sql "SELECT id FROM messages WHERE message_id = 'export-mixed@example.org'")
check "export --format json gives the parsed message" python3 -c "
import json, subprocess, sys
j = json.loads(subprocess.run(['mailpipe', 'export', sys.argv[1], '--format', 'json'], capture_output=True, check=True).stdout)
assert j['id'] == int(sys.argv[1]) and j['from']['email'] == 'mixed@example.org', j
assert 'no final newline' in j['body_text'], j['body_text']" "$id"
check "export --json is the same as --format json" \
	bash -c "[ \"\$(mailpipe export $id --json)\" = \"\$(mailpipe export $id --format json)\" ]"
mailpipe export "$id" --format mbox >/dev/null 2>"$MAILPIPE_STACK_DIR/err"
rc=$?
check "export --format mbox is a usage error (exit 2, one line: $(cat "$MAILPIPE_STACK_DIR/err"))" \
	bash -c "[ $rc = 2 ] && [ \$(wc -l <'$MAILPIPE_STACK_DIR/err') = 1 ] && grep -q 'mbox' '$MAILPIPE_STACK_DIR/err'"
mailpipe export "$id" --format eml --json >/dev/null 2>&1
check "export --format eml --json is a usage error" [ $? = 2 ]
mailpipe show "$id" --format eml >/dev/null 2>&1
check "show does not take --format" [ $? = 2 ]
mailpipe export 999999999 --format eml >/dev/null 2>"$MAILPIPE_STACK_DIR/err"
check "export of an unknown id exits 1 naming it" \
	bash -c "[ $? = 1 ] && grep -q 999999999 '$MAILPIPE_STACK_DIR/err'"

# folders: --account, --folder, --limit, as list takes them.
add_account other --folder Archive
mailpipe sync other --wait --timeout 60 >/dev/null
check "folders --account lists that account's folders only" python3 -c "
import json, subprocess, sys
f = json.loads(subprocess.run(['mailpipe', 'folders', '--account', 'ex', '--json'], capture_output=True, check=True).stdout)
assert {x['account'] for x in f} == {'ex'} and len(f) == int(sys.argv[1]), f" \
	"$(sql "SELECT count(*) FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = 'ex'")"
check "folders --folder INBOX gives INBOX of each account, with its counts" python3 -c "
import json, subprocess, sys
f = json.loads(subprocess.run(['mailpipe', 'folders', '--folder', 'INBOX', '--json'], capture_output=True, check=True).stdout)
assert sorted(x['account'] for x in f) == ['ex', 'other', 'raw'] and {x['name'] for x in f} == {'INBOX'}, f
ex, = [x for x in f if x['account'] == 'ex']
assert ex['message_count'] == int(sys.argv[1]), (ex, sys.argv[1])" \
	"$(sql "SELECT message_count FROM email_folders f JOIN accounts a ON a.id = f.account_id WHERE a.name = 'ex' AND f.name = 'INBOX'")"
check "folders --account ex --folder Archive is one row" \
	bash -c "[ \"\$(mailpipe folders --account ex --folder Archive | wc -l)\" = 1 ]"
check "folders --limit 2 gives two rows" bash -c "[ \"\$(mailpipe folders --limit 2 | wc -l)\" = 2 ]"
check "folders --folder NoSuchFolder --json is an empty list" \
	bash -c "[ \"\$(mailpipe folders --folder NoSuchFolder --json)\" = '[]' ]"
mailpipe folders --limit 0 >/dev/null 2>&1
check "folders --limit 0 is a usage error" [ $? = 2 ]
mailpipe folders --frobnicate >/dev/null 2>&1
check "folders with an unknown flag is a usage error" [ $? = 2 ]

# --json everywhere: each listing and show prints one JSON document.
for cmd in "folders" "list --folder INBOX" "conversations --limit 3" "search body" "contacts" \
	"show $id" "account list" "account show ex" "status ex"; do
	check "mailpipe $cmd --json prints JSON" bash -c \
		"mailpipe $cmd --json | python3 -c 'import json, sys; json.load(sys.stdin)'"
done
finish
