/* Control records from fetchers. `folders` creates the account's folders and this run's folder
 * jobs; `cursor` closes a folder job: it moves the folder's cursor only once every UID the
 * job fetched is committed (invariant 1), drops locations of an old UIDVALIDITY (invariant 4)
 * and refreshes the folder's counts. Both are idempotent: a redelivered record changes nothing. */
#include "writer.h"
#include "account_state.h"
#include "changes.h"
#include "jobs.h"
#include "link.h"
#include "log.h"
#include "pg.h"
#include "uidset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long long jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void num(char *buf, size_t size, long long v)
{
	snprintf(buf, size, "%lld", v);
}

/* An UPDATE's result (taken): 1 when it changed no row (its record was applied before), 0
 * when it did, -EIO when it failed. */
static int changed_none(PGresult *r)
{
	if (!r)
		return -EIO;
	int none = strcmp(PQcmdTuples(r), "0") == 0;
	PQclear(r);
	return none;
}

/* A server that asked for a long backoff gets it: the account's next scheduled sync waits. */
static int push_next_sync(struct writer *w, long long account_id, json_t *rec)
{
	long long ms = jint(rec, "retry_after_ms");
	if (ms <= 0)
		return 0;
	char acc[24], wait[24];
	num(acc, sizeof(acc), account_id);
	num(wait, sizeof(wait), ms);
	const char *p[] = { acc, wait };
	return pg_cmd_cached(w->pg, "obey server backoff",
			     "UPDATE accounts SET next_sync_at = greatest(next_sync_at, "
			     " now() + make_interval(secs => $2::bigint / 1000.0)) WHERE id = $1::bigint", 2, p);
}

/* Ends the run when its last folder job is closed, or -EIO: then the record that closed the
 * job, already committed, must not be acknowledged. Its redelivery changes nothing but ends
 * the run; acknowledged, the run would stay running, its account blocked, until the
 * scheduler failed it after MAILPIPE_RUN_TIMEOUT_S (a connection lost here did that).
 * sync_finished is told by whoever ends the run, and again by a record applied before (again:
 * redelivered, its teller may have died before telling), not by one that finds the run ended
 * by another writer closing another folder at the same time: apps heard it twice. */
static int finish_and_notify(struct writer *w, long long run_id, long long account_id, int again)
{
	/* The run ends in the same transaction as its deferred deletions (mirror.c), so that
	 * `sync --wait`, which reads the run's status, sees the mailbox as it is. The account's
	 * lock comes first, as everywhere. */
	int done = -EIO;
	if (pg_cmd(w->pg, "begin", "BEGIN", 0, NULL) < 0) {
		log_warn("run=%lld msg=\"run not ended, its record is read again\"", run_id);
		return -EIO;
	}
	if (mirror_lock_account(w, account_id) == 0)
		done = jobs_finish_run_if_done(w->pg, run_id);
	if (done > 0 && mirror_orphans_run_end(w, account_id) < 0)
		done = -EIO;
	if (done < 0 || pg_cmd(w->pg, "commit", "COMMIT", 0, NULL) < 0) {
		PQclear(PQexec(w->pg, "ROLLBACK"));
		log_warn("run=%lld msg=\"run not ended, its record is read again\"", run_id);
		return -EIO;
	}
	if (done == 1 || (done == 2 && again)) {
		jobs_emit_event(stage_home(w->st), &w->st->cfg, "run_done", run_id, account_id, NULL);
		changes_sync_finished(w, run_id);
	}
	changes_publish(w);
	return 0;
}

/* The server's UIDVALIDITY of a listed folder (its STATUS in the record), or 0. */
static long long listed_uidvalidity(json_t *rec, const char *name)
{
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(rec, "folders"), i, f)
		if (!strcmp(json_string_value(json_object_get(f, "name")) ?: "", name))
			return jint(json_object_get(f, "status"), "uidvalidity");
	return 0;
}

/* Change notices for the folders a LIST added and removed (rows of "id, name, uidvalidity"):
 * one removed and one added with the same UIDVALIDITY is the server renaming a folder. */
static void folder_notices(struct writer *w, long long account_id, json_t *rec, PGresult *added,
			   PGresult *removed)
{
	int na = added ? PQntuples(added) : 0, nr = removed ? PQntuples(removed) : 0;
	char *paired = calloc((size_t)na + 1, 1);
	if (!paired)
		return;
	for (int i = 0; i < nr; i++) {
		long long uidv = strtoll(PQgetvalue(removed, i, 2), NULL, 10);
		int match = -1, matches = 0;
		for (int k = 0; uidv && k < na; k++)
			if (listed_uidvalidity(rec, PQgetvalue(added, k, 1)) == uidv && !paired[k]) {
				match = k;
				matches++;
			}
		for (int k = 0; matches == 1 && k < nr; k++)
			matches += k != i && strtoll(PQgetvalue(removed, k, 2), NULL, 10) == uidv;
		if (matches == 1) {
			paired[match] = 1;
			changes_add(w, "folder_renamed", json_pack("{s:I, s:I, s:s, s:I, s:s}",
				"account_id", (json_int_t)account_id,
				"folder_id", (json_int_t)strtoll(PQgetvalue(added, match, 0), NULL, 10),
				"name", PQgetvalue(added, match, 1),
				"old_folder_id", (json_int_t)strtoll(PQgetvalue(removed, i, 0), NULL, 10),
				"old_name", PQgetvalue(removed, i, 1)));
		} else {
			changes_add(w, "folder_removed", json_pack("{s:I, s:I, s:s}",
				"account_id", (json_int_t)account_id,
				"folder_id", (json_int_t)strtoll(PQgetvalue(removed, i, 0), NULL, 10),
				"name", PQgetvalue(removed, i, 1)));
		}
	}
	for (int k = 0; k < na; k++)
		if (!paired[k])
			changes_add(w, "folder_added", json_pack("{s:I, s:I, s:s}",
				"account_id", (json_int_t)account_id,
				"folder_id", (json_int_t)strtoll(PQgetvalue(added, k, 0), NULL, 10),
				"name", PQgetvalue(added, k, 1)));
	free(paired);
}

/* A folder the server renamed keeps its row, locations and cursor: a listed folder whose
 * MAILBOXID (fetcher/objectid.c) is that of exactly one stored folder no longer listed takes
 * over that row. A name already stored (two folders swapped names) is left to the removal and
 * new folder below. */
static int rename_folders(struct writer *w, const char *acc, const char *folders)
{
	const char *p[] = { acc, folders };
	PGresult *r = pg_exec_cached(
		w->pg, "rename folders by mailbox id",
		"WITH listed AS (SELECT f.name, f.wire_name, f.mailbox_id FROM jsonb_to_recordset($2::jsonb) "
		"  AS f(name text, wire_name text, mailbox_id text, selectable boolean) WHERE f.selectable), "
		"pair AS (SELECT ef.id, ef.name AS old_name, l.name, l.wire_name FROM listed l "
		"  JOIN email_folders ef ON ef.account_id = $1::bigint AND ef.mailbox_id = l.mailbox_id "
		"  WHERE ef.name NOT IN (SELECT name FROM listed) "
		"  AND NOT EXISTS (SELECT 1 FROM email_folders o WHERE o.account_id = $1::bigint AND o.name = l.name) "
		"  AND (SELECT count(*) FROM listed l2 WHERE l2.mailbox_id = l.mailbox_id) = 1 "
		"  AND (SELECT count(*) FROM email_folders e2 WHERE e2.account_id = $1::bigint "
		"    AND e2.mailbox_id = l.mailbox_id) = 1), "
		"u AS (UPDATE email_folders ef SET name = pair.name, wire_name = pair.wire_name FROM pair "
		"  WHERE ef.id = pair.id RETURNING pair.old_name, pair.name) "
		"SELECT count(*), coalesce(string_agg(old_name || ' -> ' || name, ', '), '') FROM u",
		2, p);
	if (!r)
		return -EIO;
	if (strcmp(PQgetvalue(r, 0, 0), "0"))
		log_info("account_id=%s folders=\"%s\" msg=\"folders renamed on the server follow their "
			 "new names (MAILBOXID)\"", acc, PQgetvalue(r, 0, 1));
	PQclear(r);
	return 0;
}

int control_folders(struct writer *w, json_t *rec)
{
	char run[24], acc[24];
	long long run_id = jint(rec, "run_id"), account_id = jint(rec, "account_id");
	const char *error = json_string_value(json_object_get(rec, "error"));
	char *folders = json_dumps(json_object_get(rec, "folders"), JSON_COMPACT);
	PGresult *added = NULL, *gone = NULL;
	int rc = -EIO, again = 0;

	num(run, sizeof(run), run_id);
	num(acc, sizeof(acc), account_id);
	if (!folders)
		return -ENOMEM;
	if (pg_cmd(w->pg, "begin", "BEGIN", 0, NULL) < 0)
		goto out;
	if (error) {
		const char *p[] = { run, error };
		if ((again = changed_none(pg_exec_cached(w->pg, "record run error",
				  "UPDATE sync_runs SET error = $2 WHERE run_id = $1::bigint AND error IS NULL",
				  2, p))) < 0 ||
		    pg_cmd_cached(w->pg, "record account error",
				  "UPDATE accounts a SET last_error = $2 FROM sync_runs r "
				  "WHERE r.run_id = $1::bigint AND a.id = r.account_id", 2, p) < 0 ||
		    push_next_sync(w, account_id, rec) < 0 ||
		    /* The account could not be listed at all: it backs off (or, refused, waits
		     * for a new secret) rather than being tried again at its next interval. */
		    account_state_on_failure(w->pg, &w->st->cfg, account_id, error,
					     jint(rec, "retry_after_ms"), 0) < 0)
			goto fail;
	} else {
		if (account_state_on_success(w->pg, account_id) < 0)
			goto fail;
		const char *p[] = { acc, folders, run };
		if (rename_folders(w, acc, folders) < 0)
			goto fail;
		/* Only rows that differ are rewritten, so a re-sync leaves folders untouched. */
		added = pg_exec_cached(w->pg, "upsert folders",
				  "WITH known AS (SELECT id FROM email_folders WHERE account_id = $1::bigint), "
				  "up AS (INSERT INTO email_folders (account_id, provider, name, wire_name, delimiter, "
				  " special_use, attributes) "
				  "SELECT a.id, a.provider, f.name, f.wire_name, f.delimiter, f.special_use, "
				  " coalesce(array(SELECT jsonb_array_elements_text(f.attributes)), '{}') "
				  "FROM jsonb_to_recordset($2::jsonb) AS f(name text, wire_name text, delimiter text, "
				  " special_use text, attributes jsonb, selectable boolean) "
				  "JOIN accounts a ON a.id = $1::bigint WHERE f.selectable "
				  "ON CONFLICT (account_id, name) DO UPDATE SET wire_name = EXCLUDED.wire_name, "
				  " delimiter = EXCLUDED.delimiter, special_use = EXCLUDED.special_use, "
				  " attributes = EXCLUDED.attributes "
				  "WHERE (email_folders.wire_name, email_folders.delimiter, email_folders.special_use, "
				  " email_folders.attributes) IS DISTINCT FROM (EXCLUDED.wire_name, EXCLUDED.delimiter, "
				  " EXCLUDED.special_use, EXCLUDED.attributes) "
				  "RETURNING id, name) "
				  /* Only the new rows: a known folder's new attributes are no app's news. The
				   * statement's snapshot tells them (xmax = 0 did, but a partitioned table
				   * returns no system column from an upsert). */
				  "SELECT id, name FROM up WHERE id NOT IN (SELECT id FROM known)", 2, p);
		if (!added)
			goto fail;
		/* The run's folders: this run's --folder filter, else the account's, else all. A
		 * folder whose STATUS (sent with the list) equals what is stored, with nothing below
		 * its cursor still to fetch and its flags known current (CONDSTORE's modseq, or a
		 * flag scan younger than the account's interval), is done at once: a no-change
		 * poll of an account is one LIST and its STATUS answers, no SELECT and no job. */
		const char *pq[] = { acc, folders, run,
				     json_is_true(json_object_get(rec, "condstore")) ? "t" : "f" };
		if (pg_cmd_cached(w->pg, "queue folder jobs",
				  "WITH listed AS (SELECT f.name, f.status FROM jsonb_to_recordset($2::jsonb) "
				  "  AS f(name text, selectable boolean, status jsonb) WHERE f.selectable), "
				  "want AS (SELECT CASE WHEN cardinality(r.folder_filter) > 0 THEN r.folder_filter "
				  "  ELSE a.folders END AS names, coalesce((a.options->>'flag_scan_s')::int, 600) AS scan "
				  "  FROM sync_runs r JOIN accounts a ON a.id = r.account_id WHERE r.account_id = $1::bigint "
				  "  AND r.run_id = $3::bigint), "
				  "pick AS (SELECT ef.id, ef.uidvalidity, ef.last_uid, "
				  "  (l.status->>'messages')::int AS server_count, "
				  "  (l.status->>'uidvalidity')::bigint IS NOT DISTINCT FROM ef.uidvalidity "
				  "  AND (l.status->>'uidnext')::bigint IS NOT DISTINCT FROM ef.uidnext "
				  "  AND (l.status->>'messages')::int IS NOT DISTINCT FROM ef.message_count "
				  "  AND (l.status->>'unseen')::int IS NOT DISTINCT FROM ef.unread_count "
				  "  AND ef.uidvalidity IS NOT NULL AND ef.last_uid + 1 >= (l.status->>'uidnext')::bigint "
				  "  AND CASE WHEN $4::boolean THEN (l.status->>'highestmodseq')::bigint "
				  "    IS NOT DISTINCT FROM ef.highest_modseq AND ef.highest_modseq IS NOT NULL "
				  "    ELSE ef.last_flag_scan_at > now() - make_interval(secs => want.scan) END "
				  "  AS unchanged "
				  "  FROM email_folders ef JOIN listed l ON l.name = ef.name, want "
				  "  WHERE ef.account_id = $1::bigint "
				  "  AND (cardinality(want.names) = 0 OR ef.name = ANY(want.names))), "
				  "done AS (UPDATE email_folders ef SET last_synced_at = now(), last_error = NULL "
				  "  FROM pick WHERE ef.account_id = $1::bigint AND pick.id = ef.id AND pick.unchanged "
				  "  RETURNING ef.id) "
				  "INSERT INTO sync_run_folders (account_id, run_id, folder_id, status, finished_at, "
				  "  uidvalidity, last_uid, server_count) "
				  "SELECT $1::bigint, $3::bigint, id, CASE WHEN unchanged THEN 'done' ELSE 'queued' END, "
				  "  CASE WHEN unchanged THEN now() END, CASE WHEN unchanged THEN uidvalidity END, "
				  "  CASE WHEN unchanged THEN last_uid END, server_count FROM pick "
				  "ON CONFLICT DO NOTHING", 4, pq) < 0)
			goto fail;
		/* Folders the server no longer lists (deleted, or renamed: the new name arrives as a
		 * new folder) go with their locations; messages left without one go too. A LIST
		 * without a single selectable folder is not believed. */
		gone = pg_exec_cached(
			w->pg, "drop folders the server no longer lists",
			"WITH listed AS (SELECT f.name FROM jsonb_to_recordset($2::jsonb) "
			"  AS f(name text, selectable boolean) WHERE f.selectable) "
			"DELETE FROM email_folders ef WHERE ef.account_id = $1::bigint "
			"  AND (SELECT count(*) FROM listed) > 0 "
			"  AND ef.name NOT IN (SELECT name FROM listed) "
			"RETURNING ef.id, ef.name, coalesce(ef.uidvalidity, 0)",
			2, p);
		if (!gone)
			goto fail;
		int ngone = PQntuples(gone);
		for (int i = 0; i < ngone; i++)
			log_info("account_id=%lld folder=\"%s\" msg=\"folder gone from the server removed\"",
				 account_id, PQgetvalue(gone, i, 1));
		if (ngone) {
			if (mirror_lock_account(w, account_id) < 0 ||
			    mirror_orphans_later(w, run_id, account_id, NULL) < 0)
				goto fail;
		}
		const char *p2[] = { run };
		if ((again = changed_none(pg_exec_cached(w->pg, "mark run listed",
				  "UPDATE sync_runs SET listed = true WHERE run_id = $1::bigint AND NOT listed",
				  1, p2))) < 0)
			goto fail;
	}
	if (pg_cmd(w->pg, "commit", "COMMIT", 0, NULL) < 0)
		goto fail;
	if (error)
		changes_account_failed(w, account_id, run_id, error);
	else
		folder_notices(w, account_id, rec, added, gone);
	if (!error && jobs_enqueue_queued(w->pg, stage_home(w->st), &w->st->cfg, account_id, run_id) < 0) {
		changes_publish(w);
		goto out;
	}
	if (finish_and_notify(w, run_id, account_id, again) < 0)
		goto out;
	rc = 0;
	goto out;
fail:
	PQclear(PQexec(w->pg, "ROLLBACK"));
out:
	PQclear(added);
	PQclear(gone);
	free(folders);
	return rc;
}

/* The UIDs of a cursor record as a Postgres array literal, and their count. */
static char *uids_array(const char *uids, size_t *count)
{
	struct uidset set;
	uidset_init(&set);
	if (uids && *uids && uidset_parse(&set, uids) < 0) {
		uidset_release(&set);
		return NULL;
	}
	size_t cap = set.n * 11 + 3, k = 0;
	char *arr = malloc(cap);
	if (arr) {
		arr[k++] = '{';
		for (size_t i = 0; i < set.n; i++)
			k += (size_t)snprintf(arr + k, cap - k, "%s%u", i ? "," : "", set.v[i]);
		arr[k++] = '}';
		arr[k] = 0;
	}
	*count = set.n;
	uidset_release(&set);
	return arr;
}

/* How many of the record's UIDs (an array literal) have a location in the folder: all of
 * them means every message the job delivered is committed. <0 on a database error. */
static long long committed(struct writer *w, long long account_id, const char *folder,
			   const char *uidv, const char *uids)
{
	char acc[24];
	num(acc, sizeof(acc), account_id);
	const char *p[] = { folder, uidv, uids, acc };
	PGresult *r = pg_exec(w->pg, "check committed UIDs",
			      "SELECT count(*) FROM message_locations WHERE account_id = $4::bigint "
			      " AND folder_id = $1::bigint AND uidvalidity = $2::bigint "
			      " AND uid = ANY($3::bigint[])", 4, p);
	if (!r)
		return -EIO;
	long long have = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return have;
}

int control_cursor(struct writer *w, json_t *rec)
{
	char run[24], folder[24], uidv[24], last[24], uidnext[24], modseq[24], fetched[24];
	char nmissing[24];
	long long run_id = jint(rec, "run_id"), account_id = jint(rec, "account_id");
	const char *error = json_string_value(json_object_get(rec, "error"));
	const char *missing = json_string_value(json_object_get(rec, "missing"));
	const char *listed = json_string_value(json_object_get(rec, "uids"));
	size_t count = 0, nmiss = 0;
	char *own_uids = NULL, *own_missing = NULL;
	/* UIDs linked to a message that was gone by then (link.c) are not committed: missing. */
	if (!error && link_unlinked(w, run_id, jint(rec, "folder_id"), listed, missing, &own_uids,
				    &own_missing) < 0)
		return -EIO;
	if (own_uids) {
		listed = own_uids;
		missing = own_missing;
	}
	char *uids = uids_array(listed, &count);
	char *miss = uids_array(missing, &nmiss);
	long long last_uid = jint(rec, "last_uid");
	json_t *reset = NULL; /* folder_reset notice, sent after COMMIT */
	int rc = -EIO, again = 0;

	if (!uids || !miss) {
		log_error("run=%lld msg=\"cursor record with an invalid uid set, dropped\"", run_id);
		free(uids);
		free(miss);
		free(own_uids);
		free(own_missing);
		return 1;
	}
	if (nmiss) {
		/* Invariant 1 holds here too, whatever the record says: the cursor stays below the
		 * first UID the server did not deliver. */
		struct uidset m;
		uidset_init(&m);
		if (uidset_parse(&m, missing) == 0 && m.n && (long long)m.v[0] - 1 < last_uid)
			last_uid = (long long)m.v[0] - 1;
		uidset_release(&m);
	}
	num(run, sizeof(run), run_id);
	num(folder, sizeof(folder), jint(rec, "folder_id"));
	num(uidv, sizeof(uidv), jint(rec, "uidvalidity"));
	num(last, sizeof(last), last_uid);
	num(nmissing, sizeof(nmissing), (long long)nmiss);
	num(uidnext, sizeof(uidnext), jint(rec, "uidnext"));
	num(modseq, sizeof(modseq), jint(rec, "highest_modseq"));
	num(fetched, sizeof(fetched), (long long)count);
	if (pg_cmd(w->pg, "begin", "BEGIN", 0, NULL) < 0)
		goto out;
	if (error) {
		const char *p[] = { folder, error };
		const char *p2[] = { run, folder, error, fetched };
		/* Each statement gets exactly the parameters it uses: Postgres cannot type one it
		 * never sees, and the whole failure record was lost that way (issue 8). */
		if (pg_cmd(w->pg, "record folder error",
			   "UPDATE email_folders SET last_error = $2 WHERE id = $1::bigint", 2, p) < 0 ||
		    (again = changed_none(pg_exec(w->pg, "fail folder job",
			   "UPDATE sync_run_folders SET status = 'failed', error = $3, finished_at = now(), "
			   " fetched_count = $4::int WHERE run_id = $1::bigint AND folder_id = $2::bigint "
			   " AND status = 'queued'", 4, p2))) < 0 ||
		    push_next_sync(w, account_id, rec) < 0 ||
		    account_state_on_failure(w->pg, &w->st->cfg, account_id, error,
					     jint(rec, "retry_after_ms"), 1) < 0)
			goto fail;
	} else {
		if (account_state_on_success(w->pg, account_id) < 0)
			goto fail;
		long long have = committed(w, account_id, folder, uidv, uids);
		if (have < 0)
			goto fail;
		if (have < (long long)count) {
			/* Some messages are still in the parser or in another writer's batch. */
			PQclear(PQexec(w->pg, "ROLLBACK"));
			rc = 0;
			goto out;
		}
		char smsg[24] = "", sunseen[24] = "", backfill[24];
		num(backfill, sizeof(backfill), jint(rec, "backfill_below"));
		json_t *sm = json_object_get(rec, "server_messages"), *su = json_object_get(rec, "server_unseen");
		if (json_is_integer(sm))
			num(smsg, sizeof(smsg), json_integer_value(sm));
		if (json_is_integer(su))
			num(sunseen, sizeof(sunseen), json_integer_value(su));
		/* The folder's counts are the server's own (STATUS), so a first sync limited to a
		 * window still shows the mailbox's real totals; without STATUS, our rows'. */
		char acc[24];
		num(acc, sizeof(acc), account_id);
		const char *p2[] = { folder, uidv, last, uidnext, modseq, *smsg ? smsg : NULL,
				     *sunseen ? sunseen : NULL,
				     json_is_true(json_object_get(rec, "flag_scanned")) ? "t" : "f",
				     json_is_integer(json_object_get(rec, "backfill_below")) ? backfill : NULL,
				     acc };
		const char *ps[] = { folder, uidv, acc };
		PGresult *stale = pg_exec(w->pg, "drop stale locations",
			   "WITH d AS (DELETE FROM message_locations WHERE account_id = $3::bigint "
			   " AND folder_id = $1::bigint AND uidvalidity <> $2::bigint RETURNING uidvalidity) "
			   "SELECT count(*), coalesce(max(uidvalidity), 0) FROM d", 3, ps);
		if (stale && strcmp(PQgetvalue(stale, 0, 0), "0") != 0)
			reset = json_pack("{s:I, s:I, s:I, s:I, s:I}", "account_id", (json_int_t)account_id,
					  "folder_id", jint(rec, "folder_id"),
					  "old_uidvalidity", (json_int_t)strtoll(PQgetvalue(stale, 0, 1), NULL, 10),
					  "uidvalidity", jint(rec, "uidvalidity"),
					  "removed_count", (json_int_t)strtoll(PQgetvalue(stale, 0, 0), NULL, 10));
		int dropped = stale != NULL;
		PQclear(stale);
		if (!dropped ||
		    pg_cmd(w->pg, "advance cursor",
			   "UPDATE email_folders SET "
			   " last_uid = GREATEST(CASE WHEN uidvalidity IS DISTINCT FROM $2::bigint THEN 0 "
			   "   ELSE last_uid END, $3::bigint), "
			   " uidvalidity = $2::bigint, uidnext = nullif($4::bigint, 0), "
			   " highest_modseq = nullif($5::bigint, 0), "
			   " message_count = coalesce($6::int, (SELECT count(*) FROM message_locations "
			   "   WHERE account_id = $10::bigint AND folder_id = $1::bigint)), "
			   " unread_count = coalesce($7::int, (SELECT count(*) FROM message_locations "
			   "   WHERE account_id = $10::bigint AND folder_id = $1::bigint "
			   "   AND NOT ('\\Seen' = ANY(flags)))), "
			   " last_flag_scan_at = CASE WHEN $8::boolean THEN now() ELSE last_flag_scan_at END, "
			   /* A windowed first sync leaves older mail below its lowest UID; a new
			    * UIDVALIDITY forgets an old backfill point. */
			   " backfill_uid = CASE WHEN $9::bigint IS NOT NULL THEN "
			   "   CASE WHEN $9::bigint > 1 THEN $9::bigint END "
			   "   WHEN uidvalidity IS DISTINCT FROM $2::bigint THEN NULL ELSE backfill_uid END, "
			   " backfill_enqueued_at = CASE WHEN $9::bigint IS NOT NULL "
			   "   OR uidvalidity IS DISTINCT FROM $2::bigint THEN NULL ELSE backfill_enqueued_at END, "
			   " last_synced_at = now(), last_error = NULL "
			   "WHERE account_id = $10::bigint AND id = $1::bigint", 10, p2) < 0)
			goto fail;
		/* The folder's MAILBOXID (EXAMINE's), by which a later rename is told (control_folders). */
		const char *mbox = json_string_value(json_object_get(rec, "mailbox_id"));
		const char *pm[] = { folder, mbox };
		if (mbox && pg_cmd(w->pg, "store mailbox id",
				   "UPDATE email_folders SET mailbox_id = $2 WHERE id = $1::bigint "
				   " AND mailbox_id IS DISTINCT FROM $2", 2, pm) < 0)
			goto fail;
		/* A folder with messages the server would not deliver is incomplete: it says which,
		 * and the next sync asks for them again. */
		char why[200] = "";
		if (nmiss)
			snprintf(why, sizeof(why), "server did not deliver %zu listed message%s (UIDs %.80s) "
				 "when asked twice; asked again next sync", nmiss, nmiss == 1 ? "" : "s", missing);
		const char *p3[] = { run, folder, uidv, last, fetched, nmissing, missing ? missing : "", why };
		if ((again = changed_none(pg_exec(w->pg, "close folder job",
			   "UPDATE sync_run_folders SET status = CASE WHEN $6::int > 0 THEN 'incomplete' "
			   "  ELSE 'done' END, finished_at = now(), "
			   " uidvalidity = $3::bigint, last_uid = $4::bigint, fetched_count = $5::int, "
			   " missing_count = $6::int, missing = nullif($7, ''), error = nullif($8, '') "
			   "WHERE run_id = $1::bigint AND folder_id = $2::bigint AND status = 'queued'",
			   8, p3))) < 0)
			goto fail;
		if (nmiss) {
			const char *p4[] = { folder, why };
			if (pg_cmd(w->pg, "record folder missing",
				   "UPDATE email_folders SET last_error = $2 WHERE id = $1::bigint", 2, p4) < 0)
				goto fail;
		}
	}
	if (pg_cmd(w->pg, "commit", "COMMIT", 0, NULL) < 0)
		goto fail;
	if (reset)
		changes_add(w, "folder_reset", json_incref(reset));
	/* A refused login concerns the whole account, whichever job met it. */
	if (error && !strncmp(error, "auth failed", 11))
		changes_account_failed(w, account_id, run_id, error);
	/* A job of this folder from a younger run may have waited for this one, and the
	 * account's other folders for a place under its cap (jobs.c): only this account's. */
	jobs_enqueue_queued(w->pg, stage_home(w->st), &w->st->cfg, account_id, 0);
	if (finish_and_notify(w, run_id, account_id, again) < 0)
		goto out; /* rc is -EIO: read again, it ends the run then */
	rc = 1;
	goto out;
fail:
	PQclear(PQexec(w->pg, "ROLLBACK"));
out:
	json_decref(reset);
	free(uids);
	free(miss);
	free(own_uids);
	free(own_missing);
	return rc;
}

int control_backfill(struct writer *w, json_t *rec)
{
	char folder[24], uidv[24], below[24];
	const char *error = json_string_value(json_object_get(rec, "error"));
	size_t count = 0;
	char *uids = uids_array(json_string_value(json_object_get(rec, "uids")), &count);
	if (!uids)
		return 1;
	num(folder, sizeof(folder), jint(rec, "folder_id"));
	num(uidv, sizeof(uidv), jint(rec, "uidvalidity"));
	num(below, sizeof(below), jint(rec, "below"));
	int rc = -EIO;
	if (error || json_is_true(json_object_get(rec, "stale"))) {
		/* Tried again in about a minute (a stale one: after the folder's own resync). */
		const char *p[] = { folder };
		if (error)
			log_warn("folder=%s msg=\"backfill failed: %s\"", folder, error);
		rc = pg_cmd(w->pg, "backfill retry later",
			    "UPDATE email_folders SET backfill_enqueued_at = now() - interval '9 minutes' "
			    "WHERE id = $1::bigint", 1, p) < 0 ? -EIO : 1;
		goto out;
	}
	long long have = committed(w, jint(rec, "account_id"), folder, uidv, uids);
	if (have < 0)
		goto out;
	if (have < (long long)count) {
		rc = 0; /* its messages are still on their way */
		goto out;
	}
	const char *p2[] = { folder, uidv, below };
	rc = pg_cmd(w->pg, "advance backfill",
		    "UPDATE email_folders SET backfill_uid = CASE WHEN $3::bigint > 1 THEN $3::bigint END, "
		    " backfill_enqueued_at = NULL WHERE id = $1::bigint AND uidvalidity = $2::bigint "
		    " AND backfill_uid > $3::bigint", 3, p2) < 0 ? -EIO : 1;
out:
	free(uids);
	return rc;
}
