/* Push: IDLE connections on the accounts' INBOX, many on one libuv loop in a thread of the
 * fetcher. The scheduler publishes which accounts to watch ({mp}:idle:targets); each fetcher
 * takes a lease per account it watches ({mp}:idle:lease:<id>, renewed while it lives, so a
 * dead fetcher's accounts pass to another), and when the server announces EXISTS, EXPUNGE or
 * FETCH, asks for a sync of that folder on {mp}:requests. Owns those connections; not the
 * sync itself (fetch.c runs the job the scheduler makes of the request). */
#ifndef MP_IDLE_H
#define MP_IDLE_H

#include "config.h"

#include <signal.h>

struct idler;

/* Starts the watch thread; cfg is borrowed until idle_stop. NULL on failure (logged). */
struct idler *idle_start(const struct mp_config *cfg);
/* Ends every watch (DONE, LOGOUT), joins the thread and frees. NULL does nothing. */
void idle_stop(struct idler *id);

#endif
