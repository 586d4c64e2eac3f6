/* Owns MIME extraction's entry point declared in extract.h: raw bytes -> one JSON record, GMime
 * parsing with its warnings, parse_error, the chosen bodies and snippet. Not charsets, part
 * content, headers or guards (extract_*.c). Called by the parser stage's handler and the tests. */
#include "extract_internal.h"
#include "html.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>
#include <openssl/evp.h>

#define EXTRACT_DEFAULT_PARTS 1000
#define EXTRACT_DEFAULT_DEPTH 32
#define EXTRACT_DEFAULT_TEXT (4u << 20)
#define EXTRACT_SNIPPET_CHARS 200
#define EXTRACT_MAX_NOTES 8        /* problems named in parse_error before "..." */

/* GMime builds an object of several hundred bytes per header line, address, parameter and
 * message-id, from as little as two bytes of input each ("a,"): a few MB of headers would cost
 * GBs. Header lines plus ',' ';' '<' in header blocks are counted, and input past this many is
 * not parsed; real mail stays far below (5,000 recipients are 5,000 commas). */
#define EXTRACT_MAX_HEADER_ITEMS 50000

/* Raw 8-bit header bytes: UTF-8 if they are valid, else the Windows superset of latin-1, else
 * latin-1 itself for the five bytes windows-1252 leaves undefined. */
static const char *fallback_charsets[] = { "utf-8", "windows-1252", "iso-8859-1", NULL };

void extract_note(struct extract_ctx *c, const char *fmt, ...)
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
void extract_printable(char *dst, size_t size, const char *src)
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
/* ---- JSON values ---- */

/* A JSON string from untrusted bytes: invalid UTF-8 becomes U+FFFD and NUL is dropped. */
json_t *extract_json_bytes(const char *s, size_t len)
{
	GString *g;
	json_t *j;

	if (g_utf8_validate(s, (gssize)len, NULL))
		return json_stringn_nocheck(s, len);
	g = g_string_sized_new(len + 16);
	extract_charset_append_utf8(g, s, len, FALSE);
	j = json_stringn_nocheck(g->str, g->len);
	g_string_free(g, TRUE);
	return j;
}

/* Same for an optional value, trimmed; NULL or blank gives JSON null. */
json_t *extract_json_opt(const char *s)
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

void extract_put(struct extract_ctx *c, json_t *obj, const char *key, json_t *value)
{
	if (value == NULL || json_object_set_new(obj, key, value) != 0)
		c->oom = TRUE;
}

void extract_push(struct extract_ctx *c, json_t *array, json_t *value)
{
	if (value == NULL || json_array_append_new(array, value) != 0)
		c->oom = TRUE;
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
		extract_charset_truncate_utf8(text, c->lim->max_text);
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
static void extract_parse(struct extract_ctx *c, json_t *o, const char *raw, size_t len)
{
	GByteArray *array = NULL;
	GMimeStream *stream = NULL;
	GMimeParser *parser = NULL;
	GMimeMessage *message = NULL;
	size_t parse_len, boundary_len, header_len;
	char *copy;

	boundary_len = extract_guard_boundary_cut(raw, len, c->lim->max_parts);
	header_len = extract_guard_header_cut(raw, boundary_len, EXTRACT_MAX_HEADER_ITEMS);
	/* GByteArray's limit; no real message comes near 4 GiB. */
	parse_len = MIN(header_len, (size_t)G_MAXUINT);
	c->input_cut = parse_len < len;
	copy = extract_guard_defuse_charsets(c, raw, parse_len);

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
			     !extract_warn_possible(message, (const char *)array->data, parse_len)))
			break;
	}
	if (message == NULL) {
		/* Keep what text there is, so that the message can still be found. */
		extract_note(c, "no headers");
		extract_walk_keep_text(c, raw, len);
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
