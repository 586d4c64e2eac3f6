/* Owns the cleaner's UTF-8 pass: invalid bytes read as Latin-1/Windows-1252, NULs dropped,
 * invisible characters removed. Not line handling (clean.c). Called by clean.c and the
 * phrase matcher (clean_words.c, for code points). */
#include "clean_internal.h"

#include <stdint.h>
#include <string.h>

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (1-4) with its code point, or 0 if invalid. */
size_t clean_utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		if (n < 2 || (s[1] & 0xC0) != 0x80)
			return 0;
		*cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
		return 2;
	}
	if (c >= 0xE0 && c <= 0xEF) {
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
		if (n < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80)
			return 0;
		*cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
		if (n < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
			return 0;
		*cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
		      ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
		return 4;
	}
	return 0;
}

static int cp_invisible(uint32_t cp)
{
	if (cp < 0x20)
		return cp != '\t' && cp != '\n' && cp != '\r';
	if (cp < 0x7F)
		return 0;
	if (cp <= 0x9F)
		return 1; /* DEL and the C1 controls */
	return cp == 0xAD || cp == 0x34F || cp == 0x180E || (cp >= 0x200B && cp <= 0x200F) ||
	       (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2064) ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB);
}

static int cp_nbsp(uint32_t cp)
{
	return cp == 0xA0 || cp == 0x2007 || cp == 0x202F;
}

static int cp_emoji(uint32_t cp)
{
	return (cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0x2600 && cp <= 0x27BF) ||
	       (cp >= 0x2B00 && cp <= 0x2BFF) || cp == 0xFE0F;
}

/* A byte that is not valid UTF-8 is most often Latin-1 or Windows-1252 mislabelled as UTF-8:
 * read it so, but in at most two bytes so that the output stays within 2 * len. */
static size_t invalid_byte(unsigned char b, int strip, char *d)
{
	if (b >= 0xA0) {
		if (strip && b == 0xA0) {
			d[0] = ' ';
			return 1;
		}
		if (strip && b == 0xAD)
			return 0;
		d[0] = (char)(0xC0 | (b >> 6));
		d[1] = (char)(0x80 | (b & 0x3F));
		return 2;
	}
	switch (b) {
	case 0x91:
	case 0x92:
		d[0] = '\'';
		break;
	case 0x93:
	case 0x94:
		d[0] = '"';
		break;
	case 0x96:
	case 0x97:
		d[0] = '-';
		break;
	default:
		d[0] = '?';
	}
	return 1;
}

/* Whether the 8 bytes at s are all printable ASCII (0x20-0x7E): bytes below 0x20 borrow
 * in the first test, bytes above 0x7E carry into their top bit in the second. */
static int printable8(const unsigned char *s)
{
	const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
	uint64_t x;

	memcpy(&x, s, 8);
	return (((x - 0x20 * ones) & ~x) | (x + ones) | x) & high ? 0 : 1;
}

/* Writes the valid UTF-8 form of s[0..n) to d (room for 2 * n bytes), without NULs, and with
 * strip also without invisible characters and with no-break spaces as spaces. A zero-width
 * joiner between two emoji stays: it is what makes them one picture. */
size_t clean_utf8_clean(const unsigned char *s, size_t n, int strip, char *d)
{
	size_t i = 0, o = 0, k, k2;
	uint32_t cp, next, prev = 0;

	while (i < n) {
		/* Most text is printable ASCII, copied as it is eight bytes at a time. */
		if (i + 8 <= n && printable8(s + i)) {
			memcpy(d + o, s + i, 8);
			prev = s[i + 7];
			i += 8;
			o += 8;
			continue;
		}
		if (s[i] >= 0x20 && s[i] < 0x7F) {
			prev = s[i];
			d[o++] = (char)s[i++];
			continue;
		}
		k = clean_utf8_seq(s + i, n - i, &cp);
		if (k == 0) {
			o += invalid_byte(s[i], strip, d + o);
			prev = '?';
			i++;
			continue;
		}
		if (cp == 0) {
			i += k;
			continue;
		}
		if (strip && cp_nbsp(cp)) {
			d[o++] = ' ';
			prev = ' ';
			i += k;
			continue;
		}
		if (strip && cp_invisible(cp)) {
			k2 = i + k < n ? clean_utf8_seq(s + i + k, n - i - k, &next) : 0;
			if (!(cp == 0x200D && cp_emoji(prev) && k2 && cp_emoji(next))) {
				i += k;
				continue;
			}
		}
		/* one to four bytes: no call to memcpy for each */
		d[o] = (char)s[i];
		if (k > 1) {
			d[o + 1] = (char)s[i + 1];
			if (k > 2) {
				d[o + 2] = (char)s[i + 2];
				if (k > 3)
					d[o + 3] = (char)s[i + 3];
			}
		}
		o += k;
		i += k;
		prev = cp;
	}
	return o;
}
