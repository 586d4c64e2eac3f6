/* The queues as metrics: each stream's length, and each consumer group's pending entries, lag
 * and consumers, read with XLEN and XINFO GROUPS. Sampled by the scheduler (one per deployment,
 * so the numbers are not multiplied by the number of workers); called from its tick. */
#include "streams.h"
#include "metrics.h"

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

static void sample_group(redisContext *rc, const char *key, const char *group, enum mx_stream s)
{
	int64_t pending = MX_ABSENT, lag = MX_ABSENT, consumers = MX_ABSENT;
	redisReply *r = redisCommand(rc, "XINFO GROUPS %s", key);
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *g = r->element[i];
		if (g->type != REDIS_REPLY_ARRAY || g->elements < 2)
			continue;
		const redisReply *name = g->element[1];
		if (name->type != REDIS_REPLY_STRING || strcmp(name->str, group) != 0)
			continue;
		pending = group_field(g, "pending");
		lag = group_field(g, "lag");
		consumers = group_field(g, "consumers");
	}
	freeReplyObject(r);
	metrics_set((enum mx_id)(MX_STREAM_PENDING_JOBS + s), pending);
	metrics_set((enum mx_id)(MX_STREAM_LAG_JOBS + s), lag);
	metrics_set((enum mx_id)(MX_STREAM_CONSUMERS_JOBS + s), consumers);
}

static void sample_length(redisContext *rc, const char *key, enum mx_id id)
{
	redisReply *r = redisCommand(rc, "XLEN %s", key);
	metrics_set(id, r && r->type == REDIS_REPLY_INTEGER ? (int64_t)r->integer : MX_ABSENT);
	freeReplyObject(r);
}

void streams_sample(redisContext *rc, const struct mp_config *cfg)
{
	static const char *const groups[MXS_COUNT] = {"fetchers", "fetchers", "parsers", "writers",
						      "schedulers"};
	const char *const keys[MXS_COUNT] = {cfg->key_jobs, cfg->key_backfill, cfg->key_raw,
					     cfg->key_parsed, cfg->key_requests};
	for (int s = 0; s < MXS_COUNT; s++) {
		sample_length(rc, keys[s], (enum mx_id)(MX_STREAM_LENGTH_JOBS + s));
		sample_group(rc, keys[s], groups[s], (enum mx_stream)s);
	}
	sample_length(rc, cfg->key_dead, MX_STREAM_LENGTH_DEAD);
}
