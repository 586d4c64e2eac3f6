/* Starting a sync run and waiting for its end, shared by `mailpipe sync` and the MCP tool
 * sync_now so that both enqueue the same way (jobs_start_run) and report the same summary. */
#ifndef MP_CLI_SYNC_H
#define MP_CLI_SYNC_H

#include "cli.h"

#include <hiredis/hiredis.h>
#include <jansson.h>

/* Starts a run of the account (only the folders named, when nfolders > 0), or joins the
 * whole-account run already in progress. last_event receives the id of the newest entry on
 * {mp}:events before the start, for sync_wait. Returns the run id, or <0 after one line. */
long long sync_start(struct cli *c, redisContext *rc, long long account_id, const char *name,
		     const char *const *folders, size_t nfolders, char *last_event, size_t size);

/* Called about once a second while sync_wait waits: seconds waited so far and the run's
 * summary as it stands (borrowed; NULL while Postgres cannot be asked). */
typedef void (*sync_tick_fn)(void *arg, long waited_s, json_t *summary);

/* Waits until run_id is no longer running or timeout_s passed, riding out Postgres and Redis
 * restarts (*rc may be replaced; c->pg may be reconnected). *summary receives the run's summary
 * (new reference; NULL when Postgres could not be asked). tick may be NULL. Returns 0 when the
 * run finished, -ETIMEDOUT, or -EIO when a query failed on a live connection. */
int sync_wait(struct cli *c, redisContext **rc, long long run_id, long timeout_s,
	      char *last_event, size_t size, json_t **summary, sync_tick_fn tick, void *arg);

/* The DESIGN.md summary of run_id (new reference), NULL when there is no such run or the
 * query failed. */
json_t *sync_summary(PGconn *pg, long long run_id);

#endif
