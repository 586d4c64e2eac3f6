/* See changes.h. Delivery is at least once where a redelivered stream entry can tell again
 * what it did (a message's location, a run's end) and best effort where it cannot (a flag,
 * expunge or folder change applied twice changes nothing the second time, so a writer killed
 * between COMMIT and XADD loses that notice): apps reconcile at sync_finished. */
#include "changes.h"
#include "log.h"
#include "pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_FIELDS = 8 };

void changes_add(struct writer *w, const char *type, json_t *fields)
{
	if (w->st->cfg.changes_maxlen <= 0 || !fields) {
		json_decref(fields);
		return;
	}
	if (!w->changes)
		w->changes = json_array();
	json_t *e = json_object();
	json_object_set_new(e, "type", json_string(type));
	json_object_update(e, fields);
	json_decref(fields);
	json_array_append_new(w->changes, e);
}

int changes_publish(struct writer *w)
{
	size_t n = json_array_size(w->changes), sent = 0;
	if (n == 0)
		return 0;
	redisContext *home = stage_home(w->st); /* {mp}:changes is global */
	if (!home)
		return -EIO;
	/* The texts live until the pipeline is read: hiredis copies arguments when appending,
	 * but numbers need a buffer each. */
	char num[MAX_FIELDS][32];
	char *dumped[MAX_FIELDS];
	size_t i;
	json_t *e;
	json_array_foreach(w->changes, i, e) {
		const char *names[MAX_FIELDS], *vals[MAX_FIELDS];
		size_t k = 0, nd = 0;
		const char *key;
		json_t *v;
		json_object_foreach(e, key, v) {
			if (k == MAX_FIELDS || json_is_null(v))
				continue;
			names[k] = key;
			if (json_is_string(v)) {
				vals[k] = json_string_value(v);
			} else if (json_is_integer(v)) {
				snprintf(num[k], sizeof(num[k]), "%lld", (long long)json_integer_value(v));
				vals[k] = num[k];
			} else if (json_is_boolean(v)) {
				vals[k] = json_is_true(v) ? "1" : "0";
			} else {
				dumped[nd] = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
				if (!dumped[nd])
					continue;
				vals[k] = dumped[nd++];
			}
			k++;
		}
		rstream_append_add_capped(home, w->st->cfg.key_changes, w->st->cfg.changes_maxlen,
					  k, names, vals, NULL);
		sent++;
		while (nd)
			free(dumped[--nd]);
	}
	json_array_clear(w->changes);
	if (rstream_collect(home, sent) < 0) {
		log_warn("count=%zu msg=\"change notices not published to %s\"", sent,
			 w->st->cfg.key_changes);
		return -EIO;
	}
	return 0;
}

int changes_sync_finished(struct writer *w, long long run_id)
{
	if (w->st->cfg.changes_maxlen <= 0)
		return 0;
	char run[24];
	snprintf(run, sizeof(run), "%lld", run_id);
	const char *p[] = { run };
	PGresult *r = pg_exec_cached(w->pg, "read finished run",
				     "SELECT json_build_object('run_id', r.run_id, 'account', a.name, "
				     " 'account_id', a.id, 'status', r.status, 'request_id', r.request_id, "
				     " 'error', coalesce(r.error, (SELECT f.name || ': ' || s.error "
				     "   FROM sync_run_folders s JOIN email_folders f ON f.account_id = s.account_id "
				     "   AND f.id = s.folder_id WHERE s.account_id = r.account_id "
				     "   AND s.run_id = r.run_id AND s.error IS NOT NULL ORDER BY f.name LIMIT 1)), "
				     " 'ingested_count', r.ingested_count)::text "
				     "FROM sync_runs r JOIN accounts a ON a.id = r.account_id "
				     "WHERE r.run_id = $1::bigint AND r.status <> 'running'", 1, p);
	if (!r)
		return -EIO;
	if (PQntuples(r) == 1)
		changes_add(w, "sync_finished", json_loads(PQgetvalue(r, 0, 0), 0, NULL));
	PQclear(r);
	return 0;
}

int changes_account_failed(struct writer *w, long long account_id, long long run_id,
			   const char *error)
{
	if (w->st->cfg.changes_maxlen <= 0)
		return 0;
	char acc[24];
	snprintf(acc, sizeof(acc), "%lld", account_id);
	const char *p[] = { acc };
	PGresult *r = pg_exec_cached(w->pg, "read account name", "SELECT name FROM accounts WHERE id = $1::bigint",
				     1, p);
	if (!r)
		return -EIO;
	if (PQntuples(r) == 1)
		changes_add(w, "account_failed",
			    json_pack("{s:I, s:s, s:I, s:s?}", "account_id", (json_int_t)account_id,
				      "account", PQgetvalue(r, 0, 0), "run_id", (json_int_t)run_id,
				      "error", error));
	PQclear(r);
	return 0;
}
