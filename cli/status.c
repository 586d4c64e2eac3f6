/* mailpipe status [NAME] and mailpipe folders: what an operator asks first: which accounts
 * sync, how far each folder is, what failed, and how much waits in each stream. */
#include "cli.h"
#include "pg.h"
#include "query.h"
#include "rstream.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_flag(int argc, char **argv, const char *flag)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], flag))
			return 1;
	return 0;
}

static json_t *queue_depths(const struct mp_config *cfg)
{
	json_t *q = json_object();
	redisContext *rc = redis_connect_url(cfg->redis_url);
	if (!rc)
		return q;
	const char *keys[] = { cfg->key_jobs, cfg->key_raw, cfg->key_parsed, cfg->key_dead };
	const char *names[] = { "jobs", "raw", "parsed", "dead" };
	for (int i = 0; i < 4; i++) {
		long long n = rstream_len(rc, keys[i]);
		json_object_set_new(q, names[i], n >= 0 ? json_integer(n) : json_null());
	}
	/* What invariant 5 bounds: the in-flight streams' Redis memory against the budget. */
	long long raw = rstream_memory(rc, cfg->key_raw), parsed = rstream_memory(rc, cfg->key_parsed);
	json_object_set_new(q, "raw_bytes", raw >= 0 ? json_integer(raw) : json_null());
	json_object_set_new(q, "parsed_bytes", parsed >= 0 ? json_integer(parsed) : json_null());
	json_object_set_new(q, "budget_bytes", json_integer(cfg->raw_budget_bytes));
	redisFree(rc);
	return q;
}

int cmd_status(struct cli *c, int argc, char **argv)
{
	const char *name = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
	int json = has_flag(argc, argv, "--json");
	PGconn *pg = cli_db(c, 1);
	if (!pg)
		return 1;
	const char *params[] = { name };
	PGresult *r = pg_exec(pg, "read status",
		"SELECT json_build_object('account', a.name, 'state', a.state, 'host', a.host, "
		" 'last_error', a.last_error, 'next_sync_at', a.next_sync_at, "
		" 'last_run', (SELECT json_build_object('run_id', s.run_id, 'status', s.status, "
		"   'started_at', s.started_at, 'finished_at', s.finished_at, 'fetched_count', s.fetched_count, "
		"   'ingested_count', s.ingested_count, 'error', s.error) FROM sync_runs s "
		"   WHERE s.account_id = a.id ORDER BY s.run_id DESC LIMIT 1), "
		" 'folders', coalesce((SELECT json_agg(json_build_object('name', f.name, "
		"   'message_count', f.message_count, 'unread_count', f.unread_count, "
		"   'uidvalidity', f.uidvalidity, 'last_uid', f.last_uid, 'last_synced_at', f.last_synced_at, "
		"   'last_error', f.last_error) ORDER BY f.name) FROM email_folders f "
		"   WHERE f.account_id = a.id), '[]'::json), "
		" 'message_count', (SELECT count(*) FROM messages m WHERE m.account_id = a.id))::text "
		"FROM accounts a WHERE $1::text IS NULL OR a.name = $1 ORDER BY a.name",
		1, params);
	if (!r)
		return 1;
	if (name && PQntuples(r) == 0) {
		fprintf(stderr, "mailpipe: no account named '%s'\n", name);
		PQclear(r);
		return 1;
	}
	json_t *out = json_object(), *accs = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(accs, json_loads(PQgetvalue(r, i, 0), 0, NULL));
	PQclear(r);
	json_object_set_new(out, "accounts", accs);
	json_object_set_new(out, "queues", queue_depths(&c->cfg));
	if (json) {
		char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
	} else {
		size_t i;
		json_t *a;
		json_array_foreach(accs, i, a) {
			json_t *run = json_object_get(a, "last_run");
			printf("%s  %s  %lld messages  last run: %s%s%s\n",
			       json_string_value(json_object_get(a, "account")),
			       json_string_value(json_object_get(a, "state")),
			       json_integer_value(json_object_get(a, "message_count")),
			       run ? json_string_value(json_object_get(run, "status")) : "never",
			       json_string_value(json_object_get(a, "last_error")) ? "  error: " : "",
			       json_string_value(json_object_get(a, "last_error")) ?
				       json_string_value(json_object_get(a, "last_error")) : "");
			size_t k;
			json_t *f;
			json_array_foreach(json_object_get(a, "folders"), k, f)
				printf("  %-32s %6lld messages %6lld unread  uid %lld%s%s\n",
				       json_string_value(json_object_get(f, "name")),
				       json_integer_value(json_object_get(f, "message_count")),
				       json_integer_value(json_object_get(f, "unread_count")),
				       json_integer_value(json_object_get(f, "last_uid")),
				       json_string_value(json_object_get(f, "last_error")) ? "  error: " : "",
				       json_string_value(json_object_get(f, "last_error")) ?
					       json_string_value(json_object_get(f, "last_error")) : "");
		}
		json_t *q = json_object_get(out, "queues");
		printf("queues: jobs %lld, raw %lld (%.1f MB), parsed %lld (%.1f MB), dead %lld; "
		       "budget %.1f MB per stream\n",
		       json_integer_value(json_object_get(q, "jobs")),
		       json_integer_value(json_object_get(q, "raw")),
		       json_integer_value(json_object_get(q, "raw_bytes")) / 1e6,
		       json_integer_value(json_object_get(q, "parsed")),
		       json_integer_value(json_object_get(q, "parsed_bytes")) / 1e6,
		       json_integer_value(json_object_get(q, "dead")),
		       json_integer_value(json_object_get(q, "budget_bytes")) / 1e6);
	}
	json_decref(out);
	return 0;
}

int cmd_folders(struct cli *c, int argc, char **argv)
{
	const char *account = NULL;
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--account") && (account = cli_arg(argc, argv, &i)))
			;
		else {
			cli_usage();
			return 2;
		}
	}
	PGconn *pg = cli_db(c, 1);
	if (!pg)
		return 1;
	const char *params[] = { account };
	PGresult *r = pg_exec(pg, "list folders",
		"SELECT " QUERY_FOLDER_JSON "::text, "
		" format('%-20s %-32s %6s messages %6s unread', a.name, f.name, f.message_count, f.unread_count) "
		"FROM email_folders f JOIN accounts a ON a.id = f.account_id "
		"WHERE $1::text IS NULL OR a.name = $1 ORDER BY a.name, f.name", 1, params);
	if (!r)
		return 1;
	if (json) {
		json_t *arr = json_array();
		for (int i = 0; i < PQntuples(r); i++)
			json_array_append_new(arr, json_loads(PQgetvalue(r, i, 0), 0, NULL));
		char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
		json_decref(arr);
	} else {
		for (int i = 0; i < PQntuples(r); i++)
			puts(PQgetvalue(r, i, 1));
	}
	PQclear(r);
	return 0;
}
