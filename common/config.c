/* The option table and its loader. Every tunable lives here so --help, validation and the
 * environment agree; daemons never call getenv for options themselves. */
#include "config.h"
#include "partition.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum opt_type { OPT_STR, OPT_LONG };

struct opt {
	const char *env;
	enum opt_type type;
	size_t offset;
	const char *def;
	long min, max;
	const char *help;
};

#define STR(f) OPT_STR, offsetof(struct mp_config, f)
#define NUM(f) OPT_LONG, offsetof(struct mp_config, f)

static const struct opt opts[] = {
	{ "MAILPIPE_DATABASE_URL", STR(database_url), "postgresql:///mailpipe", 0, 0,
	  "libpq URI of the database" },
	{ "MAILPIPE_REDIS_URL", STR(redis_url), "redis://127.0.0.1:6379/0", 0, 0,
	  "redis://host:port/db or unix:///path" },
	{ "MAILPIPE_REDIS_PREFIX", STR(redis_prefix), "mp", 0, 0, "hash-tagged key prefix" },
	{ "MAILPIPE_LOG", STR(log_level), "info", 0, 0, "error, warn, info or debug" },
	{ "MAILPIPE_METRICS_ADDR", STR(metrics_addr), "", 0, 0,
	  "Prometheus endpoint host:port, or host:port-port for one port per process (empty = off)" },
	{ "MAILPIPE_CONSUMER", STR(consumer), "", 0, 0,
	  "stream consumer name (default host-pid; `run` sets stage-host-slot)" },
	{ "MAILPIPE_FETCH_BATCH", NUM(fetch_batch), "500", 1, 100000, "UIDs per UID FETCH" },
	{ "MAILPIPE_FETCH_PIPELINE", NUM(fetch_pipeline), "3", 1, 64,
	  "UID FETCH commands in flight per connection" },
	{ "MAILPIPE_FETCH_TIMEOUT_S", NUM(fetch_timeout_s), "60", 1, 3600,
	  "seconds without progress (a response, or 64 KB of one) before a connection is dropped" },
	{ "MAILPIPE_FETCH_RETRIES", NUM(fetch_retries), "3", 0, 100,
	  "retries of a job after a broken connection or a busy server" },
	{ "MAILPIPE_RETRY_BASE_MS", NUM(retry_base_ms), "1000", 1, 3600000L,
	  "first retry delay, doubled per attempt, with jitter" },
	{ "MAILPIPE_RETRY_MAX_MS", NUM(retry_max_ms), "60000", 1, 86400000L,
	  "longest retry delay; a longer server hint moves the next sync instead" },
	{ "MAILPIPE_MAX_MESSAGE_BYTES", NUM(max_literal), "67108864", 65536, 2147483647L,
	  "largest message accepted from a server" },
	{ "MAILPIPE_RAW_BUDGET", NUM(raw_budget), "2000", 10, 10000000,
	  "fetchers pause while the raw stream (messages not yet committed) holds more entries; parsers while the parsed stream does" },
	{ "MAILPIPE_RAW_BUDGET_BYTES", NUM(raw_budget_bytes), "268435456", 65536, 1099511627776L,
	  "... or takes more bytes of Redis memory" },
	{ "MAILPIPE_PARSER_BATCH", NUM(parser_batch), "64", 1, 10000, "raw entries per read" },
	{ "MAILPIPE_WRITER_BATCH", NUM(writer_batch), "500", 1, 100000, "messages per transaction" },
	{ "MAILPIPE_WRITER_BATCH_MS", NUM(writer_batch_ms), "100", 1, 60000,
	  "longest wait to fill a writer batch" },
	{ "MAILPIPE_WRITER_SEARCH_CONN", NUM(writer_search_conn), "1", 0, 1,
	  "a second database connection per writer computes the search vectors of new messages while the first writes them (0: the first computes them first)" },
	{ "MAILPIPE_WRITER_READ_AHEAD", NUM(writer_read_ahead), "1", 0, 1,
	  "a writer reads its next batch and starts its search vectors while it finishes the one before (needs MAILPIPE_WRITER_SEARCH_CONN)" },
	{ "MAILPIPE_CLAIM_IDLE_MS", NUM(claim_idle_ms), "30000", 100, 86400000L,
	  "idle time after which a dead consumer's entries are reclaimed" },
	{ "MAILPIPE_LOCK_TTL_MS", NUM(lock_ttl_ms), "30000", 1000, 86400000L,
	  "folder lock lifetime, refreshed while a job runs" },
	{ "MAILPIPE_TICK_MS", NUM(tick_ms), "1000", 50, 600000, "scheduler period" },
	{ "MAILPIPE_RUN_TIMEOUT_S", NUM(run_timeout_s), "21600", 10, 31536000L,
	  "a sync run unfinished after this long is marked failed (lost jobs)" },
	{ "MAILPIPE_FETCHERS", NUM(fetchers), "2", 0, 256, "fetcher processes started by run" },
	{ "MAILPIPE_FETCHER_LANES", NUM(fetcher_lanes), "4", 1, 256,
	  "jobs one fetcher runs at once (a thread each; they share its connections and watches)" },
	{ "MAILPIPE_PARSERS", NUM(parsers), "1", 0, 256, "parser processes started by run" },
	{ "MAILPIPE_WRITERS", NUM(writers), "1", 0, 256, "writer processes started by run" },
	{ "MAILPIPE_STORE_RAW", NUM(store_raw), "1", 0, 1, "keep the raw message in messages.raw" },
	{ "MAILPIPE_IDLE", NUM(idle), "1", 0, 1,
	  "fetchers watch each account's INBOX with IDLE (accounts may opt out: --no-idle)" },
	{ "MAILPIPE_IDLE_RENEW_S", NUM(idle_renew_s), "1500", 1, 1740,
	  "IDLE is renewed (DONE, NOOP, IDLE) this often; servers drop it after 30 min" },
	{ "MAILPIPE_CONN_IDLE_S", NUM(conn_idle_s), "300", 0, 1740,
	  "a fetcher keeps an account's connection this long after its last job (0: never)" },
	{ "MAILPIPE_CONN_PARKED", NUM(conn_parked), "64", 0, 100000,
	  "most account connections a fetcher keeps between jobs (IDLE watches aside)" },
	{ "MAILPIPE_HOST_CONNECTIONS", NUM(host_connections), "200", 0, 1000000,
	  "IMAP connections to one server host across all fetchers (0: no limit); per account, "
	  "the provider's limit or --max-connections" },
	{ "MAILPIPE_BACKFILL_CHUNK", NUM(backfill_chunk), "1000", 1, 1000000,
	  "older messages fetched per backfill job (accounts with --backfill)" },
	{ "MAILPIPE_CHANGES_MAXLEN", NUM(changes_maxlen), "100000", 0, 1000000000L,
	  "entries kept (MAXLEN ~) in the change stream for apps; 0 = no change stream" },
	{ "MAILPIPE_SECRET_KEY", STR(secret_key), "", 0, 0,
	  "key of stored secrets: file:PATH or env:VAR holding 32 bytes, base64 or hex" },
	{ "MAILPIPE_SECRET_KEY_OLD", STR(secret_key_old), "", 0, 0,
	  "earlier keys (references, comma-separated) for `secrets rotate` and queued jobs" },
	{ "MAILPIPE_SECRET_CMD_TIMEOUT_S", NUM(secret_cmd_timeout_s), "10", 1, 600,
	  "longest run of a cmd: secret reference (a token broker)" },
	{ "MAILPIPE_SECRET_CMD_CACHE_S", NUM(secret_cmd_cache_s), "300", 0, 86400,
	  "a cmd: secret's output without a stated expiry is reused this long (0: never)" },
	{ "MAILPIPE_BACKOFF_BASE_MS", NUM(backoff_base_ms), "60000", 100, 86400000L,
	  "an account's wait after a failed run, doubled per failure in a row, with jitter" },
	{ "MAILPIPE_BACKOFF_MAX_MS", NUM(backoff_max_ms), "3600000", 100, 604800000L,
	  "longest wait of an account backing off" },
	{ "MAILPIPE_AUTH_RETRY_S", NUM(auth_retry_s), "21600", 1, 31536000L,
	  "an account whose login was refused is tried again after this long (or a new secret)" },
	{ "MAILPIPE_SCHEDULE_BATCH", NUM(schedule_batch), "500", 1, 100000,
	  "due accounts planned per statement; a tick plans batches for at most half a tick" },
	{ "MAILPIPE_ACCOUNT_JOBS_MAX", NUM(account_jobs_max), "4", 1, 10000,
	  "folder jobs of one account queued or running at once" },
	{ "MAILPIPE_SCHEDULER_LEASE_MS", NUM(lease_ms), "10000", 500, 3600000L,
	  "the planning scheduler's lease; another takes over this long after it dies" },
	{ "MAILPIPE_REDIS_PARTITIONS", NUM(redis_partitions), "1", 1, PARTITION_MAX,
	  "Redis partitions of the per-account work keys ({mp:0} ...); 1 = unpartitioned" },
	{ "MAILPIPE_REDIS_PARTITION_URLS", STR(redis_partition_urls), "", 0, 0,
	  "partitions on other servers: P=URL or P-Q=URL, comma-separated (others: MAILPIPE_REDIS_URL)" },
	{ "MAILPIPE_PARTITION", NUM(partition), "0", 0, PARTITION_MAX - 1,
	  "the partition this fetcher, parser or writer serves (`run` sets it per process)" },
	{ "MAILPIPE_FAULT_PARSER_ABORT", STR(fault_parser_abort), "", 0, 0,
	  "fault injection for tests: parsers crash on a message containing this text" },
	{ "MAILPIPE_FAULT_WRITER_ABORT", NUM(fault_writer_abort), "0", 0, 2,
	  "fault injection for tests: writers crash after a COMMIT (1) or after deleting its raw entries (2)" },
	{ "MAILPIPE_FAULT_WRITER_RETRY", NUM(fault_writer_retry), "0", 0, 1000,
	  "fault injection for tests: this many batches fail once after their COPY, as in a deadlock, while the next batch is read ahead" },
	{ "MAILPIPE_FAULT_WRITER_AHEAD", NUM(fault_writer_ahead), "0", 0, 1000,
	  "fault injection for tests: this many reads ahead lose the Redis connection (odd ones before reading, even ones between the entries and their raw bytes)" },
};

/* MAILPIPE_PARTITION must name a partition, and the URL map must parse: either mistake
 * would send work where no worker reads it. */
static int load_partitions(struct mp_config *cfg)
{
	if (cfg->partition >= cfg->redis_partitions) {
		fprintf(stderr, "mailpipe: MAILPIPE_PARTITION='%ld' is not a partition of "
			"MAILPIPE_REDIS_PARTITIONS=%ld (0-%ld)\n", cfg->partition, cfg->redis_partitions,
			cfg->redis_partitions - 1);
		return -EINVAL;
	}
	if (!*cfg->redis_partition_urls)
		return 0;
	cfg->partition_urls = calloc((size_t)cfg->redis_partitions, sizeof(char *));
	cfg->parts = partition_parts_new(cfg->redis_partitions);
	if (!cfg->partition_urls || !cfg->parts)
		return -ENOMEM;
	char err[256];
	if (partition_parse_urls(cfg->redis_partition_urls, cfg->redis_partitions,
				 cfg->partition_urls, err, sizeof(err)) < 0) {
		fprintf(stderr, "mailpipe: MAILPIPE_REDIS_PARTITION_URLS: %s\n", err);
		return -EINVAL;
	}
	return 0;
}

int config_load(struct mp_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct opt *o = &opts[i];
		const char *v = getenv(o->env);
		if (!v || !*v)
			v = o->def;
		void *field = (char *)cfg + o->offset;
		if (o->type == OPT_STR) {
			*(char **)field = strdup(v);
			continue;
		}
		char *end;
		errno = 0;
		long n = strtol(v, &end, 10);
		if (errno || *end || end == v || n < o->min || n > o->max) {
			fprintf(stderr, "mailpipe: %s='%s' is not a number in [%ld, %ld]\n", o->env, v,
				o->min, o->max);
			config_release(cfg);
			return -EINVAL;
		}
		*(long *)field = n;
	}
	if (!*cfg->consumer) {
		char host[64] = "host";
		gethostname(host, sizeof(host) - 1);
		free(cfg->consumer);
		if (asprintf(&cfg->consumer, "%s-%d", host, (int)getpid()) < 0)
			cfg->consumer = NULL;
	}
	if (load_partitions(cfg) < 0) {
		config_release(cfg);
		return -EINVAL;
	}
	const char *p = cfg->redis_prefix;
	const char *t = cfg->key_tag;
	partition_tag(cfg, (int)cfg->partition, cfg->key_tag, sizeof(cfg->key_tag));
	snprintf(cfg->key_jobs, sizeof(cfg->key_jobs), "%s:jobs", t);
	snprintf(cfg->key_raw, sizeof(cfg->key_raw), "%s:raw", t);
	snprintf(cfg->key_parsed, sizeof(cfg->key_parsed), "%s:parsed", t);
	snprintf(cfg->key_events, sizeof(cfg->key_events), "{%s}:events", p);
	snprintf(cfg->key_dead, sizeof(cfg->key_dead), "{%s}:dead", p);
	snprintf(cfg->key_lock_prefix, sizeof(cfg->key_lock_prefix), "%s:lock:folder:", t);
	snprintf(cfg->key_requests, sizeof(cfg->key_requests), "{%s}:requests", p);
	snprintf(cfg->key_backfill, sizeof(cfg->key_backfill), "%s:jobs:backfill", t);
	snprintf(cfg->key_changes, sizeof(cfg->key_changes), "{%s}:changes", p);
	snprintf(cfg->key_progress_prefix, sizeof(cfg->key_progress_prefix), "%s:progress:", t);
	snprintf(cfg->key_idle_targets, sizeof(cfg->key_idle_targets), "{%s}:idle:targets", p);
	snprintf(cfg->key_idle_lease_prefix, sizeof(cfg->key_idle_lease_prefix), "{%s}:idle:lease:", p);
	snprintf(cfg->key_conn_acct_prefix, sizeof(cfg->key_conn_acct_prefix), "{%s}:conn:acct:", p);
	snprintf(cfg->key_conn_host_prefix, sizeof(cfg->key_conn_host_prefix), "{%s}:conn:host:", p);
	snprintf(cfg->key_conn_want_prefix, sizeof(cfg->key_conn_want_prefix), "{%s}:conn:want:", p);
	snprintf(cfg->key_jobs_first, sizeof(cfg->key_jobs_first), "%s:jobs:first", t);
	snprintf(cfg->key_sched_lease, sizeof(cfg->key_sched_lease), "{%s}:scheduler:lease", p);
	snprintf(cfg->key_epoch, sizeof(cfg->key_epoch), "%s:epoch", t);
	snprintf(cfg->key_emailid_prefix, sizeof(cfg->key_emailid_prefix), "%s:emailid:", t);
	return 0;
}

void config_release(struct mp_config *cfg)
{
	if (cfg->partition_urls)
		for (long i = 0; i < cfg->redis_partitions; i++)
			free(cfg->partition_urls[i]);
	free(cfg->partition_urls);
	cfg->partition_urls = NULL;
	partition_parts_free(cfg->parts);
	cfg->parts = NULL;
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (opts[i].type == OPT_STR) {
			char **field = (char **)((char *)cfg + opts[i].offset);
			free(*field);
			*field = NULL;
		}
}

void config_print_help(FILE *out)
{
	fprintf(out, "Environment:\n");
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		fprintf(out, "  %-28s %s (default %s)\n", opts[i].env, opts[i].help, opts[i].def);
}
