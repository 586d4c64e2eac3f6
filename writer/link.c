/* Stable ids on the writer's side: `link` records (a UID the fetcher matched by its EMAILID or
 * X-GM-MSGID to a stored message: a new location, no body), messages.email_id, and the Redis
 * hash {mp}:emailid:<account> (server id -> messages.id of committed messages) the fetchers
 * look ids up in. The hash is a cache of the database: written after COMMIT, entries dropped
 * with their message, and losing it costs only downloads. Called by main.c, store.c,
 * mirror.c and control.c. */
#include "link.h"
#include "log.h"
#include "pg.h"
#include "uidset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HSET/HDEL arguments sent at a time. */
#define LINK_REDIS_CHUNK 500

static long long jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void hash_key(char *buf, size_t size, const struct writer *w, long long account_id)
{
	snprintf(buf, size, "%s%lld", w->st->cfg.key_emailid_prefix, account_id);
}

int link_store_ids(struct writer *w, json_t *rows)
{
	if (!json_array_size(rows))
		return 0;
	/* The first id seen stays: the same content under a second id (two APPENDs) still
	 * finds this row through the hash. */
	PGresult *r = pg_exec_json(w->pg, "store email ids",
		"UPDATE messages m SET email_id = x.e FROM jsonb_to_recordset($1::jsonb) "
		" AS x(a bigint, m bigint, e text) WHERE m.id = x.m AND m.account_id = x.a "
		" AND m.email_id IS NULL", rows);
	if (!r)
		return -EIO;
	PQclear(r);
	return 0;
}

/* Reads the replies of *pending pipelined commands. 0, or -1 when Redis failed. */
static int drain(redisContext *rc, size_t *pending)
{
	for (; *pending; (*pending)--) {
		redisReply *r = NULL;
		if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
			*pending = 0;
			return -1;
		}
		freeReplyObject(r);
	}
	return 0;
}

void link_remember(struct writer *w, json_t *rows)
{
	redisContext *rc = w->st->rc;
	if (!rc) /* a writer without Redis (tests' drivers): nobody links */
		return;
	size_t pending = 0, i;
	json_t *x;
	/* Nothing to tell, no Redis round trip (and the bench and thread drivers have no Redis). */
	if (!json_array_size(rows))
		return;
	json_array_foreach(rows, i, x) {
		char key[200], mid[24];
		hash_key(key, sizeof(key), w, jint(x, "a"));
		snprintf(mid, sizeof(mid), "%lld", jint(x, "m"));
		const char *argv[] = { "HSET", key, json_string_value(json_object_get(x, "e")), mid };
		if (!argv[2])
			continue;
		redisAppendCommandArgv(rc, 4, argv, NULL);
		if (++pending == LINK_REDIS_CHUNK && drain(rc, &pending) < 0)
			break;
	}
	if (drain(rc, &pending) < 0 || rc->err)
		log_warn("msg=\"email id hash not updated (%s): moved messages will be downloaded "
			 "again\"", rc->errstr);
}

void link_forget(struct writer *w, long long account_id, json_t *pairs)
{
	/* Only an entry that still names the deleted row goes: a newer one (the same content
	 * stored again since) stays. */
	static const char script[] =
		"for i = 1, #ARGV, 2 do if redis.call('hget', KEYS[1], ARGV[i]) == ARGV[i + 1] then "
		"redis.call('hdel', KEYS[1], ARGV[i]) end end return 0";
	char key[200];
	size_t n = w->st->rc ? json_array_size(pairs) : 0;
	hash_key(key, sizeof(key), w, account_id);
	for (size_t at = 0; at < n; at += LINK_REDIS_CHUNK) {
		size_t k = n - at < LINK_REDIS_CHUNK ? n - at : LINK_REDIS_CHUNK, argc = 4;
		const char **argv = calloc(4 + 2 * k, sizeof(*argv));
		char (*mids)[24] = calloc(k, sizeof(*mids));
		if (!argv || !mids) {
			free(argv);
			free(mids);
			return;
		}
		argv[0] = "EVAL";
		argv[1] = script;
		argv[2] = "1";
		argv[3] = key;
		for (size_t i = 0; i < k; i++) {
			json_t *p = json_array_get(pairs, at + i);
			const char *e = json_string_value(json_array_get(p, 0));
			if (!e)
				continue;
			snprintf(mids[i], sizeof(mids[i]), "%lld", json_integer_value(json_array_get(p, 1)));
			argv[argc++] = e;
			argv[argc++] = mids[i];
		}
		redisReply *r = redisCommandArgv(w->st->rc, (int)argc, argv, NULL);
		if (!r || r->type == REDIS_REPLY_ERROR)
			log_warn("account_id=%lld msg=\"email ids of deleted messages not dropped from the "
				 "hash: a link to them falls back to a download\"", account_id);
		freeReplyObject(r);
		free(argv);
		free(mids);
	}
}

int link_apply(struct writer *w, json_t *rec)
{
	char acc[24], folder[24], uidv[24], run[24];
	long long account_id = jint(rec, "account_id");
	char *links = json_dumps(json_object_get(rec, "links"), JSON_COMPACT);
	if (!links)
		return 1;
	snprintf(acc, sizeof(acc), "%lld", account_id);
	snprintf(folder, sizeof(folder), "%lld", jint(rec, "folder_id"));
	snprintf(uidv, sizeof(uidv), "%lld", jint(rec, "uidvalidity"));
	snprintf(run, sizeof(run), "%lld", jint(rec, "run_id"));
	const char *p[] = { links, acc, folder, uidv };
	json_t *gone = NULL;
	long long added = 0, missed = 0;
	int rc = -EIO;
	if (pg_cmd(w->pg, "begin", "BEGIN", 0, NULL) < 0)
		goto out;
	/* The same lock as a batch of store.c and the orphan deletion of mirror.c: a message is
	 * either still there and gets its location, or gone and reported below. */
	if (mirror_lock_account(w, account_id) < 0)
		goto fail;
	PGresult *r = pg_exec(
		w->pg, "apply links",
		"WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) "
		"  AS x(u bigint, m bigint, e text, fl text[], s bigint)), "
		"ins AS (INSERT INTO message_locations (account_id, message_id, folder_id, uidvalidity, "
		"  uid, flags, modseq) "
		"  SELECT $2::bigint, x.m, $3::bigint, $4::bigint, x.u, coalesce(x.fl, '{}'), x.s FROM x "
		"  JOIN messages m ON m.id = x.m AND m.account_id = $2::bigint "
		/* a folder removed meanwhile takes no location (its cursor goes with it) */
		"  WHERE EXISTS (SELECT 1 FROM email_folders f WHERE f.account_id = $2::bigint "
		"   AND f.id = $3::bigint) ORDER BY x.u "
		"  ON CONFLICT (account_id, folder_id, uidvalidity, uid) DO NOTHING RETURNING message_id), "
		/* A message kept with deleted_at (keep-deleted) is back where the server has it. */
		"back AS (UPDATE messages m SET deleted_at = NULL WHERE m.account_id = $2::bigint "
		"  AND m.id IN (SELECT message_id FROM ins) AND m.deleted_at IS NOT NULL RETURNING m.id) "
		"SELECT (SELECT count(*) FROM ins), "
		"  (SELECT coalesce(array_agg(DISTINCT m.conversation_id) FILTER (WHERE m.conversation_id "
		"    IS NOT NULL), '{}')::text FROM messages m WHERE m.account_id = $2::bigint "
		"    AND m.id IN (SELECT message_id FROM ins)), "
		"  (SELECT coalesce(json_agg(json_build_array(x.e, x.m, x.u)), '[]')::text FROM x "
		"    WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = x.m AND m.account_id = $2::bigint)), "
		"  (SELECT count(*) FROM back)",
		4, p);
	if (!r)
		goto fail;
	added = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	gone = json_loads(PQgetvalue(r, 0, 2), 0, NULL);
	char accs[32];
	snprintf(accs, sizeof(accs), "{%lld}", account_id);
	const char *pc[] = { PQgetvalue(r, 0, 1), accs };
	PGresult *rr = strcmp(pc[0], "{}") ? pg_exec_prepared(w->pg, "refresh conversations",
							      "refresh_conv", 2, pc, NULL, NULL)
					   : PQmakeEmptyPGresult(w->pg, PGRES_COMMAND_OK);
	PQclear(r);
	if (!rr)
		goto fail;
	PQclear(rr);
	missed = (long long)json_array_size(gone);
	/* A link delivers a message as a download would, and finds it stored: fetched (the
	 * cursor's count) and a duplicate; linked_count says it cost no download. */
	char nadded[24];
	snprintf(nadded, sizeof(nadded), "%lld", added);
	const char *pn[] = { run, folder, nadded, acc };
	if (added && pg_cmd(w->pg, "count links",
			    "UPDATE sync_run_folders SET linked_count = linked_count + $3::int, "
			    " duplicate_count = duplicate_count + $3::int "
			    "WHERE account_id = $4::bigint AND run_id = $1::bigint "
			    " AND folder_id = $2::bigint", 4, pn) < 0)
		goto fail;
	if (missed) {
		/* Their message went between the fetcher's lookup and now (its last location
		 * vanished elsewhere): the job's cursor must not pass these UIDs. They are reported
		 * missing when it is applied (control.c), and the next sync downloads them. */
		json_t *uids = json_array();
		size_t i;
		json_t *g;
		json_array_foreach(gone, i, g)
			json_array_append(uids, json_array_get(g, 2));
		char *u = json_dumps(uids, JSON_COMPACT);
		json_decref(uids);
		const char *pu[] = { run, folder, u, acc };
		int bad = !u || pg_cmd(w->pg, "record unlinked UIDs",
			"UPDATE sync_run_folders SET unlinked = (SELECT array_agg(DISTINCT v ORDER BY v) FROM "
			" unnest(coalesce(unlinked, '{}') || array(SELECT jsonb_array_elements_text($3::jsonb)"
			" ::bigint)) v) WHERE account_id = $4::bigint AND run_id = $1::bigint "
			" AND folder_id = $2::bigint", 4, pu) < 0;
		free(u);
		if (bad)
			goto fail;
	}
	if (pg_cmd(w->pg, "commit", "COMMIT", 0, NULL) < 0)
		goto fail;
	if (missed) {
		/* The stale hash entries go, so the next attempt downloads. */
		link_forget(w, account_id, gone);
		log_warn("account_id=%lld folder_id=%s unlinked=%lld msg=\"linked messages were deleted "
			 "meanwhile; the folder's cursor stays below them and they are downloaded next "
			 "sync\"", account_id, folder, missed);
	}
	log_info("account_id=%lld folder_id=%s linked=%lld msg=\"links applied\"", account_id, folder,
		 added);
	rc = 1;
	goto out;
fail:
	PQclear(PQexec(w->pg, "ROLLBACK"));
out:
	json_decref(gone);
	free(links);
	return rc;
}

int link_unlinked(struct writer *w, long long run_id, long long folder_id, const char *uids,
		  const char *missing, char **uids_out, char **missing_out)
{
	char run[24], folder[24];
	snprintf(run, sizeof(run), "%lld", run_id);
	snprintf(folder, sizeof(folder), "%lld", folder_id);
	const char *p[] = { run, folder };
	*uids_out = *missing_out = NULL;
	PGresult *r = pg_exec(w->pg, "read unlinked UIDs",
			      "SELECT array_to_string(unlinked, ',') FROM sync_run_folders "
			      "WHERE run_id = $1::bigint AND folder_id = $2::bigint AND unlinked IS NOT NULL",
			      2, p);
	if (!r)
		return -EIO;
	struct uidset un, in, miss, out;
	uidset_init(&un);
	uidset_init(&in);
	uidset_init(&miss);
	uidset_init(&out);
	int rc = 0;
	if (PQntuples(r) == 1 && *PQgetvalue(r, 0, 0) && uidset_parse(&un, PQgetvalue(r, 0, 0)) == 0 &&
	    uidset_parse(&in, uids ? uids : "") == 0 && uidset_parse(&miss, missing ? missing : "") == 0) {
		uidset_normalize(&un);
		for (size_t i = 0; i < in.n; i++)
			if (!uidset_contains(&un, in.v[i]))
				uidset_add(&out, in.v[i]);
			else
				uidset_add(&miss, in.v[i]);
		uidset_normalize(&miss);
		*uids_out = uidset_format(&out);
		*missing_out = uidset_format(&miss);
		if (!*uids_out || !*missing_out) {
			free(*uids_out);
			free(*missing_out);
			*uids_out = *missing_out = NULL;
			rc = -ENOMEM;
		}
	}
	PQclear(r);
	uidset_release(&un);
	uidset_release(&in);
	uidset_release(&miss);
	uidset_release(&out);
	return rc;
}
