/* Sync runs and the jobs they put on {mp}:jobs. Shared by the CLI (sync now), the scheduler
 * (due accounts) and the writer (folders listed -> folder jobs), so a run starts one way. */
#ifndef MP_JOBS_H
#define MP_JOBS_H

#include "config.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

/* The scheduler's plan: up to limit due accounts (active or backoff, next_sync_at passed, no
 * run in progress; oldest first, by index) each get a run and a list_folders job, and their
 * next_sync_at moves to now + interval + up to a tenth of it at random, so accounts created
 * together drift apart. One statement and one pipelined XADD per batch. Returns the number
 * of runs started, or <0. */
int jobs_start_due_runs(PGconn *pg, redisContext *rc, const struct mp_config *cfg, long limit);

/* Creates a sync_runs row for the account and enqueues its list_folders job. folders (may be
 * NULL/0) restricts this run to those folder names. Returns the run id (>0) or <0. */
long long jobs_start_run(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
			 long long account_id, const char *const *folders, size_t nfolders);

/* A run of folders the account already knows (a push; an app asking for INBOX): created
 * listed, its folder jobs queued at once, no list_folders job. Returns the run id, 0 when a
 * named folder is not known (use jobs_start_run), or <0. */
long long jobs_start_folder_run(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
				long long account_id, const char *const *folders, size_t nfolders);
/* A run asked for on {mp}:requests: of the named folders when the account knows them all
 * (jobs_start_folder_run), else with a LIST (jobs_start_run). request_id (may be NULL) is
 * kept on the run, and the sync_finished change that ends it carries it. Run id or <0. */
long long jobs_start_requested_run(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
				   long long account_id, const char *const *folders, size_t nfolders,
				   const char *request_id);
/* Enqueues a sync_folder job for every queued, not yet enqueued folder of account_id (every
 * account when 0) and run_id (every run when 0), within the account's cap of jobs in flight,
 * and marks them enqueued. A crash between XADD and COMMIT enqueues a job twice, which is
 * harmless: jobs are idempotent. Returns the number enqueued or <0. */
int jobs_enqueue_queued(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
			long long account_id, long long run_id);

/* Sends a backfill_folder job to {mp}:jobs:backfill for every folder of a --backfill account
 * with older mail left (email_folders.backfill_uid) and no such job in flight. Returns the
 * number sent or <0. */
int jobs_enqueue_backfill(PGconn *pg, redisContext *rc, const struct mp_config *cfg);
/* Closes the run when no folder of it is still queued: status ok/failed, totals summed from
 * sync_run_folders. Returns 1 when this call finished it, 2 when it was finished already, 0
 * when not, <0. */
int jobs_finish_run_if_done(PGconn *pg, long long run_id);

/* XADD {mp}:events type=... run_id=... (best effort: events are notifications, and the
 * database remains the truth for `sync --wait`). */
void jobs_emit_event(redisContext *rc, const struct mp_config *cfg, const char *type,
		     long long run_id, long long account_id, const char *detail_json);

#endif
