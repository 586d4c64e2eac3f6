/* Owns the base subject (RFC 5256 section 2.1) and whether a subject marks a reply/forward.
 * Does not decode encoded words or compare subjects; pure string work, no state.
 * Called through subject.h by the writer's subject grouping and by the unit tests. */
#include "subject.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Reply and forward words, lowercase (see subject_fold), in the languages whose clients put
 * them in front of a subject: English, German (AW, WG), Nordic (SV, VS, VB), French (TR),
 * Dutch (Antw, Doorst), Italian (R, Rif), Polish (Odp), Turkish (Ynt), Portuguese (RES, ENC),
 * Spanish (RV), Greek, Russian, Chinese and Japanese. */
static const char *const subject_words[] = {
	"re", "fwd", "fw", "aw", "wg", "sv", "vs", "vb", "tr", "antw", "doorst", "rif", "r",
	"odp", "ynt", "res", "enc", "rv",
	"\xCE\xB1\xCF\x80",                  /* απ */
	"\xCF\x83\xCF\x87\xCE\xB5\xCF\x84",  /* σχετ */
	"\xD0\xBE\xD1\x82\xD0\xB2",          /* отв */
	"\xE5\x9B\x9E\xE5\xA4\x8D",          /* 回复 */
	"\xE5\x9B\x9E\xE8\xA6\x86",          /* 回覆 */
	"\xE7\xAD\x94\xE5\xA4\x8D",          /* 答复 */
	"\xE8\xBD\xAC\xE5\x8F\x91",          /* 转发 */
	"\xE8\xBD\x89\xE5\xAF\x84",          /* 轉寄 */
	"\xE8\xBF\x94\xE4\xBF\xA1",          /* 返信 */
	"\xE8\xBB\xA2\xE9\x80\x81",          /* 転送 */
};

static const char fullwidth_colon[] = "\xEF\xBC\x9A"; /* U+FF1A, as CJK clients write it */

/* Decodes one UTF-8 code point at s (before end) into *cp; returns its length, or 0 when the
 * bytes are not UTF-8. */
static size_t subject_decode(const unsigned char *s, const unsigned char *end, uint32_t *cp)
{
	size_t len, i;

	if (s >= end)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		len = 2, *cp = s[0] & 0x1F;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		len = 3, *cp = s[0] & 0x0F;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		len = 4, *cp = s[0] & 0x07;
	else
		return 0;
	if ((size_t)(end - s) < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (s[i] & 0x3F);
	}
	return len;
}

/* Lowercase for the scripts of subject_words: ASCII, Greek and Cyrillic capitals. */
static uint32_t subject_fold(uint32_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 0x20;
	if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2)
		return c + 0x20;
	if (c == 0x3C2)
		return 0x3C3; /* final sigma */
	if (c >= 0x410 && c <= 0x42F)
		return c + 0x20;
	if (c >= 0x400 && c <= 0x40F)
		return c + 0x50;
	return c;
}

/* Length of the whitespace character at s: ASCII blanks, U+00A0 and the ideographic space
 * U+3000 that CJK clients put after a full-width colon. */
static size_t subject_space(const unsigned char *s, const unsigned char *end)
{
	if (s >= end)
		return 0;
	if (s[0] == ' ' || s[0] == '\t' || s[0] == '\r' || s[0] == '\n' || s[0] == '\v' ||
	    s[0] == '\f')
		return 1;
	if (end - s >= 2 && s[0] == 0xC2 && s[1] == 0xA0)
		return 2;
	if (end - s >= 3 && s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80)
		return 3;
	return 0;
}

/* The subject with every whitespace run made one space, trimmed. Caller frees. */
static char *subject_collapse(const char *subject)
{
	const unsigned char *s = (const unsigned char *)subject, *end = s + strlen(subject);
	char *out = malloc((size_t)(end - s) + 1);
	size_t n = 0;
	int space = 0;

	if (out == NULL)
		return NULL;
	while (s < end) {
		size_t k = subject_space(s, end);

		if (k > 0) {
			space = 1;
			s += k;
			continue;
		}
		if (space && n > 0)
			out[n++] = ' ';
		space = 0;
		out[n++] = (char)*s++;
	}
	out[n] = '\0';
	return out;
}

/* s[i..end) starts with word (lowercase UTF-8), any case: returns the index after it or 0. */
static size_t subject_word_at(const char *s, size_t i, size_t end, const char *word)
{
	const unsigned char *p = (const unsigned char *)s + i, *e = (const unsigned char *)s + end;
	const unsigned char *w = (const unsigned char *)word, *we = w + strlen(word);

	while (w < we) {
		uint32_t a, b;
		size_t ka = subject_decode(p, e, &a), kb = subject_decode(w, we, &b);

		if (ka == 0 || kb == 0 || subject_fold(a) != b)
			return 0;
		p += ka;
		w += kb;
	}
	return (size_t)(p - (const unsigned char *)s);
}

static size_t subject_skip_spaces(const char *s, size_t i, size_t end)
{
	while (i < end && s[i] == ' ')
		i++;
	return i;
}

/* RFC 5256 subj-blob: "[" *BLOBCHAR "]" *WSP, BLOBCHAR being anything but brackets. Returns
 * the index after it, or 0. */
static size_t subject_blob_at(const char *s, size_t i, size_t end)
{
	size_t j;

	if (i >= end || s[i] != '[')
		return 0;
	for (j = i + 1; j < end && s[j] != ']'; j++) {
		if (s[j] == '[')
			return 0;
	}
	if (j >= end)
		return 0;
	return subject_skip_spaces(s, j + 1, end);
}

/* subj-refwd, widened: a word of subject_words, spaces, an optional counter ("[2]" as in the
 * RFC, or "(2)"), spaces, and ':' or a full-width colon. Returns the index after it, or 0. */
static size_t subject_refwd_at(const char *s, size_t i, size_t end)
{
	size_t w;

	for (w = 0; w < sizeof subject_words / sizeof subject_words[0]; w++) {
		size_t j = subject_word_at(s, i, end, subject_words[w]), k;

		if (j == 0)
			continue;
		j = subject_skip_spaces(s, j, end);
		if ((k = subject_blob_at(s, j, end)) != 0) {
			j = k;
		} else if (j < end && s[j] == '(') {
			for (k = j + 1; k < end && s[k] >= '0' && s[k] <= '9'; k++)
				;
			if (k > j + 1 && k < end && s[k] == ')')
				j = subject_skip_spaces(s, k + 1, end);
		}
		if (j < end && s[j] == ':')
			return j + 1;
		if (end - j >= 3 && memcmp(s + j, fullwidth_colon, 3) == 0)
			return j + 3;
	}
	return 0;
}

static int subject_ends_with_ci(const char *s, size_t start, size_t end, const char *tail)
{
	size_t n = strlen(tail), i;

	if (end - start < n)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[end - n + i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 0x20);
		if (c != tail[i])
			return 0;
	}
	return 1;
}

/* The algorithm of RFC 5256 2.1 steps 2-6 on the collapsed subject s: sets [*start, *end)
 * to the base subject and *reply when a reply/forward marker went. */
static void subject_strip(const char *s, size_t *start, size_t *end, int *reply)
{
	size_t i = 0, e = strlen(s);

	*reply = 0;
	for (;;) {
		int changed;

		/* (2) subj-trailer: "(fwd)" and whitespace at the end. */
		for (;;) {
			while (e > i && s[e - 1] == ' ')
				e--;
			if (!subject_ends_with_ci(s, i, e, "(fwd)"))
				break;
			e -= 5;
			*reply = 1;
		}
		do {
			changed = 0;
			/* (3) subj-leader: whitespace, or blobs followed by a reply/forward word. */
			for (;;) {
				size_t j = i, k;

				if (i < e && s[i] == ' ') {
					i++;
					changed = 1;
					continue;
				}
				while ((k = subject_blob_at(s, j, e)) != 0)
					j = k;
				if ((k = subject_refwd_at(s, j, e)) == 0)
					break;
				i = k;
				*reply = 1;
				changed = 1;
			}
			/* (4) a blob in front of something. */
			{
				size_t k = subject_blob_at(s, i, e);

				if (k != 0 && k < e) {
					i = k;
					changed = 1;
				}
			}
		} while (changed);
		/* (6) "[fwd: ...]" around the rest: unwrap and start again. */
		if (e - i >= 6 && subject_ends_with_ci(s, i, i + 5, "[fwd:") && s[e - 1] == ']') {
			i += 5;
			e -= 1;
			*reply = 1;
			continue;
		}
		break;
	}
	*start = i;
	*end = e;
}

char *subject_base(const char *subject)
{
	char *s, *base;
	size_t start, end;
	int reply;

	if (subject == NULL)
		return NULL;
	s = subject_collapse(subject);
	if (s == NULL)
		return NULL;
	subject_strip(s, &start, &end, &reply);
	base = malloc(end - start + 1);
	if (base != NULL) {
		memcpy(base, s + start, end - start);
		base[end - start] = '\0';
	}
	free(s);
	return base;
}

int subject_is_reply(const char *subject)
{
	size_t start, end;
	int reply;
	char *s;

	if (subject == NULL)
		return 0;
	s = subject_collapse(subject);
	if (s == NULL)
		return -1;
	subject_strip(s, &start, &end, &reply);
	free(s);
	return reply;
}
