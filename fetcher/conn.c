/* Account connections of one fetcher: see conn.h. A parked connection is not read while it
 * waits (nothing is selected that matters to us, and a server that drops it is found by the
 * next command, which then logs in again at once without counting as a retry). */
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct parked {
	long long account_id;
	char key[600], host[256];
	CURL *curl;
	char caps[4096];
	long long since_ms;
};

struct conns {
	const struct mp_config *cfg;
	struct idler *idler;
	struct budget *budget;
	long long wanted_ms;	/* when parked accounts were last checked against budget_wanted */
	uv_mutex_t mu;		/* v and n: the watch thread takes parked connections too */
	struct parked *v;
	size_t n;
};

void conn_key(char *buf, size_t size, const char *host, long port, const char *username,
	      const char *auth)
{
	snprintf(buf, size, "%s:%ld %s %s", host, port, username, auth);
}

struct conns *conns_new(const struct mp_config *cfg, struct idler *idler, struct budget *budget)
{
	struct conns *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->cfg = cfg;
	c->idler = idler;
	c->budget = budget;
	c->v = calloc((size_t)cfg->conn_parked + 1, sizeof(*c->v));
	if (!c->v) {
		free(c);
		return NULL;
	}
	uv_mutex_init(&c->mu);
	idle_set_source(idler, conns_take_parked, c);
	return c;
}

static void unpark(struct conns *c, size_t i)
{
	budget_closed(c->budget, c->v[i].curl);
	curl_easy_cleanup(c->v[i].curl);
	metrics_add(MX_IMAP_CONNECTIONS_PARKED, -1);
	c->v[i] = c->v[--c->n];
}

void conns_free(struct conns *c)
{
	if (!c)
		return;
	idle_set_source(c->idler, NULL, NULL);
	while (c->n)
		unpark(c, c->n - 1);
	uv_mutex_destroy(&c->mu);
	free(c->v);
	free(c);
}

void conns_expire(struct conns *c)
{
	if (!c)
		return;
	long long now = stage_now_ms();
	uv_mutex_lock(&c->mu); /* every lane calls this: wanted_ms too is under mu */
	int check_wanted = c->budget && now - c->wanted_ms >= 2000;
	if (check_wanted)
		c->wanted_ms = now;
	unsigned char *wanted = check_wanted && c->n ? calloc(c->n, 1) : NULL;
	long long *ids = wanted ? calloc(c->n, sizeof(*ids)) : NULL;
	const char **hosts = wanted ? calloc(c->n, sizeof(*hosts)) : NULL;
	if (ids && hosts) {
		for (size_t i = 0; i < c->n; i++) {
			ids[i] = c->v[i].account_id;
			hosts[i] = c->v[i].host;
		}
		budget_wanted(c->budget, c->n, ids, hosts, wanted);
	}
	for (size_t i = c->n; i-- > 0;)
		if (now - c->v[i].since_ms >= c->cfg->conn_idle_s * 1000 || (ids && hosts && wanted[i])) {
			log_debug("account_id=%lld msg=\"parked connection closed\"", c->v[i].account_id);
			unpark(c, i); /* moves the last into i: wanted[] was read for it already */
		}
	uv_mutex_unlock(&c->mu);
	free(wanted);
	free(ids);
	free(hosts);
	budget_tick(c->budget);
}

void conns_tick(struct conns *c)
{
	if (c)
		budget_tick(c->budget);
}

/* Takes the account's parked connection out of the pool, if its key matches (else the
 * parked one, for a server or user the account no longer has, is closed). */
static CURL *take(struct conns *c, long long account_id, const char *key, char *caps, size_t capslen)
{
	CURL *curl = NULL;
	uv_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->n; i++) {
		if (c->v[i].account_id != account_id)
			continue;
		if (strcmp(c->v[i].key, key) == 0) {
			curl = c->v[i].curl;
			snprintf(caps, capslen, "%s", c->v[i].caps);
			c->v[i] = c->v[--c->n];
			metrics_add(MX_IMAP_CONNECTIONS_PARKED, -1);
		} else {
			unpark(c, i);
		}
		break;
	}
	uv_mutex_unlock(&c->mu);
	return curl;
}

CURL *conns_take_parked(void *conns, long long account_id, const char *key, char *caps,
			size_t capslen)
{
	return take(conns, account_id, key, caps, capslen);
}

struct session *conns_open(struct conns *c, struct conn_use *u, const struct session_opts *o,
			   int may_borrow, char *err, size_t errlen, int *auth_failed)
{
	char caps[4096];
	u->lent = u->reused = 0;
	*auth_failed = 0;
	CURL *curl = may_borrow ? idle_borrow(c->idler, u->account_id, u->wire, caps, sizeof(caps),
					      &u->seen)
				: NULL;
	if (curl)
		u->lent = 1;
	else
		curl = take(c, u->account_id, u->key, caps, sizeof(caps));
	if (curl) {
		u->reused = 1;
		struct session *s = session_adopt(o, curl, caps);
		if (s)
			return s;
		budget_closed(c->budget, curl); /* adopt closed it */
		if (u->lent) /* the watch must hear back */
			idle_give(c->idler, u->account_id, NULL, NULL, NULL);
		u->lent = u->reused = 0;
	}
	u->over_budget = 0;
	long ticket = budget_take(c->budget, u->account_id, u->host, u->limit);
	if (ticket == 0) {
		u->over_budget = 1;
		snprintf(err, errlen, "connection budget of account id %lld or host %s in use", u->account_id,
			 u->host);
		return NULL;
	}
	struct session *s = session_open(o, err, errlen, auth_failed);
	if (s)
		budget_bind(c->budget, ticket, session_curl(s));
	else
		budget_cancel(c->budget, ticket);
	return s;
}

void conns_release(struct conns *c, struct conn_use *u, struct session *s)
{
	char caps[4096] = "";
	if (s && !session_reusable(s)) /* detach closes it */
		budget_closed(c->budget, session_curl(s));
	CURL *curl = session_detach(s, caps, sizeof(caps));
	/* A lent watch always hears back, even when the connection died (curl NULL); another
	 * job's connection may become the account's watch. */
	if ((u->lent || curl) && idle_give(c->idler, u->account_id, curl, caps, &u->seen))
		return;
	if (!curl)
		return;
	if (c->cfg->conn_idle_s == 0 || c->cfg->conn_parked == 0) {
		budget_closed(c->budget, curl);
		curl_easy_cleanup(curl);
		return;
	}
	uv_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].account_id == u->account_id) {
			unpark(c, i);
			break;
		}
	if (c->n >= (size_t)c->cfg->conn_parked) { /* the one unused longest goes */
		size_t oldest = 0;
		for (size_t i = 1; i < c->n; i++)
			if (c->v[i].since_ms < c->v[oldest].since_ms)
				oldest = i;
		unpark(c, oldest);
	}
	struct parked *p = &c->v[c->n++];
	p->account_id = u->account_id;
	snprintf(p->key, sizeof(p->key), "%s", u->key);
	snprintf(p->host, sizeof(p->host), "%s", u->host ? u->host : "");
	p->curl = curl;
	memcpy(p->caps, caps, sizeof(caps));
	p->since_ms = stage_now_ms();
	metrics_add(MX_IMAP_CONNECTIONS_PARKED, 1);
	uv_mutex_unlock(&c->mu);
	log_debug("account_id=%lld msg=\"connection kept for the account's next job\"", u->account_id);
}
