/* `mailpipe account resume NAME` and `account disable NAME`: an operator's transitions of the
 * account state machine (common/account_state.c owns the table). Called by cmd_account. */
#include "cli.h"
#include "account_state.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int cmd_account_state(struct cli *c, int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "mailpipe: usage: mailpipe account %s NAME\n", argv[0]);
		return 2;
	}
	int resume = !strcmp(argv[0], "resume");
	PGconn *pg = cli_db(c, 1);
	if (!pg)
		return 1;
	enum account_state from;
	enum account_state to = resume ? ACCOUNT_ACTIVE : ACCOUNT_DISABLED;
	int rc = account_state_command(pg, argv[1], to,
				       resume ? "resumed by `mailpipe account resume`"
					      : "disabled by `mailpipe account disable`", &from);
	if (rc == -ENOENT) {
		fprintf(stderr, "mailpipe: no account named '%s'\n", argv[1]);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "mailpipe: account '%s' not %s: database error\n", argv[1],
			resume ? "resumed" : "disabled");
		return 1;
	}
	if (rc == 0)
		printf("account '%s' is %s already\n", argv[1], account_state_name(to));
	else
		printf("account '%s' %s (was %s)%s\n", argv[1], account_state_name(to),
		       account_state_name(from), resume ? "; it syncs at the next scheduler tick" : "");
	return 0;
}
