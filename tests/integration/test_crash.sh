#!/usr/bin/env bash
# Invariants 1-3 under SIGKILL: the writer is killed (kill -9) twice while it is committing,
# and the parser once; `mailpipe run` restarts them, the restarted stages resume their own
# pending entries, and the sync still completes with every message stored exactly once.
. "$(dirname "$0")/lib.sh"
stack_up 2000 7
add_account crash
# Small batches make the run long enough to be killed in the middle of it.
export MAILPIPE_WRITER_BATCH=50 MAILPIPE_FETCH_BATCH=100
run_start

out=$MAILPIPE_STACK_DIR/summary.json
mailpipe sync crash --wait --timeout 300 >"$out" &
sync_pid=$!

stage_pid() { pgrep -P "$RUN_PID" -f "mailpipe-$1" | head -1; }
kill_when_rows() { # STAGE, rows: kill -9 the stage once that many messages are committed
	local n
	for _ in $(seq 1 600); do
		n=$(sql "SELECT count(*) FROM messages")
		[ "$n" -ge "$2" ] && break
		sleep 0.05
	done
	local pid
	pid=$(stage_pid "$1")
	if [ -n "$pid" ] && kill -9 "$pid"; then
		echo "  killed $1 (pid $pid) at $n committed messages"
		return 0
	fi
	return 1
}
check "writer killed mid-run" kill_when_rows writer 200
check "parser killed mid-run" kill_when_rows parser 600
check "writer killed again mid-run" kill_when_rows writer 1000
total_before_end=$(sql "SELECT count(*) FROM messages")
check "the kills happened before the end ($total_before_end committed)" [ "$total_before_end" -lt 1900 ]

wait "$sync_pid"
check "sync completes despite the kills" [ $? -eq 0 ]
verify crash --summary "$out"
check "no entry left pending in Redis" no_pending
finish
