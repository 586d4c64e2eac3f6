/* Run bookkeeping in Postgres and job records in Redis. Job payloads are built by Postgres
 * (json_build_object) from the rows, so the job always matches the committed folder state. */
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "partition.h"
#include "pg.h"
#include "rstream.h"
#include "secretbox.h"

#include <jansson.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCOUNT_JSON                                                                          \
	"json_build_object('id', a.id, 'name', a.name, 'provider', a.provider, 'host', a.host, " \
	"'port', a.port, 'tls', a.tls, 'username', a.username, 'auth', a.auth, 'secret_ref', " \
	"a.secret_ref, 'secret_box', " SECRETBOX_SQL_JSON ", 'ca_file', a.ca_file, 'tls_verify', a.tls_verify, 'email', a.email, "     \
	"'clean_off', coalesce(a.options->'clean_off', '[]'::jsonb), "                            \
	"'no_condstore', coalesce((a.options->>'no_condstore')::boolean, false), "                \
	"'no_qresync', coalesce((a.options->>'no_qresync')::boolean, false), "                    \
	"'max_connections', coalesce((a.options->>'max_connections')::int, 0), "                 \
	"'backfill', coalesce((a.options->>'backfill')::boolean, false))"

/* XADDs column 0 of every row, pipelined, to the job stream of the partition of the account
 * in column acc_col. With first_col >= 0, a row whose column first_col is true (a folder never
 * synced) goes to {mp}:jobs:first, which fetchers read only when {mp}:jobs is empty: one
 * account's first sync does not hold up everyone's polls. stream names the stream ("jobs",
 * "jobs:backfill"). Returns the number of rows queued, or -EIO when rows were to be queued and
 * none was. When some were and others not (a partition's server did not answer), *failed
 * (failed may be NULL) lists the row numbers not queued as a JSON array (caller frees), so
 * the caller takes back only those. */
static int enqueue_rows_split(redisContext *rc, const struct mp_config *cfg, PGresult *r,
			      int acc_col, int first_col, const char *stream, char **failed)
{
	int n = PQntuples(r), nfailed = 0;
	long np = cfg->redis_partitions;
	size_t *sent = calloc((size_t)np, sizeof(*sent));
	redisContext **conn = calloc((size_t)np, sizeof(*conn));
	char *state = calloc((size_t)np, 1); /* 0 not asked yet, 1 connected, 2 failed */
	int rc_out = -ENOMEM;
	if (failed)
		*failed = NULL;
	if (!sent || !conn || !state)
		goto out;
	for (int i = 0; i < n; i++) {
		int p = partition_of(cfg, strtoll(PQgetvalue(r, i, acc_col), NULL, 10));
		if (!state[p]) {
			conn[p] = partition_redis(cfg, rc, p);
			state[p] = conn[p] ? 1 : 2;
		}
		if (state[p] == 2)
			continue;
		const char *names[] = { "job" };
		const char *vals[] = { PQgetvalue(r, i, 0) };
		int first = first_col >= 0 && !strcmp(PQgetvalue(r, i, first_col), "t");
		char key[128], name[64];
		snprintf(name, sizeof(name), "%s%s", stream, first ? ":first" : "");
		partition_key(cfg, p, name, key, sizeof(key));
		rstream_append_add(conn[p], key, 1, names, vals, NULL);
		sent[p]++;
	}
	/* Partitions sharing a server share its connection: its replies come in order. */
	for (long p = 0; p < np; p++)
		if (sent[p] && rstream_collect(conn[p], sent[p]) < 0)
			state[p] = 2;
	json_t *rows = json_array();
	for (int i = 0; i < n; i++)
		if (state[partition_of(cfg, strtoll(PQgetvalue(r, i, acc_col), NULL, 10))] == 2) {
			json_array_append_new(rows, json_integer(i));
			nfailed++;
		}
	if (nfailed && nfailed < n && failed)
		*failed = json_dumps(rows, JSON_COMPACT);
	json_decref(rows);
	metrics_add(MX_JOBS_ENQUEUED, n - nfailed);
	rc_out = nfailed && nfailed == n ? -EIO : n - nfailed;
out:
	free(state);
	free(conn);
	free(sent);
	return rc_out;
}

static int enqueue_rows(redisContext *rc, const struct mp_config *cfg, PGresult *r, int acc_col)
{
	return enqueue_rows_split(rc, cfg, r, acc_col, -1, "jobs", NULL);
}

/* Takes back the claim of the rows of r listed in failed (row numbers, from
 * enqueue_rows_split) with sql, whose two parameters are columns col1 and col2 of the row.
 * 0, or -EIO. */
static int unmark_rows(PGconn *pg, PGresult *r, const char *failed, int col1, int col2,
		       const char *sql)
{
	json_t *rows = json_loads(failed, 0, NULL), *v;
	size_t k;
	int rc = rows ? 0 : -EIO;
	json_array_foreach(rows, k, v) {
		int i = (int)json_integer_value(v);
		const char *params[] = { PQgetvalue(r, i, col1), PQgetvalue(r, i, col2) };
		if (pg_cmd(pg, "take back an unqueued job", sql, 2, params) < 0) {
			rc = -EIO;
			break;
		}
	}
	json_decref(rows);
	return rc;
}

/* The epoch of partition p's server (rstream.h redis_epoch) into buf; NULL when unreachable. */
static const char *partition_epoch(redisContext *rc, const struct mp_config *cfg, int p,
				   char *buf, size_t size)
{
	char key[128];
	partition_key(cfg, p, "epoch", key, sizeof(key));
	redisContext *c = partition_redis(cfg, rc, p);
	return c && redis_epoch(c, key, buf, size) == 0 ? buf : NULL;
}

static long long start_run(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
			   long long account_id, const char *const *folders, size_t nfolders,
			   const char *request_id)
{
	char acc[24], *filter = NULL;
	long long run_id = -EIO;
	PGresult *r = NULL;

	/* The folder filter travels as JSON that Postgres turns into text[], so names with
	 * quotes, commas or braces need no array-literal escaping here. */
	json_t *names = json_array();
	for (size_t i = 0; i < nfolders; i++)
		json_array_append_new(names, json_string(folders[i]));
	filter = json_dumps(names, JSON_COMPACT);
	json_decref(names);
	if (!filter)
		return -ENOMEM;

	snprintf(acc, sizeof(acc), "%lld", account_id);
	/* The run remembers which Redis carries its work, read before its job is queued there:
	 * the scheduler closes runs of an older epoch, whose work a restart emptied away. No
	 * epoch (Redis unreachable) leaves the run to fail below, when its job cannot be queued. */
	char epoch[64];
	const char *params[] = { acc, filter,
				 partition_epoch(rc, cfg, partition_of(cfg, account_id), epoch, sizeof(epoch)),
				 request_id };
	/* The run is committed before its job exists: a fetcher and writer fast enough to finish
	 * the job before an open transaction commits would otherwise update a row they cannot
	 * see yet, and the run would never end. */
	r = pg_exec_cached(pg, "create sync run",
			   "WITH run AS (INSERT INTO sync_runs (account_id, folder_filter, redis_epoch, request_id) "
			   "  SELECT $1::bigint, coalesce(array(SELECT jsonb_array_elements_text($2::jsonb)), '{}'), $3, $4 "
			   "  RETURNING run_id, account_id) "
			   "SELECT json_build_object('type', 'list_folders', 'job_id', run.run_id || ':list', "
			   "  'run_id', run.run_id, 'account_id', a.id, 'account', " ACCOUNT_JSON ", "
			   /* The stored folders, for telling a rename by MAILBOXID (fetcher/objectid.c). */
			   "  'known_folders', (SELECT coalesce(json_agg(json_build_object('name', f.name, "
			   "    'mailbox_id', f.mailbox_id)), '[]') FROM email_folders f WHERE f.account_id = a.id))::text, "
			   "  run.run_id, a.id FROM run JOIN accounts a ON a.id = run.account_id",
			   4, params);
	if (!r || PQntuples(r) != 1)
		goto out;
	run_id = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	if (enqueue_rows(rc, cfg, r, 2) < 0) {
		const char *p2[] = { PQgetvalue(r, 0, 1) };
		pg_cmd(pg, "fail unqueued run",
		       "UPDATE sync_runs SET status = 'failed', finished_at = now(), error_count = 1, "
		       " error = 'the job could not be queued in Redis' WHERE run_id = $1::bigint", 1, p2);
		run_id = -EIO;
	}
out:
	PQclear(r);
	free(filter);
	return run_id;
}

int jobs_start_due_runs(PGconn *pg, redisContext *rc, const struct mp_config *cfg, long limit)
{
	char lim[24], nparts[24], epoch[64];
	snprintf(lim, sizeof(lim), "%ld", limit);
	snprintf(nparts, sizeof(nparts), "%ld", cfg->redis_partitions);
	/* Each run records the epoch of its own partition's server: a JSON array by partition. */
	json_t *epochs = json_array();
	for (long p = 0; p < cfg->redis_partitions; p++) {
		const char *e = partition_epoch(rc, cfg, (int)p, epoch, sizeof(epoch));
		json_array_append_new(epochs, e ? json_string(e) : json_null());
	}
	char *epochs_json = json_dumps(epochs, JSON_COMPACT);
	json_decref(epochs);
	if (!epochs_json)
		return -ENOMEM;
	const char *params[] = { lim, epochs_json, nparts };
	/* The same predicate as the accounts_due index (migration 012), so the oldest due
	 * accounts come off the index and the cost of a batch does not grow with the table.
	 * Committed before the jobs exist, as in start_run. */
	PGresult *r = pg_exec_cached(
		pg, "start due runs",
		"WITH due AS (SELECT d.id FROM accounts d WHERE d.state IN ('active', 'backoff') "
		"  AND d.sync_interval_s > 0 AND d.next_sync_at <= now() "
		"  AND NOT EXISTS (SELECT 1 FROM sync_runs r WHERE r.account_id = d.id AND r.status = 'running') "
		"  ORDER BY d.next_sync_at LIMIT $1::int FOR UPDATE SKIP LOCKED), "
		"acc AS (UPDATE accounts a SET next_sync_at = now() + "
		"  make_interval(secs => a.sync_interval_s * (1 + 0.1 * random())) "
		"  FROM due WHERE a.id = due.id RETURNING a.*), "
		"run AS (INSERT INTO sync_runs (account_id, folder_filter, redis_epoch) "
		"  SELECT id, '{}', $2::jsonb ->> (id % $3::int)::int FROM acc RETURNING run_id, account_id) "
		"SELECT json_build_object('type', 'list_folders', 'job_id', run.run_id || ':list', "
		"  'run_id', run.run_id, 'account_id', a.id, 'account', " ACCOUNT_JSON ")::text, "
		"  run.run_id, a.name, a.id FROM run JOIN acc a ON a.id = run.account_id",
		3, params);
	free(epochs_json);
	if (!r)
		return -EIO;
	int n = PQntuples(r);
	char *failed = NULL;
	int queued = n > 0 ? enqueue_rows_split(rc, cfg, r, 3, -1, "jobs", &failed) : 0;
	if (queued < 0 || failed) {
		/* The runs whose jobs are not known queued fail (all of them, or those of a partition
		 * whose server did not answer), and their accounts come round again. */
		json_t *rows = failed ? json_loads(failed, 0, NULL) : NULL, *ids = json_array();
		for (int i = 0; i < n; i++) {
			int lost = !failed;
			size_t k;
			json_t *v;
			json_array_foreach(rows, k, v)
				lost |= json_integer_value(v) == i;
			if (lost)
				json_array_append_new(ids, json_integer(strtoll(PQgetvalue(r, i, 1), NULL, 10)));
		}
		json_decref(rows);
		free(failed);
		char *list = json_dumps(ids, JSON_COMPACT);
		json_decref(ids);
		const char *p2[] = { list };
		pg_cmd(pg, "fail unqueued runs",
		       "UPDATE sync_runs SET status = 'failed', finished_at = now(), error_count = 1, "
		       " error = 'the job could not be queued in Redis' "
		       "WHERE run_id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)", 1, p2);
		free(list);
		if (queued < 0) {
			PQclear(r);
			return -EIO;
		}
	}
	for (int i = 0; i < n; i++)
		log_debug("account=%s run=%s msg=\"scheduled sync started\"", PQgetvalue(r, i, 2),
			  PQgetvalue(r, i, 1));
	PQclear(r);
	return queued;
}

long long jobs_start_run(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
			 long long account_id, const char *const *folders, size_t nfolders)
{
	return start_run(pg, rc, cfg, account_id, folders, nfolders, NULL);
}

static long long start_folder_run(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
				  long long account_id, const char *const *folders, size_t nfolders,
				  const char *request_id)
{
	char acc[24], epoch[64];
	json_t *names = json_array();
	for (size_t i = 0; i < nfolders; i++)
		json_array_append_new(names, json_string(folders[i]));
	char *filter = json_dumps(names, JSON_COMPACT);
	json_decref(names);
	if (!filter)
		return -ENOMEM;
	snprintf(acc, sizeof(acc), "%lld", account_id);
	const char *params[] = { acc, filter,
				 partition_epoch(rc, cfg, partition_of(cfg, account_id), epoch, sizeof(epoch)),
				 request_id };
	/* Listed already, since every folder it names is known: its folder jobs go out at once
	 * (committed first, as in jobs_start_run), which saves a login and a LIST per push. */
	PGresult *r = pg_exec(
		pg, "create folder run",
		"WITH want AS (SELECT DISTINCT jsonb_array_elements_text($2::jsonb) AS name), "
		"known AS (SELECT f.id FROM email_folders f JOIN want w ON w.name = f.name "
		"  WHERE f.account_id = $1::bigint), "
		"run AS (INSERT INTO sync_runs (account_id, folder_filter, listed, redis_epoch, request_id) "
		"  SELECT $1::bigint, array(SELECT name FROM want), true, $3, $4 "
		"  WHERE (SELECT count(*) FROM known) = (SELECT count(*) FROM want) "
		"  AND (SELECT count(*) FROM want) > 0 RETURNING run_id), "
		"ins AS (INSERT INTO sync_run_folders (account_id, run_id, folder_id) "
		"  SELECT $1::bigint, run.run_id, known.id FROM run, known RETURNING run_id) "
		"SELECT run_id, (SELECT count(*) FROM ins) FROM run",
		4, params);
	free(filter);
	if (!r)
		return -EIO;
	long long run_id = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	PQclear(r);
	if (run_id > 0 && jobs_enqueue_queued(pg, rc, cfg, account_id, run_id) < 0) {
		char run[24];
		snprintf(run, sizeof(run), "%lld", run_id);
		const char *p2[] = { run };
		pg_cmd(pg, "fail unqueued run",
		       "UPDATE sync_runs SET status = 'failed', finished_at = now(), error_count = 1, "
		       " error = 'the job could not be queued in Redis' WHERE run_id = $1::bigint", 1, p2);
		return -EIO;
	}
	return run_id;
}

long long jobs_start_folder_run(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
				long long account_id, const char *const *folders, size_t nfolders)
{
	return start_folder_run(pg, rc, cfg, account_id, folders, nfolders, NULL);
}

long long jobs_start_requested_run(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
				   long long account_id, const char *const *folders, size_t nfolders,
				   const char *request_id)
{
	long long run = nfolders ? start_folder_run(pg, rc, cfg, account_id, folders, nfolders,
						    request_id) : 0;
	if (run == 0)
		run = start_run(pg, rc, cfg, account_id, folders, nfolders, request_id);
	return run;
}

/* One job per folder at a time: a younger run's job of a folder waits until the older one's
 * cursor is committed, then goes out built from the folder's new state, so it never downloads
 * again what the older job is still delivering (a push that arrives during a sync, a poison
 * message fetched twice). And at most MAILPIPE_ACCOUNT_JOBS_MAX jobs of one account out at
 * once, so an account of a hundred folders cannot fill every fetcher: the rest go as its jobs
 * end (the writer calls this after every cursor). A job carries the folder as stored, for the
 * mirror (a STATUS that matches it ends the job), and the UIDs above the cursor already stored,
 * as ranges ("4:9,12": the cursor waits below a UID the server did not deliver, or a run was
 * cut short, and what is stored need not be downloaded again). SCOPE narrows the folders
 * looked at, in flight and queued, to one account's: the writer's calls after each cursor
 * then cost that account's rows, not every account's (with 1,000 accounts syncing, the
 * unscoped form was a tenth of PostgreSQL's CPU). $1 account, $2 the cap, $3 run or 0. */
#define CLAIM_QUEUED_SQL(SCOPE) \
	"WITH inflight AS (SELECT s.account_id, count(*) AS n FROM sync_run_folders s " \
	"  WHERE s.status = 'queued' AND s.enqueued_at IS NOT NULL " SCOPE " GROUP BY s.account_id), " \
	"cand AS (SELECT s.account_id, s.run_id, s.folder_id, coalesce(i.n, 0) + row_number() OVER " \
	"  (PARTITION BY s.account_id ORDER BY s.run_id, s.folder_id) AS nth " \
	"  FROM sync_run_folders s LEFT JOIN inflight i ON i.account_id = s.account_id " \
	"  WHERE s.status = 'queued' AND s.enqueued_at IS NULL " SCOPE " " \
	"  AND ($3::bigint = 0 OR s.run_id = $3::bigint) " \
	"  AND NOT EXISTS (SELECT 1 FROM sync_run_folders o WHERE o.account_id = s.account_id " \
	"    AND o.folder_id = s.folder_id AND o.status = 'queued' AND o.run_id < s.run_id)), " \
	"q AS (SELECT s.account_id, s.run_id, s.folder_id FROM sync_run_folders s JOIN cand c " \
	"  ON c.account_id = s.account_id AND c.run_id = s.run_id AND c.folder_id = s.folder_id " \
	"  WHERE c.nth <= $2::bigint " \
	"  ORDER BY s.run_id, s.folder_id LIMIT 1000 FOR UPDATE OF s SKIP LOCKED), " \
	"u AS (UPDATE sync_run_folders s SET enqueued_at = now() FROM q " \
	"  WHERE s.account_id = q.account_id AND s.run_id = q.run_id AND s.folder_id = q.folder_id " \
	"  RETURNING s.run_id, s.folder_id) " \
	"SELECT json_build_object('type', 'sync_folder', 'job_id', u.run_id || ':' || f.id, " \
	"  'run_id', u.run_id, 'account_id', a.id, 'account', " ACCOUNT_JSON ", " \
	"  'folder_id', f.id, 'folder', f.name, 'wire_name', f.wire_name, " \
	"  'uidvalidity', coalesce(f.uidvalidity, 0), 'last_uid', f.last_uid, " \
	"  'highest_modseq', coalesce(f.highest_modseq, 0), " \
	"  'uidnext', coalesce(f.uidnext, 0), 'message_count', f.message_count, " \
	"  'unread_count', f.unread_count, " \
	"  'stored_count', (SELECT count(*) FROM message_locations l WHERE l.account_id = f.account_id " \
	"    AND l.folder_id = f.id AND l.uidvalidity = f.uidvalidity AND l.uid <= f.last_uid), " \
	"  'flags_due', f.last_flag_scan_at IS NULL OR f.last_flag_scan_at < now() - " \
	"    make_interval(secs => coalesce((a.options->>'flag_scan_s')::int, 600)), " \
	"  'stored', (SELECT string_agg(CASE WHEN lo = hi THEN lo::text ELSE lo || ':' || hi END, " \
	"    ',' ORDER BY lo) FROM (SELECT min(uid) AS lo, max(uid) AS hi FROM " \
	"    (SELECT l.uid, l.uid - row_number() OVER (ORDER BY l.uid) AS grp " \
	"     FROM message_locations l WHERE l.account_id = f.account_id AND l.folder_id = f.id " \
	"     AND l.uidvalidity = f.uidvalidity " \
	"     AND l.uid > f.last_uid) g GROUP BY grp) ranges), " \
	"  'window_start', CASE WHEN f.last_uid = 0 AND a.initial_window_days > 0 THEN " \
	"    to_char(now() - make_interval(days => a.initial_window_days), 'FMDD-Mon-YYYY') END)::text, " \
	"  f.uidvalidity IS NULL, f.account_id, u.run_id, u.folder_id " \
	"FROM u JOIN email_folders f ON f.id = u.folder_id JOIN accounts a ON a.id = f.account_id"

int jobs_enqueue_queued(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
			long long account_id, long long run_id)
{
	char acc[24], run[24], cap[24];
	snprintf(acc, sizeof(acc), "%lld", account_id);
	snprintf(run, sizeof(run), "%lld", run_id);
	snprintf(cap, sizeof(cap), "%ld", cfg->account_jobs_max);
	const char *params[] = { acc, cap, run };
	int n = -EIO;

	if (pg_cmd(pg, "begin", "BEGIN", 0, NULL) < 0)
		return -EIO;
	/* Two statements, not one with "$1 = 0 OR": a cached generic plan could not use the
	 * account's index for the scoped form. */
	PGresult *r = account_id
		? pg_exec_cached(pg, "claim queued folders of the account",
				 CLAIM_QUEUED_SQL("AND s.account_id = $1::bigint"), 3, params)
		: pg_exec_cached(pg, "claim queued folders",
				 CLAIM_QUEUED_SQL("AND $1::bigint = 0"), 3, params);
	if (!r)
		goto fail;
	char *failed = NULL;
	n = enqueue_rows_split(rc, cfg, r, 2, 1, "jobs", &failed);
	/* Jobs of a partition whose server did not answer are claimed again next time; the others
	 * are queued and stay marked, or they would be queued again on every call. */
	if (n >= 0 && failed && unmark_rows(pg, r, failed, 3, 4,
					    "UPDATE sync_run_folders SET enqueued_at = NULL "
					    "WHERE run_id = $1::bigint AND folder_id = $2::bigint") < 0)
		n = -EIO;
	free(failed);
	PQclear(r);
	if (n < 0 || pg_cmd(pg, "commit", "COMMIT", 0, NULL) < 0)
		goto fail;
	return n;
fail:
	PQclear(PQexec(pg, "ROLLBACK"));
	return -EIO;
}

int jobs_enqueue_backfill(PGconn *pg, redisContext *rc, const struct mp_config *cfg)
{
	char chunk[24];
	snprintf(chunk, sizeof(chunk), "%ld", cfg->backfill_chunk);
	const char *params[] = { chunk };
	if (pg_cmd(pg, "begin", "BEGIN", 0, NULL) < 0)
		return -EIO;
	/* One job per folder in flight; a job lost with its fetcher is sent again after ten
	 * minutes. Jobs carry no run: backfill is not part of any sync's summary. */
	PGresult *r = pg_exec(
		pg, "claim backfill",
		"WITH q AS (SELECT f.id FROM email_folders f JOIN accounts a ON a.id = f.account_id "
		"  WHERE f.backfill_uid > 1 AND a.state = 'active' "
		"  AND coalesce((a.options->>'backfill')::boolean, false) "
		"  AND (f.backfill_enqueued_at IS NULL OR f.backfill_enqueued_at < now() - interval '10 minutes') "
		"  ORDER BY f.backfill_enqueued_at NULLS FIRST, f.id LIMIT 100 FOR UPDATE OF f SKIP LOCKED), "
		"u AS (UPDATE email_folders f SET backfill_enqueued_at = now() FROM q WHERE f.id = q.id "
		"  RETURNING f.*) "
		"SELECT json_build_object('type', 'backfill_folder', 'job_id', 'bf:' || u.id || ':' || u.backfill_uid, "
		"  'run_id', 0, 'account_id', a.id, 'account', " ACCOUNT_JSON ", "
		"  'folder_id', u.id, 'folder', u.name, 'wire_name', u.wire_name, "
		"  'uidvalidity', u.uidvalidity, 'below', u.backfill_uid, 'chunk', $1::int)::text, a.id, u.id "
		"FROM u JOIN accounts a ON a.id = u.account_id",
		1, params);
	if (!r)
		goto fail;
	char *failed = NULL;
	int n = enqueue_rows_split(rc, cfg, r, 1, -1, "jobs:backfill", &failed);
	if (n >= 0 && failed && unmark_rows(pg, r, failed, 1, 2, /* as in jobs_enqueue_queued */
					    "UPDATE email_folders SET backfill_enqueued_at = NULL "
					    "WHERE account_id = $1::bigint AND id = $2::bigint") < 0)
		n = -EIO;
	free(failed);
	PQclear(r);
	if (n < 0 || pg_cmd(pg, "commit", "COMMIT", 0, NULL) < 0)
		goto fail;
	return n;
fail:
	PQclear(PQexec(pg, "ROLLBACK"));
	return -EIO;
}

int jobs_finish_run_if_done(PGconn *pg, long long run_id)
{
	char run[24];
	snprintf(run, sizeof(run), "%lld", run_id);
	const char *params[] = { run };
	PGresult *r = pg_exec_cached(
		pg, "finish run",
		"WITH t AS (SELECT count(*) FILTER (WHERE status = 'queued') AS queued, "
		"  count(*) FILTER (WHERE status = 'failed') AS failed, "
		"  count(*) FILTER (WHERE status = 'incomplete') AS incomplete, "
		"  coalesce(sum(missing_count), 0) AS missing, "
		"  coalesce(sum(fetched_count), 0) AS fetched, coalesce(sum(ingested_count), 0) AS ingested, "
		"  coalesce(sum(duplicate_count), 0) AS dups FROM sync_run_folders WHERE run_id = $1::bigint) "
		"UPDATE sync_runs r SET finished_at = now(), "
		"  status = CASE WHEN t.failed > 0 OR r.error IS NOT NULL THEN 'failed' "
		"    WHEN t.incomplete > 0 THEN 'incomplete' ELSE 'ok' END, "
		"  fetched_count = t.fetched, ingested_count = t.ingested, duplicate_count = t.dups, "
		"  missing_count = t.missing, "
		"  error_count = t.failed + (r.error IS NOT NULL)::int "
		"FROM t WHERE r.run_id = $1::bigint AND r.status = 'running' "
		"  AND (r.listed OR r.error IS NOT NULL) AND t.queued = 0 RETURNING r.run_id",
		1, params);
	if (!r)
		return -EIO;
	int finished = PQntuples(r) > 0;
	PQclear(r);
	if (finished) {
		/* The account shows the outcome of its last run: its first error, or none. */
		pg_cmd_cached(pg, "account outcome",
			      "UPDATE accounts a SET last_error = CASE WHEN r.status = 'ok' THEN NULL ELSE "
			      " coalesce(r.error, (SELECT f.name || ': ' || s.error FROM sync_run_folders s "
			      "  JOIN email_folders f ON f.id = s.folder_id WHERE s.run_id = r.run_id "
			      "  AND s.status IN ('failed', 'incomplete') ORDER BY s.status = 'incomplete', f.name "
			      "  LIMIT 1)) END "
			      "FROM sync_runs r WHERE r.run_id = $1::bigint AND a.id = r.account_id",
			      1, params);
		return 1;
	}
	r = pg_exec_cached(pg, "run status", "SELECT status FROM sync_runs WHERE run_id = $1::bigint", 1,
			   params);
	if (!r)
		return -EIO;
	finished = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "running") != 0;
	PQclear(r);
	return finished ? 2 : 0;
}

void jobs_emit_event(redisContext *rc, const struct mp_config *cfg, const char *type,
		     long long run_id, long long account_id, const char *detail_json)
{
	char run[24], acc[24];
	snprintf(run, sizeof(run), "%lld", run_id);
	snprintf(acc, sizeof(acc), "%lld", account_id);
	const char *names[] = { "type", "run_id", "account_id", "detail" };
	const char *vals[] = { type, run, acc, detail_json ? detail_json : "{}" };
	if (!rc) {
		log_warn("run=%lld msg=\"event %s not published: Redis unreachable\"", run_id, type);
		return;
	}
	/* MAXLEN keeps the event stream a window, not a log: readers only wait for new events. */
	redisReply *r = redisCommand(rc, "XADD %s MAXLEN ~ 10000 * %s %s %s %s %s %s %s %s",
				     cfg->key_events, names[0], vals[0], names[1], vals[1],
				     names[2], vals[2], names[3], vals[3]);
	if (!r || r->type == REDIS_REPLY_ERROR)
		log_warn("run=%lld msg=\"event %s not published\"", run_id, type);
	freeReplyObject(r);
}
