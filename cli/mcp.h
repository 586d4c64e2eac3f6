/* The MCP server's state and its tools, as the protocol loop (mcp.c) sees the tools
 * (mcp_tools.c). */
#ifndef MP_CLI_MCP_H
#define MP_CLI_MCP_H

#include "cli.h"

#include <jansson.h>

struct mcp {
	struct cli *cli;	/* borrowed; its pg connection serves every tool */
	/* The accounts this server may show, as a Postgres bigint[] literal ("{3,7}"), or NULL
	 * for all accounts (no --account given): every query is filtered by it. */
	char *scope;
	int scope_count;	/* accounts named at start; 0 = all */
	int initialized;	/* notifications/initialized seen */
	json_t *progress_token;	/* of the request being answered (borrowed), or NULL */
};

/* Sends notifications/progress for the request being answered, when it asked for progress
 * (params._meta.progressToken). progress must grow from one call to the next. */
void mcp_notify_progress(struct mcp *m, double progress, double total, const char *message);

/* The tools/list result (new reference): every tool with its inputSchema and outputSchema. */
json_t *mcp_tools_list(void);

/* Runs the tool called name with args (borrowed; an object, or NULL for none) and returns the
 * CallToolResult (new reference): structuredContent plus the same JSON as text, or isError
 * with a one-line message. NULL when there is no tool of that name. */
json_t *mcp_tools_call(struct mcp *m, const char *name, json_t *args);

#endif
