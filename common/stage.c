/* The common skeleton of the stage daemons. Keeping the read order here means every stage
 * recovers from a crash the same way (invariant 3). */
#include "stage.h"
#include "log.h"
#include "partition.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t *stage_stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	if (stage_stop_flag)
		*stage_stop_flag = 1;
}

long long stage_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int create_groups(struct stage *st)
{
	const struct mp_config *c = &st->cfg;
	/* The scheduler's connection is the home server's, which holds partition 0's streams
	 * only when unpartitioned; workers create their partition's groups. */
	if (st->global && c->redis_partitions > 1)
		return 0;
	if (rstream_group_create(st->rc, c->key_jobs, "fetchers") < 0 ||
	    rstream_group_create(st->rc, c->key_jobs_first, "fetchers") < 0 ||
	    rstream_group_create(st->rc, c->key_raw, "parsers") < 0 ||
	    rstream_group_create(st->rc, c->key_parsed, "writers") < 0)
		return -EIO;
	return 0;
}

redisContext *stage_home(struct stage *st)
{
	if (!st->home)
		return st->rc;
	if (st->home->err) {
		redisFree(st->home);
		st->home = redis_connect_url(st->cfg.redis_url);
	}
	return st->home;
}

int stage_reconnect_once(struct stage *st)
{
	redisFree(st->rc);
	redisFree(st->home);
	st->home = NULL;
	const char *url = st->global ? st->cfg.redis_url : partition_url(&st->cfg, (int)st->cfg.partition);
	st->rc = redis_connect_url(url);
	if (st->rc && strcmp(url, st->cfg.redis_url) != 0) {
		st->home = redis_connect_url(st->cfg.redis_url);
		if (!st->home) {
			redisFree(st->rc);
			st->rc = NULL;
		}
	}
	if (st->rc && create_groups(st) == 0) {
		if (st->connects++)
			metrics_add(MX_ERRORS_REDIS, 1);
		st->own_pending_done = 0;
		return 0;
	}
	redisFree(st->rc);
	st->rc = NULL;
	return -EIO;
}

int stage_reconnect(struct stage *st)
{
	unsigned delay_ms = 200;
	while (!*st->stopping) {
		if (stage_reconnect_once(st) == 0)
			return 0;
		usleep(delay_ms * 1000);
		if (delay_ms < 5000)
			delay_ms *= 2;
	}
	return -EINTR;
}

int stage_init(struct stage *st, const char *name, volatile sig_atomic_t *stopping)
{
	memset(st, 0, sizeof(*st));
	st->name = name;
	st->global = strcmp(name, "scheduler") == 0;
	st->stopping = stopping;
	if (config_load(&st->cfg) < 0)
		return -EINVAL;
	log_setup(name, st->cfg.log_level);
	metrics_setup(name, st->cfg.consumer);
	int err;
	st->metrics = metrics_start(st->cfg.metrics_addr, &err);
	if (err < 0)
		return -EINVAL;
	stage_stop_flag = stopping;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (stage_reconnect(st) < 0)
		return -EIO;
	if (st->cfg.redis_partitions > 1 && !st->global)
		log_info("consumer=%s partition=%ld msg=\"started\"", st->cfg.consumer,
			 st->cfg.partition);
	else
		log_info("consumer=%s msg=\"started\"", st->cfg.consumer);
	return 0;
}

void stage_release(struct stage *st)
{
	metrics_stop(st->metrics);
	st->metrics = NULL;
	redisFree(st->rc);
	st->rc = NULL;
	redisFree(st->home);
	st->home = NULL;
	config_release(&st->cfg);
}

redisReply *stage_next(struct stage *st, const char *key, const char *group, long count,
		       long block_ms, int *redelivered)
{
	redisReply *r;
	struct rentry *e;
	size_t n;

	*redelivered = 1;
	/* One pass over our own pending entries, in id order: an entry left pending on purpose
	 * (a cursor waiting for its messages) must not hide the new ones behind it. */
	if (!st->own_pending_done) {
		if (!st->pending_from[0])
			snprintf(st->pending_from, sizeof(st->pending_from), "0");
		r = rstream_read(st->rc, key, group, st->cfg.consumer,
				 st->redeliver_singly ? 1 : count, -1, st->pending_from);
		rstream_entries(r, &e, &n);
		if (r && n > 0) {
			snprintf(st->pending_from, sizeof(st->pending_from), "%s", e[n - 1].id);
			free(e);
			return r;
		}
		free(e);
		freeReplyObject(r);
		st->own_pending_done = 1;
		st->pending_from[0] = 0;
	}
	long long now = stage_now_ms();
	if (now - st->last_claim_ms >= st->cfg.claim_idle_ms / 2) {
		r = rstream_autoclaim(st->rc, key, group, st->cfg.consumer, st->cfg.claim_idle_ms,
				      st->redeliver_singly ? 1 : count);
		rstream_entries(r, &e, &n);
		free(e);
		if (r && n > 0) {
			log_info("count=%zu msg=\"reclaimed entries of a dead consumer from %s\"", n, key);
			return r; /* more may wait: claim again next call */
		}
		freeReplyObject(r);
		st->last_claim_ms = now;
	}
	*redelivered = 0;
	return rstream_read(st->rc, key, group, st->cfg.consumer, count, block_ms, ">");
}
