/* Stream and consumer-group gauges for the metrics endpoint (streams.c). */
#ifndef MP_STREAMS_H
#define MP_STREAMS_H

#include "config.h"

#include <hiredis/hiredis.h>

/* Sets the mailpipe_stream_* gauges from XLEN and XINFO GROUPS; a stream or group that is
 * missing, or a Redis error, leaves its series without a value. A few round trips. */
void streams_sample(redisContext *rc, const struct mp_config *cfg);

#endif
