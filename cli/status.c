/* mailpipe status [NAME] [--watch] [--json]: what an operator asks
 * first: which accounts sync or back off, how far each folder and running sync is (rate,
 * ETA), what failed, and per stream how much waits, is pending, and for how long. */
#include "cli.h"
#include "partition.h"
#include "pg.h"
#include "query.h"
#include "rstream.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* One partition's in-flight streams into q (added to what q holds: the totals over partitions). */
static void add_depths(json_t *q, redisContext *rc, const struct mp_config *cfg, int p)
{
	const char *names[] = { "jobs", "raw", "parsed", "raw_bytes", "parsed_bytes" };
	for (int i = 0; i < 5; i++) {
		char key[128];
		int bytes = i >= 3;
		partition_key(cfg, p, bytes ? (i == 3 ? "raw" : "parsed") : names[i], key, sizeof(key));
		long long n = !rc ? -1 : bytes ? rstream_memory(rc, key) : rstream_len(rc, key);
		json_t *had = json_object_get(q, names[i]);
		if (n < 0 || json_is_null(had))
			json_object_set_new(q, names[i], json_null());
		else
			json_object_set_new(q, names[i], json_integer(n + json_integer_value(had)));
	}
}

static json_t *queue_depths(redisContext *rc, const struct mp_config *cfg)
{
	json_t *q = json_object();
	if (!rc)
		return q;
	/* Totals over the partitions, and each partition's own when there are several. */
	json_t *parts = json_array();
	for (long p = 0; p < cfg->redis_partitions; p++) {
		json_t *one = json_object();
		add_depths(one, partition_redis(cfg, rc, (int)p), cfg, (int)p);
		add_depths(q, partition_redis(cfg, rc, (int)p), cfg, (int)p);
		json_object_set_new(one, "partition", json_integer(p));
		json_array_append_new(parts, one);
	}
	long long dead = rstream_len(rc, cfg->key_dead);
	json_object_set_new(q, "dead", dead >= 0 ? json_integer(dead) : json_null());
	/* What invariant 5 bounds: the in-flight streams' Redis memory against the budget. */
	json_object_set_new(q, "budget_bytes", json_integer(cfg->raw_budget_bytes));
	if (cfg->redis_partitions > 1)
		json_object_set_new(q, "partitions", parts);
	else
		json_decref(parts);
	return q;
}

/* Milliseconds of a stream id ("1733212800123-0"). */
static long long id_ms(const char *id)
{
	return id ? strtoll(id, NULL, 10) : 0;
}

static const redisReply *field_of(const redisReply *r, const char *name)
{
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
		if (r->element[i]->type == REDIS_REPLY_STRING && !strcmp(r->element[i]->str, name))
			return r->element[i + 1];
	return NULL;
}

static json_t *reply_number(const redisReply *v)
{
	if (v && v->type == REDIS_REPLY_INTEGER)
		return json_integer(v->integer);
	if (v && v->type == REDIS_REPLY_STRING)
		return json_integer(strtoll(v->str, NULL, 10));
	return json_null(); /* lag Redis cannot tell (entries deleted past the group) */
}

/* One stream: its length and, per consumer group (XINFO GROUPS), consumers, pending entries,
 * lag (entries not yet delivered) and the age of the oldest pending entry (XPENDING), by
 * the Redis server's clock. */
static json_t *stream_info(redisContext *rc, const char *key, long long now_ms)
{
	json_t *s = json_object(), *groups = json_array();
	long long len = rstream_len(rc, key);
	json_object_set_new(s, "stream", json_string(key));
	json_object_set_new(s, "length", len >= 0 ? json_integer(len) : json_null());
	redisReply *r = redisCommand(rc, "XINFO GROUPS %s", key);
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *g = r->element[i], *name = field_of(g, "name");
		if (!name || name->type != REDIS_REPLY_STRING)
			continue;
		json_t *o = json_object();
		json_object_set_new(o, "group", json_string(name->str));
		json_object_set_new(o, "consumers", reply_number(field_of(g, "consumers")));
		json_object_set_new(o, "pending", reply_number(field_of(g, "pending")));
		json_object_set_new(o, "lag", reply_number(field_of(g, "lag")));
		redisReply *p = redisCommand(rc, "XPENDING %s %s", key, name->str);
		json_t *age = json_null();
		if (p && p->type == REDIS_REPLY_ARRAY && p->elements >= 2 &&
		    p->element[1]->type == REDIS_REPLY_STRING)
			age = json_integer(now_ms - id_ms(p->element[1]->str));
		freeReplyObject(p);
		json_object_set_new(o, "oldest_pending_age_ms", age);
		json_array_append_new(groups, o);
	}
	freeReplyObject(r);
	json_object_set_new(s, "groups", groups);
	return s;
}

static long long server_ms(redisContext *rc)
{
	long long now_ms = 0;
	redisReply *t = rc ? redisCommand(rc, "TIME") : NULL;
	if (t && t->type == REDIS_REPLY_ARRAY && t->elements == 2)
		now_ms = strtoll(t->element[0]->str, NULL, 10) * 1000 +
			 strtoll(t->element[1]->str, NULL, 10) / 1000;
	freeReplyObject(t);
	return now_ms;
}

/* Every partition's work streams (each on its own server, aged by that server's clock), then
 * the global ones of the home server. */
static json_t *streams_info(redisContext *rc, const struct mp_config *cfg)
{
	json_t *a = json_array();
	if (!rc)
		return a;
	const char *work[] = { "jobs", "jobs:first", "raw", "parsed", "jobs:backfill" };
	for (long p = 0; p < cfg->redis_partitions; p++) {
		redisContext *pc = partition_redis(cfg, rc, (int)p);
		if (!pc)
			continue;
		long long now_ms = server_ms(pc);
		for (size_t i = 0; i < sizeof(work) / sizeof(work[0]); i++) {
			char key[128];
			partition_key(cfg, (int)p, work[i], key, sizeof(key));
			json_t *s = stream_info(pc, key, now_ms);
			if (cfg->redis_partitions > 1)
				json_object_set_new(s, "partition", json_integer(p));
			json_array_append_new(a, s);
		}
	}
	long long now_ms = server_ms(rc);
	json_array_append_new(a, stream_info(rc, cfg->key_requests, now_ms));
	json_array_append_new(a, stream_info(rc, cfg->key_changes, now_ms));
	return a;
}

static const char *SQL_PROGRESS =
	"SELECT coalesce(json_agg(json_build_object('folder_id', f.id, 'folder', f.name, "
	" 'status', CASE s.status WHEN 'queued' THEN 'running' WHEN 'done' THEN 'ok' ELSE s.status END, "
	" 'server_count', coalesce(s.server_count, f.message_count), "
	" 'stored_count', (SELECT count(*) FROM message_locations l "
	"   WHERE l.account_id = f.account_id AND l.folder_id = f.id), "
	" 'fetched', s.fetched_count, 'written', s.ingested_count + s.duplicate_count, "
	" 'elapsed_s', extract(epoch FROM coalesce(s.finished_at, now()) "
	"   - coalesce(s.enqueued_at, r.started_at))::float8) ORDER BY f.name), '[]')::text "
	"FROM sync_run_folders s JOIN email_folders f ON f.account_id = s.account_id "
	" AND f.id = s.folder_id "
	"JOIN sync_runs r ON r.account_id = s.account_id AND r.run_id = s.run_id "
	"WHERE s.run_id = $1::bigint";
/* The run's account, whose partition holds the run's progress hash. */
static const char *SQL_RUN_ACCOUNT = "SELECT account_id FROM sync_runs WHERE run_id = $1::bigint";

json_t *status_run_progress(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
			    long long run_id)
{
	char run[24], key[160];
	snprintf(run, sizeof(run), "%lld", run_id);
	const char *p[] = { run };
	PGresult *r = pg_exec(pg, "read run progress", SQL_PROGRESS, 1, p);
	json_t *folders = r ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
	PQclear(r);
	if (!folders)
		return NULL;
	/* Parsers count per folder in {mp}:progress:<run> (fetchers may add <folder>:fetched). */
	int part = 0;
	if (cfg->redis_partitions > 1 && (r = pg_exec(pg, "read run account", SQL_RUN_ACCOUNT, 1, p))) {
		if (PQntuples(r) == 1)
			part = partition_of(cfg, strtoll(PQgetvalue(r, 0, 0), NULL, 10));
		PQclear(r);
	}
	char name[96];
	snprintf(name, sizeof(name), "progress:%lld", run_id);
	partition_key(cfg, part, name, key, sizeof(key));
	redisContext *pc = rc ? partition_redis(cfg, rc, part) : NULL;
	redisReply *h = pc ? redisCommand(pc, "HGETALL %s", key) : NULL;
	size_t i;
	json_t *f;
	json_array_foreach(folders, i, f) {
		long long id = json_integer_value(json_object_get(f, "folder_id"));
		long long written = json_integer_value(json_object_get(f, "written"));
		long long fetched = json_integer_value(json_object_get(f, "fetched")), parsed = 0;
		char pf[40], ff[40];
		snprintf(pf, sizeof(pf), "%lld:parsed", id);
		snprintf(ff, sizeof(ff), "%lld:fetched", id);
		const redisReply *v = field_of(h, pf);
		if (v && v->type == REDIS_REPLY_STRING)
			parsed = strtoll(v->str, NULL, 10);
		if ((v = field_of(h, ff)) && v->type == REDIS_REPLY_STRING && strtoll(v->str, NULL, 10) > fetched)
			fetched = strtoll(v->str, NULL, 10);
		/* Each stage has seen at least what the next one has: the counters are read at
		 * different moments, and a redelivered batch is counted twice. */
		if (parsed < written)
			parsed = written;
		if (fetched < parsed)
			fetched = parsed;
		json_object_set_new(f, "fetched", json_integer(fetched));
		json_object_set_new(f, "parsed", json_integer(parsed));
		double secs = json_real_value(json_object_get(f, "elapsed_s"));
		long long server = json_integer_value(json_object_get(f, "server_count"));
		long long stored = json_integer_value(json_object_get(f, "stored_count"));
		double rate = secs > 0.5 ? written / secs : 0;
		json_object_set_new(f, "rate_per_s", json_real(rate));
		int running = !strcmp(json_string_value(json_object_get(f, "status")) ?: "", "running");
		json_object_set_new(f, "eta_s", running && rate > 0 && server > stored ?
					 json_integer((long long)((server - stored) / rate + 0.5)) : json_null());
		json_object_del(f, "elapsed_s");
	}
	freeReplyObject(h);
	return folders;
}

static const char *SQL_STATUS =
	"SELECT json_build_object('account', a.name, 'account_id', a.id, "
	/* The account's state as the state machine keeps it (common/account_state.c); backoff and
	 * auth_failed wait until next_sync_at (a new secret or `account resume` ends the latter). */
	" 'state', a.state, 'failure_count', a.failure_count, 'state_changed_at', a.state_changed_at, "
	" 'backoff_until', CASE WHEN a.state IN ('backoff', 'auth_failed') THEN a.next_sync_at END, "
	" 'host', a.host, 'last_error', a.last_error, 'next_sync_at', a.next_sync_at, "
	" 'sync_interval_s', a.sync_interval_s, "
	" 'last_sync_at', (SELECT max(s.finished_at) FROM sync_runs s WHERE s.account_id = a.id), "
	" 'last_run', (SELECT json_build_object('run_id', s.run_id, 'status', s.status, "
	"   'started_at', s.started_at, 'finished_at', s.finished_at, 'fetched_count', s.fetched_count, "
	"   'ingested_count', s.ingested_count, 'error', s.error, 'request_id', s.request_id) "
	"   FROM sync_runs s WHERE s.account_id = a.id ORDER BY s.run_id DESC LIMIT 1), "
	" 'running_run_id', (SELECT max(s.run_id) FROM sync_runs s WHERE s.account_id = a.id "
	"   AND s.status = 'running'), "
	" 'folders', coalesce((SELECT json_agg(json_build_object('name', f.name, 'folder_id', f.id, "
	"   'message_count', f.message_count, 'stored_count', coalesce(c.n, 0), "
	"   'unread_count', f.unread_count, "
	"   'uidvalidity', f.uidvalidity, 'last_uid', f.last_uid, 'last_synced_at', f.last_synced_at, "
	"   'last_error', f.last_error) ORDER BY f.name) FROM email_folders f "
	"   LEFT JOIN (SELECT l.folder_id, count(*) AS n FROM message_locations l "
	"     WHERE l.account_id = a.id GROUP BY l.folder_id) c ON c.folder_id = f.id "
	"   WHERE f.account_id = a.id), '[]'::json), "
	" 'message_count', (SELECT count(*) FROM messages m WHERE m.account_id = a.id))::text "
	"FROM accounts a WHERE $1::text IS NULL OR a.name = $1 ORDER BY a.name";

/* The whole status document, or NULL (with *unknown set when NAME names no account). */
static json_t *status_read(PGconn *pg, redisContext *rc, const struct mp_config *cfg,
			   const char *name, int *unknown)
{
	const char *params[] = { name };
	PGresult *r = pg_exec(pg, "read status", SQL_STATUS, 1, params);
	if (!r)
		return NULL;
	if (name && PQntuples(r) == 0) {
		*unknown = 1;
		PQclear(r);
		return NULL;
	}
	json_t *out = json_object(), *accs = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(accs, json_loads(PQgetvalue(r, i, 0), 0, NULL));
	PQclear(r);
	size_t i;
	json_t *a;
	json_array_foreach(accs, i, a) {
		json_t *run = json_object_get(a, "running_run_id");
		json_t *prog = json_is_integer(run) ?
			status_run_progress(pg, rc, cfg, json_integer_value(run)) : NULL;
		size_t k, j;
		json_t *f, *p;
		json_array_foreach(json_object_get(a, "folders"), k, f) {
			json_t *mine = json_null();
			json_array_foreach(prog, j, p)
				if (json_equal(json_object_get(p, "folder_id"), json_object_get(f, "folder_id")))
					mine = json_incref(p);
			json_object_set_new(f, "progress", mine);
		}
		json_decref(prog);
	}
	json_object_set_new(out, "accounts", accs);
	json_object_set_new(out, "queues", queue_depths(rc, cfg));
	json_object_set_new(out, "streams", streams_info(rc, cfg));
	long long dead = rc ? rstream_len(rc, cfg->key_dead) : -1;
	json_object_set_new(out, "dead_letters", dead >= 0 ? json_integer(dead) : json_null());
	json_object_set_new(out, "redis", json_boolean(rc != NULL));
	return out;
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static long long num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void print_age(FILE *out, json_t *ms)
{
	if (!json_is_integer(ms))
		fputs("-", out);
	else if (json_integer_value(ms) < 10000)
		fprintf(out, "%.1f s", json_integer_value(ms) / 1000.0);
	else
		fprintf(out, "%lld s", json_integer_value(ms) / 1000);
}

/* Prints s left-aligned in width columns, counting UTF-8 characters, not bytes. */
static void print_padded(FILE *out, const char *s, int width)
{
	int chars = 0;
	for (const char *p = s ? s : ""; *p; p++)
		chars += ((unsigned char)*p & 0xC0) != 0x80;
	fprintf(out, "%s%*s", s ? s : "", chars < width ? width - chars : 0, "");
}

static void print_text(FILE *out, json_t *doc)
{
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(doc, "accounts"), i, a) {
		json_t *run = json_object_get(a, "last_run");
		fprintf(out, "%s  %s", str(a, "account"), str(a, "state"));
		if (str(a, "backoff_until"))
			fprintf(out, " until %s", str(a, "backoff_until"));
		fprintf(out, "  %lld messages  last run: %s", num(a, "message_count"),
			run ? str(run, "status") : "never");
		if (run && str(run, "finished_at"))
			fprintf(out, " at %s", str(run, "finished_at"));
		if (str(a, "last_error"))
			fprintf(out, "  error: %s", str(a, "last_error"));
		fputc('\n', out);
		size_t k;
		json_t *f;
		json_array_foreach(json_object_get(a, "folders"), k, f) {
			fputs("  ", out);
			print_padded(out, str(f, "name"), 32);
			fprintf(out, " %6lld on server %6lld stored %6lld unread  uid %lld%s%s\n",
				num(f, "message_count"), num(f, "stored_count"),
				num(f, "unread_count"), num(f, "last_uid"), str(f, "last_error") ? "  error: " : "",
				str(f, "last_error") ? str(f, "last_error") : "");
			json_t *p = json_object_get(f, "progress");
			if (!json_is_object(p) || strcmp(str(p, "status") ?: "", "running"))
				continue;
			fprintf(out, "      syncing: %lld fetched, %lld parsed, %lld written; %lld of %lld stored, "
				"%.1f msg/s", num(p, "fetched"), num(p, "parsed"), num(p, "written"),
				num(p, "stored_count"), num(p, "server_count"),
				json_real_value(json_object_get(p, "rate_per_s")));
			if (json_is_integer(json_object_get(p, "eta_s")))
				fprintf(out, ", ETA %lld s", num(p, "eta_s"));
			fputc('\n', out);
		}
	}
	json_t *q = json_object_get(doc, "queues");
	if (!json_is_true(json_object_get(doc, "redis"))) {
		fprintf(out, "queues: Redis not reachable\n");
		return;
	}
	fprintf(out, "queues: jobs %lld, raw %lld (%.1f MB), parsed %lld (%.1f MB), dead %lld; "
		"budget %.1f MB per stream\n", num(q, "jobs"), num(q, "raw"),
		num(q, "raw_bytes") / 1e6, num(q, "parsed"), num(q, "parsed_bytes") / 1e6,
		num(q, "dead"), num(q, "budget_bytes") / 1e6);
	json_t *s;
	json_array_foreach(json_object_get(doc, "streams"), i, s) {
		fprintf(out, "  %-22s length %-7lld", str(s, "stream"), num(s, "length"));
		size_t k;
		json_t *g;
		json_array_foreach(json_object_get(s, "groups"), k, g) {
			fprintf(out, "%s%s: %lld consumers, pending %lld, lag ", k ? "; " : " ",
				str(g, "group"), num(g, "consumers"), num(g, "pending"));
			if (json_is_integer(json_object_get(g, "lag")))
				fprintf(out, "%lld", num(g, "lag"));
			else
				fputs("?", out);
			fputs(", oldest pending ", out);
			print_age(out, json_object_get(g, "oldest_pending_age_ms"));
		}
		fputc('\n', out);
	}
	fprintf(out, "dead letters: %lld\n", num(doc, "dead_letters"));
}

int cmd_status(struct cli *c, int argc, char **argv)
{
	const char *name = NULL;
	int json = 0, watch = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "--watch")) {
			watch = 1;
		} else if (argv[i][0] != '-' && !name) {
			name = argv[i];
		} else {
			fprintf(stderr, "mailpipe: status: unexpected argument '%s'\n", argv[i]);
			cli_usage();
			return 2;
		}
	}
	PGconn *pg = cli_db(c, 1);
	if (!pg)
		return 1;
	if (watch) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_sigint; /* no SA_RESTART: the second's sleep ends at once */
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	int tty = isatty(STDOUT_FILENO), rc = 0;
	redisContext *redis = NULL;
	do {
		if (!redis || redis->err) {
			redisFree(redis);
			redis = redis_connect_url(c->cfg.redis_url);
		}
		int unknown = 0;
		json_t *doc = status_read(pg, redis, &c->cfg, name, &unknown);
		if (!doc) {
			if (unknown)
				fprintf(stderr, "mailpipe: no account named '%s'\n", name);
			rc = 1;
			break;
		}
		if (watch && tty && !json)
			fputs("\033[H\033[2J", stdout); /* redraw in place */
		if (json) {
			/* --watch --json: one compact document per line, a stream a program can read. */
			char *s = json_dumps(doc, watch ? JSON_COMPACT | JSON_PRESERVE_ORDER
							: JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			puts(s);
			free(s);
		} else {
			print_text(stdout, doc);
			if (watch && !tty)
				fputc('\n', stdout);
		}
		fflush(stdout);
		json_decref(doc);
		if (watch && !interrupted)
			sleep(1);
	} while (watch && !interrupted);
	redisFree(redis);
	return rc;
}
