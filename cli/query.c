/* Read-only views of what was synced: mailpipe folders, list, conversations, contacts, show,
 * export and search. Every listing takes --json; text output is one line per row. */
#include "cli.h"
#include "pg.h"
#include "query.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qopts {
	const char *account, *folder, *limit, *format, *arg;
	int json;
};

/* Parses the shared flags; the one positional argument goes to o->arg (want_arg: 0 none,
 * 1 required, 2 optional). Only export takes --format, eml or json (json is --json's
 * meaning there too). 0, or 2 (usage). */
static int parse_opts(int argc, char **argv, struct qopts *o, int want_arg)
{
	int export = !strcmp(argv[0], "export");
	memset(o, 0, sizeof(*o));
	/* Folders are few and an operator wants them all; messages are many. */
	o->limit = !strcmp(argv[0], "folders") ? "100000" : "50";
	for (int i = 1; i < argc; i++) {
		const char **dst = NULL;
		if (!strcmp(argv[i], "--json")) {
			o->json = 1;
			continue;
		}
		if (!strcmp(argv[i], "--account"))
			dst = &o->account;
		else if (!strcmp(argv[i], "--folder"))
			dst = &o->folder;
		else if (!strcmp(argv[i], "--limit"))
			dst = &o->limit;
		else if (!strcmp(argv[i], "--format") && export)
			dst = &o->format;
		else if (argv[i][0] != '-' && want_arg && !o->arg) {
			o->arg = argv[i];
			continue;
		}
		if (!dst || !(*dst = cli_arg(argc, argv, &i))) {
			if (!dst)
				fprintf(stderr, "mailpipe: unexpected argument '%s'\n", argv[i]);
			cli_usage();
			return 2;
		}
	}
	char *end;
	long n = strtol(o->limit, &end, 10);
	if (*end || n <= 0 || n > 100000 || (want_arg == 1 && !o->arg)) {
		fprintf(stderr, want_arg == 1 && !o->arg ? "mailpipe: an argument is missing\n"
						    : "mailpipe: --limit takes 1..100000\n");
		cli_usage();
		return 2;
	}
	if (export && o->format && strcmp(o->format, "eml") && strcmp(o->format, "json")) {
		fprintf(stderr, "mailpipe: --format takes eml or json (got '%s')\n", o->format);
		return 2;
	}
	if (export && o->json && o->format && strcmp(o->format, "json")) {
		fprintf(stderr, "mailpipe: --json and --format %s disagree\n", o->format);
		return 2;
	}
	if (!o->format)
		o->format = "json";
	return 0;
}

/* parse_opts, then the database: NULL with *rc the exit status (2 usage, 1 no database). */
static PGconn *open_query(struct cli *c, int argc, char **argv, struct qopts *o, int want_arg,
			  int *rc)
{
	*rc = parse_opts(argc, argv, o, want_arg);
	if (*rc)
		return NULL;
	PGconn *pg = cli_db(c, 1);
	*rc = pg ? 0 : 1;
	return pg;
}

/* Column 0 of every row is a JSON object, column 1 its text line. */
static int print_result(PGresult *r, int json)
{
	if (!r)
		return 1;
	if (json) {
		json_t *a = json_array();
		for (int i = 0; i < PQntuples(r); i++)
			json_array_append_new(a, json_loads(PQgetvalue(r, i, 0), 0, NULL));
		char *s = json_dumps(a, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
		json_decref(a);
	} else {
		for (int i = 0; i < PQntuples(r); i++)
			puts(PQgetvalue(r, i, 1));
	}
	PQclear(r);
	return 0;
}

#define MESSAGE_ROW                                                                             \
	QUERY_MESSAGE_JSON "::text, "                                                              \
	"format('%s  %s  %-30s  %s', m.id, to_char(coalesce(m.sent_at, m.received_at), "           \
	" 'YYYY-MM-DD HH24:MI'), left(coalesce(m.from_name, m.from_email, '?'), 30), "            \
	" coalesce(m.subject, '(no subject)'))"

int cmd_list(struct cli *c, int argc, char **argv)
{
	struct qopts o;
	int rc;
	PGconn *pg = open_query(c, argc, argv, &o, 0, &rc);
	if (!pg)
		return rc;
	const char *params[] = { o.account, o.folder, o.limit };
	return print_result(pg_exec(pg, "list messages",
		"SELECT " MESSAGE_ROW " FROM messages m JOIN accounts a ON a.id = m.account_id "
		"WHERE ($1::text IS NULL OR a.name = $1) AND ($2::text IS NULL OR EXISTS (SELECT 1 "
		" FROM message_locations l JOIN email_folders f ON f.account_id = l.account_id "
		" AND f.id = l.folder_id WHERE l.account_id = m.account_id AND l.message_id = m.id "
		" AND f.name = $2)) "
		"ORDER BY coalesce(m.sent_at, m.received_at) DESC NULLS LAST, m.id DESC LIMIT $3::int",
		3, params), o.json);
}

int cmd_list_folders(struct cli *c, int argc, char **argv)
{
	struct qopts o;
	int rc;
	PGconn *pg = open_query(c, argc, argv, &o, 0, &rc);
	if (!pg)
		return rc;
	const char *params[] = { o.account, o.folder, o.limit };
	return print_result(pg_exec(pg, "list folders",
		"SELECT json_build_object('account', a.name, 'name', f.name, 'special_use', f.special_use, "
		" 'message_count', f.message_count, 'unread_count', f.unread_count, "
		" 'uidvalidity', f.uidvalidity, 'last_uid', f.last_uid, "
		" 'last_synced_at', f.last_synced_at, 'last_error', f.last_error)::text, "
		" format('%-20s %-32s %6s messages %6s unread', a.name, f.name, f.message_count, f.unread_count) "
		"FROM email_folders f JOIN accounts a ON a.id = f.account_id "
		"WHERE ($1::text IS NULL OR a.name = $1) AND ($2::text IS NULL OR f.name = $2) "
		"ORDER BY a.name, f.name LIMIT $3::int", 3, params), o.json);
}

int cmd_conversations(struct cli *c, int argc, char **argv)
{
	struct qopts o;
	int rc;
	PGconn *pg = open_query(c, argc, argv, &o, 0, &rc);
	if (!pg)
		return rc;
	const char *params[] = { o.account, o.limit };
	return print_result(pg_exec(pg, "list conversations",
		"SELECT " QUERY_CONVERSATION_JSON "::text, "
		" format('%s  %s  %3s msgs %3s unread  %s', v.id, to_char(v.last_message_at, 'YYYY-MM-DD HH24:MI'), "
		"  v.message_count, v.unread_count, coalesce(v.display_name, '(no subject)')) "
		"FROM conversations v JOIN accounts a ON a.id = v.account_id "
		"WHERE $1::text IS NULL OR a.name = $1 "
		"ORDER BY v.last_message_at DESC NULLS LAST LIMIT $2::int", 2, params), o.json);
}

int cmd_search(struct cli *c, int argc, char **argv)
{
	struct qopts o;
	int rc;
	PGconn *pg = open_query(c, argc, argv, &o, 1, &rc);
	if (!pg)
		return rc;
	/* websearch syntax: words, "phrases", -excluded, or. */
	const char *params[] = { o.arg, o.account, o.limit };
	return print_result(pg_exec(pg, "search",
		"SELECT " MESSAGE_ROW " FROM messages m JOIN accounts a ON a.id = m.account_id, "
		" websearch_to_tsquery('simple', $1) q "
		"WHERE m.search @@ q AND ($2::text IS NULL OR a.name = $2) "
		"ORDER BY ts_rank(m.search, q) DESC, m.id DESC LIMIT $3::int", 3, params), o.json);
}

int cmd_contacts(struct cli *c, int argc, char **argv)
{
	struct qopts o;
	int rc;
	PGconn *pg = open_query(c, argc, argv, &o, 2, &rc);
	if (!pg)
		return rc;
	/* A fragment of an address or name; the trigram indexes (migration 004) serve it. */
	const char *params[] = { o.arg, o.account, o.limit };
	return print_result(pg_exec(pg, "list contacts",
		"SELECT json_build_object('email', k.email, 'name', k.name, 'account', a.name, "
		" 'message_count', k.message_count, 'first_seen_at', k.first_seen_at, "
		" 'last_seen_at', k.last_seen_at)::text, "
		" format('%-40s %-30s %5s msgs  last %s', k.email, coalesce(k.name, ''), k.message_count, "
		"  to_char(k.last_seen_at, 'YYYY-MM-DD')) "
		"FROM contacts k JOIN accounts a ON a.id = k.account_id "
		"WHERE ($1::text IS NULL OR lower(k.email) LIKE '%' || lower($1) || '%' "
		"  OR lower(k.name) LIKE '%' || lower($1) || '%') AND ($2::text IS NULL OR a.name = $2) "
		"ORDER BY k.message_count DESC, k.email LIMIT $3::int", 3, params), o.json);
}

int cmd_show(struct cli *c, int argc, char **argv)
{
	struct qopts o;
	int rc;
	PGconn *pg = open_query(c, argc, argv, &o, 1, &rc);
	if (!pg)
		return rc;
	const char *params[] = { o.arg };
	PGresult *r = pg_exec(pg, "show message",
		"SELECT " QUERY_MESSAGE_FULL_JSON("2147483647") "::text, m.raw "
		"FROM messages m JOIN accounts a ON a.id = m.account_id WHERE m.id = $1::bigint", 1, params);
	if (!r)
		return 1;
	if (PQntuples(r) != 1) {
		fprintf(stderr, "mailpipe: no message with id '%s'\n", o.arg);
		PQclear(r);
		return 1;
	}
	json_t *j = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	/* The bytes exactly as the server sent them: bytea (lz4 TOAST is lossless). */
	if (strcmp(argv[0], "export") == 0 && strcmp(o.format, "eml") == 0) {
		if (PQgetisnull(r, 0, 1)) {
			fprintf(stderr, "mailpipe: message %s has no raw copy (MAILPIPE_STORE_RAW=0)\n", o.arg);
			rc = 1;
		} else {
			size_t n;
			unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &n);
			if (!raw || fwrite(raw, 1, n, stdout) != n || fflush(stdout)) {
				fprintf(stderr, "mailpipe: message %s not written to stdout\n", o.arg);
				rc = 1;
			}
			PQfreemem(raw);
		}
	} else if (o.json || strcmp(argv[0], "export") == 0) {
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
	} else {
		json_t *from = json_object_get(j, "from");
		printf("From: %s <%s>\nSubject: %s\nDate: %s\n\n%s\n",
		       json_string_value(json_object_get(from, "name")) ?: "",
		       json_string_value(json_object_get(from, "email")) ?: "",
		       json_string_value(json_object_get(j, "subject")) ?: "",
		       json_string_value(json_object_get(j, "date")) ?: "",
		       json_string_value(json_object_get(j, "body_clean")) ?:
		       json_string_value(json_object_get(j, "body_text")) ?: "");
	}
	json_decref(j);
	PQclear(r);
	return rc;
}
