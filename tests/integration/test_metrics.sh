#!/usr/bin/env bash
# The metrics endpoints of a real `mailpipe run` (scheduler, two fetchers, a parser, a writer):
# each stage takes its own port of MAILPIPE_METRICS_ADDR's range and logs it; a sync moves the
# counters by what it synced (fetched = parsed = written = the summary's fetched_count, the
# same bytes at each stage); the scheduler's stream gauges drain to zero; a wrong password
# moves the auth-failure counter; every scrape passes `promtool check metrics` silently.
. "$(dirname "$0")/lib.sh"
stack_up 200 5
export MAILPIPE_LOG=info # the chosen addresses are logged at info
# Below the kernel's ephemeral ports (32768 up), where a client connection may hold one; above
# lib.sh's stack ports.
mbase=$((28000 + ($$ % 190) * 10))
export MAILPIPE_METRICS_ADDR=127.0.0.1:$mbase-$((mbase + 9)) MAILPIPE_FETCHERS=2
export WRONG_SECRET=not-the-password
PROMTOOL=$("$ROOT/deploy/local/promtool.sh" path 2>/dev/null)

check "--help of a stage lists MAILPIPE_METRICS_ADDR" \
	bash -c "mailpipe-writer --help 2>&1 | grep -q '^  MAILPIPE_METRICS_ADDR '"
out=$(MAILPIPE_METRICS_ADDR=127.0.0.1:$mbase mailpipe run 2>&1)
rc=$?
check "run with one port for five stages exits 1 with one line naming the range it needs" \
	bash -c "[ $rc = 1 ] && [ \$(wc -l <<<'$out') = 1 ] && grep -q '127.0.0.1:$mbase-$((mbase + 4))' <<<'$out'"
out=$(MAILPIPE_METRICS_ADDR=nonsense mailpipe-parser 2>&1)
rc=$?
check "a stage given a bad address exits 1 naming it" \
	bash -c "[ $rc = 1 ] && grep -q 'addr=\"nonsense\" msg=\"MAILPIPE_METRICS_ADDR is not' <<<'$out'"

add_account it
run_start
declare -A addr
for _ in $(seq 100); do
	[ "$(grep -c 'msg="serving metrics at' "$RUN_LOG")" -ge 5 ] && break
	sleep 0.1
done
while read -r stage a; do
	addr[$stage]="${addr[$stage]:-}${addr[$stage]:+ }$a"
done < <(sed -n 's/.* stage=\([a-z]*\) addr=\([0-9.:]*\) msg="serving metrics at.*/\1 \2/p' "$RUN_LOG")
all="${addr[scheduler]:-} ${addr[fetcher]:-} ${addr[parser]:-} ${addr[writer]:-}"
check "each of the five stages logs its own metrics address in the range ($all)" bash -c "
	[ \$(wc -w <<<'$all') = 5 ] && [ \$(tr ' ' '\n' <<<'$all' | sort -u | grep -c .) = 5 ] &&
	[ \$(wc -w <<<'${addr[fetcher]:-}') = 2 ] &&
	for a in $all; do p=\${a##*:}; [ \$p -ge $mbase ] && [ \$p -le $((mbase + 9)) ] || exit 1; done"
check "the scheduler, first in run's order, takes the range's first port" \
	[ "${addr[scheduler]:-}" = "127.0.0.1:$mbase" ]

scrape() { curl -s --max-time 5 "http://$1/metrics"; }
# value FILE SERIES: the sample of one series (exact name and labels), empty if absent.
value() { awk -v s="$2" '$1 == s { print $2 }' "$1"; }
sum_over() { # STAGE SERIES: the sum over that stage's processes
	local t=0 a f
	for a in ${addr[$1]:-}; do
		f=$MAILPIPE_STACK_DIR/sum.prom
		scrape "$a" >"$f"
		t=$((t + $(value "$f" "$2")))
	done
	echo "$t"
}

check "before any sync, nothing is counted as fetched" [ "$(sum_over fetcher mailpipe_fetched_messages_total)" = 0 ]

summary=$MAILPIPE_STACK_DIR/summary.json
mailpipe sync it --wait --timeout 120 >"$summary"
check "the sync exits 0" [ $? -eq 0 ]
n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fetched_count"])' "$summary")
fetched=$(sum_over fetcher mailpipe_fetched_messages_total)
parsed=$(sum_over parser mailpipe_parsed_messages_total)
written=$(sum_over writer mailpipe_written_messages_total)
check "fetched = parsed = written = the summary's fetched_count ($fetched, $parsed, $written; $n)" \
	bash -c "[ '$n' -gt 100 ] && [ '$fetched' = '$n' ] && [ '$parsed' = '$n' ] && [ '$written' = '$n' ]"
fb=$(sum_over fetcher mailpipe_fetched_bytes_total)
pb=$(sum_over parser mailpipe_parsed_bytes_total)
wb=$(sum_over writer mailpipe_written_bytes_total)
stored=$(sql "SELECT sum(m.size) FROM message_locations l JOIN messages m ON m.id = l.message_id")
check "the same bytes at every stage, those of the stored locations ($fb, $pb, $wb; $stored)" \
	bash -c "[ '$fb' = '$pb' ] && [ '$pb' = '$wb' ] && [ '$wb' = '$stored' ]"

for stage in scheduler fetcher parser writer; do
	i=0
	for a in ${addr[$stage]:-}; do
		i=$((i + 1))
		scrape "$a" >"$MAILPIPE_STACK_DIR/$stage$i.prom"
	done
done
w=$MAILPIPE_STACK_DIR/writer1.prom s=$MAILPIPE_STACK_DIR/scheduler1.prom
check "the writer timed its commits and the account's first 50 messages" bash -c "
	[ '$(value "$w" mailpipe_writer_commit_seconds_count)' -ge 1 ] &&
	[ '$(value "$w" mailpipe_first_messages_seconds_count)' = 1 ] &&
	[ '$(value "$w" 'mailpipe_first_messages_seconds_bucket{le=\"+Inf\"}')' = 1 ]"
check "the parser timed its batches" [ "$(value "$MAILPIPE_STACK_DIR/parser1.prom" mailpipe_parser_batch_seconds_count)" -ge 1 ]
check "every stage counted its busy time, the writer at least its commits' ($(cat "$MAILPIPE_STACK_DIR"/*[0-9].prom | grep '^mailpipe_busy_seconds_total' | tr '\n' ' '))" bash -c "
	for f in $MAILPIPE_STACK_DIR/*[0-9].prom; do
		awk '\$1 == \"mailpipe_busy_seconds_total\" && \$2 > 0 {ok = 1} END {exit !ok}' \$f || exit 1
	done
	awk -v c='$(value "$w" mailpipe_writer_commit_seconds_sum)' '\$1 == \"mailpipe_busy_seconds_total\" {exit !(\$2 >= c)}' $w"
folders=$(sql "SELECT count(*) FROM email_folders")
queued=$(($(value "$s" mailpipe_jobs_enqueued_total) + $(value "$w" mailpipe_jobs_enqueued_total)))
check "the scheduler and the writer counted the jobs they queued ($queued for $folders folders)" \
	[ "$queued" -ge "$folders" ]
sleep 1.2 # the scheduler samples the streams once a second
scrape "${addr[scheduler]}" >"$s"
check "the scheduler's stream gauges: raw and parsed drained, nothing pending or lagging" bash -c "
	[ '$(value "$s" 'mailpipe_stream_length{stream="raw"}')' = 0 ] &&
	[ '$(value "$s" 'mailpipe_stream_length{stream="parsed"}')' = 0 ] &&
	[ '$(value "$s" 'mailpipe_stream_pending{stream="parsed",group="writers"}')' = 0 ] &&
	[ '$(value "$s" 'mailpipe_stream_lag{stream="raw",group="parsers"}')' = 0 ] &&
	[ '$(value "$s" 'mailpipe_stream_consumers{stream="raw",group="parsers"}')' -ge 1 ]"
check "no IMAP connection left open by a finished job, none failed" bash -c "
	for f in $MAILPIPE_STACK_DIR/fetcher*.prom; do
		[ \"\$(awk '\$1 == \"mailpipe_imap_connections{kind=\\\"job\\\"}\" {print \$2}' \$f)\" = 0 ] || exit 1
		[ \"\$(awk '\$1 == \"mailpipe_errors_total{kind=\\\"fetch\\\"}\" {print \$2}' \$f)\" = 0 ] || exit 1
	done"
check "every process says it is up, with its stage" bash -c "
	for f in $MAILPIPE_STACK_DIR/*[0-9].prom; do
		st=\$(basename \$f .prom); st=\${st%[0-9]}
		grep -q \"^mailpipe_info{stage=\\\"\$st\\\",consumer=\\\"\$st-.*\\\"} 1\$\" \$f || exit 1
	done"

mailpipe account add badpw --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username demo \
	--secret env:WRONG_SECRET --ca-file "$MP_CA_FILE" --interval 0 >/dev/null
mailpipe sync badpw --wait --timeout 60 >/dev/null
auth=$(sum_over fetcher mailpipe_imap_auth_failures_total)
ferr=$(sum_over fetcher 'mailpipe_errors_total{kind="fetch"}')
check "a wrong password moves the auth-failure and fetch-error counters ($auth, $ferr)" \
	bash -c "[ '$auth' -ge 1 ] && [ '$ferr' -ge 1 ]"

code=$(curl -s -o /dev/null -w '%{http_code}' "http://${addr[writer]}/")
post=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://${addr[writer]}/metrics")
ctype=$(curl -s -o /dev/null -w '%{content_type}' "http://${addr[writer]}/metrics")
check "only GET /metrics answers (/ $code, POST $post), as text format 0.0.4 ($ctype)" bash -c "
	[ $code = 404 ] && [ $post = 404 ] && [ '$ctype' = 'text/plain; version=0.0.4; charset=utf-8' ]"

if [ -z "$PROMTOOL" ]; then
	echo "SKIP promtool check metrics: promtool not installed (deploy/install-deps.sh installs it)"
else
	for f in "$MAILPIPE_STACK_DIR"/*[0-9].prom; do
		out=$("$PROMTOOL" check metrics <"$f" 2>&1)
		rc=$?
		check "promtool check metrics on $(basename "$f"): exit 0, no output" bash -c "[ $rc = 0 ] && [ -z '$out' ]"
		[ -z "$out" ] || echo "$out" | head -5
	done
	# The README's example alerts are valid PromQL over these names.
	rules=$MAILPIPE_STACK_DIR/alerts.yml
	python3 - "$ROOT/README.md" "$rules" <<'PY'
import sys
s = open(sys.argv[1]).read()
block = s[s.index("Example alerts (PromQL):"):]
block = block[block.index("```") + 4:]
block = block[:block.index("```")]
exprs, cur = [], ""
for line in block.splitlines():
    if line.startswith("#"):
        if cur:
            exprs.append(cur)
        cur = ""
    else:
        cur += (" " if cur else "") + line.strip()
exprs.append(cur)
with open(sys.argv[2], "w") as f:
    f.write("groups:\n- name: mailpipe\n  rules:\n")
    for i, e in enumerate(exprs):
        f.write("  - alert: A%d\n    expr: '%s'\n" % (i, e))
PY
	out=$("$PROMTOOL" check rules "$rules" 2>&1)
	check "promtool check rules accepts the README's example alerts" grep -q "SUCCESS: [1-9][0-9]* rules found" <<<"$out"
	names=$(grep -o 'mailpipe_[a-z_]*' "$rules" | sed 's/_bucket$//' | sort -u)
	check "every metric the alerts name is served ($(echo $names))" bash -c "
		for n in $(echo $names); do cat $MAILPIPE_STACK_DIR/*[0-9].prom | grep -q \"^# TYPE \$n \" || exit 1; done"
fi

# A stage restarted by run takes its own port again.
wpid=$(pgrep -P "$RUN_PID" -f mailpipe-writer)
kill -9 "$wpid"
for _ in $(seq 100); do
	[ "$(grep -c "stage=writer addr=${addr[writer]} msg=\"serving metrics" "$RUN_LOG")" -ge 2 ] && break
	sleep 0.1
done
check "a writer killed and restarted serves on its port again (${addr[writer]})" bash -c "
	curl -s --max-time 5 http://${addr[writer]}/metrics | grep -q '^mailpipe_written_messages_total 0$'"
finish
