/* The queues as metrics: each stream's length, and each consumer group's pending entries, lag
 * and consumers, read with XLEN and XINFO GROUPS. Sampled by the scheduler (one per deployment,
 * so the numbers are not multiplied by the number of workers); called from its tick. */
#include "streams.h"
#include "metrics.h"
#include "partition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The integer of a field of an XINFO GROUPS entry (a flat name/value list); MX_ABSENT when
 * missing or nil (Redis 7 reports lag as nil when it cannot tell it). */
static int64_t group_field(const redisReply *g, const char *name)
{
	for (size_t i = 0; i + 1 < g->elements; i += 2) {
		const redisReply *k = g->element[i], *v = g->element[i + 1];
		if (k->type != REDIS_REPLY_STRING && k->type != REDIS_REPLY_STATUS)
			continue;
		if (strcmp(k->str, name) != 0)
			continue;
		return v->type == REDIS_REPLY_INTEGER ? (int64_t)v->integer : MX_ABSENT;
	}
	return MX_ABSENT;
}

/* A partitioned deployment's work stream is the sum of its partitions' streams: a value is
 * added into *acc, which turns MX_ABSENT only when no partition reported one. */
static void add(int64_t *acc, int64_t v)
{
	if (v != MX_ABSENT)
		*acc = *acc == MX_ABSENT ? v : *acc + v;
}

static void sample_group(redisContext *rc, const char *key, const char *group, int64_t out[3])
{
	redisReply *r = rc ? redisCommand(rc, "XINFO GROUPS %s", key) : NULL;
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *g = r->element[i];
		if (g->type != REDIS_REPLY_ARRAY || g->elements < 2)
			continue;
		const redisReply *name = g->element[1];
		if (name->type != REDIS_REPLY_STRING || strcmp(name->str, group) != 0)
			continue;
		add(&out[0], group_field(g, "pending"));
		add(&out[1], group_field(g, "lag"));
		add(&out[2], group_field(g, "consumers"));
	}
	freeReplyObject(r);
}

static int64_t stream_length(redisContext *rc, const char *key)
{
	redisReply *r = rc ? redisCommand(rc, "XLEN %s", key) : NULL;
	int64_t n = r && r->type == REDIS_REPLY_INTEGER ? (int64_t)r->integer : MX_ABSENT;
	freeReplyObject(r);
	return n;
}

void streams_sample(redisContext *rc, const struct mp_config *cfg)
{
	static const char *const groups[MXS_COUNT] = {"fetchers", "fetchers", "parsers", "writers",
						      "schedulers"};
	static const char *const names[MXS_COUNT] = {"jobs", "jobs:backfill", "raw", "parsed", NULL};
	for (int s = 0; s < MXS_COUNT; s++) {
		int64_t len = MX_ABSENT, g[3] = {MX_ABSENT, MX_ABSENT, MX_ABSENT};
		long nparts = names[s] ? cfg->redis_partitions : 1;
		for (long p = 0; p < nparts; p++) {
			char key[128];
			if (names[s])
				partition_key(cfg, (int)p, names[s], key, sizeof(key));
			else
				snprintf(key, sizeof(key), "%s", cfg->key_requests);
			redisContext *c = names[s] ? partition_redis(cfg, rc, (int)p) : rc;
			add(&len, stream_length(c, key));
			sample_group(c, key, groups[s], g);
		}
		metrics_set((enum mx_id)(MX_STREAM_LENGTH_JOBS + s), len);
		metrics_set((enum mx_id)(MX_STREAM_PENDING_JOBS + s), g[0]);
		metrics_set((enum mx_id)(MX_STREAM_LAG_JOBS + s), g[1]);
		metrics_set((enum mx_id)(MX_STREAM_CONSUMERS_JOBS + s), g[2]);
	}
	metrics_set(MX_STREAM_LENGTH_DEAD, stream_length(rc, cfg->key_dead));
}
