#!/usr/bin/env bash
# Issue 10: `make` on a machine without the build dependencies says in one line what is missing
# and to run `make deps`, instead of a compiler error. The missing packages are simulated with
# PKG_CONFIG (a pkg-config that finds nothing, or one that hides only libpq); nothing is built.
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#!/bin/sh\nfor a; do [ "$a" = libpq ] && exit 1; done\nexec pkg-config "$@"\n' >"$tmp/no-libpq"
chmod +x "$tmp/no-libpq"

for case in "false:hiredis libcurl libpq gmime-3.0 libuv jansson libxml-2.0" "$tmp/no-libpq:libpq"; do
	pc=${case%%:*} want=${case#*:}
	out=$(make -C "$ROOT" --no-print-directory PKG_CONFIG="$pc" all 2>&1)
	rc=$?
	echo "  make PKG_CONFIG=$pc: $out"
	check "make without $want: fails (rc $rc) with one line naming them and make deps" \
		bash -c '[ "$1" -ne 0 ] && [ "$(printf "%s\n" "$2" | wc -l)" = 1 ] &&
			[[ "$2" == *"finds no $3)"* ]] && [[ "$2" == *"make deps"* ]] && [[ "$2" != *"No such file"* ]]' \
		_ "$rc" "$out" "$want"
done
out=$(make -C "$ROOT" --no-print-directory PKG_CONFIG=false build/common/log.o 2>&1)
check "compiling a single object is stopped the same way" bash -c '[[ "$1" == *"make deps"* ]]' _ "$out"
check "goals that compile nothing still run without the dependencies (make lint)" \
	make -C "$ROOT" --no-print-directory -s PKG_CONFIG=false lint
check "with the dependencies present, make has nothing to say about them" \
	bash -c "! make -C '$ROOT' --no-print-directory -n all 2>&1 | grep -q 'missing build dependencies'"
finish
