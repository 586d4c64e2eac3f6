/* Push: IDLE connections on the accounts' INBOX, many on one libuv loop in a thread of the
 * fetcher. The scheduler publishes which accounts to watch ({mp}:idle:targets); each fetcher
 * takes a lease per account it watches ({mp}:idle:lease:<id>, renewed while it lives, so a
 * dead fetcher's accounts pass to another), and when the server announces EXISTS, EXPUNGE or
 * FETCH, asks for a sync of that folder on {mp}:requests. Owns those connections; not the
 * sync itself (fetch.c runs the job the scheduler makes of the request). */
#ifndef MP_IDLE_H
#define MP_IDLE_H

#include "config.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdint.h>

struct idler;

struct budget;
/* Starts the watch thread; cfg and budget (connection leases, may be NULL) are borrowed until
 * idle_stop. NULL on failure (logged). */
struct idler *idle_start(const struct mp_config *cfg, struct budget *budget);
/* A folder as one look saw it (EXAMINE or STATUS); uidnext 0 = not looked at. */
struct idle_seen {
	char wire[512];		/* the folder's name on the wire */
	uint64_t uidvalidity, uidnext, exists, modseq;
};

/* An account's watch connection of this process (the one on the job's folder wire, if
 * watched, else another of the account's), lent to a job: the watch ends its IDLE
 * and hands over the logged-in connection with its capabilities, and what it last saw of its
 * folder. NULL when this process does not watch the account or the watch is not idling.
 * The lease stays ours: every connection borrowed goes back through idle_give. */
CURL *idle_borrow(struct idler *id, long long account_id, const char *wire, char *caps,
		  size_t capslen, struct idle_seen *seen);
/* After a job: the connection (NULL when it died) goes back to the account's lent watch, or
 * becomes a new watch if the account is a target nobody watches. seen is what the job saw
 * of the watched folder (or the watch's own look, passed through), so a change between the
 * job's look and the watch's next EXAMINE asks for a sync. 1 when the watch took curl; 0
 * when the caller keeps it. */
int idle_give(struct idler *id, long long account_id, CURL *curl, const char *caps,
	      const struct idle_seen *seen);
/* Where the watch thread looks for a logged-in connection of the account before it logs in
 * itself: the fetcher's connections parked between jobs (conns_take_parked). key names the
 * server and user (conn_key). Called on the watch thread; returns curl, or NULL. */
typedef CURL *(*idle_source_fn)(void *data, long long account_id, const char *key, char *caps,
				size_t capslen);
void idle_set_source(struct idler *id, idle_source_fn fn, void *data);
/* Ends every watch (DONE, LOGOUT), joins the thread and frees. NULL does nothing. */
void idle_stop(struct idler *id);

#endif
