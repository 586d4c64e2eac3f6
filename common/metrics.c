/* The metrics table, its text format and the HTTP endpoint. The values are process-wide
 * atomics, like the log level an exception to "no mutable globals": a counter must be reachable
 * from every module and thread in one line, without a context passed to each. */
#include "metrics.h"
#include "log.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

enum { S_SCHED = 1, S_FETCH = 2, S_PARSE = 4, S_WRITE = 8, S_ALL = 15 };

struct series {
	const char *name;
	const char *type; /* "counter" or "gauge" */
	unsigned stages;
	const char *labels; /* rendered label pairs, or NULL; values need no escaping */
	const char *help;   /* on the family's first series */
};

/* clang-format off: one series a line reads better than the formatter's layout */
#define COUNTER(n, st, l, h)                                                                       \
	{                                                                                          \
		"mailpipe_" n, "counter", st, l, h                                                 \
	}
#define GAUGE(n, st, l, h)                                                                         \
	{                                                                                          \
		"mailpipe_" n, "gauge", st, l, h                                                   \
	}
#define ERR(kind, st, h) COUNTER("errors_total", st, "kind=\"" kind "\"", h)
#define STREAM(key, h) GAUGE("stream_length", S_SCHED, "stream=\"" key "\"", h)
#define GROUP(n, key, grp, h) GAUGE(n, S_SCHED, "stream=\"" key "\",group=\"" grp "\"", h)

static const struct series series[MX_COUNT] = {
    [MX_FETCHED_MESSAGES] =
	COUNTER("fetched_messages_total", S_FETCH, NULL, "Messages downloaded from IMAP servers."),
    [MX_FETCHED_BYTES] = COUNTER("fetched_bytes_total", S_FETCH, NULL,
				 "Bytes of messages downloaded from IMAP servers."),
    [MX_IMAP_CONNECTIONS_JOB] =
	GAUGE("imap_connections", S_FETCH, "kind=\"job\"",
	      "IMAP connections open, by use (a fetch job, an IDLE watch, or kept for the account's next job)."),
    [MX_IMAP_CONNECTIONS_IDLE] = GAUGE("imap_connections", S_FETCH, "kind=\"idle\"", NULL),
    [MX_IMAP_CONNECTIONS_PARKED] = GAUGE("imap_connections", S_FETCH, "kind=\"parked\"", NULL),
    [MX_IMAP_RECONNECTS_JOB] =
	COUNTER("imap_reconnects_total", S_FETCH, "kind=\"job\"",
		"IMAP connections opened again: after a job's broke or was refused (job), an IDLE "
		"watch's (idle), or a kept one was found gone or showing a stale folder (kept)."),
    [MX_IMAP_RECONNECTS_IDLE] = COUNTER("imap_reconnects_total", S_FETCH, "kind=\"idle\"", NULL),
    [MX_IMAP_RECONNECTS_KEPT] = COUNTER("imap_reconnects_total", S_FETCH, "kind=\"kept\"", NULL),
    [MX_IMAP_THROTTLED] =
	COUNTER("imap_throttled_total", S_FETCH, NULL,
		"Logins and commands a server refused as busy ([THROTTLED], [LIMIT], ...)."),
    [MX_IMAP_AUTH_FAILURES] =
	COUNTER("imap_auth_failures_total", S_FETCH, NULL, "Logins refused for the credentials."),
    [MX_ERRORS_FETCH] =
	ERR("fetch", S_FETCH,
	    "Errors, by kind: fetch (a job that ended failed), "
	    "parse (a message stored with parse_error), dead_letter, rejected (the "
	    "database refused a parsed message), database and redis (connection lost)."),
    [MX_PARSED_MESSAGES] = COUNTER("parsed_messages_total", S_PARSE, NULL,
				   "Messages parsed and passed on to the writers."),
    [MX_PARSED_BYTES] =
	COUNTER("parsed_bytes_total", S_PARSE, NULL, "Raw bytes of the messages parsed."),
    [MX_ERRORS_PARSE] = ERR("parse", S_PARSE, NULL),
    [MX_ERRORS_DEAD_LETTER] = ERR("dead_letter", S_PARSE, NULL),
    [MX_WRITTEN_MESSAGES] =
	COUNTER("written_messages_total", S_WRITE, NULL,
		"Parsed messages committed to PostgreSQL (new rows and new locations "
		"of stored ones)."),
    [MX_WRITTEN_BYTES] =
	COUNTER("written_bytes_total", S_WRITE, NULL, "Raw bytes of the messages committed."),
    [MX_ERRORS_REJECTED] = ERR("rejected", S_WRITE, NULL),
    [MX_ERRORS_DATABASE] = ERR("database", S_WRITE, NULL),
    [MX_ERRORS_REDIS] = ERR("redis", S_ALL, NULL),
    [MX_STREAM_LENGTH_JOBS] =
	STREAM("jobs", "Entries in the stream (entries leave it when acknowledged)."),
    [MX_STREAM_LENGTH_BACKFILL] = STREAM("jobs:backfill", NULL),
    [MX_STREAM_LENGTH_RAW] = STREAM("raw", NULL),
    [MX_STREAM_LENGTH_PARSED] = STREAM("parsed", NULL),
    [MX_STREAM_LENGTH_REQUESTS] = STREAM("requests", NULL),
    [MX_STREAM_LENGTH_DEAD] = STREAM("dead", NULL),
    [MX_STREAM_PENDING_JOBS] = GROUP("stream_pending", "jobs", "fetchers",
				     "Entries delivered to a consumer and not yet acknowledged."),
    [MX_STREAM_PENDING_BACKFILL] = GROUP("stream_pending", "jobs:backfill", "fetchers", NULL),
    [MX_STREAM_PENDING_RAW] = GROUP("stream_pending", "raw", "parsers", NULL),
    [MX_STREAM_PENDING_PARSED] = GROUP("stream_pending", "parsed", "writers", NULL),
    [MX_STREAM_PENDING_REQUESTS] = GROUP("stream_pending", "requests", "schedulers", NULL),
    [MX_STREAM_LAG_JOBS] = GROUP("stream_lag", "jobs", "fetchers",
				 "Entries not yet delivered to the group (XINFO GROUPS lag)."),
    [MX_STREAM_LAG_BACKFILL] = GROUP("stream_lag", "jobs:backfill", "fetchers", NULL),
    [MX_STREAM_LAG_RAW] = GROUP("stream_lag", "raw", "parsers", NULL),
    [MX_STREAM_LAG_PARSED] = GROUP("stream_lag", "parsed", "writers", NULL),
    [MX_STREAM_LAG_REQUESTS] = GROUP("stream_lag", "requests", "schedulers", NULL),
    [MX_STREAM_CONSUMERS_JOBS] =
	GROUP("stream_consumers", "jobs", "fetchers",
	      "Consumers known to the group (dead ones stay until removed)."),
    [MX_STREAM_CONSUMERS_BACKFILL] = GROUP("stream_consumers", "jobs:backfill", "fetchers", NULL),
    [MX_STREAM_CONSUMERS_RAW] = GROUP("stream_consumers", "raw", "parsers", NULL),
    [MX_STREAM_CONSUMERS_PARSED] = GROUP("stream_consumers", "parsed", "writers", NULL),
    [MX_STREAM_CONSUMERS_REQUESTS] = GROUP("stream_consumers", "requests", "schedulers", NULL),
    [MX_JOBS_ENQUEUED] =
	COUNTER("jobs_enqueued_total", S_SCHED | S_WRITE, NULL,
		"Fetch jobs queued: by the scheduler (due and requested syncs, "
		"backfills) and by the writer (a run's folder jobs after its folder list)."),
    [MX_BUSY_SECONDS] =
	COUNTER("busy_seconds_total", S_ALL, NULL,
		"Seconds the stage spent in its unit of work (a scheduler tick, a fetch job, a "
		"parser or writer batch), idle waits excluded."),
};

/* clang-format on */

struct hist_def {
	const char *name;
	const char *help;
	unsigned stages;
	const double *bounds;
	size_t nb;
};

#define MH_MAX_BOUNDS 16
static const double batch_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
				      0.25,  0.5,    1,	    2.5,  5,	 10};
static const double first_bounds[] = {0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
static const double push_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define BOUNDS(b) b, sizeof(b) / sizeof(b[0])

static const struct hist_def hists[MH_COUNT] = {
    [MH_PARSER_BATCH] = {"mailpipe_parser_batch_seconds",
			 "Time to parse one read of raw messages and pass it on.", S_PARSE,
			 BOUNDS(batch_bounds)},
    [MH_WRITER_COMMIT] = {"mailpipe_writer_commit_seconds",
			  "Time to write and commit one batch of messages.", S_WRITE,
			  BOUNDS(batch_bounds)},
    [MH_FIRST_MESSAGES] = {"mailpipe_first_messages_seconds",
			   "Time from an account's first sync start to its first 50 messages "
			   "committed.",
			   S_WRITE, BOUNDS(first_bounds)},
    [MH_PUSH] = {"mailpipe_push_latency_seconds",
		 "Time from an IDLE watch's sync request (queued on a server event) to the "
		 "sync's jobs being queued.",
		 S_SCHED, BOUNDS(push_bounds)},
};

static _Atomic int64_t values[MX_COUNT];
static struct {
	_Atomic uint64_t counts[MH_MAX_BOUNDS + 1];
	_Atomic int64_t sum_ns;
} hist_values[MH_COUNT];
static unsigned own_stages = S_ALL;
static char own_stage[32] = "mailpipe", own_consumer[128];
static double start_time;

void metrics_setup(const char *stage, const char *consumer)
{
	static const char *const names[] = {"scheduler", "fetcher", "parser", "writer"};
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	snprintf(own_stage, sizeof(own_stage), "%s", stage ? stage : "mailpipe");
	snprintf(own_consumer, sizeof(own_consumer), "%s", consumer ? consumer : "");
	own_stages = S_ALL;
	for (unsigned i = 0; i < 4; i++)
		if (stage && strcmp(stage, names[i]) == 0)
			own_stages = 1u << i;
	for (size_t i = 0; i < MX_COUNT; i++)
		if (!strcmp(series[i].type, "gauge") && !strcmp(series[i].name + 9, "stream_lag"))
			atomic_store(&values[i], MX_ABSENT); /* unknown until first sampled */
}

void metrics_add(enum mx_id id, int64_t n)
{
	atomic_fetch_add_explicit(&values[id], n, memory_order_relaxed);
}

void metrics_set(enum mx_id id, int64_t v)
{
	atomic_store_explicit(&values[id], v, memory_order_relaxed);
}

void metrics_busy(double seconds)
{
	atomic_fetch_add_explicit(&values[MX_BUSY_SECONDS], (int64_t)(seconds * 1e9),
				  memory_order_relaxed);
}

void metrics_observe(enum mh_id id, double seconds)
{
	const struct hist_def *h = &hists[id];
	size_t i = 0;
	while (i < h->nb && seconds > h->bounds[i])
		i++;
	atomic_fetch_add_explicit(&hist_values[id].counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&hist_values[id].sum_ns, (int64_t)(seconds * 1e9),
				  memory_order_relaxed);
}

double metrics_clock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- text format 0.0.4 ---- */

static void write_escaped(FILE *out, const char *v, int quote)
{
	for (; *v; v++) {
		if (*v == '\\')
			fputs("\\\\", out);
		else if (*v == '\n')
			fputs("\\n", out);
		else if (*v == '"' && quote)
			fputs("\\\"", out);
		else
			fputc(*v, out);
	}
}

void metrics_write_label_value(FILE *out, const char *v)
{
	write_escaped(out, v, 1);
}

static void write_header(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s ", name);
	write_escaped(out, help ? help : "", 0);
	fprintf(out, "\n# TYPE %s %s\n", name, type);
}

void metrics_write_histogram(FILE *out, const char *name, const char *help, const double *bounds,
			     size_t nb, const uint64_t *counts, double sum)
{
	uint64_t total = 0;
	write_header(out, name, "histogram", help);
	for (size_t i = 0; i < nb; i++) {
		total += counts[i];
		fprintf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
			(unsigned long long)total);
	}
	total += counts[nb];
	fprintf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)total);
	fprintf(out, "%s_sum %.9g\n%s_count %llu\n", name, sum, name, (unsigned long long)total);
}

static const char *family_help(const char *name)
{
	for (size_t i = 0; i < MX_COUNT; i++)
		if (!strcmp(series[i].name, name) && series[i].help)
			return series[i].help;
	return NULL;
}

void metrics_render(FILE *out)
{
	write_header(out, "mailpipe_info", "gauge",
		     "Always 1: the process is up; labels name its stage and stream consumer.");
	fputs("mailpipe_info{stage=\"", out);
	metrics_write_label_value(out, own_stage);
	fputs("\",consumer=\"", out);
	metrics_write_label_value(out, own_consumer);
	fputs("\"} 1\n", out);
	write_header(out, "mailpipe_start_time_seconds", "gauge",
		     "Start time of the process since the Unix epoch, in seconds.");
	fprintf(out, "mailpipe_start_time_seconds %.3f\n", start_time);

	/* A family's series may lie apart in the table: each family is written once, whole,
	 * where its first series of this stage comes. */
	unsigned char done[MX_COUNT] = {0};
	for (size_t i = 0; i < MX_COUNT; i++) {
		if (done[i] || !(series[i].stages & own_stages))
			continue;
		write_header(out, series[i].name, series[i].type, family_help(series[i].name));
		for (size_t k = i; k < MX_COUNT; k++) {
			if (done[k] || strcmp(series[k].name, series[i].name) ||
			    !(series[k].stages & own_stages))
				continue;
			done[k] = 1;
			int64_t v = atomic_load_explicit(&values[k], memory_order_relaxed);
			if (v == MX_ABSENT)
				continue;
			if (k == MX_BUSY_SECONDS) /* nanoseconds kept, seconds shown */
				fprintf(out, "%s %.6f\n", series[k].name, (double)v / 1e9);
			else if (series[k].labels)
				fprintf(out, "%s{%s} %lld\n", series[k].name, series[k].labels,
					(long long)v);
			else
				fprintf(out, "%s %lld\n", series[k].name, (long long)v);
		}
	}
	for (size_t i = 0; i < MH_COUNT; i++) {
		const struct hist_def *h = &hists[i];
		uint64_t counts[MH_MAX_BOUNDS + 1];
		if (!(h->stages & own_stages))
			continue;
		/* Buckets are read one by one while others add: _count is their sum, so the
		 * cumulative buckets, +Inf and _count always agree. */
		for (size_t b = 0; b <= h->nb; b++)
			counts[b] =
			    atomic_load_explicit(&hist_values[i].counts[b], memory_order_relaxed);
		double sum =
		    (double)atomic_load_explicit(&hist_values[i].sum_ns, memory_order_relaxed) /
		    1e9;
		metrics_write_histogram(out, h->name, h->help, h->bounds, h->nb, counts, sum);
	}
}

/* ---- the address ---- */

static int parse_port(const char *s, const char *end, int *port)
{
	long v = 0;
	if (s == end || end - s > 5)
		return -EINVAL;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (*s - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	*port = (int)v;
	return 0;
}

int metrics_parse_addr(const char *addr, char *host, size_t hostlen, int *port_lo, int *port_hi)
{
	const char *colon, *hs = addr, *he;
	if (addr[0] == '[') {
		he = strchr(addr, ']');
		if (!he || he[1] != ':')
			return -EINVAL;
		hs = addr + 1;
		colon = he + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
			return -EINVAL; /* a bare IPv6 address needs its brackets */
		he = colon;
	}
	if ((size_t)(he - hs) >= hostlen)
		return -EINVAL;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = 0;
	const char *ps = colon + 1, *dash = strchr(ps, '-'), *pe = ps + strlen(ps);
	if (parse_port(ps, dash ? dash : pe, port_lo) < 0)
		return -EINVAL;
	*port_hi = *port_lo;
	if (dash && (parse_port(dash + 1, pe, port_hi) < 0 || *port_hi < *port_lo))
		return -EINVAL;
	return 0;
}

/* ---- the HTTP endpoint ---- */

enum { REQUEST_MAX = 4096, CLIENTS_MAX = 64, CLIENT_TIMEOUT_MS = 10000 };

struct metrics_server {
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_async_t stop;
	uv_thread_t thread;
	int clients;
	char addr[300];
};

struct client {
	struct metrics_server *ms;
	uv_tcp_t tcp;
	uv_timer_t timer; /* a client that does not finish its request in time is dropped */
	uv_write_t wr;
	int open_handles;
	int closing;
	size_t len;
	char req[REQUEST_MAX];
	char *resp;
};

static void on_client_closed(uv_handle_t *h)
{
	struct client *c = h->data;
	if (--c->open_handles > 0)
		return;
	c->ms->clients--;
	free(c->resp);
	free(c);
}

static void client_close(struct client *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	uv_close((uv_handle_t *)&c->tcp, on_client_closed);
	uv_close((uv_handle_t *)&c->timer, on_client_closed);
}

static void on_written(uv_write_t *wr, int status)
{
	(void)status;
	client_close(wr->data);
}

/* The whole response, headers and body, in one malloc'd buffer. */
static char *build_response(int found, size_t *len)
{
	char *body = NULL, *resp = NULL;
	size_t blen = 0;
	FILE *f = open_memstream(&body, &blen);
	if (!f)
		return NULL;
	if (found)
		metrics_render(f);
	else
		fputs("not found: metrics are at GET /metrics\n", f);
	if (fclose(f) != 0) {
		free(body);
		return NULL;
	}
	int n = asprintf(&resp,
			 "HTTP/1.1 %s\r\nContent-Type: text/plain; %scharset=utf-8\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 found ? "200 OK" : "404 Not Found", found ? "version=0.0.4; " : "", blen,
			 body);
	free(body);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return resp;
}

static void respond(struct client *c)
{
	size_t len = 0;
	int found =
	    !strncmp(c->req, "GET /metrics", 12) && (c->req[12] == ' ' || c->req[12] == '?');
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_timer_stop(&c->timer);
	c->resp = build_response(found, &len);
	if (!c->resp) {
		client_close(c);
		return;
	}
	uv_buf_t buf = uv_buf_init(c->resp, (unsigned)len);
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0)
		client_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct client *c = h->data;
	(void)suggested;
	*buf = uv_buf_init(c->req + c->len, (unsigned)(REQUEST_MAX - 1 - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct client *c = s->data;
	(void)buf;
	if (n < 0) {
		client_close(c);
		return;
	}
	c->len += (size_t)n;
	c->req[c->len] = 0;
	if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
		respond(c);
	else if (c->len >= REQUEST_MAX - 1)
		client_close(c); /* no request line and headers this long are ours */
}

static void on_client_timeout(uv_timer_t *t)
{
	client_close(t->data);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct metrics_server *ms = listener->data;
	if (status < 0)
		return;
	struct client *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->ms = ms;
	uv_tcp_init(&ms->loop, &c->tcp);
	uv_timer_init(&ms->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->open_handles = 2;
	ms->clients++;
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0 || ms->clients > CLIENTS_MAX) {
		client_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_client_timeout, CLIENT_TIMEOUT_MS, 0);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* The listener and the async handle belong to the server; every other handle to a client. */
static void close_any(uv_handle_t *h, void *ms)
{
	if (uv_is_closing(h))
		return;
	if (h->data == ms)
		uv_close(h, NULL);
	else
		client_close(h->data);
}

static void on_stop(uv_async_t *a)
{
	uv_walk(a->loop, close_any, a->data);
}

static void serve(void *arg)
{
	struct metrics_server *ms = arg;
	uv_run(&ms->loop, UV_RUN_DEFAULT);
}

/* A listening socket on the first free port of [lo, hi]; -1 when none could be bound. */
static int bind_first_free(const char *host, int lo, int hi, char *bound, size_t boundlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	for (int port = lo; port <= hi; port++) {
		char ps[8];
		struct addrinfo *ai = NULL;
		snprintf(ps, sizeof(ps), "%d", port);
		if (getaddrinfo(*host ? host : NULL, ps, &hints, &ai) != 0 || !ai)
			return -1;
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		int ok =
		    fd >= 0 && bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0;
		int again = errno == EADDRINUSE;
		if (ok) {
			char hs[NI_MAXHOST] = "";
			getnameinfo(ai->ai_addr, ai->ai_addrlen, hs, sizeof(hs), NULL, 0,
				    NI_NUMERICHOST);
			snprintf(bound, boundlen, strchr(hs, ':') ? "[%s]:%d" : "%s:%d", hs, port);
		}
		freeaddrinfo(ai);
		if (ok)
			return fd;
		if (fd >= 0)
			close(fd);
		if (!again)
			return -1;
	}
	errno = EADDRINUSE;
	return -1;
}

struct metrics_server *metrics_start(const char *addr, int *err)
{
	char host[256];
	int lo, hi;
	*err = 0;
	if (!addr || !*addr)
		return NULL;
	*err = -EINVAL;
	if (metrics_parse_addr(addr, host, sizeof(host), &lo, &hi) < 0) {
		log_error("addr=\"%s\" msg=\"MAILPIPE_METRICS_ADDR is not host:port or "
			  "host:port-port\"",
			  addr);
		return NULL;
	}
	struct metrics_server *ms = calloc(1, sizeof(*ms));
	if (!ms)
		return NULL;
	int fd = bind_first_free(host, lo, hi, ms->addr, sizeof(ms->addr));
	if (fd < 0) {
		log_error("addr=\"%s\" msg=\"cannot serve metrics: %s\"", addr, strerror(errno));
		free(ms);
		return NULL;
	}
	uv_loop_init(&ms->loop);
	uv_tcp_init(&ms->loop, &ms->listener);
	uv_async_init(&ms->loop, &ms->stop, on_stop);
	ms->listener.data = ms->stop.data = ms;
	/* The thread blocks every signal: SIGTERM must reach the stage's own thread, whose
	 * blocking calls it interrupts. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = uv_tcp_open(&ms->listener, fd);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&ms->listener, 64, on_connection);
	if (rc == 0)
		rc = uv_thread_create(&ms->thread, serve, ms);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		log_error("addr=%s msg=\"cannot serve metrics\"", ms->addr);
		uv_close((uv_handle_t *)&ms->listener, NULL);
		uv_close((uv_handle_t *)&ms->stop, NULL);
		uv_run(&ms->loop, UV_RUN_DEFAULT);
		uv_loop_close(&ms->loop);
		free(ms);
		return NULL;
	}
	*err = 0;
	log_info("addr=%s msg=\"serving metrics at http://%s/metrics\"", ms->addr, ms->addr);
	return ms;
}

const char *metrics_server_addr(const struct metrics_server *ms)
{
	return ms->addr;
}

void metrics_stop(struct metrics_server *ms)
{
	if (!ms)
		return;
	uv_async_send(&ms->stop);
	uv_thread_join(&ms->thread);
	uv_loop_close(&ms->loop);
	free(ms);
}
