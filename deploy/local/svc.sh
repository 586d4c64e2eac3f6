# Sourced by stack.sh and cyrus.sh: the unprivileged service user their servers run as when
# started by root, and the loopback probes both use. Expects IS_ROOT, SVC_USER, DIR, PROG and
# die() from the caller; DIR_HINT names what to change when DIR cannot be reached.

ensure_svc_user() {
	if [ "$IS_ROOT" = 1 ] && ! getent passwd "$SVC_USER" >/dev/null; then
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --comment "mailpipe local stack" "$SVC_USER" 2>/dev/null ||
			getent passwd "$SVC_USER" >/dev/null || die "could not create system user $SVC_USER"
	fi
}

# Runs a command as the service user (initdb, postgres, redis and Cyrus refuse or should not
# run as root).
as_svc() {
	if [ "$IS_ROOT" = 1 ]; then
		runuser -u "$SVC_USER" -- "$@"
	else
		"$@"
	fi
}

# The service user must be able to reach DIR (mktemp -d makes 0700 dirs): ancestors owned by
# root that are not searchable get o+x (search only, no listing); others are an error.
ensure_traversable() {
	[ "$IS_ROOT" = 1 ] || return 0
	runuser -u "$SVC_USER" -- test -x "$DIR/." 2>/dev/null && return 0
	local p="" rest=${DIR#/} comp
	while [ -n "$rest" ]; do
		comp=${rest%%/*}
		[ "$comp" = "$rest" ] && rest="" || rest=${rest#*/}
		p=$p/$comp
		runuser -u "$SVC_USER" -- test -x "$p/." 2>/dev/null && continue
		[ "$(stat -c %u "$p")" = 0 ] ||
			die "$SVC_USER cannot reach $p (not searchable); choose another ${DIR_HINT:-directory}"
		chmod o+x "$p"
		printf '%s: made %s searchable (o+x) so %s can reach it\n' "$PROG" "$p" "$SVC_USER" >&2
	done
}

port_open() {
	(exec 8<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

imap_greets() {
	(
		exec 8<>"/dev/tcp/127.0.0.1/$1" || exit 1
		IFS= read -r -t 3 line <&8 || exit 1
		case $line in '* OK'*) exit 0 ;; *) exit 1 ;; esac
	) 2>/dev/null
}
