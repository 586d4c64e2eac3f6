/* Owns HTML rendering's bytes: the growing output buffer, UTF-8 validity (invalid sequences
 * become U+FFFD) and input in another charset converted to UTF-8. Not what is written. Called by
 * the other html*.c. */
#include "html_internal.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char utf8_replacement[] = "\xEF\xBF\xBD";

/* ---- output buffer ---- */

int html_buf_reserve(struct html_buf *b, size_t more)
{
	size_t cap;
	char *s;

	if (b->oom)
		return -1;
	if (b->cap - b->len > more)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap - b->len <= more) {
		if (cap > SIZE_MAX / 2) {
			b->oom = 1;
			return -1;
		}
		cap *= 2;
	}
	s = realloc(b->s, cap);
	if (s == NULL) {
		b->oom = 1;
		return -1;
	}
	b->s = s;
	b->cap = cap;
	return 0;
}

void html_buf_add(struct html_buf *b, const char *s, size_t n)
{
	if (n == 0 || html_buf_reserve(b, n) != 0)
		return;
	memcpy(b->s + b->len, s, n);
	b->len += n;
}

void html_buf_addc(struct html_buf *b, char c)
{
	html_buf_add(b, &c, 1);
}

void html_buf_fill(struct html_buf *b, char c, size_t n)
{
	if (n == 0 || html_buf_reserve(b, n) != 0)
		return;
	memset(b->s + b->len, c, n);
	b->len += n;
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if there is none (RFC 3629: no
 * overlong forms, surrogates or code points past U+10FFFF). NUL counts as invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len, i;
	uint32_t cp;

	if (c >= 0x01 && c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return len;
}

/* Appends s[0..n) to b with NUL dropped and each invalid byte replaced by U+FFFD. */
void html_buf_add_utf8(struct html_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;

	while (i < n) {
		size_t k = utf8_seq(p + i, n - i);

		if (k > 0) {
			i += k;
			run += k;
			continue;
		}
		html_buf_add(b, s + i - run, run);
		run = 0;
		if (p[i] != 0)
			html_buf_add(b, utf8_replacement, 3);
		i++;
	}
	html_buf_add(b, s + i - run, run);
}

/* 1 when s[0..n) is valid UTF-8 without NUL. */
int html_buf_utf8_clean(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t k;

		if (p[i] >= 0x01 && p[i] < 0x80) {
			i++;
			continue;
		}
		k = utf8_seq(p + i, n - i);
		if (k == 0)
			return 0;
		i += k;
	}
	return 1;
}

/* Converts s[0..n) from charset to UTF-8 with iconv; returns -1 when iconv does not know the
 * charset (the caller then reads the input as UTF-8). Undecodable bytes become U+FFFD. */
int html_buf_from_charset(const char *charset, const char *s, size_t n, struct html_buf *out)
{
	iconv_t cd = iconv_open("UTF-8", charset);
	char *in = (char *)s;
	size_t inleft = n;

	if (cd == (iconv_t)-1)
		return -1;
	while (inleft > 0 && !out->oom) {
		char *o;
		size_t oleft, before = inleft, written = out->len, rc;
		int err;

		if (html_buf_reserve(out, 4096) != 0)
			break;
		o = out->s + out->len;
		oleft = out->cap - out->len - 1;
		rc = iconv(cd, &in, &inleft, &o, &oleft);
		err = errno;
		out->len = (size_t)(o - out->s);
		if (rc != (size_t)-1)
			continue;
		if (err == E2BIG && (inleft < before || out->len > written))
			continue;
		html_buf_add(out, utf8_replacement, 3);
		if (err != EILSEQ)
			break; /* EINVAL: the input ends inside a character */
		in++;
		inleft--;
	}
	iconv_close(cd);
	return 0;
}

int html_buf_is_utf8_name(const char *cs)
{
	return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
	       strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}
