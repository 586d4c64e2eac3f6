/* The planning lease. The holder renews it each tick; one that dies (kill -9, a lost host)
 * stops renewing and another scheduler takes the key when it expires, within
 * MAILPIPE_SCHEDULER_LEASE_MS. Both steps are one script each, so a renewal can never extend
 * a lease another scheduler took meanwhile. */
#include "lease.h"
#include "log.h"

#include <stdio.h>
#include <unistd.h>

static const char hold_script[] =
	"local v = redis.call('get', KEYS[1]) "
	"if v == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end "
	"if v then return 0 end "
	"redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) return 1";

static const char release_script[] =
	"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";

void lease_init(struct lease *l, const struct mp_config *cfg)
{
	snprintf(l->owner, sizeof(l->owner), "%s:%d", cfg->consumer, (int)getpid());
	l->held = 0;
}

int lease_hold(struct lease *l, redisContext *rc, const struct mp_config *cfg)
{
	char ms[24];
	snprintf(ms, sizeof(ms), "%ld", cfg->lease_ms);
	redisReply *r = redisCommand(rc, "EVAL %s 1 %s %s %s", hold_script, cfg->key_sched_lease,
				     l->owner, ms);
	int held = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
	freeReplyObject(r);
	if (held != l->held && !(held < 0 && !l->held)) {
		if (held == 1)
			log_info("lease=%s owner=%s msg=\"planning lease taken: this scheduler plans\"",
				 cfg->key_sched_lease, l->owner);
		else
			log_warn("lease=%s owner=%s msg=\"planning lease lost: another scheduler plans\"",
				 cfg->key_sched_lease, l->owner);
	}
	l->held = held == 1;
	return held;
}

void lease_release(struct lease *l, redisContext *rc, const struct mp_config *cfg)
{
	if (!l->held || !rc)
		return;
	redisReply *r = redisCommand(rc, "EVAL %s 1 %s %s", release_script, cfg->key_sched_lease,
				     l->owner);
	freeReplyObject(r);
	l->held = 0;
	log_info("lease=%s msg=\"planning lease released\"", cfg->key_sched_lease);
}
