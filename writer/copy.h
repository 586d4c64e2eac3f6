/* Binary COPY rows (PostgreSQL's FORMAT binary): the encoder of one table's rows and their
 * sending. Knows nothing of mailpipe's tables; store_batch.c writes the message rows through it. */
#ifndef MP_WRITER_COPY_H
#define MP_WRITER_COPY_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct copy {
	PGconn *pg;
	char *buf;
	size_t len, cap;
	int err;	/* first error (-ENOMEM, -EIO, -EINVAL); later calls do nothing */
	int sent;	/* copy_send_end was called */
};

/* Starts `COPY table (cols) FROM STDIN (FORMAT binary)` on pg. 0, or -EIO after logging. */
int copy_begin(struct copy *c, PGconn *pg, const char *table, const char *cols);
/* Opens a row of ncols fields; the field calls below must follow, in column order. */
void copy_row(struct copy *c, int ncols);
void copy_null(struct copy *c);
void copy_int4(struct copy *c, int32_t v);
void copy_int8(struct copy *c, int64_t v);
void copy_bool(struct copy *c, int v);
/* A text field from a C string (NULL: SQL NULL), or len bytes (bytea). */
void copy_text(struct copy *c, const char *s);
void copy_bytes(struct copy *c, const void *p, size_t len);
/* jsonb from a JSON value; fallback (e.g. "[]") when v is NULL or JSON null. */
void copy_jsonb(struct copy *c, json_t *v, const char *fallback);
/* text[] from a JSON array of strings (other elements skipped); NULL: an empty array. */
void copy_text_array(struct copy *c, json_t *arr);
/* timestamptz from ISO 8601 "YYYY-MM-DDTHH:MM:SS" with "Z" or a "+HH:MM" offset; NULL s:
 * SQL NULL. Text it cannot read sets -EINVAL: the row would differ from the server's reading. */
void copy_timestamptz(struct copy *c, const char *s);
/* Sends the end of the COPY without waiting for the server's answer: the caller may do
 * other work while the server finishes the rows (indexes, TOAST, foreign keys), then
 * copy_end. */
void copy_send_end(struct copy *c);
/* Ends the COPY (sending its end unless copy_send_end did): 0 when every row is in; -EINVAL
 * when the server rejected a row (logged), -EAGAIN on deadlock, -EIO when the connection
 * failed. Always leaves the connection idle and frees the buffer. */
int copy_end(struct copy *c, const char *what);

/* Microseconds since 2000-01-01 UTC of an ISO 8601 time as above. 0 or -EINVAL. */
int copy_parse_iso(const char *s, int64_t *usec);

#endif
