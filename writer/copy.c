/* Binary COPY encoding and sending (see copy.h). Values go big-endian into one buffer that is
 * handed to libpq in pieces of about FLUSH_AT bytes; a large field (a raw message) goes
 * straight through without being copied here first. */
#include "copy.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { FLUSH_AT = 256 * 1024, DIRECT_AT = 64 * 1024 };

static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

static int flush(struct copy *c)
{
	if (c->err || c->len == 0)
		return c->err;
	if (PQputCopyData(c->pg, c->buf, (int)c->len) != 1)
		c->err = -EIO;
	c->len = 0;
	return c->err;
}

static void put(struct copy *c, const void *p, size_t n)
{
	if (c->err)
		return;
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap : FLUSH_AT + DIRECT_AT;
		while (cap < c->len + n)
			cap *= 2;
		char *b = realloc(c->buf, cap);
		if (!b) {
			c->err = -ENOMEM;
			return;
		}
		c->buf = b;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, p, n);
	c->len += n;
}

static void put_be(struct copy *c, uint64_t v, int bytes)
{
	unsigned char b[8];
	for (int i = 0; i < bytes; i++)
		b[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
	put(c, b, (size_t)bytes);
}

int copy_begin(struct copy *c, PGconn *pg, const char *table, const char *cols)
{
	char sql[2048];
	*c = (struct copy){ .pg = pg };
	snprintf(sql, sizeof(sql), "COPY %s (%s) FROM STDIN (FORMAT binary)", table, cols);
	PGresult *r = PQexec(pg, sql);
	int ok = PQresultStatus(r) == PGRES_COPY_IN;
	if (!ok)
		log_error("msg=\"copy into %s: %s\"", table, PQerrorMessage(pg));
	PQclear(r);
	if (!ok)
		return c->err = -EIO;
	put(c, header, sizeof(header));
	return c->err;
}

void copy_row(struct copy *c, int ncols)
{
	put_be(c, (uint64_t)ncols, 2);
	if (c->len >= FLUSH_AT)
		flush(c);
}

void copy_null(struct copy *c)
{
	put_be(c, 0xffffffffu, 4);
}

void copy_int4(struct copy *c, int32_t v)
{
	put_be(c, 4, 4);
	put_be(c, (uint32_t)v, 4);
}

void copy_int8(struct copy *c, int64_t v)
{
	put_be(c, 8, 4);
	put_be(c, (uint64_t)v, 8);
}

void copy_bool(struct copy *c, int v)
{
	put_be(c, 1, 4);
	put(c, v ? "\1" : "\0", 1);
}

void copy_bytes(struct copy *c, const void *p, size_t len)
{
	if (len > INT32_MAX) {
		c->err = c->err ? c->err : -EINVAL;
		return;
	}
	put_be(c, len, 4);
	if (len < DIRECT_AT) {
		put(c, p, len);
		return;
	}
	if (flush(c) == 0 && PQputCopyData(c->pg, p, (int)len) != 1)
		c->err = -EIO;
}

void copy_text(struct copy *c, const char *s)
{
	if (!s)
		copy_null(c);
	else
		copy_bytes(c, s, strlen(s));
}

void copy_jsonb(struct copy *c, json_t *v, const char *fallback)
{
	char *text = v && !json_is_null(v) ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	const char *s = text ? text : fallback;
	if (!s) {
		copy_null(c);
		return;
	}
	size_t n = strlen(s);
	put_be(c, n + 1, 4);
	put(c, "\1", 1); /* jsonb's binary form: a version byte, then the text */
	put(c, s, n);
	free(text);
}

void copy_text_array(struct copy *c, json_t *arr)
{
	enum { TEXTOID = 25 };
	size_t n = 0, bytes = 0, i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		if (json_is_string(e)) {
			n++;
			bytes += 4 + strlen(json_string_value(e));
		}
	}
	put_be(c, 12 + (n ? 8 : 0) + bytes, 4);
	put_be(c, n ? 1 : 0, 4); /* dimensions */
	put_be(c, 0, 4);	 /* no NULL elements */
	put_be(c, TEXTOID, 4);
	if (n) {
		put_be(c, n, 4); /* length, lower bound */
		put_be(c, 1, 4);
	}
	json_array_foreach(arr, i, e) {
		if (json_is_string(e)) {
			const char *s = json_string_value(e);
			size_t len = strlen(s);
			put_be(c, len, 4);
			put(c, s, len);
		}
	}
}

int copy_parse_iso(const char *s, int64_t *usec)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, n = 0;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
		return -EINVAL;
	const char *z = s + n;
	int sign = 0;
	if (!strcmp(z, "Z")) {
		sign = 1;
	} else if ((*z == '+' || *z == '-') && sscanf(z + 1, "%2d:%2d%n", &oh, &om, &n) == 2 &&
		   z[1 + n] == 0 && n == 5) {
		sign = *z == '+' ? 1 : -1;
	}
	if (!sign || y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
	    oh > 23 || om > 59 || h < 0 || mi < 0 || sec < 0 || oh < 0 || om < 0)
		return -EINVAL;
	/* glibc's timegm counts proleptic Gregorian days in 64 bits, years 1..9999 included; a
	 * 60th second (a leap second) rolls over as PostgreSQL's reading does. */
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
			 .tm_min = mi };
	int64_t t = (int64_t)timegm(&tm);
	if (tm.tm_mday != d || tm.tm_mon != mo - 1)
		return -EINVAL; /* February 30th: PostgreSQL refuses it, so must we */
	t += sec - sign * (oh * 3600 + om * 60);
	*usec = (t - 946684800) * 1000000; /* PostgreSQL's epoch is 2000-01-01 */
	return 0;
}

void copy_timestamptz(struct copy *c, const char *s)
{
	int64_t usec;
	if (!s)
		copy_null(c);
	else if (copy_parse_iso(s, &usec) < 0)
		c->err = c->err ? c->err : -EINVAL;
	else
		copy_int8(c, usec);
}

void copy_send_end(struct copy *c)
{
	static const char trailer[2] = { '\377', '\377' };
	put(c, trailer, sizeof(trailer));
	flush(c);
	int ok = PQputCopyEnd(c->pg, c->err ? "mailpipe: row not encoded" : NULL) == 1;
	if (!ok && !c->err)
		c->err = -EIO;
	c->sent = 1;
}

int copy_end(struct copy *c, const char *what)
{
	if (!c->sent)
		copy_send_end(c);
	PGresult *r;
	int failed = c->err; /* an encoding or sending error is the one to report */
	while ((r = PQgetResult(c->pg))) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && !failed) {
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			int retry = state && (!strcmp(state, "40P01") || !strcmp(state, "40001"));
			if (!retry)
				log_warn("msg=\"%s: %s\"", what, PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
			c->err = failed = retry ? -EAGAIN : PQstatus(c->pg) == CONNECTION_OK ? -EINVAL : -EIO;
		}
		PQclear(r);
	}
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
	return c->err;
}
