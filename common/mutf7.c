/* Modified UTF-7 codec for mailbox names: printable ASCII stands for itself, "&-" for "&",
 * everything else is UTF-16BE in base64 (with "," for "/") between "&" and "-".
 * Strict on decode so that a name which does not round-trip is kept raw by the caller. */
#include "mutf7.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static size_t utf8_put(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decodes one base64 run starting after "&"; *pin ends after its "-". Returns bytes written
 * to out, or -1 if the run is invalid. A UTF-16 unit takes 16/6 input chars and becomes at
 * most 3 UTF-8 bytes (a surrogate pair, 4 for two units), so a run never writes more than
 * 1.125 bytes per input char: the caller's n * 3/2 buffer is enough. */
static long decode_run(const unsigned char **pin, char *out)
{
	const unsigned char *s = *pin;
	uint32_t bits = 0, high = 0;
	int nbits = 0;
	long o = 0;

	for (; *s != '-'; s++) {
		int v = b64val(*s);

		if (v < 0)
			return -1;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t u = (bits >> nbits) & 0xffff;

		bits &= (1u << nbits) - 1;
		if (high) {
			if (u < 0xdc00 || u > 0xdfff)
				return -1;
			o += (long)utf8_put(out + o,
					    0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00));
			high = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			high = u;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return -1;
		} else if (u >= 0x20 && u <= 0x7e) {
			/* Printable ASCII must stand for itself; a name that hides it is not ours
			 * to normalise. */
			return -1;
		} else if (u == 0) {
			return -1;
		} else {
			o += (long)utf8_put(out + o, u);
		}
	}
	/* Leftover bits are padding: fewer than 6 and all zero, or the run was not minimal. */
	if (high || nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0 || s == *pin)
		return -1;
	*pin = s + 1;
	return o;
}

char *mutf7_decode(const char *in)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t n = strlen(in);
	char *buf = malloc(n + n / 2 + 1), *res = NULL;
	size_t o = 0;

	if (!buf)
		return NULL;
	while (*s) {
		if (*s < 0x20 || *s > 0x7e)
			goto out;
		if (*s != '&') {
			buf[o++] = (char)*s++;
			continue;
		}
		s++;
		if (*s == '-') {
			buf[o++] = '&';
			s++;
			continue;
		}
		long k = decode_run(&s, buf + o);

		if (k < 0)
			goto out;
		o += (size_t)k;
	}
	buf[o] = '\0';
	res = buf;
	buf = NULL;
out:
	free(buf);
	return res;
}

/* Reads one UTF-8 sequence; returns its length, or 0 if it is invalid. */
static size_t utf8_get(const unsigned char *s, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		n = 2, c &= 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3, c &= 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4, c &= 0x07, min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

char *mutf7_encode(const char *utf8)
{
	const unsigned char *s = (const unsigned char *)utf8;
	size_t n = strlen(utf8);
	/* Worst case per input byte: "&" becomes 2; a control byte alone in its run becomes
	 * "&" + 3 chars + "-" = 5, but runs are separated by at least one printable byte, so two
	 * bytes cost at most 6; multi-byte UTF-8 costs less. 3n plus the terminator is enough. */
	char *buf = malloc(3 * n + 6), *res = NULL;
	size_t o = 0;

	if (!buf)
		return NULL;
	while (*s) {
		uint32_t cp;

		if (*s >= 0x20 && *s <= 0x7e) {
			buf[o++] = (char)*s;
			if (*s++ == '&')
				buf[o++] = '-';
			continue;
		}
		uint32_t bits = 0;
		int nbits = 0;

		buf[o++] = '&';
		while (*s && (*s < 0x20 || *s > 0x7e)) {
			size_t k = utf8_get(s, &cp);
			uint32_t units[2];
			int nu = 1;

			if (k == 0)
				goto out;
			s += k;
			if (cp >= 0x10000) {
				units[0] = 0xd800 + ((cp - 0x10000) >> 10);
				units[1] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
				nu = 2;
			} else {
				units[0] = cp;
			}
			for (int u = 0; u < nu; u++) {
				bits = (bits << 16) | units[u];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					buf[o++] = b64chars[(bits >> nbits) & 0x3f];
				}
				bits &= (1u << nbits) - 1;
			}
		}
		if (nbits)
			buf[o++] = b64chars[(bits << (6 - nbits)) & 0x3f];
		buf[o++] = '-';
	}
	buf[o] = '\0';
	res = buf;
	buf = NULL;
out:
	free(buf);
	return res;
}
