/* UID sets as sorted uint32 arrays: simple, cache-friendly, and bounded by UIDSET_MAX_PARSE
 * when they come from text. Does not talk IMAP; callers put the formatted set in commands. */
#include "uidset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void uidset_init(struct uidset *s)
{
	s->v = NULL;
	s->n = s->cap = 0;
}

void uidset_release(struct uidset *s)
{
	if (!s)
		return;
	free(s->v);
	uidset_init(s);
}

static int uidset_reserve(struct uidset *s, size_t more)
{
	size_t cap = s->cap ? s->cap : 16;
	uint32_t *v;

	if (more <= s->cap - s->n)
		return 0;
	if (more > SIZE_MAX / sizeof(*v) - s->n)
		return -ENOMEM;
	while (cap < s->n + more)
		cap = cap > SIZE_MAX / sizeof(*v) / 2 ? s->n + more : cap * 2;
	v = realloc(s->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->v = v;
	s->cap = cap;
	return 0;
}

int uidset_add(struct uidset *s, uint32_t uid)
{
	if (uid == 0)
		return -EINVAL;
	if (uidset_reserve(s, 1) < 0)
		return -ENOMEM;
	s->v[s->n++] = uid;
	return 0;
}

int uidset_add_range(struct uidset *s, uint32_t lo, uint32_t hi)
{
	if (lo > hi) {
		uint32_t t = lo;

		lo = hi;
		hi = t;
	}
	if (lo == 0)
		return -EINVAL;
	if (uidset_reserve(s, (size_t)(hi - lo) + 1) < 0)
		return -ENOMEM;
	for (uint32_t u = lo;; u++) {
		s->v[s->n++] = u;
		if (u == hi)
			break;
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

void uidset_normalize(struct uidset *s)
{
	size_t o = 0;

	if (s->n < 2)
		return;
	qsort(s->v, s->n, sizeof(*s->v), cmp_u32);
	for (size_t i = 0; i < s->n; i++)
		if (o == 0 || s->v[i] != s->v[o - 1])
			s->v[o++] = s->v[i];
	s->n = o;
}

char *uidset_format(const struct uidset *s)
{
	struct uidset c;
	char *out = NULL;
	size_t o = 0;

	uidset_init(&c);
	if (s->n && uidset_reserve(&c, s->n) < 0)
		return NULL;
	if (s->n)
		memcpy(c.v, s->v, s->n * sizeof(*c.v));
	c.n = s->n;
	uidset_normalize(&c);
	/* "4294967295:4294967295," is 22 bytes: a fixed bound per element, so one allocation. */
	if (c.n > (SIZE_MAX - 1) / 22)
		goto out;
	out = malloc(c.n * 22 + 1);
	if (!out)
		goto out;
	for (size_t i = 0; i < c.n;) {
		size_t j = i;

		while (j + 1 < c.n && c.v[j + 1] == c.v[j] + 1)
			j++;
		if (j > i)
			o += (size_t)snprintf(out + o, 23, "%s%u:%u", o ? "," : "", c.v[i], c.v[j]);
		else
			o += (size_t)snprintf(out + o, 23, "%s%u", o ? "," : "", c.v[i]);
		i = j + 1;
	}
	out[o] = '\0';
out:
	uidset_release(&c);
	return out;
}

/* Reads a nonzero uint32 at *p; advances past it. */
static int parse_uid(const char **p, uint32_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	if (v == 0)
		return -EINVAL;
	*p = s;
	*out = (uint32_t)v;
	return 0;
}

int uidset_parse(struct uidset *s, const char *str)
{
	const char *p = str;
	uint64_t total = 0;
	int rc = 0;

	s->n = 0;
	while (*p) {
		uint32_t lo, hi;

		rc = parse_uid(&p, &lo);
		if (rc < 0)
			goto out;
		hi = lo;
		if (*p == ':') {
			p++;
			rc = parse_uid(&p, &hi);
			if (rc < 0)
				goto out;
		}
		total += (lo > hi ? lo - hi : hi - lo) + (uint64_t)1;
		if (total > UIDSET_MAX_PARSE) {
			rc = -E2BIG;
			goto out;
		}
		rc = uidset_add_range(s, lo, hi);
		if (rc < 0)
			goto out;
		if (*p == '\0')
			break;
		/* A separator must be followed by another element: "1," is not a set. */
		if (*p != ',' || p[1] == '\0') {
			rc = -EINVAL;
			goto out;
		}
		p++;
	}
	uidset_normalize(s);
out:
	if (rc < 0)
		s->n = 0;
	return rc;
}

int uidset_contains(const struct uidset *s, uint32_t uid)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid] == uid)
			return 1;
		if (s->v[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}
