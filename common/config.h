/* Process configuration: one table of options (name, env var, type, default, bounds) from which
 * parsing, validation and --help come. Owns the values; does not read accounts (Postgres does). */
#ifndef MP_CONFIG_H
#define MP_CONFIG_H

#include <stdio.h>

struct mp_config {
	char *database_url;
	char *redis_url;
	char *redis_prefix;
	char *log_level;
	char *metrics_addr;	/* host:port or host:port-port; empty = no metrics endpoint */
	char *consumer;		/* stream consumer name; stable per supervised slot */
	long fetch_batch;	/* UIDs per UID FETCH command */
	long fetch_pipeline;	/* UID FETCH commands in flight */
	long fetch_timeout_s;	/* no progress from the server for this long = dead connection */
	long fetch_retries;	/* attempts after the first, per job, for transient failures */
	long retry_base_ms;	/* first backoff (doubled per attempt, jittered) */
	long retry_max_ms;	/* longest backoff; a server hint above it ends the job */
	long max_literal;	/* largest message accepted from a server, bytes */
	long raw_budget;	/* fetchers pause while {mp}:raw holds more entries than this */
	long raw_budget_bytes;	/* ... or takes more bytes of Redis memory than this */
	long parser_batch;
	long writer_batch;
	long writer_batch_ms;
	long writer_read_ahead;	/* read the next batch while finishing one (writer/batch.c) */
	long writer_search_conn;	/* a second connection per writer computes search vectors */
	long claim_idle_ms;	/* a pending entry idle this long belongs to a dead consumer */
	long lock_ttl_ms;
	long tick_ms;		/* scheduler period */
	long run_timeout_s;	/* a run still going after this long is failed as stuck */
	long fetchers, parsers, writers; /* processes started by `mailpipe run` */
	long fetcher_lanes;	/* jobs one fetcher runs at once, one thread each (fetcher/main.c) */
	long store_raw;		/* keep raw bytes in messages.raw */
	char *fault_parser_abort; /* tests only: parsers abort() on raw containing this */
	long fault_writer_abort;	/* tests only: writers abort() after COMMIT (1) or after the
				 * raw deletes (2), before acknowledging */
	long fault_writer_retry;	/* tests only: batches failed once (as a deadlock) after their
				 * COPY while the next is read ahead */
	long fault_writer_ahead;	/* tests only: reads ahead that lose the Redis connection */
	long idle;		/* fetchers keep IDLE connections on the accounts' INBOX */
	long idle_renew_s;	/* IDLE is ended and restarted (with a NOOP) this often */
	long backfill_chunk;	/* UIDs per backfill job */
	long conn_idle_s;	/* a fetcher's parked account connection lives this long unused */
	long conn_parked;	/* ... and it keeps at most this many */
	long host_connections;	/* connections to one server host across fetchers (0: no limit) */
	long changes_maxlen;	/* MAXLEN ~ of {mp}:changes; 0 = not published */
	char *secret_key;	/* reference to the key of stored secrets ("" = none) */
	char *secret_key_old;	/* references to earlier keys, comma-separated */
	long secret_cmd_timeout_s; /* a cmd: reference is killed after this long */
	long secret_cmd_cache_s;   /* ... and its plain output reused this long */
	/* Account states and fair scheduling (common/account_state.c, scheduler/). */
	long backoff_base_ms;	/* an account's first backoff after a failed run, doubled per failure */
	long backoff_max_ms;	/* ... capped here */
	long auth_retry_s;	/* an auth_failed account is tried again after this long */
	long schedule_batch;	/* due accounts planned per statement */
	long account_jobs_max;	/* folder jobs of one account in flight at once */
	long lease_ms;		/* the planning scheduler's lease in Redis */
	/* Redis partitions (common/partition.c): per-account work keys under {mp:p}. */
	long redis_partitions;	/* N; 1 = the unpartitioned keys {mp}:... */
	char *redis_partition_urls; /* "0=redis://...,2-3=redis://...": servers other than home */
	long partition;		/* the partition a fetcher, parser or writer serves */
	char **partition_urls;	/* parsed: [N], NULL = MAILPIPE_REDIS_URL (the home server) */
	struct partition_parts *parts; /* connections to other servers; NULL when none can exist */

	/* Derived: stream and key names with the {prefix} hash tag. Per-account work keys carry
	 * the tag of this process's partition ({mp:p} when partitioned); the rest stay on the
	 * home server under {mp}. */
	char key_tag[80];		/* this partition's hash tag */
	char key_jobs[96], key_raw[96], key_parsed[96], key_events[96], key_dead[96];
	char key_lock_prefix[96];
	char key_backfill[96];		/* low-priority jobs: older mail below a first-sync window */
	char key_conn_acct_prefix[96];	/* connection leases per account (budget.c) */
	char key_conn_host_prefix[96];	/* ... per server host */
	char key_conn_want_prefix[96];	/* an account at its limit: parked connections go */
	char key_requests[96];		/* sync requests (apps, IDLE watches) -> scheduler */
	char key_changes[96];		/* committed changes for apps (writer/changes.c) */
	char key_progress_prefix[96];	/* + run id: hash of per-folder counters of a running sync */
	char key_idle_targets[96];	/* the accounts to watch, published by the scheduler */
	char key_idle_lease_prefix[96];	/* one fetcher watches an account: its lease */
	char key_jobs_first[96];	/* first syncs of folders, read after {mp}:jobs */
	char key_sched_lease[96];	/* which scheduler plans (scheduler/lease.c) */
	char key_epoch[96];		/* this partition's server's epoch (rstream.h redis_epoch) */
	char key_emailid_prefix[96];	/* + account: server email ids -> message ids */
};

/* Fills cfg from defaults then the environment. Returns 0, or -EINVAL after printing one line
 * naming the variable and the accepted range. Caller releases with config_release. */
int config_load(struct mp_config *cfg);
void config_release(struct mp_config *cfg);
/* Prints the option table (env var, default, meaning) for --help. */
void config_print_help(FILE *out);

#endif
