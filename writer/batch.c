/* Owns a batch between its read from {mp}:parsed and its end: its entries decoded into
 * messages (sorted as store_messages stores them), their raw bytes, and, when it was read
 * ahead, its search vectors under way (writer.h). Reading ahead: the writer's chain is one
 * backend writing an account's rows in order, and it stood idle while the writer read and
 * decoded the next batch and while the COPY waited for that batch's first vectors. So once a
 * batch's COPY is sent, the next batch is read (without waiting) and its vectors start on the
 * search connection, while the server finishes the COPY's rows and the main connection
 * then the rest of the first batch (locations, conversations, COMMIT). Nothing is
 * acknowledged before its own COMMIT, as before: a batch read ahead and never stored is still
 * pending in this consumer's name. */
#include "writer.h"
#include "log.h"
#include "parsed.h"
#include "search.h"

#include <stdlib.h>
#include <string.h>

void writer_lap(struct writer *w, enum writer_phase phase)
{
	double now = metrics_clock();
	w->lap_ms[phase] += (now - w->lap_at) * 1000;
	w->lap_at = now;
}

/* The schedule of replan_when_due (main.c) starts again; here, with the writer's other
 * helpers, so that test drivers linking the writer's library without main.c have it. */
void writer_replan_soon(struct writer *w)
{
	double now = metrics_clock();
	if (w->replan_restarted > 0 && now - w->replan_restarted < 1.0) {
		/* Thousands of accounts: not a replan after every batch, but the account that came
		 * within the second still gets its schedule once the second is over (a fast host
		 * synced one account, removed it and began the next within it, and the next was
		 * checked against plans of empty tables for a dozen batches). */
		w->replan_pending = 1;
		return;
	}
	w->replan_restarted = now;
	w->replan_pending = 0;
	w->committed = w->replan_at = 0;
}

void writer_note_folder(struct writer *w, long long folder)
{
	for (size_t i = 0; i < w->ncommitted_folders; i++)
		if (w->committed_folders[i] == folder)
			return;
	if (w->ncommitted_folders < sizeof(w->committed_folders) / sizeof(w->committed_folders[0]))
		w->committed_folders[w->ncommitted_folders++] = folder;
	else
		w->all_folders = 1;
}

int writer_release(struct writer *w, const char **raw_ids, size_t nraw, const char **ids,
		   size_t n)
{
	redisContext *c = w->st->rc;
	size_t replies = nraw ? 2 : 0;
	if (nraw)
		rstream_append_ack(c, w->st->cfg.key_raw, "parsers", raw_ids, nraw);
	if (w->st->cfg.fault_writer_abort == 2) { /* tests: crash between the two */
		rstream_collect(c, replies);
		abort();
	}
	if (n == 0) /* the raw entries alone (main.c, a full Redis) */
		return rstream_collect(c, replies);
	rstream_append_ack(c, w->st->cfg.key_parsed, "writers", ids, n);
	return rstream_collect(c, replies + 2);
}

struct batch *batch_decode(struct writer *w, redisReply **replies, size_t nreplies, int lap)
{
	struct batch *b = calloc(1, sizeof(*b));
	if (!b) {
		for (size_t k = 0; k < nreplies; k++)
			freeReplyObject(replies[k]);
		return NULL;
	}
	memcpy(b->replies, replies, nreplies * sizeof(*replies));
	b->nreplies = nreplies;
	for (size_t k = 0; k < nreplies; k++) {
		struct rentry *part;
		size_t np;
		rstream_entries(replies[k], &part, &np);
		struct rentry *grown = np ? realloc(b->e, (b->n + np) * sizeof(*b->e)) : b->e;
		if (np && grown) {
			memcpy(grown + b->n, part, np * sizeof(*part));
			b->e = grown;
			b->n += np;
		}
		free(part);
	}
	b->m = calloc(b->n ? b->n : 1, sizeof(*b->m));
	if (!b->m) {
		b->failed = 1;
		return b;
	}
	for (size_t i = 0; i < b->n; i++) {
		struct rentry *e = &b->e[i];
		const char *type = rentry_get(e, "type", NULL);
		if (!type || strcmp(type, "message") != 0)
			continue;
		size_t len;
		const char *meta = rentry_get(e, "meta", NULL);
		const char *msg = rentry_get(e, "msg", NULL);
		const char *raw = rentry_get(e, "raw", &len);
		const char *raw_id = rentry_get(e, "raw_id", NULL);
		struct wmsg *x = &b->m[b->nm];
		memset(x, 0, sizeof(*x));
		x->entry_id = e->id;
		x->raw_id = rawfetch_valid_id(raw_id) ? raw_id : NULL;
		if (raw_id && !x->raw_id)
			log_error("entry=%s raw_id=%s msg=\"parsed record names no valid raw entry; "
				  "storing the message without raw\"", e->id, raw_id);
		x->meta = meta ? json_loads(meta, 0, NULL) : NULL;
		x->msg = msg ? json_loads(msg, 0, NULL) : NULL;
		for (size_t k = 0; x->msg && k < PARSED_BODY_FIELDS; k++) {
			size_t blen;
			const char *f = rentry_get(e, parsed_body_fields[k], &blen);
			if (f) /* the parser made it valid UTF-8 without NUL (common/parsed.h) */
				json_object_set_new(x->msg, parsed_body_fields[k], json_stringn_nocheck(f, blen));
		}
		x->raw = raw;
		x->raw_len = raw ? len : 0;
		x->raw_missing = !raw && !x->raw_id && w->st->cfg.store_raw;
		if (!x->meta || !x->msg) {
			log_error("entry=%s msg=\"parsed record without valid meta/msg JSON, dropped\"", e->id);
			json_decref(x->meta);
			json_decref(x->msg);
			const char *id = e->id; /* its raw entry goes too: Redis must not keep it */
			writer_release(w, &x->raw_id, x->raw_id ? 1 : 0, &id, 1);
			continue;
		}
		b->nm++;
	}
	if (lap)
		writer_lap(w, WP_DECODE);
	if (b->nm && rawfetch_batch(w, b->m, b->nm, &b->raws, &b->nraws) < 0)
		b->failed = 1; /* nothing acknowledged: read again after reconnecting */
	store_sort(b->m, b->nm);
	if (lap)
		writer_lap(w, WP_RAW);
	return b;
}

void batch_drop_vectors(struct batch *b)
{
	if (!b || !b->sv)
		return;
	search_end(b->sv);
	free(b->sv);
	free(b->ptrs);
	b->sv = NULL;
	b->ptrs = NULL;
}

void batch_free(struct batch *b)
{
	if (!b)
		return;
	batch_drop_vectors(b);
	for (size_t i = 0; i < b->nm; i++) {
		json_decref(b->m[i].meta);
		json_decref(b->m[i].msg);
	}
	for (size_t i = 0; i < b->nraws; i++)
		freeReplyObject(b->raws[i]);
	free(b->raws);
	free(b->m);
	free(b->e);
	for (size_t k = 0; k < b->nreplies; k++)
		freeReplyObject(b->replies[k]);
	free(b);
}

/* Tests (MAILPIPE_FAULT_WRITER_AHEAD): the server closes the writer's Redis connection, as a
 * Redis restart or a cut network does, while a batch is being stored. */
static void fault_drop_redis(struct writer *w, const char *when)
{
	log_warn("msg=\"fault injected: Redis connection dropped %s\"", when);
	redisReply *id = redisCommand(w->st->rc, "CLIENT ID");
	if (id && id->type == REDIS_REPLY_INTEGER)
		freeReplyObject(redisCommand(w->st->rc, "CLIENT KILL ID %lld SKIPME no", id->integer));
	freeReplyObject(id);
}

void writer_read_ahead(struct writer *w)
{
	if (w->next || !w->st->rc || !w->st->cfg.writer_read_ahead || !search_helper_ready(w))
		return;
	/* the 1st, 3rd ... fault before the read, the 2nd, 4th ... after it; each inside a COPY,
	 * on a live connection, which the main loop has remade since the last */
	int fault = w->in_copy && w->ahead_faults_done < w->st->cfg.fault_writer_ahead &&
		    !w->st->rc->err;
	if (fault && w->ahead_faults_done % 2 == 0) {
		w->ahead_faults_done++;
		fault_drop_redis(w, "before reading ahead inside a COPY");
	}
	int redelivered;
	redisReply *r = stage_next(w->st, w->st->cfg.key_parsed, "writers", w->st->cfg.writer_batch,
				   -1, &redelivered);
	if (!r)
		return; /* nothing there, or Redis failed: the main loop finds out and reconnects */
	if (fault && w->ahead_faults_done % 2 == 1 && !w->st->rc->err) {
		w->ahead_faults_done++;
		fault_drop_redis(w, "inside a COPY, between the entries read ahead and their raw bytes");
	}
	struct batch *b = batch_decode(w, &r, 1, 0);
	if (b && !b->failed && b->nm) {
		/* Every message's vector, in the order of b->m: the batch does not know yet which
		 * are new (a duplicate's vector is computed for nothing). */
		b->sv = calloc(1, sizeof(*b->sv));
		b->ptrs = calloc(b->nm, sizeof(*b->ptrs));
		for (size_t i = 0; b->ptrs && i < b->nm; i++)
			b->ptrs[i] = &b->m[i];
		if (b->sv && b->ptrs && search_start(b->sv, w, b->ptrs, b->nm) < 0) {
			search_end(b->sv);
			free(b->sv);
			b->sv = NULL;
		}
	}
	w->next = b;
	if (b)
		log_debug("entries=%zu msg=\"next batch read ahead\"", b->nm);
	writer_lap(w, WP_AHEAD);
	(void)redelivered;
}
