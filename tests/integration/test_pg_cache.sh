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
export MAILPIPE_STACK_DIR
MAILPIPE_STACK_DIR=$(mktemp -d /tmp/mailpipe-pgc.XXXXXX)
export MP_PG_FSYNC=off MP_DEMO_COUNT=0
trap stack_down EXIT
for try in 1 2 3; do # another stack may hold the port
	base=$((26000 + (($$ + try * 331) % 2000) * 4))
	export MP_REDIS_PORT=$base MP_PG_PORT=$((base + 1)) MP_IMAP_PORT=$((base + 2)) \
		MP_IMAPS_PORT=$((base + 3))
	"$ROOT/deploy/local/stack.sh" start postgres >"$MAILPIPE_STACK_DIR.start.log" 2>&1 && break
	if [ "$try" = 3 ] || ! grep -q 'already in use' "$MAILPIPE_STACK_DIR.start.log"; then
		cat "$MAILPIPE_STACK_DIR.start.log"
		fail "postgres did not start"
		exit 1
	fi
done
eval "$("$ROOT/deploy/local/stack.sh" env)"

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
