/* The raw bytes of a batch, read from {mp}:raw by the ids its parsed records name (raw_id,
 * common/parsed.h): one XRANGE id id per message, pipelined, so one round trip per batch.
 * The bytes stay in the replies, which the caller frees once the batch is stored. An entry
 * that is gone (its message committed and the entry deleted, then the parsed record delivered
 * again) leaves the message with raw_missing set and no bytes: store.c stores it without them
 * or, when its content is stored already, just adds the location. */
#include "log.h"
#include "writer.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int rawfetch_valid_id(const char *id)
{
	/* <ms>-<seq>: anything else would make XRANGE (and the XDEL after COMMIT) fail */
	size_t ms = 0, seq = 0;
	if (!id)
		return 0;
	while (isdigit((unsigned char)id[ms]))
		ms++;
	if (ms == 0 || ms > 20 || id[ms] != '-')
		return 0;
	while (isdigit((unsigned char)id[ms + 1 + seq]))
		seq++;
	return seq > 0 && seq <= 20 && id[ms + 1 + seq] == 0;
}

/* Whether m needs its bytes read: it names a raw entry and has no `raw` of its own, and they
 * are wanted (messages.raw kept, or the size to be taken from them). */
static int wants(const struct writer *w, const struct wmsg *m)
{
	if (m->raw || !m->raw_id)
		return 0;
	return w->st->cfg.store_raw || !json_is_integer(json_object_get(m->meta, "size"));
}

int rawfetch_batch(struct writer *w, struct wmsg *m, size_t n, redisReply ***replies,
		   size_t *nreplies)
{
	redisContext *c = w->st->rc;
	const char *key = w->st->cfg.key_raw;
	size_t k = 0;
	*replies = NULL;
	*nreplies = 0;
	for (size_t i = 0; i < n; i++) {
		if (!wants(w, &m[i]))
			continue;
		const char *argv[] = { "XRANGE", key, m[i].raw_id, m[i].raw_id };
		redisAppendCommandArgv(c, 4, argv, NULL);
		k++;
	}
	if (k == 0)
		return 0;
	redisReply **r = calloc(k, sizeof(*r));
	int rc = r ? 0 : -ENOMEM;
	for (size_t j = 0; j < k; j++) { /* every reply is read, so the pipeline stays in step */
		void *reply = NULL;
		if (redisGetReply(c, &reply) != REDIS_OK) {
			log_error("key=%s msg=\"reading raw messages failed: %s\"", key, c->errstr);
			for (size_t i = 0; r && i < j; i++) /* the replies read before it */
				freeReplyObject(r[i]);
			free(r);
			return -EIO; /* the connection is broken: the caller reconnects */
		}
		redisReply *x = reply;
		if (x->type == REDIS_REPLY_ERROR) {
			log_error("key=%s msg=\"XRANGE failed: %s\"", key, x->str);
			rc = -EIO;
		}
		if (r)
			r[j] = x;
		else
			freeReplyObject(x);
	}
	if (rc < 0) {
		for (size_t j = 0; r && j < k; j++)
			freeReplyObject(r[j]);
		free(r);
		return rc;
	}
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (!wants(w, &m[i]))
			continue;
		struct rentry *e = NULL;
		size_t ne = 0, len = 0;
		rstream_range_entries(r[j++], &e, &ne);
		const char *raw = ne == 1 ? rentry_get(&e[0], "raw", &len) : NULL;
		free(e);
		m[i].raw = raw;
		m[i].raw_len = raw ? len : 0;
		m[i].raw_missing = raw == NULL && w->st->cfg.store_raw;
	}
	*replies = r;
	*nreplies = k;
	return 0;
}
