#!/usr/bin/env bash
# The local stack's PostgreSQL reserves shared_buffers of 1 GB (a 50,000-message account's
# indexes outgrow PostgreSQL's own 128 MB), but on a small host, or in a container whose cgroup
# allows less, a quarter of the memory there is: 1 GB on a 1 GB host leaves nothing to the
# rest, and the kernel may refuse to map it. MP_PG_SHARED_BUFFERS wins over both. MP_MEMINFO,
# MP_CGROUP_MEMORY_MAX and MP_CGROUP_V1_LIMIT stand in for /proc/meminfo, cgroup v2's
# /sys/fs/cgroup/memory.max and cgroup v1's /sys/fs/cgroup/memory/memory.limit_in_bytes.
. "$(dirname "$0")/lib.sh"
fake=$(mktemp -d /tmp/mailpipe-memory.XXXXXX)
printf 'MemTotal:        1048576 kB\nMemFree:          524288 kB\n' >"$fake/meminfo-1g"
printf 'MemTotal:       25165824 kB\n' >"$fake/meminfo-24g"
echo 536870912 >"$fake/cgroup-512m"
echo max >"$fake/cgroup-max"
echo 9223372036854771712 >"$fake/cgroup-v1-none" # what v1 shows without a limit
export MP_MEMINFO=$fake/meminfo-1g MP_CGROUP_MEMORY_MAX=$fake/cgroup-max
export MP_CGROUP_V1_LIMIT=$fake/cgroup-v1-none
pg_only_up memory 26000
shown() { psql "postgresql://postgres@127.0.0.1:$MP_PG_PORT/postgres" -XAtq -c "SHOW shared_buffers"; }
restart() { "$ROOT/deploy/local/stack.sh" restart postgres >>"$MAILPIPE_STACK_DIR.start.log" 2>&1; }

check "a host of 1 GB: PostgreSQL starts with a quarter of it ($(shown))" [ "$(shown)" = 256MB ]

export MP_MEMINFO=$fake/meminfo-24g MP_CGROUP_MEMORY_MAX=$fake/cgroup-512m
restart
check "a cgroup of 512 MB on a 24 GB host: a quarter of the cgroup ($(shown))" [ "$(shown)" = 128MB ]

export MP_CGROUP_MEMORY_MAX=$fake/cgroup-max
restart
check "a 24 GB host, no cgroup limit: 1 GB ($(shown))" [ "$(shown)" = 1GB ]

MP_CGROUP_V1_LIMIT=$fake/cgroup-512m restart
check "a cgroup v1 limit of 512 MB on a 24 GB host: a quarter of it ($(shown))" [ "$(shown)" = 128MB ]

printf 'MemTotal:          65536 kB\n' >"$fake/meminfo-64m"
MP_MEMINFO=$fake/meminfo-64m restart
check "a host of 64 MB: no less than 32 MB ($(shown))" [ "$(shown)" = 32MB ]

MP_PG_SHARED_BUFFERS=200MB restart
check "MP_PG_SHARED_BUFFERS wins ($(shown))" [ "$(shown)" = 200MB ]

unset MP_MEMINFO MP_CGROUP_MEMORY_MAX MP_CGROUP_V1_LIMIT
restart
kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
	limit=$(cat "$f" 2>/dev/null || true)
	case $limit in '' | max | *[!0-9]* | ???????????????????*) ;;
	*) [ $((limit / 1024)) -ge "$kb" ] || kb=$((limit / 1024)) ;; esac
done
want=1GB
[ $((kb / 4 / 1024)) -ge 1024 ] || want=$((kb / 4 / 1024))MB
check "this host's own memory ($((kb / 1024)) MB): $want ($(shown))" [ "$(shown)" = "$want" ]
rm -rf "$fake"
finish
