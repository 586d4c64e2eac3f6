/* Conversations of a batch's new messages, decided in a few set-based statements: the batch's
 * keys are looked up at once, connected components are formed here (union-find over messages,
 * keys and the conversations found), then new conversations, merges and new keys are written.
 * The partition equals what mp_thread_keys (migration 003) makes one message at a time; store_batch.c
 * calls this under the accounts' advisory locks, inside the batch's transaction. */
#include "writer.h"
#include "log.h"
#include "pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct key_ref {
	long long account, conv;	/* conv: the conversation owning the key, 0 when new */
	const char *key;
	size_t msg;
};

static int cmp_key_ref(const void *a, const void *b)
{
	const struct key_ref *x = a, *y = b;
	if (x->account != y->account)
		return x->account < y->account ? -1 : 1;
	int c = strcmp(x->key, y->key);
	return c ? c : (x->msg > y->msg) - (x->msg < y->msg);
}

static int same_key(const struct key_ref *a, const struct key_ref *b)
{
	return a->account == b->account && !strcmp(a->key, b->key);
}

static int cmp_conv(const void *a, const void *b)
{
	const struct key_ref *x = a, *y = b;
	if (x->conv != y->conv)
		return x->conv < y->conv ? -1 : 1;
	return (x->msg > y->msg) - (x->msg < y->msg);
}

static size_t uf_find(size_t *parent, size_t x)
{
	while (parent[x] != x) {
		parent[x] = parent[parent[x]];
		x = parent[x];
	}
	return x;
}

static void uf_union(size_t *parent, size_t a, size_t b)
{
	a = uf_find(parent, a);
	b = uf_find(parent, b);
	if (a < b)
		parent[b] = a;
	else if (b < a)
		parent[a] = b;
}

/* The conversations owning any of the batch's keys: k->conv set for each run of equal keys. */
static int lookup_keys(PGconn *pg, struct key_ref *k, size_t nk)
{
	json_t *rows = json_array();
	for (size_t i = 0; i < nk; i++)
		if (i == 0 || !same_key(&k[i], &k[i - 1]))
			json_array_append_new(rows, json_pack("{s:I, s:I, s:s}", "i", (json_int_t)i, "a",
							      (json_int_t)k[i].account, "k", k[i].key));
	/* Planned per call (no prepared plan): a plan made while the table was small scanned it. */
	PGresult *r = pg_exec_json(pg, "look up conversation keys",
				"SELECT x.i, c.conversation_id FROM jsonb_to_recordset($1::jsonb) "
				" AS x(i int, a bigint, k text) JOIN conversation_keys c "
				" ON c.account_id = x.a AND c.key = x.k", rows);
	json_decref(rows);
	if (!r)
		return -EIO;
	for (int row = 0; row < PQntuples(r); row++) {
		size_t i = strtoull(PQgetvalue(r, row, 0), NULL, 10);
		long long conv = strtoll(PQgetvalue(r, row, 1), NULL, 10);
		for (size_t j = i; i < nk && j < nk && same_key(&k[j], &k[i]); j++)
			k[j].conv = conv;
	}
	PQclear(r);
	return 0;
}

/* New conversations for the components that found none: target[root] for each. */
static int create_conversations(PGconn *pg, const long long *account, size_t n, size_t *parent,
				long long *target)
{
	json_t *rows = json_array();
	for (size_t i = 0; i < n; i++)
		if (parent[i] == i && target[i] == 0)
			json_array_append_new(rows, json_pack("{s:I, s:I}", "i", (json_int_t)i, "a",
							      (json_int_t)account[i]));
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		return 0;
	}
	/* Ids are drawn first so that each comes back with the component it was drawn for. */
	PGresult *r = pg_exec_json(pg, "create conversations",
		"WITH ids AS MATERIALIZED (SELECT x.i, x.a, "
		"  nextval(pg_get_serial_sequence('conversations', 'id')) AS id "
		"  FROM jsonb_to_recordset($1::jsonb) AS x(i int, a bigint)), "
		" ins AS (INSERT INTO conversations (id, account_id, provider) "
		"  SELECT ids.id, ids.a, acc.provider FROM ids JOIN accounts acc ON acc.id = ids.a) "
		"SELECT i, id FROM ids", rows);
	json_decref(rows);
	if (!r)
		return -EIO;
	for (int row = 0; row < PQntuples(r); row++)
		target[strtoull(PQgetvalue(r, row, 0), NULL, 10)] = strtoll(PQgetvalue(r, row, 1), NULL, 10);
	PQclear(r);
	return 0;
}

/* Conversations a batch message linked to an older one: their messages and keys move to the
 * oldest (smallest id), and they are deleted. */
static int merge_conversations(PGconn *pg, json_t *merges)
{
	static const char *const sql[] = {
		"UPDATE messages m SET conversation_id = x.t FROM jsonb_to_recordset($1::jsonb) "
		" AS x(a bigint, o bigint, t bigint) WHERE m.account_id = x.a AND m.conversation_id = x.o",
		"UPDATE conversation_keys c SET conversation_id = x.t FROM jsonb_to_recordset($1::jsonb) "
		" AS x(a bigint, o bigint, t bigint) WHERE c.account_id = x.a AND c.conversation_id = x.o",
		"DELETE FROM conversations c USING jsonb_to_recordset($1::jsonb) AS x(a bigint, o bigint) "
		" WHERE c.account_id = x.a AND c.id = x.o",
	};
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		PGresult *r = pg_exec_json(pg, "merge conversations", sql[i], merges);
		if (!r)
			return -EIO;
		PQclear(r);
	}
	return 0;
}

int thread_batch(PGconn *pg, const long long *account, json_t *const *keys, size_t n,
		 long long *conv)
{
	struct key_ref *k = NULL;
	size_t *parent = calloc(n ? n : 1, sizeof(*parent)), nk = 0, cap = 0;
	long long *target = calloc(n ? n : 1, sizeof(*target));
	json_t *merges = json_array(), *fresh = json_array();
	int rc = -ENOMEM;

	if (!parent || !target || !merges || !fresh)
		goto out;
	for (size_t i = 0; i < n; i++) {
		parent[i] = i;
		size_t j;
		json_t *key;
		json_array_foreach(keys[i], j, key) {
			const char *s = json_string_value(key);
			if (!s || !*s)
				continue;
			if (nk == cap) {
				struct key_ref *bigger = realloc(k, (cap = cap ? cap * 2 : 256) * sizeof(*k));
				if (!bigger)
					goto out;
				k = bigger;
			}
			k[nk++] = (struct key_ref){ account[i], 0, s, i };
		}
	}
	/* A message stored unparsed (dead letter) has no key: it is a conversation of its own. */
	if (nk)
		qsort(k, nk, sizeof(*k), cmp_key_ref);
	rc = nk ? lookup_keys(pg, k, nk) : 0;
	if (rc < 0)
		goto out;
	/* Messages naming the same key are one component; so are messages whose keys belong to
	 * the same stored conversation. */
	for (size_t i = 1; i < nk; i++)
		if (same_key(&k[i], &k[i - 1]))
			uf_union(parent, k[i].msg, k[i - 1].msg);
	for (size_t i = 0; i < nk; i++)
		if (k[i].conv == 0 && (i == 0 || !same_key(&k[i], &k[i - 1])))
			json_array_append_new(fresh, json_pack("{s:I, s:s, s:I}", "a",
				(json_int_t)k[i].account, "k", k[i].key, "m", (json_int_t)k[i].msg));
	if (nk)
		qsort(k, nk, sizeof(*k), cmp_conv);
	for (size_t i = 1; i < nk; i++)
		if (k[i].conv && k[i].conv == k[i - 1].conv)
			uf_union(parent, k[i].msg, k[i - 1].msg);
	/* Each component joins the oldest conversation it found; the others merge into it. */
	for (size_t i = 0; i < nk; i++) {
		size_t root = uf_find(parent, k[i].msg);
		if (k[i].conv && (target[root] == 0 || k[i].conv < target[root]))
			target[root] = k[i].conv;
	}
	for (size_t i = 0; i < nk; i++) {
		long long t = target[uf_find(parent, k[i].msg)];
		if (k[i].conv && k[i].conv != t && (i == 0 || k[i].conv != k[i - 1].conv))
			json_array_append_new(merges, json_pack("{s:I, s:I, s:I}", "a",
				(json_int_t)k[i].account, "o", (json_int_t)k[i].conv, "t", (json_int_t)t));
	}
	for (size_t i = 0; i < n; i++)
		uf_find(parent, i);
	rc = create_conversations(pg, account, n, parent, target);
	if (rc == 0 && json_array_size(merges))
		rc = merge_conversations(pg, merges);
	if (rc < 0)
		goto out;
	/* The keys seen for the first time now belong to their component's conversation. */
	size_t i;
	json_t *row;
	json_array_foreach(fresh, i, row) {
		size_t m = (size_t)json_integer_value(json_object_get(row, "m"));
		json_object_set_new(row, "c", json_integer(target[uf_find(parent, m)]));
	}
	if (json_array_size(fresh)) {
		PGresult *r = pg_exec_json(pg, "record conversation keys",
			"INSERT INTO conversation_keys (account_id, key, conversation_id) "
			"SELECT x.a, x.k, x.c FROM jsonb_to_recordset($1::jsonb) AS x(a bigint, k text, c bigint) "
			"ON CONFLICT (account_id, key) DO NOTHING", fresh);
		if (!r) {
			rc = -EIO;
			goto out;
		}
		PQclear(r);
	}
	for (size_t m = 0; m < n; m++)
		conv[m] = target[uf_find(parent, m)];
	rc = 0;
out:
	json_decref(fresh);
	json_decref(merges);
	free(target);
	free(parent);
	free(k);
	return rc;
}
