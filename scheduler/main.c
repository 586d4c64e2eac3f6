/* mailpipe-scheduler: a libuv timer that runs schedule_tick every MAILPIPE_TICK_MS, and
 * signal handles for a graceful stop. Reads configuration and loops; nothing else. */
#include "jobs.h"
#include "lease.h"
#include "log.h"
#include "pg.h"
#include "requests.h"
#include "schedule.h"
#include "stage.h"
#include "streams.h"

#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

static volatile sig_atomic_t stopping;

/* When a server is away, the next connection attempt (and its log line) waits 250 ms,
 * doubling up to 5 s, rather than coming on every tick. */
struct backoff {
	uint64_t at;	/* loop time of the next attempt */
	uint64_t delay;	/* 0 while connected */
};

static void backoff_failed(struct backoff *b, uint64_t now)
{
	b->delay = b->delay ? b->delay * 2 : 250;
	if (b->delay > 5000)
		b->delay = 5000;
	b->at = now + b->delay;
}

struct sched {
	struct stage st;
	PGconn *pg;
	uv_timer_t timer;
	uv_signal_t sigterm, sigint;
	struct backoff pg_retry, redis_retry;
	uint64_t sampled_at;	/* loop time of the last stream sample for the metrics */
	struct lease lease;	/* only its holder plans; every scheduler serves requests */
};

/* Both servers are reconnected one attempt per tick, never in a loop inside the callback: the
 * loop must stay free to serve SIGTERM while a server is away. 0 when both are connected. */
static int reconnect(struct sched *s, uint64_t now)
{
	if (!s->pg || pg_broken(s->pg)) {
		if (now < s->pg_retry.at)
			return -1;
		PQfinish(s->pg);
		s->pg = pg_connect(s->st.cfg.database_url);
		if (!s->pg) {
			backoff_failed(&s->pg_retry, now);
			return -1;
		}
		if (s->pg_retry.delay)
			log_info("msg=\"reconnected to the database\"");
		s->pg_retry.delay = 0;
	}
	/* An idle connection to a Redis that restarted is found broken only by its next
	 * command: a PING finds out before a run is created whose job could not be queued. */
	if (s->st.rc) {
		redisReply *pong = redisCommand(s->st.rc, "PING");
		freeReplyObject(pong);
		if (!pong || s->st.rc->err) {
			redisFree(s->st.rc);
			s->st.rc = NULL;
		}
	}
	if (!s->st.rc) {
		if (now < s->redis_retry.at)
			return -1;
		if (stage_reconnect_once(&s->st) < 0) {
			backoff_failed(&s->redis_retry, now);
			return -1;
		}
		if (s->redis_retry.delay)
			log_info("msg=\"reconnected to redis\"");
		s->redis_retry.delay = 0;
	}
	return 0;
}

static void tick(uv_timer_t *t)
{
	struct sched *s = t->data;
	if (reconnect(s, uv_now(t->loop)) < 0)
		return;
	int held = lease_hold(&s->lease, s->st.rc, &s->st.cfg);
	if (held < 0 && s->st.rc->err) {
		redisFree(s->st.rc);
		s->st.rc = NULL;
		return;
	}
	/* Only the lease holder plans; every scheduler samples the streams for its metrics. */
	if (held == 1) {
		if (schedule_tick(s->pg, s->st.rc, &s->st.cfg) < 0 && s->st.rc->err) {
			redisFree(s->st.rc);
			s->st.rc = NULL;
			return;
		}
		if (s->st.cfg.idle)
			requests_publish_targets(s->pg, s->st.rc, &s->st.cfg);
		jobs_enqueue_backfill(s->pg, s->st.rc, &s->st.cfg);
	}
	/* At most once a second, and only when someone may scrape. */
	if (s->st.metrics && uv_now(t->loop) - s->sampled_at >= 1000) {
		streams_sample(s->st.rc, &s->st.cfg);
		s->sampled_at = uv_now(t->loop);
	}
}

static void on_tick(uv_timer_t *t)
{
	double t0 = metrics_clock();
	tick(t);
	metrics_busy(metrics_clock() - t0);
}

static void on_stop(uv_signal_t *h, int sig)
{
	struct sched *s = h->data;
	(void)sig;
	stopping = 1;
	/* Handed over at once rather than when the lease runs out. */
	lease_release(&s->lease, s->st.rc, &s->st.cfg);
	uv_timer_stop(&s->timer);
	uv_close((uv_handle_t *)&s->timer, NULL);
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	uv_close((uv_handle_t *)&s->sigint, NULL);
}

int main(int argc, char **argv)
{
	struct sched s = { 0 };
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: mailpipe-scheduler (configured by the environment)\n");
		config_print_help(stderr);
		return 2;
	}
	if (stage_init(&s.st, "scheduler", &stopping) < 0)
		return 1;
	lease_init(&s.lease, &s.st.cfg);
	if (s.st.cfg.lease_ms < 2 * s.st.cfg.tick_ms)
		log_warn("lease_ms=%ld tick_ms=%ld msg=\"the planning lease is shorter than two ticks: "
			 "schedulers may take it from each other\"", s.st.cfg.lease_ms, s.st.cfg.tick_ms);
	uv_loop_t *loop = uv_default_loop();
	uv_timer_init(loop, &s.timer);
	s.timer.data = &s;
	uv_timer_start(&s.timer, on_tick, 0, (uint64_t)s.st.cfg.tick_ms);
	uv_signal_init(loop, &s.sigterm);
	uv_signal_init(loop, &s.sigint);
	s.sigterm.data = s.sigint.data = &s;
	uv_signal_start(&s.sigterm, on_stop, SIGTERM);
	uv_signal_start(&s.sigint, on_stop, SIGINT);
	/* Sync requests (apps, IDLE watches) are served at once by a thread of their own. */
	struct requests *rq = requests_start(&s.st.cfg);
	uv_run(loop, UV_RUN_DEFAULT);
	requests_stop(rq);
	uv_loop_close(loop);
	PQfinish(s.pg);
	log_info("msg=\"stopped\"");
	stage_release(&s.st);
	return 0;
}
