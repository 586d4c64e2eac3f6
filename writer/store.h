/* What store.c (the transaction, the one-by-one path) and store_batch.c (the batch path)
 * share: a batch's items, and how a parsed record becomes a row. Internal to the writer. */
#ifndef MP_WRITER_STORE_H
#define MP_WRITER_STORE_H

#include "writer.h"

static inline const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static inline long long jint(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* One message of a batch being stored. */
struct item {
	const struct account_info *a;
	long long id, conv;
	int created;	/* 1 new, 0 stored before, TO_INSERT pending, -1 unknown/failed */
	int located;	/* 1 new, 0 stored before, -1 unknown/failed */
	long dup_of;	/* index of the same content earlier in the batch, or -1 */
};

enum { TO_INSERT = 2, MESSAGE_NCOLS = 34 };

/* What the row says beyond the parser's record, the same on the INSERT and the COPY path. */
struct derived {
	int outgoing, have_received;
	long long size;
	char received[64];
};

void message_derive(const struct wmsg *m, const struct account_info *a, struct derived *d);
/* The keys a message is threaded by; a new reference. */
json_t *message_keys(const struct wmsg *m);
/* The batch path (store_batch.c): which contents are stored, the new ones' conversations and
 * rows in one COPY, every location in one statement. 0, -EAGAIN (deadlock), -EINVAL (a
 * message was rejected: go message by message) or -EIO. */
int store_batch(struct writer *w, struct wmsg *m, struct item *it, size_t n);

#endif
