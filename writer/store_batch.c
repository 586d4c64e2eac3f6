/* The batch path of store.c: a handful of statements per batch, whatever its size: which
 * contents are stored already, the conversations of the new ones (thread.c), their ids, one
 * binary COPY of the new rows, and every location in one statement. The accounts' advisory
 * locks, taken before (store.c), make "which contents exist" final: every writer inserts an
 * account's messages under its lock. Any error sends the batch back to the one-by-one path
 * with savepoints, which isolates the bad message. */
#include "store.h"
#include "copy.h"
#include "log.h"
#include "pg.h"
#include "search.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char MESSAGE_COLUMNS[] =
	"id, account_id, provider, message_id, message_id_synthetic, content_sha256, subject, "
	"from_name, from_email, \"to\", cc, bcc, reply_to, sent_at, received_at, direction, "
	"in_reply_to, \"references\", list_id, snippet, body_text, body_html, attachments, size, "
	"raw, parse_error, body_clean, cleaner_version, base_subject, is_reply, thread_parent, "
	"gm_thrid, conversation_id, search";

/* Which of the batch's contents are stored: created 0 with their id and conversation, the
 * others TO_INSERT. */
static int batch_find(struct writer *w, struct wmsg *m, struct item *it, size_t n)
{
	json_t *rows = json_array();
	for (size_t i = 0; i < n; i++) {
		if (it[i].dup_of >= 0)
			continue;
		it[i].created = TO_INSERT;
		json_array_append_new(rows, json_pack("{s:I, s:I, s:s?}", "i", (json_int_t)i, "a",
			(json_int_t)jint(m[i].meta, "account_id"), "h", jstr(m[i].msg, "content_sha256")));
	}
	PGresult *r = pg_exec_json(w->pg, "find stored messages",
		"SELECT x.i, m.id, coalesce(m.conversation_id, 0) FROM jsonb_to_recordset($1::jsonb) "
		" AS x(i int, a bigint, h text) JOIN messages m "
		" ON m.account_id = x.a AND m.content_sha256 = x.h", rows);
	json_decref(rows);
	if (!r)
		return -EIO;
	for (int row = 0; row < PQntuples(r); row++) {
		struct item *x = &it[strtoull(PQgetvalue(r, row, 0), NULL, 10)];
		x->created = 0;
		x->id = strtoll(PQgetvalue(r, row, 1), NULL, 10);
		x->conv = strtoll(PQgetvalue(r, row, 2), NULL, 10);
	}
	PQclear(r);
	return 0;
}

/* Conversations and ids of the new contents. */
static int batch_thread(struct writer *w, struct wmsg *m, struct item *it, size_t n)
{
	size_t k = 0;
	long long *account = calloc(n, sizeof(*account)), *conv = calloc(n, sizeof(*conv));
	json_t **keys = calloc(n, sizeof(*keys));
	size_t *idx = calloc(n, sizeof(*idx));
	int rc = -ENOMEM;
	if (!account || !conv || !keys || !idx)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (it[i].created != TO_INSERT)
			continue;
		account[k] = jint(m[i].meta, "account_id");
		keys[k] = message_keys(&m[i]);
		idx[k++] = i;
	}
	rc = k ? thread_batch(w->pg, account, keys, k, conv) : 0;
	if (rc < 0 || k == 0)
		goto out;
	char count[24];
	snprintf(count, sizeof(count), "%zu", k);
	const char *params[] = { count };
	PGresult *r = pg_exec(w->pg, "draw message ids",
			      "SELECT nextval(pg_get_serial_sequence('messages', 'id')) "
			      "FROM generate_series(1, $1::int)", 1, params);
	rc = -EIO;
	if (!r || PQntuples(r) != (int)k) {
		PQclear(r);
		goto out;
	}
	for (size_t j = 0; j < k; j++) {
		it[idx[j]].conv = conv[j];
		it[idx[j]].id = strtoll(PQgetvalue(r, (int)j, 0), NULL, 10);
	}
	PQclear(r);
	rc = 0;
out:
	for (size_t j = 0; keys && j < k; j++)
		json_decref(keys[j]);
	free(idx);
	free(keys);
	free(conv);
	free(account);
	return rc;
}

/* One message row in MESSAGE_COLUMNS' order. */
static void copy_message(struct copy *c, struct writer *w, const struct wmsg *m,
			 const struct item *x, const char *search, int search_len)
{
	json_t *msg = m->msg, *from = json_object_get(msg, "from");
	struct derived d;
	message_derive(m, x->a, &d);
	copy_row(c, MESSAGE_NCOLS);
	copy_int8(c, x->id);
	copy_int8(c, jint(m->meta, "account_id"));
	copy_text(c, x->a->provider);
	copy_text(c, jstr(msg, "message_id"));
	copy_bool(c, json_is_true(json_object_get(msg, "message_id_synthetic")));
	copy_text(c, jstr(msg, "content_sha256"));
	copy_text(c, jstr(msg, "subject"));
	copy_text(c, jstr(from, "name"));
	copy_text(c, jstr(from, "email"));
	copy_jsonb(c, json_object_get(msg, "to"), "[]");
	copy_jsonb(c, json_object_get(msg, "cc"), "[]");
	copy_jsonb(c, json_object_get(msg, "bcc"), "[]");
	copy_jsonb(c, json_object_get(msg, "reply_to"), "[]");
	copy_timestamptz(c, jstr(msg, "sent_at"));
	copy_timestamptz(c, d.have_received ? d.received : NULL);
	copy_text(c, d.outgoing ? "outgoing" : "incoming");
	copy_text(c, jstr(msg, "in_reply_to"));
	copy_text_array(c, json_object_get(msg, "references"));
	copy_text(c, jstr(msg, "list_id"));
	copy_text(c, jstr(msg, "snippet"));
	copy_text(c, jstr(msg, "body_text"));
	copy_text(c, jstr(msg, "body_html"));
	copy_jsonb(c, json_object_get(msg, "attachments"), "[]");
	if (d.size < INT32_MIN || d.size > INT32_MAX)
		c->err = c->err ? c->err : -EINVAL;
	copy_int4(c, (int32_t)d.size);
	if (w->st->cfg.store_raw && m->raw)
		copy_bytes(c, m->raw, m->raw_len);
	else
		copy_null(c);
	copy_text(c, jstr(msg, "parse_error"));
	copy_text(c, jstr(msg, "body_clean"));
	if (json_is_integer(json_object_get(msg, "cleaner_version")))
		copy_int4(c, (int32_t)jint(msg, "cleaner_version"));
	else
		copy_null(c);
	copy_text(c, jstr(msg, "base_subject"));
	copy_bool(c, json_is_true(json_object_get(msg, "is_reply")));
	copy_text(c, jstr(msg, "thread_parent"));
	copy_text(c, jstr(msg, "gm_thrid"));
	if (x->conv)
		copy_int8(c, x->conv);
	else
		copy_null(c);
	copy_bytes(c, search, (size_t)search_len);
}

/* The new rows, in one COPY; their search vectors come from sv: those of the new rows in
 * order, or (ahead: started when the batch was read ahead) those of every message. */
static int batch_copy(struct writer *w, struct wmsg *m, struct item *it, size_t n,
		      struct search *sv, int ahead)
{
	struct copy c;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += it[i].created == TO_INSERT;
	if (k == 0)
		return 0;
	if (copy_begin(&c, w->pg, "messages", MESSAGE_COLUMNS) < 0)
		return -EIO;
	for (size_t i = 0, j = 0; i < n && !c.err; i++) {
		const char *v;
		int len;
		if (it[i].created != TO_INSERT)
			continue;
		int src = search_get(sv, ahead ? i : j++, &v, &len);
		if (src < 0)
			c.err = src; /* the COPY is abandoned, the batch retried */
		else
			copy_message(&c, w, &m[i], &it[i], v, len);
	}
	copy_send_end(&c);
	/* The server finishes the rows (TOAST, indexes, foreign keys) while the next batch is
	 * read and its vectors started: this batch's vectors are all in the COPY, so the search
	 * connection is free. That way the main backend, the one serial part, does not wait for
	 * Redis and the decoding. */
	search_end(sv);
	writer_lap(w, WP_COPY);
	if (!c.err) {
		w->in_copy = 1;
		writer_read_ahead(w);
		w->in_copy = 0;
	}
	int rc = copy_end(&c, "copy messages");
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (it[i].created == TO_INSERT)
			it[i].created = 1;
	return rc;
}

struct loc_key {
	long long folder, uidvalidity, uid;
	size_t item;
};

static int cmp_loc(const void *a, const void *b)
{
	const struct loc_key *x = a, *y = b;
	if (x->folder != y->folder)
		return x->folder < y->folder ? -1 : 1;
	if (x->uidvalidity != y->uidvalidity)
		return x->uidvalidity < y->uidvalidity ? -1 : 1;
	return (x->uid > y->uid) - (x->uid < y->uid);
}

/* Every location in one statement; those it returns are new (located 1), the rest were
 * stored before (0). */
static int batch_locations(struct writer *w, struct wmsg *m, struct item *it, size_t n)
{
	struct loc_key *keys = calloc(n, sizeof(*keys));
	json_t *rows = json_array();
	int rc = -ENOMEM;
	if (!keys || !rows)
		goto out;
	for (size_t i = 0; i < n; i++) {
		json_t *meta = m[i].meta;
		keys[i] = (struct loc_key){ jint(meta, "folder_id"), jint(meta, "uidvalidity"),
					    jint(meta, "uid"), i };
		json_array_append_new(rows, json_pack("{s:I, s:I, s:I, s:I, s:I, s:O?, s:O?}",
			"a", (json_int_t)jint(meta, "account_id"), "m", (json_int_t)it[i].id, "f", (json_int_t)keys[i].folder,
			"v", (json_int_t)keys[i].uidvalidity, "u", (json_int_t)keys[i].uid,
			"fl", json_object_get(meta, "flags"), "s", json_object_get(meta, "modseq")));
	}
	qsort(keys, n, sizeof(*keys), cmp_loc);
	PGresult *r = pg_exec_json(w->pg, "insert locations",
		"INSERT INTO message_locations (account_id, message_id, folder_id, uidvalidity, uid, "
		" flags, modseq) "
		"SELECT x.a, x.m, x.f, x.v, x.u, coalesce(x.fl, '{}'), x.s FROM jsonb_to_recordset($1::jsonb) "
		" AS x(a bigint, m bigint, f bigint, v bigint, u bigint, fl text[], s bigint) "
		" ORDER BY x.f, x.v, x.u "
		"ON CONFLICT (account_id, folder_id, uidvalidity, uid) DO NOTHING "
		"RETURNING folder_id, uidvalidity, uid", rows);
	rc = -EIO;
	if (!r)
		goto out;
	for (size_t i = 0; i < n; i++)
		it[i].located = 0;
	for (int row = 0; row < PQntuples(r); row++) {
		struct loc_key want = { strtoll(PQgetvalue(r, row, 0), NULL, 10),
					strtoll(PQgetvalue(r, row, 1), NULL, 10),
					strtoll(PQgetvalue(r, row, 2), NULL, 10), 0 };
		struct loc_key *hit = bsearch(&want, keys, n, sizeof(*keys), cmp_loc);
		while (hit && hit > keys && cmp_loc(hit - 1, &want) == 0)
			hit--;
		if (hit)
			it[hit->item].located = 1; /* the same place twice in a batch: once new */
	}
	PQclear(r);
	rc = 0;
out:
	json_decref(rows);
	free(keys);
	return rc;
}

int store_batch(struct writer *w, struct wmsg *m, struct item *it, size_t n)
{
	/* m is sorted by (account, sha256): the same content twice in a batch is adjacent. */
	for (size_t i = 1; i < n; i++)
		if (jint(m[i].meta, "account_id") == jint(m[i - 1].meta, "account_id") &&
		    strcmp(jstr(m[i].msg, "content_sha256") ?: "", jstr(m[i - 1].msg, "content_sha256") ?: "") == 0)
			it[i].dup_of = it[i - 1].dup_of >= 0 ? it[i - 1].dup_of : (long)i - 1;
	for (size_t i = 0; i < n; i++)
		if (!it[i].a)
			return -EINVAL; /* an account removed meanwhile: the one-by-one path logs it */
	writer_lap(w, WP_LOCK);
	int rc = batch_find(w, m, it, n);
	writer_lap(w, WP_FIND);
	/* The new rows' search vectors start on the second connection now, while the
	 * conversations are decided on the first; a batch read ahead has every message's under
	 * way already (batch.c), for its first attempt. */
	const struct wmsg **fresh = NULL;
	struct search own = { .done = 1 }, *sv = &own; /* search_end waits for nothing until it starts */
	int ahead = w->ahead != NULL;
	if (ahead) {
		sv = w->ahead;
		w->ahead = NULL;
	} else if (rc == 0) {
		size_t k = 0;
		/* The search connection takes one batch at a time: a retry of this batch after
		 * the next was read ahead takes it back from the next, which computes again. */
		batch_drop_vectors(w->next);
		fresh = calloc(n, sizeof(*fresh));
		if (!fresh)
			rc = -ENOMEM;
		for (size_t i = 0; rc == 0 && i < n; i++)
			if (it[i].created == TO_INSERT)
				fresh[k++] = &m[i];
		if (rc == 0)
			rc = search_start(&own, w, fresh, k);
	}
	if (rc == 0)
		rc = batch_thread(w, m, it, n);
	writer_lap(w, WP_THREAD);
	if (rc == 0)
		rc = batch_copy(w, m, it, n, sv, ahead);
	search_end(sv);
	writer_lap(w, WP_COPY);
	free(fresh);
	if (rc == 0)
		writer_read_ahead(w);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (it[i].dup_of >= 0) {
			it[i].id = it[it[i].dup_of].id;
			it[i].conv = it[it[i].dup_of].conv;
			it[i].created = 0;
		}
	if (rc == 0)
		rc = batch_locations(w, m, it, n);
	if (rc == 0 && w->faults_done < w->st->cfg.fault_writer_retry && w->next && w->next->sv) {
		w->faults_done++; /* tests: the batch retried while the next has its vectors under way */
		log_warn("msg=\"fault injected: batch retried as after a deadlock\"");
		rc = -EAGAIN;
	}
	writer_lap(w, WP_LOCATIONS);
	if (rc == -EIO && !pg_broken(w->pg)) {
		const char *state = pg_last_sqlstate();
		rc = (!strcmp(state, "40P01") || !strcmp(state, "40001")) ? -EAGAIN : -EINVAL;
	}
	if (rc == -EINVAL)
		log_warn("msg=\"batch of %zu not stored at once, retrying message by message\"", n);
	return rc;
}

