/* Due accounts -> sync runs. An account is due when it is active or backing off, its
 * next_sync_at (interval, backoff or server hint) has passed and no run of it is in progress;
 * next_sync_at is pushed forward in the statement that selects it (common/jobs.c), under
 * SKIP LOCKED, so two schedulers never start the same run. */
#include "schedule.h"
#include "account_state.h"
#include "jobs.h"
#include "log.h"
#include "partition.h"
#include "pg.h"
#include "rstream.h"
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOST_RUN_ERROR \
	"Redis lost this run''s work in flight (restarted empty); the next sync repairs it"

/* Apps waiting for a run's end ({mp}:changes, writer/changes.c) hear of runs the scheduler
 * closes too. r holds the closed runs' ids in column col. Best effort, like the events. */
static void publish_closed(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
			   PGresult *closed, int col)
{
	int n = closed ? PQntuples(closed) : 0;
	if (cfg->changes_maxlen <= 0 || n == 0)
		return;
	for (int i = 0; i < n; i++) {
		const char *p[] = { PQgetvalue(closed, i, col) };
		PGresult *r = pg_exec(pg, "read closed run",
				      "SELECT r.run_id::text, a.name, a.id::text, r.status, r.request_id, "
				      " r.error FROM sync_runs r JOIN accounts a ON a.id = r.account_id "
				      "WHERE r.run_id = $1::bigint", 1, p);
		if (r && PQntuples(r) == 1) {
			const char *names[] = { "type", "run_id", "account", "account_id", "status",
						"request_id", "error" };
			const char *vals[7] = { "sync_finished" };
			size_t k = 1;
			for (int c = 0; c < 6; c++)
				if (!PQgetisnull(r, 0, c)) {
					names[k] = names[c + 1];
					vals[k++] = PQgetvalue(r, 0, c);
				}
			rstream_append_add_capped(rc, cfg->key_changes, cfg->changes_maxlen, k, names,
						  vals, NULL);
			rstream_collect(rc, 1);
		}
		PQclear(r);
	}
}

/* A run whose jobs were lost (Redis restarted without persistence, say) would block its
 * account forever: after run_timeout_s it is closed as failed and the account is due again. */
static int expire_stuck_runs(PGconn *pg, redisContext *rc, const struct mp_config *cfg)
{
	char secs[24];
	snprintf(secs, sizeof(secs), "%ld", cfg->run_timeout_s);
	const char *params[] = { secs };
	PGresult *r = pg_exec(
		pg, "expire stuck runs",
		"WITH stuck AS (UPDATE sync_runs SET status = 'failed', finished_at = now(), "
		"  error = coalesce(error, 'run did not finish within ' || $1 || ' s (jobs lost?)'), "
		"  error_count = error_count + 1 "
		" WHERE status = 'running' AND started_at < now() - make_interval(secs => $1::int) "
		" RETURNING run_id, account_id), "
		"folders AS (UPDATE sync_run_folders s SET status = 'failed', error = 'run timed out', "
		"  finished_at = now() FROM stuck WHERE s.run_id = stuck.run_id AND s.status = 'queued') "
		"SELECT run_id FROM stuck",
		1, params);
	if (!r)
		return -1;
	publish_closed(pg, rc, cfg, r, 0);
	PQclear(r);
	return 0;
}

static int close_lost_runs_of(PGconn *pg, redisContext *rc, const struct mp_config *cfg, int p,
			      const char *running)
{
	char key[128], epoch[64], part[24], nparts[24];
	partition_key(cfg, p, "epoch", key, sizeof(key));
	/* A partition whose server does not answer is looked at again next tick; the others,
	 * and the planning, go on without it. */
	redisContext *pc = partition_redis(cfg, rc, p);
	if (!pc || redis_epoch(pc, key, epoch, sizeof(epoch)) < 0)
		return pc == rc ? -1 : 0;
	snprintf(part, sizeof(part), "%d", p);
	snprintf(nparts, sizeof(nparts), "%ld", cfg->redis_partitions);
	const char *params[] = { epoch, running, nparts, part };
	PGresult *lost = pg_exec(
		pg, "close runs lost with Redis",
		"WITH lost AS (UPDATE sync_runs SET status = 'failed', finished_at = now(), "
		"  error = '" LOST_RUN_ERROR "', error_count = error_count + 1 "
		" WHERE run_id = ANY($2::bigint[]) AND status = 'running' AND redis_epoch <> $1 "
		" AND account_id % $3::int = $4::int "
		" RETURNING run_id, account_id, redis_epoch), "
		"folders AS (UPDATE sync_run_folders s SET status = 'failed', finished_at = now(), "
		"  error = 'Redis lost this folder''s job in flight (restarted empty)' "
		" FROM lost WHERE s.run_id = lost.run_id AND s.status = 'queued'), "
		"due AS (UPDATE accounts a SET next_sync_at = now(), last_error = '" LOST_RUN_ERROR "' "
		" FROM lost WHERE a.id = lost.account_id) "
		"SELECT l.run_id, l.account_id, a.name, l.redis_epoch FROM lost l "
		"JOIN accounts a ON a.id = l.account_id",
		4, params);
	if (!lost)
		return -1;
	for (int i = 0; i < PQntuples(lost); i++) {
		long long run = strtoll(PQgetvalue(lost, i, 0), NULL, 10);
		long long acc = strtoll(PQgetvalue(lost, i, 1), NULL, 10);
		log_warn("account=%s run=%lld run_epoch=%s redis_epoch=%s msg=\"run closed as failed: "
			 "Redis restarted empty and lost its work; the account is due now\"",
			 PQgetvalue(lost, i, 2), run, PQgetvalue(lost, i, 3), epoch);
		jobs_emit_event(rc, cfg, "run_done", run, acc, NULL);
	}
	publish_closed(pg, rc, cfg, lost, 0);
	PQclear(lost);
	return 0;
}

/* A Redis restarted empty has lost the jobs, records and cursor entries of every run in
 * flight, so those runs could only end by timing out, hours later, blocking their accounts.
 * A run records the Redis epoch it started under; one of an older epoch is closed as failed
 * at once and its account made due, and the next sync repairs it from the Postgres cursors.
 * The running runs are read before the epoch: a run created meanwhile under a newer Redis is
 * not among them, so it cannot be mistaken for a lost one. */
static int close_lost_runs(PGconn *pg, redisContext *rc, const struct mp_config *cfg)
{
	PGresult *r = pg_exec(pg, "read running runs",
			      "SELECT coalesce(array_agg(run_id), '{}')::text FROM sync_runs "
			      "WHERE status = 'running' AND redis_epoch IS NOT NULL",
			      0, NULL);
	if (!r)
		return -1;
	if (strcmp(PQgetvalue(r, 0, 0), "{}") == 0) {
		PQclear(r);
		return 0;
	}
	/* Each partition's server has its own epoch: a restart of one loses only its runs. */
	int rc_all = 0;
	for (long p = 0; p < cfg->redis_partitions; p++)
		if (close_lost_runs_of(pg, rc, cfg, (int)p, PQgetvalue(r, 0, 0)) < 0)
			rc_all = -1;
	PQclear(r);
	return rc_all;
}

int schedule_tick(PGconn *pg, redisContext *rc, const struct mp_config *cfg)
{
	int started = 0;
	if (close_lost_runs(pg, rc, cfg) < 0 || expire_stuck_runs(pg, rc, cfg) < 0)
		return -1;
	if (account_state_wake(pg, cfg) < 0)
		return -1;
	/* Bounded batches, each its own short transaction, for at most half a tick: a backlog of
	 * due accounts (a restart, 100,000 created at once) drains at the planning rate without
	 * a statement that locks them all or a tick that outlives the lease. */
	long long t0 = stage_now_ms();
	for (;;) {
		int n = jobs_start_due_runs(pg, rc, cfg, cfg->schedule_batch);
		if (n < 0)
			return -1;
		started += n;
		if (n < cfg->schedule_batch || stage_now_ms() - t0 >= cfg->tick_ms / 2)
			break;
	}
	if (started)
		log_info("runs=%d ms=%lld msg=\"scheduled syncs started\"", started, stage_now_ms() - t0);
	if (jobs_enqueue_queued(pg, rc, cfg, 0, 0) < 0)
		return -1;
	return started;
}
