/* Due accounts -> sync runs. An account is due when its interval (0 = manual only) has
 * passed and no run of it is in progress; next_sync_at is pushed forward in the same
 * statement that selects it, under SKIP LOCKED, so two schedulers never start the same run. */
#include "schedule.h"
#include "jobs.h"
#include "log.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>

/* A run whose jobs were lost (Redis restarted without persistence, say) would block its
 * account forever: after run_timeout_s it is closed as failed and the account is due again. */
static int expire_stuck_runs(PGconn *pg, const struct mp_config *cfg)
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
		" RETURNING run_id, account_id) "
		"UPDATE sync_run_folders s SET status = 'failed', error = 'run timed out', finished_at = now() "
		"FROM stuck WHERE s.run_id = stuck.run_id AND s.status = 'queued' RETURNING s.run_id",
		1, params);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

int schedule_tick(PGconn *pg, redisContext *rc, const struct mp_config *cfg)
{
	int started = 0;
	if (expire_stuck_runs(pg, cfg) < 0)
		return -1;
	PGresult *r = pg_exec(
		pg, "select due accounts",
		"UPDATE accounts a SET next_sync_at = now() + make_interval(secs => a.sync_interval_s) "
		"WHERE a.id IN (SELECT id FROM accounts d WHERE d.state = 'active' "
		"  AND d.sync_interval_s > 0 AND d.next_sync_at <= now() "
		"  AND NOT EXISTS (SELECT 1 FROM sync_runs r WHERE r.account_id = d.id "
		"    AND r.status = 'running') "
		"  ORDER BY d.next_sync_at LIMIT 100 FOR UPDATE SKIP LOCKED) "
		"RETURNING a.id, a.name",
		0, NULL);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		long long id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		long long run = jobs_start_run(pg, rc, cfg, id, NULL, 0);
		if (run > 0) {
			log_info("account=%s run=%lld msg=\"scheduled sync started\"", PQgetvalue(r, i, 1), run);
			started++;
		}
	}
	PQclear(r);
	if (jobs_enqueue_queued(pg, rc, cfg, 0) < 0)
		return -1;
	return started;
}
