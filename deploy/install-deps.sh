#!/bin/sh
# Installs the Debian packages mailpipe needs to build, test and run; does nothing when all are
# present. Called by `make demo`, `make check` and .ci/run; safe to run by hand.
set -eu
# Issue 10: npm packages test_deploy.sh validates deploy/ with, into a cache dir; first, since
# the early exit below skips what follows once the Debian packages are present. Optional.
"$(dirname "$0")/npm-deps.sh" install || echo "install-deps: deploy validators not installed; test_deploy.sh will SKIP them" >&2

PKGS="build-essential pkg-config libhiredis-dev libcurl4-openssl-dev libpq-dev libgmime-3.0-dev
libuv1-dev libjansson-dev libglib2.0-dev libxml2-dev libjemalloc-dev redis-server postgresql postgresql-contrib dovecot-imapd
openssl python3 curl"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
# --- Issue 10: promtool (lints the metrics in test_metrics.sh), unpacked into ~/.cache, never a
# service. Before the early exit below, so that it is fetched on machines that have the rest.
"$(dirname "$0")/local/promtool.sh" install || echo "install-deps: promtool not installed; test_metrics.sh will SKIP its lint" >&2
# --- Issue 10: the MCP TypeScript SDK's client for tests/integration/test_mcp.sh, from the npm
# registry into a cache dir (node 20 and npm come with the machine). Optional: without it that
# test prints SKIP. Before the early exit below, so it runs when every package is present.
MCP_SDK_DIR=${MAILPIPE_NPM_DIR:-${HOME:-/root}/.cache/mailpipe-npm}
if [ ! -e "$MCP_SDK_DIR/node_modules/@modelcontextprotocol/sdk/package.json" ] && command -v npm >/dev/null; then
	mkdir -p "$MCP_SDK_DIR"
	npm install --silent --no-audit --no-fund --prefix "$MCP_SDK_DIR" '@modelcontextprotocol/sdk@^1.32' >&2 ||
		echo "install-deps: MCP SDK not installed; test_mcp.sh will SKIP" >&2
fi

[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The packaged services must not start system-wide instances: mailpipe runs its own on loopback.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

# --- Issue 9: Cyrus IMAP 3.6 for tests/integration/test_cyrus.sh (cyrus-common from apt, imapd
# extracted beside Dovecot). Optional: without it that test prints SKIP (and installs it itself
# when it can, since the early exit above skips this line once the packages above are present).
"$(dirname "$0")/local/cyrus.sh" install || echo "install-deps: Cyrus IMAP not installed; test_cyrus.sh will SKIP" >&2
