/* Sync requests on {mp}:requests (from apps, and from the fetchers' IDLE watches) turned into
 * runs, in a thread of the scheduler that blocks on the stream so a push does not wait for
 * the next tick; and the list of accounts the fetchers should watch with IDLE. */
#ifndef MP_REQUESTS_H
#define MP_REQUESTS_H

#include "config.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

struct requests;

/* Starts the consumer thread (group `schedulers`); cfg is borrowed until requests_stop. */
struct requests *requests_start(const struct mp_config *cfg);
/* Stops it after the request in hand (at most a second) and frees. NULL does nothing. */
void requests_stop(struct requests *rq);

/* Publishes the accounts to watch with IDLE ({mp}:idle:targets): active accounts that did
 * not opt out (--no-idle) and sync INBOX, with their INBOX row. 0 or <0. */
int requests_publish_targets(PGconn *pg, redisContext *rc, const struct mp_config *cfg);

#endif
