/* See partition.h. The map is configuration, not discovery: hiredis 0.14 has no cluster
 * client, and a partition moves by changing its URL while its workers are stopped. */
#include "partition.h"
#include "log.h"
#include "rstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct partition_parts {
	long n;
	long long *failed_ms;	/* [n]: when connecting last failed (monotonic), 0 = never */
	redisContext *conn[];	/* [n]: NULL until first used; owned */
};

/* A server that did not answer is not asked again for this long: a batch of jobs for a
 * partition whose server is down must not wait out a connect timeout per job. */
#define RETRY_MS 1000

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int partition_of(const struct mp_config *cfg, long long account_id)
{
	long n = cfg->redis_partitions > 0 ? cfg->redis_partitions : 1;
	long long p = account_id % n;
	return (int)(p < 0 ? p + n : p);
}

void partition_tag(const struct mp_config *cfg, int p, char *buf, size_t size)
{
	if (cfg->redis_partitions <= 1)
		snprintf(buf, size, "{%s}", cfg->redis_prefix);
	else
		snprintf(buf, size, "{%s:%d}", cfg->redis_prefix, p);
}

void partition_key(const struct mp_config *cfg, int p, const char *name, char *buf, size_t size)
{
	char tag[80];
	partition_tag(cfg, p, tag, sizeof(tag));
	snprintf(buf, size, "%s:%s", tag, name);
}

static int parse_index(const char *s, const char *end, long n, long *out)
{
	if (s == end || end - s > 6)
		return -EINVAL;
	long v = 0;
	for (const char *c = s; c < end; c++) {
		if (*c < '0' || *c > '9')
			return -EINVAL;
		v = v * 10 + (*c - '0');
	}
	if (v >= n)
		return -ERANGE;
	*out = v;
	return 0;
}

int partition_parse_urls(const char *spec, long n, char **urls, char *err, size_t errsize)
{
	const char *s = spec;
	while (s && *s) {
		const char *comma = strchr(s, ',');
		const char *end = comma ? comma : s + strlen(s);
		const char *eq = memchr(s, '=', (size_t)(end - s));
		if (!eq || eq + 1 == end) {
			snprintf(err, errsize, "'%.*s' is not P=URL or P-Q=URL", (int)(end - s), s);
			return -EINVAL;
		}
		const char *dash = memchr(s, '-', (size_t)(eq - s));
		long lo, hi;
		int rc = parse_index(s, dash ? dash : eq, n, &lo);
		if (rc == 0)
			rc = dash ? parse_index(dash + 1, eq, n, &hi) : (hi = lo, 0);
		if (rc == -ERANGE) {
			snprintf(err, errsize, "'%.*s' names a partition outside 0-%ld", (int)(eq - s), s,
				 n - 1);
			return -EINVAL;
		}
		if (rc < 0 || hi < lo) {
			snprintf(err, errsize, "'%.*s' is not a partition number or range", (int)(eq - s), s);
			return -EINVAL;
		}
		size_t ulen = (size_t)(end - eq - 1);
		if (!(ulen > 8 && !strncmp(eq + 1, "redis://", 8)) &&
		    !(ulen > 7 && !strncmp(eq + 1, "unix://", 7))) {
			snprintf(err, errsize, "'%.*s' is not a redis:// or unix:// URL", (int)ulen, eq + 1);
			return -EINVAL;
		}
		for (long p = lo; p <= hi; p++) {
			if (urls[p]) {
				snprintf(err, errsize, "partition %ld is mapped twice", p);
				return -EINVAL;
			}
			urls[p] = strndup(eq + 1, ulen);
			if (!urls[p])
				return -ENOMEM;
		}
		s = comma ? comma + 1 : NULL;
	}
	return 0;
}

const char *partition_url(const struct mp_config *cfg, int p)
{
	if (cfg->partition_urls && p >= 0 && p < cfg->redis_partitions && cfg->partition_urls[p])
		return cfg->partition_urls[p];
	return cfg->redis_url;
}

struct partition_parts *partition_parts_new(long n)
{
	struct partition_parts *pp = calloc(1, sizeof(*pp) + (size_t)n * sizeof(redisContext *));
	if (!pp)
		return NULL;
	pp->n = n;
	pp->failed_ms = calloc((size_t)n, sizeof(*pp->failed_ms));
	if (!pp->failed_ms) {
		free(pp);
		return NULL;
	}
	return pp;
}

void partition_parts_free(struct partition_parts *pp)
{
	if (!pp)
		return;
	for (long i = 0; i < pp->n; i++)
		redisFree(pp->conn[i]);
	free(pp->failed_ms);
	free(pp);
}

redisContext *partition_redis(const struct mp_config *cfg, redisContext *home, int p)
{
	if (p < 0 || p >= cfg->redis_partitions)
		return NULL;
	const char *url = partition_url(cfg, p);
	if (!cfg->parts || strcmp(url, cfg->redis_url) == 0)
		return home;
	struct partition_parts *pp = cfg->parts;
	if (pp->conn[p] && pp->conn[p]->err) {
		redisFree(pp->conn[p]);
		pp->conn[p] = NULL;
	}
	if (!pp->conn[p]) {
		long long now = now_ms();
		if (pp->failed_ms[p] && now - pp->failed_ms[p] < RETRY_MS)
			return NULL;
		pp->conn[p] = redis_connect_url(url);
		pp->failed_ms[p] = pp->conn[p] ? 0 : now;
		if (!pp->conn[p])
			log_warn("partition=%d msg=\"cannot reach the partition's Redis\"", p);
	}
	return pp->conn[p];
}
