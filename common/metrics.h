/* Prometheus metrics of one process: a fixed table of counters, gauges and histograms updated
 * with C11 atomics from any thread, and the text format 0.0.4 served over HTTP by a libuv TCP
 * server on a thread of its own. Does not decide what is counted where; the stages do. */
#ifndef MP_METRICS_H
#define MP_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Every series (a metric name with one fixed set of label values). A process exposes the
 * series of its own stage (metrics_setup) and those every stage shares. */
enum mx_id {
	/* fetcher */
	MX_FETCHED_MESSAGES,
	MX_FETCHED_BYTES,
	MX_IMAP_CONNECTIONS_JOB,
	MX_IMAP_CONNECTIONS_IDLE,
	MX_IMAP_CONNECTIONS_PARKED,
	MX_IMAP_RECONNECTS_JOB,
	MX_IMAP_RECONNECTS_IDLE,
	MX_IMAP_RECONNECTS_KEPT,
	MX_IMAP_THROTTLED,
	MX_IMAP_AUTH_FAILURES,
	MX_ERRORS_FETCH,
	/* parser */
	MX_PARSED_MESSAGES,
	MX_PARSED_BYTES,
	MX_ERRORS_PARSE,
	MX_ERRORS_DEAD_LETTER,
	/* writer */
	MX_WRITTEN_MESSAGES,
	MX_WRITTEN_BYTES,
	MX_ERRORS_REJECTED,
	MX_ERRORS_DATABASE,
	/* every stage */
	MX_ERRORS_REDIS,
	/* scheduler: the streams, sampled with XLEN and XINFO GROUPS */
	MX_STREAM_LENGTH_JOBS,
	MX_STREAM_LENGTH_BACKFILL,
	MX_STREAM_LENGTH_RAW,
	MX_STREAM_LENGTH_PARSED,
	MX_STREAM_LENGTH_REQUESTS,
	MX_STREAM_LENGTH_DEAD,
	MX_STREAM_PENDING_JOBS,
	MX_STREAM_PENDING_BACKFILL,
	MX_STREAM_PENDING_RAW,
	MX_STREAM_PENDING_PARSED,
	MX_STREAM_PENDING_REQUESTS,
	MX_STREAM_LAG_JOBS,
	MX_STREAM_LAG_BACKFILL,
	MX_STREAM_LAG_RAW,
	MX_STREAM_LAG_PARSED,
	MX_STREAM_LAG_REQUESTS,
	MX_STREAM_CONSUMERS_JOBS,
	MX_STREAM_CONSUMERS_BACKFILL,
	MX_STREAM_CONSUMERS_RAW,
	MX_STREAM_CONSUMERS_PARSED,
	MX_STREAM_CONSUMERS_REQUESTS,
	MX_JOBS_ENQUEUED, /* scheduler and writer */
	MX_BUSY_SECONDS,  /* every stage: time in its unit of work (kept in ns, shown in s) */
	MX_COUNT
};

/* The stream series of one stream, in the order of the MX_STREAM_* groups above. */
enum mx_stream { MXS_JOBS, MXS_BACKFILL, MXS_RAW, MXS_PARSED, MXS_REQUESTS, MXS_COUNT };

enum mh_id {
	MH_PARSER_BATCH,   /* one read of {mp}:raw parsed and passed on */
	MH_WRITER_COMMIT,  /* one batch of messages written and committed */
	MH_FIRST_MESSAGES, /* an account's first sync start to its 50th committed message */
	MH_PUSH,	   /* an IDLE watch's sync request to its jobs being enqueued */
	MH_COUNT
};

/* A gauge set to this is not exposed (a value Redis could not tell, e.g. lag). */
#define MX_ABSENT INT64_MIN

/* Names the process (stage: "fetcher", ...; consumer: its stream consumer name) for the
 * mailpipe_info series and chooses which series it exposes. Once, before threads start. */
void metrics_setup(const char *stage, const char *consumer);

/* Safe from any thread, never block. */
void metrics_add(enum mx_id id, int64_t n);
void metrics_set(enum mx_id id, int64_t v);
/* Adds seconds to MX_BUSY_SECONDS, a counter of work time (e.g. a stage loop's metrics_clock()
 * difference). */
void metrics_busy(double seconds);
void metrics_observe(enum mh_id id, double seconds);

/* Seconds since an earlier metrics_clock(), for metrics_observe. */
double metrics_clock(void);

/* Writes the whole exposition (text format 0.0.4) to out. */
void metrics_render(FILE *out);

/* The pieces of the format, for the unit test. A label value with \, " or newline escaped. */
void metrics_write_label_value(FILE *out, const char *v);
/* A histogram from per-bucket (not cumulative) counts: counts[nb] is the count above the last
 * bound. Writes the cumulative buckets, +Inf, _sum and _count. */
void metrics_write_histogram(FILE *out, const char *name, const char *help, const double *bounds,
			     size_t nb, const uint64_t *counts, double sum);

/* host:port or host:port-port (a range: the first free port is taken); [v6]:port works too.
 * 0, or -EINVAL. host may be empty ("" = every interface). */
int metrics_parse_addr(const char *addr, char *host, size_t hostlen, int *port_lo, int *port_hi);

struct metrics_server;
/* Binds addr (the first free port of a range), logs the address taken and serves GET /metrics
 * on a thread of its own. NULL with *err 0 when addr is empty (metrics off); NULL with *err <0
 * after logging one line naming addr when nothing could be bound. Caller stops it with
 * metrics_stop. */
struct metrics_server *metrics_start(const char *addr, int *err);
/* The address actually bound, host:port. */
const char *metrics_server_addr(const struct metrics_server *ms);
/* Stops serving and joins the thread; NULL does nothing. */
void metrics_stop(struct metrics_server *ms);

#endif
