/* What every daemon's main() shares: configuration and logging set-up, signal handling for a
 * graceful drain, the consumer-group reading order (own pending entries first, then entries
 * of dead consumers, then new ones). */
#ifndef MP_STAGE_H
#define MP_STAGE_H

#include "config.h"
#include "metrics.h"
#include "rstream.h"

#include <signal.h>

struct stage {
	const char *name;		/* "fetcher", ... */
	struct mp_config cfg;
	redisContext *rc;		/* this partition's server: the work keys */
	/* The home server (global keys: events, changes, dead, requests) when it is another
	 * server than rc's, else NULL; use stage_home(). The scheduler's rc is home. */
	redisContext *home;
	int global;			/* the scheduler: serves no partition */
	volatile sig_atomic_t *stopping;
	int own_pending_done;		/* own pending entries re-read after a restart */
	char pending_from[64];		/* where that one pass over them has got to */
	long long last_claim_ms;
	/* Re-read pending entries one at a time: where one input can crash the process, the
	 * entries behind it must not be delivered (and counted) again with it. */
	int redeliver_singly;
	struct metrics_server *metrics;	/* NULL when MAILPIPE_METRICS_ADDR is empty */
	unsigned connects;		/* Redis connections made; all but the first follow a loss */
};

/* Loads configuration, sets up logs, metrics (MAILPIPE_METRICS_ADDR) and SIGTERM/SIGINT, connects to Redis (retrying until it
 * answers or a signal arrives) and creates the consumer groups. stopping must outlive st.
 * 0, or <0 after logging. */
int stage_init(struct stage *st, const char *name, volatile sig_atomic_t *stopping);
void stage_release(struct stage *st);

/* The next entries for this consumer: its own pending entries first (a restart resumes where
 * it died), then, every claim_idle/2, entries idle longer than claim_idle in dead consumers,
 * then new entries, blocking up to block_ms. Returns the reply (caller frees) or NULL when
 * there is nothing; *claimed tells the entries were reclaimed or re-read (delivered before). */
redisReply *stage_next(struct stage *st, const char *key, const char *group, long count,
		       long block_ms, int *redelivered);

/* Reconnects to Redis after a failure, retrying with backoff until it answers or stopping. */
int stage_reconnect(struct stage *st);
/* One attempt of the same, for an event loop that must keep serving its signals and timers:
 * 0, or -EIO with st->rc NULL (try again later). */
int stage_reconnect_once(struct stage *st);

/* The connection for the global keys: st->home, remade once if broken, or st->rc. */
redisContext *stage_home(struct stage *st);

long long stage_now_ms(void);

#endif
