/* mailpipe sync NAME [--folder F]... [--wait] [--timeout S] [--json]: starts a run (or joins
 * the one in progress) and, with --wait, waits for its end on {mp}:events and prints the
 * DESIGN.md summary (at a terminal, without --json, over live progress lines on stderr). Postgres stays the truth: the summary is read from sync_runs, and the run's state is
 * polled too, so a missed event only costs a second. */
#include "cli.h"
#include "jobs.h"
#include "pg.h"
#include "partition.h"
#include "rstream.h"
#include "stage.h"
#include "sync.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *SQL_SUMMARY =
	"SELECT json_build_object('status', r.status, "
	" 'run_id', r.run_id, 'account', a.name, 'host', a.host, 'port', a.port, 'auth', a.auth, "
	" 'folder_count', (SELECT count(*) FROM sync_run_folders s WHERE s.account_id = r.account_id "
	"   AND s.run_id = r.run_id), "
	" 'error_count', r.error_count, 'fetched_count', r.fetched_count, "
	" 'ingested_count', r.ingested_count, 'duplicate_count', r.duplicate_count, "
	" 'missing_count', r.missing_count, 'error', r.error, "
	" 'folders', coalesce((SELECT json_agg(json_build_object('folder', f.name, "
	"   'status', CASE s.status WHEN 'done' THEN 'ok' WHEN 'queued' THEN 'pending' "
	"     ELSE s.status END, "
	"   'uidvalidity', s.uidvalidity, 'last_uid', s.last_uid, 'fetched_count', s.fetched_count, "
	"   'ingested_count', s.ingested_count, 'duplicate_count', s.duplicate_count, "
	"   'missing_count', s.missing_count, 'missing', s.missing, "
	"   'error', s.error) ORDER BY f.name) "
	"  FROM sync_run_folders s JOIN email_folders f ON f.account_id = s.account_id "
	"   AND f.id = s.folder_id WHERE s.account_id = r.account_id AND s.run_id = r.run_id), "
	"  '[]'::json))::text, "
	/* Still running for --wait while the deletions of messages it left without a location
	 * wait for another run of the account to end (writer/mirror.c): until then the
	 * database holds rows the mailbox no longer has. */
	" CASE WHEN r.orphans_pending AND EXISTS (SELECT 1 FROM sync_runs o "
	"   WHERE o.account_id = r.account_id AND o.status = 'running') THEN 'running' "
	"  ELSE r.status END "
	"FROM sync_runs r JOIN accounts a ON a.id = r.account_id WHERE r.run_id = $1::bigint";

/* Reads run_id's summary into *out (new reference). Returns 0 when the run is finished, 1 while
 * it is running (or its deferred deletions wait for another run), -1 when there is no such
 * run, -2 when Postgres could not be asked. */
static int read_summary(PGconn *pg, long long run_id, json_t **out)
{
	char run[24];
	snprintf(run, sizeof(run), "%lld", run_id);
	const char *params[] = { run };
	*out = NULL;
	PGresult *r = pg_exec(pg, "read run summary", SQL_SUMMARY, 1, params);
	if (!r)
		return -2;
	int st = -1;
	if (PQntuples(r) == 1) {
		*out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
		st = strcmp(PQgetvalue(r, 0, 1), "running") == 0 ? 1 : 0;
	}
	PQclear(r);
	return *out ? st : (st == -1 ? -1 : -2);
}

json_t *sync_summary(PGconn *pg, long long run_id)
{
	json_t *j;
	read_summary(pg, run_id, &j);
	return j;
}

/* The live progress lines at a terminal: one per folder of the run, redrawn in place on
 * stderr. *drawn is how many lines the last drawing left. */
static void draw_progress(struct cli *c, PGconn *pg, redisContext *rc, long long run_id,
			  int *drawn)
{
	json_t *folders = status_run_progress(pg, rc, &c->cfg, run_id);
	if (!folders)
		return;
	if (*drawn)
		fprintf(stderr, "\033[%dA", *drawn);
	size_t i;
	json_t *f;
	int lines = 0;
	json_array_foreach(folders, i, f) {
		long long server = json_integer_value(json_object_get(f, "server_count"));
		fprintf(stderr, "\033[2K  %-28s %-8s %7lld fetched %7lld parsed %7lld written",
			json_string_value(json_object_get(f, "folder")),
			json_string_value(json_object_get(f, "status")),
			(long long)json_integer_value(json_object_get(f, "fetched")),
			(long long)json_integer_value(json_object_get(f, "parsed")),
			(long long)json_integer_value(json_object_get(f, "written")));
		if (server > 0)
			fprintf(stderr, " of %lld", server);
		double rate = json_real_value(json_object_get(f, "rate_per_s"));
		if (rate > 0)
			fprintf(stderr, "  %.0f msg/s", rate);
		if (json_is_integer(json_object_get(f, "eta_s")))
			fprintf(stderr, "  ETA %llds", (long long)json_integer_value(json_object_get(f, "eta_s")));
		fputc('\n', stderr);
		lines++;
	}
	/* Folders can only be added (a LIST arrives): fewer lines than before means none. */
	for (int k = lines; k < *drawn; k++)
		fputs("\033[2K\n", stderr);
	if (lines < *drawn)
		fprintf(stderr, "\033[%dA", *drawn - lines);
	*drawn = lines;
	fflush(stderr);
	json_decref(folders);
}

/* Waits up to a second for anything on {mp}:events: an event may be our run's end. A Redis
 * that went away only costs the wake-up (the run's state is polled in Postgres), so it is
 * reconnected here, and a Redis still loading its AOF is waited out. */
static void wait_events(struct cli *c, redisContext **rc, char *last_id, size_t size)
{
	if (!*rc) {
		*rc = redis_connect_url(c->cfg.redis_url);
		if (!*rc) {
			sleep(1);
			return;
		}
	}
	redisReply *ev = redisCommand(*rc, "XREAD COUNT 100 BLOCK 1000 STREAMS %s %s",
				      c->cfg.key_events, last_id);
	if (!ev) {
		redisFree(*rc);
		*rc = NULL;
		sleep(1);
		return;
	}
	if (ev->type == REDIS_REPLY_ERROR)
		sleep(1);
	struct rentry *e = NULL;
	size_t n = 0;
	rstream_entries(ev, &e, &n);
	if (n)
		snprintf(last_id, size, "%s", e[n - 1].id);
	free(e);
	freeReplyObject(ev);
}

long long sync_start(struct cli *c, redisContext *rc, long long account_id, const char *name,
		     const char *const *folders, size_t nfolders, char *last_event, size_t size)
{
	char id[24];
	snprintf(id, sizeof(id), "%lld", account_id);
	const char *params[] = { id };
	PGresult *r = pg_exec(c->pg, "find running run",
			      "SELECT max(run_id) FROM sync_runs WHERE account_id = $1::bigint "
			      " AND status = 'running' AND cardinality(folder_filter) = 0", 1, params);
	if (!r)
		return -EIO;
	long long run_id = 0;
	/* A whole-account run already in progress is joined rather than doubled. */
	if (nfolders == 0 && !PQgetisnull(r, 0, 0))
		run_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	/* The job goes to the account's partition, perhaps on another server than the events. */
	int part = partition_of(&c->cfg, account_id);
	char jobs_key[128];
	partition_key(&c->cfg, part, "jobs", jobs_key, sizeof(jobs_key));
	redisContext *prc = partition_redis(&c->cfg, rc, part);
	if (!prc || rstream_group_create(prc, jobs_key, "fetchers") < 0 ||
	    rstream_last_id(rc, c->cfg.key_events, last_event, size) < 0)
		return -EIO;
	if (!run_id)
		run_id = jobs_start_run(c->pg, rc, &c->cfg, account_id, folders, nfolders);
	if (run_id < 0) {
		fprintf(stderr, "mailpipe: could not start a sync of account '%s'\n", name);
		return -EIO;
	}
	return run_id;
}

int sync_wait(struct cli *c, redisContext **rc, long long run_id, long timeout_s,
	      char *last_event, size_t size, json_t **summary, sync_tick_fn tick, void *arg)
{
	/* The run goes on without us while Postgres or Redis restarts: both are waited out until
	 * the deadline, Postgres reconnected after 2, 4, then every 5 s. */
	/* The deadline by a millisecond clock: by whole seconds a wait of 3 s begun at x.95 ended
	 * after 2.05 s. */
	long long start = stage_now_ms(), deadline = start + (long long)timeout_s * 1000;
	time_t next_pg = 0;
	unsigned pg_delay = 1;
	*summary = NULL;
	for (;;) {
		json_decref(*summary);
		int st = c->pg ? read_summary(c->pg, run_id, summary) : -2;
		if (st == 0)
			return 0;
		if (st == -1 || (st == -2 && c->pg && !pg_broken(c->pg)))
			return -EIO; /* the query failed on a live connection: not an outage */
		if (stage_now_ms() >= deadline)
			return -ETIMEDOUT;
		if (tick)
			tick(arg, (long)((stage_now_ms() - start) / 1000), *summary);
		if (st == -2 && time(NULL) >= next_pg) {
			PQfinish(c->pg);
			c->pg = pg_connect(c->cfg.database_url);
			pg_delay = c->pg ? 1 : (pg_delay < 5 ? pg_delay * 2 : 5);
			next_pg = time(NULL) + pg_delay;
			if (c->pg)
				continue;
		}
		wait_events(c, rc, last_event, size);
	}
}

struct live {
	struct cli *c;
	redisContext **rc;
	long long run_id;
	int drawn;
};

static void draw_tick(void *arg, long waited_s, json_t *summary)
{
	struct live *l = arg;
	(void)waited_s, (void)summary;
	if (l->c->pg && *l->rc)
		draw_progress(l->c, l->c->pg, *l->rc, l->run_id, &l->drawn);
}

static void print_json(json_t *j)
{
	char *out = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	if (out)
		puts(out);
	free(out);
}

int cmd_sync(struct cli *c, int argc, char **argv)
{
	const char *name = NULL, *folders[64];
	size_t nfolders = 0;
	int wait = 0, json = 0;
	long timeout_s = 3600;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--wait")) {
			wait = 1;
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (!strcmp(argv[i], "--folder")) {
			const char *v = cli_arg(argc, argv, &i);
			if (!v || nfolders == 64) {
				cli_usage();
				return 2;
			}
			folders[nfolders++] = v;
		} else if (!strcmp(argv[i], "--timeout")) {
			const char *v = cli_arg(argc, argv, &i);
			char *end;
			timeout_s = v ? strtol(v, &end, 10) : 0;
			if (!v || *end || timeout_s <= 0) {
				fprintf(stderr, "mailpipe: --timeout needs a positive number of seconds\n");
				cli_usage();
				return 2;
			}
		} else if (argv[i][0] != '-' && !name) {
			name = argv[i];
		} else {
			fprintf(stderr, "mailpipe: unexpected argument '%s'\n", argv[i]);
			cli_usage();
			return 2;
		}
	}
	if (!name) {
		fprintf(stderr, "mailpipe: sync needs an account NAME\n");
		cli_usage();
		return 2;
	}
	PGconn *pg = cli_db(c, 1);
	if (!pg)
		return 1;
	redisContext *rc = redis_connect_url(c->cfg.redis_url);
	if (!rc) {
		fprintf(stderr, "mailpipe: cannot reach Redis at %s\n", c->cfg.redis_url);
		return 1;
	}
	int status = 1;
	char last_id[64] = "0-0";
	const char *params[] = { name };
	PGresult *r = pg_exec(pg, "find account", "SELECT id FROM accounts WHERE name = $1", 1, params);
	if (!r)
		goto out;
	if (PQntuples(r) != 1) {
		fprintf(stderr, "mailpipe: no account named '%s'\n", name);
		PQclear(r);
		goto out;
	}
	long long account_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	long long run_id = sync_start(c, rc, account_id, name, folders, nfolders, last_id,
				      sizeof(last_id));
	if (run_id < 0)
		goto out;
	if (!wait) {
		printf("sync of account '%s' started: run %lld\n", name, run_id);
		status = 0;
		goto out;
	}
	json_t *summary;
	/* A person at a terminal sees the folders move; a program gets the summary alone. */
	struct live l = { .c = c, .rc = &rc, .run_id = run_id };
	int live = !json && isatty(STDERR_FILENO);
	int err = sync_wait(c, &rc, run_id, timeout_s, last_id, sizeof(last_id), &summary,
			    live ? draw_tick : NULL, &l);
	if (live && c->pg) /* the last drawing shows the run's end */
		draw_progress(c, c->pg, rc, run_id, &l.drawn);
	if (err == -ETIMEDOUT)
		fprintf(stderr, "mailpipe: sync of account '%s' (run %lld) did not finish within %lds; "
				"is `mailpipe run` running?\n", name, run_id, timeout_s);
	print_json(summary);
	status = !err && !strcmp(json_string_value(json_object_get(summary, "status")) ?: "", "ok") ? 0 : 1;
	json_decref(summary);
out:
	redisFree(rc);
	return status;
}
