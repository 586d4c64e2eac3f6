/* Message batches into Postgres. Idempotent by construction: the message row is keyed by
 * (account, content sha256) and the location by (account, folder, uidvalidity, uid), both
 * inserted with ON CONFLICT DO NOTHING, so a redelivered batch changes nothing (invariant 2).
 * Rows are taken in one global order (messages by hash, then locations, then counters) so that
 * two writers never wait on each other in a cycle. Here: the batch's transaction and what
 * follows its rows (conversations' counts, contacts, run counters, notices), and the
 * one-by-one path; the batch path, tried first, is store_batch.c. */
#include "writer.h"
#include "changes.h"
#include "search.h"
#include "store.h"
#include "link.h"
#include "log.h"
#include "pg.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int writer_internaldate_iso(const char *in, char *buf, size_t size)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	int d, y, hh, mm, ss, zh, zm;
	char mon[4], sign;
	if (!in || sscanf(in, " %d-%3s-%d %d:%d:%d %c%2d%2d", &d, mon, &y, &hh, &mm, &ss, &sign, &zh,
			  &zm) != 9)
		return -EINVAL;
	const char *p = strcasestr(months, mon);
	if (!p || (p - months) % 3 || (sign != '+' && sign != '-'))
		return -EINVAL;
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", y, (int)(p - months) / 3 + 1,
		 d, hh, mm, ss, sign, zh, zm);
	return 0;
}

static const struct account_info *account_get(struct writer *w, long long id)
{
	for (size_t i = 0; i < w->naccounts; i++)
		if (w->accounts[i].id == id)
			return &w->accounts[i];
	char ids[24];
	snprintf(ids, sizeof(ids), "%lld", id);
	const char *params[] = { ids };
	PGresult *r = pg_exec(w->pg, "read account",
			      "SELECT provider, coalesce(email, ''), "
			      " coalesce((options->>'subject_threading_days')::int, 0) "
			      "FROM accounts WHERE id = $1::bigint", 1, params);
	if (!r || PQntuples(r) != 1) {
		PQclear(r);
		return NULL;
	}
	if (w->naccounts == sizeof(w->accounts) / sizeof(w->accounts[0]))
		w->naccounts = 0; /* a cache, not a registry: start over */
	struct account_info *a = &w->accounts[w->naccounts++];
	a->id = id;
	snprintf(a->provider, sizeof(a->provider), "%s", PQgetvalue(r, 0, 0));
	snprintf(a->email, sizeof(a->email), "%s", PQgetvalue(r, 0, 1));
	a->subject_days = (int)strtol(PQgetvalue(r, 0, 2), NULL, 10);
	PQclear(r);
	writer_replan_soon(w); /* maybe its first sync, into tables small when last planned */
	return a;
}

static int cmp_sha(const void *a, const void *b)
{
	const struct wmsg *x = a, *y = b;
	const char *sx = jstr(x->msg, "content_sha256"), *sy = jstr(y->msg, "content_sha256");
	long long ax = jint(x->meta, "account_id"), ay = jint(y->meta, "account_id");
	if (ax != ay)
		return ax < ay ? -1 : 1;
	return strcmp(sx ? sx : "", sy ? sy : "");
}

/* Per (run, folder) counters of one batch, written once at its end. */
struct counter {
	long long run_id, folder_id, account_id;
	int ingested, duplicates;
};

static struct counter *counter_get(struct counter *c, size_t *n, long long run, long long folder,
				   long long account)
{
	for (size_t i = 0; i < *n; i++)
		if (c[i].run_id == run && c[i].folder_id == folder)
			return &c[i];
	c[*n] = (struct counter){ run, folder, account, 0, 0 };
	return &c[(*n)++];
}

static const char SQL_INSERT_MESSAGE[] =
	"INSERT INTO messages (account_id, provider, message_id, message_id_synthetic, "
	" content_sha256, subject, from_name, from_email, \"to\", cc, bcc, reply_to, sent_at, "
	" received_at, direction, in_reply_to, \"references\", list_id, snippet, body_text, "
	" body_html, attachments, size, raw, parse_error, body_clean, cleaner_version, base_subject, "
	" is_reply, thread_parent, gm_thrid, conversation_id, search) "
	"VALUES ($1::bigint, $2, $3, $4::boolean, $5, $6, $7, $8, coalesce($9::jsonb, '[]'), "
	" coalesce($10::jsonb, '[]'), coalesce($11::jsonb, '[]'), coalesce($12::jsonb, '[]'), "
	" $13::timestamptz, $14::timestamptz, $15, $16, "
	" coalesce(array(SELECT jsonb_array_elements_text($17::jsonb)), '{}'), $18, $19, $20, $21, "
	" coalesce($22::jsonb, '[]'), $23::int, $24::bytea, $25, $26, $27::int, $28, "
	" coalesce($29::boolean, false), $30, $31, coalesce((SELECT conversation_id "
	" FROM conversation_keys WHERE account_id = $1::bigint AND key = $3), $32::bigint), "
	" mp_search_vector($6, $7, $8, coalesce($26, $20))) "
	"ON CONFLICT (account_id, content_sha256) DO NOTHING RETURNING id";

static const char SQL_FIND_MSG[] =
	"SELECT id FROM messages WHERE account_id = $1::bigint AND content_sha256 = $2";

static const char SQL_INS_LOC[] =
	"INSERT INTO message_locations (account_id, message_id, folder_id, uidvalidity, uid, flags, "
	" modseq) "
	"VALUES ($7::bigint, $1::bigint, $2::bigint, $3::bigint, $4::bigint, "
	" coalesce(array(SELECT jsonb_array_elements_text($5::jsonb)), '{}'), $6::bigint) "
	"ON CONFLICT (account_id, folder_id, uidvalidity, uid) DO NOTHING RETURNING id";

static const char SQL_THREAD[] =
	"SELECT mp_thread_keys($1::bigint, array(SELECT jsonb_array_elements_text($2::jsonb)), $3, "
	" $4::boolean, $5::timestamptz, $6::int)";

static const char SQL_REFRESH_CONV[] =
	"UPDATE conversations c SET message_count = s.cnt, unread_count = s.unread, "
	" first_message_at = s.first_at, last_message_at = s.last_at, subject = s.subject, "
	" display_name = coalesce(nullif(s.subject, ''), s.first_from), participants = s.people "
	"FROM (SELECT m.account_id, m.conversation_id AS id, count(*) AS cnt, "
	"  count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM message_locations l "
	"    WHERE l.account_id = m.account_id AND l.message_id = m.id "
	"    AND '\\Seen' = ANY(l.flags))) AS unread, "
	"  min(coalesce(m.sent_at, m.received_at)) AS first_at, "
	"  max(coalesce(m.sent_at, m.received_at)) AS last_at, "
	"  (array_agg(m.subject ORDER BY coalesce(m.sent_at, m.received_at), m.id))[1] AS subject, "
	"  (array_agg(coalesce(m.from_name, m.from_email) ORDER BY coalesce(m.sent_at, m.received_at), m.id))[1] AS first_from, "
	"  coalesce(jsonb_agg(DISTINCT m.from_email) FILTER (WHERE m.from_email IS NOT NULL), '[]') AS people "
	" FROM messages m WHERE m.account_id = ANY($2::bigint[]) "
	"  AND m.conversation_id = ANY($1::bigint[]) GROUP BY m.account_id, m.conversation_id) s "
	"WHERE c.account_id = s.account_id AND c.id = s.id "
	/* the list again, for the target: a partitioned conversations was otherwise scanned
	 * whole to join s */
	" AND c.id = ANY($1::bigint[])";

/* Contacts of the batch's new messages, pre-aggregated per address, in one statement whose
 * rows arrive in (account, address) order so concurrent writers lock them in the same order. */
static const char SQL_CONTACTS[] =
	"INSERT INTO contacts (account_id, provider, email, name, message_count, first_seen_at, "
	" last_seen_at) "
	"SELECT c.account_id, a.provider, c.email, c.name, c.n, c.first_at, c.last_at FROM ("
	" SELECT account_id, lower(email) AS key, min(email) AS email, "
	"  (array_agg(name ORDER BY length(name) DESC NULLS LAST))[1] AS name, count(*) AS n, "
	"  min(seen) AS first_at, max(seen) AS last_at "
	" FROM jsonb_to_recordset($1::jsonb) AS x(account_id bigint, email text, name text, "
	"  seen timestamptz) GROUP BY account_id, lower(email)) c "
	"JOIN accounts a ON a.id = c.account_id ORDER BY c.account_id, c.key "
	"ON CONFLICT (account_id, lower(email)) DO UPDATE SET "
	" message_count = contacts.message_count + EXCLUDED.message_count, "
	" name = CASE WHEN EXCLUDED.name IS NOT NULL AND (contacts.name IS NULL "
	"  OR length(EXCLUDED.name) > length(contacts.name)) THEN EXCLUDED.name ELSE contacts.name END, "
	" first_seen_at = LEAST(contacts.first_seen_at, EXCLUDED.first_seen_at), "
	" last_seen_at = GREATEST(contacts.last_seen_at, EXCLUDED.last_seen_at)";

static const char SQL_ACCT_LOCK[] =
	"SELECT pg_advisory_xact_lock(1, $1::int)";

static const char SQL_COUNT_RUN[] =
	"UPDATE sync_run_folders SET ingested_count = ingested_count + $3::int, "
	" duplicate_count = duplicate_count + $4::int "
	"WHERE account_id = $5::bigint AND run_id = $1::bigint AND folder_id = $2::bigint";

/* Every statement of the hot path, prepared once per connection: planning them on each
 * call cost more than running them. */
static const struct {
	const char *name, *sql;
} statements[] = {
	{ "ins_msg", SQL_INSERT_MESSAGE },
	{ "find_msg", SQL_FIND_MSG },
	{ "ins_loc", SQL_INS_LOC },
	{ "thread", SQL_THREAD },
	{ "refresh_conv", SQL_REFRESH_CONV },
	{ "acct_lock", SQL_ACCT_LOCK },
	{ "contacts", SQL_CONTACTS },
	{ "count_run", SQL_COUNT_RUN },
};

int store_prepare(PGconn *pg)
{
	/* The batch statements are short; LLVM JIT, which the server starts for any plan above
	 * jit_above_cost (the conversation refresh of a 500-message batch is), took longer to
	 * compile than they take to run. */
	if (pg_cmd(pg, "session settings", "SET jit = off", 0, NULL) < 0)
		return -EIO;
	for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++)
		if (pg_prepare(pg, statements[i].name, statements[i].sql) < 0)
			return -EIO;
	return search_prepare(pg);
}

static int pg_cmd_prepared(PGconn *c, const char *what, const char *name, int n,
			   const char *const *params)
{
	PGresult *r = pg_exec_prepared(c, what, name, n, params, NULL, NULL);
	if (!r)
		return -EIO;
	PQclear(r);
	return 0;
}

static char *dump_or_null(json_t *v)
{
	if (!v || json_is_null(v))
		return NULL;
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

void message_derive(const struct wmsg *m, const struct account_info *a, struct derived *d)
{
	json_t *msg = m->msg, *meta = m->meta;
	const char *from_email = jstr(json_object_get(msg, "from"), "email");
	/* The parser decides direction from the account's address(es); records from before it
	 * did (or unparsed ones) fall back to the account's one address. */
	const char *dir = jstr(msg, "direction");
	d->outgoing = dir ? strcmp(dir, "outgoing") == 0
			  : from_email && *a->email && strcasecmp(from_email, a->email) == 0;
	d->size = json_is_integer(json_object_get(meta, "size")) ? jint(meta, "size")
								 : (long long)m->raw_len;
	d->have_received = writer_internaldate_iso(jstr(meta, "internaldate"), d->received,
						   sizeof(d->received)) == 0;
}

/* Inserts the message row if its content is new ("ins_msg"): its result has the new id, or
 * no row when the content was already stored (then "find_msg" finds it). */
static PGresult *send_message(struct writer *w, const struct wmsg *m, const struct account_info *a,
			      long long conversation)
{
	char conv[24];
	snprintf(conv, sizeof(conv), "%lld", conversation);
	json_t *msg = m->msg, *meta = m->meta, *from = json_object_get(msg, "from");
	char acc[24], size[24], cleaner[16];
	char *to = dump_or_null(json_object_get(msg, "to"));
	char *cc = dump_or_null(json_object_get(msg, "cc"));
	char *bcc = dump_or_null(json_object_get(msg, "bcc"));
	char *rto = dump_or_null(json_object_get(msg, "reply_to"));
	char *refs = dump_or_null(json_object_get(msg, "references"));
	char *atts = dump_or_null(json_object_get(msg, "attachments"));
	struct derived d;
	message_derive(m, a, &d);
	snprintf(acc, sizeof(acc), "%lld", jint(meta, "account_id"));
	snprintf(size, sizeof(size), "%lld", d.size);
	snprintf(cleaner, sizeof(cleaner), "%lld", jint(msg, "cleaner_version"));
	const char *params[32] = {
		acc,
		a->provider,
		jstr(msg, "message_id"),
		json_is_true(json_object_get(msg, "message_id_synthetic")) ? "true" : "false",
		jstr(msg, "content_sha256"),
		jstr(msg, "subject"),
		jstr(from, "name"),
		jstr(from, "email"),
		to, cc, bcc, rto,
		jstr(msg, "sent_at"),
		d.have_received ? d.received : NULL,
		d.outgoing ? "outgoing" : "incoming",
		jstr(msg, "in_reply_to"),
		refs,
		jstr(msg, "list_id"),
		jstr(msg, "snippet"),
		jstr(msg, "body_text"),
		jstr(msg, "body_html"),
		atts,
		size,
		w->st->cfg.store_raw ? m->raw : NULL,
		jstr(msg, "parse_error"),
		jstr(msg, "body_clean"),
		json_is_integer(json_object_get(msg, "cleaner_version")) ? cleaner : NULL,
		jstr(msg, "base_subject"),
		json_is_true(json_object_get(msg, "is_reply")) ? "true" : "false",
		jstr(msg, "thread_parent"),
		jstr(msg, "gm_thrid"),
		conversation ? conv : NULL,
	};
	int lengths[32] = { 0 }, formats[32] = { 0 };
	lengths[23] = (int)m->raw_len;
	formats[23] = 1;
	PGresult *r = pg_exec_prepared(w->pg, "insert message", "ins_msg", 32, params, lengths, formats);
	free(to), free(cc), free(bcc), free(rto), free(refs), free(atts);
	return r;
}

/* The id of a message whose content was already stored: maybe committed by another writer
 * after the insert began, which a new statement sees. */
static PGresult *send_find(struct writer *w, const struct wmsg *m)
{
	char acc[24];
	snprintf(acc, sizeof(acc), "%lld", jint(m->meta, "account_id"));
	const char *params[] = { acc, jstr(m->msg, "content_sha256") };
	return pg_exec_prepared(w->pg, "find message", "find_msg", 2, params, NULL, NULL);
}

/* 1 and *id when the result has a row, 0 when not, -EIO when r is NULL. Clears r. */
static int take_id(PGresult *r, long long *id)
{
	if (!r)
		return -EIO;
	int found = PQntuples(r) == 1;
	if (found)
		*id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return found;
}


/* Inserts the location ("ins_loc"): a row comes back when it is new. */
static PGresult *send_location(struct writer *w, const struct wmsg *m, long long message_id)
{
	char mid[24], folder[24], uidv[24], uid[24], modseq[24], acc[24];
	char *flags = dump_or_null(json_object_get(m->meta, "flags"));
	snprintf(acc, sizeof(acc), "%lld", jint(m->meta, "account_id"));
	snprintf(mid, sizeof(mid), "%lld", message_id);
	snprintf(folder, sizeof(folder), "%lld", jint(m->meta, "folder_id"));
	snprintf(uidv, sizeof(uidv), "%lld", jint(m->meta, "uidvalidity"));
	snprintf(uid, sizeof(uid), "%lld", jint(m->meta, "uid"));
	snprintf(modseq, sizeof(modseq), "%lld", jint(m->meta, "modseq"));
	const char *params[] = { mid, folder, uidv, uid, flags,
				 json_object_get(m->meta, "modseq") ? modseq : NULL, acc };
	PGresult *r = pg_exec_prepared(w->pg, "insert location", "ins_loc", 7, params, NULL, NULL);
	free(flags);
	return r;
}

/* Longest key (a Message-ID is at most a 998-byte line) and contact address (RFC 5321 allows
 * 256 octets in a path) kept: longer ones are junk that would not fit a btree entry. */
enum { KEY_MAX = 998, CONTACT_EMAIL_MAX = 320 };

static void add_key(json_t *keys, json_t *key)
{
	const char *s = json_string_value(key);
	if (s && *s && strlen(s) <= KEY_MAX)
		json_array_append(keys, key);
}

/* The keys a message is threaded by: its own Message-ID, the ids it names (References,
 * In-Reply-To) and Gmail's thread id. A new reference. */
json_t *message_keys(const struct wmsg *m)
{
	json_t *msg = m->msg, *keys = json_array(), *refs = json_object_get(msg, "references");
	const char *thrid = jstr(msg, "gm_thrid");
	add_key(keys, json_object_get(msg, "message_id"));
	/* A runaway References header (thousands of ids) links nothing more than its tail. */
	size_t n = json_array_size(refs), from = n > 100 ? n - 100 : 0;
	for (size_t i = from; i < n; i++)
		add_key(keys, json_array_get(refs, i));
	add_key(keys, json_object_get(msg, "in_reply_to"));
	if (thrid) {
		char key[96];
		snprintf(key, sizeof(key), "gm:%s", thrid);
		json_t *k = json_string(key);
		add_key(keys, k);
		json_decref(k);
	}
	return keys;
}

/* Finds (or makes) the conversation of a message about to be inserted (mp_thread_keys,
 * migration 003), one message at a time: subject grouping needs the earlier messages stored.
 * The caller holds the account's advisory lock. */
static PGresult *send_thread(struct writer *w, const struct wmsg *m, int subject_days)
{
	json_t *msg = m->msg, *keys = message_keys(m);
	const char *at = jstr(msg, "sent_at");
	char received[64];
	if (!at && writer_internaldate_iso(jstr(m->meta, "internaldate"), received,
					   sizeof(received)) == 0)
		at = received;
	char acc[24], days[16], *kj = json_dumps(keys, JSON_COMPACT);
	json_decref(keys);
	if (!kj)
		return NULL;
	snprintf(acc, sizeof(acc), "%lld", jint(m->meta, "account_id"));
	snprintf(days, sizeof(days), "%d", subject_days);
	const char *params[] = { acc, kj, jstr(msg, "base_subject"),
				 json_is_true(json_object_get(msg, "is_reply")) ? "true" : "false",
				 at, days };
	PGresult *r = pg_exec_prepared(w->pg, "thread message", "thread", 6, params, NULL, NULL);
	free(kj);
	return r;
}

/* A bigint[] literal of v; caller frees. */
static char *array_literal(const long long *v, size_t n)
{
	size_t cap = n * 22 + 3, k = 0;
	char *arr = malloc(cap);
	if (!arr)
		return NULL;
	arr[k++] = '{';
	for (size_t i = 0; i < n; i++)
		k += (size_t)snprintf(arr + k, cap - k, "%s%lld", i ? "," : "", v[i]);
	arr[k++] = '}';
	arr[k] = 0;
	return arr;
}

/* Brings the touched conversations' summary columns up to date from their messages; accounts
 * are theirs, which keeps the lookup on the (account_id, conversation_id) index. */
static int refresh_conversations(struct writer *w, const long long *conv, size_t n,
				 const long long *accounts, size_t naccounts)
{
	if (n == 0)
		return 0;
	char *convs = array_literal(conv, n), *accs = array_literal(accounts, naccounts);
	const char *params[] = { convs, accs };
	int rc = convs && accs ? pg_cmd_prepared(w->pg, "refresh conversations", "refresh_conv", 2,
						 params)
			       : -ENOMEM;
	free(accs);
	free(convs);
	return rc;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

static int cmp_counter(const void *a, const void *b)
{
	const struct counter *x = a, *y = b;
	if (x->run_id != y->run_id)
		return x->run_id < y->run_id ? -1 : 1;
	return x->folder_id < y->folder_id ? -1 : x->folder_id > y->folder_id;
}

/* The parser's contacts of one new message, as rows for SQL_CONTACTS; a message counts once
 * per address it names, seen at its Date (else its arrival). */
static void collect_contacts(json_t *rows, const struct wmsg *m, long long account)
{
	char received[64];
	const char *seen = jstr(m->msg, "sent_at");
	if (!seen && writer_internaldate_iso(jstr(m->meta, "internaldate"), received,
					     sizeof(received)) == 0)
		seen = received;
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(m->msg, "contacts"), i, c) {
		const char *email = jstr(c, "email");
		if (!email || strlen(email) > CONTACT_EMAIL_MAX)
			continue;
		json_t *row = json_pack("{s:I, s:O, s:O, s:s?}", "account_id", (json_int_t)account,
					"email", json_object_get(c, "email"),
					"name", json_object_get(c, "name") ? json_object_get(c, "name") : json_null(),
					"seen", seen);
		if (row)
			json_array_append_new(rows, row);
	}
}

/* Replaces m's parsed record by the one the parser makes of a message it cannot parse: the
 * content hash and parse_error (naming why) only. 0, or -ENOMEM/-EINVAL. */
static int replace_unparsed(struct wmsg *m, const char *why)
{
	const char *sha = jstr(m->msg, "content_sha256");
	char text[400];
	if (!sha)
		return -EINVAL;
	snprintf(text, sizeof(text), "stored unparsed: the database rejected the parsed message (%s)",
		 why && *why ? why : "no reason given");
	json_t *u = json_pack("{s:s, s:s}", "content_sha256", sha, "parse_error", text);
	if (!u)
		return -ENOMEM;
	json_decref(m->msg);
	m->msg = u;
	return 0;
}

/* One attempt at the whole batch: the batch path, or (one_by_one) a message at a time, each under
 * a savepoint so that one the database rejects is skipped rather than failing the batch.
 * Returns 0, -EAGAIN (deadlock: retry), -EINVAL (a message was rejected) or -EIO. */
static int store_attempt(struct writer *w, struct wmsg *m, size_t n, int one_by_one)
{
	json_t *contacts = json_array(), *ids = json_array();
	struct counter *counters = calloc(n, sizeof(*counters));
	struct item *it = calloc(n, sizeof(*it));
	long long *convs = calloc(n, sizeof(*convs)), *accs = calloc(n, sizeof(*accs));
	size_t ncounters = 0, nconvs = 0, naccs = 0;
	long long last_account = -1;
	int rc = -EIO;

	if (!counters || !convs || !accs || !it)
		goto out;
	if (pg_cmd(w->pg, "begin", "BEGIN", 0, NULL) < 0)
		goto out;
	milestone_reset(w);
	for (size_t i = 0; i < n; i++) {
		long long account = jint(m[i].meta, "account_id");
		it[i].a = account_get(w, account);
		it[i].created = it[i].located = -1;
		it[i].dup_of = -1;
		if (account != last_account) {
			/* Threading of one account is serialised; other accounts go on in parallel. */
			char acc[24];
			snprintf(acc, sizeof(acc), "%lld", account);
			const char *p[] = { acc };
			if (pg_cmd_prepared(w->pg, "account lock", "acct_lock", 1, p) < 0)
				goto fail;
			last_account = account;
		}
	}
	/* Subject grouping looks for earlier messages by subject, so each message must be stored
	 * before the next is threaded: such accounts take the one-by-one path. */
	for (size_t i = 0; i < n && !one_by_one; i++)
		one_by_one = it[i].a && it[i].a->subject_days > 0;
	if (!one_by_one) {
		rc = store_batch(w, m, it, n);
		if (rc < 0)
			goto fail;
		rc = -EIO;
	}
	for (size_t i = 0; one_by_one && i < n; i++) {
		struct item *x = &it[i];
		long long ignored;
		int unparsed = 0;
	again:
		if (pg_cmd(w->pg, "savepoint", "SAVEPOINT msg", 0, NULL) < 0)
			goto fail;
		x->created = x->a ? take_id(send_find(w, &m[i]), &x->id) : -EINVAL;
		if (x->created == 1) {
			x->created = 0;
		} else if (x->created == 0) {
			x->created = take_id(send_thread(w, &m[i], x->a->subject_days), &x->conv) == 1 &&
				     take_id(send_message(w, &m[i], x->a, x->conv), &x->id) == 1 ? 1 : -EIO;
		}
		x->located = x->created >= 0 ? take_id(send_location(w, &m[i], x->id), &ignored) : -EIO;
		if (x->created >= 0 && x->located >= 0)
			continue;
		const char *state = pg_last_sqlstate();
		if (!strcmp(state, "40P01") || !strcmp(state, "40001")) {
			rc = -EAGAIN;
			goto fail;
		}
		if (pg_broken(w->pg))
			goto fail;
		char why[256];
		snprintf(why, sizeof(why), "%s", pg_last_error());
		if (pg_cmd(w->pg, "rollback to savepoint", "ROLLBACK TO SAVEPOINT msg", 0, NULL) < 0)
			goto fail;
		/* Invariant 6: what the database refuses in parsed form is stored as the parser
		 * stores a message it cannot parse (raw, with parse_error), so that the folder's
		 * cursor can pass it and nothing is lost. */
		if (!unparsed && x->a && replace_unparsed(&m[i], why) == 0) {
			log_error("account_id=%lld folder_id=%lld uid=%lld msg=\"the database rejected "
				  "the parsed message (see above); storing it unparsed\"",
				  jint(m[i].meta, "account_id"), jint(m[i].meta, "folder_id"),
				  jint(m[i].meta, "uid"));
			unparsed = 1;
			metrics_add(MX_ERRORS_REJECTED, 1);
			x->created = x->located = -1;
			x->conv = x->id = 0;
			goto again;
		}
		log_error("account_id=%lld folder_id=%lld uid=%lld msg=\"message not stored: "
			  "rejected by the database (see above)\"",
			  jint(m[i].meta, "account_id"), jint(m[i].meta, "folder_id"), jint(m[i].meta, "uid"));
	}
	for (size_t i = 0; i < n; i++) {
		struct item *x = &it[i];
		if (x->created < 0 || x->located < 0)
			continue;
		/* A new copy of a stored message may change its conversation's unread count. */
		if (x->conv && (x->created == 1 || x->located == 1)) {
			convs[nconvs++] = x->conv;
			/* m is sorted by account: each one's first conversation adds it */
			if (!naccs || accs[naccs - 1] != jint(m[i].meta, "account_id"))
				accs[naccs++] = jint(m[i].meta, "account_id");
		}
		if (x->created == 1)
			collect_contacts(contacts, &m[i], jint(m[i].meta, "account_id"));
		if (x->created == 1)
			milestone_note(w, jint(m[i].meta, "account_id"));
		/* The server's id of the content (objectid.c): a later move links to this row. */
		const char *eid = jstr(m[i].meta, "email_id");
		if (eid && x->id > 0)
			json_array_append_new(ids, json_pack("{s:I, s:I, s:s}", "a",
				(json_int_t)jint(m[i].meta, "account_id"), "m", (json_int_t)x->id, "e", eid));
		if (x->located == 1) {
			struct counter *c = counter_get(counters, &ncounters, jint(m[i].meta, "run_id"),
							jint(m[i].meta, "folder_id"),
							jint(m[i].meta, "account_id"));
			if (x->created)
				c->ingested++;
			else
				c->duplicates++;
		}
	}
	qsort(convs, nconvs, sizeof(*convs), cmp_ll);
	if (refresh_conversations(w, convs, nconvs, accs, naccs) < 0)
		goto fail;
	if (json_array_size(contacts)) {
		char *cj = json_dumps(contacts, JSON_COMPACT);
		const char *p[] = { cj };
		int crc = cj ? pg_cmd_prepared(w->pg, "upsert contacts", "contacts", 1, p) : -ENOMEM;
		free(cj);
		if (crc < 0)
			goto fail;
	}
	if (link_store_ids(w, ids) < 0)
		goto fail;
	qsort(counters, ncounters, sizeof(*counters), cmp_counter);
	for (size_t i = 0; i < ncounters; i++) {
		char run[24], folder[24], ing[16], dup[16], acc[24];
		snprintf(acc, sizeof(acc), "%lld", counters[i].account_id);
		snprintf(run, sizeof(run), "%lld", counters[i].run_id);
		snprintf(folder, sizeof(folder), "%lld", counters[i].folder_id);
		snprintf(ing, sizeof(ing), "%d", counters[i].ingested);
		snprintf(dup, sizeof(dup), "%d", counters[i].duplicates);
		const char *p[] = { run, folder, ing, dup, acc };
		if (pg_cmd_prepared(w->pg, "count run", "count_run", 5, p) < 0)
			goto fail;
	}
	writer_lap(w, WP_AFTER);
	if (milestone_check(w) < 0 || pg_cmd(w->pg, "commit", "COMMIT", 0, NULL) < 0)
		goto fail;
	writer_lap(w, WP_COMMIT);
	milestone_committed(w);
	for (size_t i = 0; i < n; i++) /* m is sorted by account: folders repeat, not in order */
		if (it[i].created >= 0 && it[i].located >= 0)
			writer_note_folder(w, jint(m[i].meta, "folder_id"));
	/* Every stored location, new or found stored (a batch redelivered after a crash
	 * between this COMMIT and its notices): apps hear of each message at least once. */
	for (size_t i = 0; i < n; i++)
		if (it[i].created >= 0 && it[i].located >= 0)
			changes_add(w, "message_added", json_pack("{s:I, s:I, s:I, s:I, s:I}",
				"account_id", (json_int_t)jint(m[i].meta, "account_id"),
				"folder_id", (json_int_t)jint(m[i].meta, "folder_id"),
				"uidvalidity", (json_int_t)jint(m[i].meta, "uidvalidity"),
				"uid", (json_int_t)jint(m[i].meta, "uid"), "message_id", (json_int_t)it[i].id));
	/* A parsed record whose raw entry was gone: a redelivery of a committed message finds
	 * its content stored (a duplicate, given its location); one whose content is new was
	 * stored without raw rather than dropped, and says so. */
	for (size_t i = 0; i < n; i++)
		if (m[i].raw_missing && it[i].created == 1)
			log_error("account_id=%lld folder_id=%lld uid=%lld entry=%s raw_id=%s "
				  "msg=\"raw message missing from the raw stream; stored without raw\"",
				  jint(m[i].meta, "account_id"), jint(m[i].meta, "folder_id"),
				  jint(m[i].meta, "uid"), m[i].entry_id, m[i].raw_id ? m[i].raw_id : "-");
	link_remember(w, ids);
	rc = 0;
	goto out;
fail:
	if (rc == -EIO && !pg_broken(w->pg)) {
		const char *state = pg_last_sqlstate();
		rc = (!strcmp(state, "40P01") || !strcmp(state, "40001")) ? -EAGAIN : -EINVAL;
	}
	PQclear(PQexec(w->pg, "ROLLBACK"));
out:
	json_decref(ids);
	json_decref(contacts);
	free(counters);
	free(accs);
	free(convs);
	free(it);
	return rc;
}

void store_sort(struct wmsg *m, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (cmp_sha(&m[i - 1], &m[i]) > 0) {
			qsort(m, n, sizeof(*m), cmp_sha);
			return;
		}
}

int store_messages(struct writer *w, struct wmsg *m, size_t n)
{
	if (n == 0)
		return 0;
	store_sort(m, n);
	int one_by_one = 0;
	for (int attempt = 0; attempt < 10; attempt++) {
		int rc = store_attempt(w, m, n, one_by_one);
		/* Unpublished notices leave the batch unacknowledged: it comes back, finds its
		 * rows stored, and tells again. */
		if (rc == 0)
			return changes_publish(w) < 0 ? -ENOTCONN : 0;
		if (rc == -EIO)
			return rc;
		if (rc == -EINVAL) {
			if (one_by_one)
				return -EIO;
			one_by_one = 1;
		}
	}
	return -EIO;
}
