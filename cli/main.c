/* mailpipe: the operator's command. Dispatches to the subcommands in the other cli/ files. */
#include "cli.h"
#include "log.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_usage(void)
{
	fputs("usage:\n"
	      "  mailpipe db migrate [--partitions N]\n"
	      "  mailpipe account add NAME (--provider P | --host H --port N --tls implicit|starttls|none)\n"
	      "                       --username U [--auth password|xoauth2]\n"
	      "                       (--secret env:VAR|file:PATH|cmd:COMMAND | --secret-stdin)\n"
	      "                       [--email ADDR] [--interval S] [--initial-window-days D]\n"
	      "                       [--folder F]... [--ca-file PATH] [--insecure] [--clean-off STEP]...\n"
	      "                       [--subject-threading DAYS] [--keep-deleted] [--no-condstore]\n"
	      "                       [--no-qresync] [--no-idle] [--idle-folder F]... [--backfill]\n"
	      "                       [--max-connections N]\n"
	      "                       [--flag-scan-interval S]\n"
	      "  mailpipe account add NAME --from-env icloud|mailatlas [flags above override]\n"
	      "  mailpipe account list [--json] | show NAME [--json] | remove NAME\n"
	      "  mailpipe account secret NAME (--secret-stdin | --secret REF)\n"
	      "  mailpipe secrets rotate        (MAILPIPE_SECRET_KEY new, MAILPIPE_SECRET_KEY_OLD old)\n"
	      "  mailpipe account resume NAME | disable NAME\n"
	      "  mailpipe sync NAME [--folder F]... [--wait] [--timeout S] [--json]\n"
	      "  mailpipe run\n"
	      "  mailpipe list [--account NAME] [--folder F] [--limit N] [--json]\n"
	      "  mailpipe conversations [--account NAME] [--limit N] [--json]\n"
	      "  mailpipe search QUERY [--account NAME] [--limit N] [--json]\n"
	      "  mailpipe contacts [FRAGMENT] [--account NAME] [--limit N] [--json]\n"
	      "  mailpipe show ID [--json] | export ID [--format eml|json] [--json]\n"
	      "  mailpipe mcp [--account NAME]...   (MCP server on stdio)\n"
	      "providers: icloud, gmail, fastmail, imap (explicit flags override a preset)\n",
	      stderr);
	config_print_help(stderr);
}

const char *cli_arg(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "mailpipe: %s needs a value\n", argv[*i]);
		return NULL;
	}
	return argv[++*i];
}

PGconn *cli_db(struct cli *c, int need_schema)
{
	if (!c->pg) {
		c->pg = pg_connect(c->cfg.database_url);
		if (!c->pg)
			return NULL;
	}
	if (need_schema && pg_schema_version(c->pg) < pg_schema_latest()) {
		fprintf(stderr, "mailpipe: the database at MAILPIPE_DATABASE_URL is not migrated: run "
				"'mailpipe db migrate'\n");
		return NULL;
	}
	return c->pg;
}

int cmd_db(struct cli *c, int argc, char **argv)
{
	long parts = 0;
	char *end = NULL;
	if (argc == 4 && strcmp(argv[2], "--partitions") == 0) {
		parts = strtol(argv[3], &end, 10);
		if (*argv[3] == 0 || *end || parts < 1 || parts > 1024) {
			fprintf(stderr, "mailpipe: --partitions must be 1 to 1024, not '%s'\n", argv[3]);
			return 2;
		}
	} else if (argc == 3 && strcmp(argv[2], "--partitions") == 0) {
		fprintf(stderr, "mailpipe: --partitions needs a value\n");
		return 2;
	} else if (argc != 2) {
		cli_usage();
		return 2;
	}
	if (strcmp(argv[1], "migrate") != 0) {
		cli_usage();
		return 2;
	}
	PGconn *pg = cli_db(c, 0);
	if (!pg)
		return 1;
	int n = pg_migrate(pg);
	if (n < 0)
		return 1;
	printf("database at schema version %d (%d migration%s applied)\n", pg_schema_version(pg), n,
	       n == 1 ? "" : "s");
	if (parts) {
		/* The per-account tables rebuilt as PARTITION BY HASH (account_id), migration 013;
		 * tables already partitioned are left as they are. */
		char np[16];
		snprintf(np, sizeof(np), "%ld", parts);
		const char *params[] = { np };
		PGresult *r = pg_exec(pg, "partition by account",
				      "SELECT mp_partition_by_account($1::int)", 1, params);
		if (!r)
			return 1;
		printf("%s table%s partitioned by hash of account_id into %ld partitions\n",
		       PQgetvalue(r, 0, 0), strcmp(PQgetvalue(r, 0, 0), "1") ? "s" : "", parts);
		PQclear(r);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct cli *, int, char **);
	} cmds[] = {
		{ "db", cmd_db },	  { "account", cmd_account }, { "sync", cmd_sync },
		{ "run", cmd_run },	  { "status", cmd_status },   { "folders", cmd_list_folders },
		{ "list", cmd_list },	  { "conversations", cmd_conversations },
		{ "search", cmd_search }, { "show", cmd_show },	      { "export", cmd_show },
		{ "contacts", cmd_contacts },
		{ "secrets", cmd_secrets },
		{ "mcp", cmd_mcp },
	};
	struct cli c = { 0 };
	int rc = 2;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		cli_usage();
		return argc < 2 ? 2 : 0;
	}
	if (config_load(&c.cfg) < 0)
		return 2;
	log_setup("cli", c.cfg.log_level);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0) {
			rc = cmds[i].fn(&c, argc - 1, argv + 1);
			goto out;
		}
	fprintf(stderr, "mailpipe: unknown command '%s'\n", argv[1]);
	cli_usage();
out:
	PQfinish(c.pg);
	config_release(&c.cfg);
	return rc;
}
