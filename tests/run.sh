#!/usr/bin/env bash
# Runs every unit test binary (build/tests/test_*) and every integration test
# (tests/integration/test_*.sh), counts the PASS/FAIL lines they print, and ends with one line
# "N passed, N failed" so that a run that tested nothing is visible. TEST_PREFIX (e.g.
# "valgrind -q --error-exitcode=1") wraps the unit binaries; ONLY=unit|integration narrows.
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0 skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

count() { # name, exit status; reads the test's output from $log
	local name=$1 rc=$2 p f s
	p=$(grep -c '^PASS ' "$log")
	f=$(grep -c '^FAIL ' "$log")
	s=$(grep -c '^SKIP ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $name: exited with status $rc without reporting a failed case"
		f=1
	fi
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ]; then
		echo "FAIL $name: ran no test case"
		f=1
	fi
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

if [ "${ONLY:-unit}" = unit ] || [ -z "${ONLY:-}" ]; then
	for t in build/tests/test_*; do
		[ -x "$t" ] || continue
		echo "== $t"
		${TEST_PREFIX:-} "$t" >"$log" 2>&1
		rc=$?
		cat "$log"
		count "$t" "$rc"
	done
	for t in build/tests/replay_fuzz_*; do
		[ -x "$t" ] || continue
		corpus=tests/fuzz/corpus/${t#build/tests/replay_fuzz_}
		echo "== $t $corpus"
		${TEST_PREFIX:-} "$t" "$corpus" >"$log" 2>&1
		rc=$?
		cat "$log"
		count "$t" "$rc"
	done
fi
if [ "${ONLY:-integration}" = integration ] || [ -z "${ONLY:-}" ]; then
	for t in tests/integration/test_*.sh; do
		[ -f "$t" ] || continue
		echo "== $t"
		bash "$t" >"$log" 2>&1
		rc=$?
		cat "$log"
		count "$t" "$rc"
	done
fi
[ "$skipped" -gt 0 ] && echo "($skipped skipped: see SKIP lines above)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
