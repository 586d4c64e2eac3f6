/* mailpipe-scheduler: a libuv timer that runs schedule_tick every MAILPIPE_TICK_MS, and
 * signal handles for a graceful stop. Reads configuration and loops; nothing else. */
#include "log.h"
#include "pg.h"
#include "schedule.h"
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

static volatile sig_atomic_t stopping;

struct sched {
	struct stage st;
	PGconn *pg;
	uv_timer_t timer;
	uv_signal_t sigterm, sigint;
	uint64_t pg_retry_at;	/* loop time of the next reconnect to Postgres */
	uint64_t pg_delay_ms;	/* doubles while Postgres stays away, up to 5 s */
};

static void on_tick(uv_timer_t *t)
{
	struct sched *s = t->data;
	if (!s->pg || pg_broken(s->pg)) {
		/* A Postgres that is down gets a connection attempt (and a log line) at growing
		 * intervals, not on every tick. */
		uint64_t now = uv_now(t->loop);
		if (now < s->pg_retry_at)
			return;
		PQfinish(s->pg);
		s->pg = pg_connect(s->st.cfg.database_url);
		if (!s->pg) {
			s->pg_delay_ms = s->pg_delay_ms ? s->pg_delay_ms * 2 : 250;
			if (s->pg_delay_ms > 5000)
				s->pg_delay_ms = 5000;
			s->pg_retry_at = now + s->pg_delay_ms;
			return;
		}
		if (s->pg_delay_ms)
			log_info("msg=\"reconnected to the database\"");
		s->pg_delay_ms = 0;
	}
	/* An idle connection to a Redis that restarted is only found broken by its next command:
	 * find out with a PING, before a run is created that could not be queued. */
	redisReply *pong = redisCommand(s->st.rc, "PING");
	freeReplyObject(pong);
	if ((!pong || s->st.rc->err) && stage_reconnect(&s->st) < 0)
		return;
	if (schedule_tick(s->pg, s->st.rc, &s->st.cfg) < 0 && s->st.rc->err)
		stage_reconnect(&s->st);
}

static void on_stop(uv_signal_t *h, int sig)
{
	struct sched *s = h->data;
	(void)sig;
	stopping = 1;
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
	uv_loop_t *loop = uv_default_loop();
	uv_timer_init(loop, &s.timer);
	s.timer.data = &s;
	uv_timer_start(&s.timer, on_tick, 0, (uint64_t)s.st.cfg.tick_ms);
	uv_signal_init(loop, &s.sigterm);
	uv_signal_init(loop, &s.sigint);
	s.sigterm.data = s.sigint.data = &s;
	uv_signal_start(&s.sigterm, on_stop, SIGTERM);
	uv_signal_start(&s.sigint, on_stop, SIGINT);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	PQfinish(s.pg);
	log_info("msg=\"stopped\"");
	stage_release(&s.st);
	return 0;
}
