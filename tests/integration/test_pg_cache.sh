#!/usr/bin/env bash
# common/pg.c's statement cache against a real PostgreSQL (tests/integration/pg_cache_driver.c):
# prepared once per session, told apart by text, prepared again when the session lost it or a
# migration changed its result type, made again after a minute (the old one deallocated when the
# session is idle), forgotten on PQreset, and rebuilt on the connection made
# after a server restart.
. "$(dirname "$0")/lib.sh"
DRIVER=$ROOT/build/tests/pg_cache_driver
if ! make -s -C "$ROOT" build/tests/pg_cache_driver >/dev/null; then
	fail "build build/tests/pg_cache_driver"
	exit 1
fi
pg_only_up pgc 26000

out=$MAILPIPE_STACK_DIR/driver.out
go=$MAILPIPE_STACK_DIR/go
mkfifo "$go"
"$DRIVER" "$MAILPIPE_DATABASE_URL" <"$go" >"$out" 2>"$MAILPIPE_STACK_DIR/driver.err" &
drv=$!
exec 3>"$go" # held open: the driver reads its "go" line from here
for _ in $(seq 1 1200); do
	grep -q '^restart?' "$out" 2>/dev/null && break
	kill -0 $drv 2>/dev/null || break
	sleep 0.1
done
"$ROOT/deploy/local/stack.sh" restart postgres >/dev/null 2>&1
echo go >&3
exec 3>&-
wait $drv
rc=$?
while IFS= read -r line; do
	case $line in
	"ok "*) pass "${line#ok }" ;;
	"not ok "*) fail "${line#not ok }" ;;
	esac
done <"$out"
check "the driver ran every step (9) and exited 0" [ "$rc:$(grep -c '^ok ' "$out")" = 0:9 ]
[ "$rc" = 0 ] || sed 's/^/  driver: /' "$MAILPIPE_STACK_DIR/driver.err" | tail -n 10
finish
