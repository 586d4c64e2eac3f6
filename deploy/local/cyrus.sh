#!/usr/bin/env bash
# A private Cyrus IMAP 3.6 on 127.0.0.1, the second real server of the integration tests (issue 9).
# All state lives in one directory; stack.sh (Redis, PostgreSQL, Dovecot) is not involved.
#
#   cyrus.sh install                         apt: cyrus-common + sasl2-bin; imapd extracted from
#                                            cyrus-imapd (which conflicts with dovecot-imapd)
#   cyrus.sh start DIR PORT [IMAPS_PORT]     config + data under DIR, master on 127.0.0.1:PORT
#                                            (plain IMAP) and IMAPS_PORT (implicit TLS)
#   cyrus.sh stop DIR                        stop (idempotent; data kept)
#   cyrus.sh status DIR                      one line; exit 0 iff running
#   cyrus.sh add-user DIR NAME PASSWORD [--sample COUNT SEED]
#                                            sasldb entry + mailbox user/NAME created by the
#                                            admin over IMAP; --sample APPENDs sample_mailbox.py's
#                                            mailbox (same folders, flags, internal dates)
#
# Environment:
#   MP_CYRUS_HOME      where install puts the extracted cyrus-imapd package
#                      (default /usr/local/lib/mailpipe/cyrus-imapd)
#   MP_CYRUS_SUDO      how install gains root when not run as root (default sudo; tests: sudo -n)
#   MP_STACK_USER      unprivileged user master runs as when started by root (mailpipe-test)
#   MP_CYRUS_TLS_DIR   ca.pem/server.pem/server.key for IMAPS (default $MAILPIPE_STACK_DIR/tls,
#                      the stack's private CA made by stack.sh)
#   MP_CYRUS_ALTNAMESPACE  1 (default): folders are INBOX's siblings (Sent, Archive/2023);
#                      0: they are INBOX's children (INBOX/Sent, INBOX/Archive/2023)
set -eu
umask 022

PROG=cyrus.sh
HERE=$(cd "$(dirname "$0")" && pwd -P)
DIR_HINT=DIR
. "$HERE/svc.sh"
CYRUS_HOME=${MP_CYRUS_HOME:-/usr/local/lib/mailpipe/cyrus-imapd}
IMAPD=$CYRUS_HOME/usr/lib/cyrus/bin/imapd
LIBEXEC=/usr/lib/cyrus/bin # cyrus-common: master, ctl_cyrusdb, ...
ADMIN=mpadmin

die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}

# fail_log LOG MESSAGE: one line that says what failed, then the tail of the log.
fail_log() {
	local log=$1
	shift
	printf '%s: %s (log: %s)\n' "$PROG" "$*" "$log" >&2
	if [ -s "$log" ]; then tail -n 15 "$log" | sed 's/^/  | /' >&2; fi
	exit 1
}

usage() {
	sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------------------------------------
# install

installed() {
	[ -x "$LIBEXEC/master" ] && [ -x "$IMAPD" ] && command -v saslpasswd2 >/dev/null
}

cmd_install() {
	installed && return 0
	local sudo="" pol=""
	[ "$(id -u)" -eq 0 ] || sudo=${MP_CYRUS_SUDO:-sudo}
	export DEBIAN_FRONTEND=noninteractive
	if ! [ -x "$LIBEXEC/master" ] || ! command -v saslpasswd2 >/dev/null; then
		echo "$PROG: installing cyrus-common sasl2-bin" >&2
		$sudo apt-get update -qq || die "apt-get update failed"
		# cyrus-common pulls in an MTA and ships a cyrus-imapd service: neither may start a
		# system-wide instance (the packaged one would also want port 143).
		if [ ! -e /usr/sbin/policy-rc.d ]; then
			printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
			$sudo chmod +x /usr/sbin/policy-rc.d
			pol=1
		fi
		$sudo apt-get install -y -qq --no-install-recommends cyrus-common sasl2-bin >/dev/null || {
			[ -z "$pol" ] || $sudo rm -f /usr/sbin/policy-rc.d
			die "apt-get install cyrus-common sasl2-bin failed"
		}
		[ -z "$pol" ] || $sudo rm -f /usr/sbin/policy-rc.d
		# The package enables cyrus-imapd.service: at the next boot it would take ports 143/993
		# from Dovecot (and fail without imapd). Only our own master may run.
		if command -v systemctl >/dev/null; then
			$sudo systemctl disable cyrus-imapd.service >/dev/null 2>&1 || true
		fi
	fi
	if ! [ -x "$IMAPD" ]; then
		# Installing cyrus-imapd would remove dovecot-imapd (both provide imap-server): take
		# only its files, which need nothing beyond cyrus-common's libraries.
		local tmp
		tmp=$(mktemp -d)
		chmod 755 "$tmp" # apt's _apt user downloads into it
		(cd "$tmp" && apt-get download -qq cyrus-imapd >/dev/null 2>"$tmp/err") || {
			cat "$tmp/err" >&2
			rm -rf "$tmp"
			die "apt-get download cyrus-imapd failed"
		}
		$sudo mkdir -p "$CYRUS_HOME"
		$sudo dpkg -x "$tmp"/cyrus-imapd_*.deb "$CYRUS_HOME" || {
			rm -rf "$tmp"
			die "dpkg -x of cyrus-imapd into $CYRUS_HOME failed"
		}
		rm -rf "$tmp"
	fi
	installed || die "install finished but $LIBEXEC/master, $IMAPD or saslpasswd2 is missing"
	echo "$PROG: installed (imapd: $IMAPD)" >&2
}

# ---------------------------------------------------------------------------------------------
# Paths, users

resolve_dir() {
	[ -n "${1:-}" ] || die "missing DIR"
	DIR=$1
	case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
	case $DIR in
	*[!A-Za-z0-9._/+,=@~-]*) die "dir '$DIR' has characters imapd.conf cannot take" ;;
	esac
	# Cyrus's unix sockets live in DIR/conf/socket/; sun_path holds 107 bytes.
	[ ${#DIR} -le 80 ] || die "dir '$DIR' is too long for Cyrus's unix sockets (${#DIR} > 80)"
	CONF=$DIR/imapd.conf
	MCONF=$DIR/cyrus.conf
	PIDFILE=$DIR/run/master.pid
	LOG=$DIR/run/master.log
	STATE=$DIR/cyrus.env
	SASLDB=$DIR/sasldb2
	if [ "$(id -u)" -eq 0 ]; then
		IS_ROOT=1
		SVC_USER=${MP_STACK_USER:-mailpipe-test}
	else
		IS_ROOT=0
		SVC_USER=$(id -un)
	fi
}

# Prints master's pid when it runs.
master_pid() {
	local pid comm
	[ -r "$PIDFILE" ] || return 1
	pid=$(head -n 1 "$PIDFILE" 2>/dev/null | tr -dc 0-9)
	[ -n "$pid" ] || return 1
	comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
	case $comm in master* | cyrmaster*) printf '%s\n' "$pid" ;; *) return 1 ;; esac
}

state_get() { sed -n "s/^$1=//p" "$STATE" 2>/dev/null | head -n 1; }

check_port() {
	case $1 in '' | *[!0-9]*) die "port '$1' is not a number" ;; esac
	[ "$1" -ge 1 ] && [ "$1" -le 65535 ] || die "port $1 out of range"
}

# ---------------------------------------------------------------------------------------------
# start / stop

# Cyrus logs only through syslog(3); without a syslog daemon (containers, CI) its reasons for
# failing are lost. This shim, preloaded into master and the processes it starts, appends them
# to $MP_CYRUS_SYSLOG_FILE instead. Built at start when no /dev/log socket exists and cc does.
build_syslog_shim() {
	SHIM=""
	[ ! -S /dev/log ] || return 0
	command -v cc >/dev/null || return 0
	cat >"$DIR/run/syslog-shim.c" <<'EOF_SHIM'
/* Cyrus logs only to syslog; where no syslog daemon listens (containers), this shim preloaded
 * into master and its children appends each message to $MP_CYRUS_SYSLOG_FILE instead. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *ident = "cyrus";

void openlog(const char *id, int opt, int fac) { (void)opt; (void)fac; if (id) ident = id; }
void closelog(void) {}

void vsyslog(int pri, const char *fmt, va_list ap)
{
	static int fd = -2;
	if (fd == -2) {
		const char *f = getenv("MP_CYRUS_SYSLOG_FILE");
		fd = f ? open(f, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
	}
	if (fd < 0)
		return;
	char buf[2048];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	int n = (int)strftime(buf, sizeof(buf), "%H:%M:%S ", &tm);
	n += snprintf(buf + n, sizeof(buf) - n, "%s[%d] <%d> ", ident, (int)getpid(), pri & 7);
	if (n < (int)sizeof(buf) - 1)
		n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(fd, buf, n);
}

void syslog(int pri, const char *fmt, ...) { va_list ap; va_start(ap, fmt); vsyslog(pri, fmt, ap); va_end(ap); }
void __syslog_chk(int pri, int flag, const char *fmt, ...) { (void)flag; va_list ap; va_start(ap, fmt); vsyslog(pri, fmt, ap); va_end(ap); }
void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap) { (void)flag; vsyslog(pri, fmt, ap); }
EOF_SHIM
	cc -shared -fPIC -O2 -o "$DIR/run/syslog-shim.so" "$DIR/run/syslog-shim.c" 2>>"$LOG" &&
		SHIM=$DIR/run/syslog-shim.so
}

render_conf() {
	local port=$1 sport=$2 tls=$3 altns=$4
	{
		echo "# generated by deploy/local/cyrus.sh start; edits are lost"
		echo "configdirectory: $DIR/conf"
		echo "partition-default: $DIR/spool"
		echo "sievedir: $DIR/sieve"
		echo "servername: localhost"
		echo "admins: $ADMIN"
		echo "cyrus_user: $SVC_USER"
		# Real passwords (sasldb), so a wrong secret is refused as it would be in production.
		echo "sasl_pwcheck_method: auxprop"
		echo "sasl_auxprop_plugin: sasldb"
		echo "sasl_sasldb_path: $SASLDB"
		# What most servers offer; with sasldb Cyrus would also list DIGEST-MD5/CRAM-MD5,
		# which curl prefers, and that would test libsasl rather than mailpipe.
		echo "sasl_mech_list: PLAIN LOGIN"
		echo "allowplaintext: yes"
		# '/' is the delimiter most servers use (and Cyrus 3's default); it also lets folder
		# names contain '.', as Dovecot's sample does ("Archive.2023" is nested, "Café Zürich").
		echo "unixhierarchysep: yes"
		echo "altnamespace: $altns"
		echo "virtdomains: off"
		# Keep 8-bit header bytes as sent: the sample's raw 8-bit headers must reach mailpipe
		# as they do from Dovecot (Cyrus would otherwise turn them into 'X').
		echo "munge8bit: no"
		echo "reject8bit: no"
		echo "specialusealways: yes"
		echo "syslog_prefix: mailpipe-cyrus"
		echo "delete_mode: immediate"
		echo "expunge_mode: immediate"
		echo "hashimapspool: no"
		if [ "$tls" = 1 ]; then
			echo "tls_server_cert: $DIR/tls/server.pem"
			echo "tls_server_key: $DIR/tls/server.key"
			echo "tls_client_ca_file: $DIR/tls/ca.pem"
		fi
	} >"$CONF"
	{
		echo "# generated by deploy/local/cyrus.sh start; edits are lost"
		echo "START {"
		echo "  recover cmd=\"$LIBEXEC/ctl_cyrusdb -C $CONF -r\""
		echo "}"
		echo "SERVICES {"
		echo "  imap cmd=\"$IMAPD -C $CONF\" listen=\"127.0.0.1:$port\" prefork=1"
		if [ "$tls" = 1 ]; then
			echo "  imaps cmd=\"$IMAPD -C $CONF -s\" listen=\"127.0.0.1:$sport\" prefork=1"
		fi
		echo "}"
		echo "EVENTS {"
		echo "  checkpoint cmd=\"$LIBEXEC/ctl_cyrusdb -C $CONF -c\" period=30"
		echo "}"
		echo "DAEMON {"
		echo "}"
	} >"$MCONF"
}

cmd_start() {
	[ $# -eq 2 ] || [ $# -eq 3 ] || die "usage: $PROG start DIR PORT [IMAPS_PORT]"
	resolve_dir "$1"
	local port=$2 sport=${3:-} tls=0 altns pid t0
	t0=$(date +%s%N)
	check_port "$port"
	[ -z "$sport" ] || { check_port "$sport" && tls=1; }
	case ${MP_CYRUS_ALTNAMESPACE:-1} in 0 | no | off) altns=no ;; *) altns=yes ;; esac
	installed || die "Cyrus is not installed; run '$PROG install'"
	if pid=$(master_pid); then
		[ "$(state_get PORT)" = "$port" ] && [ "$(state_get IMAPS_PORT)" = "$sport" ] ||
			die "Cyrus already runs in $DIR (pid $pid) on other ports; run '$PROG stop $DIR' first"
		return 0
	fi
	for p in $port $sport; do
		port_open "$p" && die "port 127.0.0.1:$p is already in use by another process"
	done
	ensure_svc_user
	mkdir -p "$DIR"
	chmod 755 "$DIR"
	ensure_traversable
	if [ "$tls" = 1 ]; then
		local tdir=${MP_CYRUS_TLS_DIR:-${MAILPIPE_STACK_DIR:+$MAILPIPE_STACK_DIR/tls}}
		[ -n "$tdir" ] && [ -s "$tdir/ca.pem" ] && [ -s "$tdir/server.pem" ] &&
			[ -s "$tdir/server.key" ] ||
			die "IMAPS needs ca.pem, server.pem and server.key in MP_CYRUS_TLS_DIR or \$MAILPIPE_STACK_DIR/tls"
		# The stack's key is root's and 0600: imapd, running as $SVC_USER, gets its own copy.
		mkdir -p "$DIR/tls"
		cp "$tdir/ca.pem" "$tdir/server.pem" "$DIR/tls/"
		(umask 077 && cp "$tdir/server.key" "$DIR/tls/server.key")
	fi
	local d
	for d in db socket proc log lock msg quota user sync ptclient; do mkdir -p "$DIR/conf/$d"; done
	mkdir -p "$DIR/spool" "$DIR/sieve" "$DIR/run"
	if [ ! -f "$SASLDB" ]; then
		# A sasldb with the admin, whose password only this directory knows.
		(umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DIR/admin.pw")
		tr -d '\n' <"$DIR/admin.pw" | saslpasswd2 -p -c -f "$SASLDB" -u localhost "$ADMIN" ||
			die "saslpasswd2 could not create $SASLDB"
	fi
	render_conf "$port" "$sport" "$tls" "$altns"
	printf 'PORT=%s\nIMAPS_PORT=%s\nALTNAMESPACE=%s\n' "$port" "$sport" "$altns" >"$STATE"
	rm -f "$PIDFILE"
	: >"$LOG"
	if [ "$IS_ROOT" = 1 ]; then
		chown -R "$SVC_USER:" "$DIR/conf" "$DIR/spool" "$DIR/sieve" "$DIR/run" "$SASLDB"
		[ "$tls" = 0 ] || chown -R "$SVC_USER:" "$DIR/tls"
		chmod 600 "$SASLDB"
	fi
	build_syslog_shim
	as_svc env ${SHIM:+LD_PRELOAD=$SHIM MP_CYRUS_SYSLOG_FILE=$LOG} "$LIBEXEC/master" -d \
		-C "$CONF" -M "$MCONF" -p "$PIDFILE" -L "$LOG" </dev/null >>"$LOG" 2>&1 9>&- ||
		fail_log "$LOG" "Cyrus master did not start"
	local i=0
	until imap_greets "$port" && { [ "$tls" = 0 ] || port_open "$sport"; }; do
		i=$((i + 1))
		if [ $i -ge 300 ] || { [ $i -ge 30 ] && ! master_pid >/dev/null; }; then
			fail_log "$LOG" "Cyrus master gave no IMAP greeting on 127.0.0.1:$port within $((i / 10)) s"
		fi
		sleep 0.1
	done
	echo "$PROG: Cyrus started in $((($(date +%s%N) - t0) / 1000000)) ms ($DIR): imap 127.0.0.1:$port${sport:+, imaps 127.0.0.1:$sport}" >&2
}

cmd_stop() {
	[ $# -eq 1 ] || die "usage: $PROG stop DIR"
	resolve_dir "$1"
	local pid i=0 p
	pid=$(master_pid) || return 0
	kill -TERM "$pid" 2>/dev/null || true
	while [ -d "/proc/$pid" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ -d "/proc/$pid" ]; then
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
	[ ! -d "/proc/$pid" ] || fail_log "$LOG" "master pid $pid did not exit"
	# Children (imapd) close the listeners shortly after master.
	for p in $(state_get PORT) $(state_get IMAPS_PORT); do
		i=0
		while port_open "$p" && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
	done
}

cmd_status() {
	[ $# -eq 1 ] || die "usage: $PROG status DIR"
	resolve_dir "$1"
	local pid
	if pid=$(master_pid); then
		printf 'cyrus     running  pid %-7s 127.0.0.1:%s (imap)%s\n' "$pid" "$(state_get PORT)" \
			"$(p=$(state_get IMAPS_PORT); [ -z "$p" ] || echo " 127.0.0.1:$p (imaps)")"
	else
		echo "cyrus     stopped"
		return 3
	fi
}

# ---------------------------------------------------------------------------------------------
# users

cmd_add_user() {
	[ $# -eq 3 ] || [ $# -eq 6 ] ||
		die "usage: $PROG add-user DIR NAME PASSWORD [--sample COUNT SEED]"
	resolve_dir "$1"
	local name=$2 pass=$3 count="" seed=""
	if [ $# -eq 6 ]; then
		[ "$4" = --sample ] || die "usage: $PROG add-user DIR NAME PASSWORD [--sample COUNT SEED]"
		count=$5 seed=$6
		case $count$seed in *[!0-9]*) die "add-user: COUNT and SEED must be non-negative integers" ;; esac
	fi
	case $name in '' | .* | *[!A-Za-z0-9._-]*) die "add-user: bad user name '$name' (use [A-Za-z0-9._-])" ;; esac
	[ "$name" != "$ADMIN" ] || die "add-user: '$ADMIN' is the admin"
	case $pass in '' | *"
"*) die "add-user: password must be non-empty without newlines" ;; esac
	master_pid >/dev/null || die "Cyrus is not running in $DIR; run '$PROG start $DIR PORT' first"
	printf '%s' "$pass" | as_svc saslpasswd2 -p -c -f "$SASLDB" -u localhost "$name" ||
		die "add-user: saslpasswd2 failed for $name"
	local port gen=""
	port=$(state_get PORT)
	if [ -n "$count" ]; then
		gen=$(mktemp -d "$DIR/.sample-XXXXXX")
		python3 "$HERE/sample_mailbox.py" --seed "$seed" --count "$count" --out "$gen/Maildir" \
			--no-uidlist --folder-count-json "$gen/sample-counts.json" 2>"$gen/gen.log" || {
			cat "$gen/gen.log" >&2
			rm -rf "$gen"
			die "add-user: sample_mailbox.py failed for $name"
		}
	fi
	MP_CYRUS_ADMIN_PASSWORD=$(cat "$DIR/admin.pw") MP_CYRUS_USER_PASSWORD=$pass \
		python3 "$HERE/cyrus_fill.py" --port "$port" --admin "$ADMIN" --user "$name" \
		${gen:+--maildir "$gen/Maildir"} || {
		[ -z "$gen" ] || rm -rf "$gen"
		die "add-user: could not create the mailbox of $name${gen:+ with its sample}"
	}
	if [ -n "$gen" ]; then
		mv -f "$gen/sample-counts.json" "$DIR/sample-counts-$name.json"
		rm -rf "$gen"
	fi
}

main() {
	[ $# -ge 1 ] || {
		usage >&2
		exit 2
	}
	local cmd=$1
	shift
	case $cmd in
	-h | --help | help) usage ;;
	install) cmd_install ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	status) cmd_status "$@" ;;
	add-user) cmd_add_user "$@" ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
