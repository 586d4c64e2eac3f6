/* libpq helpers: connect by URL, parameterised exec with one-line errors, transactions with
 * retry on deadlock/serialization failure, and the embedded schema migrations. */
#ifndef MP_PG_H
#define MP_PG_H

#include <jansson.h>
#include <libpq-fe.h>

/* NULL after logging one line naming the database (without password). */
PGconn *pg_connect(const char *url);
/* Parameterised query (text params, NULL = SQL NULL). Returns the result when it is
 * COMMAND_OK or TUPLES_OK, else logs "what: server message" once and returns NULL. Caller
 * PQclear()s. */
PGresult *pg_exec(PGconn *c, const char *what, const char *sql, int n, const char *const *params);
/* pg_exec with lengths and formats (1 = binary) per parameter, for bytea. */
PGresult *pg_exec_bin(PGconn *c, const char *what, const char *sql, int n,
		      const char *const *params, const int *lengths, const int *formats);
/* pg_exec with one parameter, rows (borrowed) sent as a jsonb document, for
 * set-based statements over jsonb_to_recordset($1::jsonb). Planned per call, on purpose: a
 * prepared plan made while a table was small keeps scanning it. */
PGresult *pg_exec_json(PGconn *c, const char *what, const char *sql, json_t *rows);
/* The same check for a result got another way (PQgetResult of an asynchronous query): r when
 * COMMAND_OK or TUPLES_OK, else logs "what: server message", clears r and returns NULL. */
PGresult *pg_check(PGconn *c, const char *what, PGresult *r);
/* Executes the statement prepared under name (pg_prepare) with the same conventions. */
PGresult *pg_exec_prepared(PGconn *c, const char *what, const char *name, int n,
			   const char *const *params, const int *lengths, const int *formats);
/* pg_exec through a statement this connection prepares on first use of the text and keeps:
 * parsed and planned once per session, not per call. Only for statements whose plan is the
 * same for every parameter value (a lookup by id), since Postgres may settle on a generic
 * plan after five executions; not for statements that scan tables a first sync grows (see
 * pg_exec_json), only ones that reach them by a key. Prepared again after a minute. A statement the session lost, or whose result type a migration changed, is
 * prepared again once (outside a transaction) instead of failing. */
PGresult *pg_exec_cached(PGconn *c, const char *what, const char *sql, int n,
			 const char *const *params);
int pg_cmd_cached(PGconn *c, const char *what, const char *sql, int n, const char *const *params);
/* How many statements pg_exec_cached holds prepared on c (for tests). */
int pg_cached_statements(PGconn *c);
/* How old a prepared statement may get before it is prepared again (default 60 s; tests). */
void pg_stmt_max_age(int seconds);
/* Prepares sql under name on this connection (again after every reconnect). 0 or -EIO. */
int pg_prepare(PGconn *c, const char *name, const char *sql);
/* Same, for commands whose result is not needed: 0 or -EIO. */
int pg_cmd(PGconn *c, const char *what, const char *sql, int n, const char *const *params);
/* SQLSTATE of the last failed pg_exec on this thread's connection, "" if none: the writer
 * retries a batch on 40P01 and 40001. */
const char *pg_last_sqlstate(void);
/* The server's primary message of that failure ("" if none), for records that keep it. */
const char *pg_last_error(void);
/* 1 when the connection broke (the caller reconnects). */
int pg_broken(PGconn *c);

/* Applies every embedded migration not yet recorded in schema_migrations, each in its own
 * transaction, under an advisory lock so concurrent callers are safe. Returns the number
 * applied, or <0. */
int pg_migrate(PGconn *c);
/* Latest embedded version, and the version the database has (0 when none). */
int pg_schema_latest(void);
int pg_schema_version(PGconn *c);

#endif
