/* Runs one job from {mp}:jobs against the IMAP server: list_folders -> a `folders` record;
 * sync_folder -> one {mp}:raw entry per new message, then a `cursor` record on {mp}:parsed.
 * Owns the IMAP conversation of a job; not the job queue (main.c) nor the connection (session.c). */
#ifndef MP_FETCH_H
#define MP_FETCH_H

#include "config.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <signal.h>

struct fetcher {
	const struct mp_config *cfg;
	redisContext *rc;
	volatile sig_atomic_t *stopping;	/* set by SIGTERM: stop between batches */
	const char *entry_id;	/* the job's stream entry, kept claimed while the job runs */
	const char *jobs_key;	/* ... in this stream ({mp}:jobs or {mp}:jobs:backfill) */
	/* Reconnects rc after Redis went away (a restart mid-job); 0 when connected again. */
	int (*reconnect)(struct fetcher *f);
	void *data;		/* for reconnect */
	struct conns *conns;	/* the accounts' connections kept between jobs (conn.c) */
	long long redis_limit;	/* rc's server's maxmemory as last seen (0: none) */
};

/* Outcome of a job, for the caller's ack decision. */
enum fetch_result {
	FETCH_DONE,	/* records written (possibly an error record): ack the job */
	FETCH_RETRY,	/* not done and nothing final written: leave pending or re-queue */
	FETCH_BUSY,	/* the folder is locked by another fetcher: re-queue */
};

/* job is borrowed. */
enum fetch_result fetch_run_job(struct fetcher *f, json_t *job);

/* The secret of account JSON acc (a job's `account`, or an IDLE target): its secret_ref
 * (env:VAR, file:PATH, cmd:COMMAND) resolved, or its `secret_box` opened (secret_ref
 * `stored:`) with MAILPIPE_SECRET_KEY or an older key (fetcher/secret.c). A malloc'd string the
 * caller wipes and frees, or NULL with a one-line reason in err that never quotes a secret. */
char *fetch_resolve_secret(const struct mp_config *cfg, json_t *acc, char *err, size_t errlen);
/* The server refused the secret: a cmd: reference's cached token (revoked before its stated
 * expiry) is not used again; the next login asks the broker. */
void fetch_forget_secret(json_t *acc);

#endif
