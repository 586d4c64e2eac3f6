/* The scheduler's tick: start runs for due accounts and enqueue folder jobs that a crash left
 * unenqueued. Owns "when"; the fetchers own "how". */
#ifndef MP_SCHEDULE_H
#define MP_SCHEDULE_H

#include "config.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

/* One pass. Returns the number of runs started, or <0 when Postgres or Redis failed. */
int schedule_tick(PGconn *pg, redisContext *rc, const struct mp_config *cfg);

#endif
