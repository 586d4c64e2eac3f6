/* See requests.h. The thread owns its own Redis and Postgres connections: the scheduler's
 * loop keeps its own, and a blocking XREADGROUP must not hold up anything else. */
#include "requests.h"
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "partition.h"
#include "pg.h"
#include "rstream.h"
#include "secretbox.h"

#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

struct requests {
	const struct mp_config *cfg;
	/* The scheduler's configuration with a cache of partition connections of this thread's
	 * own (partition.h: one thread per cache); the strings are the scheduler's. */
	struct mp_config own_cfg;
	uv_thread_t thread;
	atomic_int stop;
	redisContext *rc;
	PGconn *pg;
	int own_pending_done;
};

int requests_publish_targets(PGconn *pg, redisContext *rc, const struct mp_config *cfg)
{
	PGresult *r = pg_exec(
		pg, "idle targets",
		"SELECT coalesce(json_agg(json_build_object('account_id', a.id, 'name', a.name, "
		" 'host', a.host, 'port', a.port, 'tls', a.tls, 'username', a.username, 'auth', a.auth, "
		" 'secret_ref', a.secret_ref, 'secret_box', " SECRETBOX_SQL_JSON ", 'ca_file', a.ca_file, 'tls_verify', a.tls_verify, "
		" 'provider', a.provider, 'max_connections', coalesce((a.options->>'max_connections')::int, 0), "
		" 'folder_id', f.id, 'wire_name', f.wire_name, 'folder', f.name) ORDER BY a.id, f.id), "
		" '[]')::text "
		/* INBOX, and the folders the account names with --idle-folder: a watch each. */
		"FROM accounts a JOIN email_folders f ON f.account_id = a.id AND (f.name = 'INBOX' "
		"  OR f.name IN (SELECT jsonb_array_elements_text(coalesce(a.options->'idle_folders', "
		"   '[]'::jsonb)))) "
		"WHERE a.state = 'active' AND NOT coalesce((a.options->>'no_idle')::boolean, false) "
		" AND (cardinality(a.folders) = 0 OR f.name = ANY(a.folders))",
		0, NULL);
	if (!r)
		return -EIO;
	redisReply *rr = redisCommand(rc, "SET %s %s", cfg->key_idle_targets, PQgetvalue(r, 0, 0));
	int ok = rr && rr->type != REDIS_REPLY_ERROR;
	freeReplyObject(rr);
	PQclear(r);
	return ok ? 0 : -EIO;
}

/* An app waiting for its request's sync_finished learns instead that there will be none. */
static int reject(struct requests *rq, const char *rid, const char *account, const char *why)
{
	if (rq->cfg->changes_maxlen <= 0)
		return 0;
	const char *names[] = { "type", "request_id", "account", "error" };
	const char *vals[] = { "request_rejected", rid ? rid : "", account ? account : "", why };
	rstream_append_add_capped(rq->rc, rq->cfg->key_changes, rq->cfg->changes_maxlen, 4, names,
				  vals, NULL);
	return rstream_collect(rq->rc, 1);
}

/* One request -> one run. Returns 0 when it is handled (a run started, or the request named
 * no account we have: dropped), <0 when Postgres or Redis failed (left pending). */
static int handle(struct requests *rq, const struct rentry *e)
{
	const char *acc_id = rentry_get(e, "account_id", NULL);
	const char *name = rentry_get(e, "account", NULL);
	const char *folders = rentry_get(e, "folders", NULL);
	const char *rid = rentry_get(e, "request_id", NULL);
	const char *p[] = { acc_id ? acc_id : "0", name ? name : "" };
	PGresult *r = pg_exec(rq->pg, "find requested account",
			      "SELECT id FROM accounts WHERE (id = $1::bigint OR name = $2) "
			      " AND state <> 'disabled'", 2, p);
	if (!r)
		return -EIO;
	if (PQntuples(r) != 1) {
		log_warn("request=%s account=%s msg=\"sync request for an unknown or disabled account, dropped\"",
			 rid ? rid : "?", name ? name : acc_id ? acc_id : "?");
		PQclear(r);
		return reject(rq, rid, name ? name : acc_id, "no active account of that name");
	}
	long long account_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	json_t *list = folders ? json_loads(folders, 0, NULL) : NULL;
	if (folders && !json_is_array(list)) {
		/* Syncing the whole account instead would not be what was asked for. */
		log_warn("request=%s account_id=%lld msg=\"sync request with folders that are not a JSON "
			 "list, dropped\"", rid ? rid : "?", account_id);
		json_decref(list);
		return reject(rq, rid, name ? name : acc_id, "folders is not a JSON list of folder names");
	}
	const char *names[64];
	size_t n = 0, i;
	json_t *v;
	json_array_foreach(list, i, v)
		if (json_is_string(v) && n < 64)
			names[n++] = json_string_value(v);
	long long run = jobs_start_requested_run(rq->pg, rq->rc, rq->cfg, account_id, names, n, rid);
	json_decref(list);
	if (run < 0)
		return -EIO;
	log_info("request=%s account_id=%lld run=%lld msg=\"requested sync started\"", rid ? rid : "?",
		 account_id, run);
	/* Push latency: an entry's id is the Redis clock's time (ms) when the watch queued it. */
	const char *reason = rentry_get(e, "reason", NULL);
	if (reason && strcmp(reason, "idle") == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		double age = (double)ts.tv_sec + ts.tv_nsec / 1e9 - strtoll(e->id, NULL, 10) / 1e3;
		metrics_observe(MH_PUSH, age > 0 ? age : 0);
	}
	return 0;
}

static int connect_all(struct requests *rq)
{
	if (!rq->rc || rq->rc->err) {
		redisFree(rq->rc);
		rq->rc = redis_connect_url(rq->cfg->redis_url);
		rq->own_pending_done = 0;
		if (!rq->rc || rstream_group_create(rq->rc, rq->cfg->key_requests, "schedulers") < 0)
			return -EIO;
	}
	if (!rq->pg || pg_broken(rq->pg)) {
		PQfinish(rq->pg);
		rq->pg = pg_connect(rq->cfg->database_url);
		if (!rq->pg)
			return -EIO;
	}
	return 0;
}

static void requests_main(void *arg)
{
	struct requests *rq = arg;
	unsigned delay_ms = 200;
	while (!atomic_load(&rq->stop)) {
		if (connect_all(rq) < 0) {
			usleep(delay_ms * 1000);
			delay_ms = delay_ms < 5000 ? delay_ms * 2 : delay_ms;
			continue;
		}
		delay_ms = 200;
		/* Our own pending requests first (a restart resumes them), then new ones. */
		redisReply *r = rstream_read(rq->rc, rq->cfg->key_requests, "schedulers", rq->cfg->consumer,
					     100, rq->own_pending_done ? 1000 : -1,
					     rq->own_pending_done ? ">" : "0");
		struct rentry *e = NULL;
		size_t n = 0;
		rstream_entries(r, &e, &n);
		if (!n)
			rq->own_pending_done = 1;
		for (size_t i = 0; i < n; i++) {
			if (handle(rq, &e[i]) < 0) {
				rq->own_pending_done = 0; /* left pending: read again */
				usleep(200 * 1000);
				break;
			}
			const char *ids[] = { e[i].id };
			rstream_ack(rq->rc, rq->cfg->key_requests, "schedulers", ids, 1);
		}
		free(e);
		freeReplyObject(r);
	}
	redisFree(rq->rc);
	PQfinish(rq->pg);
}

struct requests *requests_start(const struct mp_config *cfg)
{
	struct requests *rq = calloc(1, sizeof(*rq));
	if (!rq)
		return NULL;
	rq->own_cfg = *cfg;
	rq->own_cfg.parts = cfg->parts ? partition_parts_new(cfg->redis_partitions) : NULL;
	rq->cfg = &rq->own_cfg;
	if (uv_thread_create(&rq->thread, requests_main, rq) != 0) {
		log_error("msg=\"request consumer thread not started\"");
		free(rq);
		return NULL;
	}
	return rq;
}

void requests_stop(struct requests *rq)
{
	if (!rq)
		return;
	atomic_store(&rq->stop, 1);
	uv_thread_join(&rq->thread);
	partition_parts_free(rq->own_cfg.parts);
	free(rq);
}
