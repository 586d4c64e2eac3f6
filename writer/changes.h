/* {mp}:changes: what the writer committed, published for apps (DESIGN.md "Redis keys"). Owns
 * the entries' format and their pipelined XADD with MAXLEN ~; does not decide what changed
 * (store.c, mirror.c and control.c do, from their statements' RETURNING rows). */
#ifndef MP_WRITER_CHANGES_H
#define MP_WRITER_CHANGES_H

#include "writer.h"

/* Queues one entry: type, then fields (a JSON object, stolen; integers and strings are
 * written as text, arrays and objects as compact JSON, nulls left out; at most 7 fields).
 * Call it only after the COMMIT that made the change, then changes_publish: an entry never
 * announces what a crash could still roll back. Does nothing when MAILPIPE_CHANGES_MAXLEN
 * is 0. */
void changes_add(struct writer *w, const char *type, json_t *fields);

/* Sends the queued entries in one pipeline (one round trip per call, whatever their number)
 * and forgets them. 0, or -EIO after logging when Redis failed them. */
int changes_publish(struct writer *w);

/* Queues sync_finished for a run that is over (run_id, account, account_id, status,
 * request_id, error, ingested_count, read from sync_runs). 0, or -EIO. */
int changes_sync_finished(struct writer *w, long long run_id);

/* Queues account_failed (account_id, account, run_id, error). 0, or -EIO. */
int changes_account_failed(struct writer *w, long long account_id, long long run_id,
			   const char *error);

#endif
