/* mailpipe run: starts the scheduler, fetchers, parsers and writers of this host as child
 * processes (libuv spawn), restarts one that dies (with backoff when it keeps dying), and on
 * SIGTERM/SIGINT asks all to drain and stop, killing what has not stopped after 30 s. Each
 * slot keeps its consumer name across restarts, so a restarted stage resumes its own pending
 * entries at once instead of waiting for them to be reclaimed. */
#include "cli.h"
#include "log.h"
#include "metrics.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

struct child {
	struct supervisor *sv;
	char stage[16];
	int slot;
	char path[PATH_MAX + 32];
	char consumer[128];
	char metrics_env[320];	/* MAILPIPE_METRICS_ADDR=... for this slot, or empty */
	char partition_env[48];	/* MAILPIPE_PARTITION=... for a worker, or empty */
	uv_process_t proc;
	uv_timer_t restart;
	int running;
	unsigned fails;		/* quick deaths in a row, for backoff */
	uint64_t started_ms;
};

struct supervisor {
	uv_loop_t *loop;
	struct child *children;
	size_t n;
	int stopping;
	uv_signal_t sigterm, sigint;
	uv_timer_t kill_timer;
};

static void spawn_child(struct child *ch);

static void on_restart(uv_timer_t *t)
{
	struct child *ch = t->data;
	if (!ch->sv->stopping)
		spawn_child(ch);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct child *ch = p->data;
	struct supervisor *sv = ch->sv;
	ch->running = 0;
	uv_close((uv_handle_t *)p, NULL);
	if (sv->stopping) {
		size_t alive = 0;
		for (size_t i = 0; i < sv->n; i++)
			alive += sv->children[i].running;
		if (!alive) {
			uv_timer_stop(&sv->kill_timer);
			uv_close((uv_handle_t *)&sv->kill_timer, NULL);
			for (size_t i = 0; i < sv->n; i++)
				uv_close((uv_handle_t *)&sv->children[i].restart, NULL);
			uv_close((uv_handle_t *)&sv->sigterm, NULL);
			uv_close((uv_handle_t *)&sv->sigint, NULL);
		}
		return;
	}
	uint64_t lived = uv_now(sv->loop) - ch->started_ms;
	ch->fails = lived < 10000 ? ch->fails + 1 : 0;
	uint64_t delay = ch->fails ? 500u << (ch->fails > 6 ? 6 : ch->fails) : 200;
	log_warn("child=%s slot=%d status=%lld signal=%d msg=\"stage exited, restarting in %llums\"",
		 ch->stage, ch->slot, (long long)status, sig, (unsigned long long)delay);
	uv_timer_start(&ch->restart, on_restart, delay, 0);
}

static void spawn_child(struct child *ch)
{
	char *args[] = { ch->path, NULL };
	char consumer_env[200];
	extern char **environ;
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 4, sizeof(*env));
	if (!env)
		return;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "MAILPIPE_CONSUMER=", 18) != 0 &&
		    (!*ch->metrics_env || strncmp(environ[i], "MAILPIPE_METRICS_ADDR=", 22) != 0) &&
		    (!*ch->partition_env || strncmp(environ[i], "MAILPIPE_PARTITION=", 19) != 0))
			env[k++] = environ[i];
	snprintf(consumer_env, sizeof(consumer_env), "MAILPIPE_CONSUMER=%s", ch->consumer);
	env[k++] = consumer_env;
	if (*ch->metrics_env)
		env[k++] = ch->metrics_env;
	if (*ch->partition_env)
		env[k++] = ch->partition_env;
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE }, { .flags = UV_INHERIT_FD, .data.fd = 1 },
		{ .flags = UV_INHERIT_FD, .data.fd = 2 },
	};
	uv_process_options_t o = { .exit_cb = on_exit_cb, .file = ch->path, .args = args,
				   .env = env, .stdio_count = 3, .stdio = stdio };
	ch->proc.data = ch;
	int rc = uv_spawn(ch->sv->loop, &ch->proc, &o);
	free(env);
	if (rc < 0) {
		log_error("child=%s path=%s msg=\"cannot start: %s\"", ch->stage, ch->path, uv_strerror(rc));
		uv_close((uv_handle_t *)&ch->proc, NULL);
		uv_timer_start(&ch->restart, on_restart, 5000, 0);
		return;
	}
	ch->running = 1;
	ch->started_ms = uv_now(ch->sv->loop);
	log_info("child=%s slot=%d pid=%d msg=\"started\"", ch->stage, ch->slot, ch->proc.pid);
}

static void on_kill_timer(uv_timer_t *t)
{
	struct supervisor *sv = t->data;
	for (size_t i = 0; i < sv->n; i++)
		if (sv->children[i].running) {
			log_warn("child=%s msg=\"did not stop in time, killing\"", sv->children[i].stage);
			uv_process_kill(&sv->children[i].proc, SIGKILL);
		}
}

static void on_signal(uv_signal_t *h, int sig)
{
	struct supervisor *sv = h->data;
	if (sv->stopping)
		return;
	sv->stopping = 1;
	log_info("signal=%d msg=\"stopping all stages\"", sig);
	size_t alive = 0;
	for (size_t i = 0; i < sv->n; i++) {
		uv_timer_stop(&sv->children[i].restart);
		if (sv->children[i].running) {
			uv_process_kill(&sv->children[i].proc, SIGTERM);
			alive++;
		}
	}
	uv_timer_start(&sv->kill_timer, on_kill_timer, 30000, 0);
	if (!alive) {
		uv_close((uv_handle_t *)&sv->kill_timer, NULL);
		for (size_t i = 0; i < sv->n; i++)
			uv_close((uv_handle_t *)&sv->children[i].restart, NULL);
		uv_close((uv_handle_t *)&sv->sigterm, NULL);
		uv_close((uv_handle_t *)&sv->sigint, NULL);
	}
}

int cmd_run(struct cli *c, int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		cli_usage();
		return 2;
	}
	/* Refuse to start stages against an unmigrated database: they would only crash-loop. */
	if (!cli_db(c, 1))
		return 1;
	char self[PATH_MAX - 64];
	ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (l <= 0) {
		fprintf(stderr, "mailpipe: cannot find my own binary\n");
		return 1;
	}
	self[l] = 0;
	char *slash = strrchr(self, '/');
	*slash = 0;
	char host[64] = "host";
	gethostname(host, sizeof(host) - 1);

	const struct {
		const char *stage;
		long count;
	} plan[] = { { "scheduler", 1 },
		     { "fetcher", c->cfg.fetchers },
		     { "parser", c->cfg.parsers },
		     { "writer", c->cfg.writers } };
	/* Partitioned Redis: every partition gets at least one worker of each stage, worker s
	 * serving partition s mod N (a stage configured at 0 stays at 0). */
	long nparts = c->cfg.redis_partitions;
	long count[4];
	for (size_t i = 0; i < 4; i++)
		count[i] = i > 0 && plan[i].count > 0 && plan[i].count < nparts ? nparts : plan[i].count;
	size_t total = 0;
	for (size_t i = 0; i < 4; i++)
		total += (size_t)count[i];
	/* Metrics: every stage needs a port of its own, so the address must be a range. */
	char mhost[256] = "";
	int mlo = 0, mhi = 0;
	const char *maddr = c->cfg.metrics_addr;
	if (*maddr && metrics_parse_addr(maddr, mhost, sizeof(mhost), &mlo, &mhi) < 0) {
		fprintf(stderr, "mailpipe: MAILPIPE_METRICS_ADDR='%s' is not host:port or host:port-port\n",
			maddr);
		return 1;
	}
	if (*maddr && (size_t)(mhi - mlo + 1) < total) {
		fprintf(stderr, "mailpipe: MAILPIPE_METRICS_ADDR='%s' has %d port%s for %zu stages: give a "
			"range of at least %zu, e.g. %s:%d-%zu\n", maddr, mhi - mlo + 1,
			mhi > mlo ? "s" : "", total, total, mhost, mlo, (size_t)mlo + total - 1);
		return 1;
	}
	struct supervisor sv = { .loop = uv_default_loop() };
	sv.children = calloc(total, sizeof(*sv.children));
	if (!sv.children)
		return 1;
	for (size_t i = 0; i < 4; i++)
		for (long s = 0; s < count[i]; s++) {
			struct child *ch = &sv.children[sv.n++];
			ch->sv = &sv;
			ch->slot = (int)s;
			snprintf(ch->stage, sizeof(ch->stage), "%s", plan[i].stage);
			snprintf(ch->path, sizeof(ch->path), "%s/mailpipe-%s", self, plan[i].stage);
			snprintf(ch->consumer, sizeof(ch->consumer), "%s-%s-%ld", plan[i].stage, host, s);
			if (i > 0 && nparts > 1)
				snprintf(ch->partition_env, sizeof(ch->partition_env),
					 "MAILPIPE_PARTITION=%ld", s % nparts);
			/* Each slot prefers a port of its own, the same across restarts; one taken by
			 * something else sends it on to the next free one of the range. */
			if (*maddr)
				snprintf(ch->metrics_env, sizeof(ch->metrics_env),
					 strchr(mhost, ':') ? "MAILPIPE_METRICS_ADDR=[%s]:%d-%d"
							    : "MAILPIPE_METRICS_ADDR=%s:%d-%d",
					 mhost, mlo + (int)(sv.n - 1), mhi);
			uv_timer_init(sv.loop, &ch->restart);
			ch->restart.data = ch;
			if (access(ch->path, X_OK) != 0) {
				fprintf(stderr, "mailpipe: %s is missing or not executable\n", ch->path);
				return 1;
			}
		}
	uv_signal_init(sv.loop, &sv.sigterm);
	uv_signal_init(sv.loop, &sv.sigint);
	uv_timer_init(sv.loop, &sv.kill_timer);
	sv.sigterm.data = sv.sigint.data = sv.kill_timer.data = &sv;
	uv_signal_start(&sv.sigterm, on_signal, SIGTERM);
	uv_signal_start(&sv.sigint, on_signal, SIGINT);
	PQfinish(c->pg); /* the stages have their own connections */
	c->pg = NULL;
	for (size_t i = 0; i < sv.n; i++)
		spawn_child(&sv.children[i]);
	uv_run(sv.loop, UV_RUN_DEFAULT);
	uv_loop_close(sv.loop);
	free(sv.children);
	log_info("msg=\"all stages stopped\"");
	return 0;
}
