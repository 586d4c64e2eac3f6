/* Which of several schedulers plans: a lease in Redis ({mp}:scheduler:lease, SET NX PX),
 * renewed every tick by its holder and taken by another once it expires. Not the requests
 * consumer, which every scheduler runs. Called by scheduler/main.c. */
#ifndef MP_LEASE_H
#define MP_LEASE_H

#include "config.h"

#include <hiredis/hiredis.h>

struct lease {
	char owner[160];	/* this process's value in the key: consumer and pid */
	int held;		/* as of the last lease_hold */
};

void lease_init(struct lease *l, const struct mp_config *cfg);
/* Takes the lease if free, renews it if ours. Returns 1 when held, 0 when another holds it,
 * <0 when Redis failed (then held is 0: a scheduler that cannot renew must not plan). */
int lease_hold(struct lease *l, redisContext *rc, const struct mp_config *cfg);
/* Gives the lease up if ours (a graceful stop), so another takes over at once. */
void lease_release(struct lease *l, redisContext *rc, const struct mp_config *cfg);

#endif
