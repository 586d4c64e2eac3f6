/* The mailpipe command's subcommands. Each returns the process exit status: 0 success, 1
 * failure (one line on stderr names what), 2 bad usage (usage printed). */
#ifndef MP_CLI_H
#define MP_CLI_H

#include "config.h"

#include <jansson.h>
#include <libpq-fe.h>

struct cli {
	struct mp_config cfg;
	PGconn *pg;	/* connected on first use by cli_db() */
};

/* Connects (once) and checks the schema is current unless migrating. NULL after one line. */
PGconn *cli_db(struct cli *c, int need_schema);
void cli_usage(void);
/* The value of "--flag VALUE" at argv[*i], advancing *i; NULL (with usage) when missing. */
const char *cli_arg(int argc, char **argv, int *i);

/* What `account add` takes from flags, or from a seed's environment (cli/from_env.c). */
struct account_spec {
	const char *provider, *host, *port, *tls, *username, *auth, *secret, *email, *interval;
};
/* --from-env KIND (icloud or mailatlas): fills each field of s still NULL from that setup's
 * variables; values are borrowed from the environment. 0, or 2 after one line naming the
 * missing or malformed variable. */
int from_env_fill(const char *kind, struct account_spec *s);

/* Secrets at rest (cli/secrets.c). A secret read for an account: the current key and the
 * clear text; release wipes both. */
#include "secretbox.h"
struct cli_secret {
	struct secretbox_key key;
	char *clear;
};
/* 1 for env:VAR, file:PATH and cmd:COMMAND references. */
int secrets_ref_valid(const char *ref);
/* Loads MAILPIPE_SECRET_KEY, then reads the secret (one line) from stdin. 0, or 2 after one
 * line (no key, a bad key, an empty secret): nothing is stored then. */
int secrets_prepare_stdin(struct cli *c, struct cli_secret *s);
/* Seals s for the account (bound to its id) into account_secrets, inside the caller's
 * transaction. 0 or negative after one line. */
int secrets_store(PGconn *pg, const char *account_id, const struct cli_secret *s);
void secrets_release(struct cli_secret *s);
/* account secret NAME --secret-stdin | --secret REF */
int cmd_account_secret(struct cli *c, int argc, char **argv);
/* secrets rotate */
int cmd_secrets(struct cli *c, int argc, char **argv);

int cmd_db(struct cli *c, int argc, char **argv);
int cmd_account(struct cli *c, int argc, char **argv);
/* account resume|disable NAME (cli/account_state.c) */
int cmd_account_state(struct cli *c, int argc, char **argv);
int cmd_sync(struct cli *c, int argc, char **argv);
int cmd_run(struct cli *c, int argc, char **argv);
int cmd_status(struct cli *c, int argc, char **argv);
/* Per folder of a run: folder, status (running, ok, failed, incomplete), fetched, parsed,
 * written, server_count, stored_count, rate_per_s, eta_s (status.c; `sync --wait` draws it).
 * rc may be NULL (no parsed counts). A new reference, or NULL on a database error. */
struct redisContext;
json_t *status_run_progress(PGconn *pg, struct redisContext *rc, const struct mp_config *cfg,
			    long long run_id);
/* folders [--account NAME] [--folder F] [--limit N] [--json] (cli/query.c; `folders` runs this) */
int cmd_list_folders(struct cli *c, int argc, char **argv);
int cmd_list(struct cli *c, int argc, char **argv);
int cmd_conversations(struct cli *c, int argc, char **argv);
int cmd_search(struct cli *c, int argc, char **argv);
/* contacts [FRAGMENT] [--account NAME] [--limit N] [--json] */
int cmd_contacts(struct cli *c, int argc, char **argv);
/* show ID [--json]; export ID [--format eml|json] */
int cmd_show(struct cli *c, int argc, char **argv);
/* mcp [--account NAME]...: MCP server on stdio until end of input (cli/mcp.c) */
int cmd_mcp(struct cli *c, int argc, char **argv);

#endif
