/* Connection budgets: see budget.h. The leases are sorted sets scored by expiry (Redis's own
 * clock, read inside the scripts, so fetchers on several hosts agree); a take drops lapsed
 * members first, then counts. */
#include "budget.h"
#include "log.h"
#include "quirks.h"
#include "rstream.h"
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define LEASE_MS 30000
/* A closed connection's lease lapses this long after the close rather than at once: the
 * server ends its side a moment later (Dovecot's imap process outlives LOGOUT), and counts it
 * until then. */
#define CLOSE_GRACE_MS 1500

struct held {
	long ticket;
	CURL *curl;		/* NULL until bound */
	char acct_key[128], host_key[400], member[160];
};

struct budget {
	const struct mp_config *cfg;
	uv_mutex_t mu;
	redisContext *rc;	/* its own: both threads use it, under mu */
	long serial;
	struct held *v;
	size_t n, cap;
	long long renewed_ms;
};

static const char take_script[] =
	"local t = redis.call('TIME') "
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "
	"redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) "
	"if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then "
	"  redis.call('SET', KEYS[3], '1', 'PX', 5000) return 0 end "
	"if tonumber(ARGV[3]) > 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then "
	"  redis.call('SET', KEYS[4], '1', 'PX', 5000) return -1 end "
	"redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1]) "
	"redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1]) "
	"redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) * 2) "
	"redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]) * 2) "
	"return 1";

static const char renew_script[] =
	"local t = redis.call('TIME') "
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
	"redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1]) "
	"redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[2]), ARGV[1]) "
	"redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2) "
	"redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]) * 2) return 1";

/* The lease of a closed connection lapses after ARGV[2] ms; the key's own lifetime stays. */
static const char close_script[] =
	"local t = redis.call('TIME') "
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
	"redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1]) "
	"redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[2]), ARGV[1]) return 1";

struct budget *budget_new(const struct mp_config *cfg)
{
	struct budget *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->cfg = cfg;
	uv_mutex_init(&b->mu);
	return b;
}

static redisContext *conn(struct budget *b)
{
	if (b->rc && !b->rc->err)
		return b->rc;
	redisFree(b->rc);
	b->rc = redis_connect_url(b->cfg->redis_url);
	return b->rc;
}

static void drop(struct budget *b, size_t i, long long grace_ms)
{
	redisContext *rc = conn(b);
	if (rc) {
		char ttl[24];
		snprintf(ttl, sizeof(ttl), "%lld", grace_ms);
		redisReply *r = redisCommand(rc, "EVAL %s 2 %s %s %s %s", close_script, b->v[i].acct_key,
					     b->v[i].host_key, b->v[i].member, ttl);
		freeReplyObject(r);
	}
	b->v[i] = b->v[--b->n];
}

void budget_free(struct budget *b)
{
	if (!b)
		return;
	while (b->n)
		drop(b, b->n - 1, CLOSE_GRACE_MS);
	redisFree(b->rc);
	uv_mutex_destroy(&b->mu);
	free(b->v);
	free(b);
}

int budget_account_limit(const char *provider, long long max_connections)
{
	return max_connections > 0 ? (int)max_connections : quirks_for(provider)->max_connections;
}

long budget_take(struct budget *b, long long account_id, const char *host, int account_limit)
{
	if (!b)
		return -1;
	uv_mutex_lock(&b->mu);
	long ticket = -1;
	redisContext *rc = conn(b);
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct held *v = realloc(b->v, cap * sizeof(*v));
		if (!v)
			goto out;
		b->v = v;
		b->cap = cap;
	}
	struct held *h = &b->v[b->n];
	memset(h, 0, sizeof(*h));
	h->ticket = ++b->serial;
	snprintf(h->acct_key, sizeof(h->acct_key), "%s%lld", b->cfg->key_conn_acct_prefix, account_id);
	snprintf(h->host_key, sizeof(h->host_key), "%s%s", b->cfg->key_conn_host_prefix, host);
	/* The pid too: a fetcher restarted under the same consumer name must not reuse the names
	 * of leases its previous life left lapsing, or ZADD would count one for two. */
	snprintf(h->member, sizeof(h->member), "%s/%ld/%ld", b->cfg->consumer, (long)getpid(),
		 h->ticket);
	char want[160], hwant[400], lim[24], hlim[24], ttl[24];
	snprintf(want, sizeof(want), "%s%lld", b->cfg->key_conn_want_prefix, account_id);
	snprintf(hwant, sizeof(hwant), "%shost:%s", b->cfg->key_conn_want_prefix, host);
	snprintf(lim, sizeof(lim), "%d", account_limit);
	snprintf(hlim, sizeof(hlim), "%ld", b->cfg->host_connections);
	snprintf(ttl, sizeof(ttl), "%d", LEASE_MS);
	redisReply *r = rc ? redisCommand(rc, "EVAL %s 4 %s %s %s %s %s %s %s %s", take_script,
					  h->acct_key, h->host_key, want, hwant, h->member, lim, hlim, ttl)
			   : NULL;
	if (r && r->type == REDIS_REPLY_INTEGER) {
		if (r->integer == 1) {
			ticket = h->ticket;
			b->n++;
		} else {
			ticket = 0;
			log_info("account_id=%lld host=%s msg=\"connection budget in use (%s limit %s); waiting\"",
				 account_id, host, r->integer == 0 ? "account" : "host",
				 r->integer == 0 ? lim : hlim);
		}
	} else {
		log_warn("account_id=%lld msg=\"connection budget not checked: %s\"", account_id,
			 r && r->type == REDIS_REPLY_ERROR ? r->str : rc ? rc->errstr : "no Redis");
	}
	freeReplyObject(r);
out:
	uv_mutex_unlock(&b->mu);
	return ticket;
}

static size_t find(struct budget *b, long ticket, CURL *curl)
{
	for (size_t i = 0; i < b->n; i++)
		if ((ticket && b->v[i].ticket == ticket) || (curl && b->v[i].curl == curl))
			return i;
	return b->n;
}

void budget_bind(struct budget *b, long ticket, CURL *curl)
{
	if (!b || ticket <= 0)
		return;
	uv_mutex_lock(&b->mu);
	size_t i = find(b, ticket, NULL);
	if (i < b->n)
		b->v[i].curl = curl;
	uv_mutex_unlock(&b->mu);
}

void budget_cancel(struct budget *b, long ticket)
{
	if (!b || ticket <= 0)
		return;
	uv_mutex_lock(&b->mu);
	size_t i = find(b, ticket, NULL);
	if (i < b->n)
		drop(b, i, 1); /* never opened: at once */
	uv_mutex_unlock(&b->mu);
}

void budget_closed(struct budget *b, CURL *curl)
{
	if (!b || !curl)
		return;
	uv_mutex_lock(&b->mu);
	size_t i = find(b, 0, curl);
	if (i < b->n)
		drop(b, i, CLOSE_GRACE_MS);
	uv_mutex_unlock(&b->mu);
}

void budget_tick(struct budget *b)
{
	if (!b)
		return;
	long long now = stage_now_ms();
	uv_mutex_lock(&b->mu);
	if (now - b->renewed_ms >= LEASE_MS / 3 && b->n) {
		redisContext *rc = conn(b);
		char ttl[24];
		snprintf(ttl, sizeof(ttl), "%d", LEASE_MS);
		for (size_t i = 0; rc && i < b->n; i++)
			redisAppendCommand(rc, "EVAL %s 2 %s %s %s %s", renew_script, b->v[i].acct_key,
					   b->v[i].host_key, b->v[i].member, ttl);
		if (rc && rstream_collect(rc, b->n) == 0)
			b->renewed_ms = now;
	}
	uv_mutex_unlock(&b->mu);
}

void budget_wanted(struct budget *b, size_t n, const long long *account_ids,
		   const char *const *hosts, unsigned char *wanted)
{
	memset(wanted, 0, n);
	if (!b || n == 0)
		return;
	uv_mutex_lock(&b->mu);
	redisContext *rc = conn(b);
	/* One round trip for every parked connection: a fetcher may hold a thousand. */
	for (size_t i = 0; rc && i < n; i++)
		redisAppendCommand(rc, "EXISTS %s%lld %shost:%s", b->cfg->key_conn_want_prefix,
				   account_ids[i], b->cfg->key_conn_want_prefix, hosts[i]);
	for (size_t i = 0; rc && i < n; i++) {
		redisReply *r = NULL;
		if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
			freeReplyObject(r);
			break; /* the context is broken: conn() reconnects next time */
		}
		wanted[i] = r && r->type == REDIS_REPLY_INTEGER && r->integer > 0;
		freeReplyObject(r);
	}
	uv_mutex_unlock(&b->mu);
}
