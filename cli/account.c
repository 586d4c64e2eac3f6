/* mailpipe account add|list|show|remove. Provider presets (and --from-env, cli/from_env.c)
 * fill host, port and TLS; explicit flags override them. Secrets are accepted only as
 * references, or on stdin to be stored encrypted (cli/secrets.c; invariant 7). */
#include "cli.h"
#include "pg.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct preset {
	const char *provider, *host, *port, *tls;
};

static const struct preset presets[] = {
	{ "icloud", "imap.mail.me.com", "993", "implicit" },
	{ "gmail", "imap.gmail.com", "993", "implicit" },
	{ "fastmail", "imap.fastmail.com", "993", "implicit" },
	{ "outlook", "outlook.office365.com", "993", "implicit" },
	{ "yahoo", "imap.mail.yahoo.com", "993", "implicit" },
	{ "imap", NULL, NULL, NULL },
};

static int valid_number(const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	return !errno && *s && !*end && v >= min && v <= max;
}

static int usage_error(const char *fmt, const char *what)
{
	fprintf(stderr, "mailpipe: ");
	fprintf(stderr, fmt, what);
	fputc('\n', stderr);
	cli_usage();
	return 2;
}

/* A string list as a JSON array text, for Postgres to turn into text[] or jsonb. */
static char *str_list_json(char **items, int n)
{
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_string(items[i]));
	char *s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

static int account_add(struct cli *c, int argc, char **argv)
{
	/* NULL until a flag (or --from-env) sets it: the defaults come after both. */
	const char *name = NULL, *provider = NULL, *host = NULL, *port = NULL, *tls = NULL;
	const char *username = NULL, *auth = NULL, *secret = NULL, *email = NULL;
	const char *interval = NULL, *window = "30", *ca_file = NULL, *subject_days = "0";
	const char *from_env = NULL;
	char *folders[64], *clean_off[8], *idle_folders[16];
	int nidle_folders = 0;
	int nfolders = 0, nclean_off = 0, insecure = 0, keep_deleted = 0, no_condstore = 0;
	int no_idle = 0, backfill = 0, no_qresync = 0, secret_stdin = 0;
	const char *flag_scan = "600", *max_conns = "0";
	static const char *const steps[] = { "forward_headers", "quotes", "signature", "footers",
					      "link_lines", "invisible", "whitespace" };

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		if (!strcmp(a, "--provider")) dst = &provider;
		else if (!strcmp(a, "--host")) dst = &host;
		else if (!strcmp(a, "--port")) dst = &port;
		else if (!strcmp(a, "--tls")) dst = &tls;
		else if (!strcmp(a, "--username")) dst = &username;
		else if (!strcmp(a, "--auth")) dst = &auth;
		else if (!strcmp(a, "--secret")) dst = &secret;
		else if (!strcmp(a, "--email")) dst = &email;
		else if (!strcmp(a, "--interval")) dst = &interval;
		else if (!strcmp(a, "--initial-window-days")) dst = &window;
		else if (!strcmp(a, "--from-env")) dst = &from_env;
		else if (!strcmp(a, "--ca-file")) dst = &ca_file;
		else if (!strcmp(a, "--subject-threading")) dst = &subject_days;
		else if (!strcmp(a, "--flag-scan-interval")) dst = &flag_scan;
		else if (!strcmp(a, "--max-connections")) dst = &max_conns;
		else if (!strcmp(a, "--insecure")) { insecure = 1; continue; }
		else if (!strcmp(a, "--keep-deleted")) { keep_deleted = 1; continue; }
		else if (!strcmp(a, "--no-condstore")) { no_condstore = 1; continue; }
		else if (!strcmp(a, "--no-qresync")) { no_qresync = 1; continue; }
		else if (!strcmp(a, "--no-idle")) { no_idle = 1; continue; }
		else if (!strcmp(a, "--backfill")) { backfill = 1; continue; }
		else if (!strcmp(a, "--secret-stdin")) { secret_stdin = 1; continue; }
		else if (!strcmp(a, "--folder")) {
			const char *v = cli_arg(argc, argv, &i);
			if (!v)
				return 2;
			if (nfolders == 64)
				return usage_error("%s", "at most 64 --folder flags");
			folders[nfolders++] = (char *)v;
			continue;
		} else if (!strcmp(a, "--idle-folder")) {
			const char *v = cli_arg(argc, argv, &i);
			if (!v)
				return 2;
			if (nidle_folders == 16)
				return usage_error("%s", "at most 16 --idle-folder flags (a connection each)");
			idle_folders[nidle_folders++] = (char *)v;
			continue;
		} else if (!strcmp(a, "--clean-off")) {
			const char *v = cli_arg(argc, argv, &i);
			int known = 0;
			for (size_t k = 0; v && k < sizeof(steps) / sizeof(steps[0]); k++)
				known |= !strcmp(v, steps[k]);
			if (!known)
				return usage_error("--clean-off takes one of forward_headers, quotes, signature, "
						   "footers, link_lines, invisible, whitespace (got '%s')", v ? v : "");
			if (nclean_off < 8)
				clean_off[nclean_off++] = (char *)v;
			continue;
		} else if (a[0] == '-') {
			return usage_error("unknown option '%s'", a);
		} else if (!name) {
			name = a;
			continue;
		} else {
			return usage_error("unexpected argument '%s'", a);
		}
		if (!(*dst = cli_arg(argc, argv, &i))) {
			cli_usage();
			return 2;
		}
	}
	if (!name)
		return usage_error("%s", "account add needs a NAME");
	if (secret_stdin && secret)
		return usage_error("%s", "--secret-stdin and --secret are exclusive");
	if (secret_stdin)
		secret = "stored:";	/* --from-env fills no secret over it */
	if (from_env) {
		struct account_spec s = { provider, host, port, tls, username, auth, secret, email,
					  interval };
		if (from_env_fill(from_env, &s))
			return 2;
		provider = s.provider, host = s.host, port = s.port, tls = s.tls;
		username = s.username, auth = s.auth, secret = s.secret, email = s.email;
		interval = s.interval;
	}
	provider = provider ? provider : "imap";
	auth = auth ? auth : "password";
	interval = interval ? interval : "60";
	const struct preset *p = NULL;
	for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
		if (!strcmp(presets[i].provider, provider))
			p = &presets[i];
	if (!p)
		return usage_error("unknown provider '%s' (icloud, gmail, fastmail, outlook, yahoo, imap)", provider);
	host = host ? host : p->host;
	port = port ? port : p->port;
	tls = tls ? tls : p->tls ? p->tls : "implicit";
	if (!port)
		port = !strcmp(tls, "implicit") ? "993" : "143";
	if (!host)
		return usage_error("%s", "--host is required unless --provider gives one");
	if (!valid_number(port, 1, 65535))
		return usage_error("--port '%s' is not a port number", port);
	if (strcmp(tls, "implicit") && strcmp(tls, "starttls") && strcmp(tls, "none"))
		return usage_error("--tls '%s' is not implicit, starttls or none", tls);
	if (strcmp(auth, "password") && strcmp(auth, "xoauth2"))
		return usage_error("--auth '%s' is not password or xoauth2", auth);
	if (!username)
		return usage_error("%s", "--username is required");
	if (!secret_stdin && !secrets_ref_valid(secret))
		return usage_error("%s", "--secret must be a reference, env:VAR, file:PATH or cmd:COMMAND, "
				   "never the secret itself (or use --secret-stdin)");
	if (!valid_number(interval, 0, 86400 * 30))
		return usage_error("--interval '%s' is not a number of seconds", interval);
	if (!valid_number(subject_days, 0, 3650))
		return usage_error("--subject-threading '%s' is not a number of days", subject_days);
	if (!valid_number(max_conns, 0, 1000))
		return usage_error("--max-connections '%s' is not a number of connections", max_conns);
	if (!valid_number(flag_scan, 0, 86400 * 7))
		return usage_error("--flag-scan-interval '%s' is not a number of seconds", flag_scan);
	if (!valid_number(window, 0, 365 * 100))
		return usage_error("--initial-window-days '%s' is not a number of days", window);

	/* The key and the secret before anything is written: a missing key stores nothing. */
	struct cli_secret st = { 0 };
	int rc = secret_stdin ? secrets_prepare_stdin(c, &st) : 0;
	PGconn *pg = rc ? NULL : cli_db(c, 1);
	if (!pg || (secret_stdin && pg_cmd(pg, "begin", "BEGIN", 0, NULL) < 0)) {
		secrets_release(&st);
		return rc ? rc : 1;
	}
	char *fj = str_list_json(folders, nfolders), *cj = str_list_json(clean_off, nclean_off);
	char *ij = str_list_json(idle_folders, nidle_folders);
	const char *params[] = { name, provider, host, port, tls, username, auth, secret, email,
				 interval, window, fj, ca_file, insecure ? "false" : "true", cj,
				 subject_days, keep_deleted ? "true" : "false", no_condstore ? "true" : "false",
				 flag_scan, no_idle ? "true" : "false", backfill ? "true" : "false",
				 no_qresync ? "true" : "false", ij, max_conns };
	PGresult *r = PQexecParams(pg,
		"INSERT INTO accounts (name, provider, host, port, tls, username, auth, secret_ref, email, "
		" sync_interval_s, initial_window_days, folders, ca_file, tls_verify, options) "
		"VALUES ($1, $2, $3, $4::int, $5, $6, $7, $8, $9, $10::int, $11::int, "
		" coalesce(array(SELECT jsonb_array_elements_text($12::jsonb)), '{}'), $13, $14::boolean, "
		" jsonb_build_object('clean_off', $15::jsonb, 'subject_threading_days', $16::int, "
		"  'keep_deleted', $17::boolean, 'no_condstore', $18::boolean, 'flag_scan_s', $19::int, "
		"  'no_idle', $20::boolean, 'backfill', $21::boolean, 'no_qresync', $22::boolean, "
		"  'idle_folders', $23::jsonb, 'max_connections', $24::int)) "
		"ON CONFLICT (name) DO NOTHING RETURNING id",
		24, NULL, params, NULL, NULL, 0);
	free(fj);
	free(ij);
	free(cj);
	rc = 1;
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "mailpipe: account '%s' not added: %s", name, PQerrorMessage(pg));
	else if (PQntuples(r) == 0)
		fprintf(stderr, "mailpipe: account '%s' already exists\n", name);
	else if (secret_stdin && (secrets_store(pg, PQgetvalue(r, 0, 0), &st) < 0 ||
				  pg_cmd(pg, "commit", "COMMIT", 0, NULL) < 0))
		fprintf(stderr, "mailpipe: account '%s' not added: its secret was not stored\n", name);
	else {
		printf("account '%s' added (id %s): %s:%s %s, user %s%s\n", name, PQgetvalue(r, 0, 0), host,
		       port, tls, username, secret_stdin ? ", secret stored encrypted" : "");
		rc = 0;
	}
	if (rc && secret_stdin)
		PQclear(PQexec(pg, "ROLLBACK"));
	PQclear(r);
	secrets_release(&st);
	return rc;
}

static int print_rows(PGresult *r, int json)
{
	if (json) {
		json_t *a = json_array();
		for (int i = 0; i < PQntuples(r); i++)
			json_array_append_new(a, json_loads(PQgetvalue(r, i, 0), 0, NULL));
		char *s = json_dumps(a, JSON_INDENT(2));
		puts(s);
		free(s);
		json_decref(a);
		return 0;
	}
	for (int i = 0; i < PQntuples(r); i++)
		puts(PQgetvalue(r, i, 1));
	return 0;
}

static int account_list(struct cli *c, const char *name, int json)
{
	PGconn *pg = cli_db(c, 1);
	if (!pg)
		return 1;
	const char *params[] = { name };
	PGresult *r = PQexecParams(pg,
		"SELECT json_build_object('id', id, 'name', name, 'provider', provider, 'host', host, "
		" 'port', port, 'tls', tls, 'username', username, 'auth', auth, 'secret_ref', secret_ref, "
		" 'secret_key_id', (SELECT key_id FROM account_secrets WHERE account_id = accounts.id), "
		" 'secret_changed_at', secret_changed_at, "
		" 'email', email, 'interval', sync_interval_s, 'initial_window_days', initial_window_days, "
		" 'folders', folders, 'ca_file', ca_file, 'tls_verify', tls_verify, 'state', state, "
		" 'last_error', last_error, 'next_sync_at', next_sync_at)::text, "
		" format('%s  %s %s:%s (%s) user=%s state=%s%s', name, provider, host, port, tls, username, "
		"  state, coalesce(' error: ' || last_error, '')) "
		"FROM accounts WHERE $1::text IS NULL OR name = $1 ORDER BY name",
		1, NULL, params, NULL, NULL, 0);
	int rc = 1;
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "mailpipe: %s", PQerrorMessage(pg));
	else if (name && PQntuples(r) == 0)
		fprintf(stderr, "mailpipe: no account named '%s'\n", name);
	else
		rc = print_rows(r, json);
	PQclear(r);
	return rc;
}

static int account_remove(struct cli *c, const char *name)
{
	PGconn *pg = cli_db(c, 1);
	if (!pg)
		return 1;
	const char *params[] = { name };
	PGresult *r = PQexecParams(pg, "DELETE FROM accounts WHERE name = $1 RETURNING id", 1, NULL,
				   params, NULL, NULL, 0);
	int rc = 1;
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "mailpipe: %s", PQerrorMessage(pg));
	else if (PQntuples(r) == 0)
		fprintf(stderr, "mailpipe: no account named '%s'\n", name);
	else {
		printf("account '%s' removed with its folders and messages\n", name);
		rc = 0;
	}
	PQclear(r);
	return rc;
}

int cmd_account(struct cli *c, int argc, char **argv)
{
	if (argc < 2) {
		cli_usage();
		return 2;
	}
	int json = argc > 2 && !strcmp(argv[argc - 1], "--json");
	if (!strcmp(argv[1], "add"))
		return account_add(c, argc - 1, argv + 1);
	if (!strcmp(argv[1], "list") && argc == 2 + json)
		return account_list(c, NULL, json);
	if (!strcmp(argv[1], "show") && argc == 3 + json)
		return account_list(c, argv[2], json);
	if (!strcmp(argv[1], "remove") && argc == 3)
		return account_remove(c, argv[2]);
	if (!strcmp(argv[1], "secret"))
		return cmd_account_secret(c, argc - 1, argv + 1);
	if (!strcmp(argv[1], "resume") || !strcmp(argv[1], "disable"))
		return cmd_account_state(c, argc - 1, argv + 1);
	cli_usage();
	return 2;
}
