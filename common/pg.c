/* libpq helpers and the migration runner. The SQL files under writer/migrations are compiled
 * into the binary (build/migrations.c) so a deployed binary cannot disagree with its schema. */
#include "pg.h"
#include "log.h"

#include <errno.h>
#include <libpq-events.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct migration {
	int version;
	const char *name;
	const char *sql;
};
extern const struct migration mp_migrations[];
extern const int mp_migration_count;

static _Thread_local char last_sqlstate[8];
static _Thread_local char last_error[256];

PGconn *pg_connect(const char *url)
{
	/* Each connection says which stage holds it (pg_stat_activity's application_name), so an
	 * operator can tell them apart; an application_name in the URL wins. */
	char app[64];
	const char *stage = log_stage_name();
	snprintf(app, sizeof(app), strcmp(stage, "mailpipe") ? "mailpipe %s" : "%s", stage);
	const char *const keys[] = { "dbname", "fallback_application_name", NULL };
	const char *const vals[] = { url, app, NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(c) != CONNECTION_OK) {
		char *msg = PQerrorMessage(c);
		size_t l = strlen(msg);
		while (l && (msg[l - 1] == '\n' || msg[l - 1] == ' '))
			msg[--l] = 0;
		log_error("db=\"%s@%s:%s/%s\" msg=\"cannot connect: %s\"", PQuser(c) ? PQuser(c) : "",
			  PQhost(c) ? PQhost(c) : "", PQport(c) ? PQport(c) : "",
			  PQdb(c) ? PQdb(c) : "", msg);
		PQfinish(c);
		return NULL;
	}
	PGresult *r = PQexec(c, "SET client_min_messages = warning");
	PQclear(r);
	return c;
}

PGresult *pg_exec(PGconn *c, const char *what, const char *sql, int n, const char *const *params)
{
	return pg_exec_bin(c, what, sql, n, params, NULL, NULL);
}


PGresult *pg_exec_bin(PGconn *c, const char *what, const char *sql, int n,
		      const char *const *params, const int *lengths, const int *formats)
{
	return pg_check(c, what, PQexecParams(c, sql, n, NULL, params, lengths, formats, 0));
}

PGresult *pg_exec_prepared(PGconn *c, const char *what, const char *name, int n,
			   const char *const *params, const int *lengths, const int *formats)
{
	return pg_check(c, what, PQexecPrepared(c, name, n, params, lengths, formats, 0));
}

int pg_prepare(PGconn *c, const char *name, const char *sql)
{
	PGresult *r = pg_check(c, name, PQprepare(c, name, sql, 0, NULL));
	if (!r)
		return -EIO;
	PQclear(r);
	return 0;
}

PGresult *pg_check(PGconn *c, const char *what, PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		last_sqlstate[0] = 0;
		last_error[0] = 0;
		return r;
	}
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	snprintf(last_sqlstate, sizeof(last_sqlstate), "%s", state ? state : "");
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	snprintf(last_error, sizeof(last_error), "%s", msg ? msg : PQerrorMessage(c));
	/* Deadlocks and serialisation failures are retried by the caller: not worth an error. */
	if (state && (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0))
		log_warn("msg=\"%s: %s (will retry)\"", what, msg ? msg : "");
	else
		log_error("msg=\"%s: %s\"", what, msg ? msg : PQerrorMessage(c));
	PQclear(r);
	return NULL;
}

PGresult *pg_exec_json(PGconn *c, const char *what, const char *sql, json_t *rows)
{
	char *j = rows ? json_dumps(rows, JSON_COMPACT) : NULL;
	if (!j) {
		log_error("msg=\"%s: out of memory\"", what);
		return NULL;
	}
	const char *params[] = { j };
	PGresult *r = pg_exec(c, what, sql, 1, params);
	free(j);
	return r;
}

/* The statement cache of one connection, kept as libpq instance data of the PGconn: libpq
 * hands it back by connection and tells us when the connection is reset (a new server session
 * without any prepared statement) or finished, so a new PGconn at a freed one's address never
 * sees its entries. Names are never reused on a session ("mp_" and a serial), so a stale entry
 * can only name a statement that does not exist (26000), never another one. */
#define STMT_CACHE_MAX 64
/* A prepared statement is made again after stmt_max_age_s. Postgres replans a cached plan when
 * ANALYZE changes its tables' statistics, but between two autoanalyzes a generic plan made
 * while a table was small would stay; a minute bounds that to autovacuum's own lag. */
static int stmt_max_age_s = 60;

void pg_stmt_max_age(int seconds)
{
	stmt_max_age_s = seconds;
}

struct stmt {
	uint64_t hash;
	char *sql;
	char name[24];
	int prepared;
	time_t prepared_at;
};

struct stmt_cache {
	struct stmt s[STMT_CACHE_MAX];
	int n;
	unsigned serial;
	char stale[STMT_CACHE_MAX][24];	/* names to DEALLOCATE when the session is idle */
	int nstale;
	int full_logged;
};

static void stmt_cache_free(struct stmt_cache *sc)
{
	if (!sc)
		return;
	for (int i = 0; i < sc->n; i++)
		free(sc->s[i].sql);
	free(sc);
}

static int on_conn_event(PGEventId id, void *info, void *pass)
{
	(void)pass;
	if (id == PGEVT_CONNRESET) {
		PGconn *c = ((PGEventConnReset *)info)->conn;
		struct stmt_cache *sc = PQinstanceData(c, on_conn_event);
		for (int i = 0; sc && i < sc->n; i++)
			sc->s[i].prepared = 0;
		if (sc)
			sc->nstale = 0;
	} else if (id == PGEVT_CONNDESTROY) {
		PGconn *c = ((PGEventConnDestroy *)info)->conn;
		stmt_cache_free(PQinstanceData(c, on_conn_event));
		PQsetInstanceData(c, on_conn_event, NULL);
	}
	return 1;
}

static struct stmt_cache *stmt_cache_of(PGconn *c)
{
	struct stmt_cache *sc = PQinstanceData(c, on_conn_event);
	if (sc)
		return sc;
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	if (!PQregisterEventProc(c, on_conn_event, "mailpipe statement cache", NULL) ||
	    !PQsetInstanceData(c, on_conn_event, sc)) {
		free(sc);
		return NULL;
	}
	return sc;
}

/* FNV-1a: the key is the whole text, since callers build some SQL in buffers they reuse. */
static uint64_t sql_hash(const char *sql)
{
	uint64_t h = 14695981039346656037ULL;
	for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

static struct stmt *stmt_find(struct stmt_cache *sc, const char *sql)
{
	uint64_t h = sql_hash(sql);
	for (int i = 0; i < sc->n; i++)
		if (sc->s[i].hash == h && !strcmp(sc->s[i].sql, sql))
			return &sc->s[i];
	if (sc->n == STMT_CACHE_MAX) {
		/* Bounded: more distinct texts than this means a caller builds values into SQL,
		 * which must not fill the server with statements. They run unprepared. */
		if (!sc->full_logged) {
			sc->full_logged = 1;
			log_warn("msg=\"statement cache full (%d): further statements run unprepared\"",
				 STMT_CACHE_MAX);
		}
		return NULL;
	}
	struct stmt *s = &sc->s[sc->n];
	if (!(s->sql = strdup(sql)))
		return NULL;
	s->hash = h;
	s->prepared = 0;
	snprintf(s->name, sizeof(s->name), "mp_%u", ++sc->serial);
	sc->n++;
	return s;
}

/* A statement given up (too old, or its result type changed) is deallocated at once when the
 * session is idle; inside a transaction a failing DEALLOCATE would abort the caller's work,
 * so its name waits for the next idle call. */
static void stmt_retire(struct stmt_cache *sc, PGconn *c, const char *name)
{
	if (PQtransactionStatus(c) == PQTRANS_IDLE) {
		char sql[48];
		snprintf(sql, sizeof(sql), "DEALLOCATE %s", name);
		PQclear(PQexec(c, sql));
	} else if (sc->nstale < STMT_CACHE_MAX) {
		snprintf(sc->stale[sc->nstale++], sizeof(sc->stale[0]), "%s", name);
	}
}

static void stmt_rename(struct stmt_cache *sc, struct stmt *s)
{
	snprintf(s->name, sizeof(s->name), "mp_%u", ++sc->serial);
	s->prepared = 0;
}

PGresult *pg_exec_cached(PGconn *c, const char *what, const char *sql, int n,
			 const char *const *params)
{
	struct stmt_cache *sc = stmt_cache_of(c);
	struct stmt *s = sc ? stmt_find(sc, sql) : NULL;
	if (!s)
		return pg_exec(c, what, sql, n, params);
	if (sc->nstale && PQtransactionStatus(c) == PQTRANS_IDLE) {
		int k = sc->nstale;
		sc->nstale = 0;
		for (int i = 0; i < k; i++)
			stmt_retire(sc, c, sc->stale[i]);
	}
	time_t now = time(NULL);
	if (s->prepared && (now - s->prepared_at > stmt_max_age_s || now < s->prepared_at) &&
	    sc->nstale < STMT_CACHE_MAX) {
		stmt_retire(sc, c, s->name);
		stmt_rename(sc, s);
	}
	for (int attempt = 0;; attempt++) {
		if (!s->prepared) {
			PGresult *p = pg_check(c, what, PQprepare(c, s->name, sql, 0, NULL));
			if (!p)
				return NULL;
			PQclear(p);
			s->prepared = 1;
			s->prepared_at = now;
		}
		PGresult *r = PQexecPrepared(c, s->name, n, params, NULL, NULL, 0);
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || attempt > 0)
			return pg_check(c, what, r);
		/* The session lost the statement (DEALLOCATE, a pooler), or a migration changed
		 * the result's row type ("cached plan must not change result type"): prepared
		 * again under a new name. Retried here only outside a transaction; inside one the
		 * transaction is aborted already, the caller rolls back and the next call
		 * prepares. */
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		int lost = state && !strcmp(state, "26000"), changed = state && !strcmp(state, "0A000");
		if (!lost && !changed)
			return pg_check(c, what, r);
		if (changed)
			stmt_retire(sc, c, s->name);
		stmt_rename(sc, s);
		if (PQtransactionStatus(c) != PQTRANS_IDLE)
			return pg_check(c, what, r);
		log_info("msg=\"%s: prepared statement %s (%s), preparing it again\"", what,
			 lost ? "gone" : "changed", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
		PQclear(r);
	}
}

/* A command's outcome when its result is not needed: 0, or -EIO (already logged). */
static int cmd_done(PGresult *r)
{
	if (!r)
		return -EIO;
	PQclear(r);
	return 0;
}

int pg_cmd_cached(PGconn *c, const char *what, const char *sql, int n, const char *const *params)
{
	return cmd_done(pg_exec_cached(c, what, sql, n, params));
}

int pg_cached_statements(PGconn *c)
{
	struct stmt_cache *sc = PQinstanceData(c, on_conn_event);
	int k = 0;
	for (int i = 0; sc && i < sc->n; i++)
		k += sc->s[i].prepared;
	return k;
}

int pg_cmd(PGconn *c, const char *what, const char *sql, int n, const char *const *params)
{
	return cmd_done(pg_exec(c, what, sql, n, params));
}

const char *pg_last_sqlstate(void)
{
	return last_sqlstate;
}

const char *pg_last_error(void)
{
	return last_error;
}

int pg_broken(PGconn *c)
{
	return PQstatus(c) != CONNECTION_OK;
}

int pg_schema_latest(void)
{
	return mp_migration_count ? mp_migrations[mp_migration_count - 1].version : 0;
}

int pg_schema_version(PGconn *c)
{
	PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM schema_migrations");
	int v = 0;
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		v = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

int pg_migrate(PGconn *c)
{
	int applied = 0, rc = 0;
	/* A fixed advisory lock key: two `db migrate` at once apply each version once. */
	if (pg_cmd(c, "migration lock", "SELECT pg_advisory_lock(7249001)", 0, NULL) < 0)
		return -EIO;
	if (pg_cmd(c, "create schema_migrations",
		   "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, "
		   "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
		   0, NULL) < 0) {
		rc = -EIO;
		goto out;
	}
	int have = pg_schema_version(c);
	for (int i = 0; i < mp_migration_count; i++) {
		const struct migration *m = &mp_migrations[i];
		if (m->version <= have)
			continue;
		char ver[16];
		snprintf(ver, sizeof(ver), "%d", m->version);
		const char *params[] = { ver, m->name };
		if (pg_cmd(c, "begin", "BEGIN", 0, NULL) < 0) {
			rc = -EIO;
			goto out;
		}
		PGresult *r = PQexec(c, m->sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
			log_error("msg=\"migration %d %s failed: %s\"", m->version, m->name,
				  PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
			PQclear(r);
			PQclear(PQexec(c, "ROLLBACK"));
			rc = -EIO;
			goto out;
		}
		PQclear(r);
		if (pg_cmd(c, "record migration",
			   "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)", 2,
			   params) < 0 ||
		    pg_cmd(c, "commit", "COMMIT", 0, NULL) < 0) {
			PQclear(PQexec(c, "ROLLBACK"));
			rc = -EIO;
			goto out;
		}
		log_info("msg=\"applied migration %d %s\"", m->version, m->name);
		applied++;
	}
	rc = applied;
out:
	pg_cmd(c, "migration unlock", "SELECT pg_advisory_unlock(7249001)", 0, NULL);
	return rc;
}
