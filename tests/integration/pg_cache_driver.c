/* Drives common/pg.c's statement cache against a real PostgreSQL for test_pg_cache.sh: prints
 * "ok STEP" or "not ok STEP: why" per step. Between "restart?" and the next line on stdin the
 * script restarts the server under the open connection. */
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#define ADD "SELECT $1::int + 1"
#define ROW "SELECT * FROM pgc_t WHERE a = $1::int"

static int fails;

static void step(const char *name, int ok, const char *why)
{
	printf(ok ? "ok %s\n" : "not ok %s: %s\n", name, why);
	fflush(stdout);
	fails += !ok;
}

/* 1 when the cached ADD answers 41 + 1. */
static int add_ok(PGconn *c)
{
	const char *p[] = { "41" };
	PGresult *r = pg_exec_cached(c, "add", ADD, 1, p);
	int ok = r && PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "42");
	PQclear(r);
	return ok;
}

/* The statements this session holds on the server. */
static int on_server(PGconn *c)
{
	PGresult *r = PQexec(c, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'mp\\_%'");
	int n = PQresultStatus(r) == PGRES_TUPLES_OK ? (int)strtol(PQgetvalue(r, 0, 0), NULL, 10) : -1;
	PQclear(r);
	return n;
}

static int columns(PGconn *c)
{
	const char *p[] = { "1" };
	PGresult *r = pg_exec_cached(c, "row", ROW, 1, p);
	int n = r ? PQnfields(r) : -1;
	PQclear(r);
	return n;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: pg_cache_driver DATABASE_URL\n");
		return 2;
	}
	PGconn *c = pg_connect(argv[1]);
	if (!c)
		return 1;
	int ok = 1;
	for (int i = 0; i < 8; i++) /* past the five custom plans */
		ok &= add_ok(c);
	step("a statement is prepared once and executed from then on",
	     ok && pg_cached_statements(c) == 1, "wrong answer or not one statement cached");

	char sql[64];
	snprintf(sql, sizeof(sql), "SELECT %d", 7); /* the text, not its buffer, is the key */
	PGresult *a = pg_exec_cached(c, "built", sql, 0, NULL);
	snprintf(sql, sizeof(sql), "SELECT %d", 8);
	PGresult *b = pg_exec_cached(c, "built", sql, 0, NULL);
	step("texts built in one buffer are told apart",
	     a && b && !strcmp(PQgetvalue(a, 0, 0), "7") && !strcmp(PQgetvalue(b, 0, 0), "8") &&
		     pg_cached_statements(c) == 3,
	     "a statement ran as another");
	PQclear(a);
	PQclear(b);

	PQclear(PQexec(c, "DEALLOCATE ALL"));
	step("a statement the session lost (26000) is prepared again", add_ok(c), "call failed");

	PQclear(PQexec(c, "DROP TABLE IF EXISTS pgc_t"));
	PQclear(PQexec(c, "CREATE TABLE pgc_t (a int); INSERT INTO pgc_t VALUES (1)"));
	int before = columns(c);
	PQclear(PQexec(c, "ALTER TABLE pgc_t ADD COLUMN b int"));
	step("a result type changed by a migration (0A000) is prepared again",
	     before == 1 && columns(c) == 2, "old columns or a failed call");

	PQclear(PQexec(c, "BEGIN"));
	PQclear(PQexec(c, "DEALLOCATE ALL"));
	int in_tx = add_ok(c);
	PQclear(PQexec(c, "ROLLBACK"));
	step("inside a transaction the loss fails the call, and the next call works",
	     !in_tx && add_ok(c), in_tx ? "ran in an aborted transaction?" : "next call failed");

	/* Older than its age (a minute; 2 s here): made again, its old name deallocated at the
	 * next idle call. */
	pg_stmt_max_age(2);
	int held = on_server(c);
	sleep(3);
	PQclear(PQexec(c, "BEGIN"));
	int fresh = add_ok(c), during = on_server(c);
	PQclear(PQexec(c, "COMMIT"));
	int after = add_ok(c) ? on_server(c) : -1;
	step("a statement older than its age is prepared again, the old one deallocated when idle",
	     fresh && held > 0 && during == held + 1 && after == held,
	     "wrong statements on the server");

	PQreset(c);
	int left = pg_cached_statements(c);
	step("PQreset forgets the session's statements", left == 0 && add_ok(c),
	     "statements still marked prepared, or the call failed");

	printf("restart?\n");
	fflush(stdout);
	char line[16];
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	int broken = !add_ok(c) && pg_broken(c);
	PQfinish(c);
	c = pg_connect(argv[1]);
	step("after a server restart the new connection prepares afresh",
	     broken && c && pg_cached_statements(c) == 0 && add_ok(c) && pg_cached_statements(c) == 1,
	     "old connection not broken, or the new one failed");
	if (!c)
		return 1;

	int right = 1;
	for (int i = 100; i < 200; i++) { /* more texts than the cache holds */
		snprintf(sql, sizeof(sql), "SELECT %d", i);
		char want[16];
		snprintf(want, sizeof(want), "%d", i);
		PGresult *r = pg_exec_cached(c, "many", sql, 0, NULL);
		right &= r && !strcmp(PQgetvalue(r, 0, 0), want);
		PQclear(r);
	}
	step("past its bound the cache runs statements unprepared, still right",
	     right && pg_cached_statements(c) == 64, "a wrong answer or an unbounded cache");

	PQclear(PQexec(c, "DROP TABLE IF EXISTS pgc_t"));
	PQfinish(c);
	return fails ? 1 : 0;
}
