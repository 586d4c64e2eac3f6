/* Owns MIME extraction: raw message bytes -> one JSON record, using GMime for the MIME structure,
 * headers and transfer encodings and a cached iconv for charsets. Does not clean, thread or store.
 * Called by the parser stage's handler (and by the unit tests and the fuzz target). */
#include "decode.h"
#include "extract.h"
#include "html.h"

#include <errno.h>
#include <iconv.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gmime/gmime.h>
#include <openssl/evp.h>

#define EXTRACT_DEFAULT_PARTS 1000
#define EXTRACT_DEFAULT_DEPTH 32
#define EXTRACT_DEFAULT_TEXT (4u << 20)
#define EXTRACT_SNIPPET_CHARS 200
#define EXTRACT_CHARSET_MAX 64     /* longer charset names are garbage, never looked up */
#define EXTRACT_ICONV_SLOTS 64
#define EXTRACT_MAX_NOTES 8        /* problems named in parse_error before "..." */
#define EXTRACT_CHUNK 16384        /* bytes decoded per step */
#define EXTRACT_GROUP_DEPTH 4      /* address groups cannot nest in RFC 5322; be safe anyway */
/* GMime builds an object of several hundred bytes per header line, address, parameter and
 * message-id, from as little as two bytes of input each ("a,"): a few MB of headers would cost
 * GBs. Header lines plus ',' ';' '<' in header blocks are counted, and input past this many is
 * not parsed; real mail stays far below (5,000 recipients are 5,000 commas). */
#define EXTRACT_MAX_HEADER_ITEMS 50000
/* GMime copies every charset name it meets onto the stack (g_alloca) before looking it up, so
 * one multi-megabyte "=?charset" or "name*=charset'" crashes the process. Inputs shorter than
 * this cannot hold such a name, and a name this long fits on any thread's stack. */
#define EXTRACT_CHARSET_RUN_MAX (64u << 10)

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
 * decoded without iconv here, but GMime converts headers through them (see fallback_charsets). */
static const char *const preload_charsets[] = {
	"iso-8859-1", "windows-1252", "iso-8859-2", "iso-8859-3", "iso-8859-4", "iso-8859-5",
	"iso-8859-6", "iso-8859-7", "iso-8859-8", "iso-8859-9", "iso-8859-10", "iso-8859-13",
	"iso-8859-14", "iso-8859-15", "iso-8859-16", "windows-1250", "windows-1251",
	"windows-1253", "windows-1254", "windows-1255", "windows-1256", "windows-1257",
	"windows-1258", "koi8-r", "koi8-u", "gb2312", "gb18030", "big5", "shift_jis", "euc-jp",
	"iso-2022-jp", "euc-kr", "utf-16", "utf-7",
};

/* Raw 8-bit header bytes: UTF-8 if they are valid, else the Windows superset of latin-1, else
 * latin-1 itself for the five bytes windows-1252 leaves undefined. */
static const char *fallback_charsets[] = { "utf-8", "windows-1252", "iso-8859-1", NULL };

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

struct extract_ctx {
	const struct extract_limits *lim;
	GMimeParserOptions *options;
	json_t *attachments;  /* borrowed from the result object */
	GString *text;        /* chosen bodies as UTF-8, NULL until found */
	GString *html;
	gboolean text_cut;
	gboolean html_cut;
	size_t parts;         /* parts walked so far */
	gboolean part_limit_hit;
	gboolean depth_limit_hit;
	gboolean input_cut;   /* a guard kept GMime from the rest of the input */
	guint32 warned;       /* GMime warning codes already noted */
	GString *error;       /* our own findings, most important first */
	GString *warnings;    /* GMime's, appended after ours */
	unsigned nerrors;
	gboolean oom;
};

static void extract_note(struct extract_ctx *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void extract_note(struct extract_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->nerrors++ >= EXTRACT_MAX_NOTES) {
		if (c->nerrors == EXTRACT_MAX_NOTES + 1)
			g_string_append(c->error, "; ...");
		return;
	}
	if (c->error->len > 0)
		g_string_append(c->error, "; ");
	va_start(ap, fmt);
	g_string_append_vprintf(c->error, fmt, ap);
	va_end(ap);
}

/* Copies an untrusted name into a short printable-ASCII form fit for parse_error. */
static void extract_printable(char *dst, size_t size, const char *src)
{
	size_t i;

	for (i = 0; src[i] != '\0' && i + 1 < size; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = (ch >= 0x20 && ch < 0x7f && ch != '\'' && ch != '\\') ? (char)ch : '?';
	}
	dst[i] = '\0';
}

void extract_limits_default(struct extract_limits *lim)
{
	lim->max_parts = EXTRACT_DEFAULT_PARTS;
	lim->max_depth = EXTRACT_DEFAULT_DEPTH;
	lim->max_text = EXTRACT_DEFAULT_TEXT;
	lim->always_warn = 0;
}

/* Returns the cached descriptor converting name to UTF-8, opening it on first use; *transient
 * is set when the cache was full and the caller must close it. (iconv_t)-1 if unknown. */
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
static void extract_append_utf8(GString *out, const char *s, size_t len, gboolean guess)
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
		extract_append_utf8(out, buf, (size_t)(o - buf), FALSE);
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
	extract_append_utf8(out, buf, (size_t)(o - buf), FALSE);
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
static void extract_convert(struct extract_ctx *c, GString *out, const char *in, size_t len,
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
		extract_append_utf8(out, in, len, FALSE);
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
		extract_append_utf8(out, in, len, TRUE);
		break;
	}
}

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
static void extract_truncate_utf8(GString *s, size_t max)
{
	size_t n = max;

	if (s->len <= max)
		return;
	while (n > 0 && ((unsigned char)s->str[n] & 0xc0) == 0x80)
		n--;
	g_string_truncate(s, n);
}

/* ---- part content ---- */

struct extract_bytes {
	const char *data;
	size_t len;
	GByteArray *owned; /* NULL when data points into the caller's raw buffer */
};

static void extract_bytes_release(struct extract_bytes *b)
{
	if (b->owned != NULL)
		g_byte_array_free(b->owned, TRUE);
	b->owned = NULL;
}

/* Points at a part's still-encoded content. GMime gives parsed parts a substream of the stream
 * we parse from, a GMimeStreamMem over the caller's buffer, so normally nothing is copied. */
static void extract_stream_bytes(GMimeStream *s, struct extract_bytes *b)
{
	GMimeStream *mem;

	b->data = "";
	b->len = 0;
	b->owned = NULL;
	if (s == NULL)
		return;
	if (GMIME_IS_STREAM_MEM(s)) {
		GByteArray *a = g_mime_stream_mem_get_byte_array((GMimeStreamMem *)s);
		gint64 start, end;

		if (a == NULL)
			return;
		end = s->bound_end < 0 ? (gint64)a->len : MIN(s->bound_end, (gint64)a->len);
		start = CLAMP(s->bound_start, 0, end);
		b->data = (const char *)a->data + start;
		b->len = (size_t)(end - start);
		return;
	}
	/* Any other stream (none that the parser makes today) is read into a buffer of ours. */
	b->owned = g_byte_array_new();
	mem = g_mime_stream_mem_new_with_byte_array(b->owned);
	g_mime_stream_mem_set_owner((GMimeStreamMem *)mem, FALSE);
	g_mime_stream_reset(s);
	g_mime_stream_write_to_stream(s, mem);
	g_object_unref(mem);
	b->data = (const char *)b->owned->data;
	b->len = b->owned->len;
}

/* Undoes the transfer encoding of in[0..len). out NULL only counts. Stops once more than limit
 * bytes came out (setting *more), keeping limit of them. Returns the bytes produced. */
static size_t extract_decode(GMimeContentEncoding enc, const char *in, size_t len,
			     GByteArray *out, size_t limit, gboolean *more)
{
	char scratch[EXTRACT_CHUNK + 8];
	GMimeEncoding st;
	size_t total = 0, off = 0;

	if (enc == GMIME_CONTENT_ENCODING_UUENCODE) {
		/* Data starts after the "begin <mode> <name>" line GMime's decoder does not skip. */
		const char *p = in, *end = in + len;

		while (p < end && strncmp(p, "begin ", MIN((size_t)6, (size_t)(end - p))) != 0) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			p = nl ? nl + 1 : end;
		}
		if (end - p < 6)
			return 0;
		p = memchr(p, '\n', (size_t)(end - p));
		if (p == NULL)
			return 0;
		off = (size_t)(p + 1 - in);
	}
	g_mime_encoding_init_decode(&st, enc);
	while (off < len) {
		size_t n = MIN((size_t)EXTRACT_CHUNK, len - off), m, old = 0;
		char *dst = scratch;

		if (out != NULL) {
			old = out->len;
			g_byte_array_set_size(out, (guint)(old + g_mime_encoding_outlen(&st, n)));
			dst = (char *)out->data + old;
		}
		if (enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE)
			m = decode_qp_step(&st, in + off, n, dst);
		else if (enc == GMIME_CONTENT_ENCODING_BASE64)
			m = decode_base64_step(&st, in + off, n, dst);
		else
			m = g_mime_encoding_step(&st, in + off, n, dst);
		if (out != NULL)
			g_byte_array_set_size(out, (guint)(old + m));
		total += m;
		off += n;
		if (total > limit) {
			*more = TRUE;
			if (out != NULL)
				g_byte_array_set_size(out, (guint)limit);
			return limit;
		}
	}
	return total;
}

static gboolean extract_is_identity(GMimeContentEncoding enc)
{
	return enc != GMIME_CONTENT_ENCODING_BASE64 &&
	       enc != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE &&
	       enc != GMIME_CONTENT_ENCODING_UUENCODE;
}

/* Decoded content of a leaf part, at most limit bytes (*more set if there was more). */
static void extract_part_bytes(GMimePart *part, size_t limit, struct extract_bytes *b,
			       gboolean *more)
{
	GMimeDataWrapper *dw = g_mime_part_get_content(part);
	GMimeContentEncoding enc;
	struct extract_bytes raw;

	b->data = "";
	b->len = 0;
	b->owned = NULL;
	if (dw == NULL)
		return;
	enc = g_mime_data_wrapper_get_encoding(dw);
	extract_stream_bytes(g_mime_data_wrapper_get_stream(dw), &raw);
	if (extract_is_identity(enc)) {
		*b = raw;
		if (b->len > limit) {
			b->len = limit;
			*more = TRUE;
		}
		return;
	}
	b->owned = g_byte_array_sized_new((guint)MIN(raw.len, limit));
	extract_decode(enc, raw.data, raw.len, b->owned, limit, more);
	b->data = (const char *)b->owned->data;
	b->len = b->owned->len;
	extract_bytes_release(&raw);
}

/* A leaf part's decoded size. Attachments are most of the bytes of mail, and only their size
 * is stored: decoding them to measure it was 6% of parse time. */
static size_t extract_part_size(GMimePart *part)
{
	GMimeDataWrapper *dw = g_mime_part_get_content(part);
	GMimeContentEncoding enc;
	struct extract_bytes raw;
	gboolean more = FALSE;
	size_t n;

	if (dw == NULL)
		return 0;
	enc = g_mime_data_wrapper_get_encoding(dw);
	extract_stream_bytes(g_mime_data_wrapper_get_stream(dw), &raw);
	if (extract_is_identity(enc))
		n = raw.len;
	else if (enc == GMIME_CONTENT_ENCODING_BASE64)
		n = decode_base64_size(raw.data, raw.len);
	else if (enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE)
		n = decode_qp_size(raw.data, raw.len);
	else
		n = extract_decode(enc, raw.data, raw.len, NULL, SIZE_MAX - 1, &more);
	extract_bytes_release(&raw);
	return n;
}

/* A text part's content as UTF-8, cut to max_text bytes (*cut set when something was lost). */
static GString *extract_part_text(struct extract_ctx *c, GMimePart *part, size_t partno,
				  gboolean *cut)
{
	size_t max = c->lim->max_text;
	/* No charset spends more than 4 input bytes on one output byte, so input beyond that
	 * could never be kept. */
	size_t in_limit = max < SIZE_MAX / 8 ? max * 4 + 4 : SIZE_MAX / 2;
	struct extract_bytes b;
	GString *out;

	extract_part_bytes(part, in_limit, &b, cut);
	out = g_string_sized_new(MIN(b.len, max) + 16);
	extract_convert(c, out, b.data, b.len,
			g_mime_object_get_content_type_parameter((GMimeObject *)part, "charset"),
			partno);
	extract_bytes_release(&b);
	if (out->len > max) {
		extract_truncate_utf8(out, max);
		*cut = TRUE;
	}
	return out;
}

/* ---- JSON values ---- */

/* A JSON string from untrusted bytes: invalid UTF-8 becomes U+FFFD and NUL is dropped. */
static json_t *extract_json_bytes(const char *s, size_t len)
{
	GString *g;
	json_t *j;

	if (g_utf8_validate(s, (gssize)len, NULL))
		return json_stringn_nocheck(s, len);
	g = g_string_sized_new(len + 16);
	extract_append_utf8(g, s, len, FALSE);
	j = json_stringn_nocheck(g->str, g->len);
	g_string_free(g, TRUE);
	return j;
}

/* Same for an optional value, trimmed; NULL or blank gives JSON null. */
static json_t *extract_json_opt(const char *s)
{
	size_t len;

	if (s == NULL)
		return json_null();
	while (g_ascii_isspace(*s))
		s++;
	len = strlen(s);
	while (len > 0 && g_ascii_isspace(s[len - 1]))
		len--;
	return len > 0 ? extract_json_bytes(s, len) : json_null();
}

static void extract_put(struct extract_ctx *c, json_t *obj, const char *key, json_t *value)
{
	if (value == NULL || json_object_set_new(obj, key, value) != 0)
		c->oom = TRUE;
}

static void extract_push(struct extract_ctx *c, json_t *array, json_t *value)
{
	if (value == NULL || json_array_append_new(array, value) != 0)
		c->oom = TRUE;
}

/* ---- the part walk ---- */

static gboolean extract_is_attachment(GMimePart *part)
{
	const char *disp = g_mime_object_get_disposition((GMimeObject *)part);

	/* RFC 2183: an unknown disposition is treated as attachment. */
	if (disp != NULL && disp[0] != '\0')
		return g_ascii_strcasecmp(disp, "inline") != 0;
	return g_mime_part_get_filename(part) != NULL;
}

static json_t *extract_json_disposition(GMimeObject *obj)
{
	const char *disp = g_mime_object_get_disposition(obj);

	if (disp == NULL || disp[0] == '\0')
		return json_null();
	return json_string(g_ascii_strcasecmp(disp, "inline") == 0 ? "inline" : "attachment");
}

static json_t *extract_json_mime_type(GMimeObject *obj)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	char *type, *lower;
	json_t *j;

	if (ct == NULL)
		return json_string("application/octet-stream");
	type = g_mime_content_type_get_mime_type(ct);
	lower = g_ascii_strdown(type, -1);
	j = extract_json_opt(lower);
	g_free(lower);
	g_free(type);
	return j;
}

static void extract_add_attachment(struct extract_ctx *c, GMimeObject *obj, json_t *filename,
				   json_t *type, size_t size)
{
	json_t *a = json_object();

	if (a == NULL) {
		json_decref(filename);
		json_decref(type);
		c->oom = TRUE;
		return;
	}
	extract_put(c, a, "filename", filename);
	extract_put(c, a, "content_type", type);
	extract_put(c, a, "size", json_integer((json_int_t)MIN(size, (size_t)INT64_MAX)));
	extract_put(c, a, "content_id", extract_json_opt(g_mime_object_get_content_id(obj)));
	extract_put(c, a, "disposition", extract_json_disposition(obj));
	extract_push(c, c->attachments, a);
}

static void extract_leaf(struct extract_ctx *c, GMimePart *part, size_t partno, gboolean embedded)
{
	GMimeObject *obj = (GMimeObject *)part;
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	gboolean attachment = extract_is_attachment(part);

	if (!embedded && !attachment && ct != NULL) {
		if (c->text == NULL && g_mime_content_type_is_type(ct, "text", "plain")) {
			c->text = extract_part_text(c, part, partno, &c->text_cut);
			return;
		}
		if (c->html == NULL && g_mime_content_type_is_type(ct, "text", "html")) {
			c->html = extract_part_text(c, part, partno, &c->html_cut);
			return;
		}
	}
	/* Inside a forwarded message only real attachments are listed; its text is part of the
	 * message/rfc822 entry already. */
	if (embedded && !attachment)
		return;
	extract_add_attachment(c, obj, extract_json_opt(g_mime_part_get_filename(part)),
			       extract_json_mime_type(obj), extract_part_size(part));
}

static void extract_message_part(struct extract_ctx *c, GMimeObject *obj, GMimeMessage *inner)
{
	const char *name = g_mime_object_get_content_disposition_parameter(obj, "filename");
	size_t size = 0;

	if (name == NULL)
		name = g_mime_object_get_content_type_parameter(obj, "name");
	if (name == NULL && inner != NULL)
		name = g_mime_message_get_subject(inner);
	if (inner != NULL) {
		/* GMime keeps no byte offsets per part; writing the message back out gives its
		 * size (headers and bodies are written as they were read). */
		GMimeStream *null = g_mime_stream_null_new();

		g_mime_object_write_to_stream((GMimeObject *)inner, NULL, null);
		size = ((GMimeStreamNull *)null)->written;
		g_object_unref(null);
	}
	extract_add_attachment(c, obj, extract_json_opt(name), json_string("message/rfc822"), size);
}

/* Takes text of unknown charset and structure as body_text, cut to max_text. */
static void extract_keep_text(struct extract_ctx *c, const char *s, size_t len)
{
	size_t keep = MIN(len, c->lim->max_text);

	c->text = g_string_sized_new(keep + 16);
	extract_append_utf8(c->text, s, keep, TRUE);
	c->text_cut = keep < len || c->text->len > c->lim->max_text;
	extract_truncate_utf8(c->text, c->lim->max_text);
}

static void extract_walk(struct extract_ctx *c, GMimeObject *obj, unsigned depth, gboolean embedded)
{
	size_t partno;

	if (obj == NULL || c->part_limit_hit)
		return;
	if (depth > c->lim->max_depth) {
		if (!c->depth_limit_hit)
			extract_note(c, "nesting limit %u reached", c->lim->max_depth);
		c->depth_limit_hit = TRUE;
		return;
	}
	if (c->parts >= c->lim->max_parts) {
		c->part_limit_hit = TRUE;
		extract_note(c, "part limit %zu reached", c->lim->max_parts);
		return;
	}
	partno = ++c->parts;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = (GMimeMultipart *)obj;
		const char *prologue = g_mime_multipart_get_prologue(mp);
		int i, n = g_mime_multipart_get_count(mp);

		/* No boundary line matched: GMime filed everything under the prologue, which is
		 * all the text there is. */
		if (n == 0 && !embedded && c->text == NULL && prologue != NULL && prologue[0] != '\0') {
			extract_keep_text(c, prologue, strlen(prologue));
			extract_note(c, "no parts in multipart %zu; its text kept as body", partno);
		}
		for (i = 0; i < n && !c->part_limit_hit; i++)
			extract_walk(c, g_mime_multipart_get_part(mp, i), depth + 1, embedded);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message((GMimeMessagePart *)obj);

		extract_message_part(c, obj, inner);
		if (inner != NULL)
			extract_walk(c, g_mime_message_get_mime_part(inner), depth + 1, TRUE);
	} else if (GMIME_IS_PART(obj)) {
		extract_leaf(c, (GMimePart *)obj, partno, embedded);
	}
}

/* ---- headers ---- */

static void extract_addresses(struct extract_ctx *c, json_t *out, InternetAddressList *list,
			      unsigned depth)
{
	int i, n;

	if (list == NULL || depth > EXTRACT_GROUP_DEPTH)
		return;
	n = internet_address_list_length(list);
	for (i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		json_t *a, *name, *email;

		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			extract_addresses(c, out, internet_address_group_get_members(
							  (InternetAddressGroup *)ia), depth + 1);
			continue;
		}
		if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
			continue;
		name = extract_json_opt(internet_address_get_name(ia));
		email = extract_json_opt(internet_address_mailbox_get_addr((InternetAddressMailbox *)ia));
		if (json_is_null(email) && json_is_null(name))
			continue;
		if (json_is_null(email))
			email = json_string("");
		a = json_object();
		if (a == NULL) {
			json_decref(name);
			json_decref(email);
			c->oom = TRUE;
			return;
		}
		extract_put(c, a, "name", name);
		extract_put(c, a, "email", email);
		extract_push(c, out, a);
	}
}

static json_t *extract_address_array(struct extract_ctx *c, InternetAddressList *list)
{
	json_t *a = json_array();

	if (a != NULL)
		extract_addresses(c, a, list, 0);
	return a;
}

/* "<id>" headers: the ids in order; a bare id without <> is taken as one. */
static GMimeReferences *extract_ids(struct extract_ctx *c, GMimeMessage *m, const char *header)
{
	const char *value = g_mime_object_get_header((GMimeObject *)m, header);
	GMimeReferences *refs;

	if (value == NULL)
		return NULL;
	refs = g_mime_references_parse(c->options, value);
	if (g_mime_references_length(refs) == 0) {
		char *id = g_mime_utils_decode_message_id(value);

		if (id != NULL && id[0] != '\0')
			g_mime_references_append(refs, id);
		g_free(id);
	}
	return refs;
}

static json_t *extract_date(GMimeMessage *m)
{
	GDateTime *d = g_mime_message_get_date(m);
	char buf[80];
	struct tm tm;
	time_t t;

	if (d == NULL)
		return json_null();
	t = (time_t)g_date_time_to_unix(d);
	/* A zone offset can push GDateTime's years 1..9999 out of ISO-8601's four digits. */
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999)
		return json_null();
	snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return json_string(buf);
}

static json_t *extract_list_id(GMimeMessage *m)
{
	const char *v = g_mime_object_get_header((GMimeObject *)m, "List-Id");
	const char *lt, *gt;
	json_t *j;
	char *id;

	if (v == NULL)
		return json_null();
	lt = strrchr(v, '<');
	gt = lt ? strchr(lt, '>') : NULL;
	if (lt == NULL || gt == NULL)
		return extract_json_opt(v);
	id = g_strndup(lt + 1, (gsize)(gt - lt - 1));
	j = extract_json_opt(id);
	g_free(id);
	return j;
}

static void extract_headers(struct extract_ctx *c, json_t *o, GMimeMessage *m)
{
	const char *mid = g_mime_message_get_message_id(m);
	GMimeReferences *refs;
	json_t *id = extract_json_opt(mid), *from, *array;

	if (id != NULL && json_is_string(id)) {
		const char *s = json_string_value(id);
		size_t len = json_string_length(id);

		/* GMime already strips <>, except from ids it could not parse. */
		if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
			json_t *bare = len > 2 ? extract_json_bytes(s + 1, len - 2) : json_null();
			json_decref(id);
			id = bare;
		}
	}
	extract_put(c, o, "message_id", id);

	/* In-Reply-To is often not just an id: exmh writes "Message from NAME <ADDR> of DATE
	 * <MSGID>", MH 'Your message of "DATE."'. The parent is the id it shares with References,
	 * else its last id; free text without an addr-spec names no parent at all. Threading keys
	 * on this, so a wrong value merges unrelated conversations. */
	refs = extract_ids(c, m, "In-Reply-To");
	if (refs != NULL && g_mime_references_length(refs) > 0) {
		GMimeReferences *chain = extract_ids(c, m, "References");
		int n = g_mime_references_length(refs), pick = n - 1;
		for (int i = n - 1; chain != NULL && i >= 0; i--) {
			const char *id = g_mime_references_get_message_id(refs, i);
			int shared = 0;
			for (int k = 0; k < g_mime_references_length(chain) && !shared; k++)
				shared = strcmp(id, g_mime_references_get_message_id(chain, k)) == 0;
			if (shared) {
				pick = i;
				break;
			}
		}
		const char *id = g_mime_references_get_message_id(refs, pick);
		if (id != NULL && strchr(id, '@') != NULL && strpbrk(id, " \t\r\n\"") == NULL)
			extract_put(c, o, "in_reply_to", extract_json_opt(id));
		if (chain != NULL)
			g_mime_references_free(chain);
	}
	if (refs != NULL)
		g_mime_references_free(refs);

	refs = extract_ids(c, m, "References");
	array = json_object_get(o, "references");
	if (refs != NULL) {
		int i, n = g_mime_references_length(refs);

		for (i = 0; i < n; i++) {
			json_t *ref = extract_json_opt(g_mime_references_get_message_id(refs, i));

			if (json_is_null(ref))
				continue;
			extract_push(c, array, ref);
		}
		g_mime_references_free(refs);
	}

	extract_put(c, o, "subject", extract_json_opt(g_mime_message_get_subject(m)));
	extract_put(c, o, "sent_at", extract_date(m));

	from = extract_address_array(c, g_mime_message_get_from(m));
	if (from != NULL && json_array_size(from) > 0)
		extract_put(c, o, "from", json_incref(json_array_get(from, 0)));
	json_decref(from);
	extract_put(c, o, "to", extract_address_array(c, g_mime_message_get_to(m)));
	extract_put(c, o, "cc", extract_address_array(c, g_mime_message_get_cc(m)));
	extract_put(c, o, "bcc", extract_address_array(c, g_mime_message_get_bcc(m)));
	extract_put(c, o, "reply_to", extract_address_array(c, g_mime_message_get_reply_to(m)));
	extract_put(c, o, "list_id", extract_list_id(m));
}

/* ---- bodies ---- */

static json_t *extract_snippet(const char *s, size_t len)
{
	/* each character at most 4 bytes, and a space before it */
	char buf[EXTRACT_SNIPPET_CHARS * 5];
	const char *p = s, *end = s + len, *next;
	gboolean space = FALSE, blank;
	size_t n = 0, k = 0;
	gunichar ch;

	while (p < end && n < EXTRACT_SNIPPET_CHARS) {
		/* ASCII: spaces and controls are exactly the bytes up to ' ', and DEL */
		if ((unsigned char)*p < 0x80) {
			blank = (unsigned char)*p <= ' ' || *p == 0x7f;
			next = p + 1;
		} else {
			ch = g_utf8_get_char(p);
			blank = g_unichar_isspace(ch) || g_unichar_iscntrl(ch);
			next = g_utf8_next_char(p);
		}
		if (blank) {
			space = TRUE;
		} else {
			if (space && k > 0) {
				buf[k++] = ' ';
				if (++n == EXTRACT_SNIPPET_CHARS)
					break;
			}
			space = FALSE;
			memcpy(buf + k, p, (size_t)(next - p));
			k += (size_t)(next - p);
			n++;
		}
		p = next;
	}
	return k > 0 ? json_stringn_nocheck(buf, k) : json_null();
}

static gboolean extract_blank(const GString *s)
{
	size_t i;

	for (i = 0; i < s->len; i++) {
		if (!g_ascii_isspace(s->str[i]))
			return FALSE;
	}
	return TRUE;
}

static void extract_bodies(struct extract_ctx *c, json_t *o)
{
	GString *text = c->text;

	/* An empty text/plain alternative next to real HTML says nothing; use the HTML. */
	if (c->html != NULL && (text == NULL || extract_blank(text))) {
		char *rendered = html_to_text(c->html->str, c->html->len, NULL);

		if (rendered == NULL) {
			c->oom = TRUE;
			return;
		}
		text = g_string_new(rendered);
		free(rendered);
		extract_truncate_utf8(text, c->lim->max_text);
		if (c->text != NULL)
			g_string_free(c->text, TRUE);
		c->text = text;
		c->text_cut = c->html_cut;
	}
	if (c->text != NULL) {
		extract_put(c, o, "body_text", json_stringn_nocheck(c->text->str, c->text->len));
		extract_put(c, o, "snippet", extract_snippet(c->text->str, c->text->len));
	}
	if (c->html != NULL)
		extract_put(c, o, "body_html", json_stringn_nocheck(c->html->str, c->html->len));
	if (c->text_cut)
		extract_note(c, "body_text truncated at %zu bytes", c->lim->max_text);
	if (c->html_cut)
		extract_note(c, "body_html truncated at %zu bytes", c->lim->max_text);
}

/* ---- guards run before GMime sees the input ---- */

static gboolean extract_is_lwsp(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

/* Collects the values of every boundary= parameter (any case, quoted or not) into set. */
static void extract_collect_boundaries(const char *raw, size_t len, GHashTable *set)
{
	size_t i;

	for (i = 0; i + 9 <= len; i++) {
		size_t j, start;

		if ((raw[i] | 0x20) != 'b' || g_ascii_strncasecmp(raw + i, "boundary", 8) != 0)
			continue;
		for (j = i + 8; j < len && extract_is_lwsp(raw[j]); j++)
			;
		if (j >= len || raw[j] != '=')
			continue;
		for (j++; j < len && extract_is_lwsp(raw[j]); j++)
			;
		if (j < len && raw[j] == '"') {
			start = ++j;
			while (j < len && raw[j] != '"' && raw[j] != '\n')
				j++;
		} else {
			start = j;
			while (j < len && raw[j] != ';' && !g_ascii_isspace(raw[j]))
				j++;
		}
		if (j > start)
			g_hash_table_add(set, g_strndup(raw + start, j - start));
		i = j - 1;
	}
}

/* A line "--x" or "--x--" (trailing whitespace allowed) where x is a collected boundary. */
static gboolean extract_is_boundary_line(const char *line, size_t len, GHashTable *set)
{
	char key[256];
	size_t n;

	while (len > 2 && extract_is_lwsp(line[len - 1]))
		len--;
	n = len - 2;
	if (n == 0 || n >= sizeof key)
		return FALSE;
	memcpy(key, line + 2, n);
	key[n] = '\0';
	if (g_hash_table_contains(set, key))
		return TRUE;
	if (n > 2 && key[n - 1] == '-' && key[n - 2] == '-') {
		key[n - 2] = '\0';
		return g_hash_table_contains(set, key);
	}
	return FALSE;
}

/* The first "\n--" in [p, end), or NULL. Found by its first '-' with memchr: base64, which
 * is most of the bytes of mail, never holds one, and memmem's general search was 6% of parse
 * time for these two scans of every message. */
static const char *extract_find_dashes(const char *p, const char *end)
{
	const char *r;

	if (end - p < 3)
		return NULL;
	for (r = p + 1; r + 1 < end && (r = memchr(r, '-', (size_t)(end - r - 1))) != NULL; r++) {
		if (r[-1] == '\n' && r[1] == '-')
			return r - 1;
	}
	return NULL;
}

/* GMime builds every part of a message before we can count them, and a part costs it far more
 * memory than its few bytes of input. Returns how much of raw to hand to GMime: all of it,
 * unless it holds more boundary lines than max_parts parts can have (each part opens with at
 * most one and each multipart adds one closing line), in which case it is cut before the
 * first line over that budget. */
static size_t extract_boundary_cut(const char *raw, size_t len, size_t max_parts)
{
	size_t budget = max_parts < SIZE_MAX / 2 - 2 ? 2 * max_parts + 2 : SIZE_MAX;
	size_t count = 0, cut = len;
	const char *p = raw, *end = raw + len;
	GHashTable *set;

	/* Cheap pass: lines starting with "--" at all. Nearly every message stops here. */
	if (len >= 2 && raw[0] == '-' && raw[1] == '-')
		count++;
	while (count <= budget && (p = extract_find_dashes(p, end)) != NULL) {
		count++;
		p += 3;
	}
	if (count <= budget)
		return len;

	set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	extract_collect_boundaries(raw, len, set);
	count = 0;
	for (p = raw; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t linelen = (size_t)((nl ? nl : end) - p);

		if (linelen > 2 && p[0] == '-' && p[1] == '-' && extract_is_boundary_line(p, linelen, set) &&
		    ++count > budget) {
			cut = (size_t)(p - raw);
			break;
		}
		p = nl ? nl + 1 : end;
	}
	g_hash_table_destroy(set);
	return cut;
}

/* What extract_header_cut looks for in a header line: one lookup per byte. */
enum { HB_ITEM = 1, HB_SLASH, HB_EOL };
static const unsigned char header_bytes[256] = {
	[','] = HB_ITEM, [';'] = HB_ITEM, ['<'] = HB_ITEM, ['/'] = HB_SLASH, ['\n'] = HB_EOL,
};

/* Returns the offset of the line holding the (max + 1)th header item, or len. Header blocks
 * are over-approximated without parsing: one starts at the top, after every line starting with
 * "--" (any boundary) and after a blank line ending a block that mentions "message/" (an
 * embedded message's headers follow); each runs to the next blank line. */
static size_t extract_header_cut(const char *raw, size_t len, size_t max)
{
	size_t pos = 0, items = 0;

	while (pos < len) {
		gboolean embedded = FALSE;
		size_t i = pos;
		const char *dashes;

		/* One block: count line by line until a blank line. */
		while (i < len) {
			size_t line = i;

			if (raw[i] == '\n' || (raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n')) {
				i += raw[i] == '\r' ? 2 : 1;
				break;
			}
			for (items++; i < len; i++) {
				unsigned char k = header_bytes[(unsigned char)raw[i]];

				if (k == 0)
					continue;
				if (k == HB_EOL)
					break;
				if (k == HB_ITEM)
					items++;
				else if (!embedded && i - line >= 7 &&
					 g_ascii_strncasecmp(raw + i - 7, "message", 7) == 0)
					embedded = TRUE; /* "message/" ends here */
			}
			if (items > max)
				return line;
			i = i < len ? i + 1 : len;
		}
		if (embedded) {
			pos = i;
			continue;
		}
		/* The next block starts after the next "--" line. */
		if (i >= len || (dashes = extract_find_dashes(raw + i - 1, raw + len)) == NULL)
			break;
		{
			const char *nl = memchr(dashes + 1, '\n', (size_t)(raw + len - dashes - 1));

			pos = nl ? (size_t)(nl + 1 - raw) : len;
		}
	}
	return len;
}

/* Writes stop into *copy (made on first need from raw) at a point inside the run starting at
 * name, so that no run through it is longer than EXTRACT_CHARSET_RUN_MAX; returns the point. */
static size_t extract_cut_run(struct extract_ctx *c, const char *raw, size_t len, char **copy,
			      size_t name, size_t run_end, char stop, gboolean *noted)
{
	size_t q = name + EXTRACT_CHARSET_RUN_MAX / 2;

	/* Not after '=': a '?' there would open a new encoded word (unless right before the old
	 * stop, where that word's name is empty). */
	while (raw[q - 1] == '=' && q + 1 < run_end)
		q++;
	if (*copy == NULL)
		*copy = g_memdup2(raw, len);
	(*copy)[q] = stop;
	if (!*noted)
		extract_note(c, "oversized charset name at byte %zu cut", name);
	*noted = TRUE;
	return q;
}

/* Bounds every charset name run in raw (from an opener "=?" or "*=" to the next stop byte,
 * '?' or '\'': an upper bound on what GMime takes as the name) by writing a stop byte into
 * any run longer than EXTRACT_CHARSET_RUN_MAX, in *copy. A stop byte placed inside a run ends
 * every earlier run through it too, which patching the opener would not. Both scans step with
 * memchr over bytes that base64 never contains, so large attachments cost little. */
static void extract_defuse_runs(struct extract_ctx *c, const char *raw, size_t len, char **copy)
{
	const char *end = raw + len, *p;
	size_t prev = SIZE_MAX, next_quote = 0;
	gboolean noted = FALSE, known = FALSE;

	/* "=?" runs: each opener's '?' is itself a stop byte, so walking from '?' to '?' sees
	 * every run whole. */
	for (p = raw; (p = memchr(p, '?', (size_t)(end - p))) != NULL; p++) {
		size_t at = (size_t)(p - raw);

		if (prev != SIZE_MAX && at - (prev + 1) > EXTRACT_CHARSET_RUN_MAX)
			extract_cut_run(c, raw, len, copy, prev + 1, at, '?', &noted);
		prev = at > 0 && raw[at - 1] == '=' ? at : SIZE_MAX;
	}
	if (prev != SIZE_MAX && len - (prev + 1) > EXTRACT_CHARSET_RUN_MAX)
		extract_cut_run(c, raw, len, copy, prev + 1, len, '?', &noted);

	/* "*=" runs end at the next '\'', shared by every opener before it. */
	noted = FALSE;
	for (p = raw; (p = memchr(p, '*', (size_t)(end - p))) != NULL; p++) {
		size_t name = (size_t)(p - raw) + 2;

		if (name > len || p[1] != '=')
			continue;
		if (!known || next_quote < name) {
			const char *q = memchr(raw + name, '\'', len - name);

			next_quote = q ? (size_t)(q - raw) : len;
			known = TRUE;
		}
		if (next_quote - name > EXTRACT_CHARSET_RUN_MAX)
			next_quote = extract_cut_run(c, raw, len, copy, name, next_quote, '\'', &noted);
	}
}

/* GMime copies charset names onto the stack (g_alloca) before looking them up: see
 * EXTRACT_CHARSET_RUN_MAX. Returns a defused copy of raw, or NULL when raw is safe as it is. */
static char *extract_defuse_charsets(struct extract_ctx *c, const char *raw, size_t len)
{
	char *copy = NULL;

	if (len <= EXTRACT_CHARSET_RUN_MAX)
		return NULL;
	extract_defuse_runs(c, raw, len, &copy);
	return copy;
}

/* ---- the entry point ---- */

static void extract_on_warning(gint64 offset, GMimeParserWarning code, const gchar *item,
			       gpointer data)
{
	struct extract_ctx *c = data;
	const char *what;

	(void)item; /* untrusted text; parse_error names the problem, not the bytes */
	switch (code) {
	case GMIME_WARN_TRUNCATED_MESSAGE:
		if (c->input_cut)
			return; /* we cut it, and say so ourselves */
		what = "message is truncated";
		break;
	case GMIME_WARN_MALFORMED_MESSAGE: what = "malformed message"; break;
	case GMIME_WARN_MALFORMED_MULTIPART: what = "multipart without parts"; break;
	case GMIME_CRIT_INVALID_HEADER_NAME: what = "invalid header line"; break;
	case GMIME_CRIT_CONFLICTING_HEADER: what = "conflicting headers"; break;
	case GMIME_CRIT_CONFLICTING_PARAMETER: what = "conflicting header parameters"; break;
	case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY: what = "multipart without boundary"; break;
	case GMIME_CRIT_NESTING_OVERFLOW: what = "GMime nesting limit reached"; break;
	case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT: what = "part without headers or content"; break;
	default: return; /* minor: duplicated headers, raw 8-bit, bad parameters, ... */
	}
	if ((unsigned)code < 32 && (c->warned & (1u << code)))
		return;
	if ((unsigned)code < 32)
		c->warned |= 1u << code;
	if (c->warnings->len > 0)
		g_string_append(c->warnings, "; ");
	if (offset >= 0)
		g_string_append_printf(c->warnings, "%s at byte %" G_GINT64_FORMAT, what, offset);
	else
		g_string_append(c->warnings, what);
}

/* Every key, in a fixed order, before anything is known. */
static void extract_skeleton(struct extract_ctx *c, json_t *o, const char *sha)
{
	static const char *const nulls[] = {
		"message_id", "in_reply_to", "subject", "sent_at", "from", "list_id",
		"body_text", "body_html", "snippet", "parse_error",
	};
	size_t i;

	extract_put(c, o, "content_sha256", json_string(sha));
	for (i = 0; i < G_N_ELEMENTS(nulls); i++) {
		extract_put(c, o, nulls[i], json_null());
		if (i == 0)
			extract_put(c, o, "message_id_synthetic", json_false());
		if (i == 1)
			extract_put(c, o, "references", json_array());
		if (i == 4) {
			extract_put(c, o, "to", json_array());
			extract_put(c, o, "cc", json_array());
			extract_put(c, o, "bcc", json_array());
			extract_put(c, o, "reply_to", json_array());
		}
	}
	c->attachments = json_array();
	extract_put(c, o, "attachments", c->attachments);
}

/* OpenSSL's SHA-256 is 3.7x faster than GLib's here, and hashing was ~45% of extraction. */
char *extract_sha256_hex(const void *raw, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char *hex = g_malloc(2 * EVP_MAX_MD_SIZE + 1);
	if (!EVP_Digest(raw, len, md, &n, EVP_sha256(), NULL))
		n = 0;
	for (unsigned int i = 0; i < n; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * n] = 0;
	return hex;
}

/* GMime files a message's Content-* headers under its top-level part, hence two to count. */
static int extract_header_count(GMimeObject *obj)
{
	return obj ? g_mime_header_list_get_count(g_mime_object_get_header_list(obj)) : 0;
}

/* Parses raw into c and o; everything GMime built is released before returning, the bodies
 * having been copied out already. */
/* ---- could GMime have warned? ----
 * With a warning callback set, GMime decodes every header's value as it parses (to check its
 * RFC 2047 words), which was a tenth of parse time. The warnings parse_error names are about
 * structure, so a message is parsed without the callback first, and again with it only when
 * the checks below cannot rule those warnings out. They err on the side of parsing again:
 * test_extract compares both ways over every corpus and fuzz input. */

/* A header line GMime accepts: a name without blanks or controls, blanks, ':'. */
static gboolean warn_header_line_ok(const char *p, const char *end)
{
	const char *q = p;

	while (q < end && *q != ':' && *q != ' ' && *q != '\t' && (unsigned char)*q > 0x20 &&
	       *q != 0x7f)
		q++;
	if (q == p)
		return FALSE;
	while (q < end && (*q == ' ' || *q == '\t'))
		q++;
	return q < end && *q == ':';
}

/* The header block starting at p: every line a header or a continuation, ended by an empty
 * line. FALSE for anything else, including the end of input before the empty line. */
static gboolean warn_header_block_ok(const char *p, const char *end)
{
	gboolean first = TRUE;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;

		if (e > p && e[-1] == '\r')
			e--;
		if (e == p)
			return nl != NULL; /* the empty line that ends the block */
		if (nl == NULL)
			return FALSE;
		if (*p == ' ' || *p == '\t') {
			if (first)
				return FALSE;
		} else if (!warn_header_line_ok(p, e)) {
			return FALSE;
		}
		first = FALSE;
		p = nl + 1;
	}
	return FALSE;
}

/* A parameter named twice in one Content-Type or Content-Disposition value. */
static gboolean warn_repeated_param(const char *value)
{
	char names[32][40];
	unsigned n = 0;
	const char *p = value ? strchr(value, ';') : NULL;

	while (p != NULL) {
		const char *start, *eq;
		size_t len, i;

		p++;
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		start = p;
		eq = strpbrk(p, "=;");
		if (eq == NULL || *eq == ';') {
			p = eq;
			continue;
		}
		len = (size_t)(eq - start);
		while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
			len--;
		/* RFC 2231 sections ("name*0*") are one parameter: compare up to the '*' */
		for (i = 0; i < len && start[i] != '*'; i++)
			;
		len = MIN(i, sizeof names[0] - 1);
		if (n == G_N_ELEMENTS(names))
			return TRUE;
		for (i = 0; i < n; i++)
			if (strlen(names[i]) == len && g_ascii_strncasecmp(names[i], start, len) == 0)
				return TRUE;
		memcpy(names[n], start, len);
		names[n++][len] = '\0';
		/* Past the value, which may be quoted and hold ';'. */
		p = eq + 1;
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++)
				if (*p == '\\' && p[1])
					p++;
		}
		p = strchr(p, ';');
	}
	return FALSE;
}

/* Headers that may repeat without GMime calling them conflicting: trace and list fields,
 * signatures, and extensions. Any other name given twice is suspect. */
static gboolean warn_may_repeat(const char *name)
{
	static const char *const prefixes[] = { "X-", "Received", "DKIM-", "ARC-", "Resent-",
						"Authentication-Results", "Return-Path", "Comments",
						"Keywords", "List-", "Delivered-To" };

	for (size_t k = 0; k < G_N_ELEMENTS(prefixes); k++)
		if (g_ascii_strncasecmp(name, prefixes[k], strlen(prefixes[k])) == 0)
			return TRUE;
	return FALSE;
}

/* An object's headers: none at all (unless may_be_empty), a name given twice, or a repeated
 * parameter. */
static gboolean warn_headers_suspect(GMimeObject *obj, gboolean may_be_empty)
{
	GMimeHeaderList *list = g_mime_object_get_header_list(obj);
	int count = list ? g_mime_header_list_get_count(list) : 0;

	if (count == 0)
		return !may_be_empty;
	for (int i = 0; i < count; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(list, i);
		const char *name = g_mime_header_get_name(h);

		if ((g_ascii_strcasecmp(name, "Content-Type") == 0 ||
		     g_ascii_strcasecmp(name, "Content-Disposition") == 0) &&
		    warn_repeated_param(g_mime_header_get_raw_value(h)))
			return TRUE;
		if (warn_may_repeat(name))
			continue;
		for (int k = 0; k < i; k++)
			if (g_ascii_strcasecmp(name, g_mime_header_get_name(
					g_mime_header_list_get_header_at(list, k))) == 0)
				return TRUE;
	}
	return FALSE;
}

/* Walks the tree: TRUE when GMime may have warned about any part of it. Each multipart's
 * boundary goes into bounds: the raw checks below search the whole message for it, which
 * says something only if no other multipart's boundary can match there too. */
static gboolean warn_tree_suspect(GMimeObject *obj, const char *raw, size_t len, unsigned depth,
				  GPtrArray *bounds)
{
	/* The top-level part holds only the message's Content-* headers, maybe none. */
	if (depth > 64 || GMIME_IS_MESSAGE_PART(obj) || warn_headers_suspect(obj, depth == 0))
		return TRUE;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = (GMimeMultipart *)obj;
		const char *b = g_mime_multipart_get_boundary(mp);
		int n = g_mime_multipart_get_count(mp);
		char *mark;
		const char *p, *end = raw + len;
		gboolean ok = FALSE;

		/* Each multipart's check reads the whole input: past a few, the warning parse is
		 * cheaper (and a hostile message cannot make it quadratic). */
		if (b == NULL || *b == '\0' || n == 0 || bounds->len >= 16)
			return TRUE;
		for (guint k = 0; k < bounds->len; k++) {
			const char *other = g_ptr_array_index(bounds, k);
			size_t lb = strlen(b), lo = strlen(other);

			if (strncmp(b, other, MIN(lb, lo)) == 0)
				return TRUE; /* the same, or one a prefix of the other */
		}
		g_ptr_array_add(bounds, (gpointer)b);
		/* Every boundary line in the whole input: one per part, each followed by a header
		 * block, and one end line. Any other count means GMime's view of where the parts
		 * end may differ from the lines (a corrupt end line, the same boundary reused). */
		mark = g_strconcat("--", b, NULL);
		size_t marklen = strlen(mark), lines = 0, ends = 0;
		for (p = raw; p < end; p++) {
			const char *hit = memmem(p, (size_t)(end - p), mark, marklen);
			const char *after, *nl;

			if (hit == NULL)
				break;
			p = hit;
			if (hit != raw && hit[-1] != '\n')
				continue;
			after = hit + marklen;
			if (end - after >= 2 && after[0] == '-' && after[1] == '-') {
				/* An end boundary is the whole line (blanks may follow). */
				const char *q = after + 2;

				while (q < end && (*q == ' ' || *q == '\t' || *q == '\r'))
					q++;
				if (q != end && *q != '\n')
					break;
				ends++;
				continue;
			}
			nl = memchr(after, '\n', (size_t)(end - after));
			if (nl == NULL || !(after == nl || (after + 1 == nl && *after == '\r')) ||
			    !warn_header_block_ok(nl + 1, end))
				break;
			lines++;
		}
		ok = p >= end || memmem(p, (size_t)(end - p), mark, marklen) == NULL;
		g_free(mark);
		if (!ok || ends != 1 || lines != (size_t)n)
			return TRUE;
		for (int i = 0; i < n; i++)
			if (warn_tree_suspect(g_mime_multipart_get_part(mp, i), raw, len, depth + 1,
					      bounds))
				return TRUE;
	}
	return FALSE;
}

static gboolean extract_may_warn(GMimeMessage *m, const char *raw, size_t len)
{
	GMimeObject *top = g_mime_message_get_mime_part(m);
	GPtrArray *bounds;
	gboolean suspect;

	if (!warn_header_block_ok(raw, raw + len) || top == NULL ||
	    warn_headers_suspect((GMimeObject *)m, FALSE))
		return TRUE;
	bounds = g_ptr_array_new();
	suspect = warn_tree_suspect(top, raw, len, 0, bounds);
	g_ptr_array_free(bounds, TRUE);
	return suspect;
}

static void extract_parse(struct extract_ctx *c, json_t *o, const char *raw, size_t len)
{
	GByteArray *array = NULL;
	GMimeStream *stream = NULL;
	GMimeParser *parser = NULL;
	GMimeMessage *message = NULL;
	size_t parse_len, boundary_len, header_len;
	char *copy;

	boundary_len = extract_boundary_cut(raw, len, c->lim->max_parts);
	header_len = extract_header_cut(raw, boundary_len, EXTRACT_MAX_HEADER_ITEMS);
	/* GByteArray's limit; no real message comes near 4 GiB. */
	parse_len = MIN(header_len, (size_t)G_MAXUINT);
	c->input_cut = parse_len < len;
	copy = extract_defuse_charsets(c, raw, parse_len);

	/* A stream straight over the caller's buffer (or our one defused copy): GMime only reads
	 * it, and with the owner flag off never frees or grows it. Parts point into it until the
	 * message is released below. */
	array = g_byte_array_new_take((guint8 *)(copy ? copy : raw), parse_len);
	for (int warn = c->lim->always_warn; warn < 2; warn++) {
		if (parser != NULL) { /* the quick parse could not rule warnings out */
			if (message != NULL)
				g_object_unref(message);
			message = NULL;
			g_object_unref(parser);
			g_object_unref(stream);
			g_mime_parser_options_free(c->options);
		}
		c->options = g_mime_parser_options_new();
		g_mime_parser_options_set_fallback_charsets(c->options, fallback_charsets);
		if (warn)
			g_mime_parser_options_set_warning_callback(c->options, extract_on_warning, c);
		stream = g_mime_stream_mem_new_with_byte_array(array);
		g_mime_stream_mem_set_owner((GMimeStreamMem *)stream, FALSE);
		parser = g_mime_parser_new_with_stream(stream);
		g_mime_parser_set_persist_stream(parser, TRUE);
		message = g_mime_parser_construct_message(parser, c->options);
		if (warn || (message != NULL &&
			     !extract_may_warn(message, (const char *)array->data, parse_len)))
			break;
	}
	if (message == NULL) {
		/* Keep what text there is, so that the message can still be found. */
		extract_note(c, "no headers");
		extract_keep_text(c, raw, len);
		goto out;
	}
	if (extract_header_count((GMimeObject *)message) == 0 &&
	    extract_header_count(g_mime_message_get_mime_part(message)) == 0)
		extract_note(c, "no headers");
	extract_headers(c, o, message);
	extract_walk(c, g_mime_message_get_mime_part(message), 0, FALSE);
	/* After the walk, so that a part limit reached is named first. */
	if (header_len < boundary_len)
		extract_note(c, "input after byte %zu skipped: over %u header lines, addresses and "
			     "parameters", header_len, EXTRACT_MAX_HEADER_ITEMS);
	else if (boundary_len < len)
		extract_note(c, "input after byte %zu skipped: more boundary lines than %zu parts allow",
			     boundary_len, c->lim->max_parts);
	else if (parse_len < len)
		extract_note(c, "input after byte %zu skipped: too large", parse_len);

out:
	if (message != NULL)
		g_object_unref(message);
	g_object_unref(parser);
	g_object_unref(stream);
	g_byte_array_free(array, FALSE); /* the bytes belong to the caller or to copy */
	/* Headers keep a pointer to the options they were parsed with. */
	g_mime_parser_options_free(c->options);
	c->options = NULL;
	g_free(copy);
}

json_t *extract_message(const char *raw, size_t len, const struct extract_limits *lim)
{
	struct extract_limits defaults;
	struct extract_ctx c;
	char *sha = NULL;
	json_t *o;

	extract_global_init();
	if (lim == NULL) {
		extract_limits_default(&defaults);
		lim = &defaults;
	}
	memset(&c, 0, sizeof c);
	c.lim = lim;
	c.error = g_string_new(NULL);
	c.warnings = g_string_new(NULL);
	o = json_object();
	if (o == NULL) {
		c.oom = TRUE;
		goto out;
	}
	if (raw == NULL)
		len = 0;
	sha = extract_sha256_hex(raw ? raw : "", len);
	extract_skeleton(&c, o, sha);
	if (len == 0)
		extract_note(&c, "empty input");
	else
		extract_parse(&c, o, raw, len);
	if (json_is_null(json_object_get(o, "message_id"))) {
		char synthetic[64];

		/* Stable: the same bytes always get the same id, so re-parsing changes nothing. */
		snprintf(synthetic, sizeof synthetic, "%.32s@mailpipe.invalid", sha);
		extract_put(&c, o, "message_id", json_string(synthetic));
		extract_put(&c, o, "message_id_synthetic", json_true());
	}
	extract_bodies(&c, o);
	if (c.warnings->len > 0) {
		if (c.error->len > 0)
			g_string_append(c.error, "; ");
		g_string_append_len(c.error, c.warnings->str, c.warnings->len);
	}
	if (c.error->len > 0)
		extract_put(&c, o, "parse_error", extract_json_bytes(c.error->str, c.error->len));

out:
	g_free(sha);
	if (c.text != NULL)
		g_string_free(c.text, TRUE);
	if (c.html != NULL)
		g_string_free(c.html, TRUE);
	g_string_free(c.warnings, TRUE);
	g_string_free(c.error, TRUE);
	if (c.oom) {
		json_decref(o);
		return NULL;
	}
	return o;
}
