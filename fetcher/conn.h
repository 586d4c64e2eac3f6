/* The fetcher's connections, one per account: a job runs on the account's connection of
 * this process if there is one (its IDLE watch, lent for the job, or one parked after the
 * account's last job), and leaves it behind for the next job or the watch. A no-change poll
 * then costs no login and one LIST-STATUS. Owns the parked connections; not the watches
 * (idle.c) nor the IMAP conversation (session.c). */
#ifndef MP_CONN_H
#define MP_CONN_H

#include "budget.h"
#include "config.h"
#include "idle.h"
#include "session.h"

struct conns;

/* idler may be NULL (IDLE off); budget too (no connection budgets). */
struct conns *conns_new(const struct mp_config *cfg, struct idler *idler, struct budget *budget);
/* Logs out of every parked connection. NULL is fine. */
void conns_free(struct conns *c);

/* The server and user a connection serves: "host:port user auth". */
void conn_key(char *buf, size_t size, const char *host, long port, const char *username,
	      const char *auth);

/* What a job holds while it runs on an account connection. */
struct conn_use {
	long long account_id;
	char key[600];		/* host, port, user and auth: a connection serves only these */
	const char *wire;	/* the job's folder ("" for a list): its watch is lent first */
	int lent;		/* borrowed from the account's IDLE watch */
	int reused;		/* no login was needed */
	struct idle_seen seen;	/* the watched folder as last seen (for idle_give) */
	const char *host;	/* the server host, and the account's connection limit */
	int limit;
	int over_budget;	/* conns_open: no connection, the account or host is at its limit */
};

/* A session for the job's account, logged in already when one is kept (u->reused), else
 * opened now (session_open's contract: NULL with err and *auth_failed). may_borrow = 0
 * leaves the IDLE watch alone (a long backfill must not silence push). */
struct session *conns_open(struct conns *c, struct conn_use *u, const struct session_opts *o,
			   int may_borrow, char *err, size_t errlen, int *auth_failed);
/* After the job: a reusable session goes to the account's watch or is parked for the next
 * job; a failed one is closed (a lent watch then logs in again by itself). */
void conns_release(struct conns *c, struct conn_use *u, struct session *s);
/* The account's parked connection (key must match), taken out of the pool: for the IDLE
 * watch thread (idle_source_fn). */
CURL *conns_take_parked(void *conns, long long account_id, const char *key, char *caps,
			size_t capslen);
/* Closes parked connections unused for MAILPIPE_CONN_IDLE_S, or wanted by a fetcher that
 * found their account at its connection limit; call between jobs. */
void conns_expire(struct conns *c);
/* Keeps the connections' budget leases fresh; call often (during long jobs too). */
void conns_tick(struct conns *c);

#endif
