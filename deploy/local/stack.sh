#!/usr/bin/env bash
# mailpipe local stack: a private Redis, PostgreSQL and Dovecot (IMAP) on 127.0.0.1, all state in
# one directory. Used by `make demo`, the integration tests and anyone without servers of their own.
#
#   stack.sh start [redis|postgres|dovecot ...]   start (idempotent; default: all three)
#   stack.sh stop [--purge] [redis|postgres|dovecot ...]
#                                                  stop (idempotent, data kept; --purge: remove dir)
#   stack.sh destroy                               = stop --purge
#   stack.sh restart [server ...]                  stop + start
#   stack.sh status                                one line per server; exit 0 iff all running
#   stack.sh env                                   `export` lines: eval "$(stack.sh env)"
#   stack.sh add-user NAME PASSWORD [--sample COUNT SEED]
#
# Environment (remembered in the directory by start; an explicit value always wins):
#   MAILPIPE_STACK_DIR  directory (default <repo>/.stack)
#   MP_REDIS_PORT=16379 MP_PG_PORT=15432 MP_IMAP_PORT=10143 (plain+STARTTLS) MP_IMAPS_PORT=10993
#   MP_REDIS_PERSIST=0  1 = appendonly AOF (fsync everysec) so data survives a Redis restart
#   MP_PG_FSYNC=on      off = faster, unsafe on power loss
#   MP_PG_SHARED_BUFFERS=1GB  PostgreSQL's shared_buffers (its own default, 128MB, is outgrown
#                       by the indexes of a 50,000-message account: README, Speed against the peers);
#                       unset: 1GB, or a quarter of the host's memory (or its cgroup's) when less
#   MP_PG_SETTINGS=""   more postgresql.conf lines, ';'-separated (an experiment, a bench)
#   MP_DEMO_COUNT=400 MP_DEMO_SEED=1   sample mailbox of user demo/demo (created by the first start)
#   MP_STACK_USER=mailpipe-test        unprivileged user the servers run as when started by root
#   MP_PG_BIN           PostgreSQL bin dir (default /usr/lib/postgresql/15/bin, else newest)
#   MP_DOVECOT_PROCESSES=512         Dovecot imap and imap-login processes (one each per connection)
#   MP_DOVECOT_LOGIN=security        performance = Dovecot's high-performance login mode: a few
#                                    imap-login processes serve every connection (as providers run)
set -eu
umask 022

PROG=stack.sh
HERE=$(cd "$(dirname "$0")" && pwd -P)
DIR_HINT=MAILPIPE_STACK_DIR
. "$HERE/svc.sh"
REPO=$(cd "$HERE/../.." && pwd -P)
SERVERS="redis postgres dovecot"

GEN_PID="" # background sample generation, waited for before any exit

die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	if [ -n "$GEN_PID" ]; then wait "$GEN_PID" 2>/dev/null || true; fi
	exit 1
}
note() { printf '%s: %s\n' "$PROG" "$*" >&2; }

# server_fail NAME LOG MESSAGE: one line naming the server, then the tail of its log.
server_fail() {
	local name=$1 log=$2
	shift 2
	printf '%s: %s failed: %s (log: %s)\n' "$PROG" "$name" "$*" "$log" >&2
	if [ -s "$log" ]; then tail -n 12 "$log" | sed 's/^/  | /' >&2; fi
	if [ -n "$GEN_PID" ]; then wait "$GEN_PID" 2>/dev/null || true; fi
	exit 1
}

usage() {
	sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------------------------------------
# Paths and settings

resolve() {
	DIR=${MAILPIPE_STACK_DIR:-$REPO/.stack}
	case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
	while [ "${DIR%/}" != "$DIR" ]; do DIR=${DIR%/}; done
	[ -n "$DIR" ] || die "MAILPIPE_STACK_DIR must not be /"
	if [ -d "$DIR" ]; then
		DIR=$(cd "$DIR" && pwd -P)
	elif [ -d "${DIR%/*}/" ]; then
		local parent
		parent=$(cd "${DIR%/*}/" && pwd -P)
		[ "$parent" != / ] || parent=""
		DIR=$parent/${DIR##*/}
	fi
	case $DIR in
	*[!A-Za-z0-9._/+,=@~-]*)
		die "stack dir '$DIR' has characters the server configs cannot take (use [A-Za-z0-9._/+,=@~-])"
		;;
	esac
	# Unix socket paths are limited to 107 bytes; Dovecot's longest is run/replication-notify-fifo.
	[ ${#DIR} -le 66 ] || die "stack dir '$DIR' is too long for unix sockets (${#DIR} > 66 chars)"

	if [ -n "${MP_PG_BIN:-}" ]; then
		PG_BIN=$MP_PG_BIN
	elif [ -x /usr/lib/postgresql/15/bin/postgres ]; then
		PG_BIN=/usr/lib/postgresql/15/bin
	else
		PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	fi

	if [ "$(id -u)" -eq 0 ]; then
		IS_ROOT=1
		SVC_USER=${MP_STACK_USER:-mailpipe-test}
	else
		IS_ROOT=0
		SVC_USER=$(id -un)
	fi

	REDIS_DIR=$DIR/redis
	PG_DIR=$DIR/pg
	PGDATA=$PG_DIR/data
	DC_DIR=$DIR/dovecot
	DC_CONF=$DC_DIR/dovecot.conf
	DC_BASE=$DC_DIR/run
	PASSWD=$DC_DIR/passwd
	TLS_DIR=$DIR/tls
	MAIL_DIR=$DIR/mail
	MARKER=$DIR/.mailpipe-stack
	SETTINGS=$DIR/stack.conf
}

# Settings: explicit environment > value recorded in the dir by the last start > default.
load_settings() {
	local k v r_redis="" r_pg="" r_imap="" r_imaps="" r_persist="" r_fsync=""
	if [ -f "$SETTINGS" ]; then
		while IFS='=' read -r k v; do
			case $k in
			MP_REDIS_PORT) r_redis=$v ;;
			MP_PG_PORT) r_pg=$v ;;
			MP_IMAP_PORT) r_imap=$v ;;
			MP_IMAPS_PORT) r_imaps=$v ;;
			MP_REDIS_PERSIST) r_persist=$v ;;
			MP_PG_FSYNC) r_fsync=$v ;;
			esac
		done <"$SETTINGS"
	fi
	REDIS_PORT=${MP_REDIS_PORT:-${r_redis:-16379}}
	PG_PORT=${MP_PG_PORT:-${r_pg:-15432}}
	IMAP_PORT=${MP_IMAP_PORT:-${r_imap:-10143}}
	IMAPS_PORT=${MP_IMAPS_PORT:-${r_imaps:-10993}}
	REDIS_PERSIST=${MP_REDIS_PERSIST:-${r_persist:-0}}
	PG_FSYNC=${MP_PG_FSYNC:-${r_fsync:-on}}
	local p
	for p in "$REDIS_PORT" "$PG_PORT" "$IMAP_PORT" "$IMAPS_PORT"; do
		case $p in '' | *[!0-9]*) die "port '$p' is not a number" ;; esac
		[ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "port $p out of range"
	done
	[ "$(printf '%s\n' "$REDIS_PORT" "$PG_PORT" "$IMAP_PORT" "$IMAPS_PORT" | sort -u | wc -l)" -eq 4 ] ||
		die "MP_REDIS_PORT, MP_PG_PORT, MP_IMAP_PORT and MP_IMAPS_PORT must differ"
	case $REDIS_PERSIST in 1 | yes | on | true) REDIS_PERSIST=1 ;; *) REDIS_PERSIST=0 ;; esac
	case $PG_FSYNC in 0 | no | off | false) PG_FSYNC=off ;; *) PG_FSYNC=on ;; esac
}

save_settings() {
	printf 'MP_REDIS_PORT=%s\nMP_PG_PORT=%s\nMP_IMAP_PORT=%s\nMP_IMAPS_PORT=%s\nMP_REDIS_PERSIST=%s\nMP_PG_FSYNC=%s\n' \
		"$REDIS_PORT" "$PG_PORT" "$IMAP_PORT" "$IMAPS_PORT" "$REDIS_PERSIST" "$PG_FSYNC" >"$SETTINGS.tmp"
	mv -f "$SETTINGS.tmp" "$SETTINGS"
}

# Recorded port of a server (what it was started with), for conflict checks.
recorded() {
	[ -f "$SETTINGS" ] || return 1
	sed -n "s/^$1=//p" "$SETTINGS" | head -n 1
}

# ---------------------------------------------------------------------------------------------
# Users, permissions, locking

ensure_svc_ids() { # the user, and the ids the files are chowned to
	ensure_svc_user
	svc_ids
}

svc_ids() {
	SVC_UID=$(id -u "$SVC_USER")
	SVC_GID=$(id -g "$SVC_USER")
	SVC_GROUP=$(id -gn "$SVC_USER")
}

# A non-empty dir without our marker. The marker is created before anything else, and "*" is
# expanded before ".[!.]*", so a concurrent first start is never mistaken for a foreign dir.
foreign_dir() {
	local f others=0
	[ -d "$DIR" ] || return 1
	for f in "$DIR"/* "$DIR"/.[!.]* "$DIR"/..?*; do
		[ -e "$f" ] || [ -L "$f" ] || continue
		case ${f##*/} in
		.mailpipe-stack) return 1 ;;
		.lock) ;;
		*) others=1 ;;
		esac
	done
	[ "$others" = 1 ]
}

# Creates the stack dir and takes its lock (held until exit).
prepare_dir() {
	foreign_dir && die "$DIR exists, is not empty and is not a mailpipe stack dir; refusing to use it"
	mkdir -p "$DIR"
	lock
}

# Creates the directory layout (not the server data). Needs ensure_svc_ids and prepare_dir.
init_layout() {
	chmod 755 "$DIR"
	: >>"$MARKER"
	mkdir -p "$REDIS_DIR/data" "$PG_DIR" "$DC_DIR" "$TLS_DIR" "$MAIL_DIR"
	chmod 700 "$PG_DIR" "$MAIL_DIR"
	if [ "$IS_ROOT" = 1 ]; then
		chown "$SVC_UID:$SVC_GID" "$REDIS_DIR" "$REDIS_DIR/data" "$PG_DIR"
		chown "$SVC_UID:$SVC_GID" "$MAIL_DIR"
	fi
	if [ ! -f "$PASSWD" ]; then
		: >"$PASSWD"
		if [ "$IS_ROOT" = 1 ]; then
			chgrp dovecot "$PASSWD" 2>/dev/null || true
			chmod 640 "$PASSWD"
		else
			chmod 600 "$PASSWD"
		fi
	fi
	ensure_traversable
}

lock() {
	exec 9>"$DIR/.lock"
	flock -w 300 9 || die "timed out waiting for another stack.sh in $DIR"
}

# ---------------------------------------------------------------------------------------------
# Process helpers

# pid_alive PIDFILE COMM: prints the pid when the process in PIDFILE is alive and named COMM*.
pid_alive() {
	local pid comm
	[ -r "$1" ] || return 1
	pid=$(head -n 1 "$1" 2>/dev/null | tr -dc 0-9)
	[ -n "$pid" ] || return 1
	comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
	case $comm in "$2"*) printf '%s\n' "$pid" ;; *) return 1 ;; esac
}

redis_pid() { pid_alive "$REDIS_DIR/redis.pid" redis; }
pg_pid() { pid_alive "$PGDATA/postmaster.pid" postgres; }
dovecot_pid() { pid_alive "$DC_BASE/master.pid" dovecot; }

# wait_gone PID SECONDS
wait_gone() {
	local i=0 n=$(($2 * 10))
	while [ -d "/proc/$1" ] && [ $i -lt $n ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ ! -d "/proc/$1" ]
}

# port_free_or_fail NAME PORT LOG: a port we are about to bind must not be taken by something else.
port_free_or_fail() {
	if port_open "$2"; then
		server_fail "$1" "$3" "port 127.0.0.1:$2 is already in use by another process"
	fi
}

# A running server must have been started with the requested port.
check_port_conflict() {
	local name=$1 var=$2 want=$3 have
	have=$(recorded "$var")
	if [ -n "$have" ] && [ "$have" != "$want" ]; then
		die "$name is already running in $DIR on port $have, not $want; run '$PROG stop $name' first"
	fi
}

# ---------------------------------------------------------------------------------------------
# Redis

start_redis() {
	local pid
	if pid=$(redis_pid); then
		return 0
	fi
	local conf=$REDIS_DIR/redis.conf log=$REDIS_DIR/redis.log
	port_free_or_fail redis "$REDIS_PORT" "$log"
	STARTED="$STARTED redis"
	{
		echo "# generated by deploy/local/stack.sh on every start; edits are lost"
		echo "port $REDIS_PORT"
		echo "bind 127.0.0.1"
		echo "protected-mode yes"
		echo "daemonize yes"
		echo "pidfile $REDIS_DIR/redis.pid"
		echo "logfile $log"
		echo "dir $REDIS_DIR/data"
		echo 'save ""'
		if [ "$REDIS_PERSIST" = 1 ]; then
			echo "appendonly yes"
			echo "appendfsync ${MP_REDIS_APPENDFSYNC:-everysec}"
		else
			echo "appendonly no"
		fi
	} >"$conf"
	if [ "$IS_ROOT" = 1 ]; then chown "$SVC_UID:$SVC_GID" "$conf"; fi
	rm -f "$REDIS_DIR/redis.pid"
	touch "$log"
	if [ "$IS_ROOT" = 1 ]; then chown "$SVC_UID:$SVC_GID" "$log"; fi
	as_svc redis-server "$conf" 9>&- >"$REDIS_DIR/start.out" 2>&1 || {
		cat "$REDIS_DIR/start.out" >>"$log" 2>/dev/null || true
		server_fail redis "$log" "redis-server did not start"
	}
	local i=0 out
	while :; do
		out=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>&1 || true)
		[ "$out" = PONG ] && break
		i=$((i + 1))
		if [ $i -ge 300 ] || { [ $i -ge 20 ] && ! redis_pid >/dev/null; }; then
			server_fail redis "$log" "not answering PING on 127.0.0.1:$REDIS_PORT ($out)"
		fi
		sleep 0.1
	done
}

stop_redis() {
	local pid
	pid=$(redis_pid) || return 0
	kill -TERM "$pid" 2>/dev/null || true # SIGTERM = SHUTDOWN (writes the AOF when persistent)
	wait_gone "$pid" 60 || server_fail redis "$REDIS_DIR/redis.log" "pid $pid did not exit"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

psql_admin() {
	"$PG_BIN/psql" -X -q -w -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"
}

# shared_buffers: MP_PG_SHARED_BUFFERS, else 1 GB, or a quarter of the memory this host (or its
# cgroup, in a container) has when that is less, at least 32 MB: 1 GB on a 1 GB host leaves
# nothing to the rest, and the kernel may refuse to map it. MP_MEMINFO and MP_CGROUP_MEMORY_MAX replace the two files for a test.
pg_shared_buffers() {
	if [ -n "${MP_PG_SHARED_BUFFERS:-}" ]; then
		echo "$MP_PG_SHARED_BUFFERS"
		return
	fi
	local kb limit mb f
	kb=$(awk '/^MemTotal:/ {print $2; exit}' "${MP_MEMINFO:-/proc/meminfo}" 2>/dev/null || true)
	case $kb in '' | *[!0-9]*) kb=1073741824 ;; esac # unknown: no limit of ours
	# The container's limit: cgroup v2's memory.max ("max" when none), else v1's
	# memory.limit_in_bytes (a huge number when none).
	for f in "${MP_CGROUP_MEMORY_MAX:-/sys/fs/cgroup/memory.max}" \
		"${MP_CGROUP_V1_LIMIT:-/sys/fs/cgroup/memory/memory.limit_in_bytes}"; do
		limit=$(cat "$f" 2>/dev/null || true)
		case $limit in
		'' | max | *[!0-9]* | ???????????????????*) ;; # none, or past 2^63 / 1024 kB
		*) if [ $((limit / 1024)) -lt "$kb" ]; then kb=$((limit / 1024)); fi ;;
		esac
	done
	mb=$((kb / 4 / 1024))
	if [ "$mb" -ge 1024 ]; then
		echo 1GB
	elif [ "$mb" -lt 32 ]; then
		echo 32MB
	else
		echo "${mb}MB"
	fi
}

start_postgres() {
	local pid log=$PG_DIR/postgres.log
	[ -x "$PG_BIN/pg_ctl" ] || die "postgres: no pg_ctl in $PG_BIN (set MP_PG_BIN)"
	if pid=$(pg_pid); then
		return 0
	fi
	port_free_or_fail postgres "$PG_PORT" "$log"
	STARTED="$STARTED postgres"
	if [ ! -f "$PGDATA/PG_VERSION" ]; then
		rm -rf "$PGDATA"
		as_svc mkdir -p "$PGDATA"
		# --no-sync + one syncfs is much faster than initdb's per-file fsync.
		(cd "$PG_DIR" && as_svc "$PG_BIN/initdb" --no-sync -D "$PGDATA" -U postgres \
			--auth-local=trust --auth-host=trust --encoding=UTF8 --locale=C.UTF-8 9>&- \
			>"$PG_DIR/initdb.log" 2>&1) || server_fail postgres "$PG_DIR/initdb.log" "initdb failed"
		if [ "$PG_FSYNC" = on ]; then sync -f "$PGDATA" 2>/dev/null || sync; fi
		echo "include_if_exists = 'mailpipe.conf'" >>"$PGDATA/postgresql.conf"
	fi
	{
		echo "# generated by deploy/local/stack.sh on every start; edits are lost"
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $PG_PORT"
		echo "unix_socket_directories = '$PG_DIR'"
		echo "default_toast_compression = 'lz4'"
		echo "fsync = $PG_FSYNC"
		echo "max_connections = 200"
		echo "shared_buffers = $(pg_shared_buffers)"
		if [ -n "${MP_PG_SETTINGS:-}" ]; then printf '%s\n' "$MP_PG_SETTINGS" | tr ';' '\n'; fi
	} >"$PGDATA/mailpipe.conf"
	if [ "$IS_ROOT" = 1 ]; then chown "$SVC_UID:$SVC_GID" "$PGDATA/mailpipe.conf"; fi
	(cd "$PG_DIR" && as_svc "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$log" -w -t 60 -s start 9>&- \
		>"$PG_DIR/pg_ctl.out" 2>&1) || {
		cat "$PG_DIR/pg_ctl.out" >>"$log" 2>/dev/null || true
		server_fail postgres "$log" "pg_ctl start failed on 127.0.0.1:$PG_PORT"
	}
	local i=0
	until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres; do
		i=$((i + 1))
		[ $i -lt 300 ] || server_fail postgres "$log" "not ready on 127.0.0.1:$PG_PORT"
		sleep 0.1
	done
	psql_admin >>"$log" 2>&1 <<-'SQL' || server_fail postgres "$log" "could not create role mailpipe"
		DO $$ BEGIN
		  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mailpipe') THEN
		    CREATE ROLE mailpipe LOGIN CREATEDB;
		  END IF;
		END $$;
	SQL
	if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = 'mailpipe'")" != 1 ]; then
		psql_admin -c "CREATE DATABASE mailpipe OWNER mailpipe" >>"$log" 2>&1 ||
			server_fail postgres "$log" "could not create database mailpipe"
	fi
}

stop_postgres() {
	pg_pid >/dev/null || return 0
	(cd "$PG_DIR" && as_svc "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 -s stop 9>&- \
		>>"$PG_DIR/postgres.log" 2>&1) || server_fail postgres "$PG_DIR/postgres.log" "pg_ctl stop failed"
}

# ---------------------------------------------------------------------------------------------
# TLS (private CA) and Dovecot

gen_tls() {
	[ -s "$TLS_DIR/ca.pem" ] && [ -s "$TLS_DIR/server.pem" ] && [ -s "$TLS_DIR/server.key" ] && return 0
	local t=$TLS_DIR tag
	tag=$(openssl rand -hex 4)
	cat >"$t/openssl.cnf" <<-EOF
		[req]
		distinguished_name = dn
		prompt = no
		[dn]
		O = mailpipe local stack
		[ca]
		basicConstraints = critical, CA:TRUE
		keyUsage = critical, keyCertSign, cRLSign
		subjectKeyIdentifier = hash
		[server]
		basicConstraints = critical, CA:FALSE
		keyUsage = critical, digitalSignature, keyEncipherment
		extendedKeyUsage = serverAuth
		subjectAltName = IP:127.0.0.1, DNS:localhost
		subjectKeyIdentifier = hash
		authorityKeyIdentifier = keyid, issuer
	EOF
	(
		umask 077
		openssl req -config "$t/openssl.cnf" -x509 -new -newkey ec \
			-pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$t/ca.key" -out "$t/ca.pem" \
			-days 3650 -subj "/O=mailpipe local stack/CN=mailpipe local CA $tag" -extensions ca &&
			openssl req -config "$t/openssl.cnf" -new -newkey ec \
				-pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$t/server.key" \
				-out "$t/server.csr" -subj "/O=mailpipe local stack/CN=localhost" &&
			openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" \
				-set_serial "0x$(openssl rand -hex 12)" -days 825 -extfile "$t/openssl.cnf" \
				-extensions server -out "$t/server.pem"
	) >"$t/openssl.log" 2>&1 || server_fail dovecot "$t/openssl.log" "could not create the TLS CA/cert"
	chmod 644 "$t/ca.pem" "$t/server.pem"
	rm -f "$t/server.csr"
}

sed_escape() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }

render_dovecot_conf() {
	local internal_user internal_group login_user chroot="" extra="" auth_user="" login_mode=""
	if [ "$IS_ROOT" = 1 ]; then
		internal_user=dovecot internal_group=dovecot login_user=dovenull
		getent passwd dovecot >/dev/null && getent passwd dovenull >/dev/null ||
			die "dovecot: the dovecot/dovenull users are missing (is dovecot-core installed?)"
	else
		internal_user=$SVC_USER internal_group=$SVC_GROUP login_user=$SVC_USER
		chroot="  chroot ="
		auth_user="  user = \$default_internal_user"
		extra="service auth-worker {
  user = \$default_internal_user
}"
	fi
	case ${MP_DOVECOT_LOGIN:-security} in
	security) ;;
	performance) # https://doc.dovecot.org/admin_manual/login_processes/
		login_mode="  service_count = 0
  client_limit = $((${MP_DOVECOT_PROCESSES:-512} + 100))
  process_min_avail = $(nproc)" ;;
	*) die "MP_DOVECOT_LOGIN must be security or performance, not '${MP_DOVECOT_LOGIN}'" ;;
	esac
	local tmpl=$HERE/dovecot.conf.in
	[ -r "$tmpl" ] || die "dovecot: template $tmpl missing"
	# @EXTRA@/@LOGIN_CHROOT@ may span lines: substitute them with awk, the rest with sed.
	sed -e "s|@DIR@|$(sed_escape "$DIR")|g" \
		-e "s|@INSTANCE@|mailpipe-stack|g" \
		-e "s|@INTERNAL_USER@|$internal_user|g" -e "s|@INTERNAL_GROUP@|$internal_group|g" \
		-e "s|@LOGIN_USER@|$login_user|g" \
		-e "s|@MAIL_UID@|$SVC_UID|g" -e "s|@MAIL_GID@|$SVC_GID|g" \
		-e "s|@IMAP_PORT@|$IMAP_PORT|g" -e "s|@IMAPS_PORT@|$IMAPS_PORT|g" \
		-e "s|@PROCESSES@|${MP_DOVECOT_PROCESSES:-512}|g" \
		-e "s|@CLIENTS@|$((2 * ${MP_DOVECOT_PROCESSES:-512} + 100))|g" "$tmpl" |
		CHROOT=$chroot EXTRA=$extra AUTH_USER=$auth_user LOGIN_MODE=$login_mode awk '
			$0 == "@LOGIN_CHROOT@" || $0 == "@ANVIL_CHROOT@" {
				if (ENVIRON["CHROOT"] != "") print ENVIRON["CHROOT"]
				next
			}
			$0 == "@EXTRA@" { if (ENVIRON["EXTRA"] != "") print ENVIRON["EXTRA"]; next }
			$0 == "@AUTH_USER@" { if (ENVIRON["AUTH_USER"] != "") print ENVIRON["AUTH_USER"]; next }
			$0 == "@LOGIN_MODE@" { if (ENVIRON["LOGIN_MODE"] != "") print ENVIRON["LOGIN_MODE"]; next }
			{ print }' >"$DC_CONF.tmp"
	mv -f "$DC_CONF.tmp" "$DC_CONF"
}

start_dovecot() {
	local pid log=$DC_DIR/dovecot.log
	if pid=$(dovecot_pid); then
		return 0
	fi
	port_free_or_fail dovecot "$IMAP_PORT" "$log"
	port_free_or_fail dovecot "$IMAPS_PORT" "$log"
	STARTED="$STARTED dovecot"
	gen_tls
	render_dovecot_conf
	mkdir -p "$DC_DIR/state"
	rm -f "$DC_BASE/anvil-auth-penalty" # stale socket of an older config: auth would log errors
	dovecot -c "$DC_CONF" 9>&- >"$DC_DIR/start.out" 2>&1 || {
		cat "$DC_DIR/start.out" >>"$log" 2>/dev/null || true
		server_fail dovecot "$log" "dovecot did not start"
	}
	local i=0
	until imap_greets "$IMAP_PORT" && port_open "$IMAPS_PORT"; do
		i=$((i + 1))
		if [ $i -ge 300 ] || { [ $i -ge 20 ] && ! dovecot_pid >/dev/null; }; then
			server_fail dovecot "$log" "no IMAP greeting on 127.0.0.1:$IMAP_PORT"
		fi
		sleep 0.1
	done
}

# The master takes ~2 s to exit: stop_dovecot_begin signals it, stop_dovecot waits.
stop_dovecot_begin() {
	local pid
	pid=$(dovecot_pid) || return 0
	kill -TERM "$pid" 2>/dev/null || true
}

stop_dovecot() {
	local pid
	pid=$(dovecot_pid) || return 0
	kill -TERM "$pid" 2>/dev/null || true
	wait_gone "$pid" 30 || {
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" 5 || server_fail dovecot "$DC_DIR/dovecot.log" "pid $pid did not exit"
	}
	# Login/imap children close the listeners shortly after the master: wait for the ports.
	local i=0 p
	for p in $(recorded MP_IMAP_PORT) $(recorded MP_IMAPS_PORT); do
		while port_open "$p" && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
	done
}

# ---------------------------------------------------------------------------------------------
# Users

valid_name() {
	case $1 in '' | .* | *[!A-Za-z0-9._@+-]*) return 1 ;; esac
}

# add_user NAME PASSWORD [COUNT SEED]
add_user() {
	local name=$1 pass=$2 count=${3:-} seed=${4:-} line
	valid_name "$name" || die "add-user: bad user name '$name' (use [A-Za-z0-9._@+-])"
	case $pass in '' | *:* | *"
"*) die "add-user: password must be non-empty without ':' or newlines" ;; esac
	line="$name:{PLAIN}$pass::::::"
	if ! grep -qxF -- "$line" "$PASSWD"; then
		{
			grep -v -- "^$name:" "$PASSWD" || true
			printf '%s\n' "$line"
		} >"$PASSWD.tmp"
		chmod --reference="$PASSWD" "$PASSWD.tmp"
		chown --reference="$PASSWD" "$PASSWD.tmp"
		mv -f "$PASSWD.tmp" "$PASSWD"
	fi
	local home=$MAIL_DIR/$name
	if [ ! -d "$home" ]; then
		mkdir -p "$home"
		if [ "$IS_ROOT" = 1 ]; then chown "$SVC_UID:$SVC_GID" "$home"; fi
	fi
	[ -n "$count" ] || return 0
	if [ -e "$home/Maildir" ]; then
		note "add-user: $name already has a Maildir; sample not regenerated"
		return 0
	fi
	local tmp=$MAIL_DIR/.tmp-$name-$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	python3 "$HERE/sample_mailbox.py" --seed "$seed" --count "$count" --out "$tmp/Maildir" \
		--folder-count-json "$tmp/sample-counts.json" 2>"$tmp/gen.log" || {
		cat "$tmp/gen.log" >&2
		rm -rf "$tmp"
		die "add-user: sample_mailbox.py failed for $name"
	}
	if [ "$IS_ROOT" = 1 ]; then chown -R "$SVC_UID:$SVC_GID" "$tmp"; fi
	mv "$tmp/Maildir" "$home/Maildir"
	mv -f "$tmp/sample-counts.json" "$home/sample-counts.json"
	rm -rf "$tmp"
}

user_exists() { grep -q -- "^$1:" "$PASSWD" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# Commands

parse_servers() {
	SEL=""
	local s
	for s in "$@"; do
		case $s in
		redis | postgres | dovecot) SEL="$SEL $s" ;;
		pg | postgresql) SEL="$SEL postgres" ;;
		imap) SEL="$SEL dovecot" ;;
		*) die "unknown server '$s' (redis, postgres, dovecot)" ;;
		esac
	done
	[ -n "$SEL" ] || SEL=$SERVERS
}
selected() { case " $SEL " in *" $1 "*) return 0 ;; esac; return 1; }

cmd_start() {
	parse_servers "$@"
	local t0
	t0=$(date +%s%N)
	STARTED=""
	[ -x "$PG_BIN/postgres" ] || die "postgres: no server binaries in '$PG_BIN' (set MP_PG_BIN)"
	command -v redis-server >/dev/null || die "redis: redis-server not installed"
	command -v dovecot >/dev/null || die "dovecot: dovecot not installed"
	ensure_svc_ids
	prepare_dir
	init_layout
	load_settings
	# Servers already running keep their ports: refuse a start that asks for different ones,
	# then record the settings before anything starts (stop/status/env read them).
	if redis_pid >/dev/null; then check_port_conflict redis MP_REDIS_PORT "$REDIS_PORT"; fi
	if pg_pid >/dev/null; then check_port_conflict postgres MP_PG_PORT "$PG_PORT"; fi
	if dovecot_pid >/dev/null; then
		check_port_conflict dovecot MP_IMAP_PORT "$IMAP_PORT"
		check_port_conflict dovecot MP_IMAPS_PORT "$IMAPS_PORT"
	fi
	save_settings
	# The demo mailbox is generated in the background while Redis and PostgreSQL start.
	if selected dovecot && ! user_exists demo; then
		local n=${MP_DEMO_COUNT:-400} seed=${MP_DEMO_SEED:-1}
		case $n$seed in '' | *[!0-9]*) die "MP_DEMO_COUNT and MP_DEMO_SEED must be integers" ;; esac
		if [ "$n" -gt 0 ]; then
			add_user demo demo "$n" "$seed" &
			GEN_PID=$!
		else
			add_user demo demo
		fi
	fi
	if selected redis; then start_redis; fi
	if selected postgres; then start_postgres; fi
	if [ -n "$GEN_PID" ]; then
		wait "$GEN_PID" || {
			GEN_PID=""
			die "dovecot: could not create user demo with its sample mailbox"
		}
		GEN_PID=""
	fi
	if selected dovecot; then start_dovecot; fi
	local ms what
	ms=$((($(date +%s%N) - t0) / 1000000))
	what="started${STARTED} in ${ms} ms"
	[ -n "$STARTED" ] || what="already running"
	note "$what ($DIR): redis 127.0.0.1:$REDIS_PORT, postgres 127.0.0.1:$PG_PORT, imap 127.0.0.1:$IMAP_PORT, imaps 127.0.0.1:$IMAPS_PORT"
}

cmd_stop() {
	local purge=0 args=()
	for a in "$@"; do
		case $a in
		--purge) purge=1 ;;
		*) args+=("$a") ;;
		esac
	done
	parse_servers ${args[@]+"${args[@]}"}
	[ -d "$DIR" ] || return 0
	if [ "$purge" = 1 ] && foreign_dir; then
		die "$DIR is not a mailpipe stack dir (no $MARKER); not removing it"
	fi
	if [ ! -e "$MARKER" ]; then
		if [ "$purge" = 1 ]; then rm -f "$DIR/.lock" && rmdir "$DIR" 2>/dev/null || true; fi
		return 0
	fi
	lock
	load_settings
	if selected dovecot; then stop_dovecot_begin; fi
	if selected postgres; then stop_postgres; fi
	if selected redis; then stop_redis; fi
	if selected dovecot; then stop_dovecot; fi
	if [ "$purge" = 1 ]; then
		exec 9>&-
		redis_pid >/dev/null || pg_pid >/dev/null || dovecot_pid >/dev/null ||
			rm -rf "$DIR"
		[ ! -e "$DIR" ] || die "not removing $DIR: some servers are still running"
	fi
}

cmd_status() {
	load_settings
	local pid rc=0
	if pid=$(redis_pid); then
		printf 'redis     running  pid %-7s 127.0.0.1:%s persist=%s\n' "$pid" \
			"$(recorded MP_REDIS_PORT || echo "$REDIS_PORT")" "$REDIS_PERSIST"
	else
		echo "redis     stopped"
		rc=3
	fi
	if pid=$(pg_pid); then
		printf 'postgres  running  pid %-7s 127.0.0.1:%s db=mailpipe fsync=%s\n' "$pid" \
			"$(recorded MP_PG_PORT || echo "$PG_PORT")" "$PG_FSYNC"
	else
		echo "postgres  stopped"
		rc=3
	fi
	if pid=$(dovecot_pid); then
		printf 'dovecot   running  pid %-7s 127.0.0.1:%s (imap) 127.0.0.1:%s (imaps)\n' "$pid" \
			"$(recorded MP_IMAP_PORT || echo "$IMAP_PORT")" "$(recorded MP_IMAPS_PORT || echo "$IMAPS_PORT")"
	else
		echo "dovecot   stopped"
		rc=3
	fi
	return $rc
}

cmd_env() {
	load_settings
	local q="'"
	printf 'export %s=%s\n' \
		MAILPIPE_STACK_DIR "$q$DIR$q" \
		MAILPIPE_DATABASE_URL "${q}postgresql://mailpipe@127.0.0.1:$PG_PORT/mailpipe$q" \
		MAILPIPE_REDIS_URL "${q}redis://127.0.0.1:$REDIS_PORT/0$q" \
		MP_STACK_DIR "$q$DIR$q" \
		MP_REDIS_PORT "$REDIS_PORT" \
		MP_PG_PORT "$PG_PORT" \
		MP_PGHOST 127.0.0.1 \
		MP_PGPORT "$PG_PORT" \
		MP_PG_BIN "$q$PG_BIN$q" \
		MP_IMAP_HOST 127.0.0.1 \
		MP_IMAP_PORT "$IMAP_PORT" \
		MP_IMAPS_PORT "$IMAPS_PORT" \
		MP_CA_FILE "$q$TLS_DIR/ca.pem$q" \
		MP_DOVECOT_CONF "$q$DC_CONF$q" \
		MP_DEMO_USER demo \
		MP_DEMO_PASSWORD demo
}

cmd_add_user() {
	[ $# -eq 2 ] || [ $# -eq 5 ] || die "usage: $PROG add-user NAME PASSWORD [--sample COUNT SEED]"
	local count="" seed=""
	if [ $# -eq 5 ]; then
		[ "$3" = --sample ] || die "usage: $PROG add-user NAME PASSWORD [--sample COUNT SEED]"
		count=$4 seed=$5
		case $count$seed in *[!0-9]*) die "add-user: COUNT and SEED must be non-negative integers" ;; esac
	fi
	ensure_svc_ids
	prepare_dir
	init_layout
	add_user "$1" "$2" "$count" "$seed"
}

main() {
	[ $# -ge 1 ] || {
		usage >&2
		exit 2
	}
	local cmd=$1
	shift
	case $cmd in
	-h | --help | help)
		usage
		return 0
		;;
	esac
	resolve
	case $cmd in
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	destroy) cmd_stop --purge ;;
	restart)
		cmd_stop "$@"
		exec 9>&-
		cmd_start "$@"
		;;
	status) cmd_status ;;
	env) cmd_env ;;
	add-user) cmd_add_user "$@" ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
