/* mailpipe-fetcher: takes jobs from {mp}:jobs and runs them (fetch.c). MAILPIPE_FETCHER_LANES
 * lanes run jobs at once, each a thread with its own Redis connection and consumer name,
 * sharing the process's kept connections (conn.c), connection budget (budget.c) and IDLE
 * watches (idle.c, on their own libuv loop): a job blocks its lane on the server, not the
 * process. Two lanes never run jobs of one account at once: the second waits, then runs on
 * the connection the first left, so an account costs one login per process. */
#include "budget.h"
#include "conn.h"
#include "fetch.h"
#include "idle.h"
#include "log.h"
#include "stage.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static volatile sig_atomic_t stopping;

/* How long a lane waits for another lane's job of the same account before queueing its own
 * job again. */
enum { LANE_WAIT_MS = 200 };

/* The accounts a lane is running a job of, at most one per lane. */
struct accounts_busy {
	uv_mutex_t mu;
	uv_cond_t cv;
	long long *ids;	/* 0: free slot */
	size_t n;
};

/* Marks account_id ours in slot lane once no other lane runs a job of it; 0, or -EBUSY when
 * another lane still does after a short wait: the caller queues the job again behind the
 * others, for another fetcher or for later, rather than hold it while a long job of the same
 * account runs here (a process's lanes would take several folders of one account and run
 * them one after another while other fetchers had nothing). */
static int account_enter(struct accounts_busy *b, size_t lane, long long account_id)
{
	int rc = 0;
	uv_mutex_lock(&b->mu);
	for (int waited = 0;; waited++) {
		int busy = 0;
		for (size_t i = 0; i < b->n; i++)
			busy |= i != lane && b->ids[i] == account_id;
		if (!busy)
			break;
		if (stopping || waited == LANE_WAIT_MS / 50) { /* never two lanes on one account */
			rc = -EBUSY;
			break;
		}
		uv_cond_timedwait(&b->cv, &b->mu, 50 * 1000000u);
	}
	if (rc == 0)
		b->ids[lane] = account_id;
	uv_mutex_unlock(&b->mu);
	return rc;
}

static void account_leave(struct accounts_busy *b, size_t lane)
{
	uv_mutex_lock(&b->mu);
	b->ids[lane] = 0;
	uv_cond_broadcast(&b->cv);
	uv_mutex_unlock(&b->mu);
}

struct lane {
	size_t index;
	struct stage st;	/* its own Redis connection and consumer name */
	struct conns *conns;
	struct accounts_busy *busy;
	uv_thread_t thread;
	int started;
};

/* A fetcher killed mid-job (SIGKILL, or a Redis failure that made its unlock fail) leaves its
 * folder lock until the lock's TTL runs out, and its pending job, resumed under the same
 * consumer name, would find the folder busy all that time. A lock holds its owner's consumer
 * name and names are unique among live fetchers, so one with ours while we are between jobs
 * is a leftover: release it. Called at start and after reconnecting, never inside a job. */
static void release_own_locks(struct stage *st)
{
	static const char unlock[] = "if redis.call('get', KEYS[1]) == ARGV[1] then "
				     "return redis.call('del', KEYS[1]) else return 0 end";
	char pattern[160], cursor[32] = "0";
	snprintf(pattern, sizeof(pattern), "%s*", st->cfg.key_lock_prefix);
	do {
		redisReply *r = redisCommand(st->rc, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			return;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		const redisReply *keys = r->element[1];
		for (size_t i = 0; i < keys->elements; i++) {
			redisReply *d = redisCommand(st->rc, "EVAL %s 1 %s %s", unlock, keys->element[i]->str,
						     st->cfg.consumer);
			if (d && d->type == REDIS_REPLY_INTEGER && d->integer == 1)
				log_warn("lock=%s msg=\"released a folder lock left by this consumer's "
					 "previous life\"", keys->element[i]->str);
			freeReplyObject(d);
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
}

static int reconnect_mid_job(struct fetcher *f)
{
	struct stage *st = f->data;
	if (stage_reconnect(st) < 0)
		return -EINTR;
	f->rc = st->rc;
	return 0;
}

/* Runs the job entries e[0..n) read from stream key, acknowledging each when done. */
static void run_entries(struct lane *l, struct fetcher *f, struct stage *st, const char *key,
			const struct rentry *e, size_t n)
{
	for (size_t i = 0; i < n && !stopping; i++) {
		const char *ids[] = { e[i].id };
		const char *payload = rentry_get(&e[i], "job", NULL);
		json_t *job = payload ? json_loads(payload, 0, NULL) : NULL;
		if (!job) { /* deleted or malformed: nothing to do but drop it */
			log_error("entry=%s msg=\"job entry without valid JSON, dropped\"", e[i].id);
			rstream_ack(st->rc, key, "fetchers", ids, 1);
			continue;
		}
		json_t *aid = json_object_get(job, "account_id");
		log_debug("entry=%s stream=%s job=%s account_id=%lld msg=\"job taken\"", e[i].id, key,
			  json_string_value(json_object_get(job, "type")) ?: "?",
			  (long long)json_integer_value(aid));
		int mine = json_is_integer(aid) &&
			   account_enter(l->busy, l->index, json_integer_value(aid)) == 0;
		f->entry_id = e[i].id;
		f->jobs_key = key;
		double t0 = metrics_clock();
		enum fetch_result res = FETCH_BUSY;
		if (mine || !json_is_integer(aid))
			res = fetch_run_job(f, job);
		if (mine)
			account_leave(l->busy, l->index);
		metrics_busy(metrics_clock() - t0);
		if (res == FETCH_BUSY) {
			/* Another fetcher holds this folder, or another lane this account:
			 * queue the job again behind the others rather than spin on it. */
			const char *names[] = { "job" };
			const char *vals[] = { payload };
			if (mine || !json_is_integer(aid)) /* the lane wait was this pause */
				usleep(200 * 1000);
			if (rstream_add(st->rc, key, 1, names, vals, NULL) == 0)
				res = FETCH_DONE;
		}
		if (res == FETCH_DONE)
			rstream_ack(st->rc, key, "fetchers", ids, 1);
		json_decref(job);
	}
}

static void lane_run(void *arg)
{
	struct lane *l = arg;
	struct stage st = l->st;
	release_own_locks(&st);
	struct fetcher f = { .cfg = &st.cfg, .rc = st.rc, .stopping = &stopping,
			     .reconnect = reconnect_mid_job, .data = &st, .conns = l->conns };
	/* Backfill jobs come from a stream of their own, read only when {mp}:jobs has nothing:
	 * a poll or a push never waits behind older mail. bst keeps that stream's reading state
	 * (own pending entries first, then reclaimed, then new) on the same connection. */
	struct stage bst = st;
	rstream_group_create(st.rc, st.cfg.key_backfill, "fetchers");
	/* First syncs of folders ({mp}:jobs:first) likewise wait for polls and pushes, and
	 * backfill waits for them. */
	struct stage fst = st;
	const char *const order[] = { st.cfg.key_jobs, st.cfg.key_jobs_first, st.cfg.key_backfill };
	int idle_jobs = 0;
	while (!stopping) {
		int redelivered;
		const char *key = st.cfg.key_jobs;
		redisReply *r = NULL;
		if (idle_jobs) {
			/* Nothing in any of the three: wait on all of them at once, so that a job
			 * queued on one is taken at once (a first sync's folder jobs, queued by the
			 * writer while this lane waited on {mp}:jobs, had waited out the whole
			 * BLOCK). The reply holds one entry of each stream that had any. */
			r = rstream_read_any(st.rc, order, 3, "fetchers", st.cfg.consumer, 1, 1000);
			idle_jobs = 0;
			if (!r && !st.rc->err)
				continue; /* a second without jobs: own pending and claims again */
		} else {
			r = stage_next(&st, key, "fetchers", 1, -1, &redelivered);
			if (!r && !st.rc->err) {
				fst.rc = st.rc;
				r = stage_next(&fst, st.cfg.key_jobs_first, "fetchers", 1, -1, &redelivered);
				key = st.cfg.key_jobs_first;
			}
			if (!r && !st.rc->err) {
				bst.rc = st.rc;
				r = stage_next(&bst, st.cfg.key_backfill, "fetchers", 1, -1, &redelivered);
				key = st.cfg.key_backfill;
				idle_jobs = r == NULL;
				if (idle_jobs && !st.rc->err)
					continue;
			}
		}
		if (!r) {
			if (st.rc->err) {
				if (stage_reconnect(&st) < 0)
					break;
				release_own_locks(&st);
				rstream_group_create(st.rc, st.cfg.key_backfill, "fetchers");
				bst.rc = st.rc;
				bst.own_pending_done = 0;
				fst.rc = st.rc;
				fst.own_pending_done = 0;
			}
			f.rc = st.rc;
			continue;
		}
		struct rentry *e = NULL;
		size_t n = 0;
		if (r->type == REDIS_REPLY_ARRAY && r->elements && r->element[0]->type == REDIS_REPLY_ARRAY &&
		    r->element[0]->elements == 2 && r->element[0]->element[0]->type == REDIS_REPLY_STRING) {
			/* An XREADGROUP reply: each stream's entries, in the order of priority. */
			for (size_t o = 0; o < 3; o++)
				for (size_t k = 0; k < r->elements; k++) {
					const char *sk;
					rstream_entries_at(r, k, &sk, &e, &n);
					if (sk && strcmp(sk, order[o]) == 0)
						run_entries(l, &f, &st, order[o], e, n);
					free(e);
				}
		} else { /* XAUTOCLAIM */
			rstream_entries(r, &e, &n);
			run_entries(l, &f, &st, key, e, n);
			free(e);
		}
		freeReplyObject(r);
		conns_expire(f.conns);
	}
	l->st.rc = st.rc; /* reconnected maybe: the ones to free */
	l->st.home = st.home;
}

int main(int argc, char **argv)
{
	struct stage st;
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: mailpipe-fetcher (configured by the environment)\n");
		config_print_help(stderr);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (stage_init(&st, "fetcher", &stopping) < 0)
		return 1;
	release_own_locks(&st);
	struct fetcher f = { .cfg = &st.cfg, .rc = st.rc, .stopping = &stopping,
			     .reconnect = reconnect_mid_job, .data = &st };
	/* Push: this process also keeps IDLE watches (a thread of their own), sharing the
	 * accounts with the other fetchers by lease. */
	/* Every connection this process opens holds a lease of its account's and its host's
	 * budget, across fetchers. */
	struct budget *budget = budget_new(&st.cfg);
	struct idler *idler = st.cfg.idle ? idle_start(&st.cfg, budget) : NULL;
	/* One connection per account: a job runs on the account's watch connection or on the
	 * one its last job left, so a poll costs no login. */
	f.conns = conns_new(&st.cfg, idler, budget);
	/* Lane 0 is this thread, under the process's consumer name; lane i > 0 is
	 * "<consumer>.<i>", with a Redis connection of its own. */
	size_t nl = (size_t)st.cfg.fetcher_lanes;
	struct lane *lanes = calloc(nl, sizeof(*lanes));
	struct accounts_busy busy = { .ids = calloc(nl, sizeof(long long)), .n = nl };
	if (!lanes || !busy.ids) {
		log_error("msg=\"out of memory for %zu lanes\"", nl);
		return 1;
	}
	uv_mutex_init(&busy.mu);
	uv_cond_init(&busy.cv);
	for (size_t i = 0; i < nl; i++) {
		struct lane *l = &lanes[i];
		*l = (struct lane){ .index = i, .st = st, .conns = f.conns, .busy = &busy };
		if (i == 0)
			continue;
		l->st.rc = l->st.home = NULL; /* never lane 0's: hiredis contexts are one thread's */
		l->st.metrics = NULL;
		l->st.cfg.consumer = NULL;
		if (asprintf(&l->st.cfg.consumer, "%s.%zu", st.cfg.consumer, i) < 0 ||
		    stage_reconnect(&l->st) < 0) {
			log_error("lane=%zu msg=\"lane not started: no Redis connection\"", i);
			continue;
		}
		l->started = uv_thread_create(&l->thread, lane_run, l) == 0;
		if (!l->started)
			log_error("lane=%zu msg=\"lane thread not started\"", i);
	}
	lane_run(&lanes[0]);
	st.rc = lanes[0].st.rc;
	st.home = lanes[0].st.home;
	for (size_t i = 1; i < nl; i++) {
		if (lanes[i].started)
			uv_thread_join(&lanes[i].thread);
		redisFree(lanes[i].st.rc);
		redisFree(lanes[i].st.home);
		free(lanes[i].st.cfg.consumer);
	}
	uv_cond_destroy(&busy.cv);
	uv_mutex_destroy(&busy.mu);
	free(busy.ids);
	free(lanes);
	conns_free(f.conns);
	idle_stop(idler);
	budget_free(budget);
	log_info("msg=\"stopped\"");
	stage_release(&st);
	curl_global_cleanup();
	return 0;
}
