/* Due accounts -> sync runs. An account is due when its interval (0 = manual only) has
 * passed and no run of it is in progress; next_sync_at is pushed forward in the same
 * statement that selects it, under SKIP LOCKED, so two schedulers never start the same run. */
#include "schedule.h"
#include "jobs.h"
#include "log.h"
#include "pg.h"

#include <stdlib.h>

int schedule_tick(PGconn *pg, redisContext *rc, const struct mp_config *cfg)
{
	int started = 0;
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
