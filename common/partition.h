/* Redis partitions (DESIGN "Past one Redis"): which partition an account's work keys live in,
 * their names ({mp:p}:jobs ...), and the map of partitions to Redis servers. Does not decide
 * which keys are partitioned: config.c derives the key names, README has the table. */
#ifndef MP_PARTITION_H
#define MP_PARTITION_H

#include "config.h"

#include <hiredis/hiredis.h>
#include <stddef.h>

#define PARTITION_MAX 1024

/* An account's partition: account_id mod MAILPIPE_REDIS_PARTITIONS. A pure function, so the
 * scheduler, the CLI and every worker agree without asking anyone. */
int partition_of(const struct mp_config *cfg, long long account_id);

/* The hash tag of partition p into buf: "{mp}" when there is one partition (the keys of an
 * unpartitioned deployment, unchanged), "{mp:p}" otherwise. */
void partition_tag(const struct mp_config *cfg, int p, char *buf, size_t size);
/* tag + ":" + name, e.g. "{mp:1}:jobs". */
void partition_key(const struct mp_config *cfg, int p, const char *name, char *buf, size_t size);

/* Parses MAILPIPE_REDIS_PARTITION_URLS ("0=redis://a:6379,2-3=redis://b:6379") into urls[0..n):
 * urls[p] becomes a malloc'd URL, or stays NULL for the home server. 0, or -EINVAL with a
 * sentence in err (no variable name: the caller adds it). Caller frees the strings. */
int partition_parse_urls(const char *spec, long n, char **urls, char *err, size_t errsize);

/* The server of partition p (cfg->partition_urls[p], else MAILPIPE_REDIS_URL). */
const char *partition_url(const struct mp_config *cfg, int p);

/* The connection to partition p's server for a process holding home, its connection to the
 * home server: home itself when p lives there, else a connection cached in cfg->parts (made
 * or remade on demand). NULL after logging when that server cannot be reached. Not for two
 * threads at once: a thread that shares cfg uses a copy with parts of its own. */
redisContext *partition_redis(const struct mp_config *cfg, redisContext *home, int p);

/* The cache of connections behind partition_redis: config_load makes one when partitions may
 * live elsewhere; partition_parts_free closes its connections. */
struct partition_parts *partition_parts_new(long n);
void partition_parts_free(struct partition_parts *pp);

#endif
