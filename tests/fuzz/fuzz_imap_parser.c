/* libFuzzer target for common/imap_parser.c: the first byte picks a chunk size, the rest is
 * server bytes fed twice (whole and in chunks) to parsers with small limits; both runs must
 * agree, and every returned value must keep the header's promises (NUL after len, etc.). */
#include "imap_parser.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ull;
	return h;
}

static uint64_t mix_str(uint64_t h, const char *s)
{
	return s ? mix(h, s, strlen(s) + 1) : mix(h, "\xff", 1);
}

static uint64_t hash_value(uint64_t h, const struct imap_value *v, unsigned depth)
{
	uint64_t u;

	if (depth > 64)
		abort();
	h = mix(h, &v->type, sizeof(v->type));
	switch (v->type) {
	case IMAP_V_ATOM:
	case IMAP_V_STRING:
	case IMAP_V_LITERAL:
		if (!v->s || v->s[v->len] != '\0')
			abort();
		h = mix(h, &v->len, sizeof(v->len));
		h = mix(h, v->s, v->len);
		if (imap_value_u64(v, &u) == 0)
			h = mix(h, &u, sizeof(u));
		h = mix(h, "", imap_value_is(v, "NIL") ? 1 : 0);
		break;
	case IMAP_V_NIL:
		if (!imap_value_is(v, "nil"))
			abort();
		break;
	case IMAP_V_LIST:
		h = mix(h, &v->n, sizeof(v->n));
		for (size_t i = 0; i < v->n; i++)
			h = hash_value(h, &v->items[i], depth + 1);
		if (imap_list_get(v, "UID"))
			h = mix(h, "u", 1);
		break;
	}
	return h;
}

static uint64_t hash_response(uint64_t h, const struct imap_response *r)
{
	uint64_t u;

	h = mix(h, &r->kind, sizeof(r->kind));
	h = mix(h, &r->status, sizeof(r->status));
	h = mix_str(h, r->tag);
	h = mix_str(h, r->code);
	h = mix_str(h, r->text);
	h = mix_str(h, r->name);
	h = mix(h, &r->has_number, sizeof(r->has_number));
	h = mix(h, &r->number, sizeof(r->number));
	if ((r->kind == IMAP_RESP_TAGGED) != (r->tag != NULL))
		abort();
	if ((r->name != NULL) == (r->text != NULL))
		abort();
	if (imap_response_code_u64(r, "UIDVALIDITY", &u) == 0)
		h = mix(h, &u, sizeof(u));
	for (size_t i = 0; i < r->nargs; i++)
		h = hash_value(h, &r->args[i], 0);
	return h;
}

/* Returns a hash of everything parsed, the final status and the error text. */
static uint64_t run(const uint8_t *data, size_t size, size_t chunk)
{
	struct imap_limits lim;
	struct imap_parser *p;
	struct imap_response *r;
	uint64_t h = 14695981039346656037ull;
	size_t off = 0;
	int rc = 0;

	imap_limits_default(&lim);
	lim.max_line = 256;
	lim.max_literal = 1024;
	lim.max_depth = 8;
	lim.max_tokens = 256;
	lim.max_response = 2048;
	p = imap_parser_new(&lim);
	if (!p)
		abort();
	while (off < size && rc >= 0) {
		size_t k = size - off < chunk ? size - off : chunk;

		if (imap_parser_feed(p, data + off, k) != 0)
			abort();
		off += k;
		while ((rc = imap_parser_next(p, &r)) == 1)
			h = hash_response(h, r);
	}
	h = mix(h, &rc, sizeof(rc));
	if (rc < 0) {
		const char *e = imap_parser_error(p);

		if (!*e || strchr(e, '\n') || strchr(e, '\r'))
			abort();
		h = mix_str(h, e);
		/* A failed stream stays failed, whatever else arrives. */
		if (imap_parser_feed(p, data, size) != 0 || imap_parser_next(p, &r) != rc ||
		    r != NULL)
			abort();
	} else {
		size_t left = imap_parser_buffered(p);

		h = mix(h, &left, sizeof(left));
	}
	imap_parser_free(p);
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t chunk;

	if (size < 1)
		return 0;
	chunk = (size_t)data[0] % 17 + 1;
	if (data[0] >= 0xf0)
		chunk = 1;
	data++;
	size--;
	if (run(data, size, size ? size : 1) != run(data, size, chunk))
		abort();
	return 0;
}
