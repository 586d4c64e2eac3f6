/* The records that end a fetcher job on {mp}:parsed: `cursor` (a folder sync: what was
 * fetched, what is missing, where the cursor may go, the server's counts), `folders` (the
 * list, with each folder's STATUS) and `backfill` (older mail below a window). The writer
 * applies them (writer/control.c). Called by fetch.c at the end of a job. */
#include "job.h"
#include "metrics.h"

#include <stdlib.h>

/* The end of a sync_folder job: what was fetched and where the cursor may go. With error set,
 * the writer records the failure and leaves the cursor where it was. */
int emit_cursor(struct job *j, const char *error)
{
	json_t *rec = job_record(j);
	/* Linked UIDs (objectid.c) are delivered too: the cursor waits for their links. */
	struct uidset delivered;
	uidset_init(&delivered);
	for (size_t i = 0; i < j->fetched.n; i++)
		uidset_add(&delivered, j->fetched.v[i]);
	for (size_t i = 0; i < j->linked.n; i++)
		uidset_add(&delivered, j->linked.v[i]);
	uidset_normalize(&delivered);
	char *uids = uidset_format(&delivered);
	uidset_release(&delivered);
	uint64_t last = j->last_uid;
	if (!error) {
		if (j->uidnext > 0 && j->uidnext - 1 > last)
			last = j->uidnext - 1;
		if (j->search.n && j->search.v[j->search.n - 1] > last)
			last = j->search.v[j->search.n - 1];
		/* Invariant 1: never past a UID the server lists but did not deliver. */
		if (j->missing.n && j->missing.v[0] - 1 < last)
			last = j->missing.v[0] - 1 > j->last_uid ? j->missing.v[0] - 1 : j->last_uid;
	}
	char *missing = uidset_format(&j->missing);
	json_object_set_new(rec, "folder_id", json_integer(j->folder_id));
	json_object_set_new(rec, "folder", json_string(j->folder));
	json_object_set_new(rec, "uidvalidity", json_integer((json_int_t)(j->uidvalidity ? j->uidvalidity : j->exp_uidvalidity)));
	json_object_set_new(rec, "uidnext", json_integer((json_int_t)j->uidnext));
	json_object_set_new(rec, "exists", json_integer((json_int_t)j->exists));
	json_object_set_new(rec, "highest_modseq", json_integer((json_int_t)j->highest_modseq));
	json_object_set_new(rec, "last_uid", json_integer((json_int_t)last));
	json_object_set_new(rec, "uids", json_string(uids ? uids : ""));
	json_object_set_new(rec, "fetched_count", json_integer((json_int_t)j->fetched.n));
	if (j->mailbox_id[0])
		json_object_set_new(rec, "mailbox_id", json_string(j->mailbox_id));
	json_object_set_new(rec, "missing", json_string(missing ? missing : ""));
	if (!error)
		mirror_cursor_fields(j, rec);
	if (!error && j->window_used)
		json_object_set_new(rec, "backfill_below", json_integer((json_int_t)j->window_low));
	json_object_set_new(rec, "missing_count", json_integer((json_int_t)j->missing.n));
	json_object_set_new(rec, "error", error ? json_string(error) : json_null());
	if (j->retry_after_ms)
		json_object_set_new(rec, "retry_after_ms", json_integer(j->retry_after_ms));
	free(uids);
	free(missing);
	metrics_add(MX_ERRORS_FETCH, error != NULL);
	int rc = job_emit(j, "cursor", rec);
	json_decref(rec);
	return rc;
}

int emit_folders(struct job *j, const char *error)
{
	json_t *rec = job_record(j);
	json_object_set_new(rec, "folders", j->folders ? json_incref(j->folders) : json_array());
	json_object_set_new(rec, "condstore", json_boolean(j->condstore));
	json_object_set_new(rec, "error", error ? json_string(error) : json_null());
	if (j->retry_after_ms)
		json_object_set_new(rec, "retry_after_ms", json_integer(j->retry_after_ms));
	metrics_add(MX_ERRORS_FETCH, error != NULL);
	int rc = job_emit(j, "folders", rec);
	json_decref(rec);
	return rc;
}

int emit_backfill(struct job *j, const char *error)
{
	json_t *rec = job_record(j);
	char *uids = uidset_format(&j->fetched), *missing = uidset_format(&j->missing);
	json_object_set_new(rec, "folder_id", json_integer(j->folder_id));
	json_object_set_new(rec, "folder", json_string(j->folder));
	json_object_set_new(rec, "uidvalidity", json_integer((json_int_t)j->exp_uidvalidity));
	json_object_set_new(rec, "uids", json_string(uids ? uids : ""));
	json_object_set_new(rec, "missing", json_string(missing ? missing : ""));
	json_object_set_new(rec, "below", json_integer((json_int_t)j->backfill_next));
	json_object_set_new(rec, "stale", json_boolean(j->backfill_stale));
	json_object_set_new(rec, "error", error ? json_string(error) : json_null());
	free(uids);
	free(missing);
	metrics_add(MX_ERRORS_FETCH, error != NULL);
	int rc = job_emit(j, "backfill", rec);
	json_decref(rec);
	return rc;
}
