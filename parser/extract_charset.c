/* Owns extraction's charsets: the cached iconv descriptors (opened by extract_global_init), which
 * label means what, and bytes in any charset appended to UTF-8 output. Not MIME structure.
 * Called by extract_part.c (part text), extract.c and extract_walk.c (UTF-8 output). */
#include "extract_internal.h"
#include "html.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <string.h>

#include <gmime/gmime.h>

#define EXTRACT_CHARSET_MAX 64     /* longer charset names are garbage, never looked up */
#define EXTRACT_ICONV_SLOTS 64

static const char utf8_replacement[] = "\xEF\xBF\xBD";

/* The module's one mutable global: iconv descriptors to UTF-8, keyed by GMime's iconv name of
 * the charset, opened once and never closed. glibc loads and unloads a gconv module on every
 * iconv_open/iconv_close pair, and GMime itself opens one per encoded word; keeping a descriptor
 * per charset open keeps its module loaded, which LIBRARY-NOTES measured as 3x faster
 * extraction. Single-threaded use only, like the rest of the parser process. */
static struct {
	gboolean ready;
	unsigned n;
	struct {
		char name[EXTRACT_CHARSET_MAX + 1];
		iconv_t cd;
	} slot[EXTRACT_ICONV_SLOTS];
} iconv_cache;

/* Opened by extract_global_init: the charsets most mail uses. iso-8859-1 and windows-1252 are
 * decoded without iconv here, but GMime converts headers through them (see fallback_charsets,
 * extract.c). */
static const char *const preload_charsets[] = {
	"iso-8859-1", "windows-1252", "iso-8859-2", "iso-8859-3", "iso-8859-4", "iso-8859-5",
	"iso-8859-6", "iso-8859-7", "iso-8859-8", "iso-8859-9", "iso-8859-10", "iso-8859-13",
	"iso-8859-14", "iso-8859-15", "iso-8859-16", "windows-1250", "windows-1251",
	"windows-1253", "windows-1254", "windows-1255", "windows-1256", "windows-1257",
	"windows-1258", "koi8-r", "koi8-u", "gb2312", "gb18030", "big5", "shift_jis", "euc-jp",
	"iso-2022-jp", "euc-kr", "utf-16", "utf-7",
};
/* windows-1252 bytes 0x80..0x9f; the five undefined ones map to the C1 controls (WHATWG). */
static const guint16 cp1252_high[32] = {
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
	0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

enum extract_charset_kind {
	CHARSET_GUESS,  /* none, unknown or mislabelled as ascii: UTF-8 where valid, else cp1252 */
	CHARSET_UTF8,
	CHARSET_CP1252, /* latin-1 labels too: mail so labelled is full of cp1252 quotes */
	CHARSET_ICONV,
};

static const char *const guess_labels[] = {
	"us-ascii", "ascii", "ansi_x3.4-1968", "us", "iso646-us", "646", "x-unknown", "unknown",
	"unknown-8bit", "x-user-defined", "default", "8bit",
};
static const char *const cp1252_labels[] = {
	"iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "cp1252",
	"windows-1252", "x-cp1252", "cp819", "ibm819", "iso-ir-100", "csisolatin1",
};

static iconv_t extract_iconv_get(const char *name, gboolean *transient)
{
	iconv_t cd;
	unsigned i;

	*transient = FALSE;
	for (i = 0; i < iconv_cache.n; i++) {
		if (g_ascii_strcasecmp(iconv_cache.slot[i].name, name) == 0)
			return iconv_cache.slot[i].cd;
	}
	/* Failures are not cached: a hostile message could fill the cache with junk names. */
	cd = iconv_open("UTF-8", name);
	if (cd == (iconv_t)-1)
		return cd;
	if (iconv_cache.n == EXTRACT_ICONV_SLOTS || strlen(name) > EXTRACT_CHARSET_MAX) {
		*transient = TRUE;
		return cd;
	}
	g_strlcpy(iconv_cache.slot[iconv_cache.n].name, name, sizeof iconv_cache.slot[0].name);
	iconv_cache.slot[iconv_cache.n].cd = cd;
	iconv_cache.n++;
	return cd;
}

void extract_global_init(void)
{
	gboolean transient;
	size_t i;

	if (iconv_cache.ready)
		return;
	iconv_cache.ready = TRUE;
	g_mime_init();
	html_global_init();
	for (i = 0; i < G_N_ELEMENTS(preload_charsets); i++) {
		iconv_t cd = extract_iconv_get(g_mime_charset_iconv_name(preload_charsets[i]),
					       &transient);
		if (cd != (iconv_t)-1 && transient)
			iconv_close(cd);
	}
}

/* ---- UTF-8 output ---- */

static void extract_append_unichar(GString *out, gunichar ch)
{
	char buf[6];

	g_string_append_len(out, buf, g_unichar_to_utf8(ch, buf));
}

/* Length of the run of ASCII without NUL that s[0..len) starts with, eight bytes at a time:
 * most bodies are mostly that, and GLib's validator takes them a byte at a time. */
static size_t extract_ascii_run(const char *s, size_t len)
{
	const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
	size_t i = 0;
	uint64_t x;

	for (; i + 8 <= len; i += 8) {
		memcpy(&x, s + i, 8);
		if ((x & high) || ((x - ones) & high))
			break;
	}
	while (i < len && (unsigned char)s[i] - 1u < 0x7f)
		i++;
	return i;
}

/* Appends bytes that should be UTF-8: NUL dropped, each invalid byte replaced by U+FFFD, or,
 * with guess set, read as windows-1252 (mail mixes a latin-1 footer into UTF-8 text often
 * enough that losing those characters to U+FFFD would be the worse choice). */
void extract_charset_append_utf8(GString *out, const char *s, size_t len, gboolean guess)
{
	while (len > 0) {
		const gchar *bad;
		size_t ok, ascii = extract_ascii_run(s, len);
		unsigned char ch;

		if (ascii == len || g_utf8_validate_len(s + ascii, len - ascii, &bad)) {
			g_string_append_len(out, s, len);
			return;
		}
		ok = (size_t)(bad - s);
		g_string_append_len(out, s, ok);
		ch = (unsigned char)*bad;
		if (ch == 0)
			; /* Postgres text cannot hold NUL */
		else if (!guess)
			g_string_append(out, utf8_replacement);
		else if (ch >= 0x80 && ch < 0xa0)
			extract_append_unichar(out, cp1252_high[ch - 0x80]);
		else
			extract_append_unichar(out, ch);
		s = bad + 1;
		len -= ok + 1;
	}
}

static void extract_append_cp1252(GString *out, const char *s, size_t len)
{
	size_t base = out->len, n = 0, i;
	char *dst;

	g_string_set_size(out, base + len * 3);
	dst = out->str + base;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x80) {
			if (ch != 0)
				dst[n++] = (char)ch;
		} else if (ch < 0xa0) {
			n += (size_t)g_unichar_to_utf8(cp1252_high[ch - 0x80], dst + n);
		} else {
			dst[n++] = (char)(0xc0 | (ch >> 6));
			dst[n++] = (char)(0x80 | (ch & 0x3f));
		}
	}
	g_string_truncate(out, base + n);
}

/* Converts with a descriptor whose output is UTF-8; undecodable input becomes U+FFFD. */
static void extract_append_iconv(GString *out, iconv_t cd, const char *s, size_t len)
{
	char buf[8192];
	char *in = (char *)s, *o;
	size_t inleft = len, oleft, rc;

	iconv(cd, NULL, NULL, NULL, NULL);
	while (inleft > 0) {
		size_t before = inleft;
		int err;

		o = buf;
		oleft = sizeof buf;
		rc = iconv(cd, &in, &inleft, &o, &oleft);
		err = errno;
		extract_charset_append_utf8(out, buf, (size_t)(o - buf), FALSE);
		if (rc != (size_t)-1)
			continue;
		if (err == E2BIG && (inleft < before || o > buf))
			continue;
		g_string_append(out, utf8_replacement);
		if (err != EILSEQ)
			break; /* EINVAL: the input ends inside a character */
		in++;
		inleft--;
	}
	o = buf;
	oleft = sizeof buf;
	iconv(cd, NULL, NULL, &o, &oleft);
	extract_charset_append_utf8(out, buf, (size_t)(o - buf), FALSE);
}

static gboolean extract_label_in(const char *name, const char *const *labels, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (g_ascii_strcasecmp(name, labels[i]) == 0)
			return TRUE;
	}
	return FALSE;
}

/* RFC 2978 mime-charset characters, plus '.' and ':' seen in real names like ISO_8859-1:1987. */
static gboolean extract_charset_plausible(const char *cs)
{
	size_t i;

	for (i = 0; cs[i] != '\0'; i++) {
		if (i == EXTRACT_CHARSET_MAX ||
		    !(g_ascii_isalnum(cs[i]) || strchr("!#$%&+-^_`{}~.:()", cs[i])))
			return FALSE;
	}
	return i > 0;
}

/* Appends in[0..len), declared to be in charset (NULL if undeclared), to out as UTF-8. */
void extract_charset_convert(struct extract_ctx *c, GString *out, const char *in, size_t len,
			     const char *charset, size_t partno)
{
	enum extract_charset_kind kind = CHARSET_GUESS;
	const char *name = NULL;
	iconv_t cd = (iconv_t)-1;
	gboolean transient = FALSE;

	if (charset != NULL && charset[0] != '\0') {
		if (extract_charset_plausible(charset))
			name = g_mime_charset_iconv_name(charset);
		if (name == NULL)
			kind = CHARSET_GUESS;
		else if (g_ascii_strcasecmp(name, "utf-8") == 0 || g_ascii_strcasecmp(name, "utf8") == 0)
			kind = CHARSET_UTF8;
		else if (extract_label_in(name, cp1252_labels, G_N_ELEMENTS(cp1252_labels)))
			kind = CHARSET_CP1252;
		else if (extract_label_in(name, guess_labels, G_N_ELEMENTS(guess_labels)))
			kind = CHARSET_GUESS;
		else if ((cd = extract_iconv_get(name, &transient)) != (iconv_t)-1)
			kind = CHARSET_ICONV;
		else
			name = NULL;
		if (name == NULL) {
			char shown[40];

			extract_printable(shown, sizeof shown, charset);
			extract_note(c, "invalid charset '%s' in part %zu", shown, partno);
		}
	}
	switch (kind) {
	case CHARSET_UTF8:
		extract_charset_append_utf8(out, in, len, FALSE);
		break;
	case CHARSET_CP1252:
		extract_append_cp1252(out, in, len);
		break;
	case CHARSET_ICONV:
		extract_append_iconv(out, cd, in, len);
		if (transient)
			iconv_close(cd);
		break;
	case CHARSET_GUESS:
		extract_charset_append_utf8(out, in, len, TRUE);
		break;
	}
}

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
void extract_charset_truncate_utf8(GString *s, size_t max)
{
	size_t n = max;

	if (s->len <= max)
		return;
	while (n > 0 && ((unsigned char)s->str[n] & 0xc0) == 0x80)
		n--;
	g_string_truncate(s, n);
}
