#!/usr/bin/env bash
# `mailpipe mcp` driven by the official MCP TypeScript SDK client over stdio, against two
# accounts (different Dovecot users) synced through the real pipeline: every tool's
# structuredContent checked against Postgres, the --account scope, sync_now after an APPEND,
# and the JSON-RPC error codes (mcp_client.mjs prints those cases).
. "$(dirname "$0")/lib.sh"
SDK_DIR=${MAILPIPE_NPM_DIR:-$HOME/.cache/mailpipe-npm}
if [ ! -e "$SDK_DIR/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
	"$ROOT/deploy/install-deps.sh" >/dev/null 2>&1
fi
if ! command -v node >/dev/null || [ ! -e "$SDK_DIR/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
	echo "SKIP test_mcp: node or the npm package @modelcontextprotocol/sdk is missing (deploy/install-deps.sh installs it into $SDK_DIR)"
	exit 0
fi
stack_up 150 1
"$ROOT/deploy/local/stack.sh" add-user bob bobpw --sample 60 7 >/dev/null 2>&1 ||
	{ fail "second Dovecot user"; finish; }
add_account alice
export TEST_BOB_SECRET=bobpw
mailpipe account add bob --host 127.0.0.1 --port "$MP_IMAPS_PORT" --tls implicit --username bob \
	--secret env:TEST_BOB_SECRET --ca-file "$MP_CA_FILE" --interval 0 --initial-window-days 0 \
	--email bob@example.org >/dev/null
run_start
mailpipe sync alice --wait --timeout 120 >/dev/null
check "account alice synced" [ $? -eq 0 ]
mailpipe sync bob --wait --timeout 120 >/dev/null
check "account bob synced" [ $? -eq 0 ]

err=$(mailpipe mcp --account nosuch </dev/null 2>&1 >/dev/null)
rc=$?
check "an unknown --account exits 2 with one line ($err)" \
	[ "$rc" -eq 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && [[ "$err" == *"'nosuch'"* ]]
err=$(mailpipe mcp --bogus </dev/null 2>&1 >/dev/null)
check "a bad flag exits 2 with one line ($err)" [ $? -eq 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ]

MP_A_USER=demo MP_A_PASSWORD=demo MP_STACK_SCRIPT=$ROOT/deploy/local/stack.sh MP_RUN_PID=$RUN_PID node "$ROOT/tests/integration/mcp_client.mjs" "$SDK_DIR" alice bob ||
	FAILS=$((FAILS + 1))
check "no entry left pending in Redis" no_pending
finish
