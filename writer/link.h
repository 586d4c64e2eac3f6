/* The writer's side of stable object ids (writer/link.c): `link` records, messages.email_id and
 * the Redis hash {mp}:emailid:<account> of committed messages the fetchers look ids up in
 * (fetcher/objectid.c). */
#ifndef MP_LINK_H
#define MP_LINK_H

#include "writer.h"

/* Applies a `link` record (locations for stored messages): 1 applied, <0 database error. A
 * link whose message is gone is recorded in sync_run_folders.unlinked and its hash entry
 * dropped. */
int link_apply(struct writer *w, json_t *rec);

/* Inside the caller's transaction: sets messages.email_id from rows [{a: account, m: message
 * id, e: email id}] where none is set. 0 or -EIO. rows is borrowed. */
int link_store_ids(struct writer *w, json_t *rows);
/* After COMMIT: adds rows (as above) to the accounts' hashes. Failures are logged only. */
void link_remember(struct writer *w, json_t *rows);
/* Drops [[email id, message id], ...] from an account's hash where the entry still names that
 * message. Failures are logged only. */
void link_forget(struct writer *w, long long account_id, json_t *pairs);

/* For a cursor record of (run, folder): when some of its UIDs were linked to a message that
 * had gone (link_apply), *uids_out = uids without them and *missing_out = missing with them
 * (malloc'd sequence sets, caller frees); else both NULL. 0, -EIO or -ENOMEM. */
int link_unlinked(struct writer *w, long long run_id, long long folder_id, const char *uids,
		  const char *missing, char **uids_out, char **missing_out);

#endif
