/* The mirror's records from fetchers, applied to Postgres: `flags` (new flags of stored UIDs),
 * `vanished` (which stored UIDs of a range the server still has) and the folders a LIST no
 * longer shows. A message left without any location is deleted (or, with the account option
 * keep_deleted, marked deleted_at) and its conversation's counts, participants and dates are
 * recomputed; an empty conversation goes. Each record is idempotent: applying it twice
 * changes nothing the second time. Called by main.c and control.c. */
#include "changes.h"
#include "link.h"
#include "log.h"
#include "pg.h"
#include "writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long long jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* Refreshes the conversations named by a text array literal ("{1,2}"), and drops those left
 * without messages. */
static int refresh(struct writer *w, long long account_id, const char *convs)
{
	if (!convs || !strcmp(convs, "{}"))
		return 0;
	char accs[32], acc[24];
	snprintf(accs, sizeof(accs), "{%lld}", account_id);
	snprintf(acc, sizeof(acc), "%lld", account_id);
	const char *p[] = { convs, accs }, *pd[] = { convs, acc };
	PGresult *r = pg_exec_prepared(w->pg, "refresh conversations", "refresh_conv", 2, p, NULL, NULL);
	if (!r)
		return -EIO;
	PQclear(r);
	return pg_cmd(w->pg, "drop empty conversations",
		      "DELETE FROM conversations c WHERE c.account_id = $2::bigint "
		      " AND c.id = ANY($1::bigint[]) AND NOT EXISTS (SELECT 1 FROM messages m "
		      " WHERE m.account_id = c.account_id AND m.conversation_id = c.id)", 2, pd);
}

int mirror_drop_orphans(struct writer *w, long long account_id, const char *message_ids,
			json_t **deleted)
{
	char acc[24];
	snprintf(acc, sizeof(acc), "%lld", account_id);
	const char *p[] = { acc, message_ids };
	/* Only the given messages, or (NULL) every message of the account, that lost their
	 * last location. */
	PGresult *r = pg_exec(
		w->pg, "drop messages without a location",
		"WITH gone AS (DELETE FROM messages m WHERE m.account_id = $1::bigint "
		"  AND ($2::bigint[] IS NULL OR m.id = ANY($2::bigint[])) "
		"  AND NOT coalesce((SELECT (options->>'keep_deleted')::boolean FROM accounts "
		"   WHERE id = $1::bigint), false) "
		"  AND NOT EXISTS (SELECT 1 FROM message_locations l "
		"   WHERE l.account_id = m.account_id AND l.message_id = m.id) "
		"  RETURNING m.conversation_id, m.email_id, m.id), "
		"kept AS (UPDATE messages m SET deleted_at = now() WHERE m.account_id = $1::bigint "
		"  AND ($2::bigint[] IS NULL OR m.id = ANY($2::bigint[])) AND m.deleted_at IS NULL "
		"  AND coalesce((SELECT (options->>'keep_deleted')::boolean FROM accounts "
		"   WHERE id = $1::bigint), false) "
		"  AND NOT EXISTS (SELECT 1 FROM message_locations l "
		"   WHERE l.account_id = m.account_id AND l.message_id = m.id) "
		"  RETURNING m.conversation_id, NULL::text AS email_id, m.id) "
		"SELECT count(*), coalesce(array_agg(DISTINCT conversation_id) FILTER "
		"  (WHERE conversation_id IS NOT NULL), '{}')::text, "
		/* deleted rows' email ids leave the fetchers' lookup hash (link.c) */
		"  coalesce(json_agg(json_build_array(email_id, id)) FILTER (WHERE email_id IS NOT NULL), "
		"  '[]')::text, coalesce(json_agg(id), '[]')::text "
		"FROM (SELECT * FROM gone UNION ALL SELECT * FROM kept) x",
		2, p);
	if (!r)
		return -EIO;
	long long n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	int rc = refresh(w, account_id, PQgetvalue(r, 0, 1));
	/* Before COMMIT: an entry dropped for a rollback costs a download, while one left for a
	 * deleted row would make a link fail (which control.c also survives). */
	json_t *ids = json_loads(PQgetvalue(r, 0, 2), 0, NULL);
	if (json_array_size(ids))
		link_forget(w, account_id, ids);
	json_decref(ids);
	if (deleted)
		*deleted = json_loads(PQgetvalue(r, 0, 3), 0, NULL);
	PQclear(r);
	return rc < 0 ? rc : (int)(n > 0x7fffffff ? 0x7fffffff : n);
}

int mirror_orphans_later(struct writer *w, long long run_id, long long account_id,
			 const char *message_ids)
{
	char run[24], acc[24];
	snprintf(run, sizeof(run), "%lld", run_id);
	snprintf(acc, sizeof(acc), "%lld", account_id);
	const char *p[] = { run, acc };
	/* A move's far side may be synced later in this run: its link (or content hash) then
	 * finds the row and keeps its id. Messages still without a location when the run ends go
	 * then (mirror_orphans_run_end). A run already over cannot wait. */
	PGresult *r = pg_exec_cached(w->pg, "defer orphan deletion",
				     "UPDATE sync_runs SET orphans_pending = true WHERE account_id = $2::bigint "
				     " AND run_id = $1::bigint AND status = 'running' RETURNING run_id", 2, p);
	if (!r)
		return -EIO;
	int deferred = PQntuples(r) == 1;
	PQclear(r);
	return deferred ? 0 : mirror_drop_orphans(w, account_id, message_ids, NULL);
}

int mirror_orphans_run_end(struct writer *w, long long account_id)
{
	char acc[24];
	snprintf(acc, sizeof(acc), "%lld", account_id);
	const char *p[] = { acc };
	/* Not while another run of the account is going: a push's run of INBOX alone may end
	 * while a full run is about to link INBOX's moved messages elsewhere. The last run to
	 * end does it (the caller holds the account's lock, so two ends do not race). */
	PGresult *r = pg_exec_cached(w->pg, "orphans of ended runs",
				     "UPDATE sync_runs SET orphans_pending = false WHERE account_id = $1::bigint "
				     " AND orphans_pending AND status <> 'running' AND NOT EXISTS (SELECT 1 "
				     " FROM sync_runs o WHERE o.account_id = $1::bigint AND o.status = 'running') "
				     "RETURNING run_id", 1, p);
	if (!r)
		return -EIO;
	int pending = PQntuples(r) > 0;
	PQclear(r);
	if (!pending)
		return 0;
	json_t *deleted = NULL;
	int n = mirror_drop_orphans(w, account_id, NULL, &deleted);
	/* Their locations' message_removed went out when they vanished, with message_deleted
	 * 0: now the rows go (or get deleted_at). Sent by the caller after its COMMIT. */
	size_t i;
	json_t *id;
	json_array_foreach(deleted, i, id)
		changes_add(w, "message_deleted", json_pack("{s:I, s:I}", "account_id",
				(json_int_t)account_id, "message_id", json_integer_value(id)));
	json_decref(deleted);
	if (n > 0)
		log_info("account_id=%lld messages_removed=%d msg=\"messages left without a location at "
			 "the end of the run removed\"", account_id, n);
	return n < 0 ? n : 0;
}

/* Every writer inserts an account's messages under this lock (store.c): deleting one while
 * another batch adds a location to it would lose that location. */
int mirror_lock_account(struct writer *w, long long account_id)
{
	char acc[24];
	snprintf(acc, sizeof(acc), "%lld", account_id);
	const char *p[] = { acc };
	return pg_cmd_cached(w->pg, "account lock", "SELECT pg_advisory_xact_lock(1, $1::int)", 1, p);
}

int mirror_flags(struct writer *w, json_t *rec)
{
	char folder[24], uidv[24];
	char *updates = json_dumps(json_object_get(rec, "updates"), JSON_COMPACT);
	if (!updates)
		return 1; /* nothing to apply */
	snprintf(folder, sizeof(folder), "%lld", jint(rec, "folder_id"));
	snprintf(uidv, sizeof(uidv), "%lld", jint(rec, "uidvalidity"));
	char acc[24];
	snprintf(acc, sizeof(acc), "%lld", jint(rec, "account_id"));
	const char *p[] = { folder, uidv, updates, acc };
	int rc = -EIO;
	if (pg_cmd(w->pg, "begin", "BEGIN", 0, NULL) < 0)
		goto out;
	/* Flags compare as sets, so a server that lists them in another order rewrites nothing;
	 * with CONDSTORE an older update (a record redelivered late) never undoes a newer one. */
	PGresult *r = pg_exec(
		w->pg, "apply flags",
		"WITH u AS (SELECT (e->>0)::bigint AS uid, "
		"  array(SELECT jsonb_array_elements_text(e->1)) AS flags, (e->>2)::bigint AS modseq "
		"  FROM jsonb_array_elements($3::jsonb) e), "
		"upd AS (UPDATE message_locations l SET flags = u.flags, modseq = coalesce(u.modseq, l.modseq) "
		"  FROM u WHERE l.account_id = $4::bigint AND l.folder_id = $1::bigint "
		"  AND l.uidvalidity = $2::bigint AND l.uid = u.uid "
		"  AND NOT (l.flags @> u.flags AND l.flags <@ u.flags) "
		"  AND (u.modseq IS NULL OR l.modseq IS NULL OR l.modseq <= u.modseq) "
		"  RETURNING l.message_id, l.uid, l.flags) "
		"SELECT count(*), coalesce(array_agg(DISTINCT m.conversation_id) FILTER "
		"  (WHERE m.conversation_id IS NOT NULL), '{}')::text, "
		" coalesce(json_agg(json_build_object('account_id', m.account_id, 'folder_id', $1::bigint, "
		"  'uidvalidity', $2::bigint, 'uid', upd.uid, 'message_id', upd.message_id, "
		"  'flags', upd.flags) ORDER BY upd.uid), '[]')::text "
		"FROM upd JOIN messages m ON m.account_id = $4::bigint AND m.id = upd.message_id",
		4, p);
	if (!r)
		goto fail;
	long long changed = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	int refreshed = refresh(w, jint(rec, "account_id"), PQgetvalue(r, 0, 1));
	json_t *notices = changed ? json_loads(PQgetvalue(r, 0, 2), 0, NULL) : NULL;
	PQclear(r);
	if (refreshed < 0 || pg_cmd(w->pg, "commit", "COMMIT", 0, NULL) < 0) {
		json_decref(notices);
		goto fail;
	}
	if (changed)
		log_info("folder=%s changed=%lld msg=\"flags applied\"", folder, changed);
	size_t i;
	json_t *n;
	json_array_foreach(notices, i, n)
		changes_add(w, "flags_changed", json_incref(n));
	json_decref(notices);
	changes_publish(w);
	rc = 1;
	goto out;
fail:
	PQclear(PQexec(w->pg, "ROLLBACK"));
out:
	free(updates);
	return rc;
}

int mirror_vanished(struct writer *w, json_t *rec)
{
	char folder[24], uidv[24], upto[24];
	long long account_id = jint(rec, "account_id");
	const char *present = json_string_value(json_object_get(rec, "present"));
	/* QRESYNC names the UIDs gone instead of those present. */
	const char *gone_set = json_string_value(json_object_get(rec, "removed"));
	snprintf(folder, sizeof(folder), "%lld", jint(rec, "folder_id"));
	snprintf(uidv, sizeof(uidv), "%lld", jint(rec, "uidvalidity"));
	snprintf(upto, sizeof(upto), "%lld", jint(rec, "upto"));
	char acc[24];
	snprintf(acc, sizeof(acc), "%lld", account_id);
	const char *p[] = { folder, uidv, upto, present ? present : "", gone_set, acc };
	if (pg_cmd(w->pg, "begin", "BEGIN", 0, NULL) < 0)
		return -EIO;
	if (mirror_lock_account(w, account_id) < 0)
		goto fail;
	/* present and removed are sequence sets ("1:40,42"): their ranges expand in SQL into
	 * hashed sets. Without removed, every stored UID up to upto not present went. */
	PGresult *r = pg_exec(
		w->pg, "drop vanished locations",
		"WITH p AS (SELECT split_part(x, ':', 1)::bigint AS lo, "
		"  coalesce(nullif(split_part(x, ':', 2), ''), split_part(x, ':', 1))::bigint AS hi "
		"  FROM regexp_split_to_table(nullif($4, ''), ',') x), "
		"r AS (SELECT split_part(x, ':', 1)::bigint AS lo, "
		"  coalesce(nullif(split_part(x, ':', 2), ''), split_part(x, ':', 1))::bigint AS hi "
		"  FROM regexp_split_to_table($5::text, ',') x), "
		"gone AS (DELETE FROM message_locations l WHERE l.account_id = $6::bigint "
		"  AND l.folder_id = $1::bigint "
		"  AND l.uidvalidity = $2::bigint AND l.uid <= $3::bigint "
		"  AND CASE WHEN $5::text IS NULL "
		"   THEN l.uid NOT IN (SELECT generate_series(least(lo, hi), greatest(lo, hi)) FROM p) "
		"   ELSE l.uid IN (SELECT generate_series(least(lo, hi), greatest(lo, hi)) FROM r) END "
		"  RETURNING l.message_id, l.uid) "
		"SELECT count(*), coalesce(array_agg(DISTINCT message_id), '{}')::text, "
		" coalesce(json_agg(json_build_array(uid, message_id) ORDER BY uid), '[]')::text FROM gone",
		6, p);
	if (!r)
		goto fail;
	long long gone = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	/* Messages left without a location go when the run ends (mirror_orphans_later): then
	 * each gets a message_deleted notice; at once only when no run of it is going. */
	int dropped = gone ? mirror_orphans_later(w, jint(rec, "run_id"), account_id,
						  PQgetvalue(r, 0, 1)) : 0;
	/* Which of those messages went with their last location (deleted, or deleted_at set). */
	PGresult *alive = NULL;
	if (dropped > 0 && w->st->cfg.changes_maxlen > 0) {
		const char *pa[] = { PQgetvalue(r, 0, 1), acc };
		alive = pg_exec(w->pg, "messages still stored",
				"SELECT coalesce(json_agg(m.id), '[]')::text FROM messages m "
				"WHERE m.account_id = $2::bigint AND m.id = ANY($1::bigint[]) "
				"AND m.deleted_at IS NULL", 2, pa);
		if (!alive)
			dropped = -EIO;
	}
	json_t *removed = gone ? json_loads(PQgetvalue(r, 0, 2), 0, NULL) : NULL;
	json_t *kept = alive ? json_loads(PQgetvalue(alive, 0, 0), 0, NULL) : NULL;
	PQclear(alive);
	PQclear(r);
	if (dropped < 0 || pg_cmd(w->pg, "commit", "COMMIT", 0, NULL) < 0) {
		json_decref(removed);
		json_decref(kept);
		goto fail;
	}
	size_t i, k;
	json_t *x, *y;
	json_array_foreach(removed, i, x) {
		json_int_t mid = json_integer_value(json_array_get(x, 1));
		int deleted = dropped > 0;
		json_array_foreach(kept, k, y)
			deleted &= json_integer_value(y) != mid;
		changes_add(w, "message_removed", json_pack("{s:I, s:s, s:s, s:I, s:I, s:b}",
			"account_id", (json_int_t)account_id, "folder_id", folder, "uidvalidity", uidv,
			"uid", json_integer_value(json_array_get(x, 0)), "message_id", mid,
			"message_deleted", deleted));
	}
	json_decref(removed);
	json_decref(kept);
	changes_publish(w);
	if (gone)
		log_info("folder=%s expunged=%lld messages_removed=%d msg=\"vanished UIDs applied\"",
			 folder, gone, dropped);
	return 1;
fail:
	PQclear(PQexec(w->pg, "ROLLBACK"));
	return -EIO;
}
