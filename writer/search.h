/* The search vectors of a batch's new messages (messages.search, migration 014): each is
 * mp_search_vector(subject, from name, from address, cleaned body or else text body), computed
 * by PostgreSQL in binary and sent back in the COPY of the rows. A thread of the writer computes
 * them on a second connection (MAILPIPE_WRITER_SEARCH_CONN) from the moment the batch knows
 * which rows are new, while the main connection decides their conversations and takes the
 * COPY: two backends work at once. Without it the main connection computes them first. */
#ifndef MP_WRITER_SEARCH_H
#define MP_WRITER_SEARCH_H

#include "writer.h"

#include <libpq-fe.h>
#include <stddef.h>

struct search {
	struct writer *w;
	PGconn *c;		/* the second connection, or the main one */
	const struct wmsg *const *m;	/* the messages, in COPY order (borrowed) */
	size_t n, nchunks;
	PGresult **res;		/* one result row per chunk */
	/* Shared with the thread while it works on this batch (under its lock): */
	size_t got;		/* chunks in res */
	int failed;		/* 1 a value refused, 2 the connection broke */
	int cancel, done;
};

/* Prepares the statement on a connection: after every (re)connect of the main one. */
int search_prepare(PGconn *pg);

/* Starts computing the vectors of m[0..n) (in the order the COPY will want them). 0, or -EIO
 * (the main connection failed; logged). */
int search_start(struct search *s, struct writer *w, const struct wmsg *const *m, size_t n);

/* The binary tsvector of m[k], waiting for its chunk. 0; -EAGAIN when the second connection
 * broke (closed when the batch ends: the caller abandons its COPY and retries the batch);
 * -EINVAL when the server refused a value (the batch goes message by message); -EIO. */
int search_get(struct search *s, size_t k, const char **val, int *len);

/* Stops the thread's work on the batch, frees the results; a failed second connection is
 * closed (connected again for a later batch, at most every 10 s). */
void search_end(struct search *s);

/* 1 when the second connection is up (batch.c reads ahead only then). */
int search_helper_ready(struct writer *w);

/* Gives stored messages without a vector theirs, at most 1,000 a call: rows a writer older than
 * migration 014 inserted during a rolling upgrade. Rows filled, or -1 (logged). */
int search_repair(struct writer *w);

/* Stops the thread and closes the second connection (writer exit). */
void search_close(struct writer *w);

#endif
