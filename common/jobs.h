/* Sync runs and the jobs they put on {mp}:jobs. Shared by the CLI (sync now), the scheduler
 * (due accounts) and the writer (folders listed -> folder jobs), so a run starts one way. */
#ifndef MP_JOBS_H
#define MP_JOBS_H

#include "config.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

/* Creates a sync_runs row for the account and enqueues its list_folders job. folders (may be
 * NULL/0) restricts this run to those folder names. Returns the run id (>0) or <0. */
long long jobs_start_run(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
			 long long account_id, const char *const *folders, size_t nfolders);

/* Enqueues a sync_folder job for every queued, not yet enqueued folder of run_id (every run
 * when run_id is 0) and marks them enqueued. A crash between XADD and COMMIT enqueues a job
 * twice, which is harmless: jobs are idempotent. Returns the number enqueued or <0. */
int jobs_enqueue_queued(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
			long long run_id);

/* Closes the run when no folder of it is still queued: status ok/failed, totals summed from
 * sync_run_folders. Returns 1 when the run is (now or already) finished, 0 when not, <0. */
int jobs_finish_run_if_done(PGconn *pg, long long run_id);

/* XADD {mp}:events type=... run_id=... (best effort: events are notifications, and the
 * database remains the truth for `sync --wait`). */
void jobs_emit_event(redisContext *rc, const struct mp_config *cfg, const char *type,
		     long long run_id, long long account_id, const char *detail_json);

#endif
