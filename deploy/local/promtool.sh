#!/bin/sh
# promtool, the Prometheus linter, from Debian's `prometheus` package unpacked into a cache
# directory (apt-get download + dpkg -x): no Prometheus service is installed or started.
# `promtool.sh install` fetches it once; `promtool.sh path` prints the binary (exit 1 if none).
set -eu
DIR=${MAILPIPE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mailpipe}/prometheus
BIN=$DIR/usr/bin/promtool

find_bin() {
	if [ -x "$BIN" ]; then echo "$BIN"; return 0; fi
	command -v promtool 2>/dev/null
}

case ${1:-} in
path)
	find_bin
	;;
install)
	find_bin >/dev/null && exit 0
	SUDO=""
	[ "$(id -u)" -ne 0 ] && SUDO="sudo"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	cd "$tmp"
	if ! apt-get download prometheus >/dev/null 2>&1; then
		$SUDO apt-get update -qq
		apt-get download prometheus >/dev/null
	fi
	mkdir -p "$DIR"
	dpkg -x prometheus_*.deb "$tmp/x"
	mkdir -p "$DIR/usr/bin"
	cp "$tmp/x/usr/bin/promtool" "$BIN"
	"$BIN" --version >/dev/null
	echo "install-deps: promtool unpacked to $BIN" >&2
	;;
*)
	echo "usage: promtool.sh install|path" >&2
	exit 2
	;;
esac
