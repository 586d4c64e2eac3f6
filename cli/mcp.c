/* mailpipe mcp [--account NAME]...: a Model Context Protocol server (revision 2025-11-25) on
 * stdio. Owns the JSON-RPC framing, the lifecycle and the dispatch; the tools and their SQL are
 * in mcp_tools.c. Logs go to stderr; stdout carries only protocol messages. */
#include "cli.h"
#include "log.h"
#include "mcp.h"
#include "pg.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MCP_PROTOCOL "2025-11-25"
#define MCP_SERVER_VERSION "0.1.0"
/* A line longer than this is refused: no tool takes arguments anywhere near it. */
#define MCP_MAX_LINE (4 << 20)

enum {
	RPC_PARSE_ERROR = -32700,
	RPC_INVALID_REQUEST = -32600,
	RPC_METHOD_NOT_FOUND = -32601,
	RPC_INVALID_PARAMS = -32602,
	RPC_INTERNAL_ERROR = -32603,
};

/* The revisions whose messages this server's answers fit: structuredContent and
 * outputSchema are ignored by clients of revisions before 2025-06-18. */
static const char *const protocols[] = { MCP_PROTOCOL, "2025-06-18", "2025-03-26", "2024-11-05" };

/* Writes one message as one line. -EPIPE when the client is gone. */
static int send_message(json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	int rc = 0;
	if (!s || fputs(s, stdout) == EOF || putchar('\n') == EOF || fflush(stdout) == EOF)
		rc = -EPIPE;
	free(s);
	json_decref(msg);
	return rc;
}

/* id is borrowed (NULL sends null); result is stolen. */
static int send_result(json_t *id, json_t *result)
{
	return send_message(json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(),
				      "result", result));
}

static int send_error(json_t *id, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int send_error(json_t *id, int code, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_info("msg=\"answered with error\" code=%d error=\"%s\"", code, text);
	return send_message(json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
				      id ? id : json_null(), "error", "code", code, "message", text));
}

void mcp_notify_progress(struct mcp *m, double progress, double total, const char *message)
{
	if (!m->progress_token)
		return;
	send_message(json_pack("{s:s, s:s, s:{s:O, s:f, s:f, s:s}}", "jsonrpc", "2.0", "method",
			       "notifications/progress", "params", "progressToken", m->progress_token,
			       "progress", progress, "total", total, "message", message));
}

static int on_initialize(struct mcp *m, json_t *id, json_t *params)
{
	const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
	if (!asked)
		return send_error(id, RPC_INVALID_PARAMS, "initialize needs params.protocolVersion");
	/* The client's revision when this server speaks it, else ours: the client decides whether
	 * it can go on with that. */
	const char *version = MCP_PROTOCOL;
	for (size_t i = 0; i < sizeof(protocols) / sizeof(protocols[0]); i++)
		if (!strcmp(asked, protocols[i]))
			version = protocols[i];
	const char *client = json_string_value(
		json_object_get(json_object_get(params, "clientInfo"), "name"));
	log_info("msg=\"initialize\" client=\"%s\" asked=%s protocol=%s accounts=%s", client ?: "?",
		 asked, version, m->scope ?: "all");
	return send_result(id, json_pack("{s:s, s:{s:{}}, s:{s:s, s:s, s:s}, s:s}",
		"protocolVersion", version, "capabilities", "tools",
		"serverInfo", "name", "mailpipe", "title", "mailpipe mail archive",
		"version", MCP_SERVER_VERSION,
		"instructions", "Read-only access to mail synced from IMAP into PostgreSQL by mailpipe: "
		"folders, conversations, messages and full-text search, plus sync_now to fetch new "
		"mail and sync_status to see how fresh the copy is. Ids are mailpipe's numeric ids."));
}

static int on_tools_call(struct mcp *m, json_t *id, json_t *params)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	json_t *args = json_object_get(params, "arguments");
	if (!name)
		return send_error(id, RPC_INVALID_PARAMS, "tools/call needs params.name");
	if (args && !json_is_object(args) && !json_is_null(args))
		return send_error(id, RPC_INVALID_PARAMS, "params.arguments must be an object");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	json_t *token = json_object_get(json_object_get(params, "_meta"), "progressToken");
	m->progress_token = json_is_string(token) || json_is_integer(token) ? token : NULL;
	json_t *result = mcp_tools_call(m, name, json_is_object(args) ? args : NULL);
	m->progress_token = NULL;
	if (!result)
		return send_error(id, RPC_INVALID_PARAMS, "unknown tool '%s'", name);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("msg=\"tool called\" tool=%s ms=%ld error=%s", name,
		 (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000,
		 json_is_true(json_object_get(result, "isError")) ? "yes" : "no");
	return send_result(id, result);
}

/* Handles one request (id set) or notification (id NULL). */
static int dispatch(struct mcp *m, const char *method, json_t *id, json_t *params)
{
	if (!id) {
		/* Notifications are never answered; the cancellation of a request is moot since
		 * requests are answered one at a time, in order. */
		if (!strcmp(method, "notifications/initialized"))
			m->initialized = 1;
		else
			log_debug("msg=\"notification ignored\" method=\"%s\"", method);
		return 0;
	}
	if (params && !json_is_object(params))
		return send_error(id, RPC_INVALID_PARAMS, "params must be an object");
	if (!strcmp(method, "initialize"))
		return on_initialize(m, id, params);
	if (!strcmp(method, "ping"))
		return send_result(id, json_object());
	if (!strcmp(method, "tools/list"))
		return send_result(id, mcp_tools_list());
	if (!strcmp(method, "tools/call"))
		return on_tools_call(m, id, params);
	return send_error(id, RPC_METHOD_NOT_FOUND, "method not found: %s", method);
}

/* One line from the client: a request, a notification, or a response to a request of ours
 * (there are none, so those are dropped). */
static int handle_line(struct mcp *m, const char *line, size_t len)
{
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (!len)
		return 0;
	json_error_t jerr;
	json_t *msg = json_loadb(line, len, JSON_DECODE_ANY, &jerr);
	if (!msg)
		return send_error(NULL, RPC_PARSE_ERROR, "parse error at column %d: %s", jerr.column,
				  jerr.text);
	int rc;
	json_t *id = json_object_get(msg, "id"), *method = json_object_get(msg, "method");
	if (!json_is_object(msg)) {
		rc = send_error(NULL, RPC_INVALID_REQUEST, json_is_array(msg) ?
				"batches are not part of MCP 2025-11-25: send one message per line" :
				"a message must be a JSON object");
	} else if (!method && (json_object_get(msg, "result") || json_object_get(msg, "error"))) {
		rc = 0;
	} else if (id && !json_is_string(id) && !json_is_integer(id)) {
		rc = send_error(NULL, RPC_INVALID_REQUEST, "id must be a string or an integer");
	} else if (!json_is_string(method) ||
		   strcmp(json_string_value(json_object_get(msg, "jsonrpc")) ?: "", "2.0") != 0) {
		rc = id ? send_error(id, RPC_INVALID_REQUEST, "not a JSON-RPC 2.0 request") : 0;
	} else {
		rc = dispatch(m, json_string_value(method), id, json_object_get(msg, "params"));
	}
	json_decref(msg);
	return rc;
}

/* Resolves the --account names into m->scope. 0, 2 (an unknown name: usage) or 1. */
static int resolve_scope(struct mcp *m, PGconn *pg, const char *const *names, int n)
{
	size_t size = 3 + (size_t)n * 21, used = 0;
	m->scope = malloc(size);
	used += snprintf(m->scope + used, size - used, "{");
	for (int i = 0; i < n; i++) {
		const char *params[] = { names[i] };
		PGresult *r = pg_exec(pg, "find account", "SELECT id FROM accounts WHERE name = $1", 1,
				      params);
		if (!r)
			return 1;
		if (PQntuples(r) != 1) {
			fprintf(stderr, "mailpipe: mcp: no account named '%s'\n", names[i]);
			PQclear(r);
			return 2;
		}
		used += snprintf(m->scope + used, size - used, "%s%s", i ? "," : "",
				 PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	snprintf(m->scope + used, size - used, "}");
	m->scope_count = n;
	return 0;
}

int cmd_mcp(struct cli *c, int argc, char **argv)
{
	struct mcp m = { .cli = c };
	const char **names = calloc(argc, sizeof(*names));
	int n = 0, rc = 2;
	char *line = NULL;
	size_t cap = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--account")) {
			if (!(names[n++] = cli_arg(argc, argv, &i)))
				goto out;
		} else {
			fprintf(stderr, "mailpipe: mcp: unexpected argument '%s'\n", argv[i]);
			goto out;
		}
	}
	PGconn *pg = cli_db(c, 1);
	if (!pg) {
		rc = 1;
		goto out;
	}
	if (n && (rc = resolve_scope(&m, pg, names, n)) != 0)
		goto out;
	/* A client that goes away mid-answer must end the loop, not the process. */
	signal(SIGPIPE, SIG_IGN);
	log_info("msg=\"mcp server ready\" protocol=%s accounts=%s", MCP_PROTOCOL, m.scope ?: "all");
	/* A plain blocking line loop rather than a libuv loop: a stdio server has one client and
	 * answers its requests in order, and the one slow tool (sync_now with wait) has nothing
	 * to do meanwhile but wait for the run, so there is no other event to multiplex. */
	ssize_t len;
	rc = 0;
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		if (len > MCP_MAX_LINE) {
			if (send_error(NULL, RPC_INVALID_REQUEST, "message of %zd bytes refused (limit %d)",
				       len, MCP_MAX_LINE) < 0)
				break;
			continue;
		}
		if (handle_line(&m, line, (size_t)len) < 0) {
			log_info("msg=\"client closed stdout; stopping\"");
			break;
		}
	}
	log_info("msg=\"mcp server stopping: end of input\"");
out:
	free(line);
	free(m.scope);
	free(names);
	return rc;
}
