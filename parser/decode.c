/* Content-transfer decoding with GMime's semantics, faster on the long runs mail is made of:
 * step functions that keep GMime's GMimeEncoding state and give g_mime_encoding_step()'s output
 * byte for byte, and the decoded size of a whole part counted without decoding it. extract_part.c
 * uses them; tests/unit/test_decode.c checks them against GMime's own decoder. */
#include "decode.h"

#include <string.h>

/* Base64 digit values; XX for the bytes GMime's decoder skips, EQ for '=', which ends the
 * data. */
#define XX 0xFF
#define EQ 0xFE
static const unsigned char base64_rank[256] = {
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, 62, XX, XX, XX, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, XX, XX, XX, EQ, XX, XX,
	XX, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, XX, XX, XX, XX, XX,
	XX, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
};
#undef XX
#undef EQ

static unsigned hex_value(unsigned char ch)
{
	return ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
}

/* g_mime_encoding_step() for quoted-printable, with the same state in st and the same output,
 * but copying the text between escapes with memcpy: GMime's decoder looks at every byte
 * through a switch, which made decoding bodies 4% of parse time. */
size_t decode_qp_step(GMimeEncoding *st, const char *in, size_t len, char *out)
{
	const char *p = in, *end = in + len, *eq;
	unsigned char ch, save = (unsigned char)st->save;
	char *o = out;
	int state = st->state;
	size_t run;

	while (p < end) {
		if (state == 0) {
			if (*p != '=') {
				eq = memchr(p, '=', (size_t)(end - p));
				run = (size_t)((eq ? eq : end) - p);
				memcpy(o, p, run);
				o += run;
				p += run;
				if (eq == NULL)
					break;
			}
			/* "=XX" whole in this step, as in runs of encoded UTF-8 */
			if (end - p >= 3 && g_ascii_isxdigit(p[1]) && g_ascii_isxdigit(p[2])) {
				*o++ = (char)(hex_value((unsigned char)p[1]) << 4 |
					      hex_value((unsigned char)p[2]));
				p += 3;
				continue;
			}
			p++;
			state = 1;
			continue;
		}
		ch = (unsigned char)*p++;
		if (state == 1) {
			/* "=\n" is a soft line break */
			if (ch != '\n') {
				save = ch;
				state = 2;
			} else {
				state = 0;
			}
			continue;
		}
		if (g_ascii_isxdigit(ch) && g_ascii_isxdigit(save)) {
			*o++ = (char)(hex_value(save) << 4 | hex_value(ch));
		} else if (!(ch == '\n' && save == '\r')) {
			*o++ = '=';
			*o++ = (char)save;
			*o++ = (char)ch;
		}
		state = 0;
	}
	st->state = state;
	st->save = save;
	return (size_t)(o - out);
}

/* g_mime_encoding_step() for base64, with the same state and output, decoding whole quartets
 * at a time where it can. */
size_t decode_base64_step(GMimeEncoding *st, const char *in, size_t len, char *out)
{
	const unsigned char *p = (const unsigned char *)in, *end = p + len;
	unsigned char *o = (unsigned char *)out, r;
	guint32 saved = st->save, v;
	int n = st->state;

	if (n == -1)
		return 0; /* past the '=' that ended the data */
	while (p < end) {
		while (n == 0 && end - p >= 4 &&
		       (base64_rank[p[0]] | base64_rank[p[1]] | base64_rank[p[2]] |
			base64_rank[p[3]]) < 64) {
			v = (guint32)base64_rank[p[0]] << 18 | (guint32)base64_rank[p[1]] << 12 |
			    (guint32)base64_rank[p[2]] << 6 | base64_rank[p[3]];
			o[0] = (unsigned char)(v >> 16);
			o[1] = (unsigned char)(v >> 8);
			o[2] = (unsigned char)v;
			o += 3;
			p += 4;
		}
		if (p == end)
			break;
		r = base64_rank[*p++];
		if (r == 0xFF)
			continue;
		saved = saved << 6 | (r == 0xFE ? 0 : r);
		n++;
		if (r == 0xFE) {
			/* two or three digits before '=' still make one or two bytes */
			if (n > 2) {
				if (n < 4)
					saved <<= 6;
				*o++ = (unsigned char)(saved >> 16);
				if (n == 4)
					*o++ = (unsigned char)(saved >> 8);
			}
			n = -1;
			break;
		}
		if (n == 4) {
			o[0] = (unsigned char)(saved >> 16);
			o[1] = (unsigned char)(saved >> 8);
			o[2] = (unsigned char)saved;
			o += 3;
			saved = 0;
			n = 0;
		}
	}
	st->save = saved;
	st->state = n;
	return (size_t)(o - (unsigned char *)out);
}

/* What GMime's base64 decoder would produce from in[0..len), counted without decoding it:
 * every 4 alphabet characters give 3 bytes, and the first '=' ends the data, after 2 or 3
 * characters of a quartet giving 1 or 2 more bytes. */
size_t decode_base64_size(const char *in, size_t len)
{
	const unsigned char *p = (const unsigned char *)in;
	const char *eq = memchr(in, '=', len);
	size_t end = eq ? (size_t)(eq - in) : len, skipped = 0, chars, i, k;

	/* Blocks of 64 bytes are classified by arithmetic that compilers turn into vector code
	 * (this is most of the bytes of mail); the rest through the table, where XX >> 7 is 1 and
	 * a digit's rank 0 (there is no EQ before end). */
	for (i = 0; i + 64 <= end; i += 64) {
		unsigned bad = 0;

		for (k = 0; k < 64; k++) {
			unsigned char ch = p[i + k];

			bad += !((unsigned char)((ch | 0x20) - 'a') < 26 ||
				 (unsigned char)(ch - '0') < 10 || ch == '+' || ch == '/');
		}
		skipped += bad;
	}
	for (; i < end; i++)
		skipped += base64_rank[p[i]] >> 7;
	chars = end - skipped;
	if (eq == NULL || chars % 4 < 2)
		return chars / 4 * 3;
	return chars / 4 * 3 + chars % 4 - 1;
}

/* The same for GMime's quoted-printable decoder: "=XX" gives one byte, "=\n" and "=\r\n" none,
 * any other '=' and the two bytes after it are kept as they are, and a '=' in the last two
 * bytes is dropped with what follows it. */
size_t decode_qp_size(const char *in, size_t len)
{
	const char *p = in, *end = in + len, *eq;
	size_t n = len;

	while ((eq = memchr(p, '=', (size_t)(end - p))) != NULL) {
		if (end - eq < 3) {
			n -= (size_t)(end - eq);
			break;
		}
		if (eq[1] == '\n') {
			n -= 2;
			p = eq + 2;
			continue;
		}
		if (g_ascii_isxdigit(eq[1]) && g_ascii_isxdigit(eq[2]))
			n -= 2;
		else if (eq[1] == '\r' && eq[2] == '\n')
			n -= 3;
		p = eq + 3;
	}
	return n;
}

