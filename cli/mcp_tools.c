/* The MCP tools: their JSON Schemas, the checking of arguments against them, and the queries.
 * Owns what each tool returns and that it returns only accounts in the server's scope; does not
 * own the protocol (mcp.c). Rows become JSON through the SQL the CLI uses (query.h). */
#include "cli.h"
#include "mcp.h"
#include "pg.h"
#include "query.h"
#include "rstream.h"
#include "sync.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct call {
	struct mcp *m;
	json_t *args;	/* checked against the inputSchema, defaults filled in */
	char err[512];	/* the one-line message of a failed call */
	long progress;	/* the last progress sent (about the seconds waited by sync_now) */
	long long last_progress_ms; /* when (monotonic) */
};

/* Returns the structured result (new reference), or NULL with k->err set. */
typedef json_t *(*tool_fn)(struct call *k);

static json_t *fail(struct call *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *fail(struct call *k, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(k->err, sizeof(k->err), fmt, ap);
	va_end(ap);
	for (char *p = k->err; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return NULL;
}

/* The connection of the CLI, reconnected when it broke (a restarted Postgres must not end a
 * long-lived server). */
static PGconn *db(struct call *k)
{
	struct cli *c = k->m->cli;
	if (c->pg && pg_broken(c->pg)) {
		PQfinish(c->pg);
		c->pg = NULL;
	}
	if (!c->pg)
		c->pg = pg_connect(c->cfg.database_url);
	return c->pg;
}

static PGresult *query(struct call *k, const char *what, const char *sql, int n,
		       const char *const *params)
{
	PGconn *pg = db(k);
	if (!pg) {
		fail(k, "the database is unreachable (MAILPIPE_DATABASE_URL)");
		return NULL;
	}
	PGresult *r = pg_exec(pg, what, sql, n, params);
	/* Postgres restarted since the last call: every tool only reads before it writes, so the
	 * query is asked again, once, on a new connection. */
	if (!r && pg_broken(pg) && (pg = db(k)) != NULL)
		r = pg_exec(pg, what, sql, n, params);
	if (!r)
		fail(k, "%s failed: %s", what, pg_last_error());
	return r;
}

/* Column 0 of every row, a JSON document, as an array (new reference). */
static json_t *rows(PGresult *r)
{
	json_t *a = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(a, json_loads(PQgetvalue(r, i, 0), 0, NULL));
	PQclear(r);
	return a;
}

static const char *arg_str(struct call *k, const char *name)
{
	return json_string_value(json_object_get(k->args, name));
}

/* An integer argument as text for a query parameter (buf must hold 24 bytes). */
static const char *arg_num(struct call *k, const char *name, char *buf)
{
	json_t *v = json_object_get(k->args, name);
	if (!v)
		return NULL;
	snprintf(buf, 24, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return buf;
}

/* Every query starts with the same five parameters: $1 the scope (bigint[] or NULL = all),
 * $2 account name, $3 provider, $4 folder name, $5 limit. */
#define IN_SCOPE "($1::bigint[] IS NULL OR a.id = ANY($1::bigint[]))"
#define FILTERS IN_SCOPE " AND ($2::text IS NULL OR a.name = $2) AND ($3::text IS NULL OR a.provider = $3)"
#define MESSAGE_IN_FOLDER                                                                        \
	"($4::text IS NULL OR EXISTS (SELECT 1 FROM message_locations l "                        \
	" JOIN email_folders f ON f.account_id = l.account_id AND f.id = l.folder_id "               \
	" WHERE l.account_id = m.account_id AND l.message_id = m.id AND f.name = $4))"

struct filters {
	char limit[24];
	const char *params[6];
};

/* Fills the five shared parameters and refuses an account outside the scope or a folder that
 * none of the accounts filtered has, so that a typo is not mistaken for an empty mailbox. */
static int filters_init(struct call *k, struct filters *f)
{
	f->params[0] = k->m->scope;
	f->params[1] = arg_str(k, "account");
	f->params[2] = arg_str(k, "provider");
	f->params[3] = arg_str(k, "folder");
	f->params[4] = arg_num(k, "limit", f->limit);
	if (!f->params[1] && !f->params[3])
		return 0;
	PGresult *r = query(k, "check filters",
		"SELECT ($2::text IS NULL OR EXISTS (SELECT 1 FROM accounts a WHERE a.name = $2 AND "
		IN_SCOPE ")), ($4::text IS NULL OR EXISTS (SELECT 1 FROM email_folders f JOIN accounts a "
		" ON a.id = f.account_id WHERE f.name = $4 AND " FILTERS ")), $5::int", 5, f->params);
	if (!r)
		return -EIO;
	int rc = 0;
	if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
		fail(k, "account '%s' not found", f->params[1]);
		rc = -ENOENT;
	} else if (strcmp(PQgetvalue(r, 0, 1), "t") != 0) {
		fail(k, "folder '%s' not found", f->params[3]);
		rc = -ENOENT;
	}
	PQclear(r);
	return rc;
}

/* A listing: the rows of sql (over the five shared parameters, plus extra as $6) under key. */
static json_t *listing(struct call *k, const char *what, const char *key, const char *sql,
		       const char *extra)
{
	struct filters f;
	if (filters_init(k, &f) < 0)
		return NULL;
	f.params[5] = extra;
	PGresult *r = query(k, what, sql, extra ? 6 : 5, f.params);
	return r ? json_pack("{s:o}", key, rows(r)) : NULL;
}

static json_t *tool_list_folders(struct call *k)
{
	return listing(k, "list folders", "folders",
		"SELECT " QUERY_FOLDER_JSON "::text FROM email_folders f "
		"JOIN accounts a ON a.id = f.account_id WHERE " FILTERS
		" AND ($4::text IS NULL OR f.name = $4) ORDER BY a.name, f.name LIMIT $5::int", NULL);
}

static json_t *tool_list_conversations(struct call *k)
{
	return listing(k, "list conversations", "conversations",
		"SELECT " QUERY_CONVERSATION_JSON "::text FROM conversations v "
		"JOIN accounts a ON a.id = v.account_id WHERE " FILTERS
		" AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM messages m "
		"  JOIN message_locations l ON l.account_id = m.account_id AND l.message_id = m.id "
		"  JOIN email_folders f ON f.account_id = l.account_id AND f.id = l.folder_id "
		"  WHERE m.account_id = v.account_id AND m.conversation_id = v.id AND f.name = $4)) "
		"ORDER BY v.last_message_at DESC NULLS LAST, v.id DESC LIMIT $5::int", NULL);
}

static json_t *tool_list_messages(struct call *k)
{
	return listing(k, "list messages", "messages",
		"SELECT " QUERY_MESSAGE_JSON "::text FROM messages m "
		"JOIN accounts a ON a.id = m.account_id WHERE " FILTERS " AND " MESSAGE_IN_FOLDER
		" ORDER BY coalesce(m.sent_at, m.received_at) DESC NULLS LAST, m.id DESC LIMIT $5::int",
		NULL);
}

static json_t *tool_search_messages(struct call *k)
{
	/* websearch syntax, as `mailpipe search`: words, "phrases", -excluded, or. */
	json_t *out = listing(k, "search messages", "messages",
		"SELECT " QUERY_MESSAGE_JSON "::text FROM messages m "
		"JOIN accounts a ON a.id = m.account_id, websearch_to_tsquery('simple', $6) q "
		"WHERE m.search @@ q AND " FILTERS " AND " MESSAGE_IN_FOLDER
		" ORDER BY ts_rank(m.search, q) DESC, m.id DESC LIMIT $5::int", arg_str(k, "query"));
	if (out)
		json_object_set_new(out, "query", json_string(arg_str(k, "query")));
	return out;
}

static json_t *tool_get_message(struct call *k)
{
	char id[24], max[24];
	const char *params[] = { k->m->scope, arg_num(k, "id", id), arg_num(k, "max_body_chars", max) };
	PGresult *r = query(k, "get message",
		"SELECT " QUERY_MESSAGE_FULL_JSON("$3::int") "::text FROM messages m "
		"JOIN accounts a ON a.id = m.account_id WHERE m.id = $2::bigint AND " IN_SCOPE, 3, params);
	if (!r)
		return NULL;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return fail(k, "message %s not found", id);
	}
	json_t *a = rows(r);
	json_t *out = json_pack("{s:O}", "message", json_array_get(a, 0));
	json_decref(a);
	return out;
}

static json_t *tool_get_conversation(struct call *k)
{
	char id[24], limit[24];
	const char *params[] = { k->m->scope, arg_num(k, "id", id) };
	PGresult *r = query(k, "get conversation",
		"SELECT " QUERY_CONVERSATION_JSON "::text FROM conversations v "
		"JOIN accounts a ON a.id = v.account_id WHERE v.id = $2::bigint AND " IN_SCOPE, 2, params);
	if (!r)
		return NULL;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return fail(k, "conversation %s not found", id);
	}
	json_t *conv = rows(r);
	/* The conversation is in scope, so are its messages (both are led by account_id). */
	const char *mparams[] = { id, arg_num(k, "limit", limit) };
	r = query(k, "list conversation messages",
		"SELECT " QUERY_MESSAGE_JSON "::text FROM messages m JOIN accounts a ON a.id = m.account_id "
		"WHERE m.account_id = (SELECT v.account_id FROM conversations v WHERE v.id = $1::bigint) "
		" AND m.conversation_id = $1::bigint "
		"ORDER BY coalesce(m.sent_at, m.received_at) NULLS LAST, m.id LIMIT $2::int", 2, mparams);
	json_t *out = r ? json_pack("{s:O, s:o}", "conversation", json_array_get(conv, 0), "messages",
				    rows(r)) : NULL;
	json_decref(conv);
	return out;
}

static json_t *tool_sync_status(struct call *k)
{
	/* Server counts are the folder's STATUS as last seen; stored counts are the locations
	 * committed under its current UIDVALIDITY: equal after a sync of an unchanged folder. */
	return listing(k, "read sync status", "accounts",
		"SELECT json_build_object('account', a.name, 'provider', a.provider, 'host', a.host, "
		" 'state', a.state, 'last_error', a.last_error, 'next_sync_at', a.next_sync_at, "
		" 'message_count', (SELECT count(*) FROM messages m WHERE m.account_id = a.id), "
		" 'last_synced_at', (SELECT max(f.last_synced_at) FROM email_folders f WHERE f.account_id = a.id), "
		" 'last_run', (SELECT json_build_object('run_id', s.run_id, 'status', s.status, "
		"   'started_at', s.started_at, 'finished_at', s.finished_at, 'fetched_count', s.fetched_count, "
		"   'ingested_count', s.ingested_count, 'error_count', s.error_count, 'error', s.error) "
		"   FROM sync_runs s WHERE s.account_id = a.id ORDER BY s.run_id DESC LIMIT 1), "
		" 'folders', coalesce((SELECT json_agg(json_build_object('name', f.name, "
		"   'server_count', f.message_count, 'server_unread', f.unread_count, "
		"   'stored_count', (SELECT count(*) FROM message_locations l "
		"     WHERE l.account_id = f.account_id AND l.folder_id = f.id "
		"     AND l.uidvalidity = f.uidvalidity), "
		"   'stored_unread', (SELECT count(*) FROM message_locations l "
		"     WHERE l.account_id = f.account_id AND l.folder_id = f.id "
		"     AND l.uidvalidity = f.uidvalidity AND NOT ('\\Seen' = ANY (l.flags))), "
		"   'uidvalidity', f.uidvalidity, 'last_uid', f.last_uid, 'last_synced_at', f.last_synced_at, "
		"   'last_error', f.last_error) ORDER BY f.name) FROM email_folders f "
		"   WHERE f.account_id = a.id AND ($4::text IS NULL OR f.name = $4)), '[]'::json))::text "
		"FROM accounts a WHERE " FILTERS " ORDER BY a.name LIMIT $5::int", NULL);
}

/* While sync_now waits: progress is the seconds waited out of timeout_s, so that a client
 * which resets its request timeout on progress keeps waiting, and the message says how far
 * the run is. */
static void on_sync_tick(void *arg, long waited_s, json_t *summary)
{
	struct call *k = arg;
	(void)waited_s;
	/* About once a second, by a clock finer than waited_s: whole seconds would skip a
	 * notification when a wake-up comes a little late (2 s after 0.9 s). */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long long now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (k->last_progress_ms && now_ms - k->last_progress_ms < 900)
		return; /* events wake the wait more often than once a second */
	if (!k->last_progress_ms) {
		k->last_progress_ms = now_ms;
		return;
	}
	k->last_progress_ms = now_ms;
	k->progress++;
	long waited = k->progress;
	size_t i, done = 0, n = json_array_size(json_object_get(summary, "folders"));
	json_t *f;
	json_array_foreach(json_object_get(summary, "folders"), i, f)
		done += strcmp(json_string_value(json_object_get(f, "status")) ?: "", "pending") != 0;
	char text[160];
	snprintf(text, sizeof(text), "run %" JSON_INTEGER_FORMAT ": %zu of %zu folders done, %"
		 JSON_INTEGER_FORMAT " messages ingested",
		 json_integer_value(json_object_get(summary, "run_id")), done, n,
		 json_integer_value(json_object_get(summary, "ingested_count")));
	mcp_notify_progress(k->m, (double)waited,
			    (double)json_integer_value(json_object_get(k->args, "timeout_s")), text);
}

static json_t *tool_sync_now(struct call *k)
{
	struct cli *c = k->m->cli;
	const char *params[] = { k->m->scope, arg_str(k, "account") };
	PGresult *r = query(k, "find account",
		"SELECT a.id, a.name FROM accounts a WHERE " IN_SCOPE
		" AND ($2::text IS NULL OR a.name = $2) ORDER BY a.name", 2, params);
	if (!r)
		return NULL;
	if (params[1] && PQntuples(r) != 1) {
		PQclear(r);
		return fail(k, "account '%s' not found", params[1]);
	}
	if (PQntuples(r) != 1) {
		int n = PQntuples(r);
		PQclear(r);
		return fail(k, "sync_now needs an account: %d accounts are in scope", n);
	}
	long long account_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	char name[256];
	snprintf(name, sizeof(name), "%s", PQgetvalue(r, 0, 1));
	PQclear(r);

	const char *folders[64];
	size_t nfolders = 0, i;
	json_t *v, *out = NULL, *summary = NULL, *names = json_object_get(k->args, "folders");
	json_array_foreach(names, i, v)
		folders[nfolders++] = json_string_value(v);
	if (nfolders) {
		/* A run of folder names the account does not have ends "ok" having done nothing: a
		 * typo must not read as success. A folder new on the server is known after a full
		 * sync (no folders given), which lists them. */
		char id[24], *list = json_dumps(names, JSON_COMPACT);
		snprintf(id, sizeof(id), "%lld", account_id);
		const char *fparams[] = { id, list };
		r = query(k, "check folders",
			  "SELECT n FROM json_array_elements_text($2::json) n WHERE NOT EXISTS (SELECT 1 "
			  " FROM email_folders f WHERE f.account_id = $1::bigint AND f.name = n) LIMIT 1",
			  2, fparams);
		free(list);
		if (!r)
			return NULL;
		if (PQntuples(r)) {
			fail(k, "folder '%s' not found in account '%s'", PQgetvalue(r, 0, 0), name);
			PQclear(r);
			return NULL;
		}
		PQclear(r);
	}
	redisContext *rc = redis_connect_url(c->cfg.redis_url);
	if (!rc)
		return fail(k, "cannot reach Redis (MAILPIPE_REDIS_URL) to start a sync");
	char last_event[64] = "0-0";
	long long run_id = sync_start(c, rc, account_id, name, folders, nfolders, last_event,
				      sizeof(last_event));
	if (run_id < 0) {
		fail(k, "could not start a sync of account '%s'", name);
		goto out;
	}
	int wait = json_is_true(json_object_get(k->args, "wait")), err = 0;
	if (wait)
		err = sync_wait(c, &rc, run_id, json_integer_value(json_object_get(k->args, "timeout_s")),
				last_event, sizeof(last_event), &summary, on_sync_tick, k);
	else if (db(k))
		summary = sync_summary(c->pg, run_id);
	if (!summary) {
		fail(k, "could not read run %lld of account '%s'", run_id, name);
		goto out;
	}
	const char *status = json_string_value(json_object_get(summary, "status")) ?: "running";
	out = json_pack("{s:s, s:I, s:s, s:b, s:b, s:O}", "account", name, "run_id",
			(json_int_t)run_id, "status", status, "finished", strcmp(status, "running") != 0,
			"timed_out", err == -ETIMEDOUT, "summary", summary);
out:
	json_decref(summary);
	redisFree(rc);
	return out;
}

/* Schemas are written with ' for " to stay legible; none contains an apostrophe. */
#define NSTR "{'type':['string','null']}"
#define NINT "{'type':['integer','null']}"
#define STR "{'type':'string'}"
#define INT "{'type':'integer'}"
#define P_ACCOUNT "'account':{'type':'string','description':'Only this account (its mailpipe name).'}"
#define P_PROVIDER "'provider':{'type':'string','description':'Only accounts of this provider: icloud, gmail, fastmail, imap, ...'}"
#define P_FOLDER(what) "'folder':{'type':'string','description':'Only " what " in this folder (e.g. INBOX).'}"
#define P_LIMIT(def) "'limit':{'type':'integer','minimum':1,'maximum':1000,'default':" #def ",'description':'At most this many.'}"
#define OBJ(props, required) "{'type':'object','properties':{" props "},'required':[" required "]}"
#define LIST_OF(key, item) OBJ("'" key "':{'type':'array','items':" item "}", "'" key "'")

#define S_FOLDER OBJ("'account':" STR ",'provider':" STR ",'name':" STR ",'special_use':" NSTR \
	",'message_count':" INT ",'unread_count':" INT ",'uidvalidity':" NINT ",'last_uid':" INT \
	",'last_synced_at':" NSTR ",'last_error':" NSTR, \
	"'account','provider','name','message_count','unread_count','uidvalidity','last_uid'")
#define S_CONVERSATION OBJ("'id':" INT ",'account':" STR ",'provider':" STR ",'display_name':" NSTR \
	",'subject':" NSTR ",'message_count':" INT ",'unread_count':" INT ",'participants':{'type':'array'}" \
	",'first_message_at':" NSTR ",'last_message_at':" NSTR, \
	"'id','account','provider','display_name','message_count','unread_count','last_message_at'")
#define S_MESSAGE OBJ("'id':" INT ",'account':" STR ",'provider':" STR ",'date':" NSTR ",'from':" NSTR \
	",'from_name':" NSTR ",'subject':" NSTR ",'snippet':" NSTR ",'conversation_id':" NINT \
	",'direction':" STR ",'parse_error':" NSTR, \
	"'id','account','provider','date','from','subject','conversation_id'")
#define S_MESSAGE_FULL OBJ("'id':" INT ",'account':" STR ",'provider':" STR ",'message_id':" NSTR \
	",'subject':" NSTR ",'from':{'type':'object'},'to':{'type':'array'},'cc':{'type':'array'}" \
	",'date':" NSTR ",'received_at':" NSTR ",'direction':" STR ",'conversation_id':" NINT \
	",'folders':{'type':'array','items':" OBJ("'folder':" STR ",'uid':" INT ",'flags':{'type':'array','items':" STR "}", "'folder','uid','flags'") "}" \
	",'attachments':{'type':'array'},'parse_error':" NSTR ",'body_clean':" NSTR ",'body_text':" NSTR, \
	"'id','account','provider','subject','from','folders','body_clean','body_text'")
#define S_STATUS OBJ("'account':" STR ",'provider':" STR ",'host':" STR ",'state':" STR \
	",'last_error':" NSTR ",'next_sync_at':" NSTR ",'message_count':" INT ",'last_synced_at':" NSTR \
	",'last_run':{'type':['object','null']},'folders':{'type':'array','items':" \
	OBJ("'name':" STR ",'server_count':" INT ",'server_unread':" INT ",'stored_count':" INT \
	    ",'stored_unread':" INT ",'uidvalidity':" NINT ",'last_uid':" INT ",'last_synced_at':" NSTR \
	    ",'last_error':" NSTR, "'name','server_count','stored_count','last_error'") "}", \
	"'account','provider','state','last_error','message_count','last_run','folders'")

static const struct tool {
	const char *name, *title, *description, *input, *output;
	tool_fn fn;
} tools[] = {
	{ "list_folders", "List folders",
	  "Folders of the synced accounts with the server's message and unread counts.",
	  OBJ(P_ACCOUNT "," P_PROVIDER "," P_FOLDER("the folder") "," P_LIMIT(100), ""),
	  LIST_OF("folders", S_FOLDER), tool_list_folders },
	{ "list_conversations", "List conversations",
	  "Conversations (threads), most recent first, with message and unread counts.",
	  OBJ(P_ACCOUNT "," P_PROVIDER "," P_FOLDER("conversations with a message") "," P_LIMIT(20), ""),
	  LIST_OF("conversations", S_CONVERSATION), tool_list_conversations },
	{ "list_messages", "List messages",
	  "Messages, most recent first: sender, subject, snippet, conversation id.",
	  OBJ(P_ACCOUNT "," P_PROVIDER "," P_FOLDER("messages") "," P_LIMIT(20), ""),
	  LIST_OF("messages", S_MESSAGE), tool_list_messages },
	{ "search_messages", "Search messages",
	  "Full-text search over subject, sender and cleaned body, best match first. Web search "
	  "syntax: words, \"a phrase\", -excluded, or.",
	  OBJ("'query':{'type':'string','minLength':1,'description':'What to look for.'},"
	      P_ACCOUNT "," P_PROVIDER "," P_FOLDER("messages") "," P_LIMIT(20), "'query'"),
	  OBJ("'query':" STR ",'messages':{'type':'array','items':" S_MESSAGE "}", "'query','messages'"),
	  tool_search_messages },
	{ "get_message", "Get a message",
	  "One message in full: addresses, folders with flags, attachments, and its body as "
	  "cleaned text (quotes and signatures removed) and as decoded text.",
	  OBJ("'id':{'type':'integer','minimum':1,'description':'The message id from a listing.'},"
	      "'max_body_chars':{'type':'integer','minimum':0,'maximum':1000000,'default':20000,"
	      "'description':'Each body is cut to this many characters.'}", "'id'"),
	  OBJ("'message':" S_MESSAGE_FULL, "'message'"), tool_get_message },
	{ "get_conversation", "Get a conversation",
	  "One conversation and its messages, oldest first.",
	  OBJ("'id':{'type':'integer','minimum':1,'description':'The conversation id.'},"
	      P_LIMIT(100), "'id'"),
	  OBJ("'conversation':" S_CONVERSATION ",'messages':{'type':'array','items':" S_MESSAGE "}",
	      "'conversation','messages'"), tool_get_conversation },
	{ "sync_now", "Sync now",
	  "Starts a sync of an account as `mailpipe sync` does (joining one in progress) and, with "
	  "wait, waits for it to finish and returns its summary. Needs `mailpipe run` running.",
	  OBJ(P_ACCOUNT ",'folders':{'type':'array','items':{'type':'string'},'maxItems':64,"
	      "'description':'Only these folders (default: all).'},"
	      "'wait':{'type':'boolean','default':false,'description':'Wait for the run to end.'},"
	      "'timeout_s':{'type':'integer','minimum':1,'maximum':3600,'default':50,"
	      "'description':'Longest wait in seconds (many clients give up on a request after 60).'}", ""),
	  OBJ("'account':" STR ",'run_id':" INT ",'status':" STR ",'finished':{'type':'boolean'},"
	      "'timed_out':{'type':'boolean'},'summary':{'type':'object'}",
	      "'account','run_id','status','finished','timed_out','summary'"), tool_sync_now },
	{ "sync_status", "Sync status",
	  "Per account: state, last error, last run, and per folder the server's counts against "
	  "the messages stored.",
	  OBJ(P_ACCOUNT "," P_PROVIDER "," P_FOLDER("the folder") "," P_LIMIT(100), ""),
	  LIST_OF("accounts", S_STATUS), tool_sync_status },
};

static json_t *schema(const char *text)
{
	char *s = strdup(text);
	for (char *p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);
	if (!j)
		fprintf(stderr, "mailpipe: mcp: bad built-in schema (%s): %.60s\n", e.text, text);
	free(s);
	return j;
}

json_t *mcp_tools_list(void)
{
	json_t *list = json_array();
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
		const struct tool *t = &tools[i];
		json_t *in = schema(t->input);
		/* The query tools only read; sync_now only adds what the server holds. */
		json_object_set_new(in, "additionalProperties", json_false());
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:o, s:o, s:{s:b, s:b, s:b}}",
			"name", t->name, "title", t->title, "description", t->description,
			"inputSchema", in, "outputSchema", schema(t->output), "annotations",
			"readOnlyHint", t->fn != tool_sync_now, "idempotentHint", 1,
			"openWorldHint", t->fn == tool_sync_now));
	}
	return json_pack("{s:o}", "tools", list);
}

/* Checks args against the tool's inputSchema (the subset the schemas above use: string,
 * integer, boolean, arrays of strings; minimum, maximum, minLength, maxItems, required) and
 * returns a copy with the defaults filled in, or NULL with k->err set. A null value is taken
 * as absent. */
static json_t *check_args(struct call *k, json_t *in, json_t *args)
{
	json_t *props = json_object_get(in, "properties"), *out = json_object(), *v, *p;
	const char *key;
	json_object_foreach(args, key, v) {
		if (!(p = json_object_get(props, key))) {
			fail(k, "unknown argument '%s'", key);
			goto bad;
		}
		if (json_is_null(v))
			continue;
		const char *type = json_string_value(json_object_get(p, "type")) ?: "";
		json_t *min = json_object_get(p, "minimum"), *max = json_object_get(p, "maximum");
		json_t *minlen = json_object_get(p, "minLength"), *maxitems = json_object_get(p, "maxItems");
		size_t i;
		json_t *item;
		if (!strcmp(type, "string") && (!json_is_string(v) ||
		    (minlen && json_string_length(v) < (size_t)json_integer_value(minlen)))) {
			fail(k, "%s must be a%s string", key, minlen ? " non-empty" : "");
			goto bad;
		}
		if (!strcmp(type, "integer") && (!json_is_integer(v) ||
		    (min && json_integer_value(v) < json_integer_value(min)) ||
		    (max && json_integer_value(v) > json_integer_value(max)))) {
			if (max)
				fail(k, "%s must be an integer from %" JSON_INTEGER_FORMAT " to %"
				     JSON_INTEGER_FORMAT, key, json_integer_value(min), json_integer_value(max));
			else
				fail(k, "%s must be an integer of at least %" JSON_INTEGER_FORMAT, key,
				     json_integer_value(min));
			goto bad;
		}
		if (!strcmp(type, "boolean") && !json_is_boolean(v)) {
			fail(k, "%s must be true or false", key);
			goto bad;
		}
		if (!strcmp(type, "array")) {
			int ok = json_is_array(v) &&
				 (!maxitems || json_array_size(v) <= (size_t)json_integer_value(maxitems));
			json_array_foreach(v, i, item) ok = ok && json_is_string(item);
			if (!ok) {
				fail(k, "%s must be a list of at most %" JSON_INTEGER_FORMAT " strings", key,
				     json_integer_value(maxitems));
				goto bad;
			}
		}
		json_object_set(out, key, v);
	}
	size_t i;
	json_array_foreach(json_object_get(in, "required"), i, v) {
		if (!json_object_get(out, json_string_value(v))) {
			fail(k, "%s is required", json_string_value(v));
			goto bad;
		}
	}
	json_object_foreach(props, key, p) {
		if (!json_object_get(out, key) && json_object_get(p, "default"))
			json_object_set(out, key, json_object_get(p, "default"));
	}
	return out;
bad:
	json_decref(out);
	return NULL;
}

json_t *mcp_tools_call(struct mcp *m, const char *name, json_t *args)
{
	const struct tool *t = NULL;
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
		if (!strcmp(tools[i].name, name))
			t = &tools[i];
	if (!t)
		return NULL;
	struct call k = { .m = m };
	json_t *in = schema(t->input), *out = NULL;
	k.args = check_args(&k, in, args);
	if (k.args)
		out = t->fn(&k);
	json_decref(in);
	json_decref(k.args);
	if (!out)
		return json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", k.err,
				 "isError", 1);
	char *text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_t *result = json_pack("{s:[{s:s, s:s}], s:o}", "content", "type", "text", "text",
				   text ?: "{}", "structuredContent", out);
	free(text);
	return result;
}
